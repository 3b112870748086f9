/*
 * as_owner.c
 *	  The entry points that run a step as another role after checking who
 *	  really called: the catalog writes that only the extension owner may
 *	  make, and the evaluation of a data-quality check as its owner.
 *
 * A SECURITY DEFINER function cannot tell who called it: current_user is
 * its owner, session_user is whoever logged in (a superuser that did SET
 * ROLE, or the pg_cron job), and neither is the role whose rights must be
 * checked.  So the privileged steps are split in two:
 *
 *	pipeline.<step>(args)            LANGUAGE c, executable by PUBLIC
 *	pipeline.<step>_as_owner(caller regrole, args)
 *	                                 plpgsql, not executable by PUBLIC
 *
 * The C half reads the real caller (GetUserId(): the role whose rights the
 * call is made with, inside any SECURITY DEFINER function of the caller's
 * too), switches to the extension owner in a security-restricted context
 * and calls the SQL half with the caller as its first argument.  The SQL
 * half checks the caller's rights on every object it touches before it
 * writes anything.  No caller can name another role: the first argument
 * is never theirs to set.
 *
 * Retention runs as the source's owner where it touches the source's own
 * tables (pipeline._retire_day: pipeline_as_source_owner).
 *
 * Checks run as the role that added them (pipeline._evaluate_check): the
 * caller must have that role's privileges already (run_checks only
 * evaluates such checks), so the switch lends nothing; it is restricted,
 * so the check owner's code (a view used as a reference, a domain, a
 * row-level security policy) cannot RESET ROLE to the session's role.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/dependency.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "catalog.h"

/*
 * The SQL half of a step: pipeline.<name><suffix>, taking the step's own
 * argument types (after a regrole, the caller, with_caller), and a member
 * of this extension (never a function someone else put in schema
 * pipeline).
 */
static Oid
HalfOf(Oid self, const char *suffix, bool with_caller)
{
	HeapTuple	proctup = SearchSysCache1(PROCOID, ObjectIdGetDatum(self));
	Form_pg_proc proc;
	Oid			argtypes[FUNC_MAX_ARGS];
	int			lead = with_caller ? 1 : 0;
	char	   *name;
	int			nargs;
	Oid			target;

	if (!HeapTupleIsValid(proctup))
		elog(ERROR, "cache lookup failed for function %u", self);
	proc = (Form_pg_proc) GETSTRUCT(proctup);
	if (proc->pronargs + lead > FUNC_MAX_ARGS)
		elog(ERROR, "too many arguments for a privileged step");
	nargs = proc->pronargs + lead;
	argtypes[0] = REGROLEOID;
	memcpy(argtypes + lead, proc->proargtypes.values, proc->pronargs * sizeof(Oid));
	name = psprintf("%s%s", NameStr(proc->proname), suffix);
	ReleaseSysCache(proctup);

	target = LookupFuncName(list_make2(makeString("pipeline"), makeString(name)),
							nargs, argtypes, false);
	if (getExtensionOfObject(ProcedureRelationId, target) != get_extension_oid("pipeline", false))
		elog(ERROR, "function pipeline.%s is not part of the extension", name);
	return target;
}

/*
 * Calls target with fcinfo's arguments (after the caller's role, when
 * with_caller) as role, restricted; its result is fcinfo's.
 */
static Datum
CallHalfAs(Oid role, Oid target, FunctionCallInfo fcinfo, bool with_caller)
{
	LOCAL_FCINFO(call, FUNC_MAX_ARGS);
	FmgrInfo	flinfo;
	int			lead = with_caller ? 1 : 0;
	RoleSwitch	saved;
	Datum		result;

	fmgr_info(target, &flinfo);
	InitFunctionCallInfoData(*call, &flinfo, PG_NARGS() + lead, fcinfo->fncollation, NULL, NULL);
	call->args[0].value = ObjectIdGetDatum(GetUserId());
	call->args[0].isnull = false;
	for (int i = 0; i < PG_NARGS(); i++)
		call->args[i + lead] = fcinfo->args[i];

	PipelineBecome(role, &saved);
	result = FunctionCallInvoke(call);
	PipelineRestoreRole(&saved);

	fcinfo->isnull = call->isnull;
	return result;
}

/*
 * pipeline.<step>(...): calls pipeline.<step>_as_owner(caller, ...) as the
 * extension owner.  Not strict: NULL arguments are the SQL half's to
 * refuse with a proper message.
 */
PG_FUNCTION_INFO_V1(pipeline_as_extension_owner);
Datum
pipeline_as_extension_owner(PG_FUNCTION_ARGS)
{
	Oid			target = HalfOf(fcinfo->flinfo->fn_oid, "_as_owner", true);

	return CallHalfAs(PipelineExtensionOwner(), target, fcinfo, true);
}

/*
 * pipeline.<step>(source, ...): calls pipeline.<step>_as_source_owner(source,
 * ...) as the owner of the source, restricted.  For the extension owner's
 * own steps (maintain's retention works on tables the source owner owns,
 * and must not run their triggers as the extension owner) and for members
 * of the source's owner, who lend nothing by it.
 */
PG_FUNCTION_INFO_V1(pipeline_as_source_owner);
Datum
pipeline_as_source_owner(PG_FUNCTION_ARGS)
{
	Oid			target = HalfOf(fcinfo->flinfo->fn_oid, "_as_source_owner", false);
	Oid			argtype = TEXTOID;
	Datum		arg;
	Oid			owner;
	bool		isnull;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the source must not be NULL")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	arg = PG_GETARG_DATUM(0);
	if (SPI_execute_with_args("SELECT owner::oid FROM pipeline.source_catalog WHERE source = $1",
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pipeline.source_catalog");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("source \"%s\" does not exist", text_to_cstring(PG_GETARG_TEXT_PP(0)))));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	if (GetUserId() != PipelineExtensionOwner() && !has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", get_func_name(fcinfo->flinfo->fn_oid))));

	return CallHalfAs(owner, target, fcinfo, false);
}

/*
 * pipeline._evaluate_check(check_name, as_of): one evaluation of a check,
 * as its owner: (status, observed, threshold, detail).  Errors are the
 * caller's (run_checks records them as a failed run).
 */
PG_FUNCTION_INFO_V1(pipeline_evaluate_check);
Datum
pipeline_evaluate_check(PG_FUNCTION_ARGS)
{
	Oid			argtypes[2] = {TEXTOID, TIMESTAMPTZOID};
	Datum		args[2];
	TupleDesc	resdesc;
	RoleSwitch	role;
	Oid			owner;
	char	   *kind;
	char	   *check_name;
	bool		isnull;
	Datum		result;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a check evaluation needs a check name and as_of")));
	check_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (get_call_result_type(fcinfo, NULL, &resdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_GETARG_DATUM(1);
	if (SPI_execute_with_args("SELECT c.owner::oid, c.kind, r.oid IS NOT NULL"
							  "  FROM pipeline.checks AS c"
							  "  LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = c.owner"
							  " WHERE c.check_name = $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pipeline.checks");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("check \"%s\" does not exist", check_name)));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("its owner (role %u) no longer exists", owner),
				 errhint("Drop the check: pipeline.drop_check(%s).",
						 quote_literal_cstr(check_name))));
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to run check \"%s\"", check_name),
				 errhint("Checks run as the role that added them: only roles with its privileges run them.")));

	PipelineBecome(owner, &role);
	if (SPI_execute_with_args(psprintf("SELECT r.status, r.observed, r.threshold, r.detail"
									   "  FROM pipeline.checks AS c, pipeline.%s(c, $2) AS r"
									   " WHERE c.check_name = $1",
									   quote_identifier(psprintf("_check_%s", kind))),
							  2, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "evaluation of check \"%s\" failed", check_name);
	PipelineRestoreRole(&role);
	if (SPI_processed != 1)
		elog(ERROR, "check \"%s\" returned no result", check_name);

	/* copied into the caller's context, out of SPI's */
	result = PointerGetDatum(SPI_returntuple(SPI_tuptable->vals[0], resdesc));
	SPI_finish();
	return result;
}
