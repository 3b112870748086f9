/*
 * daily_entry.c
 *	  The entry points of the daily layer that must know who really called:
 *	  pipeline.close_days() and pipeline.restate_day().
 *
 * The daily and correction tables belong to the extension owner, so that
 * no role, not even a metric's owner, can update or delete a frozen row by
 * hand.  Their writers, pipeline._close_days() and pipeline._restate_day(),
 * are therefore run as the extension owner and are not executable by
 * PUBLIC.  A SECURITY DEFINER function cannot tell who called it, so these
 * C functions check the real caller first and then switch:
 *	- close_days(as_of): anyone may close days up to now; a clock in the
 *	  future (tests, backfills that simulate time) needs a superuser, since
 *	  freezing a day early could only be undone by an audited restatement;
 *	- restate_day(metric, day, reason) and release_day(metric, day, reason):
 *	  members of the metric's owner only; the caller's name goes into the
 *	  history.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "pipeline.h"

PG_FUNCTION_INFO_V1(pipeline_close_days);
Datum
pipeline_close_days(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz as_of = PG_ARGISNULL(0) ? GetCurrentTransactionStartTimestamp()
		: PG_GETARG_TIMESTAMPTZ(0);
	Oid			argtypes[1] = {TIMESTAMPTZOID};
	Datum		args[1];
	RoleSwitch	role;
	MemoryContext outer = CurrentMemoryContext;

	/* a second of slack: now() of a caller and of the check may differ */
	if (as_of > TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000) && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only superusers may close days with a clock in the future"),
				 errdetail("as_of is %s.", timestamptz_to_str(as_of)),
				 errhint("Call pipeline.close_days() without as_of, or with a time already past.")));

	InitMaterializedSRF(fcinfo, 0);
	PipelineCheckRestored();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = TimestampTzGetDatum(as_of);
	PipelineBecome(PipelineExtensionOwner(), &role);
	if (SPI_execute_with_args("SELECT metric, day, action FROM pipeline._close_days($1)",
							  1, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pipeline._close_days failed");
	PipelineRestoreRole(&role);

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		values[3];
		bool		nulls[3];
		MemoryContext old = MemoryContextSwitchTo(outer);

		for (int c = 0; c < 3; c++)
			values[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1, &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * Checks the caller may act for the metric (a member of its owner), then
 * runs one internal function as the extension owner: sql takes the
 * metric, the day, the reason and the caller's name.  Returns the first
 * column of its result.
 */
static Datum
RunAsOwnerOfMetric(FunctionCallInfo fcinfo, const char *fname, const char *verb, const char *sql)
{
	Oid			argtypes[4] = {TEXTOID, DATEOID, TEXTOID, TEXTOID};
	Datum		args[4];
	Oid			owner_arg[1] = {TEXTOID};
	RoleSwitch	role;
	Oid			owner;
	bool		isnull;
	char	   *metric;
	Datum		result;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) ||
		strlen(text_to_cstring(PG_GETARG_TEXT_PP(2))) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s needs a metric, a day and a reason", fname),
				 errhint("The reason is kept in the day's history for auditors.")));
	metric = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PipelineCheckRestored();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = PG_GETARG_DATUM(0);
	if (SPI_execute_with_args("SELECT owner::oid FROM pipeline.metrics WHERE metric = $1",
							  1, owner_arg, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pipeline.metric_catalog");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("metric \"%s\" does not exist", metric),
				 errhint("List metrics in pipeline.metrics.")));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s metric \"%s\"", verb, metric),
				 errhint("Only members of the metric's owner, %s, may %s its days.",
						 GetUserNameFromId(owner, false), verb)));

	args[1] = PG_GETARG_DATUM(1);
	args[2] = PG_GETARG_DATUM(2);
	args[3] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
	PipelineBecome(PipelineExtensionOwner(), &role);
	if (SPI_execute_with_args(sql, 4, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "%s failed", sql);
	PipelineRestoreRole(&role);
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	SPI_finish();
	return result;
}

PG_FUNCTION_INFO_V1(pipeline_restate_day);
Datum
pipeline_restate_day(PG_FUNCTION_ARGS)
{
	Datum		version = RunAsOwnerOfMetric(fcinfo, "restate_day", "restate",
											 "SELECT pipeline._restate_day($1, $2, $3, $4)");

	PG_RETURN_INT64((int64) DatumGetInt32(version));
}

PG_FUNCTION_INFO_V1(pipeline_release_day);
Datum
pipeline_release_day(PG_FUNCTION_ARGS)
{
	(void) RunAsOwnerOfMetric(fcinfo, "release_day", "release",
							  "SELECT pipeline._release_day($1, $2, $3, $4)");
	PG_RETURN_VOID();
}
