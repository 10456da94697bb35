#!/usr/bin/env bash
# Installs what siyu needs to build, test and run on Debian 12: apt packages (only the missing
# ones) and the console's npm packages (only when the lockfile changed). Idempotent and quiet when
# everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_pkgs=(
  g++ cmake ninja-build ccache pkg-config make git
  libboost1.81-dev libboost-json1.81-dev libsqlite3-dev sqlite3 libpq-dev libssl-dev libargon2-dev libcurl4-openssl-dev
  libspdlog-dev libfmt-dev libcli11-dev libhowardhinnant-date-dev libpugixml-dev tzdata
  libqrencode-dev zlib1g-dev libpng-dev libzbar-dev
  libxxhash-dev
  libroaring-dev
  libmimalloc-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  postgresql postgresql-client
  chromium fonts-noto-cjk
)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# npm projects: reinstall only when package-lock.json changed since the last install.
for dir in console tests/browser tests/wechat; do
  [ -f "$dir/package-lock.json" ] || continue
  stamp="$dir/node_modules/.siyu-lock-sha"
  sha=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sha" ]; then
    echo "deps: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$sha" > "$stamp"
  fi
done
