-- Metrics and the hot path: definitions checked by the parser, the hot
-- table equal to a hand-written GROUP BY, exactly-once folding, late
-- events, settled buckets, refusals.
-- (PL/pgSQL CONTEXT lines carry line numbers: not part of the contract)
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
SELECT pipeline.create_source('orders',
    $$order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL,
      platform text, amount numeric(12,2) CHECK (amount >= 0), qty integer$$,
    event_id => 'order_id', allowed_lateness => '30 minutes');
-- a second table to prove that expressions cannot reach outside the source
CREATE TABLE secrets (s text);

SELECT received, accepted FROM pipeline.ingest('orders', (
  SELECT jsonb_agg(jsonb_build_object(
           'order_id', i,
           'event_time', timestamptz '2026-03-01 10:00:00+00' + (i % 120) * interval '1 minute',
           'user_id', 'u' || (i % 37),
           'platform', (ARRAY['web', 'ios', 'android', NULL])[1 + i % 4],
           'amount', (i % 100) / 4.0,
           'qty', CASE WHEN i % 7 = 0 THEN NULL ELSE i % 5 END))
    FROM generate_series(1, 3000) AS i));

SELECT pipeline.create_metric('sales', 'orders',
    dimensions => '{platform}',
    measures => 'count(*) AS orders, count(qty) AS with_qty, sum(amount) AS revenue,
                 min(amount) AS smallest, max(amount * 2) AS biggest_double,
                 avg(qty) AS avg_qty, avg(amount) AS avg_amount,
                 sum(CASE WHEN platform = ''web'' THEN 1 ELSE 0 END) AS web_orders',
    bucket => '5 minutes',
    filter => 'amount > 0 OR platform IS NULL',
    hot_retention => '100 years');
SELECT metric, source, dimensions, bucket, filter, hot_table, live_view FROM pipeline.metrics;
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_schema = 'metrics' AND table_name = 'sales_live' ORDER BY ordinal_position;

-- nothing is folded until the fold runs
SELECT count(*) AS live_rows FROM metrics.sales_live;
SELECT backlog, events_folded FROM pipeline.status WHERE metric = 'sales';
SELECT pipeline.run_hot('sales') AS folded;
SELECT backlog, events_folded, lag_seconds, watermark FROM pipeline.status WHERE metric = 'sales';

-- hot equals a hand-written GROUP BY over the same events, exactly
CREATE VIEW hand AS
SELECT date_bin('5 minutes', event_time, '2000-01-01') AS bucket, platform,
       count(*) AS orders, count(qty) AS with_qty, sum(amount) AS revenue,
       min(amount) AS smallest, max(amount * 2) AS biggest_double,
       avg(qty) AS avg_qty, avg(amount) AS avg_amount,
       sum(CASE WHEN platform = 'web' THEN 1 ELSE 0 END) AS web_orders
  FROM pipeline.orders_raw WHERE amount > 0 OR platform IS NULL GROUP BY 1, 2;
CREATE FUNCTION hot_mismatches() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM hand h FULL JOIN metrics.sales_live l
      ON l.bucket = h.bucket AND l.platform IS NOT DISTINCT FROM h.platform
   WHERE (h.orders, h.with_qty, h.revenue, h.smallest, h.biggest_double, h.avg_qty, h.avg_amount, h.web_orders)
         IS DISTINCT FROM
         (l.orders, l.with_qty, l.revenue, l.smallest, l.biggest_double, l.avg_qty, l.avg_amount, l.web_orders)
$$;
SELECT hot_mismatches(), (SELECT count(*) FROM metrics.sales_live) AS live_rows;
SELECT * FROM metrics.sales_live WHERE bucket = '2026-03-01 10:00:00+00' ORDER BY platform;

-- re-ingesting the same events and folding again changes nothing
SELECT received, accepted, duplicates FROM pipeline.ingest('orders', (
  SELECT jsonb_agg(jsonb_build_object('order_id', i, 'event_time', timestamptz '2026-03-01 10:00:00+00',
                                      'user_id', 'x', 'amount', 1)) FROM generate_series(1, 3000) AS i));
SELECT pipeline.run_hot() AS folded, hot_mismatches();
SELECT pipeline.run_hot() AS folded_again;

-- late events update their bucket (the self-correcting dashboard)
SELECT orders FROM metrics.sales_live WHERE bucket = '2026-03-01 10:00:00+00' AND platform = 'ios';
SELECT accepted FROM pipeline.ingest('orders',
  '[{"order_id": 9001, "event_time": "2026-03-01T10:02:00Z", "user_id": "late", "platform": "ios", "amount": 5},
    {"order_id": 9002, "event_time": "2026-03-01T10:03:00Z", "user_id": "late", "platform": "ios", "amount": 7, "qty": 3}]'::jsonb);
SELECT pipeline.run_hot() AS folded;
SELECT orders, revenue FROM metrics.sales_live WHERE bucket = '2026-03-01 10:00:00+00' AND platform = 'ios';
SELECT hot_mismatches();

-- count(DISTINCT) is a mergeable sketch in hot: exact for small sets, and
-- the minute sketches roll up to any span with distinct_merge
SELECT pipeline.create_metric('buyers', 'orders', '{platform}',
    'count(DISTINCT user_id) AS buyers, count(*) AS orders', bucket => '1 minute',
    hot_retention => '100 years');
SELECT pipeline.run_hot('buyers') > 0 AS folded;
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_schema = 'metrics' AND table_name = 'buyers_live' ORDER BY ordinal_position;
-- its state is compressed with lz4 once it outgrows a page (a fold
-- rewrites it each time), the other columns as PostgreSQL's default
SELECT attname, attcompression FROM pg_attribute
 WHERE attrelid = 'pipeline.buyers_hot'::regclass AND attnum > 0 ORDER BY attnum;
SELECT count(*) AS minute_mismatches FROM (
    SELECT date_bin('1 minute', event_time, '2000-01-01') AS bucket, platform,
           count(DISTINCT user_id) AS buyers
      FROM pipeline.orders_raw GROUP BY 1, 2) AS exact
  FULL JOIN metrics.buyers_live AS l
    ON l.bucket = exact.bucket AND l.platform IS NOT DISTINCT FROM exact.platform
 WHERE l.buyers IS DISTINCT FROM exact.buyers;
-- distinct buyers over the hour from the minute buckets, per platform
SELECT l.platform, pipeline.distinct_count(pipeline.distinct_merge(l.buyers_sketch)) AS hour_buyers,
       (SELECT count(DISTINCT user_id) FROM pipeline.orders_raw AS r
         WHERE r.platform IS NOT DISTINCT FROM l.platform
           AND r.event_time >= '2026-03-01 10:00:00+00' AND r.event_time < '2026-03-01 11:00:00+00') AS exact
  FROM metrics.buyers_live AS l
 WHERE l.bucket >= '2026-03-01 10:00:00+00' AND l.bucket < '2026-03-01 11:00:00+00'
 GROUP BY l.platform ORDER BY l.platform;
SELECT pipeline.drop_metric('buyers');

-- settled: a bucket whose end the watermark (max event time - lateness) has passed
SELECT bucket, settled FROM metrics.sales_live
 WHERE platform = 'web' AND bucket >= '2026-03-01 11:20:00+00' ORDER BY bucket;

-- hot retention: buckets older than it are neither folded nor kept
SELECT pipeline.create_metric('recent', 'orders', measures => 'count(*) AS orders', hot_retention => '1 day');
SELECT accepted FROM pipeline.ingest('orders', jsonb_build_array(
  jsonb_build_object('order_id', 9100, 'event_time', now() - interval '1 hour', 'user_id', 'r', 'amount', 1)));
SELECT pipeline.run_hot('recent') AS folded;
SELECT sum(orders) AS recent_orders FROM metrics.recent_live;

-- refused definitions, each naming what was refused
SELECT pipeline.create_metric('bad', 'orders', measures => 'count(*) AS n, (SELECT count(*) FROM secrets) AS s');
SELECT pipeline.create_metric('bad', 'orders', measures => 'sum((SELECT 1)) AS s');
SELECT pipeline.create_metric('bad', 'orders', measures => 'sum(s) AS s');
SELECT pipeline.create_metric('bad', 'orders', measures => 'sum(secrets.s) AS s');
SELECT pipeline.create_metric('bad', 'orders', measures => 'sum(random()) AS s');
SELECT pipeline.create_metric('bad', 'orders', measures => 'max(now()) AS s');
SELECT pipeline.create_metric('bad', 'orders', measures => 'max(CURRENT_TIMESTAMP) AS s');
SELECT pipeline.create_metric('bad', 'orders', measures => 'count(pg_sleep(1)) AS s');
SELECT pipeline.create_metric('bad', 'orders', measures => 'sum(public.f(amount)) AS s');
SELECT pipeline.create_metric('bad', 'orders', measures => 'sum(amount OPERATOR(public.+) 1) AS s');
SELECT pipeline.create_metric('bad', 'orders', measures => 'sum(amount::public.mytype) AS s');
SELECT pipeline.create_metric('bad', 'orders', measures => 'count(*) AS n; DROP TABLE secrets');
SELECT pipeline.create_metric('bad', 'orders', measures => 'count(*) AS n FROM secrets');
SELECT pipeline.create_metric('bad', 'orders', measures => 'count(*) OVER () AS n');
SELECT pipeline.create_metric('bad', 'orders', measures => 'sum(sum(amount)) AS n');
SELECT pipeline.create_metric('bad', 'orders', measures => 'sum(DISTINCT amount) AS n');
SELECT pipeline.create_metric('bad', 'orders', measures => 'count(*) FILTER (WHERE qty IN (SELECT s FROM secrets)) AS n');
SELECT pipeline.create_metric('bad', 'orders', measures => 'string_agg(user_id, '','') AS n');
SELECT pipeline.create_metric('bad', 'orders', measures => 'sum(amount)');
SELECT pipeline.create_metric('bad', 'orders', measures => 'sum(amount) AS "Revenue"');
SELECT pipeline.create_metric('bad', 'orders', measures => 'sum(amount) AS n, count(*) AS n');
SELECT pipeline.create_metric('bad', 'orders', measures => 'count(ctid) AS n');
SELECT pipeline.create_metric('bad', 'orders', measures => 'sum(_pl_batch) AS n');
SELECT pipeline.create_metric('bad', 'orders', measures => 'sum($1) AS n');
SELECT pipeline.create_metric('bad', 'orders', measures => 'amount AS n');
SELECT pipeline.create_metric('bad', 'orders', filter => 'amount');
SELECT pipeline.create_metric('bad', 'orders', filter => 'amount > 0, qty > 0');
SELECT pipeline.create_metric('bad', 'orders', filter => 'user_id IN (SELECT s FROM secrets)');
SELECT pipeline.create_metric('bad', 'orders', filter => 'random() > 0.5');
SELECT pipeline.create_metric('bad', 'orders', filter => 'event_time > now() - interval ''1 day''');
SELECT pipeline.create_metric('bad', 'orders', dimensions => '{nope}');
SELECT pipeline.create_metric('bad', 'orders', dimensions => '{platform, platform}');
SELECT pipeline.create_metric('bad', 'orders', dimensions => '{_pl_batch}');
SELECT pipeline.create_metric('bad', 'orders', dimensions => '{"platform; drop table secrets"}');
SELECT pipeline.create_metric('bad', 'orders', bucket => '7 minutes');
SELECT pipeline.create_metric('bad', 'orders', bucket => '1 month');
SELECT pipeline.create_metric('bad', 'orders', bucket => '2 days');
SELECT pipeline.create_metric('bad', 'orders', hot_retention => '0');
SELECT pipeline.create_metric('bad', 'nope');
SELECT pipeline.create_metric('Bad', 'orders');
SELECT pipeline.create_metric('sales', 'orders');
SELECT pipeline.run_hot('nope');
SELECT count(*) AS secrets_intact FROM secrets;
SELECT count(*) AS no_bad_metric FROM pipeline.metrics WHERE metric = 'bad';

SELECT pipeline.create_metric('bad', 'orders', measures => 'sum(qty)::bigint AS q');
-- names that would collide with the columns pipeline adds to its tables and views
SELECT pipeline.create_metric('bad', 'orders', measures => 'count(*) AS late_events');
SELECT pipeline.create_metric('bad', 'orders', measures => 'count(*) AS bucket');
SELECT pipeline.create_metric('bad', 'orders', measures => 'count(DISTINCT user_id) AS u, count(*) AS u_sketch');

-- every default: count(*) AS events per minute
SELECT pipeline.create_metric('defaults', 'orders');
SELECT measures, bucket, hot_retention FROM pipeline.metrics WHERE metric = 'defaults';
SELECT pipeline.drop_metric('defaults');

-- allowed: casts, CASE, COALESCE, arithmetic and simple built-in functions
SELECT pipeline.create_metric('shapes', 'orders', '{platform}',
    'sum(COALESCE(qty, 0) * 2) AS q, max(lower(user_id)) AS u, sum(round(amount)) AS r,
     min(CASE WHEN qty IS NULL THEN -1 ELSE qty::bigint END) AS m, count(NULLIF(platform, ''web'')) AS c',
    hot_retention => '100 years');
SELECT pipeline.run_hot('shapes') > 0 AS folded;
SELECT platform, q, u, r, m, c FROM metrics.shapes_live WHERE bucket = '2026-03-01 10:00:00+00' ORDER BY platform;

-- a source in use cannot be dropped without cascade (nor while a user's
-- own view reads its raw table)
SELECT pipeline.drop_source('orders');
SELECT pipeline.drop_source('orders', cascade => true);
DROP FUNCTION hot_mismatches();
DROP VIEW hand;
SELECT pipeline.drop_metric('shapes');
SELECT pipeline.drop_metric('shapes');
SELECT to_regclass('pipeline.shapes_hot') AS hot, to_regclass('metrics.shapes_live') AS live;
SELECT pipeline.drop_source('orders', cascade => true);
SELECT count(*) AS metrics_left FROM pipeline.metrics;

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
DROP TABLE secrets;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
