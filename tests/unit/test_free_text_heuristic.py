"""Found by a second review (each a bug before its fix): personal_data_in_text after NFKC/separators/dates (domain/identity.py)."""

from __future__ import annotations

import pytest

from domain.identity import personal_data_in_text

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text",
    [
        "参保期间 2019.03-2024.11 已在本地缴费",  # year-month periods: very common in Chinese
        "2021 2022 2023年度欠费已补缴",  # a list of years
        "停保 20261201-20270115",  # compact dates YYYYMMDD
        "away 12/01/2026 - 01/15/2027",  # month/day/year dates
    ],
)
def test_ordinary_reasons_with_periods_and_dates_are_not_personal_data(text: str) -> None:
    # A 422 at the API, and a dead letter (then resend for ever + NO_RECEIPT) when it comes
    # in a WithdrawalRequested/TransferRequested/BalanceReturned from another agency.
    assert not personal_data_in_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "电话 138–0013–8000",  # en dashes (U+2013), not folded by NFKC
        "电话 138—0013—8000",  # em dashes, what a Chinese IME gives for "——"
        "电话 138\u200b0013\u200b8000",  # zero-width spaces
        "ID 110105-1949-12-31-002X",  # the birth date inside the ID is "set aside"
        "卡号 6222,0212,3456,7890",
    ],
)
def test_personal_data_typed_with_other_separators_is_found(text: str) -> None:
    assert personal_data_in_text(text)
