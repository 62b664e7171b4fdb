from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.balance import BalanceDecision, BalancePolicy, BalancePolicyError, decide_balance

pytestmark = pytest.mark.unit

BALANCE = 123456  # 1234.56 yuan


def decide(**changes: Any) -> BalanceDecision:
    args: dict[str, Any] = {
        "from_region": "620800",  # Pingliang, Gansu
        "to_region": "350100",  # Fuzhou, Fujian
        "from_scheme": "employee",
        "to_scheme": "employee",
        "balance_fen": BALANCE,
        "resettled_retiree": False,
        "incoming_connected": True,
        "has_bank_account": False,
        "policy": BalancePolicy(),
    }
    args.update(changes)
    return decide_balance(**args)


def test_r18_balance_follows_cross_province() -> None:
    decision = decide()
    assert (decision.action, decision.amount_fen, decision.rule) == ("remit", BALANCE, "R18")
    assert "1234.56" in decision.explanation_en
    assert "1234.56" in decision.explanation_zh


def test_r18_connected_with_bank_account_still_remits() -> None:
    assert decide(has_bank_account=True).action == "remit"


class TestR19NotConnected:
    def test_r19_pay_to_bank_when_incoming_not_connected(self) -> None:
        decision = decide(to_region="654300", incoming_connected=False, has_bank_account=True)
        assert (decision.action, decision.amount_fen, decision.rule) == (
            "pay_to_bank",
            BALANCE,
            "R19",
        )
        assert not decision.awaiting_bank_account

    def test_r19_r23_without_bank_account_remittance_waits(self) -> None:
        decision = decide(to_region="654300", incoming_connected=False, has_bank_account=False)
        assert (decision.action, decision.amount_fen, decision.rule) == ("remit", BALANCE, "R23")

    def test_r19_applies_to_intra_province_remittance(self) -> None:
        decision = decide(to_region="620100", incoming_connected=False, has_bank_account=True)
        assert (decision.action, decision.rule) == ("pay_to_bank", "R19")


class TestR20GuangdongIntraProvince:
    @pytest.mark.parametrize(("a", "b"), [("440300", "441900"), ("441900", "440100")])
    def test_r20_guangdong_keeps_balance_usable(self, a: str, b: str) -> None:
        decision = decide(from_region=a, to_region=b)
        assert (decision.action, decision.amount_fen, decision.rule) == (
            "keep_usable",
            BALANCE,
            "R20",
        )

    def test_r20_guangdong_unaffected_by_connection(self) -> None:
        decision = decide(
            from_region="440300",
            to_region="441900",
            incoming_connected=False,
            has_bank_account=True,
        )
        assert decision.action == "keep_usable"

    def test_r20_guangdong_to_other_province_remits(self) -> None:
        assert decide(from_region="440300", to_region="110000").rule == "R18"


class TestR20OtherProvinces:
    def test_r20_default_intra_province_remits(self) -> None:
        decision = decide(to_region="620100")
        assert (decision.action, decision.rule) == ("remit", "R20")

    def test_r20_policy_table_per_province(self) -> None:
        policy = BalancePolicy(intra_province={"44": "keep_usable", "62": "pay_to_bank"})
        decision = decide(to_region="620100", policy=policy, has_bank_account=False)
        assert (decision.action, decision.rule) == ("pay_to_bank", "R20")
        assert decision.awaiting_bank_account
        assert decide(from_region="440300", to_region="441900", policy=policy).action == (
            "keep_usable"
        )

    def test_r20_province_removed_from_table_remits(self) -> None:
        policy = BalancePolicy(intra_province={})
        assert decide(from_region="440300", to_region="441900", policy=policy).action == "remit"


class TestR21ResettledRetiree:
    def test_r21_cross_province_paid_to_bank(self) -> None:
        decision = decide(resettled_retiree=True, has_bank_account=True)
        assert (decision.action, decision.amount_fen, decision.rule) == (
            "pay_to_bank",
            BALANCE,
            "R21",
        )
        assert not decision.awaiting_bank_account

    def test_r21_waits_for_bank_account(self) -> None:
        decision = decide(resettled_retiree=True, has_bank_account=False)
        assert decision.action == "pay_to_bank"
        assert decision.awaiting_bank_account

    def test_r21_zero_balance_is_still_the_payout_path(self) -> None:
        # Both agencies read the rule: R21 is a payout, never a transfer of the enrolment.
        decision = decide(resettled_retiree=True, balance_fen=0)
        assert (decision.action, decision.amount_fen, decision.rule) == ("none", 0, "R21")
        assert not decision.awaiting_bank_account

    def test_r21_resident_scheme_has_no_account_to_pay_out(self) -> None:
        decision = decide(resettled_retiree=True, from_scheme="resident", to_scheme="resident")
        assert (decision.action, decision.rule) == ("none", "R12")

    def test_r21_intra_province_retiree_follows_r20(self) -> None:
        decision = decide(from_region="440300", to_region="441900", resettled_retiree=True)
        assert decision.rule == "R20"


class TestR22EmployeeToResident:
    def test_r22_paid_to_bank(self) -> None:
        decision = decide(to_scheme="resident", has_bank_account=True)
        assert (decision.action, decision.amount_fen, decision.rule) == (
            "pay_to_bank",
            BALANCE,
            "R22",
        )

    def test_r22_precedes_r20(self) -> None:
        decision = decide(from_region="440300", to_region="441900", to_scheme="resident")
        assert decision.rule == "R22"

    def test_r22_configurable(self) -> None:
        policy = BalancePolicy(employee_to_resident="keep_usable")
        assert decide(to_scheme="resident", policy=policy).action == "keep_usable"

    def test_r22_never_remits_to_resident_scheme(self) -> None:
        with pytest.raises(BalancePolicyError):
            BalancePolicy(employee_to_resident="remit")


class TestNothingToMove:
    def test_zero_balance(self) -> None:
        decision = decide(balance_fen=0)
        assert (decision.action, decision.amount_fen) == ("none", 0)

    def test_resident_scheme_has_no_personal_account(self) -> None:
        decision = decide(from_scheme="resident", to_scheme="employee")
        assert (decision.action, decision.amount_fen) == ("none", 0)

    def test_negative_balance_rejected(self) -> None:
        with pytest.raises(ValueError, match="non-negative"):
            decide(balance_fen=-1)

    def test_r1_same_region_rejected(self) -> None:
        with pytest.raises(ValueError, match="R1"):
            decide(to_region="620800")


class TestPolicy:
    def test_default_is_guangdong_keep_usable(self) -> None:
        assert BalancePolicy().intra_province == {"44": "keep_usable"}
        assert BalancePolicy().employee_to_resident == "pay_to_bank"

    @pytest.mark.parametrize(
        "table", [{"440000": "keep_usable"}, {"4": "remit"}, {"44": "none"}, {"44": "teleport"}]
    )
    def test_invalid_table_rejected(self, table: dict[str, Any]) -> None:
        with pytest.raises(BalancePolicyError):
            BalancePolicy(intra_province=table)

    def test_json_round_trip(self) -> None:
        policy = BalancePolicy(intra_province={"44": "keep_usable", "62": "pay_to_bank"})
        assert BalancePolicy.from_json(policy.to_json()) == policy


regions = st.sampled_from(["620800", "620100", "610100", "440300", "441900", "110000", "654300"])
schemes = st.sampled_from(["employee", "resident"])


@given(
    from_region=regions,
    to_region=regions,
    from_scheme=schemes,
    to_scheme=schemes,
    balance=st.integers(min_value=0, max_value=10**10),
    retiree=st.booleans(),
    connected=st.booleans(),
    has_bank=st.booleans(),
)
def test_r18_to_r22_balance_is_never_split_or_lost(
    from_region: str,
    to_region: str,
    from_scheme: str,
    to_scheme: str,
    balance: int,
    retiree: bool,
    connected: bool,
    has_bank: bool,
) -> None:
    if from_region == to_region:
        return
    decision = decide(
        from_region=from_region,
        to_region=to_region,
        from_scheme=from_scheme,
        to_scheme=to_scheme,
        balance_fen=balance,
        resettled_retiree=retiree,
        incoming_connected=connected,
        has_bank_account=has_bank,
    )
    if decision.action == "none":
        assert decision.amount_fen == 0
        assert balance == 0 or from_scheme == "resident"
    else:
        assert decision.amount_fen == balance > 0
    if to_scheme == "resident":
        assert decision.action != "remit"
    if decision.action == "remit" and not connected:
        assert not has_bank
        assert decision.rule == "R23"
    assert decision.rule.startswith("R")
