"""Money as integer fen (1 yuan = 100 fen). Never float."""

from __future__ import annotations

from typing import TypeAlias

Fen: TypeAlias = int

FEN_PER_YUAN = 100


def format_fen(fen: Fen) -> str:
    """Format fen as yuan with two decimals: ``123456 -> "1234.56"``, ``-5 -> "-0.05"``."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError("fen must be an int")
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{yuan}.{cents:02d}"
