"""The platform documents exchanged by the incoming and outgoing agencies.

One pydantic model per document; the class name is the envelope's ``type``. Money is integer
fen. Models that carry personal data (ID number, name, bank account) keep it out of their
``repr`` and out of validation error messages, so a logged model or error never shows it
in clear text.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from contracts.canonical import canonical_json
from domain.identity import personal_data_in_text

RegionCode = Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
"""6-digit administrative division code (行政区划代码); the first two digits are the province."""

Scheme = Literal["employee", "resident"]
RuleId = Annotated[str, StringConstraints(pattern=r"^R\d{1,3}$")]
"""A rule id of the domain document, e.g. ``R18``."""

NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# Money is whole fen: strict, so 12.5, 12.0 or "12" is refused rather than coerced, and
# at most the largest whole number every JSON reader (and a BIGINT column) keeps exact.
MAX_FEN = 2**53 - 1
Fen = Annotated[int, Field(ge=0, le=MAX_FEN, strict=True)]
PositiveFen = Annotated[int, Field(gt=0, le=MAX_FEN, strict=True)]


def _no_personal_data_in_text(value: str) -> str:
    if personal_data_in_text(value):
        raise ValueError("free text must not carry an ID, phone or account number")
    return value


MAX_FREE_TEXT = 200
FreeText = Annotated[
    str, StringConstraints(max_length=MAX_FREE_TEXT), AfterValidator(_no_personal_data_in_text)
]
"""A reason or note a person types: at most 200 characters, refused when it carries an
ID, phone or account number (it reaches the timeline, the audit trail and the other
agency)."""


class _Contract(BaseModel):
    # hide_input_in_errors: a ValidationError must not echo an ID number or account number.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class PersonIdentity(_Contract):
    """The insured person (参保人). Personal data: never log these fields."""

    id_number: Annotated[str, StringConstraints(pattern=r"^\d{17}[\dX]$")] = Field(
        repr=False, description="18-character resident ID number (公民身份号码)."
    )
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(repr=False)

    @field_validator("id_number", mode="before")
    @classmethod
    def _upper_check_character(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("id_number")
    @classmethod
    def _check_character_fits(cls, value: str) -> str:
        # GB 11643: the 18th character is the ISO 7064 MOD 11-2 check of the first 17.
        total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
        if _ID_CHECK[total % 11] != value[17]:
            raise ValueError("the check character does not fit the ID number")
        return value


class BankAccount(_Contract):
    """The person's own bank account, for paying the balance out (R19, R21, R22).

    The only place the full account number may appear in any document.
    """

    bank_name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    account_number: Annotated[str, StringConstraints(pattern=r"^\d{12,30}$")] = Field(repr=False)
    account_holder: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        repr=False
    )

    @property
    def last4(self) -> str:
        """The last four digits, the only part that may leave the contact letter."""
        return self.account_number[-4:]


class TransferRequested(_Contract):
    """The contact letter (联系函), incoming -> outgoing agency (R10, R11)."""

    person: PersonIdentity
    from_region: RegionCode
    to_region: RegionCode
    from_scheme: Scheme
    to_scheme: Scheme
    reason: FreeText
    applied_on: date
    channel: Literal["online", "counter", "outgoing_entry"]
    incoming_agency: NonEmpty
    resettled_retiree: bool = Field(
        default=False, description="跨省异地安置退休人员: balance paid to own bank account (R21)."
    )
    bank_account: BankAccount | None = Field(
        default=None, description="For a bank-account fallback of the balance (R19, R21, R22)."
    )
    limit_starts_on: date | None = Field(
        default=None,
        description="The day the outgoing agency's R12 limit starts: the acceptance day, or "
        "the day its region went live when the request had to wait (R23).",
    )
    correction_of: NonEmpty | None = Field(
        default=None, description="message_id of the TransferRefused this application corrects."
    )
    by_certificate: bool = Field(
        default=False,
        description="R10/R23: a clerk switched the case to the offline channel before this "
        "request went out; the switch (WithdrawalRequested, kind offline_channel) follows it, "
        "and the outgoing agency waits for it before deciding how to transfer out.",
    )


class RefusalReason(_Contract):
    """One failed precondition of the outgoing agency (R6-R9)."""

    code: NonEmpty
    rule: RuleId
    soft: bool = Field(description="True when the person can fix the cause and apply again.")
    message_zh: NonEmpty
    message_en: NonEmpty


class TransferRefused(_Contract):
    """Outgoing -> incoming: the transfer cannot proceed."""

    reasons: list[RefusalReason] = Field(min_length=1)
    correctable_until: date | None = None


class EnrolmentPeriod(_Contract):
    region: RegionCode
    scheme: Scheme
    start: date
    end: date | None = None
    contribution_months: int = Field(ge=0)
    last_paid_month: date | None = Field(
        default=None,
        description="The last month contributed for, as its first day (YYYY-MM-01); the "
        "interruption counts from it, not from the suspension (R25-R27). None: not reported.",
    )

    @model_validator(mode="after")
    def _end_not_before_start(self) -> EnrolmentPeriod:
        if self.end is not None and self.end < self.start:
            raise ValueError("enrolment period ends before it starts")
        paid = self.last_paid_month
        if paid is not None:
            if paid.day != 1:
                raise ValueError("last_paid_month is a month: give its first day (YYYY-MM-01)")
            if (paid.year, paid.month) < (self.start.year, self.start.month):
                raise ValueError("last_paid_month is before the enrolment period starts")
            if self.end is not None and (paid.year, paid.month) > (self.end.year, self.end.month):
                raise ValueError("last_paid_month is after the enrolment period ends")
        return self


class InformationSheet(_Contract):
    """参保人员基本医疗保险信息表, issued on transfer-out (R12, R24)."""

    person: PersonIdentity
    from_region: RegionCode
    scheme: Scheme
    enrolment_periods: list[EnrolmentPeriod]
    total_contribution_months: int = Field(ge=0)
    balance_fen: Fen
    transferred_out_on: date
    issued_by_region: RegionCode
    sheet_version: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _paid_months_not_after_issue(self) -> InformationSheet:
        issued = (self.transferred_out_on.year, self.transferred_out_on.month)
        for period in self.enrolment_periods:
            paid = period.last_paid_month
            if paid is not None and (paid.year, paid.month) > issued:
                raise ValueError("a last_paid_month is after the sheet's transfer-out month")
        return self


class TransferOutCompleted(_Contract):
    """Outgoing -> incoming: transfer-out done, with the information sheet (R12, R16)."""

    info_sheet: InformationSheet
    balance_action: Literal["remit", "pay_to_bank", "keep_usable", "none"]
    balance_rule: RuleId = Field(description="The rule that chose balance_action, e.g. R18.")

    @model_validator(mode="after")
    def _action_fits_balance(self) -> TransferOutCompleted:
        balance = self.info_sheet.balance_fen
        if self.balance_action == "none" and balance > 0:
            raise ValueError("balance_action 'none' with a positive balance would lose money")
        if self.balance_action in ("remit", "pay_to_bank") and balance == 0:
            raise ValueError(f"balance_action {self.balance_action!r} with a zero balance")
        return self


class BalanceRemitted(_Contract):
    """Outgoing -> incoming: the personal-account balance was remitted (R18)."""

    remittance_id: NonEmpty
    amount_fen: PositiveFen
    residual: bool = Field(
        default=False, description="A late contribution forwarded after transfer-out."
    )
    remitted_on: date


class BalancePaidToBank(_Contract):
    """Outgoing -> incoming: the balance went to the person's own bank account."""

    remittance_id: NonEmpty
    amount_fen: PositiveFen
    rule: Literal["R19", "R21", "R22"]
    account_last4: Annotated[str, StringConstraints(pattern=r"^\d{4}$")] = Field(
        description="Only the last 4 digits of the account, never the number."
    )
    paid_on: date


class BalanceNotTransferred(_Contract):
    """Outgoing -> incoming: the balance stays where it is (e.g. R20 Guangdong)."""

    rule: RuleId
    reason_en: NonEmpty
    reason_zh: NonEmpty
    amount_fen: Fen


class TransferInCompleted(_Contract):
    """Incoming -> outgoing: transfer-in done (R13, R24)."""

    completed_on: date
    deemed_contribution_months: int = Field(ge=0)


class BalanceCredited(_Contract):
    """Incoming -> outgoing: the remitted amount matched and was credited (R15)."""

    remittance_id: NonEmpty
    amount_fen: PositiveFen
    credited_on: date


class BalanceMismatch(_Contract):
    """Incoming -> outgoing: the remitted amount did not match; a clerk must look (R15)."""

    remittance_id: NonEmpty
    expected_fen: Fen
    received_fen: Fen

    @model_validator(mode="after")
    def _amounts_differ(self) -> BalanceMismatch:
        if self.expected_fen == self.received_fen:
            raise ValueError("a mismatch needs two different amounts")
        return self


class BalanceReturned(_Contract):
    """Incoming -> outgoing: after a mismatch, a clerk sent the remittance back; the
    outgoing agency restores it so it is neither credited nor lost (R15, R16)."""

    remittance_id: NonEmpty
    amount_fen: PositiveFen
    reason: Annotated[FreeText, StringConstraints(min_length=1)]
    returned_on: date


class Reminder(_Contract):
    """A deadline is near (R12-R14)."""

    due_on: date
    stage: NonEmpty
    message_en: NonEmpty
    message_zh: NonEmpty


class Escalation(_Contract):
    """A deadline passed or a region stayed unreachable; a clerk must act (R14, R23)."""

    stage: NonEmpty
    reason_code: NonEmpty
    due_on: date | None = None
    message_en: NonEmpty
    message_zh: NonEmpty


class Receipt(_Contract):
    """Acknowledges a received platform message."""

    acknowledges_message_id: NonEmpty
    acknowledges_type: NonEmpty
    status: Literal["accepted", "rejected"]
    reason: NonEmpty | None = None

    @model_validator(mode="after")
    def _rejection_has_reason(self) -> Receipt:
        if self.status == "rejected" and self.reason is None:
            raise ValueError("a rejected receipt needs a reason")
        return self


CrossingKind = Literal["withdrawal", "cancellation", "offline_channel"]
"""What the incoming agency asks to stop the platform case for: the person withdraws,
a clerk cancels, or a clerk continues the case by the offline channel (R10, R23)."""


class WithdrawalRequested(_Contract):
    """The incoming agency asks the outgoing agency to stop the case. A request, not a
    notice: the outgoing agency accepts it before transfer-out or refuses it as too late
    (WithdrawalAnswered); until then the incoming case stays open, since a debit for it
    may exist."""

    kind: CrossingKind
    reason: FreeText
    requested_on: date


class WithdrawalAnswered(_Contract):
    """The outgoing agency's answer to a WithdrawalRequested. ``accepted``: nothing was
    transferred out and nothing will be; the case ends on both sides. Refused
    (TOO_LATE_TRANSFERRED_OUT): the enrolment was already transferred out and its balance
    moved, so the case goes on to its credit (R16)."""

    kind: CrossingKind
    accepted: bool
    reason_code: Literal["ACCEPTED_BEFORE_TRANSFER_OUT", "TOO_LATE_TRANSFERRED_OUT"]
    rule: RuleId
    message_en: NonEmpty
    message_zh: NonEmpty

    @model_validator(mode="after")
    def _code_matches(self) -> WithdrawalAnswered:
        if self.accepted != (self.reason_code == "ACCEPTED_BEFORE_TRANSFER_OUT"):
            raise ValueError("reason_code does not match accepted")
        return self


CertificateNumber = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,80}$")]
"""An insurance certificate's number: ``<outgoing region>-<case id>``, one per case."""


class InsuranceCertificate(_Contract):
    """参保凭证: the insurance certificate the outgoing agency issues when a case goes by
    the offline channel (R10, R23). Issuing it is the transfer-out (R16); it carries the
    information sheet's contents and the balance action, and the incoming agency loads it
    like a sheet when the person brings it. It travels in an envelope of its own type,
    signed by the outgoing region's key like every platform document, but by the person's
    hand, never through the platform. Personal data: never log it."""

    certificate_number: CertificateNumber
    issued_on: date
    to_region: RegionCode = Field(description="The incoming region the certificate is for.")
    info_sheet: InformationSheet
    balance_action: Literal["remit", "pay_to_bank", "keep_usable", "none"]
    balance_rule: RuleId = Field(description="The rule that chose balance_action, e.g. R19.")

    @model_validator(mode="after")
    def _action_fits_balance(self) -> InsuranceCertificate:
        self.as_transfer_out()  # the sheet's rules: no balance dropped, none invented
        return self

    def as_transfer_out(self) -> TransferOutCompleted:
        """What the incoming agency goes on with: the same as an online sheet."""
        return TransferOutCompleted(
            info_sheet=self.info_sheet,
            balance_action=self.balance_action,
            balance_rule=self.balance_rule,
        )


class InsuranceCertificateIssued(_Contract):
    """Outgoing -> incoming: the answer to an offline switch that came before transfer-out
    (R10, R23). The enrolment was transferred out and the insurance certificate issued to
    the person, who brings it to the incoming agency; the balance follows as on the online
    path. Only the certificate's existence: the person's data come with the certificate."""

    certificate_number: CertificateNumber
    issued_on: date
    balance_action: Literal["remit", "pay_to_bank", "keep_usable", "none"]
    balance_rule: RuleId


AuditValue = str | int | bool | None

# Keys and values that would put personal data into the append-only audit log.
_PERSONAL_KEYS = frozenset(
    {
        "id_number",
        "name",
        "person",
        "person_name",
        "account_number",
        "bank_account",
        "account_holder",
        "phone",
    }
)
_ID_TOKEN = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def looks_like_id_number(text: str) -> bool:
    """True when ``text`` contains an 18-character resident ID number.

    Checks the ISO 7064 MOD 11-2 check character and a plausible birth date, so numeric case
    or remittance ids are not mistaken for one.
    """
    for match in _ID_TOKEN.finditer(text):
        token = match.group().upper()
        total = sum(int(d) * w for d, w in zip(token[:17], _ID_WEIGHTS, strict=True))
        if _ID_CHECK[total % 11] != token[17]:
            continue
        try:
            born = date(int(token[6:10]), int(token[10:12]), int(token[12:14]))
        except ValueError:
            continue
        if born.year >= 1900:
            return True
    return False


Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

AUDIT_GENESIS = "0" * 64
"""The ``prev_hash`` of the first record of a case and side."""

_AUDIT_CONTENT = frozenset(
    {"case_id", "side", "sequence", "event", "status", "occurred_at", "detail", "rule"}
)


class AuditSignature(_Contract):
    """The emitting agency's Ed25519 signature of an audit document, made with the current
    key of the record's ``region`` (contracts/keyring.py ``RegionSigner.sign_bytes``)."""

    key_id: Annotated[str, StringConstraints(pattern=r"^\d{6}-[A-Za-z0-9][A-Za-z0-9._-]{0,60}$")]
    signed_at: AwareDatetime
    value: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="base64 Ed25519 signature over signing_bytes()."
    )


class AuditRecord(_Contract):
    """One state change of a case, appended to the audit topic.

    ``detail`` must never carry clear personal data. Keys naming personal fields and values
    containing an ID number are rejected; the rest is the caller's duty (no names, no account
    numbers, only masked or hashed references).

    ``region``, ``prev_hash`` and ``signature`` are set by the emitting agency when it
    publishes (docs/audit-trust.md); records stored before they existed have none.
    """

    case_id: NonEmpty
    side: Literal["incoming", "outgoing"]
    sequence: int = Field(ge=1)
    event: NonEmpty
    status: NonEmpty
    occurred_at: AwareDatetime
    detail: dict[str, AuditValue] = Field(default_factory=dict)
    rule: RuleId | None = None
    region: RegionCode | None = Field(
        default=None, description="The case's region on the emitting side, whose key signs."
    )
    prev_hash: Sha256Hex | None = Field(
        default=None,
        description="content_digest() of the emitter's own record sequence - 1 of this case "
        "and side; 64 zeros for sequence 1.",
    )
    signature: AuditSignature | None = None

    def content_digest(self) -> str:
        """sha256 hex of the RFC 8785 bytes of the record's content: every field but
        ``region``, ``prev_hash`` and ``signature``, ``occurred_at`` in UTC. What the next
        record's ``prev_hash`` and a checkpoint's ``head_hash`` name."""
        content = self.model_copy(update={"occurred_at": self.occurred_at.astimezone(UTC)})
        data = content.model_dump(mode="json", include=set(_AUDIT_CONTENT))
        return hashlib.sha256(canonical_json(data)).hexdigest()

    def signing_bytes(self) -> bytes:
        """The bytes ``signature.value`` covers: RFC 8785 JSON of the record's JSON form with
        ``signature`` holding only ``key_id`` and ``signed_at``. Raises ``ValueError`` for
        an unsigned record or a value JCS cannot carry."""
        if self.signature is None:
            raise ValueError("the record is not signed")
        return canonical_json(self.model_dump(mode="json", exclude={"signature": {"value"}}))

    @field_validator("detail")
    @classmethod
    def _no_personal_data(cls, detail: dict[str, AuditValue]) -> dict[str, AuditValue]:
        for key, value in detail.items():
            if key.lower() in _PERSONAL_KEYS:
                raise ValueError(f"audit detail key {key!r} would carry personal data")
            if isinstance(value, str) and looks_like_id_number(value):
                raise ValueError(f"audit detail {key!r} looks like an ID number")
        return detail


DOCUMENT_TYPES: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (
        TransferRequested,
        TransferRefused,
        TransferOutCompleted,
        BalanceRemitted,
        BalancePaidToBank,
        BalanceNotTransferred,
        TransferInCompleted,
        BalanceCredited,
        BalanceMismatch,
        BalanceReturned,
        Reminder,
        Escalation,
        Receipt,
        WithdrawalRequested,
        WithdrawalAnswered,
        InsuranceCertificate,
        InsuranceCertificateIssued,
        AuditRecord,
    )
}
"""Envelope ``type`` -> document model."""

Document = (
    TransferRequested
    | TransferRefused
    | TransferOutCompleted
    | BalanceRemitted
    | BalancePaidToBank
    | BalanceNotTransferred
    | TransferInCompleted
    | BalanceCredited
    | BalanceMismatch
    | BalanceReturned
    | Reminder
    | Escalation
    | Receipt
    | WithdrawalRequested
    | WithdrawalAnswered
    | InsuranceCertificate
    | InsuranceCertificateIssued
    | AuditRecord
)
