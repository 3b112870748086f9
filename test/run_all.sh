#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine or a developer's:
# installs missing packages, builds with -Werror, installs, starts a
# throwaway cluster with shared_preload_libraries = 'pg_cron,pipeline',
# runs pg_regress (sql/), the isolation specs (test/isolation/) and the TAP
# tests (test/t/), stops the cluster, runs the benchmarks at smoke size
# (test/bench/run.sh --smoke: every benchmark's code path, on its own
# cluster) and prints "N passed, N failed".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"

ensure_packages
build_and_install "$top"
# Citus, for test/t/090_citus.pl: the vendored build when the shared tree
# is there (it does nothing once citus.so is installed); without it the
# test uses an installed Citus or skips
if [ -f "$top/../shared/vendor/citus/install.sh" ] && [ ! -f "$PGBIN/../lib/citus.so" ]; then
    echo "== installing Citus from ../shared/vendor/citus (once)"
    as_root env PG_CONFIG=$PGBIN/pg_config bash "$top/../shared/vendor/citus/install.sh"
fi

work=$(make_workdir test)
data=$work/data
port=${PIPELINE_TEST_PORT:-55432}
cp -r "$top/sql" "$top/expected" "$top/test" "$work/"
[ "$(id -u)" = 0 ] && chown -R "$(cluster_user)" "$work"

cleanup() { stop_cluster "$data"; }
trap cleanup EXIT

echo "== starting a throwaway cluster in $work"
# pg_regress checks folds step by step with run_hot(); the background
# worker would race it, so it stays idle here (the TAP tests run it)
start_cluster "$data" "$port" "pipeline.enabled = off"

passed=0
failed=0
failures=()

# --- pg_regress -------------------------------------------------------
tests=$(cd "$work/sql" && ls *.sql | sed 's/\.sql$//' | sort)
echo "== pg_regress"
set +e
as_cluster_user $PGXS_DIR/src/test/regress/pg_regress \
    --bindir=$PGBIN --host="$work" --port="$port" \
    --inputdir="$work" --outputdir="$work/regress" \
    --dbname=pipeline_regress $tests > "$work/regress.out" 2>&1
rc=$?
set -e
mkdir -p "$work/regress"
cat "$work/regress.out"
p=$(grep -cE '\.\.\. ok' "$work/regress.out" || true)
f=$(grep -cE 'FAILED|failed \(ignored\)' "$work/regress.out" || true)
# pg_regress can stop before running every test (a missing expected file):
# its exit status counts even when no line says FAILED
[ $rc != 0 ] && [ "$f" = 0 ] && f=1
passed=$((passed + p)); failed=$((failed + f))
if [ $rc != 0 ] || [ -s "$work/regress/regression.diffs" ]; then
    failures+=("pg_regress")
    echo "== regression.diffs"; cat "$work/regress/regression.diffs"
fi

# --- isolation ---------------------------------------------------------
if [ -d "$work/test/isolation/specs" ]; then
    specs=$(cd "$work/test/isolation/specs" && ls *.spec | sed 's/\.spec$//' | sort)
    echo "== pg_isolation_regress"
    set +e
    as_cluster_user $PGXS_DIR/src/test/isolation/pg_isolation_regress \
        --bindir=$PGBIN --host="$work" --port="$port" \
        --inputdir="$work/test/isolation" --outputdir="$work/isolation" \
        --dbname=pipeline_isolation $specs > "$work/isolation.out" 2>&1
    rc=$?
    set -e
    cat "$work/isolation.out"
    p=$(grep -cE '\.\.\. ok' "$work/isolation.out" || true)
    f=$(grep -cE 'FAILED' "$work/isolation.out" || true)
    [ $rc != 0 ] && [ "$f" = 0 ] && f=1
    passed=$((passed + p)); failed=$((failed + f))
    if [ $rc != 0 ] || [ -s "$work/isolation/regression.diffs" ]; then
        failures+=("isolation")
        echo "== isolation regression.diffs"; cat "$work/isolation/regression.diffs"
    fi
fi

stop_cluster "$data"

# --- TAP -----------------------------------------------------------------
echo "== TAP (test/t)"
as_cluster_user mkdir -p "$work/tap"
for t in $(cd "$work/test/t" && ls *.pl | sort); do
    set +e
    ( cd "$work/test" && as_cluster_user env PATH="$PGBIN:$PATH" \
        PG_REGRESS=$PGXS_DIR/src/test/regress/pg_regress \
        TESTDIR="$work/tap" \
        PERL5LIB="$PGXS_DIR/src/test/perl:$work/test/perl" \
        prove "t/$t" ) > "$work/tap-$t.out" 2>&1
    rc=$?
    set -e
    if [ $rc = 0 ]; then
        passed=$((passed + 1)); echo "ok      $t"
    else
        failed=$((failed + 1)); failures+=("$t"); echo "FAILED  $t"
        cat "$work/tap-$t.out"
        for log in "$work"/tap/tmp_check/log/*; do
            [ -f "$log" ] || continue
            echo "---- $log (last 40 lines)"; tail -n 40 "$log"
        done
    fi
done

# --- benchmarks, smoke size ----------------------------------------------
# the figures mean nothing at this size; what counts is that every
# benchmark still runs and its own checks pass
echo "== benchmarks (test/bench/run.sh --smoke)"
set +e
PIPELINE_BENCH_SKIP_BUILD=1 bash "$top/test/bench/run.sh" --smoke > "$work/bench-smoke.out" 2>&1
rc=$?
set -e
if [ $rc = 0 ]; then
    passed=$((passed + 1)); echo "ok      bench --smoke"
else
    failed=$((failed + 1)); failures+=("bench --smoke"); echo "FAILED  bench --smoke"
    cat "$work/bench-smoke.out"
fi

echo
[ ${#failures[@]} -gt 0 ] && echo "failing: ${failures[*]}  (files kept in $work)"
[ $failed = 0 ] && [ ${#failures[@]} = 0 ] && rm -rf "$work"
echo "$passed passed, $failed failed"
[ $failed = 0 ] && [ ${#failures[@]} = 0 ]
