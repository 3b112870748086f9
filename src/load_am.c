/*
 * load_am.c
 *	  pipeline_load, the table access method of the bulk path's load tables
 *	  (pipeline.<source>_load): rows inserted into such a table are handed
 *	  to the load in progress (load.c) and never stored.
 *
 * Taking the rows in the table's access method rather than in a BEFORE ROW
 * trigger lets COPY batch them: with no row trigger, COPY fills a buffer
 * of slots and hands it over in one multi_insert call, where a row trigger
 * cost a trigger call and a heap tuple formed and deformed again for every
 * row.  The slots are virtual, so the columns reach LoadAddRow as COPY
 * parsed them.
 *
 * Everything but inserting is heap's: the table is always empty, so its
 * scans, VACUUM, ANALYZE and pg_dump see an ordinary empty heap.  It has no
 * TOAST table and takes no index.
 *
 * Anyone may create a table with this access method, so the inserting
 * callbacks check that the table is a load table: in schema pipeline (only
 * the extension owner creates tables there), with the load_finish trigger
 * that create_source gives it, which also names its source.
 */
#include "postgres.h"

#include "access/tableam.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/rel.h"

#include "load.h"

/*
 * The source whose load table `rel` is, allocated in the current context;
 * an error for any other table, and for a load table whose statement
 * trigger would not fire (its rows would be taken and the load never
 * finished).
 */
static char *
LoadTableSource(Relation rel)
{
	TriggerDesc *trigdesc = rel->trigdesc;
	const char *relname = RelationGetRelationName(rel);

	if (RelationGetNamespace(rel) == get_namespace_oid("pipeline", true) && trigdesc != NULL)
	{
		for (int i = 0; i < trigdesc->numtriggers; i++)
		{
			Trigger    *t = &trigdesc->triggers[i];
			size_t		len;
			bool		fires;

			if (strcmp(t->tgname, "load_finish") != 0 || t->tgnargs != 1)
				continue;
			/* the table's name is the source's and "_load" */
			len = strlen(t->tgargs[0]);
			if (strncmp(relname, t->tgargs[0], len) != 0 || strcmp(relname + len, "_load") != 0)
				continue;
			fires = SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA
				? (t->tgenabled == TRIGGER_FIRES_ON_REPLICA || t->tgenabled == TRIGGER_FIRES_ALWAYS)
				: (t->tgenabled == TRIGGER_FIRES_ON_ORIGIN || t->tgenabled == TRIGGER_FIRES_ALWAYS);
			if (!fires)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("the load table of source \"%s\" takes no rows while its load_finish trigger does not fire",
								t->tgargs[0]),
						 errdetail("That trigger writes the load's last rows and its receipt."),
						 errhint("Enable the trigger, or load with session_replication_role = origin.")));
			return pstrdup(t->tgargs[0]);
		}
	}
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("table \"%s\" is not the load table of a pipeline source", relname),
			 errdetail("Access method pipeline_load takes rows only for the load tables pipeline.create_source() makes."),
			 errhint("COPY into pipeline.<source>_load.")));
	return NULL;				/* keep the compiler quiet */
}

static const TupleTableSlotOps *
LoadSlotCallbacks(Relation rel)
{
	return &TTSOpsVirtual;
}

/* COPY's buffered rows (up to 1,000 at a time) */
static void
LoadMultiInsert(Relation rel, TupleTableSlot **slots, int nslots,
				CommandId cid, int options, struct BulkInsertStateData *bistate)
{
	char	   *source = LoadTableSource(rel);
	TupleDesc	desc = RelationGetDescr(rel);

	for (int i = 0; i < nslots; i++)
	{
		slot_getallattrs(slots[i]);
		LoadAddRow(source, desc, slots[i]->tts_values, slots[i]->tts_isnull);
		slots[i]->tts_tableOid = RelationGetRelid(rel);
		ItemPointerSetInvalid(&slots[i]->tts_tid);
	}
	pfree(source);
}

/* INSERT's rows, one at a time */
static void
LoadTupleInsert(Relation rel, TupleTableSlot *slot, CommandId cid,
				int options, struct BulkInsertStateData *bistate)
{
	LoadMultiInsert(rel, &slot, 1, cid, options, bistate);
}

/* ON CONFLICT needs a unique index, which a load table does not have */
static void
LoadTupleInsertSpeculative(Relation rel, TupleTableSlot *slot, CommandId cid,
						   int options, struct BulkInsertStateData *bistate, uint32 specToken)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("INSERT ... ON CONFLICT is not supported on the load table \"%s\"",
					RelationGetRelationName(rel)),
			 errdetail("Deduplication on the event id is the bulk path's own.")));
}

static void
LoadTupleCompleteSpeculative(Relation rel, TupleTableSlot *slot, uint32 specToken,
							 bool succeeded)
{
}

/*
 * No rows, so no TOAST table (it would take this access method too, and
 * heap's index build, which building its index runs, refuses a table whose
 * access method is not heap's) and no index.
 */
static bool
LoadNeedsToastTable(Relation rel)
{
	return false;
}

static double
LoadIndexBuildRangeScan(Relation table_rel, Relation index_rel, struct IndexInfo *index_info,
						bool allow_sync, bool anyvisible, bool progress,
						BlockNumber start_blockno, BlockNumber numblocks,
						IndexBuildCallback callback, void *callback_state,
						TableScanDesc scan)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("load table \"%s\" cannot be indexed", RelationGetRelationName(table_rel)),
			 errdetail("A load table holds no rows: each row inserted is ingested into its source.")));
	return 0;					/* keep the compiler quiet */
}

PG_FUNCTION_INFO_V1(pipeline_load_am_handler);
Datum
pipeline_load_am_handler(PG_FUNCTION_ARGS)
{
	static TableAmRoutine routine;
	static bool made = false;

	if (!made)
	{
		routine = *GetHeapamTableAmRoutine();
		routine.slot_callbacks = LoadSlotCallbacks;
		routine.tuple_insert = LoadTupleInsert;
		routine.tuple_insert_speculative = LoadTupleInsertSpeculative;
		routine.tuple_complete_speculative = LoadTupleCompleteSpeculative;
		routine.multi_insert = LoadMultiInsert;
		routine.relation_needs_toast_table = LoadNeedsToastTable;
		routine.index_build_range_scan = LoadIndexBuildRangeScan;
		made = true;
	}
	PG_RETURN_POINTER(&routine);
}
