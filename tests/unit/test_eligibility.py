from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.documents import RefusalReason
from domain.eligibility import (
    REFUSALS,
    ApplicationFacts,
    EnrolmentFacts,
    OutgoingRequestFacts,
    Refusal,
    check_application,
    check_transfer_out,
)
from domain.regions import RegionRegistry
from domain.vocabulary import RefusalCode
from tests.unit.conftest import valid_resident_ids

pytestmark = pytest.mark.unit

D = date.fromisoformat
PERSON_ID = "11010519491231002X"
PERSON_NAME = "张三丰"
ACCOUNT = "6222021234567890123"


def application(**changes: object) -> ApplicationFacts:
    base = ApplicationFacts(
        id_number=PERSON_ID,
        from_region="620800",  # Pingliang
        to_region="350100",  # Fuzhou
        from_scheme="employee",
        to_scheme="employee",
        applied_on=D("2026-03-02"),
        incoming_enrolled_since=D("2026-02-01"),
        left_outgoing_on=D("2026-01-15"),
        bank_account=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def record(**changes: object) -> EnrolmentFacts:
    base = EnrolmentFacts(
        id_number=PERSON_ID,
        name=PERSON_NAME,
        region="620800",
        scheme="employee",
        status="suspended",
        suspended_on=D("2026-01-15"),
        arrears_fen=0,
        account_status="normal",
        balance_fen=123456,
        contribution_months=86,
        also_active_in=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def request(**changes: object) -> OutgoingRequestFacts:
    base = OutgoingRequestFacts(
        id_number=PERSON_ID,
        name=PERSON_NAME,
        from_region="620800",
        to_region="350100",
        from_scheme="employee",
        to_scheme="employee",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def codes(refusals: list[Refusal]) -> list[str]:
    return [r.code for r in refusals]


@pytest.mark.parametrize(
    ("code", "rule", "soft"),
    [
        (RefusalCode.SAME_REGION, "R1", False),
        (RefusalCode.RESIDENT_TOO_EARLY, "R3", False),
        (RefusalCode.CROSS_SCHEME_NOT_READY, "R4", False),
        (RefusalCode.DOUBLE_ENROLMENT, "R5", True),
        (RefusalCode.ENROLMENT_ACTIVE, "R6", True),
        (RefusalCode.CONTRIBUTION_ARREARS, "R7", True),
        (RefusalCode.ACCOUNT_FROZEN, "R8", True),
        (RefusalCode.PERSON_UNKNOWN, "R9", False),
        (RefusalCode.IDENTITY_MISMATCH, "R9", False),
        (RefusalCode.PROVINCE_WIDE_PLATFORM, "R20", False),
        (RefusalCode.RETIREE_OUTSIDE_TRANSFER, "R21", False),
    ],
)
def test_r1_r3_to_r9_reason_catalogue(code: str, rule: str, soft: bool) -> None:
    refusal = REFUSALS[code]
    assert (refusal.code, refusal.rule, refusal.soft) == (code, rule, soft)


def test_r9_catalogue_messages_fit_the_refusal_document() -> None:
    # A refusal travels as a RefusalReason (contracts/documents.py): 200 characters each.
    for refusal in REFUSALS.values():
        RefusalReason(
            code=refusal.code,
            rule=refusal.rule,
            soft=refusal.soft,
            message_zh=refusal.message_zh,
            message_en=refusal.message_en,
        )


def test_catalogue_messages_are_bilingual_and_carry_no_digits_runs() -> None:
    for refusal in REFUSALS.values():
        assert re.fullmatch(r"R\d+", refusal.rule)
        assert refusal.message_zh.strip()
        assert refusal.message_en.strip()
        for message in (refusal.message_zh, refusal.message_en):
            assert not re.search(r"\d{3,}", message)
            for secret in (PERSON_ID, PERSON_NAME, ACCOUNT):
                assert secret not in message


class TestApplication:
    def test_r2_employee_to_employee_accepted(self, registry: RegionRegistry) -> None:
        assert check_application(application(), registry) == []

    def test_r2_incoming_enrolment_required(self, registry: RegionRegistry) -> None:
        assert codes(check_application(application(incoming_enrolled_since=None), registry)) == [
            RefusalCode.INCOMING_NOT_ENROLLED
        ]
        future = application(incoming_enrolled_since=D("2026-04-01"))
        assert codes(check_application(future, registry)) == [RefusalCode.INCOMING_NOT_ENROLLED]

    def test_r1_same_region_refused(self, registry: RegionRegistry) -> None:
        refusals = check_application(application(to_region="620800"), registry)
        assert codes(refusals) == [RefusalCode.SAME_REGION]
        assert refusals[0].rule == "R1"
        assert not refusals[0].soft

    def test_r1_same_region_refused_even_cross_scheme(self, registry: RegionRegistry) -> None:
        app = application(to_region="620800", to_scheme="resident")
        assert codes(check_application(app, registry)) == [RefusalCode.SAME_REGION]

    def test_r1_neighbouring_regions_are_not_same_region(self, registry: RegionRegistry) -> None:
        assert check_application(application(to_region="620100"), registry) == []

    def test_invalid_id_number(self, registry: RegionRegistry) -> None:
        refusals = check_application(application(id_number="110105194912310021"), registry)
        assert codes(refusals) == [RefusalCode.INVALID_ID_NUMBER]
        assert all("110105194912310021" not in r.message_en + r.message_zh for r in refusals)

    def test_unknown_region(self, registry: RegionRegistry) -> None:
        assert codes(check_application(application(to_region="999999"), registry)) == [
            RefusalCode.UNKNOWN_REGION
        ]

    def test_bank_account_checked_when_given(self, registry: RegionRegistry) -> None:
        assert check_application(application(bank_account="6222 0212 3456 7890"), registry) == []
        refusals = check_application(application(bank_account="12345"), registry)
        assert codes(refusals) == [RefusalCode.INVALID_BANK_ACCOUNT]
        assert refusals[0].soft

    def test_independent_problems_reported_together(self, registry: RegionRegistry) -> None:
        app = application(id_number="123", to_region="999999", bank_account="x")
        assert codes(check_application(app, registry)) == [
            RefusalCode.INVALID_ID_NUMBER,
            RefusalCode.UNKNOWN_REGION,
            RefusalCode.INVALID_BANK_ACCOUNT,
        ]


class TestR3ResidentToResident:
    def resident(self, **changes: object) -> ApplicationFacts:
        base = {
            "from_scheme": "resident",
            "to_scheme": "resident",
            "left_outgoing_on": D("2025-06-20"),
            "incoming_enrolled_since": D("2026-01-01"),
            "applied_on": D("2026-01-05"),
        }
        base.update(changes)
        return application(**base)

    def test_r3_next_year_enrolment_accepted(self, registry: RegionRegistry) -> None:
        assert check_application(self.resident(), registry) == []

    def test_r3_same_year_enrolment_refused(self, registry: RegionRegistry) -> None:
        refusals = check_application(
            self.resident(incoming_enrolled_since=D("2025-09-01"), applied_on=D("2025-10-08")),
            registry,
        )
        assert codes(refusals) == [RefusalCode.RESIDENT_TOO_EARLY]
        assert refusals[0].rule == "R3"
        assert not refusals[0].soft

    def test_r3_application_before_enrolment_starts_refused(self, registry: RegionRegistry) -> None:
        refusals = check_application(self.resident(applied_on=D("2025-12-20")), registry)
        assert codes(refusals) == [RefusalCode.RESIDENT_TOO_EARLY]

    def test_r3_applied_on_first_day_of_enrolment_accepted(self, registry: RegionRegistry) -> None:
        assert check_application(self.resident(applied_on=D("2026-01-01")), registry) == []

    @pytest.mark.parametrize("missing", ["incoming_enrolled_since", "left_outgoing_on"])
    def test_r3_missing_dates_refused(self, registry: RegionRegistry, missing: str) -> None:
        assert codes(check_application(self.resident(**{missing: None}), registry)) == [
            RefusalCode.RESIDENT_TOO_EARLY
        ]


class TestR4CrossScheme:
    @pytest.mark.parametrize(
        ("from_scheme", "to_scheme"), [("employee", "resident"), ("resident", "employee")]
    )
    def test_r4_not_enrolled_incoming_refused(
        self, registry: RegionRegistry, from_scheme: str, to_scheme: str
    ) -> None:
        app = application(
            from_scheme=from_scheme,
            to_scheme=to_scheme,
            incoming_enrolled_since=None,
            bank_account=ACCOUNT,
        )
        refusals = check_application(app, registry)
        assert codes(refusals) == [RefusalCode.CROSS_SCHEME_NOT_READY]
        assert refusals[0].rule == "R4"
        assert not refusals[0].soft

    @pytest.mark.parametrize(
        ("from_scheme", "to_scheme"), [("employee", "resident"), ("resident", "employee")]
    )
    def test_r4_enrolled_incoming_accepted(
        self, registry: RegionRegistry, from_scheme: str, to_scheme: str
    ) -> None:
        app = application(from_scheme=from_scheme, to_scheme=to_scheme, bank_account=ACCOUNT)
        assert check_application(app, registry) == []

    def test_r4_enrolment_in_future_refused(self, registry: RegionRegistry) -> None:
        app = application(
            to_scheme="resident", incoming_enrolled_since=D("2027-01-01"), bank_account=ACCOUNT
        )
        assert codes(check_application(app, registry)) == [RefusalCode.CROSS_SCHEME_NOT_READY]


class TestR22EmployeeToResident:
    def test_r22_bank_account_required(self, registry: RegionRegistry) -> None:
        app = application(from_scheme="employee", to_scheme="resident")
        refusals = check_application(app, registry)
        assert codes(refusals) == [RefusalCode.BANK_ACCOUNT_FOR_RESIDENT]
        assert refusals[0].rule == "R22"
        assert refusals[0].soft

    def test_r22_resident_to_employee_needs_no_account(self, registry: RegionRegistry) -> None:
        app = application(from_scheme="resident", to_scheme="employee")
        assert check_application(app, registry) == []


class TestR20ProvinceWidePlatform:
    """Shaanxi (61) runs one platform for its cities: a move between them is answered at
    acceptance with the rule, never a case that would count the years twice."""

    def test_r20_province_wide_platform_answered_at_acceptance(
        self, registry: RegionRegistry
    ) -> None:
        app = application(from_region="610400", to_region="610100")  # Xianyang -> Xi'an
        refusals = check_application(app, registry)
        assert codes(refusals) == [RefusalCode.PROVINCE_WIDE_PLATFORM]
        assert (refusals[0].rule, refusals[0].soft) == ("R20", False)
        assert "参保登记" in refusals[0].message_zh
        assert "Enrol directly at the incoming region" in refusals[0].message_en
        assert "not counted twice" in refusals[0].message_en

    @pytest.mark.parametrize(
        "changes",
        [
            {"to_scheme": "resident", "bank_account": ACCOUNT},
            {"from_scheme": "resident", "to_scheme": "resident"},
            {"resettled_retiree": True, "bank_account": ACCOUNT},
        ],
    )
    def test_r20_province_wide_platform_whatever_the_schemes(
        self, registry: RegionRegistry, changes: dict[str, object]
    ) -> None:
        app = application(from_region="610100", to_region="610400", **changes)
        assert codes(check_application(app, registry)) == [RefusalCode.PROVINCE_WIDE_PLATFORM]

    def test_r20_leaving_or_joining_shaanxi_is_a_transfer(self, registry: RegionRegistry) -> None:
        assert check_application(application(from_region="610100"), registry) == []
        assert check_application(application(to_region="610400"), registry) == []

    def test_r20_other_provinces_hand_over_between_their_cities(
        self, registry: RegionRegistry
    ) -> None:
        assert check_application(application(to_region="620100"), registry) == []
        guangdong = application(from_region="440300", to_region="441900")
        assert check_application(guangdong, registry) == []

    def test_r20_setting_is_the_registry_s_data(self, registry: RegionRegistry) -> None:
        data = registry.to_json()
        data["provinces"] = [p | {"province_wide_platform": False} for p in data["provinces"]]
        app = application(from_region="610400", to_region="610100")
        assert check_application(app, RegionRegistry.from_json(data)) == []


class TestR21ResettledRetiree:
    def test_r21_cross_province_with_bank_account_accepted(self, registry: RegionRegistry) -> None:
        app = application(
            resettled_retiree=True, incoming_enrolled_since=None, bank_account=ACCOUNT
        )
        assert check_application(app, registry) == []

    def test_r21_bank_account_required(self, registry: RegionRegistry) -> None:
        app = application(resettled_retiree=True, incoming_enrolled_since=None)
        refusals = check_application(app, registry)
        assert codes(refusals) == [RefusalCode.BANK_ACCOUNT_REQUIRED]
        assert refusals[0].soft

    def test_r21_only_across_provinces(self, registry: RegionRegistry) -> None:
        app = application(resettled_retiree=True, to_region="620100", bank_account=ACCOUNT)
        assert codes(check_application(app, registry)) == [RefusalCode.RETIREE_SAME_PROVINCE]


class TestTransferOut:
    def test_clean_record_passes(self) -> None:
        assert check_transfer_out(request(), record()) == []

    def test_r9_person_unknown(self) -> None:
        refusals = check_transfer_out(request(), None)
        assert codes(refusals) == [RefusalCode.PERSON_UNKNOWN]
        assert not refusals[0].soft

    def test_r9_other_scheme_or_region_is_unknown(self) -> None:
        assert codes(check_transfer_out(request(), record(scheme="resident"))) == [
            RefusalCode.PERSON_UNKNOWN
        ]
        assert codes(check_transfer_out(request(), record(region="620100"))) == [
            RefusalCode.PERSON_UNKNOWN
        ]

    @pytest.mark.parametrize(
        "changes", [{"id_number": "110105194912310037"}, {"name": "张三"}, {"name": "张三峰"}]
    )
    def test_r9_identity_mismatch_hides_everything_else(self, changes: dict[str, str]) -> None:
        # The record belongs to someone else: its arrears and account state must not leak.
        other = record(status="active", arrears_fen=500, account_status="frozen", **changes)
        refusals = check_transfer_out(request(), other)
        assert codes(refusals) == [RefusalCode.IDENTITY_MISMATCH]
        assert refusals[0].rule == "R9"
        assert not refusals[0].soft

    def test_r9_identity_comparison_normalised(self) -> None:
        assert (
            check_transfer_out(request(id_number=PERSON_ID.lower(), name=" 张 三丰 "), record())
            == []
        )

    def test_r6_enrolment_still_active(self) -> None:
        refusals = check_transfer_out(request(), record(status="active", suspended_on=None))
        assert codes(refusals) == [RefusalCode.ENROLMENT_ACTIVE]
        assert refusals[0].soft

    def test_r7_contribution_arrears(self) -> None:
        refusals = check_transfer_out(request(), record(arrears_fen=1))
        assert codes(refusals) == [RefusalCode.CONTRIBUTION_ARREARS]
        assert refusals[0].soft

    def test_r8_account_frozen(self) -> None:
        refusals = check_transfer_out(request(), record(account_status="frozen"))
        assert codes(refusals) == [RefusalCode.ACCOUNT_FROZEN]
        assert refusals[0].soft

    def test_r5_double_enrolment(self) -> None:
        refusals = check_transfer_out(request(), record(also_active_in="440300"))
        assert codes(refusals) == [RefusalCode.DOUBLE_ENROLMENT]
        assert refusals[0].rule == "R5"
        assert refusals[0].soft

    def test_r5_active_in_incoming_region_is_expected(self) -> None:
        assert check_transfer_out(request(), record(also_active_in="350100")) == []

    def test_r5_to_r8_reported_together(self) -> None:
        bad = record(
            status="active", arrears_fen=100, account_status="frozen", also_active_in="440300"
        )
        refusals = check_transfer_out(request(), bad)
        assert codes(refusals) == [
            RefusalCode.ENROLMENT_ACTIVE,
            RefusalCode.CONTRIBUTION_ARREARS,
            RefusalCode.ACCOUNT_FROZEN,
            RefusalCode.DOUBLE_ENROLMENT,
        ]
        assert all(r.soft for r in refusals)

    def test_r21_retiree_on_record_refused_an_ordinary_transfer(self) -> None:
        # The application says nothing of a pension: the record does (2021 measures).
        for status in ("suspended", "active"):
            refusals = check_transfer_out(request(), record(retired=True, status=status))
            assert codes(refusals) == [RefusalCode.RETIREE_OUTSIDE_TRANSFER]
            refusal = refusals[0]
            assert (refusal.rule, refusal.soft) == ("R21", False)
            assert "跨省异地安置退休人员" in refusal.message_zh
            assert "resettled-retiree payout" in refusal.message_en
            assert not re.search(r"[A-Za-z]", refusal.message_zh)

    def test_r21_resettled_retiree_on_record_may_be_paid_out(self) -> None:
        payout = request(resettled_retiree=True, bank_account_holder=PERSON_NAME)
        assert check_transfer_out(payout, record(retired=True)) == []

    def test_r21_r22_a_payout_without_the_person_s_account_is_refused_here_too(self) -> None:
        # The incoming acceptance checks it, but that is not this agency's record.
        payout = request(resettled_retiree=True)
        assert codes(check_transfer_out(payout, record(retired=True))) == [
            RefusalCode.BANK_ACCOUNT_REQUIRED
        ]
        to_resident = request(to_scheme="resident")
        assert codes(check_transfer_out(to_resident, record())) == [
            RefusalCode.BANK_ACCOUNT_FOR_RESIDENT
        ]
        assert check_transfer_out(to_resident, record(balance_fen=0)) == []

    def test_r21_payout_does_not_need_the_enrolment_ended(self) -> None:
        # R6 is a transfer's precondition; the retiree stays enrolled here.
        payout = request(resettled_retiree=True, bank_account_holder=PERSON_NAME)
        assert check_transfer_out(payout, record(retired=True, status="active")) == []
        assert codes(check_transfer_out(payout, record(retired=True, arrears_fen=1))) == [
            RefusalCode.CONTRIBUTION_ARREARS
        ]

    def test_r21_payout_claim_without_record_is_soft(self) -> None:
        refusals = check_transfer_out(request(resettled_retiree=True), record())
        assert codes(refusals) == [RefusalCode.RETIREE_NOT_ON_RECORD]
        assert refusals[0].soft

    def test_r21_payout_within_the_province_refused_at_the_outgoing_agency_too(self) -> None:
        payout = request(resettled_retiree=True, to_region="620100")
        assert codes(check_transfer_out(payout, record(retired=True))) == [
            RefusalCode.RETIREE_SAME_PROVINCE
        ]

    def test_r21_identity_checked_before_retiree_status(self) -> None:
        other = record(retired=True, name="李四")
        assert codes(check_transfer_out(request(), other)) == [RefusalCode.IDENTITY_MISMATCH]

    def test_r11_already_transferred(self) -> None:
        assert codes(check_transfer_out(request(), record(status="transferred_out"))) == [
            RefusalCode.ALREADY_TRANSFERRED
        ]


names = st.text(
    alphabet="赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜",
    min_size=2,
    max_size=4,
)


@given(
    id_number=valid_resident_ids() | st.text(alphabet="0123456789Xx -", max_size=20),
    name=names,
    account=st.from_regex(r"[0-9]{12,30}", fullmatch=True)
    | st.text(alphabet="0123456789 -", max_size=12),
    status=st.sampled_from(["active", "suspended", "transferred_out"]),
    arrears=st.integers(min_value=0, max_value=10**6),
    frozen=st.booleans(),
    other_id=st.booleans(),
)
def test_refusals_are_catalogue_entries_without_personal_data(
    id_number: str,
    name: str,
    account: str,
    status: str,
    arrears: int,
    frozen: bool,
    other_id: bool,
) -> None:
    registry = RegionRegistry()
    app = application(id_number=id_number, bank_account=account)
    rec = record(
        id_number=PERSON_ID if other_id else id_number,
        name=name,
        status=status,
        arrears_fen=arrears,
        account_status="frozen" if frozen else "normal",
    )
    refusals = check_application(app, registry) + check_transfer_out(
        request(id_number=id_number, name=name), rec
    )
    for refusal in refusals:
        assert refusal == REFUSALS[refusal.code]
        for message in (refusal.message_zh, refusal.message_en):
            if len(id_number) >= 6:
                assert id_number not in message
            if len(account) >= 6:
                assert account not in message
            assert name not in message
