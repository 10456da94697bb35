#!/usr/bin/env bash
# Runs every test: unit tests (release and ASan+UBSan builds), integration tests against real
# `siyu serve` processes on SQLite and on a private PostgreSQL cluster, and the browser test in
# Debian's Chromium against `siyu demo`. Everything listens on loopback and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d /tmp/siyu-test.XXXXXX)
chmod 755 "$work"
# Below the kernel's ephemeral range (32768 and up), where a port may be a connection's.
pg_port=$((20000 + RANDOM % 12000))
demo_pid=""
cleanup() {
  [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null && wait "$demo_pid" 2>/dev/null || true
  scripts/pg-cluster.sh stop "$work/pg" || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== PostgreSQL 15 on 127.0.0.1:$pg_port"
export SIYU_TEST_PG_URL=$(scripts/pg-cluster.sh start "$work/pg" "$pg_port")

echo "== unit and integration tests (release build)"
ctest --test-dir build --output-on-failure -j 2 --timeout 600

echo "== unit tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j 2 --timeout 900

echo "== WeChat crypto cross-check with the npm peers (@wecom/crypto, wechat-crypto)"
SIYU_WECHAT_CLI="$root/build/src/domain/wechat/wechat_crypto_cli" node --test tests/wechat/

echo "== browser test (Chromium) against siyu demo"
# Port 0: the kernel picks a free port (a random one in the ephemeral range could be the local
# port of a connection at that moment); the demo prints the one it got.
build/src/apps/siyu demo --data "$work/demo" --port 0 --people 400 >"$work/demo.out" 2>"$work/demo.err" &
demo_pid=$!
for _ in $(seq 1 600); do
  grep -q "console: *http" "$work/demo.out" 2>/dev/null && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$work/demo.err"; exit 1; }
  sleep 0.2
done
grep -q "console: *http" "$work/demo.out" || { echo "demo did not start"; tail -20 "$work/demo.err"; exit 1; }
password=$(sed -n 's/.*login: *admin \/ *\([^ ]*\).*/\1/p' "$work/demo.out")
port=$(sed -n 's|.*console: *http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$work/demo.out" | head -1)
SIYU_URL="http://127.0.0.1:$port" SIYU_USER=admin SIYU_PASSWORD="$password" \
  SIYU_SCREENSHOT="$work/overview.png" node --test tests/browser/
