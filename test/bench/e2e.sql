-- test/bench/e2e.sql: the objects of the end-to-end benchmark (schema e2e),
-- loaded by test/bench/e2e.sh into its own database `e2e`.
--
-- As in hot.sql, every payload is built server-side beforehand (a pool of
-- templates) and the clients send one call per batch; everything measured
-- is recorded server-side (receipts, commit times, fold checkpoints,
-- samples of pipeline.status, /proc memory and pg_stat_user_tables) and
-- summarised by e2e.run_result().

CREATE SCHEMA e2e;

-- ---------------------------------------------------------------------
-- Payloads
-- ---------------------------------------------------------------------

-- The template pool: per source, `slots` NDJSON documents of `events`
-- lines.  Batch p (a sequence value) is slot p % slots, filled in by
-- format() with:
--   %1$s   the batch's share of each event id: for app_events the 7 hex
--          digits of p as 'hhhh-4hhh' (the middle of a v4 uuid whose other
--          digits are random per line), for orders the decimal p (order_id
--          = p || 4-digit line number)
--   %2$s   the time the batch is sent (on-time events)
--   %3$s .. %22$s   20 times drawn per batch between 1 minute and 6 hours
--          before it is sent (late events: 5% of the lines)
--   %23$s  the id share of batch p - slots, which used the same slot: a
--          duplicate line (1%) re-sends the id of the line before it in
--          that batch (a retry of an event already accepted)
-- Malformed lines (0.5%): half a bad value (an impossible event time for
-- app_events, "12,50" as amount for orders), half a required field
-- missing (user_id, event_time).
-- Users: log-uniform over 1..10^6 (zipf-like: a few users send most).
CREATE TABLE e2e.templates (
    source  text NOT NULL,
    slot    integer NOT NULL,
    events  integer NOT NULL,
    payload text NOT NULL,
    PRIMARY KEY (source, slot)
);
ALTER TABLE e2e.templates ALTER payload SET STORAGE EXTERNAL;
CREATE TABLE e2e.pool (slots integer NOT NULL);
CREATE SEQUENCE e2e.app_prefix;
CREATE SEQUENCE e2e.order_prefix;

-- The category of line i of the pool: the fractional part of i times the
-- golden ratio, spread evenly over [0, 1) so that the shares above hold
-- to a line even in the small pools of --smoke, and the line before a
-- duplicate (c in [0.005, 0.015): that line's c is 0.38 further) is an
-- on-time event.
CREATE FUNCTION e2e.spread(i bigint) RETURNS float8 LANGUAGE sql IMMUTABLE AS $fn$
    SELECT i * 0.6180339887498949 - floor(i * 0.6180339887498949)
$fn$;

CREATE FUNCTION e2e.make_templates(slots integer, app_n integer, order_n integer)
    RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    IF app_n > 9999 OR order_n > 9999 THEN
        RAISE EXCEPTION 'make_templates: at most 9999 events per batch';
    END IF;
    TRUNCATE e2e.templates, e2e.pool;
    INSERT INTO e2e.pool VALUES (slots);
    -- batch p - slots must be a batch id share >= 1 for every p sent
    PERFORM setval('e2e.app_prefix', slots + 1, false), setval('e2e.order_prefix', slots + 1, false);

    INSERT INTO e2e.templates
    SELECT 'app_events', s, count(*),
           string_agg(
               '{"event_id":"' || CASE WHEN c < 0.015 AND c >= 0.005
                                      THEN p_r1 || '-%23$s-' || p_r2 ELSE r1 || '-%1$s-' || r2 END || '"'
               || CASE WHEN c < 0.0025 THEN ',"event_time":"2026-13-45T99:61:00Z"'
                       WHEN c < 0.015 AND c >= 0.005 THEN ',"event_time":"%2$s"'
                       WHEN c < 0.065 THEN ',"event_time":"%' || late || '$s"'
                       ELSE ',"event_time":"%2$s"' END
               || CASE WHEN c >= 0.0025 AND c < 0.005 THEN '' ELSE ',"user_id":"' || u || '"' END
               || ',"platform":"' || platform || '","type":"' || type || '"}',
               E'\n' ORDER BY g) || E'\n'
      FROM (SELECT s, g, c, r1, r2, u, platform, type, late,
                   coalesce(lag(r1) OVER w, lead(r1) OVER w) AS p_r1,
                   coalesce(lag(r2) OVER w, lead(r2) OVER w) AS p_r2
              FROM (SELECT s, g, e2e.spread(s * app_n + g) AS c,
                           lpad(to_hex((random() * 4294967295)::bigint), 8, '0') AS r1,
                           substr('89ab', 1 + floor(random() * 4)::int, 1)
                               || substr(h, 1, 3) || '-' || substr(h, 4, 12) AS r2,
                           'u' || floor(exp(random() * ln(1000000)))::int AS u,
                           CASE WHEN pr < 0.45 THEN 'ios' WHEN pr < 0.80 THEN 'android' ELSE 'web' END AS platform,
                           CASE WHEN ty < 0.50 THEN 'screen_view' WHEN ty < 0.75 THEN 'tap'
                                WHEN ty < 0.85 THEN 'session_start' WHEN ty < 0.93 THEN 'search'
                                WHEN ty < 0.98 THEN 'add_to_cart' ELSE 'purchase' END AS type,
                           3 + floor(random() * 20)::int AS late
                      FROM generate_series(0, slots - 1) AS s, generate_series(1, app_n) AS g,
                           LATERAL (SELECT md5(random()::text || s || g) AS h, random() AS pr, random() AS ty) AS x
                   ) AS l
            WINDOW w AS (PARTITION BY s ORDER BY g)) AS e
     GROUP BY s;

    INSERT INTO e2e.templates
    SELECT 'orders', s, count(*),
           string_agg(
               '{"order_id":' || CASE WHEN c < 0.015 AND c >= 0.005
                                      THEN '%23$s' || lpad((CASE WHEN g = 1 THEN 2 ELSE g - 1 END)::text, 4, '0')
                                      ELSE '%1$s' || lpad(g::text, 4, '0') END
               || CASE WHEN c < 0.0025 THEN ''
                       WHEN c < 0.015 AND c >= 0.005 THEN ',"event_time":"%2$s"'
                       WHEN c < 0.065 THEN ',"event_time":"%' || late || '$s"'
                       ELSE ',"event_time":"%2$s"' END
               || ',"user_id":"' || u || '","platform":"' || platform || '"'
               || CASE WHEN c >= 0.0025 AND c < 0.005 THEN ',"amount":"12,50"'
                       ELSE ',"amount":' || amount END || '}',
               E'\n' ORDER BY g) || E'\n'
      FROM (SELECT s, g, e2e.spread(s * order_n + g) AS c,
                   'u' || floor(exp(random() * ln(1000000)))::int AS u,
                   CASE WHEN pr < 0.45 THEN 'ios' WHEN pr < 0.80 THEN 'android' ELSE 'web' END AS platform,
                   round((exp(random() * 6) + random())::numeric, 2) AS amount,
                   3 + floor(random() * 20)::int AS late
              FROM generate_series(0, slots - 1) AS s, generate_series(1, order_n) AS g,
                   LATERAL (SELECT random() + 0 * (s + g) AS pr) AS x) AS e
     GROUP BY s;
END
$fn$;

-- the id share of batch p (see above)
CREATE FUNCTION e2e.id_share(src text, p bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE src WHEN 'orders' THEN p::text
                    ELSE substr(lpad(to_hex(p), 7, '0'), 1, 4) || '-4' || substr(lpad(to_hex(p), 7, '0'), 5, 3) END
$fn$;

-- The next batch of a source, as a producer would send it now.
CREATE FUNCTION e2e.payload(src text) RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
    k integer;
    p bigint := nextval(CASE src WHEN 'orders' THEN 'e2e.order_prefix' ELSE 'e2e.app_prefix' END::regclass);
    t timestamptz := clock_timestamp();
    tpl text;
BEGIN
    SELECT x.slots INTO STRICT k FROM e2e.pool AS x;
    SELECT x.payload INTO STRICT tpl FROM e2e.templates AS x WHERE x.source = src AND x.slot = p % k;
    RETURN format(tpl, VARIADIC
        ARRAY[e2e.id_share(src, p), to_json(t) #>> '{}']
        || ARRAY(SELECT to_json(t - interval '1 minute' - random() * interval '359 minutes') #>> '{}'
                   FROM generate_series(1, 20))
        || e2e.id_share(src, p - k));
END
$fn$;

-- One batch of a source through pipeline.ingest (NDJSON); its batch id.
CREATE FUNCTION e2e.send(src text) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
BEGIN
    SELECT * INTO STRICT r FROM pipeline.ingest(src, e2e.payload(src));
    IF r.received = 0 OR r.accepted = 0 THEN
        RAISE EXCEPTION 'e2e.send %: batch % received %, accepted %', src, r.batch_id, r.received, r.accepted;
    END IF;
    RETURN r.batch_id;
END
$fn$;

-- ---------------------------------------------------------------------
-- History (31 days before the run) and the COPY baseline
-- ---------------------------------------------------------------------

-- per_day events a day for the `days` days before now, as CSV in the
-- contract's column order, into file (server side); ids are disjoint from
-- the live ones (app: uuids with 'ffff' as the 2nd group; orders: negative).
-- The first 18 app events (3 for orders) take every (platform, type) pair
-- once, so e2e.check_mix() holds at any size, the smoke's 1,500 included.
CREATE FUNCTION e2e.write_history(src text, days integer, per_day integer, file text)
    RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    n bigint;
BEGIN
    IF src = 'app_events' THEN
        EXECUTE format($q$COPY (
            SELECT (lpad(to_hex((random() * 4294967295)::bigint), 8, '0') || '-ffff-4' || substr(h, 1, 3) || '-'
                    || substr('89ab', 1 + floor(random() * 4)::int, 1) || substr(h, 4, 3) || '-' || substr(h, 7, 12)),
                   now() - random() * (%s * interval '1 day'),
                   'u' || floor(exp(random() * ln(1000000)))::int,
                   CASE WHEN pr < 0.45 THEN 'ios' WHEN pr < 0.80 THEN 'android' ELSE 'web' END,
                   CASE WHEN ty < 0.50 THEN 'screen_view' WHEN ty < 0.75 THEN 'tap'
                        WHEN ty < 0.85 THEN 'session_start' WHEN ty < 0.93 THEN 'search'
                        WHEN ty < 0.98 THEN 'add_to_cart' ELSE 'purchase' END
              FROM generate_series(1, %s) AS g,
                   LATERAL (SELECT md5(random()::text || g) AS h,
                                   CASE WHEN g <= 18 THEN (ARRAY[0.1, 0.5, 0.9])[(g - 1) %% 3 + 1] ELSE random() END AS pr,
                                   CASE WHEN g <= 18 THEN (ARRAY[0.1, 0.6, 0.8, 0.9, 0.95, 0.99])[(g - 1) / 3 + 1]
                                        ELSE random() END AS ty) AS x
            ) TO %L (FORMAT csv)$q$, days, days::bigint * per_day, file);
    ELSE
        EXECUTE format($q$COPY (
            SELECT -g, now() - random() * (%s * interval '1 day'),
                   'u' || floor(exp(random() * ln(1000000)))::int,
                   CASE WHEN pr < 0.45 THEN 'ios' WHEN pr < 0.80 THEN 'android' ELSE 'web' END,
                   round((exp(random() * 6) + random())::numeric, 2)
              FROM generate_series(1, %s) AS g,
                   LATERAL (SELECT CASE WHEN g <= 3 THEN (ARRAY[0.1, 0.5, 0.9])[g] ELSE random() END AS pr) AS x
            ) TO %L (FORMAT csv)$q$, days, days::bigint * per_day, file);
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

-- The baseline: COPY of the same rows into plain tables with the same
-- columns and PRIMARY KEY; rows/s and WAL bytes per row (the table is
-- created and committed first: wal_level replica logs every row anyway).
-- They are emptied by TRUNCATE right after, which cancels an autovacuum
-- that started on them meanwhile (an ERROR line in the server log that
-- the soak counts): autovacuum stays off them.
CREATE TABLE e2e.app_copy (event_id uuid PRIMARY KEY, event_time timestamptz NOT NULL, user_id text NOT NULL,
                           platform text NOT NULL, type text NOT NULL) WITH (autovacuum_enabled = off);
CREATE TABLE e2e.orders_copy (order_id bigint PRIMARY KEY, event_time timestamptz NOT NULL, user_id text NOT NULL,
                              platform text NOT NULL, amount numeric(12,2) NOT NULL CHECK (amount >= 0))
    WITH (autovacuum_enabled = off);

CREATE PROCEDURE e2e.timed_copy(tbl text, file text,
                                INOUT rows bigint DEFAULT NULL, INOUT seconds float8 DEFAULT NULL,
                                INOUT wal_bytes bigint DEFAULT NULL)
    LANGUAGE plpgsql AS $fn$
DECLARE
    t0 timestamptz := clock_timestamp();
    l0 pg_lsn := pg_current_wal_lsn();
BEGIN
    EXECUTE format('COPY e2e.%I FROM %L (FORMAT csv)', tbl, file);
    GET DIAGNOSTICS rows = ROW_COUNT;
    COMMIT;
    seconds := extract(epoch FROM clock_timestamp() - t0);
    wal_bytes := pg_current_wal_lsn() - l0;
END
$fn$;

-- The history through the bulk path: COPY into pipeline.<src>_load.
CREATE PROCEDURE e2e.timed_load(src text, file text, INOUT seconds float8 DEFAULT NULL)
    LANGUAGE plpgsql AS $fn$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE format('COPY pipeline.%I FROM %L (FORMAT csv)', src || '_load', file);
    COMMIT;
    seconds := extract(epoch FROM clock_timestamp() - t0);
END
$fn$;

-- ---------------------------------------------------------------------
-- Runs: what the clients, the monitor and the close loop record
-- ---------------------------------------------------------------------

CREATE TABLE e2e.runs (
    run             text PRIMARY KEY,
    first_batch     bigint NOT NULL,           -- batches after this one are the run's
    started_at      timestamptz NOT NULL,
    lsn_start       pg_lsn NOT NULL,
    ingest_ended_at timestamptz,               -- set by e2e.sh when the clients are done
    drained_at      timestamptz,               -- set by the monitor: every batch folded by every metric
    gave_up_at      timestamptz,               -- set by the monitor: not drained within its limit
    lsn_end         pg_lsn
);
-- Written by the ingest clients right after each commit (UNLOGGED: no WAL
-- flush, as in hot.sql).
CREATE UNLOGGED TABLE e2e.commits (batch_id bigint PRIMARY KEY, committed_at timestamptz NOT NULL);
-- When each metric's checkpoint first covered each batch.
CREATE UNLOGGED TABLE e2e.seen (metric text NOT NULL, batch_id bigint NOT NULL, seen_at timestamptz NOT NULL,
                                PRIMARY KEY (batch_id, metric));
-- The spike windows of a run (e2e.sh inserts and closes them).
CREATE UNLOGGED TABLE e2e.phases (run text NOT NULL, started_at timestamptz NOT NULL, ended_at timestamptz);
-- Samples, one set every second.
CREATE UNLOGGED TABLE e2e.status_samples (run text, t timestamptz, metric text, backlog bigint,
                                          lag_seconds float8, last_fold_ms float8);
CREATE UNLOGGED TABLE e2e.mem_samples (run text, t timestamptz, kind text, pid integer,
                                       rss_anon_kb bigint, hwm_kb bigint, shmem_kb bigint, file_kb bigint);
CREATE UNLOGGED TABLE e2e.dead_samples (run text, t timestamptz, relname name, n_dead_tup bigint,
                                        n_live_tup bigint, autovacuum_count bigint);
CREATE UNLOGGED TABLE e2e.close_log (run text, t timestamptz, ms float8, actions bigint);
-- pgbench --log of the dashboard clients: script 0 (a) sales_live, 1 (b)
-- sales_daily, 2 (a) on the plain table, 3 (b) on the plain table
CREATE UNLOGGED TABLE e2e.dash_log (run text, client integer, tx bigint, us bigint, script integer,
                                    epoch bigint, epoch_us bigint, lag_us bigint);
CREATE UNLOGGED TABLE e2e.dash_raw (client integer, tx bigint, us bigint, script integer,
                                    epoch bigint, epoch_us bigint, lag_us bigint);

CREATE FUNCTION e2e.start_run(run text) RETURNS void LANGUAGE sql AS $fn$
    INSERT INTO e2e.runs (run, first_batch, started_at, lsn_start)
    SELECT run, coalesce((SELECT max(batch_id) FROM pipeline.batch_log), 0), clock_timestamp(), pg_current_wal_lsn()
$fn$;

-- Memory of one process from /proc (kB); NULLs if it is gone.
CREATE FUNCTION e2e.proc_mem(pid integer, OUT rss_anon_kb bigint, OUT hwm_kb bigint,
                             OUT shmem_kb bigint, OUT file_kb bigint)
    LANGUAGE sql AS $fn$
    SELECT max(v) FILTER (WHERE k = 'RssAnon'), max(v) FILTER (WHERE k = 'VmHWM'),
           max(v) FILTER (WHERE k = 'RssShmem'), max(v) FILTER (WHERE k = 'RssFile')
      FROM (SELECT m[1] AS k, m[2]::bigint AS v
              FROM regexp_matches(coalesce(pg_read_file('/proc/' || pid || '/status', 0, 65536, true), ''),
                                  '(\w+):\s+(\d+) kB', 'g') AS m) AS s
$fn$;

-- One set of samples: pipeline.status per metric; memory of the worker and
-- of the ingest backends; dead tuples of the tables the pipeline updates.
CREATE FUNCTION e2e.sample(run text) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    t timestamptz := clock_timestamp();
BEGIN
    -- the metrics' rows (the view may have rows of other kinds, metric NULL)
    INSERT INTO e2e.status_samples
    SELECT run, t, s.metric, s.backlog, s.lag_seconds, s.last_fold_ms FROM pipeline.status AS s
     WHERE s.metric IS NOT NULL;
    INSERT INTO e2e.mem_samples
    SELECT run, t, p.kind, p.pid, m.*
      FROM (SELECT 'worker' AS kind, w.pid FROM pipeline.workers AS w
             WHERE w.kind = 'worker' AND w.database = current_database() AND w.pid IS NOT NULL
            UNION ALL
            SELECT a.application_name, a.pid FROM pg_stat_activity AS a
             WHERE a.datname = current_database() AND a.application_name IN ('e2e_ingest', 'e2e_spike')) AS p,
           LATERAL e2e.proc_mem(p.pid) AS m
     WHERE m.rss_anon_kb IS NOT NULL;
    INSERT INTO e2e.dead_samples
    SELECT run, t, u.relname, u.n_dead_tup, u.n_live_tup, u.autovacuum_count
      FROM pg_stat_user_tables AS u
     WHERE u.schemaname = 'pipeline'
       AND (u.relname IN ('batch_log', 'metric_catalog', 'day_closures') OR u.relname LIKE '%\_hot'
            OR u.relname LIKE '%\_daily');
END
$fn$;

-- The monitor of a run.  Every `poll`: for each metric whose checkpoint
-- (fold_snapshot) moved, records the run's batches of its source the new
-- checkpoint covers (the fold's hot rows commit with the checkpoint: from
-- then on the batch is in metrics.<metric>_live).  Every `sample_every`:
-- e2e.sample().  Once e2e.runs says the ingest ended, waits until every
-- batch of the run is covered by every metric of its source (drained_at),
-- or gives up after `drain` (gave_up_at).
CREATE PROCEDURE e2e.monitor(run text, poll interval, sample_every interval, drain interval)
    LANGUAGE plpgsql AS $fn$
DECLARE
    first bigint;
    names text[];
    srcs text[];
    prev pg_snapshot[];
    snap pg_snapshot;
    next_sample timestamptz := clock_timestamp();
    stop_at timestamptz;
BEGIN
    SELECT r.first_batch INTO STRICT first FROM e2e.runs AS r WHERE r.run = monitor.run;
    SELECT array_agg(m.metric ORDER BY m.metric), array_agg(m.source ORDER BY m.metric),
           array_agg(m.fold_snapshot ORDER BY m.metric)
      INTO names, srcs, prev FROM pipeline.metric_catalog AS m;
    COMMIT;
    LOOP
        FOR i IN 1 .. array_length(names, 1) LOOP
            SELECT m.fold_snapshot INTO STRICT snap FROM pipeline.metric_catalog AS m WHERE m.metric = names[i];
            IF snap::text <> prev[i]::text THEN
                INSERT INTO e2e.seen
                SELECT names[i], b.batch_id, clock_timestamp()
                  FROM pipeline.batch_log AS b
                 WHERE b.source = srcs[i]
                   AND b.xid >= pg_snapshot_xmin(prev[i])
                   AND NOT pg_visible_in_snapshot(b.xid, prev[i])
                   AND pg_visible_in_snapshot(b.xid, snap)
                   AND b.batch_id > first
                ON CONFLICT DO NOTHING;
                prev[i] := snap;
            END IF;
        END LOOP;
        IF clock_timestamp() >= next_sample THEN
            PERFORM e2e.sample(run);
            next_sample := greatest(next_sample + sample_every, clock_timestamp());
        END IF;
        IF stop_at IS NULL
           AND EXISTS (SELECT FROM e2e.runs AS r WHERE r.run = monitor.run AND r.ingest_ended_at IS NOT NULL) THEN
            stop_at := clock_timestamp() + drain;
        END IF;
        COMMIT;
        IF stop_at IS NOT NULL THEN
            IF NOT EXISTS (SELECT FROM unnest(srcs, prev) AS m(src, s), pipeline.batch_log AS b
                            WHERE b.source = m.src AND b.xid >= pg_snapshot_xmin(m.s)
                              AND NOT pg_visible_in_snapshot(b.xid, m.s) AND b.batch_id > first) THEN
                UPDATE e2e.runs AS r SET drained_at = clock_timestamp() WHERE r.run = monitor.run;
                EXIT;
            END IF;
            IF clock_timestamp() > stop_at THEN
                UPDATE e2e.runs AS r SET gave_up_at = clock_timestamp() WHERE r.run = monitor.run;
                EXIT;
            END IF;
        END IF;
        PERFORM pg_sleep(extract(epoch FROM poll));
    END LOOP;
    PERFORM e2e.sample(run);
    COMMIT;
END
$fn$;

-- close_days() (as_of = now()) every `every` until the run's monitor is
-- done, each call logged.
CREATE PROCEDURE e2e.close_loop(run text, every interval)
    LANGUAGE plpgsql AS $fn$
DECLARE
    t0 timestamptz;
    n bigint;
BEGIN
    LOOP
        t0 := clock_timestamp();
        SELECT count(*) INTO n FROM pipeline.close_days();
        INSERT INTO e2e.close_log VALUES (run, t0, extract(epoch FROM clock_timestamp() - t0) * 1000, n);
        COMMIT;
        WHILE clock_timestamp() < t0 + every LOOP
            EXIT WHEN EXISTS (SELECT FROM e2e.runs AS r WHERE r.run = close_loop.run
                                AND (r.drained_at IS NOT NULL OR r.gave_up_at IS NOT NULL));
            PERFORM pg_sleep(0.1);
        END LOOP;
        EXIT WHEN EXISTS (SELECT FROM e2e.runs AS r WHERE r.run = close_loop.run
                            AND (r.drained_at IS NOT NULL OR r.gave_up_at IS NOT NULL));
    END LOOP;
END
$fn$;

-- ---------------------------------------------------------------------
-- Results
-- ---------------------------------------------------------------------

-- The figures of a run.  Rates count events received (what producers
-- sent) in batches whose commit falls in the window: the spike windows
-- (e2e.phases) and the rest of [first commit, ingest end].  Latency: a
-- batch is visible once every metric of its source covers it.  Checks
-- that every batch of the run has a commit time and was seen (unless the
-- monitor gave up).
CREATE FUNCTION e2e.run_result(run text,
        OUT batches bigint, OUT received bigint, OUT accepted bigint, OUT duplicates bigint, OUT rejected bigint,
        OUT base_rate float8, OUT spike_rate float8, OUT total_rate float8,
        OUT p50_ms float8, OUT p99_ms float8, OUT max_ms float8,
        OUT backlog_min bigint, OUT backlog_med float8, OUT backlog_max bigint,
        OUT lag_min float8, OUT lag_med float8, OUT lag_max float8, OUT fold_ms_med float8, OUT fold_ms_max float8,
        OUT drain_s float8, OUT drained boolean, OUT wal_per_event float8,
        OUT close_runs bigint, OUT close_ms_med float8, OUT close_ms_max float8)
    LANGUAGE plpgsql AS $fn$
DECLARE
    r e2e.runs;
    t0 timestamptz;
    t1 timestamptz;
    spike_s float8;
    spike_ev bigint;
    bad bigint;
BEGIN
    SELECT * INTO STRICT r FROM e2e.runs AS x WHERE x.run = run_result.run;
    SELECT count(*), sum(b.received), sum(b.accepted), sum(b.duplicates), sum(b.rejected),
           min(c.committed_at), max(c.committed_at), count(*) FILTER (WHERE c.batch_id IS NULL)
      INTO batches, received, accepted, duplicates, rejected, t0, t1, bad
      FROM pipeline.batch_log AS b LEFT JOIN e2e.commits AS c USING (batch_id)
     WHERE b.batch_id > r.first_batch AND b.source IN ('app_events', 'orders');
    IF batches = 0 OR bad > 0 THEN
        RAISE EXCEPTION 'run %: % batches, % without a commit time', run, batches, bad;
    END IF;
    -- from the run's start (clients connecting) to its last commit
    t0 := r.started_at;
    total_rate := received / extract(epoch FROM t1 - t0);
    SELECT coalesce(sum(extract(epoch FROM least(p.ended_at, t1) - p.started_at)), 0),
           coalesce(sum((SELECT sum(b.received) FROM pipeline.batch_log AS b JOIN e2e.commits AS c USING (batch_id)
                          WHERE b.batch_id > r.first_batch
                            AND c.committed_at >= p.started_at AND c.committed_at < p.ended_at)), 0)
      INTO spike_s, spike_ev
      FROM e2e.phases AS p WHERE p.run = run_result.run AND p.ended_at IS NOT NULL;
    IF spike_s > 0 THEN
        spike_rate := spike_ev / spike_s;
    END IF;
    base_rate := (received - spike_ev) / (extract(epoch FROM t1 - t0) - spike_s);

    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l), percentile_cont(0.99) WITHIN GROUP (ORDER BY l), max(l)
      INTO p50_ms, p99_ms, max_ms
      FROM (SELECT extract(epoch FROM v.seen_at - c.committed_at) * 1000 AS l
              FROM pipeline.batch_log AS b JOIN e2e.commits AS c USING (batch_id)
              LEFT JOIN LATERAL (SELECT max(s.seen_at) AS seen_at, count(*) AS n
                                   FROM e2e.seen AS s WHERE s.batch_id = b.batch_id) AS v ON true
             WHERE b.batch_id > r.first_batch
               AND v.n = (SELECT count(*) FROM pipeline.metric_catalog AS m WHERE m.source = b.source)) AS x;
    IF r.gave_up_at IS NULL AND (SELECT count(*) FROM e2e.seen AS s WHERE s.batch_id > r.first_batch)
            <> (SELECT count(*) FROM pipeline.batch_log AS b JOIN pipeline.metric_catalog AS m USING (source)
                 WHERE b.batch_id > r.first_batch) THEN
        RAISE EXCEPTION 'run %: drained, but not every batch was seen by every metric', run;
    END IF;

    -- backlog: all metrics' together per sample; lag: the worst metric's
    SELECT min(bl), percentile_cont(0.5) WITHIN GROUP (ORDER BY bl), max(bl),
           min(lg), percentile_cont(0.5) WITHIN GROUP (ORDER BY lg), max(lg)
      INTO backlog_min, backlog_med, backlog_max, lag_min, lag_med, lag_max
      FROM (SELECT sum(s.backlog) AS bl, max(s.lag_seconds) AS lg
              FROM e2e.status_samples AS s WHERE s.run = run_result.run GROUP BY s.t) AS x;
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY fm), max(fm) INTO fold_ms_med, fold_ms_max
      FROM (SELECT sum(s.last_fold_ms) AS fm FROM e2e.status_samples AS s
             WHERE s.run = run_result.run GROUP BY s.t) AS x;
    drained := r.drained_at IS NOT NULL;
    drain_s := extract(epoch FROM coalesce(r.drained_at, r.gave_up_at) - r.ingest_ended_at);
    wal_per_event := (r.lsn_end - r.lsn_start) / nullif(accepted, 0);
    SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY c.ms), max(c.ms)
      INTO close_runs, close_ms_med, close_ms_max FROM e2e.close_log AS c WHERE c.run = run_result.run;
END
$fn$;

-- Memory of a run: per kind (worker, e2e_ingest, e2e_spike), private RSS
-- (RssAnon) of each process at its first sample at or after `warm` into
-- the run and at its last sample (summed over the processes of the kind
-- present at both), and the highest private peak (VmHWM - RssShmem -
-- RssFile, as ingest.sql) of any of its processes, in MB.
CREATE FUNCTION e2e.mem_result(run text, warm interval)
    RETURNS TABLE (kind text, processes bigint, start_mb float8, end_mb float8, peak_private_mb float8)
    LANGUAGE sql AS $fn$
    WITH s AS (
        SELECT m.*, r.started_at FROM e2e.mem_samples AS m JOIN e2e.runs AS r USING (run)
         WHERE m.run = mem_result.run),
    firsts AS (
        SELECT DISTINCT ON (s.kind, s.pid) s.kind, s.pid, s.rss_anon_kb
          FROM s WHERE s.t >= s.started_at + warm ORDER BY s.kind, s.pid, s.t),
    lasts AS (
        SELECT DISTINCT ON (s.kind, s.pid) s.kind, s.pid, s.rss_anon_kb
          FROM s ORDER BY s.kind, s.pid, s.t DESC)
    SELECT f.kind, count(*), sum(f.rss_anon_kb) / 1024.0, sum(l.rss_anon_kb) / 1024.0,
           (SELECT max(s.hwm_kb - s.shmem_kb - s.file_kb) / 1024.0 FROM s WHERE s.kind = f.kind)
      FROM firsts AS f JOIN lasts AS l USING (kind, pid)
     GROUP BY f.kind ORDER BY f.kind
$fn$;

-- Dead tuples of a run: per table, the highest n_dead_tup sampled, the
-- last, the autovacuum threshold at that size (50 + 0.2 * live), and how
-- many autovacuums ran during the run.
CREATE FUNCTION e2e.dead_result(run text)
    RETURNS TABLE (relname name, max_dead bigint, last_dead bigint, live bigint, threshold float8, autovacuums bigint)
    LANGUAGE sql AS $fn$
    SELECT d.relname, max(d.n_dead_tup),
           (array_agg(d.n_dead_tup ORDER BY d.t DESC))[1],
           (array_agg(d.n_live_tup ORDER BY d.t DESC))[1],
           50 + 0.2 * (array_agg(d.n_live_tup ORDER BY d.t DESC))[1],
           max(d.autovacuum_count) - min(d.autovacuum_count)
      FROM e2e.dead_samples AS d WHERE d.run = dead_result.run
     GROUP BY d.relname ORDER BY 1
$fn$;

-- Dashboard latencies of a run: per script, p50 and p95 of the service
-- time (pgbench's time minus its schedule lag), ms.
CREATE FUNCTION e2e.dash_result(run text)
    RETURNS TABLE (script integer, queries bigint, p50_ms float8, p95_ms float8, max_ms float8)
    LANGUAGE sql AS $fn$
    SELECT d.script, count(*),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY (d.us - coalesce(d.lag_us, 0)) / 1000.0),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY (d.us - coalesce(d.lag_us, 0)) / 1000.0),
           max((d.us - coalesce(d.lag_us, 0)) / 1000.0)
      FROM e2e.dash_log AS d WHERE d.run = dash_result.run
     GROUP BY d.script ORDER BY 1
$fn$;

-- The dashboards' baseline: the same rows in plain tables (what the views
-- return now), indexed as a hand-made dashboard table would be.
CREATE FUNCTION e2e.make_plain() RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    DROP TABLE IF EXISTS e2e.sales_live_plain, e2e.sales_daily_plain;
    CREATE TABLE e2e.sales_live_plain AS SELECT * FROM metrics.sales_live;
    CREATE INDEX ON e2e.sales_live_plain (bucket);
    CREATE TABLE e2e.sales_daily_plain AS SELECT * FROM metrics.sales_daily;
    CREATE INDEX ON e2e.sales_daily_plain (day);
    ANALYZE e2e.sales_live_plain, e2e.sales_daily_plain;
END
$fn$;

-- Sanity of the generated data: every platform and type appears, in the
-- raw tables and in the templates.
CREATE FUNCTION e2e.check_mix() RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    a bigint := (SELECT count(DISTINCT (platform, type)) FROM pipeline.app_events_raw);
    o bigint := (SELECT count(DISTINCT platform) FROM pipeline.orders_raw);
    ta bigint := (SELECT count(DISTINCT m[1]) FROM e2e.templates AS t,
                         regexp_matches(t.payload, '"platform":"(\w+)","type":"(\w+)"', 'g') AS m
                   WHERE t.source = 'app_events');
    tor bigint := (SELECT count(DISTINCT m[1]) FROM e2e.templates AS t,
                          regexp_matches(t.payload, '"platform":"(\w+)"', 'g') AS m
                    WHERE t.source = 'orders');
BEGIN
    IF a <> 18 OR o <> 3 OR ta <> 3 OR tor <> 3 THEN
        RAISE EXCEPTION 'e2e data: % (platform, type) pairs in app_events, % platforms in orders, % and % in the templates',
            a, o, ta, tor;
    END IF;
END
$fn$;

-- The same split by when the query started: during a spike window (or
-- the second after it) or not.
CREATE FUNCTION e2e.dash_split(run text)
    RETURNS TABLE (script integer, in_spike boolean, queries bigint, p50_ms float8, p95_ms float8)
    LANGUAGE sql AS $fn$
    SELECT d.script, s.in_spike, count(*),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY (d.us - coalesce(d.lag_us, 0)) / 1000.0),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY (d.us - coalesce(d.lag_us, 0)) / 1000.0)
      FROM e2e.dash_log AS d,
           LATERAL (SELECT EXISTS (SELECT FROM e2e.phases AS p
                                    WHERE p.run = d.run
                                      AND to_timestamp(d.epoch + d.epoch_us / 1e6 - d.us / 1e6)
                                          BETWEEN p.started_at AND p.ended_at + interval '1 s') AS in_spike) AS s
     WHERE d.run = dash_split.run
     GROUP BY 1, 2 ORDER BY 1, 2
$fn$;

-- Private RSS (RssAnon, MB) of the worker and of the base ingest backends
-- over a run: at the first sample of the kind at or after 0, 25, 50, 75
-- and 100% of the time between the kind's first and last samples (summed
-- over the processes of the kind sampled then).
CREATE FUNCTION e2e.mem_curve(run text)
    RETURNS TABLE (kind text, pct integer, mb float8)
    LANGUAGE sql AS $fn$
    WITH s AS (SELECT m.* FROM e2e.mem_samples AS m WHERE m.run = mem_curve.run
                                                     AND m.kind IN ('worker', 'e2e_ingest')),
    span AS (SELECT s.kind, min(s.t) AS t0, max(s.t) AS t1 FROM s GROUP BY s.kind)
    SELECT span.kind, p.pct,
           (SELECT sum(s.rss_anon_kb) / 1024.0 FROM s
             WHERE s.kind = span.kind
               AND s.t = (SELECT min(x.t) FROM s AS x
                           WHERE x.kind = span.kind AND x.t >= span.t0 + (span.t1 - span.t0) * p.pct / 100.0))
      FROM span, (VALUES (0), (25), (50), (75), (100)) AS p(pct)
     ORDER BY 1, 2
$fn$;
