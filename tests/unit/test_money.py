from __future__ import annotations

import pytest

from domain.money import format_fen

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("fen", "text"),
    [(0, "0.00"), (1, "0.01"), (99, "0.99"), (100, "1.00"), (123456, "1234.56"), (-5, "-0.05")],
)
def test_format_fen(fen: int, text: str) -> None:
    assert format_fen(fen) == text


def test_format_fen_rejects_float() -> None:
    with pytest.raises(TypeError):
        format_fen(1.5)  # type: ignore[arg-type]
