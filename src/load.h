/*
 * load.h
 *	  The bulk path (load.c) and the access method of its load tables
 *	  (load_am.c).
 */
#ifndef PIPELINE_LOAD_H
#define PIPELINE_LOAD_H

#include "access/tupdesc.h"

extern void LoadAddRow(const char *source, TupleDesc desc, Datum *values, bool *isnull);

#endif
