-- pipeline.status, the monitoring surface: one row per source, metric and
-- pg_cron job (kind, name).  Source rows: throughput over 1/5/15 minutes,
-- accept/duplicate/reject rates, arrival lateness quantiles, watermark,
-- freshness.  Metric rows: the fold as before, days per status, corrections.
-- Every row: the worker.  A filter on one kind plans the others away.
-- (pg_cron's jobs need a second database: test/t/030_schedule.pl.)
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
SET DateStyle = ISO;
SET IntervalStyle = postgres;

-- the columns, in order: what dashboards select
SELECT ordinal_position AS n, column_name, data_type
  FROM information_schema.columns
 WHERE table_schema = 'pipeline' AND table_name = 'status' ORDER BY 1;

SELECT pipeline.create_source('taps',
    $$tap_id bigint NOT NULL, event_time timestamptz NOT NULL, screen text NOT NULL, ms integer CHECK (ms >= 0)$$,
    event_id => 'tap_id', allowed_lateness => '1 hour');
SELECT pipeline.create_source('bulk',
    $$id bigint NOT NULL, event_time timestamptz NOT NULL$$, event_id => 'id');
SELECT pipeline.create_metric('screens', 'taps', '{screen}', 'count(*) AS taps', hot_retention => '100 years');

-- nothing received yet: zero rates, no lateness, no watermark, no freshness
SELECT kind, name, metric, source, last_batch_at, lag_seconds, watermark, events_per_s_1m, events_per_s_5m,
       events_per_s_15m, received_15m, accept_rate_15m, duplicate_rate_15m, reject_rate_15m,
       lateness_events, lateness_p50, lateness_p95, lateness_p99
  FROM pipeline.status WHERE kind = 'source' ORDER BY name;
SELECT kind, name, metric, source, events_folded, backlog, lag_seconds, watermark, failures,
       days_open, days_provisional, days_held, days_frozen, corrections_7d, late_events_7d
  FROM pipeline.status WHERE kind = 'metric';

-- 100 taps: 97 of them 10 minutes late, 3 of them 2 hours late (event times
-- relative to the batch's arrival, now() of the ingest)
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('taps', (
    SELECT jsonb_agg(jsonb_build_object(
        'tap_id', i,
        'event_time', now() - CASE WHEN i <= 97 THEN interval '10 minutes' ELSE interval '2 hours' END,
        'screen', (ARRAY['home', 'cart'])[1 + i % 2], 'ms', i))
      FROM generate_series(1, 100) AS i));
-- a retry: 5 duplicates, 3 rejects (negative ms, no screen, not an object), 2 new ones 10 minutes late
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('taps', (
    SELECT jsonb_agg(jsonb_build_object('tap_id', i, 'event_time', now() - interval '10 minutes',
                                        'screen', 'home', 'ms', 1))
      FROM generate_series(1, 5) AS i)
    || jsonb_build_array(
         jsonb_build_object('tap_id', 200, 'event_time', now(), 'screen', 'home', 'ms', -1),
         jsonb_build_object('tap_id', 201, 'event_time', now(), 'ms', 1),
         '"not an event"'::jsonb,
         jsonb_build_object('tap_id', 101, 'event_time', now() - interval '10 minutes', 'screen', 'cart', 'ms', 1),
         jsonb_build_object('tap_id', 102, 'event_time', now() - interval '10 minutes', 'screen', 'cart', 'ms', 1)));

-- 110 received in the last minute: 110/60, 110/300, 110/900 per second;
-- 102 accepted, 5 duplicates, 3 rejected of 110
SELECT name, events_per_s_1m, events_per_s_5m, events_per_s_15m, received_15m,
       accept_rate_15m, duplicate_rate_15m, reject_rate_15m
  FROM pipeline.status WHERE kind = 'source' ORDER BY name;
-- lateness of the 102 accepted: p50 and p95 10 minutes, p99 2 hours (the
-- sketch is within 1%); watermark = newest event time - 1 hour; fresh
SELECT name, lateness_events,
       lateness_p50 BETWEEN interval '9 min 54 s' AND interval '10 min 6 s' AS p50_10_minutes,
       lateness_p95 BETWEEN interval '9 min 54 s' AND interval '10 min 6 s' AS p95_10_minutes,
       lateness_p99 BETWEEN interval '1 h 58 min 48 s' AND interval '2 h 1 min 12 s' AS p99_2_hours,
       watermark BETWEEN now() - interval '1 hour 11 minutes' AND now() - interval '1 hour 10 minutes' AS watermark_ok,
       last_batch_at <= now() AND last_batch_at > now() - interval '1 minute' AS last_batch_recent,
       lag_seconds BETWEEN 0 AND 60 AS lag_small
  FROM pipeline.status WHERE kind = 'source' AND name = 'taps';

-- the metric: backlog until the fold, then folded (the old columns, as before)
SELECT name, metric, source, events_folded, backlog, failures, last_error FROM pipeline.status WHERE metric = 'screens';
SELECT pipeline.run_hot('screens');
SELECT name, events_folded, backlog, lag_seconds, last_fold_at IS NOT NULL AS folded, last_fold_ms >= 0 AS timed,
       watermark BETWEEN now() - interval '1 hour 11 minutes' AND now() - interval '1 hour 10 minutes' AS watermark_ok
  FROM pipeline.status WHERE metric = 'screens';
-- the checks tests and dashboards run over the whole view still work
SELECT bool_and(backlog = 0 OR failures > 0) AS all_folded FROM pipeline.status;
-- every row carries the database worker's state (read twice, by the view
-- and by the join, so first wait for the worker the launcher started when
-- CREATE EXTENSION committed: one that is still starting can change state
-- between the two reads; wait_for_worker() is 00_install's)
CALL public.wait_for_worker();
SELECT count(*) AS rows, bool_and(s.worker_state IS NOT DISTINCT FROM w.state) AS worker_on_every_row
  FROM pipeline.status AS s
  LEFT JOIN pipeline.workers AS w ON w.kind = 'worker' AND w.database = current_database();

-- the windows: receipts 3 and 20 minutes old count in 5/15 and in none
SELECT pipeline.create_source('clicks', $$id bigint NOT NULL, event_time timestamptz NOT NULL$$, event_id => 'id');
SELECT batch_id AS b3 FROM pipeline.ingest('clicks', '[{"id": 1, "event_time": "2026-01-01T00:00:00Z"},
    {"id": 2, "event_time": "2026-01-01T00:00:00Z"}, {"id": 3, "event_time": "2026-01-01T00:00:00Z"}]') \gset
SELECT batch_id AS b20 FROM pipeline.ingest('clicks', '[{"id": 4, "event_time": "2026-01-01T00:00:00Z"},
    {"id": 5, "event_time": "2026-01-01T00:00:00Z"}, {"id": 6, "event_time": "2026-01-01T00:00:00Z"},
    {"id": 7, "event_time": "2026-01-01T00:00:00Z"}, {"id": 8, "event_time": "2026-01-01T00:00:00Z"},
    {"id": 9, "event_time": "2026-01-01T00:00:00Z"}]') \gset
UPDATE pipeline.batch_log SET received_at = now() - interval '3 minutes' WHERE batch_id = :b3;
UPDATE pipeline.batch_log SET received_at = now() - interval '20 minutes' WHERE batch_id = :b20;
SELECT name, events_per_s_1m, events_per_s_5m, events_per_s_15m, received_15m, accept_rate_15m,
       lateness_events, watermark, lag_seconds BETWEEN 180 AND 240 AS last_batch_3_minutes_ago
  FROM pipeline.status WHERE kind = 'source' AND name = 'clicks';

-- lateness reads at most the newest 10 000 events
SELECT accepted FROM pipeline.ingest('bulk', (
    SELECT jsonb_agg(jsonb_build_object('id', i, 'event_time', now() - interval '1 minute'))
      FROM generate_series(1, 12000) AS i));
SELECT name, received_15m, lateness_events,
       lateness_p99 BETWEEN interval '59.4 s' AND interval '60.6 s' AS p99_1_minute
  FROM pipeline.status WHERE kind = 'source' AND name = 'bulk';

-- days per status and corrections, driven by as_of: 2026-03-01 frozen and
-- corrected, 03-02 held by a failing blocking check, 03-03 provisional,
-- 03-04 open
SELECT pipeline.create_source('orders',
    $$order_id bigint NOT NULL, event_time timestamptz NOT NULL, amount numeric NOT NULL$$,
    event_id => 'order_id', allowed_lateness => '1 hour', freeze_after => '24 hours');
SELECT pipeline.create_metric('sales', 'orders', measures => 'count(*) AS orders, sum(amount) AS revenue');
SELECT accepted FROM pipeline.ingest('orders', '[
    {"order_id": 1, "event_time": "2026-03-01T10:00:00Z", "amount": 1},
    {"order_id": 2, "event_time": "2026-03-02T10:00:00Z", "amount": 2},
    {"order_id": 3, "event_time": "2026-03-03T10:00:00Z", "amount": 3},
    {"order_id": 4, "event_time": "2026-03-04T10:00:00Z", "amount": 4}]');
SELECT name, days_open, days_provisional, days_held, days_frozen, corrections_7d, late_events_7d
  FROM pipeline.status WHERE metric = 'sales';
SELECT * FROM pipeline.close_days('2026-03-03 02:00:00+00') WHERE metric = 'sales' ORDER BY day;
SELECT name, days_open, days_provisional, days_held, days_frozen, corrections_7d, late_events_7d
  FROM pipeline.status WHERE metric = 'sales';
SELECT rejected FROM pipeline.ingest('orders', '[{"order_id": 9, "event_time": "2026-03-02T11:00:00Z"}]');
SELECT pipeline.add_check('orders_valid', 'validity', 'orders', '{"window": "100 years", "max_reject_rate": 0}', 'block');
SELECT check_name, status FROM pipeline.run_checks();
-- two late orders for the frozen day: one correction row, two late events
SELECT accepted FROM pipeline.ingest('orders', '[
    {"order_id": 10, "event_time": "2026-03-01T11:00:00Z", "amount": 10},
    {"order_id": 11, "event_time": "2026-03-01T12:00:00Z", "amount": 11}]');
SELECT * FROM pipeline.close_days('2026-03-04 02:00:00+00') WHERE metric = 'sales' ORDER BY day;
SELECT name, days_open, days_provisional, days_held, days_frozen, corrections_7d, late_events_7d
  FROM pipeline.status WHERE metric = 'sales';
SELECT day, status FROM pipeline.day_closures WHERE metric = 'sales' ORDER BY day;

-- a filter on one kind plans the others away: WHERE metric = ... reads no
-- receipts window and never connects to pg_cron's database
CREATE FUNCTION pg_temp.plan_mentions(query text, what text) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || query LOOP
        IF strpos(line, what) > 0 THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$$;
SELECT pg_temp.plan_mentions($$SELECT backlog FROM pipeline.status WHERE metric = 'sales'$$, '_status_jobs') AS metric_reads_jobs,
       pg_temp.plan_mentions($$SELECT backlog FROM pipeline.status WHERE metric = 'sales'$$, '_recent_lateness') AS metric_reads_lateness,
       pg_temp.plan_mentions($$SELECT * FROM pipeline.status WHERE kind = 'source'$$, '_status_jobs') AS source_reads_jobs,
       pg_temp.plan_mentions($$SELECT * FROM pipeline.status WHERE kind = 'source'$$, 'batch_log_source_received') AS source_uses_index,
       pg_temp.plan_mentions($$SELECT * FROM pipeline.status WHERE kind = 'job'$$, '_status_jobs') AS job_reads_jobs,
       pg_temp.plan_mentions($$SELECT * FROM pipeline.status WHERE kind = 'job'$$, 'metric_catalog') AS job_reads_metrics;

-- no jobs scheduled for this database: no job rows, and no error row
-- either (pg_cron is loaded; whether it is installed in its database or
-- not, nothing of this database is there)
SELECT count(*) AS job_rows FROM pipeline.status WHERE kind = 'job';
SELECT count(*) AS jobs FROM pipeline.cron_jobs(missing_ok => true);

-- a reader sees every source and metric; lateness needs the raw table,
-- which readers may not read (NULL, not 0 events); corrections come
-- through the serving view
CREATE ROLE regress_dash;
GRANT pipeline_reader TO regress_dash;
SET ROLE regress_dash;
SELECT kind, name, received_15m, lateness_events, lateness_p50, days_frozen, corrections_7d, late_events_7d
  FROM pipeline.status WHERE kind <> 'job' ORDER BY kind, name;
RESET ROLE;
DROP ROLE regress_dash;

-- dropping a source or metric drops its rows
SELECT pipeline.drop_source('bulk');
SELECT kind, name FROM pipeline.status WHERE kind <> 'job' ORDER BY kind, name;

DROP EXTENSION pipeline CASCADE;
