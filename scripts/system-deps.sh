#!/usr/bin/env bash
# System packages the test suite needs beyond Python: Debian's chromium (the report test renders
# report.html headless) and curl (shards streamed over http). Idempotent: returns at once when everything is present. Needs root to install;
# without root, or when apt-get fails, it only says what is missing (the tests then skip, or fail under CI=true).
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
command -v curl >/dev/null 2>&1 || missing+=(curl)  # WebDataset shards at http(s):// URLs stream through curl

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing ${missing[*]}; run as root (or: sudo apt-get install -y ${missing[*]})" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: missing ${missing[*]} and no apt-get; install them with your package manager" >&2
    exit 0
fi
echo "system-deps: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq >/dev/null && \
   apt-get install -y -qq --no-install-recommends "${missing[@]}" fonts-dejavu-core >/dev/null; then
    echo "system-deps: installed ${missing[*]}" >&2
else
    # Not fatal here: the tests that need it skip with the reason (and fail under CI=true).
    echo "system-deps: could not install ${missing[*]} (no network or package source?)" >&2
fi
