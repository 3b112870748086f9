-- test/bench/hot.sql: the objects of the hot-path benchmark (schema hot),
-- loaded by test/bench/hot.sh into its own database.
--
-- As in ingest.sql, every payload is built server-side beforehand and the
-- timed parts are server-side loops (procedures with a COMMIT per batch),
-- so the client adds nothing but one call.

CREATE SCHEMA hot;

-- Payload templates: an NDJSON document of `orders` events per row, built
-- once, with two placeholders that hot.batch() fills per batch:
--   @@@  the batch's order_id prefix (order_id = prefix * 10^6 + i, i < 10^6,
--        so ids never repeat across batches and templates)
--   @T@  the event time of 'now' templates (every event of the batch gets
--        the time the batch is sent); 'spread' templates carry fixed times
--        drawn over the 3 days before the template was built.
-- Events are drawn as in ingest.sql: users skewed, amounts log-distributed,
-- currency absent from 10% of the events, platform from 5%.
-- EXTERNAL: stored uncompressed, so reading one back costs what receiving
-- it would.
CREATE TABLE hot.templates (
    template text PRIMARY KEY,
    events   integer NOT NULL,
    payload  text NOT NULL
);
ALTER TABLE hot.templates ALTER payload SET STORAGE EXTERNAL;
CREATE SEQUENCE hot.prefix;

CREATE FUNCTION hot.make_template(template text, events integer, times text)
    RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    IF events >= 1000000 OR times NOT IN ('now', 'spread') THEN
        RAISE EXCEPTION 'make_template: events < 10^6, times now or spread';
    END IF;
    INSERT INTO hot.templates
    SELECT template, events,
           string_agg('{"order_id":@@@' || lpad(g::text, 6, '0') || ', '
                      || substr(json_strip_nulls(json_build_object(
                             'event_time', CASE times WHEN 'now' THEN to_json('@T@'::text)
                                                      ELSE to_json(now() - random() * interval '3 days') END,
                             'user_id', 'user_' || floor(exp(random() * ln(200000)))::int,
                             'amount', round((exp(random() * 6) + random())::numeric, 2),
                             'currency', CASE WHEN c < 0.10 THEN NULL WHEN c < 0.70 THEN 'EUR'
                                              WHEN c < 0.90 THEN 'USD' ELSE 'GBP' END,
                             'platform', CASE WHEN p < 0.45 THEN 'ios' WHEN p < 0.80 THEN 'android'
                                              WHEN p < 0.95 THEN 'web' END))::text, 2),
                      E'\n' ORDER BY g) || E'\n'
      FROM generate_series(1, events) AS g, LATERAL (SELECT random() + 0 * g AS c, random() + 0 * g AS p) AS r;
END
$fn$;

-- One batch's payload from a template: fresh ids, and for 'now' templates
-- the time given (the current time by default).
CREATE FUNCTION hot.batch(template text, t timestamptz DEFAULT clock_timestamp())
    RETURNS text LANGUAGE sql AS $fn$
    SELECT replace(replace(x.payload, '@@@', nextval('hot.prefix')::text),
                   '@T@', to_json(t) #>> '{}')
      FROM hot.templates AS x WHERE x.template = batch.template
$fn$;

-- One batch of a template into `orders`, checked: everything accepted.
CREATE FUNCTION hot.ingest_checked(template text) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
BEGIN
    SELECT * INTO STRICT r FROM pipeline.ingest('orders', hot.batch(template));
    IF r.accepted <> r.received OR r.received = 0 THEN
        RAISE EXCEPTION 'batch % of template %: received %, accepted %, duplicates %, rejected %',
            r.batch_id, template, r.received, r.accepted, r.duplicates, r.rejected;
    END IF;
    RETURN r.batch_id;
END
$fn$;

-- ---------------------------------------------------------------------
-- 1. Visibility latency under sustained ingest
-- ---------------------------------------------------------------------

-- Written by the ingest clients right after each COMMIT (a transaction
-- of its own: clock_timestamp() there is at most one round trip after the
-- commit).  UNLOGGED: that transaction writes no WAL, so its commit does
-- not wait for a flush and costs the clients next to nothing.
CREATE UNLOGGED TABLE hot.commits (batch_id bigint PRIMARY KEY, committed_at timestamptz NOT NULL);
-- Written by hot.monitor: when the metric's checkpoint first covered a batch.
CREATE UNLOGGED TABLE hot.seen (batch_id bigint PRIMARY KEY, seen_at timestamptz NOT NULL);
-- hot.sh sets done once the clients have finished.
CREATE UNLOGGED TABLE hot.run_state (done boolean NOT NULL);

-- Polls the metric's fold checkpoint every `poll` and records, for every
-- batch of `orders` the checkpoint newly covers, the time it saw that:
-- the fold's hot rows and its checkpoint commit together, so from then on
-- the batch is in metrics.<metric>_live.  Batches newly covered are found
-- as the fold finds them (visible in the new snapshot, not in the
-- previous one); batches up to first_id are not this run's.  Ends once hot.run_state says done and every batch
-- committed since the start is covered; fails if that takes over `drain`.
CREATE PROCEDURE hot.monitor(metric text, first_id bigint, poll interval, drain interval)
    LANGUAGE plpgsql AS $fn$
DECLARE
    prev pg_snapshot;
    snap pg_snapshot;
    done_at timestamptz;
BEGIN
    SELECT m.fold_snapshot INTO STRICT prev FROM pipeline.metric_catalog AS m WHERE m.metric = monitor.metric;
    COMMIT;
    LOOP
        SELECT m.fold_snapshot INTO STRICT snap FROM pipeline.metric_catalog AS m WHERE m.metric = monitor.metric;
        IF snap::text <> prev::text THEN
            INSERT INTO hot.seen
            SELECT b.batch_id, clock_timestamp()
              FROM pipeline.batch_log AS b
             WHERE b.source = 'orders'
               AND b.xid >= pg_snapshot_xmin(prev)
               AND NOT pg_visible_in_snapshot(b.xid, prev)
               AND pg_visible_in_snapshot(b.xid, snap)
               AND b.batch_id > first_id
            ON CONFLICT DO NOTHING;
            prev := snap;
        END IF;
        IF done_at IS NULL AND EXISTS (SELECT FROM hot.run_state WHERE done) THEN
            done_at := clock_timestamp();
        END IF;
        COMMIT;
        IF done_at IS NOT NULL THEN
            EXIT WHEN NOT EXISTS (SELECT FROM pipeline.batch_log AS b
                                   WHERE b.source = 'orders' AND b.batch_id > first_id
                                     AND NOT pg_visible_in_snapshot(b.xid, prev));
            IF clock_timestamp() > done_at + drain THEN
                RAISE EXCEPTION 'monitor: batches still not folded % after the ingest ended', drain;
            END IF;
        END IF;
        PERFORM pg_sleep(extract(epoch FROM poll));
    END LOOP;
END
$fn$;

-- The figures of one sustained run: events accepted, events/s from the
-- first batch's start to the last batch's commit, and the visibility
-- latency percentiles in ms (NULL without a monitor).  Checks that every
-- batch was accepted whole and has its commit time.
CREATE FUNCTION hot.sustained_result(first_id bigint,
        OUT batches bigint, OUT events bigint, OUT rate float8, OUT p50_ms float8, OUT p99_ms float8,
        OUT max_ms float8)
    LANGUAGE plpgsql AS $fn$
DECLARE
    bad bigint;
BEGIN
    SELECT count(*), sum(b.accepted), count(*) FILTER (WHERE b.accepted <> b.received OR c.batch_id IS NULL),
           sum(b.accepted) / extract(epoch FROM max(c.committed_at) - min(b.received_at))
      INTO batches, events, bad, rate
      FROM pipeline.batch_log AS b LEFT JOIN hot.commits AS c USING (batch_id)
     WHERE b.source = 'orders' AND b.batch_id > first_id;
    IF batches = 0 OR bad > 0 THEN
        RAISE EXCEPTION 'sustained run: % batches, % not accepted whole or without a commit time', batches, bad;
    END IF;
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l), percentile_cont(0.99) WITHIN GROUP (ORDER BY l), max(l)
      INTO p50_ms, p99_ms, max_ms
      FROM (SELECT extract(epoch FROM s.seen_at - c.committed_at) * 1000 AS l
              FROM hot.seen AS s JOIN hot.commits AS c USING (batch_id)
             WHERE s.batch_id > first_id) AS x;
END
$fn$;

-- ---------------------------------------------------------------------
-- 2. and 3. Fold cost, late events
-- ---------------------------------------------------------------------

-- Every run_hot() of hot.load: raw size after it, events folded, ms.
CREATE UNLOGGED TABLE hot.fold_log (raw_events bigint NOT NULL, folded bigint NOT NULL, ms float8 NOT NULL);

-- nbatches batches of a template, a COMMIT after each, and a run_hot()
-- (+ COMMIT) after every fold_every batches and after the last (0: never),
-- each logged in hot.fold_log.  Returns the events loaded, the seconds spent ingesting
-- and the seconds spent folding.
CREATE PROCEDURE hot.load(template text, nbatches integer, fold_every integer,
                          INOUT events bigint DEFAULT NULL,
                          INOUT ingest_s float8 DEFAULT NULL,
                          INOUT fold_s float8 DEFAULT NULL)
    LANGUAGE plpgsql AS $fn$
DECLARE
    t0 timestamptz;
    n bigint;
    per bigint;
    raw bigint;
    ms float8;
    pending bigint := 0;
BEGIN
    SELECT x.events INTO STRICT per FROM hot.templates AS x WHERE x.template = load.template;
    SELECT coalesce(sum(b.accepted), 0) INTO raw FROM pipeline.batch_log AS b WHERE b.source = 'orders';
    events := 0; ingest_s := 0; fold_s := 0;
    FOR i IN 1 .. nbatches LOOP
        t0 := clock_timestamp();
        PERFORM hot.ingest_checked(template);
        COMMIT;
        ingest_s := ingest_s + extract(epoch FROM clock_timestamp() - t0);
        events := events + per;
        raw := raw + per;
        pending := pending + per;
        IF fold_every > 0 AND (i % fold_every = 0 OR i = nbatches) THEN
            t0 := clock_timestamp();
            n := pipeline.run_hot();
            COMMIT;
            ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
            fold_s := fold_s + ms / 1000;
            INSERT INTO hot.fold_log VALUES (raw, n, ms);
            IF n <> pending THEN
                RAISE EXCEPTION 'load: run_hot folded % events, expected %', n, pending;
            END IF;
            pending := 0;
        END IF;
    END LOOP;
END
$fn$;

-- One timed run_hot(), commit included; it must fold exactly `expected`.
CREATE PROCEDURE hot.timed_fold(expected bigint, INOUT ms float8 DEFAULT NULL)
    LANGUAGE plpgsql AS $fn$
DECLARE
    t0 timestamptz := clock_timestamp();
    n bigint;
BEGIN
    n := pipeline.run_hot();
    COMMIT;
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    IF n <> expected THEN
        RAISE EXCEPTION 'timed_fold: run_hot folded % events, expected %', n, expected;
    END IF;
END
$fn$;

-- The late-event baseline: the hand-written way of keeping the same
-- aggregate, a plain table with the metric's key and columns, upserted
-- from the events with one INSERT ... SELECT ... GROUP BY ... ON CONFLICT.
CREATE TABLE hot.agg (
    bucket           timestamptz NOT NULL,
    platform         text,
    orders           bigint NOT NULL,
    revenue          numeric,
    avg_amount_sum   numeric,
    avg_amount_count bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (bucket, platform)
);
CREATE TABLE hot.late_events (event_time timestamptz NOT NULL, platform text, amount numeric(12,2));

CREATE PROCEDURE hot.timed_upsert(INOUT ms float8 DEFAULT NULL)
    LANGUAGE plpgsql AS $fn$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    INSERT INTO hot.agg AS a
    SELECT date_bin('1 minute', e.event_time, '2000-01-01 00:00:00+00'), e.platform,
           count(*), sum(e.amount), sum(e.amount), count(e.amount)
      FROM hot.late_events AS e
     GROUP BY 1, 2
    ON CONFLICT (bucket, platform) DO UPDATE
       SET orders = a.orders + excluded.orders,
           revenue = COALESCE(a.revenue + excluded.revenue, a.revenue, excluded.revenue),
           avg_amount_sum = COALESCE(a.avg_amount_sum + excluded.avg_amount_sum, a.avg_amount_sum, excluded.avg_amount_sum),
           avg_amount_count = a.avg_amount_count + excluded.avg_amount_count;
    COMMIT;
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
END
$fn$;
