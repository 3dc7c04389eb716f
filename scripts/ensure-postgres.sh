#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries exist (initdb, postgres). When none are
# found and we run as root, installs Debian's postgresql package. Nothing is
# started here: the Go code starts its own clusters.
set -euo pipefail
if [ -n "${DATABASE_URL:-}" ]; then exit 0; fi
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-postgres: no PostgreSQL binaries found; installing the postgresql package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q postgresql >&2
  # Debian starts a cluster of its own on install; we run ours, so stop it.
  (service postgresql stop || pg_ctlcluster --help >/dev/null) >/dev/null 2>&1 || true
  exit 0
fi
echo "ensure-postgres: no PostgreSQL binaries (initdb) found; install PostgreSQL or set DATABASE_URL" >&2
exit 1
