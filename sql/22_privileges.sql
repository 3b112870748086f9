-- Privileges: writers ingest, readers read serving views only, creating a
-- source takes what creating its tables would, user expressions run as the
-- source owner, and nobody writes receipts or dead letters directly.
-- (PL/pgSQL CONTEXT lines carry line numbers: not part of the contract)
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
\set VERBOSITY terse

CREATE ROLE regress_owner;
CREATE ROLE regress_writer IN ROLE pipeline_writer;
CREATE ROLE regress_reader IN ROLE pipeline_reader;
CREATE ROLE regress_plain;

-- creating a source needs CREATE on schema pipeline, like creating its tables
SET ROLE regress_plain;
SELECT pipeline.create_source('plain_src', 'event_id int NOT NULL, event_time timestamptz NOT NULL');
RESET ROLE;
GRANT USAGE, CREATE ON SCHEMA pipeline TO regress_owner;
SET ROLE regress_owner;
-- the DEFAULT reports which role converts events: the owner, not the caller
SELECT pipeline.create_source('owned',
  'event_id int NOT NULL, event_time timestamptz NOT NULL, converted_by text DEFAULT current_user');
RESET ROLE;
SELECT source, owner FROM pipeline.sources;
SELECT relname, relowner::regrole FROM pg_class
 WHERE relname IN ('owned_raw', 'owned_ids') ORDER BY 1;

-- a writer ingests (partitions are created as the owner)
SET ROLE regress_writer;
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('owned',
  '[{"event_id": 1, "event_time": "2026-03-01T10:00:00Z"}]'::jsonb);
SELECT received, accepted FROM pipeline.batches;
SELECT count(*) AS writer_sees_dead_letters FROM pipeline.dead_letters;
-- but cannot write around ingest, nor drop the source
INSERT INTO pipeline.owned_raw (event_id, event_time, _pl_batch) VALUES (2, now(), 1);
INSERT INTO pipeline.batch_log (source, contract_version) VALUES ('owned', 1);
INSERT INTO pipeline.dead_letters (source, batch_id, payload, error, error_code, contract_version)
  VALUES ('owned', 1, 'x', 'x', 'x', 1);
UPDATE pipeline.batch_log SET accepted = 0;
SELECT pipeline.drop_source('owned');
SELECT pipeline._unregister_source('owned');
RESET ROLE;
SELECT event_id, converted_by FROM pipeline.owned_raw;

-- a reader cannot ingest or read raw events or dead letters
SET ROLE regress_reader;
SELECT * FROM pipeline.ingest('owned', '[]'::jsonb);
SELECT * FROM pipeline.ingest('owned', '[]'::text);
SELECT count(*) FROM pipeline.owned_raw;
SELECT count(*) FROM pipeline.dead_letters;
SELECT source FROM pipeline.sources;
RESET ROLE;

-- a plain role cannot ingest either
SET ROLE regress_plain;
SELECT * FROM pipeline.ingest('owned', '[]'::jsonb);
RESET ROLE;

-- the owner drops its source
SET ROLE regress_owner;
SELECT pipeline.drop_source('owned');
RESET ROLE;
SELECT count(*) AS sources_left FROM pipeline.sources;

REVOKE USAGE, CREATE ON SCHEMA pipeline FROM regress_owner;
DROP ROLE regress_owner, regress_writer, regress_reader, regress_plain;

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
