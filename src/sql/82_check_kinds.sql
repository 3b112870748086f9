-- The kinds of data-quality check (80_checks.sql): one function per kind,
-- each evaluating one check at as_of.  The rate checks (validity,
-- referential, not_null, accepted_values) share one skeleton,
-- _check_rate.

-- --- the kinds ----------------------------------------------------------------
-- Each returns status, observed, threshold and detail for one check at
-- as_of; errors are the caller's (run_checks) to record.

-- events of a source with event time in (lo, hi]
CREATE FUNCTION pipeline._check_count_events(s pipeline.source_catalog, lo timestamptz, hi timestamptz) RETURNS bigint
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    n bigint;
BEGIN
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s AS r WHERE r.%I > $1 AND r.%I <= $2',
                              s.raw_table, s.event_time, s.event_time)
      INTO n USING lo, hi;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_count_events(pipeline.source_catalog, timestamptz, timestamptz) IS
    'internal: the events of a source with event time in (lo, hi]';

CREATE FUNCTION pipeline._check_target_source(c pipeline.checks) RETURNS pipeline.source_catalog
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
BEGIN
    SELECT * INTO s FROM pipeline.source_catalog AS x WHERE x.source = c.target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'source "%" does not exist any more', c.target
            USING HINT = pg_catalog.format('Drop the check: pipeline.drop_check(%L).', c.check_name);
    END IF;
    RETURN s;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_target_source(pipeline.checks) IS 'internal: the source a check watches';

CREATE FUNCTION pipeline._check_target_metric(c pipeline.checks) RETURNS pipeline.metric_catalog
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m pipeline.metric_catalog;
BEGIN
    SELECT * INTO m FROM pipeline.metric_catalog AS x WHERE x.metric = c.target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'metric "%" does not exist any more', c.target
            USING HINT = pg_catalog.format('Drop the check: pipeline.drop_check(%L).', c.check_name);
    END IF;
    RETURN m;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_target_metric(pipeline.checks) IS 'internal: the metric a check watches';

-- a share as a percentage for details: 0.0123 -> 1.23%
CREATE FUNCTION pipeline._check_pct(share numeric) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.rtrim(pg_catalog.rtrim(pg_catalog.round(share * 100, 2)::text, '0'), '.') || '%';
COMMENT ON FUNCTION pipeline._check_pct(numeric) IS 'internal: a share written as a percentage';

CREATE FUNCTION pipeline._check_freshness(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    max_lag interval := (c.params ->> 'max_lag')::interval;
    s pipeline.source_catalog;
    m pipeline.metric_catalog;
    t timestamptz;
    n bigint;
    nb bigint;
    lag interval;
BEGIN
    threshold := pg_catalog.date_part('epoch', max_lag)::numeric;
    IF c.target_type = 'metric' THEN
        -- the age of the oldest accepted batch the fold has not taken yet
        m := pipeline._check_target_metric(c);
        SELECT pg_catalog.min(b.received_at), pg_catalog.sum(b.accepted), pg_catalog.count(*)
          INTO t, n, nb
          FROM pipeline.batch_log AS b
         WHERE b.source = m.source
           AND b.xid >= pg_catalog.pg_snapshot_xmin(m.fold_snapshot)
           AND NOT pg_catalog.pg_visible_in_snapshot(b.xid, m.fold_snapshot)
           AND b.accepted > 0 AND b.received_at <= as_of;
        lag := COALESCE(as_of - t, interval '0');
        observed := pg_catalog.round(pg_catalog.date_part('epoch', lag)::numeric, 3);
        detail := CASE WHEN t IS NULL THEN 'no accepted event waits for the fold'
                       ELSE pg_catalog.format('%s events in %s batches wait for the fold, the oldest received %s before as_of',
                                              n, nb, pg_catalog.justify_hours(pg_catalog.date_trunc('second', lag))) END
               || pg_catalog.format('; last fold %s', COALESCE(m.last_fold_at::text, 'never'))
               || CASE WHEN m.failures > 0
                       THEN pg_catalog.format('; the last %s folds failed: %s', m.failures, m.last_error) ELSE '' END;
    ELSE
        s := pipeline._check_target_source(c);
        IF c.params ->> 'basis' = 'watermark' THEN
            SELECT pg_catalog.max(b.max_event_time) - s.allowed_lateness INTO t
              FROM pipeline.batch_log AS b
             WHERE b.source = s.source AND b.accepted > 0 AND b.received_at <= as_of;
            detail := pg_catalog.format('watermark (max accepted event time - %s) %s', s.allowed_lateness, t);
        ELSE
            SELECT pg_catalog.max(b.received_at) INTO t
              FROM pipeline.batch_log AS b
             WHERE b.source = s.source AND b.accepted > 0 AND b.received_at <= as_of;
            detail := pg_catalog.format('last accepted batch received %s', t);
        END IF;
        IF t IS NULL THEN
            status := 'fail';
            detail := pg_catalog.format('no accepted events from source %s yet', s.source);
            RETURN;
        END IF;
        lag := as_of - t;
        observed := pg_catalog.round(pg_catalog.date_part('epoch', lag)::numeric, 3);
        detail := detail || pg_catalog.format(', %s before as_of', pg_catalog.justify_hours(pg_catalog.date_trunc('second', lag)));
    END IF;
    status := CASE WHEN observed > threshold THEN 'fail' ELSE 'pass' END;
    detail := detail || pg_catalog.format(' (allowed: %s)', c.params ->> 'max_lag');
END
$fn$;
COMMENT ON FUNCTION pipeline._check_freshness(pipeline.checks, timestamptz) IS
    'internal: freshness of a source (age of its last accepted batch, or of its watermark) or of a metric (age of its oldest unfolded batch), in seconds';

-- Per closed day: what the receipts, raw, the daily layer and the hot layer
-- say about the number of events, each difference beyond what is known to
-- be in flight (batches the fold or the corrections have not seen yet).
CREATE FUNCTION pipeline._check_completeness(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m pipeline.metric_catalog := pipeline._check_target_metric(c);
    s pipeline.source_catalog;
    def jsonb := m.definition;
    cnt text;
    filter text;
    d pipeline.day_closures;
    lo timestamptz;
    hi timestamptz;
    raw_n bigint;
    await_corr bigint;
    await_fold bigint;
    after_compute bigint;
    ids bigint[];
    receipts bigint;
    stored bigint;
    blo timestamptz;
    bhi timestamptz;
    daily_n bigint;
    corr_n bigint;
    hot_n bigint;
    diff bigint;
    worst bigint := 0;
    ndays int := 0;
    nreceipts bigint;
    first_day date;
    last_day date;
    problems text[] := '{}';
    bad_days int := 0;
    day_bad boolean;
    hot_skipped int := 0;
    origin timestamptz := '2000-01-01 00:00:00+00';
BEGIN
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS x WHERE x.source = m.source;
    threshold := (c.params ->> 'tolerance')::numeric;
    filter := COALESCE(def ->> 'filter', 'true');
    cnt := pipeline._events_measure(def);

    -- (days whose raw events retention dropped have nothing left to compare)
    FOR d IN SELECT * FROM pipeline.day_closures AS x
              WHERE x.metric = m.metric AND x.day <= (as_of AT TIME ZONE s.day_timezone)::date
                AND x.day > COALESCE((SELECT r.raw_dropped_through FROM pipeline.retention AS r
                                       WHERE r.source = s.source), '-infinity')
              ORDER BY x.day DESC LIMIT (c.params ->> 'days')::int
    LOOP
        ndays := ndays + 1;
        last_day := COALESCE(last_day, d.day);
        first_day := d.day;
        day_bad := false;
        lo := d.day::timestamp AT TIME ZONE s.day_timezone;
        hi := (d.day + 1)::timestamp AT TIME ZONE s.day_timezone;
        -- raw, per batch (the filter sees the raw table alone)
        EXECUTE pg_catalog.format(
            'WITH per_batch AS (SELECT r._pl_batch AS batch_id, pg_catalog.count(*) AS n FROM %1$s AS r '
            '                    WHERE r.%2$I >= $1 AND r.%2$I < $2 AND (%3$s) GROUP BY 1) '
            'SELECT COALESCE(pg_catalog.sum(p.n), 0)::bigint, '
            '       COALESCE(pg_catalog.sum(p.n) FILTER (WHERE NOT pg_catalog.pg_visible_in_snapshot(b.xid, $3)), 0)::bigint, '
            '       COALESCE(pg_catalog.sum(p.n) FILTER (WHERE NOT pg_catalog.pg_visible_in_snapshot(b.xid, $4)), 0)::bigint, '
            '       COALESCE(pg_catalog.sum(p.n) FILTER (WHERE b.received_at > $5), 0)::bigint, '
            '       pg_catalog.array_agg(p.batch_id) '
            '  FROM per_batch AS p LEFT JOIN pipeline.batch_log AS b ON b.batch_id = p.batch_id',
            s.raw_table, s.event_time, filter)
          INTO raw_n, await_corr, await_fold, after_compute, ids
          USING lo, hi, d.corrected_snapshot, m.fold_snapshot, d.computed_at;

        -- receipts: the batches that carried events of the day accepted as
        -- many events as raw holds of them (all their days, unfiltered)
        IF ids IS NOT NULL THEN
            SELECT COALESCE(pg_catalog.sum(b.accepted), 0), pg_catalog.min(b.min_event_time), pg_catalog.max(b.max_event_time),
                   pg_catalog.count(*)
              INTO receipts, blo, bhi, nreceipts
              FROM pipeline.batch_log AS b WHERE b.batch_id = ANY (ids);
            -- receipts deleted by their retention (set_retention) leave
            -- nothing to compare, nor do batches that also carried events
            -- of days whose raw events retention dropped; any other
            -- missing receipt is a difference
            IF (nreceipts < pg_catalog.cardinality(ids)
                AND NOT EXISTS (SELECT FROM pg_catalog.unnest(ids) AS i(id)
                                 WHERE NOT EXISTS (SELECT FROM pipeline.batch_log AS b WHERE b.batch_id = i.id)
                                   AND i.id > COALESCE((SELECT r.batches_deleted_through FROM pipeline.retention AS r
                                                         WHERE r.source = s.source), 0)))
               OR blo < (SELECT (r.raw_dropped_through + 1)::timestamp AT TIME ZONE s.day_timezone
                           FROM pipeline.retention AS r WHERE r.source = s.source) THEN
                ids := NULL;
            END IF;
        END IF;
        IF ids IS NOT NULL THEN
            EXECUTE pg_catalog.format(
                'SELECT pg_catalog.count(*) FROM %1$s AS r WHERE %3$s AND r.%2$I >= $2 AND r.%2$I <= $3',
                s.raw_table, s.event_time, pipeline._in_batches('r', '$1', '$4', '$5'))
              INTO stored USING ids, LEAST(blo, lo), GREATEST(bhi, hi),
                                (SELECT pg_catalog.min(i) FROM pg_catalog.unnest(ids) AS i),
                                (SELECT pg_catalog.max(i) FROM pg_catalog.unnest(ids) AS i);
            diff := stored - receipts;
            IF pg_catalog.abs(diff) > threshold THEN
                problems := problems || pg_catalog.format('%s: raw holds %s events of the %s batches that carried its events, their receipts say %s accepted',
                                                          d.day, stored, pg_catalog.cardinality(ids), receipts);
                day_bad := true;
            END IF;
            worst := GREATEST(worst, pg_catalog.abs(diff));
        END IF;

        -- daily: frozen events + corrections + events awaiting correction = raw
        IF d.status = 'frozen' THEN
            EXECUTE pg_catalog.format('SELECT COALESCE(pg_catalog.sum(x.late_events), 0)::bigint FROM pipeline.%I AS x WHERE x.day = $1',
                                      m.metric || '_corrections')
              INTO corr_n USING d.day;
            diff := raw_n - (d.events_frozen + corr_n + await_corr);
            IF pg_catalog.abs(diff) > threshold THEN
                problems := problems || pg_catalog.format('%s: raw holds %s events, frozen %s + corrections %s + awaiting correction %s',
                                                          d.day, raw_n, d.events_frozen, corr_n, await_corr);
                day_bad := true;
            END IF;
            worst := GREATEST(worst, pg_catalog.abs(diff));
        ELSIF cnt IS NOT NULL THEN
            EXECUTE pg_catalog.format('SELECT COALESCE(pg_catalog.sum(x.%I), 0)::bigint FROM pipeline.%I AS x WHERE x.day = $1',
                                      cnt, m.metric || '_daily')
              INTO daily_n USING d.day;
            diff := raw_n - after_compute - daily_n;
            IF pg_catalog.abs(diff) > threshold THEN
                problems := problems || pg_catalog.format('%s: raw holds %s events (%s received since the provisional day was computed), the daily layer counts %s (%s)',
                                                          d.day, raw_n, after_compute, daily_n, cnt);
                day_bad := true;
            END IF;
            worst := GREATEST(worst, pg_catalog.abs(diff));
        END IF;

        -- hot: where it covers the whole day in whole buckets
        IF cnt IS NOT NULL AND lo >= pg_catalog.now() - m.hot_retention
           AND pg_catalog.date_bin(m.bucket, lo, origin) = lo AND pg_catalog.date_bin(m.bucket, hi, origin) = hi THEN
            EXECUTE pg_catalog.format('SELECT COALESCE(pg_catalog.sum(h.%I), 0)::bigint FROM %s AS h WHERE h.bucket >= $1 AND h.bucket < $2',
                                      cnt, m.hot_table)
              INTO hot_n USING lo, hi;
            diff := raw_n - await_fold - hot_n;
            IF pg_catalog.abs(diff) > threshold THEN
                problems := problems || pg_catalog.format('%s: raw holds %s events (%s awaiting the fold), the hot layer counts %s (%s)',
                                                          d.day, raw_n, await_fold, hot_n, cnt);
                day_bad := true;
            END IF;
            worst := GREATEST(worst, pg_catalog.abs(diff));
        ELSE
            hot_skipped := hot_skipped + 1;
        END IF;
        IF day_bad THEN
            bad_days := bad_days + 1;
        END IF;
    END LOOP;

    observed := worst;
    status := CASE WHEN worst > threshold THEN 'fail' ELSE 'pass' END;
    IF ndays = 0 THEN
        detail := 'no closed days yet';
    ELSIF status = 'fail' THEN
        detail := pg_catalog.format('%s of %s closed days differ by more than %s events: %s', bad_days, ndays, threshold,
                                    pg_catalog.array_to_string(problems[1:3], '; '))
               || CASE WHEN pg_catalog.cardinality(problems) > 3
                       THEN pg_catalog.format('; and %s more', pg_catalog.cardinality(problems) - 3) ELSE '' END;
    ELSE
        detail := pg_catalog.format('%s closed days (%s to %s): receipts, raw, daily and hot agree', ndays, first_day, last_day);
    END IF;
    IF ndays > 0 AND cnt IS NULL THEN
        detail := detail || '; the metric has no count(*) measure: only receipts, raw and frozen days were compared, not provisional days or hot';
    ELSIF hot_skipped > 0 THEN
        detail := detail || pg_catalog.format('; hot not compared for %s days (beyond hot retention, or buckets not aligned with the day)', hot_skipped);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_completeness(pipeline.checks, timestamptz) IS
    'internal: per closed day, receipts vs raw vs daily (frozen + corrections, or provisional) vs hot, in events';

-- The skeleton of the rate checks: bad of n events, failing above the
-- threshold; nothing is the detail when there are no events, what says
-- which events and what made them bad.
CREATE FUNCTION pipeline._check_rate(n bigint, bad bigint, threshold numeric, nothing text, what text,
        OUT status text, OUT observed numeric, OUT detail text)
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
BEGIN
    IF n = 0 THEN
        status := 'pass';
        detail := nothing;
        RETURN;
    END IF;
    observed := pg_catalog.round(bad::numeric / n, 6);
    status := CASE WHEN bad::numeric / n > threshold THEN 'fail' ELSE 'pass' END;
    detail := pg_catalog.format('%s of %s events (%s) %s; allowed %s', bad, n, pipeline._check_pct(bad::numeric / n),
                                what, pipeline._check_pct(threshold));
END
$fn$;
COMMENT ON FUNCTION pipeline._check_rate(bigint, bigint, numeric, text, text) IS
    'internal: status, observed share and detail of a rate check';

CREATE FUNCTION pipeline._check_validity(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog := pipeline._check_target_source(c);
    win interval := (c.params ->> 'window')::interval;
    received bigint;
    rejected bigint;
    nb bigint;
BEGIN
    threshold := (c.params ->> 'max_reject_rate')::numeric;
    SELECT COALESCE(pg_catalog.sum(b.received), 0), COALESCE(pg_catalog.sum(b.rejected), 0), pg_catalog.count(*)
      INTO received, rejected, nb
      FROM pipeline.batches AS b
     WHERE b.source = s.source AND b.received_at > as_of - win AND b.received_at <= as_of;
    SELECT r.status, r.observed, r.detail INTO status, observed, detail
      FROM pipeline._check_rate(received, rejected, threshold,
               pg_catalog.format('no events received in the %s before as_of', c.params ->> 'window'),
               pg_catalog.format('rejected, in %s batches received in the %s before as_of', nb, c.params ->> 'window')) AS r;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_validity(pipeline.checks, timestamptz) IS
    'internal: share of the events received in the window that were rejected (dead-lettered)';

CREATE FUNCTION pipeline._check_referential(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog := pipeline._check_target_source(c);
    col text := c.params ->> 'column';
    ref record := pipeline._check_reference(c.params ->> 'reference');
    win interval := (c.params ->> 'window')::interval;
    n bigint;
    missing bigint;
BEGIN
    threshold := (c.params ->> 'max_missing_rate')::numeric;
    PERFORM pipeline._check_contract_column(s.source, col);
    EXECUTE pg_catalog.format(
        'SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE NOT EXISTS (SELECT FROM %1$s AS t WHERE t.%2$I = r.%3$I)) '
        '  FROM %4$s AS r WHERE r.%5$I > $1 AND r.%5$I <= $2 AND r.%3$I IS NOT NULL',
        ref.rel, ref.col, col, s.raw_table, s.event_time)
      INTO n, missing USING as_of - win, as_of;
    SELECT r.status, r.observed, r.detail INTO status, observed, detail
      FROM pipeline._check_rate(n, missing, threshold,
               pg_catalog.format('no events with a %s in the %s before as_of', col, c.params ->> 'window'),
               pg_catalog.format('with event time in the %s before as_of: %s missing from %s',
                                 c.params ->> 'window', col, ref.normalized)) AS r;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_referential(pipeline.checks, timestamptz) IS
    'internal: share of the window''s events (by event time, non-NULL values) whose column value is missing from the reference';

CREATE FUNCTION pipeline._check_volume(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog := pipeline._check_target_source(c);
    win interval := (c.params ->> 'window')::interval;
    cur bigint;
    base bigint;
    change numeric;
    ago int;
    parts text[] := '{}';
BEGIN
    threshold := (c.params ->> 'max_change')::numeric;
    cur := pipeline._check_count_events(s, as_of - win, as_of);
    -- the same local hours 1 and 7 days earlier, in the source's day time zone
    FOREACH ago IN ARRAY ARRAY[1, 7] LOOP
        base := pipeline._check_count_events(s,
            ((as_of - win) AT TIME ZONE s.day_timezone - ago * interval '1 day') AT TIME ZONE s.day_timezone,
            (as_of AT TIME ZONE s.day_timezone - ago * interval '1 day') AT TIME ZONE s.day_timezone);
        IF base = 0 THEN
            parts := parts || pg_catalog.format('%s day%s earlier none (no baseline)', ago, CASE WHEN ago > 1 THEN 's' ELSE '' END);
        ELSE
            change := pg_catalog.abs(cur - base)::numeric / base;
            observed := GREATEST(observed, pg_catalog.round(change, 6));
            parts := parts || pg_catalog.format('%s day%s earlier %s (%s%s)', ago, CASE WHEN ago > 1 THEN 's' ELSE '' END, base,
                                                CASE WHEN cur >= base THEN '+' ELSE '-' END, pipeline._check_pct(change));
            IF change > threshold THEN
                status := 'fail';
            END IF;
        END IF;
    END LOOP;
    status := COALESCE(status, 'pass');
    detail := pg_catalog.format('%s events with event time in the %s before as_of; %s; allowed change %s',
                                cur, c.params ->> 'window', pg_catalog.array_to_string(parts, ', '),
                                pipeline._check_pct(threshold));
END
$fn$;
COMMENT ON FUNCTION pipeline._check_volume(pipeline.checks, timestamptz) IS
    'internal: events in the window (by event time) against the same window 1 and 7 days earlier; the largest relative change';

CREATE FUNCTION pipeline._check_not_null(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog := pipeline._check_target_source(c);
    col text := c.params ->> 'column';
    win interval := (c.params ->> 'window')::interval;
    n bigint;
    nulls bigint;
BEGIN
    threshold := (c.params ->> 'max_null_rate')::numeric;
    PERFORM pipeline._check_contract_column(s.source, col);
    EXECUTE pg_catalog.format(
        'SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE r.%1$I IS NULL) '
        '  FROM %2$s AS r WHERE r.%3$I > $1 AND r.%3$I <= $2',
        col, s.raw_table, s.event_time)
      INTO n, nulls USING as_of - win, as_of;
    SELECT r.status, r.observed, r.detail INTO status, observed, detail
      FROM pipeline._check_rate(n, nulls, threshold,
               pg_catalog.format('no events in the %s before as_of', c.params ->> 'window'),
               pg_catalog.format('with event time in the %s before as_of: no %s', c.params ->> 'window', col)) AS r;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_not_null(pipeline.checks, timestamptz) IS
    'internal: share of the window''s events (by event time) whose column is NULL';

CREATE FUNCTION pipeline._check_accepted_values(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog := pipeline._check_target_source(c);
    col text := c.params ->> 'column';
    win interval := (c.params ->> 'window')::interval;
    typ text;
    n bigint;
    unexpected bigint;
    kinds bigint;
BEGIN
    threshold := (c.params ->> 'max_unexpected_rate')::numeric;
    typ := pipeline._check_contract_column(s.source, col);
    EXECUTE pg_catalog.format(
        'SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE NOT (r.%1$I = ANY ($3::%2$s[]))), '
        '       pg_catalog.count(DISTINCT r.%1$I) FILTER (WHERE NOT (r.%1$I = ANY ($3::%2$s[]))) '
        '  FROM %3$s AS r WHERE r.%4$I > $1 AND r.%4$I <= $2 AND r.%1$I IS NOT NULL',
        col, typ, s.raw_table, s.event_time)
      INTO n, unexpected, kinds
      USING as_of - win, as_of, ARRAY(SELECT e #>> '{}' FROM pg_catalog.jsonb_array_elements(c.params -> 'values') AS e);
    SELECT r.status, r.observed, r.detail INTO status, observed, detail
      FROM pipeline._check_rate(n, unexpected, threshold,
               pg_catalog.format('no events with a %s in the %s before as_of', col, c.params ->> 'window'),
               pg_catalog.format('with event time in the %s before as_of: %s not one of the %s accepted values (%s distinct other values)',
                                 c.params ->> 'window', col, pg_catalog.jsonb_array_length(c.params -> 'values'), kinds)) AS r;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_accepted_values(pipeline.checks, timestamptz) IS
    'internal: share of the window''s events (by event time, non-NULL values) whose column is not one of the accepted values';

CREATE FUNCTION pipeline._check_digest(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m pipeline.metric_catalog := pipeline._check_target_metric(c);
    n bigint;
    bad date[];
BEGIN
    threshold := 0;
    SELECT pg_catalog.count(*),
           pg_catalog.array_agg(x.day ORDER BY x.day) FILTER (WHERE pipeline.verify_day(x.metric, x.day) IS NOT TRUE)
      INTO n, bad
      FROM pipeline.day_closures AS x
     WHERE x.metric = m.metric AND x.status = 'frozen';
    observed := COALESCE(pg_catalog.cardinality(bad), 0);
    status := CASE WHEN observed > 0 THEN 'fail' ELSE 'pass' END;
    detail := CASE WHEN n = 0 THEN 'no frozen days yet'
                   WHEN observed = 0 THEN pg_catalog.format('all %s frozen days match their digest', n)
                   ELSE pg_catalog.format('%s of %s frozen days no longer match their digest: %s', observed, n,
                                          pg_catalog.array_to_string(bad[1:10], ', '))
                        || CASE WHEN observed > 10 THEN ', ...' ELSE '' END END;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_digest(pipeline.checks, timestamptz) IS
    'internal: the frozen days of a metric whose rows no longer match the digest taken when they froze';

-- a time of day for details: 07:00, or 07:00:30 when it has seconds
CREATE FUNCTION pipeline._check_time_text(t time) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.to_char(t, CASE WHEN pg_catalog.date_part('second', t) = 0 THEN 'HH24:MI' ELSE 'HH24:MI:SS' END);
COMMENT ON FUNCTION pipeline._check_time_text(time) IS 'internal: a time of day written HH:MM, or HH:MM:SS';

-- The daily SLA of a metric: on day D (in its source's day time zone,
-- D being the local date of as_of), day D - 1 must be provisional by
-- ready_by, a local time of D.  warn from ready_by - warn_before, fail from
-- ready_by, until the day is done.
--
-- Done means close_days has computed it: its day_closures row says
-- provisional, held or frozen.  A held day is provisional data held from
-- freezing by a failing block check: it is on time for the SLA (the
-- block check has its own alert).  A day without events has no raw
-- partition, so close_days gives it no row: it is done once close_days has
-- run for the metric with an as_of at least allowed_lateness past the
-- day's end (pipeline.close_runs), which is when it would have made the
-- day provisional had it had events.  Without this a quiet source would
-- miss its SLA every day; with it a quiet day still misses the SLA when
-- close_days does not run.  A day with events and no row is open:
-- close_days has not closed it yet (not run since it ended, or the events
-- arrived after its last run).
--
-- observed is as_of - deadline in seconds (negative: time left) while the
-- day is not done, NULL once it is; threshold is 0, the deadline.
CREATE FUNCTION pipeline._check_sla(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m pipeline.metric_catalog := pipeline._check_target_metric(c);
    s pipeline.source_catalog;
    ready_by time := (c.params ->> 'ready_by')::time;
    warn_before interval := (c.params ->> 'warn_before')::interval;
    today date;
    yesterday date;
    deadline timestamptz;
    warn_from timestamptz;
    state text;
    closed_as_of timestamptz;
    has_events boolean;
    due text;
    why text;
BEGIN
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS x WHERE x.source = m.source;
    today := (as_of AT TIME ZONE s.day_timezone)::date;
    yesterday := today - 1;
    deadline := (today + ready_by) AT TIME ZONE s.day_timezone;
    warn_from := deadline - warn_before;
    threshold := 0;
    due := pg_catalog.format('%s %s', pipeline._check_time_text(ready_by), s.day_timezone);

    SELECT x.status INTO state FROM pipeline.day_closures AS x WHERE x.metric = m.metric AND x.day = yesterday;
    IF state IS NOT NULL THEN
        status := 'pass';
        detail := pg_catalog.format('%s %s is %s%s; due by %s', m.metric, yesterday, state,
                                    CASE WHEN state = 'held' THEN ' (provisional, held from freezing by a block check)' ELSE '' END,
                                    due);
        RETURN;
    END IF;
    SELECT r.closed_as_of INTO closed_as_of FROM pipeline.close_runs AS r WHERE r.metric = m.metric;
    has_events := EXISTS (SELECT FROM pipeline._source_days(s.source) AS d WHERE d = yesterday);
    IF NOT has_events AND closed_as_of >= (today::timestamp AT TIME ZONE s.day_timezone) + s.allowed_lateness THEN
        status := 'pass';
        detail := pg_catalog.format('%s %s had no events, and close_days has passed it (last run as of %s); due by %s',
                                    m.metric, yesterday, closed_as_of, due);
        RETURN;
    END IF;

    -- open: not done yet
    observed := pg_catalog.round(pg_catalog.date_part('epoch', as_of - deadline)::numeric, 3);
    why := CASE WHEN has_events THEN 'its events await close_days' ELSE 'it had no events, and close_days has not passed it' END
           || CASE WHEN closed_as_of IS NULL THEN ' (close_days has never run for the metric)'
                   ELSE pg_catalog.format(' (last run as of %s)', closed_as_of) END;
    IF as_of >= deadline THEN
        status := 'fail';
        detail := pg_catalog.format('SLA missed: %s %s not provisional by %s; it is open: %s',
                                    m.metric, yesterday, due, why);
    ELSIF as_of >= warn_from THEN
        status := 'warn';
        detail := pg_catalog.format('SLA at risk: %s %s not provisional yet, due by %s in %s; it is open: %s',
                                    m.metric, yesterday, due,
                                    pg_catalog.justify_hours(pg_catalog.date_trunc('second', deadline - as_of)), why);
    ELSE
        status := 'pass';
        detail := pg_catalog.format('%s %s is not provisional yet, due by %s (%s); it is open: %s',
                                    m.metric, yesterday, due,
                                    CASE WHEN warn_before = interval '0' THEN 'no early warning'
                                         WHEN (warn_from AT TIME ZONE s.day_timezone)::date = today
                                         THEN 'early warning from ' || pipeline._check_time_text((warn_from AT TIME ZONE s.day_timezone)::time)
                                         ELSE 'early warning from ' || pg_catalog.to_char(warn_from AT TIME ZONE s.day_timezone, 'YYYY-MM-DD HH24:MI:SS') END,
                                    why);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_sla(pipeline.checks, timestamptz) IS
    'internal: the daily SLA of a metric: yesterday (in the source''s day time zone) provisional by ready_by; '
    'warn from ready_by - warn_before, fail from ready_by';
