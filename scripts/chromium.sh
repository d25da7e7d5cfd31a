#!/usr/bin/env bash
# Makes sure a headless Chromium is there for the console's browser test
# (test/integration/console.test.ts) and prints its path on stdout.
#
# Order: $CHROMIUM_BIN; /usr/bin/chromium; else Debian's `chromium` package is installed
# (apt-get, as root or through sudo; the package index is refreshed once if the first try
# fails). Nothing is downloaded from anywhere else: playwright-core drives this binary.
set -euo pipefail

log() { printf '[chromium.sh] %s\n' "$*" >&2; }

for candidate in "${CHROMIUM_BIN:-}" /usr/bin/chromium /usr/bin/chromium-browser \
  "/Applications/Chromium.app/Contents/MacOS/Chromium" "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    echo "$candidate"
    exit 0
  fi
done

if ! command -v apt-get >/dev/null 2>&1; then
  log "no Chromium found, and no apt-get to install Debian's package: install Chromium or Chrome, or set CHROMIUM_BIN."
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  log "no Chromium found and no way to install one (not root, no password-less sudo)."
  log "install Debian's chromium package, or set CHROMIUM_BIN to a Chromium binary; the console's browser test needs it."
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log "installing Debian's chromium package (once per machine)"
if ! $SUDO apt-get install -y -q chromium >&2; then
  log "refreshing the package index and trying again"
  $SUDO apt-get update -q >&2
  $SUDO apt-get install -y -q chromium >&2
fi
command -v chromium >/dev/null 2>&1 || { log "the chromium package installed no chromium binary"; exit 1; }
command -v chromium
