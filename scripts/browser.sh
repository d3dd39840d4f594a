#!/usr/bin/env bash
# The browser tests drive Debian's Chromium with Playwright (never `playwright install`: it downloads
# and fails offline). Installs the `chromium` package when /usr/bin/chromium is missing.
set -euo pipefail
CHROMIUM=${FERRY_CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] && exit 0
[ "${FERRY_SKIP_BROWSER:-}" = "1" ] && { echo "ferry: no Chromium; browser tests skipped (FERRY_SKIP_BROWSER=1)"; exit 0; }
SUDO=""
[ "$(id -u)" = "0" ] || SUDO="sudo -n"
echo "ferry: installing Debian's chromium for the browser tests (apt-get; log: .ferry/chromium-install.log)"
mkdir -p .ferry
if ! { $SUDO apt-get install -y --no-install-recommends chromium || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends chromium; }; } > .ferry/chromium-install.log 2>&1; then
  tail -n 20 .ferry/chromium-install.log >&2
  echo "ferry: could not install chromium (needs root or passwordless sudo). Install it (apt-get install chromium)," \
       "point FERRY_CHROMIUM at a Chromium binary, or set FERRY_SKIP_BROWSER=1 to skip the browser tests." >&2
  exit 2
fi
