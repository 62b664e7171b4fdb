#!/usr/bin/env bash
# The whole local stack: Kafka, Temporal, and per agency side an API process (HTTP +
# Kafka consumers) and a Temporal worker process, on the embedded SQLite defaults.
#   stack.sh up       start everything in the background (idempotent)
#   stack.sh down     stop everything; no process of ours is left behind
#   stack.sh status   exit 0 only when every part is healthy
#   stack.sh run      up + demo data, then stay in the foreground; Ctrl-C stops all
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APP_STATE="$STATE_DIR/apps"
# Two agencies, two deployments (README: Trust between agencies). Each runs both sides
# for its own regions, with its own databases, key directory (its own private keys
# only), Temporal namespace, codec key, Kafka consumer groups and processes; they share
# the platform topics and the public-key registry. The sample application crosses them:
# enrolled in Pingliang (agency B's outgoing side), moving to Xi'an (agency A's incoming).
INCOMING_PORT="${INCOMING_PORT:-8001}"          # agency A, incoming side
OUTGOING_PORT="${OUTGOING_PORT:-8002}"          # agency B, outgoing side
A_OUTGOING_PORT="${A_OUTGOING_PORT:-8003}"      # agency A, outgoing side
B_INCOMING_PORT="${B_INCOMING_PORT:-8004}"      # agency B, incoming side
WORKER_METRICS_BASE="${WORKER_METRICS_BASE:-9101}"
A_REGIONS='["110000","310000","610100","620100","654300"]'
B_REGIONS='["350100","440100","440300","441900","510100","620800"]'

# The environment of one deployment's processes (no spaces: the command is a word list).
deployment() {
  local name="$1" regions="$2" in_metrics="$3" out_metrics="$4"
  printf 'env MEDTRANSFER_DEPLOYMENT=%s MEDTRANSFER_SERVED_REGIONS=%s MEDTRANSFER_TEMPORAL_NAMESPACE=%s MEDTRANSFER_DATA_DIR=%s MEDTRANSFER_KEYS_DIR=%s MEDTRANSFER_INCOMING_WORKER_METRICS_PORT=%s MEDTRANSFER_OUTGOING_WORKER_METRICS_PORT=%s' \
    "$name" "$regions" "$name" "$STATE_DIR/$name/data" "$STATE_DIR/$name/keys" "$in_metrics" "$out_metrics"
}

# name | command | health URL ("-" = process liveness only)
apps() {
  local a b
  a="$(deployment agency-a "$A_REGIONS" "$WORKER_METRICS_BASE" $((WORKER_METRICS_BASE + 1)))"
  b="$(deployment agency-b "$B_REGIONS" $((WORKER_METRICS_BASE + 2)) $((WORKER_METRICS_BASE + 3)))"
  cat <<APPS
b-outgoing-api|$b $VENV_PY -m services.outgoing_agency api --port $OUTGOING_PORT|http://127.0.0.1:$OUTGOING_PORT/health
b-outgoing-worker|$b $VENV_PY -m services.outgoing_agency worker|-
b-incoming-api|$b $VENV_PY -m services.incoming_agency api --port $B_INCOMING_PORT|http://127.0.0.1:$B_INCOMING_PORT/health
b-incoming-worker|$b $VENV_PY -m services.incoming_agency worker|-
a-outgoing-api|$a $VENV_PY -m services.outgoing_agency api --port $A_OUTGOING_PORT|http://127.0.0.1:$A_OUTGOING_PORT/health
a-outgoing-worker|$a $VENV_PY -m services.outgoing_agency worker|-
a-incoming-api|$a $VENV_PY -m services.incoming_agency api --port $INCOMING_PORT|http://127.0.0.1:$INCOMING_PORT/health
a-incoming-worker|$a $VENV_PY -m services.incoming_agency worker|-
audit|$VENV_PY -m services.audit run|-
APPS
}

app_env() {
  export MEDTRANSFER_KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
  export MEDTRANSFER_TEMPORAL_TARGET="127.0.0.1:$TEMPORAL_PORT"
  # The audit consumer's database; each deployment has its own data directory.
  export MEDTRANSFER_DATA_DIR="${MEDTRANSFER_DATA_DIR:-$STATE_DIR/data}"
  export MEDTRANSFER_LOG_DIR="$APP_STATE"
  # The local demo plays the platform operator too: it signs the shared public-key
  # registry, into which each deployment enters its own regions' keys.
  export MEDTRANSFER_LOCAL_DEMO=true
  export MEDTRANSFER_KEY_REGISTRY_FILE="${MEDTRANSFER_KEY_REGISTRY_FILE:-$STATE_DIR/trust/registry.json}"
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
  mkdir -p "$MEDTRANSFER_DATA_DIR" "$STATE_DIR"/agency-{a,b}/{data,keys}
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
  Agency A (Xi'an, Beijing, Shanghai, Lanzhou, Altay)
    incoming side API   http://127.0.0.1:$INCOMING_PORT/docs   (operations page /ops)
    outgoing side API   http://127.0.0.1:$A_OUTGOING_PORT/docs
  Agency B (Pingliang, Chengdu, Fuzhou, Guangzhou, Shenzhen, Dongguan)
    incoming side API   http://127.0.0.1:$B_INCOMING_PORT/docs
    outgoing side API   http://127.0.0.1:$OUTGOING_PORT/docs
  Each holds only its own regions' private keys ($STATE_DIR/agency-a|b/keys);
  Temporal namespaces agency-a and agency-b; payloads there are encrypted.
  Temporal Web UI       http://127.0.0.1:$TEMPORAL_UI_PORT
  Kafka                 127.0.0.1:$KAFKA_PORT
  Logs                  $APP_STATE/*.log

  Submit a sample application (a demo person enrolled in Pingliang, moving to Xi'an):
    curl -s -X POST http://127.0.0.1:$INCOMING_PORT/v1/applications \\
      -H 'Content-Type: application/json' -H 'X-Api-Key: demo-integrator' \\
      -d @$REPO_DIR/deploy/local/demo/sample-application.json
  then follow it:  curl -s -H 'X-Api-Key: demo-integrator' http://127.0.0.1:$INCOMING_PORT/v1/cases/<case_id>
  Metrics: each API's /metrics, workers :$WORKER_METRICS_BASE to :$((WORKER_METRICS_BASE + 3))
  Audit trail: .venv/bin/python -m services.audit verify; clerk CLI: .venv/bin/python -m services.cli --help

  Ctrl-C stops everything.
TXT
}

run() {
  trap 'echo; log "stopping..."; down; exit 0' INT TERM
  up
  app_env
  log "demo data: loading enrolment records into agency B's outgoing side"
  # shellcheck disable=SC2046  # the deployment's environment is a word list by design
  $(deployment agency-b "$B_REGIONS" 0 0) "$VENV_PY" -m services.outgoing_agency load-demo
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
