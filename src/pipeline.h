/*
 * pipeline.h
 *	  Declarations shared between the modules of the pipeline extension.
 *
 * Each C file owns one concern (see the header comment of each file); this
 * header only carries what crosses file boundaries: settings, the init
 * entry points called from _PG_init, and small shared helpers.
 */
#ifndef PIPELINE_H
#define PIPELINE_H

#include "postgres.h"

#include "fmgr.h"
#include "nodes/nodes.h"
#include "nodes/pg_list.h"
#include "executor/spi.h"

/* settings (defined in pipeline.c) */
extern bool pipeline_enabled;
extern int	pipeline_hot_interval_ms;
extern int	pipeline_launcher_interval_s;
extern int	pipeline_max_future_skew_s;
extern bool pipeline_preloaded;
extern char *pipeline_batch_key;

/* contract.c: shared with evolve.c */
struct Constraint;
extern void RefuseContract(const char *what, const char *detail) pg_attribute_noreturn();
extern void CheckConstraint(struct Constraint *c, const char *column);
extern List *ParseOrExplain(const char *sql);
extern void ExecuteUtility(Node *stmt, const char *sql);

/* subxact.c */
typedef void (*PipelineStep) (void *arg);
extern ErrorData *PipelineCatchError(PipelineStep step, void *arg);

/*
 * The memory context of the aggregate an aggregate support function
 * (sketch.c, quantile_core.c and the sketch types on it, digest.c) is
 * called for; an error if called directly.
 */
static inline MemoryContext
PipelineAggContext(FunctionCallInfo fcinfo, const char *name)
{
	MemoryContext aggcxt;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "%s called in non-aggregate context", name);
	return aggcxt;
}

/* restore.c */
extern void PipelineCheckRestored(void);
extern bool PipelineRebaseInWorker(void);

/* hot_runner.c */
extern void PipelineRunHot(void);

/* index_builder.c */
extern void PipelineStartIndexBuilderIfDue(void);
extern void PipelineYieldIndexBuilder(Node *stmt);

/* worker.c */
extern void PipelineShmemRequest(void);
extern void PipelineShmemStartup(void);
extern void PipelineRegisterLauncher(void);
extern void PipelineWorkerInit(void);
extern void PipelineStopDatabaseWorker(Oid dboid);

/* kept_plans.c */
extern SPIPlanPtr PipelineKeptPlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *types);

/* scale_out.c */
extern bool PipelineCitusInstalled(void);
extern bool PipelineSetFoldRunning(bool running);

/* batch_registry.c */
extern void BatchRegistryShmemRequest(void);
extern int64 BatchIdTake(void);

#endif							/* PIPELINE_H */
