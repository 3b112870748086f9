/*
 * ingest.h
 *	  What the ingest modules share: the source as read from the catalog,
 *	  the compiled contract, the per-batch result, and the calls between
 *	  catalog.c, validate.c, raw_store.c, receipts.c and ingest.c.
 */
#ifndef PIPELINE_INGEST_H
#define PIPELINE_INGEST_H

#include "postgres.h"

#include "executor/executor.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "utils/sortsupport.h"

/* a row of pipeline.source_catalog */
typedef struct SourceInfo
{
	char	   *name;
	int			contract_version;
	char	   *event_id;
	char	   *event_time;
	char	   *day_timezone;
	Oid			raw_relid;
	Oid			ids_relid;
	Oid			owner;
	TimestampTz retained_from;	/* earlier events: raw dropped by retention */
} SourceInfo;

/* one contract column, compiled for conversion */
typedef struct ContractColumn
{
	char	   *name;
	AttrNumber	attnum;			/* in the raw table */
	Oid			typid;
	int32		typmod;
	bool		typbyval;
	int16		typlen;
	char		typalign;
	bool		notnull;
	FmgrInfo	input;
	Oid			ioparam;
	ExprState  *default_expr;	/* NULL: no DEFAULT */
	List	   *aliases;		/* old names after renames (char *) */
} ContractColumn;

typedef struct ContractCheck
{
	char	   *name;
	char	   *columns;		/* the columns it reads, for the reason */
	ExprState  *expr;
} ContractCheck;

/* the contract of a source, compiled once per batch */
typedef struct Contract
{
	SourceInfo *source;
	int			ncols;
	ContractColumn *cols;
	int			id_col;			/* index into cols */
	int			time_col;
	int			nchecks;
	ContractCheck *checks;
	EState	   *estate;
	TupleTableSlot *slot;		/* a row of the raw table, for CHECKs */
	SortSupportData id_sort;	/* the id type's own ordering and equality */
	const char *current_field;	/* set while converting, names the culprit */
	TimestampTz min_event_time; /* 1900-01-01 */
	TimestampTz max_event_time; /* now + pipeline.max_future_skew */
	TimestampTz retained_from;	/* the dedup horizon: see SourceInfo */
} Contract;

/* why an event was rejected */
typedef struct Rejection
{
	char	   *error;
	char	   *field;
	int			sqlstate;
} Rejection;

/* unknown fields seen in one batch's accepted events */
typedef struct DriftEntry
{
	char		field[NAMEDATALEN * 2];	/* hash key; longer names are cut */
	int64		count;
} DriftEntry;

typedef struct DriftCounter
{
	HTAB	   *fields;			/* field name -> count */
} DriftCounter;

typedef struct Receipt
{
	int64		batch_id;
	int64		received;
	int64		accepted;
	int64		duplicates;
	int64		rejected;
	bool		has_event_times;	/* any valid event? */
	TimestampTz min_event_time; /* of the valid events */
	TimestampTz max_event_time;
} Receipt;

/* rows per chunk: a large batch needs its input plus one chunk's working set */
#define CHUNK_EVENTS 10000

/* one batch in progress (ingest.c) */
typedef struct Batch
{
	MemoryContext batch_cxt;	/* everything of the batch */
	SourceInfo *source;
	Oid			extowner;
	Receipt		receipt;		/* accumulates over BatchRun calls */
	Contract   *contract;
	DriftCounter *drift;

	/* the events: array elements, NDJSON lines, or objects (bulk load) */
	int			n;
	JsonbContainer *array;		/* JSON array input */
	char	  **lines;			/* NDJSON input */
	int		   *line_lens;
	Jsonb	  **objects;		/* rows of COPY into <source>_load */

	MemoryContext chunk_cxt;	/* reset after every chunk */
	MemoryContext event_cxt;	/* reset before every event */

	/* per event of the current chunk, indexed from the chunk's start */
	int			start;
	int			end;
	Datum	   *values;			/* chunk size * ncols */
	bool	   *nulls;
	Datum	   *extra;
	bool	   *extra_null;
	bool	   *valid;
	Rejection  *why;
} Batch;

/* who runs a step: the caller, the source owner or the extension owner */
typedef struct RoleSwitch
{
	Oid			saved_uid;
	int			saved_sec;
	int			guc_nest;		/* search_path is pinned at this level */
} RoleSwitch;

/* catalog.c */
extern SourceInfo *PipelineRequireSource(const char *name);
extern Oid	PipelineExtensionOwner(void);
extern void PipelineBecome(Oid role, RoleSwitch *saved);
extern void PipelineRestoreRole(RoleSwitch *saved);
extern void PipelineRequireWriter(SourceInfo *src);

/* validate.c */
extern Contract *ContractCompile(SourceInfo *src, Relation raw);
extern bool ContractConvertEvent(Contract *c, JsonbContainer *event,
								 Datum *values, bool *nulls,
								 Datum *extra, bool *extra_null,
								 DriftCounter *drift, Rejection *why);
extern void ContractRelease(Contract *c);
extern int	ContractCompareIds(Contract *c, Datum a, Datum b);
extern DriftCounter *DriftCounterCreate(void);

/* raw_store.c */
extern int64 RawStoreInsert(Contract *c, int64 batch_id, int nrows,
							Datum **values, bool **nulls, Datum *extra, bool *extra_null);

/* ingest.c */
extern void BatchOpen(Batch *b, const char *source);
extern bool BatchClaim(Batch *b, const char *batch_key);
extern void BatchRun(Batch *b);
extern void BatchFinish(Batch *b);

/* receipts.c */
extern bool ReceiptBegin(SourceInfo *src, const char *batch_key, Receipt *receipt);
extern void ReceiptFinish(const Receipt *receipt);
extern void DeadLettersWrite(SourceInfo *src, int64 batch_id, int n,
							 char **payloads, Rejection *why);
extern void DriftWrite(SourceInfo *src, DriftCounter *drift);

#endif							/* PIPELINE_INGEST_H */
