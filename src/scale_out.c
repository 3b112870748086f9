/*
 * scale_out.c
 *	  What a source distributed by Citus needs from the C side.
 *
 * Citus commits a transaction that wrote to several workers in two
 * phases: the workers PREPARE, the coordinator commits locally, and only
 * then, from its commit callback, does it send COMMIT PREPARED to each
 * worker.  In between, the batch's receipt (a coordinator table) is
 * committed and visible while its raw rows (on the workers) are not yet.
 * A fold, freeze or correction that took its snapshot in that window and
 * read the workers at once would record the batch as seen without having
 * seen its rows.
 *
 * The window closes before the committing backend releases its locks:
 * commit callbacks run before the resource owner lets go of them, the
 * lock on the transaction's own id included.  So waiting for the id lock
 * of every transaction that is committed but still holds it is waiting
 * for exactly the commits still being finished on the workers.  The
 * layers call pipeline._await_commits() after taking their snapshot and
 * before their first read of a distributed table; they read only the
 * batches that snapshot sees, by batch id, so that a batch committing
 * after it is left for the next round whatever the workers show.
 *
 * A commit can also stop half-way: the coordinator committed, and its
 * COMMIT PREPARED never reached a worker (the worker, the connection or
 * the coordinator lost in between).  The worker's part then stays
 * prepared until Citus's recovery commits it, from its maintenance daemon
 * every citus.recover_2pc_interval.  So after the wait, the same call
 * runs that recovery itself (recover_prepared_transactions(), as the
 * extension owner: Citus lets only superusers run it): whatever batch the
 * snapshot sees has then committed on every worker.  It is what the
 * daemon does (it commits the prepared transactions whose coordinator
 * transaction committed, and aborts those whose did not); it takes no
 * lock that writes wait for, and costs a round trip to each worker.
 *
 * Any role may call pipeline._await_commits(): the fold runs it as the
 * metric's owner, whoever that is.  So the recovery is done as the
 * extension owner only for the fold (hot_runner.c says when one is
 * running) and for callers who may run it anyway (the extension owner,
 * whose close_days and restate_day steps call it, and superusers).  Any
 * other caller only waits: a superuser's maintenance step is not to be had
 * by calling an internal function in a loop.
 */
#include "postgres.h"

#include "access/transam.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/lsyscache.h"

#include "catalog.h"
#include "pipeline.h"

PG_FUNCTION_INFO_V1(pipeline_await_commits);

/* whether a fold is running a metric's _fold() in this backend */
static bool fold_running = false;

/*
 * The fold (hot_runner.c) says when it starts and ends running _fold();
 * returns what it was, for the caller to put back.
 */
bool
PipelineSetFoldRunning(bool running)
{
	bool		was = fold_running;

	fold_running = running;
	return was;
}

/* whether Citus is installed in this database (its catalog is there) */
bool
PipelineCitusInstalled(void)
{
	return OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE));
}

/* commits what a lost COMMIT PREPARED left prepared on the workers */
static void
RecoverHalfCommits(void)
{
	RoleSwitch	role;

	if (!PipelineCitusInstalled())
		return;
	if (!fold_running && GetUserId() != PipelineExtensionOwner() && !superuser())
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PipelineBecome(PipelineExtensionOwner(), &role);
	if (SPI_execute("SELECT pg_catalog.recover_prepared_transactions()", false, 1) != SPI_OK_SELECT)
		elog(ERROR, "recover_prepared_transactions() failed");
	PipelineRestoreRole(&role);
	SPI_finish();
}

/*
 * Waits until no other transaction that has committed still holds the
 * lock on its transaction id (is still in its commit callbacks), then
 * commits what a lost COMMIT PREPARED left behind; returns how many
 * transactions it waited for.
 */
Datum
pipeline_await_commits(PG_FUNCTION_ARGS)
{
	LockData   *locks = GetLockStatusData();
	TransactionId *xids = palloc(sizeof(TransactionId) * Max(locks->nelements, 1));
	int			n = 0;
	int			waited = 0;

	for (int i = 0; i < locks->nelements; i++)
	{
		LockInstanceData *l = &locks->locks[i];
		TransactionId xid = (TransactionId) l->locktag.locktag_field1;

		if (l->locktag.locktag_type != LOCKTAG_TRANSACTION ||
			!(l->holdMask & LOCKBIT_ON(ExclusiveLock)) ||
			l->pid == MyProcPid || !TransactionIdIsNormal(xid))
			continue;
		xids[n++] = xid;
	}
	/* the lock table was copied: the waits hold none of its locks */
	for (int i = 0; i < n; i++)
	{
		if (TransactionIdDidCommit(xids[i]))
		{
			XactLockTableWait(xids[i], NULL, NULL, XLTW_None);
			waited++;
		}
	}
	RecoverHalfCommits();
	PG_RETURN_INT32(waited);
}
