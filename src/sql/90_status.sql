-- pipeline.status: the one monitoring surface.  One row per source, per
-- metric and per pg_cron job of this database, told apart by kind; the
-- columns of one kind are NULL on the rows of the others, and every row
-- carries the database worker's state.
--
-- A dashboard polls it every few seconds, so every part is bounded:
--   source rows read the receipts of the last 15 minutes through
--     batch_log (source, received_at), and the lateness sketch reads the
--     raw rows of the newest batches only (at most 1 000 batches, 10 000
--     events), found by batch id (BRIN) within their event-time range;
--   metric rows read the fold checkpoint, day_closures, the source's
--     partition list and the corrections of the last 7 days;
--   job rows cost one connection to pg_cron's database, whose failure
--     (pg_hba.conf, privileges, a 5-second timeout) is shown as a row, not
--     raised: the view never fails because the cron side is unreachable.
-- Filtering on kind, metric or source prunes the other kinds' branches at
-- plan time (their columns are constants), so WHERE metric = 'm' neither
-- reads receipts nor connects anywhere.
--
-- The view runs as its owner (the catalogs); the functions it calls run as
-- the caller, so lateness needs SELECT on the source's raw table,
-- corrections need SELECT on metrics.<m>_corrections, and the jobs are the
-- ones pg_cron shows the caller.  What the caller may not read is NULL.

-- The arrival lateness sketch of a source's newest events: batches received
-- since a point in time, newest first, until max_events events (whole
-- batches, at most 1 000 of them); the raw read is cut at max_events rows.
CREATE FUNCTION pipeline._recent_lateness(source text, since timestamptz, max_events bigint)
    RETURNS pipeline.lateness_sketch
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    ids bigint[];
    lo timestamptz;
    hi timestamptz;
BEGIN
    SELECT * INTO s FROM pipeline.source_catalog AS c WHERE c.source = _recent_lateness.source;
    IF NOT FOUND OR NOT pg_catalog.has_table_privilege(s.raw_table, 'SELECT') THEN
        RETURN NULL;
    END IF;
    SELECT pg_catalog.array_agg(x.batch_id), pg_catalog.min(x.min_event_time), pg_catalog.max(x.max_event_time)
      INTO ids, lo, hi
      FROM (SELECT n.batch_id, n.min_event_time, n.max_event_time,
                   pg_catalog.sum(n.accepted) OVER (ORDER BY n.received_at DESC, n.batch_id DESC) - n.accepted AS before
              FROM (SELECT b.batch_id, b.min_event_time, b.max_event_time, b.received_at, b.accepted
                      FROM pipeline.batch_log AS b
                     WHERE b.source = s.source AND b.received_at >= since AND b.accepted > 0
                     ORDER BY b.received_at DESC
                     LIMIT 1000) AS n) AS x
     WHERE x.before < max_events;
    RETURN pipeline._batches_lateness(s, ids, lo, hi, max_events);
END
$fn$;
COMMENT ON FUNCTION pipeline._recent_lateness(text, timestamptz, bigint) IS
    'internal: the arrival lateness sketch (batch received_at - event time) of a source''s newest events received '
    'since a time, at most max_events of them from at most 1 000 batches; NULL when there are none or the caller '
    'may not read the raw table';

-- A metric's corrections created since a point in time, read through its
-- serving view (so with the caller's privileges on it): the number of
-- correction rows and the late events behind them.
CREATE FUNCTION pipeline._recent_corrections(metric text, since timestamptz,
                                             OUT corrections bigint, OUT late_events bigint)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    v regclass := pg_catalog.to_regclass(pg_catalog.format('metrics.%I', metric || '_corrections'));
BEGIN
    IF v IS NULL OR NOT pg_catalog.has_table_privilege(v, 'SELECT') THEN
        RETURN;
    END IF;
    EXECUTE pg_catalog.format(
        'SELECT pg_catalog.count(*), COALESCE(pg_catalog.sum(c.late_events), 0)::pg_catalog.int8 '
        '  FROM %s AS c WHERE c.created_at OPERATOR(pg_catalog.>=) $1', v)
      INTO corrections, late_events USING since;
END
$fn$;
COMMENT ON FUNCTION pipeline._recent_corrections(text, timestamptz) IS
    'internal: the correction rows of a metric created since a time and their late events; NULLs when the caller '
    'may not read metrics.<metric>_corrections';

-- The job rows: pipeline.cron_jobs(), or, when reading them fails, one
-- row saying why (error).  pg_cron not loaded or not installed is no rows:
-- nothing is scheduled there.  A cancel of this statement is not caught
-- (plpgsql's OTHERS excludes query_canceled; src/schedule.c reports a
-- timeout on the other side as a connection failure, not as a cancel).
-- cron_jobs() materializes its rows before returning any, so a failure
-- leaves no partial set behind.
CREATE FUNCTION pipeline._status_jobs()
    RETURNS TABLE (jobname text, username text, schedule text, command text, active boolean,
                   last_run_start timestamptz, last_run_end timestamptz, last_run_status text,
                   last_run_message text, error text)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    msg text;
    hint text;
BEGIN
    BEGIN
        RETURN QUERY
            SELECT j.jobname, j.username, j.schedule, j.command, j.active, j.last_run_start, j.last_run_end,
                   j.last_run_status, j.last_run_message, NULL::text
              FROM pipeline.cron_jobs(missing_ok => true) AS j;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
        error := msg || CASE WHEN hint <> '' THEN ' (hint: ' || hint || ')' ELSE '' END;
        RETURN NEXT;
    END;
END
$fn$;
COMMENT ON FUNCTION pipeline._status_jobs() IS
    'internal: pipeline.cron_jobs(missing_ok => true) for pipeline.status, or one row with the error that reading '
    'the jobs raised';

CREATE VIEW pipeline.status AS
    SELECT u.kind, u.name, u.metric, u.source,
           u.last_fold_at, u.last_fold_ms, u.events_folded, u.backlog, u.lag_seconds, u.watermark,
           u.failures, u.last_error, u.last_error_at,
           w.state AS worker_state, w.last_tick AS worker_last_tick,
           u.last_batch_at, u.events_per_s_1m, u.events_per_s_5m, u.events_per_s_15m,
           u.received_15m, u.accept_rate_15m, u.duplicate_rate_15m, u.reject_rate_15m,
           u.lateness_events, u.lateness_p50, u.lateness_p95, u.lateness_p99,
           u.days_open, u.days_provisional, u.days_held, u.days_frozen,
           u.corrections_7d, u.late_events_7d,
           u.job_user, u.job_schedule, u.job_command, u.job_active,
           u.last_run_start, u.last_run_end, u.last_run_status, u.last_run_message
      FROM (
        -- per metric: the fold (as before), the days, the corrections
        SELECT 'metric'::text AS kind, m.metric AS name, m.metric, m.source,
               m.last_fold_at, m.last_fold_ms, m.events_folded,
               COALESCE(p.backlog, 0) AS backlog,
               CASE WHEN p.oldest IS NULL THEN 0
                    ELSE pg_catalog.date_part('epoch', pg_catalog.now() - p.oldest) END AS lag_seconds,
               m.max_event_time - s.allowed_lateness AS watermark,
               -- an error may quote raw values: for the metric's owner only
               m.failures,
               CASE WHEN pg_catalog.pg_has_role(current_user, m.owner, 'USAGE') THEN m.last_error END AS last_error,
               m.last_error_at,
               NULL::timestamptz AS last_batch_at, NULL::numeric AS events_per_s_1m,
               NULL::numeric AS events_per_s_5m, NULL::numeric AS events_per_s_15m,
               NULL::bigint AS received_15m, NULL::numeric AS accept_rate_15m,
               NULL::numeric AS duplicate_rate_15m, NULL::numeric AS reject_rate_15m,
               NULL::bigint AS lateness_events, NULL::interval AS lateness_p50,
               NULL::interval AS lateness_p95, NULL::interval AS lateness_p99,
               (SELECT pg_catalog.count(*) FROM pipeline._source_days(m.source) AS d(day)
                 WHERE NOT EXISTS (SELECT FROM pipeline.day_closures AS c
                                    WHERE c.metric = m.metric AND c.day = d.day)) AS days_open,
               COALESCE(dc.provisional, 0) AS days_provisional,
               COALESCE(dc.held, 0) AS days_held,
               COALESCE(dc.frozen, 0) AS days_frozen,
               cr.corrections AS corrections_7d, cr.late_events AS late_events_7d,
               NULL::text AS job_user, NULL::text AS job_schedule, NULL::text AS job_command,
               NULL::boolean AS job_active, NULL::timestamptz AS last_run_start,
               NULL::timestamptz AS last_run_end, NULL::text AS last_run_status, NULL::text AS last_run_message
          FROM pipeline.metric_catalog AS m
          JOIN pipeline.source_catalog AS s ON s.source = m.source
          LEFT JOIN LATERAL (
                SELECT pg_catalog.sum(b.accepted) AS backlog, pg_catalog.min(b.received_at) AS oldest
                  FROM pipeline.batch_log AS b
                 WHERE b.source = m.source
                   AND b.xid >= pg_catalog.pg_snapshot_xmin(m.fold_snapshot)
                   AND NOT pg_catalog.pg_visible_in_snapshot(b.xid, m.fold_snapshot)
                   AND b.accepted > 0) AS p ON true
          LEFT JOIN LATERAL (
                SELECT pg_catalog.count(*) FILTER (WHERE c.status = 'provisional') AS provisional,
                       pg_catalog.count(*) FILTER (WHERE c.status = 'held') AS held,
                       pg_catalog.count(*) FILTER (WHERE c.status = 'frozen') AS frozen
                  FROM pipeline.day_closures AS c
                 WHERE c.metric = m.metric) AS dc ON true
          LEFT JOIN LATERAL pipeline._recent_corrections(m.metric, pg_catalog.now() - interval '7 days') AS cr ON true
        UNION ALL
        -- per source: throughput, outcome rates, lateness, watermark, freshness
        SELECT 'source'::text, s.source, NULL::text, s.source,
               NULL::timestamptz, NULL::double precision, NULL::bigint, NULL::numeric,
               pg_catalog.date_part('epoch', pg_catalog.now() - la.last_batch_at),
               wm.max_event_time - s.allowed_lateness,
               NULL::integer, NULL::text, NULL::timestamptz,
               la.last_batch_at,
               pg_catalog.round(COALESCE(r.received_1m, 0) / 60.0, 3),
               pg_catalog.round(COALESCE(r.received_5m, 0) / 300.0, 3),
               pg_catalog.round(COALESCE(r.received_15m, 0) / 900.0, 3),
               COALESCE(r.received_15m, 0)::bigint,
               pg_catalog.round(r.accepted_15m / NULLIF(r.received_15m, 0), 4),
               pg_catalog.round(r.duplicates_15m / NULLIF(r.received_15m, 0), 4),
               pg_catalog.round(r.rejected_15m / NULLIF(r.received_15m, 0), 4),
               CASE WHEN pg_catalog.has_table_privilege(s.raw_table, 'SELECT')
                    THEN COALESCE(pipeline.lateness_count(l.sketch), 0) END,
               pipeline.lateness_quantile(l.sketch, 0.5),
               pipeline.lateness_quantile(l.sketch, 0.95),
               pipeline.lateness_quantile(l.sketch, 0.99),
               NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint,
               NULL::text, NULL::text, NULL::text, NULL::boolean,
               NULL::timestamptz, NULL::timestamptz, NULL::text, NULL::text
          FROM pipeline.source_catalog AS s
          LEFT JOIN LATERAL (
                SELECT pg_catalog.max(b.received_at) AS last_batch_at
                  FROM pipeline.batch_log AS b
                 WHERE b.source = s.source AND b.accepted > 0) AS la ON true
          LEFT JOIN LATERAL (
                SELECT pg_catalog.max(b.max_event_time) AS max_event_time
                  FROM pipeline.batch_log AS b
                 WHERE b.source = s.source AND b.accepted > 0) AS wm ON true
          LEFT JOIN LATERAL (
                SELECT pg_catalog.sum(b.received) FILTER (WHERE b.received_at >= pg_catalog.now() - interval '1 minute') AS received_1m,
                       pg_catalog.sum(b.received) FILTER (WHERE b.received_at >= pg_catalog.now() - interval '5 minutes') AS received_5m,
                       pg_catalog.sum(b.received) AS received_15m,
                       pg_catalog.sum(b.accepted) AS accepted_15m,
                       pg_catalog.sum(b.duplicates) AS duplicates_15m,
                       pg_catalog.sum(b.rejected) AS rejected_15m
                  FROM pipeline.batch_log AS b
                 WHERE b.source = s.source
                   AND b.received_at >= pg_catalog.now() - interval '15 minutes') AS r ON true
          LEFT JOIN LATERAL (
                SELECT pipeline._recent_lateness(s.source, pg_catalog.now() - interval '15 minutes', 10000) AS sketch
               ) AS l ON true
        UNION ALL
        -- per pg_cron job of this database: its last run; or why they could not be read
        SELECT 'job'::text, j.jobname, NULL::text, NULL::text,
               NULL::timestamptz, NULL::double precision, NULL::bigint, NULL::numeric,
               NULL::double precision, NULL::timestamptz, NULL::integer,
               CASE WHEN j.error IS NOT NULL THEN j.error
                    WHEN j.last_run_status = 'failed' THEN j.last_run_message END,
               CASE WHEN j.error IS NOT NULL THEN pg_catalog.now()
                    WHEN j.last_run_status = 'failed' THEN COALESCE(j.last_run_end, j.last_run_start) END,
               NULL::timestamptz, NULL::numeric, NULL::numeric, NULL::numeric,
               NULL::bigint, NULL::numeric, NULL::numeric, NULL::numeric,
               NULL::bigint, NULL::interval, NULL::interval, NULL::interval,
               NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint,
               j.username, j.schedule, j.command, j.active,
               j.last_run_start, j.last_run_end, j.last_run_status, j.last_run_message
          FROM pipeline._status_jobs() AS j
      ) AS u
      LEFT JOIN pipeline.workers AS w
        ON w.kind = 'worker' AND w.database = pg_catalog.current_database();
COMMENT ON VIEW pipeline.status IS
    'the monitoring surface, one row per source, metric and pg_cron job (kind; name).  Every row: worker_state, '
    'worker_last_tick.  Metric rows: last_fold_at, last_fold_ms, events_folded, backlog (accepted, not yet folded), '
    'lag_seconds (age of the oldest unfolded batch), watermark, failures, last_error (for members of the metric''s '
    'owner), days_open (raw data, not '
    'closed yet), days_provisional, days_held, days_frozen, corrections_7d and late_events_7d (corrections created in '
    'the last 7 days).  Source rows: last_batch_at and lag_seconds (since the last accepted batch), watermark (max '
    'accepted event time - allowed lateness), events_per_s_1m/_5m/_15m (received), received_15m, accept_rate_15m, '
    'duplicate_rate_15m, reject_rate_15m (shares of received), lateness_p50/_p95/_p99 of arrival - event time over '
    'lateness_events events (the newest, at most 10 000, of the last 15 minutes; NULL without SELECT on the raw '
    'table).  Job rows (the caller''s jobs, as pg_cron shows them): job_user, job_schedule, job_command, job_active, '
    'last_run_start, last_run_end, last_run_status, last_run_message; a failed last run is also last_error; when '
    'the jobs cannot be read, one job row with name NULL and the reason in last_error';
GRANT SELECT ON pipeline.status TO pipeline_reader, pipeline_writer;
