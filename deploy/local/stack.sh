#!/usr/bin/env bash
# The whole local stack: Kafka, Temporal, and per agency side an API process (HTTP +
# Kafka consumers) and a Temporal worker process, on the embedded SQLite defaults.
#   stack.sh up       start everything in the background (idempotent)
#   stack.sh down     stop everything; no process of ours is left behind
#   stack.sh status   exit 0 only when every part is healthy
#   stack.sh run      up + demo data, then stay in the foreground; Ctrl-C stops all
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APP_STATE="$STATE_DIR/apps"
INCOMING_PORT="${INCOMING_PORT:-8001}"
OUTGOING_PORT="${OUTGOING_PORT:-8002}"

# name | command | health URL ("-" = process liveness only)
apps() {
  cat <<APPS
outgoing-api|$VENV_PY -m services.outgoing_agency api --port $OUTGOING_PORT|http://127.0.0.1:$OUTGOING_PORT/health
outgoing-worker|$VENV_PY -m services.outgoing_agency worker|-
incoming-api|$VENV_PY -m services.incoming_agency api --port $INCOMING_PORT|http://127.0.0.1:$INCOMING_PORT/health
incoming-worker|$VENV_PY -m services.incoming_agency worker|-
audit|$VENV_PY -m services.audit run|-
APPS
}

app_env() {
  export MEDTRANSFER_KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
  export MEDTRANSFER_TEMPORAL_TARGET="127.0.0.1:$TEMPORAL_PORT"
  export MEDTRANSFER_DATA_DIR="${MEDTRANSFER_DATA_DIR:-$STATE_DIR/data}"
  export MEDTRANSFER_KEYS_DIR="${MEDTRANSFER_KEYS_DIR:-$STATE_DIR/keys}"
  # The local demo plays the platform operator too (README: Trust between agencies).
  export MEDTRANSFER_LOCAL_DEMO=true
  export MEDTRANSFER_KEY_REGISTRY_FILE="${MEDTRANSFER_KEY_REGISTRY_FILE:-$STATE_DIR/trust/registry.json}"
  export MEDTRANSFER_LOG_DIR="$APP_STATE"
  export MEDTRANSFER_INCOMING_WORKER_METRICS_PORT="${MEDTRANSFER_INCOMING_WORKER_METRICS_PORT:-9101}"
  export MEDTRANSFER_OUTGOING_WORKER_METRICS_PORT="${MEDTRANSFER_OUTGOING_WORKER_METRICS_PORT:-9102}"
  # Traces of every process as JSON lines, one file per process (README: Traces).
  export MEDTRANSFER_TRACING_EXPORTER="${MEDTRANSFER_TRACING_EXPORTER:-file}"
  export MEDTRANSFER_TRACING_DIR="${MEDTRANSFER_TRACING_DIR:-$STATE_DIR/traces}"
  # Local demo credentials (README); a real deployment sets its own keys.
  export MEDTRANSFER_API_KEYS="${MEDTRANSFER_API_KEYS:-$DEMO_API_KEYS}"
}

status() {
  local rc=0
  "$REPO_DIR/deploy/local/kafka.sh" status || rc=1
  "$REPO_DIR/deploy/local/temporal.sh" status || rc=1
  app_env
  apps_status apps || rc=1
  return $rc
}

up() {
  "$REPO_DIR/deploy/local/kafka.sh" start
  "$REPO_DIR/deploy/local/temporal.sh" start
  app_env
  mkdir -p "$MEDTRANSFER_DATA_DIR" "$MEDTRANSFER_KEYS_DIR"
  start_apps apps
  log "services: ready (logs in $APP_STATE)"
}

down() {
  stop_apps apps
  "$REPO_DIR/deploy/local/temporal.sh" stop
  "$REPO_DIR/deploy/local/kafka.sh" stop
}

banner() {
  cat <<TXT

  Cross-region medical-insurance transfer — local stack is up
  Incoming agency API   http://127.0.0.1:$INCOMING_PORT/docs
  Outgoing agency API   http://127.0.0.1:$OUTGOING_PORT/docs
  Temporal Web UI       http://127.0.0.1:$TEMPORAL_UI_PORT
  Kafka                 127.0.0.1:$KAFKA_PORT
  Logs                  $APP_STATE/*.log

  Submit a sample application (a demo person enrolled in Pingliang, moving to Xi'an):
    curl -s -X POST http://127.0.0.1:$INCOMING_PORT/v1/applications \\
      -H 'Content-Type: application/json' -H 'X-Api-Key: demo-integrator' \\
      -d @$REPO_DIR/deploy/local/demo/sample-application.json
  then follow it:  curl -s -H 'X-Api-Key: demo-integrator' http://127.0.0.1:$INCOMING_PORT/v1/cases/<case_id>
  Metrics: http://127.0.0.1:$INCOMING_PORT/metrics, :$OUTGOING_PORT/metrics, workers :9101 and :9102
  Audit trail: .venv/bin/python -m services.audit verify; clerk CLI: .venv/bin/python -m services.cli --help

  Ctrl-C stops everything.
TXT
}

run() {
  trap 'echo; log "stopping..."; down; exit 0' INT TERM
  up
  app_env
  log "demo data: loading enrolment records into the outgoing agency"
  "$VENV_PY" -m services.outgoing_agency load-demo
  banner
  # Stay in the foreground while every part is alive.
  while status >/dev/null 2>&1; do sleep 2; done
  log "a part of the stack stopped:"; status || true
  down
  exit 1
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  run) run ;;
  *) die "usage: stack.sh up|down|status|run" ;;
esac
