#!/bin/sh
# The Kafka ACLs of one agency deployment (kafka.md, "Security"; the table in
# docs/production-trust.md). Three principals, each named like its consumer group:
#
#   <prefix>-incoming-<deployment>  reads the platform topic to-incoming (its group only),
#                                   writes to-outgoing, the audit and the dead-letter topics
#   <prefix>-outgoing-<deployment>  reads to-outgoing (its group only), writes to-incoming,
#                                   the audit and the dead-letter topics
#   <prefix>-audit-<deployment>     reads the audit topic (its group only); sees the other
#                                   topics' names (the start-up topic check), reads nothing else
#
# Nothing else: no CREATE (the operator creates the topics, compose/kafka/create-topics.sh),
# no ALTER, no cluster operation, no other group. Every pattern is literal: a prefixed
# group of deployment "gansu" would also match "gansu2"'s group and could take its
# partitions. The brokers deny what no ACL allows (allow.everyone.if.no.acl.found=false).
#
#   DEPLOYMENT=shaanxi BOOTSTRAP=kafka-0.kafka.kafka.svc:9093 COMMAND_CONFIG=admin.properties ./acls.sh
#   DRY_RUN=1 DEPLOYMENT=shaanxi ./acls.sh      # prints the commands instead (CI reads them)
#
# Idempotent: adding an ACL that exists changes nothing. Run it from a broker's shell or
# any host that holds the admin principal's credentials (COMMAND_CONFIG).
set -eu
: "${DEPLOYMENT:?name of the agency deployment (MEDTRANSFER_DEPLOYMENT)}"
TOPIC_PREFIX="${TOPIC_PREFIX:-medtransfer}"
kafka_acls="${KAFKA_ACLS:-/opt/kafka/bin/kafka-acls.sh}"
if [ "${DRY_RUN:-0}" = 1 ]; then
  BOOTSTRAP="${BOOTSTRAP:-BOOTSTRAP}"
  COMMAND_CONFIG="${COMMAND_CONFIG:-admin.properties}"
fi
: "${BOOTSTRAP:?}" "${COMMAND_CONFIG:?}"

to_outgoing="$TOPIC_PREFIX.platform.to-outgoing"
to_incoming="$TOPIC_PREFIX.platform.to-incoming"
audit="$TOPIC_PREFIX.audit.case-events"
dead_letter="$TOPIC_PREFIX.platform.dead-letter"

allow() { # principal operation resource-type resource-name
  set -- "$kafka_acls" --bootstrap-server "$BOOTSTRAP" --command-config "$COMMAND_CONFIG" \
    --add --allow-principal "User:$1" --operation "$2" "--$3" "$4" \
    --resource-pattern-type literal
  if [ "${DRY_RUN:-0}" = 1 ]; then echo "$*"; else "$@"; fi
}

for side in incoming outgoing; do
  principal="$TOPIC_PREFIX-$side-$DEPLOYMENT"
  if [ "$side" = incoming ]; then
    inbox="$to_incoming" outbox="$to_outgoing"
  else
    inbox="$to_outgoing" outbox="$to_incoming"
  fi
  allow "$principal" Read topic "$inbox"
  allow "$principal" Read group "$principal"
  allow "$principal" Write topic "$outbox"
  allow "$principal" Write topic "$audit"
  allow "$principal" Write topic "$dead_letter"
done

principal="$TOPIC_PREFIX-audit-$DEPLOYMENT"
allow "$principal" Read topic "$audit"
allow "$principal" Read group "$principal"
for topic in "$to_outgoing" "$to_incoming" "$dead_letter"; do
  allow "$principal" Describe topic "$topic"
done
