/*
 * contract.c
 *	  Parsing and checking source contracts (SQL column definitions), and
 *	  creating the partitioned raw table from the checked parse tree.
 *
 * A contract is written as the inside of a CREATE TABLE column list:
 *	  'event_id uuid NOT NULL, event_time timestamptz NOT NULL,
 *	   amount numeric(12,2) CHECK (amount >= 0), currency text DEFAULT ''EUR'''
 * It is parsed with PostgreSQL's own grammar inside a CREATE TABLE wrapper;
 * anything that is not a single CreateStmt made only of plain column
 * definitions (types, NULL/NOT NULL, CHECK, DEFAULT, COLLATE) and table
 * CHECK constraints is refused, with what was refused named.  The table is
 * then created by executing that same parse tree (renamed, with the
 * internal columns added and PARTITION BY set): the user's text is never
 * spliced into another statement.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "utils/acl.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "pipeline.h"

static const char *
ConstraintKindName(ConstrType t)
{
	switch (t)
	{
		case CONSTR_PRIMARY:
			return "PRIMARY KEY";
		case CONSTR_UNIQUE:
			return "UNIQUE";
		case CONSTR_EXCLUSION:
			return "EXCLUDE";
		case CONSTR_FOREIGN:
			return "REFERENCES / FOREIGN KEY";
		case CONSTR_IDENTITY:
			return "GENERATED ... AS IDENTITY";
		case CONSTR_GENERATED:
			return "GENERATED ALWAYS AS";
		default:
			return "this constraint";
	}
}

void
RefuseContract(const char *what, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid source contract: %s", what),
			 detail ? errdetail("%s", detail) : 0,
			 errhint("The contract is a plain column list such as "
					 "'event_id uuid NOT NULL, event_time timestamptz NOT NULL, amount numeric CHECK (amount >= 0)'.")));
}

void
CheckConstraint(Constraint *c, const char *column)
{
	switch (c->contype)
	{
		case CONSTR_NULL:
		case CONSTR_NOTNULL:
		case CONSTR_DEFAULT:
		case CONSTR_CHECK:
		case CONSTR_ATTR_DEFERRABLE:
		case CONSTR_ATTR_NOT_DEFERRABLE:
		case CONSTR_ATTR_DEFERRED:
		case CONSTR_ATTR_IMMEDIATE:
			if (c->contype == CONSTR_CHECK && c->is_no_inherit)
				RefuseContract("NO INHERIT check constraints are not allowed", NULL);
			return;
		default:
			{
				char	   *msg = psprintf("%s is not allowed%s%s",
										   ConstraintKindName(c->contype),
										   column ? " on column " : "",
										   column ? column : "");

				RefuseContract(msg,
							   c->contype == CONSTR_PRIMARY || c->contype == CONSTR_UNIQUE ?
							   "pipeline deduplicates on the event-id column itself." : NULL);
			}
	}
}

typedef struct ParseCall
{
	const char *sql;
	List	   *parsed;
} ParseCall;

static void
ParseStep(void *arg)
{
	ParseCall  *call = arg;

	call->parsed = raw_parser(call->sql, RAW_PARSE_DEFAULT);
}

/*
 * raw_parser() with its syntax errors restated as contract errors: the
 * position it reports is inside our wrapper, not the caller's statement.
 */
List *
ParseOrExplain(const char *sql)
{
	ParseCall	call = {sql, NIL};
	ErrorData  *edata = PipelineCatchError(ParseStep, &call);

	if (edata != NULL)
		RefuseContract(edata->message, NULL);
	return call.parsed;
}

/*
 * Parse the column list and check that it is nothing but columns.  Returns
 * the CreateStmt, ready to be renamed and executed.
 */
static CreateStmt *
ParseContract(const char *columns)
{
	/* newlines keep a trailing "--" comment from swallowing the ")" */
	char	   *sql = psprintf("CREATE TABLE pipeline_contract (\n%s\n)", columns);
	List	   *parsed;
	CreateStmt *stmt;
	ListCell   *lc;

	parsed = ParseOrExplain(sql);
	if (list_length(parsed) != 1)
		RefuseContract("it must be one column list, not several statements", NULL);
	stmt = (CreateStmt *) ((RawStmt *) linitial(parsed))->stmt;
	if (!IsA(stmt, CreateStmt))
		RefuseContract("it is not a column list", NULL);
	if (stmt->inhRelations || stmt->partbound || stmt->partspec || stmt->ofTypename ||
		stmt->options || stmt->oncommit != ONCOMMIT_NOOP || stmt->tablespacename ||
		stmt->accessMethod || stmt->if_not_exists ||
		stmt->relation->relpersistence != RELPERSISTENCE_PERMANENT)
		RefuseContract("table clauses (INHERITS, PARTITION, WITH, TABLESPACE, ...) are not allowed",
					   NULL);
	if (stmt->tableElts == NIL)
		RefuseContract("it has no columns", NULL);

	foreach(lc, stmt->tableElts)
	{
		Node	   *elt = lfirst(lc);

		if (IsA(elt, ColumnDef))
		{
			ColumnDef  *col = (ColumnDef *) elt;
			ListCell   *cc;

			if (strncmp(col->colname, "_pl_", 4) == 0)
				RefuseContract(psprintf("column name \"%s\" is reserved", col->colname),
							   "Names starting with _pl_ are pipeline's own columns.");
			if (col->typeName->setof)
				RefuseContract("SETOF columns are not allowed", NULL);
			foreach(cc, col->constraints)
				CheckConstraint(lfirst_node(Constraint, cc), col->colname);
		}
		else if (IsA(elt, Constraint))
			CheckConstraint((Constraint *) elt, NULL);
		else
			RefuseContract("only column definitions and CHECK constraints are allowed",
						   "LIKE clauses copy definitions from other tables.");
	}
	return stmt;
}

void
ExecuteUtility(Node *stmt, const char *sql)
{
	PlannedStmt *wrapper = makeNode(PlannedStmt);

	wrapper->commandType = CMD_UTILITY;
	wrapper->canSetTag = false;
	wrapper->utilityStmt = stmt;
	wrapper->stmt_location = -1;
	wrapper->stmt_len = -1;
	ProcessUtility(wrapper, sql, false, PROCESS_UTILITY_SUBCOMMAND,
				   NULL, NULL, None_Receiver, NULL);
	CommandCounterIncrement();
}

static void
RequireColumn(Relation rel, const char *name, const char *role, Oid required_type)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), name);
	Oid			typid;

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("the %s column \"%s\" is not in the contract", role, name),
				 errhint("Add it to the column list or name another column as %s.", role)));
	typid = TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid;
	if (OidIsValid(required_type) && typid != required_type)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the %s column \"%s\" must be of type %s, not %s",
						role, name, format_type_be(required_type), format_type_be(typid))));
}

/*
 * pipeline._create_raw_table(source, columns, event_id, event_time)
 *	  Checks the contract and creates pipeline.<source>_raw, partitioned by
 *	  range of the event-time column, owned by the caller.  Returns its oid.
 */
PG_FUNCTION_INFO_V1(pipeline_create_raw_table);
Datum
pipeline_create_raw_table(PG_FUNCTION_ARGS)
{
	char	   *source = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *columns = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *event_id = text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *event_time = text_to_cstring(PG_GETARG_TEXT_PP(3));
	char	   *relname = psprintf("%s_raw", source);
	CreateStmt *stmt = ParseContract(columns);
	PartitionSpec *spec = makeNode(PartitionSpec);
	PartitionElem *elem = makeNode(PartitionElem);
	Oid			relid;
	Relation	rel;
	ListCell   *lc;
	bool		has_time = false;

	/* the partition key must name a column of the contract before we try */
	foreach(lc, stmt->tableElts)
	{
		if (IsA(lfirst(lc), ColumnDef) &&
			strcmp(((ColumnDef *) lfirst(lc))->colname, event_time) == 0)
			has_time = true;
	}
	if (!has_time)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("the event-time column \"%s\" is not in the contract", event_time),
				 errhint("Add it as \"%s timestamptz NOT NULL\" or name another column as event_time.",
						 event_time)));

	stmt->relation = makeRangeVar("pipeline", relname, -1);
	stmt->tableElts = lappend(stmt->tableElts,
							  makeColumnDef("_pl_batch", INT8OID, -1, InvalidOid));
	stmt->tableElts = lappend(stmt->tableElts,
							  makeColumnDef("_pl_extra", JSONBOID, -1, InvalidOid));
	((ColumnDef *) llast(stmt->tableElts))->is_not_null = false;
	((ColumnDef *) list_nth(stmt->tableElts, list_length(stmt->tableElts) - 2))->is_not_null = true;

	elem->name = event_time;
	elem->location = -1;
	spec->strategy = "range";
	spec->partParams = list_make1(elem);
	spec->location = -1;
	stmt->partspec = spec;

	ExecuteUtility((Node *) stmt, "CREATE TABLE (pipeline source contract)");

	relid = get_relname_relid(relname, get_namespace_oid("pipeline", false));
	rel = table_open(relid, AccessShareLock);
	RequireColumn(rel, event_time, "event_time", TIMESTAMPTZOID);
	RequireColumn(rel, event_id, "event_id", InvalidOid);
	table_close(rel, AccessShareLock);

	PG_RETURN_OID(relid);
}

/*
 * pipeline._depend_on_extension(rel)
 *	  Records that a source's table depends on the extension (a normal
 *	  dependency, not membership: pg_dump still dumps its data).  So
 *	  DROP EXTENSION refuses while sources exist, and CASCADE drops them,
 *	  as with any other dependent object.
 */
PG_FUNCTION_INFO_V1(pipeline_depend_on_extension);
Datum
pipeline_depend_on_extension(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	ObjectAddress rel;
	ObjectAddress ext;

	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));
	ObjectAddressSet(rel, RelationRelationId, relid);
	ObjectAddressSet(ext, ExtensionRelationId, get_extension_oid("pipeline", false));
	recordDependencyOn(&rel, &ext, DEPENDENCY_NORMAL);
	PG_RETURN_VOID();
}
