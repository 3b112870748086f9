/*
 * kept_plans.c
 *	  Statements prepared once per backend and kept for its life.
 *
 * Ingest runs the same few statements (numbering a batch, writing its
 * receipt, reading a source's aliases, making day partitions) for every
 * batch; planning them again each time cost small batches a noticeable
 * share of their time.  Each caller keeps its plan in a static pointer
 * and asks for it here: prepared on first use (SPI must be connected), in
 * SPI's kept plans from then on.
 */
#include "postgres.h"

#include "executor/spi.h"

#include "pipeline.h"

SPIPlanPtr
PipelineKeptPlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *types)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*cache = p;
	}
	return *cache;
}
