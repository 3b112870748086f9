/*
 * quantile.c
 *	  The lateness sketch: type pipeline.lateness_sketch, the aggregates
 *	  that build and merge it, and its quantiles.  It answers "p50/p95/p99
 *	  of arrival - event time" over any number of events, from sketches that
 *	  merge (per minute, per batch, per parallel worker) without the events.
 *
 * A sketch is a histogram of interval values, in microseconds, over
 * logarithmic buckets of relative width 1% (as in DDSketch, Masson, Rim and
 * Lee, "DDSketch: a fast and fully-mergeable quantile sketch with
 * relative-error guarantees", VLDB 2019).  With alpha = 0.01 and
 * gamma = (1 + alpha) / (1 - alpha), a positive value x falls in bucket
 * i = ceil(log_gamma(x)), which holds (gamma^(i-1), gamma^i]; the bucket
 * stands for 2 gamma^i / (gamma + 1), within alpha of every value in it.
 * Negative values (events stamped ahead of their arrival) mirror that in a
 * second set of buckets, and exact zeros have a count of their own.  The
 * exact minimum and maximum are kept too, so the 0 and 1 quantiles are
 * exact and no estimate leaves [min, max].  Values are whole microseconds,
 * so 2^63 needs about 2200 buckets per sign; a realistic spread (1 ms to a
 * day) about 600.
 *
 * Quantiles follow percentile_cont: for q, the rank r = q (n - 1) lies
 * between the values of ranks floor(r) and ceil(r), and the result is the
 * linear interpolation of the two bucket values.  Each bucket value is within
 * 1% of the value of its rank, and interpolation with non-negative weights
 * keeps that: where both neighbouring values have the same sign (always,
 * for non-negative lateness) the result is within 1% of percentile_cont's,
 * then rounded to a whole microsecond.
 *
 * A sketch is a function of the multiset of bucket indexes (and the exact
 * extremes) alone: merging two sketches adds their counts, so the merge of
 * sketch(A) and sketch(B) is, byte for byte, sketch(A + B), in any order.
 *
 * Binary form (also the text form, as '\x' hex; version 1), varints being
 * unsigned LEB128 and signed values zigzag-encoded first:
 *	byte 0		format version (1)
 *	varint		number of values n; nothing follows when n is 0
 *	varint		how many of them are exactly zero
 *	2 varints	the exact minimum and maximum (microseconds, zigzag)
 *	twice, negative then positive buckets:
 *		varint	number of buckets b (0: none)
 *		if b > 0: varint index of the first bucket, then b varint counts,
 *				the first and the last not zero
 * Every sketch this file writes is canonical (trimmed, extremes in the
 * outermost buckets); the input and receive functions refuse any other.
 *
 * Aggregate states are "internal": per sign a count array over the bucket
 * range seen so far, grown on demand, in the aggregate memory context.  They
 * serialize to the binary form for parallel aggregation.
 */
#include "postgres.h"

#include <math.h>

#include "common/int.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pipeline.h"
#include "sketch_io.h"

#define LATENESS_VERSION		1

/* relative accuracy of a bucket (format version 1) */
#define LATENESS_ALPHA			0.01

/* highest bucket index: ceil(log_gamma(2^63)) is 2184 */
#define LATENESS_MAX_INDEX		2200

/* a varint is at most 10 bytes */
#define VARINT_MAX_BYTES		10

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

/* the counts of one sign: counts[k] is bucket lo + k */
typedef struct LatenessStore
{
	int			lo;
	int			n;				/* allocated length; 0 while empty */
	int64	   *counts;
} LatenessStore;

typedef struct LatenessState
{
	MemoryContext cxt;			/* where the count arrays live */
	int64		total;			/* values seen, zeros included */
	int64		zero;
	int64		min;			/* exact extremes, valid while total > 0 */
	int64		max;
	LatenessStore neg;			/* buckets of |x| for x < 0 */
	LatenessStore pos;
} LatenessState;

static double LogGamma;			/* log(gamma), set on first use */

static inline double
GetLogGamma(void)
{
	if (LogGamma == 0.0)
		LogGamma = log((1.0 + LATENESS_ALPHA) / (1.0 - LATENESS_ALPHA));
	return LogGamma;
}

/* the bucket of a magnitude of at least one microsecond */
static inline int
BucketIndex(uint64 magnitude)
{
	int			i = (int) ceil(log((double) magnitude) / GetLogGamma());

	return Max(i, 0);
}

/* what bucket i stands for: 2 gamma^i / (gamma + 1) */
static inline double
BucketValue(int i)
{
	double		gamma = (1.0 + LATENESS_ALPHA) / (1.0 - LATENESS_ALPHA);

	return 2.0 * exp(i * GetLogGamma()) / (gamma + 1.0);
}

/*
 * A position in value order: negative buckets below -1 (the bigger the
 * magnitude, the lower), zero at 0, positive buckets from 1.
 */
static inline int
ValueKey(int64 v)
{
	if (v < 0)
		return -1 - BucketIndex((uint64) (-v));
	if (v == 0)
		return 0;
	return 1 + BucketIndex((uint64) v);
}

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


/* --- the sketch being built --------------------------------------------- */

static LatenessState *
StateCreate(MemoryContext cxt)
{
	LatenessState *s = MemoryContextAllocZero(cxt, sizeof(LatenessState));

	s->cxt = cxt;
	return s;
}

/* makes room in a store for bucket i, with some slack on the growing side */
static void
StoreReserve(MemoryContext cxt, LatenessStore *st, int i)
{
	int			lo;
	int			hi;
	int64	   *counts;

	if (st->n > 0 && i >= st->lo && i < st->lo + st->n)
		return;
	if (st->n == 0)
	{
		lo = Max(i - 16, 0);
		hi = Min(i + 16, LATENESS_MAX_INDEX);
	}
	else
	{
		lo = i < st->lo ? Max(i - 32, 0) : st->lo;
		hi = i >= st->lo + st->n ? Min(i + 32, LATENESS_MAX_INDEX) : st->lo + st->n - 1;
	}
	counts = MemoryContextAllocZero(cxt, sizeof(int64) * (hi - lo + 1));
	if (st->n > 0)
	{
		memcpy(counts + (st->lo - lo), st->counts, sizeof(int64) * st->n);
		pfree(st->counts);
	}
	st->counts = counts;
	st->lo = lo;
	st->n = hi - lo + 1;
}

static void
CountAdd(int64 *into, int64 count)
{
	if (pg_add_s64_overflow(*into, count, into))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("pipeline.lateness_sketch holds more than 2^63 values")));
}

static void
StoreAdd(MemoryContext cxt, LatenessStore *st, int i, int64 count)
{
	StoreReserve(cxt, st, i);
	CountAdd(&st->counts[i - st->lo], count);
}

static void
StateAddExtremes(LatenessState *s, int64 min, int64 max, int64 count)
{
	if (s->total == 0)
	{
		s->min = min;
		s->max = max;
	}
	else
	{
		s->min = Min(s->min, min);
		s->max = Max(s->max, max);
	}
	CountAdd(&s->total, count);
}

static void
StateAddValue(LatenessState *s, int64 v)
{
	if (v < 0)
		StoreAdd(s->cxt, &s->neg, BucketIndex((uint64) (-v)), 1);
	else if (v > 0)
		StoreAdd(s->cxt, &s->pos, BucketIndex((uint64) v), 1);
	else
		CountAdd(&s->zero, 1);
	StateAddExtremes(s, v, v, 1);
}

static void
StateMergeState(LatenessState *dst, const LatenessState *src)
{
	if (src->total == 0)
		return;
	for (int k = 0; k < src->neg.n; k++)
		if (src->neg.counts[k] != 0)
			StoreAdd(dst->cxt, &dst->neg, src->neg.lo + k, src->neg.counts[k]);
	for (int k = 0; k < src->pos.n; k++)
		if (src->pos.counts[k] != 0)
			StoreAdd(dst->cxt, &dst->pos, src->pos.lo + k, src->pos.counts[k]);
	CountAdd(&dst->zero, src->zero);
	StateAddExtremes(dst, src->min, src->max, src->total);
}


/* --- the binary form ----------------------------------------------------- */

static void
PutVarint(StringInfo buf, uint64 v)
{
	uint8		bytes[VARINT_MAX_BYTES];
	int			n = 0;

	do
	{
		bytes[n] = v & 0x7f;
		v >>= 7;
		if (v != 0)
			bytes[n] |= 0x80;
		n++;
	} while (v != 0);
	appendBinaryStringInfo(buf, (const char *) bytes, n);
}

static inline uint64
ZigZag(int64 v)
{
	return ((uint64) v << 1) ^ (uint64) (v >> 63);
}

static inline int64
UnZigZag(uint64 v)
{
	return (int64) (v >> 1) ^ -(int64) (v & 1);
}

static void
PutStore(StringInfo buf, const LatenessStore *st)
{
	int			first = -1;
	int			last = -1;

	for (int k = 0; k < st->n; k++)
	{
		if (st->counts[k] != 0)
		{
			if (first < 0)
				first = k;
			last = k;
		}
	}
	if (first < 0)
	{
		PutVarint(buf, 0);
		return;
	}
	PutVarint(buf, last - first + 1);
	PutVarint(buf, st->lo + first);
	for (int k = first; k <= last; k++)
		PutVarint(buf, st->counts[k]);
}

/* the binary form, as a varlena (of type lateness_sketch or bytea: same bytes) */
static struct varlena *
StateSerialize(const LatenessState *s)
{
	StringInfoData buf;
	struct varlena *result;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, LATENESS_VERSION);
	PutVarint(&buf, s->total);
	if (s->total > 0)
	{
		PutVarint(&buf, s->zero);
		PutVarint(&buf, ZigZag(s->min));
		PutVarint(&buf, ZigZag(s->max));
		PutStore(&buf, &s->neg);
		PutStore(&buf, &s->pos);
	}

	result = palloc(VARHDRSZ + buf.len);
	SET_VARSIZE(result, VARHDRSZ + buf.len);
	memcpy(VARDATA(result), buf.data, buf.len);
	pfree(buf.data);
	return result;
}

typedef struct Reader
{
	const uint8 *data;
	Size		len;
	Size		pos;
	int			sqlstate;
} Reader;

static void Corrupt(Reader *r, const char *what) pg_attribute_noreturn();

static void
Corrupt(Reader *r, const char *what)
{
	ereport(ERROR,
			(errcode(r->sqlstate),
			 errmsg("invalid lateness_sketch: %s", what)));
}

static uint64
GetVarint(Reader *r)
{
	uint64		v = 0;

	for (int n = 0; n < VARINT_MAX_BYTES; n++)
	{
		uint8		b;

		if (r->pos >= r->len)
			Corrupt(r, "it ends in the middle of a number");
		b = r->data[r->pos++];
		if (n == VARINT_MAX_BYTES - 1 && b > 1)
			Corrupt(r, "a number does not fit in 64 bits");
		v |= (uint64) (b & 0x7f) << (7 * n);
		if ((b & 0x80) == 0)
		{
			if (b == 0 && n > 0)
				Corrupt(r, "a number is not in its shortest form");
			return v;
		}
	}
	Corrupt(r, "a number does not fit in 64 bits");
}

static int64
GetCount(Reader *r)
{
	uint64		v = GetVarint(r);

	if (v > (uint64) PG_INT64_MAX)
		Corrupt(r, "a count is larger than 2^63 - 1");
	return (int64) v;
}

/* reads one store into s: its buckets are checked for range and trimming */
static void
GetStore(Reader *r, LatenessState *s, LatenessStore *st, int *first, int *last)
{
	uint64		nb = GetVarint(r);
	uint64		lo;

	*first = *last = -1;
	if (nb == 0)
		return;
	lo = GetVarint(r);
	if (nb > LATENESS_MAX_INDEX + 1 || lo > LATENESS_MAX_INDEX || lo + nb - 1 > LATENESS_MAX_INDEX)
		Corrupt(r, "a bucket index is out of range");
	for (uint64 k = 0; k < nb; k++)
	{
		int64		c = GetCount(r);

		if (c == 0 && (k == 0 || k == nb - 1))
			Corrupt(r, "its bucket range is not trimmed to non-empty buckets");
		if (c != 0)
			StoreAdd(s->cxt, st, (int) (lo + k), c);
	}
	*first = (int) lo;
	*last = (int) (lo + nb - 1);
}

/*
 * Reads the binary form into a new state in cxt.  The checks that make a
 * sketch canonical (counts adding up, extremes in the outermost buckets)
 * run on every read: they cost little next to reading the buckets.
 */
static LatenessState *
StateFromBytes(MemoryContext cxt, const uint8 *data, Size len, int sqlstate)
{
	Reader		r = {data, len, 0, sqlstate};
	LatenessState *s = StateCreate(cxt);
	int64		total;
	int64		sum;
	int			nfirst,
				nlast,
				pfirst,
				plast;
	int			lowest;
	int			highest;

	if (len < 1)
		Corrupt(&r, "it is empty");
	if (data[0] != LATENESS_VERSION)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("unsupported lateness_sketch format version %d", data[0]),
				 errhint("This build of the pipeline extension reads format version %d.",
						 LATENESS_VERSION)));
	r.pos = 1;
	total = GetCount(&r);
	if (total == 0)
	{
		if (r.pos != r.len)
			Corrupt(&r, "an empty sketch has bytes after its count");
		return s;
	}
	s->zero = GetCount(&r);
	s->min = UnZigZag(GetVarint(&r));
	s->max = UnZigZag(GetVarint(&r));
	GetStore(&r, s, &s->neg, &nfirst, &nlast);
	GetStore(&r, s, &s->pos, &pfirst, &plast);
	if (r.pos != r.len)
		Corrupt(&r, "it has bytes after its last bucket");

	sum = s->zero;
	for (int k = 0; k < s->neg.n; k++)
		CountAdd(&sum, s->neg.counts[k]);
	for (int k = 0; k < s->pos.n; k++)
		CountAdd(&sum, s->pos.counts[k]);
	if (sum != total)
		Corrupt(&r, "its buckets do not add up to its number of values");
	if (s->min > s->max || s->min == PG_INT64_MIN)
		Corrupt(&r, "its minimum and maximum are out of order or out of range");
	lowest = nfirst >= 0 ? -1 - nlast : (s->zero > 0 ? 0 : 1 + pfirst);
	highest = plast >= 0 ? 1 + plast : (s->zero > 0 ? 0 : -1 - nfirst);
	if (ValueKey(s->min) != lowest || ValueKey(s->max) != highest)
		Corrupt(&r, "its minimum or maximum is not in its outermost bucket");
	s->total = total;
	return s;
}


/* --- quantiles ---------------------------------------------------------- */

/* the value standing for the value of rank k (0-based, ascending) */
static double
ValueAtRank(const LatenessState *s, int64 k)
{
	int64		seen = 0;
	double		v = 0.0;
	bool		found = false;

	if (k <= 0)
		return (double) s->min;
	if (k >= s->total - 1)
		return (double) s->max;
	for (int j = s->neg.n - 1; j >= 0 && !found; j--)
	{
		seen += s->neg.counts[j];
		if (k < seen)
		{
			v = -BucketValue(s->neg.lo + j);
			found = true;
		}
	}
	if (!found)
	{
		seen += s->zero;
		if (k < seen)
		{
			v = 0.0;
			found = true;
		}
	}
	for (int j = 0; j < s->pos.n && !found; j++)
	{
		seen += s->pos.counts[j];
		if (k < seen)
		{
			v = BucketValue(s->pos.lo + j);
			found = true;
		}
	}
	if (!found)
		elog(ERROR, "lateness sketch rank " INT64_FORMAT " not found among " INT64_FORMAT " values",
			 k, s->total);
	/* the true value lies in [min, max]: clamping only brings v closer */
	return Max(Min(v, (double) s->max), (double) s->min);
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

static Datum
SketchFromBytes(const uint8 *data, Size len, int sqlstate)
{
	struct varlena *result;

	/* parse to check; the canonical bytes are the input itself */
	(void) StateFromBytes(CurrentMemoryContext, data, len, sqlstate);
	result = palloc(VARHDRSZ + len);
	SET_VARSIZE(result, VARHDRSZ + len);
	memcpy(VARDATA(result), data, len);
	return PointerGetDatum(result);
}

Datum
pipeline_lateness_sketch_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	Size		nbytes;
	char	   *bytes = SketchHexDecode(str, strlen(str), "lateness_sketch", &nbytes);

	return SketchFromBytes((const uint8 *) bytes, nbytes, ERRCODE_INVALID_TEXT_REPRESENTATION);
}

Datum
pipeline_lateness_sketch_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_CSTRING(SketchHexEncode(PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(0))));
}

Datum
pipeline_lateness_sketch_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			len = buf->len - buf->cursor;
	const char *data = pq_getmsgbytes(buf, len);

	return SketchFromBytes((const uint8 *) data, len, ERRCODE_INVALID_BINARY_REPRESENTATION);
}

Datum
pipeline_lateness_sketch_send(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(SketchSend(PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(0))));
}

/* a stored sketch, read into a state in cxt */
static LatenessState *
StateFromDatum(MemoryContext cxt, Datum d)
{
	struct varlena *sketch = PG_DETOAST_DATUM_PACKED(d);

	return StateFromBytes(cxt, (const uint8 *) VARDATA_ANY(sketch),
						  VARSIZE_ANY_EXHDR(sketch), ERRCODE_DATA_CORRUPTED);
}


/* --- aggregates ------------------------------------------------------------ */

/* transition of lateness_sketch(interval): adds one value, skips NULLs */
Datum
pipeline_lateness_add(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = PipelineAggContext(fcinfo, "pipeline_lateness_add");
	LatenessState *s = PG_ARGISNULL(0) ? NULL : (LatenessState *) PG_GETARG_POINTER(0);

	if (PG_ARGISNULL(1))
	{
		if (s == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s);
	}
	if (s == NULL)
		s = StateCreate(aggcxt);
	StateAddValue(s, IntervalMicroseconds(PG_GETARG_INTERVAL_P(1)));
	PG_RETURN_POINTER(s);
}

/* transition of lateness_merge(lateness_sketch): folds one sketch in */
Datum
pipeline_lateness_merge_add(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = PipelineAggContext(fcinfo, "pipeline_lateness_merge_add");
	LatenessState *s = PG_ARGISNULL(0) ? NULL : (LatenessState *) PG_GETARG_POINTER(0);
	LatenessState *other;

	if (PG_ARGISNULL(1))
	{
		if (s == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s);
	}
	if (s == NULL)
		s = StateCreate(aggcxt);
	other = StateFromDatum(CurrentMemoryContext, PG_GETARG_DATUM(1));
	StateMergeState(s, other);
	PG_RETURN_POINTER(s);
}

/*
 * Combines two partial states.  Not strict: the first non-NULL state must
 * be copied into the aggregate context, since the second argument may live
 * in per-tuple memory (it comes from deserialization).
 */
Datum
pipeline_lateness_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = PipelineAggContext(fcinfo, "pipeline_lateness_combine");
	LatenessState *s1 = PG_ARGISNULL(0) ? NULL : (LatenessState *) PG_GETARG_POINTER(0);
	LatenessState *s2 = PG_ARGISNULL(1) ? NULL : (LatenessState *) PG_GETARG_POINTER(1);

	if (s2 == NULL)
	{
		if (s1 == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s1);
	}
	if (s1 == NULL)
		s1 = StateCreate(aggcxt);
	StateMergeState(s1, s2);
	PG_RETURN_POINTER(s1);
}

Datum
pipeline_lateness_serialize(PG_FUNCTION_ARGS)
{
	LatenessState *s = (LatenessState *) PG_GETARG_POINTER(0);

	PipelineAggContext(fcinfo, "pipeline_lateness_serialize");
	PG_RETURN_BYTEA_P(StateSerialize(s));
}

Datum
pipeline_lateness_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *bytes = PG_GETARG_BYTEA_PP(0);

	PipelineAggContext(fcinfo, "pipeline_lateness_deserialize");
	PG_RETURN_POINTER(StateFromBytes(CurrentMemoryContext, (const uint8 *) VARDATA_ANY(bytes),
									 VARSIZE_ANY_EXHDR(bytes), ERRCODE_DATA_CORRUPTED));
}

/* final function of both aggregates; leaves the state as it was */
Datum
pipeline_lateness_final(PG_FUNCTION_ARGS)
{
	PipelineAggContext(fcinfo, "pipeline_lateness_final");
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_POINTER(StateSerialize((LatenessState *) PG_GETARG_POINTER(0)));
}


/* --- functions on sketches ------------------------------------------------ */

/* lateness_quantile(sketch, q): percentile_cont's answer, within 1% */
Datum
pipeline_lateness_quantile(PG_FUNCTION_ARGS)
{
	float8		q = PG_GETARG_FLOAT8(1);
	LatenessState *s;
	double		r;
	int64		k0;
	double		v0;
	double		v1;
	double		v;

	if (isnan(q) || q < 0.0 || q > 1.0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("quantile %g is not between 0 and 1", q),
				 errhint("Ask for e.g. 0.5 (the median), 0.95 or 0.99.")));
	s = StateFromDatum(CurrentMemoryContext, PG_GETARG_DATUM(0));
	if (s->total == 0)
		PG_RETURN_NULL();

	r = q * (double) (s->total - 1);
	k0 = (int64) floor(r);
	v0 = ValueAtRank(s, k0);
	v1 = r > (double) k0 ? ValueAtRank(s, k0 + 1) : v0;
	v = v0 + (r - (double) k0) * (v1 - v0);
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
	LatenessState *s = StateFromDatum(CurrentMemoryContext, PG_GETARG_DATUM(0));

	PG_RETURN_INT64(s->total);
}
