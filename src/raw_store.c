/*
 * raw_store.c
 *	  Writing accepted events: day partitions on demand, deduplication
 *	  against everything stored, and the insert itself.
 *
 * Dedup against the store goes through pipeline.<source>_ids, whose primary
 * key is the event id (a unique index on the partitioned raw table would
 * have to include the event time).  A chunk of rows (already deduplicated
 * within the batch and sorted by id) is written in one of two ways:
 *
 *	- the direct path, tried first, writes the way COPY does: heap
 *	  multi-insert into the id table and into each day partition, then the
 *	  index entries, in one subtransaction.  It is not used at all when
 *	  triggers or row-level security are on the tables: the executor must
 *	  see those rows.  The id table's primary key finds stored ids as it
 *	  takes the chunk's entries, in the same descent: it only reports an id
 *	  it may hold already (UNIQUE_CHECK_PARTIAL, as for a deferred unique
 *	  constraint) and writes the entry all the same.  Each reported id is
 *	  looked up again (StoredIdsOut): if a committed batch stored it, the
 *	  row just written for it is deleted and the event counts as a
 *	  duplicate; if a batch still in progress is writing it, the
 *	  subtransaction is rolled back and the statement path takes the chunk.
 *	  Nothing in the direct path waits for another batch;
 *
 *	- the statement path, for a chunk that races a concurrent batch over
 *	  an id, or that the direct path may not write:
 *
 *	 WITH new_ids AS (INSERT INTO ids SELECT ... ON CONFLICT DO NOTHING
 *					  RETURNING event_id)
 *	 INSERT INTO raw SELECT ... FROM unnest(<column arrays>)
 *	  WHERE id IN (SELECT event_id FROM new_ids)
 *
 *	  ON CONFLICT DO NOTHING waits for a concurrent inserter of the same id
 *	  and then skips it, so overlapping batches from many sessions store each
 *	  id once without a unique violation.  It takes the ids in ascending
 *	  order, so two such statements cannot deadlock one another.
 *
 * A chunk that was mostly stored ids (a producer re-sending whole batches)
 * makes the source's next chunks probe the primary key first and drop the
 * stored ids before writing, until a chunk has few: a stored id found by
 * the direct path costs a row written and deleted again, a probe costs one
 * lookup per id.  New events cost one descent of the primary key each.
 *
 * A source distributed by Citus keeps its rows on the worker nodes, which
 * only statements reach: its chunks go in two (InsertDistributed), the ids
 * and then the rows of the new ones, read from pipeline._pending_rows().
 *
 * Per backend we cache, for each raw table, the prepared statement, whether
 * to probe first, and the [lo, hi) bounds and oid of the partitions known
 * to exist, so that most batches never call pipeline._ensure_partitions().
 * A relcache
 * invalidation of the raw table (a partition attached, detached or dropped,
 * a contract change) forgets the bounds.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/params.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "pipeline.h"
#include "raw_store.h"
#include "validate.h"

/* rows per heap multi-insert, as COPY buffers them */
#define MULTI_INSERT_ROWS 1000

typedef struct PartitionRange
{
	TimestampTz lo;
	TimestampTz hi;
	Oid			relid;
} PartitionRange;

typedef struct RawStoreEntry
{
	Oid			raw_relid;		/* hash key */
	int			contract_version;
	SPIPlanPtr	insert_plan;
	SPIPlanPtr	ids_plan;		/* a distributed source's statements */
	SPIPlanPtr	new_ids_plan;
	SPIPlanPtr	rows_plan;
	bool		probe_first;	/* this source's last chunk re-sent stored ids */
	int			distributed;	/* by Citus: 1 yes, 0 no, -1 not known yet */
	int			nranges;
	int			maxranges;
	PartitionRange *ranges;
} RawStoreEntry;

/* one chunk's rows, column-major, as ingest.c hands them over */
typedef struct ChunkRows
{
	Contract   *contract;
	int64		batch_id;
	int			nrows;
	Datum	  **values;
	bool	  **nulls;
	Datum	   *extra;
	bool	   *extra_null;
	Oid		   *partition;		/* the day partition of each row */
	const int  *raw_map;		/* FillRawRow: the partition being written */
} ChunkRows;

static HTAB *raw_store = NULL;

/* the chunk InsertDistributed is sending, for pipeline._pending_rows() */
static ChunkRows *pending_rows = NULL;

static void
RawStoreInvalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	RawStoreEntry *e;

	if (raw_store == NULL)
		return;
	if (OidIsValid(relid))
	{
		e = hash_search(raw_store, &relid, HASH_FIND, NULL);
		if (e != NULL)
		{
			e->nranges = 0;		/* the plan revalidates itself */
			e->distributed = -1;
		}
		return;
	}
	hash_seq_init(&seq, raw_store);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		e->nranges = 0;
		e->distributed = -1;
	}
}

static RawStoreEntry *
GetEntry(SourceInfo *src)
{
	RawStoreEntry *e;
	bool		found;

	if (raw_store == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(RawStoreEntry);
		raw_store = hash_create("pipeline raw store", 16, &ctl, HASH_ELEM | HASH_BLOBS);
		CacheRegisterRelcacheCallback(RawStoreInvalidate, (Datum) 0);
	}
	e = hash_search(raw_store, &src->raw_relid, HASH_ENTER, &found);
	if (!found)
	{
		e->insert_plan = NULL;
		e->ids_plan = NULL;
		e->new_ids_plan = NULL;
		e->rows_plan = NULL;
		e->probe_first = false;
		e->distributed = -1;
		e->nranges = 0;
		e->maxranges = 8;
		e->ranges = MemoryContextAlloc(TopMemoryContext, sizeof(PartitionRange) * e->maxranges);
		e->contract_version = src->contract_version;
	}
	if (e->contract_version != src->contract_version)
	{
		e->nranges = 0;
		if (e->insert_plan != NULL)
			SPI_freeplan(e->insert_plan);
		if (e->ids_plan != NULL)
			SPI_freeplan(e->ids_plan);
		if (e->new_ids_plan != NULL)
			SPI_freeplan(e->new_ids_plan);
		if (e->rows_plan != NULL)
			SPI_freeplan(e->rows_plan);
		e->insert_plan = e->ids_plan = e->new_ids_plan = e->rows_plan = NULL;
		e->contract_version = src->contract_version;
	}
	return e;
}

static Oid
KnownPartition(RawStoreEntry *e, TimestampTz t)
{
	for (int i = 0; i < e->nranges; i++)
	{
		if (t >= e->ranges[i].lo && t < e->ranges[i].hi)
			return e->ranges[i].relid;
	}
	return InvalidOid;
}

/*
 * Makes sure a day partition exists for every event time, and tells which
 * one each row goes to.
 */
static void
EnsurePartitions(SourceInfo *src, Datum *times, int n, Oid *partition)
{
	static SPIPlanPtr plan = NULL;
	RawStoreEntry *e = GetEntry(src);
	Datum	   *unknown = palloc(sizeof(Datum) * n);
	int			nunknown = 0;
	Datum		args[2];

	for (int i = 0; i < n; i++)
	{
		partition[i] = KnownPartition(e, DatumGetTimestampTz(times[i]));
		if (!OidIsValid(partition[i]))
			unknown[nunknown++] = times[i];
	}
	if (nunknown == 0)
		return;

	{
		Oid			types[2] = {TEXTOID, TIMESTAMPTZARRAYOID};

		PipelineKeptPlan(&plan, "SELECT lo, hi, part::oid FROM pipeline._ensure_partitions($1, $2)", 2, types);
	}
	args[0] = CStringGetTextDatum(src->name);
	args[1] = PointerGetDatum(construct_array(unknown, nunknown, TIMESTAMPTZOID,
											  sizeof(TimestampTz), true, TYPALIGN_DOUBLE));
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pipeline._ensure_partitions failed");

	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		if (e->nranges == e->maxranges)
		{
			e->maxranges *= 2;
			e->ranges = repalloc(e->ranges, sizeof(PartitionRange) * e->maxranges);
		}
		e->ranges[e->nranges].lo = DatumGetTimestampTz(SPI_getbinval(tup, desc, 1, &isnull));
		e->ranges[e->nranges].hi = DatumGetTimestampTz(SPI_getbinval(tup, desc, 2, &isnull));
		e->ranges[e->nranges].relid = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		e->nranges++;
	}
	for (int i = 0; i < n; i++)
	{
		if (!OidIsValid(partition[i]))
			partition[i] = KnownPartition(e, DatumGetTimestampTz(times[i]));
		if (!OidIsValid(partition[i]))
			elog(ERROR, "no partition of %s for %s", get_rel_name(src->raw_relid),
				 timestamptz_to_str(DatumGetTimestampTz(times[i])));
	}
}

/*
 * Whether Citus distributes the source's raw table.  Its rows then live
 * in shards on the workers, which only statements reach: the table here
 * is an empty shell that the direct path would write into unseen, and
 * the probe would find nothing in.
 */
static bool
Distributed(SourceInfo *src)
{
	RawStoreEntry *e = GetEntry(src);

	if (e->distributed < 0)
	{
		Oid			types[1] = {OIDOID};
		Datum		args[1] = {ObjectIdGetDatum(src->raw_relid)};
		bool		isnull;

		/* Citus's catalog, when Citus is installed in this database */
		if (!PipelineCitusInstalled())
		{
			e->distributed = 0;
			return false;
		}
		/* not a kept plan: Citus may be dropped */
		if (SPI_execute_with_args("SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition AS p"
								  " WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass)",
								  1, types, args, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "reading pg_dist_partition failed");
		e->distributed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) ? 1 : 0;
	}
	return e->distributed == 1;
}

/* ---------------------------------------------------------------------
 * The direct path
 * ---------------------------------------------------------------------
 */

/* the executor must see the rows of a table with triggers or row security */
static bool
DirectWritable(Relation rel, Oid owner)
{
	return rel->trigdesc == NULL &&
		check_enable_rls(RelationGetRelid(rel), owner, true) != RLS_ENABLED &&
		pg_class_aclcheck(RelationGetRelid(rel), owner, ACL_INSERT) == ACLCHECK_OK;
}

typedef void (*FillRow) (ChunkRows *rows, int i, TupleTableSlot *slot);

/*
 * The rows whose ids the id table's primary key may hold already, found
 * while their index entries were written (see StoredIdsOut).
 */
typedef struct IdSuspects
{
	List	   *arbiter;		/* the primary key: reports instead of raising */
	int			n;
	int		   *rows;			/* their positions in the chunk */
	ItemPointerData *tids;		/* and the id-table rows written for them */
} IdSuspects;

/* BRIN indexes of a raw partition that MultiInsert enters once per heap block */
#define MAX_BATCH_BRIN 4

/*
 * Takes out of rri's indexes those that are BRIN over the batch column
 * alone, and returns how many (into brin and info).  Every row of a chunk
 * has the same batch, so one entry per heap block summarizes them all,
 * whatever the operator class; PostgreSQL 15's brininsert() reads the
 * index's metapage again at every call, which was 7% of a bulk load.
 * Each block's entry is for its first row of the chunk: the row at a
 * block's first offset is also what has autosummarize ask for the range
 * before it, as it would row by row.
 */
static int
BatchBrinOut(ResultRelInfo *rri, AttrNumber batch_att, Relation *brin, IndexInfo **info)
{
	int			n = 0;
	int			kept = 0;

	for (int i = 0; i < rri->ri_NumIndices; i++)
	{
		Relation	index = rri->ri_IndexRelationDescs[i];
		IndexInfo  *ii = rri->ri_IndexRelationInfo[i];

		if (n < MAX_BATCH_BRIN && batch_att != InvalidAttrNumber &&
			index->rd_rel->relam == BRIN_AM_OID &&
			ii->ii_NumIndexAttrs == 1 && ii->ii_IndexAttrNumbers[0] == batch_att &&
			ii->ii_Expressions == NIL && ii->ii_Predicate == NIL)
		{
			brin[n] = index;
			info[n] = ii;
			n++;
		}
		else
		{
			rri->ri_IndexRelationDescs[kept] = index;
			rri->ri_IndexRelationInfo[kept] = ii;
			kept++;
		}
	}
	rri->ri_NumIndices = kept;
	return n;
}

/*
 * Heap multi-insert of some rows into one relation, then their index
 * entries.  With suspects, the index named there only reports an id it
 * may hold already (UNIQUE_CHECK_PARTIAL, as a deferred constraint does):
 * the entry is written all the same, and the row is listed for a second
 * look.  Any other unique index raises its error.  batch_att is the
 * column that holds the chunk's batch in every row (BatchBrinOut), or
 * InvalidAttrNumber.
 */
static void
MultiInsert(Relation rel, ChunkRows *rows, const int *which, int n, EState *estate, FillRow fill,
			IdSuspects *suspects, AttrNumber batch_att)
{
	Relation	brin[MAX_BATCH_BRIN];
	IndexInfo  *brin_info[MAX_BATCH_BRIN];
	int			nbrin;
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	TupleTableSlot **slots = palloc(sizeof(TupleTableSlot *) * MULTI_INSERT_ROWS);
	BulkInsertState bistate = GetBulkInsertState();
	CommandId	cid = GetCurrentCommandId(true);
	int			nslots = Min(n, MULTI_INSERT_ROWS);

	/*
	 * The relation's own descriptor would be pinned by each slot, and each
	 * pin is an entry in the resource owner: a thousand slots per partition
	 * and chunk cost more than the rows' index entries.  A copy is not
	 * reference-counted; it lives as long as the slots.
	 */
	TupleDesc	desc = CreateTupleDescCopy(RelationGetDescr(rel));

	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	nbrin = BatchBrinOut(rri, batch_att, brin, brin_info);
	for (int k = 0; k < nslots; k++)
		slots[k] = MakeSingleTupleTableSlot(desc, table_slot_callbacks(rel));

	for (int start = 0; start < n; start += MULTI_INSERT_ROWS)
	{
		int			count = Min(MULTI_INSERT_ROWS, n - start);

		for (int k = 0; k < count; k++)
		{
			TupleTableSlot *slot = slots[k];

			ExecClearTuple(slot);
			memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
			fill(rows, which[start + k], slot);
			ExecStoreVirtualTuple(slot);
		}
		table_multi_insert(rel, slots, count, cid, 0, bistate);
		for (int k = 0; k < count; k++)
		{
			if (rri->ri_NumIndices > 0)
			{
				bool		conflict = false;

				(void) ExecInsertIndexTuples(rri, slots[k], estate, false, suspects != NULL,
											 &conflict, suspects ? suspects->arbiter : NIL);
				if (conflict)
				{
					suspects->rows[suspects->n] = which[start + k];
					suspects->tids[suspects->n] = slots[k]->tts_tid;
					suspects->n++;
				}
			}
			ResetPerTupleExprContext(estate);
		}
		for (int b = 0; b < nbrin; b++)
		{
			BlockNumber last = InvalidBlockNumber;

			for (int k = 0; k < count; k++)
			{
				Datum		batch;
				bool		isnull;

				if (ItemPointerGetBlockNumber(&slots[k]->tts_tid) == last)
					continue;
				last = ItemPointerGetBlockNumber(&slots[k]->tts_tid);
				batch = slot_getattr(slots[k], batch_att, &isnull);
				(void) index_insert(brin[b], &batch, &isnull, &slots[k]->tts_tid, rel,
									UNIQUE_CHECK_NO, false, brin_info[b]);
			}
		}
	}

	for (int k = 0; k < nslots; k++)
		ExecDropSingleTupleTableSlot(slots[k]);
	FreeTupleDesc(desc);
	FreeBulkInsertState(bistate);
	ExecCloseIndices(rri);
	for (int b = 0; b < nbrin; b++)
		index_close(brin[b], RowExclusiveLock);
}

/* pipeline.<source>_ids is (event_id, _pl_batch) */
static void
FillIdRow(ChunkRows *rows, int i, TupleTableSlot *slot)
{
	slot->tts_values[0] = rows->values[rows->contract->id_col][i];
	slot->tts_isnull[0] = false;
	slot->tts_values[1] = Int64GetDatum(rows->batch_id);
	slot->tts_isnull[1] = false;
}

/* where an attribute of a raw partition takes its value from, besides a contract column */
#define RAW_FROM_NOTHING	(-1)	/* dropped: left NULL */
#define RAW_FROM_BATCH		(-2)
#define RAW_FROM_EXTRA		(-3)

/*
 * A partition's columns are found by name, once per partition and chunk: a
 * partition created after a column was dropped from the parent has them at
 * other positions.
 */
static int *
RawColumnMap(Contract *c, TupleDesc desc)
{
	int		   *map = palloc(sizeof(int) * desc->natts);

	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		const char *name = NameStr(att->attname);

		map[a] = RAW_FROM_NOTHING;
		if (att->attisdropped)
			continue;
		if (strcmp(name, "_pl_batch") == 0)
			map[a] = RAW_FROM_BATCH;
		else if (strcmp(name, "_pl_extra") == 0)
			map[a] = RAW_FROM_EXTRA;
		else
		{
			for (int j = 0; j < c->ncols; j++)
			{
				if (strcmp(c->cols[j].name, name) == 0)
				{
					map[a] = j;
					break;
				}
			}
		}
	}
	return map;
}

static void
FillRawRow(ChunkRows *rows, int i, TupleTableSlot *slot)
{
	for (int a = 0; a < slot->tts_tupleDescriptor->natts; a++)
	{
		int			from = rows->raw_map[a];

		if (from >= 0)
		{
			slot->tts_values[a] = rows->values[from][i];
			slot->tts_isnull[a] = rows->nulls[from][i];
		}
		else if (from == RAW_FROM_BATCH)
		{
			slot->tts_values[a] = Int64GetDatum(rows->batch_id);
			slot->tts_isnull[a] = false;
		}
		else if (from == RAW_FROM_EXTRA)
		{
			slot->tts_values[a] = rows->extra[i];
			slot->tts_isnull[a] = rows->extra_null[i];
		}
	}
}

typedef struct DirectCall
{
	ChunkRows  *rows;
	bool		done;			/* false: not attempted (triggers, RLS, ...) */
	bool		race;			/* a concurrent batch is writing one of the ids */
} DirectCall;

static void IdScanKey(Relation pk, ScanKey key);
static void KeepRow(ChunkRows *rows, int kept, int i);

/*
 * Takes out of the chunk the suspects whose ids were stored before it.
 * The primary key is searched again for each, under a dirty snapshot, for
 * a row other than the one the chunk just wrote:
 *	- a committed row, or one this transaction wrote in an earlier chunk:
 *	  the id was stored; the row just written is deleted again and the
 *	  event is a duplicate;
 *	- a row that a transaction in progress writes or deletes: a race with
 *	  a concurrent batch, which is left to the statement path (its ON
 *	  CONFLICT waits for that transaction); nothing is changed;
 *	- only dead rows: the id is new after all.
 * Returns false for a race.
 */
static bool
StoredIdsOut(Relation ids, ChunkRows *rows, IdSuspects *suspects)
{
	Relation	pk = index_open(RelationGetPrimaryKeyIndex(ids), AccessShareLock);
	TupleTableSlot *slot = table_slot_create(ids, NULL);
	bool	   *stored = palloc0(sizeof(bool) * suspects->n);
	bool		race = false;
	int			nstored = 0;
	SnapshotData dirty;
	IndexScanDesc scan;
	ScanKeyData key;

	InitDirtySnapshot(dirty);
	scan = index_beginscan(ids, pk, &dirty, 1, 0);
	IdScanKey(pk, &key);
	for (int s = 0; s < suspects->n && !race; s++)
	{
		key.sk_argument = rows->values[rows->contract->id_col][suspects->rows[s]];
		index_rescan(scan, &key, 1, NULL, 0);
		while (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			if (ItemPointerEquals(&slot->tts_tid, &suspects->tids[s]))
				continue;
			if (TransactionIdIsValid(dirty.xmin) || TransactionIdIsValid(dirty.xmax))
				race = true;
			else
			{
				stored[s] = true;
				nstored++;
			}
			break;
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(pk, AccessShareLock);

	if (!race && nstored > 0)
	{
		bool	   *drop = palloc0(sizeof(bool) * rows->nrows);
		int			kept = 0;

		/* rows written by this very command are invisible to its deletes */
		CommandCounterIncrement();
		for (int s = 0; s < suspects->n; s++)
		{
			if (!stored[s])
				continue;
			simple_heap_delete(ids, &suspects->tids[s]);
			drop[suspects->rows[s]] = true;
		}
		for (int i = 0; i < rows->nrows; i++)
		{
			if (drop[i])
				continue;
			KeepRow(rows, kept, i);
			rows->partition[kept] = rows->partition[i];
			kept++;
		}
		rows->nrows = kept;
	}
	return !race;
}

static void
DirectStep(void *arg)
{
	DirectCall *call = arg;
	ChunkRows  *rows = call->rows;
	SourceInfo *src = rows->contract->source;
	EState	   *estate = CreateExecutorState();
	int		   *which = palloc(sizeof(int) * rows->nrows);
	Oid		   *parts = palloc(sizeof(Oid) * rows->nrows);
	int			nparts = 0;
	Relation	ids = table_open(src->ids_relid, RowExclusiveLock);
	Relation	raw = table_open(src->raw_relid, RowExclusiveLock);
	bool		ok = DirectWritable(ids, src->owner) && DirectWritable(raw, src->owner);

	/* the distinct partitions, each checked before anything is written */
	for (int i = 0; i < rows->nrows && ok; i++)
	{
		bool		seen = false;

		for (int p = 0; p < nparts && !seen; p++)
			seen = (parts[p] == rows->partition[i]);
		if (!seen)
		{
			Relation	part = table_open(rows->partition[i], RowExclusiveLock);

			ok = DirectWritable(part, src->owner);
			table_close(part, NoLock);
			parts[nparts++] = rows->partition[i];
		}
	}

	if (ok)
	{
		IdSuspects	suspects = {list_make1_oid(RelationGetPrimaryKeyIndex(ids)), 0,
			palloc(sizeof(int) * rows->nrows), palloc(sizeof(ItemPointerData) * rows->nrows)};

		/* in the chunk's order, by id: neighbouring ids share leaf pages */
		for (int i = 0; i < rows->nrows; i++)
			which[i] = i;
		MultiInsert(ids, rows, which, rows->nrows, estate, FillIdRow, &suspects,
					InvalidAttrNumber);
		if (suspects.n > 0 && !StoredIdsOut(ids, rows, &suspects))
		{
			call->race = true;
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("a concurrent batch is storing an id of this chunk")));
		}

		for (int p = 0; p < nparts; p++)
		{
			Relation	part = table_open(parts[p], RowExclusiveLock);
			int			n = 0;
			AttrNumber	batch_att = InvalidAttrNumber;

			for (int i = 0; i < rows->nrows; i++)
				if (rows->partition[i] == parts[p])
					which[n++] = i;
			rows->raw_map = RawColumnMap(rows->contract, RelationGetDescr(part));
			for (int a = 0; a < RelationGetDescr(part)->natts; a++)
				if (rows->raw_map[a] == RAW_FROM_BATCH)
					batch_att = a + 1;
			MultiInsert(part, rows, which, n, estate, FillRawRow, NULL, batch_att);
			table_close(part, NoLock);
		}
	}

	table_close(raw, NoLock);
	table_close(ids, NoLock);
	FreeExecutorState(estate);
	call->done = ok;
}

/* ---------------------------------------------------------------------
 * The statement path
 * ---------------------------------------------------------------------
 */

static Oid
ArrayTypeOf(Oid typid)
{
	Oid			arraytype = get_array_type(typid);

	if (!OidIsValid(arraytype))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("contract columns of type %s are not supported", format_type_be(typid)),
				 errdetail("Ingest passes each column as an array and this type has no array type.")));
	return arraytype;
}

static SPIPlanPtr
Prepare(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/*
 * The statements' parameters: $1 the batch, $2 the ids, $3... each
 * column's array, then the extra fields' (StatementArgs fills them).
 */
static Oid *
StatementTypes(Contract *c)
{
	Oid		   *types = palloc(sizeof(Oid) * (3 + c->ncols));

	types[0] = INT8OID;
	types[1] = ArrayTypeOf(c->cols[c->id_col].typid);
	for (int i = 0; i < c->ncols; i++)
		types[2 + i] = ArrayTypeOf(c->cols[i].typid);
	types[2 + c->ncols] = ArrayTypeOf(JSONBOID);
	return types;
}

/* "INSERT INTO raw (<columns>, _pl_batch, _pl_extra) SELECT u.c0, ..., $1, u.x FROM " */
static void
AppendRawInsert(StringInfo sql, Contract *c, const char *raw)
{
	appendStringInfo(sql, "INSERT INTO %s (", raw);
	for (int i = 0; i < c->ncols; i++)
		appendStringInfo(sql, "%s, ", quote_identifier(c->cols[i].name));
	appendStringInfoString(sql, "_pl_batch, _pl_extra) SELECT ");
	for (int i = 0; i < c->ncols; i++)
		appendStringInfo(sql, "u.c%d, ", i);
	appendStringInfoString(sql, "$1, u.x FROM ");
}

/*
 * INSERT INTO raw ... SELECT of the chunk's rows from the column arrays,
 * only those whose ids are new to the id table, which the statement fills
 * first (ON CONFLICT DO NOTHING waits for a concurrent inserter of the
 * same id and then skips it, so overlapping batches from many sessions
 * store each id once without a unique violation).
 */
static SPIPlanPtr
PrepareInsert(Contract *c)
{
	SourceInfo *src = c->source;
	StringInfoData sql;
	const char *raw = quote_qualified_identifier("pipeline", get_rel_name(src->raw_relid));
	const char *ids = quote_qualified_identifier("pipeline", get_rel_name(src->ids_relid));

	initStringInfo(&sql);
	/* $2 arrives sorted: unnest keeps array order, so no ORDER BY is needed */
	appendStringInfo(&sql,
					 "WITH new_ids AS ("
					 " INSERT INTO %s AS t (event_id, _pl_batch)"
					 " SELECT u.id, $1 FROM pg_catalog.unnest($2) AS u(id)"
					 " ON CONFLICT DO NOTHING RETURNING t.event_id) ", ids);
	AppendRawInsert(&sql, c, raw);
	/* ROWS FROM: the multi-argument unnest() sugar needs an unqualified name */
	appendStringInfoString(&sql, "ROWS FROM (");
	for (int i = 0; i < c->ncols; i++)
		appendStringInfo(&sql, "pg_catalog.unnest($%d), ", 3 + i);
	appendStringInfo(&sql, "pg_catalog.unnest($%d)) AS u(", 3 + c->ncols);
	for (int i = 0; i < c->ncols; i++)
		appendStringInfo(&sql, "c%d, ", i);
	appendStringInfo(&sql, "x) WHERE u.c%d IN (SELECT n.event_id FROM new_ids AS n)", c->id_col);

	return Prepare(sql.data, 3 + c->ncols, StatementTypes(c));
}

/*
 * INSERT INTO raw ... SELECT of the chunk's rows from
 * pipeline._pending_rows(), which hands them over as they are: through
 * one array per column, each row would be copied once per column into the
 * function scans' stores, and each array once more into the plan.
 */
static SPIPlanPtr
PreparePendingInsert(Contract *c)
{
	StringInfoData sql;
	Oid			types[1] = {INT8OID};

	initStringInfo(&sql);
	AppendRawInsert(&sql, c, quote_qualified_identifier("pipeline", get_rel_name(c->source->raw_relid)));
	appendStringInfoString(&sql, "pipeline._pending_rows() AS u(");
	for (int i = 0; i < c->ncols; i++)
		appendStringInfo(&sql, "c%d %s, ", i,
						 format_type_with_typemod(c->cols[i].typid, c->cols[i].typmod));
	appendStringInfoString(&sql, "x pg_catalog.jsonb)");
	return Prepare(sql.data, 1, types);
}

/*
 * INSERT INTO ids ... SELECT of the chunk's ids; skip_stored: ON CONFLICT
 * DO NOTHING RETURNING the new ones
 */
static SPIPlanPtr
PrepareIdsInsert(Contract *c, bool skip_stored)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "INSERT INTO %s AS t (event_id, _pl_batch)"
					 " SELECT u.id, $1 FROM pg_catalog.unnest($2) AS u(id)%s",
					 quote_qualified_identifier("pipeline", get_rel_name(c->source->ids_relid)),
					 skip_stored ? " ON CONFLICT DO NOTHING RETURNING t.event_id" : "");
	return Prepare(sql.data, 2, StatementTypes(c));
}

static Datum
MakeArray(Datum *values, bool *nulls, int n, Oid typid, int16 typlen, bool byval, char align)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};

	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
											  typid, typlen, byval, align));
}

/* the statements' parameters; only $1 and $2 unless all_columns */
static Datum *
StatementArgs(ChunkRows *rows, bool all_columns)
{
	Contract   *c = rows->contract;
	Datum	   *args = palloc0(sizeof(Datum) * (3 + c->ncols));

	args[0] = Int64GetDatum(rows->batch_id);
	for (int i = 0; i < c->ncols; i++)
	{
		ContractColumn *col = &c->cols[i];

		if (all_columns || i == c->id_col)
			args[2 + i] = MakeArray(rows->values[i], rows->nulls[i], rows->nrows, col->typid,
									col->typlen, col->typbyval, col->typalign);
	}
	args[1] = args[2 + c->id_col];
	if (all_columns)
		args[2 + c->ncols] = MakeArray(rows->extra, rows->extra_null, rows->nrows,
									   JSONBOID, -1, false, TYPALIGN_INT);
	return args;
}

/* moves row i of the chunk to position kept (kept <= i) */
static void
KeepRow(ChunkRows *rows, int kept, int i)
{
	for (int j = 0; j < rows->contract->ncols; j++)
	{
		rows->values[j][kept] = rows->values[j][i];
		rows->nulls[j][kept] = rows->nulls[j][i];
	}
	rows->extra[kept] = rows->extra[i];
	rows->extra_null[kept] = rows->extra_null[i];
}

static int64
InsertByStatement(ChunkRows *rows)
{
	RawStoreEntry *e = GetEntry(rows->contract->source);
	int			rc;

	if (e->insert_plan == NULL)
		e->insert_plan = PrepareInsert(rows->contract);
	rc = SPI_execute_plan(e->insert_plan, StatementArgs(rows, true), NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "raw insert failed: %s", SPI_result_code_string(rc));
	return (int64) SPI_processed;
}

static int
CompareIds(const void *a, const void *b, void *arg)
{
	return ContractCompareIds((Contract *) arg, *(const Datum *) a, *(const Datum *) b);
}

/*
 * Collects the ids an INSERT ... RETURNING returns.  Through SPI's own
 * receiver, SPI checks that the rows it received are as many as the
 * statement says it processed, and Citus, for an INSERT ... SELECT with
 * ON CONFLICT DO NOTHING, says how many rows the SELECT gave.
 */
typedef struct IdCollector
{
	DestReceiver pub;
	Contract   *contract;
	MemoryContext cxt;			/* the caller's: the executor's goes first */
	Datum	   *ids;
	int			n;
	int			max;
} IdCollector;

static bool
CollectId(TupleTableSlot *slot, DestReceiver *self)
{
	IdCollector *col = (IdCollector *) self;
	ContractColumn *idcol = &col->contract->cols[col->contract->id_col];
	bool		isnull;
	Datum		id = slot_getattr(slot, 1, &isnull);
	MemoryContext old = MemoryContextSwitchTo(col->cxt);

	if (col->n == col->max)
	{
		col->max *= 2;
		col->ids = repalloc(col->ids, sizeof(Datum) * col->max);
	}
	col->ids[col->n++] = datumCopy(id, idcol->typbyval, idcol->typlen);
	MemoryContextSwitchTo(old);
	return true;
}

static void
CollectorStartup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
CollectorNothing(DestReceiver *self)
{
}

/* the chunk's ids, sent plainly */
typedef struct IdsCall
{
	SPIPlanPtr	plan;
	Datum	   *args;
} IdsCall;

static void
IdsStep(void *arg)
{
	IdsCall    *call = arg;
	int			rc = SPI_execute_plan(call->plan, call->args, NULL, false, 0);

	if (rc != SPI_OK_INSERT)
		elog(ERROR, "id insert failed: %s", SPI_result_code_string(rc));
}

/* sends the chunk's ids plainly: true if none was stored */
static bool
SendIds(SPIPlanPtr plan, Datum *args)
{
	IdsCall		call = {plan, args};
	ErrorData  *edata = PipelineCatchError(IdsStep, &call);

	if (edata == NULL)
		return true;
	FreeErrorData(edata);
	return false;
}

/*
 * Sends the chunk's ids with ON CONFLICT DO NOTHING and keeps the rows of
 * those that came back; false if none did
 */
static bool
SendNewIds(ChunkRows *rows, RawStoreEntry *e, Datum *args)
{
	Contract   *c = rows->contract;
	IdCollector col = {{CollectId, CollectorStartup, CollectorNothing, CollectorNothing, DestNone},
					   c, CurrentMemoryContext, palloc(sizeof(Datum) * 64), 0, 64};
	SPIExecuteOptions options = {0};
	ParamListInfo params = makeParamList(2);
	Datum	   *id = rows->values[c->id_col];
	int			kept = 0;
	int			j = 0;
	int			rc;

	for (int i = 0; i < 2; i++)
	{
		params->params[i].value = args[i];
		params->params[i].isnull = false;
		params->params[i].pflags = PARAM_FLAG_CONST;
		params->params[i].ptype = i == 0 ? INT8OID : ArrayTypeOf(c->cols[c->id_col].typid);
	}
	options.params = params;
	options.dest = (DestReceiver *) &col;
	rc = SPI_execute_plan_extended(e->new_ids_plan, &options);
	if (rc != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "id insert failed: %s", SPI_result_code_string(rc));
	e->probe_first = col.n < rows->nrows;
	if (col.n == rows->nrows)
		return true;

	qsort_arg(col.ids, col.n, sizeof(Datum), CompareIds, c);
	for (int i = 0; i < rows->nrows && j < col.n; i++)
	{
		while (j < col.n && ContractCompareIds(c, col.ids[j], id[i]) < 0)
			j++;
		if (j < col.n && ContractCompareIds(c, col.ids[j], id[i]) == 0)
			KeepRow(rows, kept++, i);
	}
	rows->nrows = kept;
	return kept > 0;
}

/*
 * A distributed source's chunk, in two statements: its ids, then the
 * rows of those that were new.  As on the direct path, the ids are first
 * sent plainly, which Citus does by COPY into each worker's shards.  A
 * stored id fails that whole, and the chunk's ids are sent again with ON
 * CONFLICT DO NOTHING RETURNING the new ones (Citus stages them in a file
 * on each worker and inserts them one by one), as are the next chunks of
 * the source until one has no stored id.  The plain attempt's error is not
 * trusted to say why: Citus reports a worker's unique violation in a COPY
 * as an internal error (XX000).  Whatever else it was, the second
 * statement raises it again.
 *
 * In one statement (the ids in a CTE, as InsertByStatement), Citus keeps
 * the CTE's result in an intermediate result on the coordinator, writes
 * it to a file and reads it back to filter the rows; here the filter is a
 * merge of two sorted lists, and the rows go to the shards as Citus copies
 * the result of a plain INSERT ... SELECT, and nothing else.
 */
static int64
InsertDistributed(ChunkRows *rows)
{
	Contract   *c = rows->contract;
	RawStoreEntry *e = GetEntry(c->source);
	Datum	   *args = StatementArgs(rows, false);	/* the rows go by _pending_rows() */
	int			nest;
	int			rc;

	if (e->ids_plan == NULL)
		e->ids_plan = PrepareIdsInsert(c, false);
	if (e->new_ids_plan == NULL)
		e->new_ids_plan = PrepareIdsInsert(c, true);
	if (e->rows_plan == NULL)
		e->rows_plan = PreparePendingInsert(c);

	/*
	 * One connection per worker for both statements: a chunk writes every
	 * shard, and Citus would otherwise open one per shard, each prepared
	 * and committed on its own at the end of the batch.  Measured on the
	 * benchmark's 2 shards per worker: a third less CPU per event on the
	 * coordinator and on the workers.  (The setting goes with the nesting
	 * level, or with the (sub)transaction if an error comes first.)
	 */
	nest = NewGUCNestLevel();
	(void) set_config_option("citus.max_adaptive_executor_pool_size", "1", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	if ((e->probe_first || !SendIds(e->ids_plan, args)) && !SendNewIds(rows, e, args))
	{
		AtEOXact_GUC(false, nest);
		return 0;
	}

	pending_rows = rows;
	PG_TRY();
	{
		rc = SPI_execute_plan(e->rows_plan, args, NULL, false, 0);
	}
	PG_FINALLY();
	{
		pending_rows = NULL;
	}
	PG_END_TRY();
	AtEOXact_GUC(false, nest);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "raw insert failed: %s", SPI_result_code_string(rc));
	return (int64) SPI_processed;
}

/*
 * pipeline._pending_rows(): the rows of the chunk being sent to a
 * distributed source's shards, as the columns of the contract and the
 * extra fields (jsonb).  Only ingest's own statement calls it; anywhere
 * else there is no chunk.
 */
PG_FUNCTION_INFO_V1(pipeline_pending_rows);
Datum
pipeline_pending_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ChunkRows  *rows = pending_rows;
	int			ncols;
	Datum	   *values;
	bool	   *nulls;

	if (rows == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline._pending_rows() reads the rows of an ingest in progress"),
				 errhint("It is called by pipeline.ingest() on a distributed source, not directly.")));
	ncols = rows->contract->ncols;
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	/* the datums go out as they are: their types must be the chunk's */
	for (int j = 0; j <= ncols; j++)
		if (rsinfo->setDesc->natts != ncols + 1 ||
			TupleDescAttr(rsinfo->setDesc, j)->atttypid !=
			(j < ncols ? rows->contract->cols[j].typid : JSONBOID))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("pipeline._pending_rows() called with other columns than the chunk's")));
	values = palloc(sizeof(Datum) * (ncols + 1));
	nulls = palloc(sizeof(bool) * (ncols + 1));
	for (int i = 0; i < rows->nrows; i++)
	{
		for (int j = 0; j < ncols; j++)
		{
			values[j] = rows->values[j][i];
			nulls[j] = rows->nulls[j][i];
		}
		values[ncols] = rows->extra[i];
		nulls[ncols] = rows->extra_null[i];
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ---------------------------------------------------------------------
 * The probe
 * ---------------------------------------------------------------------
 */

/*
 * An equality key on the id table's primary key: the operator's function
 * is looked up once, each id only sets the argument.
 */
static void
IdScanKey(Relation pk, ScanKey key)
{
	Oid			eqop = get_opfamily_member(pk->rd_opfamily[0], pk->rd_opcintype[0],
										   pk->rd_opcintype[0], BTEqualStrategyNumber);

	ScanKeyEntryInitialize(key, 0, 1, BTEqualStrategyNumber, pk->rd_opcintype[0],
						   pk->rd_indcollation[0], get_opcode(eqop), (Datum) 0);
}

/*
 * Drops from the chunk, keeping its order, the rows whose ids the store
 * already holds.  One lookup in the id table's primary key per id, under
 * the latest snapshot (ids committed by now, or written by this
 * transaction's earlier statements).  Done through
 * the index directly, not by a planned query: a plan cached while the id
 * table was small would scan it whole once it is large.
 */
static void
DropStoredIds(ChunkRows *rows)
{
	Contract   *c = rows->contract;
	Relation	ids = table_open(c->source->ids_relid, AccessShareLock);
	Relation	pk = index_open(RelationGetPrimaryKeyIndex(ids), AccessShareLock);
	Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
	TupleTableSlot *slot = table_slot_create(ids, NULL);
	IndexScanDesc scan = index_beginscan(ids, pk, snapshot, 1, 0);
	Datum	   *id = rows->values[c->id_col];
	int			kept = 0;
	ScanKeyData key;

	IdScanKey(pk, &key);
	for (int i = 0; i < rows->nrows; i++)
	{
		key.sk_argument = id[i];
		index_rescan(scan, &key, 1, NULL, 0);
		if (index_getnext_slot(scan, ForwardScanDirection, slot))
			continue;
		KeepRow(rows, kept++, i);
	}

	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(pk, AccessShareLock);
	table_close(ids, AccessShareLock);

	rows->nrows = kept;
}

/*
 * Inserts one chunk's rows (column-major, deduplicated within the batch,
 * sorted by id) and returns how many were new to the store.  The arrays
 * are compacted in place (stored ids dropped).
 */
int64
RawStoreInsert(Contract *c, int64 batch_id, int nrows,
			   Datum **values, bool **nulls, Datum *extra, bool *extra_null)
{
	ChunkRows	rows = {c, batch_id, nrows, values, nulls, extra, extra_null, NULL, NULL};
	RawStoreEntry *e = GetEntry(c->source);
	DirectCall	call = {&rows, false, false};
	ErrorData  *edata;

	if (nrows == 0)
		return 0;
	if (Distributed(c->source))
	{
		EnsurePartitions(c->source, values[c->time_col], rows.nrows, palloc(sizeof(Oid) * nrows));
		return InsertDistributed(&rows);
	}
	rows.partition = palloc(sizeof(Oid) * nrows);

	/*
	 * A producer that re-sends whole batches tends to keep doing so: after
	 * a chunk that was mostly stored ids, probe before writing (one lookup
	 * per id), until a chunk has few.  A few stored ids cost less found by
	 * the direct path itself.
	 */
	if (e->probe_first)
	{
		DropStoredIds(&rows);
		if (rows.nrows == 0)
			return 0;
	}

	EnsurePartitions(c->source, values[c->time_col], rows.nrows, rows.partition);
	edata = PipelineCatchError(DirectStep, &call);
	if (edata == NULL && call.done)
	{
		e->probe_first = (int64) (nrows - rows.nrows) * 4 >= nrows;
		return rows.nrows;
	}

	/*
	 * Not direct-writable, a concurrent batch writing one of the ids, or a
	 * unique index the source owner added to the id table.
	 */
	if (edata != NULL && !call.race &&
		edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION &&
		edata->sqlerrcode != ERRCODE_T_R_DEADLOCK_DETECTED)
		ReThrowError(edata);
	return InsertByStatement(&rows);
}
