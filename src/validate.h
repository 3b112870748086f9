/*
 * validate.h
 *	  A source's contract compiled for conversion, and the calls that check
 *	  and convert one event against it (validate.c).
 */
#ifndef PIPELINE_VALIDATE_H
#define PIPELINE_VALIDATE_H

#include "postgres.h"

#include "executor/executor.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "utils/sortsupport.h"

#include "catalog.h"
#include "receipts.h"

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
	bool		names_distinct; /* no name or alias fills two columns */
} Contract;

extern Contract *ContractCompile(SourceInfo *src, Relation raw);
extern bool ContractConvertEvent(Contract *c, JsonbContainer *event,
								 Datum *values, bool *nulls,
								 Datum *extra, bool *extra_null,
								 DriftCounter *drift, Rejection *why);
extern bool ContractConvertValues(Contract *c, JsonbValue **fields,
								  Datum *values, bool *nulls, Rejection *why);
extern int	ContractFieldColumn(Contract *c, const char *name, int len, int guess);
extern bool EventScanLine(Contract *c, char *line, int len, JsonbValue **fields);
extern bool ContractConvertFields(Contract *c, char **fields, const int *field_of,
								  Datum *values, bool *nulls, Rejection *why);
extern int	ContractColumnByName(Contract *c, const char *name);
extern void ContractRelease(Contract *c);
extern int	ContractCompareIds(Contract *c, Datum a, Datum b);

#endif							/* PIPELINE_VALIDATE_H */
