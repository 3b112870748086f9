/*
 * sketch.c
 *	  The distinct-count sketch: type pipeline.distinct_sketch, the
 *	  aggregates that build and merge it, and its estimate.
 *
 * A sketch stands for a set of 64-bit hashes of values.  While the set is
 * small it is kept as is (the "explicit" form) and counted exactly; past
 * SKETCH_EXPLICIT_MAX hashes it becomes a HyperLogLog of 2^14 one-byte
 * registers (the "dense" form, standard error 1.04/sqrt(16384) = 0.81%),
 * estimated with Otmar Ertl's improved raw estimator ("New cardinality
 * estimation algorithms for HyperLogLog sketches", 2017), which needs no
 * empirical bias tables and has no switch-over point between a small-range
 * and a large-range formula.
 *
 * The canonical form is a function of the hash set alone: explicit
 * (sorted) when it has at most SKETCH_EXPLICIT_MAX hashes, else the
 * registers, each the maximum over its hashes.  So merging sketch(A) and
 * sketch(B) gives the very bytes of sketch(A u B), whatever the order of
 * rows or merges, and a rollup of per-minute sketches equals the sketch of
 * the hour.
 *
 * One form is stored but never shown: the fold merges new values into a
 * hot row's sketch with _distinct_absorb(), which puts a few hashes that
 * are new to an explicit sketch ahead of its sorted ones, unsorted (kind 3,
 * "recent").  A late event adds a value or two to a sketch of hundreds;
 * sorted in, they would move every hash after them, and the WAL record of
 * the row's update (PostgreSQL logs the bytes between the common prefix
 * and the common suffix of the old and new versions) would carry half the
 * sketch.  Ahead of the sorted hashes, they leave those hashes the common
 * suffix.  Past SKETCH_RECENT_MAX recent hashes the sketch is written
 * canonical again.  Every function reads kind 3; the output and send
 * functions, and every result but _distinct_absorb()'s, are canonical.
 *
 * Binary form (also the text form, as '\x' hex; version 1):
 *	byte 0		format version (1)
 *	byte 1		kind: 1 explicit, 2 dense (3 recent: stored only)
 *	explicit:	n hashes, 8 bytes each, big-endian, strictly ascending,
 *				0 <= n <= SKETCH_EXPLICIT_MAX
 *	dense:		one byte precision (14), then 16384 registers
 *	recent:		two bytes r (big-endian), 1 <= r <= SKETCH_RECENT_MAX, then
 *				r hashes in the order they came, then the explicit form's
 *				ascending hashes; r + those <= SKETCH_EXPLICIT_MAX, and no
 *				hash twice
 *
 * Hashing: the value's type's extended hash function (its default hash
 * opclass) with a fixed seed and the call's collation, so equal values of a
 * type hash equal, including under nondeterministic collations; the result
 * goes through a 64-bit finalizer so that HyperLogLog sees well-mixed bits.
 * The integer types (and timestamps, times) are the exception: PostgreSQL's
 * int8 hash folds the value to 32 bits, which would let distinct bigint ids
 * collide and break "exact for small sets".  Their value is mixed directly
 * by a bijection of the 64-bit integer instead, so distinct integers never
 * collide, and int2/int4/int8 sketches stay mergeable with each other as
 * they are under PostgreSQL's own cross-type hashing.  The seed and the
 * mixing are part of format version 1; hashes of text depend on the
 * platform's byte order as PostgreSQL's do.
 *
 * Aggregate states are "internal": an open-addressing set of hashes, or the
 * registers, in the aggregate memory context, updated in place per row.
 * They serialize to the binary form above for parallel aggregation.
 *
 * Citus pushes an aggregate's partial work down to the workers only when
 * its state has a real type (it ships states as text between nodes), so
 * distinct_sketch_dist() builds the same sketch with a state of type
 * distinct_sketch: an expanded object wrapping the same internal state,
 * still updated in place, that flattens to the binary form when shipped or
 * stored.  Its combine function is distinct_union().
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "port/pg_bitutils.h"
#include "port/pg_bswap.h"
#include "utils/expandeddatum.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"

#include "pipeline.h"
#include "sketch_io.h"

#define SKETCH_VERSION			1
#define SKETCH_KIND_EXPLICIT	1
#define SKETCH_KIND_DENSE		2
#define SKETCH_KIND_RECENT		3
#define SKETCH_HEADER_BYTES		2
#define SKETCH_RECENT_HEADER_BYTES 4

/*
 * Most recent hashes a stored sketch keeps unsorted: an update of its row
 * logs at most these 256 bytes of it, and one in 32 new values rewrites
 * the sketch whole
 */
#define SKETCH_RECENT_MAX		32

/* largest explicit set: 8 KB, half the dense form */
#define SKETCH_EXPLICIT_MAX		1024

#define SKETCH_P				14
#define SKETCH_M				(1 << SKETCH_P)
/* hash bits left after the register index; registers hold 0 .. Q + 1 */
#define SKETCH_Q				(64 - SKETCH_P)
#define SKETCH_DENSE_BYTES		(SKETCH_HEADER_BYTES + 1 + SKETCH_M)

/* seed handed to the types' extended hash functions (format version 1) */
#define SKETCH_SEED				UINT64CONST(0x7069706531736b68)

PG_FUNCTION_INFO_V1(pipeline_distinct_sketch_in);
PG_FUNCTION_INFO_V1(pipeline_distinct_sketch_out);
PG_FUNCTION_INFO_V1(pipeline_distinct_sketch_recv);
PG_FUNCTION_INFO_V1(pipeline_distinct_sketch_send);
PG_FUNCTION_INFO_V1(pipeline_distinct_sketch_from_text);
PG_FUNCTION_INFO_V1(pipeline_distinct_sketch_from_name);
PG_FUNCTION_INFO_V1(pipeline_distinct_sketch_add);
PG_FUNCTION_INFO_V1(pipeline_distinct_merge_add);
PG_FUNCTION_INFO_V1(pipeline_distinct_combine);
PG_FUNCTION_INFO_V1(pipeline_distinct_serialize);
PG_FUNCTION_INFO_V1(pipeline_distinct_deserialize);
PG_FUNCTION_INFO_V1(pipeline_distinct_final);
PG_FUNCTION_INFO_V1(pipeline_distinct_union);
PG_FUNCTION_INFO_V1(pipeline_distinct_absorb);
PG_FUNCTION_INFO_V1(pipeline_distinct_count);
PG_FUNCTION_INFO_V1(pipeline_distinct_sketch_dist_add);

/*
 * A sketch being built.  Explicit while registers is NULL: the hashes live
 * in slots (0 marks a free slot, so a zero hash is only flagged).
 */
typedef struct SketchState
{
	MemoryContext cxt;			/* where slots and registers live */
	uint64	   *slots;
	int			nslots;			/* a power of two, at least twice nstored */
	int			nstored;		/* non-zero hashes in slots */
	bool		has_zero;
	uint8	   *registers;		/* dense: SKETCH_M registers */
} SketchState;

/* how one aggregate call site hashes its argument (kept in fn_extra) */
typedef enum SketchHashMethod
{
	SKETCH_HASH_INT16,
	SKETCH_HASH_INT32,
	SKETCH_HASH_INT64,
	SKETCH_HASH_TYPE_PROC
} SketchHashMethod;

typedef struct SketchHasher
{
	Oid			typid;
	Oid			collation;
	SketchHashMethod method;
	FmgrInfo	proc;
} SketchHasher;


/*
 * Stafford's "Mix13" 64-bit finalizer (as in SplitMix64): a bijection with
 * full avalanche, so that every output bit depends on every input bit.
 */
static inline uint64
Mix64(uint64 h)
{
	h ^= h >> 30;
	h *= UINT64CONST(0xbf58476d1ce4e5b9);
	h ^= h >> 27;
	h *= UINT64CONST(0x94d049bb133111eb);
	h ^= h >> 31;
	return h;
}

/* integers: multiplying by an odd constant is a bijection too */
static inline uint64
HashInt64(int64 v)
{
	return Mix64((uint64) v * UINT64CONST(0x9e3779b97f4a7c15) + SKETCH_SEED);
}

static SketchHasher *
GetHasher(FunctionCallInfo fcinfo, int argno)
{
	SketchHasher *hasher = (SketchHasher *) fcinfo->flinfo->fn_extra;
	Oid			typid;
	TypeCacheEntry *typentry;

	/* a call site's argument type never changes: set up once, per row free */
	if (hasher != NULL)
		return hasher;

	typid = get_fn_expr_argtype(fcinfo->flinfo, argno);
	if (!OidIsValid(typid))
	{
		/*
		 * Called without an expression (Citus's worker_partial_agg calls
		 * the transition function so): the declared type, for the
		 * monomorphic transition functions of distinct_sketch_dist
		 */
		Oid		   *argtypes;
		int			nargs;

		(void) get_func_signature(fcinfo->flinfo->fn_oid, &argtypes, &nargs);
		if (argno < nargs && !IsPolymorphicType(argtypes[argno]))
			typid = argtypes[argno];
	}
	if (!OidIsValid(typid))
		elog(ERROR, "could not determine the argument type of pipeline.distinct_sketch");
	typentry = lookup_type_cache(typid, TYPECACHE_HASH_EXTENDED_PROC);
	if (!OidIsValid(typentry->hash_extended_proc))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("pipeline.distinct_sketch cannot hash values of type %s",
						format_type_be(typid)),
				 errdetail("Sketches hash each value with its type's extended hash function, "
						   "which comes from the type's default hash operator class; %s has none.",
						   format_type_be(typid)),
				 errhint("Aggregate a hashable form of the value instead, for example x::text.")));

	hasher = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(SketchHasher));
	hasher->typid = typid;
	hasher->collation = PG_GET_COLLATION();
	switch (typentry->hash_extended_proc)
	{
		case F_HASHINT2EXTENDED:
			hasher->method = SKETCH_HASH_INT16;
			break;
		case F_HASHINT4EXTENDED:
			hasher->method = SKETCH_HASH_INT32;
			break;
		case F_HASHINT8EXTENDED:
		case F_TIMESTAMP_HASH_EXTENDED:
		case F_TIME_HASH_EXTENDED:
			hasher->method = SKETCH_HASH_INT64;
			break;
		default:
			hasher->method = SKETCH_HASH_TYPE_PROC;
			fmgr_info_cxt(typentry->hash_extended_proc, &hasher->proc,
						  fcinfo->flinfo->fn_mcxt);
			break;
	}
	fcinfo->flinfo->fn_extra = hasher;
	return hasher;
}

static inline uint64
HashValue(SketchHasher *hasher, Datum value)
{
	switch (hasher->method)
	{
		case SKETCH_HASH_INT16:
			return HashInt64(DatumGetInt16(value));
		case SKETCH_HASH_INT32:
			return HashInt64(DatumGetInt32(value));
		case SKETCH_HASH_INT64:
			return HashInt64(DatumGetInt64(value));
		case SKETCH_HASH_TYPE_PROC:
			break;
	}
	return Mix64(DatumGetUInt64(FunctionCall2Coll(&hasher->proc, hasher->collation,
												  value, UInt64GetDatum(SKETCH_SEED))));
}


/* --- the sketch being built ------------------------------------------- */

static SketchState *
StateCreate(MemoryContext cxt)
{
	SketchState *s = MemoryContextAllocZero(cxt, sizeof(SketchState));

	s->cxt = cxt;
	s->nslots = 8;
	s->slots = MemoryContextAllocZero(cxt, sizeof(uint64) * s->nslots);
	return s;
}

static inline int
StateExplicitCount(SketchState *s)
{
	return s->nstored + (s->has_zero ? 1 : 0);
}

/* the register a hash lands in: top P bits; its value: leading zeros + 1 of the rest */
static inline void
DenseAdd(uint8 *registers, uint64 h)
{
	uint32		idx = (uint32) (h >> SKETCH_Q);
	uint64		rest = h << SKETCH_P;
	uint8		rank;

	rank = rest == 0 ? SKETCH_Q + 1 : 64 - pg_leftmost_one_pos64(rest);
	if (registers[idx] < rank)
		registers[idx] = rank;
}

static void
StateDensify(SketchState *s)
{
	uint8	   *registers = MemoryContextAllocZero(s->cxt, SKETCH_M);

	for (int i = 0; i < s->nslots; i++)
	{
		if (s->slots[i] != 0)
			DenseAdd(registers, s->slots[i]);
	}
	if (s->has_zero)
		DenseAdd(registers, 0);
	pfree(s->slots);
	s->slots = NULL;
	s->nslots = s->nstored = 0;
	s->has_zero = false;
	s->registers = registers;
}

static void
SlotsGrow(SketchState *s)
{
	int			nslots = s->nslots * 2;
	uint64	   *slots = MemoryContextAllocZero(s->cxt, sizeof(uint64) * nslots);
	uint64		mask = nslots - 1;

	for (int i = 0; i < s->nslots; i++)
	{
		uint64		h = s->slots[i];
		uint64		j;

		if (h == 0)
			continue;
		for (j = h & mask; slots[j] != 0; j = (j + 1) & mask)
			;
		slots[j] = h;
	}
	pfree(s->slots);
	s->slots = slots;
	s->nslots = nslots;
}

static void
StateAddHash(SketchState *s, uint64 h)
{
	uint64		mask;
	uint64		j;

	if (s->registers != NULL)
	{
		DenseAdd(s->registers, h);
		return;
	}
	if (h == 0)
	{
		s->has_zero = true;
	}
	else
	{
		mask = s->nslots - 1;
		for (j = h & mask; s->slots[j] != 0; j = (j + 1) & mask)
		{
			if (s->slots[j] == h)
				return;
		}
		s->slots[j] = h;
		s->nstored++;
		/* keep the load at most one half so that probes stay short */
		if (s->nstored * 2 > s->nslots && s->nstored <= SKETCH_EXPLICIT_MAX)
			SlotsGrow(s);
	}
	if (StateExplicitCount(s) > SKETCH_EXPLICIT_MAX)
		StateDensify(s);
}

static void
StateMakeDense(SketchState *s)
{
	if (s->registers == NULL)
		StateDensify(s);
}

static int
CompareUint64(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return (x > y) - (x < y);
}

/* the i-th of an array of big-endian hashes */
static inline uint64
HashAt(const uint8 *hashes, int i)
{
	uint64		be;

	memcpy(&be, hashes + sizeof(uint64) * i, sizeof(uint64));
	return pg_ntoh64(be);
}

static inline void
HashPut(uint8 *hashes, int i, uint64 h)
{
	uint64		be = pg_hton64(h);

	memcpy(hashes + sizeof(uint64) * i, &be, sizeof(uint64));
}

/* the explicit binary form of n hashes in ascending order */
static struct varlena *
ExplicitForm(const uint64 *hashes, int n)
{
	struct varlena *result = palloc(VARHDRSZ + SKETCH_HEADER_BYTES + sizeof(uint64) * n);
	uint8	   *out = (uint8 *) VARDATA(result);

	SET_VARSIZE(result, VARHDRSZ + SKETCH_HEADER_BYTES + sizeof(uint64) * n);
	out[0] = SKETCH_VERSION;
	out[1] = SKETCH_KIND_EXPLICIT;
	for (int i = 0; i < n; i++)
		HashPut(out + SKETCH_HEADER_BYTES, i, hashes[i]);
	return result;
}

/* the binary form, as a varlena (of type distinct_sketch or bytea: same bytes) */
static struct varlena *
StateSerialize(SketchState *s)
{
	struct varlena *result;
	uint8	   *out;

	if (s->registers != NULL)
	{
		result = palloc(VARHDRSZ + SKETCH_DENSE_BYTES);
		SET_VARSIZE(result, VARHDRSZ + SKETCH_DENSE_BYTES);
		out = (uint8 *) VARDATA(result);
		out[0] = SKETCH_VERSION;
		out[1] = SKETCH_KIND_DENSE;
		out[2] = SKETCH_P;
		memcpy(out + 3, s->registers, SKETCH_M);
	}
	else
	{
		int			n = StateExplicitCount(s);
		uint64	   *hashes = palloc(sizeof(uint64) * Max(n, 1));
		int			k = 0;

		if (s->has_zero)
			hashes[k++] = 0;
		for (int i = 0; i < s->nslots; i++)
		{
			if (s->slots[i] != 0)
				hashes[k++] = s->slots[i];
		}
		Assert(k == n);
		qsort(hashes, n, sizeof(uint64), CompareUint64);
		result = ExplicitForm(hashes, n);
		pfree(hashes);
	}
	return result;
}

/* the hashes of an explicit or recent sketch, where they lie */
typedef struct ExplicitView
{
	const uint8 *recent;		/* nrecent hashes, unsorted (kind 3 only) */
	int			nrecent;
	const uint8 *sorted;		/* nsorted hashes, strictly ascending */
	int			nsorted;
} ExplicitView;

/* the view of a checked sketch of kind explicit or recent */
static void
ExplicitViewOf(const uint8 *data, Size len, ExplicitView *v)
{
	if (data[1] == SKETCH_KIND_RECENT)
	{
		v->nrecent = (data[2] << 8) | data[3];
		v->recent = data + SKETCH_RECENT_HEADER_BYTES;
		v->sorted = v->recent + sizeof(uint64) * v->nrecent;
		v->nsorted = (len - SKETCH_RECENT_HEADER_BYTES) / sizeof(uint64) - v->nrecent;
	}
	else
	{
		Assert(data[1] == SKETCH_KIND_EXPLICIT);
		v->recent = NULL;
		v->nrecent = 0;
		v->sorted = data + SKETCH_HEADER_BYTES;
		v->nsorted = (len - SKETCH_HEADER_BYTES) / sizeof(uint64);
	}
}

static inline bool
IsExplicitKind(const uint8 *data)
{
	return data[1] == SKETCH_KIND_EXPLICIT || data[1] == SKETCH_KIND_RECENT;
}

/* a view's hashes in ascending order (the recent ones sorted in); *n is their count */
static uint64 *
ExplicitAscending(const ExplicitView *v, int *n)
{
	uint64	   *out = palloc(sizeof(uint64) * Max(v->nrecent + v->nsorted, 1));
	uint64		recent[SKETCH_RECENT_MAX];
	int			i = 0;
	int			j = 0;
	int			k = 0;

	for (int r = 0; r < v->nrecent; r++)
		recent[r] = HashAt(v->recent, r);
	qsort(recent, v->nrecent, sizeof(uint64), CompareUint64);
	/* no hash is in both: a plain merge */
	while (i < v->nrecent || j < v->nsorted)
	{
		if (j >= v->nsorted || (i < v->nrecent && recent[i] < HashAt(v->sorted, j)))
			out[k++] = recent[i++];
		else
			out[k++] = HashAt(v->sorted, j++);
	}
	*n = k;
	return out;
}

/* whether an ascending array of big-endian hashes holds h */
static bool
SortedContains(const uint8 *sorted, int n, uint64 h)
{
	int			lo = 0;
	int			hi = n - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		uint64		x = HashAt(sorted, mid);

		if (x == h)
			return true;
		if (x < h)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return false;
}

static bool
ViewContains(const ExplicitView *v, uint64 h)
{
	for (int r = 0; r < v->nrecent; r++)
	{
		if (HashAt(v->recent, r) == h)
			return true;
	}
	return SortedContains(v->sorted, v->nsorted, h);
}

/*
 * Checks the binary form.  The header and length are checked everywhere a
 * sketch is read; the order of the hashes and the register values only
 * where a sketch enters from outside (input and receive functions), which is
 * what makes every stored sketch canonical, or of kind recent as
 * _distinct_absorb() wrote it (input refuses that kind).
 */
static void
SketchCheck(const uint8 *data, Size len, bool deep, int sqlstate)
{
	if (len < SKETCH_HEADER_BYTES)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("invalid distinct_sketch: shorter than its %d-byte header",
						SKETCH_HEADER_BYTES)));
	if (data[0] != SKETCH_VERSION)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("unsupported distinct_sketch format version %d", data[0]),
				 errhint("This build of the pipeline extension reads format version %d.",
						 SKETCH_VERSION)));
	if (data[1] == SKETCH_KIND_EXPLICIT)
	{
		Size		n = (len - SKETCH_HEADER_BYTES) / sizeof(uint64);

		if ((len - SKETCH_HEADER_BYTES) % sizeof(uint64) != 0)
			ereport(ERROR,
					(errcode(sqlstate),
					 errmsg("invalid distinct_sketch: explicit form of %zu bytes is not a whole number of 8-byte hashes",
							len - SKETCH_HEADER_BYTES)));
		if (n > SKETCH_EXPLICIT_MAX)
			ereport(ERROR,
					(errcode(sqlstate),
					 errmsg("invalid distinct_sketch: explicit form holds %zu hashes, more than %d",
							n, SKETCH_EXPLICIT_MAX)));
		if (deep)
		{
			for (Size i = 1; i < n; i++)
			{
				if (HashAt(data + SKETCH_HEADER_BYTES, i - 1) >= HashAt(data + SKETCH_HEADER_BYTES, i))
					ereport(ERROR,
							(errcode(sqlstate),
							 errmsg("invalid distinct_sketch: explicit hashes are not strictly ascending")));
			}
		}
	}
	else if (data[1] == SKETCH_KIND_DENSE)
	{
		if (len != SKETCH_DENSE_BYTES)
			ereport(ERROR,
					(errcode(sqlstate),
					 errmsg("invalid distinct_sketch: dense form is %zu bytes, expected %d",
							len, SKETCH_DENSE_BYTES)));
		if (data[2] != SKETCH_P)
			ereport(ERROR,
					(errcode(sqlstate),
					 errmsg("invalid distinct_sketch: dense precision %d is not supported, only %d",
							data[2], SKETCH_P)));
		if (deep)
		{
			for (int i = 0; i < SKETCH_M; i++)
			{
				if (data[3 + i] > SKETCH_Q + 1)
					ereport(ERROR,
							(errcode(sqlstate),
							 errmsg("invalid distinct_sketch: register %d holds %d, more than %d",
									i, data[3 + i], SKETCH_Q + 1)));
			}
		}
	}
	else if (data[1] == SKETCH_KIND_RECENT)
	{
		Size		n = (len - SKETCH_RECENT_HEADER_BYTES) / sizeof(uint64);
		int			nrecent = len < SKETCH_RECENT_HEADER_BYTES ? 0 : (data[2] << 8) | data[3];

		/* written only by _distinct_absorb() into a stored row; never read in */
		if (deep)
			ereport(ERROR,
					(errcode(sqlstate),
					 errmsg("invalid distinct_sketch: kind %d is a stored form, not an input", data[1]),
					 errhint("A sketch's text and binary output is its canonical form; give that.")));
		if (len < SKETCH_RECENT_HEADER_BYTES ||
			(len - SKETCH_RECENT_HEADER_BYTES) % sizeof(uint64) != 0 ||
			nrecent < 1 || nrecent > SKETCH_RECENT_MAX || (Size) nrecent > n ||
			n > SKETCH_EXPLICIT_MAX)
			ereport(ERROR,
					(errcode(sqlstate),
					 errmsg("invalid distinct_sketch: malformed stored form of %zu bytes", len)));
	}
	else
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("invalid distinct_sketch: unknown kind %d", data[1])));
}

/* the canonical form of a sketch (itself unless it is of kind recent) */
static struct varlena *
SketchCanonical(struct varlena *sketch)
{
	const uint8 *data = (const uint8 *) VARDATA_ANY(sketch);
	ExplicitView v;
	uint64	   *hashes;
	int			n;

	if (VARSIZE_ANY_EXHDR(sketch) < SKETCH_HEADER_BYTES || data[1] != SKETCH_KIND_RECENT)
		return sketch;
	SketchCheck(data, VARSIZE_ANY_EXHDR(sketch), false, ERRCODE_DATA_CORRUPTED);
	ExplicitViewOf(data, VARSIZE_ANY_EXHDR(sketch), &v);
	hashes = ExplicitAscending(&v, &n);
	return ExplicitForm(hashes, n);
}

/* folds a sketch's binary form into s */
static void
StateMergeBytes(SketchState *s, const uint8 *data, Size len)
{
	SketchCheck(data, len, false, ERRCODE_DATA_CORRUPTED);
	if (data[1] == SKETCH_KIND_DENSE)
	{
		const uint8 *registers = data + 3;

		StateMakeDense(s);
		for (int i = 0; i < SKETCH_M; i++)
		{
			if (s->registers[i] < registers[i])
				s->registers[i] = registers[i];
		}
	}
	else
	{
		ExplicitView v;

		ExplicitViewOf(data, len, &v);
		for (int i = 0; i < v.nrecent; i++)
			StateAddHash(s, HashAt(v.recent, i));
		for (int i = 0; i < v.nsorted; i++)
			StateAddHash(s, HashAt(v.sorted, i));
	}
}

static void
StateMergeState(SketchState *dst, SketchState *src)
{
	if (src->registers != NULL)
	{
		StateMakeDense(dst);
		for (int i = 0; i < SKETCH_M; i++)
		{
			if (dst->registers[i] < src->registers[i])
				dst->registers[i] = src->registers[i];
		}
		return;
	}
	if (src->has_zero)
		StateAddHash(dst, 0);
	for (int i = 0; i < src->nslots; i++)
	{
		if (src->slots[i] != 0)
			StateAddHash(dst, src->slots[i]);
	}
}

static SketchState *
StateCopy(SketchState *src, MemoryContext cxt)
{
	SketchState *s = MemoryContextAlloc(cxt, sizeof(SketchState));

	*s = *src;
	s->cxt = cxt;
	if (src->registers != NULL)
	{
		s->registers = MemoryContextAlloc(cxt, SKETCH_M);
		memcpy(s->registers, src->registers, SKETCH_M);
	}
	else
	{
		s->slots = MemoryContextAlloc(cxt, sizeof(uint64) * src->nslots);
		memcpy(s->slots, src->slots, sizeof(uint64) * src->nslots);
	}
	return s;
}


/* --- the estimate ----------------------------------------------------- */

/*
 * Ertl's sigma(x) = x + sum_{k>=1} x^(2^k) 2^(k-1), the correction for
 * registers still at zero (the small-range end).
 */
static double
ErtlSigma(double x)
{
	double		y = 1.0;
	double		z = x;
	double		prev;

	if (x == 1.0)
		return INFINITY;
	do
	{
		x *= x;
		prev = z;
		z += x * y;
		y += y;
	} while (z != prev);
	return z;
}

/*
 * Ertl's tau(x) = (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3, the
 * correction for registers at their maximum (the large-range end).
 */
static double
ErtlTau(double x)
{
	double		y = 1.0;
	double		z;
	double		prev;

	if (x == 0.0 || x == 1.0)
		return 0.0;
	z = 1.0 - x;
	do
	{
		x = sqrt(x);
		prev = z;
		y *= 0.5;
		z -= (1.0 - x) * (1.0 - x) * y;
	} while (z != prev);
	return z / 3.0;
}

static int64
DenseEstimate(const uint8 *registers)
{
	int			counts[SKETCH_Q + 2] = {0};
	double		m = SKETCH_M;
	double		z;
	double		estimate;

	for (int i = 0; i < SKETCH_M; i++)
		counts[registers[i]]++;

	z = m * ErtlTau(1.0 - counts[SKETCH_Q + 1] / m);
	for (int k = SKETCH_Q; k >= 1; k--)
	{
		z += counts[k];
		z *= 0.5;
	}
	z += m * ErtlSigma(counts[0] / m);
	/* alpha_inf = 1 / (2 ln 2) */
	estimate = 0.72134752044448170368 * m * m / z;

	/* a dense sketch stands for more hashes than the explicit form holds */
	return Max((int64) rint(estimate), SKETCH_EXPLICIT_MAX + 1);
}


/* --- type I/O ----------------------------------------------------------- */

static Datum
SketchFromBytes(const uint8 *data, Size len, int sqlstate)
{
	struct varlena *result;

	SketchCheck(data, len, true, sqlstate);
	result = palloc(VARHDRSZ + len);
	SET_VARSIZE(result, VARHDRSZ + len);
	memcpy(VARDATA(result), data, len);
	return PointerGetDatum(result);
}

static Datum
SketchFromHex(const char *str, Size len)
{
	Size		nbytes;
	char	   *bytes = SketchHexDecode(str, len, "distinct_sketch", &nbytes);

	return SketchFromBytes((const uint8 *) bytes, nbytes, ERRCODE_INVALID_TEXT_REPRESENTATION);
}

Datum
pipeline_distinct_sketch_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);

	return SketchFromHex(str, strlen(str));
}

Datum
pipeline_distinct_sketch_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_CSTRING(SketchHexEncode(SketchCanonical(PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(0)))));
}

Datum
pipeline_distinct_sketch_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			len = buf->len - buf->cursor;
	const char *data = pq_getmsgbytes(buf, len);

	return SketchFromBytes((const uint8 *) data, len, ERRCODE_INVALID_BINARY_REPRESENTATION);
}

Datum
pipeline_distinct_sketch_send(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(SketchSend(SketchCanonical(PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(0)))));
}

/*
 * Casts from the string types.  They parse like the input function; they
 * exist so that pipeline.distinct_sketch(text_column) calls the aggregate.
 * Without a cast function, PostgreSQL reads a one-argument call named like
 * a type, on a string-typed argument, as an I/O conversion to that type.
 * The text one also serves varchar and bpchar (same layout; hex_decode
 * skips bpchar's padding).
 */
Datum
pipeline_distinct_sketch_from_text(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	return SketchFromHex(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

Datum
pipeline_distinct_sketch_from_name(PG_FUNCTION_ARGS)
{
	Name		n = PG_GETARG_NAME(0);

	return SketchFromHex(NameStr(*n), strlen(NameStr(*n)));
}


/* --- aggregates ------------------------------------------------------------ */

/* transition of distinct_sketch(anyelement): adds one value's hash */
Datum
pipeline_distinct_sketch_add(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = PipelineAggContext(fcinfo, "pipeline_distinct_sketch_add");
	SketchState *s = PG_ARGISNULL(0) ? NULL : (SketchState *) PG_GETARG_POINTER(0);
	SketchHasher *hasher;

	/* before the NULL check, so that an unhashable type fails on any row */
	hasher = GetHasher(fcinfo, 1);
	if (PG_ARGISNULL(1))
	{
		if (s == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s);
	}
	if (s == NULL)
		s = StateCreate(aggcxt);
	StateAddHash(s, HashValue(hasher, PG_GETARG_DATUM(1)));
	PG_RETURN_POINTER(s);
}

/* transition of distinct_merge(distinct_sketch): folds one sketch in */
Datum
pipeline_distinct_merge_add(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = PipelineAggContext(fcinfo, "pipeline_distinct_merge_add");
	SketchState *s = PG_ARGISNULL(0) ? NULL : (SketchState *) PG_GETARG_POINTER(0);
	struct varlena *sketch;

	if (PG_ARGISNULL(1))
	{
		if (s == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s);
	}
	sketch = PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(1));
	if (s == NULL)
		s = StateCreate(aggcxt);
	StateMergeBytes(s, (const uint8 *) VARDATA_ANY(sketch), VARSIZE_ANY_EXHDR(sketch));
	PG_RETURN_POINTER(s);
}

/*
 * Combines two partial states.  Not strict: with internal states the first
 * non-NULL one must be copied into the aggregate context, since the second
 * argument may live in per-tuple memory (it comes from deserialization).
 */
Datum
pipeline_distinct_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = PipelineAggContext(fcinfo, "pipeline_distinct_combine");
	SketchState *s1 = PG_ARGISNULL(0) ? NULL : (SketchState *) PG_GETARG_POINTER(0);
	SketchState *s2 = PG_ARGISNULL(1) ? NULL : (SketchState *) PG_GETARG_POINTER(1);

	if (s2 == NULL)
	{
		if (s1 == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s1);
	}
	if (s1 == NULL)
		PG_RETURN_POINTER(StateCopy(s2, aggcxt));
	StateMergeState(s1, s2);
	PG_RETURN_POINTER(s1);
}

Datum
pipeline_distinct_serialize(PG_FUNCTION_ARGS)
{
	SketchState *s = (SketchState *) PG_GETARG_POINTER(0);

	PipelineAggContext(fcinfo, "pipeline_distinct_serialize");
	PG_RETURN_BYTEA_P(StateSerialize(s));
}

Datum
pipeline_distinct_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *bytes = PG_GETARG_BYTEA_PP(0);
	SketchState *s;

	PipelineAggContext(fcinfo, "pipeline_distinct_deserialize");
	s = StateCreate(CurrentMemoryContext);
	StateMergeBytes(s, (const uint8 *) VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes));
	PG_RETURN_POINTER(s);
}

/* final function of both aggregates; leaves the state as it was */
Datum
pipeline_distinct_final(PG_FUNCTION_ARGS)
{
	PipelineAggContext(fcinfo, "pipeline_distinct_final");
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_POINTER(StateSerialize((SketchState *) PG_GETARG_POINTER(0)));
}


/* --- functions on sketches ------------------------------------------------ */

/*
 * The union of two explicit sketches by a merge of their ascending hashes,
 * or NULL when it holds more hashes than the explicit form keeps.  A late
 * fold merges a few new values into the sketch of every bucket it touches;
 * this keeps that linear in the stored sketch's size, with no hash table
 * (and no sort but of a recent form's few unsorted hashes).  The result is
 * the canonical form StateSerialize writes.
 */
static struct varlena *
ExplicitUnion(const ExplicitView *va, const ExplicitView *vb)
{
	int			na;
	int			nb;
	uint64	   *a = ExplicitAscending(va, &na);
	uint64	   *b = ExplicitAscending(vb, &nb);
	uint64	   *merged = palloc(sizeof(uint64) * Max(na + nb, 1));
	struct varlena *result;
	int			i = 0;
	int			j = 0;
	int			n = 0;

	while (i < na || j < nb)
	{
		if (j >= nb || (i < na && a[i] < b[j]))
			merged[n++] = a[i++];
		else if (i >= na || b[j] < a[i])
			merged[n++] = b[j++];
		else
		{
			merged[n++] = a[i++];
			j++;
		}
	}
	result = n > SKETCH_EXPLICIT_MAX ? NULL : ExplicitForm(merged, n);
	pfree(a);
	pfree(b);
	pfree(merged);
	return result;
}

/* the canonical union of two checked, detoasted sketches */
static struct varlena *
SketchUnion(struct varlena *a, struct varlena *b)
{
	const uint8 *adata = (const uint8 *) VARDATA_ANY(a);
	const uint8 *bdata = (const uint8 *) VARDATA_ANY(b);
	SketchState *s;

	if (IsExplicitKind(adata) && IsExplicitKind(bdata))
	{
		ExplicitView va;
		ExplicitView vb;
		struct varlena *merged;

		ExplicitViewOf(adata, VARSIZE_ANY_EXHDR(a), &va);
		ExplicitViewOf(bdata, VARSIZE_ANY_EXHDR(b), &vb);
		merged = ExplicitUnion(&va, &vb);
		if (merged != NULL)
			return merged;
	}
	s = StateCreate(CurrentMemoryContext);
	StateMergeBytes(s, adata, VARSIZE_ANY_EXHDR(a));
	StateMergeBytes(s, bdata, VARSIZE_ANY_EXHDR(b));
	return StateSerialize(s);
}

/* a sketch argument, detoasted and checked */
static struct varlena *
SketchArg(FunctionCallInfo fcinfo, int argno)
{
	struct varlena *sketch = PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(argno));

	SketchCheck((const uint8 *) VARDATA_ANY(sketch), VARSIZE_ANY_EXHDR(sketch), false,
				ERRCODE_DATA_CORRUPTED);
	return sketch;
}

/* union of two sketches; a NULL side is an absent one */
Datum
pipeline_distinct_union(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) && PG_ARGISNULL(1))
		PG_RETURN_NULL();
	if (PG_ARGISNULL(0))
		PG_RETURN_POINTER(SketchCanonical(PG_DETOAST_DATUM(PG_GETARG_DATUM(1))));
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(SketchCanonical(PG_DETOAST_DATUM(PG_GETARG_DATUM(0))));
	PG_RETURN_POINTER(SketchUnion(SketchArg(fcinfo, 0), SketchArg(fcinfo, 1)));
}

/*
 * The fold's merge of a batch's sketch (new) into a hot row's (stored): the
 * union, as distinct_union() gives it, except that when new brings at most
 * SKETCH_RECENT_MAX hashes an explicit stored sketch lacks, in all, they
 * go ahead of its sorted hashes (kind recent; see the top of this file),
 * and when it brings none, stored comes back as it is.
 */
Datum
pipeline_distinct_absorb(PG_FUNCTION_ARGS)
{
	struct varlena *stored;
	struct varlena *new;
	ExplicitView vs;
	ExplicitView vn;
	uint64		fresh[SKETCH_RECENT_MAX];
	int			nfresh = 0;
	int			room;
	int			nrecent;
	int			total;
	struct varlena *result;
	uint8	   *out;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		return pipeline_distinct_union(fcinfo);
	stored = SketchArg(fcinfo, 0);
	new = SketchArg(fcinfo, 1);
	if (!IsExplicitKind((const uint8 *) VARDATA_ANY(stored)) ||
		!IsExplicitKind((const uint8 *) VARDATA_ANY(new)))
		PG_RETURN_POINTER(SketchUnion(stored, new));

	ExplicitViewOf((const uint8 *) VARDATA_ANY(stored), VARSIZE_ANY_EXHDR(stored), &vs);
	ExplicitViewOf((const uint8 *) VARDATA_ANY(new), VARSIZE_ANY_EXHDR(new), &vn);
	room = SKETCH_RECENT_MAX - vs.nrecent;
	for (int i = 0; i < vn.nrecent + vn.nsorted; i++)
	{
		uint64		h = i < vn.nrecent ? HashAt(vn.recent, i) : HashAt(vn.sorted, i - vn.nrecent);
		bool		seen = ViewContains(&vs, h);

		for (int k = 0; k < nfresh && !seen; k++)
			seen = fresh[k] == h;
		if (seen)
			continue;
		if (nfresh == room)
			PG_RETURN_POINTER(SketchUnion(stored, new));
		fresh[nfresh++] = h;
	}
	if (nfresh == 0)
		PG_RETURN_POINTER(stored);
	total = vs.nrecent + vs.nsorted + nfresh;
	if (total > SKETCH_EXPLICIT_MAX)
		PG_RETURN_POINTER(SketchUnion(stored, new));

	/* version, kind, count of recent; old recent, fresh, sorted */
	nrecent = vs.nrecent + nfresh;
	result = palloc(VARHDRSZ + SKETCH_RECENT_HEADER_BYTES + sizeof(uint64) * total);
	SET_VARSIZE(result, VARHDRSZ + SKETCH_RECENT_HEADER_BYTES + sizeof(uint64) * total);
	out = (uint8 *) VARDATA(result);
	out[0] = SKETCH_VERSION;
	out[1] = SKETCH_KIND_RECENT;
	out[2] = (uint8) (nrecent >> 8);
	out[3] = (uint8) nrecent;
	out += SKETCH_RECENT_HEADER_BYTES;
	if (vs.nrecent > 0)
		memcpy(out, vs.recent, sizeof(uint64) * vs.nrecent);
	for (int k = 0; k < nfresh; k++)
		HashPut(out, vs.nrecent + k, fresh[k]);
	memcpy(out + sizeof(uint64) * nrecent, vs.sorted, sizeof(uint64) * vs.nsorted);
	PG_RETURN_POINTER(result);
}

Datum
pipeline_distinct_count(PG_FUNCTION_ARGS)
{
	struct varlena *sketch = PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(0));
	const uint8 *data = (const uint8 *) VARDATA_ANY(sketch);
	Size		len = VARSIZE_ANY_EXHDR(sketch);

	SketchCheck(data, len, false, ERRCODE_DATA_CORRUPTED);
	if (IsExplicitKind(data))
	{
		ExplicitView v;

		ExplicitViewOf(data, len, &v);
		PG_RETURN_INT64(v.nrecent + v.nsorted);
	}
	PG_RETURN_INT64(DenseEstimate(data + 3));
}


/* --- the state Citus ships: an expanded distinct_sketch -------------------- */

typedef struct SketchExpanded
{
	ExpandedObjectHeader hdr;
	SketchState *state;			/* in hdr's context */
	struct varlena *flat;		/* the binary form, until the next add */
	SketchHasher hasher;		/* Citus sets up the transition call anew per row */
	bool		has_hasher;
} SketchExpanded;

static Size
SketchExpandedFlatSize(ExpandedObjectHeader *eohptr)
{
	SketchExpanded *x = (SketchExpanded *) eohptr;

	if (x->flat == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(x->hdr.eoh_context);

		x->flat = StateSerialize(x->state);
		MemoryContextSwitchTo(old);
	}
	return VARSIZE(x->flat);
}

static void
SketchExpandedFlatten(ExpandedObjectHeader *eohptr, void *result, Size allocated_size)
{
	SketchExpanded *x = (SketchExpanded *) eohptr;

	Assert(x->flat != NULL && allocated_size == VARSIZE(x->flat));
	memcpy(result, x->flat, allocated_size);
}

static const ExpandedObjectMethods SketchExpandedMethods = {
	SketchExpandedFlatSize,
	SketchExpandedFlatten
};

/*
 * Transition of distinct_sketch_dist(anyelement): the state is our own
 * read-write expanded object after the first row; a flat sketch (a state
 * Citus read back from text) is expanded first.
 */
Datum
pipeline_distinct_sketch_dist_add(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = PipelineAggContext(fcinfo, "pipeline_distinct_sketch_dist_add");
	SketchExpanded *x = NULL;

	if (!PG_ARGISNULL(0) && VARATT_IS_EXTERNAL_EXPANDED_RW(DatumGetPointer(PG_GETARG_DATUM(0))) &&
		DatumGetEOHP(PG_GETARG_DATUM(0))->eoh_methods == &SketchExpandedMethods)
		x = (SketchExpanded *) DatumGetEOHP(PG_GETARG_DATUM(0));

	/* before the NULL check, so that an unhashable type fails on any row */
	if (x == NULL || !x->has_hasher)
		(void) GetHasher(fcinfo, 1);
	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	if (x == NULL)
	{
		MemoryContext cxt = AllocSetContextCreate(aggcxt, "distinct sketch", ALLOCSET_DEFAULT_SIZES);

		x = MemoryContextAllocZero(cxt, sizeof(SketchExpanded));
		EOH_init_header(&x->hdr, &SketchExpandedMethods, cxt);
		x->state = StateCreate(cxt);
		if (!PG_ARGISNULL(0))
		{
			struct varlena *flat = PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(0));

			StateMergeBytes(x->state, (const uint8 *) VARDATA_ANY(flat), VARSIZE_ANY_EXHDR(flat));
		}
	}
	if (x->flat != NULL)
	{
		pfree(x->flat);
		x->flat = NULL;
	}
	if (!x->has_hasher)
	{
		SketchHasher *h = GetHasher(fcinfo, 1);

		x->hasher = *h;
		if (h->method == SKETCH_HASH_TYPE_PROC)
			fmgr_info_copy(&x->hasher.proc, &h->proc, x->hdr.eoh_context);
		x->has_hasher = true;
	}
	StateAddHash(x->state, HashValue(&x->hasher, PG_GETARG_DATUM(1)));
	PG_RETURN_DATUM(EOHPGetRWDatum(&x->hdr));
}
