-- Ingest: receipts, dedup (in the batch, against the store, by batch_key),
-- defaults, unknown fields, day partitions in the source's time zone.
-- (PL/pgSQL CONTEXT lines carry line numbers: not part of the contract)
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
SELECT pipeline.create_source('orders',
    $$order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL,
      amount numeric(12,2) CHECK (amount >= 0), currency text NOT NULL DEFAULT 'EUR'$$,
    event_id => 'order_id');

-- a clean batch: every event accepted
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders', $$[
  {"order_id": 1, "event_time": "2026-03-01T10:00:00Z", "user_id": "u1", "amount": 10.50},
  {"order_id": 2, "event_time": "2026-03-01T11:00:00Z", "user_id": "u2", "amount": 20, "currency": "USD"},
  {"order_id": 3, "event_time": "2026-03-02T09:00:00Z", "user_id": "u1", "amount": "5.25"}
]$$::jsonb);

-- DEFAULT fills a missing field; numbers given as strings go through the type's input
SELECT order_id, event_time, user_id, amount, currency, _pl_extra FROM pipeline.orders_raw ORDER BY 1;

-- re-sending the same events any number of times changes nothing
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders', $$[
  {"order_id": 1, "event_time": "2026-03-01T10:00:00Z", "user_id": "u1", "amount": 10.50},
  {"order_id": 2, "event_time": "2026-03-01T11:00:00Z", "user_id": "u2", "amount": 20, "currency": "USD"}
]$$::jsonb);
-- same id twice in one batch: the first is kept, the second counted as a duplicate
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders', $$[
  {"order_id": 4, "event_time": "2026-03-02T10:00:00Z", "user_id": "first", "amount": 1},
  {"order_id": 4, "event_time": "2026-03-02T10:00:00Z", "user_id": "second", "amount": 2},
  {"order_id": 5, "event_time": "2026-03-02T10:00:00Z", "user_id": "u5", "amount": 3}
]$$::jsonb);
SELECT order_id, user_id FROM pipeline.orders_raw WHERE order_id IN (4, 5) ORDER BY 1;
-- an id already stored with a different event time is still the same event
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders',
  '[{"order_id": 1, "event_time": "2026-02-01T00:00:00Z", "user_id": "other", "amount": 99}]'::jsonb);
SELECT count(*) FILTER (WHERE order_id = 1) AS stored_once, count(*) AS total FROM pipeline.orders_raw;

-- batch_key: a retry returns the original receipt and applies nothing,
-- even if the retried payload differs
SELECT batch_id AS first_batch, received, accepted, duplicates, rejected FROM pipeline.ingest('orders',
  '[{"order_id": 10, "event_time": "2026-03-03T10:00:00Z", "user_id": "u10", "amount": 1}]'::jsonb,
  batch_key => 'upload-42') \gset
SELECT batch_id = :first_batch AS same_batch, received, accepted, duplicates, rejected
  FROM pipeline.ingest('orders',
  '[{"order_id": 11, "event_time": "2026-03-03T10:00:00Z", "user_id": "u11", "amount": 1}]'::jsonb,
  batch_key => 'upload-42');
SELECT count(*) AS order_11_applied FROM pipeline.orders_raw WHERE order_id = 11;
SELECT count(*) AS receipts_for_key FROM pipeline.batches WHERE batch_key = 'upload-42';

-- NDJSON through the text form: blank lines skipped, CRLF accepted
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders',
  E'{"order_id": 20, "event_time": "2026-03-04T10:00:00Z", "user_id": "u20", "amount": 1}\r\n' ||
  E'\n' ||
  E'   \n' ||
  E'{"order_id": 21, "event_time": "2026-03-04T10:00:00Z", "user_id": "u21", "amount": 2}\n' ||
  E'{"order_id": 20, "event_time": "2026-03-04T10:00:00Z", "user_id": "u20", "amount": 1}');
-- an untyped literal goes to the text form, which also takes a JSON array
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders',
  '[{"order_id": 22, "event_time": "2026-03-04T10:00:00Z", "user_id": "u22", "amount": 1}]');
-- a single-line NDJSON object
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders',
  '{"order_id": 23, "event_time": "2026-03-04T10:00:00Z", "user_id": "u23", "amount": 1}');

-- unknown fields are kept in _pl_extra and counted as contract drift
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders', $$[
  {"order_id": 30, "event_time": "2026-03-05T10:00:00Z", "user_id": "u30", "amount": 1, "coupon": "X1", "utm": {"source": "ad"}},
  {"order_id": 31, "event_time": "2026-03-05T10:00:00Z", "user_id": "u31", "amount": 1, "coupon": null}
]$$::jsonb);
SELECT order_id, _pl_extra FROM pipeline.orders_raw WHERE order_id IN (30, 31) ORDER BY 1;
SELECT source, field, events, first_seen <= last_seen AS ordered FROM pipeline.contract_drift ORDER BY field;

-- event times in every shape producers send read the same as PostgreSQL's
-- own parser reads them (RFC 3339 has a fast path; the rest do not)
SELECT pipeline.create_source('times', 'event_id int NOT NULL, event_time timestamptz NOT NULL, sent text');
SELECT received, accepted, rejected FROM pipeline.ingest('times', (
  SELECT jsonb_agg(jsonb_build_object('event_id', n, 'event_time', t, 'sent', t))
    FROM unnest(ARRAY['2026-03-05T10:00:00Z', '2026-03-05T10:00:00.123456Z', '2026-03-05T10:00:00.5+02:00',
                      '2026-03-05T10:00:00-05:30', '2026-03-05 10:00:00Z', '2026-03-05T10:00:00.1234567Z',
                      '2026-03-05T10:00:00+0200', '2026-03-05 10:00:00 Europe/Paris', '2026-03-05',
                      '2024-02-29T23:59:59Z', '2025-12-31T23:59:59.999999-14:00'])
         WITH ORDINALITY AS x(t, n)));
SELECT event_id, sent, event_time, event_time = sent::timestamptz AS same_as_postgres
  FROM pipeline.times_raw ORDER BY event_id;
SELECT received, accepted, rejected FROM pipeline.ingest('times',
  '[{"event_id": 100, "event_time": "2026-02-30T10:00:00Z"},
    {"event_id": 101, "event_time": "2026-03-05T24:00:00Z"},
    {"event_id": 102, "event_time": "2026-03-05T10:00:00+25:00"}]'::jsonb);
SELECT payload::jsonb->>'event_time' AS sent, error FROM pipeline.dead_letters WHERE source = 'times' ORDER BY id;
SELECT pipeline.drop_source('times');

-- one partition per event day; batches that span days go to each
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bounds, count(r.*) AS events
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  LEFT JOIN pipeline.orders_raw r ON r.tableoid = c.oid
 WHERE i.inhparent = 'pipeline.orders_raw'::regclass
 GROUP BY c.relname, c.relpartbound, c.oid ORDER BY 1;

-- the receipts add up (semantics 1), and the table enforces it
SELECT count(*) AS batches, sum(received) AS received, sum(accepted) AS accepted,
       sum(duplicates) AS duplicates, sum(rejected) AS rejected,
       bool_and(received = accepted + duplicates + rejected) AS every_receipt_balances
  FROM pipeline.batches WHERE source = 'orders';
SELECT sum(accepted) = (SELECT count(*) FROM pipeline.orders_raw) AS accepted_equals_raw
  FROM pipeline.batches WHERE source = 'orders';
SELECT (SELECT count(*) FROM pipeline.orders_ids) = (SELECT count(*) FROM pipeline.orders_raw) AS ids_match_raw;

-- days in the source's time zone: a DST day in New York is one 23-hour partition
SELECT pipeline.create_source('ny_events', 'event_id text NOT NULL, event_time timestamptz NOT NULL',
    day_timezone => 'America/New_York');
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('ny_events', $$[
  {"event_id": "a", "event_time": "2026-03-08T04:59:00Z"},
  {"event_id": "b", "event_time": "2026-03-08T05:00:00Z"},
  {"event_id": "c", "event_time": "2026-03-09T03:59:00Z"},
  {"event_id": "d", "event_time": "2026-03-09T04:00:00Z"}
]$$::jsonb);
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bounds,
       string_agg(r.event_id, ',' ORDER BY r.event_id) AS events
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  LEFT JOIN pipeline.ny_events_raw r ON r.tableoid = c.oid
 WHERE i.inhparent = 'pipeline.ny_events_raw'::regclass
 GROUP BY c.relname, c.relpartbound, c.oid ORDER BY 1;

-- dropping a source removes its receipts, drift and dead letters too
SELECT pipeline.drop_source('ny_events');
SELECT count(*) FROM pipeline.batches WHERE source = 'ny_events';

-- a jsonb field keeps the object or array it was sent as jsonb would
-- (the last of duplicate keys, numbers as written), through either form; a
-- JSON string or number in it is its text, read by jsonb's input
SELECT pipeline.create_source('docs', 'id bigint NOT NULL, event_time timestamptz NOT NULL, props jsonb',
                              event_id => 'id');
SELECT accepted, rejected FROM pipeline.ingest('docs',
  '[{"id": 1, "event_time": "2026-03-08T10:00:00Z", "props": {"b": [1, 2.50, {"x": null}], "a": "é", "a": "last"}},
    {"id": 2, "event_time": "2026-03-08T10:00:00Z", "props": [true, "s", []]},
    {"id": 3, "event_time": "2026-03-08T10:00:00Z", "props": "{\"k\": 1}"}]'::jsonb);
SELECT accepted, rejected FROM pipeline.ingest('docs',
  '{"id": 4, "event_time": "2026-03-08T10:00:00Z", "props": {"nested": {"z": 1, "a": [{}]}, "n": 1e3}}' || E'\n');
SELECT id, props, jsonb_typeof(props) AS kind FROM pipeline.docs_raw ORDER BY id;
SELECT pipeline.drop_source('docs');

-- stored ids are found two ways.  A chunk with a few of them writes them
-- with the rest, its primary key reports them in the same descent, and
-- each is deleted again (n_tup_del counts them).  A chunk that was at
-- least a quarter stored ids makes the next chunks probe the primary key
-- first, deleting nothing, until one has fewer.  Either way the receipt
-- counts them as duplicates and the store keeps each id once.
SELECT pipeline.create_source('resent', 'id bigint NOT NULL, event_time timestamptz NOT NULL', event_id => 'id');
CREATE FUNCTION pg_temp.deleted() RETURNS bigint LANGUAGE sql AS
  $$SELECT n_tup_del FROM pg_stat_xact_user_tables WHERE relid = 'pipeline.resent_ids'::regclass$$;
CREATE FUNCTION pg_temp.send(lo int, hi int, OUT accepted bigint, OUT duplicates bigint, OUT deleted bigint)
LANGUAGE plpgsql AS $$
DECLARE
  before bigint := pg_temp.deleted();
BEGIN
  SELECT r.accepted, r.duplicates INTO accepted, duplicates
    FROM pipeline.ingest('resent', (SELECT jsonb_agg(jsonb_build_object('id', i, 'event_time', '2026-03-08T10:00:00Z'))
                                      FROM generate_series(lo, hi) AS i)) AS r;
  deleted := pg_temp.deleted() - before;
END
$$;
SELECT * FROM pg_temp.send(1, 20); -- new
SELECT * FROM pg_temp.send(19, 30); -- 2 of 12 stored: found in place
SELECT * FROM pg_temp.send(11, 30); -- all 20 stored: found in place
SELECT * FROM pg_temp.send(11, 30); -- all stored again: probed first
SELECT * FROM pg_temp.send(30, 40); -- probed first: 1 of 11
SELECT * FROM pg_temp.send(40, 50); -- found in place again
SELECT count(*), count(DISTINCT id), min(id), max(id) FROM pipeline.resent_raw;
SELECT count(*), count(DISTINCT event_id) FROM pipeline.resent_ids;
SELECT sum(accepted), sum(duplicates) FROM pipeline.batches WHERE source = 'resent';
SELECT pipeline.drop_source('resent');

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
