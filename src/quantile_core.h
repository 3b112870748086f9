/*
 * quantile_core.h
 *	  The quantile sketch shared by pipeline.lateness_sketch (intervals) and
 *	  pipeline.quantile_sketch (double precision): logarithmic buckets,
 *	  their stores, merging, rank lookup, the canonical binary form and its
 *	  validation, and the aggregate support both sketch types run on.
 *
 * A sketch type is a QuantileKind: how its values map to the core's terms
 * (a finite value is carried as an int64 that orders like the value, so
 * that the core can keep the exact extremes without knowing their type),
 * how the extremes are written in the binary form, and the constants of
 * its format.  The type's own file turns its SQL values into calls of
 * QuantileAdd / QuantileAddSpecial and reads quantiles back.
 */
#ifndef PIPELINE_QUANTILE_CORE_H
#define PIPELINE_QUANTILE_CORE_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"

/*
 * Values that are counted apart from the buckets, in value order around the
 * finite ones: -Infinity below them, +Infinity then NaN above them (as
 * PostgreSQL orders float8).
 */
typedef enum QuantileSpecial
{
	QUANTILE_NEG_INF,
	QUANTILE_POS_INF,
	QUANTILE_NAN,
	QUANTILE_NSPECIALS
} QuantileSpecial;

/* a binary form being read; its errors carry sqlstate */
typedef struct QuantileReader
{
	const uint8 *data;
	Size		len;
	Size		pos;
	int			sqlstate;
	const char *type_name;
} QuantileReader;

typedef struct QuantileKind
{
	const char *type_name;		/* "lateness_sketch": in error messages */
	uint8		version;		/* format version byte of the binary form */
	int			min_index;		/* bucket indexes of magnitudes, inclusive; */
	int			max_index;		/* negative ones are written zigzag-encoded */
	bool		specials;		/* the form counts -Infinity, +Infinity, NaN */

	/* a finite value (as its ordered int64) as a double */
	double		(*extreme_value) (int64 e);
	/* whether an ordered int64 read from a binary form is a canonical value */
	bool		(*extreme_valid) (int64 e);
	/* the exact minimum or maximum in the binary form */
	void		(*put_extreme) (StringInfo buf, int64 e);
	int64		(*get_extreme) (QuantileReader *r);
} QuantileKind;

/* the counts of one sign: counts[k] is bucket lo + k */
typedef struct QuantileStore
{
	int			lo;
	int			n;				/* allocated length; 0 while empty */
	int64	   *counts;
} QuantileStore;

typedef struct QuantileState
{
	const QuantileKind *kind;
	MemoryContext cxt;			/* where the count arrays live */
	int64		total;			/* values seen: finite, zeros and specials */
	int64		finite;			/* of which finite (zeros included) */
	int64		special[QUANTILE_NSPECIALS];
	int64		zero;
	int64		min;			/* exact extremes of the finite values, as */
	int64		max;			/* ordered int64s; valid while finite > 0 */
	QuantileStore neg;			/* buckets of |x| for x < 0 */
	QuantileStore pos;
} QuantileState;

/* building */
extern QuantileState *QuantileCreate(const QuantileKind *kind, MemoryContext cxt);
extern void QuantileAdd(QuantileState *s, int64 e);
extern void QuantileAddSpecial(QuantileState *s, QuantileSpecial which);
extern void QuantileMerge(QuantileState *dst, const QuantileState *src);

/* the binary form */
extern struct varlena *QuantileSerialize(const QuantileState *s);
extern QuantileState *QuantileDeserialize(const QuantileKind *kind, MemoryContext cxt,
										  const uint8 *data, Size len, int sqlstate);
extern QuantileState *QuantileFromDatum(const QuantileKind *kind, MemoryContext cxt, Datum d);
extern void QuantilePutVarint(StringInfo buf, uint64 v);
extern uint64 QuantileGetVarint(QuantileReader *r);
extern const uint8 *QuantileGetBytes(QuantileReader *r, Size n);
extern void QuantileCorrupt(QuantileReader *r, const char *what) pg_attribute_noreturn();

/* quantiles */
extern void QuantileCheckFraction(double q);
extern double QuantileInterpolate(const QuantileState *s, double q);

/* type I/O */
extern Datum QuantileTypeIn(const QuantileKind *kind, const char *str);
extern Datum QuantileTypeOut(Datum sketch);
extern Datum QuantileTypeRecv(const QuantileKind *kind, StringInfo buf);
extern Datum QuantileTypeSend(Datum sketch);

/* aggregate support: the parts that do not depend on the value type */
extern Datum QuantileAggMergeAdd(FunctionCallInfo fcinfo, const QuantileKind *kind, const char *name);
extern Datum QuantileAggCombine(FunctionCallInfo fcinfo, const QuantileKind *kind, const char *name);
extern Datum QuantileAggSerialize(FunctionCallInfo fcinfo, const char *name);
extern Datum QuantileAggDeserialize(FunctionCallInfo fcinfo, const QuantileKind *kind, const char *name);
extern Datum QuantileAggFinal(FunctionCallInfo fcinfo, const char *name);

static inline uint64
QuantileZigZag(int64 v)
{
	return ((uint64) v << 1) ^ (uint64) (v >> 63);
}

static inline int64
QuantileUnZigZag(uint64 v)
{
	return (int64) (v >> 1) ^ -(int64) (v & 1);
}

#endif							/* PIPELINE_QUANTILE_CORE_H */
