-- Retention and housekeeping: set_retention() and maintain(), which the
-- hourly pg_cron job runs.
--
-- A source keeps its raw events, dead letters and receipts forever unless
-- set_retention() says otherwise.  maintain(as_of):
--   - drops a source's raw day partitions, with their dedup ids, once the
--     day is frozen (for every metric of the source; past freeze_after for
--     a source without metrics) and ended more than `raw` before as_of.
--     Oldest first, and only while every older day went too: the days
--     dropped are always all the days up to one (raw_dropped_through), so
--     one date is the dedup horizon.  An event for a day up to the horizon
--     is dead-lettered by ingest (src/validate.c): its day's ids are gone,
--     so a re-sent event could not be told from a new one.  A held day, or
--     one a metric has not frozen yet, keeps itself and every later day.
--     Daily, corrections and restatements are kept: they are small.
--   - deletes dead letters received more than `dead_letters` before as_of;
--   - deletes receipts received more than `batches` before as_of, once
--     every metric of the source has folded them (a retried batch_key
--     older than that is a new batch: its events are still deduplicated by
--     their ids, or dead-lettered past the horizon);
--   - deletes the runs of this database's pipeline jobs from pg_cron's
--     cron.job_run_details after 7 days;
--   - keeps the receipts table's planner statistics fresh.
--
-- Who does what: the retention settings are written for a member of the
-- source's owner (as the extension owner: src/as_owner.c); maintain's
-- deletions of receipts and dead letters run as the extension owner; the
-- drop of a day, which touches the source owner's tables, runs as that
-- owner (pipeline._retire_day), so no trigger of theirs ever runs as
-- another role.  The whole of maintain is one transaction: a crash in the
-- middle loses and drops nothing.  A day is dropped under a lock on its
-- partition (ingest into that day waits, other days do not) and on the raw
-- table (DROP needs it), each taken with a 100 ms lock_timeout: a busy
-- source is skipped until the next run rather than queueing ingest behind
-- the drop.

CREATE TABLE pipeline.retention (
    source              text PRIMARY KEY REFERENCES pipeline.source_catalog ON DELETE CASCADE,
    raw                 interval,
    dead_letters        interval,
    batches             interval,
    -- the dedup horizon: every local day up to this one has been dropped
    raw_dropped_through date,
    -- the highest batch id whose receipt was deleted (checks of old days
    -- expect those receipts gone, not others)
    batches_deleted_through bigint,
    set_at              timestamptz NOT NULL DEFAULT pg_catalog.now(),
    set_by              name NOT NULL
);
COMMENT ON TABLE pipeline.retention IS
    'per source: how long raw events, dead letters and receipts are kept (NULL: forever), and the last day whose raw '
    'events maintain() dropped (the dedup horizon: later events for it are dead letters)';
GRANT SELECT ON pipeline.retention TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.retention', '');

CREATE FUNCTION pipeline._store_retention(source text, raw interval, dead_letters interval, batches interval)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._store_retention(text, interval, interval, interval) IS
    'internal: records a source''s retention settings (runs _store_retention_as_owner as the extension owner)';

CREATE FUNCTION pipeline._store_retention_as_owner(caller regrole, source text, raw interval,
        dead_letters interval, batches interval)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    owner oid := (SELECT s.owner FROM pipeline.source_catalog AS s WHERE s.source = _store_retention_as_owner.source);
BEGIN
    IF owner IS NULL OR NOT pg_catalog.pg_has_role(caller, owner, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to set the retention of source %', source
            USING ERRCODE = 'insufficient_privilege', HINT = 'Use pipeline.set_retention().';
    END IF;
    INSERT INTO pipeline.retention AS r (source, raw, dead_letters, batches, set_by)
        VALUES (source, raw, dead_letters, batches, caller::text)
        ON CONFLICT ON CONSTRAINT retention_pkey DO UPDATE
        SET raw = EXCLUDED.raw, dead_letters = EXCLUDED.dead_letters, batches = EXCLUDED.batches,
            set_at = pg_catalog.now(), set_by = EXCLUDED.set_by;
END
$fn$;
COMMENT ON FUNCTION pipeline._store_retention_as_owner(regrole, text, interval, interval, interval) IS
    'internal: the extension owner''s half of _store_retention; checks the caller is a member of the source''s owner';

CREATE FUNCTION pipeline.set_retention(source text, raw interval, dead_letters interval DEFAULT NULL,
        batches interval DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    v record;
BEGIN
    s := pipeline._source_of_owner(source, 'set the retention of', 'set');
    FOR v IN SELECT * FROM (VALUES ('raw', raw), ('dead_letters', dead_letters), ('batches', batches)) AS x(name, val)
              WHERE x.val IS NOT NULL AND (x.val <= interval '0' OR pg_catalog.isfinite(x.val) IS NOT TRUE)
    LOOP
        RAISE EXCEPTION '% retention must be a positive interval, not %', v.name, v.val
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass NULL to keep them forever (the default), or e.g. ''90 days''.';
    END LOOP;
    PERFORM pipeline._store_retention(s.source, raw, dead_letters, batches);
END
$fn$;
COMMENT ON FUNCTION pipeline.set_retention(text, interval, interval, interval) IS
    'sets how long a source keeps its raw events (days dropped by maintain() once frozen and that old), dead letters '
    'and receipts; NULL keeps them forever (the default for all three); a member of the source''s owner only';

-- One day of a source, dropped as the source's owner (src/as_owner.c:
-- pipeline_as_source_owner): its dedup ids, then its partition.  Returns
-- the number of events dropped.
CREATE FUNCTION pipeline._retire_day(source text, day date)
    RETURNS bigint
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_source_owner';
COMMENT ON FUNCTION pipeline._retire_day(text, date) IS
    'internal: drops one day of a source''s raw events with their dedup ids, as the source''s owner '
    '(runs _retire_day_as_source_owner; for maintain())';

CREATE FUNCTION pipeline._retire_day_as_source_owner(source text, day date)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET lock_timeout = '100ms'
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    part regclass;
    n bigint;
BEGIN
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS c WHERE c.source = _retire_day_as_source_owner.source;
    part := pipeline._day_partition(s, day);
    IF part IS NULL THEN
        RETURN 0;
    END IF;
    -- in-flight ingest into this day finishes first; no more comes
    EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', part);
    EXECUTE pg_catalog.format('DELETE FROM %s AS i USING %s AS r WHERE i.event_id OPERATOR(pg_catalog.=) r.%I',
                              s.ids_table, part, s.event_id);
    GET DIAGNOSTICS n = ROW_COUNT;
    EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', s.raw_table);
    EXECUTE pg_catalog.format('DROP TABLE %s', part);
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION pipeline._retire_day_as_source_owner(text, date) IS
    'internal: the source owner''s half of _retire_day';

-- The days of a source that retention may drop now, oldest first: frozen
-- for every metric of the source (past freeze_after without metrics),
-- ended at least `raw` before as_of, and every older day of the source
-- going too.
CREATE FUNCTION pipeline._days_past_retention(s pipeline.source_catalog, raw interval, as_of timestamptz)
    RETURNS SETOF date
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
    WITH days AS (
        SELECT d.day,
               ((d.day + 1)::timestamp AT TIME ZONE s.day_timezone) <= as_of - raw
               AND CASE WHEN EXISTS (SELECT FROM pipeline.metric_catalog AS m WHERE m.source = s.source)
                        THEN NOT EXISTS (SELECT FROM pipeline.metric_catalog AS m
                                          WHERE m.source = s.source
                                            AND NOT EXISTS (SELECT FROM pipeline.day_closures AS c
                                                             WHERE c.metric = m.metric AND c.day = d.day
                                                               AND c.status = 'frozen'))
                        ELSE ((d.day + 1)::timestamp AT TIME ZONE s.day_timezone) + s.freeze_after <= as_of END
               AS eligible
          FROM pipeline._source_days(s.source) AS d(day))
    SELECT x.day FROM days AS x
     WHERE x.eligible
       AND NOT EXISTS (SELECT FROM days AS y WHERE y.day < x.day AND NOT y.eligible)
     ORDER BY x.day
$fn$;
COMMENT ON FUNCTION pipeline._days_past_retention(pipeline.source_catalog, interval, timestamptz) IS
    'internal: the days of a source maintain() may drop now, oldest first';

CREATE FUNCTION pipeline._maintain(as_of timestamptz)
    RETURNS jsonb
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._maintain(timestamptz) IS
    'internal: maintain()''s retention work, as the extension owner (runs _maintain_as_owner)';

CREATE FUNCTION pipeline._maintain_as_owner(caller regrole, as_of timestamptz)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    r pipeline.retention;
    d date;
    n bigint;
    last_dropped date;
    last_batch bigint;
    done jsonb := '[]';
    step jsonb;
BEGIN
    IF as_of > pg_catalog.now() + interval '1 second'
       AND NOT (SELECT a.rolsuper FROM pg_catalog.pg_roles AS a WHERE a.oid = caller) THEN
        RAISE EXCEPTION 'only superusers may run maintain() with a clock in the future'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('as_of is %s.', as_of),
                  HINT = 'Call pipeline.maintain() without as_of, or with a time already past.';
    END IF;
    FOR r IN SELECT x.* FROM pipeline.retention AS x ORDER BY x.source LOOP
        SELECT * INTO STRICT s FROM pipeline.source_catalog AS c WHERE c.source = r.source;
        -- small deletions first: the day drops lock the raw table until commit
        IF r.dead_letters IS NOT NULL THEN
            DELETE FROM pipeline.dead_letters AS l
             WHERE l.source = s.source AND l.received_at < as_of - r.dead_letters;
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n > 0 THEN
                done := done || pg_catalog.jsonb_build_object('object', 'pipeline.dead_letters', 'action', 'deleted',
                    'detail', pg_catalog.format('%s dead letters of source %s received before %s (retention %s)',
                                                n, s.source, as_of - r.dead_letters, r.dead_letters));
            END IF;
        END IF;
        IF r.batches IS NOT NULL THEN
            WITH gone AS (
                DELETE FROM pipeline.batch_log AS b
                 WHERE b.source = s.source AND b.received_at < as_of - r.batches
                   AND NOT EXISTS (SELECT FROM pipeline.metric_catalog AS m
                                    WHERE m.source = s.source
                                      AND NOT pg_catalog.pg_visible_in_snapshot(b.xid, m.fold_snapshot))
                RETURNING b.batch_id)
            SELECT pg_catalog.count(*), pg_catalog.max(g.batch_id) INTO n, last_batch FROM gone AS g;
            IF n > 0 THEN
                UPDATE pipeline.retention AS x
                   SET batches_deleted_through = GREATEST(x.batches_deleted_through, last_batch)
                 WHERE x.source = s.source;
                done := done || pg_catalog.jsonb_build_object('object', 'pipeline.batch_log', 'action', 'deleted',
                    'detail', pg_catalog.format('%s receipts of source %s received before %s (retention %s)',
                                                n, s.source, as_of - r.batches, r.batches));
            END IF;
        END IF;
        CONTINUE WHEN r.raw IS NULL;
        -- a source whose days are busy (a lock not granted in 100 ms) is
        -- skipped until the next run; what it dropped before stays dropped
        step := '[]';
        last_dropped := NULL;
        BEGIN
            FOR d IN SELECT pipeline._days_past_retention(s, r.raw, as_of) LOOP
                n := pipeline._retire_day(s.source, d);
                RAISE NOTICE 'pipeline: dropped day % of source % (raw retention %; events dropped: %)', d, s.source, r.raw, n;
                step := step || pg_catalog.jsonb_build_object('object', pg_catalog.format('pipeline.%I', s.source || '_raw_' || pg_catalog.to_char(d, 'YYYYMMDD')),
                                                            'action', 'dropped',
                                                            'detail', pg_catalog.format('day %s of source %s, frozen, ended before %s (raw retention %s); events dropped: %s',
                                                                                        d, s.source, as_of - r.raw, r.raw, n));
                last_dropped := d;
            END LOOP;
            IF last_dropped IS NOT NULL THEN
                UPDATE pipeline.retention AS x
                   SET raw_dropped_through = GREATEST(x.raw_dropped_through, last_dropped)
                 WHERE x.source = s.source;
            END IF;
            done := done || step;
        EXCEPTION WHEN lock_not_available THEN
            done := done || pg_catalog.jsonb_build_object('object', pg_catalog.format('pipeline.%I', s.source || '_raw'),
                'action', 'skipped', 'detail', pg_catalog.format('source %s is busy (%s); retried at the next run', s.source, SQLERRM));
        END;
    END LOOP;
    RETURN done;
END
$fn$;
COMMENT ON FUNCTION pipeline._maintain_as_owner(regrole, timestamptz) IS
    'internal: the extension owner''s half of _maintain: retention of dead letters, receipts and raw days';

CREATE FUNCTION pipeline.maintain(as_of timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (object text, action text, detail text)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    n bigint;
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM pipeline._check_restored();
    RETURN QUERY SELECT x.object, x.action, x.detail
                   FROM pg_catalog.jsonb_to_recordset(pipeline._maintain(as_of)) AS x(object text, action text, detail text);
    -- the pipeline's own run history in pg_cron, as the caller (pg_cron lets
    -- a role delete its own jobs' runs); nothing when pg_cron is absent
    n := pipeline._trim_cron_history(interval '7 days');
    IF n > 0 THEN
        object := 'cron.job_run_details';
        action := 'deleted';
        detail := pg_catalog.format('%s runs of this database''s pipeline jobs that ended more than 7 days ago', n);
        RETURN NEXT;
    END IF;
    -- folds and closes look receipts up by source, xid and event time
    ANALYZE pipeline.batch_log;
    object := 'pipeline.batch_log';
    action := 'analyzed';
    detail := NULL;
    RETURN NEXT;
END
$fn$;
COMMENT ON FUNCTION pipeline.maintain(timestamptz) IS
    'hourly housekeeping run by the ''pipeline:<db>:maintenance'' pg_cron job: drops raw days, dead letters and '
    'receipts past each source''s retention (pipeline.set_retention; raw days only once frozen), keeps 7 days of the '
    'pipeline''s pg_cron run history, analyzes the receipts table; one row per action.  A clock in the future needs '
    'a superuser';

CREATE FUNCTION pipeline._trim_cron_history(keep interval)
    RETURNS bigint
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_trim_cron_history';
COMMENT ON FUNCTION pipeline._trim_cron_history(interval) IS
    'internal: deletes the caller''s runs of this database''s pipeline jobs from cron.job_run_details that ended '
    'more than keep ago; NULL when pg_cron is absent';
