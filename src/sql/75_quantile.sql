-- Quantile sketches, one core (src/quantile_core.c) under two types:
-- pipeline.lateness_sketch of intervals (src/lateness_sketch.c), with
-- pipeline.source_lateness, the arrival lateness of each source's events
-- over the last hour; and pipeline.quantile_sketch of double precision
-- values (src/quantile_sketch.c), for percentile_cont measures.  Each has
-- its type, the aggregates that build and merge sketches, and quantiles.
--
-- The C functions here do not pin search_path: they resolve no names, and
-- a SET clause would route every call (one per row for the transition
-- functions) through a GUC save and restore.

CREATE TYPE pipeline.lateness_sketch;

CREATE FUNCTION pipeline._lateness_sketch_in(cstring) RETURNS pipeline.lateness_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_sketch_in';
COMMENT ON FUNCTION pipeline._lateness_sketch_in(cstring) IS
    'internal: input function of pipeline.lateness_sketch (''\x'' hex of the binary form, checked)';

CREATE FUNCTION pipeline._lateness_sketch_out(pipeline.lateness_sketch) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_sketch_out';
COMMENT ON FUNCTION pipeline._lateness_sketch_out(pipeline.lateness_sketch) IS
    'internal: output function of pipeline.lateness_sketch (''\x'' hex of the binary form)';

CREATE FUNCTION pipeline._lateness_sketch_recv(internal) RETURNS pipeline.lateness_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_sketch_recv';
COMMENT ON FUNCTION pipeline._lateness_sketch_recv(internal) IS
    'internal: binary receive function of pipeline.lateness_sketch (the binary form, checked)';

CREATE FUNCTION pipeline._lateness_sketch_send(pipeline.lateness_sketch) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_sketch_send';
COMMENT ON FUNCTION pipeline._lateness_sketch_send(pipeline.lateness_sketch) IS
    'internal: binary send function of pipeline.lateness_sketch (the binary form)';

CREATE TYPE pipeline.lateness_sketch (
    INPUT = pipeline._lateness_sketch_in,
    OUTPUT = pipeline._lateness_sketch_out,
    RECEIVE = pipeline._lateness_sketch_recv,
    SEND = pipeline._lateness_sketch_send,
    INTERNALLENGTH = VARIABLE,
    STORAGE = extended
);
COMMENT ON TYPE pipeline.lateness_sketch IS
    'mergeable quantile sketch of intervals: counts over logarithmic buckets 1% wide (relative), plus the exact '
    'minimum and maximum; quantiles within 1% of percentile_cont.  Text form: ''\x'' then the hex of the binary '
    'form, which is: version byte 1; varints (LEB128): number of values, then unless 0: zeros, minimum and maximum '
    'in microseconds (zigzag), and for negative then positive values the bucket count, first bucket index and '
    'per-bucket counts.  Build with pipeline.lateness_sketch(x), merge with pipeline.lateness_merge, read with '
    'pipeline.lateness_quantile and pipeline.lateness_count';

-- Aggregate support.  The transition functions are not strict: they create
-- the internal state on the first non-NULL input and skip NULLs.
CREATE FUNCTION pipeline._lateness_add(internal, interval) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_add';
COMMENT ON FUNCTION pipeline._lateness_add(internal, interval) IS
    'internal: transition function of pipeline.lateness_sketch (counts one interval in its bucket)';

CREATE FUNCTION pipeline._lateness_merge_add(internal, pipeline.lateness_sketch) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_merge_add';
COMMENT ON FUNCTION pipeline._lateness_merge_add(internal, pipeline.lateness_sketch) IS
    'internal: transition function of pipeline.lateness_merge (adds one sketch''s counts)';

CREATE FUNCTION pipeline._lateness_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_combine';
COMMENT ON FUNCTION pipeline._lateness_combine(internal, internal) IS
    'internal: combine function of the lateness aggregates (sum of two partial states)';

CREATE FUNCTION pipeline._lateness_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_serialize';
COMMENT ON FUNCTION pipeline._lateness_serialize(internal) IS
    'internal: serial function of the lateness aggregates (the state as the binary form)';

CREATE FUNCTION pipeline._lateness_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_deserialize';
COMMENT ON FUNCTION pipeline._lateness_deserialize(bytea, internal) IS
    'internal: deserial function of the lateness aggregates';

CREATE FUNCTION pipeline._lateness_final(internal) RETURNS pipeline.lateness_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_final';
COMMENT ON FUNCTION pipeline._lateness_final(internal) IS
    'internal: final function of the lateness aggregates';

CREATE AGGREGATE pipeline.lateness_sketch(interval) (
    SFUNC = pipeline._lateness_add,
    STYPE = internal,
    FINALFUNC = pipeline._lateness_final,
    COMBINEFUNC = pipeline._lateness_combine,
    SERIALFUNC = pipeline._lateness_serialize,
    DESERIALFUNC = pipeline._lateness_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.lateness_sketch(interval) IS
    'quantile sketch of the non-NULL intervals (NULL when there are none), e.g. of received_at - event_time; '
    'months count as 30 days, as in interval comparison';

CREATE AGGREGATE pipeline.lateness_merge(pipeline.lateness_sketch) (
    SFUNC = pipeline._lateness_merge_add,
    STYPE = internal,
    FINALFUNC = pipeline._lateness_final,
    COMBINEFUNC = pipeline._lateness_combine,
    SERIALFUNC = pipeline._lateness_serialize,
    DESERIALFUNC = pipeline._lateness_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.lateness_merge(pipeline.lateness_sketch) IS
    'merge of sketches (NULLs skipped; NULL when there are none): equal, byte for byte, to the sketch of all '
    'their values, in any order';

CREATE FUNCTION pipeline.lateness_quantile(sketch pipeline.lateness_sketch, q double precision) RETURNS interval
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_quantile';
COMMENT ON FUNCTION pipeline.lateness_quantile(pipeline.lateness_sketch, double precision) IS
    'the q-quantile (0 <= q <= 1) of a sketch''s values, interpolated like percentile_cont: within 1% of '
    'percentile_cont''s answer (where the values around it have one sign), to the microsecond; q = 0 and q = 1 '
    'are the exact minimum and maximum; NULL for an empty sketch';

CREATE FUNCTION pipeline.lateness_count(sketch pipeline.lateness_sketch) RETURNS bigint
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_count';
COMMENT ON FUNCTION pipeline.lateness_count(pipeline.lateness_sketch) IS
    'the number of values in a sketch';

-- The arrival lateness sketch (their batch's received_at - event time) of
-- the events of some batches of a source, read as the caller: the batch
-- ids find the rows through the BRIN index on _pl_batch (by their span,
-- _in_batches), the batches' event-time range [lo, hi] prunes partitions.
-- At most max_events rows (NULL: all of them).
CREATE FUNCTION pipeline._batches_lateness(s pipeline.source_catalog, ids bigint[], lo timestamptz,
                                           hi timestamptz, max_events bigint DEFAULT NULL)
    RETURNS pipeline.lateness_sketch
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    sketch pipeline.lateness_sketch;
BEGIN
    IF ids IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE pg_catalog.format(
        'SELECT pipeline.lateness_sketch(t.received_at OPERATOR(pg_catalog.-) t.event_time) '
        '  FROM (SELECT b.received_at, r.%1$I AS event_time '
        '          FROM %2$s AS r JOIN pipeline.batch_log AS b ON b.batch_id OPERATOR(pg_catalog.=) r._pl_batch '
        '         WHERE %3$s '
        '           AND r.%1$I OPERATOR(pg_catalog.>=) $2 AND r.%1$I OPERATOR(pg_catalog.<=) $3 '
        '         LIMIT $4) AS t',
        s.event_time, s.raw_table, pipeline._in_batches('r', '$1', '$5', '$6'))
      INTO sketch USING ids, lo, hi, max_events,
                        (SELECT pg_catalog.min(i) FROM pg_catalog.unnest(ids) AS i),
                        (SELECT pg_catalog.max(i) FROM pg_catalog.unnest(ids) AS i);
    RETURN sketch;
END
$fn$;
COMMENT ON FUNCTION pipeline._batches_lateness(pipeline.source_catalog, bigint[], timestamptz, timestamptz, bigint) IS
    'internal: the arrival lateness sketch of the events of some batches of a source (at most max_events of them)';

-- Arrival lateness per source: for the events of the batches received
-- since a point in time, received_at (of their batch) - event time.  Reads
-- only those batches' rows (their event-time range prunes partitions, the
-- BRIN index on _pl_batch finds them), as the caller: sources whose raw
-- table the caller may not read are left out.
CREATE FUNCTION pipeline._source_lateness(since timestamptz)
    RETURNS TABLE (source text, events bigint, p50 interval, p95 interval, p99 interval,
                   sketch pipeline.lateness_sketch)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    ids bigint[];
    lo timestamptz;
    hi timestamptz;
BEGIN
    FOR s IN SELECT * FROM pipeline.source_catalog AS c
              WHERE pg_catalog.has_table_privilege(c.raw_table, 'SELECT') ORDER BY c.source
    LOOP
        SELECT pg_catalog.array_agg(b.batch_id), pg_catalog.min(b.min_event_time), pg_catalog.max(b.max_event_time)
          INTO ids, lo, hi
          FROM pipeline.batch_log AS b
         WHERE b.source = s.source AND b.received_at >= since AND b.accepted > 0;
        source := s.source;
        sketch := pipeline._batches_lateness(s, ids, lo, hi);
        events := COALESCE(pipeline.lateness_count(sketch), 0);
        p50 := pipeline.lateness_quantile(sketch, 0.5);
        p95 := pipeline.lateness_quantile(sketch, 0.95);
        p99 := pipeline.lateness_quantile(sketch, 0.99);
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pipeline._source_lateness(timestamptz) IS
    'internal: per source the caller may read, the lateness sketch and quantiles of the events of batches received since a time';

CREATE VIEW pipeline.source_lateness AS
    SELECT l.source, l.events, l.p50, l.p95, l.p99, l.sketch
      FROM pipeline._source_lateness(pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 hour') AS l;
COMMENT ON VIEW pipeline.source_lateness IS
    'per source (those whose raw table you may read): arrival lateness of the events received in the last hour, '
    'their batch''s received_at minus their event time, as p50, p95 and p99 (within 1%) and the sketch, to merge '
    'or ask other quantiles of (pipeline.lateness_quantile)';
GRANT SELECT ON pipeline.source_lateness TO PUBLIC;

-- Quantile sketches of double precision (src/quantile_sketch.c, on the
-- same core as the lateness sketch): the type, the aggregates that build and
-- merge them, their union, quantiles and count.  They give the live value of
-- percentile_cont(q) WITHIN GROUP (ORDER BY x) measures.

CREATE TYPE pipeline.quantile_sketch;

CREATE FUNCTION pipeline._quantile_sketch_in(cstring) RETURNS pipeline.quantile_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_sketch_in';
COMMENT ON FUNCTION pipeline._quantile_sketch_in(cstring) IS
    'internal: input function of pipeline.quantile_sketch (''\x'' hex of the binary form, checked)';

CREATE FUNCTION pipeline._quantile_sketch_out(pipeline.quantile_sketch) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_sketch_out';
COMMENT ON FUNCTION pipeline._quantile_sketch_out(pipeline.quantile_sketch) IS
    'internal: output function of pipeline.quantile_sketch (''\x'' hex of the binary form)';

CREATE FUNCTION pipeline._quantile_sketch_recv(internal) RETURNS pipeline.quantile_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_sketch_recv';
COMMENT ON FUNCTION pipeline._quantile_sketch_recv(internal) IS
    'internal: binary receive function of pipeline.quantile_sketch (the binary form, checked)';

CREATE FUNCTION pipeline._quantile_sketch_send(pipeline.quantile_sketch) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_sketch_send';
COMMENT ON FUNCTION pipeline._quantile_sketch_send(pipeline.quantile_sketch) IS
    'internal: binary send function of pipeline.quantile_sketch (the binary form)';

CREATE TYPE pipeline.quantile_sketch (
    INPUT = pipeline._quantile_sketch_in,
    OUTPUT = pipeline._quantile_sketch_out,
    RECEIVE = pipeline._quantile_sketch_recv,
    SEND = pipeline._quantile_sketch_send,
    INTERNALLENGTH = VARIABLE,
    STORAGE = extended
);
COMMENT ON TYPE pipeline.quantile_sketch IS
    'mergeable quantile sketch of double precision values: counts over logarithmic buckets 1% wide (relative), '
    'exact counts of zeros, -Infinity, +Infinity and NaN, and the exact finite minimum and maximum; quantiles '
    'within 1% of percentile_cont.  Text form: ''\x'' then the hex of the binary form, which is: version byte 1; '
    'varints (LEB128): number of values, then unless 0: the counts of -Infinity, +Infinity, NaN and zeros, the '
    'finite minimum and maximum as 8-byte big-endian float8s (when there are finite values), and for negative '
    'then positive values the bucket count, first bucket index (zigzag) and per-bucket counts.  Build with '
    'pipeline.quantile_sketch(x), merge with pipeline.quantile_merge or pipeline.quantile_union, read with '
    'pipeline.quantile_value and pipeline.quantile_count';

-- Aggregate support.  The transition functions are not strict: they create
-- the internal state on the first non-NULL input and skip NULLs.
CREATE FUNCTION pipeline._quantile_add(internal, double precision) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_add';
COMMENT ON FUNCTION pipeline._quantile_add(internal, double precision) IS
    'internal: transition function of pipeline.quantile_sketch (counts one value in its bucket)';

CREATE FUNCTION pipeline._quantile_merge_add(internal, pipeline.quantile_sketch) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_merge_add';
COMMENT ON FUNCTION pipeline._quantile_merge_add(internal, pipeline.quantile_sketch) IS
    'internal: transition function of pipeline.quantile_merge (adds one sketch''s counts)';

CREATE FUNCTION pipeline._quantile_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_combine';
COMMENT ON FUNCTION pipeline._quantile_combine(internal, internal) IS
    'internal: combine function of the quantile sketch aggregates (sum of two partial states)';

CREATE FUNCTION pipeline._quantile_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_serialize';
COMMENT ON FUNCTION pipeline._quantile_serialize(internal) IS
    'internal: serial function of the quantile sketch aggregates (the state as the binary form)';

CREATE FUNCTION pipeline._quantile_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_deserialize';
COMMENT ON FUNCTION pipeline._quantile_deserialize(bytea, internal) IS
    'internal: deserial function of the quantile sketch aggregates';

CREATE FUNCTION pipeline._quantile_final(internal) RETURNS pipeline.quantile_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_final';
COMMENT ON FUNCTION pipeline._quantile_final(internal) IS
    'internal: final function of the quantile sketch aggregates';

CREATE AGGREGATE pipeline.quantile_sketch(double precision) (
    SFUNC = pipeline._quantile_add,
    STYPE = internal,
    FINALFUNC = pipeline._quantile_final,
    COMBINEFUNC = pipeline._quantile_combine,
    SERIALFUNC = pipeline._quantile_serialize,
    DESERIALFUNC = pipeline._quantile_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.quantile_sketch(double precision) IS
    'quantile sketch of the non-NULL values (NULL when there are none); -0 counts as 0, and -Infinity, '
    '+Infinity and NaN are counted exactly';

CREATE AGGREGATE pipeline.quantile_merge(pipeline.quantile_sketch) (
    SFUNC = pipeline._quantile_merge_add,
    STYPE = internal,
    FINALFUNC = pipeline._quantile_final,
    COMBINEFUNC = pipeline._quantile_combine,
    SERIALFUNC = pipeline._quantile_serialize,
    DESERIALFUNC = pipeline._quantile_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.quantile_merge(pipeline.quantile_sketch) IS
    'merge of sketches (NULLs skipped; NULL when there are none): equal, byte for byte, to the sketch of all '
    'their values, in any order';

-- Not strict: an upsert folds with x = pipeline.quantile_union(h.x,
-- excluded.x), where the stored side may be NULL.
CREATE FUNCTION pipeline.quantile_union(a pipeline.quantile_sketch, b pipeline.quantile_sketch)
    RETURNS pipeline.quantile_sketch
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_union';
COMMENT ON FUNCTION pipeline.quantile_union(pipeline.quantile_sketch, pipeline.quantile_sketch) IS
    'the merge of two sketches, byte for byte the sketch of both''s values; a NULL side is no values (the '
    'other is returned; NULL if both are NULL)';

CREATE FUNCTION pipeline.quantile_value(sketch pipeline.quantile_sketch, q double precision)
    RETURNS double precision
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_value';
COMMENT ON FUNCTION pipeline.quantile_value(pipeline.quantile_sketch, double precision) IS
    'the q-quantile (0 <= q <= 1) of a sketch''s values, interpolated like percentile_cont: within 1% of '
    'percentile_cont''s answer where the two values around it have one sign, else within 1% of the larger '
    'magnitude; q = 0 and q = 1, infinities and NaN are exact; NULL for an empty sketch';

CREATE FUNCTION pipeline.quantile_count(sketch pipeline.quantile_sketch) RETURNS bigint
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_count';
COMMENT ON FUNCTION pipeline.quantile_count(pipeline.quantile_sketch) IS
    'the number of values in a sketch (infinities and NaN included)';
