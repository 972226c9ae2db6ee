#!/bin/sh
# End-to-end UI tests in headless Chromium against the real daemon
# (`carebridge demo`, and `carebridge run` for HTTPS). Installs what is
# missing (Debian chromium, npm deps), builds carebridge, runs the suite.
# Screenshots and budget figures land in target/e2e-screenshots/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null
    else
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null
    fi
fi
command -v node >/dev/null || { echo "e2e: node is required (apt-get install nodejs npm)" >&2; exit 1; }
cd "$here"
if [ ! -d node_modules/playwright-core ]; then
    # Never `npx playwright install`: Debian's chromium is the browser.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >/dev/null
fi
cd "$root"
cargo build --bin carebridge
target_dir=$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
export E2E_BIN="$target_dir/debug/carebridge"
export E2E_SHOTS="${E2E_SHOTS:-$target_dir/e2e-screenshots}"
cd "$here"
node --test --test-concurrency=1 e2e.test.mjs devauth.test.mjs field.test.mjs
