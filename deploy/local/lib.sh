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

# Renders deploy/production/kubernetes for the manifest tests (built from its Go module).
KUSTOMIZE_VERSION="v5.8.1"
KUSTOMIZE_HOME="$CACHE_DIR/kustomize-$KUSTOMIZE_VERSION"
KUSTOMIZE_BIN="$KUSTOMIZE_HOME/kustomize"

POSTGRES_PORT="${POSTGRES_PORT:-5433}"   # not 5432: leave a system cluster its port

# The newest Debian PostgreSQL server programs installed (/usr/lib/postgresql/<major>/bin),
# or nothing.
postgres_bin_dir() {
  local dir found=""
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
    [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ] && found="$dir"
  done
  printf '%s' "$found"
}

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
    for i in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
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

run_probe() { "$VENV_PY" "$REPO_DIR/deploy/local/probe.py" "$@" 2>/dev/null; }

# --- service processes (stack.sh, cluster.sh) --------------------------------------------
# A process table prints one line per process: name|command|readiness, where readiness is
# an HTTP URL that must answer 200, "poller:<task queue>" (Temporal lists this process
# among the queue's workflow and activity pollers), or "-" (the process is alive). Callers
# set APP_STATE (pid files and logs) and export the services' MEDTRANSFER_* environment.
APP_READY_SECONDS="${APP_READY_SECONDS:-90}"
# Local demo credentials (README); a real deployment sets its own MEDTRANSFER_API_KEYS.
DEMO_API_KEYS='{"demo-integrator": {"agency": "demo-portal", "regions": ["*"], "roles": ["integrator"]},
 "demo-clerk": {"agency": "demo-clerk", "regions": ["*"], "roles": ["integrator", "clerk"]},
 "demo-operator": {"agency": "demo-operator", "regions": ["*"], "roles": ["integrator", "clerk", "operator"]}}'

app_ready() {
  local name="$1" check="$2" pidfile="$APP_STATE/$1.pid"
  pid_alive "$pidfile" || return 1
  case "$check" in
    -) return 0 ;;
    poller:*) run_probe poller "$MEDTRANSFER_TEMPORAL_TARGET" "${check#poller:}" "$(cat "$pidfile")" ;;
    *) run_probe http "$check" ;;
  esac
}

# Start every process of the table ($1: the function printing it) that is not running,
# then wait until each one is ready.
start_apps() {
  local table="$1" name cmd check
  mkdir -p "$APP_STATE"
  while IFS='|' read -r name cmd check; do
    # Alive but maybe not ready yet: waited for below, never started twice.
    if pid_alive "$APP_STATE/$name.pid"; then log "$name already running"; continue; fi
    log "$name: starting"
    # shellcheck disable=SC2086  # the command is a word list by design
    (cd "$REPO_DIR" && exec setsid $cmd >>"$APP_STATE/$name.log" 2>&1 </dev/null) &
    echo $! >"$APP_STATE/$name.pid"
  done < <("$table")
  while IFS='|' read -r name cmd check; do
    wait_ready "$APP_READY_SECONDS" "$name" "$APP_STATE/$name.log" "$APP_STATE/$name.pid" \
      app_ready "$name" "$check"
  done < <("$table")
}

# Stop every process of the table, all at once (each TERM, then KILL after 30 s).
stop_apps() {
  local table="$1" name cmd check pids=()
  while IFS='|' read -r name cmd check; do
    stop_pidfile "$APP_STATE/$name.pid" "$name" &
    pids+=("$!")
  done < <("$table" | tac)
  for name in "${pids[@]}"; do wait "$name"; done
}

# One line per process; returns non-zero when any is not ready.
apps_status() {
  local table="$1" rc=0 name cmd check
  while IFS='|' read -r name cmd check; do
    if app_ready "$name" "$check"; then
      printf '%-18s ok    pid %s %s\n' "$name" "$(cat "$APP_STATE/$name.pid")" "${check/#-/}"
    else printf '%-18s DOWN\n' "$name"; rc=1; fi
  done < <("$table")
  return $rc
}
