/*
 * receipts.h
 *	  What ingest records about a batch (receipts.c): its receipt, why each
 *	  rejected event was rejected (its dead letter), and the fields the
 *	  contract does not name (drift counts).
 */
#ifndef PIPELINE_RECEIPTS_H
#define PIPELINE_RECEIPTS_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/hsearch.h"

#include "catalog.h"

/* the counts of one batch, as pipeline.batch_log keeps them */
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
	/* for ReceiptFinish: */
	bool		stored;			/* its row was written by ReceiptBegin */
	const char *source;
	int32		contract_version;
} Receipt;

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

extern bool ReceiptBegin(SourceInfo *src, const char *batch_key, Receipt *receipt);
extern void ReceiptFinish(const Receipt *receipt);
extern void DeadLettersWrite(SourceInfo *src, int64 batch_id, int n,
							 char **payloads, Rejection *why);
extern DriftCounter *DriftCounterCreate(void);
extern void DriftWrite(SourceInfo *src, DriftCounter *drift);

#endif							/* PIPELINE_RECEIPTS_H */
