"""Commands on a case at the outgoing agency (RetryStep, PostLateContribution) and its
Temporal port. Each use case reads the case off the event loop and awaits the port
(services/incoming_agency/cases.py says the rule)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from contracts.documents import MAX_FEN, FreeText
from contracts.envelope import Envelope
from services.common.api import Refused, owned_case
from services.common.auth import Principal, require_party
from services.common.inbound import signal
from services.common.repository import CaseRepository
from workflows.outgoing.types import OutgoingCaseInput, ResidualInput, StopAnswerInput
from workflows.outgoing.workflows import (
    OutgoingCaseWorkflow,
    OutgoingResidualWorkflow,
    OutgoingStopAnswerWorkflow,
    outgoing_residual_workflow_id,
    outgoing_stop_answer_workflow_id,
    outgoing_workflow_id,
    residual_remittance_id,
)
from workflows.types import ClerkAction

log = logging.getLogger("medtransfer.outgoing")


class RetryIn(BaseModel):
    reason: FreeText = ""


class LateContributionIn(BaseModel):
    contribution_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,40}$")
    amount_fen: int = Field(gt=0, le=MAX_FEN)


@dataclass(frozen=True)
class OutgoingWorkflows:
    """The case, stop-answer and residual workflows, through the Temporal client the app
    connects at start-up."""

    client: Callable[[], Client]
    task_queue: str

    async def start_case(self, envelope: Envelope) -> str:
        """The first request starts the case with it (a later one after the case closed
        is late)."""
        try:
            await self.client().start_workflow(
                OutgoingCaseWorkflow.run,
                OutgoingCaseInput(case_id=envelope.case_id, region=envelope.to_region),
                id=outgoing_workflow_id(envelope.case_id),
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                start_signal="document",
                start_signal_args=[envelope],
            )
        except WorkflowAlreadyStartedError:
            return "late_after_close"
        return "started"

    async def answer_after_close(self, envelope: Envelope) -> str:
        """A withdrawal of a case closed meanwhile: still answered, from the records."""
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self.client().start_workflow(
                OutgoingStopAnswerWorkflow.run,
                StopAnswerInput(envelope=envelope, region=envelope.to_region),
                id=outgoing_stop_answer_workflow_id(envelope.message_id),
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        return "answered_after_close"

    async def start_residual(self, residual: ResidualInput, remittance_id: str) -> None:
        try:
            await self.client().start_workflow(
                OutgoingResidualWorkflow.run,
                residual,
                id=outgoing_residual_workflow_id(remittance_id),
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            pass  # the same contribution posted twice: one residual remittance

    async def deliver(self, workflow_id: str, envelope: Envelope) -> str:
        return await signal(self.client().get_workflow_handle(workflow_id), envelope)

    async def retry_step(self, case_id: str, action: ClerkAction) -> None:
        handle = self.client().get_workflow_handle(outgoing_workflow_id(case_id))
        await handle.signal("retry_step", action)


@dataclass(frozen=True)
class RetryStep:
    """Re-run a step the case was escalated for (STEP_FAILED: the records refused the
    transfer-out and nothing was debited), after checking the record."""

    repository: CaseRepository
    workflows: OutgoingWorkflows

    async def __call__(self, case_id: str, principal: Principal, reason: str) -> Refused | None:
        row = await asyncio.to_thread(owned_case, self.repository, case_id, principal)
        require_party(principal, row.from_region, "outgoing")
        if row.terminal or not row.escalated:
            return Refused(409, "NOT_APPLICABLE", "the case has no failed step to retry")
        await self.workflows.retry_step(case_id, ClerkAction(clerk=principal.agency, reason=reason))
        log.info("clerk action retry-step on case %s by %s", case_id, principal.agency)
        return None


@dataclass(frozen=True)
class PostLateContribution:
    """A contribution that arrived after transfer-out, forwarded as a residual remittance
    of the case (R16), once per contribution id; answers the remittance id."""

    repository: CaseRepository
    workflows: OutgoingWorkflows

    async def __call__(
        self, case_id: str, principal: Principal, body: LateContributionIn
    ) -> Refused | str:
        row = await asyncio.to_thread(owned_case, self.repository, case_id, principal)
        require_party(principal, row.from_region, "outgoing")
        if row.status != "completed":
            # R16: a residual follows a balance the incoming agency has confirmed credited;
            # before that it could meet a case whose own balance is still unsettled.
            return Refused(
                409,
                "NOT_SETTLED_YET",
                "the case's balance is not confirmed credited yet; post it once it completes",
                rule="R16",
            )
        if (row.application or {}).get("balance_action") != "remit":
            # R16 with R19-R22: a residual follows only a balance that was remitted (not
            # one paid to the bank, kept usable under R20, or bound for a resident scheme).
            return Refused(
                409,
                "RESIDUAL_NOT_ALLOWED",
                "this case's balance was not remitted, so no residual follows it",
                rule="R16",
            )
        remittance_id = residual_remittance_id(case_id, body.contribution_id)
        residual = ResidualInput(
            case_id=case_id,
            contribution_id=body.contribution_id,
            amount_fen=body.amount_fen,
            region=row.from_region,
            to_region=row.to_region,
        )
        await self.workflows.start_residual(residual, remittance_id)
        return remittance_id
