/*
 * raw_store.h
 *	  Writing a chunk of accepted events into a source's raw and id tables,
 *	  deduplicated against everything stored (raw_store.c).
 */
#ifndef PIPELINE_RAW_STORE_H
#define PIPELINE_RAW_STORE_H

#include "postgres.h"

#include "validate.h"

extern int64 RawStoreInsert(Contract *c, int64 batch_id, int nrows,
							Datum **values, bool **nulls, Datum *extra, bool *extra_null);

#endif							/* PIPELINE_RAW_STORE_H */
