/*
 * raw_store.c
 *	  Writing accepted events: day partitions on demand, and the one
 *	  statement that deduplicates against everything stored and inserts.
 *
 * Dedup against the store goes through pipeline.<source>_ids, whose primary
 * key is the event id (a unique index on the partitioned raw table would
 * have to include the event time).  One statement per batch:
 *
 *	 WITH new_ids AS (INSERT INTO ids SELECT ... ON CONFLICT DO NOTHING
 *					  RETURNING event_id)
 *	 INSERT INTO raw SELECT ... FROM unnest(<column arrays>)
 *	  WHERE id IN (SELECT event_id FROM new_ids)
 *
 * ON CONFLICT DO NOTHING waits for a concurrent inserter of the same id and
 * then skips it, so overlapping batches from many sessions store each id
 * once without a unique violation.  The ids arrive sorted (ingest.c sorts
 * to deduplicate within the batch), so concurrent batches take the index
 * locks in the same order and cannot deadlock one another.
 *
 * Per backend we cache, for each raw table, the prepared statement and the
 * [lo, hi) bounds of the partitions known to exist, so that most batches
 * never call pipeline._ensure_partitions().  A relcache invalidation of the
 * raw table (a partition attached, detached or dropped, a contract change)
 * forgets both.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "ingest.h"

typedef struct PartitionRange
{
	TimestampTz lo;
	TimestampTz hi;
} PartitionRange;

typedef struct RawStoreEntry
{
	Oid			raw_relid;		/* hash key */
	int			contract_version;
	SPIPlanPtr	insert_plan;
	int			nranges;
	int			maxranges;
	PartitionRange *ranges;
} RawStoreEntry;

static HTAB *raw_store = NULL;

static void
ForgetEntry(RawStoreEntry *e)
{
	e->nranges = 0;
	if (e->insert_plan != NULL)
	{
		SPI_freeplan(e->insert_plan);
		e->insert_plan = NULL;
	}
}

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
			e->nranges = 0;		/* the plan revalidates itself */
		return;
	}
	hash_seq_init(&seq, raw_store);
	while ((e = hash_seq_search(&seq)) != NULL)
		e->nranges = 0;
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
		e->nranges = 0;
		e->maxranges = 8;
		e->ranges = MemoryContextAlloc(TopMemoryContext, sizeof(PartitionRange) * e->maxranges);
		e->contract_version = src->contract_version;
	}
	if (e->contract_version != src->contract_version)
	{
		ForgetEntry(e);
		e->contract_version = src->contract_version;
	}
	return e;
}

static bool
KnownPartition(RawStoreEntry *e, TimestampTz t)
{
	for (int i = 0; i < e->nranges; i++)
	{
		if (t >= e->ranges[i].lo && t < e->ranges[i].hi)
			return true;
	}
	return false;
}

void
RawStoreEnsurePartitions(SourceInfo *src, Datum *times, int n)
{
	static SPIPlanPtr plan = NULL;
	RawStoreEntry *e = GetEntry(src);
	Datum	   *unknown = palloc(sizeof(Datum) * n);
	int			nunknown = 0;
	Datum		args[2];

	for (int i = 0; i < n; i++)
	{
		if (!KnownPartition(e, DatumGetTimestampTz(times[i])))
			unknown[nunknown++] = times[i];
	}
	if (nunknown == 0)
		return;

	if (plan == NULL)
	{
		Oid			types[2] = {TEXTOID, TIMESTAMPTZARRAYOID};
		SPIPlanPtr	p = SPI_prepare("SELECT lo, hi FROM pipeline._ensure_partitions($1, $2)",
									2, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		plan = p;
	}
	args[0] = CStringGetTextDatum(src->name);
	args[1] = PointerGetDatum(construct_array(unknown, nunknown, TIMESTAMPTZOID,
											  sizeof(TimestampTz), true, TYPALIGN_DOUBLE));
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pipeline._ensure_partitions failed");

	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		HeapTuple	tup = SPI_tuptable->vals[r];

		if (e->nranges == e->maxranges)
		{
			e->maxranges *= 2;
			e->ranges = repalloc(e->ranges, sizeof(PartitionRange) * e->maxranges);
		}
		e->ranges[e->nranges].lo = DatumGetTimestampTz(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		e->ranges[e->nranges].hi = DatumGetTimestampTz(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		e->nranges++;
	}
}

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
PrepareInsert(Contract *c)
{
	SourceInfo *src = c->source;
	StringInfoData sql;
	int			nargs = 3 + c->ncols;
	Oid		   *types = palloc(sizeof(Oid) * nargs);
	const char *raw = quote_qualified_identifier("pipeline", get_rel_name(src->raw_relid));
	const char *ids = quote_qualified_identifier("pipeline", get_rel_name(src->ids_relid));
	SPIPlanPtr	plan;

	types[0] = INT8OID;
	types[1] = ArrayTypeOf(c->cols[c->id_col].typid);
	for (int i = 0; i < c->ncols; i++)
		types[2 + i] = ArrayTypeOf(c->cols[i].typid);
	types[2 + c->ncols] = ArrayTypeOf(JSONBOID);

	initStringInfo(&sql);
	/* $2 arrives sorted: unnest keeps array order, so no ORDER BY is needed */
	appendStringInfo(&sql,
					 "WITH new_ids AS ("
					 " INSERT INTO %s AS t (event_id, _pl_batch)"
					 " SELECT u.id, $1 FROM pg_catalog.unnest($2) AS u(id)"
					 " ON CONFLICT DO NOTHING RETURNING t.event_id)"
					 " INSERT INTO %s (", ids, raw);
	for (int i = 0; i < c->ncols; i++)
		appendStringInfo(&sql, "%s, ", quote_identifier(c->cols[i].name));
	appendStringInfoString(&sql, "_pl_batch, _pl_extra) SELECT ");
	for (int i = 0; i < c->ncols; i++)
		appendStringInfo(&sql, "u.c%d, ", i);
	/* ROWS FROM: the multi-argument unnest() sugar needs an unqualified name */
	appendStringInfoString(&sql, "$1, u.x FROM ROWS FROM (");
	for (int i = 0; i < c->ncols; i++)
		appendStringInfo(&sql, "pg_catalog.unnest($%d), ", 3 + i);
	appendStringInfo(&sql, "pg_catalog.unnest($%d)) AS u(", 3 + c->ncols);
	for (int i = 0; i < c->ncols; i++)
		appendStringInfo(&sql, "c%d, ", i);
	appendStringInfo(&sql, "x) WHERE u.c%d IN (SELECT n.event_id FROM new_ids AS n)", c->id_col);

	plan = SPI_prepare(sql.data, nargs, types);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql.data,
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

static Datum
MakeArray(Datum *values, bool *nulls, int n, Oid typid, int16 typlen, bool byval, char align)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};

	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
											  typid, typlen, byval, align));
}

/*
 * Inserts rows (column-major, already deduplicated and sorted by id) and
 * returns how many were new to the store.
 */
int64
RawStoreInsert(Contract *c, int64 batch_id, int nrows,
			   Datum **values, bool **nulls, Datum *extra, bool *extra_null)
{
	RawStoreEntry *e = GetEntry(c->source);
	int			nargs = 3 + c->ncols;
	Datum	   *args = palloc(sizeof(Datum) * nargs);
	int			rc;

	if (nrows == 0)
		return 0;
	if (e->insert_plan == NULL)
		e->insert_plan = PrepareInsert(c);

	args[0] = Int64GetDatum(batch_id);
	for (int i = 0; i < c->ncols; i++)
	{
		ContractColumn *col = &c->cols[i];

		args[2 + i] = MakeArray(values[i], nulls[i], nrows, col->typid,
								col->typlen, col->typbyval, col->typalign);
	}
	args[1] = args[2 + c->id_col];
	args[2 + c->ncols] = MakeArray(extra, extra_null, nrows, JSONBOID, -1, false, TYPALIGN_INT);

	rc = SPI_execute_plan(e->insert_plan, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "raw insert failed: %s", SPI_result_code_string(rc));
	return (int64) SPI_processed;
}
