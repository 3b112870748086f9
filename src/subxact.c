/*
 * subxact.c
 *	  Running one step in a subtransaction and catching its error.
 *
 * Used where an error is an answer rather than a failure: a contract or a
 * metric definition that PostgreSQL's parser or analyzer refuses (restated
 * with the caller's words instead of a cursor into our own wrapper), or a
 * text batch that may or may not be one JSON array.  The subtransaction is
 * what makes catching safe: whatever the step acquired is released when it
 * rolls back.  Cancels and shutdowns are never swallowed.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "pipeline.h"

ErrorData *
PipelineCatchError(PipelineStep step, void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		step(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;

	if (edata != NULL &&
		(edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
		 edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN))
		ReThrowError(edata);
	return edata;
}
