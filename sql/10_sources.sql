-- Sources: contracts parsed by PostgreSQL's grammar, the catalog, refusals.
-- (PL/pgSQL CONTEXT lines carry line numbers: not part of the contract)
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;

SELECT pipeline.create_source('orders',
    $$order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL,
      amount numeric(12,2) CHECK (amount >= 0), currency text NOT NULL DEFAULT 'EUR',
      CHECK (currency IN ('EUR', 'USD')) -- a trailing comment is harmless$$,
    event_id => 'order_id', allowed_lateness => '1 hour', day_timezone => 'Europe/Paris');

SELECT source, contract_version, event_id, event_time, allowed_lateness, freeze_after,
       day_timezone, raw_table, owner = current_user::regrole AS owned_by_me
  FROM pipeline.sources;
SELECT source, version, change, created_by = current_user AS by_me FROM pipeline.contracts;

-- the raw table: the contract's columns, two internal ones, partitioned by event time
SELECT attname, format_type(atttypid, atttypmod), attnotnull
  FROM pg_attribute WHERE attrelid = 'pipeline.orders_raw'::regclass AND attnum > 0
 ORDER BY attnum;
SELECT pg_get_partkeydef('pipeline.orders_raw'::regclass);
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = 'pipeline.orders_raw'::regclass ORDER BY 1;
-- the id table deduplicates across partitions
SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'pipeline.orders_ids'::regclass;

-- a minimal source with the default column names
SELECT pipeline.create_source('app_events',
    'event_id uuid NOT NULL, event_time timestamptz NOT NULL, name text NOT NULL, props jsonb');

-- refused contracts: each names what was refused
SELECT pipeline.create_source('bad1', 'event_id int, event_time timestamptz); DROP TABLE pipeline.orders_raw; --');
SELECT pipeline.create_source('bad2', 'event_id int PRIMARY KEY, event_time timestamptz');
SELECT pipeline.create_source('bad3', 'event_id int UNIQUE, event_time timestamptz');
SELECT pipeline.create_source('bad4', 'event_id int REFERENCES pipeline.source_catalog, event_time timestamptz');
SELECT pipeline.create_source('bad5', 'event_id int, event_time timestamptz, FOREIGN KEY (event_id) REFERENCES x(y)');
SELECT pipeline.create_source('bad6', 'LIKE pipeline.orders_raw');
SELECT pipeline.create_source('bad7', 'event_id int, event_time timestamptz) INHERITS (pipeline.orders_raw');
SELECT pipeline.create_source('bad8', 'event_id int, event_time timestamptz) WITH (fillfactor = 10');
SELECT pipeline.create_source('bad9', 'event_id int GENERATED ALWAYS AS IDENTITY, event_time timestamptz');
SELECT pipeline.create_source('bad10', 'event_id int, event_time timestamptz, _pl_batch int');
SELECT pipeline.create_source('bad11', 'event_id int, event_time timestamp');
SELECT pipeline.create_source('bad12', 'id int, event_time timestamptz');
SELECT pipeline.create_source('bad13', 'event_id int, ts timestamptz');
SELECT pipeline.create_source('bad14', 'this is not sql');
SELECT pipeline.create_source('bad15', '');
SELECT pipeline.create_source('bad16', 'event_id int, event_time timestamptz', day_timezone => 'Mars/Olympus');
SELECT pipeline.create_source('bad17', 'event_id int, event_time timestamptz', freeze_after => '1 hour', allowed_lateness => '2 hours');
SELECT pipeline.create_source('bad18', 'event_id int, event_time timestamptz', allowed_lateness => '-1 hour');
SELECT pipeline.create_source('bad19', 'event_id int, event_time timestamptz, CHECK (event_id > 0) NO INHERIT');
SELECT pipeline.create_source('bad20', NULL);
SELECT pipeline.create_source('orders', 'event_id int, event_time timestamptz');

-- refused names: never quoted into something surprising
SELECT pipeline.create_source('Orders', 'event_id int, event_time timestamptz');
SELECT pipeline.create_source('orders; drop table x', 'event_id int, event_time timestamptz');
SELECT pipeline.create_source('a-b', 'event_id int, event_time timestamptz');
SELECT pipeline.create_source(repeat('x', 41), 'event_id int, event_time timestamptz');
SELECT pipeline.create_source(NULL, 'event_id int, event_time timestamptz');

-- nothing of the refused attempts was left behind
SELECT source FROM pipeline.sources ORDER BY 1;
SELECT count(*) AS stray_tables FROM pg_class
 WHERE relnamespace = 'pipeline'::regnamespace AND relname LIKE 'bad%';
SELECT count(*) AS orders_raw_intact FROM pipeline.orders_raw;

-- drop_source
SELECT pipeline.drop_source('nope');
SELECT pipeline.drop_source('app_events');
SELECT to_regclass('pipeline.app_events_raw') AS raw, to_regclass('pipeline.app_events_ids') AS ids;
SELECT source FROM pipeline.sources ORDER BY 1;

-- sources depend on the extension: DROP EXTENSION refuses while they exist
DROP EXTENSION pipeline;

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
