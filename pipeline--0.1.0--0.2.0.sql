-- pipeline 0.1.0 -> 0.2.0 (ALTER EXTENSION pipeline UPDATE TO '0.2.0').
--
-- Every change 0.2.0 makes to an SQL object of 0.1.0 is here as well as in
-- src/sql/: an upgraded database must equal a fresh 0.2.0 install
-- (test/t/070_upgrade.pl compares the two).  The rules of the install
-- script hold here too: everything schema-qualified, functions pin
-- search_path, no extension placeholders inside quoted strings.  CREATE OR
-- REPLACE appears only for functions and views that are already members of
-- this extension (PostgreSQL refuses to replace anything else in an
-- extension script).

\echo Use "ALTER EXTENSION pipeline UPDATE TO '0.2.0'" to load this file. \quit

-- =====================================================================
-- Privileges (see README "Roles").  The privileged steps are split into a
-- C half that reads the real caller and an _as_owner half that checks it
-- and runs as the extension owner (src/as_owner.c).
-- =====================================================================

-- --- the _as_owner halves and the other new internal functions ---------
-- The condition that a raw row (alias) belongs to a list of batches: ids,
-- lo and hi are the SQL text of the list (bigint[]) and of its smallest
-- and largest id, parameters of the caller's statement.  The BRIN index on
-- _pl_batch is searched once, for the span [lo, hi]; the list is checked
-- on the rows of that span, hashed, and kept out of the index condition by
-- the + 0: PostgreSQL searches a BRIN index once per element of a list it
-- is given, so the rows of 735 one-event batches took 52-58 ms to find in
-- a 10M-event day, their span 0.1 ms.  The span may hold other batches'
-- rows (of another source, or folded before an older batch committed);
-- the list leaves them out.
CREATE FUNCTION pipeline._in_batches(alias text, ids text, lo text, hi text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.format(
        '%1$I._pl_batch OPERATOR(pg_catalog.>=) %3$s AND %1$I._pl_batch OPERATOR(pg_catalog.<=) %4$s '
        'AND (%1$I._pl_batch OPERATOR(pg_catalog.+) 0) OPERATOR(pg_catalog.=) ANY (%2$s)',
        alias, ids, lo, hi);
COMMENT ON FUNCTION pipeline._in_batches(text, text, text, text) IS
    'internal: the condition that a raw row belongs to a list of batches, searched in the BRIN index by their span';

CREATE FUNCTION pipeline._source_of_owner(source text, action text, verb text)
    RETURNS pipeline.source_catalog
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
BEGIN
    SELECT * INTO s FROM pipeline.source_catalog AS c WHERE c.source = _source_of_owner.source;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'source "%" does not exist', source
            USING ERRCODE = 'undefined_object',
                  HINT = 'See pipeline.sources for the sources of this database.';
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, s.owner, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to % source %', action, source
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('Only members of its owner, %s, can %s it.', s.owner, verb);
    END IF;
    RETURN s;
END
$fn$;
COMMENT ON FUNCTION pipeline._source_of_owner(text, text, text) IS
    'internal: the catalog row of a source whose owner the caller is a member of, or an error naming the action';

CREATE FUNCTION pipeline._register_source_as_owner(caller regrole, source text, columns text, event_id text,
        event_time text, allowed_lateness interval, freeze_after interval,
        day_timezone text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    raw regclass := pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', source || '_raw'));
    ids regclass := pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', source || '_ids'));
    raw_owner oid;
    ids_owner oid;
BEGIN
    -- only tables this very transaction created (create_source, just now)
    SELECT c.relowner INTO raw_owner FROM pg_catalog.pg_class AS c
     WHERE c.oid = raw AND c.xmin = pg_catalog.xid(pg_catalog.pg_current_xact_id());
    SELECT c.relowner INTO ids_owner FROM pg_catalog.pg_class AS c
     WHERE c.oid = ids AND c.xmin = pg_catalog.xid(pg_catalog.pg_current_xact_id());
    -- and only of the kinds create_source makes: a view or a table of the
    -- caller's own design would later be read by the extension owner
    IF raw_owner IS NULL OR ids_owner IS DISTINCT FROM raw_owner
       OR NOT pg_catalog.pg_has_role(caller, raw_owner, 'USAGE')
       OR (SELECT c.relkind FROM pg_catalog.pg_class AS c WHERE c.oid = raw) <> 'p'
       OR (SELECT c.relkind FROM pg_catalog.pg_class AS c WHERE c.oid = ids) <> 'r'
       OR (SELECT pg_catalog.count(*) FROM pg_catalog.pg_attribute AS a
            WHERE a.attrelid = raw AND a.attname IN ('_pl_batch', '_pl_extra') AND NOT a.attisdropped) <> 2
       OR NOT EXISTS (SELECT FROM pg_catalog.pg_partitioned_table AS pt
                       JOIN pg_catalog.pg_attribute AS a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
                      WHERE pt.partrelid = raw AND pt.partstrat = 'r' AND a.attname = event_time) THEN
        RAISE EXCEPTION 'permission denied to register source %', source
            USING ERRCODE = 'insufficient_privilege', HINT = 'Use pipeline.create_source().';
    END IF;
    INSERT INTO pipeline.source_catalog (source, event_id, event_time, allowed_lateness,
            freeze_after, day_timezone, raw_table, ids_table, owner)
        VALUES (source, event_id, event_time, allowed_lateness, freeze_after,
                day_timezone, raw, ids, raw_owner::regrole);
    INSERT INTO pipeline.contracts (source, version, columns, change, created_by)
        VALUES (source, 1, columns, 'create_source', caller::text);
END
$fn$;
COMMENT ON FUNCTION pipeline._register_source_as_owner(regrole, text, text, text, text, interval, interval, text) IS
    'internal: the extension owner''s half of _register_source; checks the caller owns the new tables';

CREATE FUNCTION pipeline._unregister_source_as_owner(caller regrole, source text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    owner oid := (SELECT c.owner FROM pipeline.source_catalog AS c WHERE c.source = _unregister_source_as_owner.source);
BEGIN
    IF pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', source || '_raw')) IS NOT NULL
       OR pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', source || '_ids')) IS NOT NULL
       OR (owner IS NOT NULL AND NOT pg_catalog.pg_has_role(caller, owner, 'USAGE')) THEN
        RAISE EXCEPTION 'permission denied to unregister source %', source
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Use pipeline.drop_source().';
    END IF;
    -- the load table is the extension owner's (see _create_load_table)
    IF pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', source || '_load')) IS NOT NULL THEN
        EXECUTE pg_catalog.format('DROP TABLE pipeline.%I', source || '_load');
    END IF;
    DELETE FROM pipeline.dead_letters AS d WHERE d.source = _unregister_source_as_owner.source;
    DELETE FROM pipeline.drift_counts AS d WHERE d.source = _unregister_source_as_owner.source;
    DELETE FROM pipeline.batch_log AS b WHERE b.source = _unregister_source_as_owner.source;
    DELETE FROM pipeline.source_catalog AS c WHERE c.source = _unregister_source_as_owner.source;
END
$fn$;
COMMENT ON FUNCTION pipeline._unregister_source_as_owner(regrole, text) IS
    'internal: the extension owner''s half of _unregister_source; checks the caller is a member of the source''s owner';

-- The bulk path's load tables take their rows in a table access method
-- (src/load_am.c) instead of a BEFORE ROW trigger: COPY hands it its rows
-- a thousand at a time.  The load tables are made again with it below
-- (_create_load_table_as_owner, "load tables: the extension owner's").
CREATE FUNCTION pipeline._load_am_handler(internal) RETURNS table_am_handler
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'pipeline_load_am_handler';
COMMENT ON FUNCTION pipeline._load_am_handler(internal) IS
    'internal: handler of the pipeline_load table access method';
REVOKE EXECUTE ON FUNCTION pipeline._load_am_handler(internal) FROM PUBLIC;
CREATE ACCESS METHOD pipeline_load TYPE TABLE HANDLER pipeline._load_am_handler;
COMMENT ON ACCESS METHOD pipeline_load IS
    'the access method of pipeline.<source>_load tables: each row inserted is ingested into the source, none is stored';

CREATE FUNCTION pipeline._create_load_table_as_owner(caller regrole, source text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    cols text;
    load text := source || '_load';
BEGIN
    SELECT * INTO s FROM pipeline.source_catalog AS c WHERE c.source = _create_load_table_as_owner.source;
    IF NOT FOUND OR NOT pg_catalog.pg_has_role(caller, s.owner, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to create the load table of source %', source
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'pipeline.create_source() and pipeline.evolve_source() create it.';
    END IF;
    SELECT pg_catalog.string_agg(pg_catalog.format('%I text', a.attname), ', ' ORDER BY a.attnum) INTO cols
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = s.raw_table AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname !~ '^_pl_';
    IF pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', load)) IS NOT NULL THEN
        EXECUTE pg_catalog.format('DROP TABLE pipeline.%I', load);
    END IF;
    -- its access method takes the rows (src/load_am.c); the trigger ends the load
    EXECUTE pg_catalog.format('CREATE TABLE pipeline.%I (%s) USING pipeline_load', load, cols);
    EXECUTE pg_catalog.format(
        'CREATE TRIGGER load_finish AFTER INSERT ON pipeline.%I FOR EACH STATEMENT EXECUTE FUNCTION pipeline._load_finish(%L)',
        load, source);
    EXECUTE pg_catalog.format('GRANT INSERT ON pipeline.%I TO pipeline_writer', load);
    EXECUTE pg_catalog.format('COMMENT ON TABLE pipeline.%I IS %L', load,
        pg_catalog.format('bulk path of source %s: COPY rows in (columns as text); nothing is stored here, each row is ingested', source));
    PERFORM pipeline._depend_on_extension(pg_catalog.format('pipeline.%I', load)::regclass);
END
$fn$;
COMMENT ON FUNCTION pipeline._create_load_table_as_owner(regrole, text) IS
    'internal: the extension owner''s half of _create_load_table; checks the caller is a member of the source''s owner';
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

CREATE FUNCTION pipeline._record_contract(source text, version integer, event_id text, event_time text,
        columns text, change text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._record_contract(text, integer, text, text, text, text) IS
    'internal: records a new contract version of a source (runs _record_contract_as_owner as the extension owner)';

CREATE FUNCTION pipeline._record_contract_as_owner(caller regrole, source text, version integer,
        event_id text, event_time text, columns text, change text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
BEGIN
    SELECT * INTO s FROM pipeline.source_catalog AS c WHERE c.source = _record_contract_as_owner.source FOR UPDATE;
    IF NOT FOUND OR NOT pg_catalog.pg_has_role(caller, s.owner, 'USAGE') OR version <> s.contract_version + 1
       OR NOT EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                       WHERE a.attrelid = s.raw_table AND a.attname = event_id AND NOT a.attisdropped)
       OR NOT EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                       WHERE a.attrelid = s.raw_table AND a.attname = event_time AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'permission denied to record a contract of source %', source
            USING ERRCODE = 'insufficient_privilege', HINT = 'Use pipeline.evolve_source().';
    END IF;
    UPDATE pipeline.source_catalog AS c
       SET contract_version = version, event_id = _record_contract_as_owner.event_id,
           event_time = _record_contract_as_owner.event_time
     WHERE c.source = s.source;
    INSERT INTO pipeline.contracts (source, version, columns, change, created_by)
        VALUES (s.source, version, columns, change, caller::text);
END
$fn$;
COMMENT ON FUNCTION pipeline._record_contract_as_owner(regrole, text, integer, text, text, text, text) IS
    'internal: the extension owner''s half of _record_contract; checks the caller is a member of the source''s owner';

CREATE FUNCTION pipeline._replay_one_as_owner(caller regrole, letter bigint)
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    d pipeline.dead_letters;
    s pipeline.source_catalog;
    r record;
    wrapped jsonb;
    key text;
BEGIN
    SELECT * INTO d FROM pipeline.dead_letters AS x WHERE x.id = letter FOR UPDATE;
    IF NOT FOUND OR d.replayed_at IS NOT NULL THEN
        RETURN 'skipped';
    END IF;
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS c WHERE c.source = d.source;
    IF NOT (pg_catalog.pg_has_role(caller, 'pipeline_writer', 'USAGE')
            AND (pg_catalog.pg_has_role(caller, s.owner, 'USAGE')
                 OR pg_catalog.has_table_privilege(caller, s.raw_table, 'SELECT')
                 OR EXISTS (SELECT FROM pipeline.batch_log AS b
                             WHERE b.batch_id = d.batch_id AND b.ingested_by = caller::text))) THEN
        RAISE EXCEPTION 'permission denied to replay dead letter %', letter
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Writers replay the dead letters of the batches they sent; source owners replay all of theirs.';
    END IF;
    key := pg_catalog.format('replay:%s:v%s', d.id, s.contract_version);
    -- one letter is one event: a payload that is itself a JSON array goes
    -- in wrapped, so that it stays one (rejected) event
    IF pg_catalog.ltrim(d.payload) LIKE '[%' THEN
        BEGIN
            wrapped := pg_catalog.jsonb_build_array(d.payload::jsonb);
        EXCEPTION WHEN invalid_text_representation OR untranslatable_character THEN
            wrapped := NULL;    -- not JSON after all: the text form dead-letters it again
        END;
    END IF;
    IF wrapped IS NOT NULL THEN
        SELECT * INTO r FROM pipeline.ingest(s.source, wrapped, key);
    ELSE
        SELECT * INTO r FROM pipeline.ingest(s.source, d.payload, key);
    END IF;
    RETURN pipeline._settle_dead_letter(d.id, r.batch_id);
END
$fn$;
COMMENT ON FUNCTION pipeline._replay_one_as_owner(regrole, bigint) IS
    'internal: the extension owner''s half of _replay_one; checks the caller may read the letter';

CREATE FUNCTION pipeline._store_check(check_name text, kind text, target text, target_type text,
        params jsonb, severity text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._store_check(text, text, text, text, jsonb, text) IS
    'internal: records a check validated by add_check (runs _store_check_as_owner as the extension owner)';

CREATE FUNCTION pipeline._store_check_as_owner(caller regrole, check_name text, kind text, target text,
        target_type text, params jsonb, severity text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    target_owner regrole := CASE target_type
        WHEN 'source' THEN (SELECT s.owner FROM pipeline.source_catalog AS s WHERE s.source = _store_check_as_owner.target)
        WHEN 'metric' THEN (SELECT m.owner FROM pipeline.metric_catalog AS m WHERE m.metric = _store_check_as_owner.target)
    END;
BEGIN
    IF target_owner IS NULL THEN
        RAISE EXCEPTION '% "%" does not exist', target_type, target USING ERRCODE = 'undefined_object';
    END IF;
    IF severity = 'block' AND NOT pg_catalog.pg_has_role(caller, target_owner, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to add a blocking check on % "%"', target_type, target
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'A check of severity block holds the days of the metrics it watches from freezing.',
                  HINT = pg_catalog.format('Only members of its owner, %s, may add one; use severity warn or fail.', target_owner);
    END IF;
    INSERT INTO pipeline.checks (check_name, kind, target, target_type, params, severity, owner)
        VALUES (check_name, kind, target, target_type, params, severity, caller);
END
$fn$;
COMMENT ON FUNCTION pipeline._store_check_as_owner(regrole, text, text, text, text, jsonb, text) IS
    'internal: the extension owner''s half of _store_check; a block check only on a target the caller owns';

CREATE FUNCTION pipeline._delete_check(check_name text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._delete_check(text) IS
    'internal: deletes a check and its results (runs _delete_check_as_owner as the extension owner)';

CREATE FUNCTION pipeline._delete_check_as_owner(caller regrole, check_name text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    c pipeline.checks;
BEGIN
    SELECT * INTO c FROM pipeline.checks AS x WHERE x.check_name = _delete_check_as_owner.check_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'check "%" does not exist', check_name
            USING ERRCODE = 'undefined_object', HINT = 'List checks in pipeline.checks.';
    END IF;
    IF NOT (CASE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_roles AS a WHERE a.oid = c.owner)
                 THEN (SELECT a.rolsuper FROM pg_catalog.pg_roles AS a WHERE a.oid = caller)
                 ELSE pg_catalog.pg_has_role(caller, c.owner, 'USAGE') END) THEN
        RAISE EXCEPTION 'permission denied to drop check %', check_name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('Only members of its owner, %s, can drop it.', c.owner);
    END IF;
    DELETE FROM pipeline.checks AS x WHERE x.check_name = c.check_name;
END
$fn$;
COMMENT ON FUNCTION pipeline._delete_check_as_owner(regrole, text) IS
    'internal: the extension owner''s half of _delete_check; checks the caller is a member of the check''s owner';

CREATE FUNCTION pipeline._evaluate_check(check_name text, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    RETURNS record
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_evaluate_check';
COMMENT ON FUNCTION pipeline._evaluate_check(text, timestamptz) IS
    'internal: evaluates one check as its owner, in a restricted context, for a caller with the owner''s privileges';

CREATE FUNCTION pipeline._record_check_result(check_name text, run_no bigint, ran_at timestamptz,
        status text, observed numeric, threshold numeric, detail text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._record_check_result(text, bigint, timestamptz, text, numeric, numeric, text) IS
    'internal: records one run of a check (runs _record_check_result_as_owner as the extension owner)';

CREATE FUNCTION pipeline._record_check_result_as_owner(caller regrole, check_name text, run_no bigint,
        ran_at timestamptz, status text, observed numeric, threshold numeric, detail text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
BEGIN
    IF NOT EXISTS (SELECT FROM pipeline.checks AS c
                    LEFT JOIN pg_catalog.pg_roles AS o ON o.oid = c.owner
                   WHERE c.check_name = _record_check_result_as_owner.check_name
                     AND CASE WHEN o.oid IS NULL
                              THEN (SELECT a.rolsuper FROM pg_catalog.pg_roles AS a WHERE a.oid = caller)
                              ELSE pg_catalog.pg_has_role(caller, c.owner, 'USAGE') END) THEN
        RAISE EXCEPTION 'permission denied to record a result of check %', check_name
            USING ERRCODE = 'insufficient_privilege', HINT = 'pipeline.run_checks() records results.';
    END IF;
    INSERT INTO pipeline.check_results (check_name, run_no, ran_at, status, observed, threshold, detail)
        VALUES (check_name, run_no, ran_at, status, observed, threshold, detail);
END
$fn$;
COMMENT ON FUNCTION pipeline._record_check_result_as_owner(regrole, text, bigint, timestamptz, text, numeric, numeric, text) IS
    'internal: the extension owner''s half of _record_check_result; checks the caller may run the check';

-- --- functions whose body or kind changed --------------------------------
-- (the SECURITY DEFINER helpers of 0.1.0 become C entry points that check
-- the real caller; CREATE OR REPLACE drops SECURITY DEFINER with the rest)
CREATE OR REPLACE FUNCTION pipeline._register_source(source text, columns text, event_id text,
        event_time text, allowed_lateness interval, freeze_after interval,
        day_timezone text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._register_source(text, text, text, text, interval, interval, text) IS
    'internal: records a source whose raw and id tables the caller owns (runs _register_source_as_owner as the extension owner)';

CREATE OR REPLACE FUNCTION pipeline._unregister_source(source text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._unregister_source(text) IS
    'internal: removes the load table and records of a source whose tables were dropped (runs _unregister_source_as_owner as the extension owner)';

CREATE OR REPLACE FUNCTION pipeline.drop_source(source text, cascade boolean DEFAULT false)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
BEGIN
    s := pipeline._source_of_owner(source, 'drop', 'drop');
    PERFORM pipeline._drop_source_metrics(s.source, cascade);
    EXECUTE pg_catalog.format('DROP TABLE %s, %s', s.raw_table, s.ids_table);
    PERFORM pipeline._unregister_source(s.source);
END
$fn$;
COMMENT ON FUNCTION pipeline.drop_source(text, boolean) IS
    'drops a source with its raw events, receipts and dead letters; refuses while metrics use it unless cascade';

CREATE OR REPLACE FUNCTION pipeline._create_load_table(source text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._create_load_table(text) IS
    'internal: (re)creates pipeline.<source>_load, the COPY target of the bulk path (runs _create_load_table_as_owner as the extension owner)';

CREATE OR REPLACE FUNCTION pipeline._register_metric(metric text, source text, dimensions text[], measures text,
        bucket interval, filter text, hot_retention interval)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._register_metric(text, text, text[], text, interval, text, interval) IS
    'internal: records a metric whose hot table the caller created in this transaction and builds its daily layer '
    '(runs _register_metric_as_owner as the extension owner)';

CREATE OR REPLACE FUNCTION pipeline._unregister_metric(metric text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._unregister_metric(text) IS
    'internal: removes a dropped metric''s catalog row and daily layer (runs _unregister_metric_as_owner as the extension owner)';
COMMENT ON FUNCTION pipeline.create_metric(text, text, text[], text, interval, text, interval) IS
    'creates a metric: checks measures and filter, creates its hot table and metrics.<metric>_live';

CREATE OR REPLACE FUNCTION pipeline.drop_metric(metric text)
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

CREATE OR REPLACE FUNCTION pipeline._drop_source_metrics(source text, cascade boolean)
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
COMMENT ON FUNCTION pipeline._create_daily(text) IS
    'internal: builds a metric''s daily tables, guards and views, owned by the extension owner';
COMMENT ON FUNCTION pipeline._drop_daily(text) IS 'internal: drops the daily layer of a dropped metric';

CREATE OR REPLACE FUNCTION pipeline._close_days(as_of timestamptz)
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
COMMENT ON FUNCTION pipeline._close_days(timestamptz) IS
    'internal: the work of close_days, run as the extension owner';

CREATE OR REPLACE FUNCTION pipeline.evolve_source(source text, change text)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    info jsonb;
    users text;
    alias_name text;
    version integer;
BEGIN
    s := pipeline._source_of_owner(source, 'change the contract of', 'change');
    IF change IS NULL THEN
        RAISE EXCEPTION 'change must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    version := s.contract_version + 1;

    -- DROP ALIAS old_name: producers sending it are on their own from now on
    alias_name := pg_catalog.substring(change, '^\s*(?:DROP|drop)\s+(?:ALIAS|alias)\s+([a-z_][a-z0-9_]*)\s*$');
    IF alias_name IS NOT NULL THEN
        DELETE FROM pipeline.column_aliases AS a WHERE a.source = s.source AND a.alias = alias_name;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'source "%" has no alias "%"', source, alias_name
                USING ERRCODE = 'undefined_object', HINT = 'See pipeline.column_aliases.';
        END IF;
        info := pg_catalog.jsonb_build_object('kind', 'drop_alias', 'column', alias_name);
    ELSE
        info := pipeline._evolve_check(s.raw_table, change);
        IF info->>'kind' IN ('rename_column', 'drop_column', 'alter_type') THEN
            SELECT pg_catalog.string_agg(m.metric, ', ' ORDER BY m.metric) INTO users
              FROM pipeline.metric_catalog AS m
             WHERE m.source = s.source AND m.definition->'columns' ? (info->>'column');
            IF users IS NOT NULL THEN
                RAISE EXCEPTION 'column "%" of source % is used by metrics: %', info->>'column', source, users
                    USING ERRCODE = 'dependent_objects_still_exist',
                          DETAIL = pg_catalog.format('%s would break: their folds and daily computations read the column by name and type.', users),
                          HINT = 'Add a new column instead, or drop and recreate those metrics on the new contract.';
            END IF;
        END IF;
        IF info->>'kind' IN ('drop_column', 'alter_type') AND info->>'column' IN (s.event_id, s.event_time)
           AND NOT (info->>'kind' = 'alter_type' AND info->>'column' = s.event_id) THEN
            RAISE EXCEPTION 'column "%" is the source''s % column', info->>'column',
                    CASE WHEN info->>'column' = s.event_id THEN 'event-id' ELSE 'event-time' END
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'The event id may only widen; the event time stays timestamptz and cannot be dropped.';
        END IF;
        info := pipeline._evolve_apply(s.raw_table, s.ids_table, s.event_id, change);

        IF info->>'kind' = 'rename_column' THEN
            -- the old name keeps working for producers; older aliases follow
            UPDATE pipeline.column_aliases AS a SET column_name = info->>'new_name'
             WHERE a.source = s.source AND a.column_name = info->>'column';
            INSERT INTO pipeline.column_aliases (source, alias, column_name, since_version)
                VALUES (s.source, info->>'column', info->>'new_name', version);
            DELETE FROM pipeline.column_aliases AS a WHERE a.source = s.source AND a.alias = info->>'new_name';
            IF info->>'column' = s.event_id THEN
                s.event_id := info->>'new_name';
            ELSIF info->>'column' = s.event_time THEN
                s.event_time := info->>'new_name';
            END IF;
        ELSIF info->>'kind' = 'drop_column' THEN
            DELETE FROM pipeline.column_aliases AS a WHERE a.source = s.source AND a.column_name = info->>'column';
        END IF;
        PERFORM pipeline._create_load_table(s.source);
    END IF;

    PERFORM pipeline._record_contract(s.source, version, s.event_id, s.event_time,
                                      pipeline._contract_columns(s.raw_table), change);
    RETURN version;
END
$fn$;
COMMENT ON FUNCTION pipeline.evolve_source(text, text) IS
    'changes a source''s contract compatibly (ADD COLUMN, RENAME COLUMN, widening TYPE, DROP NOT NULL, DROP COLUMN, DROP ALIAS); returns the new contract version';

CREATE OR REPLACE FUNCTION pipeline._replay_one(letter bigint)
    RETURNS text
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._replay_one(bigint) IS
    'internal: replays one dead letter from its own payload and records the outcome (runs _replay_one_as_owner as the extension owner)';

CREATE OR REPLACE FUNCTION pipeline._settle_dead_letter(letter bigint, batch bigint)
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    b pipeline.batch_log;
    d pipeline.dead_letters;
    fresh pipeline.dead_letters;
BEGIN
    SELECT * INTO b FROM pipeline.batch_log AS x WHERE x.batch_id = batch;
    SELECT * INTO d FROM pipeline.dead_letters AS x WHERE x.id = letter FOR UPDATE;
    IF b.batch_id IS NULL OR d.id IS NULL OR b.source <> d.source
       OR b.batch_key NOT LIKE pg_catalog.format('replay:%s:v%%', letter) THEN
        RAISE EXCEPTION 'batch % is not a replay of dead letter %', batch, letter
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF b.accepted + b.duplicates = 1 THEN
        UPDATE pipeline.dead_letters AS x SET replayed_at = pg_catalog.now(), replay_batch_id = batch
         WHERE x.id = letter AND x.replayed_at IS NULL;
        RETURN CASE WHEN b.accepted = 1 THEN 'accepted' ELSE 'duplicate' END;
    END IF;
    -- still rejected: the letter takes the new reason; the copy the replay
    -- wrote goes (on a repeated replay there is none left to move)
    SELECT * INTO fresh FROM pipeline.dead_letters AS x
     WHERE x.batch_id = batch AND x.id <> letter ORDER BY x.id LIMIT 1;
    IF fresh.id IS NOT NULL THEN
        UPDATE pipeline.dead_letters AS x
           SET error = fresh.error, error_code = fresh.error_code, field = fresh.field,
               contract_version = fresh.contract_version, replay_attempts = x.replay_attempts + 1
         WHERE x.id = letter;
        DELETE FROM pipeline.dead_letters AS x WHERE x.id = fresh.id;
    END IF;
    RETURN 'rejected';
END
$fn$;
COMMENT ON FUNCTION pipeline._settle_dead_letter(bigint, bigint) IS
    'internal: records on a dead letter the outcome of the batch that replayed it';

CREATE OR REPLACE FUNCTION pipeline._check_validate(kind text, target text, params jsonb, OUT target_type text, OUT checked jsonb)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    p record := pipeline._check_kind_params(kind);
    s pipeline.source_catalog;
    m pipeline.metric_catalog;
    key text;
    typ text;
    ref record;
    v jsonb;
    rel text;
BEGIN
    IF pg_catalog.jsonb_typeof(params) <> 'object' THEN
        RAISE EXCEPTION 'params of a check must be a JSON object, not %', params
            USING ERRCODE = 'invalid_parameter_value', HINT = pg_catalog.format('For example: %s', p.example);
    END IF;
    FOR key IN SELECT k FROM pg_catalog.jsonb_object_keys(params) AS k ORDER BY 1 LOOP
        IF NOT key = ANY (p.required || p.optional) THEN
            RAISE EXCEPTION 'a % check has no param "%"', kind, key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = CASE WHEN p.required || p.optional = '{}' THEN pg_catalog.format('A %s check takes no params: pass ''{}''.', kind)
                                  ELSE pg_catalog.format('A %s check takes: %s.', kind, pg_catalog.array_to_string(p.required || p.optional, ', ')) END;
        END IF;
    END LOOP;

    -- the target: a source or a metric, as the kind requires
    SELECT * INTO s FROM pipeline.source_catalog AS c WHERE c.source = target;
    SELECT * INTO m FROM pipeline.metric_catalog AS c WHERE c.metric = target;
    -- a metric the caller may not read (pipeline.metrics lists it): its
    -- checks run as their owner, who must be able to read what they watch
    IF m.metric IS NULL AND EXISTS (SELECT FROM pipeline.metrics AS x WHERE x.metric = target) THEN
        RAISE EXCEPTION 'permission denied to add a check on metric "%"', target
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Checks of a metric are for the members of its owner and the readers of its source.';
    END IF;
    IF kind IN ('completeness', 'digest', 'sla') THEN
        target_type := 'metric';
    ELSIF kind = 'freshness' THEN
        v := pipeline._check_param(kind, params, 'target_type', 'string', 'null');
        IF v <> 'null'::jsonb AND v #>> '{}' NOT IN ('source', 'metric') THEN
            RAISE EXCEPTION 'params.target_type of a freshness check must be "source" or "metric", not %', v
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        target_type := CASE WHEN v <> 'null'::jsonb THEN v #>> '{}'
                            WHEN s.source IS NOT NULL AND m.metric IS NOT NULL THEN 'ambiguous'
                            WHEN m.metric IS NOT NULL THEN 'metric' ELSE 'source' END;
        IF target_type = 'ambiguous' THEN
            RAISE EXCEPTION '"%" is both a source and a metric', target
                USING ERRCODE = 'ambiguous_parameter',
                      HINT = 'Say which with params.target_type: "source" or "metric".';
        END IF;
    ELSE
        target_type := 'source';
    END IF;
    IF target_type = 'source' AND s.source IS NULL THEN
        RAISE EXCEPTION 'source "%" does not exist', target
            USING ERRCODE = 'undefined_object',
                  HINT = pg_catalog.format('A %s check watches a source; see pipeline.sources.', kind);
    END IF;
    IF target_type = 'metric' AND m.metric IS NULL THEN
        RAISE EXCEPTION 'metric "%" does not exist', target
            USING ERRCODE = 'undefined_object',
                  HINT = CASE WHEN s.source IS NOT NULL
                              THEN pg_catalog.format('"%s" is a source; a %s check watches a metric of it: see pipeline.metrics.', target, kind)
                              ELSE pg_catalog.format('A %s check watches a metric; see pipeline.metrics.', kind) END;
    END IF;

    -- what the check will read, as its owner (the caller): refused now rather than failing at every run
    FOR rel IN
        SELECT r FROM pg_catalog.unnest(CASE
            WHEN kind IN ('referential', 'volume', 'not_null', 'accepted_values') THEN ARRAY[s.raw_table::text]
            WHEN kind = 'validity' THEN ARRAY['pipeline.batches']
            WHEN kind = 'completeness' THEN ARRAY[(SELECT x.raw_table::text FROM pipeline.source_catalog AS x WHERE x.source = m.source),
                                                  m.hot_table::text, pg_catalog.format('pipeline.%I', m.metric || '_daily'),
                                                  pg_catalog.format('pipeline.%I', m.metric || '_corrections')]
            WHEN kind = 'digest' THEN ARRAY[pg_catalog.format('metrics.%I', m.metric || '_daily')]
            ELSE '{}'::text[] END) AS r
    LOOP
        IF NOT pg_catalog.has_table_privilege(rel, 'SELECT') THEN
            RAISE EXCEPTION 'permission denied to check % "%": a % check reads %', target_type, target, kind, rel
                USING ERRCODE = 'insufficient_privilege',
                      HINT = pg_catalog.format('Checks run with the privileges of the role that added them: GRANT SELECT ON %s TO %I.',
                                               rel, current_user);
        END IF;
    END LOOP;

    checked := '{}';
    IF kind = 'freshness' THEN
        checked := pg_catalog.jsonb_build_object('max_lag', pipeline._check_param(kind, params, 'max_lag', 'interval'));
        IF target_type = 'source' THEN
            v := pipeline._check_param(kind, params, 'basis', 'string', '"arrival"');
            IF v #>> '{}' NOT IN ('arrival', 'watermark') THEN
                RAISE EXCEPTION 'params.basis of a freshness check must be "arrival" or "watermark", not %', v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'arrival: time since the last accepted batch; watermark: time since the source''s watermark.';
            END IF;
            checked := checked || pg_catalog.jsonb_build_object('basis', v);
        ELSIF params ? 'basis' THEN
            RAISE EXCEPTION 'params.basis is for freshness checks of sources'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'A metric''s freshness is the age of the oldest accepted batch not folded yet.';
        END IF;
        IF params ? 'target_type' THEN
            checked := checked || pg_catalog.jsonb_build_object('target_type', target_type);
        END IF;
    ELSIF kind = 'completeness' THEN
        checked := pg_catalog.jsonb_build_object(
            'tolerance', pipeline._check_param(kind, params, 'tolerance', 'count', '0'),
            'days', pipeline._check_param(kind, params, 'days', 'days', '7'));
    ELSIF kind = 'validity' THEN
        checked := pg_catalog.jsonb_build_object(
            'window', pipeline._check_param(kind, params, 'window', 'interval', '"1 hour"'),
            'max_reject_rate', pipeline._check_param(kind, params, 'max_reject_rate', 'rate'));
    ELSIF kind = 'volume' THEN
        checked := pg_catalog.jsonb_build_object(
            'window', pipeline._check_param(kind, params, 'window', 'interval', '"1 hour"'),
            'max_change', pipeline._check_param(kind, params, 'max_change', 'nonnegative'));
    ELSIF kind IN ('referential', 'not_null', 'accepted_values') THEN
        v := pipeline._check_param(kind, params, 'column', 'string');
        typ := pipeline._check_contract_column(s.source, v #>> '{}');
        checked := pg_catalog.jsonb_build_object('column', v,
            'window', pipeline._check_param(kind, params, 'window', 'interval', '"1 day"'));
        IF kind = 'not_null' THEN
            checked := checked || pg_catalog.jsonb_build_object(
                'max_null_rate', pipeline._check_param(kind, params, 'max_null_rate', 'rate', '0'));
        ELSIF kind = 'referential' THEN
            ref := pipeline._check_reference(pipeline._check_param(kind, params, 'reference', 'string') #>> '{}');
            IF NOT pg_catalog.has_column_privilege(ref.rel, ref.col, 'SELECT') THEN
                RAISE EXCEPTION 'permission denied to read %', ref.normalized
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = pg_catalog.format('Checks run with the privileges of the role that added them: GRANT SELECT ON %s TO %I.',
                                                   ref.rel, current_user);
            END IF;
            -- the two columns must compare with =: let the planner say
            BEGIN
                EXECUTE pg_catalog.format(
                    'SELECT FROM %s AS r WHERE EXISTS (SELECT FROM %s AS t WHERE t.%I = r.%I) LIMIT 0',
                    s.raw_table, ref.rel, ref.col, v #>> '{}');
            EXCEPTION WHEN undefined_function OR datatype_mismatch OR indeterminate_datatype THEN
                RAISE EXCEPTION 'column "%" (%) cannot be compared with %', v #>> '{}', typ, ref.normalized
                    USING ERRCODE = 'datatype_mismatch',
                          DETAIL = SQLERRM,
                          HINT = 'Reference a column of a comparable type (the same type, or text with text).';
            END;
            checked := checked || pg_catalog.jsonb_build_object('reference', ref.normalized,
                'max_missing_rate', pipeline._check_param(kind, params, 'max_missing_rate', 'rate', '0'));
        ELSE
            v := params -> 'values';
            IF v IS NULL OR pg_catalog.jsonb_typeof(v) <> 'array' OR pg_catalog.jsonb_array_length(v) = 0 THEN
                RAISE EXCEPTION 'params.values of an accepted_values check must be a non-empty JSON array'
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = pg_catalog.format('For example: %s', p.example);
            END IF;
            IF EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(v) AS e
                        WHERE pg_catalog.jsonb_typeof(e) NOT IN ('string', 'number', 'boolean')) THEN
                RAISE EXCEPTION 'params.values of an accepted_values check must hold strings, numbers or booleans'
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'NULLs are not values: check them with a not_null check.';
            END IF;
            -- every value must be one of the column's type
            BEGIN
                EXECUTE pg_catalog.format('SELECT $1::%s[]', typ)
                  USING ARRAY(SELECT e #>> '{}' FROM pg_catalog.jsonb_array_elements(v) AS e);
            EXCEPTION WHEN data_exception THEN
                RAISE EXCEPTION 'params.values of an accepted_values check holds a value that is not a % (the type of column "%")',
                        typ, params ->> 'column'
                    USING ERRCODE = 'invalid_parameter_value', DETAIL = SQLERRM;
            END;
            checked := checked || pg_catalog.jsonb_build_object('values', v,
                'max_unexpected_rate', pipeline._check_param(kind, params, 'max_unexpected_rate', 'rate', '0'));
        END IF;
    ELSIF kind = 'sla' THEN
        checked := pg_catalog.jsonb_build_object(
            'ready_by', pipeline._check_param(kind, params, 'ready_by', 'time'),
            'warn_before', pipeline._check_param(kind, params, 'warn_before', 'interval_or_zero', '"1 hour"'));
        -- a day is provisional at the earliest allowed_lateness after its
        -- end: a deadline before that could never be met
        SELECT * INTO STRICT s FROM pipeline.source_catalog AS x WHERE x.source = m.source;
        IF (checked ->> 'ready_by')::time::interval < s.allowed_lateness THEN
            RAISE EXCEPTION 'params.ready_by of a sla check is %, before metric "%" can have yesterday provisional',
                    checked ->> 'ready_by', m.metric
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = pg_catalog.format('Source %s allows events %s late: a day becomes provisional that long after it ends, at the earliest.',
                                                 s.source, s.allowed_lateness),
                      HINT = CASE WHEN s.allowed_lateness < interval '1 day'
                                  THEN pg_catalog.format('Choose a ready_by of %s or later.',
                                                         pipeline._check_time_text(time '00:00' + s.allowed_lateness))
                                  ELSE 'No time of day can be met: lower the source''s allowed_lateness first.' END;
        END IF;
    END IF;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_validate(text, text, jsonb) IS
    'internal: validates a check''s target (source or metric as the kind requires, readable by the caller) and params';

CREATE OR REPLACE FUNCTION pipeline.add_check(check_name text, kind text, target text, params jsonb DEFAULT '{}',
                                   severity text DEFAULT 'warn')
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    v record;
BEGIN
    PERFORM pipeline._check_name('check', check_name);
    IF kind IS NULL OR target IS NULL OR severity IS NULL THEN
        RAISE EXCEPTION 'add_check needs a check name, a kind, a target and a severity'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF pipeline._check_kind_params(kind) IS NULL THEN
        RAISE EXCEPTION 'unknown check kind "%"', kind
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The kinds are freshness, completeness, validity, referential, volume, not_null, accepted_values, digest and sla.';
    END IF;
    IF severity NOT IN ('warn', 'fail', 'block') THEN
        RAISE EXCEPTION 'unknown severity "%"', severity
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use warn, fail or block (block holds the metric''s days from freezing while the check fails).';
    END IF;
    -- a missed SLA says the days are late, not wrong: holding the older
    -- days from freezing would only make them later
    IF kind = 'sla' AND severity = 'block' THEN
        RAISE EXCEPTION 'a sla check cannot have severity block'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A missed SLA means a day is late, not wrong: use warn or fail.';
    END IF;
    IF EXISTS (SELECT FROM pipeline.checks AS c WHERE c.check_name = add_check.check_name) THEN
        RAISE EXCEPTION 'check "%" already exists', check_name
            USING ERRCODE = 'duplicate_object', HINT = 'Drop it first with pipeline.drop_check().';
    END IF;
    v := pipeline._check_validate(kind, target, COALESCE(params, '{}'));
    PERFORM pipeline._store_check(check_name, kind, target, v.target_type, v.checked, severity);
END
$fn$;
COMMENT ON FUNCTION pipeline.add_check(text, text, text, jsonb, text) IS
    'adds a data-quality check of a source or metric (kinds: freshness, completeness, validity, referential, volume, '
    'not_null, accepted_values, digest, sla); params are validated and stored with their defaults; severity warn, fail or block';

CREATE OR REPLACE FUNCTION pipeline.drop_check(check_name text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
BEGIN
    PERFORM pipeline._delete_check(check_name);
END
$fn$;
COMMENT ON FUNCTION pipeline.drop_check(text) IS 'drops a check and its results history';

CREATE OR REPLACE FUNCTION pipeline.run_checks(as_of timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (check_name text, status text, observed numeric, threshold numeric, detail text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    c pipeline.checks;
    prev text;
    next_no bigint;
    r record;
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- (a check whose owner was dropped is a superuser's to see, and fails)
    FOR c IN SELECT x.* FROM pipeline.checks AS x
               LEFT JOIN pg_catalog.pg_roles AS o ON o.oid = x.owner
              WHERE CASE WHEN o.oid IS NULL
                         THEN (SELECT a.rolsuper FROM pg_catalog.pg_roles AS a WHERE a.rolname = current_user)
                         ELSE pg_catalog.pg_has_role(current_user, x.owner, 'USAGE') END
              ORDER BY x.check_name
    LOOP
        -- one run of a check at a time: a second waits, then sees the first's result
        PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pipeline.check_results'),
                                                 pg_catalog.hashtext(c.check_name));
        CONTINUE WHEN NOT EXISTS (SELECT FROM pipeline.checks AS x WHERE x.check_name = c.check_name);
        SELECT x.status, x.run_no INTO prev, next_no FROM pipeline.check_results AS x
         WHERE x.check_name = c.check_name ORDER BY x.run_no DESC LIMIT 1;
        next_no := COALESCE(next_no, 0) + 1;
        -- evaluated as the check's owner (its privileges, whoever runs it)
        BEGIN
            r := pipeline._evaluate_check(c.check_name, as_of);
            status := r.status;
            observed := r.observed;
            threshold := r.threshold;
            detail := r.detail;
        EXCEPTION WHEN OTHERS THEN
            status := 'fail';
            observed := NULL;
            threshold := NULL;
            detail := 'the check could not run: ' || SQLERRM;
        END;
        check_name := c.check_name;
        PERFORM pipeline._record_check_result(c.check_name, next_no, as_of, status, observed, threshold, detail);
        -- worse than the run before (pass < warn < fail; no run before is a
        -- pass): a new failure, a new warning, or a warning turned failure.
        -- Any role may LISTEN: the payload says which check and how bad,
        -- never what it read (observed, detail: in pipeline.alerts, for the
        -- check's owner).
        IF status <> 'pass' AND (prev IS NULL OR prev = 'pass' OR (prev = 'warn' AND status = 'fail')) THEN
            PERFORM pg_catalog.pg_notify('pipeline_alerts', pg_catalog.jsonb_build_object(
                'check_name', c.check_name, 'kind', c.kind, 'target', c.target, 'severity', c.severity,
                'status', status, 'ran_at', as_of)::text);
        END IF;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pipeline.run_checks(timestamptz) IS
    'evaluates, as of the given time, the checks of the roles the caller has the privileges of (all, for a superuser), '
    'each as its owner; records each result in pipeline.check_results and sends NOTIFY pipeline_alerts (a JSON payload: '
    'check_name, kind, target, severity, status, ran_at) for each run that makes a check '
    'worse: a new failure, a new SLA warning, or a warning turned failure';
COMMENT ON FUNCTION pipeline.explain(text, date, jsonb) IS
    'how a daily number came to be, as JSON: the day''s status, version and freeze; per dimension group the daily, '
    'corrections and restated value of each measure and whether they add up, and the raw events split by what the '
    'freeze saw, what corrections took and what awaits correction; the batches and contract versions behind them; '
    'duplicates and dead letters around the day.  dimensions selects groups, e.g. {"platform": "ios"}';

REVOKE EXECUTE ON FUNCTION pipeline._create_daily(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pipeline._drop_daily(text) FROM PUBLIC;

-- --- stranger functions and operators in schema pipeline ------------------
REVOKE EXECUTE ON FUNCTION pipeline._refuse_strangers() FROM PUBLIC;
CREATE EVENT TRIGGER pipeline_refuse_strangers ON ddl_command_end
    WHEN TAG IN ('CREATE FUNCTION', 'CREATE PROCEDURE', 'CREATE AGGREGATE', 'CREATE OPERATOR',
                 'ALTER FUNCTION', 'ALTER PROCEDURE', 'ALTER AGGREGATE', 'ALTER OPERATOR')
    EXECUTE FUNCTION pipeline._refuse_strangers();


-- --- dead letters: each role sees what it could read itself ---------------
ALTER TABLE pipeline.dead_letters ENABLE ROW LEVEL SECURITY;
CREATE POLICY dead_letters_read ON pipeline.dead_letters FOR SELECT USING (
    EXISTS (SELECT FROM pipeline.batch_log AS b
             WHERE b.batch_id = dead_letters.batch_id AND b.ingested_by = current_user)
    OR EXISTS (SELECT FROM pipeline.source_catalog AS s
                WHERE s.source = dead_letters.source
                  AND (pg_catalog.pg_has_role(current_user, s.owner, 'USAGE')
                       OR pg_catalog.has_table_privilege(s.raw_table, 'SELECT'))));

REVOKE SELECT ON pipeline.dead_letters FROM pipeline_writer;
GRANT SELECT (ingested_by) ON pipeline.batch_log TO PUBLIC;
GRANT SELECT ON pipeline.dead_letters TO PUBLIC;

-- --- metrics: rows for their owners and their source's readers ------------
DROP POLICY metric_catalog_read ON pipeline.metric_catalog;
CREATE POLICY metric_catalog_read ON pipeline.metric_catalog FOR SELECT USING (
    pg_catalog.pg_has_role(current_user, owner, 'USAGE')
    OR EXISTS (SELECT FROM pipeline.source_catalog AS s
                WHERE s.source = metric_catalog.source
                  AND pg_catalog.has_table_privilege(s.raw_table, 'SELECT')));

CREATE OR REPLACE VIEW pipeline.metrics AS
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

-- --- catalogs written through the API only -------------------------------
DROP POLICY source_catalog_owner_update ON pipeline.source_catalog;
REVOKE UPDATE (contract_version, event_id, event_time) ON pipeline.source_catalog FROM PUBLIC;
DROP POLICY contracts_owner_insert ON pipeline.contracts;
REVOKE INSERT ON pipeline.contracts FROM PUBLIC;
DROP POLICY checks_owner_insert ON pipeline.checks;
DROP POLICY checks_owner_delete ON pipeline.checks;
REVOKE INSERT, DELETE ON pipeline.checks FROM PUBLIC;
DROP POLICY check_results_owner_insert ON pipeline.check_results;
DROP POLICY check_results_read ON pipeline.check_results;
CREATE POLICY check_results_read ON pipeline.check_results FOR SELECT USING (
    EXISTS (SELECT FROM pipeline.checks AS c
             WHERE c.check_name = check_results.check_name
               AND pg_catalog.pg_has_role(current_user, c.owner, 'USAGE')));

REVOKE INSERT ON pipeline.check_results FROM PUBLIC;

-- --- serving what a role may read ------------------------------------------
CREATE OR REPLACE VIEW pipeline.alerts AS
    SELECT c.check_name, c.kind, c.target, c.severity, l.status,
           (SELECT r.ran_at FROM pipeline.check_results AS r
             WHERE r.check_name = c.check_name
               AND r.run_no > COALESCE((SELECT p.run_no FROM pipeline.check_results AS p
                                         WHERE p.check_name = c.check_name
                                           AND (p.status = 'pass' OR (p.status = 'warn' AND l.status = 'fail'))
                                         ORDER BY p.run_no DESC LIMIT 1), 0)
             ORDER BY r.run_no LIMIT 1) AS since,
           l.ran_at AS last_ran_at,
           CASE WHEN mine THEN l.observed END AS observed,
           CASE WHEN mine THEN l.threshold END AS threshold,
           CASE WHEN mine THEN l.detail END AS detail
      FROM pipeline.checks AS c
      CROSS JOIN LATERAL (SELECT pg_catalog.pg_has_role(current_user, c.owner, 'USAGE') AS mine) AS v
      JOIN LATERAL (SELECT r.* FROM pipeline.check_results AS r
                     WHERE r.check_name = c.check_name
                     ORDER BY r.run_no DESC LIMIT 1) AS l ON l.status IN ('warn', 'fail');
COMMENT ON VIEW pipeline.alerts IS
    'the checks failing now and the daily SLAs missed or about to be (their latest run is fail, or warn: an SLA''s early '
    'warning): severity, status, since when, and (for members of the check''s owner) the latest observed value, '
    'threshold and detail.  Each run that makes '
    'a check worse (to warn or fail) is also sent as NOTIFY pipeline_alerts with a JSON payload';

CREATE OR REPLACE VIEW pipeline.status AS
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


-- --- load tables: the extension owner's from now on ------------------------
-- In 0.1.0 a source's owner owned pipeline.<source>_load, so a trigger or
-- column default of theirs ran as every writer that loaded.  Each is made
-- again as the extension owner (it never holds rows), like a new source's,
-- which is no member of the extension: tables made by an extension script
-- are, so the new ones are taken out again.
DO $load$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT c.source, c.owner FROM pipeline.source_catalog AS c ORDER BY c.source LOOP
        PERFORM pipeline._create_load_table_as_owner(s.owner, s.source);
        EXECUTE pg_catalog.format('ALTER EXTENSION pipeline DROP TABLE pipeline.%I', s.source || '_load');
    END LOOP;
END
$load$;

-- =====================================================================
-- Lifecycle: what a dump must carry
-- =====================================================================
-- the sequences behind batch ids and dead-letter ids (0.1.0 dumped the
-- tables but not them: a restored database handed out taken batch ids)
SELECT pg_catalog.pg_extension_config_dump('pipeline.batch_log_batch_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.dead_letters_id_seq', '');

-- =====================================================================
-- Lifecycle: retention (src/sql/65_retention.sql)
-- =====================================================================
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

CREATE FUNCTION pipeline._trim_cron_history(keep interval)
    RETURNS bigint
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_trim_cron_history';
COMMENT ON FUNCTION pipeline._trim_cron_history(interval) IS
    'internal: deletes the caller''s runs of this database''s pipeline jobs from cron.job_run_details that ended '
    'more than keep ago; NULL when pg_cron is absent';

-- maintain() now takes as_of and returns what it did (its pg_cron job's
-- command, SELECT pipeline.maintain(), is the same)
DROP FUNCTION pipeline.maintain();
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
COMMENT ON FUNCTION pipeline._check_completeness(pipeline.checks, timestamptz) IS
    'internal: per closed day, receipts vs raw vs daily (frozen + corrections, or provisional) vs hot, in events';

CREATE OR REPLACE FUNCTION pipeline._ensure_partitions(source text, times timestamptz[])
    RETURNS TABLE (lo timestamptz, hi timestamptz, part regclass)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    d date;
    base text;
    name text;
    n integer;
BEGIN
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS c WHERE c.source = _ensure_partitions.source;
    FOR d IN SELECT DISTINCT (t AT TIME ZONE s.day_timezone)::date
               FROM pg_catalog.unnest(times) AS t ORDER BY 1
    LOOP
        lo := d::timestamp AT TIME ZONE s.day_timezone;
        hi := (d + 1)::timestamp AT TIME ZONE s.day_timezone;
        base := s.source || '_raw_' || pg_catalog.to_char(d, 'YYYYMMDD');
        FOR attempt IN 1..2 LOOP
            part := pipeline._day_partition(s, d);
            EXIT WHEN part IS NOT NULL OR attempt = 2;
            -- ONLY: the parent alone (LOCK TABLE would take every partition
            -- too, and wait for a day retention is dropping)
            EXECUTE pg_catalog.format('LOCK TABLE ONLY %s IN SHARE UPDATE EXCLUSIVE MODE', s.raw_table);
        END LOOP;
        IF part IS NULL THEN
            -- if another role took the name, the next free one
            name := base;
            n := 0;
            WHILE pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', name)) IS NOT NULL LOOP
                n := n + 1;
                name := base || '_' || n;
            END LOOP;
            EXECUTE pg_catalog.format('CREATE TABLE pipeline.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                                      name, s.raw_table);
            EXECUTE pg_catalog.format('ALTER TABLE %s ATTACH PARTITION pipeline.%I FOR VALUES FROM (%L) TO (%L)',
                                      s.raw_table, name, lo, hi);
            part := pg_catalog.format('pipeline.%I', name)::regclass;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pipeline._ensure_partitions(text, timestamptz[]) IS
    'internal: creates the missing day partitions of a source''s raw table for the given event times';


-- =====================================================================
-- Lifecycle: a restore into another cluster (src/sql/67_restore.sql)
-- =====================================================================
CREATE TABLE pipeline.cluster_identity (
    one                boolean PRIMARY KEY DEFAULT true CHECK (one),
    system_identifier  bigint NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    rebased_from       bigint
);

COMMENT ON TABLE pipeline.cluster_identity IS
    'the cluster whose transaction ids the receipts and snapshots are numbered in (its system identifier); '
    'a different one after a restore into another cluster, until pipeline re-bases them';

GRANT SELECT ON pipeline.cluster_identity TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('pipeline.cluster_identity', '');

CREATE UNLOGGED TABLE pipeline.rebase_ids (old xid8 PRIMARY KEY, class bigint NOT NULL);

CREATE UNLOGGED TABLE pipeline.rebase_classes (class bigint PRIMARY KEY, sample xid8 NOT NULL);

COMMENT ON TABLE pipeline.rebase_ids IS 'internal: empty but during a re-base (src/sql/67_restore.sql)';

COMMENT ON TABLE pipeline.rebase_classes IS 'internal: empty but during a re-base (src/sql/67_restore.sql)';

CREATE FUNCTION pipeline._system_identifier() RETURNS bigint
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_system_identifier';
COMMENT ON FUNCTION pipeline._system_identifier() IS
    'internal: the running cluster''s system identifier (pg_control)';

CREATE FUNCTION pipeline._rebase_classes(OUT xid8 xid8, OUT class bigint)
    RETURNS SETOF record
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
    WITH snaps AS (
        SELECT m.fold_snapshot AS s FROM pipeline.metric_catalog AS m
        UNION ALL SELECT c.frozen_snapshot FROM pipeline.day_closures AS c WHERE c.frozen_snapshot IS NOT NULL
        UNION ALL SELECT c.corrected_snapshot FROM pipeline.day_closures AS c WHERE c.corrected_snapshot IS NOT NULL),
    bounds AS (
        SELECT pg_catalog.array_agg(DISTINCT b.v ORDER BY b.v) AS v
          FROM (SELECT pg_catalog.pg_snapshot_xmin(x.s)::text::numeric AS v FROM snaps AS x
                UNION ALL SELECT pg_catalog.pg_snapshot_xmax(x.s)::text::numeric FROM snaps AS x) AS b),
    listed AS (
        SELECT DISTINCT i AS xid8 FROM snaps AS x, pg_catalog.pg_snapshot_xip(x.s) AS i),
    ids AS (
        SELECT DISTINCT b.xid AS xid8 FROM pipeline.batch_log AS b),
    -- (a join, not a subquery per id: there may be millions of receipts)
    keyed AS (
        SELECT ids.xid8,
               CASE WHEN l.xid8 IS NOT NULL THEN ids.xid8::text::numeric END AS own,
               pg_catalog.width_bucket(ids.xid8::text::numeric, COALESCE(bounds.v, '{0}')) AS bucket
          FROM ids CROSS JOIN bounds
          LEFT JOIN listed AS l ON l.xid8 = ids.xid8)
    SELECT k.xid8,
           pg_catalog.dense_rank() OVER (ORDER BY k.bucket, k.own NULLS FIRST) - 1 AS class
      FROM keyed AS k
$fn$;
COMMENT ON FUNCTION pipeline._rebase_classes() IS
    'internal: each receipt transaction id with its class (0, 1, ...): ids every recorded snapshot sees alike';

CREATE FUNCTION pipeline._rebase_after_restore(current_system bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    recorded bigint;
    nclasses bigint;
    horizon numeric;
BEGIN
    -- one re-base at a time; everything else that touches receipts waits
    LOCK TABLE pipeline.batch_log IN EXCLUSIVE MODE;
    SELECT i.system_identifier INTO recorded FROM pipeline.cluster_identity AS i FOR UPDATE;
    IF recorded IS NULL THEN
        INSERT INTO pipeline.cluster_identity (system_identifier) VALUES (current_system)
            ON CONFLICT ON CONSTRAINT cluster_identity_pkey DO NOTHING;
        RETURN 0;
    END IF;
    IF recorded = current_system THEN
        RETURN 0;
    END IF;

    INSERT INTO pipeline.rebase_ids SELECT * FROM pipeline._rebase_classes();
    INSERT INTO pipeline.rebase_classes SELECT r.class, pg_catalog.min(r.old) FROM pipeline.rebase_ids AS r GROUP BY r.class;
    SELECT pg_catalog.count(*) INTO nclasses FROM pipeline.rebase_classes;
    -- the new ids, 3 .. 3 + nclasses - 1, must all be older than every
    -- transaction running now or to come
    horizon := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::numeric;
    IF 3 + nclasses > horizon THEN
        TRUNCATE pipeline.rebase_ids, pipeline.rebase_classes;
        RETURN -(3 + nclasses - horizon + 1);
    END IF;

    UPDATE pipeline.batch_log AS b SET xid = (3 + r.class)::text::xid8
      FROM pipeline.rebase_ids AS r WHERE r.old = b.xid;
    UPDATE pipeline.metric_catalog AS m SET fold_snapshot = pipeline._rebase_snapshot(m.fold_snapshot);
    UPDATE pipeline.day_closures AS c
       SET frozen_snapshot = pipeline._rebase_snapshot(c.frozen_snapshot),
           corrected_snapshot = pipeline._rebase_snapshot(c.corrected_snapshot)
     WHERE c.frozen_snapshot IS NOT NULL OR c.corrected_snapshot IS NOT NULL;
    UPDATE pipeline.cluster_identity
       SET system_identifier = current_system, recorded_at = pg_catalog.now(), rebased_from = recorded;
    TRUNCATE pipeline.rebase_ids, pipeline.rebase_classes;
    RAISE LOG 'pipeline: receipts and snapshots re-based from cluster % to cluster % (% classes of transaction ids)',
        recorded, current_system, nclasses;
    RETURN nclasses;
END
$fn$;
COMMENT ON FUNCTION pipeline._rebase_after_restore(bigint) IS
    'internal: renumbers the receipts'' transaction ids and the recorded snapshots of a database restored into '
    'another cluster (see src/sql/67_restore.sql)';

CREATE FUNCTION pipeline._rebase_snapshot(s pg_snapshot) RETURNS pg_snapshot
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
    WITH classes AS (
        SELECT r.class, pg_catalog.pg_visible_in_snapshot(r.sample, s) AS seen
          FROM pipeline.rebase_classes AS r),
    edges AS (
        SELECT COALESCE(pg_catalog.min(c.class) FILTER (WHERE NOT c.seen), pg_catalog.max(c.class) + 1, 0) AS lo,
               COALESCE(pg_catalog.max(c.class) FILTER (WHERE c.seen) + 1, 0) AS hi
          FROM classes AS c)
    SELECT CASE WHEN s IS NULL THEN NULL ELSE
           pg_catalog.format('%s:%s:%s', 3 + LEAST(e.lo, e.hi), 3 + e.hi,
               (SELECT COALESCE(pg_catalog.string_agg((3 + c.class)::text, ',' ORDER BY c.class), '')
                  FROM classes AS c
                 WHERE NOT c.seen AND c.class >= LEAST(e.lo, e.hi) AND c.class < e.hi))::pg_snapshot END
      FROM edges AS e
$fn$;
COMMENT ON FUNCTION pipeline._rebase_snapshot(pg_snapshot) IS
    'internal: one recorded snapshot over the re-based transaction ids';

CREATE FUNCTION pipeline._check_restored() RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_check_restored';
COMMENT ON FUNCTION pipeline._check_restored() IS
    'internal: re-bases the receipts and snapshots first if this database was restored into another cluster';

REVOKE EXECUTE ON FUNCTION pipeline._rebase_after_restore(bigint) FROM PUBLIC;

-- --- what PUBLIC may not execute (src/sql/95_privileges.sql) ---------------
REVOKE EXECUTE ON FUNCTION
    pipeline._register_source_as_owner(regrole, text, text, text, text, interval, interval, text),
    pipeline._unregister_source_as_owner(regrole, text),
    pipeline._create_load_table_as_owner(regrole, text),
    pipeline._register_metric_as_owner(regrole, text, text, text[], text, interval, text, interval),
    pipeline._unregister_metric_as_owner(regrole, text),
    pipeline._store_check_as_owner(regrole, text, text, text, text, jsonb, text),
    pipeline._delete_check_as_owner(regrole, text),
    pipeline._record_check_result_as_owner(regrole, text, bigint, timestamptz, text, numeric, numeric, text),
    pipeline._record_contract_as_owner(regrole, text, integer, text, text, text, text),
    pipeline._replay_one_as_owner(regrole, bigint),
    pipeline._store_retention_as_owner(regrole, text, interval, interval, interval),
    pipeline._maintain_as_owner(regrole, timestamptz),
    pipeline._retire_day_as_source_owner(text, date),
    pipeline._compute_day(pipeline.metric_catalog, date, text, timestamptz),
    pipeline._correct_day(pipeline.metric_catalog, pipeline.day_closures),
    pipeline._index_day_values(pipeline.metric_catalog, pipeline.source_catalog, regclass)
  FROM PUBLIC;

-- --- pipeline.quantile_sketch (src/sql/75_quantile.sql) --------------------
-- The double precision quantile sketch, new in 0.2.0: the same statements
-- as at the end of src/sql/75_quantile.sql.  Its functions stay executable
-- by PUBLIC, like the lateness sketch's (src/sql/95_privileges.sql revokes
-- nothing of either).

-- Quantile sketches of double precision (src/quantile_sketch.c, on the
-- same core as the lateness sketch): the type, the aggregates that build and
-- merge them, their union, quantiles and count.  They give the live value of
-- percentile_cont(q) WITHIN GROUP (ORDER BY x) measures.

CREATE TYPE pipeline.quantile_sketch;

CREATE FUNCTION pipeline._quantile_sketch_in(cstring) RETURNS pipeline.quantile_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_sketch_in';
COMMENT ON FUNCTION pipeline._quantile_sketch_in(cstring) IS
    'internal: input function of pipeline.quantile_sketch (''\x'' hex of the binary form, checked)';

CREATE FUNCTION pipeline._quantile_sketch_out(pipeline.quantile_sketch) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_sketch_out';
COMMENT ON FUNCTION pipeline._quantile_sketch_out(pipeline.quantile_sketch) IS
    'internal: output function of pipeline.quantile_sketch (''\x'' hex of the binary form)';

CREATE FUNCTION pipeline._quantile_sketch_recv(internal) RETURNS pipeline.quantile_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_sketch_recv';
COMMENT ON FUNCTION pipeline._quantile_sketch_recv(internal) IS
    'internal: binary receive function of pipeline.quantile_sketch (the binary form, checked)';

CREATE FUNCTION pipeline._quantile_sketch_send(pipeline.quantile_sketch) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_sketch_send';
COMMENT ON FUNCTION pipeline._quantile_sketch_send(pipeline.quantile_sketch) IS
    'internal: binary send function of pipeline.quantile_sketch (the binary form)';

CREATE TYPE pipeline.quantile_sketch (
    INPUT = pipeline._quantile_sketch_in,
    OUTPUT = pipeline._quantile_sketch_out,
    RECEIVE = pipeline._quantile_sketch_recv,
    SEND = pipeline._quantile_sketch_send,
    INTERNALLENGTH = VARIABLE,
    STORAGE = extended
);
COMMENT ON TYPE pipeline.quantile_sketch IS
    'mergeable quantile sketch of double precision values: counts over logarithmic buckets 1% wide (relative), '
    'exact counts of zeros, -Infinity, +Infinity and NaN, and the exact finite minimum and maximum; quantiles '
    'within 1% of percentile_cont.  Text form: ''\x'' then the hex of the binary form, which is: version byte 1; '
    'varints (LEB128): number of values, then unless 0: the counts of -Infinity, +Infinity, NaN and zeros, the '
    'finite minimum and maximum as 8-byte big-endian float8s (when there are finite values), and for negative '
    'then positive values the bucket count, first bucket index (zigzag) and per-bucket counts.  Build with '
    'pipeline.quantile_sketch(x), merge with pipeline.quantile_merge or pipeline.quantile_union, read with '
    'pipeline.quantile_value and pipeline.quantile_count';

-- Aggregate support.  The transition functions are not strict: they create
-- the internal state on the first non-NULL input and skip NULLs.
CREATE FUNCTION pipeline._quantile_add(internal, double precision) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_add';
COMMENT ON FUNCTION pipeline._quantile_add(internal, double precision) IS
    'internal: transition function of pipeline.quantile_sketch (counts one value in its bucket)';

CREATE FUNCTION pipeline._quantile_merge_add(internal, pipeline.quantile_sketch) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_merge_add';
COMMENT ON FUNCTION pipeline._quantile_merge_add(internal, pipeline.quantile_sketch) IS
    'internal: transition function of pipeline.quantile_merge (adds one sketch''s counts)';

CREATE FUNCTION pipeline._quantile_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_combine';
COMMENT ON FUNCTION pipeline._quantile_combine(internal, internal) IS
    'internal: combine function of the quantile sketch aggregates (sum of two partial states)';

CREATE FUNCTION pipeline._quantile_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_serialize';
COMMENT ON FUNCTION pipeline._quantile_serialize(internal) IS
    'internal: serial function of the quantile sketch aggregates (the state as the binary form)';

CREATE FUNCTION pipeline._quantile_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_deserialize';
COMMENT ON FUNCTION pipeline._quantile_deserialize(bytea, internal) IS
    'internal: deserial function of the quantile sketch aggregates';

CREATE FUNCTION pipeline._quantile_final(internal) RETURNS pipeline.quantile_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_final';
COMMENT ON FUNCTION pipeline._quantile_final(internal) IS
    'internal: final function of the quantile sketch aggregates';

CREATE AGGREGATE pipeline.quantile_sketch(double precision) (
    SFUNC = pipeline._quantile_add,
    STYPE = internal,
    FINALFUNC = pipeline._quantile_final,
    COMBINEFUNC = pipeline._quantile_combine,
    SERIALFUNC = pipeline._quantile_serialize,
    DESERIALFUNC = pipeline._quantile_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.quantile_sketch(double precision) IS
    'quantile sketch of the non-NULL values (NULL when there are none); -0 counts as 0, and -Infinity, '
    '+Infinity and NaN are counted exactly';

CREATE AGGREGATE pipeline.quantile_merge(pipeline.quantile_sketch) (
    SFUNC = pipeline._quantile_merge_add,
    STYPE = internal,
    FINALFUNC = pipeline._quantile_final,
    COMBINEFUNC = pipeline._quantile_combine,
    SERIALFUNC = pipeline._quantile_serialize,
    DESERIALFUNC = pipeline._quantile_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.quantile_merge(pipeline.quantile_sketch) IS
    'merge of sketches (NULLs skipped; NULL when there are none): equal, byte for byte, to the sketch of all '
    'their values, in any order';

-- Not strict: an upsert folds with x = pipeline.quantile_union(h.x,
-- excluded.x), where the stored side may be NULL.
CREATE FUNCTION pipeline.quantile_union(a pipeline.quantile_sketch, b pipeline.quantile_sketch)
    RETURNS pipeline.quantile_sketch
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_union';
COMMENT ON FUNCTION pipeline.quantile_union(pipeline.quantile_sketch, pipeline.quantile_sketch) IS
    'the merge of two sketches, byte for byte the sketch of both''s values; a NULL side is no values (the '
    'other is returned; NULL if both are NULL)';

CREATE FUNCTION pipeline.quantile_value(sketch pipeline.quantile_sketch, q double precision)
    RETURNS double precision
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_value';
COMMENT ON FUNCTION pipeline.quantile_value(pipeline.quantile_sketch, double precision) IS
    'the q-quantile (0 <= q <= 1) of a sketch''s values, interpolated like percentile_cont: within 1% of '
    'percentile_cont''s answer where the two values around it have one sign, else within 1% of the larger '
    'magnitude; q = 0 and q = 1, infinities and NaN are exact; NULL for an empty sketch';

CREATE FUNCTION pipeline.quantile_count(sketch pipeline.quantile_sketch) RETURNS bigint
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_quantile_count';
COMMENT ON FUNCTION pipeline.quantile_count(pipeline.quantile_sketch) IS
    'the number of values in a sketch (infinities and NaN included)';

-- =====================================================================
-- Measure kinds (src/sql/38_measure_kinds.sql), FILTER and percentile measures; the rate checks' skeleton
-- =====================================================================

CREATE TABLE pipeline.measure_kinds (
    kind                    text PRIMARY KEY,
    written_as              text NOT NULL,
    live_is_approximate     boolean NOT NULL,
    corrected_by            text NOT NULL CHECK (corrected_by IN ('delta', 'extreme', 'new_values', 'raw')),
    hot_columns             text NOT NULL,
    hot_names               text NOT NULL,
    fold                    text NOT NULL,
    merge                   text NOT NULL,
    live                    text NOT NULL,
    live_names              text NOT NULL,
    rollup                  text NOT NULL,
    difference              text NOT NULL,
    daily_columns           text NOT NULL,
    daily_exact             text NOT NULL,
    daily_names             text NOT NULL,
    correction              text,
    correction_value        text NOT NULL,
    corrections_view        text NOT NULL,
    corrections_view_names  text NOT NULL,
    restated                text NOT NULL,
    explain_corrections     text NOT NULL,
    explain_values          text NOT NULL,
    explain_restated        text NOT NULL
);
COMMENT ON TABLE pipeline.measure_kinds IS
    'the measure kinds metrics accept, and the SQL pipeline generates for each (format() templates)';
GRANT SELECT ON pipeline.measure_kinds TO PUBLIC;

-- (one statement per kind, its parts by name)
CREATE FUNCTION pipeline._add_measure_kind(parts jsonb) RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
    INSERT INTO pipeline.measure_kinds SELECT * FROM pg_catalog.jsonb_populate_record(NULL::pipeline.measure_kinds, parts);
    END;
REVOKE EXECUTE ON FUNCTION pipeline._add_measure_kind(jsonb) FROM PUBLIC;
COMMENT ON FUNCTION pipeline._add_measure_kind(jsonb) IS 'internal: adds a row of pipeline.measure_kinds (install and upgrade scripts)';

-- the additive counts share their layers but for how they are computed
SELECT pipeline._add_measure_kind(pg_catalog.jsonb_build_object(
    'kind', k.kind, 'written_as', k.written_as, 'live_is_approximate', false, 'corrected_by', 'delta',
    'hot_columns',            '%1$I bigint NOT NULL',
    'hot_names',              '%1$I',
    'fold',                   k.agg || '%3$s',
    'merge',                  '%1$I = h.%1$I + excluded.%1$I',
    'live',                   'h.%1$I',
    'live_names',             '%1$I',
    'rollup',                 'pg_catalog.sum(h.%1$I)::bigint AS %1$I',
    'difference',             'r.%1$I - l.%1$I',
    'daily_columns',          '%1$I bigint NOT NULL',
    'daily_exact',            k.agg || '%3$s AS %1$I',
    'daily_names',            '%7$s%1$I',
    'correction',             k.agg || '%3$s AS %1$I',
    'correction_value',       'new.%1$I',
    'corrections_view',       'c.%1$I AS %13$I',
    'corrections_view_names', '%13$I',
    'restated',               'pg_catalog.sum(u.%1$I)::bigint AS %1$I',
    'explain_corrections',    'pg_catalog.sum(c.%1$I) AS %1$I',
    'explain_values',         '''daily'', d.%1$I, ''corrections'', k.%1$I, ''restated'', x.%1$I',
    'explain_restated',       'CASE WHEN k.%1$I IS NULL THEN d.%1$I WHEN d.%1$I IS NULL THEN k.%1$I ELSE d.%1$I + k.%1$I END'))
  FROM (VALUES ('count_star', 'count(*)', 'pg_catalog.count(*)'),
               ('count', 'count(x)', 'pg_catalog.count(%2$s)')) AS k(kind, written_as, agg);

-- a distinct count: a mergeable sketch in the hot layer (an estimate), exact
-- from raw in the daily layer; a correction counts the values that are new
-- to the day and group
SELECT pipeline._add_measure_kind('{
    "kind": "count_distinct", "written_as": "count(DISTINCT x)", "live_is_approximate": true, "corrected_by": "new_values",
    "hot_columns":            "%1$I pipeline.distinct_sketch",
    "hot_names":              "%1$I",
    "fold":                   "pipeline.distinct_sketch(%2$s)%3$s",
    "merge":                  "%1$I = pipeline._distinct_absorb(h.%1$I, excluded.%1$I)",
    "live":                   "pipeline.distinct_count(h.%1$I) AS %1$I, h.%1$I AS %12$I",
    "live_names":             "%1$I, %12$I",
    "rollup":                 "pipeline.distinct_count(pipeline.distinct_merge(h.%1$I)) AS %1$I",
    "difference":             "r.%1$I - l.%1$I",
    "daily_columns":          "%1$I bigint NOT NULL",
    "daily_exact":            "pg_catalog.count(DISTINCT %2$s)%3$s AS %1$I",
    "daily_names":            "%7$s%1$I",
    "correction":             null,
    "correction_value":       "COALESCE((SELECT x._pl_n FROM _pl_fresh_%14$s AS x WHERE true%15$s), 0)",
    "corrections_view":       "c.%1$I AS %13$I",
    "corrections_view_names": "%13$I",
    "restated":               "pg_catalog.sum(u.%1$I)::bigint AS %1$I",
    "explain_corrections":    "pg_catalog.sum(c.%1$I) AS %1$I",
    "explain_values":         "''daily'', d.%1$I, ''corrections'', k.%1$I, ''restated'', x.%1$I",
    "explain_restated":       "CASE WHEN k.%1$I IS NULL THEN d.%1$I WHEN d.%1$I IS NULL THEN k.%1$I ELSE d.%1$I + k.%1$I END"}');

SELECT pipeline._add_measure_kind('{
    "kind": "sum", "written_as": "sum(x)", "live_is_approximate": false, "corrected_by": "delta",
    "hot_columns":            "%1$I %4$s",
    "hot_names":              "%1$I",
    "fold":                   "pg_catalog.sum(%2$s)%3$s",
    "merge":                  "%1$I = COALESCE(h.%1$I + excluded.%1$I, h.%1$I, excluded.%1$I)",
    "live":                   "h.%1$I",
    "live_names":             "%1$I",
    "rollup":                 "pg_catalog.sum(h.%1$I) AS %1$I",
    "difference":             "r.%1$I - l.%1$I",
    "daily_columns":          "%1$I %4$s",
    "daily_exact":            "pg_catalog.sum(%2$s)%3$s AS %1$I",
    "daily_names":            "%7$s%1$I",
    "correction":             "pg_catalog.sum(%2$s)%3$s AS %1$I",
    "correction_value":       "new.%1$I",
    "corrections_view":       "c.%1$I AS %13$I",
    "corrections_view_names": "%13$I",
    "restated":               "pg_catalog.sum(u.%1$I) AS %1$I",
    "explain_corrections":    "pg_catalog.sum(c.%1$I) AS %1$I",
    "explain_values":         "''daily'', d.%1$I, ''corrections'', k.%1$I, ''restated'', x.%1$I",
    "explain_restated":       "CASE WHEN k.%1$I IS NULL THEN d.%1$I WHEN d.%1$I IS NULL THEN k.%1$I ELSE d.%1$I + k.%1$I END"}');

-- the extremes mirror each other: the operator, the function, the combiner
SELECT pipeline._add_measure_kind(pg_catalog.jsonb_build_object(
    'kind', k.kind, 'written_as', k.kind || '(x)', 'live_is_approximate', false, 'corrected_by', 'extreme',
    'hot_columns',            '%1$I %4$s',
    'hot_names',              '%1$I',
    'fold',                   'pg_catalog.' || k.kind || '(%2$s)%3$s',
    'merge',                  '%1$I = ' || k.combine || '(h.%1$I, excluded.%1$I)',
    'live',                   'h.%1$I',
    'live_names',             '%1$I',
    'rollup',                 'pg_catalog.' || k.kind || '(h.%1$I) AS %1$I',
    'difference',             'CASE WHEN r.%1$I IS DISTINCT FROM l.%1$I THEN r.%1$I END',
    'daily_columns',          '%1$I %4$s',
    'daily_exact',            'pg_catalog.' || k.kind || '(%2$s)%3$s AS %1$I',
    'daily_names',            '%7$s%1$I',
    'correction',             'pg_catalog.' || k.kind || '(%2$s)%3$s AS %1$I',
    'correction_value',       '(SELECT CASE WHEN p.%1$I IS NULL OR new.%1$I ' || k.beats || ' p.%1$I THEN new.%1$I END '
                              '   FROM (SELECT (SELECT x.%1$I FROM metrics.%16$I AS x WHERE x.day = $1%15$s) AS %1$I) AS p)',
    'corrections_view',       'c.%1$I AS %1$I',
    'corrections_view_names', '%1$I',
    'restated',               'pg_catalog.' || k.kind || '(u.%1$I) AS %1$I',
    'explain_corrections',    'pg_catalog.' || k.kind || '(c.%1$I) AS %1$I',
    'explain_values',         '''daily'', d.%1$I, ''corrections'', k.%1$I, ''restated'', x.%1$I',
    'explain_restated',       k.combine || '(d.%1$I, k.%1$I)'))
  FROM (VALUES ('min', '<', 'LEAST'), ('max', '>', 'GREATEST')) AS k(kind, beats, combine);

-- an average keeps its sum (in %5$s: numeric for exact types) and count in
-- every layer, so that it rolls up and corrects exactly
SELECT pipeline._add_measure_kind('{
    "kind": "avg", "written_as": "avg(x)", "live_is_approximate": false, "corrected_by": "delta",
    "hot_columns":            "%10$I %5$s, %11$I bigint NOT NULL",
    "hot_names":              "%10$I, %11$I",
    "fold":                   "pg_catalog.sum(%2$s)%3$s, pg_catalog.count(%2$s)%3$s",
    "merge":                  "%10$I = COALESCE(h.%10$I + excluded.%10$I, h.%10$I, excluded.%10$I), %11$I = h.%11$I + excluded.%11$I",
    "live":                   "CASE WHEN h.%11$I > 0 THEN (h.%10$I / h.%11$I::%4$s)::%4$s END AS %1$I",
    "live_names":             "%1$I",
    "rollup":                 "(pg_catalog.sum(h.%10$I) / NULLIF(pg_catalog.sum(h.%11$I), 0)::%4$s)::%4$s AS %1$I",
    "difference":             "r.%1$I - l.%1$I",
    "daily_columns":          "%1$I %4$s, %8$I %5$s, %9$I bigint NOT NULL",
    "daily_exact":            "pg_catalog.avg(%2$s)%3$s AS %1$I, pg_catalog.sum(%2$s)%3$s AS %8$I, pg_catalog.count(%2$s)%3$s AS %9$I",
    "daily_names":            "%7$s%1$I, %7$s%8$I, %7$s%9$I",
    "correction":             "pg_catalog.sum(%2$s)%3$s AS %8$I, pg_catalog.count(%2$s)%3$s AS %9$I",
    "correction_value":       "NULL::%4$s, new.%8$I, new.%9$I",
    "corrections_view":       "c.%8$I AS %18$I, c.%9$I AS %19$I",
    "corrections_view_names": "%18$I, %19$I",
    "restated":               "(pg_catalog.sum(u.%8$I) / NULLIF(pg_catalog.sum(u.%9$I), 0)::%4$s)::%4$s AS %1$I",
    "explain_corrections":    "pg_catalog.sum(c.%8$I) AS %8$I, pg_catalog.sum(c.%9$I) AS %9$I",
    "explain_values":         "''daily'', d.%1$I, ''daily_sum'', d.%8$I, ''daily_count'', d.%9$I, ''corrections_sum'', k.%8$I, ''corrections_count'', k.%9$I, ''restated'', x.%1$I",
    "explain_restated":       "((CASE WHEN k.%8$I IS NULL THEN d.%8$I WHEN d.%8$I IS NULL THEN k.%8$I ELSE d.%8$I + k.%8$I END) / NULLIF(COALESCE(d.%9$I, 0) + COALESCE(k.%9$I, 0), 0)::%4$s)::%4$s"}');

-- a percentile: a quantile sketch in the hot layer (within 1% of the exact
-- value, see README), percentile_cont over raw in the daily layer.  It has
-- no delta that adds up: a correction row holds the group's exact value
-- over every raw event at the correction (in %1$I) and the value it
-- replaces (in %17$I), with the snapshot it was computed at (the xmax of
-- the correction's snapshot, in %20$I; both NULL in daily rows: corrections
-- of a day take turns, so a later one has a later snapshot), and restated
-- is the latest row's value
SELECT pipeline._add_measure_kind('{
    "kind": "percentile", "written_as": "percentile_cont(p) WITHIN GROUP (ORDER BY x)", "live_is_approximate": true, "corrected_by": "raw",
    "hot_columns":            "%1$I pipeline.quantile_sketch",
    "hot_names":              "%1$I",
    "fold":                   "pipeline.quantile_sketch((%2$s)::double precision)%3$s",
    "merge":                  "%1$I = pipeline.quantile_union(h.%1$I, excluded.%1$I)",
    "live":                   "pipeline.quantile_value(h.%1$I, %6$s) AS %1$I, h.%1$I AS %12$I",
    "live_names":             "%1$I, %12$I",
    "rollup":                 "pipeline.quantile_value(pipeline.quantile_merge(h.%1$I), %6$s) AS %1$I",
    "difference":             "r.%1$I - l.%1$I",
    "daily_columns":          "%1$I double precision, %17$I double precision, %20$I xid8",
    "daily_exact":            "pg_catalog.percentile_cont(%6$s) WITHIN GROUP (ORDER BY %2$s)%3$s AS %1$I, NULL::double precision AS %17$I, NULL::xid8 AS %20$I",
    "daily_names":            "%7$s%1$I, %7$s%17$I, %7$s%20$I",
    "correction":             null,
    "correction_value":       "(SELECT x.%1$I FROM _pl_exact AS x WHERE true%15$s), (SELECT x.%1$I FROM metrics.%16$I AS x WHERE x.day = $1%15$s), pg_catalog.pg_snapshot_xmax($5)",
    "corrections_view":       "c.%1$I AS %1$I, c.%1$I - c.%17$I AS %13$I",
    "corrections_view_names": "%1$I, %13$I",
    "restated":               "(pg_catalog.array_agg(u.%1$I ORDER BY u.%20$I DESC NULLS LAST))[1] AS %1$I",
    "explain_corrections":    "(pg_catalog.array_agg(c.%1$I ORDER BY c.correction_id DESC))[1] AS %1$I",
    "explain_values":         "''daily'', d.%1$I, ''corrected_to'', k.%1$I, ''restated'', x.%1$I",
    "explain_restated":       "CASE WHEN k._pl_events IS NULL THEN d.%1$I ELSE k.%1$I END"}');

-- One measure's piece of generated SQL: the kind's template for part,
-- rendered with the measure's arguments (NULL if the kind adds nothing).
-- The kind must exist: _compile_metric only writes kinds of this table.
CREATE FUNCTION pipeline._measure_part(m jsonb, o bigint, part text, prefix text DEFAULT '',
                                       match text DEFAULT '', restated_view text DEFAULT NULL)
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.format(pg_catalog.to_jsonb(k) ->> part,
               m ->> 'name', m ->> 'expr',
               CASE WHEN m ->> 'filter' IS NULL THEN '' ELSE pg_catalog.format(' FILTER (WHERE %s)', m ->> 'filter') END,
               m ->> 'type', m ->> 'sum_type', m ->> 'p', prefix,
               '_' || (m ->> 'name') || '_sum', '_' || (m ->> 'name') || '_count',
               (m ->> 'name') || '_sum', (m ->> 'name') || '_count',
               (m ->> 'name') || '_sketch', (m ->> 'name') || '_delta', o, match, restated_view,
               '_' || (m ->> 'name') || '_before', (m ->> 'name') || '_sum_delta', (m ->> 'name') || '_count_delta',
               '_' || (m ->> 'name') || '_as_of')
      FROM pipeline.measure_kinds AS k WHERE k.kind = m ->> 'agg');
COMMENT ON FUNCTION pipeline._measure_part(jsonb, bigint, text, text, text, text) IS
    'internal: one measure''s piece of generated SQL, from its kind''s template (pipeline.measure_kinds)';

-- The pieces of every measure of a metric definition, in order, joined.
CREATE FUNCTION pipeline._measure_sql(def jsonb, part text, prefix text DEFAULT '',
                                      match text DEFAULT '', restated_view text DEFAULT NULL)
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.string_agg(pipeline._measure_part(m, o, part, prefix, match, restated_view), ', ' ORDER BY o)
      FROM pg_catalog.jsonb_array_elements(def -> 'measures') WITH ORDINALITY AS e(m, o));
COMMENT ON FUNCTION pipeline._measure_sql(jsonb, text, text, text, text) IS
    'internal: a part of generated SQL for every measure of a metric, comma-separated (pipeline.measure_kinds)';

-- The column names a part lists (a part of names: hot_names, live_names,
-- daily_names, corrections_view_names).
CREATE FUNCTION pipeline._measure_names(def jsonb, part text) RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT COALESCE(pg_catalog.array_agg((pg_catalog.parse_ident(n))[1]), '{}')
      FROM pg_catalog.unnest(pg_catalog.string_to_array(pipeline._measure_sql(def, part), ', ')) AS n);
COMMENT ON FUNCTION pipeline._measure_names(jsonb, text) IS 'internal: the column names a part of the measures lists';

-- The measures of a definition whose kind is corrected a given way.
CREATE FUNCTION pipeline._measures_corrected_by(def jsonb, how text) RETURNS SETOF jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
    SELECT m FROM pg_catalog.jsonb_array_elements(def -> 'measures') AS e(m)
      JOIN pipeline.measure_kinds AS k ON k.kind = m ->> 'agg'
     WHERE k.corrected_by = how;
    END;
COMMENT ON FUNCTION pipeline._measures_corrected_by(jsonb, text) IS
    'internal: the measures of a metric definition whose kind is corrected the given way';

-- The name of a measure that counts every event of a metric (an unfiltered
-- count(*)), if it has one: what completeness checks and explain compare
-- with raw.
CREATE FUNCTION pipeline._events_measure(def jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT m ->> 'name' FROM pg_catalog.jsonb_array_elements(def -> 'measures') WITH ORDINALITY AS e(m, o)
     WHERE m ->> 'agg' = 'count_star' AND m ->> 'filter' IS NULL ORDER BY o LIMIT 1);
COMMENT ON FUNCTION pipeline._events_measure(jsonb) IS
    'internal: the name of a metric''s unfiltered count(*) measure, if any';

DROP FUNCTION pipeline._correction_select(jsonb,pipeline.source_catalog,text);
DROP FUNCTION pipeline._correction_values(jsonb,text);
DROP FUNCTION pipeline._daily_columns(jsonb);
DROP FUNCTION pipeline._daily_names(jsonb,text);
DROP FUNCTION pipeline._daily_select(jsonb);
DROP FUNCTION pipeline._explain_corr_select(jsonb);
DROP FUNCTION pipeline._fold_merge(jsonb);
DROP FUNCTION pipeline._fold_select(jsonb);
DROP FUNCTION pipeline._hot_columns(jsonb);
DROP FUNCTION pipeline._live_select(jsonb);
DROP FUNCTION pipeline._metric_definition(regclass,text[],text,text);
DROP FUNCTION pipeline._restated_select(jsonb);


-- Every column name the metric's tables and views will have, per relation:
-- a dimension or measure name must not collide with one pipeline adds.
CREATE OR REPLACE FUNCTION pipeline._check_generated_names(def jsonb)
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


-- Creates the daily layer of a metric: tables owned by the extension owner
-- (so no other role can touch a frozen row), their guards and the views.
-- Run by _register_metric_as_owner, as the extension owner, for the metric
-- it has just registered; not executable by anyone else.
CREATE OR REPLACE FUNCTION pipeline._create_daily(metric text)
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
CREATE OR REPLACE FUNCTION pipeline._create_reconcile_view(metric text)
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


-- Recomputes one day exactly from raw (provisional or frozen).  The
-- aggregate and the snapshot it is recorded with come from one statement,
-- hence one snapshot: the frozen numbers include exactly the batches that
-- snapshot sees.
CREATE OR REPLACE FUNCTION pipeline._compute_day(m pipeline.metric_catalog, d date, status text, as_of timestamptz,
                                      OUT snap pg_snapshot, OUT events bigint)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    def jsonb := m.definition;
    lo timestamptz;
    hi timestamptz;
BEGIN
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS c WHERE c.source = m.source;
    lo := d::timestamp AT TIME ZONE s.day_timezone;
    hi := (d + 1)::timestamp AT TIME ZONE s.day_timezone;
    EXECUTE pg_catalog.format('DELETE FROM pipeline.%I WHERE day = $1', m.metric || '_daily') USING d;
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
               pipeline._seen_by_cur('r'), pipeline._dims_match(def, 'n', 'r'), pipeline._dims_group(def, 'r.'))
      FROM pipeline._measures_corrected_by(def, 'raw') AS x
    HAVING pg_catalog.count(*) > 0);

COMMENT ON FUNCTION pipeline._correction_exact(jsonb, pipeline.source_catalog) IS
    'internal: the CTE of _correct_day that computes, per group with late events, the exact value of the measures corrected from raw';


-- per measure, a JSON object: the daily value (d), the corrections (k), the
-- restated value (x) and whether daily and corrections give the restated
-- value (each kind says how, pipeline.measure_kinds)
CREATE OR REPLACE FUNCTION pipeline._explain_measures(def jsonb) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT 'pg_catalog.jsonb_build_object(' || COALESCE(pg_catalog.string_agg(pg_catalog.format(
               '%L, pg_catalog.jsonb_build_object(%s, ''adds_up'', %s)', e ->> 'name',
               pipeline._measure_part(e, o, 'explain_values'),
               pipeline._explain_same(e ->> 'type', pipeline._measure_part(e, o, 'explain_restated'),
                                      pg_catalog.format('x.%I', e ->> 'name'))), ', ' ORDER BY o), '') || ')'
      FROM pg_catalog.jsonb_array_elements(def -> 'measures') WITH ORDINALITY AS x(e, o));


CREATE OR REPLACE FUNCTION pipeline.explain(metric text, day date, dimensions jsonb DEFAULT '{}')
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m pipeline.metric_catalog;
    s pipeline.source_catalog;
    def jsonb;
    c pipeline.day_closures;
    dims jsonb := COALESCE(dimensions, '{}');
    dim record;
    key text;
    rel text;
    lo timestamptz;
    hi timestamptz;
    filter text;
    cnt text;
    status text;
    groups jsonb;
    batches jsonb;
    duplicates jsonb;
    dead jsonb;
    notes text[] := '{}';
    adds_up boolean;
    has_batches boolean := pg_catalog.has_table_privilege('pipeline.batches', 'SELECT');
    order_by text := '';
BEGIN
    SELECT * INTO m FROM pipeline.metric_catalog AS x WHERE x.metric = explain.metric;
    IF NOT FOUND THEN
        -- listed in pipeline.metrics, but its row is not the caller's to read
        SELECT pg_catalog.format('permission denied to explain metric "%s": explain reads %s', x.metric, y.raw_table),
               x.owner::text
          INTO rel, key
          FROM pipeline.metrics AS x JOIN pipeline.sources AS y ON y.source = x.source
         WHERE x.metric = explain.metric;
        IF rel IS NOT NULL THEN
            RAISE EXCEPTION '%', rel
                USING ERRCODE = 'insufficient_privilege',
                      HINT = pg_catalog.format('explain reads the metric''s raw events and daily tables as its caller: members of its owner, %s, may call it.', key);
        END IF;
        RAISE EXCEPTION 'metric "%" does not exist', metric
            USING ERRCODE = 'undefined_object', HINT = 'List metrics in pipeline.metrics.';
    END IF;
    IF day IS NULL THEN
        RAISE EXCEPTION 'explain needs a day' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS x WHERE x.source = m.source;
    def := m.definition;
    IF pg_catalog.jsonb_typeof(dims) <> 'object' THEN
        RAISE EXCEPTION 'dimensions must be a JSON object, e.g. {"platform": "ios"}, not %', dims
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR key IN SELECT k FROM pg_catalog.jsonb_object_keys(dims) AS k ORDER BY 1 LOOP
        SELECT d ->> 'name' AS name, d ->> 'type' AS type INTO dim
          FROM pg_catalog.jsonb_array_elements(def -> 'dimensions') AS d WHERE d ->> 'name' = key;
        IF dim.name IS NULL THEN
            RAISE EXCEPTION 'metric "%" has no dimension "%"', metric, key
                USING ERRCODE = 'undefined_column',
                      HINT = CASE WHEN pg_catalog.jsonb_array_length(def -> 'dimensions') = 0
                                  THEN 'It has no dimensions: pass ''{}''.'
                                  ELSE pg_catalog.format('Its dimensions are: %s.', (
                                      SELECT pg_catalog.string_agg(d ->> 'name', ', ')
                                        FROM pg_catalog.jsonb_array_elements(def -> 'dimensions') AS d)) END;
        END IF;
        IF pg_catalog.jsonb_typeof(dims -> key) NOT IN ('string', 'number', 'boolean', 'null') THEN
            RAISE EXCEPTION 'dimension "%" must be given a single value, not %', key, dims -> key
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        BEGIN
            EXECUTE pg_catalog.format('SELECT ($1 ->> %L)::%s', key, dim.type) USING dims;
        EXCEPTION WHEN data_exception THEN
            RAISE EXCEPTION 'dimension "%" is a %: % is not one', key, dim.type, dims -> key
                USING ERRCODE = 'invalid_parameter_value', DETAIL = SQLERRM;
        END;
    END LOOP;
    FOREACH rel IN ARRAY ARRAY[s.raw_table::text, pg_catalog.format('pipeline.%I', m.metric || '_daily'),
                               pg_catalog.format('pipeline.%I', m.metric || '_corrections'),
                               pg_catalog.format('metrics.%I', m.metric || '_restated')] LOOP
        IF NOT pg_catalog.has_table_privilege(rel, 'SELECT') THEN
            RAISE EXCEPTION 'permission denied to explain metric "%": explain reads %', metric, rel
                USING ERRCODE = 'insufficient_privilege',
                      HINT = pg_catalog.format('explain reads the metric''s raw events and daily tables as its caller: members of its owner, %s, may call it.', m.owner);
        END IF;
    END LOOP;

    lo := day::timestamp AT TIME ZONE s.day_timezone;
    hi := (day + 1)::timestamp AT TIME ZONE s.day_timezone;
    filter := COALESCE(def ->> 'filter', 'true');
    cnt := pipeline._events_measure(def);
    SELECT * INTO c FROM pipeline.day_closures AS x WHERE x.metric = m.metric AND x.day = explain.day;
    status := COALESCE(c.status, 'open');
    IF pg_catalog.jsonb_array_length(def -> 'dimensions') > 0 THEN
        order_by := ' ORDER BY ' || pipeline._dims_group(def, 'g.');
    END IF;

    -- per dimension group: daily, corrections, restated; and raw, split by
    -- what the freeze saw, what corrections took, what awaits correction
    EXECUTE pg_catalog.format($q$
        WITH raw_batches AS (
            SELECT r._pl_batch AS _pl_batch%1$s, pg_catalog.count(*) AS _pl_n
              FROM %2$s AS r
             WHERE r.%3$I >= $2 AND r.%3$I < $3 AND (%4$s)%5$s
             GROUP BY r._pl_batch%27$s),
        raw_groups AS (
            SELECT true AS _pl_g%6$s, pg_catalog.sum(w._pl_n)::bigint AS _pl_raw_now,
                   (pg_catalog.sum(w._pl_n) FILTER (WHERE pg_catalog.pg_visible_in_snapshot(b.xid, $4)))::bigint AS _pl_at_freeze,
                   (pg_catalog.sum(w._pl_n) FILTER (WHERE pg_catalog.pg_visible_in_snapshot(b.xid, $5)
                                                   AND NOT pg_catalog.pg_visible_in_snapshot(b.xid, $4)))::bigint AS _pl_corrected,
                   (pg_catalog.sum(w._pl_n) FILTER (WHERE b.xid IS NULL OR NOT pg_catalog.pg_visible_in_snapshot(b.xid, $5)))::bigint AS _pl_awaiting
              FROM raw_batches AS w LEFT JOIN pipeline.batch_log AS b ON b.batch_id = w._pl_batch
             GROUP BY %7$s),
        corr AS (
            SELECT true AS _pl_g%8$s, %9$s, pg_catalog.sum(c.late_events)::bigint AS _pl_events,
                   pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c) - 'day' ORDER BY c.correction_id) AS _pl_list
              FROM pipeline.%10$I AS c WHERE c.day = $6%11$s
             GROUP BY %12$s),
        keys AS (
            SELECT true AS _pl_g%13$s FROM pipeline.%14$I AS d WHERE d.day = $6%15$s
            UNION SELECT w._pl_g%6$s FROM raw_groups AS w WHERE w._pl_raw_now IS NOT NULL
            UNION SELECT k._pl_g%16$s FROM corr AS k WHERE k._pl_events IS NOT NULL)
        SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'dimensions', pg_catalog.jsonb_build_object(%17$s),
                   'measures', %18$s,
                   'events', pg_catalog.jsonb_build_object(
                       'raw_now', COALESCE(w._pl_raw_now, 0),
                       'in_daily', %19$s,
                       'at_freeze', CASE WHEN $7 = 'frozen' THEN COALESCE(w._pl_at_freeze, 0) END,
                       'in_corrections', CASE WHEN $7 = 'frozen' THEN COALESCE(k._pl_events, 0) END,
                       'corrected_batches', CASE WHEN $7 = 'frozen' THEN COALESCE(w._pl_corrected, 0) END,
                       'awaiting_correction', CASE WHEN $7 = 'frozen' THEN COALESCE(w._pl_awaiting, 0) END,
                       'adds_up', CASE WHEN $7 = 'frozen'
                                       THEN COALESCE(k._pl_events, 0) = COALESCE(w._pl_corrected, 0)%20$s END),
                   'corrections', COALESCE(k._pl_list, '[]'))%21$s), '[]')
          FROM keys AS g
          LEFT JOIN pipeline.%14$I AS d ON d.day = $6%22$s
          LEFT JOIN metrics.%23$I AS x ON x.day = $6%24$s
          LEFT JOIN corr AS k ON true%25$s
          LEFT JOIN raw_groups AS w ON true%26$s
        $q$,
        pipeline._dims_aliased(def, 'r.'), s.raw_table, s.event_time, filter, pipeline._dims_given(def, dims, 'r'),
        pipeline._dims(def, 'w.'), pipeline._dims_group(def, 'w.'),
        pipeline._dims(def, 'c.'), pipeline._measure_sql(def, 'explain_corrections'), m.metric || '_corrections',
        pipeline._dims_given(def, dims, 'c'), pipeline._dims_group(def, 'c.'),
        pipeline._dims(def, 'd.'), m.metric || '_daily', pipeline._dims_given(def, dims, 'd'),
        pipeline._dims(def, 'k.'),
        (SELECT COALESCE(pg_catalog.string_agg(pg_catalog.format('%L, g.%I', e ->> 'name', e ->> 'name'), ', ' ORDER BY o), '')
           FROM pg_catalog.jsonb_array_elements(def -> 'dimensions') WITH ORDINALITY AS x(e, o)),
        pipeline._explain_measures(def),
        CASE WHEN cnt IS NULL THEN 'NULL::bigint' ELSE pg_catalog.format('d.%I', cnt) END,
        CASE WHEN cnt IS NULL THEN '' ELSE pg_catalog.format(' AND COALESCE(d.%I, 0) = COALESCE(w._pl_at_freeze, 0)', cnt) END,
        order_by,
        pipeline._dims_match(def, 'd', 'g'), m.metric || '_restated', pipeline._dims_match(def, 'x', 'g'),
        pipeline._dims_match(def, 'k', 'g'), pipeline._dims_match(def, 'w', 'g'),
        pipeline._dims(def, 'r.'))
      INTO groups
      USING dims, lo, hi, c.frozen_snapshot, c.corrected_snapshot, day, status;

    SELECT pg_catalog.bool_and(COALESCE((g -> 'events' ->> 'adds_up')::boolean, true)
                               AND NOT EXISTS (SELECT FROM pg_catalog.jsonb_each(g -> 'measures') AS e
                                                WHERE (e.value ->> 'adds_up')::boolean IS NOT TRUE))
      INTO adds_up
      FROM pg_catalog.jsonb_array_elements(groups) AS g;

    -- the batches behind the group's events, and the contract versions they were checked against
    EXECUTE pg_catalog.format($q$
        WITH per_batch AS (
            SELECT r._pl_batch AS batch_id, pg_catalog.count(*) AS events
              FROM %1$s AS r
             WHERE r.%2$I >= $2 AND r.%2$I < $3 AND (%3$s)%4$s
             GROUP BY 1),
        b AS (
            SELECT p.batch_id, p.events, l.received_at, %5$s AS contract_version,
                   CASE WHEN l.batch_id IS NULL THEN 'no receipt'
                        WHEN $6 <> 'frozen' THEN $6
                        WHEN pg_catalog.pg_visible_in_snapshot(l.xid, $4) THEN 'at freeze'
                        WHEN pg_catalog.pg_visible_in_snapshot(l.xid, $5) THEN 'correction'
                        ELSE 'awaiting correction' END AS included
              FROM per_batch AS p
              LEFT JOIN pipeline.batch_log AS l ON l.batch_id = p.batch_id
              %6$s)
        SELECT pg_catalog.jsonb_build_object(
                 'count', (SELECT pg_catalog.count(*) FROM b),
                 'events_by_inclusion', (SELECT COALESCE(pg_catalog.jsonb_object_agg(i.included, i.events), '{}')
                                           FROM (SELECT b.included, pg_catalog.sum(b.events) AS events FROM b GROUP BY 1) AS i),
                 'events_by_contract_version', %7$s,
                 'list', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(t) ORDER BY t.batch_id), '[]')
                            FROM (SELECT * FROM b ORDER BY b.batch_id LIMIT 100) AS t),
                 'list_truncated', (SELECT pg_catalog.count(*) > 100 FROM b))
        $q$,
        s.raw_table, s.event_time, filter, pipeline._dims_given(def, dims, 'r'),
        CASE WHEN has_batches THEN 'v.contract_version' ELSE 'NULL::integer' END,
        CASE WHEN has_batches THEN 'LEFT JOIN pipeline.batches AS v ON v.batch_id = p.batch_id' ELSE '' END,
        CASE WHEN has_batches
             THEN '(SELECT COALESCE(pg_catalog.jsonb_object_agg(COALESCE(v.contract_version::text, ''unknown''), v.events), ''{}'') '
                  '   FROM (SELECT b.contract_version, pg_catalog.sum(b.events) AS events FROM b GROUP BY 1) AS v)'
             ELSE 'NULL::jsonb' END)
      INTO batches
      USING dims, lo, hi, c.frozen_snapshot, c.corrected_snapshot, status;
    IF NOT has_batches THEN
        notes := pg_catalog.array_append(notes, pg_catalog.format('contract versions and duplicates are in pipeline.batches, which %s may not read', current_user));
    ELSE
        SELECT pg_catalog.jsonb_build_object('duplicates', COALESCE(pg_catalog.sum(v.duplicates), 0),
                                             'batches', pg_catalog.count(*), 'approximate', true)
          INTO duplicates
          FROM pipeline.batch_log AS b JOIN pipeline.batches AS v ON v.batch_id = b.batch_id
         WHERE b.source = s.source AND b.min_event_time < hi AND b.max_event_time >= lo;
        notes := pg_catalog.array_append(notes, 'duplicates: dropped duplicates are not stored, so this is the sum over the batches whose event times overlap the day (all dimension groups), whatever the day of each duplicate');
    END IF;
    IF pg_catalog.has_table_privilege('pipeline.dead_letters', 'SELECT') THEN
        SELECT pg_catalog.jsonb_build_object('count', COALESCE(pg_catalog.sum(x.n), 0),
                                             'by_error_code', COALESCE(pg_catalog.jsonb_object_agg(x.error_code, x.n), '{}'))
          INTO dead
          FROM (SELECT l.error_code, pg_catalog.count(*) AS n FROM pipeline.dead_letters AS l
                 WHERE l.source = s.source AND l.received_at >= lo AND l.received_at < hi
                 GROUP BY 1) AS x;
        notes := pg_catalog.array_append(notes, 'dead_letters: a rejected event has no trusted event time, so these are the source''s dead letters received during the day (all dimension groups)');
    ELSE
        notes := pg_catalog.array_append(notes, pg_catalog.format('dead letters are in pipeline.dead_letters, which %s may not read', current_user));
    END IF;
    IF status = 'frozen' THEN
        notes := pg_catalog.array_append(notes, 'events: in_daily (the count(*) measure) = at_freeze (raw events of batches the freeze saw); in_corrections = corrected_batches (raw events of batches seen since); raw_now = at_freeze + corrected_batches + awaiting_correction');
    ELSIF status = 'provisional' THEN
        notes := pg_catalog.array_append(notes, 'a provisional day is recomputed from raw by every close_days run: raw_now may exceed in_daily by events accepted since');
    ELSE
        notes := pg_catalog.array_append(notes, 'the day is not closed yet: no daily rows');
    END IF;

    RETURN pg_catalog.jsonb_build_object(
        'metric', m.metric, 'source', s.source, 'day', day, 'day_timezone', s.day_timezone,
        'from', lo, 'to', hi, 'dimensions', dims,
        'status', status, 'version', c.version, 'computed_at', c.computed_at, 'frozen_at', c.frozen_at,
        'events_frozen', c.events_frozen,
        'groups', groups,
        'batches', batches,
        'duplicates', duplicates,
        'dead_letters', dead,
        'adds_up', adds_up,
        'notes', pg_catalog.to_jsonb(notes));
END
$fn$;


-- Per closed day: what the receipts, raw, the daily layer and the hot layer
-- say about the number of events, each difference beyond what is known to
-- be in flight (batches the fold or the corrections have not seen yet).
CREATE OR REPLACE FUNCTION pipeline._check_completeness(c pipeline.checks, as_of timestamptz,
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


CREATE OR REPLACE FUNCTION pipeline._check_validity(c pipeline.checks, as_of timestamptz,
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


CREATE OR REPLACE FUNCTION pipeline._check_referential(c pipeline.checks, as_of timestamptz,
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


CREATE OR REPLACE FUNCTION pipeline._check_not_null(c pipeline.checks, as_of timestamptz,
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


CREATE OR REPLACE FUNCTION pipeline._check_accepted_values(c pipeline.checks, as_of timestamptz,
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

-- ---- Scale-out on Citus (pipeline.distribute_source) ----
-- New: src/sql/32_citus.sql as a whole.  Changed: the fold, the day's computation
-- and its corrections read a distributed source's batches by the coordinator's
-- snapshot, once committed on the workers.

-- The same sketch with a state Citus can ship between nodes (a real type,
-- not internal): the fold of a distributed source builds its sketches on
-- the workers with distinct_sketch_dist and merges them on the coordinator
-- with distinct_union (README "Scaling out").  Citus checks that the
-- argument's type is the one the aggregate declares, so there is one per
-- common type, each with a transition function declaring it (Citus calls
-- it without an expression to read the type from); a distinct measure of
-- another type is folded with distinct_sketch, on the coordinator.
CREATE FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, smallint)
    RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_dist_add';
COMMENT ON FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, smallint) IS
    'internal: transition function of distinct_sketch_dist(smallint)';
CREATE AGGREGATE pipeline.distinct_sketch_dist(smallint) (
    SFUNC = pipeline._distinct_sketch_dist_add,
    STYPE = pipeline.distinct_sketch,
    COMBINEFUNC = pipeline.distinct_union,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.distinct_sketch_dist(smallint) IS
    'the sketch distinct_sketch builds, byte for byte, with a state Citus can compute on the workers and combine on the coordinator';
CREATE FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, integer)
    RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_dist_add';
COMMENT ON FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, integer) IS
    'internal: transition function of distinct_sketch_dist(integer)';
CREATE AGGREGATE pipeline.distinct_sketch_dist(integer) (
    SFUNC = pipeline._distinct_sketch_dist_add,
    STYPE = pipeline.distinct_sketch,
    COMBINEFUNC = pipeline.distinct_union,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.distinct_sketch_dist(integer) IS
    'the sketch distinct_sketch builds, byte for byte, with a state Citus can compute on the workers and combine on the coordinator';
CREATE FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, bigint)
    RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_dist_add';
COMMENT ON FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, bigint) IS
    'internal: transition function of distinct_sketch_dist(bigint)';
CREATE AGGREGATE pipeline.distinct_sketch_dist(bigint) (
    SFUNC = pipeline._distinct_sketch_dist_add,
    STYPE = pipeline.distinct_sketch,
    COMBINEFUNC = pipeline.distinct_union,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.distinct_sketch_dist(bigint) IS
    'the sketch distinct_sketch builds, byte for byte, with a state Citus can compute on the workers and combine on the coordinator';
CREATE FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, numeric)
    RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_dist_add';
COMMENT ON FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, numeric) IS
    'internal: transition function of distinct_sketch_dist(numeric)';
CREATE AGGREGATE pipeline.distinct_sketch_dist(numeric) (
    SFUNC = pipeline._distinct_sketch_dist_add,
    STYPE = pipeline.distinct_sketch,
    COMBINEFUNC = pipeline.distinct_union,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.distinct_sketch_dist(numeric) IS
    'the sketch distinct_sketch builds, byte for byte, with a state Citus can compute on the workers and combine on the coordinator';
CREATE FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, text)
    RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_dist_add';
COMMENT ON FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, text) IS
    'internal: transition function of distinct_sketch_dist(text)';
CREATE AGGREGATE pipeline.distinct_sketch_dist(text) (
    SFUNC = pipeline._distinct_sketch_dist_add,
    STYPE = pipeline.distinct_sketch,
    COMBINEFUNC = pipeline.distinct_union,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.distinct_sketch_dist(text) IS
    'the sketch distinct_sketch builds, byte for byte, with a state Citus can compute on the workers and combine on the coordinator';
CREATE FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, character varying)
    RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_dist_add';
COMMENT ON FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, character varying) IS
    'internal: transition function of distinct_sketch_dist(character varying)';
CREATE AGGREGATE pipeline.distinct_sketch_dist(character varying) (
    SFUNC = pipeline._distinct_sketch_dist_add,
    STYPE = pipeline.distinct_sketch,
    COMBINEFUNC = pipeline.distinct_union,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.distinct_sketch_dist(character varying) IS
    'the sketch distinct_sketch builds, byte for byte, with a state Citus can compute on the workers and combine on the coordinator';
CREATE FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, uuid)
    RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_dist_add';
COMMENT ON FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, uuid) IS
    'internal: transition function of distinct_sketch_dist(uuid)';
CREATE AGGREGATE pipeline.distinct_sketch_dist(uuid) (
    SFUNC = pipeline._distinct_sketch_dist_add,
    STYPE = pipeline.distinct_sketch,
    COMBINEFUNC = pipeline.distinct_union,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.distinct_sketch_dist(uuid) IS
    'the sketch distinct_sketch builds, byte for byte, with a state Citus can compute on the workers and combine on the coordinator';
CREATE FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, date)
    RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_dist_add';
COMMENT ON FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, date) IS
    'internal: transition function of distinct_sketch_dist(date)';
CREATE AGGREGATE pipeline.distinct_sketch_dist(date) (
    SFUNC = pipeline._distinct_sketch_dist_add,
    STYPE = pipeline.distinct_sketch,
    COMBINEFUNC = pipeline.distinct_union,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.distinct_sketch_dist(date) IS
    'the sketch distinct_sketch builds, byte for byte, with a state Citus can compute on the workers and combine on the coordinator';
CREATE FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, timestamp without time zone)
    RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_dist_add';
COMMENT ON FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, timestamp without time zone) IS
    'internal: transition function of distinct_sketch_dist(timestamp without time zone)';
CREATE AGGREGATE pipeline.distinct_sketch_dist(timestamp without time zone) (
    SFUNC = pipeline._distinct_sketch_dist_add,
    STYPE = pipeline.distinct_sketch,
    COMBINEFUNC = pipeline.distinct_union,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.distinct_sketch_dist(timestamp without time zone) IS
    'the sketch distinct_sketch builds, byte for byte, with a state Citus can compute on the workers and combine on the coordinator';
CREATE FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, timestamp with time zone)
    RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_dist_add';
COMMENT ON FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, timestamp with time zone) IS
    'internal: transition function of distinct_sketch_dist(timestamp with time zone)';
CREATE AGGREGATE pipeline.distinct_sketch_dist(timestamp with time zone) (
    SFUNC = pipeline._distinct_sketch_dist_add,
    STYPE = pipeline.distinct_sketch,
    COMBINEFUNC = pipeline.distinct_union,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.distinct_sketch_dist(timestamp with time zone) IS
    'the sketch distinct_sketch builds, byte for byte, with a state Citus can compute on the workers and combine on the coordinator';
CREATE FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, boolean)
    RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_dist_add';
COMMENT ON FUNCTION pipeline._distinct_sketch_dist_add(pipeline.distinct_sketch, boolean) IS
    'internal: transition function of distinct_sketch_dist(boolean)';
CREATE AGGREGATE pipeline.distinct_sketch_dist(boolean) (
    SFUNC = pipeline._distinct_sketch_dist_add,
    STYPE = pipeline.distinct_sketch,
    COMBINEFUNC = pipeline.distinct_union,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.distinct_sketch_dist(boolean) IS
    'the sketch distinct_sketch builds, byte for byte, with a state Citus can compute on the workers and combine on the coordinator';

-- Scale-out on Citus (README "Scaling out").  Nothing here needs Citus
-- installed: its functions are called by name, at run time, only when a
-- source is distributed.

-- whether a table is a Citus distributed table (false without Citus)
CREATE FUNCTION pipeline._distributed(rel regclass) RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    found boolean;
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition AS p WHERE p.logicalrelid = $1)'
       INTO found USING rel;
    RETURN found;
END
$fn$;
COMMENT ON FUNCTION pipeline._distributed(regclass) IS
    'internal: whether a table is distributed by Citus (false where Citus is not installed)';

-- Citus connects to the worker nodes as the role running a statement:
-- ingest writes a distributed source's rows as the source's owner, and a
-- fold reads them as the metric's owner.  Raises, naming the role, if one
-- of roles cannot log in.
CREATE FUNCTION pipeline._require_login(roles regrole[]) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    r name;
BEGIN
    SELECT x.rolname INTO r FROM pg_catalog.pg_roles AS x
     WHERE x.oid = ANY (roles::oid[]) AND NOT x.rolcanlogin
     ORDER BY 1 LIMIT 1;
    IF r IS NOT NULL THEN
        RAISE EXCEPTION 'role "%" cannot log in, and Citus connects to the worker nodes as it', r
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Ingest writes a distributed source''s rows as the source''s owner, and a fold reads them as the metric''s owner.',
                  HINT = pg_catalog.format('ALTER ROLE %I LOGIN, and let it reach the workers in their pg_hba.conf.', r);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pipeline._require_login(regrole[]) IS
    'internal: raises if one of the roles cannot log in (Citus connects to the workers as the role running a statement)';

-- The BRIN index on _pl_batch through which a correction finds its
-- batches' rows (_in_batches) is summarized on a single node by the
-- worker's round and run_hot() (src/hot_runner.c); on a distributed
-- source its copies on the shards are summarized only by autovacuum,
-- which may never come back to a day once its inserts stop, and the
-- unsummarized part of a shard is read whole (measured: every page of a
-- 2M-event day, 63 ms of a 390 ms correction).  So the first correction
-- of a distributed day (the one that asks for its value index) summarizes
-- them, on every shard of the day's partition, over connections of
-- Citus's own (about 30 ms, so not on every correction: the later ones
-- find the day summarized but for its last pages): the pipeline's index
-- alone (one column, _pl_batch, no expression or predicate), as the
-- extension owner, who runs close_days and restate_day.
CREATE FUNCTION pipeline._summarize_shards(part regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
BEGIN
    -- a shard that fails (its worker down) is only left unsummarized: the
    -- correction that follows reads that worker too, and raises then.
    -- The index is found as src/hot_runner.c finds it on a single node.
    EXECUTE 'SELECT FROM pg_catalog.run_command_on_shards($1, $2)'
      USING part,
            'SELECT pg_catalog.sum(pg_catalog.brin_summarize_new_values(x.indexrelid)) '
            '  FROM pg_catalog.pg_index AS x '
            '  JOIN pg_catalog.pg_class AS i ON i.oid = x.indexrelid '
            '  JOIN pg_catalog.pg_am AS a ON a.oid = i.relam AND a.amname = ''brin'' '
            '  JOIN pg_catalog.pg_attribute AS c ON c.attrelid = x.indrelid '
            '   AND c.attnum = x.indkey[0] AND c.attname = ''_pl_batch'' '
            ' WHERE x.indrelid = ''%s''::pg_catalog.regclass '
            '   AND x.indnatts = 1 AND x.indexprs IS NULL AND x.indpred IS NULL';
END
$fn$;
REVOKE EXECUTE ON FUNCTION pipeline._summarize_shards(regclass) FROM PUBLIC;
COMMENT ON FUNCTION pipeline._summarize_shards(regclass) IS
    'internal: summarizes the new ranges of the BRIN index on _pl_batch on every shard of a distributed day partition';

-- Distributes a source on a Citus cluster: its dedup ids and raw events
-- by event id, colocated, so that a shard's dedup and its raw rows are on
-- one worker; the events already stored move to the shards.  Day
-- partitions created later are distributed with the raw table.  Receipts,
-- dead letters, the catalogs and the metrics' hot, daily and correction
-- tables stay local tables of the coordinator (README "Scaling out").
CREATE FUNCTION pipeline.distribute_source(source text, shard_count integer DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
BEGIN
    s := pipeline._source_of_owner(source, 'distribute', 'distribute');
    IF pg_catalog.to_regproc('pg_catalog.create_distributed_table') IS NULL THEN
        RAISE EXCEPTION 'distributing a source needs Citus'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Preload citus (shared_preload_libraries = ''citus,pg_cron,pipeline''), CREATE EXTENSION citus, add the worker nodes.';
    END IF;
    IF pipeline._distributed(s.raw_table) THEN
        RAISE EXCEPTION 'source "%" is distributed already', source USING ERRCODE = 'duplicate_object';
    END IF;
    IF shard_count IS NOT NULL AND shard_count < 1 THEN
        RAISE EXCEPTION 'shard_count must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pipeline._require_login(ARRAY[s.owner]
                                    || ARRAY(SELECT m.owner FROM pipeline.metric_catalog AS m WHERE m.source = s.source));
    -- every batch writes to every shard (ids are spread by hash): a batch
    -- costs a round trip per shard, so by default two shards per worker,
    -- enough to spread over twice as many workers later
    IF shard_count IS NULL THEN
        EXECUTE 'SELECT GREATEST(2, 2 * pg_catalog.count(*))::integer FROM pg_catalog.pg_dist_node AS n '
                'WHERE n.isactive AND n.noderole = ''primary'' AND n.shouldhaveshards AND n.groupid <> 0'
           INTO shard_count;
    END IF;
    EXECUTE 'SELECT pg_catalog.create_distributed_table($1, $2, shard_count => $3)'
      USING s.ids_table, 'event_id', shard_count;
    EXECUTE 'SELECT pg_catalog.create_distributed_table($1, $2, colocate_with => $3)'
      USING s.raw_table, s.event_id, s.ids_table::text;
END
$fn$;
COMMENT ON FUNCTION pipeline.distribute_source(text, integer) IS
    'distributes a source''s raw events and dedup ids on a Citus cluster, by event id, colocated';

CREATE FUNCTION pipeline._await_commits() RETURNS integer
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_await_commits';
COMMENT ON FUNCTION pipeline._await_commits() IS
    'internal: waits for the transactions that have committed but are still finishing their commit (Citus: on the workers), then, for a fold, the extension owner or a superuser, runs Citus''s recovery of commits that stopped half-way (any other caller only waits)';

-- The batches of a source that a snapshot saw, as a day computed or
-- corrected on a distributed source reads them on the workers, whatever
-- their own snapshots show: those below floor but the unseen ones, and the
-- seen ones from floor up (src/batch_registry.c).  Called after the
-- snapshot was taken; needs no receipt older than the oldest batch still
-- being written.
CREATE FUNCTION pipeline._batches_seen(source text, snap pg_snapshot,
                                       OUT floor bigint, OUT unseen bigint[], OUT seen bigint[])
    LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_batches_seen';
COMMENT ON FUNCTION pipeline._batches_seen(text, pg_snapshot) IS
    'internal: the batches of a source a snapshot saw: below a floor but a few, and a few above it';
-- (a step of close_days and restate_day, as the others: 95_privileges.sql)
REVOKE EXECUTE ON FUNCTION pipeline._batches_seen(text, pg_snapshot) FROM PUBLIC;

-- The condition that a raw row's batch is one of those _batches_seen
-- returned, given as the texts of its three values (parameters of the
-- statement).  The lists are short, checked hashed, and kept out of the
-- index condition by the + 0.
CREATE FUNCTION pipeline._seen_on_workers(alias text, floor text, unseen text, seen text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.format(
        '((%1$I._pl_batch OPERATOR(pg_catalog.<) %2$s '
        '  AND (%1$I._pl_batch OPERATOR(pg_catalog.+) 0) OPERATOR(pg_catalog.<>) ALL (%3$s)) '
        ' OR (%1$I._pl_batch OPERATOR(pg_catalog.+) 0) OPERATOR(pg_catalog.=) ANY (%4$s))',
        alias, floor, unseen, seen);
COMMENT ON FUNCTION pipeline._seen_on_workers(text, text, text, text) IS
    'internal: the condition that a raw row''s batch is among those _batches_seen describes';

-- The fold statement of a metric of a distributed source: each distinct
-- measure whose argument type has a distinct_sketch_dist builds its
-- sketches with it, so that the whole aggregation runs on the workers (an
-- aggregate with an internal state makes Citus pull every row instead).
CREATE FUNCTION pipeline._distributed_fold_sql(fold_sql text, def jsonb) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    sql text := fold_sql;
    x jsonb;
BEGIN
    FOR x IN SELECT e FROM pg_catalog.jsonb_array_elements(def->'measures') AS e
              WHERE e->>'agg' = 'count_distinct'
    LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_proc AS p
                    WHERE p.pronamespace = 'pipeline'::regnamespace AND p.proname = 'distinct_sketch_dist'
                      AND p.proargtypes[0] = pg_catalog.to_regtype(x->>'arg_type')) THEN
            sql := pg_catalog.replace(sql, 'pipeline.distinct_sketch(' || (x->>'expr') || ')',
                                      'pipeline.distinct_sketch_dist(' || (x->>'expr') || ')');
        END IF;
    END LOOP;
    RETURN sql;
END
$fn$;
COMMENT ON FUNCTION pipeline._distributed_fold_sql(text, jsonb) IS
    'internal: a metric''s fold statement with the distinct sketches built by distinct_sketch_dist, for a distributed source';

CREATE OR REPLACE FUNCTION pipeline._fold(metric text)
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

CREATE OR REPLACE FUNCTION pipeline._compute_day(m pipeline.metric_catalog, d date, status text, as_of timestamptz,
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

CREATE OR REPLACE FUNCTION pipeline._correction_exact(def jsonb, s pipeline.source_catalog) RETURNS text
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

-- =====================================================================
-- Hot tables keep rows up to a page inline (toast_tuple_target), their
-- sketch states compressed with lz4
-- =====================================================================

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

CREATE OR REPLACE FUNCTION pipeline.create_metric(metric text, source text,
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

-- the hot tables of the metrics already there, as create_metric now makes them
DO $$
DECLARE
    hot regclass;
BEGIN
    FOR hot IN SELECT c.hot_table FROM pipeline.metric_catalog AS c ORDER BY c.metric LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s SET (toast_tuple_target = 8160, fillfactor = 50)', hot);
        PERFORM pipeline._compress_hot_states(hot);
    END LOOP;
END
$$;

-- =====================================================================
-- 0.2.0: value indexes of frozen days built concurrently by the index builder
-- =====================================================================

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
    'internal: whether the value index of a column on a day partition is built and valid';-- The index builder's next statement (src/index_builder.c), as the
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

REVOKE EXECUTE ON FUNCTION
    pipeline._start_index_builder(),
    pipeline._value_index_next(),
    pipeline._value_index_failed(oid, text, text)
  FROM PUBLIC;



-- Drops a metric's daily layer once its catalog row is gone: run by
-- _unregister_metric_as_owner, as the extension owner, right after it
-- deleted that row for a member of the metric's owner.
CREATE OR REPLACE FUNCTION pipeline._drop_daily(metric text)
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
CREATE OR REPLACE FUNCTION pipeline._index_day_values(m pipeline.metric_catalog, s pipeline.source_catalog, part regclass)
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
CREATE OR REPLACE FUNCTION pipeline._correct_day(m pipeline.metric_catalog, c pipeline.day_closures)
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
DROP FUNCTION pipeline._correction_distinct(jsonb, regclass, regclass, text, text);
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

-- =====================================================================
-- 0.2.0: the load tables take their rows in their access method (made
-- above, and the load tables again with it); the row trigger is gone
-- =====================================================================

DROP FUNCTION pipeline._load_row();

-- =====================================================================
-- 0.2.0: _check_schema, which every fold and close runs (many in a new
-- backend), reads the catalogs in C (src/schema_guard.c) instead of
-- planning a query over them
-- =====================================================================

CREATE OR REPLACE FUNCTION pipeline._check_schema() RETURNS void
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_check_schema';

-- =====================================================================
-- 0.2.0: a distributed source's ingest sends its new ids and then the
-- rows of those, which Citus copies to the shards from _pending_rows()
-- =====================================================================

-- The rows of the chunk an ingest is sending to a distributed source's
-- shards (src/raw_store.c, InsertDistributed): its INSERT ... SELECT reads
-- them here rather than from one array per column.  Outside that
-- statement it raises an error: there is no chunk.  (No SET clause: it
-- runs no SQL.)
CREATE FUNCTION pipeline._pending_rows() RETURNS SETOF record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'pipeline_pending_rows';
COMMENT ON FUNCTION pipeline._pending_rows() IS
    'internal: the rows of the chunk an ingest is sending to a distributed source''s shards';

-- =====================================================================
-- 0.2.0: the fold merges a batch's distinct sketch into a hot row with
-- _distinct_absorb(), which keeps a few new hashes ahead of the sorted
-- ones (src/sketch.c), so that the row's update logs a few bytes of the
-- sketch rather than half of it
-- =====================================================================

CREATE FUNCTION pipeline._distinct_absorb(stored pipeline.distinct_sketch, new pipeline.distinct_sketch)
    RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_absorb';
COMMENT ON FUNCTION pipeline._distinct_absorb(pipeline.distinct_sketch, pipeline.distinct_sketch) IS
    'internal: the fold''s merge of new values into a hot row''s sketch; the union, stored so that a few new '
    'values change a few bytes of the row (its output is distinct_union''s)';

-- the metrics made on 0.1.0 keep their fold statement: its merge of a
-- distinct sketch is the measure kind's template (a metric's own
-- expressions cannot name a schema), so it is replaced where it stands
UPDATE pipeline.metric_catalog
   SET fold_sql = pg_catalog.replace(fold_sql, ' = pipeline.distinct_union(h.', ' = pipeline._distinct_absorb(h.')
 WHERE fold_sql LIKE '% = pipeline.distinct\_union(h.%';
-- and it finds the rows of its batches through their span (_in_batches)
UPDATE pipeline.metric_catalog
   SET fold_sql = pg_catalog.replace(fold_sql, 'WHERE r._pl_batch OPERATOR(pg_catalog.=) ANY ($1) ',
                                     'WHERE ' || pipeline._in_batches('r', '$1', '$5', '$6') || ' ')
 WHERE pg_catalog.strpos(fold_sql, 'WHERE r._pl_batch OPERATOR(pg_catalog.=) ANY ($1) ') > 0;

-- --- the lateness sketch reads its batches' rows by their span (src/sql/75_quantile.sql)
-- The arrival lateness sketch (their batch's received_at - event time) of
-- the events of some batches of a source, read as the caller: the batch
-- ids find the rows through the BRIN index on _pl_batch (by their span,
-- _in_batches), the batches' event-time range [lo, hi] prunes partitions.
-- At most max_events rows (NULL: all of them).
CREATE OR REPLACE FUNCTION pipeline._batches_lateness(s pipeline.source_catalog, ids bigint[], lo timestamptz,
                                           hi timestamptz, max_events bigint DEFAULT NULL)
    RETURNS pipeline.lateness_sketch
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    sketch pipeline.lateness_sketch;
BEGIN
    IF ids IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE pg_catalog.format(
        'SELECT pipeline.lateness_sketch(t.received_at OPERATOR(pg_catalog.-) t.event_time) '
        '  FROM (SELECT b.received_at, r.%1$I AS event_time '
        '          FROM %2$s AS r JOIN pipeline.batch_log AS b ON b.batch_id OPERATOR(pg_catalog.=) r._pl_batch '
        '         WHERE %3$s '
        '           AND r.%1$I OPERATOR(pg_catalog.>=) $2 AND r.%1$I OPERATOR(pg_catalog.<=) $3 '
        '         LIMIT $4) AS t',
        s.event_time, s.raw_table, pipeline._in_batches('r', '$1', '$5', '$6'))
      INTO sketch USING ids, lo, hi, max_events,
                        (SELECT pg_catalog.min(i) FROM pg_catalog.unnest(ids) AS i),
                        (SELECT pg_catalog.max(i) FROM pg_catalog.unnest(ids) AS i);
    RETURN sketch;
END
$fn$;
COMMENT ON FUNCTION pipeline._batches_lateness(pipeline.source_catalog, bigint[], timestamptz, timestamptz, bigint) IS
    'internal: the arrival lateness sketch of the events of some batches of a source (at most max_events of them)';
