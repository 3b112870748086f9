/*
 * batch_registry.c
 *	  Which batch ids transactions still running hold, and from that the
 *	  batches a snapshot saw, as the workers of a distributed source can
 *	  test them.
 *
 * The freeze, a restatement and the corrections of a distributed source
 * read raw rows on the workers, whose snapshots are not the coordinator
 * snapshot S that the day's numbers are recorded with: they must read
 * exactly the batches S saw, by batch id.  Listing those from the receipts
 * fails once retention has deleted old receipts (their events would be
 * left out of a restatement, and counted again by a distinct correction),
 * and ships the whole day's list to every shard.  Instead a layer reads
 *
 *		every batch below a floor, but the few there that S did not see,
 *		and from the floor up, the few that S saw
 *
 * where the floor is the smallest batch id that a transaction still
 * running holds, or the next id to be given out when none does (H + 1, H
 * being the last id given out, read before the registry).  Below the
 * floor every batch has ended: those that committed after S are listed
 * from their receipts, read with a snapshot newer than the registry's
 * scan; those that aborted left no rows.  Old receipts are never needed.
 *
 * The registry is a slot per backend holding the first batch id its
 * transaction took, cleared when the transaction ends, and its database
 * (each numbers its batches with its own sequence: a scan reads its own
 * database's slots only).  The id comes from the sequence, so between
 * asking for it and storing it the slot says TAKING: a scan that finds a
 * slot TAKING waits for the id.  A batch below the floor whose slot the
 * scan found empty took its id after the scan had passed its slot, which
 * is after H was read: its id is above H, so not below the floor.  (The
 * sequence's buffer lock orders the two: the taker marks its slot before
 * nextval takes that lock, the scan reads H under it before reading the
 * slots.  The sequence caches no ids in backends: CACHE 1, as an identity
 * column's is made.)
 *
 * A transaction that took a batch id cannot be prepared where Citus is
 * installed: its slot is the backend's, and the prepared transaction
 * would outlive it still running.
 */
#include "postgres.h"

#include "access/twophase.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#include "pipeline.h"

/* a slot holds a batch id, or one of these */
#define SLOT_EMPTY		UINT64CONST(0)
#define SLOT_TAKING		PG_UINT64_MAX

/*
 * A backend's slot.  Batch ids are numbered per database: a scan reads
 * only the slots of its own.  dboid is written before id leaves EMPTY.
 */
typedef struct RegistrySlot
{
	pg_atomic_uint64 id;
	Oid			dboid;
} RegistrySlot;

typedef struct BatchRegistry
{
	ConditionVariable taken;	/* broadcast when a TAKING slot gets its id */
	int			nslots;
	RegistrySlot slots[FLEXIBLE_ARRAY_MEMBER];
} BatchRegistry;

static BatchRegistry *Registry = NULL;
static bool callback_registered = false;

/* this backend's slot holds an id of the current transaction */
static bool holds_slot = false;

/* ... or is TAKING, in this subtransaction */
static SubTransactionId taking_in = InvalidSubTransactionId;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* every process that has a PGPROC: backends, auxiliaries, prepared xacts */
static int
SlotCount(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

static Size
RegistrySize(void)
{
	return add_size(offsetof(BatchRegistry, slots),
					mul_size(SlotCount(), sizeof(RegistrySlot)));
}

static void
RegistryShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(RegistrySize());
}

static void
RegistryShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Registry = ShmemInitStruct("pipeline batch registry", RegistrySize(), &found);
	if (!found)
	{
		ConditionVariableInit(&Registry->taken);
		Registry->nslots = SlotCount();
		for (int i = 0; i < Registry->nslots; i++)
		{
			pg_atomic_init_u64(&Registry->slots[i].id, SLOT_EMPTY);
			Registry->slots[i].dboid = InvalidOid;
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

void
BatchRegistryShmemRequest(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = RegistryShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = RegistryShmemStartup;
}

static pg_atomic_uint64 *
MySlot(void)
{
	Assert(MyProc->pgprocno < Registry->nslots);
	return &Registry->slots[MyProc->pgprocno].id;
}

static void
ReleaseSlot(void)
{
	bool		was_taking = taking_in != InvalidSubTransactionId;

	if (!holds_slot)
		return;
	pg_atomic_write_u64(MySlot(), SLOT_EMPTY);
	holds_slot = false;
	taking_in = InvalidSubTransactionId;
	/* a scan may be waiting for this slot's id, which will never come */
	if (was_taking)
		ConditionVariableBroadcast(&Registry->taken);
}

static void
RegistryXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (holds_slot && PipelineCitusInstalled())
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that ingested a batch in a Citus database"),
						 errdetail("The freeze and the corrections of a distributed source could not tell "
								   "whether the batch had committed."),
						 errhint("Commit the ingest in a transaction of its own.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			ReleaseSlot();
			break;
		default:
			break;
	}
}

/*
 * An error while the slot was TAKING (in nextval) caught by a savepoint:
 * no id will come, and a scan must not wait for the transaction's end.
 */
static void
RegistrySubXactCallback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && taking_in == mySubid)
	{
		taking_in = InvalidSubTransactionId;
		ReleaseSlot();
	}
}

/*
 * A new batch id from pipeline.batch_log's sequence, registered as held by
 * this transaction until it ends.  Called by ingest as the extension owner.
 */
int64
BatchIdTake(void)
{
	static SPIPlanPtr next_plan = NULL;
	bool		isnull;
	int64		id;
	bool		first = !holds_slot;

	if (Registry == NULL)
		elog(ERROR, "pipeline's batch registry is not set up (shared_preload_libraries)");
	if (!callback_registered)
	{
		RegisterXactCallback(RegistryXactCallback, NULL);
		RegisterSubXactCallback(RegistrySubXactCallback, NULL);
		callback_registered = true;
	}
	if (first)
	{
		/* set before the sequence's lock is taken: see the header */
		Registry->slots[MyProc->pgprocno].dboid = MyDatabaseId;
		pg_write_barrier();
		pg_atomic_write_u64(MySlot(), SLOT_TAKING);
		holds_slot = true;
		taking_in = GetCurrentSubTransactionId();
		pg_memory_barrier();
	}
	PipelineKeptPlan(&next_plan,
					 "SELECT pg_catalog.nextval('pipeline.batch_log_batch_id_seq'::pg_catalog.regclass)",
					 0, NULL);
	if (SPI_execute_plan(next_plan, NULL, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not number the batch");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (first)
	{
		pg_atomic_write_u64(MySlot(), (uint64) id);
		taking_in = InvalidSubTransactionId;
		ConditionVariableBroadcast(&Registry->taken);
	}
	return id;
}

/*
 * The smallest batch id a running transaction holds, or last_given + 1;
 * last_given must have been read before the call.
 */
static int64
RegistryFloor(int64 last_given)
{
	int64		floor = last_given + 1;

	for (int i = 0; i < Registry->nslots; i++)
	{
		RegistrySlot *slot = &Registry->slots[i];
		uint64		v;

		while ((v = pg_atomic_read_u64(&slot->id)) != SLOT_EMPTY)
		{
			pg_read_barrier();
			if (slot->dboid != MyDatabaseId)
				break;
			if (v != SLOT_TAKING)
			{
				floor = Min(floor, (int64) v);
				break;
			}
			ConditionVariableSleep(&Registry->taken, PG_WAIT_EXTENSION);
		}
	}
	ConditionVariableCancelSleep();
	return floor;
}

/* the batch ids one query returns (its one int8[] column) */
static Datum
ReadIds(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types, Datum *args, Snapshot snap)
{
	bool		isnull;
	Datum		ids;

	PipelineKeptPlan(plan, sql, nargs, types);
	if (SPI_execute_snapshot(*plan, args, NULL, snap, InvalidSnapshot, true, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "reading the receipts failed");
	ids = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return PointerGetDatum(construct_empty_array(INT8OID));
	return SPI_datumTransfer(ids, false, -1);
}

/*
 * pipeline._batches_seen(source, snap) -> (floor, unseen, seen): a batch of
 * the source was seen by snap iff its id is below floor and not in unseen,
 * or is in seen.  Called after snap was taken.
 */
PG_FUNCTION_INFO_V1(pipeline_batches_seen);

Datum
pipeline_batches_seen(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr unseen_plan = NULL;
	static SPIPlanPtr seen_plan = NULL;
	Datum		source = PG_GETARG_DATUM(0);
	Datum		snap = PG_GETARG_DATUM(1);
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	Oid			types[3] = {TEXTOID, InvalidOid, INT8OID};
	Datum		args[3];
	int64		last_given = 0;
	int64		floor;
	Snapshot	latest;

	if (Registry == NULL)
		elog(ERROR, "pipeline's batch registry is not set up (shared_preload_libraries)");
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "_batches_seen must return a record");
	types[1] = get_fn_expr_argtype(fcinfo->flinfo, 1);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* H: read under the sequence's buffer lock, before the slots */
	if (SPI_execute("SELECT CASE WHEN s.is_called THEN s.last_value ELSE s.last_value - 1 END"
					"  FROM pipeline.batch_log_batch_id_seq AS s", true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "reading the batch numbering failed");
	{
		bool		isnull;

		last_given = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	pg_memory_barrier();
	floor = RegistryFloor(last_given);

	/*
	 * Every batch below the floor has ended: a snapshot taken now sees the
	 * receipts of those that committed, S or not.
	 */
	latest = GetLatestSnapshot();
	args[0] = source;
	args[1] = snap;
	args[2] = Int64GetDatum(floor);
	values[0] = Int64GetDatum(floor);
	values[1] = ReadIds(&unseen_plan, "SELECT pg_catalog.array_agg(b.batch_id ORDER BY b.batch_id) FROM pipeline.batch_log AS b"
						" WHERE b.source = $1 AND b.xid >= pg_catalog.pg_snapshot_xmin($2)"
						"   AND NOT pg_catalog.pg_visible_in_snapshot(b.xid, $2)"
						"   AND b.batch_id < $3 AND b.accepted > 0",
						3, types, args, latest);
	values[2] = ReadIds(&seen_plan, "SELECT pg_catalog.array_agg(b.batch_id ORDER BY b.batch_id) FROM pipeline.batch_log AS b"
						" WHERE b.batch_id >= $3 AND b.source = $1"
						"   AND pg_catalog.pg_visible_in_snapshot(b.xid, $2) AND b.accepted > 0",
						3, types, args, latest);
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
