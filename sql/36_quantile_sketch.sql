-- Quantile sketches of double precision (pipeline.quantile_sketch): the
-- stated bound against percentile_cont on five distributions (uniform,
-- log-normal, heavy ties, both signs, 1e-300 to 1e300) and on zeros, the
-- smallest and largest float8s; infinities and NaN as percentile_cont has
-- them; merges and unions equal to the sketch of the union in any order;
-- text and binary forms; parallel aggregation; and every kind of bad input
-- refused with the reason.
-- (PL/pgSQL CONTEXT lines carry line numbers: not part of the contract)
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;

-- how the functions are declared: quantile_union is not strict (an upsert
-- folds into a stored NULL); everything is immutable and parallel safe
SELECT p.oid::regprocedure AS function, p.proisstrict AS strict, p.provolatile AS volatility,
       p.proparallel AS parallel
  FROM pg_proc AS p
 WHERE p.pronamespace = 'pipeline'::regnamespace AND p.proname ~ '^_?quantile_'
 ORDER BY 1::text;

-- no values: NULL, like percentile_cont; the empty sketch can be written
SELECT pipeline.quantile_sketch(x) IS NULL AS no_rows FROM (SELECT 1::float8 WHERE false) AS t(x);
SELECT pipeline.quantile_sketch(x) IS NULL AS only_nulls FROM (VALUES (NULL::float8), (NULL)) AS t(x);
SELECT pipeline.quantile_merge(s) IS NULL AS merge_of_nothing FROM (VALUES (NULL::pipeline.quantile_sketch)) AS t(s);
SELECT pipeline.quantile_count('\x0100') AS empty_count, pipeline.quantile_value('\x0100', 0.5) IS NULL AS empty_quantile;

-- the binary form is part of format version 1: these must not change.
-- One value, 1.0: version 1, 1 value, no -Infinity, +Infinity, NaN or
-- zeros, minimum and maximum 1.0 (3ff0000000000000), no negative buckets,
-- one positive bucket from index 0 (zigzag 0) holding 1.
SELECT pipeline.quantile_sketch(1.0::float8)::text = '\x010100000000' || '3ff0000000000000' || '3ff0000000000000' || '00010001'
       AS one_value;
-- only +Infinity and NaN: no extremes, no buckets
SELECT pipeline.quantile_sketch(x) FROM (VALUES ('Infinity'::float8), ('NaN')) AS t(x);
-- -0 is 0 (they are equal in PostgreSQL)
SELECT pipeline.quantile_sketch(x) FROM (VALUES ('-0'::float8), (0)) AS t(x);
-- -1.5, 0, 2.5, 2.6, -Infinity and NaN (NULL is skipped): 6 values, 1
-- -Infinity, no +Infinity, 1 NaN, 1 zero, minimum -1.5 (bff8000000000000),
-- maximum 2.6 (4004cccccccccccd), one negative bucket from index 21 (zigzag
-- 42 = 2a) holding 1, three positive buckets from index 46 (zigzag 92 =
-- 5c) holding 1, 0, 1
SELECT pipeline.quantile_sketch(x) FROM (VALUES (-1.5::float8), (0), (NULL), (2.5), (2.6), ('-Infinity'), ('NaN')) AS t(x);

-- ===================================================================
-- Accuracy against percentile_cont
-- ===================================================================
-- Five shapes of 20,000 values each (setseed: the same values at every
-- run): uniform on [0, 1000), log-normal (exp of a standard normal, by
-- Box-Muller), heavy ties (four distinct values), both signs (uniform on
-- [-80, 120)), and magnitudes from 1e-300 to 1e300 of both signs.
SELECT setseed(0.3141);
CREATE TABLE qdata (dist text, x float8);
INSERT INTO qdata SELECT 'uniform', random() * 1000 FROM generate_series(1, 20000);
INSERT INTO qdata SELECT 'lognormal', exp(sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))
  FROM generate_series(1, 20000);
INSERT INTO qdata SELECT 'ties', (ARRAY[0.5, 3, 3, 70, 1e6])[1 + floor(random() * 5)::int] FROM generate_series(1, 20000);
INSERT INTO qdata SELECT 'mixed_signs', (random() - 0.4) * 200 FROM generate_series(1, 20000);
INSERT INTO qdata SELECT 'wide', (CASE WHEN random() < 0.5 THEN -1 ELSE 1 END) * 10 ^ (random() * 600 - 300)
  FROM generate_series(1, 20000);

-- Each estimate against percentile_cont and the two values it interpolates
-- between (ranks floor and ceil of q (n - 1)): within 1% of percentile_cont
-- where they have one sign, else within 1% of the larger magnitude (both up
-- to float8 rounding, 1e-12 relative).  q = 0 and q = 1 are exact.
CREATE FUNCTION pg_temp.compare(qs float8[])
    RETURNS TABLE (dist text, q float8, est float8, exact float8, lo float8, hi float8)
    LANGUAGE sql AS $$
    WITH per_dist AS (
        SELECT d.dist, count(*) AS n, pipeline.quantile_sketch(d.x) AS s,
               percentile_cont(qs) WITHIN GROUP (ORDER BY d.x) AS exact
          FROM qdata AS d GROUP BY d.dist),
    ranked AS (
        SELECT d.dist, d.x, row_number() OVER (PARTITION BY d.dist ORDER BY d.x) - 1 AS k FROM qdata AS d)
    SELECT p.dist, u.q, pipeline.quantile_value(p.s, u.q), u.exact, lo.x, hi.x
      FROM per_dist AS p CROSS JOIN unnest(qs, p.exact) AS u(q, exact)
      JOIN ranked AS lo ON lo.dist = p.dist AND lo.k = floor(u.q * (p.n - 1))
      JOIN ranked AS hi ON hi.dist = p.dist AND hi.k = ceil(u.q * (p.n - 1))
$$;
CREATE TABLE qcmp AS SELECT * FROM pg_temp.compare('{0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1}');
SELECT dist, count(*) AS quantiles,
       bool_and(CASE WHEN sign(lo) * sign(hi) >= 0
                     THEN abs(est - exact) <= 0.01 * abs(exact) * (1 + 1e-12)
                     ELSE abs(est - exact) <= 0.01 * greatest(abs(lo), abs(hi)) * (1 + 1e-12) END) AS within_bound,
       bool_and(est = exact) FILTER (WHERE q IN (0, 1)) AS ends_exact,
       bool_and(sign(lo) * sign(hi) >= 0) AS one_sign_everywhere,
       round(max(abs(est - exact) / abs(exact)) FILTER (WHERE exact <> 0)::numeric, 3) AS max_rel_error
  FROM qcmp GROUP BY dist ORDER BY dist;
-- (the bound is not loose: the worst estimates come close to it)
SELECT dist, max(abs(est - exact) / abs(exact)) > 0.005 AS uses_the_bucket_width
  FROM qcmp WHERE dist IN ('uniform', 'lognormal') GROUP BY dist ORDER BY dist;
-- where the two values around the rank have opposite signs (between the
-- last negative and the first positive value), within 1% of the larger
-- magnitude of the two
WITH m AS (SELECT count(*) AS n, count(*) FILTER (WHERE x < 0) AS neg, pipeline.quantile_sketch(x) AS s,
                  max(x) FILTER (WHERE x < 0) AS lo, min(x) FILTER (WHERE x > 0) AS hi
             FROM qdata WHERE dist = 'mixed_signs'),
qs AS (SELECT f, (m.neg - 1 + f) / (m.n - 1) AS q FROM m, unnest(ARRAY[0.1, 0.5, 0.9]::float8[]) AS f),
cmp AS (SELECT qs.f, m.lo, m.hi, pipeline.quantile_value(m.s, qs.q) AS est,
               (SELECT percentile_cont(qs.q) WITHIN GROUP (ORDER BY d.x) FROM qdata AS d WHERE d.dist = 'mixed_signs')
                 AS exact
          FROM m, qs)
SELECT f AS between_ranks, lo < 0 AND hi > 0 AS opposite_signs,
       abs(est - exact) <= 0.01 * greatest(abs(lo), abs(hi)) * (1 + 1e-12) AS within_bound
  FROM cmp ORDER BY f;
-- and at every percent
CREATE TABLE qcmp_all AS SELECT * FROM pg_temp.compare(ARRAY(SELECT g / 100.0 FROM generate_series(0, 100) AS g));
SELECT dist, count(*) AS quantiles,
       bool_and(CASE WHEN sign(lo) * sign(hi) >= 0
                     THEN abs(est - exact) <= 0.01 * abs(exact) * (1 + 1e-12)
                     ELSE abs(est - exact) <= 0.01 * greatest(abs(lo), abs(hi)) * (1 + 1e-12) END) AS within_bound,
       bool_and(est BETWEEN (SELECT min(d.x) FROM qdata AS d WHERE d.dist = c.dist)
                        AND (SELECT max(d.x) FROM qdata AS d WHERE d.dist = c.dist)) AS inside_min_max
  FROM qcmp_all AS c GROUP BY dist ORDER BY dist;

-- ===================================================================
-- Infinities, NaN, zeros, the smallest and largest float8s
-- ===================================================================
-- -Infinity < finite < +Infinity < NaN, as PostgreSQL sorts float8, and
-- each counted exactly: where percentile_cont meets one of them the sketch
-- gives the same answer (a finite value interpolated with +Infinity is
-- +Infinity; with -Infinity, NaN; two infinities, NaN), and elsewhere the
-- bound holds.  The table shows percentile_cont's answer.
CREATE TABLE qspecial (x float8);
INSERT INTO qspecial VALUES ('-Infinity'), ('-Infinity'), (-1.7976931348623157e308), (-1e300), (-2.5), (-1e-300),
    ('-0'), (0), (0), (5e-324), (1e-300), (3), (1e300), (1.79e308), (1.7976931348623157e308),
    ('Infinity'), ('NaN'), ('NaN');
WITH s AS (SELECT pipeline.quantile_sketch(x) AS s, count(*) AS n,
                  percentile_cont(ARRAY(SELECT g / 40.0 FROM generate_series(0, 40) AS g)::float8[])
                    WITHIN GROUP (ORDER BY x) AS exact
             FROM qspecial),
ranked AS (SELECT x, row_number() OVER (ORDER BY x) - 1 AS k FROM qspecial),
cmp AS (
    SELECT u.q, u.exact, pipeline.quantile_value(s.s, u.q) AS est,
           (SELECT r.x FROM ranked AS r WHERE r.k = floor(u.q * (s.n - 1))) AS lo,
           (SELECT r.x FROM ranked AS r WHERE r.k = ceil(u.q * (s.n - 1))) AS hi
      FROM s, unnest(ARRAY(SELECT g / 40.0 FROM generate_series(0, 40) AS g)::float8[], s.exact) AS u(q, exact))
SELECT q, exact AS percentile_cont,
       CASE WHEN exact IN ('Infinity', '-Infinity', 'NaN') OR lo IN ('Infinity', '-Infinity', 'NaN')
                 OR hi IN ('Infinity', '-Infinity', 'NaN') THEN est = exact
            WHEN sign(lo) * sign(hi) >= 0
            THEN abs(est::numeric - exact::numeric) <= 0.01 * abs(exact::numeric) * (1 + 1e-12)
            ELSE abs(est::numeric - exact::numeric) <= 0.01 * greatest(abs(lo::numeric), abs(hi::numeric)) * (1 + 1e-12)
       END AS matches
  FROM cmp ORDER BY q;
SELECT pipeline.quantile_count(pipeline.quantile_sketch(x)) AS n FROM qspecial;
-- only special values, and only zeros: the sketch, then percentile_cont
SELECT u.q, pipeline.quantile_value(a.s, u.q) AS sketch, u.exact AS percentile_cont
  FROM (SELECT pipeline.quantile_sketch(x) AS s,
               percentile_cont('{0, 0.25, 0.5, 0.75, 1}'::float8[]) WITHIN GROUP (ORDER BY x) AS exact
          FROM (VALUES ('Infinity'::float8), ('-Infinity'), ('NaN')) AS t(x)) AS a,
       unnest('{0, 0.25, 0.5, 0.75, 1}'::float8[], a.exact) AS u(q, exact)
 ORDER BY u.q;
SELECT pipeline.quantile_value(s, 0) AS p0, pipeline.quantile_value(s, 0.7) AS p70, pipeline.quantile_value(s, 1) AS p100
  FROM (SELECT pipeline.quantile_sketch(x) AS s FROM (VALUES (0::float8), ('-0'), (0)) AS t(x)) AS a;
-- a sketch holds up to 2^63 - 1 values (here zeros, written out by hand),
-- and q = 1 still lands on its last rank; one more value is an error
SELECT pipeline.quantile_count(s) AS n, pipeline.quantile_value(s, 0) AS p0, pipeline.quantile_value(s, 0.5) AS p50,
       pipeline.quantile_value(s, 1) AS p100
  FROM (SELECT ('\x01' || 'ffffffffffffffff7f' || '000000' || 'ffffffffffffffff7f' || '0000000000000000'
                || '0000000000000000' || '0000')::pipeline.quantile_sketch AS s) AS t;
SELECT pipeline.quantile_union(('\x01' || 'ffffffffffffffff7f' || '000000' || 'ffffffffffffffff7f' || '0000000000000000'
                                || '0000000000000000' || '0000')::pipeline.quantile_sketch,
                               pipeline.quantile_sketch(0::float8));

-- ===================================================================
-- Merging: sketches, unions, order
-- ===================================================================
-- the merge of per-part sketches is, byte for byte, the sketch of all the
-- values, in any order of parts or rows
INSERT INTO qdata SELECT 'special', x FROM qspecial;
CREATE TABLE qparts AS
SELECT dist, part, pipeline.quantile_sketch(x) AS s
  FROM (SELECT dist, x, row_number() OVER (PARTITION BY dist ORDER BY x) % 7 AS part FROM qdata) AS t
 GROUP BY dist, part;
SELECT p.dist, count(*) AS parts,
       pipeline.quantile_merge(p.s ORDER BY p.part)::text
         = (SELECT pipeline.quantile_sketch(d.x)::text FROM qdata AS d WHERE d.dist = p.dist) AS merge_is_sketch_of_union,
       pipeline.quantile_merge(p.s ORDER BY p.part)::text = pipeline.quantile_merge(p.s ORDER BY p.part DESC)::text
         AS order_independent,
       pipeline.quantile_count(pipeline.quantile_merge(p.s)) = (SELECT count(*) FROM qdata AS d WHERE d.dist = p.dist)
         AS counts_add_up
  FROM qparts AS p GROUP BY p.dist ORDER BY p.dist;
SELECT (SELECT pipeline.quantile_sketch(x ORDER BY x) FROM qdata)::text
     = (SELECT pipeline.quantile_sketch(x ORDER BY md5(x::text)) FROM qdata)::text AS row_order_independent;

-- quantile_union: commutative, the sketch of both parts' values, NULL is
-- no values
SELECT a.dist, pipeline.quantile_union(a.s, b.s)::text = pipeline.quantile_union(b.s, a.s)::text AS commutative,
       pipeline.quantile_union(a.s, b.s)::text
         = (SELECT pipeline.quantile_sketch(d.x)::text
              FROM (SELECT dist, x, row_number() OVER (PARTITION BY dist ORDER BY x) % 7 AS part FROM qdata) AS d
             WHERE d.dist = a.dist AND d.part IN (1, 2)) AS union_is_sketch_of_both,
       pipeline.quantile_union(a.s, NULL)::text = a.s::text AS null_right,
       pipeline.quantile_union(NULL, b.s)::text = b.s::text AS null_left
  FROM qparts AS a JOIN qparts AS b ON b.dist = a.dist AND b.part = 2
 WHERE a.part = 1 ORDER BY a.dist;
SELECT pipeline.quantile_union(NULL, NULL) IS NULL AS both_null,
       pipeline.quantile_union('\x0100', '\x0100')::text AS two_empty,
       pipeline.quantile_union('\x0100', pipeline.quantile_sketch(1.0::float8))::text
         = pipeline.quantile_sketch(1.0::float8)::text AS empty_is_no_values;
-- the fold of a hot table: INSERT ... ON CONFLICT with quantile_union,
-- part by part, from a row whose sketch is NULL, ends at the sketch of all
CREATE TABLE qhot (dist text PRIMARY KEY, s pipeline.quantile_sketch);
INSERT INTO qhot SELECT dist, NULL FROM qdata GROUP BY dist;
DO $$
BEGIN
    FOR p IN 0..6 LOOP
        INSERT INTO qhot AS h (dist, s) SELECT dist, s FROM qparts WHERE part = p
            ON CONFLICT (dist) DO UPDATE SET s = pipeline.quantile_union(h.s, excluded.s);
    END LOOP;
END
$$;
SELECT h.dist, h.s::text = (SELECT pipeline.quantile_sketch(d.x)::text FROM qdata AS d WHERE d.dist = h.dist)
         AS fold_is_sketch_of_all
  FROM qhot AS h ORDER BY h.dist;

-- text and binary forms
SELECT dist, s::text::pipeline.quantile_sketch::text = s::text AS text_round_trip,
       pipeline._quantile_sketch_send(s) = s::text::bytea AS send_is_binary_form
  FROM qparts WHERE part = 0 ORDER BY dist;

-- ===================================================================
-- Parallel aggregation: partial states serialized in the workers,
-- combined in the leader, give the serial result
-- ===================================================================
CREATE TABLE qbig AS
SELECT g AS id, g % 50 AS grp,
       CASE WHEN g % 1009 = 0 THEN 'NaN'::float8 WHEN g % 1013 = 0 THEN '-Infinity' WHEN g % 1019 = 0 THEN 'Infinity'
            WHEN g % 13 = 0 THEN 0 ELSE (random() - 0.4) * exp(random() * 30) END AS x
  FROM generate_series(1, 300000) AS g;
ANALYZE qbig;
SET max_parallel_workers_per_gather = 0;
SELECT md5(pipeline.quantile_sketch(x)::text) AS serial_all FROM qbig \gset
SELECT md5(string_agg(grp || ':' || s::text, ',' ORDER BY grp)) AS serial_groups
  FROM (SELECT grp, pipeline.quantile_sketch(x) FROM qbig GROUP BY grp) AS t(grp, s) \gset
CREATE TABLE qbig_parts AS SELECT id % 1000 AS part, pipeline.quantile_sketch(x) AS s FROM qbig GROUP BY 1;
ANALYZE qbig_parts;
SELECT md5(pipeline.quantile_merge(s)::text) AS serial_merge FROM qbig_parts \gset
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT pipeline.quantile_sketch(x) FROM qbig;
SELECT md5(pipeline.quantile_sketch(x)::text) = :'serial_all' AS all_same_as_serial FROM qbig;
EXPLAIN (COSTS OFF) SELECT grp, pipeline.quantile_sketch(x) FROM qbig GROUP BY grp;
SELECT md5(string_agg(grp || ':' || s::text, ',' ORDER BY grp)) = :'serial_groups' AS groups_same_as_serial
  FROM (SELECT grp, pipeline.quantile_sketch(x) FROM qbig GROUP BY grp) AS t(grp, s);
EXPLAIN (COSTS OFF) SELECT pipeline.quantile_merge(s) FROM qbig_parts;
SELECT md5(pipeline.quantile_merge(s)::text) = :'serial_merge' AS merge_same_as_serial FROM qbig_parts;
-- the workers did run: the leader only gathered
CREATE FUNCTION pg_temp.workers_launched(query text) RETURNS int LANGUAGE plpgsql AS $fn$
DECLARE
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || query INTO plan;
    RETURN (plan -> 0 -> 'Plan' -> 'Plans' -> 0 ->> 'Workers Launched')::int;
END
$fn$;
SELECT pg_temp.workers_launched('SELECT pipeline.quantile_sketch(x) FROM qbig') > 0 AS ran_in_workers;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET parallel_leader_participation;
-- and the answers are the serial ones
SELECT pipeline.quantile_count(pipeline.quantile_sketch(x)) = 300000 AS all_counted FROM qbig;

-- ===================================================================
-- Bad input
-- ===================================================================
SELECT pipeline.quantile_value(pipeline.quantile_sketch(1.0::float8), 1.5);
SELECT pipeline.quantile_value(pipeline.quantile_sketch(1.0::float8), 'NaN');
SELECT pipeline.quantile_value(pipeline.quantile_sketch(1.0::float8), -0.01);
SELECT pipeline.quantile_value('\x0100', 2);
-- malformed sketches are refused with the reason (SQLSTATE 22P02: invalid
-- text representation); the canonical sketch of 1.0 is
-- 01 01 000000 00 3ff0000000000000 3ff0000000000000 00 01 00 01
CREATE FUNCTION pg_temp.refusal(t text) RETURNS text LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM t::pipeline.quantile_sketch;
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$fn$;
SELECT 'abc'::pipeline.quantile_sketch;
SELECT what, pg_temp.refusal(hex) AS refusal
  FROM (VALUES
    ('canonical', '\x010100000000' || '3ff0000000000000' || '3ff0000000000000' || '00010001'),
    ('nothing', '\x'),
    ('odd hex digits', '\x010'),
    ('version 2', '\x020100000000' || '3ff0000000000000' || '3ff0000000000000' || '00010001'),
    ('version 0', '\x00'),
    ('number not in shortest form', '\x018000'),
    ('empty with more bytes', '\x010000'),
    ('truncated in the counts', '\x010100'),
    ('truncated in the minimum', '\x010100000000' || '3ff00000'),
    ('truncated in the buckets', '\x010100000000' || '3ff0000000000000' || '3ff0000000000000' || '000100'),
    ('byte after the buckets', '\x010100000000' || '3ff0000000000000' || '3ff0000000000000' || '0001000100'),
    ('more infinities than values', '\x0101010100'),
    ('count too large', '\x0101ffffffffffffffffff01'),
    ('buckets add up to less', '\x010200000000' || '3ff0000000000000' || '3ff0000000000000' || '00010001'),
    ('bucket range not trimmed', '\x010100000000' || '3ff0000000000000' || '3ff0000000000000' || '0002000100'),
    ('bucket index out of range', '\x010100000000' || '3ff0000000000000' || '3ff0000000000000' || '000180f10401'),
    ('minimum above maximum', '\x010100000000' || '4000000000000000' || '3ff0000000000000' || '00010001'),
    ('minimum NaN', '\x010100000000' || '7ff8000000000000' || '3ff0000000000000' || '00010001'),
    ('maximum Infinity', '\x010100000000' || '3ff0000000000000' || '7ff0000000000000' || '00010001'),
    ('minimum -0', '\x010100000001' || '8000000000000000' || '8000000000000000' || '0000'),
    ('extremes outside the bucket', '\x010100000000' || '4000000000000000' || '4000000000000000' || '00010001'),
    ('extremes without finite values', '\x010100000100' || '0000000000000000' || '0000000000000000' || '0000')
  ) AS t(what, hex);
-- ('minimum -0' is the sketch of one zero with -0 for +0: with +0 it is
-- canonical)
SELECT pipeline.quantile_sketch('-0'::float8)::text = '\x010100000001' || '0000000000000000' || '0000000000000000' || '0000'
       AS zero_sketch;
-- a stored sketch that is corrupt (here through a binary-coercible cast
-- from bytea, which skips the input checks) is refused when read, as
-- data corrupted (XX001)
CREATE CAST (bytea AS pipeline.quantile_sketch) WITHOUT FUNCTION;
DO $$
BEGIN
    PERFORM pipeline.quantile_value('\x0102'::bytea::pipeline.quantile_sketch, 0.5);
EXCEPTION WHEN data_corrupted THEN
    RAISE NOTICE 'quantile_value: %: %', SQLSTATE, SQLERRM;
END
$$;
DO $$
BEGIN
    PERFORM pipeline.quantile_merge(s) FROM (VALUES ('\x010100000000'::bytea::pipeline.quantile_sketch)) AS t(s);
EXCEPTION WHEN data_corrupted THEN
    RAISE NOTICE 'quantile_merge: %: %', SQLSTATE, SQLERRM;
END
$$;
DROP CAST (bytea AS pipeline.quantile_sketch);

DROP TABLE qdata, qcmp, qcmp_all, qspecial, qparts, qhot, qbig, qbig_parts;

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
