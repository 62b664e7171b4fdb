"""Money as integer fen (1 yuan = 100 fen). Never float."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TypeAlias

Fen: TypeAlias = int

FEN_PER_YUAN = 100

_YUAN_TEXT = re.compile(r"[+-]?[0-9]+(?:\.[0-9]{1,2})?")


def yuan_to_fen(text: str) -> Fen:
    """Convert a yuan amount such as ``"1234.56"`` to fen, exactly.

    Accepts an optional sign and at most two decimals; anything else (floats in
    scientific notation, thousands separators, three decimals) raises ``ValueError``.
    """
    if not isinstance(text, str):
        raise ValueError("a yuan amount must be given as text")
    stripped = text.strip()
    # The input is not echoed: a wrong field could carry personal data.
    if not _YUAN_TEXT.fullmatch(stripped):
        raise ValueError("not a yuan amount with at most two decimals")
    return int((Decimal(stripped) * FEN_PER_YUAN).to_integral_exact())


def format_fen(fen: Fen) -> str:
    """Format fen as yuan with two decimals: ``123456 -> "1234.56"``, ``-5 -> "-0.05"``."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError("fen must be an int")
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{yuan}.{cents:02d}"
