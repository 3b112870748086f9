-- Scale-out without Citus: distribute_source refuses with a hint and
-- nothing changes.  distinct_sketch_dist, the sketch aggregate whose state
-- Citus can ship, builds the very bytes of distinct_sketch, serially and
-- in parallel (combined by distinct_union), for every type it has.  The
-- batch registry tells which batches a snapshot saw by a floor and two
-- short lists, and a savepoint's error does not leave its slot waited on.
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline CASCADE;

SELECT pipeline.create_source('clicks', 'event_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text');
SELECT pipeline.distribute_source('nosuch');
SELECT pipeline.distribute_source('clicks');
SELECT pipeline._distributed('pipeline.clicks_raw');
-- a metric's fold statement is the same one on a single node
SELECT pipeline.create_metric('c', 'clicks', measures => 'count(*) AS n, count(DISTINCT user_id) AS users');
SELECT pipeline._distributed_fold_sql(fold_sql, definition) <> fold_sql AS dist_sketch_used,
       pipeline._distributed_fold_sql(fold_sql, definition) = replace(fold_sql, 'distinct_sketch(', 'distinct_sketch_dist(') AS only_the_sketch
  FROM pipeline.metric_catalog;

CREATE TABLE dist_values AS
SELECT g::smallint AS i2, g::integer AS i4, g::bigint * 1000003 AS i8, (g / 7.0)::numeric AS num,
       'user-' || (g % 1500) AS txt, ('v' || g)::varchar(20) AS vc,
       md5(g::text)::uuid AS id, date '2026-01-01' + g % 400 AS d,
       timestamp '2026-01-01' + g * interval '1 minute' AS ts,
       timestamptz '2026-01-01 00:00+00' + g * interval '1 second' AS tstz, g % 3 = 0 AS b,
       CASE WHEN g % 10 = 0 THEN NULL ELSE 'x' || (g % 700) END AS with_nulls, g % 50 AS grp
  FROM generate_series(1, 20000) AS g;
ANALYZE dist_values;

SELECT pipeline.distinct_sketch(i2)::text = pipeline.distinct_sketch_dist(i2)::text AS i2,
       pipeline.distinct_sketch(i4)::text = pipeline.distinct_sketch_dist(i4)::text AS i4,
       pipeline.distinct_sketch(i8)::text = pipeline.distinct_sketch_dist(i8)::text AS i8,
       pipeline.distinct_sketch(num)::text = pipeline.distinct_sketch_dist(num)::text AS num,
       pipeline.distinct_sketch(txt)::text = pipeline.distinct_sketch_dist(txt)::text AS txt,
       pipeline.distinct_sketch(vc)::text = pipeline.distinct_sketch_dist(vc)::text AS vc,
       pipeline.distinct_sketch(id)::text = pipeline.distinct_sketch_dist(id)::text AS id,
       pipeline.distinct_sketch(d)::text = pipeline.distinct_sketch_dist(d)::text AS d,
       pipeline.distinct_sketch(ts)::text = pipeline.distinct_sketch_dist(ts)::text AS ts,
       pipeline.distinct_sketch(tstz)::text = pipeline.distinct_sketch_dist(tstz)::text AS tstz,
       pipeline.distinct_sketch(b)::text = pipeline.distinct_sketch_dist(b)::text AS b,
       pipeline.distinct_sketch(with_nulls)::text = pipeline.distinct_sketch_dist(with_nulls)::text AS with_nulls
  FROM dist_values;
-- per group (explicit sketches), and no row or only NULLs: NULL, as distinct_sketch
SELECT count(*) AS groups, count(*) FILTER (WHERE a::text = b::text) AS same
  FROM (SELECT grp, pipeline.distinct_sketch(txt) AS a, pipeline.distinct_sketch_dist(txt) AS b
          FROM dist_values GROUP BY grp) AS t;
SELECT pipeline.distinct_sketch_dist(txt) IS NULL AS no_rows FROM dist_values WHERE false;
SELECT pipeline.distinct_sketch_dist(NULL::text) IS NULL AS only_nulls FROM dist_values WHERE grp = 1;
-- an argument of a type without its own aggregate: no such function
SELECT pipeline.distinct_sketch_dist(ARRAY[i4]) FROM dist_values;

-- in parallel: partial states combined by distinct_union
SELECT md5(pipeline.distinct_sketch(txt)::text) AS serial_txt, md5(pipeline.distinct_sketch(i8)::text) AS serial_i8
  FROM dist_values \gset
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT pipeline.distinct_sketch_dist(txt) FROM dist_values;
SELECT md5(pipeline.distinct_sketch_dist(txt)::text) = :'serial_txt' AS txt_same_as_serial,
       md5(pipeline.distinct_sketch_dist(i8)::text) = :'serial_i8' AS i8_same_as_serial
  FROM dist_values;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET parallel_leader_participation;

DROP TABLE dist_values;

-- the rows a distributed source's ingest sends are read through
-- pipeline._pending_rows(), which has nothing to give anyone else
SELECT * FROM pipeline._pending_rows() AS u(id bigint, x jsonb);

-- The batch registry (src/batch_registry.c): a running transaction holds
-- the floor of _batches_seen at the first batch id it took; below the
-- floor, the batches a snapshot did not see are listed, above it those it
-- saw.  Here on a single node, where it works the same.
SELECT pipeline.ingest('clicks', '[{"event_id": 1, "event_time": "2026-01-01 10:00+00", "user_id": "a"}]') IS NOT NULL AS first;
SELECT pg_catalog.pg_current_snapshot() AS before_second \gset
BEGIN;
SELECT accepted FROM pipeline.ingest('clicks', '[{"event_id": 2, "event_time": "2026-01-01 10:00+00", "user_id": "b"}]');
SELECT max(batch_id) AS held FROM pipeline.batch_log \gset
SELECT accepted FROM pipeline.ingest('clicks', '[{"event_id": 3, "event_time": "2026-01-01 10:00+00", "user_id": "c"}]');
-- (its own batches are not committed: not seen)
SELECT floor = :held AS floor_is_the_first_id_held, unseen = '{}' AS none_unseen, seen = '{}' AS none_seen
  FROM pipeline._batches_seen('clicks', pg_catalog.pg_current_snapshot());
COMMIT;
-- ended: the floor is the next id; a snapshot from before lists them unseen
SELECT floor = :held + 2 AS floor_is_the_next_id, unseen = ARRAY[:held, :held + 1]::bigint[] AS both_unseen_before,
       seen = '{}' AS none_above
  FROM pipeline._batches_seen('clicks', :'before_second');
-- an error while an id is being taken, caught by a savepoint, frees the
-- slot: a scan (its own, here) does not wait for the transaction's end
SELECT :held + 1 AS last_given \gset
BEGIN;
ALTER SEQUENCE pipeline.batch_log_batch_id_seq MAXVALUE :last_given;
SAVEPOINT s;
SELECT accepted FROM pipeline.ingest('clicks', '[{"event_id": 4, "event_time": "2026-01-01 10:00+00", "user_id": "d"}]');
ROLLBACK TO s;
SET LOCAL statement_timeout = '5s';
SELECT floor = :held + 2 AS not_waiting FROM pipeline._batches_seen('clicks', pg_catalog.pg_current_snapshot());
ROLLBACK;

DROP EXTENSION pipeline CASCADE;
