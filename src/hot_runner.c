/*
 * hot_runner.c
 *	  The database worker's periodic job: fold every metric's new events
 *	  into its hot table (pipeline._fold), one metric at a time.
 *
 * Each metric is its own transaction, run as the metric's owner (never as
 * the worker's superuser), so one failing metric neither stops the others
 * nor leaves partial output: its transaction rolls back, the error is
 * logged and recorded in pipeline.metric_catalog (failures, last_error),
 * and the metric is retried after 2^failures seconds, at most 5 minutes.
 * Exactly-once is _fold's business: the hot rows and the checkpoint commit
 * together, so a worker killed mid-fold loses and doubles nothing.
 *
 * Before the folds, the round summarizes the BRIN ranges written since the
 * last round in the recent partitions of sources that have metrics.  A fold
 * finds a batch's rows through that index, and an unsummarized range must
 * be read whole: without this, every fold would read all pages written
 * since the last VACUUM, a cost growing with the day's partition instead of
 * with the new events.  Each range is summarized once; only the last,
 * still-filling range of a partition stays for the folds to read.  It runs
 * as the worker (the metrics' owners may not own the raw tables).
 *
 * Every transaction starts with SetCurrentStatementStartTimestamp(): a
 * background worker has no client statements, and without it now() would
 * stay at the moment the worker connected (backoff would never expire,
 * hot retention would never move).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "ingest.h"
#include "pipeline.h"

#define MAX_BACKOFF_S 300

typedef struct MetricToFold
{
	char	   *name;
	Oid			owner;
} MetricToFold;

/*
 * The metrics due for a fold now (not backing off), in name order.  Not
 * inlined into PipelineRunHot: its locals must not live across that
 * function's PG_TRY (gcc's -Wclobbered).
 */
static pg_noinline List *
MetricsDue(MemoryContext cxt)
{
	List	   *result = NIL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT metric, owner::oid FROM pipeline.metric_catalog"
					" WHERE failures = 0 OR last_error_at IS NULL"
					" OR last_error_at + pg_catalog.make_interval(secs => "
					"    LEAST(pg_catalog.power(2, failures), " CppAsString2(MAX_BACKOFF_S) "))"
					"    <= pg_catalog.now()"
					" ORDER BY metric", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pipeline.metric_catalog");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		MetricToFold *m = palloc(sizeof(MetricToFold));
		bool		isnull;

		m->name = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		m->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
												  SPI_tuptable->tupdesc, 2, &isnull));
		result = lappend(result, m);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return result;
}

static void
FoldAsOwner(MetricToFold *m)
{
	Oid			save_uid;
	int			save_sec;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	GetUserIdAndSecContext(&save_uid, &save_sec);
	SetUserIdAndSecContext(m->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = CStringGetTextDatum(m->name);
	if (SPI_execute_with_args("SELECT pipeline._fold($1)", 1, argtypes, args, NULL,
							  false, 0) != SPI_OK_SELECT)
		elog(ERROR, "fold of metric \"%s\" failed", m->name);
	SPI_finish();
	SetUserIdAndSecContext(save_uid, save_sec);
	PopActiveSnapshot();
	CommitTransactionCommand();
}

static void
RecordFailure(MetricToFold *m, const char *message)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = CStringGetTextDatum(m->name);
	args[1] = CStringGetTextDatum(message);
	(void) SPI_execute_with_args("UPDATE pipeline.metric_catalog"
								 " SET failures = failures + 1, last_error = $2,"
								 "     last_error_at = pg_catalog.now()"
								 " WHERE metric = $1", 2, argtypes, args, NULL, false, 0);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

static void
SummarizeNewRanges(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT pg_catalog.brin_summarize_new_values(x.indexrelid)"
					"  FROM pipeline.source_catalog AS s"
					"  JOIN pg_catalog.pg_inherits AS i ON i.inhparent = s.raw_table"
					"  JOIN pg_catalog.pg_class AS p ON p.oid = i.inhrelid"
					"  JOIN pg_catalog.pg_index AS x ON x.indrelid = i.inhrelid"
					"  JOIN pg_catalog.pg_class AS ic ON ic.oid = x.indexrelid"
					"  JOIN pg_catalog.pg_am AS am ON am.oid = ic.relam AND am.amname = 'brin'"
					" WHERE EXISTS (SELECT FROM pipeline.metric_catalog AS m WHERE m.source = s.source)"
					/* a filter may run before the join: guard the date parse */
					"   AND CASE WHEN p.relname ~ '_raw_[0-9]{8}(_[0-9]+)?$'"
					"            THEN pg_catalog.to_date(pg_catalog.substring(p.relname, '_raw_([0-9]{8})(?:_[0-9]+)?$'), 'YYYYMMDD')"
					"       END >= CURRENT_DATE - 3",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not summarize BRIN ranges");
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/* one round: every due metric once */
void
PipelineRunHot(void)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "pipeline hot round",
											  ALLOCSET_DEFAULT_SIZES);
	List	   *metrics = MetricsDue(cxt);
	ListCell   *lc;

	if (metrics != NIL)
		SummarizeNewRanges();

	foreach(lc, metrics)
	{
		MetricToFold *m = lfirst(lc);
		MemoryContext old = CurrentMemoryContext;

		CHECK_FOR_INTERRUPTS();
		pgstat_report_activity(STATE_RUNNING, psprintf("pipeline: fold %s", m->name));
		PG_TRY();
		{
			FoldAsOwner(m);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			MemoryContextSwitchTo(old);
			ereport(LOG,
					(errmsg("pipeline: fold of metric \"%s\" failed: %s", m->name, edata->message)));
			RecordFailure(m, edata->message);
			FreeErrorData(edata);
		}
		PG_END_TRY();
	}
	MemoryContextDelete(cxt);
}

/*
 * pipeline.run_hot(metric DEFAULT NULL): the same folds, on demand, in the
 * caller's transaction; each one as the metric's owner, never as the
 * caller (who may be a superuser).
 */
PG_FUNCTION_INFO_V1(pipeline_run_hot);
Datum
pipeline_run_hot(PG_FUNCTION_ARGS)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	char		nulls[1] = {' '};
	int64		total = 0;
	uint64		n;
	MetricToFold *metrics;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	nulls[0] = PG_ARGISNULL(0) ? 'n' : ' ';
	if (SPI_execute_with_args("SELECT metric, owner::oid FROM pipeline.metric_catalog"
							  " WHERE $1 IS NULL OR metric = $1 ORDER BY metric",
							  1, argtypes, args, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pipeline.metric_catalog");
	n = SPI_processed;
	if (n == 0 && !PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("metric \"%s\" does not exist", text_to_cstring(PG_GETARG_TEXT_PP(0))),
				 errhint("Create it with pipeline.create_metric(), or list metrics in pipeline.metrics.")));
	metrics = SPI_palloc(sizeof(MetricToFold) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		metrics[i].name = SPI_palloc(strlen(name) + 1);
		strcpy(metrics[i].name, name);
		metrics[i].owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														  SPI_tuptable->tupdesc, 2, &isnull));
	}
	for (uint64 i = 0; i < n; i++)
	{
		RoleSwitch	role;
		bool		isnull;

		args[0] = CStringGetTextDatum(metrics[i].name);
		PipelineBecome(metrics[i].owner, &role);
		if (SPI_execute_with_args("SELECT pipeline._fold($1)", 1, argtypes, args, NULL,
								  false, 0) != SPI_OK_SELECT)
			elog(ERROR, "fold of metric \"%s\" failed", metrics[i].name);
		total += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		PipelineRestoreRole(&role);
	}
	SPI_finish();
	PG_RETURN_INT64(total);
}
