-- Data quality: the checks and their results history, the alerts view,
-- and adding and dropping checks with their validation.  The kinds of check
-- are in 82_check_kinds.sql, running them (run_checks, NOTIFY
-- pipeline_alerts) in 84_check_runs.sql.
--
-- A run of a check has a status: pass, warn or fail.  warn is the early
-- warning of a daily SLA (kind sla) whose deadline is near: no other kind
-- gives it.  (A check's severity, warn | fail | block, is another thing:
-- how much a failure of the check matters.)  The statuses are ordered,
-- pass < warn < fail: pipeline.alerts lists the checks whose latest run is
-- warn or fail, and each run that makes a check worse than its previous
-- run (none -> warn or fail, pass -> warn or fail, warn -> fail) is sent as
-- NOTIFY pipeline_alerts.  Only fail holds days from freezing (block).
--
-- A check belongs to the role that added it, and always runs as that role
-- (like a metric's fold runs as the metric's owner): run_checks() evaluates
-- the checks of the roles whose privileges its caller has (all of them for
-- a superuser), each as its owner, so a superuser's run never lends its
-- privileges to a check someone else wrote.  Each check's evaluation is its own
-- subtransaction: a check that cannot run (its reference table was dropped,
-- a privilege was revoked) fails with the reason and the others go on.
-- Concurrent runs of one check take turns (an advisory lock per check), so
-- a new failure is announced once.
--
-- Everything read from the user is validated before it reaches SQL:
-- names with _check_name, columns against the source's contract in
-- pg_attribute, reference tables with to_regclass and pg_attribute, values
-- by casting them to the column's type; identifiers are quoted with %I,
-- values are passed as parameters.

CREATE TABLE pipeline.checks (
    check_name  text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('freshness', 'completeness', 'validity', 'referential',
                                              'volume', 'not_null', 'accepted_values', 'digest', 'sla')),
    target      text NOT NULL,
    target_type text NOT NULL CHECK (target_type IN ('source', 'metric')),
    -- validated, with every default filled in
    params      jsonb NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('warn', 'fail', 'block')),
    owner       regrole NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE pipeline.checks IS
    'the data-quality checks: kind, target (a source or a metric), params with their defaults, severity, owner';
-- Written only through add_check and drop_check (as the extension owner,
-- after checking the caller: src/as_owner.c).
ALTER TABLE pipeline.checks ENABLE ROW LEVEL SECURITY;
CREATE POLICY checks_read ON pipeline.checks FOR SELECT USING (true);
GRANT SELECT ON pipeline.checks TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.checks', '');

-- One row per evaluation.  run_no orders a check's runs (ran_at is the
-- as_of of the run, which tests and backfills may set to any time); it is
-- counted per check under the check's lock, so a dump and restore keeps it.
CREATE TABLE pipeline.check_results (
    check_name  text NOT NULL REFERENCES pipeline.checks ON DELETE CASCADE,
    run_no      bigint NOT NULL,
    ran_at      timestamptz NOT NULL,
    -- warn: an SLA's early warning (kind sla only)
    status      text NOT NULL CHECK (status IN ('pass', 'warn', 'fail')),
    observed    numeric,
    threshold   numeric,
    detail      text,
    PRIMARY KEY (check_name, run_no)
);
COMMENT ON TABLE pipeline.check_results IS
    'the history of check runs: when (the run''s as_of), pass, warn (an SLA''s early warning) or fail, the observed value, '
    'the threshold and why';
-- Written only by run_checks (as the extension owner, for checks the
-- caller may run).  observed and detail may quote the data a check read:
-- pipeline.alerts shows them to the members of the check's owner only.
ALTER TABLE pipeline.check_results ENABLE ROW LEVEL SECURITY;
CREATE POLICY check_results_read ON pipeline.check_results FOR SELECT USING (
    EXISTS (SELECT FROM pipeline.checks AS c
             WHERE c.check_name = check_results.check_name
               AND pg_catalog.pg_has_role(current_user, c.owner, 'USAGE')));
GRANT SELECT ON pipeline.check_results TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.check_results', '');

-- The checks failing now and the SLAs missed or at risk: their latest run
-- is fail or warn (status).  since is when the check reached its status:
-- the first run after the last one that was better (for fail, the last
-- pass or warn; for warn, the last pass), so a warning that turns into a
-- failure is failing since the failure.
CREATE VIEW pipeline.alerts AS
    SELECT c.check_name, c.kind, c.target, c.severity, l.status,
           (SELECT r.ran_at FROM pipeline.check_results AS r
             WHERE r.check_name = c.check_name
               AND r.run_no > COALESCE((SELECT p.run_no FROM pipeline.check_results AS p
                                         WHERE p.check_name = c.check_name
                                           AND (p.status = 'pass' OR (p.status = 'warn' AND l.status = 'fail'))
                                         ORDER BY p.run_no DESC LIMIT 1), 0)
             ORDER BY r.run_no LIMIT 1) AS since,
           l.ran_at AS last_ran_at,
           CASE WHEN mine THEN l.observed END AS observed,
           CASE WHEN mine THEN l.threshold END AS threshold,
           CASE WHEN mine THEN l.detail END AS detail
      FROM pipeline.checks AS c
      CROSS JOIN LATERAL (SELECT pg_catalog.pg_has_role(current_user, c.owner, 'USAGE') AS mine) AS v
      JOIN LATERAL (SELECT r.* FROM pipeline.check_results AS r
                     WHERE r.check_name = c.check_name
                     ORDER BY r.run_no DESC LIMIT 1) AS l ON l.status IN ('warn', 'fail');
COMMENT ON VIEW pipeline.alerts IS
    'the checks failing now and the daily SLAs missed or about to be (their latest run is fail, or warn: an SLA''s early '
    'warning): severity, status, since when, and (for members of the check''s owner) the latest observed value, '
    'threshold and detail.  Each run that makes '
    'a check worse (to warn or fail) is also sent as NOTIFY pipeline_alerts with a JSON payload';
GRANT SELECT ON pipeline.alerts TO PUBLIC;

-- --- validation ----------------------------------------------------------

-- the params each kind takes (required ones first) and an example
CREATE FUNCTION pipeline._check_kind_params(kind text, OUT required text[], OUT optional text[], OUT example text)
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
    SELECT k.required, k.optional, k.example
      FROM (VALUES
        ('freshness', '{max_lag}'::text[], '{basis,target_type}'::text[],
         '{"max_lag": "10 minutes"}'),
        ('completeness', '{}', '{tolerance,days}', '{"tolerance": 0, "days": 7}'),
        ('validity', '{max_reject_rate}', '{window}', '{"window": "1 hour", "max_reject_rate": 0.01}'),
        ('referential', '{column,reference}', '{max_missing_rate,window}',
         '{"column": "user_id", "reference": "public.users(id)", "max_missing_rate": 0.01, "window": "1 day"}'),
        ('volume', '{max_change}', '{window}', '{"window": "1 hour", "max_change": 0.2}'),
        ('not_null', '{column}', '{max_null_rate,window}', '{"column": "user_id", "max_null_rate": 0, "window": "1 day"}'),
        ('accepted_values', '{column,values}', '{max_unexpected_rate,window}',
         '{"column": "platform", "values": ["web", "ios", "android"], "window": "1 day"}'),
        ('digest', '{}', '{}', '{}'),
        ('sla', '{ready_by}', '{warn_before}', '{"ready_by": "07:00", "warn_before": "1 hour"}')) AS k(kind, required, optional, example)
     WHERE k.kind = _check_kind_params.kind
$fn$;
COMMENT ON FUNCTION pipeline._check_kind_params(text) IS
    'internal: the required and optional params of a check kind, and an example';

-- One param, checked against what it must be; returns it (or the default).
--   want: interval (a positive interval as a string), interval_or_zero (an
--   interval >= 0 as a string), time (a time of day "HH:MM" or "HH:MM:SS"
--   as a string), rate (a number from 0 to 1), nonnegative (a number >= 0),
--   count (a whole number >= 0), days (a whole number from 1 to 3660),
--   string (a non-empty string)
CREATE FUNCTION pipeline._check_param(kind text, params jsonb, key text, want text, dflt jsonb DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    v jsonb := params -> key;
    example text := (pipeline._check_kind_params(kind)).example;
    iv interval;
    n numeric;
    bad text;
BEGIN
    IF v IS NULL OR v = 'null'::jsonb THEN
        IF dflt IS NULL THEN
            RAISE EXCEPTION 'a % check needs params.%', kind, key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = pg_catalog.format('For example: %s', example);
        END IF;
        RETURN dflt;
    END IF;
    IF want IN ('interval', 'interval_or_zero') THEN
        IF pg_catalog.jsonb_typeof(v) <> 'string' THEN
            bad := 'must be an interval written as a string, e.g. "1 hour"';
        ELSE
            BEGIN
                iv := (v #>> '{}')::interval;
            EXCEPTION WHEN data_exception THEN
                bad := pg_catalog.format('must be an interval, e.g. "1 hour", not %s', v);
            END;
            IF bad IS NULL AND want = 'interval' AND iv <= interval '0' THEN
                bad := pg_catalog.format('must be a positive interval, not %s', v);
            ELSIF bad IS NULL AND iv < interval '0' THEN
                bad := pg_catalog.format('must not be a negative interval, not %s', v);
            END IF;
        END IF;
    ELSIF want = 'time' THEN
        -- a local time of day: nothing else (a zone or "24:00" would be
        -- accepted by the time type and mean something else)
        IF pg_catalog.jsonb_typeof(v) <> 'string'
           OR v #>> '{}' !~ '^\s*([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?\s*$' THEN
            bad := pg_catalog.format('must be a local time of day written as a string "HH:MM", e.g. "07:00", not %s', v);
        END IF;
    ELSIF want = 'string' THEN
        IF pg_catalog.jsonb_typeof(v) <> 'string' OR v #>> '{}' = '' THEN
            bad := 'must be a non-empty string';
        END IF;
    ELSE
        IF pg_catalog.jsonb_typeof(v) <> 'number' THEN
            bad := pg_catalog.format('must be a number, not %s', v);
        ELSE
            n := (v #>> '{}')::numeric;
            IF want = 'rate' AND (n < 0 OR n > 1) THEN
                bad := pg_catalog.format('is a share of events and must be between 0 and 1, not %s', v);
            ELSIF want = 'nonnegative' AND n < 0 THEN
                bad := pg_catalog.format('must not be negative, not %s', v);
            ELSIF want = 'count' AND (n < 0 OR n <> pg_catalog.trunc(n)) THEN
                bad := pg_catalog.format('must be a whole number of events, 0 or more, not %s', v);
            ELSIF want = 'days' AND (n < 1 OR n > 3660 OR n <> pg_catalog.trunc(n)) THEN
                bad := pg_catalog.format('must be a whole number of days from 1 to 3660, not %s', v);
            END IF;
        END IF;
    END IF;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'params.% of a % check %', key, kind, bad
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = pg_catalog.format('For example: %s', example);
    END IF;
    RETURN v;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_param(text, jsonb, text, text, jsonb) IS
    'internal: checks one param of a check (type, range) and returns it or its default';

-- The type of a contract column of a source (not one of pipeline's _pl_
-- columns), or an error naming the contract's columns.
CREATE FUNCTION pipeline._check_contract_column(source text, col text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
    typ text;
BEGIN
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS c WHERE c.source = _check_contract_column.source;
    SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) INTO typ
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = s.raw_table AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname !~ '^_pl_';
    IF typ IS NULL THEN
        RAISE EXCEPTION 'column "%" is not in the contract of source "%"', col, source
            USING ERRCODE = 'undefined_column',
                  HINT = pg_catalog.format('The contract''s columns are: %s.', (
                      SELECT pg_catalog.string_agg(a.attname, ', ' ORDER BY a.attnum)
                        FROM pg_catalog.pg_attribute AS a
                       WHERE a.attrelid = s.raw_table AND a.attnum > 0 AND NOT a.attisdropped
                         AND a.attname !~ '^_pl_'));
    END IF;
    RETURN typ;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_contract_column(text, text) IS
    'internal: the type of a contract column of a source, or an error listing the contract''s columns';

-- A reference "schema.table(column)": the table (a table or view), quoted,
-- and the column; to_regclass and pg_attribute decide, never the text.
CREATE FUNCTION pipeline._check_reference(reference text, OUT rel regclass, OUT col text, OUT normalized text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    parts text[];
    names text[];
    cols text[];
    hint text := 'Write the reference as schema.table(column), e.g. "public.users(id)".';
BEGIN
    parts := pg_catalog.regexp_match(reference, '^\s*(.+?)\s*\(\s*(.+?)\s*\)\s*$');
    IF parts IS NULL THEN
        RAISE EXCEPTION 'invalid reference %: not a table and a column', pg_catalog.quote_literal(reference)
            USING ERRCODE = 'invalid_parameter_value', HINT = hint;
    END IF;
    BEGIN
        names := pg_catalog.parse_ident(parts[1]);
        cols := pg_catalog.parse_ident(parts[2]);
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'invalid reference %: %', pg_catalog.quote_literal(reference), SQLERRM
            USING ERRCODE = 'invalid_parameter_value', HINT = hint;
    END;
    IF pg_catalog.array_length(names, 1) <> 2 OR pg_catalog.array_length(cols, 1) <> 1 THEN
        RAISE EXCEPTION 'invalid reference %: the table must be schema-qualified and the column a single name',
                pg_catalog.quote_literal(reference)
            USING ERRCODE = 'invalid_parameter_value', HINT = hint;
    END IF;
    rel := pg_catalog.to_regclass(pg_catalog.format('%I.%I', names[1], names[2]));
    IF rel IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_class AS c
                                   WHERE c.oid = rel AND c.relkind IN ('r', 'p', 'v', 'm', 'f')) THEN
        RAISE EXCEPTION 'reference table %.% does not exist', pg_catalog.quote_ident(names[1]),
                pg_catalog.quote_ident(names[2])
            USING ERRCODE = 'undefined_table', HINT = hint;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                    WHERE a.attrelid = rel AND a.attname = cols[1] AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'column "%" of reference table % does not exist', cols[1], rel::text
            USING ERRCODE = 'undefined_column', HINT = hint;
    END IF;
    col := cols[1];
    normalized := pg_catalog.format('%I.%I(%I)', names[1], names[2], cols[1]);
END
$fn$;
COMMENT ON FUNCTION pipeline._check_reference(text) IS
    'internal: parses and resolves a referential check''s reference, schema.table(column)';

-- Validates a check's target and params; returns the params to store
-- (defaults filled in) and the target's type (source or metric).
CREATE FUNCTION pipeline._check_validate(kind text, target text, params jsonb, OUT target_type text, OUT checked jsonb)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    p record := pipeline._check_kind_params(kind);
    s pipeline.source_catalog;
    m pipeline.metric_catalog;
    key text;
    typ text;
    ref record;
    v jsonb;
    rel text;
BEGIN
    IF pg_catalog.jsonb_typeof(params) <> 'object' THEN
        RAISE EXCEPTION 'params of a check must be a JSON object, not %', params
            USING ERRCODE = 'invalid_parameter_value', HINT = pg_catalog.format('For example: %s', p.example);
    END IF;
    FOR key IN SELECT k FROM pg_catalog.jsonb_object_keys(params) AS k ORDER BY 1 LOOP
        IF NOT key = ANY (p.required || p.optional) THEN
            RAISE EXCEPTION 'a % check has no param "%"', kind, key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = CASE WHEN p.required || p.optional = '{}' THEN pg_catalog.format('A %s check takes no params: pass ''{}''.', kind)
                                  ELSE pg_catalog.format('A %s check takes: %s.', kind, pg_catalog.array_to_string(p.required || p.optional, ', ')) END;
        END IF;
    END LOOP;

    -- the target: a source or a metric, as the kind requires
    SELECT * INTO s FROM pipeline.source_catalog AS c WHERE c.source = target;
    SELECT * INTO m FROM pipeline.metric_catalog AS c WHERE c.metric = target;
    -- a metric the caller may not read (pipeline.metrics lists it): its
    -- checks run as their owner, who must be able to read what they watch
    IF m.metric IS NULL AND EXISTS (SELECT FROM pipeline.metrics AS x WHERE x.metric = target) THEN
        RAISE EXCEPTION 'permission denied to add a check on metric "%"', target
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Checks of a metric are for the members of its owner and the readers of its source.';
    END IF;
    IF kind IN ('completeness', 'digest', 'sla') THEN
        target_type := 'metric';
    ELSIF kind = 'freshness' THEN
        v := pipeline._check_param(kind, params, 'target_type', 'string', 'null');
        IF v <> 'null'::jsonb AND v #>> '{}' NOT IN ('source', 'metric') THEN
            RAISE EXCEPTION 'params.target_type of a freshness check must be "source" or "metric", not %', v
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        target_type := CASE WHEN v <> 'null'::jsonb THEN v #>> '{}'
                            WHEN s.source IS NOT NULL AND m.metric IS NOT NULL THEN 'ambiguous'
                            WHEN m.metric IS NOT NULL THEN 'metric' ELSE 'source' END;
        IF target_type = 'ambiguous' THEN
            RAISE EXCEPTION '"%" is both a source and a metric', target
                USING ERRCODE = 'ambiguous_parameter',
                      HINT = 'Say which with params.target_type: "source" or "metric".';
        END IF;
    ELSE
        target_type := 'source';
    END IF;
    IF target_type = 'source' AND s.source IS NULL THEN
        RAISE EXCEPTION 'source "%" does not exist', target
            USING ERRCODE = 'undefined_object',
                  HINT = pg_catalog.format('A %s check watches a source; see pipeline.sources.', kind);
    END IF;
    IF target_type = 'metric' AND m.metric IS NULL THEN
        RAISE EXCEPTION 'metric "%" does not exist', target
            USING ERRCODE = 'undefined_object',
                  HINT = CASE WHEN s.source IS NOT NULL
                              THEN pg_catalog.format('"%s" is a source; a %s check watches a metric of it: see pipeline.metrics.', target, kind)
                              ELSE pg_catalog.format('A %s check watches a metric; see pipeline.metrics.', kind) END;
    END IF;

    -- what the check will read, as its owner (the caller): refused now rather than failing at every run
    FOR rel IN
        SELECT r FROM pg_catalog.unnest(CASE
            WHEN kind IN ('referential', 'volume', 'not_null', 'accepted_values') THEN ARRAY[s.raw_table::text]
            WHEN kind = 'validity' THEN ARRAY['pipeline.batches']
            WHEN kind = 'completeness' THEN ARRAY[(SELECT x.raw_table::text FROM pipeline.source_catalog AS x WHERE x.source = m.source),
                                                  m.hot_table::text, pg_catalog.format('pipeline.%I', m.metric || '_daily'),
                                                  pg_catalog.format('pipeline.%I', m.metric || '_corrections')]
            WHEN kind = 'digest' THEN ARRAY[pg_catalog.format('metrics.%I', m.metric || '_daily')]
            ELSE '{}'::text[] END) AS r
    LOOP
        IF NOT pg_catalog.has_table_privilege(rel, 'SELECT') THEN
            RAISE EXCEPTION 'permission denied to check % "%": a % check reads %', target_type, target, kind, rel
                USING ERRCODE = 'insufficient_privilege',
                      HINT = pg_catalog.format('Checks run with the privileges of the role that added them: GRANT SELECT ON %s TO %I.',
                                               rel, current_user);
        END IF;
    END LOOP;

    checked := '{}';
    IF kind = 'freshness' THEN
        checked := pg_catalog.jsonb_build_object('max_lag', pipeline._check_param(kind, params, 'max_lag', 'interval'));
        IF target_type = 'source' THEN
            v := pipeline._check_param(kind, params, 'basis', 'string', '"arrival"');
            IF v #>> '{}' NOT IN ('arrival', 'watermark') THEN
                RAISE EXCEPTION 'params.basis of a freshness check must be "arrival" or "watermark", not %', v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'arrival: time since the last accepted batch; watermark: time since the source''s watermark.';
            END IF;
            checked := checked || pg_catalog.jsonb_build_object('basis', v);
        ELSIF params ? 'basis' THEN
            RAISE EXCEPTION 'params.basis is for freshness checks of sources'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'A metric''s freshness is the age of the oldest accepted batch not folded yet.';
        END IF;
        IF params ? 'target_type' THEN
            checked := checked || pg_catalog.jsonb_build_object('target_type', target_type);
        END IF;
    ELSIF kind = 'completeness' THEN
        checked := pg_catalog.jsonb_build_object(
            'tolerance', pipeline._check_param(kind, params, 'tolerance', 'count', '0'),
            'days', pipeline._check_param(kind, params, 'days', 'days', '7'));
    ELSIF kind = 'validity' THEN
        checked := pg_catalog.jsonb_build_object(
            'window', pipeline._check_param(kind, params, 'window', 'interval', '"1 hour"'),
            'max_reject_rate', pipeline._check_param(kind, params, 'max_reject_rate', 'rate'));
    ELSIF kind = 'volume' THEN
        checked := pg_catalog.jsonb_build_object(
            'window', pipeline._check_param(kind, params, 'window', 'interval', '"1 hour"'),
            'max_change', pipeline._check_param(kind, params, 'max_change', 'nonnegative'));
    ELSIF kind IN ('referential', 'not_null', 'accepted_values') THEN
        v := pipeline._check_param(kind, params, 'column', 'string');
        typ := pipeline._check_contract_column(s.source, v #>> '{}');
        checked := pg_catalog.jsonb_build_object('column', v,
            'window', pipeline._check_param(kind, params, 'window', 'interval', '"1 day"'));
        IF kind = 'not_null' THEN
            checked := checked || pg_catalog.jsonb_build_object(
                'max_null_rate', pipeline._check_param(kind, params, 'max_null_rate', 'rate', '0'));
        ELSIF kind = 'referential' THEN
            ref := pipeline._check_reference(pipeline._check_param(kind, params, 'reference', 'string') #>> '{}');
            IF NOT pg_catalog.has_column_privilege(ref.rel, ref.col, 'SELECT') THEN
                RAISE EXCEPTION 'permission denied to read %', ref.normalized
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = pg_catalog.format('Checks run with the privileges of the role that added them: GRANT SELECT ON %s TO %I.',
                                                   ref.rel, current_user);
            END IF;
            -- the two columns must compare with =: let the planner say
            BEGIN
                EXECUTE pg_catalog.format(
                    'SELECT FROM %s AS r WHERE EXISTS (SELECT FROM %s AS t WHERE t.%I = r.%I) LIMIT 0',
                    s.raw_table, ref.rel, ref.col, v #>> '{}');
            EXCEPTION WHEN undefined_function OR datatype_mismatch OR indeterminate_datatype THEN
                RAISE EXCEPTION 'column "%" (%) cannot be compared with %', v #>> '{}', typ, ref.normalized
                    USING ERRCODE = 'datatype_mismatch',
                          DETAIL = SQLERRM,
                          HINT = 'Reference a column of a comparable type (the same type, or text with text).';
            END;
            checked := checked || pg_catalog.jsonb_build_object('reference', ref.normalized,
                'max_missing_rate', pipeline._check_param(kind, params, 'max_missing_rate', 'rate', '0'));
        ELSE
            v := params -> 'values';
            IF v IS NULL OR pg_catalog.jsonb_typeof(v) <> 'array' OR pg_catalog.jsonb_array_length(v) = 0 THEN
                RAISE EXCEPTION 'params.values of an accepted_values check must be a non-empty JSON array'
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = pg_catalog.format('For example: %s', p.example);
            END IF;
            IF EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(v) AS e
                        WHERE pg_catalog.jsonb_typeof(e) NOT IN ('string', 'number', 'boolean')) THEN
                RAISE EXCEPTION 'params.values of an accepted_values check must hold strings, numbers or booleans'
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'NULLs are not values: check them with a not_null check.';
            END IF;
            -- every value must be one of the column's type
            BEGIN
                EXECUTE pg_catalog.format('SELECT $1::%s[]', typ)
                  USING ARRAY(SELECT e #>> '{}' FROM pg_catalog.jsonb_array_elements(v) AS e);
            EXCEPTION WHEN data_exception THEN
                RAISE EXCEPTION 'params.values of an accepted_values check holds a value that is not a % (the type of column "%")',
                        typ, params ->> 'column'
                    USING ERRCODE = 'invalid_parameter_value', DETAIL = SQLERRM;
            END;
            checked := checked || pg_catalog.jsonb_build_object('values', v,
                'max_unexpected_rate', pipeline._check_param(kind, params, 'max_unexpected_rate', 'rate', '0'));
        END IF;
    ELSIF kind = 'sla' THEN
        checked := pg_catalog.jsonb_build_object(
            'ready_by', pipeline._check_param(kind, params, 'ready_by', 'time'),
            'warn_before', pipeline._check_param(kind, params, 'warn_before', 'interval_or_zero', '"1 hour"'));
        -- a day is provisional at the earliest allowed_lateness after its
        -- end: a deadline before that could never be met
        SELECT * INTO STRICT s FROM pipeline.source_catalog AS x WHERE x.source = m.source;
        IF (checked ->> 'ready_by')::time::interval < s.allowed_lateness THEN
            RAISE EXCEPTION 'params.ready_by of a sla check is %, before metric "%" can have yesterday provisional',
                    checked ->> 'ready_by', m.metric
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = pg_catalog.format('Source %s allows events %s late: a day becomes provisional that long after it ends, at the earliest.',
                                                 s.source, s.allowed_lateness),
                      HINT = CASE WHEN s.allowed_lateness < interval '1 day'
                                  THEN pg_catalog.format('Choose a ready_by of %s or later.',
                                                         pipeline._check_time_text(time '00:00' + s.allowed_lateness))
                                  ELSE 'No time of day can be met: lower the source''s allowed_lateness first.' END;
        END IF;
    END IF;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_validate(text, text, jsonb) IS
    'internal: validates a check''s target (source or metric as the kind requires, readable by the caller) and params';

CREATE FUNCTION pipeline.add_check(check_name text, kind text, target text, params jsonb DEFAULT '{}',
                                   severity text DEFAULT 'warn')
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    v record;
BEGIN
    PERFORM pipeline._check_name('check', check_name);
    IF kind IS NULL OR target IS NULL OR severity IS NULL THEN
        RAISE EXCEPTION 'add_check needs a check name, a kind, a target and a severity'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF pipeline._check_kind_params(kind) IS NULL THEN
        RAISE EXCEPTION 'unknown check kind "%"', kind
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The kinds are freshness, completeness, validity, referential, volume, not_null, accepted_values, digest and sla.';
    END IF;
    IF severity NOT IN ('warn', 'fail', 'block') THEN
        RAISE EXCEPTION 'unknown severity "%"', severity
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use warn, fail or block (block holds the metric''s days from freezing while the check fails).';
    END IF;
    -- a missed SLA says the days are late, not wrong: holding the older
    -- days from freezing would only make them later
    IF kind = 'sla' AND severity = 'block' THEN
        RAISE EXCEPTION 'a sla check cannot have severity block'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A missed SLA means a day is late, not wrong: use warn or fail.';
    END IF;
    IF EXISTS (SELECT FROM pipeline.checks AS c WHERE c.check_name = add_check.check_name) THEN
        RAISE EXCEPTION 'check "%" already exists', check_name
            USING ERRCODE = 'duplicate_object', HINT = 'Drop it first with pipeline.drop_check().';
    END IF;
    v := pipeline._check_validate(kind, target, COALESCE(params, '{}'));
    PERFORM pipeline._store_check(check_name, kind, target, v.target_type, v.checked, severity);
END
$fn$;
COMMENT ON FUNCTION pipeline.add_check(text, text, text, jsonb, text) IS
    'adds a data-quality check of a source or metric (kinds: freshness, completeness, validity, referential, volume, '
    'not_null, accepted_values, digest, sla); params are validated and stored with their defaults; severity warn, fail or block';

-- The row of a validated check, written as the extension owner for the
-- caller, who owns it.  A check of severity block holds days from
-- freezing: only the members of the target's owner may add one.
CREATE FUNCTION pipeline._store_check(check_name text, kind text, target text, target_type text,
        params jsonb, severity text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._store_check(text, text, text, text, jsonb, text) IS
    'internal: records a check validated by add_check (runs _store_check_as_owner as the extension owner)';

CREATE FUNCTION pipeline._store_check_as_owner(caller regrole, check_name text, kind text, target text,
        target_type text, params jsonb, severity text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    target_owner regrole := CASE target_type
        WHEN 'source' THEN (SELECT s.owner FROM pipeline.source_catalog AS s WHERE s.source = _store_check_as_owner.target)
        WHEN 'metric' THEN (SELECT m.owner FROM pipeline.metric_catalog AS m WHERE m.metric = _store_check_as_owner.target)
    END;
BEGIN
    IF target_owner IS NULL THEN
        RAISE EXCEPTION '% "%" does not exist', target_type, target USING ERRCODE = 'undefined_object';
    END IF;
    IF severity = 'block' AND NOT pg_catalog.pg_has_role(caller, target_owner, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to add a blocking check on % "%"', target_type, target
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'A check of severity block holds the days of the metrics it watches from freezing.',
                  HINT = pg_catalog.format('Only members of its owner, %s, may add one; use severity warn or fail.', target_owner);
    END IF;
    INSERT INTO pipeline.checks (check_name, kind, target, target_type, params, severity, owner)
        VALUES (check_name, kind, target, target_type, params, severity, caller);
END
$fn$;
COMMENT ON FUNCTION pipeline._store_check_as_owner(regrole, text, text, text, text, jsonb, text) IS
    'internal: the extension owner''s half of _store_check; a block check only on a target the caller owns';

-- Deleting a check, as the extension owner, for a member of its owner (a
-- check whose owner was dropped is a superuser's to drop).
CREATE FUNCTION pipeline._delete_check(check_name text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._delete_check(text) IS
    'internal: deletes a check and its results (runs _delete_check_as_owner as the extension owner)';

CREATE FUNCTION pipeline._delete_check_as_owner(caller regrole, check_name text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    c pipeline.checks;
BEGIN
    SELECT * INTO c FROM pipeline.checks AS x WHERE x.check_name = _delete_check_as_owner.check_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'check "%" does not exist', check_name
            USING ERRCODE = 'undefined_object', HINT = 'List checks in pipeline.checks.';
    END IF;
    IF NOT (CASE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_roles AS a WHERE a.oid = c.owner)
                 THEN (SELECT a.rolsuper FROM pg_catalog.pg_roles AS a WHERE a.oid = caller)
                 ELSE pg_catalog.pg_has_role(caller, c.owner, 'USAGE') END) THEN
        RAISE EXCEPTION 'permission denied to drop check %', check_name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('Only members of its owner, %s, can drop it.', c.owner);
    END IF;
    DELETE FROM pipeline.checks AS x WHERE x.check_name = c.check_name;
END
$fn$;
COMMENT ON FUNCTION pipeline._delete_check_as_owner(regrole, text) IS
    'internal: the extension owner''s half of _delete_check; checks the caller is a member of the check''s owner';

CREATE FUNCTION pipeline.drop_check(check_name text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
BEGIN
    PERFORM pipeline._delete_check(check_name);
END
$fn$;
COMMENT ON FUNCTION pipeline.drop_check(text) IS 'drops a check and its results history';
