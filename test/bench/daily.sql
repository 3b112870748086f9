-- test/bench/daily.sql: the objects of the daily-layer benchmark (schema
-- daily), loaded by test/bench/daily.sh into its own database.
--
-- As in ingest.sql and hot.sql, the data is built server-side beforehand
-- and each timed part is one server-side procedure: clock_timestamp()
-- around the statement and its COMMIT, so the client adds nothing but one
-- CALL.  Each procedure also checks what the statement did (rows loaded,
-- actions of close_days), so a run that measured the wrong thing fails.

CREATE SCHEMA daily;

-- The day being closed: 2026-01-15 in UTC (the source's day_timezone).
-- Fixed and in the past, so close_days(as_of) freezes it at as_of =
-- 2026-01-17 00:00 UTC (its end + freeze_after 24 hours) and no event is
-- refused as too far in the future.
CREATE FUNCTION daily.lo() RETURNS timestamptz LANGUAGE sql IMMUTABLE
    RETURN timestamptz '2026-01-15 00:00:00+00';
CREATE FUNCTION daily.hi() RETURNS timestamptz LANGUAGE sql IMMUTABLE
    RETURN timestamptz '2026-01-16 00:00:00+00';
CREATE FUNCTION daily.as_of() RETURNS timestamptz LANGUAGE sql IMMUTABLE
    RETURN timestamptz '2026-01-17 00:00:00+00';

-- n `orders` events of that day with ids first_id, first_id + 1, ...:
-- times uniform over the day, users skewed (log-uniform ids: a few users
-- place most orders), platform ios/android/web or absent (45/35/15/5%),
-- type purchase/subscription/gift/refund (70/15/10/5%), amounts
-- log-distributed.  4 platforms x 4 types: 16 groups per day.  The random
-- draws are columns of a subquery, one set per row (a LATERAL subquery
-- that does not reference the row is evaluated only once).
CREATE FUNCTION daily.events(first_id bigint, n bigint)
    RETURNS TABLE (order_id bigint, event_time timestamptz, user_id text, platform text, type text, amount numeric)
    LANGUAGE sql VOLATILE AS $fn$
    SELECT r.g, daily.lo() + r.tm * (daily.hi() - daily.lo()),
           'user_' || floor(exp(r.u * ln(200000)))::int,
           CASE WHEN r.p < 0.45 THEN 'ios' WHEN r.p < 0.80 THEN 'android' WHEN r.p < 0.95 THEN 'web' END,
           CASE WHEN r.t < 0.70 THEN 'purchase' WHEN r.t < 0.85 THEN 'subscription'
                WHEN r.t < 0.95 THEN 'gift' ELSE 'refund' END,
           round((exp(r.a * 6) + r.a2)::numeric, 2)
      FROM (SELECT g, random() AS tm, random() AS u, random() AS p, random() AS t,
                   random() AS a, random() AS a2
              FROM generate_series($1, $1 + $2 - 1) AS g) AS r
$fn$;

-- The day as CSV for COPY (a producer's export), columns in contract order.
CREATE FUNCTION daily.write_csv(first_id bigint, n bigint, path text) RETURNS void
    LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format('COPY (SELECT * FROM daily.events(%s, %s)) TO %L (FORMAT csv)', first_id, n, path);
END
$fn$;

-- The load through the API's bulk path: COPY into pipeline.orders_load
-- (every row checked, deduplicated and stored in the raw partition of its
-- day, one receipt), commit included.  The receipt must say all accepted.
CREATE PROCEDURE daily.timed_load(path text, expected bigint, INOUT seconds float8 DEFAULT NULL)
    LANGUAGE plpgsql AS $fn$
DECLARE
    t0 timestamptz := clock_timestamp();
    r record;
BEGIN
    EXECUTE format('COPY pipeline.orders_load FROM %L (FORMAT csv)', path);
    COMMIT;
    seconds := extract(epoch FROM clock_timestamp() - t0);
    SELECT * INTO STRICT r FROM pipeline.batches AS b WHERE b.source = 'orders' ORDER BY b.batch_id DESC LIMIT 1;
    IF r.received <> expected OR r.accepted <> expected THEN
        RAISE EXCEPTION 'load: batch % received %, accepted %, expected %', r.batch_id, r.received, r.accepted, expected;
    END IF;
END
$fn$;

-- The load's baseline: COPY of the same file into a plain table with the
-- contract's columns and PRIMARY KEY (order_id), as in ingest.sql.
CREATE TABLE daily.orders_copy (
    order_id   bigint PRIMARY KEY,
    event_time timestamptz NOT NULL,
    user_id    text NOT NULL,
    platform   text,
    type       text,
    amount     numeric(12,2) CHECK (amount >= 0)
);
CREATE PROCEDURE daily.timed_copy(path text, expected bigint, INOUT seconds float8 DEFAULT NULL)
    LANGUAGE plpgsql AS $fn$
DECLARE
    t0 timestamptz := clock_timestamp();
    n bigint;
BEGIN
    EXECUTE format('COPY daily.orders_copy FROM %L (FORMAT csv)', path);
    GET DIAGNOSTICS n = ROW_COUNT;
    COMMIT;
    seconds := extract(epoch FROM clock_timestamp() - t0);
    IF n <> expected THEN
        RAISE EXCEPTION 'copy: % rows, expected %', n, expected;
    END IF;
END
$fn$;

-- One timed close_days(as_of), commit included.  `expected` is what it
-- must return, as 'metric:action' joined by ',' in metric order ('' for
-- nothing).
CREATE PROCEDURE daily.timed_close(expected text, INOUT ms float8 DEFAULT NULL)
    LANGUAGE plpgsql AS $fn$
DECLARE
    t0 timestamptz := clock_timestamp();
    got text;
BEGIN
    SELECT COALESCE(string_agg(c.metric || ':' || c.action, ',' ORDER BY c.metric, c.day), '')
      INTO got FROM pipeline.close_days(daily.as_of()) AS c;
    COMMIT;
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    IF got <> expected THEN
        RAISE EXCEPTION 'close_days returned "%", expected "%"', got, expected;
    END IF;
END
$fn$;

-- One timed restate_day of the day, commit included.
CREATE PROCEDURE daily.timed_restate(metric text, INOUT ms float8 DEFAULT NULL)
    LANGUAGE plpgsql AS $fn$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    PERFORM pipeline.restate_day(metric, daily.lo()::date, 'benchmark: absorb the late events');
    COMMIT;
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
END
$fn$;

-- The baseline: the hand-written way of closing the day, one
-- INSERT ... SELECT ... GROUP BY into a plain table with the daily
-- table's columns (avg kept as avg, sum and count, as the daily table
-- does), from `src` (the raw table: the same raw day the pipeline reads;
-- or daily.late_events), with or without the count(DISTINCT user_id).
-- The table is emptied before, outside the timing; commit included.
CREATE TABLE daily.base (
    day               date NOT NULL,
    platform          text,
    type              text,
    orders            bigint NOT NULL,
    revenue           numeric,
    avg_amount        numeric,
    _avg_amount_sum   numeric,
    _avg_amount_count bigint NOT NULL,
    buyers            bigint
);
-- the late rows, copied from raw once ingested: the baseline's input for
-- the corrections (a plain table of the new rows, as in hot.sql)
CREATE TABLE daily.late_events (
    order_id   bigint NOT NULL,
    event_time timestamptz NOT NULL,
    user_id    text NOT NULL,
    platform   text,
    type       text,
    amount     numeric(12,2)
);

CREATE PROCEDURE daily.timed_baseline(src text, with_distinct boolean,
                                      INOUT ms float8 DEFAULT NULL, INOUT groups bigint DEFAULT NULL)
    LANGUAGE plpgsql AS $fn$
DECLARE
    t0 timestamptz;
BEGIN
    TRUNCATE daily.base;
    COMMIT;
    t0 := clock_timestamp();
    EXECUTE format(
        'INSERT INTO daily.base (day, platform, type, orders, revenue, avg_amount, _avg_amount_sum, _avg_amount_count, buyers) '
        'SELECT %L::date, r.platform, r.type, count(*), sum(r.amount), avg(r.amount), sum(r.amount), count(r.amount), %s '
        '  FROM %s AS r WHERE r.event_time >= %L AND r.event_time < %L '
        ' GROUP BY r.platform, r.type',
        daily.lo()::date, CASE WHEN with_distinct THEN 'count(DISTINCT r.user_id)' ELSE 'NULL::bigint' END,
        src, daily.lo(), daily.hi());
    GET DIAGNOSTICS groups = ROW_COUNT;
    COMMIT;
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
END
$fn$;

-- n late events for the day (ids first_id ..), one pipeline.ingest() call
-- with an NDJSON document, checked: everything accepted.  Their rows are
-- then copied from raw into daily.late_events (emptied first) for the
-- baseline.  Returns the batch id.
CREATE FUNCTION daily.ingest_late(first_id bigint, n bigint) RETURNS bigint
    LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
BEGIN
    SELECT * INTO STRICT r FROM pipeline.ingest('orders',
        (SELECT string_agg(json_strip_nulls(json_build_object(
                    'order_id', e.order_id, 'event_time', e.event_time, 'user_id', e.user_id,
                    'platform', e.platform, 'type', e.type, 'amount', e.amount))::text, E'\n')
           FROM daily.events(first_id, n) AS e));
    IF r.received <> n OR r.accepted <> n THEN
        RAISE EXCEPTION 'late batch %: received %, accepted %, expected %', r.batch_id, r.received, r.accepted, n;
    END IF;
    TRUNCATE daily.late_events;
    INSERT INTO daily.late_events
    SELECT x.order_id, x.event_time, x.user_id, x.platform, x.type, x.amount
      FROM pipeline.orders_raw AS x WHERE x._pl_batch = r.batch_id;
    ANALYZE daily.late_events;
    RETURN r.batch_id;
END
$fn$;

-- A producer that keeps sending into the frozen day while its first
-- correction runs and the index builder then builds the day's value index:
-- one-event batches (ids first_id, first_id + 1, ...), each ingest and its
-- COMMIT timed, one every 20 ms, until that index is valid or max_s have
-- passed.  Each ingest runs with lock_timeout = 100ms: one that waits
-- longer for a lock fails the benchmark.  Returns the slowest, the 99th
-- percentile and the median ingest (ms, waits for CPU and disk included),
-- when the slowest started (seconds after the start), how many there
-- were, and when the index became valid (seconds after the start; NULL if
-- it did not).
CREATE PROCEDURE daily.probe_ingest(first_id bigint, max_s float8,
                                    INOUT worst_ms float8 DEFAULT NULL, INOUT p99_ms float8 DEFAULT NULL,
                                    INOUT median_ms float8 DEFAULT NULL, INOUT worst_at_s float8 DEFAULT NULL,
                                    INOUT n integer DEFAULT NULL, INOUT ready_s float8 DEFAULT NULL)
    LANGUAGE plpgsql AS $fn$
DECLARE
    t0 timestamptz := clock_timestamp();
    t timestamptz;
    took float8[] := '{}';
    started float8[] := '{}';
    part regclass;
BEGIN
    SELECT pipeline._day_partition(s, daily.lo()::date) INTO STRICT part
      FROM pipeline.source_catalog AS s WHERE s.source = 'orders';
    PERFORM set_config('lock_timeout', '100ms', false);
    n := 0;
    WHILE clock_timestamp() < t0 + max_s * interval '1 second' LOOP
        t := clock_timestamp();
        PERFORM pipeline.ingest('orders', jsonb_build_array(jsonb_build_object(
            'order_id', first_id + n, 'event_time', daily.lo() + interval '12 hours',
            'user_id', 'probe_' || n, 'platform', 'web', 'type', 'purchase', 'amount', 1)));
        COMMIT;
        took := took || extract(epoch FROM clock_timestamp() - t) * 1000;
        started := started || extract(epoch FROM t - t0);
        n := n + 1;
        IF pipeline._value_index_ready(part, 'user_id') THEN
            ready_s := extract(epoch FROM clock_timestamp() - t0);
            EXIT;
        END IF;
        PERFORM pg_sleep(0.02);
        COMMIT;
    END LOOP;
    PERFORM set_config('lock_timeout', '0', false);
    SELECT max(x), percentile_cont(0.99) WITHIN GROUP (ORDER BY x), percentile_cont(0.5) WITHIN GROUP (ORDER BY x),
           (array_agg(a ORDER BY x DESC))[1]
      INTO worst_ms, p99_ms, median_ms, worst_at_s FROM unnest(took, started) AS u(x, a);
END
$fn$;

-- Checks, each raising when it fails:
--   'daily'    metrics.<metric>_daily of the day equals daily.base (the
--              baseline's output, computed from the same raw rows);
--   'restated' metrics.<metric>_restated of the day (frozen + corrections)
--              equals the exact aggregates over everything in raw now;
-- and in both cases verify_day() still matches the day's digest.
CREATE FUNCTION daily.check(metric text, what text, with_distinct boolean) RETURNS void
    LANGUAGE plpgsql AS $fn$
DECLARE
    cols text := 'platform, type, orders, revenue, avg_amount' || CASE WHEN with_distinct THEN ', buyers' ELSE '' END;
    mine text;
    theirs text;
    diff bigint;
    rows bigint;
BEGIN
    IF what = 'daily' THEN
        mine := format('SELECT %s FROM metrics.%I WHERE day = %L', cols, metric || '_daily', daily.lo()::date);
        theirs := format('SELECT %s FROM daily.base', cols);
    ELSE
        mine := format('SELECT %s FROM metrics.%I WHERE day = %L', cols, metric || '_restated', daily.lo()::date);
        theirs := format('SELECT platform, type, count(*), sum(amount), avg(amount)%s FROM pipeline.orders_raw '
                         'WHERE event_time >= %L AND event_time < %L GROUP BY platform, type',
                         CASE WHEN with_distinct THEN ', count(DISTINCT user_id)' ELSE '' END, daily.lo(), daily.hi());
    END IF;
    EXECUTE format('SELECT count(*) FROM ((%1$s EXCEPT ALL %2$s) UNION ALL (%2$s EXCEPT ALL %1$s)) AS d', mine, theirs)
       INTO diff;
    EXECUTE format('SELECT count(*) FROM (%s) AS d', mine) INTO rows;
    IF diff <> 0 OR rows = 0 THEN
        RAISE EXCEPTION 'metric %: % (% rows) differs from the exact values in % rows', metric, what, rows, diff;
    END IF;
    IF NOT pipeline.verify_day(metric, daily.lo()::date) THEN
        RAISE EXCEPTION 'metric %: verify_day is false', metric;
    END IF;
END
$fn$;
