-- Measure kinds: everything pipeline generates for a measure, one row per
-- kind.  The metric layers (hot table, fold, live view, daily table, exact
-- daily value, corrections, restated, reconcile, explain) build their SQL
-- from these rows and nothing else: adding a kind is one row here, its
-- check in src/expr_check.c, and its tests.
--
-- Each column is a format() template for one piece of generated SQL (NULL:
-- the kind adds nothing there).  _measure_part renders it with the same
-- arguments for every column:
--    %1$I  the measure's name                %11$I  <name>_count (hot)
--    %2$s  its argument, deparsed            %12$I  <name>_sketch (live)
--    %3$s  " FILTER (WHERE <filter>)" or ''  %13$I  <name>_delta
--    %4$s  its result type                   %14$s  its position, 1-based
--    %5$s  the type an avg sums in           %15$s  " AND x.dim IS NOT DISTINCT
--    %6$s  the fraction p of a percentile           FROM new.dim ..." (corrections)
--    %7$s  a prefix for column references    %16$I  metric_restated (corrections)
--    %8$I  _<name>_sum (daily)               %17$I  _<name>_before (daily)
--    %9$I  _<name>_count (daily)             %18$I  <name>_sum_delta
--    %10$I <name>_sum (hot)                  %19$I  <name>_count_delta
--                                            %20$I  _<name>_as_of (daily)
-- Every argument and filter was checked and deparsed by _compile_metric:
-- only that text reaches a template.
--
-- How the generated SQL uses each column, by layer:
--   hot table      hot_columns (its state columns), hot_names (their names)
--   fold           fold (aggregates over the new raw rows r, one per state
--                  column), merge (ON CONFLICT: state h + excluded)
--   live view      live (values and sketches from hot row h), live_names
--   reconcile      rollup (a day of hot rows h), difference (restated r -
--                  live l)
--   daily table    daily_columns, daily_exact (exact over a day's raw rows r),
--                  daily_names (the columns daily and correction rows share)
--   corrections    corrected_by (how a frozen day is corrected, below),
--                  correction (aggregates of the late events, in CTE "new"),
--                  correction_value (the correction row's daily_names),
--                  corrections_view (and its column names)
--   restated       restated (the daily row and the correction rows u)
--   explain        explain_corrections (correction rows c of a group),
--                  explain_values (daily d, corrections k, restated x),
--                  explain_restated (what x must be from d and k)
--
-- corrected_by, how the late events of a frozen day reach its corrections:
--   delta       an additive delta of the late events alone
--   extreme     the late events' extreme when it beats the restated one
--   new_values  the late values no other event of the day and group has
--               (_correction_distinct, with the value indexes of
--               _index_day_values)
--   raw         the exact value over all of the group's raw events at the
--               correction, and the value before it: a percentile has no
--               delta that adds up
CREATE TABLE pipeline.measure_kinds (
    kind                    text PRIMARY KEY,
    written_as              text NOT NULL,
    live_is_approximate     boolean NOT NULL,
    corrected_by            text NOT NULL CHECK (corrected_by IN ('delta', 'extreme', 'new_values', 'raw')),
    hot_columns             text NOT NULL,
    hot_names               text NOT NULL,
    fold                    text NOT NULL,
    merge                   text NOT NULL,
    live                    text NOT NULL,
    live_names              text NOT NULL,
    rollup                  text NOT NULL,
    difference              text NOT NULL,
    daily_columns           text NOT NULL,
    daily_exact             text NOT NULL,
    daily_names             text NOT NULL,
    correction              text,
    correction_value        text NOT NULL,
    corrections_view        text NOT NULL,
    corrections_view_names  text NOT NULL,
    restated                text NOT NULL,
    explain_corrections     text NOT NULL,
    explain_values          text NOT NULL,
    explain_restated        text NOT NULL
);
COMMENT ON TABLE pipeline.measure_kinds IS
    'the measure kinds metrics accept, and the SQL pipeline generates for each (format() templates)';
GRANT SELECT ON pipeline.measure_kinds TO PUBLIC;

-- (one statement per kind, its parts by name)
CREATE FUNCTION pipeline._add_measure_kind(parts jsonb) RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
    INSERT INTO pipeline.measure_kinds SELECT * FROM pg_catalog.jsonb_populate_record(NULL::pipeline.measure_kinds, parts);
    END;
REVOKE EXECUTE ON FUNCTION pipeline._add_measure_kind(jsonb) FROM PUBLIC;
COMMENT ON FUNCTION pipeline._add_measure_kind(jsonb) IS 'internal: adds a row of pipeline.measure_kinds (install and upgrade scripts)';

-- the additive counts share their layers but for how they are computed
SELECT pipeline._add_measure_kind(pg_catalog.jsonb_build_object(
    'kind', k.kind, 'written_as', k.written_as, 'live_is_approximate', false, 'corrected_by', 'delta',
    'hot_columns',            '%1$I bigint NOT NULL',
    'hot_names',              '%1$I',
    'fold',                   k.agg || '%3$s',
    'merge',                  '%1$I = h.%1$I + excluded.%1$I',
    'live',                   'h.%1$I',
    'live_names',             '%1$I',
    'rollup',                 'pg_catalog.sum(h.%1$I)::bigint AS %1$I',
    'difference',             'r.%1$I - l.%1$I',
    'daily_columns',          '%1$I bigint NOT NULL',
    'daily_exact',            k.agg || '%3$s AS %1$I',
    'daily_names',            '%7$s%1$I',
    'correction',             k.agg || '%3$s AS %1$I',
    'correction_value',       'new.%1$I',
    'corrections_view',       'c.%1$I AS %13$I',
    'corrections_view_names', '%13$I',
    'restated',               'pg_catalog.sum(u.%1$I)::bigint AS %1$I',
    'explain_corrections',    'pg_catalog.sum(c.%1$I) AS %1$I',
    'explain_values',         '''daily'', d.%1$I, ''corrections'', k.%1$I, ''restated'', x.%1$I',
    'explain_restated',       'CASE WHEN k.%1$I IS NULL THEN d.%1$I WHEN d.%1$I IS NULL THEN k.%1$I ELSE d.%1$I + k.%1$I END'))
  FROM (VALUES ('count_star', 'count(*)', 'pg_catalog.count(*)'),
               ('count', 'count(x)', 'pg_catalog.count(%2$s)')) AS k(kind, written_as, agg);

-- a distinct count: a mergeable sketch in the hot layer (an estimate), exact
-- from raw in the daily layer; a correction counts the values that are new
-- to the day and group
SELECT pipeline._add_measure_kind('{
    "kind": "count_distinct", "written_as": "count(DISTINCT x)", "live_is_approximate": true, "corrected_by": "new_values",
    "hot_columns":            "%1$I pipeline.distinct_sketch",
    "hot_names":              "%1$I",
    "fold":                   "pipeline.distinct_sketch(%2$s)%3$s",
    "merge":                  "%1$I = pipeline._distinct_absorb(h.%1$I, excluded.%1$I)",
    "live":                   "pipeline.distinct_count(h.%1$I) AS %1$I, h.%1$I AS %12$I",
    "live_names":             "%1$I, %12$I",
    "rollup":                 "pipeline.distinct_count(pipeline.distinct_merge(h.%1$I)) AS %1$I",
    "difference":             "r.%1$I - l.%1$I",
    "daily_columns":          "%1$I bigint NOT NULL",
    "daily_exact":            "pg_catalog.count(DISTINCT %2$s)%3$s AS %1$I",
    "daily_names":            "%7$s%1$I",
    "correction":             null,
    "correction_value":       "COALESCE((SELECT x._pl_n FROM _pl_fresh_%14$s AS x WHERE true%15$s), 0)",
    "corrections_view":       "c.%1$I AS %13$I",
    "corrections_view_names": "%13$I",
    "restated":               "pg_catalog.sum(u.%1$I)::bigint AS %1$I",
    "explain_corrections":    "pg_catalog.sum(c.%1$I) AS %1$I",
    "explain_values":         "''daily'', d.%1$I, ''corrections'', k.%1$I, ''restated'', x.%1$I",
    "explain_restated":       "CASE WHEN k.%1$I IS NULL THEN d.%1$I WHEN d.%1$I IS NULL THEN k.%1$I ELSE d.%1$I + k.%1$I END"}');

SELECT pipeline._add_measure_kind('{
    "kind": "sum", "written_as": "sum(x)", "live_is_approximate": false, "corrected_by": "delta",
    "hot_columns":            "%1$I %4$s",
    "hot_names":              "%1$I",
    "fold":                   "pg_catalog.sum(%2$s)%3$s",
    "merge":                  "%1$I = COALESCE(h.%1$I + excluded.%1$I, h.%1$I, excluded.%1$I)",
    "live":                   "h.%1$I",
    "live_names":             "%1$I",
    "rollup":                 "pg_catalog.sum(h.%1$I) AS %1$I",
    "difference":             "r.%1$I - l.%1$I",
    "daily_columns":          "%1$I %4$s",
    "daily_exact":            "pg_catalog.sum(%2$s)%3$s AS %1$I",
    "daily_names":            "%7$s%1$I",
    "correction":             "pg_catalog.sum(%2$s)%3$s AS %1$I",
    "correction_value":       "new.%1$I",
    "corrections_view":       "c.%1$I AS %13$I",
    "corrections_view_names": "%13$I",
    "restated":               "pg_catalog.sum(u.%1$I) AS %1$I",
    "explain_corrections":    "pg_catalog.sum(c.%1$I) AS %1$I",
    "explain_values":         "''daily'', d.%1$I, ''corrections'', k.%1$I, ''restated'', x.%1$I",
    "explain_restated":       "CASE WHEN k.%1$I IS NULL THEN d.%1$I WHEN d.%1$I IS NULL THEN k.%1$I ELSE d.%1$I + k.%1$I END"}');

-- the extremes mirror each other: the operator, the function, the combiner
SELECT pipeline._add_measure_kind(pg_catalog.jsonb_build_object(
    'kind', k.kind, 'written_as', k.kind || '(x)', 'live_is_approximate', false, 'corrected_by', 'extreme',
    'hot_columns',            '%1$I %4$s',
    'hot_names',              '%1$I',
    'fold',                   'pg_catalog.' || k.kind || '(%2$s)%3$s',
    'merge',                  '%1$I = ' || k.combine || '(h.%1$I, excluded.%1$I)',
    'live',                   'h.%1$I',
    'live_names',             '%1$I',
    'rollup',                 'pg_catalog.' || k.kind || '(h.%1$I) AS %1$I',
    'difference',             'CASE WHEN r.%1$I IS DISTINCT FROM l.%1$I THEN r.%1$I END',
    'daily_columns',          '%1$I %4$s',
    'daily_exact',            'pg_catalog.' || k.kind || '(%2$s)%3$s AS %1$I',
    'daily_names',            '%7$s%1$I',
    'correction',             'pg_catalog.' || k.kind || '(%2$s)%3$s AS %1$I',
    'correction_value',       '(SELECT CASE WHEN p.%1$I IS NULL OR new.%1$I ' || k.beats || ' p.%1$I THEN new.%1$I END '
                              '   FROM (SELECT (SELECT x.%1$I FROM metrics.%16$I AS x WHERE x.day = $1%15$s) AS %1$I) AS p)',
    'corrections_view',       'c.%1$I AS %1$I',
    'corrections_view_names', '%1$I',
    'restated',               'pg_catalog.' || k.kind || '(u.%1$I) AS %1$I',
    'explain_corrections',    'pg_catalog.' || k.kind || '(c.%1$I) AS %1$I',
    'explain_values',         '''daily'', d.%1$I, ''corrections'', k.%1$I, ''restated'', x.%1$I',
    'explain_restated',       k.combine || '(d.%1$I, k.%1$I)'))
  FROM (VALUES ('min', '<', 'LEAST'), ('max', '>', 'GREATEST')) AS k(kind, beats, combine);

-- an average keeps its sum (in %5$s: numeric for exact types) and count in
-- every layer, so that it rolls up and corrects exactly
SELECT pipeline._add_measure_kind('{
    "kind": "avg", "written_as": "avg(x)", "live_is_approximate": false, "corrected_by": "delta",
    "hot_columns":            "%10$I %5$s, %11$I bigint NOT NULL",
    "hot_names":              "%10$I, %11$I",
    "fold":                   "pg_catalog.sum(%2$s)%3$s, pg_catalog.count(%2$s)%3$s",
    "merge":                  "%10$I = COALESCE(h.%10$I + excluded.%10$I, h.%10$I, excluded.%10$I), %11$I = h.%11$I + excluded.%11$I",
    "live":                   "CASE WHEN h.%11$I > 0 THEN (h.%10$I / h.%11$I::%4$s)::%4$s END AS %1$I",
    "live_names":             "%1$I",
    "rollup":                 "(pg_catalog.sum(h.%10$I) / NULLIF(pg_catalog.sum(h.%11$I), 0)::%4$s)::%4$s AS %1$I",
    "difference":             "r.%1$I - l.%1$I",
    "daily_columns":          "%1$I %4$s, %8$I %5$s, %9$I bigint NOT NULL",
    "daily_exact":            "pg_catalog.avg(%2$s)%3$s AS %1$I, pg_catalog.sum(%2$s)%3$s AS %8$I, pg_catalog.count(%2$s)%3$s AS %9$I",
    "daily_names":            "%7$s%1$I, %7$s%8$I, %7$s%9$I",
    "correction":             "pg_catalog.sum(%2$s)%3$s AS %8$I, pg_catalog.count(%2$s)%3$s AS %9$I",
    "correction_value":       "NULL::%4$s, new.%8$I, new.%9$I",
    "corrections_view":       "c.%8$I AS %18$I, c.%9$I AS %19$I",
    "corrections_view_names": "%18$I, %19$I",
    "restated":               "(pg_catalog.sum(u.%8$I) / NULLIF(pg_catalog.sum(u.%9$I), 0)::%4$s)::%4$s AS %1$I",
    "explain_corrections":    "pg_catalog.sum(c.%8$I) AS %8$I, pg_catalog.sum(c.%9$I) AS %9$I",
    "explain_values":         "''daily'', d.%1$I, ''daily_sum'', d.%8$I, ''daily_count'', d.%9$I, ''corrections_sum'', k.%8$I, ''corrections_count'', k.%9$I, ''restated'', x.%1$I",
    "explain_restated":       "((CASE WHEN k.%8$I IS NULL THEN d.%8$I WHEN d.%8$I IS NULL THEN k.%8$I ELSE d.%8$I + k.%8$I END) / NULLIF(COALESCE(d.%9$I, 0) + COALESCE(k.%9$I, 0), 0)::%4$s)::%4$s"}');

-- a percentile: a quantile sketch in the hot layer (within 1% of the exact
-- value, see README), percentile_cont over raw in the daily layer.  It has
-- no delta that adds up: a correction row holds the group's exact value
-- over every raw event at the correction (in %1$I) and the value it
-- replaces (in %17$I), with the snapshot it was computed at (the xmax of
-- the correction's snapshot, in %20$I; both NULL in daily rows: corrections
-- of a day take turns, so a later one has a later snapshot), and restated
-- is the latest row's value
SELECT pipeline._add_measure_kind('{
    "kind": "percentile", "written_as": "percentile_cont(p) WITHIN GROUP (ORDER BY x)", "live_is_approximate": true, "corrected_by": "raw",
    "hot_columns":            "%1$I pipeline.quantile_sketch",
    "hot_names":              "%1$I",
    "fold":                   "pipeline.quantile_sketch((%2$s)::double precision)%3$s",
    "merge":                  "%1$I = pipeline.quantile_union(h.%1$I, excluded.%1$I)",
    "live":                   "pipeline.quantile_value(h.%1$I, %6$s) AS %1$I, h.%1$I AS %12$I",
    "live_names":             "%1$I, %12$I",
    "rollup":                 "pipeline.quantile_value(pipeline.quantile_merge(h.%1$I), %6$s) AS %1$I",
    "difference":             "r.%1$I - l.%1$I",
    "daily_columns":          "%1$I double precision, %17$I double precision, %20$I xid8",
    "daily_exact":            "pg_catalog.percentile_cont(%6$s) WITHIN GROUP (ORDER BY %2$s)%3$s AS %1$I, NULL::double precision AS %17$I, NULL::xid8 AS %20$I",
    "daily_names":            "%7$s%1$I, %7$s%17$I, %7$s%20$I",
    "correction":             null,
    "correction_value":       "(SELECT x.%1$I FROM _pl_exact AS x WHERE true%15$s), (SELECT x.%1$I FROM metrics.%16$I AS x WHERE x.day = $1%15$s), pg_catalog.pg_snapshot_xmax($5)",
    "corrections_view":       "c.%1$I AS %1$I, c.%1$I - c.%17$I AS %13$I",
    "corrections_view_names": "%1$I, %13$I",
    "restated":               "(pg_catalog.array_agg(u.%1$I ORDER BY u.%20$I DESC NULLS LAST))[1] AS %1$I",
    "explain_corrections":    "(pg_catalog.array_agg(c.%1$I ORDER BY c.correction_id DESC))[1] AS %1$I",
    "explain_values":         "''daily'', d.%1$I, ''corrected_to'', k.%1$I, ''restated'', x.%1$I",
    "explain_restated":       "CASE WHEN k._pl_events IS NULL THEN d.%1$I ELSE k.%1$I END"}');

-- One measure's piece of generated SQL: the kind's template for part,
-- rendered with the measure's arguments (NULL if the kind adds nothing).
-- The kind must exist: _compile_metric only writes kinds of this table.
CREATE FUNCTION pipeline._measure_part(m jsonb, o bigint, part text, prefix text DEFAULT '',
                                       match text DEFAULT '', restated_view text DEFAULT NULL)
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.format(pg_catalog.to_jsonb(k) ->> part,
               m ->> 'name', m ->> 'expr',
               CASE WHEN m ->> 'filter' IS NULL THEN '' ELSE pg_catalog.format(' FILTER (WHERE %s)', m ->> 'filter') END,
               m ->> 'type', m ->> 'sum_type', m ->> 'p', prefix,
               '_' || (m ->> 'name') || '_sum', '_' || (m ->> 'name') || '_count',
               (m ->> 'name') || '_sum', (m ->> 'name') || '_count',
               (m ->> 'name') || '_sketch', (m ->> 'name') || '_delta', o, match, restated_view,
               '_' || (m ->> 'name') || '_before', (m ->> 'name') || '_sum_delta', (m ->> 'name') || '_count_delta',
               '_' || (m ->> 'name') || '_as_of')
      FROM pipeline.measure_kinds AS k WHERE k.kind = m ->> 'agg');
COMMENT ON FUNCTION pipeline._measure_part(jsonb, bigint, text, text, text, text) IS
    'internal: one measure''s piece of generated SQL, from its kind''s template (pipeline.measure_kinds)';

-- The pieces of every measure of a metric definition, in order, joined.
CREATE FUNCTION pipeline._measure_sql(def jsonb, part text, prefix text DEFAULT '',
                                      match text DEFAULT '', restated_view text DEFAULT NULL)
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.string_agg(pipeline._measure_part(m, o, part, prefix, match, restated_view), ', ' ORDER BY o)
      FROM pg_catalog.jsonb_array_elements(def -> 'measures') WITH ORDINALITY AS e(m, o));
COMMENT ON FUNCTION pipeline._measure_sql(jsonb, text, text, text, text) IS
    'internal: a part of generated SQL for every measure of a metric, comma-separated (pipeline.measure_kinds)';

-- The column names a part lists (a part of names: hot_names, live_names,
-- daily_names, corrections_view_names).
CREATE FUNCTION pipeline._measure_names(def jsonb, part text) RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT COALESCE(pg_catalog.array_agg((pg_catalog.parse_ident(n))[1]), '{}')
      FROM pg_catalog.unnest(pg_catalog.string_to_array(pipeline._measure_sql(def, part), ', ')) AS n);
COMMENT ON FUNCTION pipeline._measure_names(jsonb, text) IS 'internal: the column names a part of the measures lists';

-- The measures of a definition whose kind is corrected a given way.
CREATE FUNCTION pipeline._measures_corrected_by(def jsonb, how text) RETURNS SETOF jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
    SELECT m FROM pg_catalog.jsonb_array_elements(def -> 'measures') AS e(m)
      JOIN pipeline.measure_kinds AS k ON k.kind = m ->> 'agg'
     WHERE k.corrected_by = how;
    END;
COMMENT ON FUNCTION pipeline._measures_corrected_by(jsonb, text) IS
    'internal: the measures of a metric definition whose kind is corrected the given way';

-- The name of a measure that counts every event of a metric (an unfiltered
-- count(*)), if it has one: what completeness checks and explain compare
-- with raw.
CREATE FUNCTION pipeline._events_measure(def jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT m ->> 'name' FROM pg_catalog.jsonb_array_elements(def -> 'measures') WITH ORDINALITY AS e(m, o)
     WHERE m ->> 'agg' = 'count_star' AND m ->> 'filter' IS NULL ORDER BY o LIMIT 1);
COMMENT ON FUNCTION pipeline._events_measure(jsonb) IS
    'internal: the name of a metric''s unfiltered count(*) measure, if any';
