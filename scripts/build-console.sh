#!/usr/bin/env bash
# Builds the web console into console/dist when its sources changed since the last build.
set -euo pipefail
cd "$(dirname "$0")/../console"
stamp=dist/.siyu-src-sha
sha=$(find src index.html package-lock.json vite.config.* -type f 2>/dev/null | sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sha" ]; then exit 0; fi
echo "console: building"
npm run build --silent >/tmp/siyu-console-build.log 2>&1 || { cat /tmp/siyu-console-build.log; exit 1; }
echo "$sha" > "$stamp"
