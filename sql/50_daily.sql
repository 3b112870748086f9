-- The frozen daily layer: open -> provisional -> frozen driven by as_of,
-- exact values (distinct too), corrections exactly once, immutability,
-- restatement, digests, and the four views.
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
SET DateStyle = ISO;
-- a New York day across the DST change (2026-03-08 has 23 hours)
SELECT pipeline.create_source('orders',
    $$order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL,
      platform text, amount numeric(12,2)$$,
    event_id => 'order_id', allowed_lateness => '2 hours', freeze_after => '24 hours',
    day_timezone => 'America/New_York');
SELECT pipeline.create_metric('sales', 'orders', '{platform}',
    'count(*) AS orders, sum(amount) AS revenue, min(amount) AS smallest,
     avg(amount) AS avg_amount, count(DISTINCT user_id) AS buyers', hot_retention => '100 years');
SELECT table_name FROM information_schema.views
 WHERE table_schema = 'metrics' AND table_name LIKE 'sales%' ORDER BY 1;

-- 100 orders over the whole local day 2026-03-08 (05:00 UTC .. 03:59 UTC next
-- day, 23 hours), and 3 just outside it on either side
SELECT accepted FROM pipeline.ingest('orders', (SELECT jsonb_agg(jsonb_build_object(
    'order_id', i, 'event_time', timestamptz '2026-03-08 05:00:00+00' + (i % 23) * interval '1 hour',
    'user_id', 'u' || (i % 7), 'platform', (ARRAY['web', 'ios'])[1 + i % 2], 'amount', i))
  FROM generate_series(1, 100) AS i)
  || '[{"order_id": 201, "event_time": "2026-03-08T04:59:59Z", "user_id": "x", "platform": "web", "amount": 1},
       {"order_id": 202, "event_time": "2026-03-09T04:00:00Z", "user_id": "x", "platform": "web", "amount": 1},
       {"order_id": 203, "event_time": "2026-03-09T04:00:01Z", "user_id": "x", "platform": "web", "amount": 1}]'::jsonb);

-- open: the day ends at 2026-03-09 04:00 UTC; + 2 hours lateness = 06:00
SELECT * FROM pipeline.close_days('2026-03-09 05:59:59+00') WHERE day = '2026-03-08';
SELECT count(*) AS daily_rows FROM metrics.sales_daily WHERE day = '2026-03-08';
-- provisional: computed exactly from raw, recomputed at every run
SELECT * FROM pipeline.close_days('2026-03-09 06:00:00+00') WHERE day = '2026-03-08';
SELECT * FROM metrics.sales_daily WHERE day = '2026-03-08' ORDER BY platform;
-- the same as a hand-written GROUP BY over the local day
SELECT platform, count(*) AS orders, sum(amount) AS revenue, min(amount) AS smallest,
       avg(amount) AS avg_amount, count(DISTINCT user_id) AS buyers
  FROM pipeline.orders_raw
 WHERE (event_time AT TIME ZONE 'America/New_York')::date = '2026-03-08'
 GROUP BY platform ORDER BY platform;

-- a late event before the freeze is included by the next run
SELECT accepted FROM pipeline.ingest('orders',
  '[{"order_id": 300, "event_time": "2026-03-08T15:00:00Z", "user_id": "late-but-in-time", "platform": "ios", "amount": 1000}]'::jsonb);
SELECT * FROM pipeline.close_days('2026-03-09 12:00:00+00') WHERE day = '2026-03-08';
SELECT platform, orders, revenue, buyers, status FROM metrics.sales_daily WHERE day = '2026-03-08' ORDER BY platform;

-- frozen at the day's end + 24 hours
SELECT * FROM pipeline.close_days('2026-03-10 03:59:59+00') WHERE day = '2026-03-08';
SELECT * FROM pipeline.close_days('2026-03-10 04:00:00+00') WHERE day = '2026-03-08';
SELECT platform, orders, revenue, buyers, status, frozen_at FROM metrics.sales_daily WHERE day = '2026-03-08' ORDER BY platform;
SELECT status, version, events_frozen, digest IS NOT NULL AS has_digest FROM pipeline.day_closures
 WHERE metric = 'sales' AND day = '2026-03-08';
SELECT pipeline.verify_day('sales', '2026-03-08') AS digest_matches;
-- from a session with other display settings too
SET TimeZone = 'Asia/Tokyo';
SET DateStyle = 'German';
SELECT pipeline.verify_day('sales', '2026-03-08') AS digest_matches_elsewhere;
SET TimeZone = 'UTC';
SET DateStyle = ISO;
-- a frozen day does not move when close_days runs again
SELECT * FROM pipeline.close_days('2026-03-11 00:00:00+00') WHERE day = '2026-03-08';

-- events accepted after the freeze become corrections, exactly once
SELECT batch_id AS late_batch FROM pipeline.ingest('orders',
  '[{"order_id": 400, "event_time": "2026-03-08T13:00:00Z", "user_id": "u1", "platform": "web", "amount": 0.5},
    {"order_id": 401, "event_time": "2026-03-08T14:00:00Z", "user_id": "brand-new", "platform": "web", "amount": 7},
    {"order_id": 402, "event_time": "2026-03-08T14:00:00Z", "user_id": "brand-new", "platform": "android", "amount": 3}]'::jsonb) \gset
SELECT * FROM pipeline.close_days('2026-03-11 00:00:00+00') WHERE day = '2026-03-08';
SELECT * FROM pipeline.close_days('2026-03-11 00:00:00+00') WHERE day = '2026-03-08';
SELECT * FROM pipeline.close_days('2026-03-12 00:00:00+00') WHERE day = '2026-03-08';
SELECT day, platform, orders_delta, revenue_delta, smallest, avg_amount_sum_delta, avg_amount_count_delta,
       buyers_delta, late_events, batch_ids = ARRAY[:late_batch]::bigint[] AS attributed_to_late_batch
  FROM metrics.sales_corrections ORDER BY platform;
-- frozen values did not move; restated = frozen + corrections
SELECT platform, orders, revenue, buyers FROM metrics.sales_daily WHERE day = '2026-03-08' ORDER BY platform;
SELECT * FROM metrics.sales_restated WHERE day = '2026-03-08' ORDER BY platform;
-- restated equals the exact values over everything now in raw
SELECT platform, count(*) AS orders, sum(amount) AS revenue, min(amount) AS smallest,
       avg(amount) AS avg_amount, count(DISTINCT user_id) AS buyers
  FROM pipeline.orders_raw
 WHERE (event_time AT TIME ZONE 'America/New_York')::date = '2026-03-08'
 GROUP BY platform ORDER BY platform;

-- reconcile: hot vs daily vs restated, and the events behind the difference
SELECT pipeline.run_hot() > 0 AS folded;
SELECT day, platform, orders_live, orders_daily, orders_restated, orders_difference,
       buyers_live, buyers_daily, buyers_restated, events_late_after_freeze,
       hot_covers_day, distinct_is_approximate_in_live, status
  FROM metrics.sales_reconcile WHERE day = '2026-03-08' ORDER BY platform;

-- frozen rows and corrections cannot be changed by hand, by any role
UPDATE pipeline.sales_daily SET orders = 0 WHERE day = '2026-03-08';
DELETE FROM pipeline.sales_daily WHERE day = '2026-03-08';
TRUNCATE pipeline.sales_daily;
DELETE FROM pipeline.sales_corrections;
UPDATE metrics.sales_daily SET orders = 0;
CREATE ROLE regress_analyst;
GRANT USAGE ON SCHEMA pipeline, metrics TO regress_analyst;
SET ROLE regress_analyst;
UPDATE pipeline.sales_daily SET orders = 0;
SET pipeline.restating = on;
SELECT * FROM pipeline.close_days('2030-01-01');
SELECT pipeline.restate_day('sales', '2026-03-08', 'not mine to restate');
RESET ROLE;
SELECT pipeline.verify_day('sales', '2026-03-08') AS digest_still_matches;

-- restate_day: recompute from raw, absorb corrections, keep the history
SELECT pipeline.restate_day('sales', '2026-03-08', NULL);
SELECT pipeline.restate_day('sales', '2026-04-01', 'not frozen');
SELECT pipeline.restate_day('sales', '2026-03-08', 'absorb the late web and android orders') AS version;
SELECT platform, orders, revenue, smallest, buyers, status FROM metrics.sales_daily WHERE day = '2026-03-08' ORDER BY platform;
SELECT count(*) AS corrections_left FROM metrics.sales_corrections WHERE day = '2026-03-08';
SELECT platform, orders, buyers, corrected FROM metrics.sales_restated WHERE day = '2026-03-08' ORDER BY platform;
SELECT version, restated_by = current_user AS by_me, reason, jsonb_array_length(old_rows) AS old_rows,
       jsonb_array_length(absorbed_corrections) AS absorbed, old_digest <> new_digest AS digest_changed
  FROM pipeline.restatements;
SELECT version, status FROM pipeline.day_closures WHERE metric = 'sales' AND day = '2026-03-08';
SELECT pipeline.verify_day('sales', '2026-03-08') AS new_digest_matches;
-- and later events correct the new version
SELECT accepted FROM pipeline.ingest('orders',
  '[{"order_id": 500, "event_time": "2026-03-08T16:00:00Z", "user_id": "u2", "platform": "ios", "amount": 1}]'::jsonb);
SELECT * FROM pipeline.close_days('2026-03-12 00:00:00+00') WHERE day = '2026-03-08';
SELECT platform, orders_delta, buyers_delta FROM metrics.sales_corrections ORDER BY platform;
-- distinct deltas count a value once per group: new to the day in two
-- batches of one run (ios "twice"), new in a NULL group (u3), already there
-- (u2 in ios); then "twice" again in a later run adds nothing
SELECT accepted FROM pipeline.ingest('orders',
  '[{"order_id": 510, "event_time": "2026-03-08T16:00:00Z", "user_id": "twice", "platform": "ios", "amount": 1},
    {"order_id": 511, "event_time": "2026-03-08T16:00:00Z", "user_id": "u3", "platform": null, "amount": 1}]'::jsonb);
SELECT accepted FROM pipeline.ingest('orders',
  '[{"order_id": 512, "event_time": "2026-03-08T17:00:00Z", "user_id": "twice", "platform": "ios", "amount": 1},
    {"order_id": 513, "event_time": "2026-03-08T17:00:00Z", "user_id": "u3", "platform": null, "amount": 1},
    {"order_id": 514, "event_time": "2026-03-08T17:00:00Z", "user_id": "u2", "platform": "ios", "amount": 1}]'::jsonb);
SELECT * FROM pipeline.close_days('2026-03-12 00:00:00+00') WHERE day = '2026-03-08';
SELECT accepted FROM pipeline.ingest('orders',
  '[{"order_id": 515, "event_time": "2026-03-08T18:00:00Z", "user_id": "twice", "platform": "ios", "amount": 1}]'::jsonb);
SELECT * FROM pipeline.close_days('2026-03-12 00:00:00+00') WHERE day = '2026-03-08';
SELECT platform, orders_delta, buyers_delta, late_events, cardinality(batch_ids) AS batches
  FROM metrics.sales_corrections ORDER BY created_at, platform NULLS LAST;
-- restated buyers still equal an exact recount of everything in raw
SELECT x.platform, x.buyers AS restated, e.buyers AS exact
  FROM metrics.sales_restated AS x
  JOIN (SELECT platform, count(DISTINCT user_id) AS buyers FROM pipeline.orders_raw
         WHERE (event_time AT TIME ZONE 'America/New_York')::date = '2026-03-08' GROUP BY platform) AS e
    ON e.platform IS NOT DISTINCT FROM x.platform
 WHERE x.day = '2026-03-08' ORDER BY x.platform NULLS LAST;

-- the first of those corrections queued an index of the buyers column of
-- the day's partition, and the index builder builds it CONCURRENTLY once
-- that commits (corrections meanwhile scan the day); later corrections look
-- their new values up there.  Each turn commits: CREATE INDEX CONCURRENTLY
-- waits for transactions that started before it.  The entry leaves the
-- queue on the builder's next turn, just after the index's build commits.
DO $$
BEGIN
    FOR i IN 1..600 LOOP
        EXIT WHEN pipeline._value_index_ready('pipeline.orders_raw_20260308', 'user_id')
              AND NOT EXISTS (SELECT FROM pipeline.value_index_queue);
        COMMIT;
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT count(*) AS still_queued FROM pipeline.value_index_queue;
SELECT indexrelid::regclass AS index, substring(pg_get_indexdef(indexrelid) FROM 'USING .*') AS definition
  FROM pg_index WHERE indrelid = 'pipeline.orders_raw_20260308'::regclass ORDER BY 1;
-- index names fit in an identifier and stay one per day even when the
-- partitions of a 40-character source differ only past the cut
SELECT pipeline.create_source('s234567890123456789012345678901234567890',
    'id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text', event_id => 'id');
SELECT accepted FROM pipeline.ingest('s234567890123456789012345678901234567890',
  '[{"id": 1, "event_time": "2026-03-08T12:00:00Z", "user_id": "a"},
    {"id": 2, "event_time": "2026-03-09T12:00:00Z", "user_id": "a"}]'::jsonb);
SELECT count(*) AS partitions,
       count(DISTINCT pipeline._value_index_name(inhrelid::regclass, 'user_id')) AS index_names,
       max(length(pipeline._value_index_name(inhrelid::regclass, 'user_id'))) <= 63 AS fits
  FROM pg_inherits WHERE inhparent = 'pipeline.s234567890123456789012345678901234567890_raw'::regclass;
SELECT pipeline.drop_source('s234567890123456789012345678901234567890');
-- a distinct measure of an expression gets no index (it could fail on the
-- rows its filter leaves out: here 100 / 0); its corrections scan the day,
-- and are as exact
SELECT pipeline.create_metric('price_points', 'orders', dimensions => '{platform}', filter => 'amount > 0',
    measures => 'count(DISTINCT round(100 / amount)) AS points', hot_retention => '100 years');
-- (and one whose filter holds the marker that a kept correction statement
-- has where the day's partition goes: its statements are not kept)
SELECT pipeline.create_metric('marked', 'orders', dimensions => '{platform}',
    filter => $$platform IS DISTINCT FROM '<day partition>'$$,
    measures => 'count(*) AS orders, count(DISTINCT user_id) AS buyers', hot_retention => '100 years');
SELECT * FROM pipeline.close_days('2026-03-12 00:00:00+00') WHERE metric = 'price_points' AND day = '2026-03-08';
SELECT accepted FROM pipeline.ingest('orders',
  '[{"order_id": 520, "event_time": "2026-03-08T19:00:00Z", "user_id": "u9", "platform": "ios", "amount": 0},
    {"order_id": 521, "event_time": "2026-03-08T19:00:00Z", "user_id": "u9", "platform": "ios", "amount": 0.3},
    {"order_id": 522, "event_time": "2026-03-08T19:00:00Z", "user_id": "u9", "platform": "web", "amount": 1}]'::jsonb);
SELECT * FROM pipeline.close_days('2026-03-12 00:00:00+00') WHERE day = '2026-03-08' ORDER BY metric;
SELECT platform, points_delta FROM metrics.price_points_corrections ORDER BY platform;
SELECT x.platform, x.points AS restated, e.points AS exact
  FROM metrics.price_points_restated AS x
  JOIN (SELECT platform, count(DISTINCT round(100 / amount)) AS points FROM pipeline.orders_raw
         WHERE (event_time AT TIME ZONE 'America/New_York')::date = '2026-03-08' AND amount > 0
         GROUP BY platform) AS e
    ON e.platform IS NOT DISTINCT FROM x.platform
 WHERE x.day = '2026-03-08' ORDER BY x.platform NULLS LAST;
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'pipeline.orders_raw_20260308'::regclass;
-- the statement that writes a metric's corrections is generated once per
-- variant and kept: sales scanned the day before its value index was built
-- and looks values up there since (one slot for the day's partition);
-- price_points always scans (an expression); marked is not kept
SELECT metric, distributed, lookups, cardinality(pieces) - 1 AS partition_slots
  FROM pipeline.correction_statements ORDER BY metric, lookups;
-- a kept statement is the generated one, whatever partition fills the slot
SELECT x.metric, x.lookups,
       array_to_string(x.pieces, 'pipeline.orders_raw_20260309')
         = pipeline._correction_sql(m, s, 'pipeline.orders_raw_20260309', x.lookups, x.distributed) AS same
  FROM pipeline.correction_statements AS x
  JOIN pipeline.metric_catalog AS m ON m.metric = x.metric AND m.created_at = x.created_at
  JOIN pipeline.source_catalog AS s ON s.source = m.source
 ORDER BY 1, 2;
-- sales (a kept statement with the value index) and marked (generated each
-- time) are as exact as price_points
SELECT x.metric, x.platform, x.buyers AS restated, e.buyers AS exact
  FROM (SELECT 'sales' AS metric, platform, buyers FROM metrics.sales_restated WHERE day = '2026-03-08'
        UNION ALL
        SELECT 'marked', platform, buyers FROM metrics.marked_restated WHERE day = '2026-03-08') AS x
  JOIN (SELECT platform, count(DISTINCT user_id) AS buyers FROM pipeline.orders_raw
         WHERE (event_time AT TIME ZONE 'America/New_York')::date = '2026-03-08' GROUP BY platform) AS e
    ON e.platform IS NOT DISTINCT FROM x.platform
 ORDER BY x.metric, x.platform NULLS LAST;
SELECT platform, orders_delta, buyers_delta FROM metrics.marked_corrections ORDER BY platform;
SELECT pipeline.drop_metric('marked');
-- dropping a metric keeps the value index another metric still needs
SELECT pipeline.drop_metric('price_points');
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'pipeline.orders_raw_20260308'::regclass;
-- and its kept statements go with it
SELECT DISTINCT metric FROM pipeline.correction_statements;

-- a clock in the future is for superusers only; the past is for anyone
SET ROLE regress_analyst;
\set VERBOSITY terse
SELECT * FROM pipeline.close_days(now() + interval '1 hour');
\set VERBOSITY default
SELECT count(*) AS failed FROM pipeline.close_days() WHERE action = 'failed';
RESET ROLE;
-- (the analyst's run passed over every metric, up to now)
SELECT metric, closed_as_of > '2026-04-01' AS ran_up_to_now FROM pipeline.close_runs ORDER BY 1;
DROP OWNED BY regress_analyst;
DROP ROLE regress_analyst;

-- a failing check of severity 'block' holds days from freezing, until the
-- check passes or the owner releases the day (on the record)
SELECT accepted FROM pipeline.ingest('orders',
  '[{"order_id": 600, "event_time": "2026-03-20T12:00:00Z", "user_id": "u1", "platform": "web", "amount": 2},
    {"order_id": 601, "event_time": "2026-03-20T12:00:00Z", "user_id": null, "platform": "web", "amount": 2}]'::jsonb);
SELECT pipeline.add_check('no_rejects', 'validity', 'orders', '{"window": "100 years", "max_reject_rate": 0}', 'block');
SELECT check_name, status FROM pipeline.run_checks();
SELECT * FROM pipeline.close_days('2026-03-22 12:00:00+00') WHERE day = '2026-03-20';
SELECT day, platform, orders, status FROM metrics.sales_daily WHERE day = '2026-03-20';
SELECT status FROM pipeline.day_closures WHERE metric = 'sales' AND day = '2026-03-20';
SELECT pipeline.release_day('sales', '2026-03-21', 'not held');
SELECT pipeline.release_day('sales', '2026-03-20', 'one known bad event; finance needs the day');
SELECT released_by = current_user AS by_me, reason, held_by FROM pipeline.day_releases;
SELECT * FROM pipeline.close_days('2026-03-22 12:00:00+00') WHERE day = '2026-03-20';
SELECT day, platform, orders, status FROM metrics.sales_daily WHERE day = '2026-03-20';
SELECT pipeline.drop_check('no_rejects');

-- dropping the metric drops its daily layer, frozen or not
SELECT pipeline.drop_metric('sales');
SELECT count(*) AS daily_objects_left FROM pg_class
 WHERE relname LIKE 'sales\_%' AND relnamespace IN ('pipeline'::regnamespace, 'metrics'::regnamespace);
SELECT count(*) AS closures_left FROM pipeline.day_closures WHERE metric = 'sales';
-- and the value index no metric needs any more
SELECT indexrelid::regclass AS index FROM pg_index WHERE indrelid = 'pipeline.orders_raw_20260308'::regclass;

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
