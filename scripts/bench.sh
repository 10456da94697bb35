#!/usr/bin/env bash
# `make bench`: runs the benchmarks with their peers side by side (a private PostgreSQL cluster,
# SQLite).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/siyu-bench.XXXXXX)
chmod 755 "$work"
# Below the kernel's ephemeral range (32768 and up), where a port may be a connection's.
port=$((20000 + RANDOM % 12000))
trap 'scripts/pg-cluster.sh stop "$work/pg" || true; rm -rf "$work"' EXIT
url=$(scripts/pg-cluster.sh start "$work/pg" "$port")
build/src/apps/siyu bench orders --pg "$url"
build/src/apps/siyu bench ingest --pg "$url"
# The issue's scale: 10 M people, 30 M ids (about 2 minutes and 6 GB at peak, most of it the
# in-memory SQLite peer). IDENTITY_ARGS="--people 1000000 --ids 3000000" for a quick run.
build/src/apps/siyu bench identity ${IDENTITY_ARGS:---people 10000000 --ids 30000000}
