/*
 * quantile_sketch.c
 *	  The float8 quantile sketch: type pipeline.quantile_sketch, the
 *	  aggregates that build and merge it, union, quantiles and count.  It
 *	  gives the live value of percentile_cont(q) WITHIN GROUP (ORDER BY x)
 *	  measures from sketches that merge (per bucket, per batch, per
 *	  parallel worker) without the values.
 *
 * The buckets, merging, rank lookup and binary form are the quantile core's
 * (quantile_core.c); this file says what a float8 is to it:
 *  - a finite value goes to the bucket of its magnitude, relative accuracy
 *    1%, with negative indexes for magnitudes below 1: every float8 has a
 *    bucket, from -37220 (the smallest subnormal) to 35488 (the largest
 *    float8).  Zeros are counted exactly; -0 is 0, as PostgreSQL compares.
 *  - -Infinity, +Infinity and NaN are counted exactly, in PostgreSQL's
 *    float8 order: -Infinity < finite < +Infinity < NaN.
 *  - the exact minimum and maximum of the finite values are kept as
 *    float8s.  The core carries them as int64s that order like the values
 *    (the IEEE 754 bits, the magnitude bits of negatives flipped).
 *
 * quantile_value(sketch, q) is percentile_cont's arithmetic over the
 * neighbouring ranks: rank r = q (n - 1), then lo + t (hi - lo) between the
 * values of ranks floor(r) and ceil(r), a finite result clamped into
 * [min, max].  Ranks on the exact counts and the extremes give the exact
 * values, so q = 0 and q = 1 are exact, and wherever percentile_cont meets
 * an infinity or NaN this gives the same answer (a finite value next to
 * +Infinity is +Infinity; next to -Infinity, NaN).  Elsewhere, for normal
 * (not subnormal) magnitudes: when both neighbouring values have the same
 * sign (zero counts as either), the result is within 1% (relative) of
 * percentile_cont over the same values; otherwise within 1% of the larger
 * magnitude of the two.
 *
 * Binary form, format version 1 (the core's, with the exact counts):
 *	byte 0		format version (1)
 *	varint		number of values n; nothing follows when n is 0
 *	3 varints	how many are -Infinity, +Infinity, NaN
 *	varint		how many are zero
 *	2 x 8 bytes	the exact minimum and maximum of the finite values, IEEE 754
 *				binary64, big-endian (as float8send); absent when no value
 *				is finite
 *	twice, negative then positive buckets:
 *		varint	number of buckets b (0: none)
 *		if b > 0: varint index of the first bucket (zigzag), then b varint
 *				counts, the first and the last not zero
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "port/pg_bswap.h"

#include "pipeline.h"
#include "quantile_core.h"

/* ceil(log_gamma(x)) of the smallest subnormal and of the largest float8 */
#define QUANTILE_MIN_INDEX		(-37220)
#define QUANTILE_MAX_INDEX		35488

PG_FUNCTION_INFO_V1(pipeline_quantile_sketch_in);
PG_FUNCTION_INFO_V1(pipeline_quantile_sketch_out);
PG_FUNCTION_INFO_V1(pipeline_quantile_sketch_recv);
PG_FUNCTION_INFO_V1(pipeline_quantile_sketch_send);
PG_FUNCTION_INFO_V1(pipeline_quantile_add);
PG_FUNCTION_INFO_V1(pipeline_quantile_merge_add);
PG_FUNCTION_INFO_V1(pipeline_quantile_combine);
PG_FUNCTION_INFO_V1(pipeline_quantile_serialize);
PG_FUNCTION_INFO_V1(pipeline_quantile_deserialize);
PG_FUNCTION_INFO_V1(pipeline_quantile_final);
PG_FUNCTION_INFO_V1(pipeline_quantile_union);
PG_FUNCTION_INFO_V1(pipeline_quantile_value);
PG_FUNCTION_INFO_V1(pipeline_quantile_count);

/*
 * A float8 as an int64 in the same order: the bits of a non-negative value
 * already are; a negative one has its sign bit set and its magnitude in the
 * other 63, which are flipped so that larger magnitudes come lower.  The
 * mapping is its own inverse.
 */
static inline int64
Float8Ordered(double x)
{
	int64		bits;

	memcpy(&bits, &x, sizeof(bits));
	return bits < 0 ? bits ^ PG_INT64_MAX : bits;
}

static double
OrderedFloat8(int64 e)
{
	int64		bits = e < 0 ? e ^ PG_INT64_MAX : e;
	double		x;

	memcpy(&x, &bits, sizeof(x));
	return x;
}

/* extremes are finite, and a zero is +0 (-0 is counted as 0) */
static bool
Float8Valid(int64 e)
{
	double		x = OrderedFloat8(e);

	return isfinite(x) && !(x == 0.0 && signbit(x));
}

static void
Float8PutExtreme(StringInfo buf, int64 e)
{
	double		x = OrderedFloat8(e);
	uint64		bits;

	memcpy(&bits, &x, sizeof(bits));
	bits = pg_hton64(bits);
	appendBinaryStringInfo(buf, (const char *) &bits, sizeof(bits));
}

static int64
Float8GetExtreme(QuantileReader *r)
{
	uint64		bits;
	double		x;

	memcpy(&bits, QuantileGetBytes(r, sizeof(bits)), sizeof(bits));
	bits = pg_ntoh64(bits);
	memcpy(&x, &bits, sizeof(x));
	return Float8Ordered(x);
}

static const QuantileKind Float8Kind = {
	.type_name = "quantile_sketch",
	.version = 1,
	.min_index = QUANTILE_MIN_INDEX,
	.max_index = QUANTILE_MAX_INDEX,
	.specials = true,
	.extreme_value = OrderedFloat8,
	.extreme_valid = Float8Valid,
	.put_extreme = Float8PutExtreme,
	.get_extreme = Float8GetExtreme,
};

static void
AddFloat8(QuantileState *s, double x)
{
	if (isnan(x))
		QuantileAddSpecial(s, QUANTILE_NAN);
	else if (isinf(x))
		QuantileAddSpecial(s, x < 0 ? QUANTILE_NEG_INF : QUANTILE_POS_INF);
	else
		QuantileAdd(s, Float8Ordered(x == 0.0 ? 0.0 : x));
}


/* --- type I/O ------------------------------------------------------------ */

Datum
pipeline_quantile_sketch_in(PG_FUNCTION_ARGS)
{
	return QuantileTypeIn(&Float8Kind, PG_GETARG_CSTRING(0));
}

Datum
pipeline_quantile_sketch_out(PG_FUNCTION_ARGS)
{
	return QuantileTypeOut(PG_GETARG_DATUM(0));
}

Datum
pipeline_quantile_sketch_recv(PG_FUNCTION_ARGS)
{
	return QuantileTypeRecv(&Float8Kind, (StringInfo) PG_GETARG_POINTER(0));
}

Datum
pipeline_quantile_sketch_send(PG_FUNCTION_ARGS)
{
	return QuantileTypeSend(PG_GETARG_DATUM(0));
}


/* --- aggregates ------------------------------------------------------------ */

/* transition of quantile_sketch(float8): adds one value, skips NULLs */
Datum
pipeline_quantile_add(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = PipelineAggContext(fcinfo, "pipeline_quantile_add");
	QuantileState *s = PG_ARGISNULL(0) ? NULL : (QuantileState *) PG_GETARG_POINTER(0);

	if (PG_ARGISNULL(1))
	{
		if (s == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s);
	}
	if (s == NULL)
		s = QuantileCreate(&Float8Kind, aggcxt);
	AddFloat8(s, PG_GETARG_FLOAT8(1));
	PG_RETURN_POINTER(s);
}

/* transition of quantile_merge(quantile_sketch): folds one sketch in */
Datum
pipeline_quantile_merge_add(PG_FUNCTION_ARGS)
{
	return QuantileAggMergeAdd(fcinfo, &Float8Kind, "pipeline_quantile_merge_add");
}

Datum
pipeline_quantile_combine(PG_FUNCTION_ARGS)
{
	return QuantileAggCombine(fcinfo, &Float8Kind, "pipeline_quantile_combine");
}

Datum
pipeline_quantile_serialize(PG_FUNCTION_ARGS)
{
	return QuantileAggSerialize(fcinfo, "pipeline_quantile_serialize");
}

Datum
pipeline_quantile_deserialize(PG_FUNCTION_ARGS)
{
	return QuantileAggDeserialize(fcinfo, &Float8Kind, "pipeline_quantile_deserialize");
}

Datum
pipeline_quantile_final(PG_FUNCTION_ARGS)
{
	return QuantileAggFinal(fcinfo, "pipeline_quantile_final");
}


/* --- functions on sketches ------------------------------------------------ */

/*
 * quantile_union(a, b): the sketch of both sketches' values.  Not strict,
 * so that an upsert can fold a new sketch into a stored one that may be
 * NULL: a NULL side contributes nothing.
 */
Datum
pipeline_quantile_union(PG_FUNCTION_ARGS)
{
	QuantileState *a;
	QuantileState *b;

	if (PG_ARGISNULL(0) && PG_ARGISNULL(1))
		PG_RETURN_NULL();
	if (PG_ARGISNULL(0))
		PG_RETURN_DATUM(PG_GETARG_DATUM(1));
	if (PG_ARGISNULL(1))
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	a = QuantileFromDatum(&Float8Kind, CurrentMemoryContext, PG_GETARG_DATUM(0));
	b = QuantileFromDatum(&Float8Kind, CurrentMemoryContext, PG_GETARG_DATUM(1));
	QuantileMerge(a, b);
	PG_RETURN_POINTER(QuantileSerialize(a));
}

/* quantile_value(sketch, q): percentile_cont's answer, within 1% */
Datum
pipeline_quantile_value(PG_FUNCTION_ARGS)
{
	float8		q = PG_GETARG_FLOAT8(1);
	QuantileState *s;

	QuantileCheckFraction(q);
	s = QuantileFromDatum(&Float8Kind, CurrentMemoryContext, PG_GETARG_DATUM(0));
	if (s->total == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(QuantileInterpolate(s, q));
}

Datum
pipeline_quantile_count(PG_FUNCTION_ARGS)
{
	QuantileState *s = QuantileFromDatum(&Float8Kind, CurrentMemoryContext, PG_GETARG_DATUM(0));

	PG_RETURN_INT64(s->total);
}
