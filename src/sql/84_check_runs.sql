-- Running data-quality checks: each as its owner, its result recorded,
-- a worsening announced with NOTIFY pipeline_alerts; and the blocking
-- checks that hold days from freezing.

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
