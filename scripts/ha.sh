#!/usr/bin/env bash
# The replicated ledger on one machine: one etcd and two PostgreSQL 15 nodes
# under Patroni, synchronous_mode on (docs/operations.md).
#
#   scripts/ha.sh start [dir]   start (initialise on first use) and wait for a
#                               primary and a synchronous standby
#   scripts/ha.sh stop [dir]    stop Patroni (and its PostgreSQL) and etcd
#   scripts/ha.sh url [dir]     print the multi-host connection string
#   scripts/ha.sh status [dir]  patronictl list
#
# dir defaults to ./.data/ha. Ports (all below 32768) move together with
# HA_PORT_OFFSET (default 0): etcd 12379 (peers 12380), PostgreSQL 15441 and
# 15442, Patroni REST 18008 and 18009. HA_NODES=3 adds a third node (15443,
# 18010) for synchronous_mode_strict (HA_STRICT=1).
# As root, the Debian packages patroni, etcd-server and postgresql are
# installed when missing, and everything runs as the postgres user.
set -euo pipefail

cmd=${1:-}
dir=${2:-.data/ha}
off=${HA_PORT_OFFSET:-0}
nodes=${HA_NODES:-2}
strict=${HA_STRICT:-0}
etcd_port=$((12379 + off))
etcd_peer=$((12380 + off))
pg_port() { echo $((15440 + off + $1)); }
rest_port() { echo $((18007 + off + $1)); }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# spawn starts a command in the background as the postgres user; $! is its
# pid (runuser's when root: its child is the command).
spawn() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@" & else "$@" & fi
}

bin_dir() {
  for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    if [ -x "$d/postgres" ]; then echo "$d"; return; fi
  done
  return 1
}

ensure_packages() {
  local missing=()
  command -v patroni >/dev/null 2>&1 || missing+=(patroni)
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  bin_dir >/dev/null 2>&1 || missing+=(postgresql)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ha: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q "${missing[@]}" >&2
    # The packages start services of their own on install; we run ours.
    (service etcd stop; service patroni stop; service postgresql stop) >/dev/null 2>&1 || true
    return 0
  fi
  echo "ha: missing ${missing[*]}: install them (apt-get install patroni etcd-server postgresql) or run as root" >&2
  return 1
}

url() {
  local hosts=""
  for i in $(seq 1 "$nodes"); do hosts+="${hosts:+,}127.0.0.1:$(pg_port "$i")"; done
  echo "postgres://postgres@${hosts}/postgres?sslmode=disable&target_session_attrs=read-write&connect_timeout=2"
}

write_config() {
  local i=$1 bin=$2
  cat >"$dir/node$i.yml" <<EOF
scope: antaca
namespace: /antaca/
name: node$i
log:
  dir: $dir/node$i
  level: INFO
restapi:
  listen: 127.0.0.1:$(rest_port "$i")
  connect_address: 127.0.0.1:$(rest_port "$i")
etcd3:
  hosts: 127.0.0.1:$etcd_port
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 4
    maximum_lag_on_failover: 1048576
    primary_start_timeout: 0
    synchronous_mode: true
    synchronous_mode_strict: $([ "$strict" = 1 ] && echo true || echo false)
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_log_hints: 'on'
        max_connections: 200
        shared_buffers: 128MB
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 256MB
  initdb:
    - encoding: UTF8
    - locale: C
    - data-checksums
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication replicator 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:$(pg_port "$i")
  connect_address: 127.0.0.1:$(pg_port "$i")
  data_dir: $dir/node$i/data
  bin_dir: $bin
  pgpass: $dir/node$i/pgpass
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
    rewind:
      username: postgres
      password: postgres
  parameters:
    unix_socket_directories: $dir/node$i
tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
  nosync: false
EOF
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

http_ok() {
  if command -v curl >/dev/null 2>&1; then
    curl -sf -o /dev/null --max-time 2 "$1"
  else
    python3 -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" >/dev/null 2>&1
  fi
}

start() {
  ensure_packages
  local bin
  bin=$(bin_dir)
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  if ! alive "$dir/etcd.pid"; then
    as_pg mkdir -p "$dir/etcd"
    # A single etcd member: it is the DCS, not a replica of the data.
    spawn bash -c "exec etcd --name ha --data-dir '$dir/etcd' \
      --listen-client-urls http://127.0.0.1:$etcd_port --advertise-client-urls http://127.0.0.1:$etcd_port \
      --listen-peer-urls http://127.0.0.1:$etcd_peer --initial-advertise-peer-urls http://127.0.0.1:$etcd_peer \
      --initial-cluster ha=http://127.0.0.1:$etcd_peer --log-level warn" >>"$dir/etcd.log" 2>&1
    echo $! >"$dir/etcd.pid"
  fi
  for _ in $(seq 1 100); do http_ok "http://127.0.0.1:$etcd_port/health" && break; sleep 0.1; done
  for i in $(seq 1 "$nodes"); do
    if alive "$dir/node$i.pid"; then continue; fi
    as_pg mkdir -p "$dir/node$i"
    as_pg chmod 700 "$dir/node$i"
    write_config "$i" "$bin"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir/node$i.yml"; fi
    spawn patroni "$dir/node$i.yml" >>"$dir/node$i/patroni.out" 2>&1
    echo $! >"$dir/node$i.pid"
    sleep 1 # the first node bootstraps; the others clone from it
  done
  # Ready: a primary, and (two nodes or more) a synchronous standby.
  local deadline=$((SECONDS + 120)) primary="" sync=""
  while [ $SECONDS -lt $deadline ]; do
    primary="" sync=""
    for i in $(seq 1 "$nodes"); do
      http_ok "http://127.0.0.1:$(rest_port "$i")/primary" && primary=node$i
      http_ok "http://127.0.0.1:$(rest_port "$i")/sync" && sync=node$i
    done
    if [ -n "$primary" ] && { [ "$nodes" = 1 ] || [ -n "$sync" ]; }; then
      echo "ha: primary $primary, synchronous standby ${sync:-none}; $(url)" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "ha: no primary with a synchronous standby after 120 s; logs under $dir" >&2
  return 1
}

# signal_child sends TERM to the process started under the pid file's
# runuser (or to the process itself when not root): runuser would kill its
# child 2 s after a TERM of its own, before Patroni stops PostgreSQL.
signal_child() {
  local pid child
  pid=$(cat "$1")
  child=$(pgrep -P "$pid" 2>/dev/null | head -1 || true)
  kill -TERM "${child:-$pid}" 2>/dev/null || true
}

stop() {
  local bin
  bin=$(bin_dir || echo /usr/lib/postgresql/15/bin)
  for i in 1 2 3; do
    alive "$dir/node$i.pid" && signal_child "$dir/node$i.pid"
  done
  for i in 1 2 3; do
    for _ in $(seq 1 300); do alive "$dir/node$i.pid" || break; sleep 0.2; done
    rm -f "$dir/node$i.pid"
    # A PostgreSQL left behind (Patroni killed): stop it.
    if [ -f "$dir/node$i/data/postmaster.pid" ]; then
      as_pg "$bin/pg_ctl" stop -D "$dir/node$i/data" -m fast -w >/dev/null 2>&1 || true
    fi
  done
  if alive "$dir/etcd.pid"; then
    signal_child "$dir/etcd.pid"
    for _ in $(seq 1 100); do alive "$dir/etcd.pid" || break; sleep 0.1; done
  fi
  rm -f "$dir/etcd.pid"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  url) url ;;
  status) as_pg patronictl -c "$dir/node1.yml" list ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
