#!/usr/bin/env bash
# The multi-node deployment on one machine: three Kafka nodes in one KRaft quorum (each a
# broker and a controller; replication factor 3, min.insync.replicas 2, no unclean leader
# election), the Temporal dev server on its database file, and per agency side two API
# replicas (one consumer group per side) and two workers, plus the audit consumer. The
# services are the code `make up` runs; only their environment differs.
#   cluster.sh up          start every part that is not running, wait until all are ready
#                          (so it also restarts a part that was killed)
#   cluster.sh down        stop everything; no process of ours is left behind
#   cluster.sh status      one line per part; exit 0 only when every part is ready
#   cluster.sh kill PART   kill -9 one part, a failure drill (cluster.sh parts lists them)
#   cluster.sh parts       the part names
# Ports: CLUSTER_KAFKA_PORTS, CLUSTER_CONTROLLER_PORTS (one per Kafka node),
# CLUSTER_INCOMING_PORTS, CLUSTER_OUTGOING_PORTS (one per API replica),
# CLUSTER_INCOMING_WORKER_METRICS_PORTS, CLUSTER_OUTGOING_WORKER_METRICS_PORTS (one per
# worker), CLUSTER_TEMPORAL_PORT, CLUSTER_TEMPORAL_UI_PORT. State: MEDTRANSFER_STATE.
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export MEDTRANSFER_STATE="${MEDTRANSFER_STATE:-$REPO_DIR/var/cluster}"
# temporal.sh reads these; the CLUSTER_ names keep a shell set up for `make up` apart.
export TEMPORAL_PORT="${CLUSTER_TEMPORAL_PORT:-17333}"
export TEMPORAL_UI_PORT="${CLUSTER_TEMPORAL_UI_PORT:-18333}"
source "$REPO_DIR/deploy/local/lib.sh"

words() { tr ',' ' ' <<<"$1"; }
read -ra KAFKA_PORTS <<<"$(words "${CLUSTER_KAFKA_PORTS:-19092 19093 19094}")"
read -ra CONTROLLER_PORTS <<<"$(words "${CLUSTER_CONTROLLER_PORTS:-19192 19193 19194}")"
read -ra INCOMING_PORTS <<<"$(words "${CLUSTER_INCOMING_PORTS:-18001 18011}")"
read -ra OUTGOING_PORTS <<<"$(words "${CLUSTER_OUTGOING_PORTS:-18002 18012}")"
read -ra INCOMING_WORKER_PORTS <<<"$(words "${CLUSTER_INCOMING_WORKER_METRICS_PORTS:-19101 19111}")"
read -ra OUTGOING_WORKER_PORTS <<<"$(words "${CLUSTER_OUTGOING_WORKER_METRICS_PORTS:-19102 19112}")"
NODES="${#KAFKA_PORTS[@]}"
[ "$NODES" -ge 3 ] || die "CLUSTER_KAFKA_PORTS: three or more Kafka nodes are needed (replication factor 3)"
[ "${#CONTROLLER_PORTS[@]}" -eq "$NODES" ] || die "CLUSTER_CONTROLLER_PORTS needs one port per Kafka node"
REPLICATION=3
MIN_INSYNC=2
PARTITIONS="${CLUSTER_PARTITIONS:-6}"

APP_STATE="$STATE_DIR/apps"
BOOTSTRAP="$(for p in "${KAFKA_PORTS[@]}"; do printf '127.0.0.1:%s,' "$p"; done)"
BOOTSTRAP="${BOOTSTRAP%,}"
VOTERS="$(for i in $(seq 1 "$NODES"); do printf '%s@127.0.0.1:%s,' "$i" "${CONTROLLER_PORTS[i - 1]}"; done)"
VOTERS="${VOTERS%,}"

# --- Kafka: kafka.sh once per node, all formatted with one cluster id -------------------
cluster_id() {
  local file="$STATE_DIR/kafka-cluster-id"
  if [ ! -s "$file" ]; then
    mkdir -p "$STATE_DIR"
    # A Kafka cluster id is a UUID in URL-safe base64 without padding.
    "$VENV_PY" -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))' >"$file"
  fi
  cat "$file"
}

kafka_node() {  # node number (1..N), kafka.sh action
  local i="$1" id=""
  if [ "$2" = start ]; then id="$(cluster_id)"; fi
  KAFKA_NODE_NAME="kafka-$i" KAFKA_NODE_ID="$i" \
    KAFKA_PORT="${KAFKA_PORTS[i - 1]}" KAFKA_CONTROLLER_PORT="${CONTROLLER_PORTS[i - 1]}" \
    KAFKA_QUORUM_VOTERS="$VOTERS" KAFKA_CLUSTER_ID="$id" KAFKA_PARTITIONS="$PARTITIONS" \
    KAFKA_REPLICATION_FACTOR="$REPLICATION" KAFKA_MIN_INSYNC_REPLICAS="$MIN_INSYNC" \
    "$REPO_DIR/deploy/local/kafka.sh" "$2"
}

kafka_cluster_check() { "$VENV_PY" "$REPO_DIR/deploy/local/probe.py" kafka-cluster "$BOOTSTRAP" "$NODES"; }

start_kafka() {
  [ -f "$KAFKA_HOME/.complete" ] || "$REPO_DIR/deploy/local/install.sh" kafka
  cluster_id >/dev/null
  # A node is ready only once a quorum of controllers answers, so the nodes start together.
  local i rc=0 pids=()
  for i in $(seq 1 "$NODES"); do kafka_node "$i" start & pids+=("$!"); done
  for i in "${pids[@]}"; do wait "$i" || rc=1; done
  [ "$rc" -eq 0 ] || die "a Kafka node did not start; logs in $STATE_DIR/kafka-*/kafka.out"
  log "kafka: waiting for $NODES brokers in the quorum and every partition fully replicated"
  local deadline=$(( $(date +%s) + 120 ))
  until kafka_cluster_check 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      kafka_cluster_check || true
      die "the Kafka cluster did not become healthy in 120 s; logs in $STATE_DIR/kafka-*/"
    fi
    sleep 1
  done
  log "kafka: $NODES nodes ready on $BOOTSTRAP (replication factor $REPLICATION, min.insync.replicas $MIN_INSYNC)"
}

# --- services ---------------------------------------------------------------------------
cluster_env() {
  export MEDTRANSFER_KAFKA_BOOTSTRAP="$BOOTSTRAP"
  export MEDTRANSFER_KAFKA_TOPIC_PARTITIONS="$PARTITIONS"
  export MEDTRANSFER_KAFKA_REPLICATION_FACTOR="$REPLICATION"
  export MEDTRANSFER_KAFKA_MIN_INSYNC_REPLICAS="$MIN_INSYNC"
  export MEDTRANSFER_TEMPORAL_TARGET="127.0.0.1:$TEMPORAL_PORT"
  export MEDTRANSFER_TEMPORAL_UI_URL="http://127.0.0.1:$TEMPORAL_UI_PORT"
  export MEDTRANSFER_DATA_DIR="${MEDTRANSFER_DATA_DIR:-$STATE_DIR/data}"
  export MEDTRANSFER_KEYS_DIR="${MEDTRANSFER_KEYS_DIR:-$STATE_DIR/keys}"
  export MEDTRANSFER_LOCAL_DEMO=true  # one deployment playing both agencies and the platform operator
  export MEDTRANSFER_KEY_REGISTRY_FILE="${MEDTRANSFER_KEY_REGISTRY_FILE:-$STATE_DIR/trust/registry.json}"
  export MEDTRANSFER_API_KEYS="${MEDTRANSFER_API_KEYS:-$DEMO_API_KEYS}"
  # Each worker gets its own metrics port on its command line.
  unset MEDTRANSFER_INCOMING_WORKER_METRICS_PORT MEDTRANSFER_OUTGOING_WORKER_METRICS_PORT
  TOPIC_PREFIX="${MEDTRANSFER_TOPIC_PREFIX:-medtransfer}"
  QUEUE_PREFIX="${MEDTRANSFER_TASK_QUEUE_PREFIX:-medtransfer}"
}

# name | command | readiness (lib.sh: start_apps)
cluster_apps() {
  local i side ports workers upper
  for side in outgoing incoming; do
    if [ "$side" = incoming ]; then ports=("${INCOMING_PORTS[@]}"); workers=("${INCOMING_WORKER_PORTS[@]}")
    else ports=("${OUTGOING_PORTS[@]}"); workers=("${OUTGOING_WORKER_PORTS[@]}"); fi
    upper="$(tr '[:lower:]' '[:upper:]' <<<"$side")"
    for i in "${!ports[@]}"; do
      echo "$side-api-$((i + 1))|$VENV_PY -m services.${side}_agency api --port ${ports[i]}|http://127.0.0.1:${ports[i]}/health"
    done
    for i in "${!workers[@]}"; do
      echo "$side-worker-$((i + 1))|env MEDTRANSFER_${upper}_WORKER_METRICS_PORT=${workers[i]} $VENV_PY -m services.${side}_agency worker|poller:$QUEUE_PREFIX-$side"
    done
  done
  echo "audit|$VENV_PY -m services.audit run|-"
}

# consumer group | members it must have (one group per side and deployment)
cluster_groups() {
  local deployment="${MEDTRANSFER_DEPLOYMENT:-local}"
  echo "$TOPIC_PREFIX-incoming-$deployment ${#INCOMING_PORTS[@]}"
  echo "$TOPIC_PREFIX-outgoing-$deployment ${#OUTGOING_PORTS[@]}"
  echo "$TOPIC_PREFIX-audit-$deployment 1"
}

groups_ready() {
  local group members
  while read -r group members; do
    run_probe group "$BOOTSTRAP" "$group" "$members" || return 1
  done < <(cluster_groups)
}

wait_groups() {
  log "consumer groups: waiting until each side's replicas share their group"
  local deadline=$(( $(date +%s) + APP_READY_SECONDS )) group members
  until groups_ready; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      while read -r group members; do
        "$VENV_PY" "$REPO_DIR/deploy/local/probe.py" group "$BOOTSTRAP" "$group" "$members" || true
      done < <(cluster_groups)
      die "consumer groups not stable after ${APP_READY_SECONDS}s; logs in $APP_STATE"
    fi
    sleep 1
  done
}

# --- commands ---------------------------------------------------------------------------
up() {
  log "cluster: state in $STATE_DIR"
  start_kafka
  "$REPO_DIR/deploy/local/temporal.sh" start
  cluster_env
  mkdir -p "$MEDTRANSFER_DATA_DIR" "$MEDTRANSFER_KEYS_DIR"
  start_apps cluster_apps
  wait_groups
  if [ ! -f "$STATE_DIR/.demo-loaded" ]; then
    log "demo data: loading enrolment records into the outgoing agency (first start only)"
    "$VENV_PY" -m services.outgoing_agency load-demo >/dev/null
    touch "$STATE_DIR/.demo-loaded"
  fi
  banner
}

down() {
  cluster_env
  stop_apps cluster_apps
  "$REPO_DIR/deploy/local/temporal.sh" stop
  # Together: a node stopping alone would wait for a quorum that is leaving too.
  local i pids=()
  for i in $(seq 1 "$NODES"); do kafka_node "$i" stop & pids+=("$!"); done
  for i in "${pids[@]}"; do wait "$i" || true; done
  log "cluster: stopped"
}

status() {
  local rc=0 i problem group members
  for i in $(seq 1 "$NODES"); do kafka_node "$i" status || rc=1; done
  if problem="$(kafka_cluster_check 2>&1)"; then
    printf '%-18s ok    %s brokers, every partition fully replicated\n' "kafka-quorum" "$NODES"
  else printf '%-18s DOWN  %s\n' "kafka-quorum" "${problem##*not ready: }"; rc=1; fi
  "$REPO_DIR/deploy/local/temporal.sh" status || rc=1
  cluster_env
  apps_status cluster_apps || rc=1
  while read -r group members; do
    if problem="$("$VENV_PY" "$REPO_DIR/deploy/local/probe.py" group "$BOOTSTRAP" "$group" "$members" 2>&1)"; then
      printf '%-18s ok    group %s, %s members\n' "consumers" "$group" "$members"
    else printf '%-18s DOWN  group %s: %s\n' "consumers" "$group" "${problem##*not ready: }"; rc=1; fi
  done < <(cluster_groups)
  return $rc
}

parts() {
  cluster_env
  for i in $(seq 1 "$NODES"); do echo "kafka-$i"; done
  echo temporal
  cluster_apps | cut -d'|' -f1
}

pidfile_of() {
  case "$1" in
    kafka-*) echo "$STATE_DIR/$1/kafka.pid" ;;
    temporal) echo "$STATE_DIR/temporal/temporal.pid" ;;
    *) echo "$APP_STATE/$1.pid" ;;
  esac
}

kill_part() {
  local part="${1:-}" pidfile pid
  parts | grep -x -- "$part" >/dev/null || die "unknown part '$part'; one of: $(parts | tr '\n' ' ')"
  pidfile="$(pidfile_of "$part")"
  pid_alive "$pidfile" || die "$part is not running"
  pid="$(cat "$pidfile")"
  # The whole process group, at once and without a chance to clean up: a crash.
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  log "$part: killed (pid $pid); 'cluster.sh up' starts it again"
}

banner() {
  cat <<TXT

  Local cluster is up (state in $STATE_DIR)
  Kafka (KRaft, $NODES nodes)  $BOOTSTRAP  replication $REPLICATION, min.insync.replicas $MIN_INSYNC, $PARTITIONS partitions
  Temporal                   127.0.0.1:$TEMPORAL_PORT, Web UI http://127.0.0.1:$TEMPORAL_UI_PORT
  Incoming agency APIs       $(for p in "${INCOMING_PORTS[@]}"; do printf 'http://127.0.0.1:%s ' "$p"; done)
  Outgoing agency APIs       $(for p in "${OUTGOING_PORTS[@]}"; do printf 'http://127.0.0.1:%s ' "$p"; done)
  Workers                    ${#INCOMING_WORKER_PORTS[@]} incoming, ${#OUTGOING_WORKER_PORTS[@]} outgoing (metrics on ${INCOMING_WORKER_PORTS[*]} ${OUTGOING_WORKER_PORTS[*]})
  Logs                       $APP_STATE/*.log, $STATE_DIR/kafka-*/server.log

  Failure drill: deploy/local/cluster.sh kill kafka-2 (or incoming-api-1, outgoing-worker-1, ...);
  'make cluster-up' starts what is missing; 'make cluster-status'; 'make cluster-down'.
TXT
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  kill) kill_part "${2:-}" ;;
  parts) parts ;;
  *) die "usage: cluster.sh up|down|status|kill PART|parts" ;;
esac
