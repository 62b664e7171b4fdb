#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1:$POSTGRES_PORT (Debian's server programs),
# for the tests on PostgreSQL and local runs: trust authentication on loopback only, no
# Unix socket, fsync off. Never for real data.
#   postgres.sh start | stop | status | createdb NAME... | dropdb NAME... | url NAME
# A database URL for the services: $(postgres.sh url incoming_agency)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# As root the server runs as the postgres user, which must reach the cluster's directory.
pg_state_dir() {
  if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
    mkdir -p "$STATE_DIR"
    if ! runuser -u postgres -- test -x "$STATE_DIR" 2>/dev/null; then
      # A parent of the state directory is private (e.g. a clone under /root): the
      # cluster gets a directory of its own under /tmp, one per state directory.
      mkdir -p /tmp/medtransfer-postgres && chmod 755 /tmp/medtransfer-postgres
      printf '/tmp/medtransfer-postgres/%s' "$(printf '%s' "$STATE_DIR" | cksum | cut -d' ' -f1)"
      return
    fi
  fi
  printf '%s' "$STATE_DIR/postgres"
}

PG_STATE="$(pg_state_dir)"
PG_DATA="$PG_STATE/data"
LOGFILE="$PG_STATE/postgres.log"
TARGET="127.0.0.1:$POSTGRES_PORT"
BIN=""

find_bin() {
  BIN="$(postgres_bin_dir)"
  if [ -z "$BIN" ]; then
    "$REPO_DIR/deploy/local/install.sh" postgres
    BIN="$(postgres_bin_dir)"
  fi
  [ -n "$BIN" ] || die "no PostgreSQL server programs under /usr/lib/postgresql/*/bin"
}

# initdb and postgres refuse to run as root; as root they run as Debian's postgres user.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

probe() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT"; }
running() { [ -f "$PG_DATA/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }
psql_() { "$BIN/psql" -X -q -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres -v ON_ERROR_STOP=1 "$@"; }

valid_name() {
  [[ "$1" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "database name '$1': use lower-case letters, digits and _"
}

init_cluster() {
  mkdir -p "$PG_STATE"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' system user (Debian's postgresql package creates it)"
    chown postgres:postgres "$PG_STATE"
    as_owner test -w "$PG_STATE" || die "the postgres user cannot write to $PG_STATE"
  fi
  chmod 700 "$PG_STATE"
  [ -f "$PG_DATA/PG_VERSION" ] && return
  rm -rf "$PG_DATA"  # an interrupted initdb
  log "postgres: creating a cluster in $PG_DATA (once)"
  as_owner "$BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale \
    >"$PG_STATE/initdb.log" 2>&1 || { tail -n 20 "$PG_STATE/initdb.log" >&2; die "initdb failed; see $PG_STATE/initdb.log"; }
  as_owner tee -a "$PG_DATA/postgresql.conf" >/dev/null <<CFG

# deploy/local/postgres.sh: a throwaway local cluster (tests, local runs), never real data.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
log_min_messages = warning
CFG
  as_owner tee "$PG_DATA/pg_hba.conf" >/dev/null <<HBA
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  trust
HBA
}

start() {
  find_bin
  if running && probe; then log "postgres already running on $TARGET"; return; fi
  port_in_use "$POSTGRES_PORT" && die "port $POSTGRES_PORT is in use by another process (set POSTGRES_PORT)"
  init_cluster
  log "postgres: starting on $TARGET (data in $PG_DATA)"
  # The port is given at start, not stored, so a state directory can move ports.
  as_owner "$BIN/pg_ctl" -D "$PG_DATA" -l "$LOGFILE" -o "-p $POSTGRES_PORT" -w -t 90 start >/dev/null \
    || { tail -n 30 "$LOGFILE" >&2 || true; die "postgres did not start; log: $LOGFILE"; }
  probe || die "postgres started but does not answer on $TARGET; log: $LOGFILE"
  log "postgres: ready on $TARGET ($("$BIN/postgres" --version))"
}

stop() {
  find_bin
  if ! running; then return 0; fi
  log "stopping postgres ($TARGET)"
  as_owner "$BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
}

createdb() {
  find_bin
  probe || die "postgres is not running on $TARGET (postgres.sh start)"
  local name
  for name in "$@"; do
    valid_name "$name"
    if [ -z "$(psql_ -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'")" ]; then
      psql_ -d postgres -c "CREATE DATABASE $name" || die "could not create database $name"
    fi
  done
}

dropdb() {
  find_bin
  probe || die "postgres is not running on $TARGET"
  local name
  for name in "$@"; do
    valid_name "$name"
    psql_ -d postgres -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" || die "could not drop database $name"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    find_bin
    if running && probe; then echo "postgres  ok    $TARGET (data $PG_DATA)"
    else echo "postgres  DOWN  $TARGET"; exit 1; fi ;;
  createdb) shift; [ $# -gt 0 ] || die "usage: postgres.sh createdb NAME..."; createdb "$@" ;;
  dropdb) shift; [ $# -gt 0 ] || die "usage: postgres.sh dropdb NAME..."; dropdb "$@" ;;
  url) [ -n "${2:-}" ] || die "usage: postgres.sh url NAME"; valid_name "$2"
       echo "postgresql+psycopg://postgres@$TARGET/$2" ;;
  *) die "usage: postgres.sh start|stop|status|createdb NAME...|dropdb NAME...|url NAME" ;;
esac
