/*
 * lateness_sketch.c
 *	  The lateness sketch: type pipeline.lateness_sketch, the aggregates
 *	  that build and merge it, and its quantiles.  It answers "p50/p95/p99
 *	  of arrival - event time" over any number of events, from sketches that
 *	  merge (per minute, per batch, per parallel worker) without the events.
 *
 * The buckets, merging, rank lookup and binary form are the quantile core's
 * (quantile_core.c); this file says what a value is.  An interval counts as
 * its whole microseconds (months as 30 days, as interval comparison does),
 * an int64, which is also how the exact minimum and maximum are kept and
 * written: zigzag varints.  Magnitudes are at least one microsecond, so
 * bucket indexes start at 0 and 2^63 needs about 2200 buckets per sign; a
 * realistic spread (1 ms to a day) about 600.  Quantiles are the core's,
 * within 1% of percentile_cont's where the values around the rank have one
 * sign (always, for non-negative lateness), rounded to a whole microsecond,
 * and exact at q = 0 and 1.
 *
 * Binary form, format version 1 (the core's, without the counts of
 * infinities and NaN, which an interval does not have):
 *	byte 0		format version (1)
 *	varint		number of values n; nothing follows when n is 0
 *	varint		how many of them are exactly zero
 *	2 varints	the exact minimum and maximum (microseconds, zigzag)
 *	twice, negative then positive buckets:
 *		varint	number of buckets b (0: none)
 *		if b > 0: varint index of the first bucket, then b varint counts,
 *				the first and the last not zero
 * These are the bytes lateness_sketch has been stored as since it was
 * introduced: any change to them is a new format version.
 */
#include "postgres.h"

#include <math.h>

#include "common/int.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/timestamp.h"

#include "pipeline.h"
#include "quantile_core.h"

/* highest bucket index: ceil(log_gamma(2^63)) is 2184 */
#define LATENESS_MAX_INDEX		2200

PG_FUNCTION_INFO_V1(pipeline_lateness_sketch_in);
PG_FUNCTION_INFO_V1(pipeline_lateness_sketch_out);
PG_FUNCTION_INFO_V1(pipeline_lateness_sketch_recv);
PG_FUNCTION_INFO_V1(pipeline_lateness_sketch_send);
PG_FUNCTION_INFO_V1(pipeline_lateness_add);
PG_FUNCTION_INFO_V1(pipeline_lateness_merge_add);
PG_FUNCTION_INFO_V1(pipeline_lateness_combine);
PG_FUNCTION_INFO_V1(pipeline_lateness_serialize);
PG_FUNCTION_INFO_V1(pipeline_lateness_deserialize);
PG_FUNCTION_INFO_V1(pipeline_lateness_final);
PG_FUNCTION_INFO_V1(pipeline_lateness_quantile);
PG_FUNCTION_INFO_V1(pipeline_lateness_count);

/* a value is its microseconds, which order as the intervals do */
static double
LatenessValue(int64 usecs)
{
	return (double) usecs;
}

/* -2^63 has no magnitude in an int64: IntervalMicroseconds never gives it */
static bool
LatenessValid(int64 usecs)
{
	return usecs != PG_INT64_MIN;
}

static void
LatenessPutExtreme(StringInfo buf, int64 usecs)
{
	QuantilePutVarint(buf, QuantileZigZag(usecs));
}

static int64
LatenessGetExtreme(QuantileReader *r)
{
	return QuantileUnZigZag(QuantileGetVarint(r));
}

static const QuantileKind LatenessKind = {
	.type_name = "lateness_sketch",
	.version = 1,
	.min_index = 0,
	.max_index = LATENESS_MAX_INDEX,
	.specials = false,
	.extreme_value = LatenessValue,
	.extreme_valid = LatenessValid,
	.put_extreme = LatenessPutExtreme,
	.get_extreme = LatenessGetExtreme,
};

/* an interval as microseconds, months as 30 days like interval comparison */
static int64
IntervalMicroseconds(const Interval *iv)
{
	int64		days;
	int64		usecs;

	if (pg_mul_s64_overflow((int64) iv->month, DAYS_PER_MONTH, &days) ||
		pg_add_s64_overflow(days, (int64) iv->day, &days) ||
		pg_mul_s64_overflow(days, USECS_PER_DAY, &usecs) ||
		pg_add_s64_overflow(usecs, iv->time, &usecs) ||
		usecs == PG_INT64_MIN)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("interval out of range for pipeline.lateness_sketch"),
				 errdetail("A lateness sketch holds intervals of up to about 292000 years either way.")));
	return usecs;
}

static Interval *
MicrosecondsInterval(int64 usecs)
{
	Interval   *result = palloc0(sizeof(Interval));

	/* like timestamp subtraction: whole days, then the rest, same sign */
	result->day = (int32) (usecs / USECS_PER_DAY);
	result->time = usecs % USECS_PER_DAY;
	return result;
}


/* --- type I/O ------------------------------------------------------------ */

Datum
pipeline_lateness_sketch_in(PG_FUNCTION_ARGS)
{
	return QuantileTypeIn(&LatenessKind, PG_GETARG_CSTRING(0));
}

Datum
pipeline_lateness_sketch_out(PG_FUNCTION_ARGS)
{
	return QuantileTypeOut(PG_GETARG_DATUM(0));
}

Datum
pipeline_lateness_sketch_recv(PG_FUNCTION_ARGS)
{
	return QuantileTypeRecv(&LatenessKind, (StringInfo) PG_GETARG_POINTER(0));
}

Datum
pipeline_lateness_sketch_send(PG_FUNCTION_ARGS)
{
	return QuantileTypeSend(PG_GETARG_DATUM(0));
}


/* --- aggregates ------------------------------------------------------------ */

/* transition of lateness_sketch(interval): adds one value, skips NULLs */
Datum
pipeline_lateness_add(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = PipelineAggContext(fcinfo, "pipeline_lateness_add");
	QuantileState *s = PG_ARGISNULL(0) ? NULL : (QuantileState *) PG_GETARG_POINTER(0);

	if (PG_ARGISNULL(1))
	{
		if (s == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s);
	}
	if (s == NULL)
		s = QuantileCreate(&LatenessKind, aggcxt);
	QuantileAdd(s, IntervalMicroseconds(PG_GETARG_INTERVAL_P(1)));
	PG_RETURN_POINTER(s);
}

/* transition of lateness_merge(lateness_sketch): folds one sketch in */
Datum
pipeline_lateness_merge_add(PG_FUNCTION_ARGS)
{
	return QuantileAggMergeAdd(fcinfo, &LatenessKind, "pipeline_lateness_merge_add");
}

Datum
pipeline_lateness_combine(PG_FUNCTION_ARGS)
{
	return QuantileAggCombine(fcinfo, &LatenessKind, "pipeline_lateness_combine");
}

Datum
pipeline_lateness_serialize(PG_FUNCTION_ARGS)
{
	return QuantileAggSerialize(fcinfo, "pipeline_lateness_serialize");
}

Datum
pipeline_lateness_deserialize(PG_FUNCTION_ARGS)
{
	return QuantileAggDeserialize(fcinfo, &LatenessKind, "pipeline_lateness_deserialize");
}

Datum
pipeline_lateness_final(PG_FUNCTION_ARGS)
{
	return QuantileAggFinal(fcinfo, "pipeline_lateness_final");
}


/* --- functions on sketches ------------------------------------------------ */

/* lateness_quantile(sketch, q): percentile_cont's answer, within 1% */
Datum
pipeline_lateness_quantile(PG_FUNCTION_ARGS)
{
	float8		q = PG_GETARG_FLOAT8(1);
	QuantileState *s;
	double		v;

	QuantileCheckFraction(q);
	s = QuantileFromDatum(&LatenessKind, CurrentMemoryContext, PG_GETARG_DATUM(0));
	if (s->total == 0)
		PG_RETURN_NULL();

	v = QuantileInterpolate(s, q);
	/* exact at the ends (and no double rounding past 2^63 - 1) */
	if (v >= (double) s->max)
		PG_RETURN_INTERVAL_P(MicrosecondsInterval(s->max));
	if (v <= (double) s->min)
		PG_RETURN_INTERVAL_P(MicrosecondsInterval(s->min));
	PG_RETURN_INTERVAL_P(MicrosecondsInterval((int64) rint(v)));
}

Datum
pipeline_lateness_count(PG_FUNCTION_ARGS)
{
	QuantileState *s = QuantileFromDatum(&LatenessKind, CurrentMemoryContext, PG_GETARG_DATUM(0));

	PG_RETURN_INT64(s->total);
}
