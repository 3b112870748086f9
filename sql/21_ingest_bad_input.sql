-- Bad input: a clear error for a malformed call, a dead letter (payload
-- verbatim, a reason naming the field, an SQLSTATE, the contract version)
-- for a bad event, never a crash or a silent drop.
-- (PL/pgSQL CONTEXT lines carry line numbers: not part of the contract)
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
SELECT pipeline.create_source('orders',
    $$order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL,
      amount numeric(12,2) CHECK (amount >= 0), qty integer, paid boolean, note text,
      CHECK (qty IS NULL OR qty > 0)$$,
    event_id => 'order_id');

-- malformed calls are errors, with a hint, and write nothing
SELECT * FROM pipeline.ingest('nope', '[]'::jsonb);
SELECT * FROM pipeline.ingest(NULL, '[]'::jsonb);
SELECT * FROM pipeline.ingest('orders', NULL::jsonb);
SELECT * FROM pipeline.ingest('orders', NULL::text);
SELECT * FROM pipeline.ingest('orders', '{"order_id": 1}'::jsonb);
SELECT * FROM pipeline.ingest('orders', '"a string"'::jsonb);
SELECT * FROM pipeline.ingest('orders', '42'::jsonb);
SELECT count(*) AS receipts_after_errors FROM pipeline.batches;

-- empty batches get an empty receipt
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders', '[]'::jsonb);
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders', ''::text);
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders', E'\n  \n\r\n'::text);

-- one batch with every kind of bad event, between two good ones
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders', $$[
  {"order_id": 1, "event_time": "2026-03-01T10:00:00Z", "user_id": "ok-first", "amount": 1},
  {"order_id": 2, "event_time": "2026-03-01T10:00:00Z", "user_id": "u", "amount": "ten"},
  {"order_id": 3, "event_time": "2026-03-01T10:00:00Z", "user_id": "u", "amount": 1e30},
  {"order_id": 4, "event_time": "2026-03-01T10:00:00Z", "user_id": "u", "amount": -5},
  {"order_id": 5, "event_time": "2026-03-01T10:00:00Z", "user_id": "u", "qty": 99999999999},
  {"order_id": 6, "event_time": "2026-03-01T10:00:00Z", "user_id": "u", "qty": 0},
  {"order_id": 7, "event_time": "2026-03-01T10:00:00Z", "user_id": "u", "qty": 1.5},
  {"order_id": 8, "event_time": "2026-03-01T10:00:00Z", "user_id": "u", "paid": "maybe"},
  {"order_id": 9, "event_time": "2026-03-01T10:00:00Z", "user_id": "u", "qty": {"n": 1}},
  {"order_id": 10, "event_time": "2026-03-01T10:00:00Z"},
  {"order_id": 11, "event_time": "2026-03-01T10:00:00Z", "user_id": null},
  {"order_id": null, "event_time": "2026-03-01T10:00:00Z", "user_id": "u"},
  {"event_time": "2026-03-01T10:00:00Z", "user_id": "u"},
  {"order_id": 12, "user_id": "u"},
  {"order_id": 13, "event_time": "infinity", "user_id": "u"},
  {"order_id": 14, "event_time": "-infinity", "user_id": "u"},
  {"order_id": 15, "event_time": "1850-01-01T00:00:00Z", "user_id": "u"},
  {"order_id": 16, "event_time": "2999-01-01T00:00:00Z", "user_id": "u"},
  {"order_id": 17, "event_time": "yesterday-ish", "user_id": "u"},
  {"order_id": 18, "event_time": 1700000000, "user_id": "u"},
  {"order_id": 99999999999999999999, "event_time": "2026-03-01T10:00:00Z", "user_id": "u"},
  {"order_id": "abc", "event_time": "2026-03-01T10:00:00Z", "user_id": "u"},
  42, "a string", null, [1, 2], true,
  {"order_id": 19, "event_time": "2026-03-01T10:00:00Z", "user_id": "ok-last", "amount": 2,
   "deep": [[[[[[[[[[{"x": [[[[[[[[[[1]]]]]]]]]]}]]]]]]]]]]}
]$$::jsonb);

SELECT order_id, user_id, _pl_extra IS NOT NULL AS kept_unknown FROM pipeline.orders_raw ORDER BY 1;
SELECT payload, error, error_code, field, contract_version
  FROM pipeline.dead_letters ORDER BY id;

-- NDJSON: an unparseable line is kept verbatim as text
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders',
  E'{"order_id": 30, "event_time": "2026-03-01T10:00:00Z", "user_id": "ok"}\n' ||
  E'{"order_id": 31, "event_time": "2026-03-01T10:00:00Z", "user_id": "truncated\n' ||
  E'{"order_id": 32, "event_time": "2026-03-01T10:00:00Z", "user_id": "nul \\u0000 byte"}\n' ||
  E'{"order_id": 33, "event_time": "2026-03-01T10:00:00Z", "user_id": "bad escape \\uZZZZ"}\n' ||
  E'not json at all \x01\x02\n' ||
  E'{"order_id": 34, "event_time": "2026-03-01T10:00:00Z", "user_id": "dup key", "user_id": "last wins"}\n' ||
  E'[{"order_id": 35}]\n' ||
  E'{"order_id": 36, "event_time": "2026-03-01T10:00:00Z", "user_id": "ok"}');
SELECT order_id, user_id FROM pipeline.orders_raw WHERE order_id >= 30 ORDER BY 1;
SELECT payload, error, error_code, field FROM pipeline.dead_letters
 WHERE batch_id = (SELECT max(batch_id) FROM pipeline.batches) ORDER BY id;

-- deep nesting in NDJSON: rejected or kept, never a crash
SELECT received, accepted + rejected = 1 AS accounted FROM pipeline.ingest('orders',
  repeat('[', 100000) || repeat(']', 100000));

-- max_future_skew is a setting
SET pipeline.max_future_skew = '1d';
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders',
  jsonb_build_array(jsonb_build_object('order_id', 40, 'event_time', now() + interval '2 hours', 'user_id', 'u')));
RESET pipeline.max_future_skew;
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders',
  jsonb_build_array(jsonb_build_object('order_id', 41, 'event_time', now() + interval '2 hours', 'user_id', 'u')));

-- every rejected event is a dead letter, and every receipt balances
SELECT sum(rejected) = (SELECT count(*) FROM pipeline.dead_letters) AS rejected_equals_dead_letters,
       bool_and(received = accepted + duplicates + rejected) AS every_receipt_balances,
       sum(accepted) = (SELECT count(*) FROM pipeline.orders_raw) AS accepted_equals_raw
  FROM pipeline.batches;

-- the receipt table refuses an unbalanced receipt outright
\set VERBOSITY terse
INSERT INTO pipeline.batch_log (source, contract_version, received, accepted) VALUES ('orders', 1, 2, 1);

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
