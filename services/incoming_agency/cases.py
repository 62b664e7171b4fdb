"""Commands on an open case at the incoming agency (Withdraw, CorrectApplication,
ResolveMismatch, and the clerk actions of clerk_actions.py), and the handler that runs
them: the case read, the party checked, the command's decision, the signal to the case's
workflow. Each command decides from the case row alone; the routes only translate.

The rule for blocking I/O in both services' routes and Kafka handlers: repository (SQL)
work is plain synchronous code, run off the event loop with ``asyncio.to_thread``; the
Temporal and Kafka port calls are awaited; a route with nothing to await is a plain ``def``
(FastAPI runs it in its thread pool)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, Field

from contracts.documents import (
    MAX_FREE_TEXT,
    BankAccount,
    FreeText,
    PersonIdentity,
    TransferRequested,
)
from domain.eligibility import refusal
from domain.identity import (
    fingerprint,
    is_valid_bank_account,
    normalize_resident_id,
    personal_data_in_text,
)
from domain.vocabulary import RefusalCode
from services.common.api import Refused, owned_case
from services.common.auth import Principal, require_party
from services.common.repository import CaseRepository
from services.common.tables import CaseRow
from services.incoming_agency.applications import ApplicationIn
from workflows.incoming.types import CorrectionSignal, MismatchResolution, WithdrawSignal

OPEN_FOR_WITHDRAWAL = frozenset(
    {
        "submitted",
        "waiting_region_connection",
        "awaiting_transfer_out",
        "refused_correctable",
    }
)
CORRECTION_KEEPS_CASE = "a correction keeps the person (same ID number) and the regions"


@dataclass(frozen=True)
class CaseSignal:
    """What a command asks of the case's workflow: a signal (by its name) and its payload."""

    name: str
    payload: Any


class CaseCommand(Protocol):
    def decide(self, row: CaseRow, principal: Principal) -> CaseSignal | Refused: ...


SignalCase = Callable[[str, CaseSignal], Awaitable[None]]


@dataclass(frozen=True)
class CaseCommands:
    """Runs a command on a case: every one is the incoming agency's (the key must hold the
    case's to_region, AuthError otherwise); the workflow records who and why."""

    repository: CaseRepository
    signal: SignalCase  # the Temporal port: the case workflow's signal

    async def __call__(
        self, case_id: str, principal: Principal, command: CaseCommand
    ) -> CaseSignal | Refused:
        row = await asyncio.to_thread(owned_case, self.repository, case_id, principal)
        require_party(principal, row.to_region, "incoming")
        decided = command.decide(row, principal)
        if isinstance(decided, CaseSignal):
            await self.signal(case_id, decided)
        return decided


def stop_refusal(row: CaseRow, allowed: Collection[str]) -> tuple[str, str] | None:
    """Why a withdrawal, cancellation or offline switch is not asked for (again): one
    stop per case is pursued, and one the outgoing agency refused stays refused."""
    stop = (row.facts or {}).get("stop")
    if stop == "refused":
        return (
            "TOO_LATE_TO_WITHDRAW",
            "the outgoing agency has transferred the case out; it goes on to its credit",
        )
    if stop == "requested" or row.status == "withdrawal_requested":
        return "STOP_ALREADY_REQUESTED", "a withdrawal of this case awaits the outgoing agency"
    if row.status not in allowed:
        return "TOO_LATE_TO_WITHDRAW", f"a case in status {row.status} can no longer be withdrawn"
    return None


class WithdrawIn(BaseModel):
    reason: Annotated[FreeText, Field(min_length=1)]


@dataclass(frozen=True)
class Withdraw:
    """The person's withdrawal before transfer-out (R16), answered by the outgoing agency:
    accepted (the case ends "withdrawn") or refused as too late (it goes on to its credit)."""

    reason: str

    def decide(self, row: CaseRow, principal: Principal) -> CaseSignal | Refused:
        refused = stop_refusal(row, OPEN_FOR_WITHDRAWAL)
        if refused is not None:
            return Refused(409, refused[0], refused[1], rule="R16")
        return CaseSignal("withdraw", WithdrawSignal(reason=self.reason))


def corrected_request(row: CaseRow, body: ApplicationIn) -> TransferRequested | None:
    """The corrected contact letter on the same case after a soft refusal, or None when
    the correction would change the person or the regions (that is a new application)."""
    if (
        fingerprint(body.person.id_number) != row.person_key
        or body.from_region != row.from_region
        or body.to_region != row.to_region
    ):
        return None
    original = TransferRequested.model_validate(row.application)
    return original.model_copy(
        update={
            "person": PersonIdentity(
                id_number=normalize_resident_id(body.person.id_number), name=body.person.name
            ),
            "from_scheme": body.from_scheme,
            "to_scheme": body.to_scheme,
            "reason": body.reason,
            "resettled_retiree": body.resettled_retiree,
            "bank_account": BankAccount(**body.bank_account.model_dump())
            if body.bank_account
            else original.bank_account,
        }
    )


@dataclass(frozen=True)
class CorrectApplication:
    """A soft refusal corrected on the same case (same person and regions); the caller is
    recorded with the correction."""

    body: ApplicationIn

    def decide(self, row: CaseRow, principal: Principal) -> CaseSignal | Refused:
        if row.status != "refused_correctable":
            return Refused(
                409, "NOT_CORRECTABLE", f"a case in status {row.status} takes no correction"
            )
        account = self.body.bank_account
        if account is not None and not is_valid_bank_account(account.account_number):
            # R19: refused with its reason, as at the application (never a 500).
            invalid = refusal(RefusalCode.INVALID_BANK_ACCOUNT)
            return Refused(422, invalid.code, invalid.message_en, rule=invalid.rule)
        corrected = corrected_request(row, self.body)
        if corrected is None:
            return Refused(422, "CORRECTION_CHANGES_CASE", CORRECTION_KEEPS_CASE)
        return CaseSignal(
            "accept_correction", CorrectionSignal(request=corrected, submitted_by=principal.agency)
        )


@dataclass(frozen=True)
class ResolveMismatch:
    """A clerk's decision on an amount mismatch (R15); the clerk is the caller."""

    resolution: MismatchResolution

    def decide(self, row: CaseRow, principal: Principal) -> CaseSignal | Refused:
        if row.status != "balance_mismatch":
            return Refused(
                409, "NO_MISMATCH", f"case {row.case_id} has no open amount mismatch", rule="R15"
            )
        return CaseSignal(
            "resolve_mismatch", self.resolution.model_copy(update={"clerk": principal.agency})
        )


def free_text_problem(text: str) -> str | None:
    """Why a typed reason is refused (the operations page's forms are not pydantic
    bodies): checked before anything is signalled or written."""
    if len(text) > MAX_FREE_TEXT:
        return f"the reason is longer than {MAX_FREE_TEXT} characters"
    if personal_data_in_text(text):
        return "the reason must not carry an ID, phone or account number"
    return None


def correction_from_form(row: CaseRow, fields: Mapping[str, Any]) -> ApplicationIn:
    """The correction API's body from the operations page's form: the regions are the
    case's, and a name or application reason left blank keeps the one on file. The clerk
    types the ID number from the corrected document, which must be the case's person's.
    Raises ValidationError like the API would."""
    original = TransferRequested.model_validate(row.application)
    return ApplicationIn.model_validate(
        {
            "person": {
                "id_number": fields.get("id_number") or "",
                "name": fields.get("name") or original.person.name,
            },
            "from_region": row.from_region,
            "to_region": row.to_region,
            "from_scheme": fields.get("from_scheme") or original.from_scheme,
            "to_scheme": fields.get("to_scheme") or original.to_scheme,
            "reason": fields.get("reason") or original.reason,
            "resettled_retiree": bool(fields.get("resettled_retiree")),
            "bank_account": fields.get("bank_account"),
        }
    )
