/*
 * load.c
 *	  The bulk path for history loads: COPY into pipeline.<source>_load.
 *
 *	  SET pipeline.batch_key = 'history-2026-10';	-- optional, as for ingest
 *	  COPY pipeline.orders_load FROM STDIN (FORMAT csv, HEADER);
 *	  NOTICE:  pipeline: batch 42 of source "orders": received 1000000, ...
 *
 * <source>_load has the contract's columns, all of type text, so that COPY
 * itself never rejects a row.  Its table access method (load_am.c) stores
 * nothing: it hands each row to LoadAddRow (a NULL or omitted column counts
 * as a missing field, so the contract's DEFAULT applies), which gives every
 * CHUNK_EVENTS rows to the same batch machinery as pipeline.ingest(): the
 * same checks, dead letters, deduplication and direct writes.  The AFTER
 * STATEMENT trigger writes the rest and the one receipt of the whole COPY.
 * Memory stays at one chunk whatever the size of the load.
 *
 * Rows reach LoadAddRow once per row, so it keeps a row as the texts of its
 * columns (the batch types them by the contract, no JSON in between), and
 * pins search_path itself around the statements it runs, once per chunk
 * (PipelinePinSearchPath): a SET clause would save and restore the setting
 * on every row.  The statement trigger, called once, keeps its SET clause.
 *
 * Before 0.2.0 a BEFORE ROW trigger took the rows (pipeline_load_row, kept
 * so that a 0.1.0 schema loads until ALTER EXTENSION UPDATE replaces its
 * load tables).
 *
 * The load in progress lives in a context under TopTransactionContext; a
 * (sub)transaction that aborts mid-COPY forgets it.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "ingest.h"
#include "load.h"
#include "receipts.h"

typedef struct LoadState
{
	Batch		batch;
	char	   *source;
	bool		replay;			/* batch_key seen before: apply nothing */
	int			capacity;		/* of batch.rows */
	MemoryContext rows_cxt;		/* the buffered rows, reset at each flush */
	SubTransactionId subxid;	/* where the load started */
} LoadState;

static LoadState *load = NULL;
static bool callbacks_registered = false;

static void
ForgetOnAbort(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_COMMIT || event == XACT_EVENT_PREPARE)
		load = NULL;			/* its memory goes with the transaction */
}

static void
ForgetOnSubAbort(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && load != NULL && load->subxid == mySubid)
		load = NULL;
}

static void
LoadStart(const char *source, TupleDesc desc)
{
	MemoryContext cxt = AllocSetContextCreate(TopTransactionContext, "pipeline load",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	LoadState  *st = palloc0(sizeof(LoadState));
	const char *key = GetConfigOption("pipeline.batch_key", false, false);

	if (!callbacks_registered)
	{
		RegisterXactCallback(ForgetOnAbort, NULL);
		RegisterSubXactCallback(ForgetOnSubAbort, NULL);
		callbacks_registered = true;
	}
	st->batch.batch_cxt = cxt;
	st->source = pstrdup(source);
	st->capacity = 1024;
	/* a first block that holds a chunk of narrow rows, kept over resets (ingest.c) */
	st->rows_cxt = AllocSetContextCreate(cxt, "pipeline load rows",
										 MAXALIGN(CHUNK_EVENTS * 200),
										 ALLOCSET_DEFAULT_INITSIZE,
										 ALLOCSET_DEFAULT_MAXSIZE);
	st->batch.rows = palloc(sizeof(char **) * st->capacity);
	st->batch.row_names = palloc(sizeof(char *) * desc->natts);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		/* (a dropped column keeps its slot, with no name: never a field) */
		st->batch.row_names[i] = att->attisdropped ? NULL : pstrdup(NameStr(att->attname));
	}
	st->batch.row_width = desc->natts;
	st->subxid = GetCurrentSubTransactionId();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	BatchOpen(&st->batch, source);
	st->replay = !BatchClaim(&st->batch, (key && key[0]) ? key : NULL);
	SPI_finish();
	MemoryContextSwitchTo(old);
	load = st;
}

static void
LoadFlush(void)
{
	MemoryContext old = CurrentMemoryContext;

	if (load->batch.n == 0)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	BatchRun(&load->batch);
	SPI_finish();
	load->batch.n = 0;
	MemoryContextReset(load->rows_cxt);
	MemoryContextSwitchTo(old);
}

/*
 * A row of the load table as the text of each column, NULL for a NULL, in
 * one allocation.
 */
static char **
RowFields(TupleDesc desc, Datum *values, bool *isnull)
{
	struct varlena **texts = palloc(sizeof(struct varlena *) * desc->natts);
	Size		size = sizeof(char *) * desc->natts;
	char	  **fields;
	char	   *pos;

	for (int i = 0; i < desc->natts; i++)
	{
		texts[i] = (isnull[i] || TupleDescAttr(desc, i)->attisdropped) ? NULL :
			pg_detoast_datum_packed((struct varlena *) DatumGetPointer(values[i]));
		if (texts[i] != NULL)
			size += VARSIZE_ANY_EXHDR(texts[i]) + 1;
	}
	fields = palloc(size);
	pos = (char *) (fields + desc->natts);
	for (int i = 0; i < desc->natts; i++)
	{
		if (texts[i] == NULL)
		{
			fields[i] = NULL;
			continue;
		}
		fields[i] = pos;
		memcpy(pos, VARDATA_ANY(texts[i]), VARSIZE_ANY_EXHDR(texts[i]));
		pos += VARSIZE_ANY_EXHDR(texts[i]);
		*pos++ = '\0';
	}
	pfree(texts);
	return fields;
}

/*
 * Takes one row of the load table of `source` (its columns as deformed
 * values): starts the load at its first row, and runs a chunk every
 * CHUNK_EVENTS rows.
 */
void
LoadAddRow(const char *source, TupleDesc desc, Datum *values, bool *isnull)
{
	MemoryContext old;

	if (load != NULL && strcmp(load->source, source) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("a load into source \"%s\" is still in progress", load->source)));
	if (load == NULL)
	{
		int			nest = PipelinePinSearchPath();

		LoadStart(source, desc);
		PipelineUnpinSearchPath(nest);
	}
	if (load->replay)
		return;

	old = MemoryContextSwitchTo(load->rows_cxt);
	if (load->batch.n == load->capacity)
	{
		MemoryContextSwitchTo(load->batch.batch_cxt);
		load->capacity *= 2;
		load->batch.rows = repalloc(load->batch.rows, sizeof(char **) * load->capacity);
		MemoryContextSwitchTo(load->rows_cxt);
	}
	load->batch.rows[load->batch.n++] = RowFields(desc, values, isnull);
	MemoryContextSwitchTo(old);
	if (load->batch.n >= CHUNK_EVENTS)
	{
		int			nest = PipelinePinSearchPath();

		LoadFlush();
		PipelineUnpinSearchPath(nest);
	}
}

static const char *
TriggerSource(FunctionCallInfo fcinfo, bool row)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_INSERT(td->tg_event) ||
		(row ? !TRIGGER_FIRED_FOR_ROW(td->tg_event) : !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event)) ||
		td->tg_trigger->tgnargs != 1)
		elog(ERROR, "pipeline load triggers must be %s INSERT triggers with the source as argument",
			 row ? "BEFORE ROW" : "AFTER STATEMENT");
	return td->tg_trigger->tgargs[0];
}

/*
 * BEFORE INSERT FOR EACH ROW on a 0.1.0 schema's <source>_load: the rows
 * until ALTER EXTENSION UPDATE gives the load tables their access method
 */
PG_FUNCTION_INFO_V1(pipeline_load_row);
Datum
pipeline_load_row(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const char *source = TriggerSource(fcinfo, true);
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *isnull = palloc(sizeof(bool) * desc->natts);

	heap_deform_tuple(td->tg_trigtuple, desc, values, isnull);
	LoadAddRow(source, desc, values, isnull);
	pfree(values);
	pfree(isnull);

	/* nothing is written to the load table */
	PG_RETURN_POINTER(NULL);
}

/* AFTER INSERT FOR EACH STATEMENT on <source>_load */
PG_FUNCTION_INFO_V1(pipeline_load_finish);
Datum
pipeline_load_finish(PG_FUNCTION_ARGS)
{
	const char *source = TriggerSource(fcinfo, false);
	LoadState  *st = load;
	Receipt    *r;

	if (st == NULL || strcmp(st->source, source) != 0)
		PG_RETURN_POINTER(NULL);	/* no row was loaded */

	if (!st->replay)
	{
		LoadFlush();
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		BatchFinish(&st->batch);
		SPI_finish();
	}
	r = &st->batch.receipt;
	ereport(NOTICE,
			(errmsg("pipeline: batch " INT64_FORMAT " of source \"%s\": received " INT64_FORMAT
					", accepted " INT64_FORMAT ", duplicates " INT64_FORMAT ", rejected " INT64_FORMAT,
					r->batch_id, source, r->received, r->accepted, r->duplicates, r->rejected),
			 st->replay ? errdetail("This batch_key was loaded before: nothing was applied, this is the original receipt.") : 0));
	load = NULL;
	MemoryContextDelete(st->batch.batch_cxt);
	PG_RETURN_POINTER(NULL);
}
