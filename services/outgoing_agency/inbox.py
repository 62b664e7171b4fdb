"""The outgoing agency's inbox: a verified platform document handed to its case workflow
(the Kafka entry point in services/common/app_factory.py calls ``route``); a transfer
request is first recorded as the outgoing view of its case (ReceiveTransferRequest). SQL
runs off the event loop (services/incoming_agency/cases.py says the rule)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from contracts.documents import TransferRequested
from contracts.envelope import Envelope
from domain.identity import fingerprint, mask_id
from domain.matching import main_remittance_id
from domain.vocabulary import OutgoingStatus
from services.common.bootstrap import Service
from services.common.db import session_scope
from services.common.repository import utcnow
from services.common.tables import CaseRow
from services.outgoing_agency.cases import OutgoingWorkflows
from workflows.outgoing.workflows import outgoing_residual_workflow_id, outgoing_workflow_id


def record_case(service: Service, envelope: Envelope) -> None:
    """The outgoing view of a case, created (or refreshed by a correction) on request."""
    request = envelope.document_as(TransferRequested)
    now = utcnow()
    with session_scope(service.engine) as session:
        row = session.get(CaseRow, envelope.case_id)
        if row is None:
            row = CaseRow(
                case_id=envelope.case_id,
                status=OutgoingStatus.RECEIVED.value,
                status_since=now,
                from_region=request.from_region,
                to_region=request.to_region,
                from_scheme=request.from_scheme,
                to_scheme=request.to_scheme,
                person_key=fingerprint(request.person.id_number),
                id_masked=mask_id(request.person.id_number),
                created_at=now,
                updated_at=now,
            )
        row.application = {**row.application, **request.model_dump(mode="json")}
        session.add(row)


@dataclass(frozen=True)
class ReceiveTransferRequest:
    """A transfer request (or a corrected one): recorded, then the case started with it."""

    service: Service
    workflows: OutgoingWorkflows

    async def __call__(self, envelope: Envelope) -> str:
        await asyncio.to_thread(record_case, self.service, envelope)
        return await self.workflows.start_case(envelope)


@dataclass(frozen=True)
class OutgoingInbox:
    """Where a verified platform document goes; the outcome the inbound handler records."""

    receive_request: ReceiveTransferRequest
    workflows: OutgoingWorkflows

    async def route(self, envelope: Envelope) -> str:
        if envelope.type == "Receipt":
            return "receipt"
        if envelope.type == "TransferRequested":
            return await self.receive_request(envelope)
        case_workflow = outgoing_workflow_id(envelope.case_id)
        if envelope.type == "WithdrawalRequested":
            outcome = await self.workflows.deliver(case_workflow, envelope)
            if outcome != "late_after_close":
                return outcome
            return await self.workflows.answer_after_close(envelope)
        remittance_id = getattr(envelope.document(), "remittance_id", None)
        if remittance_id and remittance_id != main_remittance_id(envelope.case_id):
            residual_workflow = outgoing_residual_workflow_id(remittance_id)
            return await self.workflows.deliver(residual_workflow, envelope)
        return await self.workflows.deliver(case_workflow, envelope)
