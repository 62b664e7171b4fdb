from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.money import format_fen, yuan_to_fen

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("0", 0),
        ("1", 100),
        ("1.5", 150),
        ("1.50", 150),
        ("1234.56", 123456),
        ("0.01", 1),
        (" 12.30 ", 1230),
        ("-0.05", -5),
        ("+7.00", 700),
        ("98765432109876.54", 9876543210987654),
    ],
)
def test_yuan_to_fen_exact(text: str, fen: int) -> None:
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1.234",
        "0.001",
        "1e3",
        "1,000.00",
        "1.",
        ".5",
        "NaN",
        "Infinity",
        "abc",
        "１２",
        "1 000",
    ],
)
def test_yuan_to_fen_rejects_inexact_or_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="yuan amount"):
        yuan_to_fen(text)


def test_yuan_to_fen_error_does_not_echo_input() -> None:
    with pytest.raises(ValueError, match="yuan amount") as info:
        yuan_to_fen("11010519491231002X")
    assert "11010519491231002X" not in str(info.value)


@pytest.mark.parametrize(
    ("fen", "text"),
    [(0, "0.00"), (1, "0.01"), (99, "0.99"), (100, "1.00"), (123456, "1234.56"), (-5, "-0.05")],
)
def test_format_fen(fen: int, text: str) -> None:
    assert format_fen(fen) == text


def test_format_fen_rejects_float() -> None:
    with pytest.raises(TypeError):
        format_fen(1.5)  # type: ignore[arg-type]


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_fen_yuan_round_trip(fen: int) -> None:
    assert yuan_to_fen(format_fen(fen)) == fen


@given(st.decimals(min_value=-(10**12), max_value=10**12, places=2, allow_nan=False))
def test_yuan_text_matches_decimal_value(amount: Decimal) -> None:
    text = f"{amount:.2f}"
    assert Decimal(yuan_to_fen(text)) == amount * 100
    assert Decimal(format_fen(yuan_to_fen(text))) == amount
