#!/usr/bin/env bash
# One Apache Kafka node in KRaft mode (broker + controller in one process) on 127.0.0.1:
# a single-node cluster by default; cluster.sh runs three with a shared quorum through
# the KAFKA_NODE_* settings below.
#   kafka.sh start | stop | status
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_NODE_NAME="${KAFKA_NODE_NAME:-kafka}"   # state subdirectory and name in messages
KAFKA_NODE_ID="${KAFKA_NODE_ID:-1}"
KAFKA_QUORUM_VOTERS="${KAFKA_QUORUM_VOTERS:-$KAFKA_NODE_ID@127.0.0.1:$KAFKA_CONTROLLER_PORT}"
KAFKA_REPLICATION_FACTOR="${KAFKA_REPLICATION_FACTOR:-1}"
KAFKA_MIN_INSYNC_REPLICAS="${KAFKA_MIN_INSYNC_REPLICAS:-1}"
KAFKA_PARTITIONS="${KAFKA_PARTITIONS:-6}"
KAFKA_STATE="$STATE_DIR/$KAFKA_NODE_NAME"
PIDFILE="$KAFKA_STATE/kafka.pid"
LOGFILE="$KAFKA_STATE/kafka.out"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

write_config() {
  cat >"$KAFKA_STATE/server.properties" <<CFG
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
controller.quorum.voters=$KAFKA_QUORUM_VOTERS
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_STATE/data
num.partitions=$KAFKA_PARTITIONS
auto.create.topics.enable=true
default.replication.factor=$KAFKA_REPLICATION_FACTOR
min.insync.replicas=$KAFKA_MIN_INSYNC_REPLICAS
unclean.leader.election.enable=false
offsets.topic.replication.factor=$KAFKA_REPLICATION_FACTOR
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=$KAFKA_REPLICATION_FACTOR
transaction.state.log.min.isr=$KAFKA_MIN_INSYNC_REPLICAS
group.initial.rebalance.delay.ms=0
# Commit offsets without waiting 5 ms for other writes: the services commit after each
# message they processed, so this wait is on every document's path (make bench).
group.coordinator.append.linger.ms=0
log.retention.hours=168
CFG
  cat >"$KAFKA_STATE/log4j2.properties" <<CFG
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = $KAFKA_STATE/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
CFG
}

# Kafka's own tools (storage format), run on the cached jars.
kafka_tool() {
  java -Xmx256m -Dlog4j2.configurationFile="$KAFKA_STATE/log4j2.properties" \
    -cp "$KAFKA_HOME/libs/*" "$@"
}

probe() { "$VENV_PY" "$REPO_DIR/deploy/local/probe.py" kafka "$BOOTSTRAP"; }

start() {
  if pid_alive "$PIDFILE"; then  # ours and alive: wait for it rather than start another
    wait_ready 90 "$KAFKA_NODE_NAME" "$LOGFILE" "$PIDFILE" probe
    log "$KAFKA_NODE_NAME already running on $BOOTSTRAP"; return
  fi
  [ -f "$KAFKA_HOME/.complete" ] || "$REPO_DIR/deploy/local/install.sh" kafka
  port_in_use "$KAFKA_PORT" && die "port $KAFKA_PORT is in use by another process (set KAFKA_PORT)"
  port_in_use "$KAFKA_CONTROLLER_PORT" && die "port $KAFKA_CONTROLLER_PORT is in use (set KAFKA_CONTROLLER_PORT)"
  mkdir -p "$KAFKA_STATE"
  write_config
  if [ ! -f "$KAFKA_STATE/data/meta.properties" ]; then
    log "$KAFKA_NODE_NAME: formatting storage in $KAFKA_STATE/data (once)"
    kafka_tool kafka.tools.StorageTool format --ignore-formatted \
      -t "${KAFKA_CLUSTER_ID:-$(kafka_tool kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)}" \
      -c "$KAFKA_STATE/server.properties" >>"$LOGFILE" 2>&1 || die "$KAFKA_NODE_NAME storage format failed; see $LOGFILE"
  fi
  log "$KAFKA_NODE_NAME: starting on $BOOTSTRAP (node $KAFKA_NODE_ID)"
  setsid java -Xms128m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_STATE/log4j2.properties" \
    -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$KAFKA_STATE/server.properties" \
    >>"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  wait_ready 90 "$KAFKA_NODE_NAME" "$LOGFILE" "$PIDFILE" probe
  log "$KAFKA_NODE_NAME: ready on $BOOTSTRAP (data and logs in $KAFKA_STATE)"
}

case "${1:-}" in
  start) start ;;
  stop) stop_pidfile "$PIDFILE" "$KAFKA_NODE_NAME" ;;
  status)
    if pid_alive "$PIDFILE" && probe; then
      printf '%-9s ok    %s (pid %s)\n' "$KAFKA_NODE_NAME" "$BOOTSTRAP" "$(cat "$PIDFILE")"
    else printf '%-9s DOWN  %s\n' "$KAFKA_NODE_NAME" "$BOOTSTRAP"; exit 1; fi ;;
  *) die "usage: kafka.sh start|stop|status" ;;
esac
