-- A database restored into another cluster: its checkpoints re-based.
--
-- The fold checkpoint of a metric and the freeze and correction snapshots
-- of a day are pg_snapshots: sets of transaction ids, compared with the
-- transaction id recorded on each receipt (batch_log.xid).  Transaction ids
-- mean something only in the cluster that gave them out.  pg_dump and
-- pg_restore into another cluster (a new initdb) carry the receipts and the
-- snapshots over with the old cluster's numbers, and the new cluster's
-- transactions have numbers of their own, smaller or larger: without care
-- a batch ingested after the restore would never be folded, or be taken as
-- folded already.
--
-- pipeline.cluster_identity records the cluster (its system identifier)
-- the numbers belong to, and is dumped with the data.  Every step that
-- writes or reads receipts against snapshots (ingest, the folds,
-- close_days, restate_day, maintain) first compares it with the running
-- cluster (src/restore.c).  On a difference, before anything else,
-- _rebase_after_restore renumbers, in one transaction under a lock that
-- holds off every other step:
--   - the receipts' transaction ids fall into classes: ids that every
--     recorded snapshot sees the same way (all between the same two
--     snapshot bounds, and none listed as in progress by a snapshot; an id
--     that some snapshot lists as in progress is a class of its own);
--   - each class gets a small id of its own (3, 4, ..., in the classes'
--     order), all below every transaction id running or to come;
--   - each snapshot is rewritten over the new ids so that it sees exactly
--     the classes it saw before, and nothing of the new cluster.
-- So every batch folded or corrected before the dump counts as folded or
-- corrected, every batch pending then is pending now, every batch after the
-- restore is new, and explain() still tells the events a freeze included
-- from its corrections.  Restoring into the same cluster, physical backups
-- and replicas keep the identifier and need none of this.  pg_upgrade gives
-- the cluster a new identifier with the same transaction ids: re-based
-- anyway, harmlessly.

CREATE TABLE pipeline.cluster_identity (
    one                boolean PRIMARY KEY DEFAULT true CHECK (one),
    system_identifier  bigint NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    rebased_from       bigint
);
COMMENT ON TABLE pipeline.cluster_identity IS
    'the cluster whose transaction ids the receipts and snapshots are numbered in (its system identifier); '
    'a different one after a restore into another cluster, until pipeline re-bases them';
GRANT SELECT ON pipeline.cluster_identity TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pipeline.cluster_identity', '');

-- The re-base's working tables: a transaction id's class, and one id of
-- each class.  Written only during a re-base, by the extension owner
-- (whose restricted context allows no temporary table), and empty again
-- when it commits.
CREATE UNLOGGED TABLE pipeline.rebase_ids (old xid8 PRIMARY KEY, class bigint NOT NULL);
CREATE UNLOGGED TABLE pipeline.rebase_classes (class bigint PRIMARY KEY, sample xid8 NOT NULL);
COMMENT ON TABLE pipeline.rebase_ids IS 'internal: empty but during a re-base (src/sql/67_restore.sql)';
COMMENT ON TABLE pipeline.rebase_classes IS 'internal: empty but during a re-base (src/sql/67_restore.sql)';

CREATE FUNCTION pipeline._system_identifier() RETURNS bigint
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_system_identifier';
COMMENT ON FUNCTION pipeline._system_identifier() IS
    'internal: the running cluster''s system identifier (pg_control)';

-- How many new ids a re-base needs: one per class of receipt ids.
CREATE FUNCTION pipeline._rebase_classes(OUT xid8 xid8, OUT class bigint)
    RETURNS SETOF record
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
    WITH snaps AS (
        SELECT m.fold_snapshot AS s FROM pipeline.metric_catalog AS m
        UNION ALL SELECT c.frozen_snapshot FROM pipeline.day_closures AS c WHERE c.frozen_snapshot IS NOT NULL
        UNION ALL SELECT c.corrected_snapshot FROM pipeline.day_closures AS c WHERE c.corrected_snapshot IS NOT NULL),
    bounds AS (
        SELECT pg_catalog.array_agg(DISTINCT b.v ORDER BY b.v) AS v
          FROM (SELECT pg_catalog.pg_snapshot_xmin(x.s)::text::numeric AS v FROM snaps AS x
                UNION ALL SELECT pg_catalog.pg_snapshot_xmax(x.s)::text::numeric FROM snaps AS x) AS b),
    listed AS (
        SELECT DISTINCT i AS xid8 FROM snaps AS x, pg_catalog.pg_snapshot_xip(x.s) AS i),
    ids AS (
        SELECT DISTINCT b.xid AS xid8 FROM pipeline.batch_log AS b),
    -- (a join, not a subquery per id: there may be millions of receipts)
    keyed AS (
        SELECT ids.xid8,
               CASE WHEN l.xid8 IS NOT NULL THEN ids.xid8::text::numeric END AS own,
               pg_catalog.width_bucket(ids.xid8::text::numeric, COALESCE(bounds.v, '{0}')) AS bucket
          FROM ids CROSS JOIN bounds
          LEFT JOIN listed AS l ON l.xid8 = ids.xid8)
    SELECT k.xid8,
           pg_catalog.dense_rank() OVER (ORDER BY k.bucket, k.own NULLS FIRST) - 1 AS class
      FROM keyed AS k
$fn$;
COMMENT ON FUNCTION pipeline._rebase_classes() IS
    'internal: each receipt transaction id with its class (0, 1, ...): ids every recorded snapshot sees alike';

-- The re-base itself, as the extension owner (src/restore.c); a no-op once
-- done, and the first time (no identity recorded yet) it records it.  Returns
-- the number of classes, or minus the number of transaction ids missing
-- below the running transaction's snapshot (src/restore.c makes room).
CREATE FUNCTION pipeline._rebase_after_restore(current_system bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $fn$
DECLARE
    recorded bigint;
    nclasses bigint;
    horizon numeric;
BEGIN
    -- one re-base at a time; everything else that touches receipts waits
    LOCK TABLE pipeline.batch_log IN EXCLUSIVE MODE;
    SELECT i.system_identifier INTO recorded FROM pipeline.cluster_identity AS i FOR UPDATE;
    IF recorded IS NULL THEN
        INSERT INTO pipeline.cluster_identity (system_identifier) VALUES (current_system)
            ON CONFLICT ON CONSTRAINT cluster_identity_pkey DO NOTHING;
        RETURN 0;
    END IF;
    IF recorded = current_system THEN
        RETURN 0;
    END IF;

    INSERT INTO pipeline.rebase_ids SELECT * FROM pipeline._rebase_classes();
    INSERT INTO pipeline.rebase_classes SELECT r.class, pg_catalog.min(r.old) FROM pipeline.rebase_ids AS r GROUP BY r.class;
    SELECT pg_catalog.count(*) INTO nclasses FROM pipeline.rebase_classes;
    -- the new ids, 3 .. 3 + nclasses - 1, must all be older than every
    -- transaction running now or to come
    horizon := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::numeric;
    IF 3 + nclasses > horizon THEN
        TRUNCATE pipeline.rebase_ids, pipeline.rebase_classes;
        RETURN -(3 + nclasses - horizon + 1);
    END IF;

    UPDATE pipeline.batch_log AS b SET xid = (3 + r.class)::text::xid8
      FROM pipeline.rebase_ids AS r WHERE r.old = b.xid;
    UPDATE pipeline.metric_catalog AS m SET fold_snapshot = pipeline._rebase_snapshot(m.fold_snapshot);
    UPDATE pipeline.day_closures AS c
       SET frozen_snapshot = pipeline._rebase_snapshot(c.frozen_snapshot),
           corrected_snapshot = pipeline._rebase_snapshot(c.corrected_snapshot)
     WHERE c.frozen_snapshot IS NOT NULL OR c.corrected_snapshot IS NOT NULL;
    UPDATE pipeline.cluster_identity
       SET system_identifier = current_system, recorded_at = pg_catalog.now(), rebased_from = recorded;
    TRUNCATE pipeline.rebase_ids, pipeline.rebase_classes;
    RAISE LOG 'pipeline: receipts and snapshots re-based from cluster % to cluster % (% classes of transaction ids)',
        recorded, current_system, nclasses;
    RETURN nclasses;
END
$fn$;
COMMENT ON FUNCTION pipeline._rebase_after_restore(bigint) IS
    'internal: renumbers the receipts'' transaction ids and the recorded snapshots of a database restored into '
    'another cluster (see src/sql/67_restore.sql)';

-- A recorded snapshot over the new ids (pipeline.rebase_classes, filled by
-- _rebase_after_restore): the classes it saw, and nothing newer.  One id
-- of a class stands for all of them: a snapshot sees them all alike.
CREATE FUNCTION pipeline._rebase_snapshot(s pg_snapshot) RETURNS pg_snapshot
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
    WITH classes AS (
        SELECT r.class, pg_catalog.pg_visible_in_snapshot(r.sample, s) AS seen
          FROM pipeline.rebase_classes AS r),
    edges AS (
        SELECT COALESCE(pg_catalog.min(c.class) FILTER (WHERE NOT c.seen), pg_catalog.max(c.class) + 1, 0) AS lo,
               COALESCE(pg_catalog.max(c.class) FILTER (WHERE c.seen) + 1, 0) AS hi
          FROM classes AS c)
    SELECT CASE WHEN s IS NULL THEN NULL ELSE
           pg_catalog.format('%s:%s:%s', 3 + LEAST(e.lo, e.hi), 3 + e.hi,
               (SELECT COALESCE(pg_catalog.string_agg((3 + c.class)::text, ',' ORDER BY c.class), '')
                  FROM classes AS c
                 WHERE NOT c.seen AND c.class >= LEAST(e.lo, e.hi) AND c.class < e.hi))::pg_snapshot END
      FROM edges AS e
$fn$;
COMMENT ON FUNCTION pipeline._rebase_snapshot(pg_snapshot) IS
    'internal: one recorded snapshot over the re-based transaction ids';

CREATE FUNCTION pipeline._check_restored() RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_check_restored';
COMMENT ON FUNCTION pipeline._check_restored() IS
    'internal: re-bases the receipts and snapshots first if this database was restored into another cluster';

REVOKE EXECUTE ON FUNCTION pipeline._rebase_after_restore(bigint) FROM PUBLIC;
