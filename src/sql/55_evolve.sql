-- Schema evolution: contract changes, aliases for renamed columns, drift
-- shares, and replay of dead letters against the current contract.

-- A source's catalog row and contract history are written only through
-- evolve_source (_record_contract, as the extension owner, for a member of
-- the source's owner): every role reads them; nobody rewrites them by hand,
-- since close_days and the folds of every metric on the source trust them.
-- The owner of a source keeps its aliases itself (as invoker); row-level
-- security keeps every role to its own sources' aliases.
ALTER TABLE pipeline.source_catalog ENABLE ROW LEVEL SECURITY;
CREATE POLICY source_catalog_read ON pipeline.source_catalog FOR SELECT USING (true);

ALTER TABLE pipeline.contracts ENABLE ROW LEVEL SECURITY;
CREATE POLICY contracts_read ON pipeline.contracts FOR SELECT USING (true);

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

-- The record of one contract change: the new version, key columns that a
-- rename moved, the history row.  The caller must be a member of the
-- source's owner, who has just changed the raw table itself.
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

-- Replaying a dead letter is ingesting its payload again, as its own batch
-- keyed replay:<dead letter id>:v<contract version>: the receipt links to
-- the letter, and a second replay under the same contract applies nothing.
-- This records the outcome on the letter, for _replay_one_as_owner only
-- (which runs as the extension owner: no one else may call it).
CREATE FUNCTION pipeline._settle_dead_letter(letter bigint, batch bigint)
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

-- One letter replayed: the payload comes from the dead letter itself, so
-- that no caller can settle a letter with a batch of its own making.  As
-- the extension owner (dead letters are not writable otherwise); for
-- members of pipeline_writer, like ingest.
-- Runs as the extension owner (src/as_owner.c), for a writer that may read
-- the letter: the one that sent its batch, or a member of the source's
-- owner, or a reader of its raw events.
CREATE FUNCTION pipeline._replay_one(letter bigint)
    RETURNS text
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';

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
REVOKE EXECUTE ON FUNCTION pipeline._replay_one(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pipeline._replay_one(bigint) TO pipeline_writer;
REVOKE EXECUTE ON FUNCTION pipeline._settle_dead_letter(bigint, bigint) FROM PUBLIC;
COMMENT ON FUNCTION pipeline._replay_one(bigint) IS
    'internal: replays one dead letter from its own payload and records the outcome (runs _replay_one_as_owner as the extension owner)';
COMMENT ON FUNCTION pipeline._replay_one_as_owner(regrole, bigint) IS
    'internal: the extension owner''s half of _replay_one; checks the caller may read the letter';

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
