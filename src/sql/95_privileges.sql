-- What PUBLIC may not execute.  The halves that run as the extension owner
-- (<step>_as_owner: src/as_owner.c calls them after reading the real
-- caller) and the steps of close_days and restate_day, which write the
-- extension owner's tables and are only ever run as that owner.  The
-- other internal functions build SQL text or check input, run with their
-- caller's own privileges, and are called by the public functions that
-- run as the caller (create_metric, evolve_source, ...), so they stay
-- executable.  test/t/055_privilege_holes.pl lists what PUBLIC can run.
REVOKE EXECUTE ON FUNCTION
    pipeline._register_source_as_owner(regrole, text, text, text, text, interval, interval, text),
    pipeline._unregister_source_as_owner(regrole, text),
    pipeline._create_load_table_as_owner(regrole, text),
    pipeline._register_metric_as_owner(regrole, text, text, text[], text, interval, text, interval),
    pipeline._unregister_metric_as_owner(regrole, text),
    pipeline._store_check_as_owner(regrole, text, text, text, text, jsonb, text),
    pipeline._delete_check_as_owner(regrole, text),
    pipeline._record_check_result_as_owner(regrole, text, bigint, timestamptz, text, numeric, numeric, text),
    pipeline._record_contract_as_owner(regrole, text, integer, text, text, text, text),
    pipeline._replay_one_as_owner(regrole, bigint),
    pipeline._store_retention_as_owner(regrole, text, interval, interval, interval),
    pipeline._maintain_as_owner(regrole, timestamptz),
    pipeline._retire_day_as_source_owner(text, date),
    pipeline._compute_day(pipeline.metric_catalog, date, text, timestamptz),
    pipeline._correct_day(pipeline.metric_catalog, pipeline.day_closures),
    pipeline._batches_seen(text, pg_snapshot),
    pipeline._summarize_shards(regclass),
    pipeline._index_day_values(pipeline.metric_catalog, pipeline.source_catalog, regclass),
    pipeline._start_index_builder(),
    pipeline._value_index_next(),
    pipeline._value_index_failed(oid, text, text)
  FROM PUBLIC;
