"""R16 at transfer-out, without a database: the balance the check saw is the balance that
moves, one debit of all of it when the balance action moves money, the account at zero."""

from __future__ import annotations

import pytest

from domain.settlement import BalanceChanged, Settlement, settle_transfer_out

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("action", ["remit", "pay_to_bank"])
def test_r16_a_balance_that_moves_is_debited_whole_and_the_account_left_at_zero(
    action: str,
) -> None:
    assert settle_transfer_out(1_234_56, 1_234_56, action) == Settlement(
        balance_fen=1_234_56, debit_fen=1_234_56, balance_after_fen=0
    )


@pytest.mark.parametrize("action", ["keep_usable", "none"])
def test_r16_a_balance_that_stays_is_not_debited(action: str) -> None:
    assert settle_transfer_out(8_800_00, 8_800_00, action) == Settlement(
        balance_fen=8_800_00, debit_fen=0, balance_after_fen=8_800_00
    )


def test_r16_an_empty_account_has_no_debit_leg() -> None:
    assert settle_transfer_out(0, 0, "remit") == Settlement(0, debit_fen=0, balance_after_fen=0)


@pytest.mark.parametrize("balance", [0, 99_99, 1_000_01])
def test_r16_a_balance_other_than_the_checked_one_is_refused(balance: int) -> None:
    with pytest.raises(BalanceChanged):
        settle_transfer_out(balance, 1_000_00, "remit")
