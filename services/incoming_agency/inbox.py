"""The incoming agency's Temporal port (start a case, signal it) and its inbox: a verified
platform document handed to its case workflow, or a residual remittance to a workflow of
its own (the Kafka entry point in services/common/app_factory.py calls ``route``). SQL runs
off the event loop (services/incoming_agency/cases.py says the rule)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from contracts.documents import BalanceRemitted
from contracts.envelope import Envelope
from services.common.inbound import HELD, signal
from services.common.tables import CaseRow
from services.incoming_agency.applications import case_input
from services.incoming_agency.cases import CaseSignal
from services.incoming_agency.records import IncomingRecordsSql
from workflows.incoming.types import IncomingResidualInput
from workflows.incoming.workflows import (
    IncomingCaseWorkflow,
    IncomingResidualWorkflow,
    incoming_residual_workflow_id,
    incoming_workflow_id,
)


@dataclass(frozen=True)
class IncomingWorkflows:
    """The case workflows, through the Temporal client the app connects at start-up."""

    client: Callable[[], Client]
    task_queue: str

    async def start_case(self, row: CaseRow) -> None:
        try:
            await self.client().start_workflow(
                IncomingCaseWorkflow.run,
                case_input(row),
                id=incoming_workflow_id(row.case_id),
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            pass  # started by an earlier attempt of this same submission

    async def signal_case(self, case_id: str, case_signal: CaseSignal) -> None:
        handle = self.client().get_workflow_handle(incoming_workflow_id(case_id))
        await handle.signal(case_signal.name, case_signal.payload)

    async def start_residual(self, envelope: Envelope, remittance_id: str) -> str:
        try:
            await self.client().start_workflow(
                IncomingResidualWorkflow.run,
                IncomingResidualInput(envelope=envelope),
                id=incoming_residual_workflow_id(remittance_id),
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            return "duplicate_residual"
        return "started"

    async def deliver(self, envelope: Envelope) -> str:
        handle = self.client().get_workflow_handle(incoming_workflow_id(envelope.case_id))
        return await signal(handle, envelope)


@dataclass(frozen=True)
class IncomingInbox:
    """Where a verified platform document goes; the outcome the inbound handler records."""

    records: IncomingRecordsSql
    workflows: IncomingWorkflows

    async def route(self, envelope: Envelope) -> str:
        if envelope.type == "Receipt":
            return "receipt"
        if envelope.type == "BalanceRemitted" and envelope.document_as(BalanceRemitted).residual:
            remitted = envelope.document_as(BalanceRemitted)
            if not await asyncio.to_thread(self.records.residual_allowed, envelope.case_id):
                # R16: a residual follows only a balance remitted and credited here.
                return f"{HELD}RESIDUAL_NOT_ALLOWED"
            return await self.workflows.start_residual(envelope, remitted.remittance_id)
        return await self.workflows.deliver(envelope)
