/*
 * ingest.c
 *	  pipeline.ingest(source, jsonb | text, batch_key): one batch in, one
 *	  receipt out.
 *
 * Order of work in a batch, and why:
 *	1. look the source up and check the caller may ingest;
 *	2. split the input into events (JSON array elements or NDJSON lines)
 *	   and refuse a malformed batch as a whole (NULL, a JSON object where an
 *	   array is expected) before anything is written;
 *	3. claim the batch: the receipt row is inserted first so that a retried
 *	   batch_key finds it (receipts.c);
 *	4. convert every event (validate.c).  Input functions and CHECK
 *	   expressions report errors by throwing, so the loop runs in a
 *	   subtransaction: when event i throws, the subtransaction is rolled
 *	   back, event i becomes a dead letter, and a new subtransaction resumes
 *	   at i + 1.  Events already converted keep their values (they live in
 *	   the batch context, not the subtransaction's), so a batch costs one
 *	   subtransaction plus one per bad event;
 *	5. sort the valid events by id with the id type's own ordering, keep the
 *	   first of each id (within-batch duplicates), create missing day
 *	   partitions, and insert, deduplicating against the store
 *	   (raw_store.c);
 *	6. write dead letters, drift counts and the final receipt.
 * received = accepted + duplicates + rejected holds by construction and is
 * also a CHECK constraint on pipeline.batch_log.
 *
 * Memory: steps 4 to 6 run per chunk of CHUNK_EVENTS events, so a large
 * batch needs the input plus one chunk's working set.  Each event is
 * converted in a scratch context reset every event; only the final values
 * are copied into the chunk context, which is reset after every chunk.
 * Duplicates across chunks are still counted once: a later chunk's insert
 * finds the earlier chunk's ids in the id table.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "ingest.h"
#include "pipeline.h"
#include "raw_store.h"
#include "receipts.h"
#include "validate.h"



static void
RequireArg(FunctionCallInfo fcinfo, int arg, const char *name, const char *hint)
{
	if (PG_ARGISNULL(arg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", name),
				 hint ? errhint("%s", hint) : 0));
}

static void
UseArray(Batch *b, Jsonb *events)
{
	if (!JB_ROOT_IS_ARRAY(events) || JB_ROOT_IS_SCALAR(events))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events must be a JSON array"),
				 errhint("Wrap a single event in brackets: '[{...}]'. NDJSON goes to the text form of pipeline.ingest().")));
	b->array = &events->root;
	b->n = JsonContainerSize(b->array);
}

typedef struct JsonParse
{
	char	   *text;
	Jsonb	   *result;
} JsonParse;

static void
ParseJsonStep(void *arg)
{
	JsonParse  *parse = arg;

	parse->result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(parse->text)));
}

/*
 * Text input: a JSON array if it parses as one, otherwise NDJSON, one event
 * per non-blank line (a trailing \r is dropped).  The lines stay where they
 * are in the argument, each with its length: copying a large payload into
 * new memory only to cut it into lines cost a page fault per 4 kB of it.
 * The rare uses that need a line as a C string copy it (LineString).
 */
static void
UseText(Batch *b, text *events)
{
	char	   *s = VARDATA_ANY(events);
	char	   *end = s + VARSIZE_ANY_EXHDR(events);
	char	   *p = s;
	int			cap = 64;

	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	if (p < end && *p == '[')
	{
		JsonParse	parse = {text_to_cstring(events), NULL};
		Jsonb	   *whole;

		(void) PipelineCatchError(ParseJsonStep, &parse);
		whole = parse.result;
		if (whole != NULL && JB_ROOT_IS_ARRAY(whole) && !JB_ROOT_IS_SCALAR(whole))
		{
			UseArray(b, whole);
			return;
		}
		pfree(parse.text);
	}

	b->lines = palloc(sizeof(char *) * cap);
	b->line_lens = palloc(sizeof(int) * cap);
	p = s;
	while (p < end)
	{
		char	   *eol = memchr(p, '\n', end - p);
		int			len = (int) ((eol ? eol : end) - p);
		bool		blank = true;

		for (int i = 0; i < len && blank; i++)
			blank = (p[i] == ' ' || p[i] == '\t' || p[i] == '\r');
		if (!blank)
		{
			if (b->n == cap)
			{
				cap *= 2;
				b->lines = repalloc(b->lines, sizeof(char *) * cap);
				b->line_lens = repalloc(b->line_lens, sizeof(int) * cap);
			}
			if (len > 0 && p[len - 1] == '\r')
				len--;
			b->lines[b->n] = p;
			b->line_lens[b->n] = len;
			b->n++;
		}
		if (eol == NULL)
			break;
		p = eol + 1;
	}
}

/* NDJSON line i as a C string, in the current memory context */
static char *
LineString(Batch *b, int i)
{
	return pnstrdup(b->lines[i], b->line_lens[i]);
}

/* a row of the bulk path as the JSON object it stands for: its fields as strings */
static Jsonb *
RowAsObject(Batch *b, int i)
{
	JsonbParseState *state = NULL;

	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int j = 0; j < b->row_width; j++)
	{
		JsonbValue	k;
		JsonbValue	v;

		if (b->rows[i][j] == NULL)
			continue;
		k.type = jbvString;
		k.val.string.val = b->row_names[j];
		k.val.string.len = strlen(b->row_names[j]);
		v.type = jbvString;
		v.val.string.val = b->rows[i][j];
		v.val.string.len = strlen(b->rows[i][j]);
		(void) pushJsonbValue(&state, WJB_KEY, &k);
		(void) pushJsonbValue(&state, WJB_VALUE, &v);
	}
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/* the event verbatim, as it goes into a dead letter */
static char *
EventPayload(Batch *b, int i)
{
	JsonbValue *v;

	if (b->rows != NULL)
	{
		Jsonb	   *row = RowAsObject(b, i);

		return JsonbToCString(NULL, &row->root, VARSIZE(row));
	}
	if (b->lines != NULL)
		return LineString(b, i);
	v = getIthJsonbValueFromContainer(b->array, i);
	if (v->type == jbvBinary)
		return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
	return JsonbToCString(NULL, &JsonbValueToJsonb(v)->root, 0);
}

/* k is the event's index in the chunk; strings are copied to the chunk context */
static void
RejectEvent(Batch *b, int k, int sqlstate, const char *field, char *error)
{
	b->valid[k] = false;
	b->why[k].sqlstate = sqlstate;
	b->why[k].field = field ? pstrdup(field) : NULL;
	b->why[k].error = error;
}

/* keeps event i's values (made in the scratch context) in the chunk context */
static void
KeepValues(Batch *b, int k)
{
	Contract   *c = b->contract;
	MemoryContext old = MemoryContextSwitchTo(b->chunk_cxt);

	for (int j = 0; j < c->ncols; j++)
	{
		ContractColumn *col = &c->cols[j];
		int			slot = k * c->ncols + j;

		if (!b->nulls[slot] && !col->typbyval)
			b->values[slot] = datumCopy(b->values[slot], false, col->typlen);
	}
	if (!b->extra_null[k])
		b->extra[k] = datumCopy(b->extra[k], false, -1);
	MemoryContextSwitchTo(old);
}

static void
ConvertOne(Batch *b, int i)
{
	Contract   *c = b->contract;
	JsonbContainer *event = NULL;
	int			k = i - b->start;
	MemoryContext old;

	MemoryContextReset(b->event_cxt);
	old = MemoryContextSwitchTo(b->event_cxt);
	c->current_field = NULL;
	if (b->rows != NULL)
	{
		/* the bulk path: typed by the contract straight from the row's text */
		b->valid[k] = ContractConvertFields(c, b->rows[i], b->field_of,
											&b->values[k * c->ncols], &b->nulls[k * c->ncols],
											&b->why[k]);
		b->extra_null[k] = true;
	}
	else if (b->lines != NULL && EventScanLine(c, b->lines[i], b->line_lens[i], b->scanned))
	{
		/* an NDJSON line whose keys are all columns: no jsonb (event_scan.c) */
		b->valid[k] = ContractConvertValues(c, b->scanned,
											&b->values[k * c->ncols], &b->nulls[k * c->ncols],
											&b->why[k]);
		b->extra_null[k] = true;
	}
	else
	{
		if (b->lines != NULL)
		{
			Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																CStringGetDatum(LineString(b, i))));

			if (JB_ROOT_IS_OBJECT(jb))
				event = &jb->root;
		}
		else
		{
			JsonbValue *v = getIthJsonbValueFromContainer(b->array, i);

			if (v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data))
				event = v->val.binary.data;
		}
		if (event == NULL)
		{
			MemoryContextSwitchTo(old);
			RejectEvent(b, k, ERRCODE_INVALID_PARAMETER_VALUE, NULL,
						pstrdup("event is not a JSON object"));
			return;
		}
		b->valid[k] = ContractConvertEvent(c, event,
										   &b->values[k * c->ncols], &b->nulls[k * c->ncols],
										   &b->extra[k], &b->extra_null[k],
										   b->drift, &b->why[k]);
	}
	MemoryContextSwitchTo(old);
	if (b->valid[k])
		KeepValues(b, k);
	else
		RejectEvent(b, k, b->why[k].sqlstate, b->why[k].field, pstrdup(b->why[k].error));
}

/*
 * The bulk path: which load column fills each contract column.  The load
 * table is made from the contract and made again with it (evolve_source),
 * so every load column is a contract column.
 */
static void
MapRowFields(Batch *b)
{
	Contract   *c = b->contract;

	b->field_of = palloc(sizeof(int) * c->ncols);
	for (int i = 0; i < c->ncols; i++)
		b->field_of[i] = -1;
	for (int j = 0; j < b->row_width; j++)
	{
		int			i;

		if (b->row_names[j] == NULL)
			continue;			/* a dropped column */
		i = ContractColumnByName(c, b->row_names[j]);

		if (i < 0)
			elog(ERROR, "column \"%s\" of the load table of source \"%s\" is not in its contract",
				 b->row_names[j], b->source->name);
		b->field_of[i] = j;
	}
}

static bool
MustPropagate(ErrorData *edata)
{
	return edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
		edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN ||
		edata->sqlerrcode == ERRCODE_OUT_OF_MEMORY;
}

/* step 4: see the file header */
static void
ConvertChunk(Batch *b)
{
	MemoryContext cxt = b->chunk_cxt;
	ResourceOwner owner = CurrentResourceOwner;
	volatile int i = b->start;

	MemoryContextSwitchTo(cxt);
	while (i < b->end)
	{
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(cxt);
		PG_TRY();
		{
			for (; i < b->end; i++)
			{
				CHECK_FOR_INTERRUPTS();
				ConvertOne(b, i);
			}
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
			if (MustPropagate(edata))
				ReThrowError(edata);
			RejectEvent(b, i - b->start, edata->sqlerrcode, b->contract->current_field,
						psprintf("%s%s%s%s%s",
								 b->contract->current_field ? "field \"" : "",
								 b->contract->current_field ? b->contract->current_field : "",
								 b->contract->current_field ? "\": " : "",
								 edata->message,
								 edata->detail ? psprintf(" (%s)", edata->detail) : ""));
			i++;
		}
		PG_END_TRY();
	}
}

/* qsort_arg comparator: by id, then by position (the first one wins) */
static int
CompareEvents(const void *a, const void *b, void *arg)
{
	Batch	   *batch = arg;
	Contract   *c = batch->contract;
	int			ia = *(const int *) a;
	int			ib = *(const int *) b;
	int			cmp = ContractCompareIds(c, batch->values[ia * c->ncols + c->id_col],
										 batch->values[ib * c->ncols + c->id_col]);

	if (cmp != 0)
		return cmp;
	return (ia > ib) - (ia < ib);
}

/*
 * step 5: returns the number stored; *in_batch_dups counts the rest, and
 * the receipt's event-time range grows to cover the chunk's valid events
 */
static int64
StoreValid(Batch *b, Receipt *receipt, int64 *in_batch_dups)
{
	Contract   *c = b->contract;
	int			n = b->end - b->start;
	int		   *order = palloc(sizeof(int) * Max(n, 1));
	int			nvalid = 0;
	int			nkept = 0;
	Datum	  **cols = palloc(sizeof(Datum *) * c->ncols);
	bool	  **colnulls = palloc(sizeof(bool *) * c->ncols);
	Datum	   *extra;
	bool	   *extra_null;

	for (int k = 0; k < n; k++)
		if (b->valid[k])
			order[nvalid++] = k;
	qsort_arg(order, nvalid, sizeof(int), CompareEvents, b);

	for (int k = 0; k < nvalid; k++)
	{
		if (nkept > 0 &&
			ContractCompareIds(c, b->values[order[k] * c->ncols + c->id_col],
							   b->values[order[nkept - 1] * c->ncols + c->id_col]) == 0)
			continue;
		order[nkept++] = order[k];
	}
	*in_batch_dups = nvalid - nkept;

	for (int j = 0; j < c->ncols; j++)
	{
		cols[j] = palloc(sizeof(Datum) * Max(nkept, 1));
		colnulls[j] = palloc(sizeof(bool) * Max(nkept, 1));
		for (int k = 0; k < nkept; k++)
		{
			cols[j][k] = b->values[order[k] * c->ncols + j];
			colnulls[j][k] = b->nulls[order[k] * c->ncols + j];
		}
	}
	extra = palloc(sizeof(Datum) * Max(nkept, 1));
	extra_null = palloc(sizeof(bool) * Max(nkept, 1));
	for (int k = 0; k < nkept; k++)
	{
		extra[k] = b->extra[order[k]];
		extra_null[k] = b->extra_null[order[k]];
	}

	if (nkept == 0)
		return 0;
	for (int k = 0; k < nkept; k++)
	{
		TimestampTz t = DatumGetTimestampTz(cols[c->time_col][k]);

		if (!receipt->has_event_times || t < receipt->min_event_time)
			receipt->min_event_time = t;
		if (!receipt->has_event_times || t > receipt->max_event_time)
			receipt->max_event_time = t;
		receipt->has_event_times = true;
	}
	return RawStoreInsert(c, receipt->batch_id, nkept, cols, colnulls, extra, extra_null);
}

static void
WriteRejections(Batch *b, int64 batch_id, int64 nrejected)
{
	char	  **payloads = palloc(sizeof(char *) * Max(nrejected, 1));
	Rejection  *why = palloc(sizeof(Rejection) * Max(nrejected, 1));
	int			n = 0;

	for (int k = 0; k < b->end - b->start; k++)
	{
		if (b->valid[k])
			continue;
		payloads[n] = EventPayload(b, b->start + k);
		why[n] = b->why[k];
		n++;
	}
	DeadLettersWrite(b->source, batch_id, n, payloads, why);
}

static void
EmitReceipt(FunctionCallInfo fcinfo, const Receipt *r)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[5];
	bool		nulls[5] = {false};

	values[0] = Int64GetDatum(r->batch_id);
	values[1] = Int64GetDatum(r->received);
	values[2] = Int64GetDatum(r->accepted);
	values[3] = Int64GetDatum(r->duplicates);
	values[4] = Int64GetDatum(r->rejected);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * Step 1: looks the source up and checks the caller may ingest.  SPI must
 * be connected; everything of the batch lives in b->batch_cxt.
 */
void
BatchOpen(Batch *b, const char *source)
{
	MemoryContextSwitchTo(b->batch_cxt);
	b->source = PipelineRequireSource(source);
	PipelineRequireWriter(b->source);
	b->extowner = PipelineExtensionOwner();
	MemoryContextSwitchTo(b->batch_cxt);
}

/*
 * Step 3: claims the batch.  Returns false when batch_key was used before:
 * b->receipt is then the original receipt and nothing is to be applied.
 */
bool
BatchClaim(Batch *b, const char *batch_key)
{
	RoleSwitch	role;
	bool		fresh;

	MemoryContextSwitchTo(b->batch_cxt);

	/*
	 * A batch of more than one chunk (a bulk load is one) keeps a first
	 * block of about what a chunk uses (its small allocations: 3 MB for a
	 * load's 10,000 rows): a reset keeps that block, so the next chunk
	 * reuses its pages instead of faulting in new ones.
	 */
	b->chunk_cxt = AllocSetContextCreate(b->batch_cxt, "pipeline ingest chunk",
										 (b->rows != NULL || b->n > CHUNK_EVENTS) ?
										 CHUNK_EVENTS * CHUNK_BYTES_PER_EVENT :
										 ALLOCSET_DEFAULT_MINSIZE,
										 ALLOCSET_DEFAULT_INITSIZE,
										 ALLOCSET_DEFAULT_MAXSIZE);
	b->event_cxt = AllocSetContextCreate(b->batch_cxt, "pipeline ingest event",
										 ALLOCSET_DEFAULT_SIZES);
	b->drift = DriftCounterCreate();

	PipelineBecome(b->extowner, &role);
	fresh = ReceiptBegin(b->source, batch_key, &b->receipt);
	PipelineRestoreRole(&role);
	MemoryContextSwitchTo(b->batch_cxt);
	if (fresh)
	{
		b->receipt.received = b->receipt.accepted = 0;
		b->receipt.duplicates = b->receipt.rejected = 0;
		b->receipt.has_event_times = false;
	}
	return fresh;
}

/*
 * The per-event arrays of a chunk of `size` events.  They outlive the
 * chunk: they are large allocations of their own, and memory given back
 * at every chunk came back from the kernel as fresh pages at the next, a
 * page fault each (with the chunk context's blocks, 9% of a bulk load).
 */
static void
ChunkArrays(Batch *b, int size)
{
	int			ncols = b->contract->ncols;

	if (size > b->chunk_rows || ncols != b->chunk_ncols)
	{
		MemoryContext old = MemoryContextSwitchTo(b->batch_cxt);
		int			rows = Max(size, b->chunk_rows);

		if (b->chunk_rows > 0)
		{
			pfree(b->values);
			pfree(b->nulls);
			pfree(b->extra);
			pfree(b->extra_null);
			pfree(b->valid);
			pfree(b->why);
			pfree(b->scanned);
		}
		b->values = palloc(sizeof(Datum) * rows * ncols);
		b->nulls = palloc(sizeof(bool) * rows * ncols);
		b->extra = palloc(sizeof(Datum) * rows);
		b->extra_null = palloc(sizeof(bool) * rows);
		b->valid = palloc(sizeof(bool) * rows);
		b->why = palloc(sizeof(Rejection) * rows);
		b->scanned = palloc(sizeof(JsonbValue *) * ncols);
		b->chunk_rows = rows;
		b->chunk_ncols = ncols;
		MemoryContextSwitchTo(old);
	}
	memset(b->valid, 0, sizeof(bool) * size);
	memset(b->why, 0, sizeof(Rejection) * size);
}

/*
 * Steps 4 to 6 for the events the batch holds now (b->n of them), chunk by
 * chunk; the receipt accumulates.  SPI must be connected.
 */
void
BatchRun(Batch *b)
{
	RoleSwitch	role;

	b->receipt.received += b->n;
	for (b->start = 0; b->start < b->n; b->start = b->end)
	{
		Relation	raw;
		int64		chunk_rejected = 0;
		int64		in_batch_dups = 0;
		int			size;

		b->end = Min(b->n, b->start + CHUNK_EVENTS);
		size = b->end - b->start;
		MemoryContextReset(b->chunk_cxt);

		/* conversion, CHECK/DEFAULT expressions, raw writes: as the owner */
		PipelineBecome(b->source->owner, &role);
		raw = table_open(b->source->raw_relid, RowExclusiveLock);
		MemoryContextSwitchTo(b->chunk_cxt);
		b->contract = ContractCompile(b->source, raw);
		if (b->rows != NULL)
			MapRowFields(b);
		ChunkArrays(b, size);

		ConvertChunk(b);
		/* ATTACH PARTITION refuses a parent this session has open: close it, keep the lock */
		ContractRelease(b->contract);
		table_close(raw, NoLock);

		MemoryContextSwitchTo(b->chunk_cxt);
		for (int k = 0; k < size; k++)
			chunk_rejected += b->valid[k] ? 0 : 1;
		b->receipt.accepted += StoreValid(b, &b->receipt, &in_batch_dups);
		b->receipt.rejected += chunk_rejected;
		PipelineRestoreRole(&role);

		PipelineBecome(b->extowner, &role);
		MemoryContextSwitchTo(b->chunk_cxt);
		WriteRejections(b, b->receipt.batch_id, chunk_rejected);
		PipelineRestoreRole(&role);
	}
	b->receipt.duplicates = b->receipt.received - b->receipt.rejected - b->receipt.accepted;
	MemoryContextReset(b->chunk_cxt);
	MemoryContextSwitchTo(b->batch_cxt);
}

/* the drift counts and the final receipt; SPI must be connected */
void
BatchFinish(Batch *b)
{
	RoleSwitch	role;

	PipelineBecome(b->extowner, &role);
	DriftWrite(b->source, b->drift);
	ReceiptFinish(&b->receipt);
	PipelineRestoreRole(&role);
}

static Datum
IngestBatch(FunctionCallInfo fcinfo, bool is_text)
{
	MemoryContext outer;
	Batch	   *b;
	char	   *source;
	char	   *batch_key;
	Receipt		receipt;

	RequireArg(fcinfo, 0, "source", NULL);
	RequireArg(fcinfo, 1, "events", "Send '[]' for an empty batch.");
	InitMaterializedSRF(fcinfo, 0);

	b = palloc0(sizeof(Batch));
	b->batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "pipeline ingest batch",
										 ALLOCSET_DEFAULT_SIZES);
	outer = MemoryContextSwitchTo(b->batch_cxt);
	source = text_to_cstring(PG_GETARG_TEXT_PP(0));
	batch_key = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	MemoryContextSwitchTo(b->batch_cxt);

	BatchOpen(b, source);
	/* a malformed batch is refused before anything is written */
	if (is_text)
		UseText(b, PG_GETARG_TEXT_PP(1));
	else
		UseArray(b, PG_GETARG_JSONB_P(1));

	if (BatchClaim(b, batch_key))
	{
		BatchRun(b);
		BatchFinish(b);
	}
	/* else: a retried batch_key, the original receipt, nothing applied */
	receipt = b->receipt;

	SPI_finish();
	MemoryContextSwitchTo(outer);
	EmitReceipt(fcinfo, &receipt);
	MemoryContextDelete(b->batch_cxt);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(pipeline_ingest_jsonb);
Datum
pipeline_ingest_jsonb(PG_FUNCTION_ARGS)
{
	return IngestBatch(fcinfo, false);
}

PG_FUNCTION_INFO_V1(pipeline_ingest_text);
Datum
pipeline_ingest_text(PG_FUNCTION_ARGS)
{
	return IngestBatch(fcinfo, true);
}
