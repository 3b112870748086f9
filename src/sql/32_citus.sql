-- Scale-out on Citus (README "Scaling out").  Nothing here needs Citus
-- installed: its functions are called by name, at run time, only when a
-- source is distributed.

-- whether a table is a Citus distributed table (false without Citus)
CREATE FUNCTION pipeline._distributed(rel regclass) RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    found boolean;
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition AS p WHERE p.logicalrelid = $1)'
       INTO found USING rel;
    RETURN found;
END
$fn$;
COMMENT ON FUNCTION pipeline._distributed(regclass) IS
    'internal: whether a table is distributed by Citus (false where Citus is not installed)';

-- Citus connects to the worker nodes as the role running a statement:
-- ingest writes a distributed source's rows as the source's owner, and a
-- fold reads them as the metric's owner.  Raises, naming the role, if one
-- of roles cannot log in.
CREATE FUNCTION pipeline._require_login(roles regrole[]) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    r name;
BEGIN
    SELECT x.rolname INTO r FROM pg_catalog.pg_roles AS x
     WHERE x.oid = ANY (roles::oid[]) AND NOT x.rolcanlogin
     ORDER BY 1 LIMIT 1;
    IF r IS NOT NULL THEN
        RAISE EXCEPTION 'role "%" cannot log in, and Citus connects to the worker nodes as it', r
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Ingest writes a distributed source''s rows as the source''s owner, and a fold reads them as the metric''s owner.',
                  HINT = pg_catalog.format('ALTER ROLE %I LOGIN, and let it reach the workers in their pg_hba.conf.', r);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pipeline._require_login(regrole[]) IS
    'internal: raises if one of the roles cannot log in (Citus connects to the workers as the role running a statement)';

-- The BRIN index on _pl_batch through which a correction finds its
-- batches' rows (_in_batches) is summarized on a single node by the
-- worker's round and run_hot() (src/hot_runner.c); on a distributed
-- source its copies on the shards are summarized only by autovacuum,
-- which may never come back to a day once its inserts stop, and the
-- unsummarized part of a shard is read whole (measured: every page of a
-- 2M-event day, 63 ms of a 390 ms correction).  So the first correction
-- of a distributed day (the one that asks for its value index) summarizes
-- them, on every shard of the day's partition, over connections of
-- Citus's own (about 30 ms, so not on every correction: the later ones
-- find the day summarized but for its last pages): the pipeline's index
-- alone (one column, _pl_batch, no expression or predicate), as the
-- extension owner, who runs close_days and restate_day.
CREATE FUNCTION pipeline._summarize_shards(part regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
BEGIN
    -- a shard that fails (its worker down) is only left unsummarized: the
    -- correction that follows reads that worker too, and raises then.
    -- The index is found as src/hot_runner.c finds it on a single node.
    EXECUTE 'SELECT FROM pg_catalog.run_command_on_shards($1, $2)'
      USING part,
            'SELECT pg_catalog.sum(pg_catalog.brin_summarize_new_values(x.indexrelid)) '
            '  FROM pg_catalog.pg_index AS x '
            '  JOIN pg_catalog.pg_class AS i ON i.oid = x.indexrelid '
            '  JOIN pg_catalog.pg_am AS a ON a.oid = i.relam AND a.amname = ''brin'' '
            '  JOIN pg_catalog.pg_attribute AS c ON c.attrelid = x.indrelid '
            '   AND c.attnum = x.indkey[0] AND c.attname = ''_pl_batch'' '
            ' WHERE x.indrelid = ''%s''::pg_catalog.regclass '
            '   AND x.indnatts = 1 AND x.indexprs IS NULL AND x.indpred IS NULL';
END
$fn$;
COMMENT ON FUNCTION pipeline._summarize_shards(regclass) IS
    'internal: summarizes the new ranges of the BRIN index on _pl_batch on every shard of a distributed day partition';

-- Distributes a source on a Citus cluster: its dedup ids and raw events
-- by event id, colocated, so that a shard's dedup and its raw rows are on
-- one worker; the events already stored move to the shards.  Day
-- partitions created later are distributed with the raw table.  Receipts,
-- dead letters, the catalogs and the metrics' hot, daily and correction
-- tables stay local tables of the coordinator (README "Scaling out").
CREATE FUNCTION pipeline.distribute_source(source text, shard_count integer DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    s pipeline.source_catalog;
BEGIN
    s := pipeline._source_of_owner(source, 'distribute', 'distribute');
    IF pg_catalog.to_regproc('pg_catalog.create_distributed_table') IS NULL THEN
        RAISE EXCEPTION 'distributing a source needs Citus'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Preload citus (shared_preload_libraries = ''citus,pg_cron,pipeline''), CREATE EXTENSION citus, add the worker nodes.';
    END IF;
    IF pipeline._distributed(s.raw_table) THEN
        RAISE EXCEPTION 'source "%" is distributed already', source USING ERRCODE = 'duplicate_object';
    END IF;
    IF shard_count IS NOT NULL AND shard_count < 1 THEN
        RAISE EXCEPTION 'shard_count must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pipeline._require_login(ARRAY[s.owner]
                                    || ARRAY(SELECT m.owner FROM pipeline.metric_catalog AS m WHERE m.source = s.source));
    -- every batch writes to every shard (ids are spread by hash): a batch
    -- costs a round trip per shard, so by default two shards per worker,
    -- enough to spread over twice as many workers later
    IF shard_count IS NULL THEN
        EXECUTE 'SELECT GREATEST(2, 2 * pg_catalog.count(*))::integer FROM pg_catalog.pg_dist_node AS n '
                'WHERE n.isactive AND n.noderole = ''primary'' AND n.shouldhaveshards AND n.groupid <> 0'
           INTO shard_count;
    END IF;
    EXECUTE 'SELECT pg_catalog.create_distributed_table($1, $2, shard_count => $3)'
      USING s.ids_table, 'event_id', shard_count;
    EXECUTE 'SELECT pg_catalog.create_distributed_table($1, $2, colocate_with => $3)'
      USING s.raw_table, s.event_id, s.ids_table::text;
END
$fn$;
COMMENT ON FUNCTION pipeline.distribute_source(text, integer) IS
    'distributes a source''s raw events and dedup ids on a Citus cluster, by event id, colocated';

-- The rows of the chunk an ingest is sending to a distributed source's
-- shards (src/raw_store.c, InsertDistributed): its INSERT ... SELECT reads
-- them here rather than from one array per column.  Outside that
-- statement it raises an error: there is no chunk.  (No SET clause: it
-- runs no SQL.)
CREATE FUNCTION pipeline._pending_rows() RETURNS SETOF record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'pipeline_pending_rows';
COMMENT ON FUNCTION pipeline._pending_rows() IS
    'internal: the rows of the chunk an ingest is sending to a distributed source''s shards';

CREATE FUNCTION pipeline._await_commits() RETURNS integer
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_await_commits';
COMMENT ON FUNCTION pipeline._await_commits() IS
    'internal: waits for the transactions that have committed but are still finishing their commit (Citus: on the workers), then, for a fold, the extension owner or a superuser, runs Citus''s recovery of commits that stopped half-way (any other caller only waits)';

-- The batches of a source that a snapshot saw, as a day computed or
-- corrected on a distributed source reads them on the workers, whatever
-- their own snapshots show: those below floor but the unseen ones, and the
-- seen ones from floor up (src/batch_registry.c).  Called after the
-- snapshot was taken; needs no receipt older than the oldest batch still
-- being written.
CREATE FUNCTION pipeline._batches_seen(source text, snap pg_snapshot,
                                       OUT floor bigint, OUT unseen bigint[], OUT seen bigint[])
    LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_batches_seen';
COMMENT ON FUNCTION pipeline._batches_seen(text, pg_snapshot) IS
    'internal: the batches of a source a snapshot saw: below a floor but a few, and a few above it';

-- The condition that a raw row's batch is one of those _batches_seen
-- returned, given as the texts of its three values (parameters of the
-- statement).  The lists are short, checked hashed, and kept out of the
-- index condition by the + 0.
CREATE FUNCTION pipeline._seen_on_workers(alias text, floor text, unseen text, seen text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.format(
        '((%1$I._pl_batch OPERATOR(pg_catalog.<) %2$s '
        '  AND (%1$I._pl_batch OPERATOR(pg_catalog.+) 0) OPERATOR(pg_catalog.<>) ALL (%3$s)) '
        ' OR (%1$I._pl_batch OPERATOR(pg_catalog.+) 0) OPERATOR(pg_catalog.=) ANY (%4$s))',
        alias, floor, unseen, seen);
COMMENT ON FUNCTION pipeline._seen_on_workers(text, text, text, text) IS
    'internal: the condition that a raw row''s batch is among those _batches_seen describes';

-- The fold statement of a metric of a distributed source: each distinct
-- measure whose argument type has a distinct_sketch_dist builds its
-- sketches with it, so that the whole aggregation runs on the workers (an
-- aggregate with an internal state makes Citus pull every row instead).
CREATE FUNCTION pipeline._distributed_fold_sql(fold_sql text, def jsonb) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    sql text := fold_sql;
    x jsonb;
BEGIN
    FOR x IN SELECT e FROM pg_catalog.jsonb_array_elements(def->'measures') AS e
              WHERE e->>'agg' = 'count_distinct'
    LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_proc AS p
                    WHERE p.pronamespace = 'pipeline'::regnamespace AND p.proname = 'distinct_sketch_dist'
                      AND p.proargtypes[0] = pg_catalog.to_regtype(x->>'arg_type')) THEN
            sql := pg_catalog.replace(sql, 'pipeline.distinct_sketch(' || (x->>'expr') || ')',
                                      'pipeline.distinct_sketch_dist(' || (x->>'expr') || ')');
        END IF;
    END LOOP;
    RETURN sql;
END
$fn$;
COMMENT ON FUNCTION pipeline._distributed_fold_sql(text, jsonb) IS
    'internal: a metric''s fold statement with the distinct sketches built by distinct_sketch_dist, for a distributed source';
