-- Data quality: checks (add_check, drop_check, run_checks), their results
-- history, the alerts view and NOTIFY pipeline_alerts; and explain(), how
-- a daily number came to be.
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

-- --- the kinds ----------------------------------------------------------------
-- Each returns status, observed, threshold and detail for one check at
-- as_of; errors are the caller's (run_checks) to record.

-- events of a source with event time in (lo, hi]
CREATE FUNCTION pipeline._check_count_events(s pipeline.source_catalog, lo timestamptz, hi timestamptz) RETURNS bigint
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    n bigint;
BEGIN
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s AS r WHERE r.%I > $1 AND r.%I <= $2',
                              s.raw_table, s.event_time, s.event_time)
      INTO n USING lo, hi;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_count_events(pipeline.source_catalog, timestamptz, timestamptz) IS
    'internal: the events of a source with event time in (lo, hi]';

CREATE FUNCTION pipeline._check_target_source(c pipeline.checks) RETURNS pipeline.source_catalog
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
BEGIN
    SELECT * INTO s FROM pipeline.source_catalog AS x WHERE x.source = c.target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'source "%" does not exist any more', c.target
            USING HINT = pg_catalog.format('Drop the check: pipeline.drop_check(%L).', c.check_name);
    END IF;
    RETURN s;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_target_source(pipeline.checks) IS 'internal: the source a check watches';

CREATE FUNCTION pipeline._check_target_metric(c pipeline.checks) RETURNS pipeline.metric_catalog
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m pipeline.metric_catalog;
BEGIN
    SELECT * INTO m FROM pipeline.metric_catalog AS x WHERE x.metric = c.target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'metric "%" does not exist any more', c.target
            USING HINT = pg_catalog.format('Drop the check: pipeline.drop_check(%L).', c.check_name);
    END IF;
    RETURN m;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_target_metric(pipeline.checks) IS 'internal: the metric a check watches';

-- a share as a percentage for details: 0.0123 -> 1.23%
CREATE FUNCTION pipeline._check_pct(share numeric) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.rtrim(pg_catalog.rtrim(pg_catalog.round(share * 100, 2)::text, '0'), '.') || '%';
COMMENT ON FUNCTION pipeline._check_pct(numeric) IS 'internal: a share written as a percentage';

CREATE FUNCTION pipeline._check_freshness(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    max_lag interval := (c.params ->> 'max_lag')::interval;
    s pipeline.source_catalog;
    m pipeline.metric_catalog;
    t timestamptz;
    n bigint;
    nb bigint;
    lag interval;
BEGIN
    threshold := pg_catalog.date_part('epoch', max_lag)::numeric;
    IF c.target_type = 'metric' THEN
        -- the age of the oldest accepted batch the fold has not taken yet
        m := pipeline._check_target_metric(c);
        SELECT pg_catalog.min(b.received_at), pg_catalog.sum(b.accepted), pg_catalog.count(*)
          INTO t, n, nb
          FROM pipeline.batch_log AS b
         WHERE b.source = m.source
           AND b.xid >= pg_catalog.pg_snapshot_xmin(m.fold_snapshot)
           AND NOT pg_catalog.pg_visible_in_snapshot(b.xid, m.fold_snapshot)
           AND b.accepted > 0 AND b.received_at <= as_of;
        lag := COALESCE(as_of - t, interval '0');
        observed := pg_catalog.round(pg_catalog.date_part('epoch', lag)::numeric, 3);
        detail := CASE WHEN t IS NULL THEN 'no accepted event waits for the fold'
                       ELSE pg_catalog.format('%s events in %s batches wait for the fold, the oldest received %s before as_of',
                                              n, nb, pg_catalog.justify_hours(pg_catalog.date_trunc('second', lag))) END
               || pg_catalog.format('; last fold %s', COALESCE(m.last_fold_at::text, 'never'))
               || CASE WHEN m.failures > 0
                       THEN pg_catalog.format('; the last %s folds failed: %s', m.failures, m.last_error) ELSE '' END;
    ELSE
        s := pipeline._check_target_source(c);
        IF c.params ->> 'basis' = 'watermark' THEN
            SELECT pg_catalog.max(b.max_event_time) - s.allowed_lateness INTO t
              FROM pipeline.batch_log AS b
             WHERE b.source = s.source AND b.accepted > 0 AND b.received_at <= as_of;
            detail := pg_catalog.format('watermark (max accepted event time - %s) %s', s.allowed_lateness, t);
        ELSE
            SELECT pg_catalog.max(b.received_at) INTO t
              FROM pipeline.batch_log AS b
             WHERE b.source = s.source AND b.accepted > 0 AND b.received_at <= as_of;
            detail := pg_catalog.format('last accepted batch received %s', t);
        END IF;
        IF t IS NULL THEN
            status := 'fail';
            detail := pg_catalog.format('no accepted events from source %s yet', s.source);
            RETURN;
        END IF;
        lag := as_of - t;
        observed := pg_catalog.round(pg_catalog.date_part('epoch', lag)::numeric, 3);
        detail := detail || pg_catalog.format(', %s before as_of', pg_catalog.justify_hours(pg_catalog.date_trunc('second', lag)));
    END IF;
    status := CASE WHEN observed > threshold THEN 'fail' ELSE 'pass' END;
    detail := detail || pg_catalog.format(' (allowed: %s)', c.params ->> 'max_lag');
END
$fn$;
COMMENT ON FUNCTION pipeline._check_freshness(pipeline.checks, timestamptz) IS
    'internal: freshness of a source (age of its last accepted batch, or of its watermark) or of a metric (age of its oldest unfolded batch), in seconds';

-- Per closed day: what the receipts, raw, the daily layer and the hot layer
-- say about the number of events, each difference beyond what is known to
-- be in flight (batches the fold or the corrections have not seen yet).
CREATE FUNCTION pipeline._check_completeness(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m pipeline.metric_catalog := pipeline._check_target_metric(c);
    s pipeline.source_catalog;
    def jsonb := m.definition;
    cnt text;
    filter text;
    d pipeline.day_closures;
    lo timestamptz;
    hi timestamptz;
    raw_n bigint;
    await_corr bigint;
    await_fold bigint;
    after_compute bigint;
    ids bigint[];
    receipts bigint;
    stored bigint;
    blo timestamptz;
    bhi timestamptz;
    daily_n bigint;
    corr_n bigint;
    hot_n bigint;
    diff bigint;
    worst bigint := 0;
    ndays int := 0;
    nreceipts bigint;
    first_day date;
    last_day date;
    problems text[] := '{}';
    bad_days int := 0;
    day_bad boolean;
    hot_skipped int := 0;
    origin timestamptz := '2000-01-01 00:00:00+00';
BEGIN
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS x WHERE x.source = m.source;
    threshold := (c.params ->> 'tolerance')::numeric;
    filter := COALESCE(def ->> 'filter', 'true');
    SELECT e ->> 'name' INTO cnt FROM pg_catalog.jsonb_array_elements(def -> 'measures') AS e
     WHERE e ->> 'agg' = 'count_star' LIMIT 1;

    -- (days whose raw events retention dropped have nothing left to compare)
    FOR d IN SELECT * FROM pipeline.day_closures AS x
              WHERE x.metric = m.metric AND x.day <= (as_of AT TIME ZONE s.day_timezone)::date
                AND x.day > COALESCE((SELECT r.raw_dropped_through FROM pipeline.retention AS r
                                       WHERE r.source = s.source), '-infinity')
              ORDER BY x.day DESC LIMIT (c.params ->> 'days')::int
    LOOP
        ndays := ndays + 1;
        last_day := COALESCE(last_day, d.day);
        first_day := d.day;
        day_bad := false;
        lo := d.day::timestamp AT TIME ZONE s.day_timezone;
        hi := (d.day + 1)::timestamp AT TIME ZONE s.day_timezone;
        -- raw, per batch (the filter sees the raw table alone)
        EXECUTE pg_catalog.format(
            'WITH per_batch AS (SELECT r._pl_batch AS batch_id, pg_catalog.count(*) AS n FROM %1$s AS r '
            '                    WHERE r.%2$I >= $1 AND r.%2$I < $2 AND (%3$s) GROUP BY 1) '
            'SELECT COALESCE(pg_catalog.sum(p.n), 0)::bigint, '
            '       COALESCE(pg_catalog.sum(p.n) FILTER (WHERE NOT pg_catalog.pg_visible_in_snapshot(b.xid, $3)), 0)::bigint, '
            '       COALESCE(pg_catalog.sum(p.n) FILTER (WHERE NOT pg_catalog.pg_visible_in_snapshot(b.xid, $4)), 0)::bigint, '
            '       COALESCE(pg_catalog.sum(p.n) FILTER (WHERE b.received_at > $5), 0)::bigint, '
            '       pg_catalog.array_agg(p.batch_id) '
            '  FROM per_batch AS p LEFT JOIN pipeline.batch_log AS b ON b.batch_id = p.batch_id',
            s.raw_table, s.event_time, filter)
          INTO raw_n, await_corr, await_fold, after_compute, ids
          USING lo, hi, d.corrected_snapshot, m.fold_snapshot, d.computed_at;

        -- receipts: the batches that carried events of the day accepted as
        -- many events as raw holds of them (all their days, unfiltered)
        IF ids IS NOT NULL THEN
            SELECT COALESCE(pg_catalog.sum(b.accepted), 0), pg_catalog.min(b.min_event_time), pg_catalog.max(b.max_event_time),
                   pg_catalog.count(*)
              INTO receipts, blo, bhi, nreceipts
              FROM pipeline.batch_log AS b WHERE b.batch_id = ANY (ids);
            -- receipts deleted by their retention (set_retention) leave
            -- nothing to compare, nor do batches that also carried events
            -- of days whose raw events retention dropped; any other
            -- missing receipt is a difference
            IF (nreceipts < pg_catalog.cardinality(ids)
                AND NOT EXISTS (SELECT FROM pg_catalog.unnest(ids) AS i(id)
                                 WHERE NOT EXISTS (SELECT FROM pipeline.batch_log AS b WHERE b.batch_id = i.id)
                                   AND i.id > COALESCE((SELECT r.batches_deleted_through FROM pipeline.retention AS r
                                                         WHERE r.source = s.source), 0)))
               OR blo < (SELECT (r.raw_dropped_through + 1)::timestamp AT TIME ZONE s.day_timezone
                           FROM pipeline.retention AS r WHERE r.source = s.source) THEN
                ids := NULL;
            END IF;
        END IF;
        IF ids IS NOT NULL THEN
            EXECUTE pg_catalog.format(
                'SELECT pg_catalog.count(*) FROM %1$s AS r WHERE r._pl_batch = ANY ($1) AND r.%2$I >= $2 AND r.%2$I <= $3',
                s.raw_table, s.event_time)
              INTO stored USING ids, LEAST(blo, lo), GREATEST(bhi, hi);
            diff := stored - receipts;
            IF pg_catalog.abs(diff) > threshold THEN
                problems := problems || pg_catalog.format('%s: raw holds %s events of the %s batches that carried its events, their receipts say %s accepted',
                                                          d.day, stored, pg_catalog.cardinality(ids), receipts);
                day_bad := true;
            END IF;
            worst := GREATEST(worst, pg_catalog.abs(diff));
        END IF;

        -- daily: frozen events + corrections + events awaiting correction = raw
        IF d.status = 'frozen' THEN
            EXECUTE pg_catalog.format('SELECT COALESCE(pg_catalog.sum(x.late_events), 0)::bigint FROM pipeline.%I AS x WHERE x.day = $1',
                                      m.metric || '_corrections')
              INTO corr_n USING d.day;
            diff := raw_n - (d.events_frozen + corr_n + await_corr);
            IF pg_catalog.abs(diff) > threshold THEN
                problems := problems || pg_catalog.format('%s: raw holds %s events, frozen %s + corrections %s + awaiting correction %s',
                                                          d.day, raw_n, d.events_frozen, corr_n, await_corr);
                day_bad := true;
            END IF;
            worst := GREATEST(worst, pg_catalog.abs(diff));
        ELSIF cnt IS NOT NULL THEN
            EXECUTE pg_catalog.format('SELECT COALESCE(pg_catalog.sum(x.%I), 0)::bigint FROM pipeline.%I AS x WHERE x.day = $1',
                                      cnt, m.metric || '_daily')
              INTO daily_n USING d.day;
            diff := raw_n - after_compute - daily_n;
            IF pg_catalog.abs(diff) > threshold THEN
                problems := problems || pg_catalog.format('%s: raw holds %s events (%s received since the provisional day was computed), the daily layer counts %s (%s)',
                                                          d.day, raw_n, after_compute, daily_n, cnt);
                day_bad := true;
            END IF;
            worst := GREATEST(worst, pg_catalog.abs(diff));
        END IF;

        -- hot: where it covers the whole day in whole buckets
        IF cnt IS NOT NULL AND lo >= pg_catalog.now() - m.hot_retention
           AND pg_catalog.date_bin(m.bucket, lo, origin) = lo AND pg_catalog.date_bin(m.bucket, hi, origin) = hi THEN
            EXECUTE pg_catalog.format('SELECT COALESCE(pg_catalog.sum(h.%I), 0)::bigint FROM %s AS h WHERE h.bucket >= $1 AND h.bucket < $2',
                                      cnt, m.hot_table)
              INTO hot_n USING lo, hi;
            diff := raw_n - await_fold - hot_n;
            IF pg_catalog.abs(diff) > threshold THEN
                problems := problems || pg_catalog.format('%s: raw holds %s events (%s awaiting the fold), the hot layer counts %s (%s)',
                                                          d.day, raw_n, await_fold, hot_n, cnt);
                day_bad := true;
            END IF;
            worst := GREATEST(worst, pg_catalog.abs(diff));
        ELSE
            hot_skipped := hot_skipped + 1;
        END IF;
        IF day_bad THEN
            bad_days := bad_days + 1;
        END IF;
    END LOOP;

    observed := worst;
    status := CASE WHEN worst > threshold THEN 'fail' ELSE 'pass' END;
    IF ndays = 0 THEN
        detail := 'no closed days yet';
    ELSIF status = 'fail' THEN
        detail := pg_catalog.format('%s of %s closed days differ by more than %s events: %s', bad_days, ndays, threshold,
                                    pg_catalog.array_to_string(problems[1:3], '; '))
               || CASE WHEN pg_catalog.cardinality(problems) > 3
                       THEN pg_catalog.format('; and %s more', pg_catalog.cardinality(problems) - 3) ELSE '' END;
    ELSE
        detail := pg_catalog.format('%s closed days (%s to %s): receipts, raw, daily and hot agree', ndays, first_day, last_day);
    END IF;
    IF ndays > 0 AND cnt IS NULL THEN
        detail := detail || '; the metric has no count(*) measure: only receipts, raw and frozen days were compared, not provisional days or hot';
    ELSIF hot_skipped > 0 THEN
        detail := detail || pg_catalog.format('; hot not compared for %s days (beyond hot retention, or buckets not aligned with the day)', hot_skipped);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_completeness(pipeline.checks, timestamptz) IS
    'internal: per closed day, receipts vs raw vs daily (frozen + corrections, or provisional) vs hot, in events';

CREATE FUNCTION pipeline._check_validity(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog := pipeline._check_target_source(c);
    win interval := (c.params ->> 'window')::interval;
    received bigint;
    rejected bigint;
    nb bigint;
BEGIN
    threshold := (c.params ->> 'max_reject_rate')::numeric;
    SELECT COALESCE(pg_catalog.sum(b.received), 0), COALESCE(pg_catalog.sum(b.rejected), 0), pg_catalog.count(*)
      INTO received, rejected, nb
      FROM pipeline.batches AS b
     WHERE b.source = s.source AND b.received_at > as_of - win AND b.received_at <= as_of;
    IF received = 0 THEN
        status := 'pass';
        detail := pg_catalog.format('no events received in the %s before as_of', c.params ->> 'window');
        RETURN;
    END IF;
    observed := pg_catalog.round(rejected::numeric / received, 6);
    status := CASE WHEN rejected::numeric / received > threshold THEN 'fail' ELSE 'pass' END;
    detail := pg_catalog.format('%s of %s events rejected (%s) in %s batches received in the %s before as_of; allowed %s',
                                rejected, received, pipeline._check_pct(rejected::numeric / received), nb,
                                c.params ->> 'window', pipeline._check_pct(threshold));
END
$fn$;
COMMENT ON FUNCTION pipeline._check_validity(pipeline.checks, timestamptz) IS
    'internal: share of the events received in the window that were rejected (dead-lettered)';

CREATE FUNCTION pipeline._check_referential(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog := pipeline._check_target_source(c);
    col text := c.params ->> 'column';
    ref record := pipeline._check_reference(c.params ->> 'reference');
    win interval := (c.params ->> 'window')::interval;
    n bigint;
    missing bigint;
BEGIN
    threshold := (c.params ->> 'max_missing_rate')::numeric;
    PERFORM pipeline._check_contract_column(s.source, col);
    EXECUTE pg_catalog.format(
        'SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE NOT EXISTS (SELECT FROM %1$s AS t WHERE t.%2$I = r.%3$I)) '
        '  FROM %4$s AS r WHERE r.%5$I > $1 AND r.%5$I <= $2 AND r.%3$I IS NOT NULL',
        ref.rel, ref.col, col, s.raw_table, s.event_time)
      INTO n, missing USING as_of - win, as_of;
    IF n = 0 THEN
        status := 'pass';
        detail := pg_catalog.format('no events with a %s in the %s before as_of', col, c.params ->> 'window');
        RETURN;
    END IF;
    observed := pg_catalog.round(missing::numeric / n, 6);
    status := CASE WHEN missing::numeric / n > threshold THEN 'fail' ELSE 'pass' END;
    detail := pg_catalog.format('%s of %s events (%s) with event time in the %s before as_of: %s missing from %s; allowed %s',
                                missing, n, pipeline._check_pct(missing::numeric / n), c.params ->> 'window', col,
                                ref.normalized, pipeline._check_pct(threshold));
END
$fn$;
COMMENT ON FUNCTION pipeline._check_referential(pipeline.checks, timestamptz) IS
    'internal: share of the window''s events (by event time, non-NULL values) whose column value is missing from the reference';

CREATE FUNCTION pipeline._check_volume(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog := pipeline._check_target_source(c);
    win interval := (c.params ->> 'window')::interval;
    cur bigint;
    base bigint;
    change numeric;
    ago int;
    parts text[] := '{}';
BEGIN
    threshold := (c.params ->> 'max_change')::numeric;
    cur := pipeline._check_count_events(s, as_of - win, as_of);
    -- the same local hours 1 and 7 days earlier, in the source's day time zone
    FOREACH ago IN ARRAY ARRAY[1, 7] LOOP
        base := pipeline._check_count_events(s,
            ((as_of - win) AT TIME ZONE s.day_timezone - ago * interval '1 day') AT TIME ZONE s.day_timezone,
            (as_of AT TIME ZONE s.day_timezone - ago * interval '1 day') AT TIME ZONE s.day_timezone);
        IF base = 0 THEN
            parts := parts || pg_catalog.format('%s day%s earlier none (no baseline)', ago, CASE WHEN ago > 1 THEN 's' ELSE '' END);
        ELSE
            change := pg_catalog.abs(cur - base)::numeric / base;
            observed := GREATEST(observed, pg_catalog.round(change, 6));
            parts := parts || pg_catalog.format('%s day%s earlier %s (%s%s)', ago, CASE WHEN ago > 1 THEN 's' ELSE '' END, base,
                                                CASE WHEN cur >= base THEN '+' ELSE '-' END, pipeline._check_pct(change));
            IF change > threshold THEN
                status := 'fail';
            END IF;
        END IF;
    END LOOP;
    status := COALESCE(status, 'pass');
    detail := pg_catalog.format('%s events with event time in the %s before as_of; %s; allowed change %s',
                                cur, c.params ->> 'window', pg_catalog.array_to_string(parts, ', '),
                                pipeline._check_pct(threshold));
END
$fn$;
COMMENT ON FUNCTION pipeline._check_volume(pipeline.checks, timestamptz) IS
    'internal: events in the window (by event time) against the same window 1 and 7 days earlier; the largest relative change';

CREATE FUNCTION pipeline._check_not_null(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog := pipeline._check_target_source(c);
    col text := c.params ->> 'column';
    win interval := (c.params ->> 'window')::interval;
    n bigint;
    nulls bigint;
BEGIN
    threshold := (c.params ->> 'max_null_rate')::numeric;
    PERFORM pipeline._check_contract_column(s.source, col);
    EXECUTE pg_catalog.format(
        'SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE r.%1$I IS NULL) '
        '  FROM %2$s AS r WHERE r.%3$I > $1 AND r.%3$I <= $2',
        col, s.raw_table, s.event_time)
      INTO n, nulls USING as_of - win, as_of;
    IF n = 0 THEN
        status := 'pass';
        detail := pg_catalog.format('no events in the %s before as_of', c.params ->> 'window');
        RETURN;
    END IF;
    observed := pg_catalog.round(nulls::numeric / n, 6);
    status := CASE WHEN nulls::numeric / n > threshold THEN 'fail' ELSE 'pass' END;
    detail := pg_catalog.format('%s of %s events (%s) with event time in the %s before as_of: no %s; allowed %s',
                                nulls, n, pipeline._check_pct(nulls::numeric / n), c.params ->> 'window', col,
                                pipeline._check_pct(threshold));
END
$fn$;
COMMENT ON FUNCTION pipeline._check_not_null(pipeline.checks, timestamptz) IS
    'internal: share of the window''s events (by event time) whose column is NULL';

CREATE FUNCTION pipeline._check_accepted_values(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog := pipeline._check_target_source(c);
    col text := c.params ->> 'column';
    win interval := (c.params ->> 'window')::interval;
    typ text;
    n bigint;
    unexpected bigint;
    kinds bigint;
BEGIN
    threshold := (c.params ->> 'max_unexpected_rate')::numeric;
    typ := pipeline._check_contract_column(s.source, col);
    EXECUTE pg_catalog.format(
        'SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE NOT (r.%1$I = ANY ($3::%2$s[]))), '
        '       pg_catalog.count(DISTINCT r.%1$I) FILTER (WHERE NOT (r.%1$I = ANY ($3::%2$s[]))) '
        '  FROM %3$s AS r WHERE r.%4$I > $1 AND r.%4$I <= $2 AND r.%1$I IS NOT NULL',
        col, typ, s.raw_table, s.event_time)
      INTO n, unexpected, kinds
      USING as_of - win, as_of, ARRAY(SELECT e #>> '{}' FROM pg_catalog.jsonb_array_elements(c.params -> 'values') AS e);
    IF n = 0 THEN
        status := 'pass';
        detail := pg_catalog.format('no events with a %s in the %s before as_of', col, c.params ->> 'window');
        RETURN;
    END IF;
    observed := pg_catalog.round(unexpected::numeric / n, 6);
    status := CASE WHEN unexpected::numeric / n > threshold THEN 'fail' ELSE 'pass' END;
    detail := pg_catalog.format('%s of %s events (%s) with event time in the %s before as_of: %s not one of the %s accepted values (%s distinct other values); allowed %s',
                                unexpected, n, pipeline._check_pct(unexpected::numeric / n), c.params ->> 'window', col,
                                pg_catalog.jsonb_array_length(c.params -> 'values'), kinds, pipeline._check_pct(threshold));
END
$fn$;
COMMENT ON FUNCTION pipeline._check_accepted_values(pipeline.checks, timestamptz) IS
    'internal: share of the window''s events (by event time, non-NULL values) whose column is not one of the accepted values';

CREATE FUNCTION pipeline._check_digest(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m pipeline.metric_catalog := pipeline._check_target_metric(c);
    n bigint;
    bad date[];
BEGIN
    threshold := 0;
    SELECT pg_catalog.count(*),
           pg_catalog.array_agg(x.day ORDER BY x.day) FILTER (WHERE pipeline.verify_day(x.metric, x.day) IS NOT TRUE)
      INTO n, bad
      FROM pipeline.day_closures AS x
     WHERE x.metric = m.metric AND x.status = 'frozen';
    observed := COALESCE(pg_catalog.cardinality(bad), 0);
    status := CASE WHEN observed > 0 THEN 'fail' ELSE 'pass' END;
    detail := CASE WHEN n = 0 THEN 'no frozen days yet'
                   WHEN observed = 0 THEN pg_catalog.format('all %s frozen days match their digest', n)
                   ELSE pg_catalog.format('%s of %s frozen days no longer match their digest: %s', observed, n,
                                          pg_catalog.array_to_string(bad[1:10], ', '))
                        || CASE WHEN observed > 10 THEN ', ...' ELSE '' END END;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_digest(pipeline.checks, timestamptz) IS
    'internal: the frozen days of a metric whose rows no longer match the digest taken when they froze';

-- a time of day for details: 07:00, or 07:00:30 when it has seconds
CREATE FUNCTION pipeline._check_time_text(t time) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.to_char(t, CASE WHEN pg_catalog.date_part('second', t) = 0 THEN 'HH24:MI' ELSE 'HH24:MI:SS' END);
COMMENT ON FUNCTION pipeline._check_time_text(time) IS 'internal: a time of day written HH:MM, or HH:MM:SS';

-- The daily SLA of a metric: on day D (in its source's day time zone,
-- D being the local date of as_of), day D - 1 must be provisional by
-- ready_by, a local time of D.  warn from ready_by - warn_before, fail from
-- ready_by, until the day is done.
--
-- Done means close_days has computed it: its day_closures row says
-- provisional, held or frozen.  A held day is provisional data held from
-- freezing by a failing block check: it is on time for the SLA (the
-- block check has its own alert).  A day without events has no raw
-- partition, so close_days gives it no row: it is done once close_days has
-- run for the metric with an as_of at least allowed_lateness past the
-- day's end (pipeline.close_runs), which is when it would have made the
-- day provisional had it had events.  Without this a quiet source would
-- miss its SLA every day; with it a quiet day still misses the SLA when
-- close_days does not run.  A day with events and no row is open:
-- close_days has not closed it yet (not run since it ended, or the events
-- arrived after its last run).
--
-- observed is as_of - deadline in seconds (negative: time left) while the
-- day is not done, NULL once it is; threshold is 0, the deadline.
CREATE FUNCTION pipeline._check_sla(c pipeline.checks, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m pipeline.metric_catalog := pipeline._check_target_metric(c);
    s pipeline.source_catalog;
    ready_by time := (c.params ->> 'ready_by')::time;
    warn_before interval := (c.params ->> 'warn_before')::interval;
    today date;
    yesterday date;
    deadline timestamptz;
    warn_from timestamptz;
    state text;
    closed_as_of timestamptz;
    has_events boolean;
    due text;
    why text;
BEGIN
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS x WHERE x.source = m.source;
    today := (as_of AT TIME ZONE s.day_timezone)::date;
    yesterday := today - 1;
    deadline := (today + ready_by) AT TIME ZONE s.day_timezone;
    warn_from := deadline - warn_before;
    threshold := 0;
    due := pg_catalog.format('%s %s', pipeline._check_time_text(ready_by), s.day_timezone);

    SELECT x.status INTO state FROM pipeline.day_closures AS x WHERE x.metric = m.metric AND x.day = yesterday;
    IF state IS NOT NULL THEN
        status := 'pass';
        detail := pg_catalog.format('%s %s is %s%s; due by %s', m.metric, yesterday, state,
                                    CASE WHEN state = 'held' THEN ' (provisional, held from freezing by a block check)' ELSE '' END,
                                    due);
        RETURN;
    END IF;
    SELECT r.closed_as_of INTO closed_as_of FROM pipeline.close_runs AS r WHERE r.metric = m.metric;
    has_events := EXISTS (SELECT FROM pipeline._source_days(s.source) AS d WHERE d = yesterday);
    IF NOT has_events AND closed_as_of >= (today::timestamp AT TIME ZONE s.day_timezone) + s.allowed_lateness THEN
        status := 'pass';
        detail := pg_catalog.format('%s %s had no events, and close_days has passed it (last run as of %s); due by %s',
                                    m.metric, yesterday, closed_as_of, due);
        RETURN;
    END IF;

    -- open: not done yet
    observed := pg_catalog.round(pg_catalog.date_part('epoch', as_of - deadline)::numeric, 3);
    why := CASE WHEN has_events THEN 'its events await close_days' ELSE 'it had no events, and close_days has not passed it' END
           || CASE WHEN closed_as_of IS NULL THEN ' (close_days has never run for the metric)'
                   ELSE pg_catalog.format(' (last run as of %s)', closed_as_of) END;
    IF as_of >= deadline THEN
        status := 'fail';
        detail := pg_catalog.format('SLA missed: %s %s not provisional by %s; it is open: %s',
                                    m.metric, yesterday, due, why);
    ELSIF as_of >= warn_from THEN
        status := 'warn';
        detail := pg_catalog.format('SLA at risk: %s %s not provisional yet, due by %s in %s; it is open: %s',
                                    m.metric, yesterday, due,
                                    pg_catalog.justify_hours(pg_catalog.date_trunc('second', deadline - as_of)), why);
    ELSE
        status := 'pass';
        detail := pg_catalog.format('%s %s is not provisional yet, due by %s (%s); it is open: %s',
                                    m.metric, yesterday, due,
                                    CASE WHEN warn_before = interval '0' THEN 'no early warning'
                                         WHEN (warn_from AT TIME ZONE s.day_timezone)::date = today
                                         THEN 'early warning from ' || pipeline._check_time_text((warn_from AT TIME ZONE s.day_timezone)::time)
                                         ELSE 'early warning from ' || pg_catalog.to_char(warn_from AT TIME ZONE s.day_timezone, 'YYYY-MM-DD HH24:MI:SS') END,
                                    why);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pipeline._check_sla(pipeline.checks, timestamptz) IS
    'internal: the daily SLA of a metric: yesterday (in the source''s day time zone) provisional by ready_by; '
    'warn from ready_by - warn_before, fail from ready_by';

-- --- running checks ---------------------------------------------------------------

-- One evaluation of a check as its owner (src/as_owner.c): the caller must
-- have the owner's privileges already; the switch is restricted, so the
-- owner's code cannot RESET ROLE back to the session's role.
CREATE FUNCTION pipeline._evaluate_check(check_name text, as_of timestamptz,
        OUT status text, OUT observed numeric, OUT threshold numeric, OUT detail text)
    RETURNS record
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_evaluate_check';
COMMENT ON FUNCTION pipeline._evaluate_check(text, timestamptz) IS
    'internal: evaluates one check as its owner, in a restricted context, for a caller with the owner''s privileges';

-- A run's result, written as the extension owner for a caller who may run
-- the check (has its owner's privileges; a superuser for a check whose
-- owner was dropped).
CREATE FUNCTION pipeline._record_check_result(check_name text, run_no bigint, ran_at timestamptz,
        status text, observed numeric, threshold numeric, detail text)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_as_extension_owner';
COMMENT ON FUNCTION pipeline._record_check_result(text, bigint, timestamptz, text, numeric, numeric, text) IS
    'internal: records one run of a check (runs _record_check_result_as_owner as the extension owner)';

CREATE FUNCTION pipeline._record_check_result_as_owner(caller regrole, check_name text, run_no bigint,
        ran_at timestamptz, status text, observed numeric, threshold numeric, detail text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
BEGIN
    IF NOT EXISTS (SELECT FROM pipeline.checks AS c
                    LEFT JOIN pg_catalog.pg_roles AS o ON o.oid = c.owner
                   WHERE c.check_name = _record_check_result_as_owner.check_name
                     AND CASE WHEN o.oid IS NULL
                              THEN (SELECT a.rolsuper FROM pg_catalog.pg_roles AS a WHERE a.oid = caller)
                              ELSE pg_catalog.pg_has_role(caller, c.owner, 'USAGE') END) THEN
        RAISE EXCEPTION 'permission denied to record a result of check %', check_name
            USING ERRCODE = 'insufficient_privilege', HINT = 'pipeline.run_checks() records results.';
    END IF;
    INSERT INTO pipeline.check_results (check_name, run_no, ran_at, status, observed, threshold, detail)
        VALUES (check_name, run_no, ran_at, status, observed, threshold, detail);
END
$fn$;
COMMENT ON FUNCTION pipeline._record_check_result_as_owner(regrole, text, bigint, timestamptz, text, numeric, numeric, text) IS
    'internal: the extension owner''s half of _record_check_result; checks the caller may run the check';

CREATE FUNCTION pipeline.run_checks(as_of timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (check_name text, status text, observed numeric, threshold numeric, detail text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    c pipeline.checks;
    prev text;
    next_no bigint;
    r record;
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- (a check whose owner was dropped is a superuser's to see, and fails)
    FOR c IN SELECT x.* FROM pipeline.checks AS x
               LEFT JOIN pg_catalog.pg_roles AS o ON o.oid = x.owner
              WHERE CASE WHEN o.oid IS NULL
                         THEN (SELECT a.rolsuper FROM pg_catalog.pg_roles AS a WHERE a.rolname = current_user)
                         ELSE pg_catalog.pg_has_role(current_user, x.owner, 'USAGE') END
              ORDER BY x.check_name
    LOOP
        -- one run of a check at a time: a second waits, then sees the first's result
        PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pipeline.check_results'),
                                                 pg_catalog.hashtext(c.check_name));
        CONTINUE WHEN NOT EXISTS (SELECT FROM pipeline.checks AS x WHERE x.check_name = c.check_name);
        SELECT x.status, x.run_no INTO prev, next_no FROM pipeline.check_results AS x
         WHERE x.check_name = c.check_name ORDER BY x.run_no DESC LIMIT 1;
        next_no := COALESCE(next_no, 0) + 1;
        -- evaluated as the check's owner (its privileges, whoever runs it)
        BEGIN
            r := pipeline._evaluate_check(c.check_name, as_of);
            status := r.status;
            observed := r.observed;
            threshold := r.threshold;
            detail := r.detail;
        EXCEPTION WHEN OTHERS THEN
            status := 'fail';
            observed := NULL;
            threshold := NULL;
            detail := 'the check could not run: ' || SQLERRM;
        END;
        check_name := c.check_name;
        PERFORM pipeline._record_check_result(c.check_name, next_no, as_of, status, observed, threshold, detail);
        -- worse than the run before (pass < warn < fail; no run before is a
        -- pass): a new failure, a new warning, or a warning turned failure.
        -- Any role may LISTEN: the payload says which check and how bad,
        -- never what it read (observed, detail: in pipeline.alerts, for the
        -- check's owner).
        IF status <> 'pass' AND (prev IS NULL OR prev = 'pass' OR (prev = 'warn' AND status = 'fail')) THEN
            PERFORM pg_catalog.pg_notify('pipeline_alerts', pg_catalog.jsonb_build_object(
                'check_name', c.check_name, 'kind', c.kind, 'target', c.target, 'severity', c.severity,
                'status', status, 'ran_at', as_of)::text);
        END IF;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pipeline.run_checks(timestamptz) IS
    'evaluates, as of the given time, the checks of the roles the caller has the privileges of (all, for a superuser), '
    'each as its owner; records each result in pipeline.check_results and sends NOTIFY pipeline_alerts (a JSON payload: '
    'check_name, kind, target, severity, status, ran_at) for each run that makes a check '
    'worse: a new failure, a new SLA warning, or a warning turned failure';

-- The 'block' checks failing now for a metric (on the metric or its source):
-- what holds its days from freezing.  (Only fail holds: warn is an SLA's
-- early warning, and an sla check cannot be of severity block anyway.)
CREATE FUNCTION pipeline._blocking_checks(metric text) RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
    SELECT COALESCE(pg_catalog.array_agg(a.check_name ORDER BY a.check_name), '{}')
      FROM pipeline.alerts AS a
      JOIN pipeline.checks AS c ON c.check_name = a.check_name
     WHERE a.severity = 'block' AND a.status = 'fail'
       AND ((c.target_type = 'metric' AND c.target = _blocking_checks.metric)
            OR (c.target_type = 'source'
                AND c.target = (SELECT m.source FROM pipeline.metric_catalog AS m WHERE m.metric = _blocking_checks.metric)))
$fn$;
COMMENT ON FUNCTION pipeline._blocking_checks(text) IS
    'internal: the checks of severity block failing now on a metric or its source';

-- --- explain --------------------------------------------------------------------

-- " AND a.dim IS NOT DISTINCT FROM ($1->>'dim')::type" for each dimension
-- given in $1 (the values are parameters, the names and types the metric's)
CREATE FUNCTION pipeline._dims_given(def jsonb, dims jsonb, alias text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT COALESCE(pg_catalog.string_agg(pg_catalog.format(' AND %s.%I IS NOT DISTINCT FROM ($1 ->> %L)::%s',
                                                            alias, d ->> 'name', d ->> 'name', d ->> 'type'), '' ORDER BY o), '')
      FROM pg_catalog.jsonb_array_elements(def -> 'dimensions') WITH ORDINALITY AS e(d, o)
     WHERE dims ? (d ->> 'name'));
COMMENT ON FUNCTION pipeline._dims_given(jsonb, jsonb, text) IS
    'internal: the conditions selecting the dimension group given as JSON ($1 of the generated query)';

-- per measure, the corrections' aggregate over correction rows c
CREATE FUNCTION pipeline._explain_corr_select(def jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT pg_catalog.string_agg(
             CASE e ->> 'agg'
               WHEN 'min' THEN pg_catalog.format('pg_catalog.min(c.%1$I) AS %1$I', e ->> 'name')
               WHEN 'max' THEN pg_catalog.format('pg_catalog.max(c.%1$I) AS %1$I', e ->> 'name')
               WHEN 'avg' THEN pg_catalog.format('pg_catalog.sum(c.%1$I) AS %1$I, pg_catalog.sum(c.%2$I) AS %2$I',
                                                 '_' || (e ->> 'name') || '_sum', '_' || (e ->> 'name') || '_count')
               ELSE pg_catalog.format('pg_catalog.sum(c.%1$I) AS %1$I', e ->> 'name')
             END, ', ' ORDER BY o)
      FROM pg_catalog.jsonb_array_elements(def -> 'measures') WITH ORDINALITY AS x(e, o));
COMMENT ON FUNCTION pipeline._explain_corr_select(jsonb) IS 'internal: the corrections of a group, per measure';

-- "a equals b" for generated SQL: floating-point sums may differ in their
-- last bits with the order of addition
CREATE FUNCTION pipeline._explain_same(typ text, a text, b text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN CASE WHEN typ IN ('double precision', 'real')
                THEN pg_catalog.format('COALESCE((%1$s) = (%2$s) OR pg_catalog.abs((%1$s) - (%2$s)) <= 1e-9 * GREATEST(pg_catalog.abs(%1$s), pg_catalog.abs(%2$s)), (%1$s) IS NULL AND (%2$s) IS NULL)', a, b)
                ELSE pg_catalog.format('((%s) IS NOT DISTINCT FROM (%s))', a, b) END;
COMMENT ON FUNCTION pipeline._explain_same(text, text, text) IS 'internal: an equality test for generated SQL, tolerant for floating point';

-- per measure, a JSON object: the daily value (d), the corrections (k), the
-- restated value (x) and whether daily + corrections give the restated value
CREATE FUNCTION pipeline._explain_measures(def jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT 'pg_catalog.jsonb_build_object(' || COALESCE(pg_catalog.string_agg(pg_catalog.format('%L, %s', e ->> 'name',
             CASE e ->> 'agg'
               WHEN 'avg' THEN pg_catalog.format(
                   'pg_catalog.jsonb_build_object(''daily'', d.%1$I, ''daily_sum'', d.%2$I, ''daily_count'', d.%3$I, '
                   '''corrections_sum'', k.%2$I, ''corrections_count'', k.%3$I, ''restated'', x.%1$I, '
                   '''adds_up'', %4$s)',
                   e ->> 'name', '_' || (e ->> 'name') || '_sum', '_' || (e ->> 'name') || '_count',
                   pipeline._explain_same(e ->> 'type', pg_catalog.format(
                       '((CASE WHEN k.%1$I IS NULL THEN d.%1$I WHEN d.%1$I IS NULL THEN k.%1$I ELSE d.%1$I + k.%1$I END) '
                       ' / NULLIF(COALESCE(d.%2$I, 0) + COALESCE(k.%2$I, 0), 0)::%3$s)::%3$s',
                       '_' || (e ->> 'name') || '_sum', '_' || (e ->> 'name') || '_count', e ->> 'type'),
                     pg_catalog.format('x.%I', e ->> 'name')))
               ELSE pg_catalog.format(
                   'pg_catalog.jsonb_build_object(''daily'', d.%1$I, ''corrections'', k.%1$I, ''restated'', x.%1$I, '
                   '''adds_up'', %2$s)',
                   e ->> 'name',
                   pipeline._explain_same(e ->> 'type', CASE e ->> 'agg'
                       WHEN 'min' THEN pg_catalog.format('LEAST(d.%1$I, k.%1$I)', e ->> 'name')
                       WHEN 'max' THEN pg_catalog.format('GREATEST(d.%1$I, k.%1$I)', e ->> 'name')
                       ELSE pg_catalog.format('CASE WHEN k.%1$I IS NULL THEN d.%1$I WHEN d.%1$I IS NULL THEN k.%1$I '
                                              'ELSE d.%1$I + k.%1$I END', e ->> 'name') END,
                     pg_catalog.format('x.%I', e ->> 'name')))
             END), ', ' ORDER BY o), '') || ')'
      FROM pg_catalog.jsonb_array_elements(def -> 'measures') WITH ORDINALITY AS x(e, o));
COMMENT ON FUNCTION pipeline._explain_measures(jsonb) IS
    'internal: per measure of a group, daily, corrections, restated and whether they add up';

CREATE FUNCTION pipeline.explain(metric text, day date, dimensions jsonb DEFAULT '{}')
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    m pipeline.metric_catalog;
    s pipeline.source_catalog;
    def jsonb;
    c pipeline.day_closures;
    dims jsonb := COALESCE(dimensions, '{}');
    dim record;
    key text;
    rel text;
    lo timestamptz;
    hi timestamptz;
    filter text;
    cnt text;
    status text;
    groups jsonb;
    batches jsonb;
    duplicates jsonb;
    dead jsonb;
    notes text[] := '{}';
    adds_up boolean;
    has_batches boolean := pg_catalog.has_table_privilege('pipeline.batches', 'SELECT');
    order_by text := '';
BEGIN
    SELECT * INTO m FROM pipeline.metric_catalog AS x WHERE x.metric = explain.metric;
    IF NOT FOUND THEN
        -- listed in pipeline.metrics, but its row is not the caller's to read
        SELECT pg_catalog.format('permission denied to explain metric "%s": explain reads %s', x.metric, y.raw_table),
               x.owner::text
          INTO rel, key
          FROM pipeline.metrics AS x JOIN pipeline.sources AS y ON y.source = x.source
         WHERE x.metric = explain.metric;
        IF rel IS NOT NULL THEN
            RAISE EXCEPTION '%', rel
                USING ERRCODE = 'insufficient_privilege',
                      HINT = pg_catalog.format('explain reads the metric''s raw events and daily tables as its caller: members of its owner, %s, may call it.', key);
        END IF;
        RAISE EXCEPTION 'metric "%" does not exist', metric
            USING ERRCODE = 'undefined_object', HINT = 'List metrics in pipeline.metrics.';
    END IF;
    IF day IS NULL THEN
        RAISE EXCEPTION 'explain needs a day' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO STRICT s FROM pipeline.source_catalog AS x WHERE x.source = m.source;
    def := m.definition;
    IF pg_catalog.jsonb_typeof(dims) <> 'object' THEN
        RAISE EXCEPTION 'dimensions must be a JSON object, e.g. {"platform": "ios"}, not %', dims
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR key IN SELECT k FROM pg_catalog.jsonb_object_keys(dims) AS k ORDER BY 1 LOOP
        SELECT d ->> 'name' AS name, d ->> 'type' AS type INTO dim
          FROM pg_catalog.jsonb_array_elements(def -> 'dimensions') AS d WHERE d ->> 'name' = key;
        IF dim.name IS NULL THEN
            RAISE EXCEPTION 'metric "%" has no dimension "%"', metric, key
                USING ERRCODE = 'undefined_column',
                      HINT = CASE WHEN pg_catalog.jsonb_array_length(def -> 'dimensions') = 0
                                  THEN 'It has no dimensions: pass ''{}''.'
                                  ELSE pg_catalog.format('Its dimensions are: %s.', (
                                      SELECT pg_catalog.string_agg(d ->> 'name', ', ')
                                        FROM pg_catalog.jsonb_array_elements(def -> 'dimensions') AS d)) END;
        END IF;
        IF pg_catalog.jsonb_typeof(dims -> key) NOT IN ('string', 'number', 'boolean', 'null') THEN
            RAISE EXCEPTION 'dimension "%" must be given a single value, not %', key, dims -> key
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        BEGIN
            EXECUTE pg_catalog.format('SELECT ($1 ->> %L)::%s', key, dim.type) USING dims;
        EXCEPTION WHEN data_exception THEN
            RAISE EXCEPTION 'dimension "%" is a %: % is not one', key, dim.type, dims -> key
                USING ERRCODE = 'invalid_parameter_value', DETAIL = SQLERRM;
        END;
    END LOOP;
    FOREACH rel IN ARRAY ARRAY[s.raw_table::text, pg_catalog.format('pipeline.%I', m.metric || '_daily'),
                               pg_catalog.format('pipeline.%I', m.metric || '_corrections'),
                               pg_catalog.format('metrics.%I', m.metric || '_restated')] LOOP
        IF NOT pg_catalog.has_table_privilege(rel, 'SELECT') THEN
            RAISE EXCEPTION 'permission denied to explain metric "%": explain reads %', metric, rel
                USING ERRCODE = 'insufficient_privilege',
                      HINT = pg_catalog.format('explain reads the metric''s raw events and daily tables as its caller: members of its owner, %s, may call it.', m.owner);
        END IF;
    END LOOP;

    lo := day::timestamp AT TIME ZONE s.day_timezone;
    hi := (day + 1)::timestamp AT TIME ZONE s.day_timezone;
    filter := COALESCE(def ->> 'filter', 'true');
    SELECT e ->> 'name' INTO cnt FROM pg_catalog.jsonb_array_elements(def -> 'measures') AS e
     WHERE e ->> 'agg' = 'count_star' LIMIT 1;
    SELECT * INTO c FROM pipeline.day_closures AS x WHERE x.metric = m.metric AND x.day = explain.day;
    status := COALESCE(c.status, 'open');
    IF pg_catalog.jsonb_array_length(def -> 'dimensions') > 0 THEN
        order_by := ' ORDER BY ' || pipeline._dims_group(def, 'g.');
    END IF;

    -- per dimension group: daily, corrections, restated; and raw, split by
    -- what the freeze saw, what corrections took, what awaits correction
    EXECUTE pg_catalog.format($q$
        WITH raw_batches AS (
            SELECT r._pl_batch AS _pl_batch%1$s, pg_catalog.count(*) AS _pl_n
              FROM %2$s AS r
             WHERE r.%3$I >= $2 AND r.%3$I < $3 AND (%4$s)%5$s
             GROUP BY r._pl_batch%27$s),
        raw_groups AS (
            SELECT true AS _pl_g%6$s, pg_catalog.sum(w._pl_n)::bigint AS _pl_raw_now,
                   (pg_catalog.sum(w._pl_n) FILTER (WHERE pg_catalog.pg_visible_in_snapshot(b.xid, $4)))::bigint AS _pl_at_freeze,
                   (pg_catalog.sum(w._pl_n) FILTER (WHERE pg_catalog.pg_visible_in_snapshot(b.xid, $5)
                                                   AND NOT pg_catalog.pg_visible_in_snapshot(b.xid, $4)))::bigint AS _pl_corrected,
                   (pg_catalog.sum(w._pl_n) FILTER (WHERE b.xid IS NULL OR NOT pg_catalog.pg_visible_in_snapshot(b.xid, $5)))::bigint AS _pl_awaiting
              FROM raw_batches AS w LEFT JOIN pipeline.batch_log AS b ON b.batch_id = w._pl_batch
             GROUP BY %7$s),
        corr AS (
            SELECT true AS _pl_g%8$s, %9$s, pg_catalog.sum(c.late_events)::bigint AS _pl_events,
                   pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c) - 'day' ORDER BY c.correction_id) AS _pl_list
              FROM pipeline.%10$I AS c WHERE c.day = $6%11$s
             GROUP BY %12$s),
        keys AS (
            SELECT true AS _pl_g%13$s FROM pipeline.%14$I AS d WHERE d.day = $6%15$s
            UNION SELECT w._pl_g%6$s FROM raw_groups AS w WHERE w._pl_raw_now IS NOT NULL
            UNION SELECT k._pl_g%16$s FROM corr AS k WHERE k._pl_events IS NOT NULL)
        SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'dimensions', pg_catalog.jsonb_build_object(%17$s),
                   'measures', %18$s,
                   'events', pg_catalog.jsonb_build_object(
                       'raw_now', COALESCE(w._pl_raw_now, 0),
                       'in_daily', %19$s,
                       'at_freeze', CASE WHEN $7 = 'frozen' THEN COALESCE(w._pl_at_freeze, 0) END,
                       'in_corrections', CASE WHEN $7 = 'frozen' THEN COALESCE(k._pl_events, 0) END,
                       'corrected_batches', CASE WHEN $7 = 'frozen' THEN COALESCE(w._pl_corrected, 0) END,
                       'awaiting_correction', CASE WHEN $7 = 'frozen' THEN COALESCE(w._pl_awaiting, 0) END,
                       'adds_up', CASE WHEN $7 = 'frozen'
                                       THEN COALESCE(k._pl_events, 0) = COALESCE(w._pl_corrected, 0)%20$s END),
                   'corrections', COALESCE(k._pl_list, '[]'))%21$s), '[]')
          FROM keys AS g
          LEFT JOIN pipeline.%14$I AS d ON d.day = $6%22$s
          LEFT JOIN metrics.%23$I AS x ON x.day = $6%24$s
          LEFT JOIN corr AS k ON true%25$s
          LEFT JOIN raw_groups AS w ON true%26$s
        $q$,
        pipeline._dims_aliased(def, 'r.'), s.raw_table, s.event_time, filter, pipeline._dims_given(def, dims, 'r'),
        pipeline._dims(def, 'w.'), pipeline._dims_group(def, 'w.'),
        pipeline._dims(def, 'c.'), pipeline._explain_corr_select(def), m.metric || '_corrections',
        pipeline._dims_given(def, dims, 'c'), pipeline._dims_group(def, 'c.'),
        pipeline._dims(def, 'd.'), m.metric || '_daily', pipeline._dims_given(def, dims, 'd'),
        pipeline._dims(def, 'k.'),
        (SELECT COALESCE(pg_catalog.string_agg(pg_catalog.format('%L, g.%I', e ->> 'name', e ->> 'name'), ', ' ORDER BY o), '')
           FROM pg_catalog.jsonb_array_elements(def -> 'dimensions') WITH ORDINALITY AS x(e, o)),
        pipeline._explain_measures(def),
        CASE WHEN cnt IS NULL THEN 'NULL::bigint' ELSE pg_catalog.format('d.%I', cnt) END,
        CASE WHEN cnt IS NULL THEN '' ELSE pg_catalog.format(' AND COALESCE(d.%I, 0) = COALESCE(w._pl_at_freeze, 0)', cnt) END,
        order_by,
        pipeline._dims_match(def, 'd', 'g'), m.metric || '_restated', pipeline._dims_match(def, 'x', 'g'),
        pipeline._dims_match(def, 'k', 'g'), pipeline._dims_match(def, 'w', 'g'),
        pipeline._dims(def, 'r.'))
      INTO groups
      USING dims, lo, hi, c.frozen_snapshot, c.corrected_snapshot, day, status;

    SELECT pg_catalog.bool_and(COALESCE((g -> 'events' ->> 'adds_up')::boolean, true)
                               AND NOT EXISTS (SELECT FROM pg_catalog.jsonb_each(g -> 'measures') AS e
                                                WHERE (e.value ->> 'adds_up')::boolean IS NOT TRUE))
      INTO adds_up
      FROM pg_catalog.jsonb_array_elements(groups) AS g;

    -- the batches behind the group's events, and the contract versions they were checked against
    EXECUTE pg_catalog.format($q$
        WITH per_batch AS (
            SELECT r._pl_batch AS batch_id, pg_catalog.count(*) AS events
              FROM %1$s AS r
             WHERE r.%2$I >= $2 AND r.%2$I < $3 AND (%3$s)%4$s
             GROUP BY 1),
        b AS (
            SELECT p.batch_id, p.events, l.received_at, %5$s AS contract_version,
                   CASE WHEN l.batch_id IS NULL THEN 'no receipt'
                        WHEN $6 <> 'frozen' THEN $6
                        WHEN pg_catalog.pg_visible_in_snapshot(l.xid, $4) THEN 'at freeze'
                        WHEN pg_catalog.pg_visible_in_snapshot(l.xid, $5) THEN 'correction'
                        ELSE 'awaiting correction' END AS included
              FROM per_batch AS p
              LEFT JOIN pipeline.batch_log AS l ON l.batch_id = p.batch_id
              %6$s)
        SELECT pg_catalog.jsonb_build_object(
                 'count', (SELECT pg_catalog.count(*) FROM b),
                 'events_by_inclusion', (SELECT COALESCE(pg_catalog.jsonb_object_agg(i.included, i.events), '{}')
                                           FROM (SELECT b.included, pg_catalog.sum(b.events) AS events FROM b GROUP BY 1) AS i),
                 'events_by_contract_version', %7$s,
                 'list', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(t) ORDER BY t.batch_id), '[]')
                            FROM (SELECT * FROM b ORDER BY b.batch_id LIMIT 100) AS t),
                 'list_truncated', (SELECT pg_catalog.count(*) > 100 FROM b))
        $q$,
        s.raw_table, s.event_time, filter, pipeline._dims_given(def, dims, 'r'),
        CASE WHEN has_batches THEN 'v.contract_version' ELSE 'NULL::integer' END,
        CASE WHEN has_batches THEN 'LEFT JOIN pipeline.batches AS v ON v.batch_id = p.batch_id' ELSE '' END,
        CASE WHEN has_batches
             THEN '(SELECT COALESCE(pg_catalog.jsonb_object_agg(COALESCE(v.contract_version::text, ''unknown''), v.events), ''{}'') '
                  '   FROM (SELECT b.contract_version, pg_catalog.sum(b.events) AS events FROM b GROUP BY 1) AS v)'
             ELSE 'NULL::jsonb' END)
      INTO batches
      USING dims, lo, hi, c.frozen_snapshot, c.corrected_snapshot, status;
    IF NOT has_batches THEN
        notes := pg_catalog.array_append(notes, pg_catalog.format('contract versions and duplicates are in pipeline.batches, which %s may not read', current_user));
    ELSE
        SELECT pg_catalog.jsonb_build_object('duplicates', COALESCE(pg_catalog.sum(v.duplicates), 0),
                                             'batches', pg_catalog.count(*), 'approximate', true)
          INTO duplicates
          FROM pipeline.batch_log AS b JOIN pipeline.batches AS v ON v.batch_id = b.batch_id
         WHERE b.source = s.source AND b.min_event_time < hi AND b.max_event_time >= lo;
        notes := pg_catalog.array_append(notes, 'duplicates: dropped duplicates are not stored, so this is the sum over the batches whose event times overlap the day (all dimension groups), whatever the day of each duplicate');
    END IF;
    IF pg_catalog.has_table_privilege('pipeline.dead_letters', 'SELECT') THEN
        SELECT pg_catalog.jsonb_build_object('count', COALESCE(pg_catalog.sum(x.n), 0),
                                             'by_error_code', COALESCE(pg_catalog.jsonb_object_agg(x.error_code, x.n), '{}'))
          INTO dead
          FROM (SELECT l.error_code, pg_catalog.count(*) AS n FROM pipeline.dead_letters AS l
                 WHERE l.source = s.source AND l.received_at >= lo AND l.received_at < hi
                 GROUP BY 1) AS x;
        notes := pg_catalog.array_append(notes, 'dead_letters: a rejected event has no trusted event time, so these are the source''s dead letters received during the day (all dimension groups)');
    ELSE
        notes := pg_catalog.array_append(notes, pg_catalog.format('dead letters are in pipeline.dead_letters, which %s may not read', current_user));
    END IF;
    IF status = 'frozen' THEN
        notes := pg_catalog.array_append(notes, 'events: in_daily (the count(*) measure) = at_freeze (raw events of batches the freeze saw); in_corrections = corrected_batches (raw events of batches seen since); raw_now = at_freeze + corrected_batches + awaiting_correction');
    ELSIF status = 'provisional' THEN
        notes := pg_catalog.array_append(notes, 'a provisional day is recomputed from raw by every close_days run: raw_now may exceed in_daily by events accepted since');
    ELSE
        notes := pg_catalog.array_append(notes, 'the day is not closed yet: no daily rows');
    END IF;

    RETURN pg_catalog.jsonb_build_object(
        'metric', m.metric, 'source', s.source, 'day', day, 'day_timezone', s.day_timezone,
        'from', lo, 'to', hi, 'dimensions', dims,
        'status', status, 'version', c.version, 'computed_at', c.computed_at, 'frozen_at', c.frozen_at,
        'events_frozen', c.events_frozen,
        'groups', groups,
        'batches', batches,
        'duplicates', duplicates,
        'dead_letters', dead,
        'adds_up', adds_up,
        'notes', pg_catalog.to_jsonb(notes));
END
$fn$;
COMMENT ON FUNCTION pipeline.explain(text, date, jsonb) IS
    'how a daily number came to be, as JSON: the day''s status, version and freeze; per dimension group the daily, '
    'corrections and restated value of each measure and whether they add up, and the raw events split by what the '
    'freeze saw, what corrections took and what awaits correction; the batches and contract versions behind them; '
    'duplicates and dead letters around the day.  dimensions selects groups, e.g. {"platform": "ios"}';
