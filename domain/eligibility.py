"""Whether a transfer may proceed: the incoming agency's acceptance checks (R1-R4, R20's
province-wide platforms, R21 and the application form) and the outgoing agency's checks
against its records (R5-R9, R21).

Refusal messages are fixed sentences: they never contain an ID number, name or account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Literal

from domain.identity import is_valid_bank_account, is_valid_resident_id, normalize_resident_id
from domain.money import Fen
from domain.regions import RegionRegistry, same_province
from domain.vocabulary import RefusalCode

Scheme = Literal["employee", "resident"]
EnrolmentStatus = Literal["active", "suspended", "transferred_out"]
AccountStatus = Literal["normal", "frozen"]


@dataclass(frozen=True)
class Refusal:
    """A machine-readable reason (``code``) with the rule it enforces and fixed sentences.

    ``soft``: the person can correct the cause on the same case within the soft-refusal
    window; hard: the case ends and the person must apply again.
    """

    code: str
    rule: str
    soft: bool
    message_zh: str
    message_en: str


_REFUSALS: dict[str, Refusal] = {
    r.code: r
    for r in (
        Refusal(
            code=RefusalCode.SAME_REGION,
            rule="R1",
            soft=False,
            message_zh="转出地与转入地为同一统筹区，无需办理转移接续：由原单位暂停缴费、新单位续缴即可。",
            message_en=(
                "Outgoing and incoming region are the same pooling region: no transfer is needed."
                " The former employer suspends contributions and the new employer resumes them."
            ),
        ),
        Refusal(
            code=RefusalCode.INCOMING_NOT_ENROLLED,
            rule="R2",
            soft=False,
            message_zh="转入地尚未办理职工基本医疗保险参保登记，请在转入地参保后再申请。",
            message_en=(
                "The person is not yet enrolled in the incoming region's employee scheme; apply "
                "once enrolled there."
            ),
        ),
        Refusal(
            code=RefusalCode.RESIDENT_TOO_EARLY,
            rule="R3",
            soft=False,
            message_zh="城乡居民医保原则上当年不办理转移：请参加转入地次年的居民医保，参保生效后再申请。",
            message_en=(
                "Resident scheme: in principle no transfer in the current year. Enrol in the "
                "incoming region's resident scheme for the next year and apply once it has "
                "started."
            ),
        ),
        Refusal(
            code=RefusalCode.CROSS_SCHEME_NOT_READY,
            rule="R4",
            soft=False,
            message_zh="跨险种转移需转出地已停保且转入地已办理另一险种的参保登记，请参保后再申请。",
            message_en=(
                "Cross-scheme transfer: the incoming region must first enrol the person in the "
                "other scheme; apply once enrolled."
            ),
        ),
        Refusal(
            code=RefusalCode.DOUBLE_ENROLMENT,
            rule="R5",
            soft=True,
            message_zh="参保人在其他统筹区仍处于参保缴费状态，不得重复参保，请先在该地办理停保。",
            message_en=(
                "The person is still actively enrolled in another pooling region; double "
                "enrolment is not allowed. Suspend that enrolment first."
            ),
        ),
        Refusal(
            code=RefusalCode.ENROLMENT_ACTIVE,
            rule="R6",
            soft=True,
            message_zh="转出地参保状态仍为正常参保，请先办理停保（中止参保）。",
            message_en=(
                "The enrolment in the outgoing region is still active; it must be suspended first."
            ),
        ),
        Refusal(
            code=RefusalCode.CONTRIBUTION_ARREARS,
            rule="R7",
            soft=True,
            message_zh="转出地存在欠费，请补缴后再办理。",
            message_en=(
                "There are contribution arrears in the outgoing region; they must be paid first."
            ),
        ),
        Refusal(
            code=RefusalCode.ACCOUNT_FROZEN,
            rule="R8",
            soft=True,
            message_zh="个人账户处于冻结状态，请先办理解冻。",
            message_en=("The personal account is frozen; it must be unfrozen first."),
        ),
        Refusal(
            code=RefusalCode.PERSON_UNKNOWN,
            rule="R9",
            soft=False,
            message_zh="转出地未查询到该参保人在所申请险种下的参保记录。",
            message_en=(
                "The outgoing region has no enrolment record for this person in that scheme."
            ),
        ),
        Refusal(
            code=RefusalCode.IDENTITY_MISMATCH,
            rule="R9",
            soft=False,
            message_zh="申请中的身份信息与转出地参保记录不一致。",
            message_en=(
                "The identity data in the request do not match the outgoing region's records."
            ),
        ),
        Refusal(
            code=RefusalCode.ALREADY_TRANSFERRED,
            rule="R11",
            soft=False,
            message_zh="该参保关系已从转出地转出，请勿重复申请。",
            message_en=(
                "This enrolment has already been transferred out; one case per person and transfer."
            ),
        ),
        Refusal(
            code=RefusalCode.ENROLMENT_IN_TRANSFER,
            rule="R5",
            soft=False,
            message_zh="该参保关系正由另一转移接续申请办理中，同一参保关系同一时间只能办理一笔转移。",
            message_en=(
                "This enrolment is already being transferred by another open case; one "
                "enrolment is transferred out by at most one case at a time."
            ),
        ),
        Refusal(
            code=RefusalCode.BANK_HOLDER_MISMATCH,
            rule="R19",
            soft=True,
            message_zh="银行账户户名与转出地参保记录中的参保人姓名不一致，余额只能支付至参保人本人账户。",
            message_en=(
                "The bank account holder is not the person on the outgoing region's record; a "
                "balance is paid only into the person's own account."
            ),
        ),
        Refusal(
            code=RefusalCode.RETIREE_NOT_ON_RECORD,
            rule="R21",
            soft=True,
            message_zh="转出地参保记录中该参保人不是退休人员，不能按异地安置退休人员办理。",
            message_en=(
                "The outgoing region's record does not show the person as retired; the "
                "resettled-retiree payout does not apply."
            ),
        ),
        Refusal(
            code=RefusalCode.OPEN_CASE_ELSEWHERE,
            rule="R5",
            soft=False,
            message_zh="该参保人已有一笔转往其他地区或来自其他地区的转移接续申请正在办理，不得同时办理两笔。",
            message_en=(
                "The person already has an open transfer case with another pair of regions; "
                "two transfers at once would enrol the person twice."
            ),
        ),
        Refusal(
            code=RefusalCode.RETIREE_SAME_PROVINCE,
            rule="R21",
            soft=False,
            message_zh="跨省异地安置退休人员个人账户支付仅适用于跨省安置。",
            message_en=(
                "Paying out the account of a resettled retiree applies only to resettlement in "
                "another province."
            ),
        ),
        Refusal(
            code=RefusalCode.BANK_ACCOUNT_REQUIRED,
            rule="R21",
            soft=True,
            message_zh="跨省异地安置退休人员需提供本人银行账户，用于支付个人账户余额。",
            message_en=(
                "A retiree resettled in another province must give a personal bank account for "
                "the account balance."
            ),
        ),
        Refusal(
            code=RefusalCode.BANK_ACCOUNT_FOR_RESIDENT,
            rule="R22",
            soft=True,
            message_zh="转入城乡居民医保无个人账户，职工医保个人账户余额将支付至本人银行账户，请提供银行账户。",
            message_en=(
                "The resident scheme has no personal account: the employee account balance is "
                "paid to the person's own bank account, so one must be given."
            ),
        ),
        Refusal(
            code=RefusalCode.RETIREE_OUTSIDE_TRANSFER,
            rule="R21",
            soft=False,
            message_zh=(
                "转出地参保记录显示该参保人为退休人员，退休人员不办理转移接续，参保关系保留在原地。"
                "已跨省异地安置的，请改为申请跨省异地安置退休人员个人账户支付（支付至本人银行账户）。"
            ),
            message_en=(
                "The record shows the person as retired: retirees are outside the transfer "
                "procedure and stay enrolled here. A retiree resettled in another province "
                "applies for the resettled-retiree payout instead."
            ),
        ),
        Refusal(
            code=RefusalCode.PROVINCE_WIDE_PLATFORM,
            rule="R20",
            soft=False,
            message_zh=(
                "两地同属一个省份，该省各市共用全省统一的医保信息平台，省内流动无需办理转移接续，"
                "缴费年限已在平台连续记载，不重复计算。请直接到转入地办理参保登记（职工医保由新单位续缴）。"
            ),
            message_en=(
                "Both regions are in a province with one platform for all its cities: no "
                "transfer between agencies is needed, and the years on it are not counted "
                "twice. Enrol directly at the incoming region."
            ),
        ),
        Refusal(
            code=RefusalCode.INVALID_ID_NUMBER,
            rule="R10",
            soft=False,
            message_zh="公民身份号码无效（长度、出生日期或校验码有误）。",
            message_en=("The resident ID number is invalid (length, birth date or check digit)."),
        ),
        Refusal(
            code=RefusalCode.UNKNOWN_REGION,
            rule="R10",
            soft=False,
            message_zh="转出地或转入地不是已登记的统筹区。",
            message_en=("The outgoing or incoming region is not a known pooling region."),
        ),
        Refusal(
            code=RefusalCode.INVALID_BANK_ACCOUNT,
            rule="R10",
            soft=True,
            message_zh="银行账号格式有误（应为12至30位数字）。",
            message_en=("The bank account number is malformed (12 to 30 digits expected)."),
        ),
    )
}

REFUSALS: Mapping[str, Refusal] = MappingProxyType(_REFUSALS)


def refusal(code: str) -> Refusal:
    """The catalogue entry for a reason code (``KeyError`` if unknown)."""
    return _REFUSALS[code]


@dataclass(frozen=True)
class ApplicationFacts:
    """What the incoming agency knows when accepting an application."""

    id_number: str
    from_region: str
    to_region: str
    from_scheme: Scheme
    to_scheme: Scheme
    applied_on: date
    incoming_enrolled_since: date | None
    left_outgoing_on: date | None
    bank_account: str | None
    resettled_retiree: bool = False


@dataclass(frozen=True)
class EnrolmentFacts:
    """The outgoing agency's record of the person."""

    id_number: str
    name: str
    region: str
    scheme: Scheme
    status: EnrolmentStatus
    suspended_on: date | None
    arrears_fen: Fen
    account_status: AccountStatus
    balance_fen: Fen
    contribution_months: int
    also_active_in: str | None
    # R5: another open case of this agency holds the enrolment (its transfer-out claim).
    claimed_by_other_case: bool = False
    # R21: retiree status is a fact of this record, never the applicant's checkbox.
    retired: bool = False


@dataclass(frozen=True)
class OutgoingRequestFacts:
    """The transfer request as the outgoing agency receives it from the platform."""

    id_number: str
    name: str
    from_region: str
    to_region: str
    from_scheme: Scheme
    to_scheme: Scheme
    # What the applicant claims; checked against the record, never trusted (R19, R21).
    bank_account_holder: str | None = None
    resettled_retiree: bool = False


def _enrolled_by(since: date | None, on: date) -> bool:
    return since is not None and since <= on


def check_application(app: ApplicationFacts, registry: RegionRegistry) -> list[Refusal]:
    """The incoming agency's acceptance checks; an empty list means accept.

    All independent problems are reported together so the person can fix them at once.
    """
    refusals: list[Refusal] = []
    if not is_valid_resident_id(app.id_number):
        refusals.append(_REFUSALS[RefusalCode.INVALID_ID_NUMBER])
    if app.from_region not in registry or app.to_region not in registry:
        refusals.append(_REFUSALS[RefusalCode.UNKNOWN_REGION])
    if app.bank_account is not None and not is_valid_bank_account(app.bank_account):
        refusals.append(_REFUSALS[RefusalCode.INVALID_BANK_ACCOUNT])

    # R1: same pooling region is not a transfer at all; scheme rules would only add noise.
    if app.from_region == app.to_region:
        refusals.append(_REFUSALS[RefusalCode.SAME_REGION])
        return refusals
    # R20: a province with one platform for all its cities (a per-province setting of the
    # registry) moves the person without a handshake; a case would count the years twice.
    if registry.province_wide_platform(app.from_region, app.to_region):
        refusals.append(_REFUSALS[RefusalCode.PROVINCE_WIDE_PLATFORM])
        return refusals

    if app.resettled_retiree and app.from_scheme == "employee":
        refusals.extend(_check_resettled_retiree(app))
    elif app.from_scheme != app.to_scheme:
        refusals.extend(_check_cross_scheme(app))
    elif app.from_scheme == "resident":
        refusals.extend(_check_resident_to_resident(app))
    else:
        refusals.extend(_check_employee_to_employee(app))
    return refusals


def _check_employee_to_employee(app: ApplicationFacts) -> list[Refusal]:
    # R2: the person must already be enrolled in the incoming employee scheme.
    if not _enrolled_by(app.incoming_enrolled_since, app.applied_on):
        return [_REFUSALS[RefusalCode.INCOMING_NOT_ENROLLED]]
    return []


def _check_resident_to_resident(app: ApplicationFacts) -> list[Refusal]:
    # R3: no transfer in the year of leaving; the incoming resident enrolment must start in
    # a later calendar year and have started by the application date. An unknown leaving
    # date cannot prove that, so it is refused as well.
    since, left = app.incoming_enrolled_since, app.left_outgoing_on
    if since is None or left is None or since.year <= left.year or app.applied_on < since:
        return [_REFUSALS[RefusalCode.RESIDENT_TOO_EARLY]]
    return []


def _check_cross_scheme(app: ApplicationFacts) -> list[Refusal]:
    # R4: the incoming region must have enrolled the person in the other scheme.
    refusals: list[Refusal] = []
    if not _enrolled_by(app.incoming_enrolled_since, app.applied_on):
        refusals.append(_REFUSALS[RefusalCode.CROSS_SCHEME_NOT_READY])
    # R22: employee -> resident pays the balance to the person's own bank account.
    if app.from_scheme == "employee" and app.to_scheme == "resident" and app.bank_account is None:
        refusals.append(_REFUSALS[RefusalCode.BANK_ACCOUNT_FOR_RESIDENT])
    return refusals


def _check_resettled_retiree(app: ApplicationFacts) -> list[Refusal]:
    # R21: only for resettlement in another province, and the balance goes to the
    # retiree's own bank account, so one is needed.
    refusals: list[Refusal] = []
    if same_province(app.from_region, app.to_region):
        refusals.append(_REFUSALS[RefusalCode.RETIREE_SAME_PROVINCE])
    if app.bank_account is None:
        refusals.append(_REFUSALS[RefusalCode.BANK_ACCOUNT_REQUIRED])
    return refusals


def _normalised_name(name: str) -> str:
    return "".join(name.split())


def check_transfer_out(
    request: OutgoingRequestFacts, record: EnrolmentFacts | None
) -> list[Refusal]:
    """The outgoing agency's checks (R5-R9, R21) against its record; an empty list means
    the transfer-out may proceed (for a retiree on the record: the R21 payout only)."""
    # R9
    if record is None:
        return [_REFUSALS[RefusalCode.PERSON_UNKNOWN]]
    stop = _refusal_that_stops_the_checks(request, record)
    if stop is not None:
        return [stop]
    return _refusals_of_the_record(request, record)


def _refusal_that_stops_the_checks(
    request: OutgoingRequestFacts, record: EnrolmentFacts
) -> Refusal | None:
    """A refusal after which no other check is reported: the record is not the person's,
    the person is outside the procedure, or the enrolment is moving or moved already."""
    # R9: stop at a mismatch; reporting arrears or account state would disclose facts
    # about whoever the record really belongs to.
    if normalize_resident_id(request.id_number) != normalize_resident_id(
        record.id_number
    ) or _normalised_name(request.name) != _normalised_name(record.name):
        return _REFUSALS[RefusalCode.IDENTITY_MISMATCH]
    if record.region != request.from_region or record.scheme != request.from_scheme:
        return _REFUSALS[RefusalCode.PERSON_UNKNOWN]
    # R21: retirees are outside the transfer procedure (2021 measures); the record, not
    # the application, says who is retired, and only the resettled-retiree payout applies.
    # The payout is of an employee-scheme personal account: a resident-scheme retiree
    # has none, so nothing of the procedure applies to them either.
    if record.retired and not (request.resettled_retiree and record.scheme == "employee"):
        return _REFUSALS[RefusalCode.RETIREE_OUTSIDE_TRANSFER]
    if _payout_only(request, record) and same_province(request.from_region, request.to_region):
        return _REFUSALS[RefusalCode.RETIREE_SAME_PROVINCE]
    # R11/R16: already moved out; a second case must not transfer it again.
    if record.status == "transferred_out":
        return _REFUSALS[RefusalCode.ALREADY_TRANSFERRED]
    # R5: one enrolment, one transfer: a second concurrent case is refused, never stuck.
    if record.claimed_by_other_case:
        return _REFUSALS[RefusalCode.ENROLMENT_IN_TRANSFER]
    return None


def _payout_only(request: OutgoingRequestFacts, record: EnrolmentFacts) -> bool:
    """R21: a resettled retiree on the record gets the payout only, no transfer."""
    return request.resettled_retiree and record.retired


def _refusals_of_the_record(request: OutgoingRequestFacts, record: EnrolmentFacts) -> list[Refusal]:
    """The independent problems of the record, all reported together (R5-R8, R19-R22)."""
    payout_only = _payout_only(request, record)
    refusals: list[Refusal] = []
    # R6; not for the R21 payout: the retiree's enrolment stays here, it is not ended.
    if record.status == "active" and not payout_only:
        refusals.append(_REFUSALS[RefusalCode.ENROLMENT_ACTIVE])
    # R7
    if record.arrears_fen > 0:
        refusals.append(_REFUSALS[RefusalCode.CONTRIBUTION_ARREARS])
    # R8
    if record.account_status == "frozen":
        refusals.append(_REFUSALS[RefusalCode.ACCOUNT_FROZEN])
    # R5: active elsewhere than the incoming region (the outgoing region itself is R6).
    if record.also_active_in is not None and record.also_active_in not in (
        request.to_region,
        request.from_region,
    ):
        refusals.append(_REFUSALS[RefusalCode.DOUBLE_ENROLMENT])
    refusals.extend(_bank_account_refusals(request, record, payout_only))
    return refusals


def _bank_account_refusals(
    request: OutgoingRequestFacts, record: EnrolmentFacts, payout_only: bool
) -> list[Refusal]:
    refusals: list[Refusal] = []
    # R19/R22: a payout goes only to the person's own account.
    if request.bank_account_holder is not None and _normalised_name(
        request.bank_account_holder
    ) != _normalised_name(record.name):
        refusals.append(_REFUSALS[RefusalCode.BANK_HOLDER_MISMATCH])
    # R21: the record says who is retired.
    if request.resettled_retiree and not record.retired:
        refusals.append(_REFUSALS[RefusalCode.RETIREE_NOT_ON_RECORD])
    # R21/R22: a balance paid to the person needs the person's account; checked here too
    # (the incoming agency's acceptance is not this agency's record): never paid to none.
    if request.bank_account_holder is None and record.balance_fen > 0:
        if payout_only:
            refusals.append(_REFUSALS[RefusalCode.BANK_ACCOUNT_REQUIRED])
        elif request.from_scheme == "employee" and request.to_scheme == "resident":
            refusals.append(_REFUSALS[RefusalCode.BANK_ACCOUNT_FOR_RESIDENT])
    return refusals
