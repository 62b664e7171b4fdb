#!/usr/bin/env bash
# Single-node Apache Kafka in KRaft mode (broker + controller in one process) on 127.0.0.1.
#   kafka.sh start | stop | status
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_STATE="$STATE_DIR/kafka"
PIDFILE="$KAFKA_STATE/kafka.pid"
LOGFILE="$KAFKA_STATE/kafka.out"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

write_config() {
  cat >"$KAFKA_STATE/server.properties" <<CFG
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_STATE/data
num.partitions=6
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
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
  if pid_alive "$PIDFILE" && probe 2>/dev/null; then log "kafka already running on $BOOTSTRAP"; return; fi
  [ -f "$KAFKA_HOME/.complete" ] || "$REPO_DIR/deploy/local/install.sh" kafka
  port_in_use "$KAFKA_PORT" && die "port $KAFKA_PORT is in use by another process (set KAFKA_PORT)"
  port_in_use "$KAFKA_CONTROLLER_PORT" && die "port $KAFKA_CONTROLLER_PORT is in use (set KAFKA_CONTROLLER_PORT)"
  mkdir -p "$KAFKA_STATE"
  write_config
  if [ ! -f "$KAFKA_STATE/data/meta.properties" ]; then
    log "kafka: formatting storage in $KAFKA_STATE/data (once)"
    kafka_tool kafka.tools.StorageTool format --ignore-formatted \
      -t "$(kafka_tool kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)" \
      -c "$KAFKA_STATE/server.properties" >>"$LOGFILE" 2>&1 || die "kafka storage format failed; see $LOGFILE"
  fi
  log "kafka: starting on $BOOTSTRAP"
  setsid java -Xms128m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_STATE/log4j2.properties" \
    -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$KAFKA_STATE/server.properties" \
    >>"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  wait_ready 90 kafka "$LOGFILE" "$PIDFILE" probe
  log "kafka: ready on $BOOTSTRAP (data and logs in $KAFKA_STATE)"
}

case "${1:-}" in
  start) start ;;
  stop) stop_pidfile "$PIDFILE" kafka ;;
  status)
    if pid_alive "$PIDFILE" && probe; then echo "kafka     ok    $BOOTSTRAP (pid $(cat "$PIDFILE"))"
    else echo "kafka     DOWN  $BOOTSTRAP"; exit 1; fi ;;
  *) die "usage: kafka.sh start|stop|status" ;;
esac
