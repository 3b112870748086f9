-- Measure kinds through every layer: FILTER on any measure (conversions,
-- revenue of one currency beside the total) and percentiles (approximate
-- in _live from a quantile sketch, exact in _daily, _restated exact over
-- raw after late events); the checks on their definitions.
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
SET DateStyle = ISO;
SET extra_float_digits = 0;

-- the kinds a metric may use
SELECT kind, written_as, live_is_approximate, corrected_by FROM pipeline.measure_kinds ORDER BY kind;

SELECT pipeline.create_source('shop',
    $$id bigint NOT NULL, event_time timestamptz NOT NULL, event_type text NOT NULL, platform text,
      currency text, amount numeric(12,2), latency_ms double precision, user_id text$$,
    event_id => 'id', allowed_lateness => '2 hours', freeze_after => '24 hours');
SELECT pipeline.create_metric('funnel', 'shop', '{platform}',
    $$count(*) AS events,
      count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
      sum(amount) AS revenue,
      sum(amount) FILTER (WHERE currency = 'EUR') AS revenue_eur,
      min(amount) FILTER (WHERE currency = 'EUR') AS smallest_eur,
      max(latency_ms) FILTER (WHERE event_type = 'purchase') AS slowest_purchase,
      avg(amount) FILTER (WHERE event_type = 'purchase') AS avg_purchase,
      count(DISTINCT user_id) FILTER (WHERE event_type = 'purchase') AS buyers,
      count(user_id) FILTER (WHERE currency IS NULL) AS anonymous_currency,
      percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_latency,
      percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE event_type = 'purchase') AS p95_purchase$$,
    hot_retention => '100 years');
-- how the definition was compiled: a kind per measure, its own filter, p
SELECT m->>'name' AS measure, m->>'agg' AS kind, m->>'filter' AS filter, m->>'p' AS p, m->>'type' AS type
  FROM pipeline.metric_catalog AS c, jsonb_array_elements(c.definition->'measures') AS m
 WHERE c.metric = 'funnel';
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_schema = 'metrics' AND table_name = 'funnel_live' ORDER BY ordinal_position;

-- 36,000 events on 2026-03-08 in three groups whose latencies follow three
-- distributions: uniform, log-normal, heavy ties (five values)
SELECT setseed(0.25);
CREATE TEMP TABLE shop_events AS
SELECT i AS id, timestamptz '2026-03-08 00:00:00+00' + (i % 86400) * interval '1 second' AS event_time,
       CASE WHEN i % 4 = 0 THEN 'purchase' ELSE 'view' END AS event_type,
       (ARRAY['uniform', 'lognormal', 'ties'])[1 + i % 3] AS platform,
       (ARRAY['EUR', 'USD', NULL])[1 + i % 5 % 3] AS currency,
       round((1 + i % 97)::numeric / 4, 2) AS amount,
       CASE i % 3
         WHEN 0 THEN random() * 1000
         WHEN 1 THEN exp(1.5 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))
         ELSE 10.0 * (i / 3 % 5) + 1 END AS latency_ms,
       'u' || (i % 1000) AS user_id
  FROM generate_series(1, 36000) AS i;
SELECT sum(r.accepted) AS accepted
  FROM (SELECT jsonb_agg(to_jsonb(e)) AS events FROM shop_events AS e GROUP BY e.id % 4) AS b,
       LATERAL pipeline.ingest('shop', b.events) AS r;
SELECT pipeline.run_hot('funnel') AS folded;

-- the exact answer, by hand, over the raw events of a day
CREATE FUNCTION pg_temp.exact(d date) RETURNS TABLE (
        platform text, events bigint, purchases bigint, revenue numeric, revenue_eur numeric,
        smallest_eur numeric, slowest_purchase double precision, avg_purchase numeric, buyers bigint,
        anonymous_currency bigint, p50_latency double precision, p95_purchase double precision)
    LANGUAGE sql AS $$
    SELECT platform, count(*), count(*) FILTER (WHERE event_type = 'purchase'),
           sum(amount), sum(amount) FILTER (WHERE currency = 'EUR'),
           min(amount) FILTER (WHERE currency = 'EUR'),
           max(latency_ms) FILTER (WHERE event_type = 'purchase'),
           avg(amount) FILTER (WHERE event_type = 'purchase'),
           count(DISTINCT user_id) FILTER (WHERE event_type = 'purchase'),
           count(user_id) FILTER (WHERE currency IS NULL),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE event_type = 'purchase')
      FROM pipeline.shop_raw
     WHERE event_time >= d AND event_time < d + 1
     GROUP BY platform
$$;

-- live: the filtered measures equal the hand-written ones; the percentiles
-- of the merged buckets are within 1% of percentile_cont
SELECT e.platform,
       l.events = e.events AND l.purchases = e.purchases AND l.revenue = e.revenue
       AND l.revenue_eur = e.revenue_eur AND l.smallest_eur = e.smallest_eur
       AND l.slowest_purchase = e.slowest_purchase AND l.anonymous_currency = e.anonymous_currency
       AND round(l.avg_purchase, 10) = round(e.avg_purchase, 10) AS exact_measures_equal,
       abs(l.buyers - e.buyers) <= 0.02 * e.buyers AS buyers_within_estimate,
       abs(l.p50 - e.p50_latency) <= 0.01 * abs(e.p50_latency) AS p50_within_1pct,
       abs(l.p95 - e.p95_purchase) <= 0.01 * abs(e.p95_purchase) AS p95_within_1pct,
       l.sketched_events = e.events AS sketch_counts_every_event
  FROM pg_temp.exact('2026-03-08') AS e
  JOIN (SELECT platform, sum(events) AS events, sum(purchases) AS purchases, sum(revenue) AS revenue,
               sum(revenue_eur) AS revenue_eur, min(smallest_eur) AS smallest_eur,
               max(slowest_purchase) AS slowest_purchase, sum(anonymous_currency) AS anonymous_currency,
               sum(avg_purchase * purchases) / sum(purchases) AS avg_purchase,
               pipeline.distinct_count(pipeline.distinct_merge(buyers_sketch)) AS buyers,
               pipeline.quantile_value(pipeline.quantile_merge(p50_latency_sketch), 0.5) AS p50,
               pipeline.quantile_value(pipeline.quantile_merge(p95_purchase_sketch), 0.95) AS p95,
               pipeline.quantile_count(pipeline.quantile_merge(p50_latency_sketch)) AS sketched_events
          FROM metrics.funnel_live GROUP BY platform) AS l USING (platform)
 ORDER BY 1;

-- daily: every measure exact, the percentiles equal to percentile_cont
SELECT * FROM pipeline.close_days('2026-03-09 02:00:00+00');
SELECT platform, (d.events, d.purchases, d.revenue, d.revenue_eur, d.smallest_eur, d.slowest_purchase,
                  d.avg_purchase, d.buyers, d.anonymous_currency, d.p50_latency, d.p95_purchase)
                 = (e.events, e.purchases, e.revenue, e.revenue_eur, e.smallest_eur, e.slowest_purchase,
                    e.avg_purchase, e.buyers, e.anonymous_currency, e.p50_latency, e.p95_purchase) AS daily_exact,
       d.status
  FROM metrics.funnel_daily AS d JOIN pg_temp.exact('2026-03-08') AS e USING (platform)
 WHERE d.day = '2026-03-08' ORDER BY 1;
SELECT * FROM pipeline.close_days('2026-03-10 00:00:00+00');
SELECT pipeline.verify_day('funnel', '2026-03-08') AS digest_matches;

-- late events after the freeze: slow purchases in two groups, and in the
-- third only views in USD (the purchase-only measures do not move there)
SELECT accepted FROM pipeline.ingest('shop', (SELECT jsonb_agg(jsonb_build_object(
    'id', 100000 + i, 'event_time', '2026-03-08 12:00:00+00',
    'event_type', CASE WHEN i <= 600 THEN 'purchase' ELSE 'view' END,
    'platform', CASE WHEN i <= 600 THEN (ARRAY['uniform', 'lognormal'])[1 + i % 2] ELSE 'ties' END,
    'currency', CASE WHEN i <= 600 THEN 'EUR' ELSE 'USD' END, 'amount', 0.10 + i % 3,
    'latency_ms', 5000 + i, 'user_id', 'late' || i))
  FROM generate_series(1, 700) AS i));
SELECT * FROM pipeline.close_days('2026-03-10 01:00:00+00');
-- the corrections: additive deltas of the late events alone; a percentile
-- as its exact value after the correction and how far it moved
SELECT platform, events_delta, purchases_delta, revenue_eur_delta, smallest_eur, slowest_purchase,
       avg_purchase_sum_delta, avg_purchase_count_delta, buyers_delta, anonymous_currency_delta,
       p50_latency_delta > 0 AS p50_moved_up, p95_purchase_delta > 0 AS p95_moved_up, late_events
  FROM metrics.funnel_corrections ORDER BY platform;
SELECT c.platform, c.p50_latency = e.p50_latency AS p50_is_exact_after, c.p95_purchase IS NOT DISTINCT FROM e.p95_purchase AS p95_is_exact_after,
       c.p50_latency - c.p50_latency_delta = d.p50_latency AS p50_moved_from_frozen
  FROM metrics.funnel_corrections AS c
  JOIN pg_temp.exact('2026-03-08') AS e USING (platform)
  JOIN metrics.funnel_daily AS d ON d.day = c.day AND d.platform = c.platform
 ORDER BY 1;

-- a second late batch: the restated percentile follows the latest correction
SELECT accepted FROM pipeline.ingest('shop', (SELECT jsonb_agg(jsonb_build_object(
    'id', 200000 + i, 'event_time', '2026-03-08 13:00:00+00', 'event_type', 'purchase', 'platform', 'uniform',
    'currency', 'EUR', 'amount', 0.05, 'latency_ms', 0.5, 'user_id', 'u1'))
  FROM generate_series(1, 3000) AS i));
SELECT * FROM pipeline.close_days('2026-03-10 02:00:00+00');
SELECT platform, count(*) AS corrections, (array_agg(p50_latency_delta < 0 ORDER BY created_at DESC, p50_latency))[1] AS last_moved_down
  FROM metrics.funnel_corrections GROUP BY platform ORDER BY 1;

-- restated = exact over all raw, every measure (distinct and percentiles too)
SELECT platform, (r.events, r.purchases, r.revenue, r.revenue_eur, r.smallest_eur, r.slowest_purchase,
                  r.buyers, r.anonymous_currency, r.p50_latency, r.p95_purchase)
                 = (e.events, e.purchases, e.revenue, e.revenue_eur, e.smallest_eur, e.slowest_purchase,
                    e.buyers, e.anonymous_currency, e.p50_latency, e.p95_purchase) AS restated_exact,
       round(r.avg_purchase, 10) = round(e.avg_purchase, 10) AS avg_exact, r.corrected
  FROM metrics.funnel_restated AS r JOIN pg_temp.exact('2026-03-08') AS e USING (platform)
 WHERE r.day = '2026-03-08' ORDER BY 1;
-- the frozen day did not change
SELECT pipeline.verify_day('funnel', '2026-03-08') AS digest_matches;

-- reconcile: live (it folded the late events too) against restated
SELECT pipeline.run_hot('funnel') AS folded;
SELECT platform, purchases_difference, revenue_eur_difference, smallest_eur_difference,
       abs(p50_latency_difference) <= 0.01 * p50_latency_restated AS p50_live_within_1pct,
       abs(p95_purchase_difference) <= 0.01 * p95_purchase_restated AS p95_live_within_1pct,
       distinct_is_approximate_in_live, events_late_after_freeze
  FROM metrics.funnel_reconcile WHERE day = '2026-03-08' ORDER BY platform;

-- explain: daily + corrections give restated for every measure; for a
-- percentile, the value the latest correction set
SELECT x->>'adds_up' AS adds_up,
       (SELECT jsonb_object_agg(k, v->'adds_up') FROM jsonb_each(g->'measures') AS m(k, v)) AS per_measure,
       (g->'measures'->'p50_latency'->>'corrected_to')::float8 = (g->'measures'->'p50_latency'->>'restated')::float8 AS p50_from_latest
  FROM pipeline.explain('funnel', '2026-03-08', '{"platform": "uniform"}') AS x,
       jsonb_array_elements(x->'groups') AS g;

-- a restatement absorbs the corrections: the frozen value is exact again
SELECT pipeline.restate_day('funnel', '2026-03-08', 'absorb the late purchases') AS version;
SELECT platform, d.p50_latency = e.p50_latency AND d.p95_purchase IS NOT DISTINCT FROM e.p95_purchase AS percentiles_exact,
       d.purchases = e.purchases AND d.revenue_eur = e.revenue_eur AS filtered_exact
  FROM metrics.funnel_daily AS d JOIN pg_temp.exact('2026-03-08') AS e USING (platform)
 WHERE d.day = '2026-03-08' ORDER BY 1;
SELECT count(*) AS corrections_left FROM metrics.funnel_corrections;

-- bad definitions are refused with the reason
SELECT pipeline.create_metric('bad', 'shop', measures => 'percentile_cont(1.5) WITHIN GROUP (ORDER BY latency_ms) AS p');
SELECT pipeline.create_metric('bad', 'shop', measures => 'percentile_cont(0) WITHIN GROUP (ORDER BY latency_ms) AS p');
SELECT pipeline.create_metric('bad', 'shop', measures => 'percentile_cont(1) WITHIN GROUP (ORDER BY latency_ms) AS p');
SELECT pipeline.create_metric('bad', 'shop', measures => 'percentile_cont(-0.5) WITHIN GROUP (ORDER BY latency_ms) AS p');
SELECT pipeline.create_metric('bad', 'shop', measures => 'percentile_cont(0.5::float8) WITHIN GROUP (ORDER BY latency_ms) AS p');
SELECT pipeline.create_metric('bad', 'shop', measures => 'percentile_cont(amount) WITHIN GROUP (ORDER BY latency_ms) AS p');
SELECT pipeline.create_metric('bad', 'shop', measures => 'percentile_cont(0.5) AS p');
SELECT pipeline.create_metric('bad', 'shop', measures => 'percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms DESC) AS p');
SELECT pipeline.create_metric('bad', 'shop', measures => 'percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms, amount) AS p');
SELECT pipeline.create_metric('bad', 'shop', measures => 'percentile_cont(0.5) WITHIN GROUP (ORDER BY (SELECT 1)) AS p');
SELECT pipeline.create_metric('bad', 'shop', measures => 'percentile_cont(0.5) WITHIN GROUP (ORDER BY random()) AS p');
SELECT pipeline.create_metric('bad', 'shop', measures => 'percentile_cont(0.5) WITHIN GROUP (ORDER BY platform) AS p');
SELECT pipeline.create_metric('bad', 'shop', measures => 'percentile_cont(0.5) WITHIN GROUP (ORDER BY event_time - event_time) AS p');
SELECT pipeline.create_metric('bad', 'shop', measures => 'percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p');
SELECT pipeline.create_metric('bad', 'shop', measures => 'sum(amount ORDER BY latency_ms) AS s');
SELECT pipeline.create_metric('bad', 'shop', measures => 'count(*) FILTER (WHERE user_id IN (SELECT user_id FROM pipeline.shop_raw)) AS n');
SELECT pipeline.create_metric('bad', 'shop', measures => 'count(*) FILTER (WHERE amount) AS n');
SELECT pipeline.create_metric('bad', 'shop', measures => 'count(*) FILTER (WHERE count(*) > 1) AS n');
SELECT pipeline.create_metric('bad', 'shop', measures => 'count(*) FILTER (WHERE event_time > now()) AS n');
SELECT pipeline.create_metric('bad', 'shop', measures => 'count(*) FILTER (WHERE _pl_batch > 0) AS n');
-- a generated column would collide: the live view's p50_sketch
SELECT pipeline.create_metric('bad', 'shop',
    measures => 'percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50, count(*) AS p50_sketch');
SELECT count(*) AS bad_metrics FROM pipeline.metrics WHERE metric = 'bad';

-- evolve_source knows the columns a measure's filter reads
SELECT pipeline.evolve_source('shop', 'DROP COLUMN currency');

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
