#!/usr/bin/env bash
# Starts or stops a private PostgreSQL 15 cluster on loopback for tests and benchmarks.
#   scripts/pg-cluster.sh start DIR PORT   → prints the connection URL
#   scripts/pg-cluster.sh stop DIR
# As root, the cluster runs as the `postgres` user (initdb refuses root).
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?directory}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -n "$bin" ] || { echo "PostgreSQL server binaries not found; run 'make deps'" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
case "$cmd" in
  start)
    port=${3:?port}
    mkdir -p "$dir/sock"
    [ "$(id -u)" = 0 ] && chown -R postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg "$bin/initdb -D '$dir/data' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    as_pg "$bin/pg_ctl -D '$dir/data' -l '$dir/pg.log' -w -t 60 \
      -o \"-c listen_addresses=127.0.0.1 -p $port -k '$dir/sock' -c fsync=on -c max_connections=200 -c shared_buffers=256MB\" start" >/dev/null \
      || { cat "$dir/pg.log" >&2; exit 1; }
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -f "$dir/data/postmaster.pid" ] && as_pg "$bin/pg_ctl -D '$dir/data' -m fast -w stop" >/dev/null || true
    ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
