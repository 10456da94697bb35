#!/usr/bin/env bash
# `make bench`: runs the benchmarks with their peers side by side (a private PostgreSQL cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/siyu-bench.XXXXXX)
chmod 755 "$work"
port=$((20000 + RANDOM % 20000))
trap 'scripts/pg-cluster.sh stop "$work/pg" || true; rm -rf "$work"' EXIT
url=$(scripts/pg-cluster.sh start "$work/pg" "$port")
build/src/apps/siyu bench orders --pg "$url" "$@"
