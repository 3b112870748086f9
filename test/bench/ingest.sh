# test/bench/ingest.sh: the ingest benchmark, sourced by test/bench/run.sh
# (which provides bench_psql, bench_report, $work, $SMOKE).
#
# Measures events/s of pipeline.ingest() into a source `orders`, for JSON
# arrays (jsonb form) of 100, 1000 and 10000 events per call and NDJSON
# (text form) of 10000 and 100000 lines per call (the bulk path for now),
# each against the baseline of COPY of the same rows (CSV, server-side
# file) into a plain table with the same columns and PRIMARY KEY (order_id).
# Also a realistic wide event (source `events`: ten typed fields and a
# jsonb object of properties, about 400 bytes of JSON) in 10000-event jsonb
# batches and 10000-line NDJSON batches, against COPY into a table with its
# columns and PRIMARY KEY.
# Also the backend's peak private memory for the 10000-event jsonb batches
# and the 100000-line NDJSON ones, against COPY's.
#
# Sizes: 500,000 events per measurement (PIPELINE_BENCH_EVENTS overrides),
# each measurement done 3 times (PIPELINE_BENCH_REPEAT), the table shows
# the median time and the highest memory; about 1.5 minutes on 2 cores.
# --smoke: 5,000 events, batch sizes scaled down to fit, done once.
#
# Each batch size gets its own payloads and CSV (order_ids offset per batch
# size).  Each timed load: a fresh source (drop_source + create_source) or
# a fresh COPY table, so no event is ever a duplicate (the receipts are
# checked: everything accepted), VACUUM ANALYZE + CHECKPOINT before it, and
# a new session (so the memory figure is that load's alone).  Details of
# the timed part: ingest.sql.

ORDERS_COLUMNS="order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL, amount numeric(12,2) CHECK (amount >= 0), currency text NOT NULL DEFAULT 'EUR', platform text"
# the wide event (forms "wide" and "widendjson": jsonb and NDJSON batches of it): ten typed fields and free properties
WIDE_COLUMNS="event_id bigint NOT NULL, event_time timestamptz NOT NULL, event_type text NOT NULL, user_id text NOT NULL, session_id uuid, platform text, app_version text, country text, screen text, duration_ms integer, properties jsonb"

# largest of the arguments
largest() { printf '%s\n' "$@" | sort -g | tail -n 1; }

bench_ingest() {
    # form:batch size[:mem = also report peak memory]
    local n repeat specs spec form size mem run=0 rep nbatches copy_file label what src columns id copy_table
    local out ev secs peak rows csecs cpeak memory=() fields
    local all_secs all_peak all_csecs all_cpeak
    if [ "$SMOKE" = 1 ]; then
        n=${PIPELINE_BENCH_EVENTS:-5000}
        repeat=${PIPELINE_BENCH_REPEAT:-1}
        specs="jsonb:100 jsonb:1000 jsonb:2500:mem ndjson:2500 ndjson:5000:mem load:0:mem wide:2500 widendjson:2500"
    else
        n=${PIPELINE_BENCH_EVENTS:-500000}
        repeat=${PIPELINE_BENCH_REPEAT:-3}
        specs="jsonb:100 jsonb:1000 jsonb:10000:mem ndjson:10000 ndjson:100000:mem load:0:mem wide:10000 widendjson:10000"
    fi
    copy_file=$work/orders.csv

    bench_psql -d postgres -c "CREATE DATABASE bench"
    bench_psql -d bench -c "CREATE EXTENSION pipeline CASCADE"
    echo "   generating $n events; each load $repeat time(s)"
    bench_psql -d bench -v n="$n" -f - < "$here/ingest.sql"

    for spec in $specs; do
        IFS=: read -r form size mem <<< "$spec"
        run=$((run + 1))
        # the bulk path (load) reads the baseline's CSV file; batches unused
        if [ "$form" = wide ] || [ "$form" = widendjson ]; then
            src=events columns=$WIDE_COLUMNS id=event_id copy_table=bench.create_wide_copy_table
            nbatches=$(bench_psql -d bench -At -c "SELECT bench.prepare_wide($size, $((run * 1000000000)), '$copy_file', '$( [ "$form" = wide ] && echo jsonb || echo ndjson)')")
        else
            src=orders columns=$ORDERS_COLUMNS id=order_id copy_table=bench.create_copy_table
            nbatches=$(bench_psql -d bench -At \
                -c "SELECT bench.prepare('$( [ "$form" = load ] && echo ndjson || echo "$form")', $( [ "$form" = load ] && echo "$n" || echo "$size"), $((run * 1000000000)), '$copy_file')")
        fi
        all_secs=() all_peak=() all_csecs=() all_cpeak=()

        for rep in $(seq "$repeat"); do
            bench_psql -d bench \
                -c "SELECT pipeline.drop_source('$src') FROM pipeline.sources WHERE source = '$src'" \
                -c "SELECT pipeline.create_source('$src', \$\$$columns\$\$, event_id => '$id')" \
                -c "DROP TABLE IF EXISTS bench.orders_copy" \
                -c "SELECT $copy_table('orders_copy')" \
                -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
            out=$(bench_psql -d bench -At -F'|' -c "CALL bench.run_ingest('$src', '$(case $form in wide) echo jsonb ;; widendjson) echo ndjson ;; *) echo "$form" ;; esac)', '$copy_file')")
            IFS='|' read -r ev secs peak <<< "$out"

            bench_psql -d bench -c "VACUUM ANALYZE" -c "CHECKPOINT"
            out=$(bench_psql -d bench -At -F'|' -c "CALL bench.run_copy('orders_copy', '$copy_file')")
            IFS='|' read -r rows csecs cpeak <<< "$out"

            if [ "$ev" != "$n" ] || [ "$rows" != "$n" ]; then
                echo "ingest benchmark $form:$size: $ev events ingested, $rows rows copied, expected $n" >&2
                return 1
            fi
            if [ "$form" = load ]; then
                printf '   %-34s' "bulk: one COPY into orders_load"
            else
                printf '   %-6s %6d-event batches x %-5d' "$form" "$size" "$nbatches"
            fi
            printf ' pipeline %6.2f s  peak %6.1f MB   COPY %5.2f s  peak %4.1f MB\n' \
                "$secs" "$(awk "BEGIN{print $peak / 1024}")" "$csecs" "$(awk "BEGIN{print $cpeak / 1024}")"
            all_secs+=("$secs") all_peak+=("$peak") all_csecs+=("$csecs") all_cpeak+=("$cpeak")
        done
        bench_psql -d bench -c "SELECT pipeline.drop_source('$src')" \
                            -c "DROP TABLE bench.orders_copy" >/dev/null

        secs=$(median "${all_secs[@]}") csecs=$(median "${all_csecs[@]}")
        peak=$(largest "${all_peak[@]}") cpeak=$(largest "${all_cpeak[@]}")
        if [ "$form" = wide ]; then
            label="ingest jsonb wide events, $size-event batches"; what="jsonb wide $size-event batches"
        elif [ "$form" = widendjson ]; then
            label="ingest ndjson wide events, $size-line batches"; what="ndjson wide $size-line batches"
        elif [ "$form" = jsonb ]; then
            label="ingest jsonb, $size-event batches"; what="jsonb $size-event batches"
        elif [ "$form" = load ]; then
            label="bulk path: COPY csv into orders_load"; what="bulk path (COPY into _load)"
        else
            label="ingest ndjson text, $size-line batches"; what="ndjson $size-line batches"
        fi
        bench_report "$label" \
            "$(awk "BEGIN{print $n / $secs}")" "ev/s" "$(awk "BEGIN{print $n / $csecs}")" "rows/s"
        if [ "$mem" = mem ]; then
            memory+=("peak memory, $what"$'\t'"$(awk "BEGIN{print $peak / 1024}")"$'\t'"MB"$'\t'"$(awk "BEGIN{print $cpeak / 1024}")"$'\t'"MB")
        fi
    done

    # memory rows after the throughput ones
    local line
    for line in "${memory[@]}"; do
        IFS=$'\t' read -r -a fields <<< "$line"
        bench_report "${fields[@]}"
    done
}
