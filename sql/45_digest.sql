-- The order-independent digest: the same multiset in any order gives the
-- same digest; a changed, extra or missing row, NULL instead of '', or one
-- duplicate more or less gives another; no rows give the digest of the
-- empty multiset; parallel plans (combine, serialize, deserialize) agree
-- with serial ones.
CREATE EXTENSION pipeline;
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';

CREATE TABLE digest_rows AS
SELECT g AS id, 'row-' || g AS val FROM generate_series(1, 1000) AS g;

-- the text form: fixed width, format version 01, then the element count
SELECT d, length(d) AS width, substr(d, 1, 2) AS version, ('x' || substr(d, 3, 16))::bit(64)::bigint AS elements
  FROM (SELECT pipeline.digest(val) AS d FROM digest_rows) AS t;
-- the hashes are part of format version 1: this digest must not change
SELECT pipeline.digest(v) FROM (VALUES ('a'), ('b'), (NULL)) AS t(v);

-- no rows: the digest of the empty multiset (not NULL), the same however
-- the emptiness comes about
SELECT pipeline.digest(v) AS no_rows FROM (SELECT 'x' WHERE false) AS t(v);
SELECT (SELECT pipeline.digest(val) FROM digest_rows WHERE id < 0)
       = (SELECT pipeline.digest(val) FILTER (WHERE false) FROM digest_rows) AS empty_filter_same;

-- order does not matter: ascending, descending, shuffled and random orders
-- give the same digest (parallel plans, below, split and combine the rows)
SELECT pipeline.digest(val) AS serial_digest FROM digest_rows \gset
SELECT (SELECT pipeline.digest(val ORDER BY id) FROM digest_rows) = :'serial_digest' AS ascending,
       (SELECT pipeline.digest(val ORDER BY id DESC) FROM digest_rows) = :'serial_digest' AS descending,
       (SELECT pipeline.digest(val ORDER BY md5(val)) FROM digest_rows) = :'serial_digest' AS shuffled,
       (SELECT pipeline.digest(val ORDER BY random()) FROM digest_rows) = :'serial_digest' AS random_order;

-- any change shows
SELECT (SELECT pipeline.digest(CASE WHEN id = 500 THEN 'row-500 ' ELSE val END) FROM digest_rows)
         <> :'serial_digest' AS one_changed_value,
       (SELECT pipeline.digest(val) FROM (SELECT val FROM digest_rows UNION ALL SELECT 'row-1001') AS t)
         <> :'serial_digest' AS one_extra_row,
       (SELECT pipeline.digest(val) FROM digest_rows WHERE id <> 777) <> :'serial_digest' AS one_missing_row,
       (SELECT pipeline.digest(val) FROM (SELECT val FROM digest_rows UNION ALL SELECT 'row-1') AS t)
         <> :'serial_digest' AS one_duplicate_more;
-- two values swapped between rows is the same multiset (a digest of rows
-- as text sees whole rows, so a swap inside a row changes the text)
SELECT (SELECT pipeline.digest(CASE id WHEN 1 THEN 'row-2' WHEN 2 THEN 'row-1' ELSE val END) FROM digest_rows)
         = :'serial_digest' AS swapped_values_same_multiset,
       (SELECT pipeline.digest(r::text) FROM (SELECT id, CASE id WHEN 1 THEN 'row-2' WHEN 2 THEN 'row-1' ELSE val END
                                                FROM digest_rows) AS r)
         <> (SELECT pipeline.digest(r::text) FROM digest_rows AS r) AS swapped_inside_rows_differs;

-- a multiset, not a set: {a, b}, {a, a, b}, {a, b, b}, {a, a, b, b} all differ
SELECT count(DISTINCT d) AS distinct_digests_of_4_multisets
  FROM (SELECT pipeline.digest(v) FROM (VALUES ('a'), ('b')) AS t(v)
        UNION ALL SELECT pipeline.digest(v) FROM (VALUES ('a'), ('a'), ('b')) AS t(v)
        UNION ALL SELECT pipeline.digest(v) FROM (VALUES ('a'), ('b'), ('b')) AS t(v)
        UNION ALL SELECT pipeline.digest(v) FROM (VALUES ('a'), ('a'), ('b'), ('b')) AS t(v)) AS d(d);
-- an element added twice is not the same as another element added once
-- (no cancellation: sums, not xors)
SELECT (SELECT pipeline.digest(v) FROM (VALUES ('a'), ('a')) AS t(v))
       <> (SELECT pipeline.digest(v) FROM (SELECT 'x' WHERE false) AS t(v)) AS pair_does_not_cancel;

-- NULL is an element of its own: not '', not 'NULL', and counted
SELECT count(DISTINCT d) AS distinct_digests, count(*) AS multisets
  FROM (SELECT pipeline.digest(v) FROM (VALUES (NULL::text)) AS t(v)
        UNION ALL SELECT pipeline.digest(v) FROM (VALUES ('')) AS t(v)
        UNION ALL SELECT pipeline.digest(v) FROM (VALUES ('NULL')) AS t(v)
        UNION ALL SELECT pipeline.digest(v) FROM (VALUES (NULL::text), (NULL)) AS t(v)
        UNION ALL SELECT pipeline.digest(v) FROM (SELECT 'x' WHERE false) AS t(v)) AS d(d);
SELECT ('x' || substr(pipeline.digest(v), 3, 16))::bit(64)::bigint AS elements_with_nulls
  FROM (VALUES ('a'), (NULL), (NULL)) AS t(v);
-- rows as text: a NULL column and an empty one are different rows too
SELECT (SELECT pipeline.digest(r::text) FROM (VALUES (1, NULL::text)) AS r(id, v))
       <> (SELECT pipeline.digest(r::text) FROM (VALUES (1, '')) AS r(id, v)) AS null_column_vs_empty;

-- bytes, not collation equality: case and trailing spaces matter
SELECT pipeline.digest(v) <> pipeline.digest(upper(v)) AS case_matters,
       pipeline.digest(v) <> pipeline.digest(v || ' ') AS trailing_space_matters
  FROM (VALUES ('abc')) AS t(v);
-- long values stored out of line, compressed or not, digest like the same
-- values computed inline: the digest is of the bytes, not of their storage
CREATE TABLE digest_toast (v text);
INSERT INTO digest_toast SELECT repeat('frozen day ', 20000);
INSERT INTO digest_toast SELECT string_agg(md5(g::text), '') FROM generate_series(1, 5000) AS g;
SELECT octet_length(v) AS bytes, pg_column_size(v) < octet_length(v) AS compressed FROM digest_toast ORDER BY 1;
SELECT (SELECT pipeline.digest(v) FROM digest_toast)
       = (SELECT pipeline.digest(v)
            FROM (SELECT repeat('frozen day ', 20000)
                  UNION ALL SELECT string_agg(md5(g::text), '') FROM generate_series(1, 5000) AS g) AS t(v))
         AS toasted_same;

-- rows as text depend on settings that format values: digest with them pinned
CREATE TABLE digest_times (id int, at timestamptz);
INSERT INTO digest_times VALUES (1, '2026-03-01 10:00+00');
SELECT pipeline.digest(d::text) AS at_utc FROM digest_times AS d \gset
SET TimeZone = 'Europe/Paris';
SELECT pipeline.digest(d::text) <> :'at_utc' AS timezone_changes_row_text FROM digest_times AS d;
SET TimeZone = 'UTC';

-- as a window function (the final function leaves the state as it was)
SELECT id, ('x' || substr(pipeline.digest(val) OVER (ORDER BY id), 3, 16))::bit(64)::bigint AS running_count,
       pipeline.digest(val) OVER (ORDER BY id) = pipeline.digest(val) OVER (ORDER BY id ROWS UNBOUNDED PRECEDING)
         AS same_frame_same_digest
  FROM digest_rows WHERE id <= 3 ORDER BY id;

-- parallel plans: partial aggregates in the workers, combined in the leader
CREATE TABLE digest_big AS
SELECT g AS id, CASE WHEN g % 1000 = 0 THEN NULL ELSE 'event-' || (g % 50000) END AS val, g % 10 AS grp
  FROM generate_series(1, 200000) AS g;
ANALYZE digest_big;
SET max_parallel_workers_per_gather = 0;
SELECT pipeline.digest(val) AS serial_big FROM digest_big \gset
SELECT pipeline.digest(d::text) AS serial_rows FROM digest_big AS d \gset
SELECT pipeline.digest(val) AS serial_one FROM digest_big WHERE id + 0 = 1 \gset
SELECT string_agg(grp || ':' || d, ',' ORDER BY grp) AS serial_groups
  FROM (SELECT grp, pipeline.digest(val) FROM digest_big GROUP BY grp) AS t(grp, d) \gset
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF)
SELECT pipeline.digest(val), pipeline.digest(d::text) FROM digest_big AS d;
SELECT pipeline.digest(val) = :'serial_big' AS values_same_as_serial,
       pipeline.digest(d::text) = :'serial_rows' AS rows_same_as_serial
  FROM digest_big AS d;
EXPLAIN (COSTS OFF)
SELECT grp, pipeline.digest(val) FROM digest_big GROUP BY grp;
SELECT string_agg(grp || ':' || d, ',' ORDER BY grp) = :'serial_groups' AS groups_same_as_serial
  FROM (SELECT grp, pipeline.digest(val) FROM digest_big GROUP BY grp) AS t(grp, d);
-- the workers did run: the leader only gathered and combined
CREATE FUNCTION pg_temp.workers_launched(query text) RETURNS int LANGUAGE plpgsql AS $fn$
DECLARE
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || query INTO plan;
    RETURN (plan -> 0 -> 'Plan' -> 'Plans' -> 0 ->> 'Workers Launched')::int;
END
$fn$;
SELECT pg_temp.workers_launched('SELECT pipeline.digest(val) FROM digest_big') > 0 AS ran_in_workers;
-- a worker that saw no rows has a NULL partial state: still the serial
-- answer, and the empty digest when no worker saw any (id + 0 hides the
-- selectivity, so that the plan stays partial)
EXPLAIN (COSTS OFF)
SELECT pipeline.digest(val) FROM digest_big WHERE id + 0 = 1;
SELECT pipeline.digest(val) = :'serial_one' AS one_row_same_as_serial FROM digest_big WHERE id + 0 = 1;
SELECT pipeline.digest(val) AS no_rows_in_parallel FROM digest_big WHERE id + 0 = -1;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET parallel_leader_participation;

DROP TABLE digest_rows, digest_toast, digest_times, digest_big;

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
