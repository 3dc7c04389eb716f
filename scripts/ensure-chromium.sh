#!/usr/bin/env bash
# Makes sure a headless Chromium exists for the panel's browser tests. When none
# is found and we run as root, installs Debian's chromium package (the tests
# start it with --no-sandbox when running as root). ANTACA_CHROMIUM names a
# binary to use instead.
set -euo pipefail
if [ -n "${ANTACA_CHROMIUM:-}" ] && [ -x "${ANTACA_CHROMIUM}" ]; then exit 0; fi
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: no Chromium found; installing the chromium package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >&2
  exit 0
fi
echo "ensure-chromium: no Chromium found; install the chromium package or set ANTACA_CHROMIUM" >&2
exit 1
