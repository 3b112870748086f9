/*
 * load.c
 *	  The bulk path for history loads: COPY into pipeline.<source>_load.
 *
 *	  SET pipeline.batch_key = 'history-2026-10';	-- optional, as for ingest
 *	  COPY pipeline.orders_load FROM STDIN (FORMAT csv, HEADER);
 *	  NOTICE:  pipeline: batch 42 of source "orders": received 1000000, ...
 *
 * <source>_load has the contract's columns, all of type text, so that COPY
 * itself never rejects a row.  Its BEFORE ROW trigger takes each row (a
 * NULL or omitted column counts as a missing field, so the contract's
 * DEFAULT applies), returns NULL so nothing is written to the load table,
 * and hands every CHUNK_EVENTS rows to the same batch machinery as
 * pipeline.ingest(): the same checks, dead letters, deduplication and
 * direct writes.  The AFTER STATEMENT trigger writes the rest and the one
 * receipt of the whole COPY.  Memory stays at one chunk whatever the size
 * of the load.
 *
 * The row trigger is the bulk path's inner loop, so it keeps a row as the
 * texts of its columns (the batch types them by the contract, no JSON in
 * between), and it has no SET clause: a function's SET saves and restores
 * the setting on every call, a sixth of a load's time.  It pins
 * search_path itself around the statements it runs, once per chunk
 * (PipelinePinSearchPath); the statement trigger, called once, keeps its
 * SET clause.
 *
 * The load in progress lives in a context under TopTransactionContext; a
 * (sub)transaction that aborts mid-COPY forgets it.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "ingest.h"
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
	st->rows_cxt = AllocSetContextCreate(cxt, "pipeline load rows", ALLOCSET_DEFAULT_SIZES);
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
 * A row of the load table: the text of each column, NULL for a NULL.  The
 * row is deformed once: fetching its text columns one by one would walk it
 * from the start for each.
 */
static char **
RowFields(HeapTuple tuple, TupleDesc desc)
{
	char	  **fields = palloc(sizeof(char *) * desc->natts);
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *isnull = palloc(sizeof(bool) * desc->natts);

	heap_deform_tuple(tuple, desc, values, isnull);
	for (int i = 0; i < desc->natts; i++)
		fields[i] = (isnull[i] || TupleDescAttr(desc, i)->attisdropped) ? NULL : TextDatumGetCString(values[i]);
	pfree(values);
	pfree(isnull);
	return fields;
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

/* BEFORE INSERT FOR EACH ROW on <source>_load */
PG_FUNCTION_INFO_V1(pipeline_load_row);
Datum
pipeline_load_row(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const char *source = TriggerSource(fcinfo, true);
	MemoryContext old;

	if (load != NULL && strcmp(load->source, source) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("a load into source \"%s\" is still in progress", load->source)));
	if (load == NULL)
	{
		int			nest = PipelinePinSearchPath();

		LoadStart(source, RelationGetDescr(td->tg_relation));
		PipelineUnpinSearchPath(nest);
	}
	if (load->replay)
		PG_RETURN_POINTER(NULL);

	old = MemoryContextSwitchTo(load->rows_cxt);
	if (load->batch.n == load->capacity)
	{
		MemoryContextSwitchTo(load->batch.batch_cxt);
		load->capacity *= 2;
		load->batch.rows = repalloc(load->batch.rows, sizeof(char **) * load->capacity);
		MemoryContextSwitchTo(load->rows_cxt);
	}
	load->batch.rows[load->batch.n++] = RowFields(td->tg_trigtuple, RelationGetDescr(td->tg_relation));
	MemoryContextSwitchTo(old);
	if (load->batch.n >= CHUNK_EVENTS)
	{
		int			nest = PipelinePinSearchPath();

		LoadFlush();
		PipelineUnpinSearchPath(nest);
	}

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
