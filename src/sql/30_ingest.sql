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
-- Dead letters hold raw payloads: each role sees those of the batches it
-- sent, and those of the sources it owns or may read; nobody writes them
-- but ingest (as the extension owner, to which these policies do not apply).
ALTER TABLE pipeline.dead_letters ENABLE ROW LEVEL SECURITY;
CREATE POLICY dead_letters_read ON pipeline.dead_letters FOR SELECT USING (
    EXISTS (SELECT FROM pipeline.batch_log AS b
             WHERE b.batch_id = dead_letters.batch_id AND b.ingested_by = current_user)
    OR EXISTS (SELECT FROM pipeline.source_catalog AS s
                WHERE s.source = dead_letters.source
                  AND (pg_catalog.pg_has_role(current_user, s.owner, 'USAGE')
                       OR pg_catalog.has_table_privilege(s.raw_table, 'SELECT'))));
GRANT SELECT (ingested_by) ON pipeline.batch_log TO PUBLIC;
GRANT SELECT ON pipeline.dead_letters TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('pipeline.batch_log', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.dead_letters', '');
-- and the sequences behind their ids: without them a restored database
-- would hand out batch ids and dead-letter ids that are already taken
SELECT pg_catalog.pg_extension_config_dump('pipeline.batch_log_batch_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.dead_letters_id_seq', '');
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

-- The bulk path: COPY into pipeline.<source>_load (see src/load.c).  The
-- load tables' access method takes the rows and stores none
-- (src/load_am.c); its inserting callbacks pin search_path in C around the
-- statements they run, once per chunk.  The handler takes internal: it
-- cannot be called from SQL.
CREATE FUNCTION pipeline._load_am_handler(internal) RETURNS table_am_handler
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'pipeline_load_am_handler';
COMMENT ON FUNCTION pipeline._load_am_handler(internal) IS
    'internal: handler of the pipeline_load table access method';
REVOKE EXECUTE ON FUNCTION pipeline._load_am_handler(internal) FROM PUBLIC;
CREATE ACCESS METHOD pipeline_load TYPE TABLE HANDLER pipeline._load_am_handler;
COMMENT ON ACCESS METHOD pipeline_load IS
    'the access method of pipeline.<source>_load tables: each row inserted is ingested into the source, none is stored';
CREATE FUNCTION pipeline._load_finish() RETURNS trigger
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_load_finish';
COMMENT ON FUNCTION pipeline._load_finish() IS
    'internal: AFTER STATEMENT trigger of <source>_load tables: ingests what is left and writes the receipt';

-- Creates or recreates the load table from the raw table's contract
-- columns.  Writers COPY into it, so it belongs to the extension owner:
-- were it the source owner's, a trigger or column default of theirs on it
-- would run as every writer that loads.
CREATE FUNCTION pipeline._create_load_table(source text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._create_load_table(text) IS
    'internal: (re)creates pipeline.<source>_load, the COPY target of the bulk path (runs _create_load_table_as_owner as the extension owner)';

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
