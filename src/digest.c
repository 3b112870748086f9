/*
 * digest.c
 *	  The order-independent digest aggregate pipeline.digest(text): a
 *	  fingerprint of a multiset of strings, used to prove that a frozen day
 *	  has not changed since it was frozen.
 *
 * The digest of a multiset is its size and two 64-bit sums, modulo 2^64, of
 * a hash of each element under two different seeds.  Addition is
 * commutative and associative, so the digest does not depend on the order
 * of the rows, on how a parallel plan splits them, or on the order partial
 * states are combined in; and a sum (unlike an xor or a set) counts an
 * element twice when it occurs twice.  Two multisets that differ get the
 * same digest only if they have the same size and both sums collide, about
 * one chance in 2^128 for data that is not built to collide (the hashes
 * are not cryptographic: this detects accidents, not an adversary who can
 * write the table).
 *
 * NULL is an element of its own: it adds a fixed value to each sum that is
 * not the hash of any particular string (in particular not that of ''), so
 * NULL and '' give different digests, and rows of NULLs are counted.
 *
 * Text form (format version 1): 50 lower-case hex digits, fixed width:
 *	2 digits	format version (01)
 *	16 digits	number of elements, NULLs included
 *	16 digits	sum of the hashes under the first seed
 *	16 digits	sum of the hashes under the second seed
 * The empty multiset has a digest too (version, then zeros), so an empty
 * day can be frozen and checked like any other.
 *
 * Hashing: PostgreSQL's hash_bytes_extended (Jenkins' lookup3, 64 bits) of
 * the string's bytes, whatever its collation (a digest proves the bytes did
 * not change, not that they compare equal).  The seeds are part of format
 * version 1.  Like PostgreSQL's own hashes, the result depends on the
 * platform's byte order: compare digests computed on the same architecture.
 *
 * The aggregate state is "internal", in the aggregate memory context,
 * updated in place per row; it serializes to 24 bytes for parallel plans.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"

#include "pipeline.h"

#define DIGEST_VERSION		1

/* the two seeds (format version 1): ASCII "pl-dgst1" and "pl-dgst2" */
#define DIGEST_SEED_1		UINT64CONST(0x706c2d6467737431)
#define DIGEST_SEED_2		UINT64CONST(0x706c2d6467737432)

/*
 * What a NULL adds to each sum: the hashes of the marker "NULL" under seeds
 * that no string is hashed with (each seed xor this tweak), so a NULL is
 * neither '' nor 'NULL' nor any other string.
 */
#define DIGEST_NULL_TWEAK	UINT64CONST(0x9e3779b97f4a7c15)

/* serialized state: count, sum1, sum2, 8 bytes each in network byte order */
#define DIGEST_STATE_BYTES	24

/* 2 + 3 * 16 hex digits */
#define DIGEST_TEXT_LEN		50

PG_FUNCTION_INFO_V1(pipeline_digest_add);
PG_FUNCTION_INFO_V1(pipeline_digest_combine);
PG_FUNCTION_INFO_V1(pipeline_digest_serialize);
PG_FUNCTION_INFO_V1(pipeline_digest_deserialize);
PG_FUNCTION_INFO_V1(pipeline_digest_final);

typedef struct DigestState
{
	uint64		count;			/* elements seen, NULLs included */
	uint64		sum1;			/* sum of hashes under DIGEST_SEED_1, mod 2^64 */
	uint64		sum2;			/* sum of hashes under DIGEST_SEED_2, mod 2^64 */
} DigestState;

static inline void
DigestAddHashes(DigestState *s, uint64 h1, uint64 h2)
{
	s->count++;
	s->sum1 += h1;
	s->sum2 += h2;
}

static void
DigestAddNull(DigestState *s)
{
	static const unsigned char marker[] = "NULL";

	DigestAddHashes(s,
					hash_bytes_extended(marker, 4, DIGEST_SEED_1 ^ DIGEST_NULL_TWEAK),
					hash_bytes_extended(marker, 4, DIGEST_SEED_2 ^ DIGEST_NULL_TWEAK));
}

static void
DigestAddBytes(DigestState *s, const char *data, int len)
{
	const unsigned char *k = (const unsigned char *) data;

	DigestAddHashes(s,
					hash_bytes_extended(k, len, DIGEST_SEED_1),
					hash_bytes_extended(k, len, DIGEST_SEED_2));
}

/*
 * Transition function.  Not strict: a NULL input is an element too, and
 * the state is created on the first row, whatever it is.
 */
Datum
pipeline_digest_add(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = PipelineAggContext(fcinfo, "pipeline_digest_add");
	DigestState *s;

	if (PG_ARGISNULL(0))
		s = MemoryContextAllocZero(aggcxt, sizeof(DigestState));
	else
		s = (DigestState *) PG_GETARG_POINTER(0);

	if (PG_ARGISNULL(1))
		DigestAddNull(s);
	else
	{
		text	   *t = PG_GETARG_TEXT_PP(1);

		/* a detoasted copy is in per-row memory, reset by the executor */
		DigestAddBytes(s, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	}
	PG_RETURN_POINTER(s);
}

/*
 * Combines two partial states: the digest of the union of two multisets is
 * the sum of their digests.  Not strict: the second state may live in
 * per-tuple memory (it comes from deserialization), so when the first is
 * NULL the second is copied into the aggregate context.
 */
Datum
pipeline_digest_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = PipelineAggContext(fcinfo, "pipeline_digest_combine");
	DigestState *s1 = PG_ARGISNULL(0) ? NULL : (DigestState *) PG_GETARG_POINTER(0);
	DigestState *s2 = PG_ARGISNULL(1) ? NULL : (DigestState *) PG_GETARG_POINTER(1);

	if (s2 == NULL)
	{
		if (s1 == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s1);
	}
	if (s1 == NULL)
	{
		s1 = MemoryContextAlloc(aggcxt, sizeof(DigestState));
		*s1 = *s2;
		PG_RETURN_POINTER(s1);
	}
	s1->count += s2->count;
	s1->sum1 += s2->sum1;
	s1->sum2 += s2->sum2;
	PG_RETURN_POINTER(s1);
}

Datum
pipeline_digest_serialize(PG_FUNCTION_ARGS)
{
	DigestState *s = (DigestState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	PipelineAggContext(fcinfo, "pipeline_digest_serialize");
	pq_begintypsend(&buf);
	pq_sendint64(&buf, (int64) s->count);
	pq_sendint64(&buf, (int64) s->sum1);
	pq_sendint64(&buf, (int64) s->sum2);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

static inline uint64
DigestReadUint64(const char *p)
{
	uint64		be;

	memcpy(&be, p, sizeof(uint64));
	return pg_ntoh64(be);
}

Datum
pipeline_digest_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *bytes = PG_GETARG_BYTEA_PP(0);
	const char *data = VARDATA_ANY(bytes);
	DigestState *s;

	PipelineAggContext(fcinfo, "pipeline_digest_deserialize");
	if (VARSIZE_ANY_EXHDR(bytes) != DIGEST_STATE_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid pipeline.digest state: %zu bytes, expected %d",
						(Size) VARSIZE_ANY_EXHDR(bytes), DIGEST_STATE_BYTES)));

	s = palloc(sizeof(DigestState));
	s->count = DigestReadUint64(data);
	s->sum1 = DigestReadUint64(data + 8);
	s->sum2 = DigestReadUint64(data + 16);
	PG_RETURN_POINTER(s);
}

/*
 * Final function.  Not strict: no rows at all leave the state NULL, and
 * the empty multiset has a digest like any other.  Leaves the state as it
 * was (the aggregate may be used as a window function).
 */
Datum
pipeline_digest_final(PG_FUNCTION_ARGS)
{
	DigestState empty = {0, 0, 0};
	DigestState *s;
	char		out[DIGEST_TEXT_LEN + 1];

	PipelineAggContext(fcinfo, "pipeline_digest_final");
	s = PG_ARGISNULL(0) ? &empty : (DigestState *) PG_GETARG_POINTER(0);
	snprintf(out, sizeof(out),
			 "%02x%016" INT64_MODIFIER "x%016" INT64_MODIFIER "x%016" INT64_MODIFIER "x",
			 DIGEST_VERSION, s->count, s->sum1, s->sum2);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out, DIGEST_TEXT_LEN));
}
