"""The pure rules behind the crossing-steps work: counterparty documents matched to the
case (R13, R15), one enrolment one transfer (R5), free text without personal data, and
the stuck-case sweep's reading of a workflow description."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowExecutionStatus

from contracts.documents import WithdrawalAnswered, WithdrawalRequested
from domain.eligibility import EnrolmentFacts, OutgoingRequestFacts, check_transfer_out
from domain.identity import personal_data_in_text
from domain.matching import (
    CaseFile,
    MismatchCode,
    SheetFacts,
    main_remittance_id,
    notice_mismatch,
    remittance_matches_sheet,
    sheet_mismatch,
)
from domain.vocabulary import RefusalCode
from services.common.stuck import stuck_reason

pytestmark = pytest.mark.unit

PERSON = "11010519491231002X"
CASE = CaseFile(case_id="TR1", id_number=PERSON, from_region="620800", from_scheme="employee")


def sheet(**overrides: str) -> SheetFacts:
    values = {
        "id_number": PERSON,
        "from_region": "620800",
        "issued_by_region": "620800",
        "scheme": "employee",
    } | overrides
    return SheetFacts(**values)


def test_r13_a_sheet_about_this_case_is_accepted() -> None:
    assert sheet_mismatch(CASE, sheet(id_number=PERSON.lower())) is None


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"id_number": "110105194912310037"}, MismatchCode.SHEET_PERSON),
        ({"from_region": "350100", "issued_by_region": "350100"}, MismatchCode.SHEET_REGION),
        ({"issued_by_region": "350100"}, MismatchCode.SHEET_REGION),
        ({"scheme": "resident"}, MismatchCode.SHEET_SCHEME),
    ],
)
def test_r13_a_sheet_about_another_person_region_or_scheme_is_held(
    overrides: dict[str, str], code: MismatchCode
) -> None:
    assert sheet_mismatch(CASE, sheet(**overrides)) == code


def notice(**overrides: Any) -> MismatchCode | None:
    values: dict[str, Any] = {
        "case_id": "TR1",
        "balance_action": "remit",
        "sheet_balance_fen": 500,
        "notice_type": "BalanceRemitted",
        "remittance_id": main_remittance_id("TR1"),
        "amount_fen": 500,
    } | overrides
    return notice_mismatch(**values)


def test_r15_the_announced_notice_for_this_case_settles_it() -> None:
    assert notice() is None
    # Another amount on the right remittance is the R15 clerk decision, not a refusal.
    assert notice(amount_fen=499) is None
    assert notice(balance_action="keep_usable", notice_type="BalanceNotTransferred") is None


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"remittance_id": main_remittance_id("TR2")}, MismatchCode.REMITTANCE_ID),
        ({"notice_type": "BalancePaidToBank"}, MismatchCode.NOTICE_KIND),
        ({"balance_action": "keep_usable"}, MismatchCode.NOTICE_KIND),
        (
            {"balance_action": "pay_to_bank", "notice_type": "BalancePaidToBank", "amount_fen": 1},
            MismatchCode.AMOUNT,
        ),
    ],
)
def test_r15_a_notice_of_another_case_kind_or_amount_settles_nothing(
    overrides: dict[str, Any], code: MismatchCode
) -> None:
    assert notice(**overrides) == code


def enrolment(**overrides: Any) -> EnrolmentFacts:
    values: dict[str, Any] = {
        "id_number": PERSON,
        "name": "张三",
        "region": "620800",
        "scheme": "employee",
        "status": "suspended",
        "suspended_on": date(2026, 10, 31),
        "arrears_fen": 0,
        "account_status": "normal",
        "balance_fen": 100,
        "contribution_months": 12,
        "also_active_in": None,
    } | overrides
    return EnrolmentFacts(**values)


REQUEST = OutgoingRequestFacts(
    id_number=PERSON,
    name="张三",
    from_region="620800",
    to_region="610100",
    from_scheme="employee",
    to_scheme="employee",
)


def test_r5_an_enrolment_claimed_by_another_open_case_is_refused_hard() -> None:
    assert check_transfer_out(REQUEST, enrolment()) == []
    refusals = check_transfer_out(REQUEST, enrolment(claimed_by_other_case=True))
    assert [(r.code, r.rule, r.soft) for r in refusals] == [
        (RefusalCode.ENROLMENT_IN_TRANSFER, "R5", False)
    ]


@pytest.mark.parametrize(
    "text",
    [
        f"moved, ID {PERSON}",
        "call 138 1234 5678",
        "account 6222 0212 3456 7890",
        "13812345678",
    ],
)
def test_free_text_with_an_id_phone_or_account_number_is_refused(text: str) -> None:
    assert personal_data_in_text(text)
    with pytest.raises(ValidationError):
        WithdrawalRequested(kind="withdrawal", reason=text, requested_on=date(2026, 12, 2))


@pytest.mark.parametrize(
    "text", ["", "不再需要转移", "case TR20261202A123456789 duplicate", "moved on 2026-12-02"]
)
def test_ordinary_free_text_is_accepted(text: str) -> None:
    assert not personal_data_in_text(text)


def test_r16_an_answer_says_what_it_means() -> None:
    with pytest.raises(ValidationError):
        WithdrawalAnswered(
            kind="withdrawal",
            accepted=True,
            reason_code="TOO_LATE_TRANSFERRED_OUT",
            rule="R16",
            message_en="x",
            message_zh="x",
        )


# --- the stuck-case sweep -----------------------------------------------------------------
@dataclass
class Named:
    name: str


@dataclass
class Info:
    type: str


@dataclass
class Failure:
    application_failure_info: Info


@dataclass
class Activity:
    attempt: int
    activity_type: Named
    last_failure: Failure | None = None


@dataclass
class Task:
    attempt: int


@dataclass
class Raw:
    pending_workflow_task: Task | None = None
    pending_activities: list[Activity] = field(default_factory=list)


@dataclass
class Description:
    status: WorkflowExecutionStatus = WorkflowExecutionStatus.RUNNING
    raw_description: Raw = field(default_factory=Raw)


def test_a_healthy_or_waiting_workflow_is_not_stuck() -> None:
    assert stuck_reason(Description(), case_terminal=False) is None
    waiting = Raw(
        pending_activities=[
            Activity(9, Named("deliver_document"), Failure(Info("RegionNotConnected")))
        ]
    )
    assert stuck_reason(Description(raw_description=waiting), case_terminal=False) is None
    done = Description(status=WorkflowExecutionStatus.COMPLETED)
    assert stuck_reason(done, case_terminal=True) is None


def test_a_failing_task_activity_or_closed_workflow_of_an_open_case_is_stuck() -> None:
    failing_task = Description(raw_description=Raw(pending_workflow_task=Task(4)))
    assert stuck_reason(failing_task, case_terminal=False) == "WORKFLOW_TASK_FAILING"
    failing = Raw(
        pending_activities=[Activity(6, Named("transfer_out"), Failure(Info("OperationalError")))]
    )
    assert (
        stuck_reason(Description(raw_description=failing), case_terminal=False)
        == "ACTIVITY_FAILING:transfer_out:OperationalError"
    )
    failed = Description(status=WorkflowExecutionStatus.FAILED)
    assert stuck_reason(failed, case_terminal=False) == "WORKFLOW_FAILED"


def test_a_document_without_receipt_is_resent_with_doubling_waits_up_to_an_hour() -> None:
    from datetime import timedelta

    from services.common.resend import ResendSweep

    sweep = ResendSweep(None, None, None, first_wait=timedelta(seconds=60))  # type: ignore[arg-type]
    waits = [sweep.wait_after(n).total_seconds() for n in (1, 2, 3, 7, 30)]
    assert waits == [60, 120, 240, 3600, 3600]


@pytest.mark.parametrize(("amount_fen", "matches"), [(123_456, True), (123_455, False), (0, False)])
def test_r15_only_the_announced_amount_to_the_fen_is_credited(
    amount_fen: int, matches: bool
) -> None:
    assert remittance_matches_sheet(amount_fen=amount_fen, sheet_balance_fen=123_456) is matches
