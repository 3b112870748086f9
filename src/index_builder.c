/*
 * index_builder.c
 *	  Builds the value indexes of frozen days without making ingest wait.
 *
 * A correction of a frozen day with a distinct count of a plain column
 * looks its new values up in an index on that column of the day's raw
 * partition (_correct_day, _correction_distinct).  A plain CREATE INDEX
 * holds a SHARE lock for the whole build, and every ingest into that day
 * would wait for it: seconds on a 10M-event day.  CREATE INDEX
 * CONCURRENTLY lets writers go on, but it cannot run inside a transaction
 * block or a function, and a correction is both.  So the correction only
 * queues the index (pipeline.value_index_queue, _index_day_values), and
 * this short-lived background process, the "pipeline index builder", runs
 * the queue's statements at top level, one transaction sequence each, the
 * way a client session would.  Until the index is valid, corrections of
 * that day scan it instead; they are as exact, only slower.
 *
 * Who starts a builder:
 *	- a transaction that queued an index, once it commits (the queue row
 *	  must be visible to the builder);
 *	- the database worker's round, when the queue has entries due and no
 *	  builder holds the lock: after a failed start (no free worker slot),
 *	  a builder that crashed, or an entry whose retry time has come.
 * At most one builder works per database: it holds a session lock on a
 * tag SQL cannot take (an advisory tag with a field4 no pg_advisory_*
 * function uses).  A second builder exits at once.  A builder that
 * finishes releases the lock and then looks at the queue once more, so an
 * entry that committed while it was finishing (and whose own builder found
 * the lock still held) is not left for the worker's next round.
 *
 * Failures: _value_index_next() pushes an entry's retry time back before
 * each attempt (1, 2, 4 ... 60 minutes), so a builder that dies in the
 * middle leaves an entry the worker retries later, and the invalid index
 * CREATE INDEX CONCURRENTLY leaves behind is dropped (concurrently) first.
 * A failed statement is logged and kept in the entry's last_error.
 *
 * Deadlocks: CREATE INDEX CONCURRENTLY holds SHARE UPDATE EXCLUSIVE on the
 * partition and waits for every transaction with an older snapshot to end.
 * A transaction that took its snapshot before, then asks for a stronger
 * lock on that partition (DROP, ALTER, TRUNCATE, LOCK, an index of its own;
 * retention and drop_source do such things) waits for the builder while
 * the builder waits for it, and the deadlock detector cancels one of them,
 * often the user's statement.  So the ProcessUtility hook calls
 * PipelineYieldIndexBuilder() first: when the statement names, and its
 * role owns, the partition being indexed (the builder holds a lock on it),
 * a table above it or an index on it, or the extension, its schema or the
 * database (these three whether or not a builder is running yet), the
 * builder is terminated, and the statement's transaction holds the builder
 * lock until it ends so that none starts meanwhile.  The build is retried
 * later, like any interrupted one.
 *
 * The builder connects as the bootstrap superuser, like the database
 * worker.  The partitions it indexes belong to their source's owner;
 * CREATE INDEX itself runs the build's functions (the column type's
 * comparison) as the table's owner in a security-restricted context, and
 * the statements it runs come from the extension's own queue, every name
 * quoted there (_value_index_next).
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/sinvaladt.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"

#include "pipeline.h"

PGDLLEXPORT void pipeline_index_builder_main(Datum arg);

/* field4 of the builder's lock tag: pg_advisory_* use only 1 and 2 */
#define BUILDER_LOCK_FIELD4		0x5049

/* this process is a builder */
static bool am_builder = false;

/* set by pipeline._start_index_builder(), acted on at commit */
static bool start_at_commit = false;
static bool callback_registered = false;

/* what _value_index_next() returned: the entry and the statement to run */
typedef struct QueueEntry
{
	MemoryContext cxt;			/* where col and statement are kept */
	Oid			part;
	char	   *col;
	char	   *statement;
} QueueEntry;

static void
BuilderLockTag(LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, 0, 0, BUILDER_LOCK_FIELD4);
}

/* true when a builder holds the database's builder lock right now */
static bool
BuilderRunning(void)
{
	LOCKTAG		tag;

	BuilderLockTag(&tag);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, ExclusiveLock, false);
	return false;
}

/*
 * Terminates the builder of database dboid, if one runs, and waits until it
 * is gone (at most 30 s); then holds the builder lock until the calling
 * transaction ends, so that no builder starts meanwhile.
 */
static void
StopIndexBuilder(Oid dboid)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, dboid, 0, 0, BUILDER_LOCK_FIELD4);
	for (int i = 0; i < 3000; i++)
	{
		VirtualTransactionId *holders;

		if (LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
			return;
		/* (a builder between two transactions has no vxid: next turn) */
		for (holders = GetLockConflicts(&tag, ExclusiveLock, NULL);
			 VirtualTransactionIdIsValid(*holders); holders++)
		{
			PGPROC	   *proc = BackendIdGetProc(holders->backendId);

			if (proc != NULL && proc->pid != 0)
				(void) kill(proc->pid, SIGTERM);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* the current transaction of this database's builder, if one runs */
static bool
BuilderVxid(VirtualTransactionId *vxid)
{
	LOCKTAG		tag;
	VirtualTransactionId *holders;

	BuilderLockTag(&tag);
	holders = GetLockConflicts(&tag, ExclusiveLock, NULL);
	*vxid = holders[0];
	return VirtualTransactionIdIsValid(*vxid);
}

/*
 * Does the builder (transaction builder) hold a lock on relation relid, an
 * index's table, or a partition below it?  CREATE INDEX CONCURRENTLY holds
 * SHARE UPDATE EXCLUSIVE on its table from start to end.
 */
static bool
BuilderHoldsLockOn(Oid relid, VirtualTransactionId builder)
{
	ListCell   *lc;

	if (get_rel_relkind(relid) == RELKIND_INDEX || get_rel_relkind(relid) == RELKIND_PARTITIONED_INDEX)
		relid = IndexGetRelation(relid, true);
	if (!OidIsValid(relid))
		return false;
	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		LOCKTAG		tag;
		VirtualTransactionId *holders;

		SET_LOCKTAG_RELATION(tag, MyDatabaseId, lfirst_oid(lc));
		for (holders = GetLockConflicts(&tag, ShareLock, NULL);
			 VirtualTransactionIdIsValid(*holders); holders++)
			if (VirtualTransactionIdEquals(*holders, builder))
				return true;
	}
	return false;
}

/* a relation the current role owns on which the builder holds a lock */
static bool
OwnRelationBeingIndexed(RangeVar *rv, VirtualTransactionId builder)
{
	Oid			relid;

	if (rv == NULL)
		return false;
	relid = RangeVarGetRelid(rv, NoLock, true);
	return OidIsValid(relid) && pg_class_ownercheck(relid, GetUserId()) &&
		BuilderHoldsLockOn(relid, builder);
}

static bool
OwnRelationListBeingIndexed(List *rangevars, VirtualTransactionId builder)
{
	ListCell   *lc;

	foreach(lc, rangevars)
		if (OwnRelationBeingIndexed(lfirst_node(RangeVar, lc), builder))
			return true;
	return false;
}

/* Does the statement, run by the owner of what it names, drop the extension or its schema? */
static bool
DropsPipeline(Node *stmt)
{
	DropStmt   *drop = (DropStmt *) stmt;
	ListCell   *lc;

	if (!IsA(stmt, DropStmt) ||
		(drop->removeType != OBJECT_EXTENSION && drop->removeType != OBJECT_SCHEMA))
		return false;
	foreach(lc, drop->objects)
	{
		Oid			oid;

		if (strcmp(strVal(lfirst(lc)), "pipeline") != 0)
			continue;
		if (drop->removeType == OBJECT_SCHEMA)
			return OidIsValid(oid = get_namespace_oid("pipeline", true)) &&
				pg_namespace_ownercheck(oid, GetUserId());
		return OidIsValid(oid = get_extension_oid("pipeline", true)) &&
			pg_extension_ownercheck(oid, GetUserId());
	}
	return false;
}

/*
 * Would the statement, run by the owner of what it names, lock the
 * relation the builder is indexing (or a table above it) beyond what a
 * concurrent index build allows?  The names are resolved as the statement
 * will resolve them.
 */
static bool
StatementMeetsBuild(Node *stmt, VirtualTransactionId builder)
{
	ListCell   *lc;

	switch (nodeTag(stmt))
	{
		case T_DropStmt:
			{
				DropStmt   *drop = (DropStmt *) stmt;

				if (drop->removeType != OBJECT_TABLE && drop->removeType != OBJECT_INDEX)
					return false;
				foreach(lc, drop->objects)
					if (OwnRelationBeingIndexed(makeRangeVarFromNameList(lfirst(lc)), builder))
						return true;
				return false;
			}
		case T_AlterTableStmt:
			return OwnRelationBeingIndexed(((AlterTableStmt *) stmt)->relation, builder);
		case T_RenameStmt:
			return OwnRelationBeingIndexed(((RenameStmt *) stmt)->relation, builder);
		case T_IndexStmt:
			return OwnRelationBeingIndexed(((IndexStmt *) stmt)->relation, builder);
		case T_TruncateStmt:
			return OwnRelationListBeingIndexed(((TruncateStmt *) stmt)->relations, builder);
		case T_LockStmt:
			return OwnRelationListBeingIndexed(((LockStmt *) stmt)->relations, builder);
		case T_ClusterStmt:
			return OwnRelationBeingIndexed(((ClusterStmt *) stmt)->relation, builder);
		case T_ReindexStmt:
			return OwnRelationBeingIndexed(((ReindexStmt *) stmt)->relation, builder);
		case T_VacuumStmt:
			foreach(lc, ((VacuumStmt *) stmt)->rels)
				if (OwnRelationBeingIndexed(lfirst_node(VacuumRelation, lc)->relation, builder))
					return true;
			return false;
		default:
			return false;
	}
}

/*
 * Called by the ProcessUtility hook before every utility statement: see
 * "Deadlocks" at the top of the file.
 */
void
PipelineYieldIndexBuilder(Node *stmt)
{
	VirtualTransactionId builder;

	if (am_builder)
		return;
	if (IsA(stmt, DropdbStmt))
	{
		Oid			dboid = get_database_oid(((DropdbStmt *) stmt)->dbname, true);

		if (OidIsValid(dboid))
			StopIndexBuilder(dboid);
		return;
	}
	if (!IsTransactionState())
		return;

	/*
	 * Dropping the extension stops a builder even when none holds the lock
	 * yet: one that a correction's commit has just started would otherwise
	 * take it a moment later and index a partition the drop is about to
	 * lock.  Held to the end of the drop, the lock makes it exit at once.
	 */
	if (DropsPipeline(stmt))
		StopIndexBuilder(MyDatabaseId);
	else if (BuilderVxid(&builder) && StatementMeetsBuild(stmt, builder))
		StopIndexBuilder(MyDatabaseId);
}

static bool
StartIndexBuilder(Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;	/* the worker's round does */
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pipeline");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "pipeline_index_builder_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pipeline index builder for database %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "pipeline index builder");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = 0;

	return RegisterDynamicBackgroundWorker(&worker, &handle);
}

static void
StartBuilderAtCommit(XactEvent event, void *arg)
{
	if (!start_at_commit)
		return;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		start_at_commit = false;
	else if (event == XACT_EVENT_COMMIT)
	{
		start_at_commit = false;
		/* if no slot is free, the worker's round starts it later */
		if (!StartIndexBuilder(MyDatabaseId))
			elog(DEBUG1, "pipeline: no background worker slot for the index builder yet");
	}
}

/*
 * pipeline._start_index_builder(): start a builder for this database once
 * the calling transaction commits (it has just queued an index)
 */
PG_FUNCTION_INFO_V1(pipeline_start_index_builder);
Datum
pipeline_start_index_builder(PG_FUNCTION_ARGS)
{
	if (!callback_registered)
	{
		RegisterXactCallback(StartBuilderAtCommit, NULL);
		callback_registered = true;
	}
	start_at_commit = true;
	PG_RETURN_VOID();
}

/* are there queue entries whose time has come?  Inside a transaction. */
static bool
QueueHasDueEntries(void)
{
	bool		due = false;
	Oid			nsp = get_namespace_oid("pipeline", true);

	/* a database still on 0.1.0's SQL objects has no queue */
	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("value_index_queue", nsp)))
		return false;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT EXISTS (SELECT FROM pipeline.value_index_queue "
					"                WHERE retry_after <= pg_catalog.now())",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read pipeline.value_index_queue");
	due = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &due));
	SPI_finish();
	return due;
}

/*
 * Called by the database worker each round: starts a builder when entries
 * are due and none runs.
 */
void
PipelineStartIndexBuilderIfDue(void)
{
	bool		start;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	start = QueueHasDueEntries() && !BuilderRunning();
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (start && !StartIndexBuilder(MyDatabaseId))
		ereport(LOG,
				(errmsg("pipeline: could not start the index builder for database %u", MyDatabaseId),
				 errhint("Raise max_worker_processes; the worker tries again every round.")));
}

/* ---------------------------------------------------------------------
 * The builder process
 * ---------------------------------------------------------------------
 */

/* one short transaction around fn: SPI and a snapshot */
static void
InTransaction(void (*fn) (void *), void *arg)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	fn(arg);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/* the next statement to run, in the builder's context; part invalid if none */
static void
TakeNextEntry(void *arg)
{
	QueueEntry *entry = (QueueEntry *) arg;
	bool		isnull;

	entry->part = InvalidOid;
	if (SPI_execute("SELECT part, col, statement FROM pipeline._value_index_next()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pipeline._value_index_next() failed");
	if (SPI_processed == 0)
		return;
	entry->part = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	entry->col = MemoryContextStrdup(entry->cxt,
									 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	entry->statement = MemoryContextStrdup(entry->cxt,
										   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3));
}

/*
 * Runs one statement the way a client's simple query does, at top level,
 * so that CREATE/DROP INDEX CONCURRENTLY may commit and start transactions
 * of their own.  The parse and plan trees live in cxt, not in the
 * transaction's memory, which those commits free.
 */
static void
RunTopLevel(const char *sql, MemoryContext cxt)
{
	MemoryContext oldcxt;
	List	   *parsetrees;
	RawStmt    *raw;
	List	   *plans;
	Portal		portal;
	QueryCompletion qc;

	pgstat_report_activity(STATE_RUNNING, sql);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	oldcxt = MemoryContextSwitchTo(cxt);
	parsetrees = pg_parse_query(sql);
	if (list_length(parsetrees) != 1)
		elog(ERROR, "pipeline index builder: expected one statement, got %d", list_length(parsetrees));
	raw = linitial_node(RawStmt, parsetrees);
	plans = pg_plan_queries(pg_analyze_and_rewrite_fixedparams(raw, sql, NULL, 0, NULL),
							sql, CURSOR_OPT_PARALLEL_OK, NULL);
	portal = CreatePortal("", true, true);
	portal->visible = false;
	PortalDefineQuery(portal, NULL, sql, CreateCommandTag(raw->stmt), plans, NULL);
	PortalStart(portal, NULL, 0, InvalidSnapshot);
	MemoryContextSwitchTo(oldcxt);
	InitializeQueryCompletion(&qc);
	(void) PortalRun(portal, FETCH_ALL, true, true, None_Receiver, None_Receiver, &qc);
	PortalDrop(portal, false);
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

typedef struct Failure
{
	QueueEntry *entry;
	const char *message;
} Failure;

static void
RecordFailure(void *arg)
{
	Failure    *f = (Failure *) arg;
	Datum		values[3];
	Oid			types[3] = {OIDOID, TEXTOID, TEXTOID};

	values[0] = ObjectIdGetDatum(f->entry->part);
	values[1] = CStringGetTextDatum(f->entry->col);
	values[2] = CStringGetTextDatum(f->message);
	if (SPI_execute_with_args("SELECT pipeline._value_index_failed($1, $2, $3)",
							  3, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pipeline._value_index_failed() failed");
}

/* runs the queue's statements until none is due now */
static void
BuildQueue(MemoryContext cxt)
{
	for (;;)
	{
		QueueEntry	entry = {cxt, InvalidOid, NULL, NULL};
		char	   *volatile message = NULL;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(cxt);
		InTransaction(TakeNextEntry, &entry);
		if (!OidIsValid(entry.part))
			return;

		PG_TRY();
		{
			RunTopLevel(entry.statement, cxt);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			MemoryContextSwitchTo(cxt);
			pgstat_report_activity(STATE_IDLE, NULL);
			message = edata->message;
			ereport(LOG,
					(errmsg("pipeline index builder: %s failed: %s", entry.statement, edata->message),
					 errhint("It is tried again later; corrections of that day scan it meanwhile.")));
		}
		PG_END_TRY();

		if (message != NULL)
		{
			Failure		f = {&entry, message};

			InTransaction(RecordFailure, &f);
		}
	}
}

/* the builder lock, held across transactions; false if another builder has it */
static bool
TakeBuilderLock(void)
{
	LOCKTAG		tag;
	bool		taken;

	BuilderLockTag(&tag);
	StartTransactionCommand();
	taken = LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
	CommitTransactionCommand();
	return taken;
}

static void
ReleaseBuilderLock(void)
{
	LOCKTAG		tag;

	BuilderLockTag(&tag);
	LockRelease(&tag, ExclusiveLock, true);
}

static void
CheckDue(void *arg)
{
	*(bool *) arg = QueueHasDueEntries();
}

void
pipeline_index_builder_main(Datum arg)
{
	MemoryContext cxt;
	bool		due;

	am_builder = true;
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
	pgstat_report_appname("pipeline index builder");

	/*
	 * A superuser process: no database search_path may lead its statements
	 * elsewhere, and a database's statement_timeout must not cancel a build
	 * that takes minutes by design.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lock_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);

	cxt = AllocSetContextCreate(TopMemoryContext, "pipeline index builder", ALLOCSET_DEFAULT_SIZES);
	do
	{
		if (!TakeBuilderLock())
			break;
		BuildQueue(cxt);
		ReleaseBuilderLock();
		InTransaction(CheckDue, &due);
	} while (due);
	proc_exit(0);
}
