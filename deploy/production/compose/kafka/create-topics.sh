#!/bin/sh
# Creates the deployment's four topics with the layout of deploy/production/kafka.md, before
# any service starts (the brokers run with auto.create.topics.enable=false). Idempotent:
# an existing topic is left as it is (changing partitions moves case ids between them).
set -eu
: "${BOOTSTRAP:?}" "${TOPIC_PREFIX:?}"
kafka_topics=/opt/kafka/bin/kafka-topics.sh
day_ms=86400000

create() { # name partitions retention.ms
  "$kafka_topics" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$1" \
    --partitions "$2" --replication-factor 3 \
    --config min.insync.replicas=2 \
    --config unclean.leader.election.enable=false \
    --config retention.ms="$3"
}

# Platform documents, keyed by case id: a case's documents stay in order in one partition.
# 30 days is far longer than any outage a consumer is allowed to have.
create "$TOPIC_PREFIX.platform.to-outgoing" 12 $((30 * day_ms))
create "$TOPIC_PREFIX.platform.to-incoming" 12 $((30 * day_ms))
# The audit trail is kept for good (-1): the audit store can be rebuilt and re-verified
# from offset 0 at any time.
create "$TOPIC_PREFIX.audit.case-events" 12 -1
# Dead letters wait for an operator: 90 days.
create "$TOPIC_PREFIX.platform.dead-letter" 3 $((90 * day_ms))

"$kafka_topics" --bootstrap-server "$BOOTSTRAP" --describe --topic "$TOPIC_PREFIX\..*"
