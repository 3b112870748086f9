/*
 * restore.c
 *	  Noticing that this database was restored into another cluster, and
 *	  re-basing its receipts and snapshots before anything uses them.
 *
 * The why and the how of the re-base are at the top of
 * src/sql/67_restore.sql.  Here: PipelineCheckRestored(), called first by
 * every step that reads or writes receipts against the recorded snapshots
 * (ingest's receipt, run_hot and the worker's folds, close_days,
 * restate_day and release_day, maintain), compares the cluster recorded in
 * pipeline.cluster_identity with the running one, once per backend, and
 * on a difference runs the re-base as the extension owner.
 *
 * A re-base needs one transaction id per class of receipt ids below every
 * transaction running: a young cluster (just initdb'd and restored into)
 * may not have given out that many yet.  A backend then stops with an
 * error that asks to retry, and the database's worker, which can run
 * transactions of its own, uses up the ids missing (each an empty
 * transaction) and re-bases; a retry a few seconds later goes through.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "pipeline.h"

/* this backend has seen the recorded cluster be the running one */
static bool verified = false;
/* ... and it was this transaction that made it so: undone if it aborts */
static bool verified_by_this_xact = false;
static bool callback_registered = false;

static void
ForgetOnAbort(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		if (verified_by_this_xact)
			verified = false;
		verified_by_this_xact = false;
	}
	else if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
			 event == XACT_EVENT_PREPARE)
		verified_by_this_xact = false;
}

PG_FUNCTION_INFO_V1(pipeline_system_identifier);
Datum
pipeline_system_identifier(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64((int64) GetSystemIdentifier());
}

/*
 * Runs _rebase_after_restore as the extension owner.  True when the
 * recorded cluster is (now) the running one; false, with the number of
 * transaction ids it still needs in *missing, when the cluster has not
 * given out enough yet.
 */
static bool
Rebase(int64 *missing)
{
	Oid			argtype = INT8OID;
	Datum		arg = Int64GetDatum((int64) GetSystemIdentifier());
	RoleSwitch	role;
	bool		isnull;
	int64		result;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PipelineBecome(PipelineExtensionOwner(), &role);
	if (SPI_execute_with_args("SELECT pipeline._rebase_after_restore($1)", 1, &argtype, &arg,
							  NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "pipeline._rebase_after_restore failed");
	PipelineRestoreRole(&role);
	result = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	*missing = result < 0 ? -result : 0;
	return result >= 0;
}

/* the recorded cluster is the running one (false also when none is recorded) */
static bool
RecordedIsRunning(void)
{
	bool		same = false;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT system_identifier FROM pipeline.cluster_identity", true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool		isnull;
		int64		recorded = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 1, &isnull));

		same = !isnull && recorded == (int64) GetSystemIdentifier();
	}
	SPI_finish();
	return same;
}

/*
 * In a transaction: true when the receipts and snapshots are in the running
 * cluster's numbers, re-basing them first if needed; false (and how many
 * transaction ids are missing) when the re-base must wait for the worker.
 */
static bool
TryRebase(int64 *missing)
{
	*missing = 0;
	if (verified)
		return true;
	/* before ALTER EXTENSION ... UPDATE made the table: nothing recorded */
	if (!OidIsValid(get_relname_relid("cluster_identity", get_namespace_oid("pipeline", false))))
		return true;
	if (!callback_registered)
	{
		RegisterXactCallback(ForgetOnAbort, NULL);
		callback_registered = true;
	}
	if (RecordedIsRunning())
	{
		verified = true;
		return true;
	}
	if (!Rebase(missing))
		return false;
	verified = true;
	verified_by_this_xact = true;
	return true;
}

/*
 * In a transaction.  Returns quietly when the receipts and snapshots are in
 * the running cluster's numbers (re-basing them first if needed); an
 * error when that needs the worker first.
 */
void
PipelineCheckRestored(void)
{
	int64		missing;

	if (!TryRebase(&missing))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this database was restored from another cluster, and pipeline is re-basing its receipts"),
				 errdetail("The fold checkpoints and freeze snapshots are numbered in the old cluster's transaction ids; "
						   "re-basing them needs %lld more transaction ids than this cluster has given out.",
						   (long long) missing),
				 errhint("Retry in a few seconds: the database's pipeline worker finishes the re-base.")));
}

PG_FUNCTION_INFO_V1(pipeline_check_restored);
Datum
pipeline_check_restored(PG_FUNCTION_ARGS)
{
	PipelineCheckRestored();
	PG_RETURN_VOID();
}

/* one transaction of the worker's: TryRebase */
static bool
TryRebaseInTransaction(int64 *missing)
{
	bool		done;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	done = TryRebase(missing);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return done;
}

/*
 * The worker's part, outside any transaction: when a re-base lacks
 * transaction ids, use them up (empty transactions, without waiting for
 * their commit records to be flushed) and re-base.  False while it could
 * not: the round must not fold.
 */
bool
PipelineRebaseInWorker(void)
{
	int64		missing;

	if (TryRebaseInTransaction(&missing))
		return true;
	ereport(LOG,
			(errmsg("pipeline: re-basing a database restored from another cluster needs %lld more transaction ids; using them up",
					(long long) missing)));
	SetConfigOption("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION);
	for (int64 i = 0; i < missing; i++)
	{
		CHECK_FOR_INTERRUPTS();
		StartTransactionCommand();
		(void) GetTopTransactionId();
		CommitTransactionCommand();
	}
	SetConfigOption("synchronous_commit", "on", PGC_USERSET, PGC_S_SESSION);
	if (TryRebaseInTransaction(&missing))
		return true;
	ereport(LOG,
			(errmsg("pipeline: re-base still needs %lld transaction ids (a long transaction holds the horizon back); next round",
					(long long) missing)));
	return false;
}
