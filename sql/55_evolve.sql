-- Schema evolution: compatible changes flow, renames keep old producers
-- working, breaking changes are refused with who would break, every version
-- is kept, drift is visible with its share, dead letters replay once.
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
SET DateStyle = ISO;
SELECT pipeline.create_source('orders',
    $$order_id int NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL,
      amount numeric(8,2), qty int NOT NULL, note varchar(10)$$,
    event_id => 'order_id');
SELECT pipeline.create_metric('sales', 'orders', '{}', 'count(*) AS orders, sum(amount) AS revenue',
    hot_retention => '100 years');

-- v1 producers
SELECT received, accepted, rejected FROM pipeline.ingest('orders',
  '[{"order_id": 1, "event_time": "2026-03-01T10:00:00Z", "user_id": "u1", "amount": 5, "qty": 1},
    {"order_id": 2, "event_time": "2026-03-01T10:00:00Z", "user_id": "u2", "amount": 5, "qty": 1, "coupon": "A"},
    {"order_id": 3, "event_time": "2026-03-01T10:00:00Z", "user_id": "u3", "amount": 5, "coupon": "B"},
    {"order_id": 4, "event_time": "2026-03-01T10:00:00Z", "user_id": "u4", "amount": 5, "qty": 1, "note": "much too long for ten"}]'::jsonb);
SELECT field, events, share_since_first_seen FROM pipeline.contract_drift;
SELECT error FROM pipeline.dead_letters ORDER BY id;

-- compatible: add the field producers started sending
SELECT pipeline.evolve_source('orders', 'ADD COLUMN coupon text') AS version;
SELECT pipeline.evolve_source('orders', 'ADD COLUMN channel text NOT NULL DEFAULT ''app''') AS version;
-- compatible: relax a rule, widen types (including the event id)
SELECT pipeline.evolve_source('orders', 'ALTER COLUMN qty DROP NOT NULL') AS version;
SELECT pipeline.evolve_source('orders', 'ALTER COLUMN note TYPE text') AS version;
SELECT pipeline.evolve_source('orders', 'ALTER COLUMN order_id TYPE bigint') AS version;
-- compatible: rename; the old name stays an alias
SELECT pipeline.evolve_source('orders', 'RENAME COLUMN user_id TO customer_id') AS version;
SELECT source, contract_version FROM pipeline.sources;
SELECT version, change, columns FROM pipeline.contracts ORDER BY version;
SELECT alias, column_name, since_version FROM pipeline.column_aliases;
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'pipeline.orders_ids'::regclass AND attname = 'event_id';

-- producers on the old contract keep working; new ones use the new names
SELECT received, accepted, rejected FROM pipeline.ingest('orders',
  '[{"order_id": 10, "event_time": "2026-03-01T11:00:00Z", "user_id": "old-producer", "amount": 1, "qty": 1},
    {"order_id": 11, "event_time": "2026-03-01T11:00:00Z", "customer_id": "new-producer", "amount": 1,
     "coupon": "C", "channel": "web", "note": "now it can be as long as it likes"},
    {"order_id": 3000000000, "event_time": "2026-03-01T11:00:00Z", "customer_id": "big-id", "amount": 1}]'::jsonb);
SELECT order_id, customer_id, qty, coupon, channel, note, _pl_extra FROM pipeline.orders_raw
 WHERE order_id >= 10 ORDER BY order_id;
-- receipts and dead letters record the contract version they were checked against
SELECT contract_version, count(*) FROM pipeline.batches GROUP BY 1 ORDER BY 1;
-- the load table follows the contract
SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute
 WHERE attrelid = 'pipeline.orders_load'::regclass AND attnum > 0 AND NOT attisdropped;

-- refused: breaking changes, with who would break
SELECT pipeline.evolve_source('orders', 'ADD COLUMN region text NOT NULL');
SELECT pipeline.evolve_source('orders', 'ALTER COLUMN qty SET NOT NULL');
SELECT pipeline.evolve_source('orders', 'ALTER COLUMN amount TYPE numeric(6,2)');
SELECT pipeline.evolve_source('orders', 'ALTER COLUMN amount TYPE int');
SELECT pipeline.evolve_source('orders', 'ALTER COLUMN note TYPE varchar(5)');
SELECT pipeline.evolve_source('orders', 'ALTER COLUMN amount TYPE numeric(12,2)');
SELECT pipeline.evolve_source('orders', 'DROP COLUMN amount');
SELECT pipeline.evolve_source('orders', 'RENAME COLUMN amount TO total');
SELECT pipeline.evolve_source('orders', 'DROP COLUMN event_time');
SELECT pipeline.evolve_source('orders', 'ADD CONSTRAINT positive CHECK (qty > 0)');
SELECT pipeline.evolve_source('orders', 'ADD COLUMN a int, ADD COLUMN b int');
SELECT pipeline.evolve_source('orders', 'ADD COLUMN a int; DROP TABLE pipeline.orders_raw');
SELECT pipeline.evolve_source('orders', 'ADD COLUMN _pl_x int');
SELECT pipeline.evolve_source('orders', 'ADD COLUMN c int REFERENCES pipeline.source_catalog');
SELECT pipeline.evolve_source('orders', 'OWNER TO nobody');
SELECT pipeline.evolve_source('orders', 'RENAME COLUMN nope TO other');
SELECT pipeline.evolve_source('orders', 'DROP ALIAS nope');
SELECT pipeline.evolve_source('nope', 'ADD COLUMN x int');
SELECT pipeline.evolve_source('orders', 'garbage');
SELECT max(version) AS versions_unchanged FROM pipeline.contracts;

-- a column no metric uses can go; its alias goes with it
SELECT pipeline.evolve_source('orders', 'DROP COLUMN note') AS version;
SELECT pipeline.evolve_source('orders', 'DROP ALIAS user_id') AS version;
SELECT count(*) AS aliases FROM pipeline.column_aliases;
SELECT received, accepted, rejected FROM pipeline.ingest('orders',
  '[{"order_id": 20, "event_time": "2026-03-01T12:00:00Z", "user_id": "old name, alias dropped", "amount": 1}]'::jsonb);
-- a day partition created after the drop has the columns at other
-- positions than the parent: each value still lands in its column
SELECT received, accepted, rejected FROM pipeline.ingest('orders',
  '[{"order_id": 21, "event_time": "2026-03-05T08:00:00Z", "customer_id": "u21", "amount": 2.5, "qty": 3,
     "coupon": "K", "channel": "app"}]'::jsonb);
SELECT (SELECT count(*) FROM pg_attribute WHERE attrelid = 'pipeline.orders_raw'::regclass AND attisdropped) AS parent_dropped,
       (SELECT count(*) FROM pg_attribute WHERE attrelid = 'pipeline.orders_raw_20260305'::regclass AND attisdropped) AS partition_dropped;
SELECT order_id, event_time, customer_id, amount, qty, coupon, channel, _pl_batch > 0 AS has_batch, _pl_extra
  FROM pipeline.orders_raw_20260305;

-- metrics keep working across the evolution
SELECT pipeline.run_hot('sales') > 0 AS folded;
SELECT sum(orders) AS orders, sum(revenue) AS revenue FROM metrics.sales_live;
SELECT count(*) AS raw_orders, sum(amount) AS raw_revenue FROM pipeline.orders_raw;

-- replay: dead letters re-checked against the current contract
SELECT id, error, contract_version FROM pipeline.dead_letters ORDER BY id;
SELECT * FROM pipeline.replay_dead_letters('orders');
SELECT id, replayed_at IS NOT NULL AS replayed, error, contract_version, replay_attempts
  FROM pipeline.dead_letters ORDER BY id;
SELECT order_id, customer_id FROM pipeline.orders_raw WHERE order_id IN (3, 4) ORDER BY 1;
SELECT batch_key, received, accepted, rejected FROM pipeline.batches WHERE batch_key LIKE 'replay:%' ORDER BY batch_id;
-- replaying twice changes nothing
SELECT * FROM pipeline.replay_dead_letters('orders');
SELECT count(*) AS replay_batches FROM pipeline.batches WHERE batch_key LIKE 'replay:%';
-- after one more fix they all go through (filters: since, error_like)
SELECT pipeline.evolve_source('orders', 'ALTER COLUMN customer_id DROP NOT NULL') AS version;
SELECT * FROM pipeline.replay_dead_letters('orders', error_like => '%nothing matches%');
SELECT * FROM pipeline.replay_dead_letters('orders', since => now() - interval '1 hour');
SELECT count(*) FILTER (WHERE replayed_at IS NULL) AS still_dead FROM pipeline.dead_letters;
SELECT bool_and(received = accepted + duplicates + rejected) AS every_receipt_balances FROM pipeline.batches;

-- only the owner evolves a contract
CREATE ROLE regress_other IN ROLE pipeline_writer;
GRANT USAGE ON SCHEMA pipeline TO regress_other;
SET ROLE regress_other;
SELECT pipeline.evolve_source('orders', 'ADD COLUMN x int');
INSERT INTO pipeline.contracts (source, version, columns, change) VALUES ('orders', 99, 'x', 'forged');
UPDATE pipeline.source_catalog SET contract_version = 99;
INSERT INTO pipeline.column_aliases (source, alias, column_name, since_version) VALUES ('orders', 'a', 'b', 1);
RESET ROLE;
SELECT contract_version FROM pipeline.sources;
DROP OWNED BY regress_other;
DROP ROLE regress_other;

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
