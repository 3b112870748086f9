-- NDJSON lines are read without building jsonb when every key names a
-- column (src/event_scan.c); whatever the route, a line gives exactly what
-- the same event gives in a jsonb array: the same row, value for value
-- (text forms compared, so that -0 and 0 differ), the same _pl_extra and
-- drift, the same dead letter.  Two sources with one contract: "lines"
-- gets the NDJSON text, "arrays" the jsonb array of the same events.
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
SELECT pipeline.create_source(s,
    $$id bigint NOT NULL, event_time timestamptz NOT NULL, amount numeric(10,2) CHECK (amount >= 0),
      ratio float8, flag boolean, label text, props jsonb, doc json, n integer DEFAULT 7,
      renamed_later text$$,
    event_id => 'id')
  FROM unnest(ARRAY['lines', 'arrays']) AS s;
-- an alias: the old name "renamed_later" fills new_name while new_name is absent
SELECT pipeline.evolve_source(s, 'RENAME COLUMN renamed_later TO new_name')
  FROM unnest(ARRAY['lines', 'arrays']) AS s;

CREATE TEMP TABLE events (k serial, line text);
INSERT INTO events (line) VALUES
  -- the scan: every key a column
  ('{"id": 1, "event_time": "2026-03-01T10:00:00Z", "amount": 1.50, "ratio": 0.25, "flag": true, "label": "plain"}'),
  ('{"id": 2, "event_time": "2026-03-01 10:00:00+02", "amount": 1.5e1, "ratio": -0.0, "flag": false, "n": null}'),
  ('{"id": 3e0, "event_time": "2026-03-01T10:00:00.123456Z", "ratio": -0, "label": 12.50, "n": -3}'),
  ('{"id": 4, "event_time": "2026-03-01T10:00:00Z", "label": true, "flag": "true", "ratio": 1E-3}'),
  ('{"id": 5, "event_time": "2026-03-01T10:00:00Z", "props": {"b": [1, 2.50, {"x": null}], "a": "\u00e9", "b": 1}, "doc": {"b": 1,  "a" : [2]}}'),
  ('{"id": 6, "event_time": "2026-03-01T10:00:00Z", "props": [3, "x", 1e2], "label": {"z": 1, "a": [true]}, "doc": "just text"}'),
  ('{"id": 7, "event_time": "2026-03-01T10:00:00Z", "props": 5, "label": "tab\tand \"quotes\" \\ \/ \u0041", "doc": 1.0e1}'),
  ('{"id": 8, "event_time": "2026-03-01T10:00:00Z", "props": "a string", "label": null}'),
  ('  {"id": 9, "event_time": "2026-03-01T10:00:00Z", "renamed_later": "from the alias"}  '),
  ('{"id": 10, "event_time": "2026-03-01T10:00:00Z", "label": 123456789012345678901234567890.1234567890}'),
  -- escapes are undone by the scan itself: in keys, a surrogate pair, every short form
  ('{"id": 11, "event_time": "2026-03-01T10:00:00Z", "lab\u0065l": "escaped key", "r\u0061tio": 2}'),
  ('{"id": 12, "event_time": "2026-03-01T10:00:00Z", "label": "\ud83d\ude00 caf\u00e9 \u00f1 \b\f\n\r\t\"\\\/ end"}'),
  -- nested values of every shape, empty ones, deep ones, escapes inside
  ('{"id": 13, "event_time": "2026-03-01T10:00:00Z", "props": {}, "doc": [], "label": ""}'),
  ('{"id": 14, "event_time": "2026-03-01T10:00:00Z", "props": [[[[{"a": [{}, [], [null]]}]]]], "doc": {"k\"ey": "v\\al", "n": [-0.0, 1E2]}}'),
  -- the jsonb path: a key the contract does not name, a key twice, an alias beside its name
  ('{"id": 20, "event_time": "2026-03-01T10:00:00Z", "label": "x", "unknown": {"k": 1}, "other": 2}'),
  ('{"id": 21, "event_time": "2026-03-01T10:00:00Z", "label": "first", "label": "last"}'),
  ('{"id": 22, "event_time": "2026-03-01T10:00:00Z", "renamed_later": "alias", "new_name": "name wins"}'),
  -- dead letters, each for the same reason whichever route it takes
  ('{"id": 30, "event_time": "2026-03-01T10:00:00Z", "amount": -1}'),
  ('{"id": 31, "event_time": "2026-03-01T10:00:00Z", "amount": 1e400}'),
  ('{"id": 32, "event_time": "2026-03-01T10:00:00Z", "n": {"k": 1}}'),
  ('{"id": 33, "event_time": "2026-03-01T10:00:00Z", "n": [1]}'),
  ('{"id": 34, "event_time": "2026-03-01T10:00:00Z", "n": 1.5}'),
  ('{"id": 35, "event_time": null}'),
  ('{"id": 36}'),
  ('{"id": "x37", "event_time": "2026-03-01T10:00:00Z"}'),
  ('{"id": 38, "event_time": 20260301}'),
  ('{"id": 39, "event_time": "2026-03-01T10:00:00Z", "flag": 1}'),
  ('{"id": 40, "event_time": "2026-03-01T10:00:00Z", "props": "not json"}'),
  ('{"id": 41, "event_time": "2026-03-01T10:00:00Z", "n": 99999999999}'),
  ('[{"id": 43, "event_time": "2026-03-01T10:00:00Z"}]'),
  ('"a string"'),
  ('44');

SELECT received, accepted, duplicates, rejected
  FROM pipeline.ingest('lines', (SELECT string_agg(line, E'\n' ORDER BY k) FROM events));
SELECT received, accepted, duplicates, rejected
  FROM pipeline.ingest('arrays', (SELECT jsonb_agg(line::jsonb ORDER BY k) FROM events));

-- every row, as text, from the lines
SELECT (r.id, r.event_time, r.amount, r.ratio, r.flag, r.label, r.props, r.doc, r.n, r.new_name, r._pl_extra)::text AS row
  FROM pipeline.lines_raw AS r ORDER BY r.id;
-- and nothing differs from the arrays, either way
SELECT 'lines only' AS side, * FROM (
  SELECT (r.id, r.event_time, r.amount, r.ratio, r.flag, r.label, r.props, r.doc, r.n, r.new_name, r._pl_extra)::text FROM pipeline.lines_raw AS r
  EXCEPT SELECT (r.id, r.event_time, r.amount, r.ratio, r.flag, r.label, r.props, r.doc, r.n, r.new_name, r._pl_extra)::text FROM pipeline.arrays_raw AS r) AS x
UNION ALL
SELECT 'arrays only', * FROM (
  SELECT (r.id, r.event_time, r.amount, r.ratio, r.flag, r.label, r.props, r.doc, r.n, r.new_name, r._pl_extra)::text FROM pipeline.arrays_raw AS r
  EXCEPT SELECT (r.id, r.event_time, r.amount, r.ratio, r.flag, r.label, r.props, r.doc, r.n, r.new_name, r._pl_extra)::text FROM pipeline.lines_raw AS r) AS x;

-- the dead letters: the lines' reasons, then any reason that differs (but
-- for the name of the source's table in a constraint's name)
SELECT d.error, d.field, d.error_code FROM pipeline.dead_letters AS d
 WHERE d.source = 'lines' ORDER BY d.id;
SELECT l.error AS lines_error, a.error AS arrays_error
  FROM (SELECT row_number() OVER (ORDER BY id) AS i, error, field, error_code FROM pipeline.dead_letters WHERE source = 'lines') AS l
  FULL JOIN (SELECT row_number() OVER (ORDER BY id) AS i, replace(error, '"arrays_raw_', '"lines_raw_') AS error, field, error_code
               FROM pipeline.dead_letters WHERE source = 'arrays') AS a
    ON a.i = l.i
 WHERE (l.error, l.field, l.error_code) IS DISTINCT FROM (a.error, a.field, a.error_code);

-- lines that jsonb itself refuses (no array could hold them) are dead
-- letters with jsonb's own reason, whichever key comes first
SELECT received, accepted, rejected FROM pipeline.ingest('lines',
  E'{"id": 50, "event_time": "2026-03-01T10:00:00Z"}\n'
   '{"id": 51, "event_time": }\n'
   '{"id": 52, "label": "\\u0000"}\n'
   '{"id": 53, "event_time": "2026-03-01T10:00:00Z", "props": {"deep": 1e999999}}\n'
   '{"id": 54, "event_time": "2026-03-01T10:00:00Z", "amount": 1e999999}\n'
   '{"unknown": 1, "id": 55, "event_time": "2026-03-01T10:00:00Z", "amount": 1e999999}\n'
   '{"id": 56, "event_time": "2026-03-01T10:00:00Z", "label": "ok"}\n'
   '{"id": 57, "event_time": "2026-03-01T10:00:00Z", "label": "\\ud800 alone"}\n'
   '{"id": 58, "event_time": "2026-03-01T10:00:00Z", "props": {"a": }}\n'
   '{"id": 59, "event_time": "2026-03-01T10:00:00Z", "props": {"a" 1}}\n'
   '{"id": 60, "event_time": "2026-03-01T10:00:00Z", "props": [1, ]}\n'
   '{"id": 61, "event_time": "2026-03-01T10:00:00Z", "props": [1}\n'
   '{"id": 62, "event_time": "2026-03-01T10:00:00Z"} {"id": 63}\n'
   '{"id": 64, "event_time": "2026-03-01T10:00:00Z", "label": "tab\there"}\n'
   '{"id": 65, "event_time": "2026-03-01T10:00:00Z", "label": "\\x"}\n'
   '{"id": 66, "event_time": "2026-03-01T10:00:00Z",}');
SELECT d.payload, d.error, d.field FROM pipeline.dead_letters AS d
 WHERE d.source = 'lines' AND d.batch_id = (SELECT max(batch_id) FROM pipeline.batches) ORDER BY d.id;

-- drift: the unknown keys of the lines are counted as for the arrays
SELECT source, field, events FROM pipeline.contract_drift ORDER BY source, field;

-- a name that is also another column's alias (a renamed column's old name
-- given to a new column) fills both columns, whichever route: the line
-- with it takes the jsonb path, the one without it the scan
SELECT pipeline.create_source(s, 'id bigint NOT NULL, event_time timestamptz NOT NULL, a text', event_id => 'id')
  FROM unnest(ARRAY['twice_lines', 'twice_arrays']) AS s;
SELECT pipeline.evolve_source(s, 'RENAME COLUMN a TO b') FROM unnest(ARRAY['twice_lines', 'twice_arrays']) AS s;
SELECT pipeline.evolve_source(s, 'ADD COLUMN a text') FROM unnest(ARRAY['twice_lines', 'twice_arrays']) AS s;
CREATE TEMP TABLE twice (k serial, line text);
INSERT INTO twice (line) VALUES
  ('{"id": 1, "event_time": "2026-03-01T10:00:00Z", "a": "x"}'),
  ('{"id": 2, "event_time": "2026-03-01T10:00:00Z", "b": "y", "a": "z"}'),
  ('{"id": 3, "event_time": "2026-03-01T10:00:00Z", "b": "only b"}');
SELECT accepted FROM pipeline.ingest('twice_lines', (SELECT string_agg(line, E'\n' ORDER BY k) FROM twice));
SELECT accepted FROM pipeline.ingest('twice_arrays', (SELECT jsonb_agg(line::jsonb ORDER BY k) FROM twice));
SELECT 'lines' AS via, id, a, b FROM pipeline.twice_lines_raw
UNION ALL SELECT 'arrays', id, a, b FROM pipeline.twice_arrays_raw ORDER BY 2, 1;

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
