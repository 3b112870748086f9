-- The order-independent digest (src/digest.c): a fingerprint of a multiset
-- of strings, to prove that a frozen day has not changed, e.g.
--   SELECT pipeline.digest(d::text) FROM pipeline.sales_daily AS d WHERE day = ...
--
-- The C functions here do not pin search_path: they resolve no names, and
-- a SET clause would route every call (one per row for the transition
-- function) through a GUC save and restore.

CREATE FUNCTION pipeline._digest_add(internal, text) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_digest_add';
COMMENT ON FUNCTION pipeline._digest_add(internal, text) IS
    'internal: transition function of pipeline.digest (adds one string, or NULL, to the multiset)';

CREATE FUNCTION pipeline._digest_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_digest_combine';
COMMENT ON FUNCTION pipeline._digest_combine(internal, internal) IS
    'internal: combine function of pipeline.digest (digest of the union of two multisets)';

CREATE FUNCTION pipeline._digest_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_digest_serialize';
COMMENT ON FUNCTION pipeline._digest_serialize(internal) IS
    'internal: serial function of pipeline.digest (count and the two sums, 24 bytes)';

CREATE FUNCTION pipeline._digest_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_digest_deserialize';
COMMENT ON FUNCTION pipeline._digest_deserialize(bytea, internal) IS
    'internal: deserial function of pipeline.digest';

-- not strict: no rows leave the state NULL, and the empty multiset has a digest
CREATE FUNCTION pipeline._digest_final(internal) RETURNS text
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_digest_final';
COMMENT ON FUNCTION pipeline._digest_final(internal) IS
    'internal: final function of pipeline.digest (the 50-digit hex text form)';

CREATE AGGREGATE pipeline.digest(text) (
    SFUNC = pipeline._digest_add,
    STYPE = internal,
    FINALFUNC = pipeline._digest_final,
    COMBINEFUNC = pipeline._digest_combine,
    SERIALFUNC = pipeline._digest_serialize,
    DESERIALFUNC = pipeline._digest_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.digest(text) IS
    'order-independent digest of the multiset of its inputs (duplicates count, NULL differs from ''''): '
    '50 hex digits = format version 01, element count, two 64-bit sums of per-string hashes; never NULL '
    '(no rows give the digest of the empty multiset).  Digest rows as text (d::text): pin TimeZone, DateStyle, '
    'IntervalStyle and extra_float_digits where the text form depends on them';
