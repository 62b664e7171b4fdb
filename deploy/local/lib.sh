# Shared settings and helpers for the local stack scripts. Sourced, not run.
# Everything installed goes to the cache (outside the repo); everything a running
# stack writes (data, logs, pid files) goes to the state directory.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE_DIR="${MEDTRANSFER_CACHE:-$HOME/.cache/medtransfer}"
STATE_DIR="${MEDTRANSFER_STATE:-$REPO_DIR/var/local}"
VENV_PY="${MEDTRANSFER_PYTHON:-$REPO_DIR/.venv/bin/python}"

KAFKA_VERSION="4.1.1"
KAFKA_HOME="$CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${KAFKA_HEAP:-512m}"

TEMPORAL_CLI_VERSION="v1.5.1"   # Temporal server 1.29; later tags carry a go.mod replace
TEMPORAL_HOME="$CACHE_DIR/temporal-cli-$TEMPORAL_CLI_VERSION"
TEMPORAL_BIN="$TEMPORAL_HOME/temporal"
TEMPORAL_PORT="${TEMPORAL_PORT:-7233}"
TEMPORAL_UI_PORT="${TEMPORAL_UI_PORT:-8233}"

TEST_SERVER_VERSION="1.31.0"
TEST_SERVER_HOME="$CACHE_DIR/temporal-test-server-$TEST_SERVER_VERSION"
TEST_SERVER_BIN="$TEST_SERVER_HOME/temporal-test-server"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required but not on PATH ($2)"; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Stop the process group whose leader's pid is in $1: TERM, wait, then KILL.
stop_pidfile() {
  local pidfile="$1" name="$2" pid i
  if ! pid_alive "$pidfile"; then rm -f "$pidfile"; return 0; fi
  pid="$(cat "$pidfile")"
  log "stopping $name (pid $pid)"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop in 30 s, killing"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# Wait until "$@" succeeds, at most $1 seconds; fail with the log's tail otherwise.
wait_ready() {
  local seconds="$1" name="$2" logfile="$3" pidfile="$4"; shift 4
  local deadline=$(( $(date +%s) + seconds ))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$pidfile"; then
      tail -n 30 "$logfile" >&2 || true
      die "$name exited during start-up; log: $logfile"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 30 "$logfile" >&2 || true
      die "$name not ready after ${seconds}s; log: $logfile"
    fi
    sleep 0.5
  done
}
