-- Metrics: definitions, hot tables, the exactly-once fold, the live view.

CREATE FUNCTION pipeline._compile_metric(raw regclass, dimensions text[], measures text, filter text)
    RETURNS jsonb
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_compile_metric';
COMMENT ON FUNCTION pipeline._compile_metric(regclass, text[], text, text) IS
    'internal: parses and checks dimensions, measures and filter against a raw table; returns them deparsed';

-- One row per metric.  Rows are created and removed by pipeline functions
-- only (_register_metric generates the executable parts itself); the fold
-- updates its own checkpoint columns as the metric's owner, in the same
-- transaction as the hot rows, and row-level security keeps each role to
-- the rows of roles it belongs to.
CREATE TABLE pipeline.metric_catalog (
    metric          text PRIMARY KEY,
    source          text NOT NULL REFERENCES pipeline.source_catalog,
    dimensions      text[] NOT NULL,
    measures        text NOT NULL,
    bucket          interval NOT NULL,
    filter          text,
    hot_retention   interval NOT NULL,
    definition      jsonb NOT NULL,
    fold_sql        text NOT NULL,
    hot_table       regclass NOT NULL,
    owner           regrole NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- fold state: every batch whose transaction is visible in fold_snapshot
    -- has been folded, and no other
    fold_snapshot   pg_snapshot NOT NULL,
    events_folded   bigint NOT NULL DEFAULT 0,
    max_event_time  timestamptz,
    last_fold_at    timestamptz,
    last_fold_ms    double precision,
    last_cleanup_at timestamptz,
    failures        integer NOT NULL DEFAULT 0,
    last_error      text,
    last_error_at   timestamptz
);
COMMENT ON TABLE pipeline.metric_catalog IS 'internal: one row per metric with its fold checkpoint; read pipeline.metrics and pipeline.status';
-- A metric's row (its filter, generated SQL and last error, which may quote
-- raw values) is for the members of its owner and the roles that may read
-- its source's raw events; everyone else sees the metric in pipeline.metrics.
ALTER TABLE pipeline.metric_catalog ENABLE ROW LEVEL SECURITY;
CREATE POLICY metric_catalog_read ON pipeline.metric_catalog FOR SELECT USING (
    pg_catalog.pg_has_role(current_user, owner, 'USAGE')
    OR EXISTS (SELECT FROM pipeline.source_catalog AS s
                WHERE s.source = metric_catalog.source
                  AND pg_catalog.has_table_privilege(s.raw_table, 'SELECT')));
CREATE POLICY metric_catalog_owner_update ON pipeline.metric_catalog FOR UPDATE
    USING (pg_catalog.pg_has_role(current_user, owner, 'USAGE'));
GRANT SELECT ON pipeline.metric_catalog TO PUBLIC;
GRANT UPDATE (fold_snapshot, events_folded, max_event_time, last_fold_at, last_fold_ms,
              last_cleanup_at, failures, last_error, last_error_at)
    ON pipeline.metric_catalog TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.metric_catalog', '');

-- Every metric, for everyone (the view reads the catalog as its owner);
-- the filter only for those who may read the catalog row itself.
CREATE VIEW pipeline.metrics AS
    SELECT m.metric, m.source, m.dimensions, m.measures, m.bucket,
           CASE WHEN pg_catalog.pg_has_role(current_user, m.owner, 'USAGE')
                     OR pg_catalog.has_table_privilege(s.raw_table, 'SELECT')
                THEN m.filter END AS filter,
           m.hot_retention,
           m.hot_table, pg_catalog.format('metrics.%I', m.metric || '_live') AS live_view,
           m.owner, m.created_at
      FROM pipeline.metric_catalog AS m
      JOIN pipeline.source_catalog AS s ON s.source = m.source;
COMMENT ON VIEW pipeline.metrics IS 'the metrics: source, dimensions, measures, bucket, filter (for its owner and '
    'readers of its source), hot retention and their views';
GRANT SELECT ON pipeline.metrics TO PUBLIC;

-- The pieces of generated SQL, one place per measure kind.  Every
-- identifier is quoted with %I; expressions are the deparsed output of
-- pipeline._compile_metric, never the user's text.
-- Dimension lists for generated SQL, one place for each shape.
CREATE FUNCTION pipeline._dims(def jsonb, prefix text DEFAULT '', lead text DEFAULT ', ') RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT COALESCE(pg_catalog.string_agg(pg_catalog.format('%s%s%I', lead, prefix, d->>'name'), '' ORDER BY o), '')
      FROM pg_catalog.jsonb_array_elements(def->'dimensions') WITH ORDINALITY AS e(d, o));
COMMENT ON FUNCTION pipeline._dims(jsonb, text, text) IS 'internal: ", p.dim1, p.dim2" for generated SQL';

CREATE FUNCTION pipeline._dims_typed(def jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT COALESCE(pg_catalog.string_agg(pg_catalog.format(', %I %s', d->>'name', d->>'type'), '' ORDER BY o), '')
      FROM pg_catalog.jsonb_array_elements(def->'dimensions') WITH ORDINALITY AS e(d, o));
COMMENT ON FUNCTION pipeline._dims_typed(jsonb) IS 'internal: ", dim1 type1, dim2 type2" for generated tables';

CREATE FUNCTION pipeline._dims_aliased(def jsonb, prefix text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT COALESCE(pg_catalog.string_agg(pg_catalog.format(', %s%I AS %I', prefix, d->>'name', d->>'name'), '' ORDER BY o), '')
      FROM pg_catalog.jsonb_array_elements(def->'dimensions') WITH ORDINALITY AS e(d, o));
COMMENT ON FUNCTION pipeline._dims_aliased(jsonb, text) IS 'internal: ", p.dim1 AS dim1, ..." for generated SQL';

CREATE FUNCTION pipeline._dims_group(def jsonb, prefix text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT COALESCE(pg_catalog.string_agg(pg_catalog.format('%s%I', prefix, d->>'name'), ', ' ORDER BY o), '()')
      FROM pg_catalog.jsonb_array_elements(def->'dimensions') WITH ORDINALITY AS e(d, o));
COMMENT ON FUNCTION pipeline._dims_group(jsonb, text) IS 'internal: a GROUP BY list of the dimensions, () when there are none';

CREATE FUNCTION pipeline._dims_match(def jsonb, l text, r text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT COALESCE(pg_catalog.string_agg(pg_catalog.format(' AND %s.%I IS NOT DISTINCT FROM %s.%I', l, d->>'name', r, d->>'name'), '' ORDER BY o), '')
      FROM pg_catalog.jsonb_array_elements(def->'dimensions') WITH ORDINALITY AS e(d, o));
COMMENT ON FUNCTION pipeline._dims_match(jsonb, text, text) IS 'internal: " AND l.dim IS NOT DISTINCT FROM r.dim ..." for generated joins';

-- Every column name the metric's tables and views will have, per relation:
-- a dimension or measure name must not collide with one pipeline adds.
CREATE FUNCTION pipeline._check_generated_names(def jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    dims text[] := ARRAY(SELECT d->>'name' FROM pg_catalog.jsonb_array_elements(def->'dimensions') AS d);
    names text[] := ARRAY(SELECT e->>'name' FROM pg_catalog.jsonb_array_elements(def->'measures') AS e);
    daily text[] := pipeline._measure_names(def, 'daily_names');
    reconcile text[] := ARRAY(SELECT x FROM pg_catalog.unnest(names) AS e(n),
                                     LATERAL pg_catalog.unnest(ARRAY[n || '_live', n || '_daily',
                                         n || '_restated', n || '_difference']) AS x);
    relation text;
    cols text[];
    dup text;
BEGIN
    FOR relation, cols IN VALUES
        ('hot table', ARRAY['bucket'] || dims || pipeline._measure_names(def, 'hot_names')),
        ('live view', ARRAY['bucket', 'settled'] || dims || pipeline._measure_names(def, 'live_names')),
        ('daily table', ARRAY['day', 'status', 'computed_at', 'frozen_at'] || dims || daily),
        ('corrections table', ARRAY['correction_id', 'day', 'late_events', 'batch_ids', 'created_at'] || dims || daily),
        ('corrections view', ARRAY['day', 'late_events', 'batch_ids', 'created_at'] || dims
                             || pipeline._measure_names(def, 'corrections_view_names')),
        ('restated view', ARRAY['day', 'corrected', 'is_correction'] || dims || daily),
        ('reconcile view', ARRAY['day', 'events_late_after_freeze', 'hot_covers_day',
                                 'distinct_is_approximate_in_live', 'status', 'frozen_at'] || dims || reconcile)
    LOOP
        SELECT c INTO dup FROM pg_catalog.unnest(cols) AS c GROUP BY c HAVING pg_catalog.count(*) > 1 LIMIT 1;
        IF dup IS NOT NULL THEN
            RAISE EXCEPTION 'the name "%" collides with a column of the metric''s %', dup, relation
                USING ERRCODE = 'duplicate_column',
                      DETAIL = 'pipeline adds bucket, settled, day, status, frozen_at, late_events, batch_ids, created_at, corrected and per-measure _sketch, _delta, _live, _daily, _restated and _difference columns.',
                      HINT = 'Rename the measure or dimension with AS.';
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_generated_names(jsonb) IS
    'internal: refuses dimension and measure names that collide with the columns pipeline generates';


-- The catalog row of a new metric is written here, as the extension owner
-- (src/as_owner.c), with its daily layer: the definition is compiled again
-- and the fold statement generated here, so nothing a caller writes is
-- ever executed by the worker, run_hot or close_days.  It registers only a
-- hot table created in this very transaction (by create_metric) by a role
-- the caller is a member of, over a source that both the caller and that
-- role may read: the daily layer, computed by the extension owner, must
-- never show anyone columns they could not read themselves.
CREATE FUNCTION pipeline._register_metric(metric text, source text, dimensions text[], measures text,
        bucket interval, filter text, hot_retention interval)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._register_metric(text, text, text[], text, interval, text, interval) IS
    'internal: records a metric whose hot table the caller created in this transaction and builds its daily layer '
    '(runs _register_metric_as_owner as the extension owner)';

CREATE FUNCTION pipeline._register_metric_as_owner(caller regrole, metric text, source text, dimensions text[],
        measures text, bucket interval, filter text, hot_retention interval)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    hot text := metric || '_hot';
    hot_oid regclass := pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', metric || '_hot'));
    hot_owner oid;
    def jsonb;
    dims text;
    fold text;
BEGIN
    PERFORM pipeline._check_name('metric', metric);
    SELECT * INTO s FROM pipeline.source_catalog AS c WHERE c.source = _register_metric_as_owner.source;
    SELECT c.relowner INTO hot_owner FROM pg_catalog.pg_class AS c
     WHERE c.oid = hot_oid AND c.xmin = pg_catalog.xid(pg_catalog.pg_current_xact_id());
    IF hot_owner IS NULL OR s.source IS NULL
       OR NOT pg_catalog.pg_has_role(caller, hot_owner, 'USAGE')
       OR NOT pg_catalog.has_table_privilege(caller, s.raw_table, 'SELECT')
       OR NOT pg_catalog.has_table_privilege(hot_owner, s.raw_table, 'SELECT')
       OR EXISTS (SELECT FROM pipeline.metric_catalog AS c WHERE c.metric = _register_metric_as_owner.metric) THEN
        RAISE EXCEPTION 'permission denied to register metric %', metric
            USING ERRCODE = 'insufficient_privilege', HINT = 'Use pipeline.create_metric().';
    END IF;
    IF pipeline._distributed(s.raw_table) THEN
        PERFORM pipeline._require_login(ARRAY[hot_owner::regrole]);
    END IF;
    def := pipeline._compile_metric(s.raw_table, dimensions, measures, filter);
    dims := pipeline._dims(def);

    -- $1 batch ids, $2/$3 their event-time range (partition pruning),
    -- $4 the oldest bucket hot retention keeps, $5/$6 the smallest and
    -- largest batch id (_in_batches)
    fold := pg_catalog.format(
        'INSERT INTO pipeline.%1$I AS h (bucket%2$s, %3$s) '
        'SELECT pg_catalog.date_bin(%4$L::interval, r.%5$I, %6$L::timestamptz) AS bucket%7$s, %8$s '
        'FROM %9$s AS r '
        'WHERE %14$s '
        'AND r.%5$I OPERATOR(pg_catalog.>=) $2 AND r.%5$I OPERATOR(pg_catalog.<=) $3 '
        'AND pg_catalog.date_bin(%4$L::interval, r.%5$I, %6$L::timestamptz) OPERATOR(pg_catalog.>=) $4 '
        'AND (%10$s) '
        'GROUP BY %11$s '
        'ON CONFLICT ON CONSTRAINT %12$I DO UPDATE SET %13$s',
        hot, dims,
        pipeline._measure_sql(def, 'hot_names'),
        bucket, s.event_time, '2000-01-01 00:00:00+00',
        pipeline._dims(def, 'r.'),
        pipeline._measure_sql(def, 'fold'), s.raw_table, COALESCE(def->>'filter', 'true'),
        (SELECT pg_catalog.string_agg(i::text, ', ')
           FROM pg_catalog.generate_series(1, 1 + pg_catalog.jsonb_array_length(def->'dimensions')) AS i),
        hot || '_key', pipeline._measure_sql(def, 'merge'), pipeline._in_batches('r', '$1', '$5', '$6'));

    -- an empty snapshot: the first fold takes every batch already stored
    INSERT INTO pipeline.metric_catalog (metric, source, dimensions, measures, bucket, filter,
            hot_retention, definition, fold_sql, hot_table, owner, fold_snapshot)
        VALUES (metric, s.source, dimensions, measures, bucket, filter, hot_retention, def, fold,
                hot_oid, hot_owner::regrole, '1:1:'::pg_snapshot);
    PERFORM pipeline._create_daily(metric);
END
$fn$;
COMMENT ON FUNCTION pipeline._register_metric_as_owner(regrole, text, text, text[], text, interval, text, interval) IS
    'internal: the extension owner''s half of _register_metric: checks the caller, records the metric with the fold '
    'statement generated here, builds the daily layer';

-- Removes a metric's catalog row and daily layer once its hot table is
-- gone: dropping the table is what takes ownership (drop_metric does it
-- first, as its caller), and the caller must be a member of the owner.
CREATE FUNCTION pipeline._unregister_metric(metric text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._unregister_metric(text) IS
    'internal: removes a dropped metric''s catalog row and daily layer (runs _unregister_metric_as_owner as the extension owner)';

CREATE FUNCTION pipeline._unregister_metric_as_owner(caller regrole, metric text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    owner oid := (SELECT c.owner FROM pipeline.metric_catalog AS c WHERE c.metric = _unregister_metric_as_owner.metric);
BEGIN
    IF owner IS NULL OR pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', metric || '_hot')) IS NOT NULL
       OR NOT pg_catalog.pg_has_role(caller, owner, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to unregister metric %', metric
            USING ERRCODE = 'insufficient_privilege', HINT = 'Use pipeline.drop_metric().';
    END IF;
    DELETE FROM pipeline.metric_catalog AS c WHERE c.metric = _unregister_metric_as_owner.metric;
    PERFORM pipeline._drop_daily(metric);
END
$fn$;
COMMENT ON FUNCTION pipeline._unregister_metric_as_owner(regrole, text) IS
    'internal: the extension owner''s half of _unregister_metric; checks the caller is a member of the metric''s owner';

-- A hot row's sketch states are rewritten by every fold that touches the
-- row, and a distinct sketch past 1,024 values is 16 KB of registers,
-- compressed again at each rewrite: with pglz that was the larger part of
-- a fold into such rows.  lz4 compresses them several times faster, where
-- the server has it (PostgreSQL built with lz4, as the Debian and PGDG
-- packages are): a fold of 150k new events into 183 rows with 16 KB
-- sketches took 245-278 ms with pglz, 162-179 ms with lz4, for 1.79 MB of
-- WAL against 2.40 (lz4 keeps 12 KB of the 16, pglz 8.5).  Smaller states
-- stay inline uncompressed either way (toast_tuple_target).
CREATE FUNCTION pipeline._compress_hot_states(hot regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    col name;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_settings AS s
                    WHERE s.name = 'default_toast_compression' AND 'lz4' = ANY (s.enumvals)) THEN
        RETURN;
    END IF;
    FOR col IN SELECT a.attname FROM pg_catalog.pg_attribute AS a
                WHERE a.attrelid = hot AND a.attnum > 0 AND NOT a.attisdropped
                  AND a.atttypid IN ('pipeline.distinct_sketch'::pg_catalog.regtype,
                                     'pipeline.quantile_sketch'::pg_catalog.regtype)
                ORDER BY a.attnum LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION lz4', hot, col);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pipeline._compress_hot_states(regclass) IS
    'internal: compresses the sketch states of a hot table with lz4 where the server has it';

CREATE FUNCTION pipeline.create_metric(metric text, source text,
        dimensions text[] DEFAULT '{}',
        measures text DEFAULT 'count(*) AS events',
        bucket interval DEFAULT '1 minute',
        filter text DEFAULT NULL,
        hot_retention interval DEFAULT '7 days')
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    def jsonb;
    hot text := metric || '_hot';
    live text := metric || '_live';
    dims text := '';
    dim_defs text := '';
BEGIN
    PERFORM pipeline._check_name('metric', metric);
    IF measures IS NULL OR bucket IS NULL OR hot_retention IS NULL OR dimensions IS NULL THEN
        RAISE EXCEPTION 'create_metric arguments other than filter must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO s FROM pipeline.source_catalog AS c WHERE c.source = create_metric.source;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'source "%" does not exist', source
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with pipeline.create_source(), or list sources in pipeline.sources.';
    END IF;
    IF EXISTS (SELECT FROM pipeline.metrics AS c WHERE c.metric = create_metric.metric) THEN
        RAISE EXCEPTION 'metric "%" already exists', metric
            USING ERRCODE = 'duplicate_object', HINT = 'Drop it first with pipeline.drop_metric().';
    END IF;
    IF bucket < interval '1 second' OR bucket > interval '1 day'
       OR pg_catalog.date_part('month', bucket) <> 0 OR pg_catalog.date_part('year', bucket) <> 0
       OR (86400000000::numeric % (pg_catalog.date_part('epoch', bucket) * 1000000)::numeric) <> 0 THEN
        RAISE EXCEPTION 'invalid bucket %: it must divide a day, between 1 second and 1 day', bucket
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use e.g. ''10 seconds'', ''1 minute'', ''5 minutes'' or ''1 hour''; whole days are the daily layer''s.';
    END IF;
    IF hot_retention <= interval '0' THEN
        RAISE EXCEPTION 'hot_retention must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.unnest(ARRAY[
                   pg_catalog.format('pipeline.%I', hot), pg_catalog.format('metrics.%I', live),
                   pg_catalog.format('pipeline.%I', metric || '_daily'), pg_catalog.format('pipeline.%I', metric || '_corrections'),
                   pg_catalog.format('metrics.%I', metric || '_daily'), pg_catalog.format('metrics.%I', metric || '_corrections'),
                   pg_catalog.format('metrics.%I', metric || '_restated'), pg_catalog.format('metrics.%I', metric || '_reconcile')]) AS r
               WHERE pg_catalog.to_regclass(r) IS NOT NULL) THEN
        RAISE EXCEPTION 'a table or view of metric % already exists', metric
            USING ERRCODE = 'duplicate_table';
    END IF;
    IF NOT pg_catalog.has_table_privilege(s.raw_table, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied to read source "%"', source
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('The metric''s fold reads %s as the metric''s owner: GRANT SELECT ON %s TO %I.',
                                           s.raw_table, s.raw_table, current_user);
    END IF;

    def := pipeline._compile_metric(s.raw_table, dimensions, measures, filter);
    PERFORM pipeline._check_generated_names(def);

    dims := pipeline._dims(def);
    dim_defs := pipeline._dims_typed(def);

    -- toast_tuple_target: a fold rewrites every hot row its events touch,
    -- and a distinct sketch of a few hundred values (2-8 KB) would
    -- otherwise go through TOAST on each rewrite (a late fold touching
    -- 3 KB sketches took about 40% less time with the row kept inline).
    -- fillfactor 50: inserts leave half of each page free, so that the
    -- rewrite of a row can stay on its page (a HOT update: no new entry in
    -- the unique index, no page to find); a late fold rewrites most rows
    -- of the pages it touches (50k late events: 18-37% less time than on
    -- full pages, at 1M to 20M raw events)
    EXECUTE pg_catalog.format(
        'CREATE TABLE pipeline.%I (bucket timestamptz NOT NULL%s, %s, '
        'CONSTRAINT %I UNIQUE NULLS NOT DISTINCT (bucket%s)) WITH (toast_tuple_target = 8160, fillfactor = 50)',
        hot, dim_defs, pipeline._measure_sql(def, 'hot_columns'), hot || '_key', dims);
    PERFORM pipeline._compress_hot_states(pg_catalog.format('pipeline.%I', hot)::regclass);
    PERFORM pipeline._depend_on_extension(pg_catalog.format('pipeline.%I', hot)::regclass);

    EXECUTE pg_catalog.format(
        'CREATE VIEW metrics.%I AS SELECT h.bucket%s, %s, '
        '(h.bucket + %L::interval) <= (SELECT m.max_event_time - s.allowed_lateness '
        'FROM pipeline.metric_catalog AS m JOIN pipeline.source_catalog AS s USING (source) '
        'WHERE m.metric = %L) AS settled FROM pipeline.%I AS h',
        live, pipeline._dims(def, 'h.'),
        pipeline._measure_sql(def, 'live'), bucket, metric, hot);
    EXECUTE pg_catalog.format('GRANT SELECT ON metrics.%I TO pipeline_reader', live);
    EXECUTE pg_catalog.format('COMMENT ON VIEW metrics.%I IS %L', live,
        pg_catalog.format('metric %s: hot buckets of %s, seconds behind ingest; distinct counts are estimates', metric, bucket));

    PERFORM pipeline._register_metric(metric, s.source, dimensions, measures, bucket, filter, hot_retention);
END
$fn$;
COMMENT ON FUNCTION pipeline.create_metric(text, text, text[], text, interval, text, interval) IS
    'creates a metric: checks measures and filter, creates its hot table and metrics.<metric>_live';

-- Generated statements call pipeline's functions by name.  Roles that may
-- create sources and metrics have CREATE on schema pipeline, so one could
-- add an overload that a generated call would pick (a distinct_sketch
-- taking integer, say): the layers that run generated SQL refuse to while
-- the schema holds a function or operator that is not the extension's
-- (src/schema_guard.c).
CREATE FUNCTION pipeline._check_schema() RETURNS void
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_check_schema';
COMMENT ON FUNCTION pipeline._check_schema() IS
    'internal: refuses to go on while schema pipeline holds functions or operators that are not the extension''s';

-- _check_schema would stop every fold and close of the database while a
-- stranger sits in schema pipeline, so no role may put one there: the
-- roles that create sources and metrics need CREATE on the schema for
-- their tables, not for functions or operators.  Objects of the extension
-- itself are members of it by the time the command ends.
CREATE FUNCTION pipeline._refuse_strangers() RETURNS event_trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    cmd record;
BEGIN
    FOR cmd IN SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands() AS x
                WHERE x.schema_name = 'pipeline'
                  AND x.classid IN ('pg_catalog.pg_proc'::regclass, 'pg_catalog.pg_operator'::regclass)
                  AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend AS d
                                   WHERE d.classid = x.classid AND d.objid = x.objid AND d.deptype = 'e'
                                     AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension AS e
                                                        WHERE e.extname = 'pipeline'))
    LOOP
        RAISE EXCEPTION 'schema pipeline is for the extension''s own functions and operators'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('%s %s would be resolved by the pipeline''s generated SQL.',
                                             cmd.object_type, cmd.object_identity),
                  HINT = 'Create it in a schema of your own.';
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pipeline._refuse_strangers() IS
    'internal: event trigger function refusing functions and operators created in or moved to schema pipeline';
REVOKE EXECUTE ON FUNCTION pipeline._refuse_strangers() FROM PUBLIC;
CREATE EVENT TRIGGER pipeline_refuse_strangers ON ddl_command_end
    WHEN TAG IN ('CREATE FUNCTION', 'CREATE PROCEDURE', 'CREATE AGGREGATE', 'CREATE OPERATOR',
                 'ALTER FUNCTION', 'ALTER PROCEDURE', 'ALTER AGGREGATE', 'ALTER OPERATOR')
    EXECUTE FUNCTION pipeline._refuse_strangers();

-- The fold of one metric, exactly once: the batches to fold are those whose
-- transaction is visible in a snapshot taken now but was not in the
-- snapshot of the previous fold.  Unlike a serial high-water mark this
-- never skips a batch whose transaction started earlier but committed
-- later.  The hot rows and the new checkpoint commit together; a second
-- concurrent fold of the same metric skips (the row is locked).
CREATE FUNCTION pipeline._fold(metric text)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    cur pg_snapshot := pg_catalog.pg_current_snapshot();
    started timestamptz := pg_catalog.clock_timestamp();
    m pipeline.metric_catalog;
    ids bigint[];
    first_id bigint;
    last_id bigint;
    n bigint;
    lo timestamptz;
    hi timestamptz;
    seqscan_setting text := pg_catalog.current_setting('enable_seqscan');
    sort_setting text := pg_catalog.current_setting('enable_sort');
    jit_setting text := pg_catalog.current_setting('jit');
BEGIN
    SELECT * INTO m FROM pipeline.metric_catalog AS c
     WHERE c.metric = _fold.metric FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    PERFORM pipeline._check_schema();

    SELECT pg_catalog.array_agg(b.batch_id), pg_catalog.min(b.batch_id), pg_catalog.max(b.batch_id),
           COALESCE(pg_catalog.sum(b.accepted), 0), pg_catalog.min(b.min_event_time), pg_catalog.max(b.max_event_time)
      INTO ids, first_id, last_id, n, lo, hi
      FROM pipeline.batch_log AS b
     WHERE b.source = m.source
       AND b.xid >= pg_catalog.pg_snapshot_xmin(m.fold_snapshot)
       AND NOT pg_catalog.pg_visible_in_snapshot(b.xid, m.fold_snapshot)
       AND pg_catalog.pg_visible_in_snapshot(b.xid, cur)
       AND b.accepted > 0;

    IF n > 0 THEN
        -- no JIT: the planner costs the batches' rows by the partitions'
        -- size (a BRIN scan is lossy), so on a large raw table (20M events
        -- in the late benchmark) the fold crossed jit_above_cost and compiled
        -- its expressions at every run (60-155 ms of a fold there) for work
        -- bounded by the new events
        PERFORM pg_catalog.set_config('jit', 'off', true);
        -- a distributed source's batches visible in cur may still be
        -- committing on the workers (src/scale_out.c)
        IF pipeline._distributed((SELECT s.raw_table FROM pipeline.source_catalog AS s WHERE s.source = m.source)) THEN
            PERFORM pipeline._await_commits();
            EXECUTE pipeline._distributed_fold_sql(m.fold_sql, m.definition)
              USING ids, lo, hi, pg_catalog.now() - m.hot_retention, first_id, last_id;
        ELSE
            -- the batches' rows through each partition's BRIN index on
            -- _pl_batch, never a full scan of the partition: without fresh
            -- statistics (a partition autovacuum has not analyzed since it
            -- grew) the planner takes a batch for a large share of it, and
            -- a fold at 20M raw events read them all (0.9-1.3 s a fold
            -- instead of 0.16)
            PERFORM pg_catalog.set_config('enable_seqscan', 'off', true);
            -- the rows grouped by hashing, not sorting: the planner sorts
            -- them when it takes a batch for a few rows (no statistics yet)
            -- or a distinct sketch's state for 8 kB a group, and sorting a
            -- 100k-event batch was 40% of its fold (85-115 ms a fold of
            -- an on-time batch sorted, 43-81 ms hashed; folds of late
            -- events spread over days the same either way).  Up to
            -- pipeline.fold_hash_rows rows (a million): past hash_mem a hash
            -- aggregate only stops taking new groups, and the states of
            -- those it holds keep growing with their rows (a distinct
            -- sketch by a hash a row), so its memory follows the rows; a
            -- backfill's fold sorts.
            IF n <= COALESCE(pg_catalog.current_setting('pipeline.fold_hash_rows', true), '1000000')::bigint THEN
                PERFORM pg_catalog.set_config('enable_sort', 'off', true);
            END IF;
            EXECUTE m.fold_sql USING ids, lo, hi, pg_catalog.now() - m.hot_retention, first_id, last_id;
            PERFORM pg_catalog.set_config('enable_sort', sort_setting, true);
            PERFORM pg_catalog.set_config('enable_seqscan', seqscan_setting, true);
        END IF;
        PERFORM pg_catalog.set_config('jit', jit_setting, true);
    END IF;

    -- buckets past hot retention go, once a minute
    IF m.last_cleanup_at IS NULL OR m.last_cleanup_at < pg_catalog.now() - interval '1 minute' THEN
        EXECUTE pg_catalog.format('DELETE FROM %s WHERE bucket < $1', m.hot_table)
            USING pg_catalog.now() - m.hot_retention;
        m.last_cleanup_at := pg_catalog.now();
    END IF;

    UPDATE pipeline.metric_catalog AS c
       SET fold_snapshot = cur,
           events_folded = c.events_folded + n,
           max_event_time = GREATEST(c.max_event_time, hi),
           last_fold_at = pg_catalog.now(),
           last_fold_ms = pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - started) * 1000,
           last_cleanup_at = m.last_cleanup_at,
           failures = 0, last_error = NULL, last_error_at = NULL
     WHERE c.metric = m.metric;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION pipeline._fold(text) IS
    'internal: folds the batches committed since the last fold of one metric into its hot table, exactly once';

-- Each metric is folded as its owner (the hot table and whatever the
-- owner attached to it are the owner's; a superuser calling run_hot() must
-- not run them as a superuser).
CREATE FUNCTION pipeline.run_hot(metric text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_run_hot';
COMMENT ON FUNCTION pipeline.run_hot(text) IS
    'folds newly accepted events into the hot tables (one metric, or all), each as the metric''s owner; returns the number of events folded. The worker does this every pipeline.hot_interval';

CREATE FUNCTION pipeline.drop_metric(metric text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m record;
BEGIN
    SELECT c.metric, c.owner, c.hot_table INTO m FROM pipeline.metrics AS c WHERE c.metric = drop_metric.metric;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'metric "%" does not exist', metric
            USING ERRCODE = 'undefined_object',
                  HINT = 'List metrics in pipeline.metrics.';
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, m.owner, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to drop metric %', metric
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('Only members of its owner, %s, can drop it.', m.owner);
    END IF;
    EXECUTE pg_catalog.format('DROP VIEW IF EXISTS metrics.%I, metrics.%I',
                              m.metric || '_live', m.metric || '_reconcile');
    EXECUTE pg_catalog.format('DROP TABLE %s', m.hot_table);
    PERFORM pipeline._unregister_metric(m.metric);
END
$fn$;
COMMENT ON FUNCTION pipeline.drop_metric(text) IS 'drops a metric with its hot table and views';

-- pipeline.status, per metric how far the fold is behind (and per source
-- and pg_cron job), is in src/sql/90_status.sql: it reads the days and
-- lateness sketches defined after this file.

-- drop_source asks this before dropping: metrics stand on the source.
CREATE FUNCTION pipeline._drop_source_metrics(source text, cascade boolean)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    names text;
    name text;
BEGIN
    SELECT pg_catalog.string_agg(c.metric, ', ' ORDER BY c.metric) INTO names
      FROM pipeline.metrics AS c WHERE c.source = _drop_source_metrics.source;
    IF names IS NULL THEN
        RETURN;
    END IF;
    IF NOT cascade THEN
        RAISE EXCEPTION 'source "%" is used by metrics: %', source, names
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Drop the metrics first, or call pipeline.drop_source(source, cascade => true).';
    END IF;
    FOR name IN SELECT c.metric FROM pipeline.metrics AS c
                 WHERE c.source = _drop_source_metrics.source ORDER BY 1
    LOOP
        PERFORM pipeline.drop_metric(name);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pipeline._drop_source_metrics(text, boolean) IS
    'internal: refuses to drop a source its metrics use, or drops them with cascade';
