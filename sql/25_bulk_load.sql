-- The bulk path: COPY into pipeline.<source>_load, the same checks and
-- receipts as ingest(), nothing stored in the load table itself.
-- (PL/pgSQL CONTEXT lines carry line numbers: not part of the contract)
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
SELECT pipeline.create_source('orders',
    $$order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL,
      amount numeric(12,2) CHECK (amount >= 0), currency text NOT NULL DEFAULT 'EUR'$$,
    event_id => 'order_id');
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'pipeline.orders_load'::regclass AND attnum > 0 ORDER BY attnum;

-- CSV with a header: good rows, a CHECK violation, a bad time, a duplicate,
-- a missing required field; an empty field is missing, so DEFAULT applies
COPY pipeline.orders_load FROM STDIN (FORMAT csv, HEADER);
order_id,event_time,user_id,amount,currency
1,2026-03-01T10:00:00Z,u1,10.5,USD
2,2026-03-01T11:00:00Z,u2,-1,
3,not a time,u3,1,
1,2026-03-01T10:00:00Z,u1,10.5,USD
4,2026-03-02T10:00:00Z,,5,
5,2026-03-02T10:00:00Z,u5,5,
\.
SELECT order_id, event_time, user_id, amount, currency FROM pipeline.orders_raw ORDER BY 1;
SELECT count(*) AS stored_in_load_table FROM pipeline.orders_load;
SELECT payload, error, field FROM pipeline.dead_letters ORDER BY id;

-- batch_key: a retried load applies nothing and reports the original receipt
SET pipeline.batch_key = 'history-march';
COPY pipeline.orders_load (order_id, event_time, user_id) FROM STDIN (FORMAT csv);
10,2026-03-03T10:00:00Z,u10
\.
COPY pipeline.orders_load (order_id, event_time, user_id) FROM STDIN (FORMAT csv);
11,2026-03-03T10:00:00Z,u11
\.
RESET pipeline.batch_key;
SELECT count(*) AS order_11_applied FROM pipeline.orders_raw WHERE order_id = 11;

-- a load larger than a chunk is one batch with one receipt
INSERT INTO pipeline.orders_load (order_id, event_time, user_id, amount)
SELECT i, '2026-03-04T10:00:00Z', 'u' || i, i % 50 FROM generate_series(100, 25099) AS i;

-- a load rolled back with its savepoint leaves nothing behind
BEGIN;
SAVEPOINT before_load;
COPY pipeline.orders_load (order_id, event_time, user_id) FROM STDIN (FORMAT csv);
50000,2026-03-03T10:00:00Z,gone
\.
ROLLBACK TO before_load;
INSERT INTO pipeline.orders_load (order_id, event_time, user_id) VALUES (50001, '2026-03-03T10:00:00Z', 'kept');
COMMIT;
SELECT order_id, user_id FROM pipeline.orders_raw WHERE order_id >= 50000 ORDER BY 1;

SELECT batch_key, received, accepted, duplicates, rejected FROM pipeline.batches ORDER BY batch_id;
SELECT bool_and(received = accepted + duplicates + rejected) AS every_receipt_balances,
       sum(accepted) = (SELECT count(*) FROM pipeline.orders_raw) AS accepted_equals_raw,
       sum(rejected) = (SELECT count(*) FROM pipeline.dead_letters) AS rejected_equals_dead_letters
  FROM pipeline.batches;

-- the load table is for writers; readers cannot load
CREATE ROLE regress_loader IN ROLE pipeline_writer;
CREATE ROLE regress_looker IN ROLE pipeline_reader;
SET ROLE regress_loader;
INSERT INTO pipeline.orders_load (order_id, event_time, user_id) VALUES (60000, '2026-03-03T10:00:00Z', 'w');
SET ROLE regress_looker;
INSERT INTO pipeline.orders_load (order_id, event_time, user_id) VALUES (60001, '2026-03-03T10:00:00Z', 'r');
RESET ROLE;
SELECT order_id FROM pipeline.orders_raw WHERE order_id >= 60000;
DROP ROLE regress_loader, regress_looker;

-- dropping the source drops its load table
SELECT pipeline.drop_source('orders');
SELECT to_regclass('pipeline.orders_load') AS load_table;

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
