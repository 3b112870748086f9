-- The daily layer: provisional and frozen days computed exactly from raw,
-- corrections for events accepted after the freeze, restatements, and the
-- serving views _daily, _corrections, _restated and _reconcile.
--
-- Lifecycle of day D of a metric, in its source's day time zone (so a 23-
-- or 25-hour DST day is one day), driven by close_days(as_of):
--   open         until D's end + allowed_lateness: nothing in _daily;
--   provisional  recomputed exactly from raw at every close_days run;
--   held         due to freeze while a check of severity 'block' on the
--                metric or its source fails: recomputed like provisional
--                until the check passes or release_day() releases it;
--   frozen       at D's end + freeze_after: computed one last time, then
--                immutable.  The freeze records the snapshot its numbers
--                were read with: every batch that snapshot does not see is,
--                for that day, a correction.
-- The daily and correction tables belong to the extension owner; a
-- trigger refuses any change to a frozen row outside _restate_day.

CREATE TABLE pipeline.day_closures (
    metric        text NOT NULL,
    day           date NOT NULL,
    status        text NOT NULL CHECK (status IN ('provisional', 'held', 'frozen')),
    version       integer NOT NULL DEFAULT 0,
    computed_at   timestamptz,
    frozen_at     timestamptz,
    -- the snapshot the frozen numbers were read with
    frozen_snapshot pg_snapshot,
    -- corrections cover every batch visible in this snapshot
    corrected_snapshot pg_snapshot,
    events_frozen bigint,
    digest        text,
    PRIMARY KEY (metric, day)
);
COMMENT ON TABLE pipeline.day_closures IS
    'one row per metric and closed day: status, version, what the freeze included (its snapshot), digest';

CREATE TABLE pipeline.restatements (
    metric       text NOT NULL,
    day          date NOT NULL,
    version      integer NOT NULL,
    restated_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    restated_by  text NOT NULL,
    reason       text NOT NULL,
    old_digest   text,
    new_digest   text,
    old_rows     jsonb NOT NULL,
    absorbed_corrections jsonb NOT NULL,
    PRIMARY KEY (metric, day, version)
);
COMMENT ON TABLE pipeline.restatements IS
    'the audit history of restate_day: the previous version of the day, its corrections, who, when and why';

-- A day held from freezing by a failing check of severity 'block' freezes
-- once the check passes, or once someone releases it, on the record.
CREATE TABLE pipeline.day_releases (
    metric       text NOT NULL,
    day          date NOT NULL,
    released_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    released_by  text NOT NULL,
    reason       text NOT NULL,
    held_by      text[] NOT NULL,
    PRIMARY KEY (metric, day)
);
COMMENT ON TABLE pipeline.day_releases IS
    'days released for freezing while checks of severity block were failing: who, when, why, and which checks';
SELECT pg_catalog.pg_extension_config_dump('pipeline.day_releases', '');

-- How far close_days has gone for each metric: the latest as_of it ran
-- with.  A day without events has no raw partition, so close_days never
-- gives it a day_closures row; this tells such a day, closed and empty,
-- from a day close_days has not reached yet (the sla check reads it).
CREATE TABLE pipeline.close_runs (
    metric       text PRIMARY KEY,
    closed_as_of timestamptz NOT NULL,
    ran_at       timestamptz NOT NULL
);
COMMENT ON TABLE pipeline.close_runs IS
    'per metric, the latest as_of close_days has run with (closed_as_of) and when (ran_at): every day ending '
    'allowed_lateness before closed_as_of has been closed, including days without events';
SELECT pg_catalog.pg_extension_config_dump('pipeline.close_runs', '');

GRANT SELECT ON pipeline.day_closures, pipeline.restatements, pipeline.day_releases, pipeline.close_runs TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.day_closures', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.restatements', '');

-- Outside a restatement, a frozen row never changes.
CREATE FUNCTION pipeline._guard_frozen() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
BEGIN
    IF pg_catalog.current_setting('pipeline.restating', true) IS DISTINCT FROM 'on' THEN
        IF TG_OP = 'TRUNCATE' THEN
            RAISE EXCEPTION 'frozen days cannot be truncated'
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Frozen days change only through pipeline.restate_day().';
        END IF;
        IF OLD.status = 'frozen' THEN
            RAISE EXCEPTION 'day % of % is frozen', OLD.day, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Frozen days change only through pipeline.restate_day(metric, day, reason).';
        END IF;
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$fn$;
COMMENT ON FUNCTION pipeline._guard_frozen() IS 'internal: refuses UPDATE, DELETE and TRUNCATE of frozen daily rows';

CREATE FUNCTION pipeline._guard_corrections() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
BEGIN
    IF pg_catalog.current_setting('pipeline.restating', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'corrections are append-only'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A restatement absorbs them: pipeline.restate_day(metric, day, reason).';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$fn$;
COMMENT ON FUNCTION pipeline._guard_corrections() IS 'internal: keeps correction tables append-only';

-- Creates the daily layer of a metric: tables owned by the extension owner
-- (so no other role can touch a frozen row), their guards and the views.
-- Run by _register_metric_as_owner, as the extension owner, for the metric
-- it has just registered; not executable by anyone else.
CREATE FUNCTION pipeline._create_daily(metric text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m pipeline.metric_catalog;
    s pipeline.source_catalog;
    def jsonb;
    daily text := metric || '_daily';
    corr text := metric || '_corrections';
    dims text;
    key text;
BEGIN
    SELECT * INTO m FROM pipeline.metric_catalog AS c WHERE c.metric = _create_daily.metric;
    IF NOT FOUND OR pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', daily)) IS NOT NULL THEN
        RAISE EXCEPTION 'metric "%" is not waiting for its daily layer', metric
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS c WHERE c.source = m.source;
    def := m.definition;
    dims := pipeline._dims(def);
    key := 'day' || dims;

    EXECUTE pg_catalog.format(
        'CREATE TABLE pipeline.%I (day date NOT NULL%s, %s, status text NOT NULL, '
        'computed_at timestamptz NOT NULL, frozen_at timestamptz, '
        'CONSTRAINT %I UNIQUE NULLS NOT DISTINCT (%s))',
        daily, pipeline._dims_typed(def),
        pipeline._measure_sql(def, 'daily_columns'), daily || '_key', key);
    EXECUTE pg_catalog.format(
        'CREATE TRIGGER guard_frozen BEFORE UPDATE OR DELETE ON pipeline.%I '
        'FOR EACH ROW EXECUTE FUNCTION pipeline._guard_frozen()', daily);
    EXECUTE pg_catalog.format(
        'CREATE TRIGGER guard_truncate BEFORE TRUNCATE ON pipeline.%I '
        'FOR EACH STATEMENT EXECUTE FUNCTION pipeline._guard_frozen()', daily);

    EXECUTE pg_catalog.format(
        'CREATE TABLE pipeline.%I (correction_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, '
        'day date NOT NULL%s, %s, late_events bigint NOT NULL, batch_ids bigint[] NOT NULL, '
        'created_at timestamptz NOT NULL DEFAULT pg_catalog.now())',
        corr, pipeline._dims_typed(def),
        -- deltas: bigint for counts and distinct counts, the sum's type for
        -- sums, the new extreme for min/max, sum and count deltas for avg
        replace(pipeline._measure_sql(def, 'daily_columns'), ' NOT NULL', ''));
    EXECUTE pg_catalog.format('CREATE INDEX ON pipeline.%I (day)', corr);
    EXECUTE pg_catalog.format(
        'CREATE TRIGGER guard_append_only BEFORE UPDATE OR DELETE ON pipeline.%I '
        'FOR EACH ROW EXECUTE FUNCTION pipeline._guard_corrections()', corr);
    EXECUTE pg_catalog.format(
        'CREATE TRIGGER guard_truncate BEFORE TRUNCATE ON pipeline.%I '
        'FOR EACH STATEMENT EXECUTE FUNCTION pipeline._guard_corrections()', corr);

    -- views: the reader's view of each table; readers never touch the tables
    EXECUTE pg_catalog.format(
        'CREATE VIEW metrics.%I AS SELECT d.day%s, %s, d.status, d.frozen_at FROM pipeline.%I AS d',
        daily, pipeline._dims(def, 'd.'),
        (SELECT pg_catalog.string_agg(pg_catalog.format('d.%I', e->>'name'), ', ' ORDER BY o)
           FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS x(e, o)),
        daily);
    EXECUTE pg_catalog.format(
        'CREATE VIEW metrics.%I AS SELECT c.day%s, %s, c.late_events, c.batch_ids, c.created_at FROM pipeline.%I AS c',
        corr, pipeline._dims(def, 'c.'),
        pipeline._measure_sql(def, 'corrections_view'), corr);
    PERFORM pipeline._create_restated_view(m.metric);
    PERFORM pipeline._create_reconcile_view(m.metric);
    PERFORM pipeline._depend_on_extension(pg_catalog.format('pipeline.%I', daily)::regclass);
    PERFORM pipeline._depend_on_extension(pg_catalog.format('pipeline.%I', corr)::regclass);

    EXECUTE pg_catalog.format('ALTER VIEW metrics.%I OWNER TO %I', daily, m.owner::text);
    EXECUTE pg_catalog.format('ALTER VIEW metrics.%I OWNER TO %I', corr, m.owner::text);
    EXECUTE pg_catalog.format('GRANT SELECT ON pipeline.%I, pipeline.%I TO %I', daily, corr, m.owner::text);
    EXECUTE pg_catalog.format('GRANT SELECT ON metrics.%I, metrics.%I, metrics.%I, metrics.%I TO pipeline_reader',
                              daily, corr, metric || '_restated', metric || '_reconcile');
    EXECUTE pg_catalog.format('COMMENT ON VIEW metrics.%I IS %L', daily,
        pg_catalog.format('metric %s per day (%s): exact, provisional until frozen, frozen rows never change', metric, s.day_timezone));
    EXECUTE pg_catalog.format('COMMENT ON VIEW metrics.%I IS %L', corr,
        pg_catalog.format('metric %s: deltas of events accepted after their day froze, with the batches behind them (append-only)', metric));
END
$fn$;
COMMENT ON FUNCTION pipeline._create_daily(text) IS
    'internal: builds a metric''s daily tables, guards and views, owned by the extension owner';
REVOKE EXECUTE ON FUNCTION pipeline._create_daily(text) FROM PUBLIC;

-- The restated view: per day and group, the frozen values and the
-- corrections, each measure combined as its kind says (restated in
-- pipeline.measure_kinds).
CREATE FUNCTION pipeline._create_restated_view(metric text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m pipeline.metric_catalog;
    def jsonb;
BEGIN
    SELECT * INTO STRICT m FROM pipeline.metric_catalog AS c WHERE c.metric = _create_restated_view.metric;
    def := m.definition;
    EXECUTE pg_catalog.format(
        'CREATE VIEW metrics.%1$I AS SELECT u.day%2$s, %3$s, pg_catalog.bool_or(u.is_correction) AS corrected '
        'FROM (SELECT d.day%4$s, %5$s, false AS is_correction FROM pipeline.%6$I AS d '
        '      UNION ALL '
        '      SELECT c.day%7$s, %8$s, true FROM pipeline.%9$I AS c) AS u '
        'GROUP BY u.day%2$s',
        m.metric || '_restated', pipeline._dims(def, 'u.'), pipeline._measure_sql(def, 'restated'),
        pipeline._dims(def, 'd.'), pipeline._measure_sql(def, 'daily_names', 'd.'), m.metric || '_daily',
        pipeline._dims(def, 'c.'), pipeline._measure_sql(def, 'daily_names', 'c.'), m.metric || '_corrections');
    EXECUTE pg_catalog.format('ALTER VIEW metrics.%I OWNER TO %I', m.metric || '_restated', m.owner::text);
    EXECUTE pg_catalog.format('COMMENT ON VIEW metrics.%I IS %L', m.metric || '_restated',
        pg_catalog.format('metric %s per day: frozen values plus corrections', m.metric));
END
$fn$;
REVOKE EXECUTE ON FUNCTION pipeline._create_restated_view(text) FROM PUBLIC;
COMMENT ON FUNCTION pipeline._create_restated_view(text) IS 'internal: builds metrics.<metric>_restated';

-- The reconcile view: per day and dimension group, for each measure the hot
-- rollup (where hot retention still covers the whole day), the daily value,
-- the restated value and the difference, with the counts behind it.
CREATE FUNCTION pipeline._create_reconcile_view(metric text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m pipeline.metric_catalog;
    s pipeline.source_catalog;
    def jsonb;
    live_cols text;
    cols text;
BEGIN
    SELECT * INTO STRICT m FROM pipeline.metric_catalog AS c WHERE c.metric = _create_reconcile_view.metric;
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS c WHERE c.source = m.source;
    def := m.definition;
    -- per measure: the hot rollup of a day, daily, restated, the difference
    live_cols := pipeline._measure_sql(def, 'rollup');
    SELECT pg_catalog.string_agg(pg_catalog.format(
               'l.%1$I AS %2$I, d.%1$I AS %3$I, r.%1$I AS %4$I, %5$s AS %6$I',
               e->>'name', (e->>'name') || '_live', (e->>'name') || '_daily', (e->>'name') || '_restated',
               pipeline._measure_part(e, o, 'difference'), (e->>'name') || '_difference'), ', ' ORDER BY o)
      INTO cols
      FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS x(e, o);

    EXECUTE pg_catalog.format($v$
        CREATE VIEW metrics.%1$I AS
        WITH live AS (
            SELECT (h.bucket AT TIME ZONE %2$L)::date AS day%3$s, %4$s
              FROM pipeline.%5$I AS h
             GROUP BY 1%6$s),
        corr AS (
            SELECT c.day%7$s, pg_catalog.sum(c.late_events)::bigint AS events
              FROM pipeline.%8$I AS c GROUP BY c.day%7$s)
        SELECT r.day%9$s, %10$s,
               COALESCE(k.events, 0) AS events_late_after_freeze,
               (r.day::timestamp AT TIME ZONE %2$L) >= pg_catalog.now() - %11$L::interval AS hot_covers_day,
               %12$L::boolean AS distinct_is_approximate_in_live,
               d.status, d.frozen_at
          FROM metrics.%13$I AS r
          LEFT JOIN pipeline.%14$I AS d ON d.day = r.day%15$s
          LEFT JOIN live AS l ON l.day = r.day
               AND (r.day::timestamp AT TIME ZONE %2$L) >= pg_catalog.now() - %11$L::interval%16$s
          LEFT JOIN corr AS k ON k.day = r.day%17$s
        $v$,
        m.metric || '_reconcile', s.day_timezone, pipeline._dims(def, 'h.'), live_cols, m.metric || '_hot',
        (SELECT COALESCE(pg_catalog.string_agg(pg_catalog.format(', %s', i), ''), '')
           FROM pg_catalog.generate_series(2, 1 + pg_catalog.jsonb_array_length(def->'dimensions')) AS i),
        pipeline._dims(def, 'c.'), m.metric || '_corrections',
        pipeline._dims(def, 'r.'), cols, m.hot_retention,
        EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(def->'measures') AS e
                  JOIN pipeline.measure_kinds AS k ON k.kind = e->>'agg' WHERE k.live_is_approximate),
        m.metric || '_restated', m.metric || '_daily',
        pipeline._dims_match(def, 'd', 'r'),
        pipeline._dims_match(def, 'l', 'r'),
        pipeline._dims_match(def, 'k', 'r'));
    EXECUTE pg_catalog.format('ALTER VIEW metrics.%I OWNER TO %I', m.metric || '_reconcile', m.owner::text);
    EXECUTE pg_catalog.format('COMMENT ON VIEW metrics.%I IS %L', m.metric || '_reconcile',
        pg_catalog.format('metric %s per day: hot rollup vs daily vs restated, the differences and the events behind them', m.metric));
END
$fn$;
REVOKE EXECUTE ON FUNCTION pipeline._create_reconcile_view(text) FROM PUBLIC;
COMMENT ON FUNCTION pipeline._create_reconcile_view(text) IS 'internal: builds metrics.<metric>_reconcile';

-- Drops a metric's daily layer once its catalog row is gone: run by
-- _unregister_metric_as_owner, as the extension owner, right after it
-- deleted that row for a member of the metric's owner.
CREATE FUNCTION pipeline._drop_daily(metric text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    idx regclass;
BEGIN
    IF EXISTS (SELECT FROM pipeline.metric_catalog AS c WHERE c.metric = _drop_daily.metric) THEN
        RAISE EXCEPTION 'metric "%" still exists', metric
            USING ERRCODE = 'insufficient_privilege', HINT = 'Use pipeline.drop_metric().';
    END IF;
    PERFORM pg_catalog.set_config('pipeline.restating', 'on', true);
    -- (the reconcile view reads the hot table: drop_metric dropped it first)
    EXECUTE pg_catalog.format('DROP VIEW IF EXISTS metrics.%I, metrics.%I, metrics.%I',
        metric || '_restated', metric || '_corrections', metric || '_daily');
    EXECUTE pg_catalog.format('DROP TABLE IF EXISTS pipeline.%I, pipeline.%I',
        metric || '_daily', metric || '_corrections');
    DELETE FROM pipeline.day_closures AS c WHERE c.metric = _drop_daily.metric;
    DELETE FROM pipeline.close_runs AS c WHERE c.metric = _drop_daily.metric;
    DELETE FROM pipeline.correction_statements AS c WHERE c.metric = _drop_daily.metric;
    PERFORM pg_catalog.set_config('pipeline.restating', 'off', true);
    -- the value indexes of frozen days (_index_day_values) that no metric
    -- left counts distinct
    FOR idx IN
        SELECT i.indexrelid::regclass
          FROM pipeline.source_catalog AS s
          JOIN pg_catalog.pg_inherits AS h ON h.inhparent = s.raw_table
          JOIN pg_catalog.pg_index AS i ON i.indrelid = h.inhrelid
          JOIN pg_catalog.pg_class AS c ON c.oid = i.indexrelid
         WHERE c.relname ~ '_pl_v[0-9a-f]{8}$'
           AND NOT EXISTS (SELECT FROM pipeline.metric_catalog AS m,
                                       pipeline._measures_corrected_by(m.definition, 'new_values') AS x
                            WHERE m.source = s.source
                              AND c.relname = pipeline._value_index_name(h.inhrelid::regclass, x->>'expr'))
    LOOP
        EXECUTE pg_catalog.format('DROP INDEX %s', idx);
    END LOOP;
    -- and the queued ones no metric wants any more
    DELETE FROM pipeline.value_index_queue AS q
     WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_inherits AS h
                         JOIN pipeline.source_catalog AS s ON s.raw_table = h.inhparent
                         JOIN pipeline.metric_catalog AS m ON m.source = s.source,
                              pipeline._measures_corrected_by(m.definition, 'new_values') AS x
                        WHERE h.inhrelid = q.part AND x->>'expr' = q.col);
END
$fn$;
COMMENT ON FUNCTION pipeline._drop_daily(text) IS 'internal: drops the daily layer of a dropped metric';
REVOKE EXECUTE ON FUNCTION pipeline._drop_daily(text) FROM PUBLIC;

-- The days a metric may have to close: those its source has raw partitions for.
CREATE FUNCTION pipeline._source_days(source text)
    RETURNS SETOF date
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
    SELECT DISTINCT pg_catalog.to_date(pg_catalog.substring(c.relname, '_raw_([0-9]{8})(?:_[0-9]+)?$'), 'YYYYMMDD')
      FROM pipeline.source_catalog AS s
      JOIN pg_catalog.pg_inherits AS i ON i.inhparent = s.raw_table
      JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
     WHERE s.source = _source_days.source AND c.relname ~ '_raw_[0-9]{8}(_[0-9]+)?$'
     ORDER BY 1
$fn$;
COMMENT ON FUNCTION pipeline._source_days(text) IS 'internal: the local days a source has raw partitions for';

-- Recomputes one day exactly from raw (provisional or frozen).  The
-- aggregate and the snapshot it is recorded with come from one statement,
-- hence one snapshot: the frozen numbers include exactly the batches that
-- snapshot sees.
CREATE FUNCTION pipeline._compute_day(m pipeline.metric_catalog, d date, status text, as_of timestamptz,
                                      OUT snap pg_snapshot, OUT events bigint)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    def jsonb := m.definition;
    lo timestamptz;
    hi timestamptz;
    seen_floor bigint;
    unseen bigint[];
    seen bigint[];
BEGIN
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS c WHERE c.source = m.source;
    lo := d::timestamp AT TIME ZONE s.day_timezone;
    hi := (d + 1)::timestamp AT TIME ZONE s.day_timezone;
    EXECUTE pg_catalog.format('DELETE FROM pipeline.%I WHERE day = $1', m.metric || '_daily') USING d;
    IF pipeline._distributed(s.raw_table) THEN
        -- the workers read with snapshots of their own, taken after this
        -- one: the day is computed from exactly the batches this snapshot
        -- sees, once they have committed on the workers (src/scale_out.c)
        snap := pg_catalog.pg_current_snapshot();
        PERFORM pipeline._await_commits();
        SELECT * INTO seen_floor, unseen, seen FROM pipeline._batches_seen(s.source, snap);
        EXECUTE pg_catalog.format(
            'WITH agg AS (SELECT %1$s%2$s, pg_catalog.count(*) AS _events FROM %3$s AS r '
            '             WHERE r.%4$I >= $2 AND r.%4$I < $3 AND (%5$s) AND %10$s GROUP BY %6$s), '
            '     ins AS (INSERT INTO pipeline.%7$I (day%8$s, %9$s, status, computed_at, frozen_at) '
            '             SELECT $1%8$s, %9$s, $4, pg_catalog.now(), CASE WHEN $4 = ''frozen'' THEN $5 END FROM agg) '
            'SELECT COALESCE((SELECT pg_catalog.sum(_events) FROM agg), 0)::bigint',
            pipeline._measure_sql(def, 'daily_exact'),
            pipeline._dims_aliased(def, 'r.'),
            s.raw_table, s.event_time, COALESCE(def->>'filter', 'true'),
            -- Citus plans no GROUP BY (): a constant key groups the same
            COALESCE(NULLIF(pipeline._dims_group(def, 'r.'), '()'), '(0 = 0)'),
            m.metric || '_daily', pipeline._dims(def), pipeline._measure_sql(def, 'daily_names'),
            pipeline._seen_on_workers('r', '$6', '$7', '$8'))
          INTO events USING d, lo, hi, status, as_of, seen_floor, unseen, seen;
        RETURN;
    END IF;
    -- one pass over the day: the aggregates, the events behind them, and
    -- the snapshot they were read with
    EXECUTE pg_catalog.format(
        'WITH agg AS (SELECT %1$s%2$s, pg_catalog.count(*) AS _events FROM %3$s AS r '
        '             WHERE r.%4$I >= $2 AND r.%4$I < $3 AND (%5$s) GROUP BY %6$s), '
        '     ins AS (INSERT INTO pipeline.%7$I (day%8$s, %9$s, status, computed_at, frozen_at) '
        '             SELECT $1%8$s, %9$s, $4, pg_catalog.now(), CASE WHEN $4 = ''frozen'' THEN $5 END FROM agg) '
        'SELECT pg_catalog.pg_current_snapshot(), COALESCE((SELECT pg_catalog.sum(_events) FROM agg), 0)::bigint',
        pipeline._measure_sql(def, 'daily_exact'),
        pipeline._dims_aliased(def, 'r.'),
        s.raw_table, s.event_time, COALESCE(def->>'filter', 'true'),
        pipeline._dims_group(def, 'r.'),
        m.metric || '_daily', pipeline._dims(def), pipeline._measure_sql(def, 'daily_names'))
      INTO snap, events USING d, lo, hi, status, as_of;
END
$fn$;
COMMENT ON FUNCTION pipeline._compute_day(pipeline.metric_catalog, date, text, timestamptz, OUT pg_snapshot, OUT bigint) IS
    'internal: recomputes a day of a metric exactly from raw; returns the snapshot its numbers were read with and the events behind them';

-- true if a measure's expression is a plain column of the raw table (its
-- deparsed form: the quoted column name)
CREATE FUNCTION pipeline._raw_column(raw regclass, expr text) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                    WHERE a.attrelid = raw AND a.attnum > 0 AND NOT a.attisdropped
                      AND pg_catalog.quote_ident(a.attname) = expr);
COMMENT ON FUNCTION pipeline._raw_column(regclass, text) IS
    'internal: whether a measure expression is a plain column of a raw table';

-- the name of the value index of a column on a day partition:
-- <partition>_pl_v<8 hex digits of the md5 of partition and column>.  The
-- partition's name is cut to 45 characters to fit in an identifier (a
-- 40-character source's partitions differ only after that), so the hash
-- takes the whole name: every day gets its own index.
CREATE FUNCTION pipeline._value_index_name(part regclass, col text) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (SELECT pg_catalog.left(c.relname, 45) || '_pl_v'
                   || pg_catalog.left(pg_catalog.md5(c.relname || ' ' || col), 8)
              FROM pg_catalog.pg_class AS c WHERE c.oid = part);
COMMENT ON FUNCTION pipeline._value_index_name(regclass, text) IS
    'internal: the name of the index _index_day_values builds for a column on a day partition';

-- The value indexes of frozen days that corrections asked for and the index
-- builder (src/index_builder.c) has not built yet: the day's raw
-- partition, the column, the columns the index includes, and the builder's
-- attempts.  retry_after is pushed back before each attempt, so an entry
-- whose builder died is retried later.  Not dumped: a restored database
-- queues again at its next correction.
CREATE TABLE pipeline.value_index_queue (
    part oid NOT NULL,
    col text NOT NULL,
    include text[] NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    attempts integer NOT NULL DEFAULT 0,
    retry_after timestamptz NOT NULL DEFAULT '-infinity',
    last_error text,
    PRIMARY KEY (part, col)
);
COMMENT ON TABLE pipeline.value_index_queue IS
    'internal: value indexes of frozen days waiting for the index builder';

CREATE FUNCTION pipeline._start_index_builder() RETURNS void
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_start_index_builder';
COMMENT ON FUNCTION pipeline._start_index_builder() IS
    'internal: starts the index builder of this database when the transaction commits';

-- Is the value index of col on a day partition there and usable?
CREATE FUNCTION pipeline._value_index_ready(part regclass, col text) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN EXISTS (SELECT FROM pg_catalog.pg_index AS i
                    WHERE i.indexrelid = pg_catalog.to_regclass(
                              pg_catalog.format('pipeline.%I', pipeline._value_index_name(part, col)))
                      AND i.indrelid = part AND i.indisvalid);
COMMENT ON FUNCTION pipeline._value_index_ready(regclass, text) IS
    'internal: whether the value index of a column on a day partition is built and valid';

-- A correction of a frozen day with distinct measures wants, for each of
-- them that counts a plain column, an index on that column of the day's raw
-- partition, so that it and every later correction of that day look their
-- few new values up there (_correction_distinct) instead of scanning the
-- day: on a 10M-event day, seconds per correction without it, milliseconds
-- with it.  Only days that receive events after their freeze pay the
-- build.  The index is queued, not built here: a CREATE INDEX in the
-- correction's transaction would hold a SHARE lock on the day for the
-- whole build (seconds) and make every ingest into that day wait; the index
-- builder builds it CONCURRENTLY once this transaction commits.  The index
-- includes the columns a lookup checks besides the value, so that on a
-- vacuumed day a lookup reads no heap page.  Only measures of a plain
-- column are indexed: an expression such as 100 / amount may fail on rows
-- the metric's filter leaves out, and its correction scans the day
-- instead.  The indexes go with their partition, or with the last metric
-- that counts their column (_drop_daily).
CREATE FUNCTION pipeline._index_day_values(m pipeline.metric_catalog, s pipeline.source_catalog, part regclass)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    col text;
    included text[];
    queued boolean := false;
BEGIN
    FOR col IN
        SELECT DISTINCT x->>'expr'
          FROM pipeline._measures_corrected_by(m.definition, 'new_values') AS x
         WHERE pipeline._raw_column(s.raw_table, x->>'expr')
    LOOP
        CONTINUE WHEN pipeline._value_index_ready(part, col);
        -- what a lookup checks besides the value, so that it reads the
        -- index alone: the batch, the event time, and the dimensions of
        -- every metric of the source that counts this column
        SELECT pg_catalog.array_agg(c) INTO included
          FROM (SELECT '_pl_batch' AS c
                UNION SELECT s.event_time
                UNION SELECT d->>'name'
                        FROM pipeline.metric_catalog AS o,
                             pg_catalog.jsonb_array_elements(o.definition->'dimensions') AS e(d)
                       WHERE o.source = s.source
                         AND EXISTS (SELECT FROM pipeline._measures_corrected_by(o.definition, 'new_values') AS x
                                      WHERE x->>'expr' = col)) AS u
         WHERE c <> col;
        INSERT INTO pipeline.value_index_queue (part, col, include) VALUES (part, col, included)
            ON CONFLICT DO NOTHING;
        queued := queued OR FOUND;
    END LOOP;
    IF queued THEN
        PERFORM pipeline._start_index_builder();
    END IF;
END
$fn$;
COMMENT ON FUNCTION pipeline._index_day_values(pipeline.metric_catalog, pipeline.source_catalog, regclass) IS
    'internal: queues the value indexes a frozen day''s corrections want for the index builder';

-- The index builder's next statement (src/index_builder.c), as the
-- extension owner's tables say: entries whose partition is gone or whose
-- index is built leave the queue; of those due, the oldest.  An invalid
-- index of that name on the partition (a build that died) is dropped
-- first; otherwise the build is the next attempt, and its retry time moves
-- 1, 2, 4 ... 60 minutes ahead, so that a builder that dies leaves it for
-- later.
CREATE FUNCTION pipeline._value_index_next()
    RETURNS TABLE (part oid, col text, statement text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    q pipeline.value_index_queue;
    idx text;
BEGIN
    DELETE FROM pipeline.value_index_queue AS x
     WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class AS c WHERE c.oid = x.part AND c.relkind = 'r')
        OR pipeline._value_index_ready(x.part, x.col);
    SELECT * INTO q FROM pipeline.value_index_queue AS x
     WHERE x.retry_after <= pg_catalog.now()
     ORDER BY x.queued_at, x.part, x.col LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    idx := pipeline._value_index_name(q.part, q.col);
    IF EXISTS (SELECT FROM pg_catalog.pg_index AS i
                WHERE i.indexrelid = pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', idx))
                  AND i.indrelid = q.part) THEN
        RETURN QUERY SELECT q.part, q.col, pg_catalog.format('DROP INDEX CONCURRENTLY IF EXISTS pipeline.%I', idx);
        RETURN;
    END IF;
    UPDATE pipeline.value_index_queue AS x
       SET attempts = x.attempts + 1,
           retry_after = pg_catalog.now() + LEAST(interval '1 minute' * 2 ^ x.attempts, interval '1 hour')
     WHERE x.part = q.part AND x.col = q.col;
    RETURN QUERY SELECT q.part, q.col,
        pg_catalog.format('CREATE INDEX CONCURRENTLY %I ON %s (%I) INCLUDE (%s)', idx, q.part::regclass, q.col,
                          (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ' ORDER BY o)
                             FROM pg_catalog.unnest(q.include) WITH ORDINALITY AS u(c, o)));
END
$fn$;
COMMENT ON FUNCTION pipeline._value_index_next() IS
    'internal: the index builder''s next statement, if an entry of the value index queue is due';

CREATE FUNCTION pipeline._value_index_failed(part oid, col text, message text) RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
    UPDATE pipeline.value_index_queue AS x
       SET last_error = message,
           retry_after = GREATEST(x.retry_after, pg_catalog.now() + interval '1 minute')
     WHERE x.part = _value_index_failed.part AND x.col = _value_index_failed.col;
    END;
COMMENT ON FUNCTION pipeline._value_index_failed(oid, text, text) IS
    'internal: records why the index builder''s statement for a queued value index failed';

-- The statements that write a metric's corrections (_correct_day), kept
-- once generated: generating one calls some thirty helper functions, each
-- of which plans its query anew in every new backend, and pg_cron runs
-- every close_days in a new backend (kept, a correction on a 10M-event day
-- took 9 ms less at the median of twelve pairs); reading one back is an
-- index lookup.  A statement depends on the metric (created_at tells it from an
-- earlier metric of the same name), on whether its source is distributed,
-- and on which distinct measures look their new values up in the day's
-- value index (lookups); the day's raw partition goes between its pieces.
-- Not dumped: a restored database generates them again.  An update of the
-- extension that changes how they are generated empties the table.
CREATE TABLE pipeline.correction_statements (
    metric text NOT NULL,
    created_at timestamptz NOT NULL,
    distributed boolean NOT NULL,
    lookups text[] NOT NULL,
    pieces text[] NOT NULL,
    PRIMARY KEY (metric, created_at, distributed, lookups)
);
COMMENT ON TABLE pipeline.correction_statements IS
    'internal: the generated statements that write a metric''s corrections, by variant';

-- Corrections for a frozen day: the batches visible now that neither the
-- freeze nor an earlier correction saw.  Deltas for counts and sums come
-- from the new events alone; a distinct count grows by the new events'
-- values that no earlier event of the day and group has (see
-- _correction_distinct); min and max keep a new extreme.  The rows
-- and the new cursor commit together; a concurrent close_days waits on the
-- closure row and then finds nothing new.
--
-- With distinct measures, JIT is off for the statement (compiling it took
-- longer than running it), and so is enable_sort when a distinct measure
-- has no value index to look its values up in (an expression, or an index
-- not built yet, see _correction_distinct): the planner
-- cannot know how many rows the CTEs hold and picks sorts that sort every
-- event of a popular value (millions, spilled to disk) where hashing the
-- few new values costs one scan (measured on a 10M-event day: 11 s -> 5 s).
CREATE FUNCTION pipeline._correct_day(m pipeline.metric_catalog, c pipeline.day_closures)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    def jsonb := m.definition;
    cur pg_snapshot := pg_catalog.pg_current_snapshot();
    lo timestamptz;
    hi timestamptz;
    ids bigint[];
    first_id bigint;
    last_id bigint;
    n bigint := 0;
    part regclass;
    dist boolean;
    seen_floor bigint;
    unseen bigint[];
    seen bigint[];
    index_lookups text[];
    scans boolean;
    unindexed boolean;
    pieces text[];
    marker constant text := '<day partition>';
    sort_setting text := pg_catalog.current_setting('enable_sort');
    jit_setting text := pg_catalog.current_setting('jit');
BEGIN
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS x WHERE x.source = m.source;
    lo := c.day::timestamp AT TIME ZONE s.day_timezone;
    hi := (c.day + 1)::timestamp AT TIME ZONE s.day_timezone;
    SELECT pg_catalog.array_agg(b.batch_id ORDER BY b.batch_id), pg_catalog.min(b.batch_id), pg_catalog.max(b.batch_id)
      INTO ids, first_id, last_id
      FROM pipeline.batch_log AS b
     WHERE b.source = m.source
       AND b.xid >= pg_catalog.pg_snapshot_xmin(c.corrected_snapshot)
       AND NOT pg_catalog.pg_visible_in_snapshot(b.xid, c.corrected_snapshot)
       AND pg_catalog.pg_visible_in_snapshot(b.xid, cur)
       AND b.accepted > 0 AND b.max_event_time >= lo AND b.min_event_time < hi;
    IF ids IS NOT NULL THEN
        dist := pipeline._distributed(s.raw_table);
        IF dist THEN
            -- "the other events of the day" are those of the batches cur
            -- sees, once committed on the workers (src/scale_out.c)
            PERFORM pipeline._await_commits();
            SELECT * INTO seen_floor, unseen, seen FROM pipeline._batches_seen(s.source, cur);
        END IF;
        -- (a frozen day has its partition, unless someone dropped it)
        part := COALESCE(pipeline._day_partition(s, c.day), s.raw_table);
        -- the distinct measures that look their new values up in the day's
        -- value index, and whether any scans the day instead (NULL: the
        -- metric has no distinct measure).  On a distributed source each
        -- takes the scan's form (Citus cannot plan the lookup's LATERAL),
        -- which the workers run through the value index on their shards
        -- of the day once it is built: the few new values joined to the
        -- index instead of the day scanned for them.
        WITH y AS MATERIALIZED (
            SELECT x->>'expr' AS expr, pipeline._value_index_ready(part, x->>'expr') AS ready
              FROM pipeline._measures_corrected_by(def, 'new_values') AS x)
        SELECT COALESCE(pg_catalog.array_agg(DISTINCT y.expr) FILTER (WHERE y.ready AND NOT dist), '{}'),
               pg_catalog.bool_or(NOT y.ready OR dist), pg_catalog.bool_or(NOT y.ready)
          INTO index_lookups, scans, unindexed FROM y;
        IF scans IS NOT NULL THEN
            PERFORM pg_catalog.set_config('jit', 'off', true);
        END IF;
        IF unindexed AND part <> s.raw_table THEN
            PERFORM pipeline._index_day_values(m, s, part);
            -- and once per day, the day's BRIN index on the shards
            IF dist THEN
                PERFORM pipeline._summarize_shards(part);
            END IF;
        END IF;
        IF scans THEN
            PERFORM pg_catalog.set_config('enable_sort', 'off', true);
        END IF;
        SELECT x.pieces INTO pieces FROM pipeline.correction_statements AS x
         WHERE x.metric = m.metric AND x.created_at = m.created_at AND x.distributed = dist AND x.lookups = index_lookups;
        IF NOT FOUND THEN
            -- generated with a marker where the day's partition goes, and
            -- kept unless the marker is in one of its inputs
            IF pg_catalog.strpos(pg_catalog.concat_ws(' ', def, s.raw_table, s.event_time, m.metric), marker) = 0 THEN
                pieces := pg_catalog.string_to_array(pipeline._correction_sql(m, s, marker, index_lookups, dist), marker);
                INSERT INTO pipeline.correction_statements (metric, created_at, distributed, lookups, pieces)
                    VALUES (m.metric, m.created_at, dist, index_lookups, pieces) ON CONFLICT DO NOTHING;
            ELSE
                pieces := ARRAY[pipeline._correction_sql(m, s, part::text, index_lookups, dist)];
            END IF;
        END IF;
        EXECUTE pg_catalog.array_to_string(pieces, part::text)
          INTO n USING c.day, lo, hi, ids, cur, s.source, seen_floor, first_id, last_id, unseen, seen;
        PERFORM pg_catalog.set_config('enable_sort', sort_setting, true);
        PERFORM pg_catalog.set_config('jit', jit_setting, true);
    END IF;
    UPDATE pipeline.day_closures AS x SET corrected_snapshot = cur
     WHERE x.metric = c.metric AND x.day = c.day;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION pipeline._correct_day(pipeline.metric_catalog, pipeline.day_closures) IS
    'internal: writes the corrections of a frozen day for the batches accepted since its freeze or last correction';

-- "r's batch was committed for the snapshot cur ($5) of _correct_day": a
-- batch that committed after cur is visible to the statement but left for
-- its own correction
CREATE FUNCTION pipeline._seen_by_cur(alias text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.format(
        '%I._pl_batch NOT IN (SELECT b.batch_id FROM pipeline.batch_log AS b '
        '                      WHERE b.source = $6 '
        '                        AND b.xid >= pg_catalog.pg_snapshot_xmin($5) '
        '                        AND NOT pg_catalog.pg_visible_in_snapshot(b.xid, $5))', alias);
COMMENT ON FUNCTION pipeline._seen_by_cur(text) IS
    'internal: the condition that a raw row''s batch was committed for the snapshot of a correction';

-- inside _correct_day's statement, for the measures corrected from raw
-- (percentiles): _pl_exact, their exact value per group that has late
-- events, over every event of the day the snapshot cur ($5) saw (the late
-- batches $4 among them).
CREATE FUNCTION pipeline._correction_exact(def jsonb, s pipeline.source_catalog) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.format(
               ', _pl_exact AS (SELECT %1$s%2$s FROM %3$s AS r '
               '                 WHERE r.%4$I >= $2 AND r.%4$I < $3 AND (%5$s) AND %6$s '
               '                   AND EXISTS (SELECT FROM new AS n WHERE true%7$s) '
               '                 GROUP BY %8$s)',
               pipeline._measure_sql(pg_catalog.jsonb_build_object('measures', pg_catalog.jsonb_agg(x)), 'daily_exact'),
               pipeline._dims_aliased(def, 'r.'), s.raw_table, s.event_time, COALESCE(def->>'filter', 'true'),
               CASE WHEN pipeline._distributed(s.raw_table) THEN pipeline._seen_on_workers('r', '$7', '$10', '$11')
                    ELSE pipeline._seen_by_cur('r') END,
               pipeline._dims_match(def, 'n', 'r'),
               CASE WHEN pipeline._distributed(s.raw_table)
                    THEN COALESCE(NULLIF(pipeline._dims_group(def, 'r.'), '()'), '(0 = 0)')
                    ELSE pipeline._dims_group(def, 'r.') END)
      FROM pipeline._measures_corrected_by(def, 'raw') AS x
    HAVING pg_catalog.count(*) > 0);
COMMENT ON FUNCTION pipeline._correction_exact(jsonb, pipeline.source_catalog) IS
    'internal: the CTE of _correct_day that computes, per group with late events, the exact value of the measures corrected from raw';

-- inside _correct_day's statement, per distinct measure number N, the
-- values the new events add to each group:
--   _pl_new_N    the new events' (group, value) pairs;
--   _pl_fresh_N  per group, how many of them no other event of the day
--                has: the delta (MATERIALIZED: read by a subquery per
--                correction row, it would otherwise be inlined there and
--                run once per group).
-- For a measure of a plain column whose value index on the day partition
-- is built (_index_day_values; lookups lists them, part is the
-- partition), each new value is looked up there and the
-- lookup stops at the first other event with it (LIMIT 1: a popular value
-- has thousands), so a correction costs as much as its few new values.
-- The lookup reads the partition itself, not the raw table: through the
-- parent the planner keeps only the cheapest full scan of the child (a
-- bitmap scan, which reads every entry of the value), not the index scan
-- that stops at the first.  For an expression, and for a column whose index
-- the builder has not finished yet, _pl_seen_N collects, in one scan of the
-- day that hashes the few new values, those some other event has; on a
-- distributed source always, and there each worker joins the new values
-- to the index on its shards once it is built.
-- "Other events" are those the snapshot cur ($5) saw outside the new
-- batches ($4): a batch that committed after cur is visible to this
-- statement but excluded, so that its values count when it is corrected
-- itself, exactly once.  The frozen value was exact, so each delta is too.
CREATE FUNCTION pipeline._correction_distinct(def jsonb, raw regclass, part text, event_time text, filter text,
                                              lookups text[])
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT COALESCE(pg_catalog.string_agg(
             pg_catalog.format(
                 ', _pl_new_%1$s AS (SELECT DISTINCT %2$s AS _pl_v%3$s FROM %4$s AS r '
                 '                   WHERE %7$s AND r.%5$I >= $2 AND r.%5$I < $3 AND (%6$s) '
                 '                     AND (%2$s) IS NOT NULL), ',
                 o, m->>'expr', pipeline._dims_aliased(def, 'r.'), raw, event_time, measure_filter,
                 pipeline._in_batches('r', '$4', '$8', '$9'))
             || CASE WHEN m->>'expr' = ANY (lookups) THEN pg_catalog.format(
                 '  _pl_fresh_%1$s AS MATERIALIZED (SELECT %2$s, pg_catalog.count(*) AS _pl_n FROM _pl_new_%1$s AS n '
                 '     LEFT JOIN LATERAL (SELECT 1 AS _pl_hit FROM %3$s AS r '
                 '                         WHERE (%4$s) = n._pl_v%5$s AND %6$s LIMIT 1) AS x ON true '
                 '    WHERE x._pl_hit IS NULL GROUP BY %2$s)',
                 o, grp, part, m->>'expr', pipeline._dims_match(def, 'r', 'n'), other)
             ELSE pg_catalog.format(
                 '  _pl_seen_%1$s AS (SELECT DISTINCT %2$s AS _pl_v%3$s FROM %4$s AS r '
                 '                   WHERE (%2$s) IN (SELECT n._pl_v FROM _pl_new_%1$s AS n) AND %5$s), '
                 '  _pl_fresh_%1$s AS MATERIALIZED (SELECT %6$s, pg_catalog.count(*) AS _pl_n FROM _pl_new_%1$s AS n '
                 '                    WHERE NOT EXISTS (SELECT FROM _pl_seen_%1$s AS x WHERE x._pl_v = n._pl_v%7$s) '
                 '                    GROUP BY %6$s)',
                 o, m->>'expr', pipeline._dims_aliased(def, 'r.'), raw, other, grp, pipeline._dims_match(def, 'x', 'n'))
             END, '' ORDER BY o), '')
      FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS e(m, o)
      JOIN pipeline.measure_kinds AS t ON t.kind = m->>'agg' AND t.corrected_by = 'new_values',
           LATERAL (SELECT pg_catalog.format('(%s) AND (%s)', filter, COALESCE(m->>'filter', 'true')) AS measure_filter) AS f,
           LATERAL (SELECT CASE WHEN def->'dimensions' = '[]' THEN '1' ELSE pipeline._dims_group(def, 'n.') END AS grp,
                           pg_catalog.format('r.%1$I >= $2 AND r.%1$I < $3 AND %2$s AND r._pl_batch <> ALL ($4) AND %3$s',
                                             event_time, measure_filter,
                                             CASE WHEN pipeline._distributed(raw) THEN pipeline._seen_on_workers('r', '$7', '$10', '$11')
                                                  ELSE pipeline._seen_by_cur('r') END) AS other) AS k);
COMMENT ON FUNCTION pipeline._correction_distinct(jsonb, regclass, text, text, text, text[]) IS
    'internal: the CTEs of _correct_day that count, per group, the distinct values new to a frozen day';

-- The statement of _correct_day for a metric: its parameters are the day
-- ($1), its bounds ($2, $3), the new batches ($4), the snapshot cur ($5),
-- the source ($6), the smallest and largest of the new batches ($8, $9:
-- _in_batches), and on a distributed source the batches cur saw ($7, $10,
-- $11: _batches_seen).
-- part is the text of the relation the value-index lookups read (the day's
-- partition); lookups, the distinct measures that look their new values up
-- there (_correction_distinct).
CREATE FUNCTION pipeline._correction_sql(m pipeline.metric_catalog, s pipeline.source_catalog, part text,
                                         lookups text[], dist boolean)
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.format(
        'WITH new AS (SELECT pg_catalog.count(*) AS _events, '
        '                    pg_catalog.array_agg(DISTINCT r._pl_batch) AS _batches%1$s%2$s '
        '               FROM %3$s AS r WHERE %14$s '
        '                AND r.%4$I >= $2 AND r.%4$I < $3 AND (%5$s) GROUP BY %6$s)%12$s%13$s, '
        '     ins AS (INSERT INTO pipeline.%7$I (day%8$s, %9$s, late_events, batch_ids) '
        '             SELECT $1%10$s, %11$s, new._events, new._batches FROM new RETURNING 1) '
        'SELECT pg_catalog.count(*) FROM ins',
        COALESCE(', ' || pipeline._measure_sql(m.definition, 'correction'), ''),
        pipeline._dims_aliased(m.definition, 'r.'),
        s.raw_table, s.event_time, COALESCE(m.definition->>'filter', 'true'),
        CASE WHEN dist THEN COALESCE(NULLIF(pipeline._dims_group(m.definition, 'r.'), '()'), '(0 = 0)')
             ELSE pipeline._dims_group(m.definition, 'r.') END,
        m.metric || '_corrections', pipeline._dims(m.definition), pipeline._measure_sql(m.definition, 'daily_names'),
        pipeline._dims(m.definition, 'new.'),
        pipeline._measure_sql(m.definition, 'correction_value', '', pipeline._dims_match(m.definition, 'x', 'new'),
                              m.metric || '_restated'),
        pipeline._correction_distinct(m.definition, s.raw_table, part, s.event_time,
                                      COALESCE(m.definition->>'filter', 'true'), lookups),
        pipeline._correction_exact(m.definition, s), pipeline._in_batches('r', '$4', '$8', '$9'));
COMMENT ON FUNCTION pipeline._correction_sql(pipeline.metric_catalog, pipeline.source_catalog, text, text[], boolean) IS
    'internal: the statement of _correct_day that writes a metric''s corrections';

-- Records a freeze, or a restatement's new version: the snapshot the
-- numbers were read with is also where the day's corrections start, and
-- the digest is of the rows just written.  Returns the digest.
CREATE FUNCTION pipeline._record_freeze(metric text, day date, version integer, frozen_at timestamptz,
                                        snap pg_snapshot, events bigint)
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    digest text;
BEGIN
    UPDATE pipeline.day_closures AS x
       SET status = 'frozen', version = _record_freeze.version, computed_at = pg_catalog.now(),
           frozen_at = _record_freeze.frozen_at, frozen_snapshot = snap, corrected_snapshot = snap,
           events_frozen = events, digest = pipeline._day_digest(_record_freeze.metric, _record_freeze.day)
     WHERE x.metric = _record_freeze.metric AND x.day = _record_freeze.day
    RETURNING x.digest INTO digest;
    RETURN digest;
END
$fn$;
REVOKE EXECUTE ON FUNCTION pipeline._record_freeze(text, date, integer, timestamptz, pg_snapshot, bigint) FROM PUBLIC;
COMMENT ON FUNCTION pipeline._record_freeze(text, date, integer, timestamptz, pg_snapshot, bigint) IS
    'internal: marks a day frozen at a version, with its snapshot and digest';

CREATE FUNCTION pipeline._close_days(as_of timestamptz)
    RETURNS TABLE (metric text, day date, action text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m pipeline.metric_catalog;
    s pipeline.source_catalog;
    c pipeline.day_closures;
    d date;
    day_end timestamptz;
    snap pg_snapshot;
    n bigint;
    done date[];
    did text[];
BEGIN
    PERFORM pipeline._check_schema();
    FOR m IN SELECT * FROM pipeline.metric_catalog ORDER BY 1 LOOP
      -- each metric on its own: one that cannot close (its filter raises
      -- on this day's data, its source changed under it) is reported and
      -- the others close; its results are returned only once it succeeded
      done := '{}';
      did := '{}';
      BEGIN
        -- written as the extension owner: only tables it owns (its own
        -- _create_daily made them), never one another role put there
        IF EXISTS (SELECT FROM pg_catalog.unnest(ARRAY[m.metric || '_daily', m.metric || '_corrections']) AS t(name)
                    WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class AS r
                                       WHERE r.relnamespace = 'pipeline'::regnamespace AND r.relname = t.name
                                         AND r.relkind = 'r' AND r.relowner = current_user::regrole)) THEN
            RAISE EXCEPTION 'the daily tables of metric % are not the extension''s', m.metric
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Drop and recreate the metric with pipeline.create_metric().';
        END IF;
        SELECT * INTO STRICT s FROM pipeline.source_catalog AS x WHERE x.source = m.source;
        FOR d IN SELECT pipeline._source_days(s.source) LOOP
            day_end := (d + 1)::timestamp AT TIME ZONE s.day_timezone;
            CONTINUE WHEN as_of < day_end + s.allowed_lateness;     -- still open
            INSERT INTO pipeline.day_closures AS x (metric, day, status)
                VALUES (m.metric, d, 'provisional') ON CONFLICT DO NOTHING;
            -- one closer per day at a time; a second waits, then sees the result
            SELECT * INTO STRICT c FROM pipeline.day_closures AS x
             WHERE x.metric = m.metric AND x.day = d FOR UPDATE;
            IF c.status = 'frozen' THEN
                n := pipeline._correct_day(m, c);
                IF n > 0 THEN
                    done := done || d;
                    did := did || 'corrected'::text;
                END IF;
            ELSIF as_of >= day_end + s.freeze_after
                  AND pg_catalog.cardinality(pipeline._blocking_checks(m.metric)) > 0
                  AND NOT EXISTS (SELECT FROM pipeline.day_releases AS r WHERE r.metric = m.metric AND r.day = d) THEN
                -- held: still recomputed exactly, not frozen while a blocking check fails
                PERFORM pipeline._compute_day(m, d, 'held', as_of);
                UPDATE pipeline.day_closures AS x SET status = 'held', computed_at = pg_catalog.now()
                 WHERE x.metric = m.metric AND x.day = d;
                done := done || d;
                did := did || 'held'::text;
            ELSIF as_of >= day_end + s.freeze_after THEN
                SELECT * INTO snap, n FROM pipeline._compute_day(m, d, 'frozen', as_of);
                PERFORM pipeline._record_freeze(m.metric, d, 1, as_of, snap, n);
                done := done || d;
                did := did || 'frozen'::text;
            ELSE
                PERFORM pipeline._compute_day(m, d, 'provisional', as_of);
                UPDATE pipeline.day_closures AS x SET computed_at = pg_catalog.now()
                 WHERE x.metric = m.metric AND x.day = d;
                done := done || d;
                did := did || 'provisional'::text;
            END IF;
        END LOOP;
        -- this run passed over every day ending allowed_lateness before
        -- as_of, those without events too (never later than a run before)
        INSERT INTO pipeline.close_runs AS x (metric, closed_as_of, ran_at)
            VALUES (m.metric, as_of, pg_catalog.now())
            ON CONFLICT ON CONSTRAINT close_runs_pkey
            DO UPDATE SET closed_as_of = GREATEST(x.closed_as_of, EXCLUDED.closed_as_of), ran_at = EXCLUDED.ran_at;
      EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pipeline: close_days of metric % failed: %', m.metric, SQLERRM
            USING HINT = 'The other metrics closed; this one is retried by the next close_days.';
        done := ARRAY[NULL::date];
        did := ARRAY['failed'];
      END;
      FOR i IN 1 .. pg_catalog.cardinality(did) LOOP
          metric := m.metric;
          day := done[i];
          action := did[i];
          RETURN NEXT;
      END LOOP;
    END LOOP;
END
$fn$;
REVOKE EXECUTE ON FUNCTION pipeline._close_days(timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION pipeline._close_days(timestamptz) IS
    'internal: the work of close_days, run as the extension owner';

-- The rows are digested as text, and text depends on the session's
-- settings: pinned, so that a day digests the same from any session.
CREATE FUNCTION pipeline._day_digest(metric text, d date) RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
    SET DateStyle = 'ISO, YMD'
    SET IntervalStyle = 'postgres'
    SET extra_float_digits = 1
    AS $fn$
DECLARE
    digest text;
BEGIN
    EXECUTE pg_catalog.format('SELECT pipeline.digest(x::text) FROM metrics.%I AS x WHERE x.day = $1',
                              metric || '_daily')
      INTO digest USING d;
    RETURN digest;
END
$fn$;
COMMENT ON FUNCTION pipeline._day_digest(text, date) IS
    'internal: the order-independent digest of a day''s rows in metrics.<metric>_daily';

-- Anyone can check that a frozen day still matches its digest.
CREATE FUNCTION pipeline.verify_day(metric text, day date) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
    SELECT c.digest = pipeline._day_digest(c.metric, c.day)
      FROM pipeline.day_closures AS c
     WHERE c.metric = verify_day.metric AND c.day = verify_day.day AND c.status = 'frozen'
$fn$;
COMMENT ON FUNCTION pipeline.verify_day(text, date) IS
    'true if a frozen day of a metric still matches the digest stored when it froze (NULL if not frozen)';

CREATE FUNCTION pipeline.close_days(as_of timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (metric text, day date, action text)
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_close_days';
COMMENT ON FUNCTION pipeline.close_days(timestamptz) IS
    'closes days as of the given time: provisional after end + allowed_lateness (recomputed each run), frozen at end + freeze_after, then corrections for later events';

-- A restatement: recompute the day from everything in raw now, keep the
-- previous version and its corrections in the history, swap in one
-- transaction, and start corrections afresh from the new snapshot.
CREATE FUNCTION pipeline._restate_day(metric text, day date, reason text, restated_by text)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m pipeline.metric_catalog;
    c pipeline.day_closures;
    old_rows jsonb;
    old_corrections jsonb;
    snap pg_snapshot;
    n bigint;
BEGIN
    PERFORM pipeline._check_schema();
    SELECT * INTO STRICT m FROM pipeline.metric_catalog AS x WHERE x.metric = _restate_day.metric;
    SELECT * INTO c FROM pipeline.day_closures AS x
     WHERE x.metric = _restate_day.metric AND x.day = _restate_day.day FOR UPDATE;
    IF NOT FOUND OR c.status <> 'frozen' THEN
        RAISE EXCEPTION 'day % of metric % is not frozen', day, metric
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only frozen days are restated; provisional days are recomputed by close_days.';
    END IF;
    EXECUTE pg_catalog.format('SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x)), ''[]'') FROM pipeline.%I AS x WHERE x.day = $1',
                              m.metric || '_daily') INTO old_rows USING c.day;
    EXECUTE pg_catalog.format('SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x)), ''[]'') FROM pipeline.%I AS x WHERE x.day = $1',
                              m.metric || '_corrections') INTO old_corrections USING c.day;

    PERFORM pg_catalog.set_config('pipeline.restating', 'on', true);
    EXECUTE pg_catalog.format('DELETE FROM pipeline.%I WHERE day = $1', m.metric || '_corrections') USING c.day;
    SELECT * INTO snap, n FROM pipeline._compute_day(m, c.day, 'frozen', pg_catalog.now());
    PERFORM pg_catalog.set_config('pipeline.restating', 'off', true);

    INSERT INTO pipeline.restatements AS r (metric, day, version, restated_by, reason, old_digest,
                                            new_digest, old_rows, absorbed_corrections)
        VALUES (m.metric, c.day, c.version + 1, _restate_day.restated_by, _restate_day.reason, c.digest,
                pipeline._record_freeze(m.metric, c.day, c.version + 1, pg_catalog.now(), snap, n),
                old_rows, old_corrections);
    RETURN c.version + 1;
END
$fn$;
REVOKE EXECUTE ON FUNCTION pipeline._restate_day(text, date, text, text) FROM PUBLIC;
COMMENT ON FUNCTION pipeline._restate_day(text, date, text, text) IS
    'internal: the work of restate_day, run as the extension owner';

CREATE FUNCTION pipeline.restate_day(metric text, day date, reason text)
    RETURNS bigint
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_restate_day';
COMMENT ON FUNCTION pipeline.restate_day(text, date, text) IS
    'recomputes a frozen day from raw, absorbing its corrections; the previous version, who and why are kept in pipeline.restatements';

CREATE FUNCTION pipeline._release_day(metric text, day date, reason text, released_by text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    c pipeline.day_closures;
BEGIN
    SELECT * INTO c FROM pipeline.day_closures AS x
     WHERE x.metric = _release_day.metric AND x.day = _release_day.day FOR UPDATE;
    IF NOT FOUND OR c.status <> 'held' THEN
        RAISE EXCEPTION 'day % of metric % is not held', day, metric
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only a day held by a failing check of severity block can be released.';
    END IF;
    INSERT INTO pipeline.day_releases (metric, day, released_by, reason, held_by)
        VALUES (metric, day, released_by, reason, pipeline._blocking_checks(metric));
END
$fn$;
REVOKE EXECUTE ON FUNCTION pipeline._release_day(text, date, text, text) FROM PUBLIC;
COMMENT ON FUNCTION pipeline._release_day(text, date, text, text) IS
    'internal: the work of release_day, run as the extension owner';

CREATE FUNCTION pipeline.release_day(metric text, day date, reason text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_release_day';
COMMENT ON FUNCTION pipeline.release_day(text, date, text) IS
    'lets a day held by a failing blocking check freeze at the next close_days; who and why are kept in pipeline.day_releases';
