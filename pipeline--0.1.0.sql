-- pipeline install script.  Assembled from src/sql/*.sql in name order.
-- Rules: everything schema-qualified, functions pin search_path, no
-- CREATE OR REPLACE / IF NOT EXISTS, no extension placeholders in strings.

\echo Use "CREATE EXTENSION pipeline" to load this file. \quit

-- Refuse to install unless the library was preloaded: without it there are
-- no workers and the hot layer would silently never move.
CREATE FUNCTION pipeline._require_preload() RETURNS void
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_require_preload';
SELECT pipeline._require_preload();

-- The schema must be the one CREATE EXTENSION made for us: in a schema that
-- another role created beforehand, that role could rename, replace or add
-- to our functions, and the pipeline's privileged code would run them.
DO $check$
BEGIN
    IF (SELECT n.nspowner FROM pg_catalog.pg_namespace AS n WHERE n.nspname OPERATOR(pg_catalog.=) 'pipeline')
       OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname OPERATOR(pg_catalog.=) current_user) THEN
        RAISE EXCEPTION 'schema "pipeline" already exists and belongs to another role'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Drop or rename that schema, then run CREATE EXTENSION pipeline again: the extension creates its own.';
    END IF;
END
$check$;

-- Roles are cluster-wide: the first database to install the extension
-- creates them, the others reuse them.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pipeline_reader') THEN
        CREATE ROLE pipeline_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pipeline_writer') THEN
        CREATE ROLE pipeline_writer NOLOGIN;
    END IF;
END
$roles$;

CREATE SCHEMA metrics;
COMMENT ON SCHEMA metrics IS 'pipeline serving views: <metric>_live, _daily, _corrections, _restated, _reconcile';

GRANT USAGE ON SCHEMA pipeline TO pipeline_reader, pipeline_writer;
GRANT USAGE ON SCHEMA metrics TO pipeline_reader, pipeline_writer;
-- Background workers: the launcher learns about this database at commit.

CREATE FUNCTION pipeline._wake_launcher() RETURNS void
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_wake_launcher';
COMMENT ON FUNCTION pipeline._wake_launcher() IS
    'internal: asks the launcher to start this database''s worker once the transaction commits';
SELECT pipeline._wake_launcher();

CREATE FUNCTION pipeline._workers(
        OUT kind text, OUT datid oid, OUT pid integer, OUT state text,
        OUT since timestamptz, OUT last_tick timestamptz)
    RETURNS SETOF record
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_workers';
COMMENT ON FUNCTION pipeline._workers() IS
    'internal: the launcher and the per-database worker slots, from shared memory';

CREATE VIEW pipeline.workers AS
    SELECT w.kind, d.datname AS database, w.pid, w.state, w.since, w.last_tick
      FROM pipeline._workers() AS w
      LEFT JOIN pg_catalog.pg_database AS d ON d.oid OPERATOR(pg_catalog.=) w.datid;
COMMENT ON VIEW pipeline.workers IS
    'the pipeline launcher and one row per database worker: state (running, absent, ...) and last tick';
GRANT SELECT ON pipeline.workers TO pipeline_reader, pipeline_writer;
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

-- Catalog rows are written here, as the extension owner, and only for raw
-- and id tables of that name that this very transaction created (the
-- create_source that calls it): creating a source takes what creating its
-- tables by hand would take (CREATE on schema pipeline), nothing more, and
-- nobody can register tables someone else made.
CREATE FUNCTION pipeline._register_source(source text, columns text, event_id text,
        event_time text, allowed_lateness interval, freeze_after interval,
        day_timezone text)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
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
    IF raw_owner IS NULL OR ids_owner IS DISTINCT FROM raw_owner
       OR NOT pg_catalog.pg_has_role(session_user, raw_owner, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to register source %', source
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO pipeline.source_catalog (source, event_id, event_time, allowed_lateness,
            freeze_after, day_timezone, raw_table, ids_table, owner)
        VALUES (source, event_id, event_time, allowed_lateness, freeze_after,
                day_timezone, raw, ids, raw_owner::regrole);
    INSERT INTO pipeline.contracts (source, version, columns, change, created_by)
        VALUES (source, 1, columns, 'create_source', session_user);
END
$fn$;
COMMENT ON FUNCTION pipeline._register_source(text, text, text, text, interval, interval, text) IS
    'internal: records a source whose raw and id tables the caller owns';

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

-- Removing a source's records.  Runs as the extension owner, which cannot
-- know which role called it, so it only acts once the source's tables are
-- gone: dropping them is what takes ownership (drop_source does that first,
-- as its caller).
CREATE FUNCTION pipeline._unregister_source(source text)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $fn$
BEGIN
    IF pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', source || '_raw')) IS NOT NULL
       OR pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', source || '_ids')) IS NOT NULL THEN
        RAISE EXCEPTION 'permission denied to unregister source %', source
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Use pipeline.drop_source().';
    END IF;
    DELETE FROM pipeline.dead_letters AS d WHERE d.source = _unregister_source.source;
    DELETE FROM pipeline.drift_counts AS d WHERE d.source = _unregister_source.source;
    DELETE FROM pipeline.batch_log AS b WHERE b.source = _unregister_source.source;
    DELETE FROM pipeline.source_catalog AS c WHERE c.source = _unregister_source.source;
END
$fn$;
COMMENT ON FUNCTION pipeline._unregister_source(text) IS
    'internal: removes the catalog rows, receipts, dead letters and drift counts of a source whose tables were dropped';

CREATE FUNCTION pipeline.drop_source(source text, cascade boolean DEFAULT false)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
BEGIN
    SELECT * INTO s FROM pipeline.source_catalog AS c WHERE c.source = drop_source.source;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'source "%" does not exist', source
            USING ERRCODE = 'undefined_object',
                  HINT = 'See pipeline.sources for the sources of this database.';
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, s.owner, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to drop source %', source
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('Only members of its owner, %s, can drop it.', s.owner);
    END IF;
    PERFORM pipeline._drop_source_metrics(s.source, cascade);
    EXECUTE pg_catalog.format('DROP TABLE %s, %s', s.raw_table, s.ids_table);
    IF pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', s.source || '_load')) IS NOT NULL THEN
        EXECUTE pg_catalog.format('DROP TABLE pipeline.%I', s.source || '_load');
    END IF;
    PERFORM pipeline._unregister_source(s.source);
END
$fn$;
COMMENT ON FUNCTION pipeline.drop_source(text, boolean) IS
    'drops a source with its raw events, receipts and dead letters; refuses while metrics use it unless cascade';
-- Ingest: receipts, dead letters, drift counts, partitions on demand, the
-- ingest functions themselves.

CREATE TABLE pipeline.batch_log (
    batch_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source           text NOT NULL,
    batch_key        text,
    received_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    received         bigint NOT NULL DEFAULT 0,
    accepted         bigint NOT NULL DEFAULT 0,
    duplicates       bigint NOT NULL DEFAULT 0,
    rejected         bigint NOT NULL DEFAULT 0,
    contract_version integer NOT NULL,
    -- event-time range of the batch's valid events: lets a fold prune
    -- partitions and advance the watermark without reading raw
    min_event_time   timestamptz,
    max_event_time   timestamptz,
    -- the inserting transaction: lets a fold find batches committed since its
    -- last snapshot, whatever order they committed in
    xid              xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    ingested_by      name NOT NULL DEFAULT session_user,
    -- semantics 1: nothing lost
    CONSTRAINT batch_conservation CHECK (received = accepted + duplicates + rejected),
    CONSTRAINT batch_key_once UNIQUE (source, batch_key)
);
CREATE INDEX batch_log_source_xid ON pipeline.batch_log (source, xid);
CREATE INDEX batch_log_source_time ON pipeline.batch_log (source, max_event_time);
-- pipeline.status: the receipts of the last minutes, per source
CREATE INDEX batch_log_source_received ON pipeline.batch_log (source, received_at);
COMMENT ON TABLE pipeline.batch_log IS 'internal: one receipt per ingest call; read pipeline.batches';

CREATE VIEW pipeline.batches AS
    SELECT b.batch_id, b.source, b.batch_key, b.received_at, b.received, b.accepted,
           b.duplicates, b.rejected, b.contract_version, b.ingested_by
      FROM pipeline.batch_log AS b;
COMMENT ON VIEW pipeline.batches IS
    'one receipt per ingest call: received = accepted + duplicates + rejected, always';

CREATE TABLE pipeline.dead_letters (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source           text NOT NULL,
    batch_id         bigint NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    payload          text NOT NULL,
    error            text NOT NULL,
    error_code       text NOT NULL,
    field            text,
    contract_version integer NOT NULL,
    -- replay_dead_letters: when it was ingested after all, through which
    -- batch; how many replays it failed
    replayed_at      timestamptz,
    replay_batch_id  bigint,
    replay_attempts  integer NOT NULL DEFAULT 0
);
CREATE INDEX dead_letters_source ON pipeline.dead_letters (source, received_at);
COMMENT ON TABLE pipeline.dead_letters IS
    'rejected events, payload verbatim, with the reason (naming the field), SQLSTATE and the contract version checked against';

CREATE TABLE pipeline.drift_counts (
    source     text NOT NULL,
    field      text NOT NULL,
    events     bigint NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    PRIMARY KEY (source, field)
);
COMMENT ON TABLE pipeline.drift_counts IS 'internal: fields seen in accepted events that the contract does not name; read pipeline.contract_drift';

CREATE VIEW pipeline.contract_drift AS
    SELECT d.source, d.field, d.events, d.first_seen, d.last_seen,
           pg_catalog.round(d.events::numeric / NULLIF((
               SELECT pg_catalog.sum(b.accepted) FROM pipeline.batch_log AS b
                WHERE b.source = d.source AND b.received_at >= d.first_seen), 0), 4) AS share_since_first_seen
      FROM pipeline.drift_counts AS d;
COMMENT ON VIEW pipeline.contract_drift IS
    'unknown fields in accepted events (kept in the raw row''s _pl_extra): how many events carried each, since when, and their share of the source''s events since then';

GRANT SELECT ON pipeline.batches, pipeline.contract_drift TO pipeline_reader, pipeline_writer;
-- a metric's fold runs as the metric's owner and finds its batches here;
-- these columns say nothing a source's raw table would not
GRANT SELECT (batch_id, source, received_at, accepted, min_event_time, max_event_time, xid)
    ON pipeline.batch_log TO PUBLIC;
GRANT SELECT ON pipeline.dead_letters TO pipeline_writer;

SELECT pg_catalog.pg_extension_config_dump('pipeline.batch_log', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.drift_counts', '');

-- A source's partition for a local day: the raw table's child named
-- <source>_raw_YYYYMMDD, or <source>_raw_YYYYMMDD_<n> when another table
-- had that name (a table of the name that is not its child is not used).
CREATE FUNCTION pipeline._day_partition(s pipeline.source_catalog, d date) RETURNS regclass
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT i.inhrelid::regclass
      FROM pg_catalog.pg_inherits AS i JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
     WHERE i.inhparent = s.raw_table
       AND (c.relname = s.source || '_raw_' || pg_catalog.to_char(d, 'YYYYMMDD')
            OR c.relname ~ ('^' || s.source || '_raw_' || pg_catalog.to_char(d, 'YYYYMMDD') || '_[0-9]+$')));
COMMENT ON FUNCTION pipeline._day_partition(pipeline.source_catalog, date) IS
    'internal: the raw partition of a source for a local day, NULL if there is none';

-- Partitions appear on demand, one per day of the source's time zone (so a
-- 23- or 25-hour DST day is one partition).  Runs as the source owner
-- (ingest switches to it).  Creators serialize on SHARE UPDATE EXCLUSIVE on
-- the parent, the lock ATTACH PARTITION takes anyway: one lock for every
-- day means one lock order (no deadlock between creators of different
-- days), and acquiring it makes a waiter see the partition the holder
-- created before it checks again.  Inserts take ROW EXCLUSIVE, which that
-- lock does not block, so ingest into existing days goes on meanwhile.
CREATE FUNCTION pipeline._ensure_partitions(source text, times timestamptz[])
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
            EXECUTE pg_catalog.format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', s.raw_table);
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

CREATE FUNCTION pipeline.ingest(source text, events jsonb, batch_key text DEFAULT NULL)
    RETURNS TABLE (batch_id bigint, received bigint, accepted bigint, duplicates bigint, rejected bigint)
    LANGUAGE c VOLATILE CALLED ON NULL INPUT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_ingest_jsonb';
COMMENT ON FUNCTION pipeline.ingest(text, jsonb, text) IS
    'ingests a JSON array of events: validates each against the contract, deduplicates on the event id, dead-letters bad ones, returns the receipt';

CREATE FUNCTION pipeline.ingest(source text, events text, batch_key text DEFAULT NULL)
    RETURNS TABLE (batch_id bigint, received bigint, accepted bigint, duplicates bigint, rejected bigint)
    LANGUAGE c VOLATILE CALLED ON NULL INPUT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_ingest_text';
COMMENT ON FUNCTION pipeline.ingest(text, text, text) IS
    'ingests NDJSON (one event per line; a JSON array is accepted too): same checks and receipt as the jsonb form';

REVOKE EXECUTE ON FUNCTION pipeline.ingest(text, jsonb, text), pipeline.ingest(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pipeline.ingest(text, jsonb, text), pipeline.ingest(text, text, text) TO pipeline_writer;

-- The bulk path: COPY into pipeline.<source>_load (see src/load.c).
CREATE FUNCTION pipeline._load_row() RETURNS trigger
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_load_row';
COMMENT ON FUNCTION pipeline._load_row() IS
    'internal: BEFORE ROW trigger of <source>_load tables: buffers each row as an event, stores nothing';
CREATE FUNCTION pipeline._load_finish() RETURNS trigger
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_load_finish';
COMMENT ON FUNCTION pipeline._load_finish() IS
    'internal: AFTER STATEMENT trigger of <source>_load tables: ingests what is left and writes the receipt';

-- Creates or recreates the load table from the raw table's contract columns.
CREATE FUNCTION pipeline._create_load_table(source text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    cols text;
    load text := source || '_load';
BEGIN
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS c WHERE c.source = _create_load_table.source;
    SELECT pg_catalog.string_agg(pg_catalog.format('%I text', a.attname), ', ' ORDER BY a.attnum) INTO cols
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = s.raw_table AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname !~ '^_pl_';
    IF pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', load)) IS NOT NULL THEN
        EXECUTE pg_catalog.format('DROP TABLE pipeline.%I', load);
    END IF;
    EXECUTE pg_catalog.format('CREATE TABLE pipeline.%I (%s)', load, cols);
    EXECUTE pg_catalog.format(
        'CREATE TRIGGER load_row BEFORE INSERT ON pipeline.%I FOR EACH ROW EXECUTE FUNCTION pipeline._load_row(%L)',
        load, source);
    EXECUTE pg_catalog.format(
        'CREATE TRIGGER load_finish AFTER INSERT ON pipeline.%I FOR EACH STATEMENT EXECUTE FUNCTION pipeline._load_finish(%L)',
        load, source);
    EXECUTE pg_catalog.format('GRANT INSERT ON pipeline.%I TO pipeline_writer', load);
    EXECUTE pg_catalog.format('COMMENT ON TABLE pipeline.%I IS %L', load,
        pg_catalog.format('bulk path of source %s: COPY rows in (columns as text); nothing is stored here, each row is ingested', source));
    PERFORM pipeline._depend_on_extension(pg_catalog.format('pipeline.%I', load)::regclass);
END
$fn$;
COMMENT ON FUNCTION pipeline._create_load_table(text) IS
    'internal: (re)creates pipeline.<source>_load, the COPY target of the bulk path';
-- Distinct-count sketches (src/sketch.c): the type, the aggregates that
-- build and merge sketches, union and estimate.  The hot layer keeps one
-- sketch per bucket for count(DISTINCT x); users roll buckets up with
-- pipeline.distinct_merge.
--
-- The C functions here do not pin search_path: they resolve no names, and
-- a SET clause would route every call (one per row for the transition
-- functions) through a GUC save and restore.

CREATE TYPE pipeline.distinct_sketch;

CREATE FUNCTION pipeline._distinct_sketch_in(cstring) RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_in';
COMMENT ON FUNCTION pipeline._distinct_sketch_in(cstring) IS
    'internal: input function of pipeline.distinct_sketch (''\x'' hex of the binary form, checked)';

CREATE FUNCTION pipeline._distinct_sketch_out(pipeline.distinct_sketch) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_out';
COMMENT ON FUNCTION pipeline._distinct_sketch_out(pipeline.distinct_sketch) IS
    'internal: output function of pipeline.distinct_sketch (''\x'' hex of the binary form)';

CREATE FUNCTION pipeline._distinct_sketch_recv(internal) RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_recv';
COMMENT ON FUNCTION pipeline._distinct_sketch_recv(internal) IS
    'internal: binary receive function of pipeline.distinct_sketch (the binary form, checked)';

CREATE FUNCTION pipeline._distinct_sketch_send(pipeline.distinct_sketch) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_send';
COMMENT ON FUNCTION pipeline._distinct_sketch_send(pipeline.distinct_sketch) IS
    'internal: binary send function of pipeline.distinct_sketch (the binary form)';

CREATE TYPE pipeline.distinct_sketch (
    INPUT = pipeline._distinct_sketch_in,
    OUTPUT = pipeline._distinct_sketch_out,
    RECEIVE = pipeline._distinct_sketch_recv,
    SEND = pipeline._distinct_sketch_send,
    INTERNALLENGTH = VARIABLE,
    STORAGE = extended
);
COMMENT ON TYPE pipeline.distinct_sketch IS
    'mergeable distinct-count sketch: the exact set of up to 1024 64-bit value hashes, beyond that a HyperLogLog '
    'of 16384 registers (0.81% standard error).  Text form: ''\x'' then the hex of the binary form, which is: '
    'version byte 1; kind byte 1 (explicit: sorted big-endian 8-byte hashes) or 2 (dense: precision byte 14, '
    '16384 one-byte registers).  Build with pipeline.distinct_sketch(x), combine with pipeline.distinct_merge '
    'or pipeline.distinct_union, read with pipeline.distinct_count';

-- Without a cast function from the string types, PostgreSQL would read
-- pipeline.distinct_sketch(text_column) as an I/O conversion of the column
-- to the type (a one-argument call named like a type) instead of calling
-- the aggregate.  A cast function takes that reading away; it parses like
-- the input function.  One per core string type (domains over them use
-- their base type's cast).
CREATE FUNCTION pipeline._distinct_sketch_from_text(text) RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_from_text';
COMMENT ON FUNCTION pipeline._distinct_sketch_from_text(text) IS
    'internal: cast from text and varchar to pipeline.distinct_sketch (same syntax as its input)';
CREATE FUNCTION pipeline._distinct_sketch_from_text(bpchar) RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_from_text';
COMMENT ON FUNCTION pipeline._distinct_sketch_from_text(bpchar) IS
    'internal: cast from char(n) to pipeline.distinct_sketch (same syntax as its input)';
CREATE FUNCTION pipeline._distinct_sketch_from_text(name) RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_from_name';
COMMENT ON FUNCTION pipeline._distinct_sketch_from_text(name) IS
    'internal: cast from name to pipeline.distinct_sketch (same syntax as its input)';
CREATE CAST (text AS pipeline.distinct_sketch)
    WITH FUNCTION pipeline._distinct_sketch_from_text(text);
CREATE CAST (varchar AS pipeline.distinct_sketch)
    WITH FUNCTION pipeline._distinct_sketch_from_text(text);
CREATE CAST (bpchar AS pipeline.distinct_sketch)
    WITH FUNCTION pipeline._distinct_sketch_from_text(bpchar);
CREATE CAST (name AS pipeline.distinct_sketch)
    WITH FUNCTION pipeline._distinct_sketch_from_text(name);
COMMENT ON CAST (text AS pipeline.distinct_sketch) IS
    'parses the text form; makes pipeline.distinct_sketch(text_value) the aggregate, not a conversion';
COMMENT ON CAST (varchar AS pipeline.distinct_sketch) IS
    'parses the text form; makes pipeline.distinct_sketch(varchar_value) the aggregate, not a conversion';
COMMENT ON CAST (bpchar AS pipeline.distinct_sketch) IS
    'parses the text form; makes pipeline.distinct_sketch(char_value) the aggregate, not a conversion';
COMMENT ON CAST (name AS pipeline.distinct_sketch) IS
    'parses the text form; makes pipeline.distinct_sketch(name_value) the aggregate, not a conversion';

-- Aggregate support.  The transition functions are not strict: they create
-- the internal state on the first non-NULL input and skip NULLs.
CREATE FUNCTION pipeline._distinct_sketch_add(internal, anyelement) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_sketch_add';
COMMENT ON FUNCTION pipeline._distinct_sketch_add(internal, anyelement) IS
    'internal: transition function of pipeline.distinct_sketch (adds the hash of one value)';

CREATE FUNCTION pipeline._distinct_merge_add(internal, pipeline.distinct_sketch) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_merge_add';
COMMENT ON FUNCTION pipeline._distinct_merge_add(internal, pipeline.distinct_sketch) IS
    'internal: transition function of pipeline.distinct_merge (folds one sketch in)';

CREATE FUNCTION pipeline._distinct_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_combine';
COMMENT ON FUNCTION pipeline._distinct_combine(internal, internal) IS
    'internal: combine function of the sketch aggregates (union of two partial states)';

CREATE FUNCTION pipeline._distinct_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_serialize';
COMMENT ON FUNCTION pipeline._distinct_serialize(internal) IS
    'internal: serial function of the sketch aggregates (the state as the binary form)';

CREATE FUNCTION pipeline._distinct_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_deserialize';
COMMENT ON FUNCTION pipeline._distinct_deserialize(bytea, internal) IS
    'internal: deserial function of the sketch aggregates';

CREATE FUNCTION pipeline._distinct_final(internal) RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_final';
COMMENT ON FUNCTION pipeline._distinct_final(internal) IS
    'internal: final function of the sketch aggregates';

CREATE AGGREGATE pipeline.distinct_sketch(anyelement) (
    SFUNC = pipeline._distinct_sketch_add,
    STYPE = internal,
    FINALFUNC = pipeline._distinct_final,
    COMBINEFUNC = pipeline._distinct_combine,
    SERIALFUNC = pipeline._distinct_serialize,
    DESERIALFUNC = pipeline._distinct_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.distinct_sketch(anyelement) IS
    'sketch of the distinct non-NULL values (NULL when there are none); values are hashed with their type''s '
    'hash function and collation, so equal values count once; exact up to 1024 distinct values';

CREATE AGGREGATE pipeline.distinct_merge(pipeline.distinct_sketch) (
    SFUNC = pipeline._distinct_merge_add,
    STYPE = internal,
    FINALFUNC = pipeline._distinct_final,
    COMBINEFUNC = pipeline._distinct_combine,
    SERIALFUNC = pipeline._distinct_serialize,
    DESERIALFUNC = pipeline._distinct_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.distinct_merge(pipeline.distinct_sketch) IS
    'union of sketches (NULLs skipped; NULL when there are none): equal, byte for byte, to the sketch of the union '
    'of the values, in any order';

CREATE FUNCTION pipeline.distinct_union(a pipeline.distinct_sketch, b pipeline.distinct_sketch)
    RETURNS pipeline.distinct_sketch
    LANGUAGE c IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_union';
COMMENT ON FUNCTION pipeline.distinct_union(pipeline.distinct_sketch, pipeline.distinct_sketch) IS
    'union of two sketches; a NULL side is absent (union with NULL is the other sketch): '
    'for ON CONFLICT DO UPDATE SET s = pipeline.distinct_union(t.s, excluded.s)';

CREATE FUNCTION pipeline.distinct_count(sketch pipeline.distinct_sketch) RETURNS bigint
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_distinct_count';
COMMENT ON FUNCTION pipeline.distinct_count(pipeline.distinct_sketch) IS
    'number of distinct values in a sketch: exact up to 1024, beyond that an estimate (0.81% standard error, '
    'within 2% in practice); NULL for a NULL sketch';

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
ALTER TABLE pipeline.metric_catalog ENABLE ROW LEVEL SECURITY;
CREATE POLICY metric_catalog_read ON pipeline.metric_catalog FOR SELECT USING (true);
CREATE POLICY metric_catalog_owner_update ON pipeline.metric_catalog FOR UPDATE
    USING (pg_catalog.pg_has_role(current_user, owner, 'USAGE'));
GRANT SELECT ON pipeline.metric_catalog TO PUBLIC;
GRANT UPDATE (fold_snapshot, events_folded, max_event_time, last_fold_at, last_fold_ms,
              last_cleanup_at, failures, last_error, last_error_at)
    ON pipeline.metric_catalog TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.metric_catalog', '');

CREATE VIEW pipeline.metrics AS
    SELECT m.metric, m.source, m.dimensions, m.measures, m.bucket, m.filter, m.hot_retention,
           m.hot_table, pg_catalog.format('metrics.%I', m.metric || '_live') AS live_view,
           m.owner, m.created_at
      FROM pipeline.metric_catalog AS m;
COMMENT ON VIEW pipeline.metrics IS 'the metrics: source, dimensions, measures, bucket, filter, hot retention and their views';
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

CREATE FUNCTION pipeline._hot_columns(def jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.string_agg(
             CASE m->>'agg'
               WHEN 'count_star' THEN pg_catalog.format('%I bigint NOT NULL', m->>'name')
               WHEN 'count' THEN pg_catalog.format('%I bigint NOT NULL', m->>'name')
               WHEN 'count_distinct' THEN pg_catalog.format('%I pipeline.distinct_sketch', m->>'name')
               WHEN 'avg' THEN pg_catalog.format('%I %s, %I bigint NOT NULL',
                                  m->>'name' || '_sum', (m->>'sum_type'), m->>'name' || '_count')
               ELSE pg_catalog.format('%I %s', m->>'name', m->>'type')
             END, ', ' ORDER BY o)
      FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS e(m, o));

CREATE FUNCTION pipeline._fold_select(def jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.string_agg(
             CASE m->>'agg'
               WHEN 'count_star' THEN 'pg_catalog.count(*)'
               WHEN 'count' THEN pg_catalog.format('pg_catalog.count(%s)', m->>'expr')
               WHEN 'count_distinct' THEN pg_catalog.format('pipeline.distinct_sketch(%s)', m->>'expr')
               WHEN 'avg' THEN pg_catalog.format('pg_catalog.sum(%s), pg_catalog.count(%s)', m->>'expr', m->>'expr')
               ELSE pg_catalog.format('pg_catalog.%s(%s)', m->>'agg', m->>'expr')
             END, ', ' ORDER BY o)
      FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS e(m, o));

CREATE FUNCTION pipeline._fold_merge(def jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.string_agg(
             CASE m->>'agg'
               WHEN 'count_star' THEN pg_catalog.format('%1$I = h.%1$I + excluded.%1$I', m->>'name')
               WHEN 'count' THEN pg_catalog.format('%1$I = h.%1$I + excluded.%1$I', m->>'name')
               WHEN 'count_distinct' THEN pg_catalog.format('%1$I = pipeline.distinct_union(h.%1$I, excluded.%1$I)', m->>'name')
               WHEN 'sum' THEN pg_catalog.format('%1$I = COALESCE(h.%1$I + excluded.%1$I, h.%1$I, excluded.%1$I)', m->>'name')
               WHEN 'min' THEN pg_catalog.format('%1$I = LEAST(h.%1$I, excluded.%1$I)', m->>'name')
               WHEN 'max' THEN pg_catalog.format('%1$I = GREATEST(h.%1$I, excluded.%1$I)', m->>'name')
               WHEN 'avg' THEN pg_catalog.format(
                   '%1$I = COALESCE(h.%1$I + excluded.%1$I, h.%1$I, excluded.%1$I), %2$I = h.%2$I + excluded.%2$I',
                   m->>'name' || '_sum', m->>'name' || '_count')
             END, ', ' ORDER BY o)
      FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS e(m, o));

CREATE FUNCTION pipeline._live_select(def jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.string_agg(
             CASE m->>'agg'
               WHEN 'count_distinct' THEN pg_catalog.format(
                   'pipeline.distinct_count(h.%1$I) AS %1$I, h.%1$I AS %2$I', m->>'name', m->>'name' || '_sketch')
               WHEN 'avg' THEN pg_catalog.format(
                   'CASE WHEN h.%2$I > 0 THEN (h.%1$I / h.%2$I::%4$s)::%4$s END AS %3$I',
                   m->>'name' || '_sum', m->>'name' || '_count', m->>'name', m->>'type')
               ELSE pg_catalog.format('h.%1$I', m->>'name')
             END, ', ' ORDER BY o)
      FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS e(m, o));

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
    states text[] := ARRAY(SELECT CASE WHEN e->>'agg' = 'avg' THEN x ELSE e->>'name' END
                             FROM pg_catalog.jsonb_array_elements(def->'measures') AS e,
                                  LATERAL pg_catalog.unnest(CASE WHEN e->>'agg' = 'avg'
                                      THEN ARRAY[e->>'name' || '_sum', e->>'name' || '_count']
                                      ELSE ARRAY[e->>'name'] END) AS x);
    sketches text[] := ARRAY(SELECT (e->>'name') || '_sketch' FROM pg_catalog.jsonb_array_elements(def->'measures') AS e
                              WHERE e->>'agg' = 'count_distinct');
    hidden text[] := ARRAY(SELECT x FROM pg_catalog.jsonb_array_elements(def->'measures') AS e,
                                  LATERAL pg_catalog.unnest(ARRAY['_' || (e->>'name') || '_sum', '_' || (e->>'name') || '_count']) AS x
                            WHERE e->>'agg' = 'avg');
    deltas text[] := ARRAY(SELECT x FROM pg_catalog.jsonb_array_elements(def->'measures') AS e,
                                  LATERAL pg_catalog.unnest(CASE e->>'agg'
                                      WHEN 'avg' THEN ARRAY[(e->>'name') || '_sum_delta', (e->>'name') || '_count_delta']
                                      WHEN 'min' THEN ARRAY[e->>'name'] WHEN 'max' THEN ARRAY[e->>'name']
                                      ELSE ARRAY[(e->>'name') || '_delta'] END) AS x);
    reconcile text[] := ARRAY(SELECT x FROM pg_catalog.jsonb_array_elements(def->'measures') AS e,
                                     LATERAL pg_catalog.unnest(ARRAY[(e->>'name') || '_live', (e->>'name') || '_daily',
                                         (e->>'name') || '_restated', (e->>'name') || '_difference']) AS x);
    relation text;
    cols text[];
    dup text;
BEGIN
    FOR relation, cols IN VALUES
        ('hot table', ARRAY['bucket'] || dims || states),
        ('live view', ARRAY['bucket', 'settled'] || dims || names || sketches),
        ('daily table', ARRAY['day', 'status', 'computed_at', 'frozen_at'] || dims || names || hidden),
        ('corrections table', ARRAY['correction_id', 'day', 'late_events', 'batch_ids', 'created_at'] || dims || names || hidden),
        ('corrections view', ARRAY['day', 'late_events', 'batch_ids', 'created_at'] || dims || deltas),
        ('restated view', ARRAY['day', 'corrected'] || dims || names),
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

-- A metric's compiled definition: dimensions, measures (an avg keeps a sum,
-- numeric for exact types, and a count) and filter, deparsed.
CREATE FUNCTION pipeline._metric_definition(raw regclass, dimensions text[], measures text, filter text)
    RETURNS jsonb
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.jsonb_set(d, '{measures}', (
        SELECT pg_catalog.jsonb_agg(CASE WHEN e->>'agg' = 'avg'
                   THEN e || pg_catalog.jsonb_build_object('sum_type',
                          CASE WHEN e->>'type' = 'double precision' THEN 'double precision'
                               WHEN e->>'type' = 'interval' THEN 'interval'
                               ELSE 'numeric' END)
                   ELSE e END ORDER BY o)
          FROM pg_catalog.jsonb_array_elements(d->'measures') WITH ORDINALITY AS x(e, o)))
      FROM (SELECT pipeline._compile_metric(raw, dimensions, measures, filter) AS d) AS c);
COMMENT ON FUNCTION pipeline._metric_definition(regclass, text[], text, text) IS
    'internal: a metric''s checked, deparsed definition with the states its measures keep';

-- The catalog row of a new metric is written here, as the extension owner:
-- the definition is compiled again and the fold statement generated here,
-- so nothing a caller writes is ever executed by the worker, run_hot or
-- close_days.  It registers only a hot table created in this very
-- transaction (by create_metric), and its owner owns the metric.
CREATE FUNCTION pipeline._register_metric(metric text, source text, dimensions text[], measures text,
        bucket interval, filter text, hot_retention interval)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
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
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS c WHERE c.source = _register_metric.source;
    SELECT c.relowner INTO hot_owner FROM pg_catalog.pg_class AS c
     WHERE c.oid = hot_oid AND c.xmin = pg_catalog.xid(pg_catalog.pg_current_xact_id());
    IF hot_owner IS NULL OR EXISTS (SELECT FROM pipeline.metric_catalog AS c WHERE c.metric = _register_metric.metric) THEN
        RAISE EXCEPTION 'metric "%" cannot be registered', metric
            USING ERRCODE = 'insufficient_privilege', HINT = 'Use pipeline.create_metric().';
    END IF;
    def := pipeline._metric_definition(s.raw_table, dimensions, measures, filter);
    dims := pipeline._dims(def);

    -- $1 batch ids, $2/$3 their event-time range (partition pruning),
    -- $4 the oldest bucket hot retention keeps
    fold := pg_catalog.format(
        'INSERT INTO pipeline.%1$I AS h (bucket%2$s, %3$s) '
        'SELECT pg_catalog.date_bin(%4$L::interval, r.%5$I, %6$L::timestamptz) AS bucket%7$s, %8$s '
        'FROM %9$s AS r '
        'WHERE r._pl_batch OPERATOR(pg_catalog.=) ANY ($1) '
        'AND r.%5$I OPERATOR(pg_catalog.>=) $2 AND r.%5$I OPERATOR(pg_catalog.<=) $3 '
        'AND pg_catalog.date_bin(%4$L::interval, r.%5$I, %6$L::timestamptz) OPERATOR(pg_catalog.>=) $4 '
        'AND (%10$s) '
        'GROUP BY %11$s '
        'ON CONFLICT ON CONSTRAINT %12$I DO UPDATE SET %13$s',
        hot, dims,
        (SELECT pg_catalog.string_agg(
                  CASE WHEN e->>'agg' = 'avg'
                       THEN pg_catalog.format('%I, %I', e->>'name' || '_sum', e->>'name' || '_count')
                       ELSE pg_catalog.format('%I', e->>'name') END, ', ' ORDER BY o)
           FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS x(e, o)),
        bucket, s.event_time, '2000-01-01 00:00:00+00',
        pipeline._dims(def, 'r.'),
        pipeline._fold_select(def), s.raw_table, COALESCE(def->>'filter', 'true'),
        (SELECT pg_catalog.string_agg(i::text, ', ')
           FROM pg_catalog.generate_series(1, 1 + pg_catalog.jsonb_array_length(def->'dimensions')) AS i),
        hot || '_key', pipeline._fold_merge(def));

    -- an empty snapshot: the first fold takes every batch already stored
    INSERT INTO pipeline.metric_catalog (metric, source, dimensions, measures, bucket, filter,
            hot_retention, definition, fold_sql, hot_table, owner, fold_snapshot)
        VALUES (metric, s.source, dimensions, measures, bucket, filter, hot_retention, def, fold,
                hot_oid, hot_owner::regrole, '1:1:'::pg_snapshot);
END
$fn$;
COMMENT ON FUNCTION pipeline._register_metric(text, text, text[], text, interval, text, interval) IS
    'internal: records a metric whose hot table this transaction created, with the fold statement generated here';

-- Removes a metric's catalog row once its hot table is gone: dropping the
-- table is what takes ownership (drop_metric does it first, as its caller).
CREATE FUNCTION pipeline._unregister_metric(metric text)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $fn$
BEGIN
    IF pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', metric || '_hot')) IS NOT NULL THEN
        RAISE EXCEPTION 'permission denied to unregister metric %', metric
            USING ERRCODE = 'insufficient_privilege', HINT = 'Use pipeline.drop_metric().';
    END IF;
    DELETE FROM pipeline.metric_catalog AS c WHERE c.metric = _unregister_metric.metric;
END
$fn$;
COMMENT ON FUNCTION pipeline._unregister_metric(text) IS 'internal: removes the catalog row of a metric whose hot table was dropped';

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
    IF EXISTS (SELECT FROM pipeline.metric_catalog AS c WHERE c.metric = create_metric.metric) THEN
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

    def := pipeline._metric_definition(s.raw_table, dimensions, measures, filter);
    PERFORM pipeline._check_generated_names(def);

    dims := pipeline._dims(def);
    dim_defs := pipeline._dims_typed(def);

    EXECUTE pg_catalog.format(
        'CREATE TABLE pipeline.%I (bucket timestamptz NOT NULL%s, %s, '
        'CONSTRAINT %I UNIQUE NULLS NOT DISTINCT (bucket%s))',
        hot, dim_defs, pipeline._hot_columns(def), hot || '_key', dims);
    PERFORM pipeline._depend_on_extension(pg_catalog.format('pipeline.%I', hot)::regclass);

    EXECUTE pg_catalog.format(
        'CREATE VIEW metrics.%I AS SELECT h.bucket%s, %s, '
        '(h.bucket + %L::interval) <= (SELECT m.max_event_time - s.allowed_lateness '
        'FROM pipeline.metric_catalog AS m JOIN pipeline.source_catalog AS s USING (source) '
        'WHERE m.metric = %L) AS settled FROM pipeline.%I AS h',
        live, pipeline._dims(def, 'h.'),
        pipeline._live_select(def), bucket, metric, hot);
    EXECUTE pg_catalog.format('GRANT SELECT ON metrics.%I TO pipeline_reader', live);
    EXECUTE pg_catalog.format('COMMENT ON VIEW metrics.%I IS %L', live,
        pg_catalog.format('metric %s: hot buckets of %s, seconds behind ingest; distinct counts are estimates', metric, bucket));

    PERFORM pipeline._register_metric(metric, s.source, dimensions, measures, bucket, filter, hot_retention);
    PERFORM pipeline._create_daily(metric);
END
$fn$;
COMMENT ON FUNCTION pipeline.create_metric(text, text, text[], text, interval, text, interval) IS
    'creates a metric: checks measures and filter, creates its hot table and metrics.<metric>_live';

-- Generated statements call pipeline's functions by name.  Roles that may
-- create sources and metrics have CREATE on schema pipeline, so one could
-- add an overload that a generated call would pick (a distinct_sketch
-- taking integer, say): the layers that run generated SQL refuse to while
-- the schema holds a function or operator that is not the extension's.
CREATE FUNCTION pipeline._check_schema() RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    stranger text;
BEGIN
    SELECT x.what INTO stranger
      FROM (SELECT pg_catalog.format('function %s (owned by %s)', p.oid::regprocedure, p.proowner::regrole) AS what,
                   'pg_catalog.pg_proc'::regclass AS cls, p.oid
              FROM pg_catalog.pg_proc AS p WHERE p.pronamespace = 'pipeline'::regnamespace
            UNION ALL
            SELECT pg_catalog.format('operator %s (owned by %s)', o.oid::regoperator, o.oprowner::regrole),
                   'pg_catalog.pg_operator'::regclass, o.oid
              FROM pg_catalog.pg_operator AS o WHERE o.oprnamespace = 'pipeline'::regnamespace) AS x
     WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_depend AS d
                        WHERE d.classid = x.cls AND d.objid = x.oid AND d.deptype = 'e'
                          AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension AS e WHERE e.extname = 'pipeline'))
     LIMIT 1;
    IF stranger IS NOT NULL THEN
        RAISE EXCEPTION 'schema pipeline holds % that is not part of the extension', stranger
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Only the extension''s own functions and operators may live in schema pipeline; drop it.';
    END IF;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_schema() IS
    'internal: refuses to go on while schema pipeline holds functions or operators that are not the extension''s';

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
    n bigint;
    lo timestamptz;
    hi timestamptz;
BEGIN
    SELECT * INTO m FROM pipeline.metric_catalog AS c
     WHERE c.metric = _fold.metric FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    PERFORM pipeline._check_schema();

    SELECT pg_catalog.array_agg(b.batch_id), COALESCE(pg_catalog.sum(b.accepted), 0),
           pg_catalog.min(b.min_event_time), pg_catalog.max(b.max_event_time)
      INTO ids, n, lo, hi
      FROM pipeline.batch_log AS b
     WHERE b.source = m.source
       AND b.xid >= pg_catalog.pg_snapshot_xmin(m.fold_snapshot)
       AND NOT pg_catalog.pg_visible_in_snapshot(b.xid, m.fold_snapshot)
       AND pg_catalog.pg_visible_in_snapshot(b.xid, cur)
       AND b.accepted > 0;

    IF n > 0 THEN
        EXECUTE m.fold_sql USING ids, lo, hi, pg_catalog.now() - m.hot_retention;
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
    m pipeline.metric_catalog;
BEGIN
    SELECT * INTO m FROM pipeline.metric_catalog AS c WHERE c.metric = drop_metric.metric;
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
    PERFORM pipeline._drop_daily(m.metric);
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
      FROM pipeline.metric_catalog AS c WHERE c.source = _drop_source_metrics.source;
    IF names IS NULL THEN
        RETURN;
    END IF;
    IF NOT cascade THEN
        RAISE EXCEPTION 'source "%" is used by metrics: %', source, names
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Drop the metrics first, or call pipeline.drop_source(source, cascade => true).';
    END IF;
    FOR name IN SELECT c.metric FROM pipeline.metric_catalog AS c
                 WHERE c.source = _drop_source_metrics.source ORDER BY 1
    LOOP
        PERFORM pipeline.drop_metric(name);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pipeline._drop_source_metrics(text, boolean) IS
    'internal: refuses to drop a source its metrics use, or drops them with cascade';
-- The order-independent digest (src/digest.c): a fingerprint of a multiset
-- of strings, to prove that a frozen day has not changed, e.g.
--   SELECT pipeline.digest(d::text) FROM pipeline.sales_daily AS d WHERE day = ...
--
-- The C functions here do not pin search_path: they resolve no names, and
-- a SET clause would route every call (one per row for the transition
-- function) through a GUC save and restore.

CREATE FUNCTION pipeline._digest_add(internal, text) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_digest_add';
COMMENT ON FUNCTION pipeline._digest_add(internal, text) IS
    'internal: transition function of pipeline.digest (adds one string, or NULL, to the multiset)';

CREATE FUNCTION pipeline._digest_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_digest_combine';
COMMENT ON FUNCTION pipeline._digest_combine(internal, internal) IS
    'internal: combine function of pipeline.digest (digest of the union of two multisets)';

CREATE FUNCTION pipeline._digest_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_digest_serialize';
COMMENT ON FUNCTION pipeline._digest_serialize(internal) IS
    'internal: serial function of pipeline.digest (count and the two sums, 24 bytes)';

CREATE FUNCTION pipeline._digest_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_digest_deserialize';
COMMENT ON FUNCTION pipeline._digest_deserialize(bytea, internal) IS
    'internal: deserial function of pipeline.digest';

-- not strict: no rows leave the state NULL, and the empty multiset has a digest
CREATE FUNCTION pipeline._digest_final(internal) RETURNS text
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_digest_final';
COMMENT ON FUNCTION pipeline._digest_final(internal) IS
    'internal: final function of pipeline.digest (the 50-digit hex text form)';

CREATE AGGREGATE pipeline.digest(text) (
    SFUNC = pipeline._digest_add,
    STYPE = internal,
    FINALFUNC = pipeline._digest_final,
    COMBINEFUNC = pipeline._digest_combine,
    SERIALFUNC = pipeline._digest_serialize,
    DESERIALFUNC = pipeline._digest_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.digest(text) IS
    'order-independent digest of the multiset of its inputs (duplicates count, NULL differs from ''''): '
    '50 hex digits = format version 01, element count, two 64-bit sums of per-string hashes; never NULL '
    '(no rows give the digest of the empty multiset).  Digest rows as text (d::text): pin TimeZone, DateStyle, '
    'IntervalStyle and extra_float_digits where the text form depends on them';
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

-- Generated SQL pieces, one place per measure kind, as for the hot layer.
CREATE FUNCTION pipeline._daily_columns(def jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.string_agg(
             CASE m->>'agg'
               WHEN 'count_star' THEN pg_catalog.format('%I bigint NOT NULL', m->>'name')
               WHEN 'count' THEN pg_catalog.format('%I bigint NOT NULL', m->>'name')
               WHEN 'count_distinct' THEN pg_catalog.format('%I bigint NOT NULL', m->>'name')
               WHEN 'avg' THEN pg_catalog.format('%I %s, %I %s, %I bigint NOT NULL',
                                  m->>'name', m->>'type', '_' || (m->>'name') || '_sum',
                                  m->>'sum_type', '_' || (m->>'name') || '_count')
               ELSE pg_catalog.format('%I %s', m->>'name', m->>'type')
             END, ', ' ORDER BY o)
      FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS e(m, o));

-- exact aggregates over raw rows r (count(DISTINCT) is exact here)
CREATE FUNCTION pipeline._daily_select(def jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.string_agg(
             CASE m->>'agg'
               WHEN 'count_star' THEN pg_catalog.format('pg_catalog.count(*) AS %I', m->>'name')
               WHEN 'count' THEN pg_catalog.format('pg_catalog.count(%s) AS %I', m->>'expr', m->>'name')
               WHEN 'count_distinct' THEN pg_catalog.format('pg_catalog.count(DISTINCT %s) AS %I', m->>'expr', m->>'name')
               WHEN 'avg' THEN pg_catalog.format('pg_catalog.avg(%1$s) AS %2$I, pg_catalog.sum(%1$s) AS %3$I, pg_catalog.count(%1$s) AS %4$I',
                                  m->>'expr', m->>'name', '_' || (m->>'name') || '_sum', '_' || (m->>'name') || '_count')
               ELSE pg_catalog.format('pg_catalog.%s(%s) AS %I', m->>'agg', m->>'expr', m->>'name')
             END, ', ' ORDER BY o)
      FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS e(m, o));

CREATE FUNCTION pipeline._daily_names(def jsonb, prefix text DEFAULT '') RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.string_agg(
             CASE WHEN m->>'agg' = 'avg'
                  THEN pg_catalog.format('%1$s%2$I, %1$s%3$I, %1$s%4$I', prefix, m->>'name',
                                         '_' || (m->>'name') || '_sum', '_' || (m->>'name') || '_count')
                  ELSE pg_catalog.format('%s%I', prefix, m->>'name') END, ', ' ORDER BY o)
      FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS e(m, o));

-- Restated value of each measure over a union of daily rows (frozen
-- values) and correction rows (deltas): sums of counts and sums, extremes
-- of extremes, exact distinct counts plus their deltas.
CREATE FUNCTION pipeline._restated_select(def jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.string_agg(
             CASE m->>'agg'
               WHEN 'min' THEN pg_catalog.format('pg_catalog.min(u.%1$I) AS %1$I', m->>'name')
               WHEN 'max' THEN pg_catalog.format('pg_catalog.max(u.%1$I) AS %1$I', m->>'name')
               WHEN 'avg' THEN pg_catalog.format(
                   '(pg_catalog.sum(u.%2$I) / NULLIF(pg_catalog.sum(u.%3$I), 0)::%4$s)::%4$s AS %1$I',
                   m->>'name', '_' || (m->>'name') || '_sum', '_' || (m->>'name') || '_count', m->>'type')
               WHEN 'sum' THEN pg_catalog.format('pg_catalog.sum(u.%1$I) AS %1$I', m->>'name')
               ELSE pg_catalog.format('pg_catalog.sum(u.%1$I)::bigint AS %1$I', m->>'name')
             END, ', ' ORDER BY o)
      FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS e(m, o));

-- Creates the daily layer of a metric: tables owned by the extension owner
-- (so no other role can touch a frozen row), their guards and the views.
-- Runs as the extension owner; safe for anyone to call, since it only
-- builds the layer of a registered metric that has none yet.
CREATE FUNCTION pipeline._create_daily(metric text)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
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
        pipeline._daily_columns(def), daily || '_key', key);
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
        replace(pipeline._daily_columns(def), ' NOT NULL', ''));
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
        (SELECT pg_catalog.string_agg(
                  CASE WHEN e->>'agg' IN ('min', 'max')
                       THEN pg_catalog.format('c.%1$I AS %1$I', e->>'name')
                       WHEN e->>'agg' = 'avg'
                       THEN pg_catalog.format('c.%I AS %I, c.%I AS %I',
                              '_' || (e->>'name') || '_sum', (e->>'name') || '_sum_delta',
                              '_' || (e->>'name') || '_count', (e->>'name') || '_count_delta')
                       ELSE pg_catalog.format('c.%I AS %I', e->>'name', (e->>'name') || '_delta') END,
                  ', ' ORDER BY o)
           FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS x(e, o)),
        corr);
    EXECUTE pg_catalog.format(
        'CREATE VIEW metrics.%1$I AS SELECT u.day%2$s, %3$s, pg_catalog.bool_or(u.is_correction) AS corrected '
        'FROM (SELECT d.day%4$s, %5$s, false AS is_correction FROM pipeline.%6$I AS d '
        '      UNION ALL '
        '      SELECT c.day%7$s, %8$s, true FROM pipeline.%9$I AS c) AS u '
        'GROUP BY u.day%2$s',
        metric || '_restated', pipeline._dims(def, 'u.'), pipeline._restated_select(def),
        pipeline._dims(def, 'd.'), pipeline._daily_names(def, 'd.'), daily,
        pipeline._dims(def, 'c.'), pipeline._daily_names(def, 'c.'), corr);
    PERFORM pipeline._create_reconcile_view(m.metric);
    PERFORM pipeline._depend_on_extension(pg_catalog.format('pipeline.%I', daily)::regclass);
    PERFORM pipeline._depend_on_extension(pg_catalog.format('pipeline.%I', corr)::regclass);

    EXECUTE pg_catalog.format('ALTER VIEW metrics.%I OWNER TO %I', daily, m.owner::text);
    EXECUTE pg_catalog.format('ALTER VIEW metrics.%I OWNER TO %I', corr, m.owner::text);
    EXECUTE pg_catalog.format('ALTER VIEW metrics.%I OWNER TO %I', metric || '_restated', m.owner::text);
    EXECUTE pg_catalog.format('GRANT SELECT ON pipeline.%I, pipeline.%I TO %I', daily, corr, m.owner::text);
    EXECUTE pg_catalog.format('GRANT SELECT ON metrics.%I, metrics.%I, metrics.%I, metrics.%I TO pipeline_reader',
                              daily, corr, metric || '_restated', metric || '_reconcile');
    EXECUTE pg_catalog.format('COMMENT ON VIEW metrics.%I IS %L', daily,
        pg_catalog.format('metric %s per day (%s): exact, provisional until frozen, frozen rows never change', metric, s.day_timezone));
    EXECUTE pg_catalog.format('COMMENT ON VIEW metrics.%I IS %L', corr,
        pg_catalog.format('metric %s: deltas of events accepted after their day froze, with the batches behind them (append-only)', metric));
    EXECUTE pg_catalog.format('COMMENT ON VIEW metrics.%I IS %L', metric || '_restated',
        pg_catalog.format('metric %s per day: frozen values plus corrections', metric));
END
$fn$;
COMMENT ON FUNCTION pipeline._create_daily(text) IS
    'internal: builds a metric''s daily tables, guards and views, owned by the extension owner';

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
    -- the hot rollup of a day, per measure kind
    SELECT pg_catalog.string_agg(
             CASE e->>'agg'
               WHEN 'count_distinct' THEN pg_catalog.format(
                   'pipeline.distinct_count(pipeline.distinct_merge(h.%1$I)) AS %1$I', e->>'name')
               WHEN 'min' THEN pg_catalog.format('pg_catalog.min(h.%1$I) AS %1$I', e->>'name')
               WHEN 'max' THEN pg_catalog.format('pg_catalog.max(h.%1$I) AS %1$I', e->>'name')
               WHEN 'avg' THEN pg_catalog.format(
                   '(pg_catalog.sum(h.%2$I) / NULLIF(pg_catalog.sum(h.%3$I), 0)::%4$s)::%4$s AS %1$I',
                   e->>'name', (e->>'name') || '_sum', (e->>'name') || '_count', e->>'type')
               WHEN 'sum' THEN pg_catalog.format('pg_catalog.sum(h.%1$I) AS %1$I', e->>'name')
               ELSE pg_catalog.format('pg_catalog.sum(h.%1$I)::bigint AS %1$I', e->>'name')
             END, ', ' ORDER BY o)
      INTO live_cols
      FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS x(e, o);
    SELECT pg_catalog.string_agg(pg_catalog.format(
               'l.%1$I AS %2$I, d.%1$I AS %3$I, r.%1$I AS %4$I, %5$s AS %6$I',
               e->>'name', (e->>'name') || '_live', (e->>'name') || '_daily', (e->>'name') || '_restated',
               CASE WHEN e->>'agg' IN ('count_star', 'count', 'count_distinct', 'sum', 'avg')
                    THEN pg_catalog.format('r.%1$I - l.%1$I', e->>'name')
                    ELSE pg_catalog.format('CASE WHEN r.%1$I IS DISTINCT FROM l.%1$I THEN r.%1$I END', e->>'name') END,
               (e->>'name') || '_difference'), ', ' ORDER BY o)
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
        EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(def->'measures') AS e WHERE e->>'agg' = 'count_distinct'),
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

-- Drops a metric's daily layer once its catalog row is gone (drop_metric
-- deletes it first, as the owner): nobody else can reach frozen data here.
CREATE FUNCTION pipeline._drop_daily(metric text)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
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
                                       pg_catalog.jsonb_array_elements(m.definition->'measures') AS e(x)
                            WHERE m.source = s.source AND x->>'agg' = 'count_distinct'
                              AND c.relname = pipeline._value_index_name(h.inhrelid::regclass, x->>'expr'))
    LOOP
        EXECUTE pg_catalog.format('DROP INDEX %s', idx);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pipeline._drop_daily(text) IS 'internal: drops the daily layer of a dropped metric';

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
        pipeline._daily_select(def),
        pipeline._dims_aliased(def, 'r.'),
        s.raw_table, s.event_time, COALESCE(def->>'filter', 'true'),
        pipeline._dims_group(def, 'r.'),
        m.metric || '_daily', pipeline._dims(def), pipeline._daily_names(def))
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

-- The first correction of a frozen day with distinct measures indexes the
-- values of each of them on the day's raw partition, so that it and every
-- later correction of that day look their few new values up in the index
-- (_correction_distinct) instead of scanning the day: on a 10M-event day,
-- seconds per correction without it, milliseconds with it.  Only days that
-- receive events after their freeze pay the build (one scan and sort of the
-- day, under a SHARE lock: ingest into that day waits for it, other days do
-- not).  The index includes the columns a lookup checks besides the value,
-- so that on a vacuumed day a lookup reads no heap page.  Only measures of
-- a plain column are indexed: an expression such as 100 / amount may fail
-- on rows the metric's filter leaves out, and its correction scans the day
-- instead.  The indexes go with their partition, or with the last metric
-- that counts their column (_drop_daily).
CREATE FUNCTION pipeline._index_day_values(m pipeline.metric_catalog, s pipeline.source_catalog, part regclass)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    col text;
    idx text;
    included text;
BEGIN
    FOR col IN
        SELECT DISTINCT x->>'expr'
          FROM pg_catalog.jsonb_array_elements(m.definition->'measures') AS e(x)
         WHERE x->>'agg' = 'count_distinct' AND pipeline._raw_column(s.raw_table, x->>'expr')
    LOOP
        idx := pipeline._value_index_name(part, col);
        CONTINUE WHEN pg_catalog.to_regclass(pg_catalog.format('pipeline.%I', idx)) IS NOT NULL;
        -- what a lookup checks besides the value, so that it reads the
        -- index alone: the batch, the event time, and the dimensions of
        -- every metric of the source that counts this column
        SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ') INTO included
          FROM (SELECT '_pl_batch' AS c
                UNION SELECT s.event_time
                UNION SELECT d->>'name'
                        FROM pipeline.metric_catalog AS o,
                             pg_catalog.jsonb_array_elements(o.definition->'dimensions') AS e(d)
                       WHERE o.source = s.source
                         AND EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(o.definition->'measures') AS f(x)
                                      WHERE x->>'agg' = 'count_distinct' AND x->>'expr' = col)) AS u
         WHERE pg_catalog.quote_ident(c) <> col;
        EXECUTE pg_catalog.format('CREATE INDEX %I ON %s (%s) INCLUDE (%s)', idx, part, col, included);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pipeline._index_day_values(pipeline.metric_catalog, pipeline.source_catalog, regclass) IS
    'internal: indexes the distinct-measure columns of a frozen day''s raw partitions for its corrections';

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
-- is an expression (no index, see _correction_distinct): the planner
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
    n bigint := 0;
    distinct_ctes text;
    part regclass;
    sort_setting text := pg_catalog.current_setting('enable_sort');
    jit_setting text := pg_catalog.current_setting('jit');
BEGIN
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS x WHERE x.source = m.source;
    lo := c.day::timestamp AT TIME ZONE s.day_timezone;
    hi := (c.day + 1)::timestamp AT TIME ZONE s.day_timezone;
    SELECT pg_catalog.array_agg(b.batch_id ORDER BY b.batch_id) INTO ids
      FROM pipeline.batch_log AS b
     WHERE b.source = m.source
       AND b.xid >= pg_catalog.pg_snapshot_xmin(c.corrected_snapshot)
       AND NOT pg_catalog.pg_visible_in_snapshot(b.xid, c.corrected_snapshot)
       AND pg_catalog.pg_visible_in_snapshot(b.xid, cur)
       AND b.accepted > 0 AND b.max_event_time >= lo AND b.min_event_time < hi;
    IF ids IS NOT NULL THEN
        -- (a frozen day has its partition, unless someone dropped it)
        part := COALESCE(pipeline._day_partition(s, c.day), s.raw_table);
        distinct_ctes := pipeline._correction_distinct(def, s.raw_table, part, s.event_time,
                                                       COALESCE(def->>'filter', 'true'));
        IF distinct_ctes <> '' THEN
            IF part <> s.raw_table THEN
                PERFORM pipeline._index_day_values(m, s, part);
            END IF;
            PERFORM pg_catalog.set_config('jit', 'off', true);
            IF EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(def->'measures') AS e(x)
                        WHERE x->>'agg' = 'count_distinct' AND NOT pipeline._raw_column(s.raw_table, x->>'expr')) THEN
                PERFORM pg_catalog.set_config('enable_sort', 'off', true);
            END IF;
        END IF;
        EXECUTE pg_catalog.format(
            'WITH new AS (SELECT %1$s%2$s, pg_catalog.count(*) AS _events, '
            '                    pg_catalog.array_agg(DISTINCT r._pl_batch) AS _batches '
            '               FROM %3$s AS r WHERE r._pl_batch = ANY ($4) '
            '                AND r.%4$I >= $2 AND r.%4$I < $3 AND (%5$s) GROUP BY %6$s)%12$s, '
            '     ins AS (INSERT INTO pipeline.%7$I (day%8$s, %9$s, late_events, batch_ids) '
            '             SELECT $1%10$s, %11$s, new._events, new._batches FROM new RETURNING 1) '
            'SELECT pg_catalog.count(*) FROM ins',
            pipeline._correction_select(def, s, m.metric),
            pipeline._dims_aliased(def, 'r.'),
            s.raw_table, s.event_time, COALESCE(def->>'filter', 'true'),
            pipeline._dims_group(def, 'r.'),
            m.metric || '_corrections', pipeline._dims(def), pipeline._daily_names(def),
            pipeline._dims(def, 'new.'),
            pipeline._correction_values(def, m.metric), distinct_ctes)
          INTO n USING c.day, lo, hi, ids, cur, s.source;
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

-- inside _correct_day's "new" CTE: the new events' aggregates
CREATE FUNCTION pipeline._correction_select(def jsonb, s pipeline.source_catalog, metric text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.string_agg(
             CASE m->>'agg'
               WHEN 'count_star' THEN pg_catalog.format('pg_catalog.count(*) AS %I', m->>'name')
               WHEN 'count' THEN pg_catalog.format('pg_catalog.count(%s) AS %I', m->>'expr', m->>'name')
               WHEN 'count_distinct' THEN pg_catalog.format('NULL::bigint AS %I', m->>'name')
               WHEN 'avg' THEN pg_catalog.format('pg_catalog.sum(%1$s) AS %2$I, pg_catalog.count(%1$s) AS %3$I',
                                  m->>'expr', '_' || (m->>'name') || '_sum', '_' || (m->>'name') || '_count')
               ELSE pg_catalog.format('pg_catalog.%s(%s) AS %I', m->>'agg', m->>'expr', m->>'name')
             END, ', ' ORDER BY o)
      FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS e(m, o));

-- inside _correct_day's statement, per distinct measure number N, the
-- values the new events add to each group:
--   _pl_new_N    the new events' (group, value) pairs;
--   _pl_fresh_N  per group, how many of them no other event of the day
--                has: the delta (MATERIALIZED: read by a subquery per
--                correction row, it would otherwise be inlined there and
--                run once per group).
-- For a measure of a plain column, each new value is looked up in the
-- day partition's index on that column (_index_day_values) and the lookup
-- stops at the first other event with it (LIMIT 1: a popular value has
-- thousands), so a correction costs as much as its few new values.  The
-- lookup reads the partition itself, not the raw table: through the parent
-- the planner keeps only the cheapest full scan of the child (a bitmap
-- scan, which reads every entry of the value), not the index scan that
-- stops at the first.  For an expression there is no index: _pl_seen_N
-- collects, in one scan of the day that hashes the few new values, those
-- some other event has.
-- "Other events" are those the snapshot cur ($5) saw outside the new
-- batches ($4): a batch that committed after cur is visible to this
-- statement but excluded, so that its values count when it is corrected
-- itself, exactly once.  The frozen value was exact, so each delta is too.
CREATE FUNCTION pipeline._correction_distinct(def jsonb, raw regclass, part regclass, event_time text, filter text)
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT COALESCE(pg_catalog.string_agg(
             pg_catalog.format(
                 ', _pl_new_%1$s AS (SELECT DISTINCT %2$s AS _pl_v%3$s FROM %4$s AS r '
                 '                   WHERE r._pl_batch = ANY ($4) AND r.%5$I >= $2 AND r.%5$I < $3 AND (%6$s) '
                 '                     AND (%2$s) IS NOT NULL), ',
                 o, m->>'expr', pipeline._dims_aliased(def, 'r.'), raw, event_time, filter)
             || CASE WHEN pipeline._raw_column(raw, m->>'expr') THEN pg_catalog.format(
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
      FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS e(m, o),
           LATERAL (SELECT CASE WHEN def->'dimensions' = '[]' THEN '1' ELSE pipeline._dims_group(def, 'n.') END AS grp,
                           pg_catalog.format(
                               'r.%1$I >= $2 AND r.%1$I < $3 AND (%2$s) AND r._pl_batch <> ALL ($4) '
                               'AND r._pl_batch NOT IN (SELECT b.batch_id FROM pipeline.batch_log AS b '
                               '                         WHERE b.source = $6 '
                               '                           AND b.xid >= pg_catalog.pg_snapshot_xmin($5) '
                               '                           AND NOT pg_catalog.pg_visible_in_snapshot(b.xid, $5))',
                               event_time, filter) AS other) AS k
     WHERE m->>'agg' = 'count_distinct');
COMMENT ON FUNCTION pipeline._correction_distinct(jsonb, regclass, regclass, text, text) IS
    'internal: the CTEs of _correct_day that count, per group, the distinct values new to a frozen day';

-- the correction row's value of each measure, from "new", the distinct
-- deltas and the day's restated values so far (metrics.<metric>_restated,
-- joined per group)
CREATE FUNCTION pipeline._correction_values(def jsonb, metric text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.string_agg(
             CASE m->>'agg'
               WHEN 'min' THEN pg_catalog.format(
                   '(SELECT CASE WHEN p.%1$I IS NULL OR new.%1$I < p.%1$I THEN new.%1$I END '
                   '   FROM (SELECT (SELECT x.%1$I FROM metrics.%2$I AS x WHERE x.day = $1%3$s) AS %1$I) AS p)',
                   m->>'name', metric || '_restated', dim_match)
               WHEN 'max' THEN pg_catalog.format(
                   '(SELECT CASE WHEN p.%1$I IS NULL OR new.%1$I > p.%1$I THEN new.%1$I END '
                   '   FROM (SELECT (SELECT x.%1$I FROM metrics.%2$I AS x WHERE x.day = $1%3$s) AS %1$I) AS p)',
                   m->>'name', metric || '_restated', dim_match)
               WHEN 'count_distinct' THEN pg_catalog.format(
                   'COALESCE((SELECT f._pl_n FROM _pl_fresh_%s AS f WHERE true%s), 0)',
                   o, pipeline._dims_match(def, 'f', 'new'))
               WHEN 'avg' THEN pg_catalog.format('NULL::%s, new.%I, new.%I', m->>'type',
                   '_' || (m->>'name') || '_sum', '_' || (m->>'name') || '_count')
               ELSE pg_catalog.format('new.%I', m->>'name')
             END, ', ' ORDER BY o)
      FROM pg_catalog.jsonb_array_elements(def->'measures') WITH ORDINALITY AS e(m, o),
           LATERAL (SELECT pipeline._dims_match(def, 'x', 'new') AS dim_match) AS j);

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
BEGIN
    PERFORM pipeline._check_schema();
    FOR m IN SELECT * FROM pipeline.metric_catalog ORDER BY 1 LOOP
        SELECT * INTO STRICT s FROM pipeline.source_catalog AS x WHERE x.source = m.source;
        FOR d IN SELECT pipeline._source_days(s.source) LOOP
            day_end := (d + 1)::timestamp AT TIME ZONE s.day_timezone;
            CONTINUE WHEN as_of < day_end + s.allowed_lateness;     -- still open
            INSERT INTO pipeline.day_closures AS x (metric, day, status)
                VALUES (m.metric, d, 'provisional') ON CONFLICT DO NOTHING;
            -- one closer per day at a time; a second waits, then sees the result
            SELECT * INTO STRICT c FROM pipeline.day_closures AS x
             WHERE x.metric = m.metric AND x.day = d FOR UPDATE;
            metric := m.metric;
            day := d;
            IF c.status = 'frozen' THEN
                n := pipeline._correct_day(m, c);
                IF n > 0 THEN
                    action := 'corrected';
                    RETURN NEXT;
                END IF;
            ELSIF as_of >= day_end + s.freeze_after
                  AND pg_catalog.cardinality(pipeline._blocking_checks(m.metric)) > 0
                  AND NOT EXISTS (SELECT FROM pipeline.day_releases AS r WHERE r.metric = m.metric AND r.day = d) THEN
                -- held: still recomputed exactly, not frozen while a blocking check fails
                PERFORM pipeline._compute_day(m, d, 'held', as_of);
                UPDATE pipeline.day_closures AS x SET status = 'held', computed_at = pg_catalog.now()
                 WHERE x.metric = m.metric AND x.day = d;
                action := 'held';
                RETURN NEXT;
            ELSIF as_of >= day_end + s.freeze_after THEN
                SELECT * INTO snap, n FROM pipeline._compute_day(m, d, 'frozen', as_of);
                PERFORM pipeline._record_freeze(m.metric, d, 1, as_of, snap, n);
                action := 'frozen';
                RETURN NEXT;
            ELSE
                PERFORM pipeline._compute_day(m, d, 'provisional', as_of);
                UPDATE pipeline.day_closures AS x SET computed_at = pg_catalog.now()
                 WHERE x.metric = m.metric AND x.day = d;
                action := 'provisional';
                RETURN NEXT;
            END IF;
        END LOOP;
        -- this run passed over every day ending allowed_lateness before
        -- as_of, those without events too (never later than a run before)
        INSERT INTO pipeline.close_runs AS x (metric, closed_as_of, ran_at)
            VALUES (m.metric, as_of, pg_catalog.now())
            ON CONFLICT ON CONSTRAINT close_runs_pkey
            DO UPDATE SET closed_as_of = GREATEST(x.closed_as_of, EXCLUDED.closed_as_of), ran_at = EXCLUDED.ran_at;
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
-- Schema evolution: contract changes, aliases for renamed columns, drift
-- shares, and replay of dead letters against the current contract.

-- The owner of a source records its contract versions and aliases itself
-- (as invoker); row-level security keeps every role to its own sources.
ALTER TABLE pipeline.source_catalog ENABLE ROW LEVEL SECURITY;
CREATE POLICY source_catalog_read ON pipeline.source_catalog FOR SELECT USING (true);
CREATE POLICY source_catalog_owner_update ON pipeline.source_catalog FOR UPDATE
    USING (pg_catalog.pg_has_role(current_user, owner, 'USAGE'));
GRANT UPDATE (contract_version, event_id, event_time) ON pipeline.source_catalog TO PUBLIC;

ALTER TABLE pipeline.contracts ENABLE ROW LEVEL SECURITY;
CREATE POLICY contracts_read ON pipeline.contracts FOR SELECT USING (true);
CREATE POLICY contracts_owner_insert ON pipeline.contracts FOR INSERT
    WITH CHECK (pg_catalog.pg_has_role(current_user,
                (SELECT s.owner FROM pipeline.source_catalog AS s WHERE s.source = contracts.source), 'USAGE'));
GRANT INSERT ON pipeline.contracts TO PUBLIC;

CREATE TABLE pipeline.column_aliases (
    source       text NOT NULL REFERENCES pipeline.source_catalog ON DELETE CASCADE,
    alias        text NOT NULL,
    column_name  text NOT NULL,
    since_version integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (source, alias)
);
COMMENT ON TABLE pipeline.column_aliases IS
    'old names of renamed columns: producers still sending them keep working until the alias is dropped';
ALTER TABLE pipeline.column_aliases ENABLE ROW LEVEL SECURITY;
CREATE POLICY column_aliases_read ON pipeline.column_aliases FOR SELECT USING (true);
CREATE POLICY column_aliases_owner_write ON pipeline.column_aliases FOR ALL
    USING (pg_catalog.pg_has_role(current_user,
           (SELECT s.owner FROM pipeline.source_catalog AS s WHERE s.source = column_aliases.source), 'USAGE'))
    WITH CHECK (pg_catalog.pg_has_role(current_user,
           (SELECT s.owner FROM pipeline.source_catalog AS s WHERE s.source = column_aliases.source), 'USAGE'));
GRANT SELECT, INSERT, UPDATE, DELETE ON pipeline.column_aliases TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.column_aliases', '');

CREATE FUNCTION pipeline._evolve_check(raw regclass, change text) RETURNS jsonb
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_evolve_check';
COMMENT ON FUNCTION pipeline._evolve_check(regclass, text) IS
    'internal: parses a contract change and says what it is, or refuses it';
CREATE FUNCTION pipeline._evolve_apply(raw regclass, ids regclass, event_id text, change text) RETURNS jsonb
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_evolve_apply';
COMMENT ON FUNCTION pipeline._evolve_apply(regclass, regclass, text, text) IS
    'internal: applies a checked contract change to the raw table (and the id table for the event id)';

-- the contract as the raw table has it now, as column definitions
CREATE FUNCTION pipeline._contract_columns(raw regclass) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.string_agg(pg_catalog.format('%I %s%s', a.attname,
                                 pg_catalog.format_type(a.atttypid, a.atttypmod),
                                 CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END), ', ' ORDER BY a.attnum)
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = raw AND a.attnum > 0 AND NOT a.attisdropped AND a.attname !~ '^_pl_');
COMMENT ON FUNCTION pipeline._contract_columns(regclass) IS 'internal: a raw table''s contract columns as SQL column definitions';

CREATE FUNCTION pipeline.evolve_source(source text, change text)
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
    SELECT * INTO s FROM pipeline.source_catalog AS c WHERE c.source = evolve_source.source;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'source "%" does not exist', source
            USING ERRCODE = 'undefined_object', HINT = 'See pipeline.sources for the sources of this database.';
    END IF;
    IF change IS NULL THEN
        RAISE EXCEPTION 'change must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, s.owner, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to change the contract of source %', source
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('Only members of its owner, %s, can change it.', s.owner);
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
                UPDATE pipeline.source_catalog AS c SET event_id = info->>'new_name' WHERE c.source = s.source;
            ELSIF info->>'column' = s.event_time THEN
                UPDATE pipeline.source_catalog AS c SET event_time = info->>'new_name' WHERE c.source = s.source;
            END IF;
        ELSIF info->>'kind' = 'drop_column' THEN
            DELETE FROM pipeline.column_aliases AS a WHERE a.source = s.source AND a.column_name = info->>'column';
        END IF;
        PERFORM pipeline._create_load_table(s.source);
    END IF;

    UPDATE pipeline.source_catalog AS c SET contract_version = version WHERE c.source = s.source;
    INSERT INTO pipeline.contracts (source, version, columns, change, created_by)
        VALUES (s.source, version, pipeline._contract_columns(s.raw_table), change, session_user);
    RETURN version;
END
$fn$;
COMMENT ON FUNCTION pipeline.evolve_source(text, text) IS
    'changes a source''s contract compatibly (ADD COLUMN, RENAME COLUMN, widening TYPE, DROP NOT NULL, DROP COLUMN, DROP ALIAS); returns the new contract version';

-- Replaying a dead letter is ingesting its payload again, as its own batch
-- keyed replay:<dead letter id>:v<contract version>: the receipt links to
-- the letter, and a second replay under the same contract applies nothing.
-- This records the outcome on the letter, for _replay_one only.
CREATE FUNCTION pipeline._settle_dead_letter(letter bigint, batch bigint)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
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

-- One letter replayed: the payload comes from the dead letter itself, so
-- that no caller can settle a letter with a batch of its own making.  As
-- the extension owner (dead letters are not writable otherwise); for
-- members of pipeline_writer, like ingest.
CREATE FUNCTION pipeline._replay_one(letter bigint)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
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
REVOKE EXECUTE ON FUNCTION pipeline._replay_one(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pipeline._replay_one(bigint) TO pipeline_writer;
REVOKE EXECUTE ON FUNCTION pipeline._settle_dead_letter(bigint, bigint) FROM PUBLIC;
COMMENT ON FUNCTION pipeline._replay_one(bigint) IS
    'internal: replays one dead letter from its own payload and records the outcome';

CREATE FUNCTION pipeline.replay_dead_letters(source text, since timestamptz DEFAULT NULL,
                                             error_like text DEFAULT NULL)
    RETURNS TABLE (replayed bigint, accepted bigint, duplicates bigint, still_rejected bigint)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    letter bigint;
    outcome text;
BEGIN
    SELECT * INTO s FROM pipeline.source_catalog AS c WHERE c.source = replay_dead_letters.source;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'source "%" does not exist', source
            USING ERRCODE = 'undefined_object', HINT = 'See pipeline.sources for the sources of this database.';
    END IF;
    replayed := 0; accepted := 0; duplicates := 0; still_rejected := 0;
    FOR letter IN SELECT x.id FROM pipeline.dead_letters AS x
                   WHERE x.source = s.source AND x.replayed_at IS NULL
                     AND (since IS NULL OR x.received_at >= since)
                     AND (error_like IS NULL OR x.error LIKE error_like)
                   ORDER BY x.id
    LOOP
        outcome := pipeline._replay_one(letter);
        CONTINUE WHEN outcome = 'skipped';
        replayed := replayed + 1;
        CASE outcome
            WHEN 'accepted' THEN accepted := accepted + 1;
            WHEN 'duplicate' THEN duplicates := duplicates + 1;
            ELSE still_rejected := still_rejected + 1;
        END CASE;
    END LOOP;
    RETURN NEXT;
END
$fn$;
COMMENT ON FUNCTION pipeline.replay_dead_letters(text, timestamptz, text) IS
    're-checks a source''s dead letters against the current contract: those that pass are ingested (receipts keyed replay:<id>:v<version>), the others keep their new reason; replaying twice changes nothing';
-- Scheduled jobs (src/schedule.c): pipeline.schedule() creates or updates
-- this database's pg_cron jobs, pipeline.unschedule() removes them,
-- pipeline.cron_jobs() reads them with their last run, and
-- pipeline.maintain() is what the hourly maintenance job runs.
--
-- pg_cron lives in one database (cron.database_name), so the C functions
-- connect there over the server's Unix socket as the calling role, and the
-- jobs run as that role.  No pipeline.jobs view: cron.job is in the other
-- database; pipeline.status shows the jobs, and an error reading them as a
-- row (src/sql/90_status.sql).

CREATE FUNCTION pipeline.schedule(close_days_schedule text DEFAULT '*/5 * * * *') RETURNS void
    LANGUAGE c VOLATILE CALLED ON NULL INPUT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_schedule';
COMMENT ON FUNCTION pipeline.schedule(text) IS
    'creates or updates, idempotently, the pg_cron jobs of the current database, owned by and run as the caller: '
    '''pipeline:<db>:close_days'' (SELECT pipeline.close_days(), every 5 minutes unless close_days_schedule says '
    'otherwise) and ''pipeline:<db>:maintenance'' (SELECT pipeline.maintain(), hourly at minute 17).  Connects to '
    'cron.database_name over the local socket as the caller; commits there at once, whatever the calling '
    'transaction does next';

CREATE FUNCTION pipeline.unschedule() RETURNS void
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_unschedule';
COMMENT ON FUNCTION pipeline.unschedule() IS
    'removes the pg_cron jobs of the current database (the caller''s own; a superuser''s call removes every '
    'role''s); no jobs is not an error.  Commits in cron.database_name at once';

CREATE FUNCTION pipeline.cron_jobs(missing_ok boolean DEFAULT false)
    RETURNS TABLE (jobid bigint, jobname text, username text, schedule text, command text, active boolean,
                   last_run_start timestamptz, last_run_end timestamptz, last_run_status text,
                   last_run_message text)
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_cron_jobs';
COMMENT ON FUNCTION pipeline.cron_jobs(boolean) IS
    'the pg_cron jobs of the current database (named ''pipeline:<db>:...'') that the caller may see (pg_cron shows '
    'a role its own jobs, a superuser every role''s), each with its latest run from cron.job_run_details: start, '
    'end, status (starting, running, succeeded, failed) and message.  Connects to cron.database_name over the '
    'local socket as the caller and gives up after 5 seconds; with missing_ok, pg_cron not loaded or not installed '
    'is no rows instead of an error';

-- Housekeeping that is not per metric.  Later work adds retention here;
-- for now it only keeps the planner's statistics of the receipts table
-- fresh (folds and closes look batches up by source, xid and event time)
-- and deletes nothing.  Run by the maintenance job as the role that called
-- pipeline.schedule(); ANALYZE skips, with a warning, a table that role may
-- not analyze.
CREATE FUNCTION pipeline.maintain() RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
BEGIN
    ANALYZE pipeline.batch_log;
END
$fn$;
COMMENT ON FUNCTION pipeline.maintain() IS
    'hourly housekeeping run by the ''pipeline:<db>:maintenance'' pg_cron job: for now ANALYZE of the receipts '
    '(pipeline.batch_log); deletes nothing';
-- Lateness sketches (src/quantile.c): the type, the aggregates that build
-- and merge sketches of intervals, their quantiles, and
-- pipeline.source_lateness, the arrival lateness of each source's events
-- over the last hour.
--
-- The C functions here do not pin search_path: they resolve no names, and
-- a SET clause would route every call (one per row for the transition
-- functions) through a GUC save and restore.

CREATE TYPE pipeline.lateness_sketch;

CREATE FUNCTION pipeline._lateness_sketch_in(cstring) RETURNS pipeline.lateness_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_sketch_in';
COMMENT ON FUNCTION pipeline._lateness_sketch_in(cstring) IS
    'internal: input function of pipeline.lateness_sketch (''\x'' hex of the binary form, checked)';

CREATE FUNCTION pipeline._lateness_sketch_out(pipeline.lateness_sketch) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_sketch_out';
COMMENT ON FUNCTION pipeline._lateness_sketch_out(pipeline.lateness_sketch) IS
    'internal: output function of pipeline.lateness_sketch (''\x'' hex of the binary form)';

CREATE FUNCTION pipeline._lateness_sketch_recv(internal) RETURNS pipeline.lateness_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_sketch_recv';
COMMENT ON FUNCTION pipeline._lateness_sketch_recv(internal) IS
    'internal: binary receive function of pipeline.lateness_sketch (the binary form, checked)';

CREATE FUNCTION pipeline._lateness_sketch_send(pipeline.lateness_sketch) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_sketch_send';
COMMENT ON FUNCTION pipeline._lateness_sketch_send(pipeline.lateness_sketch) IS
    'internal: binary send function of pipeline.lateness_sketch (the binary form)';

CREATE TYPE pipeline.lateness_sketch (
    INPUT = pipeline._lateness_sketch_in,
    OUTPUT = pipeline._lateness_sketch_out,
    RECEIVE = pipeline._lateness_sketch_recv,
    SEND = pipeline._lateness_sketch_send,
    INTERNALLENGTH = VARIABLE,
    STORAGE = extended
);
COMMENT ON TYPE pipeline.lateness_sketch IS
    'mergeable quantile sketch of intervals: counts over logarithmic buckets 1% wide (relative), plus the exact '
    'minimum and maximum; quantiles within 1% of percentile_cont.  Text form: ''\x'' then the hex of the binary '
    'form, which is: version byte 1; varints (LEB128): number of values, then unless 0: zeros, minimum and maximum '
    'in microseconds (zigzag), and for negative then positive values the bucket count, first bucket index and '
    'per-bucket counts.  Build with pipeline.lateness_sketch(x), merge with pipeline.lateness_merge, read with '
    'pipeline.lateness_quantile and pipeline.lateness_count';

-- Aggregate support.  The transition functions are not strict: they create
-- the internal state on the first non-NULL input and skip NULLs.
CREATE FUNCTION pipeline._lateness_add(internal, interval) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_add';
COMMENT ON FUNCTION pipeline._lateness_add(internal, interval) IS
    'internal: transition function of pipeline.lateness_sketch (counts one interval in its bucket)';

CREATE FUNCTION pipeline._lateness_merge_add(internal, pipeline.lateness_sketch) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_merge_add';
COMMENT ON FUNCTION pipeline._lateness_merge_add(internal, pipeline.lateness_sketch) IS
    'internal: transition function of pipeline.lateness_merge (adds one sketch''s counts)';

CREATE FUNCTION pipeline._lateness_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_combine';
COMMENT ON FUNCTION pipeline._lateness_combine(internal, internal) IS
    'internal: combine function of the lateness aggregates (sum of two partial states)';

CREATE FUNCTION pipeline._lateness_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_serialize';
COMMENT ON FUNCTION pipeline._lateness_serialize(internal) IS
    'internal: serial function of the lateness aggregates (the state as the binary form)';

CREATE FUNCTION pipeline._lateness_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_deserialize';
COMMENT ON FUNCTION pipeline._lateness_deserialize(bytea, internal) IS
    'internal: deserial function of the lateness aggregates';

CREATE FUNCTION pipeline._lateness_final(internal) RETURNS pipeline.lateness_sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_final';
COMMENT ON FUNCTION pipeline._lateness_final(internal) IS
    'internal: final function of the lateness aggregates';

CREATE AGGREGATE pipeline.lateness_sketch(interval) (
    SFUNC = pipeline._lateness_add,
    STYPE = internal,
    FINALFUNC = pipeline._lateness_final,
    COMBINEFUNC = pipeline._lateness_combine,
    SERIALFUNC = pipeline._lateness_serialize,
    DESERIALFUNC = pipeline._lateness_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.lateness_sketch(interval) IS
    'quantile sketch of the non-NULL intervals (NULL when there are none), e.g. of received_at - event_time; '
    'months count as 30 days, as in interval comparison';

CREATE AGGREGATE pipeline.lateness_merge(pipeline.lateness_sketch) (
    SFUNC = pipeline._lateness_merge_add,
    STYPE = internal,
    FINALFUNC = pipeline._lateness_final,
    COMBINEFUNC = pipeline._lateness_combine,
    SERIALFUNC = pipeline._lateness_serialize,
    DESERIALFUNC = pipeline._lateness_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pipeline.lateness_merge(pipeline.lateness_sketch) IS
    'merge of sketches (NULLs skipped; NULL when there are none): equal, byte for byte, to the sketch of all '
    'their values, in any order';

CREATE FUNCTION pipeline.lateness_quantile(sketch pipeline.lateness_sketch, q double precision) RETURNS interval
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_quantile';
COMMENT ON FUNCTION pipeline.lateness_quantile(pipeline.lateness_sketch, double precision) IS
    'the q-quantile (0 <= q <= 1) of a sketch''s values, interpolated like percentile_cont: within 1% of '
    'percentile_cont''s answer (where the values around it have one sign), to the microsecond; q = 0 and q = 1 '
    'are the exact minimum and maximum; NULL for an empty sketch';

CREATE FUNCTION pipeline.lateness_count(sketch pipeline.lateness_sketch) RETURNS bigint
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'pipeline_lateness_count';
COMMENT ON FUNCTION pipeline.lateness_count(pipeline.lateness_sketch) IS
    'the number of values in a sketch';

-- The arrival lateness sketch (their batch's received_at - event time) of
-- the events of some batches of a source, read as the caller: the batch
-- ids find the rows through the BRIN index on _pl_batch, the batches'
-- event-time range [lo, hi] prunes partitions.  At most max_events rows
-- (NULL: all of them).
CREATE FUNCTION pipeline._batches_lateness(s pipeline.source_catalog, ids bigint[], lo timestamptz,
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
        '         WHERE r._pl_batch OPERATOR(pg_catalog.=) ANY ($1) '
        '           AND r.%1$I OPERATOR(pg_catalog.>=) $2 AND r.%1$I OPERATOR(pg_catalog.<=) $3 '
        '         LIMIT $4) AS t',
        s.event_time, s.raw_table)
      INTO sketch USING ids, lo, hi, max_events;
    RETURN sketch;
END
$fn$;
COMMENT ON FUNCTION pipeline._batches_lateness(pipeline.source_catalog, bigint[], timestamptz, timestamptz, bigint) IS
    'internal: the arrival lateness sketch of the events of some batches of a source (at most max_events of them)';

-- Arrival lateness per source: for the events of the batches received
-- since a point in time, received_at (of their batch) - event time.  Reads
-- only those batches' rows (their event-time range prunes partitions, the
-- BRIN index on _pl_batch finds them), as the caller: sources whose raw
-- table the caller may not read are left out.
CREATE FUNCTION pipeline._source_lateness(since timestamptz)
    RETURNS TABLE (source text, events bigint, p50 interval, p95 interval, p99 interval,
                   sketch pipeline.lateness_sketch)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    ids bigint[];
    lo timestamptz;
    hi timestamptz;
BEGIN
    FOR s IN SELECT * FROM pipeline.source_catalog AS c
              WHERE pg_catalog.has_table_privilege(c.raw_table, 'SELECT') ORDER BY c.source
    LOOP
        SELECT pg_catalog.array_agg(b.batch_id), pg_catalog.min(b.min_event_time), pg_catalog.max(b.max_event_time)
          INTO ids, lo, hi
          FROM pipeline.batch_log AS b
         WHERE b.source = s.source AND b.received_at >= since AND b.accepted > 0;
        source := s.source;
        sketch := pipeline._batches_lateness(s, ids, lo, hi);
        events := COALESCE(pipeline.lateness_count(sketch), 0);
        p50 := pipeline.lateness_quantile(sketch, 0.5);
        p95 := pipeline.lateness_quantile(sketch, 0.95);
        p99 := pipeline.lateness_quantile(sketch, 0.99);
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pipeline._source_lateness(timestamptz) IS
    'internal: per source the caller may read, the lateness sketch and quantiles of the events of batches received since a time';

CREATE VIEW pipeline.source_lateness AS
    SELECT l.source, l.events, l.p50, l.p95, l.p99, l.sketch
      FROM pipeline._source_lateness(pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 hour') AS l;
COMMENT ON VIEW pipeline.source_lateness IS
    'per source (those whose raw table you may read): arrival lateness of the events received in the last hour, '
    'their batch''s received_at minus their event time, as p50, p95 and p99 (within 1%) and the sketch, to merge '
    'or ask other quantiles of (pipeline.lateness_quantile)';
GRANT SELECT ON pipeline.source_lateness TO PUBLIC;
-- Data quality: checks (add_check, drop_check, run_checks), their results
-- history, the alerts view and NOTIFY pipeline_alerts; and explain(), how
-- a daily number came to be.
--
-- A run of a check has a status: pass, warn or fail.  warn is the early
-- warning of a daily SLA (kind sla) whose deadline is near: no other kind
-- gives it.  (A check's severity, warn | fail | block, is another thing:
-- how much a failure of the check matters.)  The statuses are ordered,
-- pass < warn < fail: pipeline.alerts lists the checks whose latest run is
-- warn or fail, and each run that makes a check worse than its previous
-- run (none -> warn or fail, pass -> warn or fail, warn -> fail) is sent as
-- NOTIFY pipeline_alerts.  Only fail holds days from freezing (block).
--
-- A check belongs to the role that added it, and always runs as that role
-- (like a metric's fold runs as the metric's owner): run_checks() evaluates
-- the checks of the roles whose privileges its caller has (all of them for
-- a superuser), each as its owner, so a superuser's run never lends its
-- privileges to a check someone else wrote.  Each check's evaluation is its own
-- subtransaction: a check that cannot run (its reference table was dropped,
-- a privilege was revoked) fails with the reason and the others go on.
-- Concurrent runs of one check take turns (an advisory lock per check), so
-- a new failure is announced once.
--
-- Everything read from the user is validated before it reaches SQL:
-- names with _check_name, columns against the source's contract in
-- pg_attribute, reference tables with to_regclass and pg_attribute, values
-- by casting them to the column's type; identifiers are quoted with %I,
-- values are passed as parameters.

CREATE TABLE pipeline.checks (
    check_name  text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('freshness', 'completeness', 'validity', 'referential',
                                              'volume', 'not_null', 'accepted_values', 'digest', 'sla')),
    target      text NOT NULL,
    target_type text NOT NULL CHECK (target_type IN ('source', 'metric')),
    -- validated, with every default filled in
    params      jsonb NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('warn', 'fail', 'block')),
    owner       regrole NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE pipeline.checks IS
    'the data-quality checks: kind, target (a source or a metric), params with their defaults, severity, owner';
ALTER TABLE pipeline.checks ENABLE ROW LEVEL SECURITY;
CREATE POLICY checks_read ON pipeline.checks FOR SELECT USING (true);
CREATE POLICY checks_owner_insert ON pipeline.checks FOR INSERT
    WITH CHECK (pg_catalog.pg_has_role(current_user, owner, 'USAGE'));
CREATE POLICY checks_owner_delete ON pipeline.checks FOR DELETE
    USING (pg_catalog.pg_has_role(current_user, owner, 'USAGE'));
GRANT SELECT, INSERT, DELETE ON pipeline.checks TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.checks', '');

-- One row per evaluation.  run_no orders a check's runs (ran_at is the
-- as_of of the run, which tests and backfills may set to any time); it is
-- counted per check under the check's lock, so a dump and restore keeps it.
CREATE TABLE pipeline.check_results (
    check_name  text NOT NULL REFERENCES pipeline.checks ON DELETE CASCADE,
    run_no      bigint NOT NULL,
    ran_at      timestamptz NOT NULL,
    -- warn: an SLA's early warning (kind sla only)
    status      text NOT NULL CHECK (status IN ('pass', 'warn', 'fail')),
    observed    numeric,
    threshold   numeric,
    detail      text,
    PRIMARY KEY (check_name, run_no)
);
COMMENT ON TABLE pipeline.check_results IS
    'the history of check runs: when (the run''s as_of), pass, warn (an SLA''s early warning) or fail, the observed value, '
    'the threshold and why';
ALTER TABLE pipeline.check_results ENABLE ROW LEVEL SECURITY;
CREATE POLICY check_results_read ON pipeline.check_results FOR SELECT USING (true);
CREATE POLICY check_results_owner_insert ON pipeline.check_results FOR INSERT
    WITH CHECK (EXISTS (SELECT FROM pipeline.checks AS c
                         WHERE c.check_name = check_results.check_name
                           AND pg_catalog.pg_has_role(current_user, c.owner, 'USAGE')));
GRANT SELECT, INSERT ON pipeline.check_results TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.check_results', '');

-- The checks failing now and the SLAs missed or at risk: their latest run
-- is fail or warn (status).  since is when the check reached its status:
-- the first run after the last one that was better (for fail, the last
-- pass or warn; for warn, the last pass), so a warning that turns into a
-- failure is failing since the failure.
CREATE VIEW pipeline.alerts AS
    SELECT c.check_name, c.kind, c.target, c.severity, l.status,
           (SELECT r.ran_at FROM pipeline.check_results AS r
             WHERE r.check_name = c.check_name
               AND r.run_no > COALESCE((SELECT p.run_no FROM pipeline.check_results AS p
                                         WHERE p.check_name = c.check_name
                                           AND (p.status = 'pass' OR (p.status = 'warn' AND l.status = 'fail'))
                                         ORDER BY p.run_no DESC LIMIT 1), 0)
             ORDER BY r.run_no LIMIT 1) AS since,
           l.ran_at AS last_ran_at, l.observed, l.threshold, l.detail
      FROM pipeline.checks AS c
      JOIN LATERAL (SELECT r.* FROM pipeline.check_results AS r
                     WHERE r.check_name = c.check_name
                     ORDER BY r.run_no DESC LIMIT 1) AS l ON l.status IN ('warn', 'fail');
COMMENT ON VIEW pipeline.alerts IS
    'the checks failing now and the daily SLAs missed or about to be (their latest run is fail, or warn: an SLA''s early '
    'warning): severity, status, since when, and the latest observed value, threshold and detail.  Each run that makes '
    'a check worse (to warn or fail) is also sent as NOTIFY pipeline_alerts with a JSON payload';
GRANT SELECT ON pipeline.alerts TO PUBLIC;

-- --- validation ----------------------------------------------------------

-- the params each kind takes (required ones first) and an example
CREATE FUNCTION pipeline._check_kind_params(kind text, OUT required text[], OUT optional text[], OUT example text)
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
    SELECT k.required, k.optional, k.example
      FROM (VALUES
        ('freshness', '{max_lag}'::text[], '{basis,target_type}'::text[],
         '{"max_lag": "10 minutes"}'),
        ('completeness', '{}', '{tolerance,days}', '{"tolerance": 0, "days": 7}'),
        ('validity', '{max_reject_rate}', '{window}', '{"window": "1 hour", "max_reject_rate": 0.01}'),
        ('referential', '{column,reference}', '{max_missing_rate,window}',
         '{"column": "user_id", "reference": "public.users(id)", "max_missing_rate": 0.01, "window": "1 day"}'),
        ('volume', '{max_change}', '{window}', '{"window": "1 hour", "max_change": 0.2}'),
        ('not_null', '{column}', '{max_null_rate,window}', '{"column": "user_id", "max_null_rate": 0, "window": "1 day"}'),
        ('accepted_values', '{column,values}', '{max_unexpected_rate,window}',
         '{"column": "platform", "values": ["web", "ios", "android"], "window": "1 day"}'),
        ('digest', '{}', '{}', '{}'),
        ('sla', '{ready_by}', '{warn_before}', '{"ready_by": "07:00", "warn_before": "1 hour"}')) AS k(kind, required, optional, example)
     WHERE k.kind = _check_kind_params.kind
$fn$;
COMMENT ON FUNCTION pipeline._check_kind_params(text) IS
    'internal: the required and optional params of a check kind, and an example';

-- One param, checked against what it must be; returns it (or the default).
--   want: interval (a positive interval as a string), interval_or_zero (an
--   interval >= 0 as a string), time (a time of day "HH:MM" or "HH:MM:SS"
--   as a string), rate (a number from 0 to 1), nonnegative (a number >= 0),
--   count (a whole number >= 0), days (a whole number from 1 to 3660),
--   string (a non-empty string)
CREATE FUNCTION pipeline._check_param(kind text, params jsonb, key text, want text, dflt jsonb DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    v jsonb := params -> key;
    example text := (pipeline._check_kind_params(kind)).example;
    iv interval;
    n numeric;
    bad text;
BEGIN
    IF v IS NULL OR v = 'null'::jsonb THEN
        IF dflt IS NULL THEN
            RAISE EXCEPTION 'a % check needs params.%', kind, key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = pg_catalog.format('For example: %s', example);
        END IF;
        RETURN dflt;
    END IF;
    IF want IN ('interval', 'interval_or_zero') THEN
        IF pg_catalog.jsonb_typeof(v) <> 'string' THEN
            bad := 'must be an interval written as a string, e.g. "1 hour"';
        ELSE
            BEGIN
                iv := (v #>> '{}')::interval;
            EXCEPTION WHEN data_exception THEN
                bad := pg_catalog.format('must be an interval, e.g. "1 hour", not %s', v);
            END;
            IF bad IS NULL AND want = 'interval' AND iv <= interval '0' THEN
                bad := pg_catalog.format('must be a positive interval, not %s', v);
            ELSIF bad IS NULL AND iv < interval '0' THEN
                bad := pg_catalog.format('must not be a negative interval, not %s', v);
            END IF;
        END IF;
    ELSIF want = 'time' THEN
        -- a local time of day: nothing else (a zone or "24:00" would be
        -- accepted by the time type and mean something else)
        IF pg_catalog.jsonb_typeof(v) <> 'string'
           OR v #>> '{}' !~ '^\s*([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?\s*$' THEN
            bad := pg_catalog.format('must be a local time of day written as a string "HH:MM", e.g. "07:00", not %s', v);
        END IF;
    ELSIF want = 'string' THEN
        IF pg_catalog.jsonb_typeof(v) <> 'string' OR v #>> '{}' = '' THEN
            bad := 'must be a non-empty string';
        END IF;
    ELSE
        IF pg_catalog.jsonb_typeof(v) <> 'number' THEN
            bad := pg_catalog.format('must be a number, not %s', v);
        ELSE
            n := (v #>> '{}')::numeric;
            IF want = 'rate' AND (n < 0 OR n > 1) THEN
                bad := pg_catalog.format('is a share of events and must be between 0 and 1, not %s', v);
            ELSIF want = 'nonnegative' AND n < 0 THEN
                bad := pg_catalog.format('must not be negative, not %s', v);
            ELSIF want = 'count' AND (n < 0 OR n <> pg_catalog.trunc(n)) THEN
                bad := pg_catalog.format('must be a whole number of events, 0 or more, not %s', v);
            ELSIF want = 'days' AND (n < 1 OR n > 3660 OR n <> pg_catalog.trunc(n)) THEN
                bad := pg_catalog.format('must be a whole number of days from 1 to 3660, not %s', v);
            END IF;
        END IF;
    END IF;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'params.% of a % check %', key, kind, bad
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = pg_catalog.format('For example: %s', example);
    END IF;
    RETURN v;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_param(text, jsonb, text, text, jsonb) IS
    'internal: checks one param of a check (type, range) and returns it or its default';

-- The type of a contract column of a source (not one of pipeline's _pl_
-- columns), or an error naming the contract's columns.
CREATE FUNCTION pipeline._check_contract_column(source text, col text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    typ text;
BEGIN
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS c WHERE c.source = _check_contract_column.source;
    SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) INTO typ
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = s.raw_table AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname !~ '^_pl_';
    IF typ IS NULL THEN
        RAISE EXCEPTION 'column "%" is not in the contract of source "%"', col, source
            USING ERRCODE = 'undefined_column',
                  HINT = pg_catalog.format('The contract''s columns are: %s.', (
                      SELECT pg_catalog.string_agg(a.attname, ', ' ORDER BY a.attnum)
                        FROM pg_catalog.pg_attribute AS a
                       WHERE a.attrelid = s.raw_table AND a.attnum > 0 AND NOT a.attisdropped
                         AND a.attname !~ '^_pl_'));
    END IF;
    RETURN typ;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_contract_column(text, text) IS
    'internal: the type of a contract column of a source, or an error listing the contract''s columns';

-- A reference "schema.table(column)": the table (a table or view), quoted,
-- and the column; to_regclass and pg_attribute decide, never the text.
CREATE FUNCTION pipeline._check_reference(reference text, OUT rel regclass, OUT col text, OUT normalized text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    parts text[];
    names text[];
    cols text[];
    hint text := 'Write the reference as schema.table(column), e.g. "public.users(id)".';
BEGIN
    parts := pg_catalog.regexp_match(reference, '^\s*(.+?)\s*\(\s*(.+?)\s*\)\s*$');
    IF parts IS NULL THEN
        RAISE EXCEPTION 'invalid reference %: not a table and a column', pg_catalog.quote_literal(reference)
            USING ERRCODE = 'invalid_parameter_value', HINT = hint;
    END IF;
    BEGIN
        names := pg_catalog.parse_ident(parts[1]);
        cols := pg_catalog.parse_ident(parts[2]);
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'invalid reference %: %', pg_catalog.quote_literal(reference), SQLERRM
            USING ERRCODE = 'invalid_parameter_value', HINT = hint;
    END;
    IF pg_catalog.array_length(names, 1) <> 2 OR pg_catalog.array_length(cols, 1) <> 1 THEN
        RAISE EXCEPTION 'invalid reference %: the table must be schema-qualified and the column a single name',
                pg_catalog.quote_literal(reference)
            USING ERRCODE = 'invalid_parameter_value', HINT = hint;
    END IF;
    rel := pg_catalog.to_regclass(pg_catalog.format('%I.%I', names[1], names[2]));
    IF rel IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_class AS c
                                   WHERE c.oid = rel AND c.relkind IN ('r', 'p', 'v', 'm', 'f')) THEN
        RAISE EXCEPTION 'reference table %.% does not exist', pg_catalog.quote_ident(names[1]),
                pg_catalog.quote_ident(names[2])
            USING ERRCODE = 'undefined_table', HINT = hint;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                    WHERE a.attrelid = rel AND a.attname = cols[1] AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'column "%" of reference table % does not exist', cols[1], rel::text
            USING ERRCODE = 'undefined_column', HINT = hint;
    END IF;
    col := cols[1];
    normalized := pg_catalog.format('%I.%I(%I)', names[1], names[2], cols[1]);
END
$fn$;
COMMENT ON FUNCTION pipeline._check_reference(text) IS
    'internal: parses and resolves a referential check''s reference, schema.table(column)';

-- Validates a check's target and params; returns the params to store
-- (defaults filled in) and the target's type (source or metric).
CREATE FUNCTION pipeline._check_validate(kind text, target text, params jsonb, OUT target_type text, OUT checked jsonb)
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

CREATE FUNCTION pipeline.add_check(check_name text, kind text, target text, params jsonb DEFAULT '{}',
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
    INSERT INTO pipeline.checks (check_name, kind, target, target_type, params, severity, owner)
        VALUES (check_name, kind, target, v.target_type, v.checked, severity, current_user::regrole);
END
$fn$;
COMMENT ON FUNCTION pipeline.add_check(text, text, text, jsonb, text) IS
    'adds a data-quality check of a source or metric (kinds: freshness, completeness, validity, referential, volume, '
    'not_null, accepted_values, digest, sla); params are validated and stored with their defaults; severity warn, fail or block';

CREATE FUNCTION pipeline.drop_check(check_name text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    c pipeline.checks;
    allowed boolean;
BEGIN
    SELECT * INTO c FROM pipeline.checks AS x WHERE x.check_name = drop_check.check_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'check "%" does not exist', check_name
            USING ERRCODE = 'undefined_object', HINT = 'List checks in pipeline.checks.';
    END IF;
    -- (a check whose owner was dropped is a superuser's to drop)
    allowed := CASE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_roles AS a WHERE a.oid = c.owner)
                    THEN (SELECT a.rolsuper FROM pg_catalog.pg_roles AS a WHERE a.rolname = current_user)
                    ELSE pg_catalog.pg_has_role(current_user, c.owner, 'USAGE') END;
    IF NOT allowed THEN
        RAISE EXCEPTION 'permission denied to drop check %', check_name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('Only members of its owner, %s, can drop it.', c.owner);
    END IF;
    DELETE FROM pipeline.checks AS x WHERE x.check_name = c.check_name;
END
$fn$;
COMMENT ON FUNCTION pipeline.drop_check(text) IS 'drops a check and its results history';

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
    SELECT e ->> 'name' INTO cnt FROM pg_catalog.jsonb_array_elements(def -> 'measures') AS e
     WHERE e ->> 'agg' = 'count_star' LIMIT 1;

    FOR d IN SELECT * FROM pipeline.day_closures AS x
              WHERE x.metric = m.metric AND x.day <= (as_of AT TIME ZONE s.day_timezone)::date
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
            SELECT COALESCE(pg_catalog.sum(b.accepted), 0), pg_catalog.min(b.min_event_time), pg_catalog.max(b.max_event_time)
              INTO receipts, blo, bhi
              FROM pipeline.batch_log AS b WHERE b.batch_id = ANY (ids);
            EXECUTE pg_catalog.format(
                'SELECT pg_catalog.count(*) FROM %1$s AS r WHERE r._pl_batch = ANY ($1) AND r.%2$I >= $2 AND r.%2$I <= $3',
                s.raw_table, s.event_time)
              INTO stored USING ids, LEAST(blo, lo), GREATEST(bhi, hi);
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
    IF received = 0 THEN
        status := 'pass';
        detail := pg_catalog.format('no events received in the %s before as_of', c.params ->> 'window');
        RETURN;
    END IF;
    observed := pg_catalog.round(rejected::numeric / received, 6);
    status := CASE WHEN rejected::numeric / received > threshold THEN 'fail' ELSE 'pass' END;
    detail := pg_catalog.format('%s of %s events rejected (%s) in %s batches received in the %s before as_of; allowed %s',
                                rejected, received, pipeline._check_pct(rejected::numeric / received), nb,
                                c.params ->> 'window', pipeline._check_pct(threshold));
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
    IF n = 0 THEN
        status := 'pass';
        detail := pg_catalog.format('no events with a %s in the %s before as_of', col, c.params ->> 'window');
        RETURN;
    END IF;
    observed := pg_catalog.round(missing::numeric / n, 6);
    status := CASE WHEN missing::numeric / n > threshold THEN 'fail' ELSE 'pass' END;
    detail := pg_catalog.format('%s of %s events (%s) with event time in the %s before as_of: %s missing from %s; allowed %s',
                                missing, n, pipeline._check_pct(missing::numeric / n), c.params ->> 'window', col,
                                ref.normalized, pipeline._check_pct(threshold));
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
    IF n = 0 THEN
        status := 'pass';
        detail := pg_catalog.format('no events in the %s before as_of', c.params ->> 'window');
        RETURN;
    END IF;
    observed := pg_catalog.round(nulls::numeric / n, 6);
    status := CASE WHEN nulls::numeric / n > threshold THEN 'fail' ELSE 'pass' END;
    detail := pg_catalog.format('%s of %s events (%s) with event time in the %s before as_of: no %s; allowed %s',
                                nulls, n, pipeline._check_pct(nulls::numeric / n), c.params ->> 'window', col,
                                pipeline._check_pct(threshold));
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
    IF n = 0 THEN
        status := 'pass';
        detail := pg_catalog.format('no events with a %s in the %s before as_of', col, c.params ->> 'window');
        RETURN;
    END IF;
    observed := pg_catalog.round(unexpected::numeric / n, 6);
    status := CASE WHEN unexpected::numeric / n > threshold THEN 'fail' ELSE 'pass' END;
    detail := pg_catalog.format('%s of %s events (%s) with event time in the %s before as_of: %s not one of the %s accepted values (%s distinct other values); allowed %s',
                                unexpected, n, pipeline._check_pct(unexpected::numeric / n), c.params ->> 'window', col,
                                pg_catalog.jsonb_array_length(c.params -> 'values'), kinds, pipeline._check_pct(threshold));
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

-- --- running checks ---------------------------------------------------------------

CREATE FUNCTION pipeline.run_checks(as_of timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (check_name text, status text, observed numeric, threshold numeric, detail text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    caller text := current_user;
    owner_name text;
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
        -- evaluated as the check's owner (its privileges, whoever runs it);
        -- an error rolls the role back with the rest of the subtransaction
        BEGIN
            owner_name := (SELECT a.rolname FROM pg_catalog.pg_roles AS a WHERE a.oid = c.owner);
            IF owner_name IS NULL THEN
                RAISE EXCEPTION 'its owner (role %) no longer exists', c.owner::oid
                    USING HINT = pg_catalog.format('Drop the check: pipeline.drop_check(%L).', c.check_name);
            END IF;
            PERFORM pg_catalog.set_config('role', owner_name, true);
            EXECUTE pg_catalog.format('SELECT * FROM pipeline.%I($1, $2)', '_check_' || c.kind)
              INTO r USING c, as_of;
            PERFORM pg_catalog.set_config('role', caller, true);
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
        INSERT INTO pipeline.check_results AS x (check_name, run_no, ran_at, status, observed, threshold, detail)
            VALUES (c.check_name, next_no, as_of, status, observed, threshold, detail);
        -- worse than the run before (pass < warn < fail; no run before is a
        -- pass): a new failure, a new warning, or a warning turned failure
        IF status <> 'pass' AND (prev IS NULL OR prev = 'pass' OR (prev = 'warn' AND status = 'fail')) THEN
            PERFORM pg_catalog.pg_notify('pipeline_alerts', pg_catalog.jsonb_build_object(
                'check_name', c.check_name, 'kind', c.kind, 'target', c.target, 'severity', c.severity,
                'status', status, 'observed', observed, 'threshold', threshold,
                'detail', pg_catalog.left(detail, 2000), 'ran_at', as_of)::text);
        END IF;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pipeline.run_checks(timestamptz) IS
    'evaluates, as of the given time, the checks of the roles the caller has the privileges of (all, for a superuser), '
    'each as its owner; records each result in pipeline.check_results and sends NOTIFY pipeline_alerts (a JSON payload: '
    'check_name, kind, target, severity, status, observed, threshold, detail, ran_at) for each run that makes a check '
    'worse: a new failure, a new SLA warning, or a warning turned failure';

-- The 'block' checks failing now for a metric (on the metric or its source):
-- what holds its days from freezing.  (Only fail holds: warn is an SLA's
-- early warning, and an sla check cannot be of severity block anyway.)
CREATE FUNCTION pipeline._blocking_checks(metric text) RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
    SELECT COALESCE(pg_catalog.array_agg(a.check_name ORDER BY a.check_name), '{}')
      FROM pipeline.alerts AS a
      JOIN pipeline.checks AS c ON c.check_name = a.check_name
     WHERE a.severity = 'block' AND a.status = 'fail'
       AND ((c.target_type = 'metric' AND c.target = _blocking_checks.metric)
            OR (c.target_type = 'source'
                AND c.target = (SELECT m.source FROM pipeline.metric_catalog AS m WHERE m.metric = _blocking_checks.metric)))
$fn$;
COMMENT ON FUNCTION pipeline._blocking_checks(text) IS
    'internal: the checks of severity block failing now on a metric or its source';

-- --- explain --------------------------------------------------------------------

-- " AND a.dim IS NOT DISTINCT FROM ($1->>'dim')::type" for each dimension
-- given in $1 (the values are parameters, the names and types the metric's)
CREATE FUNCTION pipeline._dims_given(def jsonb, dims jsonb, alias text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT COALESCE(pg_catalog.string_agg(pg_catalog.format(' AND %s.%I IS NOT DISTINCT FROM ($1 ->> %L)::%s',
                                                            alias, d ->> 'name', d ->> 'name', d ->> 'type'), '' ORDER BY o), '')
      FROM pg_catalog.jsonb_array_elements(def -> 'dimensions') WITH ORDINALITY AS e(d, o)
     WHERE dims ? (d ->> 'name'));
COMMENT ON FUNCTION pipeline._dims_given(jsonb, jsonb, text) IS
    'internal: the conditions selecting the dimension group given as JSON ($1 of the generated query)';

-- per measure, the corrections' aggregate over correction rows c
CREATE FUNCTION pipeline._explain_corr_select(def jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.string_agg(
             CASE e ->> 'agg'
               WHEN 'min' THEN pg_catalog.format('pg_catalog.min(c.%1$I) AS %1$I', e ->> 'name')
               WHEN 'max' THEN pg_catalog.format('pg_catalog.max(c.%1$I) AS %1$I', e ->> 'name')
               WHEN 'avg' THEN pg_catalog.format('pg_catalog.sum(c.%1$I) AS %1$I, pg_catalog.sum(c.%2$I) AS %2$I',
                                                 '_' || (e ->> 'name') || '_sum', '_' || (e ->> 'name') || '_count')
               ELSE pg_catalog.format('pg_catalog.sum(c.%1$I) AS %1$I', e ->> 'name')
             END, ', ' ORDER BY o)
      FROM pg_catalog.jsonb_array_elements(def -> 'measures') WITH ORDINALITY AS x(e, o));
COMMENT ON FUNCTION pipeline._explain_corr_select(jsonb) IS 'internal: the corrections of a group, per measure';

-- "a equals b" for generated SQL: floating-point sums may differ in their
-- last bits with the order of addition
CREATE FUNCTION pipeline._explain_same(typ text, a text, b text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN CASE WHEN typ IN ('double precision', 'real')
                THEN pg_catalog.format('COALESCE((%1$s) = (%2$s) OR pg_catalog.abs((%1$s) - (%2$s)) <= 1e-9 * GREATEST(pg_catalog.abs(%1$s), pg_catalog.abs(%2$s)), (%1$s) IS NULL AND (%2$s) IS NULL)', a, b)
                ELSE pg_catalog.format('((%s) IS NOT DISTINCT FROM (%s))', a, b) END;
COMMENT ON FUNCTION pipeline._explain_same(text, text, text) IS 'internal: an equality test for generated SQL, tolerant for floating point';

-- per measure, a JSON object: the daily value (d), the corrections (k), the
-- restated value (x) and whether daily + corrections give the restated value
CREATE FUNCTION pipeline._explain_measures(def jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT 'pg_catalog.jsonb_build_object(' || COALESCE(pg_catalog.string_agg(pg_catalog.format('%L, %s', e ->> 'name',
             CASE e ->> 'agg'
               WHEN 'avg' THEN pg_catalog.format(
                   'pg_catalog.jsonb_build_object(''daily'', d.%1$I, ''daily_sum'', d.%2$I, ''daily_count'', d.%3$I, '
                   '''corrections_sum'', k.%2$I, ''corrections_count'', k.%3$I, ''restated'', x.%1$I, '
                   '''adds_up'', %4$s)',
                   e ->> 'name', '_' || (e ->> 'name') || '_sum', '_' || (e ->> 'name') || '_count',
                   pipeline._explain_same(e ->> 'type', pg_catalog.format(
                       '((CASE WHEN k.%1$I IS NULL THEN d.%1$I WHEN d.%1$I IS NULL THEN k.%1$I ELSE d.%1$I + k.%1$I END) '
                       ' / NULLIF(COALESCE(d.%2$I, 0) + COALESCE(k.%2$I, 0), 0)::%3$s)::%3$s',
                       '_' || (e ->> 'name') || '_sum', '_' || (e ->> 'name') || '_count', e ->> 'type'),
                     pg_catalog.format('x.%I', e ->> 'name')))
               ELSE pg_catalog.format(
                   'pg_catalog.jsonb_build_object(''daily'', d.%1$I, ''corrections'', k.%1$I, ''restated'', x.%1$I, '
                   '''adds_up'', %2$s)',
                   e ->> 'name',
                   pipeline._explain_same(e ->> 'type', CASE e ->> 'agg'
                       WHEN 'min' THEN pg_catalog.format('LEAST(d.%1$I, k.%1$I)', e ->> 'name')
                       WHEN 'max' THEN pg_catalog.format('GREATEST(d.%1$I, k.%1$I)', e ->> 'name')
                       ELSE pg_catalog.format('CASE WHEN k.%1$I IS NULL THEN d.%1$I WHEN d.%1$I IS NULL THEN k.%1$I '
                                              'ELSE d.%1$I + k.%1$I END', e ->> 'name') END,
                     pg_catalog.format('x.%I', e ->> 'name')))
             END), ', ' ORDER BY o), '') || ')'
      FROM pg_catalog.jsonb_array_elements(def -> 'measures') WITH ORDINALITY AS x(e, o));
COMMENT ON FUNCTION pipeline._explain_measures(jsonb) IS
    'internal: per measure of a group, daily, corrections, restated and whether they add up';

CREATE FUNCTION pipeline.explain(metric text, day date, dimensions jsonb DEFAULT '{}')
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
    SELECT e ->> 'name' INTO cnt FROM pg_catalog.jsonb_array_elements(def -> 'measures') AS e
     WHERE e ->> 'agg' = 'count_star' LIMIT 1;
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
        pipeline._dims(def, 'c.'), pipeline._explain_corr_select(def), m.metric || '_corrections',
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
COMMENT ON FUNCTION pipeline.explain(text, date, jsonb) IS
    'how a daily number came to be, as JSON: the day''s status, version and freeze; per dimension group the daily, '
    'corrections and restated value of each measure and whether they add up, and the raw events split by what the '
    'freeze saw, what corrections took and what awaits correction; the batches and contract versions behind them; '
    'duplicates and dead letters around the day.  dimensions selects groups, e.g. {"platform": "ios"}';
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
               m.failures, m.last_error, m.last_error_at,
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
    'lag_seconds (age of the oldest unfolded batch), watermark, failures, last_error, days_open (raw data, not '
    'closed yet), days_provisional, days_held, days_frozen, corrections_7d and late_events_7d (corrections created in '
    'the last 7 days).  Source rows: last_batch_at and lag_seconds (since the last accepted batch), watermark (max '
    'accepted event time - allowed lateness), events_per_s_1m/_5m/_15m (received), received_15m, accept_rate_15m, '
    'duplicate_rate_15m, reject_rate_15m (shares of received), lateness_p50/_p95/_p99 of arrival - event time over '
    'lateness_events events (the newest, at most 10 000, of the last 15 minutes; NULL without SELECT on the raw '
    'table).  Job rows (the caller''s jobs, as pg_cron shows them): job_user, job_schedule, job_command, job_active, '
    'last_run_start, last_run_end, last_run_status, last_run_message; a failed last run is also last_error; when '
    'the jobs cannot be read, one job row with name NULL and the reason in last_error';
GRANT SELECT ON pipeline.status TO pipeline_reader, pipeline_writer;
