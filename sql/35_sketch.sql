-- Distinct-count sketches: exact for small sets, within 2% beyond, merges
-- equal to the sketch of the union in any order, hashing per type and
-- collation, text and binary I/O, rollups, parallel aggregation.
-- (PL/pgSQL CONTEXT lines carry line numbers: not part of the contract)
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';

-- no values at all (no rows, or only NULLs): NULL, like sum() and max()
SELECT pipeline.distinct_sketch(x) IS NULL AS no_rows FROM (SELECT 1 WHERE false) AS t(x);
SELECT pipeline.distinct_sketch(x) IS NULL AS only_nulls FROM (VALUES (NULL::int), (NULL)) AS t(x);
SELECT pipeline.distinct_merge(s) IS NULL AS merge_of_nothing
  FROM (VALUES (NULL::pipeline.distinct_sketch)) AS t(s);
-- the empty sketch can be written and counts 0
SELECT pipeline.distinct_count('\x0101') AS empty_sketch;

-- exact up to 1024 distinct values, whatever the duplicates and NULLs
SELECT n.n, count(DISTINCT v) AS exact, pipeline.distinct_count(pipeline.distinct_sketch(v)) AS sketch,
       count(*) AS values_seen
  FROM (VALUES (1), (2), (100), (1000), (1024)) AS n(n)
  CROSS JOIN LATERAL (SELECT (g % n.n)::bigint AS v FROM generate_series(1, 3 * n.n) AS g
                      UNION ALL SELECT NULL FROM generate_series(1, 5)) AS t
 GROUP BY n.n ORDER BY n.n;
-- the form: 2 header bytes + 8 per hash while explicit; 1025 values make it
-- dense (2 + 1 + 16384 bytes), an estimate that is never below 1025 (a dense
-- sketch stands for more values than the explicit form holds), not exact
SELECT n, substr(s::text, 1, 6) AS header, octet_length(s::text::bytea) AS bytes,
       pipeline.distinct_count(s) AS estimate
  FROM (SELECT n, pipeline.distinct_sketch(g) AS s
          FROM unnest(ARRAY[1, 1024, 1025, 1100]) AS n, generate_series(1, n) AS g
         GROUP BY n) AS t
 ORDER BY n;
-- the hash is part of format version 1: this sketch of {1, 2} must not change
SELECT pipeline.distinct_sketch(g) FROM generate_series(1, 2) AS g;

-- within 2% at larger cardinalities
SELECT n, abs(pipeline.distinct_count(pipeline.distinct_sketch(g)) - n)::float8 / n < 0.02 AS within_2pct
  FROM unnest(ARRAY[10000, 100000, 1000000]) AS n, generate_series(1, n) AS g
 GROUP BY n ORDER BY n;
SELECT abs(pipeline.distinct_count(pipeline.distinct_sketch('user-' || g)) - 100000)::float8 / 100000 < 0.02
       AS text_within_2pct
  FROM generate_series(1, 100000) AS g;

-- types: equal values hash equal under the type's own equality
SELECT pipeline.distinct_count(pipeline.distinct_sketch(v)) AS text_with_dups
  FROM (VALUES ('a'), ('b'), ('a'), (''), (NULL), ('b ')) AS t(v);
SELECT pipeline.distinct_count(pipeline.distinct_sketch(v)) AS numeric_scale_ignored
  FROM (VALUES (1.0), (1.00), (1), (2.5), (2.50), (-0.0), (0)) AS t(v);
SELECT pipeline.distinct_count(pipeline.distinct_sketch(v)) AS uuids
  FROM (SELECT md5((g % 300)::text)::uuid AS v FROM generate_series(1, 1000) AS g) AS t;
SELECT count(DISTINCT v) AS exact, pipeline.distinct_count(pipeline.distinct_sketch(v)) AS sketch
  FROM (SELECT (g % 500) * 1000000007::bigint - 250000000000 AS v FROM generate_series(1, 2000) AS g) AS t;
-- bigints that PostgreSQL's int8 hash folds together (it xors the high 32
-- bits into the low 32) are still told apart
SELECT pipeline.distinct_count(pipeline.distinct_sketch(v)) AS folded_bigints,
       count(DISTINCT hashint8extended(v, 0)) AS distinct_int8_hashes
  FROM (VALUES (1::bigint), (4294967296), (4294967297), (-1), (-4294967296), (0)) AS t(v);
-- smallint, integer and bigint sketches are mergeable: equal numbers hash equal
SELECT pipeline.distinct_sketch(g::smallint)::text = pipeline.distinct_sketch(g::bigint)::text
       AND pipeline.distinct_sketch(g::int)::text = pipeline.distinct_sketch(g::bigint)::text AS same_hashes
  FROM generate_series(-50, 50) AS g;
SELECT pipeline.distinct_count(pipeline.distinct_union(
         (SELECT pipeline.distinct_sketch(g::int) FROM generate_series(1, 100) AS g),
         (SELECT pipeline.distinct_sketch(g::bigint) FROM generate_series(51, 150) AS g))) AS int_union_bigint;
-- strings of every core string type are values to hash, not sketches to parse
SELECT pipeline.distinct_count(pipeline.distinct_sketch(v::varchar)) AS from_varchar,
       pipeline.distinct_count(pipeline.distinct_sketch(v::char(3))) AS from_char,
       pipeline.distinct_count(pipeline.distinct_sketch(v::name)) AS from_name
  FROM (VALUES ('x'), ('y'), ('x'), ('z')) AS t(v);
-- the collation decides equality: case-insensitive values count once
CREATE COLLATION sketch_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
SELECT pipeline.distinct_count(pipeline.distinct_sketch(v)) AS deterministic,
       pipeline.distinct_count(pipeline.distinct_sketch(v COLLATE sketch_ci)) AS case_insensitive
  FROM (VALUES ('Alice'), ('ALICE'), ('alice'), ('Bob'), ('bob')) AS t(v);
-- a type without a hash function: a clear error
SELECT pipeline.distinct_sketch(p) FROM (VALUES (point(1, 2))) AS t(p);

-- merging is set union: the same bytes as the sketch of the union, in either
-- order, for explicit + explicit (staying explicit or becoming dense),
-- explicit + dense and dense + dense
CREATE TABLE sketch_sets (name text PRIMARY KEY, lo int, hi int, s pipeline.distinct_sketch);
INSERT INTO sketch_sets
SELECT name, lo, hi, (SELECT pipeline.distinct_sketch(g) FROM generate_series(lo, hi) AS g)
  FROM (VALUES ('small_a', 1, 300), ('small_b', 201, 500), ('mid_a', 1, 600), ('mid_b', 501, 1100),
               ('big_a', 1, 50000), ('big_b', 30001, 90000)) AS v(name, lo, hi);
SELECT a.name AS a, b.name AS b, octet_length(u::text::bytea) AS union_bytes,
       u::text = (SELECT pipeline.distinct_sketch(g)::text
                    FROM (SELECT generate_series(a.lo, a.hi) UNION ALL SELECT generate_series(b.lo, b.hi)) AS v(g))
         AS equals_sketch_of_union,
       u::text = pipeline.distinct_union(b.s, a.s)::text AS order_independent,
       pipeline.distinct_count(u) AS count
  FROM sketch_sets AS a JOIN sketch_sets AS b
    ON (a.name, b.name) IN (('small_a', 'small_b'), ('mid_a', 'mid_b'), ('small_a', 'big_a'),
                            ('mid_b', 'big_b'), ('big_a', 'big_b'))
  CROSS JOIN LATERAL pipeline.distinct_union(a.s, b.s) AS u
 ORDER BY a.name, b.name;
-- a union with itself changes nothing; a NULL side is absent
SELECT bool_and(pipeline.distinct_union(s, s)::text = s::text) AS idempotent,
       bool_and(pipeline.distinct_union(s, NULL)::text = s::text) AS with_null_right,
       bool_and(pipeline.distinct_union(NULL, s)::text = s::text) AS with_null_left
  FROM sketch_sets;
SELECT pipeline.distinct_union(NULL, NULL) IS NULL AS both_null;
-- distinct_merge of all six in either order, skipping NULLs, equals the sketch of 1..90000
INSERT INTO sketch_sets VALUES ('none', NULL, NULL, NULL);
SELECT (SELECT pipeline.distinct_merge(s ORDER BY name) FROM sketch_sets)::text
         = (SELECT pipeline.distinct_sketch(g) FROM generate_series(1, 90000) AS g)::text AS merge_equals_sketch,
       (SELECT pipeline.distinct_merge(s ORDER BY name) FROM sketch_sets)::text
         = (SELECT pipeline.distinct_merge(s ORDER BY name DESC) FROM sketch_sets)::text AS merge_order_independent;
-- and the sketch does not depend on the order of the rows
SELECT (SELECT pipeline.distinct_sketch(g ORDER BY g) FROM generate_series(1, 5000) AS g)::text
     = (SELECT pipeline.distinct_sketch(g ORDER BY md5(g::text)) FROM generate_series(1, 5000) AS g)::text
       AS row_order_independent;

-- text I/O round-trips exactly, explicit and dense
SELECT name, s::text::pipeline.distinct_sketch::text = s::text AS text_round_trip
  FROM sketch_sets WHERE s IS NOT NULL ORDER BY name;
-- binary I/O: send gives the binary form, receive (COPY BINARY) reads it back
SELECT bool_and(pipeline._distinct_sketch_send(s) = s::text::bytea) AS send_is_binary_form
  FROM sketch_sets;
\getenv abs_builddir PG_ABS_BUILDDIR
\set sketch_file :abs_builddir '/results/35_sketch.bin'
COPY (SELECT name, s FROM sketch_sets) TO :'sketch_file' (FORMAT binary);
CREATE TABLE sketch_sets_copy (name text, s pipeline.distinct_sketch);
COPY sketch_sets_copy FROM :'sketch_file' (FORMAT binary);
SELECT count(*) AS rows, bool_and(c.s::text IS NOT DISTINCT FROM o.s::text) AS binary_round_trip
  FROM sketch_sets_copy AS c JOIN sketch_sets AS o USING (name);

-- malformed sketches are refused with the reason
SELECT 'abc'::pipeline.distinct_sketch;
SELECT '\x01'::pipeline.distinct_sketch;
SELECT '\x0201'::pipeline.distinct_sketch;
SELECT '\x0104'::pipeline.distinct_sketch;
SELECT '\x010300010000000000000001'::pipeline.distinct_sketch;
SELECT '\x0101000000000000000200000000000000'::pipeline.distinct_sketch;
SELECT '\x010100000000000000020000000000000002'::pipeline.distinct_sketch;
SELECT '\x010100000000000000020000000000000001'::pipeline.distinct_sketch;
SELECT '\x01010000000000000001000000000000000g'::pipeline.distinct_sketch;
SELECT ('\x0101' || string_agg(lpad(to_hex(g), 16, '0'), '' ORDER BY g))::pipeline.distinct_sketch
  FROM generate_series(1, 1025) AS g;
SELECT '\x01020e00'::pipeline.distinct_sketch;
SELECT ('\x01020f' || repeat('00', 16384))::pipeline.distinct_sketch;
SELECT ('\x01020e' || repeat('00', 16383) || '34')::pipeline.distinct_sketch;

-- a rollup, the way the hot layer uses sketches: one row per minute, batches
-- folded in with ON CONFLICT, hours read with distinct_merge
CREATE TABLE sketch_events (batch int, at timestamptz, user_id bigint);
INSERT INTO sketch_events
SELECT i % 3, '2026-03-01 10:00:00+00'::timestamptz + (i % 60) * interval '1 minute' + (i % 13) * interval '1 second',
       (i * 7919) % 900
  FROM generate_series(1, 20000) AS i;
CREATE TABLE sketch_minutes (minute timestamptz PRIMARY KEY, users pipeline.distinct_sketch NOT NULL);
INSERT INTO sketch_minutes
SELECT date_trunc('minute', at), pipeline.distinct_sketch(user_id) FROM sketch_events WHERE batch = 0 GROUP BY 1;
INSERT INTO sketch_minutes
SELECT date_trunc('minute', at), pipeline.distinct_sketch(user_id) FROM sketch_events WHERE batch > 0 GROUP BY 1
    ON CONFLICT (minute) DO UPDATE SET users = pipeline.distinct_union(sketch_minutes.users, excluded.users);
-- each minute holds exactly the sketch of all its events
SELECT count(*) AS minutes,
       bool_and(m.users::text = e.users::text) AS same_as_one_pass,
       bool_and(pipeline.distinct_count(m.users) = e.exact) AS minute_counts_exact
  FROM sketch_minutes AS m
  JOIN (SELECT date_trunc('minute', at) AS minute, pipeline.distinct_sketch(user_id) AS users,
               count(DISTINCT user_id) AS exact
          FROM sketch_events GROUP BY 1) AS e USING (minute);
-- distinct users over the hour: exact at this size
SELECT pipeline.distinct_count(pipeline.distinct_merge(users)) AS hour_users,
       (SELECT count(DISTINCT user_id) FROM sketch_events) AS exact
  FROM sketch_minutes WHERE minute >= '2026-03-01 10:00+00' AND minute < '2026-03-01 11:00+00';
-- the fold merges with _distinct_absorb(): the union, except that a few
-- values new to an explicit sketch go ahead of its sorted hashes (a form
-- only ever stored), so that the row's update logs a few bytes of it.
-- 80 late values into a sketch of 300, one fold at a time, every fifth
-- already in it: every reading equals the union's, and the stored form is
-- the recent one (8 bytes past its hashes, against 6) until a 33rd new
-- value makes it canonical again
-- (stored as the hot tables are: rows inline, and room on a page for a row's next version)
CREATE TABLE sketch_absorb (k int PRIMARY KEY, users pipeline.distinct_sketch NOT NULL)
    WITH (fillfactor = 50, toast_tuple_target = 8160);
CREATE TABLE sketch_absorb_log (step int, stored_extra int, n bigint, same_text bool,
                                same_merge bool, same_union bool, same_send bool);
INSERT INTO sketch_absorb SELECT 1, pipeline.distinct_sketch(g) FROM generate_series(1, 300) AS g;
-- the sketch of one value, or of the values lo to hi
CREATE FUNCTION pg_temp.sk(lo int, hi int DEFAULT NULL) RETURNS pipeline.distinct_sketch LANGUAGE sql
    AS 'SELECT pipeline.distinct_sketch(g) FROM generate_series(lo, COALESCE(hi, lo)) AS g';
CREATE FUNCTION pg_temp.absorb_value(step int) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    v int := CASE WHEN step % 5 = 0 THEN step ELSE 1000 + step END;
    want pipeline.distinct_sketch;
BEGIN
    INSERT INTO sketch_absorb SELECT 1, pipeline.distinct_sketch(v)
        ON CONFLICT (k) DO UPDATE SET users = pipeline._distinct_absorb(sketch_absorb.users, excluded.users);
    SELECT pipeline.distinct_sketch(g) INTO want
      FROM (SELECT generate_series(1, 300) UNION ALL
            SELECT CASE WHEN i % 5 = 0 THEN i ELSE 1000 + i END FROM generate_series(1, step) AS i) AS t(g);
    INSERT INTO sketch_absorb_log
    SELECT step, pg_column_size(a.users) - 8 * pipeline.distinct_count(a.users)::int,
           pipeline.distinct_count(a.users),
           a.users::text = want::text,
           (SELECT pipeline.distinct_merge(x)::text FROM (VALUES (a.users), (NULL)) AS m(x)) = want::text,
           pipeline.distinct_union(a.users, pg_temp.sk(7))::text = want::text
             AND pipeline.distinct_union(NULL, a.users)::text = want::text,
           pipeline._distinct_sketch_send(a.users) = pipeline._distinct_sketch_send(want)
      FROM sketch_absorb AS a;
END
$fn$;
SELECT count(pg_temp.absorb_value(i)) FROM generate_series(1, 80) AS i;
SELECT stored_extra, min(step) AS from_step, max(step) AS to_step, max(n) AS max_count,
       bool_and(n = 300 + step - step / 5) AS counts_exact,
       bool_and(same_text AND same_merge AND same_union AND same_send) AS reads_as_union
  FROM sketch_absorb_log GROUP BY stored_extra ORDER BY from_step;
-- a value already there gives the stored sketch back as it was
SELECT pipeline._distinct_absorb(users, pg_temp.sk(5))::text = users::text AS unchanged,
       pg_column_size(pipeline._distinct_absorb(users, pg_temp.sk(5))) = pg_column_size(users)
         AS same_size
  FROM sketch_absorb;
-- a binary COPY of the stored form writes it canonical, and reads back
COPY (SELECT k, users FROM sketch_absorb) TO :'sketch_file' (FORMAT binary);
CREATE TABLE sketch_absorb_copy (k int, users pipeline.distinct_sketch) WITH (toast_tuple_target = 8160);
COPY sketch_absorb_copy FROM :'sketch_file' (FORMAT binary);
SELECT c.users::text = a.users::text AS copy_round_trip,
       pg_column_size(c.users) - 8 * pipeline.distinct_count(c.users)::int AS copied_extra
  FROM sketch_absorb_copy AS c JOIN sketch_absorb AS a USING (k);
-- NULL sides, a dense side, more new values than the recent form keeps,
-- and the step past the explicit form: the union's
SELECT pipeline._distinct_absorb(NULL, NULL) IS NULL AS both_null,
       pipeline._distinct_absorb(users, NULL)::text = users::text AS null_new,
       pipeline._distinct_absorb(NULL, users)::text = users::text AS null_stored
  FROM sketch_absorb;
SELECT pipeline._distinct_absorb(a.s, b.s)::text = pipeline.distinct_union(a.s, b.s)::text AS as_union,
       pipeline.distinct_count(pipeline._distinct_absorb(a.s, b.s)) AS n
  FROM (VALUES (pg_temp.sk(1, 1020)), (pg_temp.sk(1, 5000)), ((SELECT users FROM sketch_absorb))) AS a(s),
       (VALUES (pg_temp.sk(5000)), (pg_temp.sk(3000, 3010)), (pg_temp.sk(1, 5000))) AS b(s)
 ORDER BY n;
-- what the recent form is for: the WAL of a row's update that adds one
-- value to its sketch of some 380, in all over the five least of six
-- updates each way (a checkpoint in between makes one of them log the
-- whole page).  The union moves the hashes after the new one, which the
-- record carries; absorbed, the record carries the recent hashes.
CREATE PROCEDURE pg_temp.update_wal(how text, INOUT bytes bigint DEFAULT NULL) LANGUAGE plpgsql AS $fn$
DECLARE
    lsn pg_lsn;
    each bigint[] := '{}';
BEGIN
    FOR i IN 1..6 LOOP
        lsn := pg_current_wal_insert_lsn();
        EXECUTE format('UPDATE sketch_absorb SET users = pipeline.%s(users, pg_temp.sk(%s))',
                       how, 100000 * (how = 'distinct_union')::int + 10000 + i);
        each := each || pg_wal_lsn_diff(pg_current_wal_insert_lsn(), lsn)::bigint;
        COMMIT;
    END LOOP;
    SELECT sum(b) INTO bytes FROM (SELECT b FROM unnest(each) AS b ORDER BY b LIMIT 5) AS least;
END
$fn$;
CALL pg_temp.update_wal('_distinct_absorb', NULL) \gset absorb_
CALL pg_temp.update_wal('distinct_union', NULL) \gset union_
-- (here 1,272 against 7,168 bytes)
SELECT :absorb_bytes < 5 * 400 AS absorbed_under_400_bytes_each,
       :absorb_bytes * 3 < :union_bytes AS absorbed_under_a_third_of_unioned;
-- and the same with 100000 users (dense per minute and per hour): within 2%
TRUNCATE sketch_events, sketch_minutes;
INSERT INTO sketch_events
SELECT 0, '2026-03-01 10:00:00+00'::timestamptz + (i % 60) * interval '1 minute', (i::bigint * 7919) % 100000
  FROM generate_series(1, 300000) AS i;
INSERT INTO sketch_minutes
SELECT date_trunc('minute', at), pipeline.distinct_sketch(user_id) FROM sketch_events GROUP BY 1;
SELECT abs(pipeline.distinct_count(pipeline.distinct_merge(users)) - e.exact)::float8 / e.exact < 0.02
       AS hour_within_2pct, e.exact
  FROM sketch_minutes, (SELECT count(DISTINCT user_id) AS exact FROM sketch_events) AS e
 GROUP BY e.exact;

-- parallel aggregation: partial states are serialized in the workers,
-- deserialized and combined in the leader, and give the serial result
CREATE TABLE sketch_big AS
SELECT g::bigint AS id, 'user-' || (g % 150000) AS name, g % 100 AS grp FROM generate_series(1, 300000) AS g;
ANALYZE sketch_big;
SET max_parallel_workers_per_gather = 0;
SELECT md5(pipeline.distinct_sketch(id)::text) AS serial_ids,
       md5(pipeline.distinct_sketch(name)::text) AS serial_names,
       md5(pipeline.distinct_sketch(grp)::text) AS serial_grps
  FROM sketch_big \gset
SELECT md5(string_agg(grp || ':' || s::text, ',' ORDER BY grp)) AS serial_groups
  FROM (SELECT grp, pipeline.distinct_sketch(name) FROM sketch_big GROUP BY grp) AS t(grp, s) \gset
SELECT md5(pipeline.distinct_merge(users)::text) AS serial_merge FROM sketch_minutes \gset
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
-- (ids and names give dense partial states, the 100 grp values explicit ones)
EXPLAIN (COSTS OFF)
SELECT pipeline.distinct_sketch(id), pipeline.distinct_sketch(name), pipeline.distinct_sketch(grp) FROM sketch_big;
SELECT md5(pipeline.distinct_sketch(id)::text) = :'serial_ids' AS ids_same_as_serial,
       md5(pipeline.distinct_sketch(name)::text) = :'serial_names' AS names_same_as_serial,
       md5(pipeline.distinct_sketch(grp)::text) = :'serial_grps' AS grps_same_as_serial,
       pipeline.distinct_count(pipeline.distinct_sketch(grp)) AS grps
  FROM sketch_big;
EXPLAIN (COSTS OFF)
SELECT grp, pipeline.distinct_sketch(name) FROM sketch_big GROUP BY grp;
SELECT md5(string_agg(grp || ':' || s::text, ',' ORDER BY grp)) = :'serial_groups' AS groups_same_as_serial
  FROM (SELECT grp, pipeline.distinct_sketch(name) FROM sketch_big GROUP BY grp) AS t(grp, s);
EXPLAIN (COSTS OFF)
SELECT pipeline.distinct_merge(users) FROM sketch_minutes;
SELECT md5(pipeline.distinct_merge(users)::text) = :'serial_merge' AS merge_same_as_serial FROM sketch_minutes;
-- the workers did run: the leader only gathered
CREATE FUNCTION pg_temp.workers_launched(query text) RETURNS int LANGUAGE plpgsql AS $fn$
DECLARE
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || query INTO plan;
    RETURN (plan -> 0 -> 'Plan' -> 'Plans' -> 0 ->> 'Workers Launched')::int;
END
$fn$;
SELECT pg_temp.workers_launched('SELECT pipeline.distinct_sketch(name) FROM sketch_big') > 0 AS ran_in_workers;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET parallel_leader_participation;

DROP TABLE sketch_sets, sketch_sets_copy, sketch_events, sketch_minutes, sketch_big;
DROP COLLATION sketch_ci;

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
