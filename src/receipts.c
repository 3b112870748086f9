/*
 * receipts.c
 *	  The records ingest keeps about each batch: its receipt in
 *	  pipeline.batch_log, the dead letters, and the drift counts.
 *
 * All three are written as the extension owner: callers and source owners
 * can read them (as granted) but never write them directly, so a receipt
 * is always the ingest function's own account of a batch.
 *
 * Every batch takes its batch_id from the rows' sequence first, through
 * the batch registry (batch_registry.c), which tells the layers of a
 * distributed source which ids are still being written.  A batch_key is
 * then claimed by inserting the receipt row with that id, with
 * ON CONFLICT DO NOTHING on (source, batch_key): a second session sending
 * the same key waits for the first to commit and then finds its receipt,
 * so a retried batch returns the original receipt and applies nothing.
 * The row is completed at the end of the batch.  A batch without a key has
 * nothing to claim: it writes its receipt once, complete, at the end (in
 * the same transaction as its events, so nobody sees one without the
 * other).
 * Writing it twice cost small batches a tenth of their time: the second
 * write is an UPDATE of an indexed column (max_event_time), so a new row
 * version and an entry in every index of batch_log, and it was planned at
 * every batch (see ReceiptFinish).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "pipeline.h"
#include "receipts.h"

static void
ReadReceipt(HeapTuple tup, TupleDesc desc, Receipt *r)
{
	bool		isnull;

	r->batch_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	r->received = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
	r->accepted = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	r->duplicates = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
	r->rejected = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
}

/*
 * Claims the batch: returns true with a fresh batch_id, or false with the
 * receipt of the earlier batch that used the same key.
 */
bool
ReceiptBegin(SourceInfo *src, const char *batch_key, Receipt *receipt)
{
	static SPIPlanPtr insert_plan = NULL;
	static SPIPlanPtr select_plan = NULL;
	Oid			types[4] = {TEXTOID, TEXTOID, INT4OID, INT8OID};
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	/* receipts are numbered in this cluster's transaction ids (restore.c) */
	PipelineCheckRestored();

	receipt->source = src->name;
	receipt->contract_version = src->contract_version;
	/* numbered by the batch registry (batch_registry.c) */
	receipt->batch_id = BatchIdTake();
	if (batch_key == NULL)
	{
		receipt->stored = false;
		return true;
	}
	receipt->stored = true;

	args[0] = CStringGetTextDatum(src->name);
	args[1] = CStringGetTextDatum(batch_key);
	args[2] = Int32GetDatum(src->contract_version);
	args[3] = Int64GetDatum(receipt->batch_id);

	/* a key sent before keeps its batch: this id goes unused */
	PipelineKeptPlan(&insert_plan,
			"INSERT INTO pipeline.batch_log (source, batch_key, contract_version, batch_id)"
			" OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4)"
			" ON CONFLICT ON CONSTRAINT batch_key_once DO NOTHING"
			" RETURNING batch_id, received, accepted, duplicates, rejected",
			4, types);
	if (SPI_execute_plan(insert_plan, args, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not write the batch receipt");
	if (SPI_processed == 1)
	{
		ReadReceipt(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, receipt);
		return true;
	}

	PipelineKeptPlan(&select_plan,
			"SELECT batch_id, received, accepted, duplicates, rejected"
			" FROM pipeline.batch_log WHERE source = $1 AND batch_key = $2",
			2, types);
	/*
	 * Not read-only: a read-only plan reuses the statement's snapshot, taken
	 * before the batch we waited for committed, and would not see its row.
	 */
	if (SPI_execute_plan(select_plan, args, nulls, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "receipt of batch key \"%s\" not found", batch_key);
	ReadReceipt(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, receipt);
	return false;
}

void
ReceiptFinish(const Receipt *r)
{
	static SPIPlanPtr update_plan = NULL;
	static SPIPlanPtr insert_plan = NULL;
	Oid			types[9] = {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID,
	TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, INT4OID};
	Datum		args[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	args[0] = Int64GetDatum(r->batch_id);
	args[1] = Int64GetDatum(r->received);
	args[2] = Int64GetDatum(r->accepted);
	args[3] = Int64GetDatum(r->duplicates);
	args[4] = Int64GetDatum(r->rejected);
	args[5] = TimestampTzGetDatum(r->min_event_time);
	args[6] = TimestampTzGetDatum(r->max_event_time);
	args[7] = CStringGetTextDatum(r->source);
	args[8] = Int32GetDatum(r->contract_version);
	if (!r->has_event_times)
		nulls[5] = nulls[6] = 'n';

	if (!r->stored)
	{
		/* the defaults (xid, received_at, ingested_by) are the transaction's */
		PipelineKeptPlan(&insert_plan,
				"INSERT INTO pipeline.batch_log (batch_id, received, accepted, duplicates, rejected,"
				" min_event_time, max_event_time, source, contract_version) OVERRIDING SYSTEM VALUE"
				" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
				9, types);
		if (SPI_execute_plan(insert_plan, args, nulls, false, 0) != SPI_OK_INSERT || SPI_processed != 1)
			elog(ERROR, "could not write the receipt of batch " INT64_FORMAT, r->batch_id);
		return;
	}
	if (update_plan == NULL)
	{
		/*
		 * A custom plan every time: a generic plan made while batch_log was
		 * empty (a fresh install, or right after VACUUM) is a sequential
		 * scan, and would stay one as the table grows.
		 */
		SPIPlanPtr	p = SPI_prepare_cursor("UPDATE pipeline.batch_log SET received = $2, accepted = $3,"
										   " duplicates = $4, rejected = $5, min_event_time = $6,"
										   " max_event_time = $7 WHERE batch_id = $1",
										   7, types, CURSOR_OPT_CUSTOM_PLAN);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		update_plan = p;
	}
	if (SPI_execute_plan(update_plan, args, nulls, false, 0) != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "could not complete the receipt of batch " INT64_FORMAT, r->batch_id);
}

static Datum
TextArray(char **strings, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * n);
	bool	   *nulls = palloc(sizeof(bool) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};

	for (int i = 0; i < n; i++)
	{
		nulls[i] = (strings[i] == NULL);
		elems[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(strings[i]);
	}
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  TEXTOID, -1, false, TYPALIGN_INT));
}

void
DeadLettersWrite(SourceInfo *src, int64 batch_id, int n, char **payloads, Rejection *why)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[7] = {TEXTOID, INT8OID, INT4OID, TEXTARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, TEXTARRAYOID};
	Datum		args[7];
	char	  **errors = palloc(sizeof(char *) * n);
	char	  **codes = palloc(sizeof(char *) * n);
	char	  **fields = palloc(sizeof(char *) * n);

	if (n == 0)
		return;
	for (int i = 0; i < n; i++)
	{
		errors[i] = why[i].error;
		codes[i] = pstrdup(unpack_sql_state(why[i].sqlstate));
		fields[i] = why[i].field;
	}
	args[0] = CStringGetTextDatum(src->name);
	args[1] = Int64GetDatum(batch_id);
	args[2] = Int32GetDatum(src->contract_version);
	args[3] = TextArray(payloads, n);
	args[4] = TextArray(errors, n);
	args[5] = TextArray(codes, n);
	args[6] = TextArray(fields, n);
	PipelineKeptPlan(&plan,
			"INSERT INTO pipeline.dead_letters"
			" (source, batch_id, contract_version, payload, error, error_code, field)"
			" SELECT $1, $2, $3, u.p, u.e, u.c, u.f"
			" FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5),"
			" pg_catalog.unnest($6), pg_catalog.unnest($7)) AS u(p, e, c, f)",
			7, types);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write dead letters");
}

/*
 * An empty drift counter in the current memory context: validate.c counts
 * each unknown field of an accepted event into it, DriftWrite stores it.
 */
DriftCounter *
DriftCounterCreate(void)
{
	DriftCounter *d = palloc(sizeof(DriftCounter));
	HASHCTL		ctl;

	ctl.keysize = NAMEDATALEN * 2;
	ctl.entrysize = sizeof(DriftEntry);
	ctl.hcxt = CurrentMemoryContext;
	d->fields = hash_create("pipeline drift", 16, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	return d;
}

static int
CompareNames(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

void
DriftWrite(SourceInfo *src, DriftCounter *drift)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {TEXTOID, TEXTARRAYOID, INT8ARRAYOID};
	long		n = hash_get_num_entries(drift->fields);
	char	  **names;
	Datum	   *counts;
	Datum		args[3];
	HASH_SEQ_STATUS seq;
	DriftEntry *e;
	int			i = 0;

	if (n == 0)
		return;
	names = palloc(sizeof(char *) * n);
	counts = palloc(sizeof(Datum) * n);
	hash_seq_init(&seq, drift->fields);
	while ((e = hash_seq_search(&seq)) != NULL)
		names[i++] = e->field;
	/* one lock order for every session updating the same fields */
	qsort(names, n, sizeof(char *), CompareNames);
	for (i = 0; i < n; i++)
	{
		e = hash_search(drift->fields, names[i], HASH_FIND, NULL);
		counts[i] = Int64GetDatum(e->count);
	}
	args[0] = CStringGetTextDatum(src->name);
	args[1] = TextArray(names, n);
	args[2] = PointerGetDatum(construct_array(counts, n, INT8OID, 8, true, TYPALIGN_DOUBLE));
	PipelineKeptPlan(&plan,
			"INSERT INTO pipeline.drift_counts AS d (source, field, events, first_seen, last_seen)"
			" SELECT $1, u.f, u.n, pg_catalog.now(), pg_catalog.now()"
			" FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3)) AS u(f, n)"
			" ON CONFLICT (source, field) DO UPDATE"
			" SET events = d.events + excluded.events, last_seen = excluded.last_seen",
			3, types);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write drift counts");
}
