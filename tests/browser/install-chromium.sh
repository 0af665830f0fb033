#!/usr/bin/env bash
# Installs what the dashboard tests drive: Debian's chromium at /usr/bin/chromium (Playwright
# cannot download its own browser here). Does nothing when it is there, or when
# CONVEYOR_CHROMIUM names another one. `make test` and `make browser` run it first.
set -euo pipefail

chromium="${CONVEYOR_CHROMIUM:-/usr/bin/chromium}"
[ -x "$chromium" ] && exit 0
fail() {
    echo "tests/browser/install-chromium.sh: $*" >&2
    exit 1
}
[ "$(id -u)" -eq 0 ] || fail "$chromium is missing and installing it needs root: run 'sudo apt-get install -y chromium' (or set CONVEYOR_CHROMIUM), then rerun"
command -v apt-get >/dev/null 2>&1 || fail "$chromium is missing and there is no apt-get: install Chromium and set CONVEYOR_CHROMIUM to it"
echo "--- installing chromium (Debian) for the dashboard tests"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
[ -x "$chromium" ] || fail "apt-get installed chromium, but $chromium is not there"
