/*
 * pipeline.c
 *	  Module entry point: settings and the one init call per module.
 *
 * The library must be in shared_preload_libraries: the background workers
 * and their shared memory can only be set up by the postmaster.  When a
 * backend loads it on demand instead (CREATE EXTENSION without the preload
 * line), the settings are still defined so that SHOW works, and the install
 * script stops with an error that names the postgresql.conf line to add.
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "pipeline.h"

PG_MODULE_MAGIC;

bool		pipeline_enabled = true;
int			pipeline_hot_interval_ms = 1000;
int			pipeline_launcher_interval_s = 10;
int			pipeline_max_future_skew_s = 600;
bool		pipeline_preloaded = false;
char	   *pipeline_batch_key = NULL;
static bool pipeline_restating = false;
static int	pipeline_fold_hash_rows = 1000000;	/* read by pipeline._fold() */

void		_PG_init(void);

static void
DefineSettings(void)
{
	DefineCustomBoolVariable("pipeline.enabled",
							 "Lets the background workers fold new events.",
							 "When off, the workers stay connected but idle; "
							 "SQL calls such as pipeline.run_hot() still work.",
							 &pipeline_enabled,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("pipeline.hot_interval",
							"How often each database worker folds new events into hot tables.",
							NULL,
							&pipeline_hot_interval_ms,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pipeline.launcher_interval",
							"How often the launcher looks for databases that need a worker.",
							NULL,
							&pipeline_launcher_interval_s,
							10, 1, 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pipeline.max_future_skew",
							"How far in the future an event time may be before ingest rejects it.",
							"Producers' clocks drift; an event further ahead than this "
							"is dead-lettered instead of moving the watermark.",
							&pipeline_max_future_skew_s,
							600, 0, 365 * 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pipeline.fold_hash_rows",
							"Largest fold whose new rows are grouped by hashing rather than sorting.",
							"Hashing is faster; past the work_mem budget a hash aggregate stops "
							"taking new groups, but the states it holds keep growing with their rows, "
							"so a fold of more rows than this sorts them. 0 leaves it to the planner.",
							&pipeline_fold_hash_rows,
							1000000, 0, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("pipeline.batch_key",
							   "Batch key of the next COPY into a source's load table.",
							   "A retried load with the same key applies nothing and "
							   "reports the original receipt, as pipeline.ingest() does.",
							   &pipeline_batch_key,
							   "",
							   PGC_USERSET, 0,
							   NULL, NULL, NULL);

	/*
	 * Set, for its own transaction, by the restatement and drop functions
	 * (which run as the extension owner): the guard triggers of the daily
	 * tables let frozen rows change only while it is on.  Superuser-only,
	 * so no other role can turn the guard off.
	 */
	DefineCustomBoolVariable("pipeline.restating",
							 "Internal: a restatement is changing frozen days.",
							 NULL,
							 &pipeline_restating,
							 false,
							 PGC_SUSET, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("pipeline");
}

void
_PG_init(void)
{
	DefineSettings();

	if (!process_shared_preload_libraries_in_progress)
		return;

	pipeline_preloaded = true;
	PipelineShmemRequest();
	BatchRegistryShmemRequest();
	PipelineRegisterLauncher();
	PipelineWorkerInit();
}

/*
 * pipeline._require_preload(): called first by the install script, so that
 * CREATE EXTENSION fails with the line to add instead of installing an
 * extension whose workers can never run.
 */
PG_FUNCTION_INFO_V1(pipeline_require_preload);
Datum
pipeline_require_preload(PG_FUNCTION_ARGS)
{
	if (!pipeline_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline must be loaded through shared_preload_libraries"),
				 errdetail("Its background workers and shared memory can only be set up at server start."),
				 errhint("Add shared_preload_libraries = 'pg_cron,pipeline' to postgresql.conf and restart the server.")));
	PG_RETURN_VOID();
}
