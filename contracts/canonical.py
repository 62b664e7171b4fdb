"""RFC 8785 JSON Canonicalization Scheme (JCS): the one byte form a signature covers.

A signature is over bytes, so both agencies must turn the same JSON value into the same
bytes. Python's ``json.dumps(sort_keys=True)`` is no standard another platform can follow:
it sorts keys by code point and writes floats in Python's own way. JCS is defined for any
language (it is ECMAScript's ``JSON.stringify`` with sorted keys), so an agency on Java,
Go or .NET can sign and verify with its own JCS and Ed25519 libraries. See
``docs/signatures.md`` and the vectors in ``contracts/vectors/signatures.json``.

Pure: no I/O, no state.
"""

from __future__ import annotations

import math
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1
"""JCS readers parse every number as an IEEE 754 double, which keeps whole numbers exact
only up to this magnitude; a larger integer would be read back as another number."""

# RFC 8785 section 3.2.2.2: the two-character escapes, \u00xx (lowercase hex) for the other
# controls, and nothing else escaped: U+007F, U+2028 and all non-ASCII stay literal UTF-8.
_SHORT_ESCAPES = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}
_ESCAPES: dict[int, str] = {
    code: _SHORT_ESCAPES.get(code, f"\\u{code:04x}") for code in range(0x20)
}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical form of a JSON value, UTF-8 encoded.

    ``value`` is built of ``dict`` (string keys), ``list`` or ``tuple``, ``str``, ``int``,
    ``bool``, ``None`` and ``float``. Object members are sorted by the UTF-16 code units of
    their names, strings are escaped as RFC 8785 section 3.2.2.2 says, and numbers are
    written by ECMAScript's Number-to-String algorithm (section 3.2.2.3), so ``1.0`` becomes
    ``1``.

    Raises ``ValueError`` for what a JCS peer could not read back as the same value: an
    integer beyond +/-(2**53 - 1), NaN or an infinity, and a string (or key) holding a lone
    surrogate, which has no UTF-8 form. Raises ``TypeError`` for any other type.
    """
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts).encode("utf-8")


_LITERALS: dict[Any, str] = {None: "null", True: "true", False: "false"}


def _write(value: Any, parts: list[str]) -> None:
    # bool before int: True is an int in Python, but JSON's true.
    if value is None or value is True or value is False:
        parts.append(_LITERALS[value])
    elif isinstance(value, str):
        parts.append(_string(value))
    elif isinstance(value, int):
        parts.append(_integer(value))
    elif isinstance(value, float):
        parts.append(_number(value))
    elif isinstance(value, dict):
        _write_object(value, parts)
    elif isinstance(value, list | tuple):
        _write_array(value, parts)
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


def _integer(value: int) -> str:
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise ValueError(
            f"integer {value} is beyond +/-(2**53 - 1): a JCS peer reads numbers as "
            "IEEE doubles and would not get it back exactly"
        )
    return str(int(value))


def _write_object(value: dict[Any, Any], parts: list[str]) -> None:
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"object keys must be strings, got {type(key).__name__}")
    parts.append("{")
    for index, key in enumerate(sorted(value, key=_utf16_units)):
        if index:
            parts.append(",")
        parts.append(_string(key))
        parts.append(":")
        _write(value[key], parts)
    parts.append("}")


def _write_array(value: list[Any] | tuple[Any, ...], parts: list[str]) -> None:
    parts.append("[")
    for index, item in enumerate(value):
        if index:
            parts.append(",")
        _write(item, parts)
    parts.append("]")


def _utf16_units(key: str) -> bytes:
    # Big-endian UTF-16 compares byte by byte exactly as its 16-bit code units compare, so
    # U+E000 sorts after U+1F600 (surrogates D83D DE00), unlike code point order. The sort
    # runs before any key is written, so this is where a key's lone surrogate is refused.
    try:
        return key.encode("utf-16-be")
    except UnicodeEncodeError:
        raise _lone_surrogate(key) from None


def _string(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _lone_surrogate(text) from None
    return '"' + text.translate(_ESCAPES) + '"'


def _lone_surrogate(text: str) -> ValueError:
    # The text itself may be personal data: name the position, not the content.
    position = next(i for i, char in enumerate(text) if 0xD800 <= ord(char) <= 0xDFFF)
    return ValueError(
        f"string holds a lone surrogate at index {position}: it has no UTF-8 form, so no "
        "JCS peer could produce the same bytes"
    )


def _number(value: float) -> str:
    """ECMAScript Number::toString for a finite double (ECMA-262, RFC 8785 section 3.2.2.3)."""
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a JSON number")
    if value == 0:
        return "0"  # also -0.0
    if value < 0:
        return "-" + _number(-value)
    # repr gives the shortest digit string that reads back as the same double (correctly
    # rounded), which is the digits s of ECMAScript's step with k as small as possible.
    mantissa, _, exponent_text = float.__repr__(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    all_digits = (whole + fraction).lstrip("0")
    digits = all_digits.rstrip("0")
    # value = int(digits) * 10**(exponent - len(fraction) + trailing zeros dropped)
    scale = int(exponent_text or "0") - len(fraction) + (len(all_digits) - len(digits))
    k = len(digits)
    n = scale + k  # the decimal point sits n digits after the first digit
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    exponent = n - 1
    sign = "+" if exponent >= 0 else "-"
    head = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{head}e{sign}{abs(exponent)}"
