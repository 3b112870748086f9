-- pipeline demo: run by test/demo.sh against a fresh database `demo`.
\pset footer off
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION pipeline CASCADE;
SET client_min_messages = notice;
SET TimeZone = 'UTC';

-- (the demo waits for the background worker with this, a condition with a deadline)
CREATE FUNCTION wait_for_worker() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..200 LOOP
        EXIT WHEN (SELECT bool_and(backlog = 0) FROM pipeline.status);
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;

-- The extension installs in any database; pg_cron stays in cron.database_name.
SELECT current_database(), current_setting('cron.database_name') AS cron_database;

-- Two sources with contracts: web/mobile interaction events, backend orders.
SELECT pipeline.create_source('app_events',
    $$event_id uuid NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL,
      platform text NOT NULL CHECK (platform IN ('web', 'ios', 'android')),
      name text NOT NULL, screen text$$,
    allowed_lateness => '6 hours');
SELECT pipeline.create_source('orders',
    $$order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL,
      platform text, amount numeric(12,2) NOT NULL CHECK (amount >= 0),
      currency text NOT NULL DEFAULT 'EUR'$$,
    event_id => 'order_id', allowed_lateness => '1 hour', day_timezone => 'Europe/Paris');
SELECT source, contract_version, event_id, allowed_lateness, day_timezone, raw_table FROM pipeline.sources;

-- Metrics: hot per-minute buckets, folded by the background worker.
SELECT pipeline.create_metric('app_activity', 'app_events', '{platform, name}',
    'count(*) AS interactions, count(DISTINCT user_id) AS users');
SELECT pipeline.create_metric('sales', 'orders', '{platform}',
    'count(*) AS orders, sum(amount) AS revenue, avg(amount) AS avg_order, count(DISTINCT user_id) AS buyers,
     count(*) FILTER (WHERE amount >= 50) AS big_orders,
     percentile_cont(0.9) WITHIN GROUP (ORDER BY amount) AS p90_amount',
    filter => 'currency = ''EUR''');

-- A mobile client sends a batch: some events hours late, one malformed, one
-- with a field the contract does not know yet.
SELECT * FROM pipeline.ingest('app_events', (
  SELECT jsonb_agg(jsonb_build_object(
           'event_id', md5('ev' || i)::uuid,
           'event_time', now() - (i % 90) * interval '1 minute' - CASE WHEN i % 20 = 0 THEN interval '3 hours' ELSE interval '0' END,
           'user_id', 'user-' || (i % 300),
           'platform', (ARRAY['web', 'ios', 'android'])[1 + i % 3],
           'name', (ARRAY['screen_view', 'tap', 'add_to_cart'])[1 + i % 3],
           'screen', 'home') || CASE WHEN i = 7 THEN '{"platform": "blackberry"}'::jsonb
                                     WHEN i = 8 THEN '{"ab_test": "B"}'::jsonb ELSE '{}'::jsonb END)
    FROM generate_series(1, 5000) AS i), batch_key => 'ios-device-42-batch-1');

-- The phone retries the same batch after a timeout: nothing is counted twice.
SELECT * FROM pipeline.ingest('app_events', '[]'::jsonb, batch_key => 'ios-device-42-batch-1');

-- The backend sends orders as NDJSON; one line is cut in half.
SELECT * FROM pipeline.ingest('orders',
  (SELECT string_agg(jsonb_build_object('order_id', i, 'event_time', now() - (i % 120) * interval '1 minute',
                      'user_id', 'user-' || (i % 300), 'platform', (ARRAY['web', 'ios', 'android'])[1 + i % 3],
                      'amount', 5 + (i % 40) * 2.5)::text, E'\n')
     FROM generate_series(1, 2000) AS i) || E'\n{"order_id": 99999, "event_time": "2026-');

-- A history load through the bulk path (COPY into orders_load).
COPY pipeline.orders_load (order_id, event_time, user_id, platform, amount) FROM STDIN (FORMAT csv);
100001,2026-11-20T09:15:00Z,user-1,web,19.90
100002,2026-11-20T09:16:00Z,user-2,ios,5.00
100003,2026-11-20T09:17:00Z,user-3,android,-3.00
1,2026-11-20T09:18:00Z,user-1,web,19.90
\.

-- Every event is accounted for: received = accepted + duplicates + rejected.
SELECT batch_id, source, batch_key, received, accepted, duplicates, rejected FROM pipeline.batches ORDER BY batch_id;
SELECT source, left(payload, 60) AS payload, error FROM pipeline.dead_letters ORDER BY id;
SELECT source, field, events FROM pipeline.contract_drift;

-- The worker folds new events into the hot tables within a second or so.
SELECT wait_for_worker();
SELECT metric, events_folded, backlog, lag_seconds, watermark, worker_state
  FROM pipeline.status WHERE kind = 'metric' ORDER BY metric;
-- Per source: events/s, accept/duplicate/reject rates, arrival lateness.
SELECT source, events_per_s_1m, events_per_s_15m, accept_rate_15m, duplicate_rate_15m, reject_rate_15m,
       date_trunc('second', lateness_p50) AS lateness_p50, date_trunc('second', lateness_p99) AS lateness_p99
  FROM pipeline.status WHERE kind = 'source' ORDER BY source;

-- What a dashboard reads: the last ten minutes of sales, per platform.
SELECT bucket, platform, orders, revenue, round(avg_order, 2) AS avg_order, buyers, settled
  FROM metrics.sales_live
 WHERE bucket > now() - interval '10 minutes' ORDER BY bucket DESC, platform LIMIT 9;

-- Big orders and the 90th percentile of amounts over the last hour, per
-- platform: a filtered count, and a percentile rolled up from minute sketches.
SELECT platform, sum(big_orders) AS big_orders,
       round(pipeline.quantile_value(pipeline.quantile_merge(p90_amount_sketch), 0.9)::numeric, 2) AS p90_amount
  FROM metrics.sales_live
 WHERE bucket > now() - interval '1 hour' GROUP BY platform ORDER BY platform;

-- Distinct users over the last hour, rolled up from minute sketches.
SELECT platform, pipeline.distinct_count(pipeline.distinct_merge(users_sketch)) AS users_last_hour
  FROM metrics.app_activity_live
 WHERE bucket > now() - interval '1 hour' GROUP BY platform ORDER BY platform;

-- A late event (an order from 50 minutes ago) corrects its bucket at the worker's next fold.
SELECT sum(orders) AS orders_50_min_ago FROM metrics.sales_live
 WHERE bucket = date_bin('1 minute', now() - interval '50 minutes', '2000-01-01');
SELECT accepted FROM pipeline.ingest('orders', jsonb_build_array(jsonb_build_object(
  'order_id', 777777, 'event_time', now() - interval '50 minutes', 'user_id', 'late-phone', 'amount', 42)));
SELECT wait_for_worker();
SELECT sum(orders) AS orders_50_min_ago FROM metrics.sales_live
 WHERE bucket = date_bin('1 minute', now() - interval '50 minutes', '2000-01-01');

-- The launcher and this database's worker.
SELECT kind, database, state, pid IS NOT NULL AS alive FROM pipeline.workers ORDER BY kind, database;

-- ---------------------------------------------------------------------
-- Finance's numbers: the frozen daily layer.
-- ---------------------------------------------------------------------
-- Yesterday's orders (Paris days), sent by the backend this morning.
SELECT accepted FROM pipeline.ingest('orders', (
  SELECT jsonb_agg(jsonb_build_object('order_id', 200000 + i,
           'event_time', date_trunc('day', now() AT TIME ZONE 'Europe/Paris') AT TIME ZONE 'Europe/Paris'
                         - interval '1 day' + i * interval '5 minutes',
           'user_id', 'user-' || (i % 120), 'platform', (ARRAY['web', 'ios', 'android'])[1 + i % 3],
           'amount', 10 + i % 30))
    FROM generate_series(0, 280) AS i));

-- Now: yesterday is over and past its allowed lateness (1 hour): provisional.
SELECT metric, day, action FROM pipeline.close_days() WHERE metric = 'sales' ORDER BY day;
SELECT day, platform, orders, revenue, buyers, status FROM metrics.sales_daily
 WHERE day = (now() AT TIME ZONE 'Europe/Paris')::date - 1 ORDER BY platform;

-- Tomorrow, 24 hours after its end, the day freezes (the demo simulates the
-- clock; only superusers may). The freeze is computed exactly from raw.
SELECT metric, day, action FROM pipeline.close_days(now() + interval '1 day')
 WHERE metric = 'sales' AND day = (now() AT TIME ZONE 'Europe/Paris')::date - 1;
SELECT day, status, version, events_frozen, pipeline.verify_day(metric, day) AS digest_ok
  FROM pipeline.day_closures WHERE metric = 'sales' AND day = (now() AT TIME ZONE 'Europe/Paris')::date - 1;

-- A phone comes back online with an order from yesterday: the frozen day does
-- not move; the order becomes a correction, attributed to its batch.
SELECT batch_id, accepted FROM pipeline.ingest('orders', jsonb_build_array(jsonb_build_object(
  'order_id', 300001, 'event_time', now() - interval '1 day', 'user_id', 'offline-phone',
  'platform', 'ios', 'amount', 99)));
SELECT metric, day, action FROM pipeline.close_days(now() + interval '1 day')
 WHERE metric = 'sales' AND day = (now() AT TIME ZONE 'Europe/Paris')::date - 1;
SELECT day, platform, orders_delta, revenue_delta, buyers_delta, batch_ids FROM metrics.sales_corrections;
SELECT day, platform, orders, revenue, buyers, corrected FROM metrics.sales_restated
 WHERE day = (now() AT TIME ZONE 'Europe/Paris')::date - 1 ORDER BY platform;

-- Why do dashboard and finance differ? The reconcile view says.
SELECT wait_for_worker();
SELECT day, platform, orders_live, orders_daily, orders_restated, events_late_after_freeze, status
  FROM metrics.sales_reconcile
 WHERE day = (now() AT TIME ZONE 'Europe/Paris')::date - 1 ORDER BY platform;

-- Why is yesterday's web number what it is? explain() adds it up.
SELECT pipeline.explain('sales', (now() AT TIME ZONE 'Europe/Paris')::date - 1, '{"platform": "web"}')
       - '{groups,batches,notes,computed_at,frozen_at}'::text[] AS explain_summary;

-- Data quality checks, run where the data is; the demo sent a malformed order
-- on purpose, so the validity check fails and shows in pipeline.alerts.
SELECT pipeline.add_check('orders_valid', 'validity', 'orders', '{"window": "1 hour", "max_reject_rate": 0.0001}');
SELECT pipeline.add_check('sales_complete', 'completeness', 'sales', '{"tolerance": 0}', 'block');
SELECT check_name, status, observed, threshold FROM pipeline.run_checks() ORDER BY 1;
SELECT check_name, severity, status, detail FROM pipeline.alerts ORDER BY 1;

-- Operations: pg_cron closes days and runs the checks every 5 minutes, maintenance hourly.
SELECT pipeline.schedule();
-- The days per status, and the jobs with their last runs, in the same view.
SELECT kind, name, days_open, days_provisional, days_held, days_frozen, corrections_7d,
       job_schedule, last_run_status, last_error
  FROM pipeline.status WHERE kind IN ('metric', 'job') ORDER BY kind, name;
