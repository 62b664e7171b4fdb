#!/usr/bin/env bash
# Temporal dev server (the `temporal` CLI built from its Go module) on 127.0.0.1, persisted
# to a SQLite file so a restart keeps running workflows and their timers.
#   temporal.sh start | stop | status
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TEMPORAL_STATE="$STATE_DIR/temporal"
PIDFILE="$TEMPORAL_STATE/temporal.pid"
LOGFILE="$TEMPORAL_STATE/temporal.out"
TARGET="127.0.0.1:$TEMPORAL_PORT"

probe() { "$VENV_PY" "$REPO_DIR/deploy/local/probe.py" temporal "$TARGET"; }

start() {
  if pid_alive "$PIDFILE"; then  # ours and alive: wait for it rather than start another
    wait_ready 90 temporal "$LOGFILE" "$PIDFILE" probe
    log "temporal already running on $TARGET"; return
  fi
  [ -f "$TEMPORAL_HOME/.complete" ] || "$REPO_DIR/deploy/local/install.sh" temporal
  port_in_use "$TEMPORAL_PORT" && die "port $TEMPORAL_PORT is in use by another process (set TEMPORAL_PORT)"
  port_in_use "$TEMPORAL_UI_PORT" && die "port $TEMPORAL_UI_PORT is in use (set TEMPORAL_UI_PORT)"
  mkdir -p "$TEMPORAL_STATE"
  # Throughput on one machine (make bench): the SQLite file in WAL mode with
  # synchronous=NORMAL (a commit does not wait for fsync; a crashed process loses nothing
  # committed), activities handed to the worker with the workflow task that schedules them
  # (eager), one partition per task queue (a single node has nothing to spread them over).
  # TEMPORAL_TUNING=off starts the server without them, for comparison.
  local tuning=()
  if [ "${TEMPORAL_TUNING:-on}" != off ]; then
    tuning=(--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal
      --dynamic-config-value system.enableActivityEagerExecution=true
      --dynamic-config-value matching.numTaskqueueReadPartitions=1
      --dynamic-config-value matching.numTaskqueueWritePartitions=1)
  fi
  log "temporal: starting dev server on $TARGET (database $TEMPORAL_STATE/temporal.db)"
  setsid "$TEMPORAL_BIN" server start-dev \
      --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
      --db-filename "$TEMPORAL_STATE/temporal.db" \
      --namespace default --namespace agency-a --namespace agency-b --log-level warn \
      --dynamic-config-value frontend.enableUpdateWorkflowExecution=true \
      "${tuning[@]}" \
      >>"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  wait_ready 90 temporal "$LOGFILE" "$PIDFILE" probe
  log "temporal: ready on $TARGET; Web UI http://127.0.0.1:$TEMPORAL_UI_PORT"
}

case "${1:-}" in
  start) start ;;
  stop) stop_pidfile "$PIDFILE" temporal ;;
  status)
    if pid_alive "$PIDFILE" && probe; then
      echo "temporal  ok    $TARGET (pid $(cat "$PIDFILE")), UI http://127.0.0.1:$TEMPORAL_UI_PORT"
    else echo "temporal  DOWN  $TARGET"; exit 1; fi ;;
  *) die "usage: temporal.sh start|stop|status" ;;
esac
