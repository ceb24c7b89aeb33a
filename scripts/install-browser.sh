#!/usr/bin/env bash
# Debian's chromium for the dashboard's real-browser test (Playwright drives it by path).
# Idempotent and quiet: does nothing when `chromium` is already on PATH; apt's output is shown only
# when the installation fails.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-browser: chromium is missing and installing it needs root (apt-get install chromium)" >&2
        exit 1
    fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt=($SUDO env DEBIAN_FRONTEND=noninteractive apt-get)
if ! { "${apt[@]}" update -qq && "${apt[@]}" install -y -qq chromium; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-browser: apt-get install chromium failed" >&2
    exit 1
fi
command -v chromium >/dev/null 2>&1 || { echo "install-browser: chromium is still not on PATH" >&2; exit 1; }
