"""What happens to the personal-account balance (R18-R22)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from domain.eligibility import Scheme
from domain.money import Fen, format_fen
from domain.regions import is_region_code, province_of, same_province

BalanceAction = Literal["remit", "pay_to_bank", "keep_usable", "none"]

_INTRA_PROVINCE_ACTIONS = frozenset({"remit", "keep_usable", "pay_to_bank"})
_EMPLOYEE_TO_RESIDENT_ACTIONS = frozenset({"pay_to_bank", "keep_usable"})


class BalancePolicyError(ValueError):
    """A balance policy table holds an impossible setting."""


def _default_intra_province() -> dict[str, BalanceAction]:
    return {"44": "keep_usable"}  # R20 Guangdong


@dataclass(frozen=True)
class BalanceDecision:
    """The action for the balance and why.

    ``awaiting_bank_account``: the action is ``pay_to_bank`` but no account is on file
    yet, so the payout waits for the person to give one.
    """

    action: BalanceAction
    amount_fen: Fen
    rule: str
    explanation_en: str
    explanation_zh: str
    awaiting_bank_account: bool = False


@dataclass(frozen=True)
class BalancePolicy:
    """R20 per-province table (two-digit province code -> action for transfers between
    that province's regions; provinces not listed use ``default_intra_province``) and
    the R22 employee -> resident action."""

    intra_province: dict[str, BalanceAction] = field(default_factory=_default_intra_province)
    employee_to_resident: BalanceAction = "pay_to_bank"  # R22
    default_intra_province: BalanceAction = "remit"

    def __post_init__(self) -> None:
        for province, action in self.intra_province.items():
            if not (
                isinstance(province, str)
                and len(province) == 2
                and province.isascii()
                and province.isdigit()
            ):
                raise BalancePolicyError("intra_province keys are two-digit province codes")
            if action not in _INTRA_PROVINCE_ACTIONS:
                raise BalancePolicyError(f"province {province}: action {action!r} not allowed")
        if self.default_intra_province not in _INTRA_PROVINCE_ACTIONS:
            raise BalancePolicyError("default_intra_province: action not allowed")
        # The resident scheme has no personal account, so it can never receive a remittance.
        if self.employee_to_resident not in _EMPLOYEE_TO_RESIDENT_ACTIONS:
            raise BalancePolicyError("employee_to_resident must be pay_to_bank or keep_usable")

    def intra_province_action(self, province_code: str) -> BalanceAction:
        return self.intra_province.get(province_code, self.default_intra_province)

    def to_json(self) -> dict[str, Any]:
        return {
            "intra_province": dict(sorted(self.intra_province.items())),
            "employee_to_resident": self.employee_to_resident,
            "default_intra_province": self.default_intra_province,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BalancePolicy:
        defaults = cls()
        return cls(
            intra_province=dict(data.get("intra_province", defaults.intra_province)),
            employee_to_resident=data.get("employee_to_resident", defaults.employee_to_resident),
            default_intra_province=data.get(
                "default_intra_province", defaults.default_intra_province
            ),
        )


_ACTION_ZH = {
    "remit": "划转至转入地个人账户",
    "pay_to_bank": "支付至本人银行账户",
    "keep_usable": "保留在原账户，省内跨市继续使用",
    "none": "无需处理",
}


def _decision(
    action: BalanceAction,
    amount_fen: Fen,
    rule: str,
    why_en: str,
    why_zh: str,
    *,
    has_bank_account: bool = True,
) -> BalanceDecision:
    amount = format_fen(amount_fen)
    awaiting = action == "pay_to_bank" and not has_bank_account
    en = f"Balance {amount} yuan: {action.replace('_', ' ')} ({rule}). {why_en}"
    zh = f"个人账户余额{amount}元：{_ACTION_ZH[action]}（{rule}）。{why_zh}"
    if awaiting:
        en += " Waiting for the person's bank account."
        zh += "待参保人提供本人银行账户。"
    return BalanceDecision(action, amount_fen, rule, en, zh, awaiting)


def decide_balance(
    *,
    from_region: str,
    to_region: str,
    from_scheme: Scheme,
    to_scheme: Scheme,
    balance_fen: Fen,
    resettled_retiree: bool,
    incoming_connected: bool,
    has_bank_account: bool,
    policy: BalancePolicy,
) -> BalanceDecision:
    """Decide what happens to the personal-account balance of a transfer.

    Order: R21 resettled retiree (employee scheme) in another province, even with nothing
    to pay (the case is a payout, not a transfer: its rule tells both agencies so); no
    balance / no personal account; R22 employee -> resident; R20 intra-province table;
    R18 cross-province remittance; then R19: a remittance to a region not connected to the
    platform goes to the person's bank account if one is known, otherwise it stays a
    remittance that waits (R23).
    """
    _check_inputs(from_region, to_region, balance_fen)
    cross_province = not same_province(from_region, to_region)

    # R21: the retiree's account is paid out; the enrolment is not transferred.
    if resettled_retiree and cross_province and from_scheme == "employee":
        return _retiree_payout(balance_fen, has_bank_account)

    # R12: only a balance held in a personal account moves; the resident scheme has none.
    if balance_fen == 0 or from_scheme == "resident":
        return _decision(
            "none",
            0,
            "R12",
            "There is no personal-account balance to move.",
            "无个人账户余额需要处理。",
        )

    return _moved_balance(
        from_region,
        to_scheme,
        balance_fen,
        cross_province=cross_province,
        incoming_connected=incoming_connected,
        has_bank_account=has_bank_account,
        policy=policy,
    )


def _moved_balance(
    from_region: str,
    to_scheme: Scheme,
    balance_fen: Fen,
    *,
    cross_province: bool,
    incoming_connected: bool,
    has_bank_account: bool,
    policy: BalancePolicy,
) -> BalanceDecision:
    """A balance held in an employee personal account: R22, R20, R18, then R19/R23."""
    # R22
    if to_scheme == "resident":
        return _decision(
            policy.employee_to_resident,
            balance_fen,
            "R22",
            "The resident scheme has no personal account to credit.",
            "城乡居民医保无个人账户，余额无法划入。",
            has_bank_account=has_bank_account,
        )

    if not cross_province:
        # R20
        province = province_of(from_region)
        action = policy.intra_province_action(province)
        why_en = f"Transfer within province {province}: per-province policy."
        why_zh = f"省内（{province}）转移，按本省政策处理。"
        if action != "remit":
            return _decision(
                action, balance_fen, "R20", why_en, why_zh, has_bank_account=has_bank_account
            )
        remittance = _decision("remit", balance_fen, "R20", why_en, why_zh)
    else:
        # R18
        remittance = _decision(
            "remit",
            balance_fen,
            "R18",
            "Cross-province transfer: the balance follows the enrolment.",
            "跨省转移，个人账户余额随参保关系转移。",
        )
    if incoming_connected:
        return remittance
    return _remittance_to_a_region_not_connected(balance_fen, has_bank_account)


def _check_inputs(from_region: str, to_region: str, balance_fen: Fen) -> None:
    if isinstance(balance_fen, bool) or not isinstance(balance_fen, int) or balance_fen < 0:
        raise ValueError("balance_fen must be a non-negative integer")
    if not (is_region_code(from_region) and is_region_code(to_region)):
        raise ValueError("region codes are six digits")
    if from_region == to_region:
        raise ValueError("same pooling region: no transfer case (R1)")


def _retiree_payout(balance_fen: Fen, has_bank_account: bool) -> BalanceDecision:
    """R21: a retiree resettled in another province is paid out, even with nothing to pay
    (the case is a payout, not a transfer: its rule tells both agencies so)."""
    if balance_fen == 0:
        return _decision(
            "none",
            0,
            "R21",
            "Retiree resettled in another province: there is no balance to pay out.",
            "跨省异地安置退休人员，个人账户无余额需要支付。",
        )
    return _decision(
        "pay_to_bank",
        balance_fen,
        "R21",
        "Retiree resettled in another province: paid to the retiree's own bank account.",
        "跨省异地安置退休人员，个人账户余额支付至本人银行账户。",
        has_bank_account=has_bank_account,
    )


def _remittance_to_a_region_not_connected(
    balance_fen: Fen, has_bank_account: bool
) -> BalanceDecision:
    if has_bank_account:
        # R19
        return _decision(
            "pay_to_bank",
            balance_fen,
            "R19",
            "The incoming region is not connected to the national platform, so the"
            " balance is paid to the person's own bank account instead.",
            "转入地尚未接入国家医保信息平台，余额改为支付至本人银行账户。",
        )
    # R23: nothing is paid out or lost; the remittance waits until the region is live.
    return _decision(
        "remit",
        balance_fen,
        "R23",
        "The incoming region is not yet connected to the national platform and no bank"
        " account is known: the remittance waits until the region goes live.",
        "转入地尚未接入国家医保信息平台且无本人银行账户，待转入地接入后再划转。",
    )
