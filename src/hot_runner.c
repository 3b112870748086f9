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
 * still-filling range of a partition stays for the folds to read.  The
 * worker does it as itself (the metrics' owners may not own the raw
 * tables); run_hot() does the same before its folds, as each source's
 * owner, so that folds called by hand or by a job do not pay for the
 * ranges autovacuum has not yet reached either.
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
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "catalog.h"
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

typedef struct FoldCall
{
	MetricToFold *metric;
	int64		folded;
} FoldCall;

/*
 * One metric's fold, as the metric's owner (restricted: nothing the owner's
 * code sets outlives it), in the current transaction; SPI connected.
 */
static void
FoldStep(void *arg)
{
	FoldCall   *call = arg;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	RoleSwitch	role;
	bool		isnull;
	bool		was_running;

	args[0] = CStringGetTextDatum(call->metric->name);
	PipelineBecome(call->metric->owner, &role);
	/* a distributed source's fold may recover half-way commits (scale_out.c) */
	was_running = PipelineSetFoldRunning(true);
	PG_TRY();
	{
		if (SPI_execute_with_args("SELECT pipeline._fold($1)", 1, argtypes, args, NULL,
								  false, 0) != SPI_OK_SELECT)
			elog(ERROR, "fold of metric \"%s\" failed", call->metric->name);
	}
	PG_FINALLY();
	{
		PipelineSetFoldRunning(was_running);
	}
	PG_END_TRY();
	call->folded = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	PipelineRestoreRole(&role);
}

/* the worker's fold of one metric: its own transaction */
static void
FoldAsOwner(MetricToFold *m)
{
	FoldCall	call = {m, 0};

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	FoldStep(&call);
	SPI_finish();
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

/* one BRIN index on _pl_batch to summarize, with its heap and its source's owner */
typedef struct BrinToSummarize
{
	Oid			index;
	Oid			heap;
	Oid			owner;
} BrinToSummarize;

/*
 * The BRIN indexes whose new ranges a fold is about to read: the
 * pipeline's own index on _pl_batch of each recent day partition of the
 * sources with metrics (with metric not NULL, of that metric's source
 * only).  SPI must be connected; the list is made in cxt.
 */
static List *
ListBrinToSummarize(Datum metric, bool metric_null, MemoryContext cxt)
{
	Oid			argtypes[1] = {TEXTOID};
	char		nulls[1] = {metric_null ? 'n' : ' '};
	List	   *result = NIL;

	if (SPI_execute_with_args("SELECT x.indexrelid, x.indrelid, s.owner::oid"
							  "  FROM pipeline.source_catalog AS s"
							  "  JOIN pg_catalog.pg_inherits AS i ON i.inhparent = s.raw_table"
							  "  JOIN pg_catalog.pg_class AS p ON p.oid = i.inhrelid"
							  "  JOIN pg_catalog.pg_index AS x ON x.indrelid = i.inhrelid"
							  "  JOIN pg_catalog.pg_class AS ic ON ic.oid = x.indexrelid"
							  "  JOIN pg_catalog.pg_am AS am ON am.oid = ic.relam AND am.amname = 'brin'"
	/*
	 * only the pipeline's own index on _pl_batch: an index a source owner
	 * added (an expression that raises, say) is theirs to summarize, and
	 * must not stall every fold
	 */
							  "  JOIN pg_catalog.pg_attribute AS a ON a.attrelid = x.indrelid"
							  "   AND a.attnum = x.indkey[0] AND a.attname = '_pl_batch'"
							  " WHERE x.indnatts = 1 AND x.indexprs IS NULL AND x.indpred IS NULL"
							  "   AND EXISTS (SELECT FROM pipeline.metric_catalog AS m"
							  "                WHERE m.source = s.source AND ($1 IS NULL OR m.metric = $1))"
	/* a filter may run before the join: guard the date parse */
							  "   AND CASE WHEN p.relname ~ '_raw_[0-9]{8}(_[0-9]+)?$'"
							  "            THEN pg_catalog.to_date(pg_catalog.substring(p.relname, '_raw_([0-9]{8})(?:_[0-9]+)?$'), 'YYYYMMDD')"
							  "       END >= CURRENT_DATE - 3",
							  1, argtypes, &metric, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list the BRIN indexes to summarize");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		BrinToSummarize *b = palloc(sizeof(BrinToSummarize));
		bool		isnull;

		b->index = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		b->heap = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		b->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull));
		result = lappend(result, b);
		MemoryContextSwitchTo(old);
	}
	return result;
}

/*
 * Summarizes one index's ranges filled since it was last summarized, if
 * its heap and it can be locked at once.  Summarizing needs SHARE UPDATE
 * EXCLUSIVE, which (auto)vacuum holds for as long as it runs.  Waiting
 * would stall every fold behind a vacuum (and get autovacuum cancelled,
 * or, for an anti-wraparound one, stall for its whole length); a
 * partition being vacuumed is simply summarized next time.
 *
 * The locks go as soon as the summarizing is done, not at commit: the
 * summaries are written to the index at once, and autovacuum skips a
 * table it cannot lock at once, so holding them through the folds that
 * follow (run_hot()'s, in the same transaction) kept it from analyzing
 * partitions that are being folded back to back.
 */
static void
SummarizeIfFree(BrinToSummarize *b)
{
	/* in the order brin_summarize_range takes them: heap, then index */
	if (!ConditionalLockRelationOid(b->heap, ShareUpdateExclusiveLock))
		return;
	if (ConditionalLockRelationOid(b->index, ShareUpdateExclusiveLock))
	{
		if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(b->index)))
			(void) DirectFunctionCall1(brin_summarize_new_values, ObjectIdGetDatum(b->index));
		UnlockRelationOid(b->index, ShareUpdateExclusiveLock);
	}
	UnlockRelationOid(b->heap, ShareUpdateExclusiveLock);
}

/*
 * The worker's round: summarize the BRIN ranges filled since the last
 * round, so that the folds find a batch's rows through the index instead
 * of reading every unsummarized page.  One short transaction each, as
 * the worker.
 */
static void
SummarizeNewRanges(void)
{
	MemoryContext outer = CurrentMemoryContext;
	List	   *indexes;
	ListCell   *lc;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	indexes = ListBrinToSummarize((Datum) 0, true, outer);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(outer);

	foreach(lc, indexes)
	{
		CHECK_FOR_INTERRUPTS();
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		SummarizeIfFree(lfirst(lc));
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(outer);
	}
	list_free_deep(indexes);
}

/*
 * run_hot()'s summarizing, in the caller's transaction: as each source's
 * owner (who owns the index; the caller may own nothing of it), in the
 * restricted context.
 */
static void
SummarizeBeforeFolds(Datum metric, bool metric_null)
{
	List	   *indexes;
	ListCell   *lc;
	RoleSwitch	role;

	PipelineBecome(PipelineExtensionOwner(), &role);
	indexes = ListBrinToSummarize(metric, metric_null, CurrentMemoryContext);
	PipelineRestoreRole(&role);
	foreach(lc, indexes)
	{
		BrinToSummarize *b = lfirst(lc);

		PipelineBecome(b->owner, &role);
		SummarizeIfFree(b);
		PipelineRestoreRole(&role);
	}
	list_free_deep(indexes);
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
	RoleSwitch	role;
	int			rc;

	PipelineCheckRestored();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	nulls[0] = PG_ARGISNULL(0) ? 'n' : ' ';
	/*
	 * every metric, whoever calls (each folds as its owner): the catalog is
	 * read as the extension owner, whose view of it row security does not
	 * narrow to the caller's metrics
	 */
	PipelineBecome(PipelineExtensionOwner(), &role);
	rc = SPI_execute_with_args("SELECT metric, owner::oid FROM pipeline.metric_catalog"
							   " WHERE $1 IS NULL OR metric = $1 ORDER BY metric",
							   1, argtypes, args, nulls, true, 0);
	PipelineRestoreRole(&role);
	if (rc != SPI_OK_SELECT)
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
	if (n > 0)
		SummarizeBeforeFolds(args[0], PG_ARGISNULL(0));
	for (uint64 i = 0; i < n; i++)
	{
		FoldCall	call = {&metrics[i], 0};

		if (!PG_ARGISNULL(0))
		{
			FoldStep(&call);	/* the metric asked for: its error is the caller's */
			total += call.folded;
		}
		else
		{
			/* all metrics: one that fails is reported, the others fold */
			ErrorData  *edata = PipelineCatchError(FoldStep, &call);

			if (edata != NULL)
				ereport(WARNING,
						(errmsg("pipeline: fold of metric \"%s\" failed: %s", metrics[i].name, edata->message),
						 errhint("The other metrics were folded; run pipeline.run_hot('%s') to see the error.",
								 metrics[i].name)));
			else
				total += call.folded;
		}
	}
	SPI_finish();
	PG_RETURN_INT64(total);
}
