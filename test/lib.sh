# test/lib.sh: shared by the test, demo and benchmark commands.
#
# Installs what a fresh Debian 12 machine lacks, builds and installs the
# extension, and runs a throwaway PostgreSQL 15 cluster as a non-root OS
# user (the `postgres` user the Debian packages create, when we are root).

PG_MAJOR=15
# PIPELINE_PG_PREFIX: a relocated copy of the Debian packages' tree (its
# usr/lib/postgresql and usr/share/postgresql), to build, install and test
# against without touching the system's; empty for the system's own
PGBIN=${PIPELINE_PG_PREFIX:-}/usr/lib/postgresql/$PG_MAJOR/bin
PGXS_DIR=${PIPELINE_PG_PREFIX:-}/usr/lib/postgresql/$PG_MAJOR/lib/pgxs
PACKAGES="postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-$PG_MAJOR-cron
          libipc-run-perl make gcc libc6-dev binutils"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# The OS user that owns clusters: never root.
cluster_user() {
    if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi
}

as_cluster_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_packages() {
    local missing=()
    for p in $PACKAGES "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

build_and_install() {
    local top=$1
    echo "== building (warnings are errors)"
    make -C "$top" -s PG_CONFIG=$PGBIN/pg_config clean >/dev/null
    make -C "$top" -s PG_CONFIG=$PGBIN/pg_config
    as_root make -C "$top" -s PG_CONFIG=$PGBIN/pg_config install >/dev/null
}

# A directory the cluster user owns.
make_workdir() {
    local d
    d=$(mktemp -d "/tmp/pipeline-$1.XXXXXX")
    chmod 755 "$d"
    [ "$(id -u)" = 0 ] && chown "$(cluster_user)" "$d"
    echo "$d"
}

# The settings every pipeline cluster runs with.
cluster_conf() {
    cat <<CONF
shared_preload_libraries = 'pg_cron,pipeline'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 32
listen_addresses = ''
fsync = off
CONF
}

# start_cluster DATADIR PORT [EXTRA_CONF]: initdb (once) and start, socket in DATADIR/..
start_cluster() {
    local data=$1 port=$2 extra=${3:-} sock
    sock=$(dirname "$data")
    if [ ! -f "$data/PG_VERSION" ]; then
        as_cluster_user $PGBIN/initdb -D "$data" -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
        cluster_conf | as_cluster_user tee -a "$data/postgresql.conf" >/dev/null
        echo "unix_socket_directories = '$sock'" | as_cluster_user tee -a "$data/postgresql.conf" >/dev/null
        echo "port = $port" | as_cluster_user tee -a "$data/postgresql.conf" >/dev/null
        [ -n "$extra" ] && echo "$extra" | as_cluster_user tee -a "$data/postgresql.conf" >/dev/null
    fi
    as_cluster_user $PGBIN/pg_ctl -D "$data" -l "$data/server.log" -w start >/dev/null
}

stop_cluster() {
    local data=$1
    [ -f "$data/postmaster.pid" ] && as_cluster_user $PGBIN/pg_ctl -D "$data" -m fast -w stop >/dev/null || true
}
