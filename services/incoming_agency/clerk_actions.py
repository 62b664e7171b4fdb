"""The incoming agency's clerk actions (domain.vocabulary.ClerkActionName), one table: the
statuses each takes, the workflow signal it becomes, its button on the operations page and
its API route. Adding an action is a vocabulary member and a row here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from pydantic import ValidationError

from domain.vocabulary import ClerkActionName
from services.common.api import Refused
from services.common.auth import Principal
from services.common.tables import CaseRow
from services.incoming_agency.cases import (
    CORRECTION_KEEPS_CASE,
    OPEN_FOR_WITHDRAWAL,
    CaseCommands,
    CaseSignal,
    corrected_request,
    correction_from_form,
    free_text_problem,
    stop_refusal,
)
from workflows.incoming.types import CorrectionSignal, MismatchResolution, WithdrawSignal
from workflows.types import ClerkAction

log = logging.getLogger("medtransfer.incoming")

NOT_APPLICABLE = "NOT_APPLICABLE"


def retry_statuses(row: CaseRow) -> set[str]:
    """Where a clerk's retry of a step applies: a held sheet (``exception``), or any open
    escalated case (a step failed and waits; the workflow ignores a retry nothing awaits)."""
    if row.terminal:
        return set()
    return {"exception", row.status} if row.escalated else {"exception"}


@dataclass(frozen=True)
class TakeClerkAction:
    """A clerk action by name, with the clerk's reason; ``correction`` carries the
    corrected document's fields for accept-correction."""

    action: ClerkActionName
    reason: str
    correction: Mapping[str, Any] | None = None

    def decide(self, row: CaseRow, principal: Principal) -> CaseSignal | Refused:
        text_problem = free_text_problem(self.reason)
        if text_problem is not None:
            return Refused(422, NOT_APPLICABLE, text_problem)
        rule = CLERK_ACTIONS[self.action]
        allowed = rule.statuses(row)
        if row.status not in allowed:
            message = f"a case in status {row.status} does not take the action {self.action}"
            return Refused(409, NOT_APPLICABLE, message)
        if rule.stops_case:
            refused = stop_refusal(row, allowed)
            if refused is not None:
                return Refused(409, NOT_APPLICABLE, refused[1])
        payload = rule.payload(self, row, principal.agency)
        return payload if isinstance(payload, Refused) else CaseSignal(rule.signal, payload)


Payload = Callable[[TakeClerkAction, CaseRow, str], Any]


@dataclass(frozen=True)
class ClerkActionRule:
    signal: str  # the case workflow's signal
    statuses: Callable[[CaseRow], Collection[str]]  # where the action applies
    payload: Payload  # the signal's payload from the command, the case and the clerk
    stops_case: bool = False  # one stop (withdrawal, cancellation, offline) per case
    label: str | None = None  # the operations page's button (None: a form of its own)
    api_doc: str | None = None  # its API route's description (None: another route's)


def _in(*statuses: str) -> Callable[[CaseRow], Collection[str]]:
    return lambda _row: frozenset(statuses)


def _clerk_action(command: TakeClerkAction, _row: CaseRow, clerk: str) -> ClerkAction:
    return ClerkAction(clerk=clerk, reason=command.reason)


def _cancellation(command: TakeClerkAction, _row: CaseRow, clerk: str) -> WithdrawSignal:
    return WithdrawSignal(reason=command.reason or "cancelled", clerk=clerk)


def _resolution(decision: Literal["credit_received", "return_to_sender"]) -> Payload:
    def payload(command: TakeClerkAction, _row: CaseRow, clerk: str) -> MismatchResolution:
        return MismatchResolution(decision=decision, clerk=clerk, note=command.reason)

    return payload


def _correction(command: TakeClerkAction, row: CaseRow, clerk: str) -> CorrectionSignal | Refused:
    try:
        corrected = corrected_request(row, correction_from_form(row, command.correction or {}))
    except ValidationError as exc:
        # Field names only: the values are the person's data.
        fields = ",".join(".".join(map(str, e["loc"])) for e in exc.errors()[:5])
        return Refused(
            422, NOT_APPLICABLE, f"the corrected document is incomplete or invalid: {fields}"
        )
    if corrected is None:
        return Refused(422, NOT_APPLICABLE, CORRECTION_KEEPS_CASE)
    return CorrectionSignal(request=corrected, submitted_by=clerk, reason=command.reason)


CLERK_ACTIONS: Mapping[ClerkActionName, ClerkActionRule] = {
    ClerkActionName.RETRY_DELIVERY: ClerkActionRule(
        "retry_delivery",
        _in("waiting_region_connection"),
        _clerk_action,
        label="Re-check region now 立即重试",
        api_doc="Re-check now whether a region that was not connected has gone live (R23).",
    ),
    # A step the case was escalated for (STEP_FAILED) or a held sheet, re-run.
    ClerkActionName.RETRY_STEP: ClerkActionRule(
        "retry_step",
        retry_statuses,
        _clerk_action,
        label="Retry the failed step 重试失败步骤",
        api_doc="Re-run a step the case was escalated for (STEP_FAILED), or let a held sheet go "
        "on\nafter checking it with the outgoing agency (R13).",
    ),
    ClerkActionName.OFFLINE_CHANNEL: ClerkActionRule(
        "switch_offline",
        _in("waiting_region_connection", "awaiting_transfer_out"),
        _clerk_action,
        stops_case=True,
        label="Continue offline 转线下办理",
        api_doc="Continue the case by the offline channel (R23, after an escalation).",
    ),
    ClerkActionName.CANCEL: ClerkActionRule(
        "withdraw",
        lambda _row: OPEN_FOR_WITHDRAWAL,
        _cancellation,
        stops_case=True,
        label="Cancel case 撤销",
        api_doc="Cancel a case before transfer-out, with a reason; the outgoing agency is told.",
    ),
    ClerkActionName.CREDIT_RECEIVED: ClerkActionRule(
        "resolve_mismatch",
        _in("balance_mismatch"),
        _resolution("credit_received"),
        label="Credit what arrived 按到账金额入账",
    ),
    ClerkActionName.RETURN_TO_SENDER: ClerkActionRule(
        "resolve_mismatch",
        _in("balance_mismatch"),
        _resolution("return_to_sender"),
        label="Return to sender 退回转出地",
    ),
    # R5-R8: a soft refusal is corrected on the same case and the request sent again.
    ClerkActionName.ACCEPT_CORRECTION: ClerkActionRule(
        "accept_correction", _in("refused_correctable"), _correction
    ),
}

# The actions the operations page offers as buttons, by name, with their labels.
PAGE_LABELS: Mapping[str, str] = MappingProxyType(
    {name: rule.label for name, rule in CLERK_ACTIONS.items() if rule.label is not None}
)


@dataclass(frozen=True)
class PerformClerkAction:
    """A clerk action by name, shared by the API and the operations page: checked against
    the case's state, signalled to its workflow, which records who and why. Answers the
    HTTP status and a message naming fields at most (the page puts it in a URL)."""

    cases: CaseCommands

    @property
    def labels(self) -> Mapping[str, str]:
        """The actions the operations page offers as buttons."""
        return PAGE_LABELS

    async def __call__(
        self,
        case_id: str,
        principal: Principal,
        action: str,
        reason: str,
        correction: Mapping[str, Any] | None = None,
    ) -> tuple[int, str]:
        command = TakeClerkAction(ClerkActionName(action), reason, correction)
        outcome = await self.cases(case_id, principal, command)
        if isinstance(outcome, Refused):
            return outcome.status, outcome.message
        log.info("clerk action %s on case %s by %s", action, case_id, principal.agency)
        return 202, f"{action} requested"
