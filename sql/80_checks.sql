-- Data quality and explanations: the lateness sketch (accuracy against
-- percentile_cont, merges, parallel plans, pipeline.source_lateness); checks
-- of every kind passing on good data and failing on data broken for them;
-- validation errors; the alerts view and the results history; explain()
-- adding up to the daily value.  (NOTIFY pipeline_alerts is
-- test/t/060_alerts.pl: psql prints the sender's pid.)
-- (PL/pgSQL CONTEXT lines carry line numbers: not part of the contract)
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
SET DateStyle = ISO;
SET IntervalStyle = postgres;

-- ===================================================================
-- The lateness sketch
-- ===================================================================

-- no values: NULL, like percentile_cont; the empty sketch can be written
SELECT pipeline.lateness_sketch(v) IS NULL AS no_rows FROM (SELECT NULL::interval WHERE false) AS t(v);
SELECT pipeline.lateness_sketch(v) IS NULL AS only_nulls FROM (VALUES (NULL::interval), (NULL)) AS t(v);
SELECT pipeline.lateness_merge(s) IS NULL AS merge_of_nothing FROM (VALUES (NULL::pipeline.lateness_sketch)) AS t(s);
SELECT pipeline.lateness_count('\x0100') AS empty_count, pipeline.lateness_quantile('\x0100', 0.5) IS NULL AS empty_quantile;

-- the ends are exact, the rest within 1%; NULLs are skipped; negative
-- values (events stamped after their arrival), zeros and days are values too
SELECT pipeline.lateness_count(s) AS n, pipeline.lateness_quantile(s, 0) AS p0,
       pipeline.lateness_quantile(s, 0.5) AS p50, pipeline.lateness_quantile(s, 1) AS p100
  FROM (SELECT pipeline.lateness_sketch(v) AS s
          FROM (VALUES (interval '1 second'), ('2 seconds'), ('3 seconds'), (NULL), ('1 hour')) AS t(v)) AS x;
SELECT pipeline.lateness_quantile(s, 0) AS p0, pipeline.lateness_quantile(s, 0.25) AS p25,
       pipeline.lateness_quantile(s, 0.5) AS p50, pipeline.lateness_quantile(s, 1) AS p100
  FROM (SELECT pipeline.lateness_sketch(v) AS s
          FROM (VALUES (interval '-5 minutes'), ('0'), ('0'), ('3 days 04:00:00'), ('1 mon')) AS t(v)) AS x;
-- the binary form is part of format version 1: this sketch must not change
SELECT pipeline.lateness_sketch(g * interval '1 ms') FROM generate_series(1, 3) AS g;
SELECT pipeline.lateness_quantile(s, q) AS quantile
  FROM (SELECT pipeline.lateness_sketch(g * interval '1 ms') AS s FROM generate_series(1, 3) AS g) AS x,
       unnest(ARRAY[0, 0.25, 0.5, 0.75, 1]) AS q;
SELECT pipeline.lateness_quantile('\x0100', 1.5);
SELECT pipeline.lateness_quantile('\x0100', 'NaN');
SELECT pipeline.lateness_sketch(interval '300000 years');

-- accuracy: within 1% of percentile_cont (and to the microsecond), at every
-- quantile, for six shapes of data: uniform over an hour, a long tail
-- (exponential, mean 5 minutes), minutes to days, microseconds, values
-- of both signs, and half zeros
CREATE TABLE lateness_data (dist text, v interval);
CREATE FUNCTION pg_temp.u(g int, salt int) RETURNS float8 LANGUAGE sql IMMUTABLE
    RETURN ((hashint8(g::bigint * 7919 + salt) & 2147483647)::float8 + 1) / 2147483649.0;
INSERT INTO lateness_data
SELECT 'uniform_hour', pg_temp.u(g, 1) * interval '1 hour' FROM generate_series(1, 50000) AS g
UNION ALL
SELECT 'exponential', -ln(pg_temp.u(g, 2)) * interval '5 minutes' FROM generate_series(1, 50000) AS g
UNION ALL
SELECT 'minutes_to_days', exp(ln(60) + pg_temp.u(g, 3) * (ln(604800) - ln(60))) * interval '1 second' FROM generate_series(1, 50000) AS g
UNION ALL
SELECT 'microseconds', (1 + (pg_temp.u(g, 4) * 5000)::int) * interval '1 microsecond' FROM generate_series(1, 20000) AS g
UNION ALL
SELECT 'both_signs', (pg_temp.u(g, 5) * 2 - 0.6) * interval '1 hour' FROM generate_series(1, 50000) AS g
UNION ALL
SELECT 'half_zeros', CASE WHEN g % 2 = 0 THEN interval '0' ELSE pg_temp.u(g, 6) * interval '10 minutes' END
  FROM generate_series(1, 20000) AS g;
WITH qs AS (SELECT unnest(ARRAY[0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1]) AS q),
     per_dist AS (
       SELECT d.dist, pipeline.lateness_sketch(d.v) AS s,
              percentile_cont((SELECT array_agg(q ORDER BY q) FROM qs)) WITHIN GROUP (ORDER BY d.v) AS exact,
              (SELECT array_agg(q ORDER BY q) FROM qs) AS qv
         FROM lateness_data AS d GROUP BY d.dist),
     cmp AS (
       SELECT p.dist, u.q, extract(epoch FROM pipeline.lateness_quantile(p.s, u.q)) AS est,
              extract(epoch FROM u.exact) AS exact
         FROM per_dist AS p, unnest(p.qv, p.exact) AS u(q, exact))
SELECT dist, count(*) AS quantiles,
       bool_and(abs(est - exact) <= 0.01 * abs(exact) + 0.000001) AS within_1pct,
       max(abs(est - exact) / NULLIF(abs(exact), 0)) > 0.001 AS not_exact
  FROM cmp GROUP BY dist ORDER BY dist;

-- merging is adding counts: the merge of per-part sketches is, byte for
-- byte, the sketch of all the values, in any order of parts or rows
CREATE TABLE lateness_parts AS
SELECT dist, part, pipeline.lateness_sketch(v) AS s
  FROM (SELECT dist, v, row_number() OVER (PARTITION BY dist ORDER BY v) % 7 AS part FROM lateness_data) AS t
 GROUP BY dist, part;
SELECT p.dist, count(*) AS parts,
       pipeline.lateness_merge(p.s ORDER BY p.part)::text
         = (SELECT pipeline.lateness_sketch(d.v)::text FROM lateness_data AS d WHERE d.dist = p.dist) AS merge_is_sketch_of_union,
       pipeline.lateness_merge(p.s ORDER BY p.part)::text = pipeline.lateness_merge(p.s ORDER BY p.part DESC)::text
         AS order_independent,
       pipeline.lateness_count(pipeline.lateness_merge(p.s)) = (SELECT count(*) FROM lateness_data AS d WHERE d.dist = p.dist)
         AS counts_add_up
  FROM lateness_parts AS p GROUP BY p.dist ORDER BY p.dist;
SELECT (SELECT pipeline.lateness_sketch(v ORDER BY v) FROM lateness_data)::text
     = (SELECT pipeline.lateness_sketch(v ORDER BY md5(v::text)) FROM lateness_data)::text AS row_order_independent;

-- text and binary forms
SELECT dist, s::text::pipeline.lateness_sketch::text = s::text AS text_round_trip,
       pipeline._lateness_sketch_send(s) = s::text::bytea AS send_is_binary_form
  FROM lateness_parts WHERE part = 0 ORDER BY dist;
-- malformed sketches are refused with the reason
SELECT 'abc'::pipeline.lateness_sketch;
SELECT '\x'::pipeline.lateness_sketch;
SELECT '\x02'::pipeline.lateness_sketch;
SELECT '\x0101'::pipeline.lateness_sketch;
SELECT '\x010000'::pipeline.lateness_sketch;
SELECT '\x018000'::pipeline.lateness_sketch;
-- (one value, 1 microsecond, is \x010100020200010001: version 1, 1 value,
-- no zeros, min and max 1 (zigzag 2), no negative buckets, 1 positive
-- bucket from index 0 holding 1)
SELECT pipeline.lateness_sketch(interval '1 microsecond')::text = '\x010100020200010001' AS one_microsecond;
SELECT '\x0101000202000100'::pipeline.lateness_sketch;
SELECT '\x01010002020001000100'::pipeline.lateness_sketch;
SELECT '\x01010002020002000100'::pipeline.lateness_sketch;
SELECT '\x010200020200010001'::pipeline.lateness_sketch;
SELECT '\x010100040400010001'::pipeline.lateness_sketch;
SELECT '\x010100040200010001'::pipeline.lateness_sketch;
SELECT '\x01010002020001991101'::pipeline.lateness_sketch;

-- parallel aggregation: partial states serialized in the workers, combined
-- in the leader, give the serial result
CREATE TABLE lateness_big AS
SELECT g AS id, g % 50 AS grp, pg_temp.u(g, 7) * interval '2 hours' AS v FROM generate_series(1, 300000) AS g;
ANALYZE lateness_big;
SET max_parallel_workers_per_gather = 0;
SELECT md5(pipeline.lateness_sketch(v)::text) AS serial_all FROM lateness_big \gset
SELECT md5(string_agg(grp || ':' || s::text, ',' ORDER BY grp)) AS serial_groups
  FROM (SELECT grp, pipeline.lateness_sketch(v) FROM lateness_big GROUP BY grp) AS t(grp, s) \gset
CREATE TABLE lateness_big_parts AS SELECT id % 1000 AS part, pipeline.lateness_sketch(v) AS s FROM lateness_big GROUP BY 1;
ANALYZE lateness_big_parts;
SELECT md5(pipeline.lateness_merge(s)::text) AS serial_merge FROM lateness_big_parts \gset
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT pipeline.lateness_sketch(v) FROM lateness_big;
SELECT md5(pipeline.lateness_sketch(v)::text) = :'serial_all' AS all_same_as_serial FROM lateness_big;
EXPLAIN (COSTS OFF) SELECT grp, pipeline.lateness_sketch(v) FROM lateness_big GROUP BY grp;
SELECT md5(string_agg(grp || ':' || s::text, ',' ORDER BY grp)) = :'serial_groups' AS groups_same_as_serial
  FROM (SELECT grp, pipeline.lateness_sketch(v) FROM lateness_big GROUP BY grp) AS t(grp, s);
EXPLAIN (COSTS OFF) SELECT pipeline.lateness_merge(s) FROM lateness_big_parts;
SELECT md5(pipeline.lateness_merge(s)::text) = :'serial_merge' AS merge_same_as_serial FROM lateness_big_parts;
-- the workers did run: the leader only gathered
CREATE FUNCTION pg_temp.workers_launched(query text) RETURNS int LANGUAGE plpgsql AS $fn$
DECLARE
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || query INTO plan;
    RETURN (plan -> 0 -> 'Plan' -> 'Plans' -> 0 ->> 'Workers Launched')::int;
END
$fn$;
SELECT pg_temp.workers_launched('SELECT pipeline.lateness_sketch(v) FROM lateness_big') > 0 AS ran_in_workers;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET parallel_leader_participation;
DROP TABLE lateness_data, lateness_parts, lateness_big, lateness_big_parts;

-- ===================================================================
-- Sources, metrics and data for the checks
-- ===================================================================

SELECT pipeline.create_source('orders',
    $$order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text,
      platform text, amount numeric(12,2)$$,
    event_id => 'order_id', allowed_lateness => '2 hours', freeze_after => '24 hours');
SELECT pipeline.create_metric('sales', 'orders', '{platform}',
    'count(*) AS orders, sum(amount) AS revenue, min(amount) AS smallest, avg(amount) AS avg_amount,
     count(DISTINCT user_id) AS buyers', hot_retention => '100 years');
SELECT pipeline.create_metric('revenue_only', 'orders', measures => 'sum(amount) AS revenue',
    hot_retention => '100 years');
CREATE TABLE public.regress_users (id text PRIMARY KEY, name text);
INSERT INTO public.regress_users SELECT 'u' || g, 'user ' || g FROM generate_series(0, 6) AS g;

-- 100 orders between 10:00 and 11:00 on each of 2026-03-01, 03-07 and 03-08
-- (the same hour 7 days and 1 day before), users u0..u6, web and ios
-- (platform 'none' leaves it out)
CREATE FUNCTION pg_temp.orders(first int, start timestamptz, n int, platform text DEFAULT NULL, user_id text DEFAULT NULL)
    RETURNS jsonb LANGUAGE sql
    RETURN (SELECT jsonb_agg(jsonb_build_object(
               'order_id', first + i, 'event_time', start + i * interval '30 seconds',
               'user_id', COALESCE(user_id, 'u' || (i % 7)),
               'platform', CASE WHEN platform = 'none' THEN NULL
                                ELSE COALESCE(platform, (ARRAY['web', 'ios'])[1 + i % 2]) END,
               'amount', i))
              FROM generate_series(1, n) AS i);
SELECT accepted FROM pipeline.ingest('orders', pg_temp.orders(1000, '2026-03-08 10:00+00', 100));
SELECT accepted FROM pipeline.ingest('orders', pg_temp.orders(2000, '2026-03-07 10:00+00', 100));
SELECT accepted FROM pipeline.ingest('orders', pg_temp.orders(3000, '2026-03-01 10:00+00', 100));

-- ===================================================================
-- Checks on a window of event time: volume, not_null, accepted_values,
-- referential (the clock: as_of 2026-03-08 11:00)
-- ===================================================================

SELECT pipeline.add_check('orders_volume', 'volume', 'orders', '{"max_change": 0.2}');
SELECT pipeline.add_check('orders_platform_set', 'not_null', 'orders', '{"column": "platform"}', 'fail');
SELECT pipeline.add_check('orders_platforms', 'accepted_values', 'orders',
                          '{"column": "platform", "values": ["web", "ios"]}');
SELECT pipeline.add_check('orders_known_users', 'referential', 'orders',
                          '{"column": "user_id", "reference": "public.regress_users(id)", "max_missing_rate": 0.01}', 'block');
-- stored with every default filled in
SELECT check_name, kind, target, target_type, params, severity, owner = current_user::regrole AS mine
  FROM pipeline.checks ORDER BY check_name;

SELECT * FROM pipeline.run_checks('2026-03-08 11:00+00');
SELECT count(*) AS alerts FROM pipeline.alerts;

-- break each: 50 more orders in the hour (+50%), of which 5 without a
-- platform, 5 from android and 5 from users nobody knows
SELECT accepted FROM pipeline.ingest('orders', pg_temp.orders(1100, '2026-03-08 10:00+00', 35));
SELECT accepted FROM pipeline.ingest('orders', pg_temp.orders(1200, '2026-03-08 10:00+00', 5, platform => 'none'));
SELECT accepted FROM pipeline.ingest('orders', pg_temp.orders(1300, '2026-03-08 10:00+00', 5, platform => 'android'));
SELECT accepted FROM pipeline.ingest('orders', pg_temp.orders(1400, '2026-03-08 10:00+00', 5, user_id => 'ghost'));
SELECT * FROM pipeline.run_checks('2026-03-08 11:00+00');
-- alerts: failing now, since the first failing run; history keeps every run
SELECT * FROM pipeline.run_checks('2026-03-08 11:05+00') WHERE status = 'fail';
SELECT check_name, kind, target, severity, status, since, last_ran_at, observed, threshold FROM pipeline.alerts ORDER BY check_name;
SELECT check_name, run_no, ran_at, status, observed FROM pipeline.check_results ORDER BY check_name, run_no;
-- the block check on the source holds the metrics of that source
SELECT pipeline._blocking_checks('sales') AS blocking_sales;

-- fixed (the broken hour is later data: move the clock back a day) -> pass,
-- and the alert is gone
SELECT * FROM pipeline.run_checks('2026-03-07 11:00+00');
SELECT count(*) AS alerts FROM pipeline.alerts;
SELECT pipeline._blocking_checks('sales') AS blocking_sales;
-- a failure after a pass starts a new "since"
SELECT check_name, status FROM pipeline.run_checks('2026-03-08 12:00+00') ORDER BY 1;
SELECT check_name, since FROM pipeline.alerts ORDER BY 1;

-- a drop counts like a rise; a window without a baseline is skipped, and said so
SELECT check_name, status, observed, detail FROM pipeline.run_checks('2026-03-02 11:00+00') WHERE check_name = 'orders_volume';
-- a window with no events passes, and says so
SELECT check_name, status, observed, detail FROM pipeline.run_checks('2026-02-01 00:00+00') ORDER BY 1;

-- a reference table that goes away: the check fails with the reason, the others run
ALTER TABLE public.regress_users RENAME TO regress_users_gone;
SELECT check_name, status, detail FROM pipeline.run_checks('2026-03-07 11:00+00') ORDER BY 1;
ALTER TABLE public.regress_users_gone RENAME TO regress_users;

SELECT pipeline.drop_check('orders_volume');
SELECT pipeline.drop_check('orders_platform_set');
SELECT pipeline.drop_check('orders_platforms');
SELECT pipeline.drop_check('orders_known_users');
SELECT count(*) AS results_left FROM pipeline.check_results;

-- ===================================================================
-- Checks of the daily layer: completeness and digest
-- ===================================================================

-- close 03-01 and 03-07 (frozen) and 03-08 (provisional); fold the hot layer
SELECT metric, day, action FROM pipeline.close_days('2026-03-09 03:00+00') ORDER BY 1, 2;
SELECT pipeline.run_hot() AS folded;
SELECT pipeline.add_check('sales_complete', 'completeness', 'sales');
SELECT pipeline.add_check('revenue_complete', 'completeness', 'revenue_only', '{"tolerance": 0, "days": 2}');
SELECT pipeline.add_check('sales_digest', 'digest', 'sales', '{}', 'block');
SELECT * FROM pipeline.run_checks('2026-03-09 03:00+00') ORDER BY 1;

-- an event in raw that no batch accepted: receipts, frozen, hot all disagree
INSERT INTO pipeline.orders_raw (order_id, event_time, user_id, platform, amount, _pl_batch)
    VALUES (9999, '2026-03-07 10:30:00+00', 'u1', 'web', 1, 424242);
SELECT * FROM pipeline.run_checks('2026-03-09 03:00+00') ORDER BY 1;
DELETE FROM pipeline.orders_raw WHERE order_id = 9999;
-- events accepted but not folded, or not corrected yet, are in flight, not missing
SELECT accepted FROM pipeline.ingest('orders', pg_temp.orders(2100, '2026-03-07 10:00+00', 3));
SELECT check_name, status, observed FROM pipeline.run_checks('2026-03-09 03:00+00') ORDER BY 1;
SELECT metric, day, action FROM pipeline.close_days('2026-03-09 03:00+00') WHERE action = 'corrected' ORDER BY 1, 2;
SELECT pipeline.run_hot() AS folded;
SELECT check_name, status, observed FROM pipeline.run_checks('2026-03-09 03:00+00') ORDER BY 1;
-- a frozen row changed behind the digest's back
SET pipeline.restating = on;
UPDATE pipeline.sales_daily SET revenue = revenue + 1 WHERE day = '2026-03-07' AND platform = 'web';
RESET pipeline.restating;
SELECT * FROM pipeline.run_checks('2026-03-09 03:00+00') WHERE check_name = 'sales_digest';
SELECT pipeline._blocking_checks('sales') AS blocking_sales, pipeline._blocking_checks('revenue_only') AS blocking_revenue_only;
SET pipeline.restating = on;
UPDATE pipeline.sales_daily SET revenue = revenue - 1 WHERE day = '2026-03-07' AND platform = 'web';
RESET pipeline.restating;
SELECT check_name, status, detail FROM pipeline.run_checks('2026-03-09 03:00+00') WHERE check_name = 'sales_digest';

-- ===================================================================
-- Checks on arrival: validity and freshness (the clock: now)
-- ===================================================================

SELECT pipeline.add_check('orders_valid', 'validity', 'orders', '{"max_reject_rate": 0.001}');
SELECT pipeline.add_check('orders_fresh', 'freshness', 'orders', '{"max_lag": "10 minutes"}');
SELECT pipeline.add_check('orders_watermark', 'freshness', 'orders', '{"max_lag": "3 hours", "basis": "watermark"}');
SELECT pipeline.add_check('sales_fresh', 'freshness', 'sales', '{"max_lag": "10 minutes"}');
SELECT check_name, target_type, params FROM pipeline.checks WHERE kind IN ('validity', 'freshness') ORDER BY 1;
-- everything so far was accepted, received just now, and folded
SELECT check_name, status, observed < 5 AS observed_small
  FROM pipeline.run_checks() WHERE check_name IN ('orders_valid', 'orders_fresh', 'sales_fresh') ORDER BY 1;
-- an hour without batches: the source is late, the metric has nothing to fold;
-- the watermark is months old
SELECT check_name, status, observed BETWEEN 3600 AND 3700 AS about_an_hour, observed = 0 AS nothing_waits
  FROM pipeline.run_checks(now() + interval '1 hour') WHERE check_name IN ('orders_fresh', 'sales_fresh') ORDER BY 1;
SELECT check_name, status, threshold FROM pipeline.run_checks() WHERE check_name = 'orders_watermark';
-- a batch with 2 rejects in 12 (of 365 events received in the hour), not folded yet
SELECT received, accepted, rejected FROM pipeline.ingest('orders', pg_temp.orders(5000, now() - interval '2 hours', 10)
    || '[{"order_id": "not a number", "event_time": "2026-03-08T10:00:00Z"}, {"order_id": 5999}]');
SELECT check_name, status, observed, threshold, detail
  FROM pipeline.run_checks() WHERE check_name = 'orders_valid';
SELECT check_name, status, observed < 5 AS observed_small, detail ~ '^10 events in 1 batches wait for the fold' AS says_what_waits
  FROM pipeline.run_checks() WHERE check_name = 'sales_fresh';
SELECT check_name, status FROM pipeline.run_checks(now() + interval '11 minutes') WHERE check_name = 'sales_fresh';
SELECT pipeline.run_hot() AS folded;
SELECT check_name, status, observed FROM pipeline.run_checks(now() + interval '11 minutes') WHERE check_name = 'sales_fresh';
SELECT pipeline.drop_check('orders_valid');
SELECT pipeline.drop_check('orders_fresh');
SELECT pipeline.drop_check('orders_watermark');
SELECT pipeline.drop_check('sales_fresh');

-- ===================================================================
-- Validation: every refusal says what is wrong and how to write it
-- ===================================================================

\set VERBOSITY default
SELECT pipeline.add_check('Bad Name', 'volume', 'orders', '{"max_change": 0.2}');
SELECT pipeline.add_check('c', 'uniqueness', 'orders');
SELECT pipeline.add_check('c', 'volume', 'orders', '{"max_change": 0.2}', 'critical');
SELECT pipeline.add_check('c', 'volume', NULL, '{"max_change": 0.2}');
SELECT pipeline.add_check('sales_digest', 'digest', 'sales');
SELECT pipeline.add_check('c', 'volume', 'nope', '{"max_change": 0.2}');
SELECT pipeline.add_check('c', 'completeness', 'orders');
SELECT pipeline.add_check('c', 'volume', 'sales', '{"max_change": 0.2}');
SELECT pipeline.add_check('c', 'volume', 'orders', '[0.2]');
SELECT pipeline.add_check('c', 'freshness', 'orders', '{"max_lags": "10 minutes"}');
SELECT pipeline.add_check('c', 'digest', 'sales', '{"days": 3}');
SELECT pipeline.add_check('c', 'freshness', 'orders');
SELECT pipeline.add_check('c', 'freshness', 'orders', '{"max_lag": "soon"}');
SELECT pipeline.add_check('c', 'freshness', 'orders', '{"max_lag": "-5 minutes"}');
SELECT pipeline.add_check('c', 'freshness', 'orders', '{"max_lag": 600}');
SELECT pipeline.add_check('c', 'freshness', 'orders', '{"max_lag": "10 minutes", "basis": "clock"}');
SELECT pipeline.add_check('c', 'freshness', 'sales', '{"max_lag": "10 minutes", "basis": "arrival"}');
SELECT pipeline.add_check('c', 'validity', 'orders', '{"max_reject_rate": 1.5}');
SELECT pipeline.add_check('c', 'validity', 'orders', '{"max_reject_rate": "1%"}');
SELECT pipeline.add_check('c', 'volume', 'orders', '{"max_change": -0.1}');
SELECT pipeline.add_check('c', 'completeness', 'sales', '{"tolerance": 0.5}');
SELECT pipeline.add_check('c', 'completeness', 'sales', '{"days": 0}');
SELECT pipeline.add_check('c', 'not_null', 'orders', '{"column": "nope"}');
SELECT pipeline.add_check('c', 'not_null', 'orders', '{"column": "_pl_batch"}');
SELECT pipeline.add_check('c', 'not_null', 'orders', '{"column": ""}');
SELECT pipeline.add_check('c', 'referential', 'orders', '{"column": "user_id", "reference": "regress_users(id)"}');
SELECT pipeline.add_check('c', 'referential', 'orders', '{"column": "user_id", "reference": "public.regress_users"}');
SELECT pipeline.add_check('c', 'referential', 'orders', '{"column": "user_id", "reference": "public.nope(id)"}');
SELECT pipeline.add_check('c', 'referential', 'orders', '{"column": "user_id", "reference": "public.regress_users(nope)"}');
SELECT pipeline.add_check('c', 'referential', 'orders', '{"column": "user_id", "reference": "public.regress_users(id); DROP TABLE x"}');
SELECT pipeline.add_check('c', 'referential', 'orders', '{"column": "order_id", "reference": "public.regress_users(id)"}');
SELECT pipeline.add_check('c', 'accepted_values', 'orders', '{"column": "platform", "values": []}');
SELECT pipeline.add_check('c', 'accepted_values', 'orders', '{"column": "platform", "values": ["web", null]}');
SELECT pipeline.add_check('c', 'accepted_values', 'orders', '{"column": "amount", "values": [1, "abc"]}');
-- a name that is both a source and a metric: say which
SELECT pipeline.create_metric('orders', 'orders', measures => 'count(*) AS n', hot_retention => '100 years');
SELECT pipeline.add_check('c', 'freshness', 'orders', '{"max_lag": "10 minutes"}');
SELECT pipeline.add_check('c', 'freshness', 'orders', '{"max_lag": "10 minutes", "target_type": "metric"}');
SELECT target_type, params FROM pipeline.checks WHERE check_name = 'c';
SELECT pipeline.drop_check('c');
SELECT pipeline.drop_metric('orders');
SELECT pipeline.drop_check('c');
-- accepted values are compared as the column's type: 1, 1.0 and "1.00" are one amount
SELECT pipeline.add_check('amounts', 'accepted_values', 'orders', '{"column": "amount", "values": [1, "2.0", 3.00]}');
SELECT status, observed FROM pipeline.run_checks('2026-03-01 10:02+00') WHERE check_name = 'amounts';
SELECT pipeline.drop_check('amounts');
\set VERBOSITY terse

-- ===================================================================
-- Ownership: a check runs with its owner's privileges, only its owner drops it
-- ===================================================================

CREATE ROLE regress_dq;
GRANT USAGE ON SCHEMA pipeline, metrics TO regress_dq;
SELECT current_user AS superuser \gset
SET ROLE regress_dq;
SELECT pipeline.add_check('theirs', 'not_null', 'orders', '{"column": "platform"}');
-- added while it could read the source, it runs as regress_dq once it cannot
RESET ROLE;
GRANT SELECT ON pipeline.orders_raw TO regress_dq;
SET ROLE regress_dq;
SELECT pipeline.add_check('theirs', 'not_null', 'orders', '{"column": "platform"}');
-- a check that holds days needs the target's owner
SELECT pipeline.add_check('hold_theirs', 'not_null', 'orders', '{"column": "platform"}', 'block');
RESET ROLE;
REVOKE SELECT ON pipeline.orders_raw FROM regress_dq;
SET ROLE regress_dq;
-- the catalogs are written through the API only
INSERT INTO pipeline.checks (check_name, kind, target, target_type, params, severity, owner)
    VALUES ('forged', 'not_null', 'orders', 'source', '{"column": "platform", "window": "1 day", "max_null_rate": 0}',
            'warn', 'regress_dq');
INSERT INTO pipeline.checks (check_name, kind, target, target_type, params, severity, owner)
    VALUES ('not_theirs', 'digest', 'sales', 'metric', '{}', 'warn', :'superuser');
SELECT * FROM pipeline.run_checks('2026-03-08 11:00+00');
SELECT pipeline.drop_check('sales_digest');
DELETE FROM pipeline.checks WHERE check_name = 'sales_digest';
INSERT INTO pipeline.check_results VALUES ('sales_digest', 100, now(), 'pass', 0, 0, 'forged');
RESET ROLE;
SELECT check_name, owner::text = current_user AS mine FROM pipeline.checks ORDER BY 1;
-- a superuser runs everyone's checks, each as its owner: no privileges lent
SELECT check_name, status, detail FROM pipeline.run_checks('2026-03-09 03:00+00') ORDER BY 1;
DROP OWNED BY regress_dq;
DROP ROLE regress_dq;
-- a check whose owner is gone fails, and a superuser may drop it
SELECT check_name, status, detail ~ '^the check could not run: its owner \(role \d+\) no longer exists$' AS owner_gone
  FROM pipeline.run_checks('2026-03-09 03:00+00') WHERE check_name = 'theirs';
SELECT pipeline.drop_check('theirs');

-- ===================================================================
-- explain(): how a daily number came to be
-- ===================================================================

-- 2026-03-08 freezes; then 2 late web orders and 1 android order are
-- corrected, and 1 more late web order awaits the next close
SELECT metric, day, action FROM pipeline.close_days('2026-03-10 00:00+00') WHERE metric = 'sales' ORDER BY 2;
SELECT accepted FROM pipeline.ingest('orders',
  '[{"order_id": 7001, "event_time": "2026-03-08T12:00:00Z", "user_id": "u1", "platform": "web", "amount": 0.5},
    {"order_id": 7002, "event_time": "2026-03-08T13:00:00Z", "user_id": "new", "platform": "web", "amount": 1000},
    {"order_id": 7003, "event_time": "2026-03-08T13:00:00Z", "user_id": "new", "platform": "android", "amount": 3}]');
SELECT metric, day, action FROM pipeline.close_days('2026-03-10 00:00+00') WHERE metric = 'sales' ORDER BY 2;
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders',
  '[{"order_id": 7004, "event_time": "2026-03-08T14:00:00Z", "user_id": "u2", "platform": "web", "amount": 2},
    {"order_id": 7004, "event_time": "2026-03-08T14:00:00Z", "user_id": "u2", "platform": "web", "amount": 2},
    {"order_id": 7005, "event_time": "2026-03-08T14:00:00Z", "user_id": "u2", "platform": "web", "amount": "bad"}]');
-- (dead letters count by the time they arrived: this one as if it came that day)
UPDATE pipeline.dead_letters SET received_at = '2026-03-08 15:00+00' WHERE payload LIKE '%7005%';

SELECT pipeline.explain('sales', '2026-03-08', '{"platform": "web"}') AS e \gset
SELECT :'e'::jsonb - '{groups,batches,notes,computed_at,frozen_at}'::text[] AS summary;
SELECT jsonb_pretty((:'e'::jsonb -> 'groups' -> 0) - 'corrections') AS web;
SELECT jsonb_array_length(:'e'::jsonb -> 'groups' -> 0 -> 'corrections') AS web_corrections,
       (SELECT array_agg(x ORDER BY x) FROM jsonb_array_elements_text(:'e'::jsonb -> 'groups' -> 0 -> 'corrections' -> 0 -> 'batch_ids') AS x)
         AS corrected_by_batches;
SELECT (:'e'::jsonb -> 'batches') - 'list' AS batches, jsonb_array_length(:'e'::jsonb -> 'batches' -> 'list') AS listed;
SELECT jsonb_array_elements_text(:'e'::jsonb -> 'notes') AS notes;
-- the numbers add up to what the views say: daily + corrections = restated,
-- and restated + awaiting = everything in raw now
SELECT d.orders AS daily, r.orders AS restated,
       (SELECT count(*) FROM pipeline.orders_raw WHERE event_time >= '2026-03-08' AND event_time < '2026-03-09'
           AND platform = 'web') AS raw_now,
       (:'e'::jsonb #>> '{groups,0,measures,orders,daily}')::bigint = d.orders AS explain_daily_matches,
       (:'e'::jsonb #>> '{groups,0,measures,orders,restated}')::bigint = r.orders AS explain_restated_matches,
       (:'e'::jsonb #>> '{groups,0,measures,orders,daily}')::bigint
         + (:'e'::jsonb #>> '{groups,0,measures,orders,corrections}')::bigint = r.orders AS daily_plus_corrections_is_restated,
       r.orders + (:'e'::jsonb #>> '{groups,0,events,awaiting_correction}')::bigint
         = (:'e'::jsonb #>> '{groups,0,events,raw_now}')::bigint AS restated_plus_awaiting_is_raw
  FROM metrics.sales_daily AS d JOIN metrics.sales_restated AS r USING (day, platform)
 WHERE d.day = '2026-03-08' AND d.platform = 'web';
-- every group, every measure
SELECT g -> 'dimensions' AS dimensions, g #> '{measures,orders}' AS orders, g #> '{measures,buyers}' AS buyers,
       g #> '{measures,smallest,adds_up}' AS smallest_adds_up, g #> '{measures,avg_amount,adds_up}' AS avg_adds_up,
       g #> '{events,adds_up}' AS events_add_up
  FROM jsonb_array_elements(pipeline.explain('sales', '2026-03-08') -> 'groups') AS g ORDER BY 1;
SELECT pipeline.explain('sales', '2026-03-08') -> 'adds_up' AS all_add_up;
-- a metric without dimensions or count(*); a provisional day; an open day
SELECT g -> 'measures' AS measures, g -> 'events' AS events
  FROM jsonb_array_elements(pipeline.explain('revenue_only', '2026-03-08') -> 'groups') AS g;
SELECT e -> 'status' AS status, e -> 'adds_up' AS adds_up, jsonb_array_length(e -> 'groups') AS groups
  FROM pipeline.explain('sales', '2026-03-09') AS e;
SELECT e -> 'status' AS status, e -> 'groups' AS groups, e -> 'batches' AS batches
  FROM pipeline.explain('sales', '2027-01-01') AS e;
-- explain's refusals
\set VERBOSITY default
SELECT pipeline.explain('nope', '2026-03-08');
SELECT pipeline.explain('sales', NULL);
SELECT pipeline.explain('sales', '2026-03-08', '{"country": "fr"}');
SELECT pipeline.explain('revenue_only', '2026-03-08', '{"platform": "web"}');
SELECT pipeline.explain('sales', '2026-03-08', '{"platform": ["web"]}');
SELECT pipeline.explain('sales', '2026-03-08', '["web"]');
\set VERBOSITY terse
CREATE ROLE regress_dq_reader IN ROLE pipeline_reader;
SET ROLE regress_dq_reader;
SELECT pipeline.explain('sales', '2026-03-08');
RESET ROLE;
DROP ROLE regress_dq_reader;

-- ===================================================================
-- pipeline.source_lateness: arrival - event time over the last hour
-- ===================================================================

SELECT pipeline.create_source('taps', 'event_id bigint NOT NULL, event_time timestamptz NOT NULL');
SELECT accepted FROM pipeline.ingest('taps', (
    SELECT jsonb_agg(jsonb_build_object('event_id', g,
             'event_time', now() - (g % 600) * interval '1 second' - (g % 7) * interval '1 minute'))
      FROM generate_series(1, 5000) AS g));
SELECT source, events FROM pipeline.source_lateness WHERE source = 'taps';
SELECT l.events = e.n AS all_events,
       abs(extract(epoch FROM l.p50 - e.p[1])) <= 0.01 * extract(epoch FROM e.p[1]) + 0.000001 AS p50_within_1pct,
       abs(extract(epoch FROM l.p95 - e.p[2])) <= 0.01 * extract(epoch FROM e.p[2]) + 0.000001 AS p95_within_1pct,
       abs(extract(epoch FROM l.p99 - e.p[3])) <= 0.01 * extract(epoch FROM e.p[3]) + 0.000001 AS p99_within_1pct,
       pipeline.lateness_quantile(l.sketch, 1) = e.mx AS max_exact
  FROM pipeline.source_lateness AS l,
       (SELECT count(*) AS n, max(b.received_at - r.event_time) AS mx,
               percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY b.received_at - r.event_time) AS p
          FROM pipeline.taps_raw AS r JOIN pipeline.batches AS b ON b.batch_id = r._pl_batch) AS e
 WHERE l.source = 'taps';
-- a reader who may not read a source's raw table does not see it
CREATE ROLE regress_dq_reader IN ROLE pipeline_reader;
SET ROLE regress_dq_reader;
SELECT count(*) AS sources_seen FROM pipeline.source_lateness;
RESET ROLE;
DROP ROLE regress_dq_reader;

-- leave the database as it was found
DROP TABLE public.regress_users;
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
