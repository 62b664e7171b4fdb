"""The peer agency an integration test plays itself (signing with a real region key,
talking over the real Kafka topics) beside the real services (harness/agencies.py)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel

from contracts.documents import (
    EnrolmentPeriod,
    InformationSheet,
    PersonIdentity,
    TransferOutCompleted,
)
from contracts.envelope import Envelope
from contracts.local_trust import enrol_local_regions, sign_locally
from harness.agencies import PEER_REGION, AgencyStack
from services.common.acceptance import receipt_for


class PeerAgency:
    """The test as the outgoing agency of PEER_REGION: real signatures, real topics."""

    def __init__(
        self, stack: AgencyStack, region: str = PEER_REGION, *, auto_receipts: bool = True
    ) -> None:
        self.stack = stack
        self.region = region
        # Like a real agency, the peer answers every document it takes with a signed
        # receipt (else the sender resends it and escalates NO_RECEIPT).
        self.auto_receipts = auto_receipts
        self.producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
        self.consumer = AIOKafkaConsumer(
            stack.topics.to_outgoing,
            bootstrap_servers=stack.kafka_bootstrap,
            group_id=f"peer-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
        )
        self.received: list[Envelope] = []
        # The peer is another agency: its own key folder, its key entered in the local
        # registry the services read (they reload it when it changes).
        self.keys_dir = stack.root / f"peer-keys-{region}"
        enrol_local_regions(stack.root / "trust" / "registry.json", self.keys_dir, [region])

    async def __aenter__(self) -> PeerAgency:
        await self.producer.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.producer.stop()

    async def expect(self, case_id: str, doc_type: str, timeout: float = 60) -> Envelope:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for envelope in self.received:
                if envelope.case_id == case_id and envelope.type == doc_type:
                    return envelope
            await self._take(500)
        raise AssertionError(
            f"peer got no {doc_type} for {case_id}; got "
            f"{[(e.case_id, e.type) for e in self.received]}"
        )

    async def drain(self, seconds: float) -> None:
        """Take what arrives for ``seconds`` (into ``received``), answering as usual."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self._take(300)

    async def _take(self, timeout_ms: int) -> None:
        """One poll: what is addressed to the peer goes into ``received``, answered with
        a receipt like a real agency's (unless ``auto_receipts`` is off)."""
        batch = await self.consumer.getmany(timeout_ms=timeout_ms)
        for records in batch.values():
            for record in records:
                envelope = Envelope.model_validate_json(record.value or b"{}")
                if envelope.to_region == self.region:
                    self.received.append(envelope)
                    if self.auto_receipts and envelope.type != "Receipt":
                        await self.acknowledge(envelope)

    async def acknowledge(self, envelope: Envelope) -> None:
        receipt = receipt_for(envelope, datetime.now(UTC))
        await self.send(sign_locally(self.keys_dir, receipt))

    def envelope(self, document: BaseModel, case_id: str, step: str, to_region: str) -> Envelope:
        unsigned = Envelope.wrap(
            document,
            case_id=case_id,
            step=step,
            from_region=self.region,
            to_region=to_region,
            sent_at=datetime.now(UTC),
        )
        return sign_locally(self.keys_dir, unsigned)

    async def send(self, envelope: Envelope, topic: str | None = None) -> None:
        await self.producer.send_and_wait(
            topic or self.stack.topics.to_incoming,
            envelope.model_dump_json().encode(),
            key=envelope.kafka_key,
        )

    async def send_raw(self, raw: bytes, key: bytes = b"raw", topic: str | None = None) -> None:
        await self.producer.send_and_wait(topic or self.stack.topics.to_incoming, raw, key=key)


def today() -> date:
    return datetime.now(UTC).date()


def sheet_document(person_id: str, name: str, balance_fen: int) -> TransferOutCompleted:
    """The peer agency's signed-sheet document for a person it enrolled since 2015 (R18)."""
    return TransferOutCompleted(
        info_sheet=InformationSheet(
            person=PersonIdentity(id_number=person_id, name=name),
            from_region=PEER_REGION,
            scheme="employee",
            enrolment_periods=[
                EnrolmentPeriod(
                    region=PEER_REGION,
                    scheme="employee",
                    start=date(2015, 1, 1),
                    end=date(2026, 10, 31),
                    contribution_months=130,
                )
            ],
            total_contribution_months=130,
            balance_fen=balance_fen,
            transferred_out_on=date.today(),
            issued_by_region=PEER_REGION,
        ),
        balance_action="remit",
        balance_rule="R18",
    )
