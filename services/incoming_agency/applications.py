"""Applications at the incoming agency (R11): the form an integrator submits, the case row
it becomes, and the use case that accepts it (SubmitApplication). The route (routes.py) only
checks who calls and translates the outcome to HTTP; the SQL runs off the event loop
(cases.py says the rule)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from contracts.documents import BankAccount, FreeText, PersonIdentity, TransferRequested
from domain.eligibility import ApplicationFacts, Refusal, check_application, refusal
from domain.identity import fingerprint, mask_id, normalize_resident_id
from domain.vocabulary import IncomingStatus, RefusalCode
from services.common.api import ErrorBody, ErrorReason, problem_body
from services.common.bootstrap import Service
from services.common.repository import utcnow
from services.common.tables import CaseRow
from services.incoming_agency.progress import ProgressRecords
from workflows.incoming.types import IncomingCaseInput

log = logging.getLogger("medtransfer.incoming")

# An application dated earlier than this is refused (a typo or a replayed form).
MAX_APPLICATION_AGE_DAYS = 366


class PersonIn(BaseModel):
    id_number: str = Field(min_length=15, max_length=18, repr=False)
    name: str = Field(min_length=1, max_length=100, repr=False)


class BankAccountIn(BaseModel):
    bank_name: str = Field(min_length=1, max_length=100)
    account_number: str = Field(
        min_length=12,
        max_length=40,
        repr=False,
        description="12 to 30 digits; spaces as printed on a card are dropped",
    )
    account_holder: str = Field(min_length=1, max_length=100, repr=False)

    @field_validator("account_number", mode="before")
    @classmethod
    def _without_spaces(cls, value: object) -> object:
        # "6222 0212 3456 7890 123" as printed on a card: the digits only. Anything else
        # that is not 12-30 digits is refused with its reason (INVALID_BANK_ACCOUNT, R19).
        return "".join(value.split()) if isinstance(value, str) else value


class ApplicationIn(BaseModel):
    """A transfer application (R10, R11): the person, where from and to, which schemes."""

    person: PersonIn
    from_region: str = Field(pattern=r"^\d{6}$", description="Outgoing region (行政区划代码)")
    to_region: str = Field(pattern=r"^\d{6}$", description="Incoming region, served by this agency")
    from_scheme: Literal["employee", "resident"]
    to_scheme: Literal["employee", "resident"]
    reason: FreeText = ""
    channel: Literal["online", "counter", "outgoing_entry"] = "online"
    applied_on: date | None = Field(default=None, description="Defaults to today (China time)")
    incoming_enrolled_since: date | None = Field(
        default=None, description="Start of the enrolment here (R2, R3, R4)"
    )
    left_outgoing_on: date | None = Field(default=None, description="When the person left (R3)")
    resettled_retiree: bool = False
    bank_account: BankAccountIn | None = None


class SubmitOut(BaseModel):
    case_id: str
    status: str
    duplicate_of_open_case: bool
    case_url: str
    access_secret: str | None = Field(
        default=None,
        description="R17: the person's secret to query progress at /public/progress with the "
        "case number, given once (only its hash is kept); null when it was given already",
    )


def new_case_id(applied_on: date) -> str:
    """TR, the date and 10 random hex characters, the first a letter: the date and the
    random part never join into a 12-digit run the log scrubber would mask as an account
    or ID number (it did for about one case in seven, hiding its id in the logs)."""
    random = uuid.uuid4().hex.upper()
    return f"TR{applied_on:%Y%m%d}{'ABCDEF'[int(random[0], 16) % 6]}{random[1:10]}"


def new_case_row(request: TransferRequested, incoming_enrolled_since: date | None) -> CaseRow:
    """The incoming agency's record of an accepted application (R11), open until closed."""
    person_key = fingerprint(request.person.id_number)
    now = utcnow()
    return CaseRow(
        case_id=new_case_id(request.applied_on),
        status=IncomingStatus.SUBMITTED.value,
        status_since=now,
        from_region=request.from_region,
        to_region=request.to_region,
        from_scheme=request.from_scheme,
        to_scheme=request.to_scheme,
        person_key=person_key,
        id_masked=mask_id(request.person.id_number),
        open_key=f"{person_key}:{request.from_region}:{request.to_region}",
        application=request.model_dump(mode="json"),
        facts={
            "incoming_enrolled_since": incoming_enrolled_since.isoformat()
            if incoming_enrolled_since
            else None
        },
        created_at=now,
        updated_at=now,
    )


def case_input(row: CaseRow) -> IncomingCaseInput:
    """What the case workflow starts from: the application as recorded."""
    request = TransferRequested.model_validate(row.application)
    enrolled_since = (row.facts or {}).get("incoming_enrolled_since")
    return IncomingCaseInput(
        case_id=row.case_id,
        request=request,
        accepted_on=request.applied_on,
        incoming_enrolled_since=date.fromisoformat(enrolled_since) if enrolled_since else None,
    )


# --- the use case ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Accepted:
    """The case of the application: new, or the open one it duplicates."""

    row: CaseRow
    duplicate: bool
    access_secret: str | None  # R17: given once, when the case has started


@dataclass(frozen=True)
class Rejected:
    """Not accepted: the HTTP status and the reasons, each with its code and rule."""

    status: int
    body: ErrorBody


def _refused(status: int, refusals: list[Refusal]) -> Rejected:
    reasons = [
        ErrorReason(code=r.code, rule=r.rule, message_en=r.message_en, message_zh=r.message_zh)
        for r in refusals
    ]
    return Rejected(status, ErrorBody(error="application refused", reasons=reasons))


@dataclass(frozen=True)
class SubmitApplication:
    """R11: accept an application and start its case. Refused with reasons when the dates,
    the rules (R1-R5, R20-R22) or this agency's regions say no; R5: refused when the
    person has an open case for other regions; the same application again returns the
    open case (and starts it again, in case the first start was lost)."""

    service: Service
    start_case: Callable[[CaseRow], Awaitable[None]]
    progress: ProgressRecords

    async def __call__(self, body: ApplicationIn) -> Accepted | Rejected:
        today = self.service.today()
        applied_on = body.applied_on or today
        if applied_on > today:
            return Rejected(
                422, problem_body("APPLIED_ON_IN_FUTURE", "applied_on is after today (China time)")
            )
        if applied_on < today - timedelta(days=MAX_APPLICATION_AGE_DAYS):
            return Rejected(
                422,
                problem_body(
                    "APPLIED_ON_TOO_OLD",
                    f"applied_on is more than {MAX_APPLICATION_AGE_DAYS} days ago",
                ),
            )
        refusals = check_application(application_facts(body, applied_on), self.service.registry)
        if refusals:
            return _refused(422, refusals)
        if body.to_region not in self.service.served:
            return Rejected(
                422,
                problem_body(
                    "NOT_OUR_REGION",
                    f"region {body.to_region} is not served by this agency",
                    rule="R11",
                ),
            )
        candidate = new_case_row(transfer_request(body, applied_on), body.incoming_enrolled_since)
        row = await asyncio.to_thread(self._record, candidate)
        if isinstance(row, Rejected):
            return row
        duplicate = row.case_id != candidate.case_id
        # A duplicate resubmission also (re)starts the case, in case the first attempt's
        # start was lost: the workflow id makes this idempotent.
        try:
            await self.start_case(row)
        except Exception:
            log.exception("could not start the workflow of case %s", row.case_id)
            return Rejected(
                503,
                problem_body(
                    "WORKFLOW_UNAVAILABLE",
                    "the case was recorded but could not be started; "
                    "submit the same application again to resume it",
                ),
            )
        # R17: issued once the case has started (a resubmission after a failed start gets
        # it; one after the first answer does not).
        secret = await asyncio.to_thread(self.progress.issue_secret, row.case_id)
        log.info(
            "application %s case %s", "duplicate of" if duplicate else "accepted as", row.case_id
        )
        return Accepted(row, duplicate, secret)

    def _record(self, candidate: CaseRow) -> CaseRow | Rejected:
        """The case row: the candidate inserted, or the open case it duplicates."""
        row = self.service.repository.open_case(candidate)
        if row is None:
            # R5: two transfers of one person at once would enrol the person twice.
            return _refused(409, [refusal(RefusalCode.OPEN_CASE_ELSEWHERE)])
        return row


def application_facts(body: ApplicationIn, applied_on: date) -> ApplicationFacts:
    return ApplicationFacts(
        id_number=body.person.id_number,
        from_region=body.from_region,
        to_region=body.to_region,
        from_scheme=body.from_scheme,
        to_scheme=body.to_scheme,
        applied_on=applied_on,
        incoming_enrolled_since=body.incoming_enrolled_since,
        left_outgoing_on=body.left_outgoing_on,
        bank_account=body.bank_account.account_number if body.bank_account else None,
        resettled_retiree=body.resettled_retiree,
    )


def transfer_request(body: ApplicationIn, applied_on: date) -> TransferRequested:
    """The platform request of an accepted application (the ID number normalised)."""
    return TransferRequested(
        person=PersonIdentity(
            id_number=normalize_resident_id(body.person.id_number), name=body.person.name
        ),
        from_region=body.from_region,
        to_region=body.to_region,
        from_scheme=body.from_scheme,
        to_scheme=body.to_scheme,
        reason=body.reason,
        applied_on=applied_on,
        channel=body.channel,
        incoming_agency=f"medical insurance agency of region {body.to_region}",
        resettled_retiree=body.resettled_retiree,
        bank_account=BankAccount(**body.bank_account.model_dump()) if body.bank_account else None,
    )
