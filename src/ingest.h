/*
 * ingest.h
 *	  One batch in progress and the calls that take it from the input to
 *	  its receipt (ingest.c): pipeline.ingest() and the bulk path (load.c)
 *	  both drive a batch through them.
 */
#ifndef PIPELINE_INGEST_H
#define PIPELINE_INGEST_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "catalog.h"
#include "receipts.h"
#include "validate.h"

/* rows per chunk: a large batch needs its input plus one chunk's working set */
#define CHUNK_EVENTS 10000

/* what a chunk allocates per event besides its arrays, about */
#define CHUNK_BYTES_PER_EVENT 400

/* one batch in progress */
typedef struct Batch
{
	MemoryContext batch_cxt;	/* everything of the batch */
	SourceInfo *source;
	Oid			extowner;
	Receipt		receipt;		/* accumulates over BatchRun calls */
	Contract   *contract;
	DriftCounter *drift;

	/* the events: array elements, NDJSON lines, or rows (bulk load) */
	int			n;
	JsonbContainer *array;		/* JSON array input */
	char	  **lines;			/* NDJSON input */
	int		   *line_lens;
	char	 ***rows;			/* rows of COPY into <source>_load: per row, the
								 * text of each load column, NULL if it has none */
	int			row_width;		/* the load table's columns */
	char	  **row_names;
	int		   *field_of;		/* per contract column, its load column or -1 */

	MemoryContext chunk_cxt;	/* reset after every chunk */
	MemoryContext event_cxt;	/* reset before every event */

	/*
	 * per event of the current chunk, indexed from the chunk's start; the
	 * arrays are made once per batch (for chunk_rows events of chunk_ncols
	 * columns) and reused by every chunk
	 */
	int			start;
	int			end;
	int			chunk_rows;
	int			chunk_ncols;
	Datum	   *values;			/* chunk size * ncols */
	bool	   *nulls;
	Datum	   *extra;
	bool	   *extra_null;
	bool	   *valid;
	Rejection  *why;
	JsonbValue **scanned;		/* per contract column, one NDJSON line's field */
} Batch;

extern void BatchOpen(Batch *b, const char *source);
extern bool BatchClaim(Batch *b, const char *batch_key);
extern void BatchRun(Batch *b);
extern void BatchFinish(Batch *b);

#endif							/* PIPELINE_INGEST_H */
