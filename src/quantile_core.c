/*
 * quantile_core.c
 *	  The quantile sketch behind pipeline.lateness_sketch and
 *	  pipeline.quantile_sketch: buckets, stores, merging, rank lookup, the
 *	  canonical binary form and its validation, type I/O and the aggregate
 *	  support functions that do not depend on the value type.  What a value
 *	  is (an interval, a float8) is the business of the type's own file,
 *	  through its QuantileKind (quantile_core.h).
 *
 * A sketch is a histogram over logarithmic buckets of relative width 1% (as
 * in DDSketch, Masson, Rim and Lee, "DDSketch: a fast and fully-mergeable
 * quantile sketch with relative-error guarantees", VLDB 2019).  With
 * alpha = 0.01 and gamma = (1 + alpha) / (1 - alpha), a positive magnitude
 * x falls in bucket i = ceil(log_gamma(x)), which holds
 * (gamma^(i-1), gamma^i]; the bucket stands for 2 gamma^i / (gamma + 1),
 * within alpha of every value in it.  Negative values mirror that in a
 * second set of buckets, exact zeros have a count of their own, and so do
 * the values that have no magnitude to bucket (-Infinity, +Infinity, NaN;
 * only quantile_sketch has them).  Each kind bounds the bucket indexes its
 * values can reach, and indexes past the bounds are clamped to them.
 *
 * The exact minimum and maximum of the finite values are kept too, so the
 * ranks that land on them are exact and no estimate leaves [min, max].
 * Quantiles follow percentile_cont: for q, the rank r = q (n - 1) lies
 * between the values of ranks floor(r) and ceil(r), and the result is the
 * linear interpolation of the two (with percentile_cont's own arithmetic,
 * so that infinities and NaN come out as they do there).  Each bucket value
 * is within alpha of the value of its rank, and interpolation with
 * non-negative weights keeps that: where both neighbouring values have the
 * same sign the result is within alpha (relative) of percentile_cont's,
 * otherwise within alpha of the larger magnitude of the two.
 *
 * A sketch is a function of the multiset of bucket indexes, the special
 * counts and the exact extremes alone: merging two sketches adds their
 * counts, so the merge of sketch(A) and sketch(B) is, byte for byte,
 * sketch(A + B), in any order.
 *
 * Binary form (also the text form, as '\x' hex), varints being unsigned
 * LEB128 in their shortest form and signed values zigzag-encoded first:
 *	byte 0		the kind's format version
 *	varint		number of values n; nothing follows when n is 0
 *	3 varints	only for kinds with specials: how many are -Infinity,
 *				+Infinity and NaN
 *	varint		how many are exactly zero
 *	min, max	the exact extremes of the finite values, as the kind writes
 *				them; absent when no value is finite
 *	twice, negative then positive buckets:
 *		varint	number of buckets b (0: none)
 *		if b > 0: varint index of the first bucket (zigzag when the kind
 *				has negative indexes), then b varint counts, the first and
 *				the last not zero
 * Every sketch this file writes is canonical (trimmed, extremes in the
 * outermost buckets); reading refuses any other, so that equal sketches
 * are equal bytes.
 *
 * Aggregate states are "internal" QuantileStates: per sign a count array
 * over the bucket range seen so far, grown on demand, in the aggregate
 * memory context.  They serialize to the binary form for parallel
 * aggregation.
 */
#include "postgres.h"

#include <math.h>

#include "common/int.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/float.h"

#include "pipeline.h"
#include "quantile_core.h"
#include "sketch_io.h"

/* relative accuracy of a bucket (part of every kind's format) */
#define QUANTILE_ALPHA			0.01

/* a varint is at most 10 bytes */
#define VARINT_MAX_BYTES		10

/* where a value sits in value order: sign -1, 0 or 1, and its bucket */
typedef struct BucketPosition
{
	int			sign;
	int			index;			/* 0 for zero */
} BucketPosition;

static double LogGamma;			/* log(gamma), set on first use */

static inline double
GetLogGamma(void)
{
	if (LogGamma == 0.0)
		LogGamma = log((1.0 + QUANTILE_ALPHA) / (1.0 - QUANTILE_ALPHA));
	return LogGamma;
}

/* the bucket of a positive finite magnitude, within the kind's bounds */
static inline int
BucketIndex(const QuantileKind *kind, double magnitude)
{
	int			i = (int) ceil(log(magnitude) / GetLogGamma());

	return Min(Max(i, kind->min_index), kind->max_index);
}

/*
 * What bucket i stands for: 2 gamma^i / (gamma + 1).  gamma^i overflows for
 * the top float8 bucket, whose value itself may not: it is then computed in
 * logarithms (only there, so that every other bucket keeps the arithmetic
 * format version 1 of lateness_sketch was written with).
 */
static inline double
BucketValue(int i)
{
	double		gamma = (1.0 + QUANTILE_ALPHA) / (1.0 - QUANTILE_ALPHA);
	double		v = 2.0 * exp(i * GetLogGamma()) / (gamma + 1.0);

	if (isinf(v))
		v = exp(i * GetLogGamma() + log(2.0 / (gamma + 1.0)));
	return v;
}

static BucketPosition
ValuePosition(const QuantileKind *kind, int64 e)
{
	double		v = kind->extreme_value(e);
	BucketPosition p = {0, 0};

	if (v < 0)
	{
		p.sign = -1;
		p.index = BucketIndex(kind, -v);
	}
	else if (v > 0)
	{
		p.sign = 1;
		p.index = BucketIndex(kind, v);
	}
	return p;
}


/* --- the sketch being built --------------------------------------------- */

QuantileState *
QuantileCreate(const QuantileKind *kind, MemoryContext cxt)
{
	QuantileState *s = MemoryContextAllocZero(cxt, sizeof(QuantileState));

	s->kind = kind;
	s->cxt = cxt;
	return s;
}

/*
 * Makes room in a store for buckets from .. to.  Growing (grow = true)
 * leaves slack on the growing side, as much again as the store already
 * has, so that values arriving in magnitude order cost amortized constant
 * time; a store read from a binary form gets its range exactly.
 */
static void
StoreReserve(const QuantileState *s, QuantileStore *st, int from, int to, bool grow)
{
	int			lo;
	int			hi;
	int64	   *counts;

	if (st->n > 0 && from >= st->lo && to < st->lo + st->n)
		return;
	if (st->n == 0)
	{
		lo = from;
		hi = to;
		if (grow)
		{
			lo = Max(lo - 16, s->kind->min_index);
			hi = Min(hi + 16, s->kind->max_index);
		}
	}
	else
	{
		int			slack = grow ? Max(32, st->n) : 0;

		lo = from < st->lo ? Max(from - slack, s->kind->min_index) : st->lo;
		hi = to >= st->lo + st->n ? Min(to + slack, s->kind->max_index) : st->lo + st->n - 1;
	}
	counts = MemoryContextAllocZero(s->cxt, sizeof(int64) * (hi - lo + 1));
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
CountAdd(const QuantileKind *kind, int64 *into, int64 count)
{
	if (pg_add_s64_overflow(*into, count, into))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("pipeline.%s holds more than 2^63 values", kind->type_name)));
}

static void
StoreAdd(QuantileState *s, QuantileStore *st, int i, int64 count)
{
	StoreReserve(s, st, i, i, true);
	CountAdd(s->kind, &st->counts[i - st->lo], count);
}

/* counts count finite values between min and max (as ordered int64s) */
static void
AddExtremes(QuantileState *s, int64 min, int64 max, int64 count)
{
	if (s->finite == 0)
	{
		s->min = min;
		s->max = max;
	}
	else
	{
		s->min = Min(s->min, min);
		s->max = Max(s->max, max);
	}
	CountAdd(s->kind, &s->finite, count);
	CountAdd(s->kind, &s->total, count);
}

/* adds one finite value, given as its kind's ordered int64 */
void
QuantileAdd(QuantileState *s, int64 e)
{
	BucketPosition p = ValuePosition(s->kind, e);

	if (p.sign < 0)
		StoreAdd(s, &s->neg, p.index, 1);
	else if (p.sign > 0)
		StoreAdd(s, &s->pos, p.index, 1);
	else
		CountAdd(s->kind, &s->zero, 1);
	AddExtremes(s, e, e, 1);
}

void
QuantileAddSpecial(QuantileState *s, QuantileSpecial which)
{
	Assert(s->kind->specials);
	CountAdd(s->kind, &s->special[which], 1);
	CountAdd(s->kind, &s->total, 1);
}

/* the first and last non-empty bucket of a store; false if it has none */
static bool
StoreBounds(const QuantileStore *st, int *first, int *last)
{
	int			f = -1;
	int			l = -1;

	for (int k = 0; k < st->n; k++)
	{
		if (st->counts[k] != 0)
		{
			if (f < 0)
				f = k;
			l = k;
		}
	}
	if (f < 0)
		return false;
	*first = st->lo + f;
	*last = st->lo + l;
	return true;
}

static void
StoreMerge(QuantileState *dst, QuantileStore *into, const QuantileStore *from)
{
	int			first;
	int			last;

	if (!StoreBounds(from, &first, &last))
		return;
	StoreReserve(dst, into, first, last, true);
	for (int i = first; i <= last; i++)
		CountAdd(dst->kind, &into->counts[i - into->lo], from->counts[i - from->lo]);
}

void
QuantileMerge(QuantileState *dst, const QuantileState *src)
{
	if (dst->kind != src->kind)
		elog(ERROR, "cannot merge a %s into a %s", src->kind->type_name, dst->kind->type_name);
	if (src->total == 0)
		return;
	StoreMerge(dst, &dst->neg, &src->neg);
	StoreMerge(dst, &dst->pos, &src->pos);
	CountAdd(dst->kind, &dst->zero, src->zero);
	for (int w = 0; w < QUANTILE_NSPECIALS; w++)
	{
		CountAdd(dst->kind, &dst->special[w], src->special[w]);
		CountAdd(dst->kind, &dst->total, src->special[w]);
	}
	if (src->finite > 0)
		AddExtremes(dst, src->min, src->max, src->finite);
}


/* --- the binary form ----------------------------------------------------- */

/*
 * Unsigned LEB128, written straight into the buffer: a sketch is written
 * once per group and fold (hundreds of counts each), so this is hot.
 */
void
QuantilePutVarint(StringInfo buf, uint64 v)
{
	uint8	   *p;

	if (buf->len + VARINT_MAX_BYTES >= buf->maxlen)
		enlargeStringInfo(buf, VARINT_MAX_BYTES);
	p = (uint8 *) buf->data + buf->len;
	while (v >= 0x80)
	{
		*p++ = (uint8) (v & 0x7f) | 0x80;
		v >>= 7;
	}
	*p++ = (uint8) v;
	buf->len = (char *) p - buf->data;
	buf->data[buf->len] = '\0';
}

static void
PutStore(StringInfo buf, const QuantileKind *kind, const QuantileStore *st)
{
	int			first;
	int			last;

	if (!StoreBounds(st, &first, &last))
	{
		QuantilePutVarint(buf, 0);
		return;
	}
	QuantilePutVarint(buf, last - first + 1);
	QuantilePutVarint(buf, kind->min_index < 0 ? QuantileZigZag(first) : (uint64) first);
	for (int i = first; i <= last; i++)
		QuantilePutVarint(buf, st->counts[i - st->lo]);
}

/* the binary form, as a varlena (of the sketch type or bytea: same bytes) */
struct varlena *
QuantileSerialize(const QuantileState *s)
{
	const QuantileKind *kind = s->kind;
	StringInfoData buf;
	struct varlena *result;

	/* the varlena header first, so that the buffer becomes the result */
	initStringInfo(&buf);
	appendStringInfoSpaces(&buf, VARHDRSZ);
	appendStringInfoChar(&buf, kind->version);
	QuantilePutVarint(&buf, s->total);
	if (s->total > 0)
	{
		if (kind->specials)
			for (int w = 0; w < QUANTILE_NSPECIALS; w++)
				QuantilePutVarint(&buf, s->special[w]);
		QuantilePutVarint(&buf, s->zero);
		if (s->finite > 0)
		{
			kind->put_extreme(&buf, s->min);
			kind->put_extreme(&buf, s->max);
		}
		PutStore(&buf, kind, &s->neg);
		PutStore(&buf, kind, &s->pos);
	}

	result = (struct varlena *) buf.data;
	SET_VARSIZE(result, buf.len);
	return result;
}

void
QuantileCorrupt(QuantileReader *r, const char *what)
{
	ereport(ERROR,
			(errcode(r->sqlstate),
			 errmsg("invalid %s: %s", r->type_name, what)));
}

uint64
QuantileGetVarint(QuantileReader *r)
{
	uint64		v = 0;

	for (int n = 0; n < VARINT_MAX_BYTES; n++)
	{
		uint8		b;

		if (r->pos >= r->len)
			QuantileCorrupt(r, "it ends in the middle of a number");
		b = r->data[r->pos++];
		if (n == VARINT_MAX_BYTES - 1 && b > 1)
			QuantileCorrupt(r, "a number does not fit in 64 bits");
		v |= (uint64) (b & 0x7f) << (7 * n);
		if ((b & 0x80) == 0)
		{
			if (b == 0 && n > 0)
				QuantileCorrupt(r, "a number is not in its shortest form");
			return v;
		}
	}
	QuantileCorrupt(r, "a number does not fit in 64 bits");
}

/* the next n bytes (a fixed-width number) */
const uint8 *
QuantileGetBytes(QuantileReader *r, Size n)
{
	const uint8 *p;

	if (r->len - r->pos < n)
		QuantileCorrupt(r, "it ends in the middle of a number");
	p = r->data + r->pos;
	r->pos += n;
	return p;
}

static int64
GetCount(QuantileReader *r)
{
	uint64		v = QuantileGetVarint(r);

	if (v > (uint64) PG_INT64_MAX)
		QuantileCorrupt(r, "a count is larger than 2^63 - 1");
	return (int64) v;
}

/*
 * Reads one store into s, its range exactly as written: the range and the
 * trimming are checked here, what it adds up to by the caller.  False for
 * a store without buckets.
 */
static bool
GetStore(QuantileReader *r, QuantileState *s, QuantileStore *st, int *first, int *last)
{
	const QuantileKind *kind = s->kind;
	uint64		nb = QuantileGetVarint(r);
	uint64		raw;
	int64		lo;

	if (nb == 0)
		return false;
	raw = QuantileGetVarint(r);
	if (kind->min_index < 0)
		lo = QuantileUnZigZag(raw);
	else
		lo = raw > (uint64) kind->max_index ? (int64) kind->max_index + 1 : (int64) raw;
	if (nb > (uint64) (kind->max_index - kind->min_index + 1) ||
		lo < kind->min_index || lo > kind->max_index ||
		lo + (int64) nb - 1 > kind->max_index)
		QuantileCorrupt(r, "a bucket index is out of range");
	StoreReserve(s, st, (int) lo, (int) (lo + nb - 1), false);
	for (uint64 k = 0; k < nb; k++)
	{
		int64		c = GetCount(r);

		if (c == 0 && (k == 0 || k == nb - 1))
			QuantileCorrupt(r, "its bucket range is not trimmed to non-empty buckets");
		st->counts[k] = c;
	}
	*first = (int) lo;
	*last = (int) (lo + nb - 1);
	return true;
}

/*
 * Reads the binary form into a new state in cxt.  The checks that make a
 * sketch canonical (counts adding up, extremes valid and in the outermost
 * buckets) run on every read: they cost little next to reading the
 * buckets.
 */
QuantileState *
QuantileDeserialize(const QuantileKind *kind, MemoryContext cxt,
					const uint8 *data, Size len, int sqlstate)
{
	QuantileReader r = {data, len, 0, sqlstate, kind->type_name};
	QuantileState *s = QuantileCreate(kind, cxt);
	int64		total;
	int64		specials = 0;
	int64		finite;
	int64		sum;
	int			nfirst = 0,
				nlast = 0,
				pfirst = 0,
				plast = 0;
	bool		hasneg;
	bool		haspos;

	if (len < 1)
		QuantileCorrupt(&r, "it is empty");
	if (data[0] != kind->version)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("unsupported %s format version %d", kind->type_name, data[0]),
				 errhint("This build of the pipeline extension reads format version %d.",
						 kind->version)));
	r.pos = 1;
	total = GetCount(&r);
	if (total == 0)
	{
		if (r.pos != r.len)
			QuantileCorrupt(&r, "an empty sketch has bytes after its count");
		return s;
	}
	if (kind->specials)
	{
		for (int w = 0; w < QUANTILE_NSPECIALS; w++)
		{
			s->special[w] = GetCount(&r);
			if (pg_add_s64_overflow(specials, s->special[w], &specials) || specials > total)
				QuantileCorrupt(&r, "it has more infinities and NaNs than values");
		}
	}
	finite = total - specials;
	s->zero = GetCount(&r);
	if (finite > 0)
	{
		s->min = kind->get_extreme(&r);
		s->max = kind->get_extreme(&r);
	}
	hasneg = GetStore(&r, s, &s->neg, &nfirst, &nlast);
	haspos = GetStore(&r, s, &s->pos, &pfirst, &plast);
	if (r.pos != r.len)
		QuantileCorrupt(&r, "it has bytes after its last bucket");

	sum = s->zero;
	for (int k = 0; k < s->neg.n; k++)
		CountAdd(kind, &sum, s->neg.counts[k]);
	for (int k = 0; k < s->pos.n; k++)
		CountAdd(kind, &sum, s->pos.counts[k]);
	if (sum != finite)
		QuantileCorrupt(&r, "its buckets do not add up to its number of values");
	if (finite > 0)
	{
		BucketPosition lowest;
		BucketPosition highest;
		BucketPosition pmin;
		BucketPosition pmax;

		if (!kind->extreme_valid(s->min) || !kind->extreme_valid(s->max) || s->min > s->max)
			QuantileCorrupt(&r, "its minimum and maximum are out of order or out of range");
		if (hasneg)
			lowest = (BucketPosition) {-1, nlast};
		else if (s->zero > 0)
			lowest = (BucketPosition) {0, 0};
		else
			lowest = (BucketPosition) {1, pfirst};
		if (haspos)
			highest = (BucketPosition) {1, plast};
		else if (s->zero > 0)
			highest = (BucketPosition) {0, 0};
		else
			highest = (BucketPosition) {-1, nfirst};
		pmin = ValuePosition(kind, s->min);
		pmax = ValuePosition(kind, s->max);
		if (pmin.sign != lowest.sign || pmin.index != lowest.index ||
			pmax.sign != highest.sign || pmax.index != highest.index)
			QuantileCorrupt(&r, "its minimum or maximum is not in its outermost bucket");
	}
	s->total = total;
	s->finite = finite;
	return s;
}

/* a stored sketch, read into a state in cxt */
QuantileState *
QuantileFromDatum(const QuantileKind *kind, MemoryContext cxt, Datum d)
{
	struct varlena *sketch = PG_DETOAST_DATUM_PACKED(d);

	return QuantileDeserialize(kind, cxt, (const uint8 *) VARDATA_ANY(sketch),
							   VARSIZE_ANY_EXHDR(sketch), ERRCODE_DATA_CORRUPTED);
}


/* --- quantiles ---------------------------------------------------------- */

/* the value standing for the finite value of rank k (0-based, ascending) */
static double
FiniteAtRank(const QuantileState *s, int64 k)
{
	const QuantileKind *kind = s->kind;
	int64		seen = 0;
	double		v = 0.0;
	bool		found = false;

	if (k <= 0)
		return kind->extreme_value(s->min);
	if (k >= s->finite - 1)
		return kind->extreme_value(s->max);
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
		elog(ERROR, "%s rank " INT64_FORMAT " not found among " INT64_FORMAT " values",
			 kind->type_name, k, s->finite);
	/* the true value lies in [min, max]: clamping only brings v closer */
	return Max(Min(v, kind->extreme_value(s->max)), kind->extreme_value(s->min));
}

/* the value standing for the value of rank k: -Infinity, finite, +Infinity, NaN */
static double
ValueAtRank(const QuantileState *s, int64 k)
{
	if (k < s->special[QUANTILE_NEG_INF])
		return -get_float8_infinity();
	k -= s->special[QUANTILE_NEG_INF];
	if (k < s->finite)
		return FiniteAtRank(s, k);
	k -= s->finite;
	if (k < s->special[QUANTILE_POS_INF])
		return get_float8_infinity();
	return get_float8_nan();
}

void
QuantileCheckFraction(double q)
{
	if (isnan(q) || q < 0.0 || q > 1.0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("quantile %g is not between 0 and 1", q),
				 errhint("Ask for e.g. 0.5 (the median), 0.95 or 0.99.")));
}

/*
 * The q-quantile of a non-empty sketch as percentile_cont computes it from
 * the values of the neighbouring ranks (lo + t (hi - lo), only when the
 * rank is not whole: that is what makes -Infinity next to a finite value
 * NaN, as there).  Between two finite values the result stays in
 * [min, max]; rounding could otherwise put it an ulp outside.
 */
double
QuantileInterpolate(const QuantileState *s, double q)
{
	double		r = q * (double) (s->total - 1);
	int64		k0;
	double		v0;
	double		v1;
	double		v;

	Assert(s->total > 0);
	/* r <= n - 1, which as a double may be 2^63 for a count near 2^63 */
	k0 = r >= (double) (s->total - 1) ? s->total - 1 : (int64) floor(r);
	v0 = ValueAtRank(s, k0);
	if (!(r > (double) k0))
		return v0;
	v1 = ValueAtRank(s, k0 + 1);
	v = v0 + (r - (double) k0) * (v1 - v0);
	if (isfinite(v0) && isfinite(v1))
		v = Max(Min(v, s->kind->extreme_value(s->max)), s->kind->extreme_value(s->min));
	return v;
}


/* --- type I/O ------------------------------------------------------------ */

static Datum
SketchFromBytes(const QuantileKind *kind, const uint8 *data, Size len, int sqlstate)
{
	struct varlena *result;

	/* parse to check; the canonical bytes are the input itself */
	(void) QuantileDeserialize(kind, CurrentMemoryContext, data, len, sqlstate);
	result = palloc(VARHDRSZ + len);
	SET_VARSIZE(result, VARHDRSZ + len);
	memcpy(VARDATA(result), data, len);
	return PointerGetDatum(result);
}

Datum
QuantileTypeIn(const QuantileKind *kind, const char *str)
{
	Size		nbytes;
	char	   *bytes = SketchHexDecode(str, strlen(str), kind->type_name, &nbytes);

	return SketchFromBytes(kind, (const uint8 *) bytes, nbytes, ERRCODE_INVALID_TEXT_REPRESENTATION);
}

Datum
QuantileTypeOut(Datum sketch)
{
	return CStringGetDatum(SketchHexEncode(PG_DETOAST_DATUM_PACKED(sketch)));
}

Datum
QuantileTypeRecv(const QuantileKind *kind, StringInfo buf)
{
	int			len = buf->len - buf->cursor;
	const char *data = pq_getmsgbytes(buf, len);

	return SketchFromBytes(kind, (const uint8 *) data, len, ERRCODE_INVALID_BINARY_REPRESENTATION);
}

Datum
QuantileTypeSend(Datum sketch)
{
	return PointerGetDatum(SketchSend(PG_DETOAST_DATUM_PACKED(sketch)));
}


/* --- aggregate support ----------------------------------------------------- */

/* transition of the merge aggregate: folds one sketch in, skips NULLs */
Datum
QuantileAggMergeAdd(FunctionCallInfo fcinfo, const QuantileKind *kind, const char *name)
{
	MemoryContext aggcxt = PipelineAggContext(fcinfo, name);
	QuantileState *s = PG_ARGISNULL(0) ? NULL : (QuantileState *) PG_GETARG_POINTER(0);
	QuantileState *other;

	if (PG_ARGISNULL(1))
	{
		if (s == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s);
	}
	if (s == NULL)
		s = QuantileCreate(kind, aggcxt);
	other = QuantileFromDatum(kind, CurrentMemoryContext, PG_GETARG_DATUM(1));
	QuantileMerge(s, other);
	PG_RETURN_POINTER(s);
}

/*
 * Combines two partial states.  Not strict: the first non-NULL state must
 * be copied into the aggregate context, since the second argument may live
 * in per-tuple memory (it comes from deserialization).
 */
Datum
QuantileAggCombine(FunctionCallInfo fcinfo, const QuantileKind *kind, const char *name)
{
	MemoryContext aggcxt = PipelineAggContext(fcinfo, name);
	QuantileState *s1 = PG_ARGISNULL(0) ? NULL : (QuantileState *) PG_GETARG_POINTER(0);
	QuantileState *s2 = PG_ARGISNULL(1) ? NULL : (QuantileState *) PG_GETARG_POINTER(1);

	if (s2 == NULL)
	{
		if (s1 == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s1);
	}
	if (s1 == NULL)
		s1 = QuantileCreate(kind, aggcxt);
	QuantileMerge(s1, s2);
	PG_RETURN_POINTER(s1);
}

Datum
QuantileAggSerialize(FunctionCallInfo fcinfo, const char *name)
{
	QuantileState *s = (QuantileState *) PG_GETARG_POINTER(0);

	PipelineAggContext(fcinfo, name);
	PG_RETURN_BYTEA_P(QuantileSerialize(s));
}

Datum
QuantileAggDeserialize(FunctionCallInfo fcinfo, const QuantileKind *kind, const char *name)
{
	bytea	   *bytes = PG_GETARG_BYTEA_PP(0);

	PipelineAggContext(fcinfo, name);
	PG_RETURN_POINTER(QuantileDeserialize(kind, CurrentMemoryContext, (const uint8 *) VARDATA_ANY(bytes),
										  VARSIZE_ANY_EXHDR(bytes), ERRCODE_DATA_CORRUPTED));
}

/* final function of both aggregates of a kind; leaves the state as it was */
Datum
QuantileAggFinal(FunctionCallInfo fcinfo, const char *name)
{
	PipelineAggContext(fcinfo, name);
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_POINTER(QuantileSerialize((QuantileState *) PG_GETARG_POINTER(0)));
}
