"""The deployment's Kafka topics, created at start-up with the configured layout.

A production cluster usually has topic auto-creation off, and where it is on the broker's
defaults decide the partitions and replicas. Creating the topics from settings makes the
layout configuration (MEDTRANSFER_KAFKA_TOPIC_PARTITIONS, _REPLICATION_FACTOR,
_MIN_INSYNC_REPLICAS) rather than a property of whichever broker answered first.
"""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.common.config import Settings
from services.common.transport import kafka_client_options

log = logging.getLogger("medtransfer.kafka.topics")


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing topics of ``settings.topics`` and return their names. Existing
    topics are left alone: changing a live topic's partitions or replicas is an
    operator's decision (it moves keys between partitions)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="setup",
        **kafka_client_options(settings),
    )
    await admin.start()
    try:
        missing = sorted(set(settings.topics.all()) - set(await admin.list_topics()))
        if not missing:
            return []
        config = {"min.insync.replicas": str(settings.kafka_min_insync_replicas)}
        response = await admin.create_topics(
            [
                NewTopic(
                    name,
                    settings.kafka_topic_partitions,
                    settings.kafka_replication_factor,
                    topic_configs=config,
                )
                for name in missing
            ]
        )
        created = []
        for name, code, *_ in response.topic_errors:
            # Another process starting at the same moment may have created it first.
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"creating Kafka topic {name} failed with error code {code}")
            if code == 0:
                created.append(name)
        if not created:
            return []
        log.info(
            "created topics %s: %d partitions, replication factor %d, min.insync.replicas %d",
            ",".join(sorted(created)),
            settings.kafka_topic_partitions,
            settings.kafka_replication_factor,
            settings.kafka_min_insync_replicas,
        )
        return sorted(created)
    finally:
        await admin.close()
