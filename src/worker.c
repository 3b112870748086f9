/*
 * worker.c
 *	  The launcher and the per-database workers.
 *
 * One static "pipeline launcher" is registered at server start.  It connects
 * to no database (it reads only the shared catalog pg_database) and starts
 * one dynamic "pipeline worker" per connectable database.  A worker checks
 * whether the extension is installed in its database: if not, it marks its
 * slot ABSENT and exits, and the launcher probes that database again only
 * after ABSENT_RECHECK_MS or when CREATE EXTENSION commits there (the install
 * script calls pipeline._wake_launcher(), which signals at commit).  If it
 * is installed, the worker stays and does the database's periodic work every
 * pipeline.hot_interval.
 *
 * State lives in one shared array of slots, one per database, protected by
 * PipelineShared->lock.  Invariants:
 *	- at most one live worker per database: a worker claims its slot at
 *	  start and exits if another live process already holds it;
 *	- a slot's pid is cleared by its worker on exit (before_shmem_exit), so
 *	  a worker killed with kill -9 leaves a stale pid, but that takes the
 *	  postmaster through crash recovery, which reinitialises shared memory;
 *	- the launcher is the only process that starts workers, and after a
 *	  crash restart it starts them all again.
 *
 * A connected worker would block DROP DATABASE ("being accessed by other
 * users"), so a ProcessUtility hook stops the database's worker first and
 * holds its slot STOPPING for a while so the launcher does not restart it.
 */
#include "postgres.h"

#include <signal.h>
#include <unistd.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pipeline.h"

/* how long a database without the extension is left alone */
#define ABSENT_RECHECK_MS	(5 * 60 * 1000)
/* how long a database being dropped is left alone */
#define STOPPING_HOLD_MS	(60 * 1000)
/* how long DROP DATABASE waits for the worker to go */
#define STOP_WAIT_MS		(10 * 1000)

typedef enum SlotState
{
	SLOT_FREE = 0,
	SLOT_STARTING,				/* registered by the launcher */
	SLOT_RUNNING,				/* claimed by a worker */
	SLOT_ABSENT,				/* extension not installed there */
	SLOT_STOPPING,				/* database being dropped */
	SLOT_EXITED					/* worker ended; restarted after a pause */
} SlotState;

static const char *const SlotStateNames[] = {
	"free", "starting", "running", "absent", "stopping", "exited"
};

typedef struct DatabaseSlot
{
	Oid			dboid;
	pid_t		pid;
	SlotState	state;
	bool		recheck;		/* CREATE EXTENSION committed: probe now */
	TimestampTz since;			/* when state was entered */
	TimestampTz last_tick;		/* last time the worker finished its work */
} DatabaseSlot;

typedef struct PipelineShared
{
	LWLock	   *lock;
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	TimestampTz launcher_started;
	int			nslots;
	DatabaseSlot slots[FLEXIBLE_ARRAY_MEMBER];
} PipelineShared;

static PipelineShared *Shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* set by pipeline._wake_launcher(); acted on at commit */
static bool wake_at_commit = false;

PGDLLEXPORT void pipeline_launcher_main(Datum arg);
PGDLLEXPORT void pipeline_worker_main(Datum arg);

static int
SlotCount(void)
{
	/* a worker per database can never exceed the worker process limit */
	return max_worker_processes;
}

static Size
SharedSize(void)
{
	return add_size(offsetof(PipelineShared, slots),
					mul_size(SlotCount(), sizeof(DatabaseSlot)));
}

static void
pipeline_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(SharedSize());
	RequestNamedLWLockTranche("pipeline", 1);
}

static void
pipeline_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Shared = ShmemInitStruct("pipeline", SharedSize(), &found);
	if (!found)
	{
		memset(Shared, 0, SharedSize());
		Shared->lock = &(GetNamedLWLockTranche("pipeline"))->lock;
		Shared->nslots = SlotCount();
	}
	LWLockRelease(AddinShmemInitLock);
}

void
PipelineShmemRequest(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pipeline_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pipeline_shmem_startup;
}

/* caller holds Shared->lock */
static DatabaseSlot *
FindSlot(Oid dboid, bool allocate)
{
	DatabaseSlot *free_slot = NULL;

	for (int i = 0; i < Shared->nslots; i++)
	{
		DatabaseSlot *slot = &Shared->slots[i];

		if (slot->state != SLOT_FREE && slot->dboid == dboid)
			return slot;
		if (slot->state == SLOT_FREE && free_slot == NULL)
			free_slot = slot;
	}
	if (allocate && free_slot != NULL)
	{
		memset(free_slot, 0, sizeof(DatabaseSlot));
		free_slot->dboid = dboid;
		free_slot->state = SLOT_STARTING;
		free_slot->since = GetCurrentTimestamp();
	}
	return allocate ? free_slot : NULL;
}

static void
SetSlotState(DatabaseSlot *slot, SlotState state)
{
	slot->state = state;
	slot->since = GetCurrentTimestamp();
}

/* ---------------------------------------------------------------------
 * Launcher
 * ---------------------------------------------------------------------
 */

/* launcher-local: the handle of the worker started for each slot */
static BackgroundWorkerHandle **slot_handles = NULL;

static bool
HandleAlive(int i)
{
	pid_t		pid;
	BgwHandleStatus status;

	if (slot_handles[i] == NULL)
		return false;
	status = GetBackgroundWorkerPid(slot_handles[i], &pid);
	if (status == BGWH_STARTED || status == BGWH_NOT_YET_STARTED)
		return true;
	pfree(slot_handles[i]);
	slot_handles[i] = NULL;
	return false;
}

static bool
StartDatabaseWorker(Oid dboid, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts it */
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pipeline");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "pipeline_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pipeline worker for database %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "pipeline worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;

	return RegisterDynamicBackgroundWorker(&worker, handle);
}

/* the connectable, non-template databases, read from the shared catalog */
static List *
ListDatabases(void)
{
	List	   *result = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext outer = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;

		if (!db->datallowconn || db->datistemplate)
			continue;
		old = MemoryContextSwitchTo(outer);
		result = lappend_oid(result, db->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return result;
}

static void
LauncherScan(MemoryContext scratch)
{
	List	   *databases;
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext old = MemoryContextSwitchTo(scratch);

	databases = ListDatabases();

	LWLockAcquire(Shared->lock, LW_EXCLUSIVE);

	/* forget databases that were dropped */
	for (int i = 0; i < Shared->nslots; i++)
	{
		DatabaseSlot *slot = &Shared->slots[i];

		if (slot->state != SLOT_FREE && !list_member_oid(databases, slot->dboid)
			&& !HandleAlive(i))
			memset(slot, 0, sizeof(DatabaseSlot));
	}

	for (int n = 0; n < list_length(databases); n++)
	{
		Oid			dboid = list_nth_oid(databases, n);
		DatabaseSlot *slot = FindSlot(dboid, false);
		int			i;

		if (slot == NULL)
		{
			slot = FindSlot(dboid, true);
			if (slot == NULL)
			{
				ereport(LOG,
						(errmsg("pipeline launcher: no free slot for database %u", dboid),
						 errhint("Raise max_worker_processes.")));
				continue;
			}
		}
		i = slot - Shared->slots;

		if (HandleAlive(i))
			continue;
		if (slot->state == SLOT_ABSENT && !slot->recheck &&
			!TimestampDifferenceExceeds(slot->since, now, ABSENT_RECHECK_MS))
			continue;
		if (slot->state == SLOT_STOPPING &&
			!TimestampDifferenceExceeds(slot->since, now, STOPPING_HOLD_MS))
			continue;
		/* back off: a worker that keeps failing is not restarted in a loop */
		if (slot->state == SLOT_EXITED &&
			!TimestampDifferenceExceeds(slot->since, now,
										pipeline_launcher_interval_s * 1000))
			continue;

		slot->recheck = false;
		slot->pid = 0;
		SetSlotState(slot, SLOT_STARTING);
		{
			MemoryContext top = MemoryContextSwitchTo(TopMemoryContext);

			if (!StartDatabaseWorker(dboid, &slot_handles[i]))
			{
				slot_handles[i] = NULL;
				SetSlotState(slot, SLOT_ABSENT);
				ereport(LOG,
						(errmsg("pipeline launcher: could not start a worker for database %u", dboid),
						 errhint("Raise max_worker_processes; pg_cron and parallel queries use worker slots too.")));
			}
			MemoryContextSwitchTo(top);
		}
	}

	LWLockRelease(Shared->lock);
	MemoryContextSwitchTo(old);
	MemoryContextReset(scratch);
}

void
pipeline_launcher_main(Datum arg)
{
	MemoryContext scratch;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* no database: only shared catalogs are read */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("pipeline launcher");

	LWLockAcquire(Shared->lock, LW_EXCLUSIVE);
	if (Shared->launcher_pid != 0 && Shared->launcher_pid != MyProcPid &&
		kill(Shared->launcher_pid, 0) == 0)
	{
		LWLockRelease(Shared->lock);
		ereport(LOG, (errmsg("pipeline launcher already running with pid %d",
							 (int) Shared->launcher_pid)));
		proc_exit(0);
	}
	Shared->launcher_pid = MyProcPid;
	Shared->launcher_latch = MyLatch;
	Shared->launcher_started = GetCurrentTimestamp();
	LWLockRelease(Shared->lock);

	slot_handles = MemoryContextAllocZero(TopMemoryContext,
										  sizeof(BackgroundWorkerHandle *) * Shared->nslots);
	scratch = AllocSetContextCreate(TopMemoryContext, "pipeline launcher scan",
									ALLOCSET_DEFAULT_SIZES);

	ereport(LOG, (errmsg("pipeline launcher started")));

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		LauncherScan(scratch);

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 pipeline_launcher_interval_s * 1000L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

void
PipelineRegisterLauncher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pipeline");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "pipeline_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pipeline launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "pipeline launcher");
	RegisterBackgroundWorker(&worker);
}

/* ---------------------------------------------------------------------
 * Per-database worker
 * ---------------------------------------------------------------------
 */

static void
ReleaseSlot(int code, Datum arg)
{
	DatabaseSlot *slot;

	LWLockAcquire(Shared->lock, LW_EXCLUSIVE);
	slot = FindSlot(DatumGetObjectId(arg), false);
	if (slot != NULL && slot->pid == MyProcPid)
	{
		slot->pid = 0;
		if (slot->state == SLOT_RUNNING)
			SetSlotState(slot, SLOT_EXITED);	/* the launcher restarts it */
	}
	LWLockRelease(Shared->lock);
}

/* take the database's slot; false if another live worker holds it */
static bool
ClaimSlot(Oid dboid)
{
	DatabaseSlot *slot;
	bool		ok = true;

	LWLockAcquire(Shared->lock, LW_EXCLUSIVE);
	slot = FindSlot(dboid, true);
	if (slot == NULL)
		ok = false;
	else if (slot->pid != 0 && slot->pid != MyProcPid && kill(slot->pid, 0) == 0)
		ok = false;
	else if (slot->state == SLOT_STOPPING)
		ok = false;
	else
	{
		slot->pid = MyProcPid;
		SetSlotState(slot, SLOT_RUNNING);
	}
	LWLockRelease(Shared->lock);
	return ok;
}

static void
MarkSlot(Oid dboid, SlotState state, bool tick)
{
	DatabaseSlot *slot;

	LWLockAcquire(Shared->lock, LW_EXCLUSIVE);
	slot = FindSlot(dboid, false);
	if (slot != NULL && slot->pid == MyProcPid)
	{
		if (slot->state != state)
			SetSlotState(slot, state);
		if (tick)
			slot->last_tick = GetCurrentTimestamp();
	}
	LWLockRelease(Shared->lock);
}

/*
 * The version of the extension installed in this database, in cxt; NULL
 * when it is not installed.
 */
static char *
InstalledVersion(MemoryContext cxt)
{
	char	   *version = NULL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (OidIsValid(get_extension_oid("pipeline", true)))
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pipeline'",
						true, 1) == SPI_OK_SELECT && SPI_processed == 1)
			version = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0],
															SPI_tuptable->tupdesc, 1));
		SPI_finish();
		PopActiveSnapshot();
	}
	CommitTransactionCommand();
	return version;
}

/*
 * One round of the database's periodic work; each unit of work is its own
 * transaction (see hot_runner.c).
 */
static void
WorkerTick(void)
{
	PipelineRunHot();
	PipelineStartIndexBuilderIfDue();
}

void
pipeline_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	char	   *version;
	volatile bool stale = false;
	volatile bool told_stale = false;
	volatile bool told_error = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("pipeline worker");

	/*
	 * The worker is a superuser: a search_path set for the database (ALTER
	 * DATABASE ... SET) must not lead its statements to a database owner's
	 * operators or functions.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	if (!ClaimSlot(dboid))
		proc_exit(0);
	before_shmem_exit(ReleaseSlot, ObjectIdGetDatum(dboid));

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		version = InstalledVersion(TopMemoryContext);
		if (version == NULL)
		{
			MarkSlot(dboid, SLOT_ABSENT, false);
			proc_exit(0);
		}

		/*
		 * Files installed, ALTER EXTENSION ... UPDATE not run yet: the
		 * library goes on with the older SQL objects, and says so once
		 * (with the first error that causes, if any), not every round.
		 */
		stale = strcmp(version, PIPELINE_VERSION) != 0;
		if (stale && !told_stale)
			ereport(LOG,
					(errmsg("pipeline: this database has version %s of the extension, the library is %s",
							version, PIPELINE_VERSION),
					 errhint("Run ALTER EXTENSION pipeline UPDATE in it; until then the worker works with "
							 "the %s objects and logs only the first error they cause.", version)));
		if (!stale)
			told_error = false;
		told_stale = stale;
		pfree(version);

		if (pipeline_enabled)
		{
			MemoryContext cxt = CurrentMemoryContext;

			pgstat_report_activity(STATE_RUNNING, "pipeline: periodic work");
			/* an error in one round is logged; the next round tries again */
			PG_TRY();
			{
				/* a database restored into another cluster: re-based first */
				if (PipelineRebaseInWorker())
					WorkerTick();
			}
			PG_CATCH();
			{
				MemoryContextSwitchTo(cxt);
				if (!stale || !told_error)
					EmitErrorReport();
				told_error = stale;
				FlushErrorState();
				AbortCurrentTransaction();
			}
			PG_END_TRY();
			pgstat_report_activity(STATE_IDLE, NULL);
		}
		MarkSlot(dboid, SLOT_RUNNING, true);

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 pipeline_hot_interval_ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ---------------------------------------------------------------------
 * Signals from ordinary backends
 * ---------------------------------------------------------------------
 */

static void
WakeLauncherAtCommit(XactEvent event, void *arg)
{
	DatabaseSlot *slot;

	if (!wake_at_commit)
		return;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		wake_at_commit = false;
		return;
	}
	if (event != XACT_EVENT_COMMIT)
		return;
	wake_at_commit = false;
	if (Shared == NULL)
		return;

	LWLockAcquire(Shared->lock, LW_EXCLUSIVE);
	slot = FindSlot(MyDatabaseId, false);
	if (slot != NULL)
		slot->recheck = true;
	if (Shared->launcher_latch != NULL)
		SetLatch(Shared->launcher_latch);
	LWLockRelease(Shared->lock);
}

/* pipeline._wake_launcher(): probe this database again once we commit */
PG_FUNCTION_INFO_V1(pipeline_wake_launcher);
Datum
pipeline_wake_launcher(PG_FUNCTION_ARGS)
{
	wake_at_commit = true;
	PG_RETURN_VOID();
}

/*
 * Stop the worker of a database that is about to be dropped, and keep the
 * launcher from restarting it while the drop runs.
 */
void
PipelineStopDatabaseWorker(Oid dboid)
{
	DatabaseSlot *slot;
	pid_t		pid = 0;
	TimestampTz start = GetCurrentTimestamp();

	if (Shared == NULL)
		return;

	LWLockAcquire(Shared->lock, LW_EXCLUSIVE);
	slot = FindSlot(dboid, false);
	if (slot != NULL)
	{
		pid = slot->pid;
		SetSlotState(slot, SLOT_STOPPING);
	}
	LWLockRelease(Shared->lock);

	if (pid == 0)
		return;
	kill(pid, SIGTERM);

	/* bounded wait for the worker to leave; dropdb itself waits 5 s more */
	for (;;)
	{
		bool		gone;

		LWLockAcquire(Shared->lock, LW_SHARED);
		slot = FindSlot(dboid, false);
		gone = (slot == NULL || slot->pid != pid);
		LWLockRelease(Shared->lock);
		if (gone || kill(pid, 0) != 0 ||
			TimestampDifferenceExceeds(start, GetCurrentTimestamp(), STOP_WAIT_MS))
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 20, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static void
pipeline_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
						bool readOnlyTree, ProcessUtilityContext context,
						ParamListInfo params, QueryEnvironment *queryEnv,
						DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if (IsA(stmt, DropdbStmt))
	{
		Oid			dboid = get_database_oid(((DropdbStmt *) stmt)->dbname, true);

		if (OidIsValid(dboid))
			PipelineStopDatabaseWorker(dboid);
	}
	PipelineYieldIndexBuilder(stmt);

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

void
PipelineWorkerInit(void)
{
	RegisterXactCallback(WakeLauncherAtCommit, NULL);
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = pipeline_ProcessUtility;
}

/*
 * pipeline._workers(): the launcher and the per-database slots, for the
 * status view and the tests.
 */
PG_FUNCTION_INFO_V1(pipeline_workers);
Datum
pipeline_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (Shared == NULL)
		PG_RETURN_VOID();

	LWLockAcquire(Shared->lock, LW_SHARED);
	if (Shared->launcher_pid != 0)
	{
		Datum		values[6] = {0};
		bool		nulls[6] = {false, true, false, false, false, true};

		values[0] = CStringGetTextDatum("launcher");
		values[2] = Int32GetDatum(Shared->launcher_pid);
		values[3] = CStringGetTextDatum("running");
		values[4] = TimestampTzGetDatum(Shared->launcher_started);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	for (int i = 0; i < Shared->nslots; i++)
	{
		DatabaseSlot *slot = &Shared->slots[i];
		Datum		values[6] = {0};
		bool		nulls[6] = {false};

		if (slot->state == SLOT_FREE)
			continue;
		values[0] = CStringGetTextDatum("worker");
		values[1] = ObjectIdGetDatum(slot->dboid);
		values[2] = Int32GetDatum(slot->pid);
		nulls[2] = (slot->pid == 0);
		values[3] = CStringGetTextDatum(SlotStateNames[slot->state]);
		values[4] = TimestampTzGetDatum(slot->since);
		values[5] = TimestampTzGetDatum(slot->last_tick);
		nulls[5] = (slot->last_tick == 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(Shared->lock);
	PG_RETURN_VOID();
}
