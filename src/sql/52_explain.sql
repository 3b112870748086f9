-- explain(): how a daily number came to be, per dimension group: the
-- daily, corrections and restated value of each measure and whether they
-- add up, the raw events behind them, their batches, contract versions,
-- duplicates and dead letters.

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
-- restated value (x) and whether daily and corrections give the restated
-- value (each kind says how, pipeline.measure_kinds)
CREATE FUNCTION pipeline._explain_measures(def jsonb) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (
    SELECT 'pg_catalog.jsonb_build_object(' || COALESCE(pg_catalog.string_agg(pg_catalog.format(
               '%L, pg_catalog.jsonb_build_object(%s, ''adds_up'', %s)', e ->> 'name',
               pipeline._measure_part(e, o, 'explain_values'),
               pipeline._explain_same(e ->> 'type', pipeline._measure_part(e, o, 'explain_restated'),
                                      pg_catalog.format('x.%I', e ->> 'name'))), ', ' ORDER BY o), '') || ')'
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
    cnt := pipeline._events_measure(def);
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
        pipeline._dims(def, 'c.'), pipeline._measure_sql(def, 'explain_corrections'), m.metric || '_corrections',
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
