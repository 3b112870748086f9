-- Sources: the catalog, contracts, raw storage and their management.

CREATE FUNCTION pipeline._check_name(kind text, name text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
BEGIN
    IF name IS NULL OR name !~ '^[a-z_][a-z0-9_]*$' OR length(name) > 40 THEN
        RAISE EXCEPTION 'invalid % name: %', kind, quote_literal(coalesce(name, 'NULL'))
            USING ERRCODE = 'invalid_name',
                  DETAIL = 'Names are plain lower-case identifiers of at most 40 characters, so that every derived table and view name fits.',
                  HINT = 'Use letters a-z, digits and underscores, starting with a letter or underscore, e.g. app_events.';
    END IF;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_name(text, text) IS
    'internal: refuses source and metric names that are not plain lower-case identifiers';

CREATE TABLE pipeline.source_catalog (
    source           text PRIMARY KEY,
    contract_version integer NOT NULL DEFAULT 1,
    event_id         text NOT NULL,
    event_time       text NOT NULL,
    allowed_lateness interval NOT NULL,
    freeze_after     interval NOT NULL,
    day_timezone     text NOT NULL,
    raw_table        regclass NOT NULL,
    ids_table        regclass NOT NULL,
    owner            regrole NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE pipeline.source_catalog IS 'internal: one row per source; read pipeline.sources';

CREATE TABLE pipeline.contracts (
    source      text NOT NULL REFERENCES pipeline.source_catalog ON DELETE CASCADE,
    version     integer NOT NULL,
    columns     text NOT NULL,
    change      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by  name NOT NULL DEFAULT CURRENT_USER,
    PRIMARY KEY (source, version)
);
COMMENT ON TABLE pipeline.contracts IS
    'every version of every source contract: the column definitions, the change that made it, when and by whom';

CREATE VIEW pipeline.sources AS
    SELECT s.source, s.contract_version, s.event_id, s.event_time, s.allowed_lateness,
           s.freeze_after, s.day_timezone, s.raw_table, s.owner, s.created_at
      FROM pipeline.source_catalog AS s;
COMMENT ON VIEW pipeline.sources IS 'the sources: contract version, key columns, lateness, freeze delay, day time zone, raw table';

GRANT SELECT ON pipeline.source_catalog, pipeline.sources, pipeline.contracts TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('pipeline.source_catalog', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.contracts', '');

CREATE FUNCTION pipeline._create_raw_table(source text, columns text, event_id text, event_time text)
    RETURNS oid
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_create_raw_table';
COMMENT ON FUNCTION pipeline._create_raw_table(text, text, text, text) IS
    'internal: checks a contract with the PostgreSQL parser and creates the partitioned raw table from it';

CREATE FUNCTION pipeline._depend_on_extension(rel regclass)
    RETURNS void
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_depend_on_extension';
COMMENT ON FUNCTION pipeline._depend_on_extension(regclass) IS
    'internal: makes a source table depend on the extension, so DROP EXTENSION refuses or cascades to it';

-- Catalog rows are written as the extension owner (src/as_owner.c: the C
-- half reads the real caller, the _as_owner half checks it), and only for
-- raw and id tables of that name that this very transaction created (the
-- create_source that calls it) and that the caller owns: creating a source
-- takes what creating its tables by hand would take (CREATE on schema
-- pipeline), nothing more, and nobody can register tables someone else
-- made.
CREATE FUNCTION pipeline._register_source(source text, columns text, event_id text,
        event_time text, allowed_lateness interval, freeze_after interval,
        day_timezone text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._register_source(text, text, text, text, interval, interval, text) IS
    'internal: records a source whose raw and id tables the caller owns (runs _register_source_as_owner as the extension owner)';

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

CREATE FUNCTION pipeline.create_source(source text, columns text,
        event_id text DEFAULT 'event_id', event_time text DEFAULT 'event_time',
        allowed_lateness interval DEFAULT '2 hours',
        freeze_after interval DEFAULT '24 hours',
        day_timezone text DEFAULT 'UTC')
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    raw_oid oid;
    id_type text;
BEGIN
    PERFORM pipeline._check_name('source', source);
    IF columns IS NULL OR event_id IS NULL OR event_time IS NULL OR allowed_lateness IS NULL
       OR freeze_after IS NULL OR day_timezone IS NULL THEN
        RAISE EXCEPTION 'create_source arguments must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF EXISTS (SELECT FROM pipeline.source_catalog AS s WHERE s.source = create_source.source) THEN
        RAISE EXCEPTION 'source "%" already exists', source
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Change its contract with pipeline.evolve_source(), or drop it first.';
    END IF;
    IF allowed_lateness < interval '0' THEN
        RAISE EXCEPTION 'allowed_lateness must not be negative' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF freeze_after < allowed_lateness THEN
        RAISE EXCEPTION 'freeze_after (%) must not be shorter than allowed_lateness (%)',
                freeze_after, allowed_lateness
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A day is provisional from its end + allowed_lateness and frozen from its end + freeze_after.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_timezone_names WHERE name = day_timezone)
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_timezone_abbrevs WHERE abbrev = day_timezone) THEN
        RAISE EXCEPTION 'unknown time zone "%"', day_timezone
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use a name from pg_timezone_names, e.g. Europe/Paris or America/New_York.';
    END IF;
    IF pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', source || '_raw')) IS NOT NULL
       OR pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', source || '_ids')) IS NOT NULL
       OR pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', source || '_load')) IS NOT NULL THEN
        RAISE EXCEPTION 'a table named pipeline.%_raw, %_ids or %_load already exists', source, source, source
            USING ERRCODE = 'duplicate_table';
    END IF;

    raw_oid := pipeline._create_raw_table(source, columns, event_id, event_time);

    SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) INTO id_type
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = raw_oid AND a.attname = event_id;
    -- the dedup index: one row per event id ever accepted, whatever its day
    EXECUTE pg_catalog.format(
        'CREATE TABLE pipeline.%I (event_id %s PRIMARY KEY, _pl_batch bigint NOT NULL)',
        source || '_ids', id_type);
    -- lets the fold find a batch's rows without a btree on every insert
    EXECUTE pg_catalog.format('CREATE INDEX %I ON pipeline.%I USING brin (_pl_batch) WITH (autosummarize = on)',
        source || '_raw_batch', source || '_raw');

    PERFORM pipeline._depend_on_extension(raw_oid::regclass);
    PERFORM pipeline._depend_on_extension(pg_catalog.format('pipeline.%I', source || '_ids')::regclass);
    PERFORM pipeline._register_source(source, columns, event_id, event_time, allowed_lateness,
        freeze_after, day_timezone);
    PERFORM pipeline._create_load_table(source);
END
$fn$;
COMMENT ON FUNCTION pipeline.create_source(text, text, text, text, interval, interval, text) IS
    'creates a source: checks the contract (SQL column definitions), creates its raw table partitioned by event day, records contract version 1';

-- Removing a source's records, as the extension owner: only once the
-- source's tables are gone (dropping them is what takes ownership, and
-- drop_source does that first, as its caller), and only for a member of the
-- source's owner.
CREATE FUNCTION pipeline._unregister_source(source text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._unregister_source(text) IS
    'internal: removes the load table and records of a source whose tables were dropped (runs _unregister_source_as_owner as the extension owner)';

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

-- The catalog row of a source the caller may act for (a member of its
-- owner); what it is about to do names the refusal: "permission denied to
-- <action> source <name>", "... can <verb> it".
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

CREATE FUNCTION pipeline.drop_source(source text, cascade boolean DEFAULT false)
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
