"""Identity numbers: validation, masking for logs, and pseudonymous fingerprints."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from datetime import date

# ISO 7064 MOD 11-2 as used by GB 11643: weight of position i is 2**(17-i) mod 11.
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK_CHARS = "10X98765432"
# [0-9] rather than \d: \d also matches full-width and other Unicode digits.
_ID_SHAPE = re.compile(r"[0-9]{17}[0-9Xx]")
_SEVENTEEN_DIGITS = re.compile(r"[0-9]{17}")
_BANK_ACCOUNT = re.compile(r"[0-9]{12,30}")


def resident_id_check_char(first17: str) -> str:
    """Check character ('0'-'9' or 'X') for the first 17 digits of a resident ID number."""
    if not isinstance(first17, str) or not _SEVENTEEN_DIGITS.fullmatch(first17):
        raise ValueError("expected exactly 17 ASCII digits")
    total = sum(int(digit) * weight for digit, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def normalize_resident_id(value: str) -> str:
    """Canonical form of an ID number: surrounding whitespace removed, 'x' upper-cased."""
    return value.strip().upper()


def is_valid_resident_id(value: str) -> bool:
    """18-character resident ID number (公民身份号码) with a real birth date and check digit."""
    if not isinstance(value, str) or not _ID_SHAPE.fullmatch(value):
        return False
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return resident_id_check_char(value[:17]) == value[17].upper()


def is_valid_bank_account(value: str) -> bool:
    """12 to 30 digits; whitespace (the spaces printed on cards, typed as any space) is
    ignored, as the API drops it (services/incoming_agency/applications.BankAccountIn)."""
    if not isinstance(value, str):
        return False
    return _BANK_ACCOUNT.fullmatch("".join(value.split())) is not None


def _as_text(value: object) -> str:
    # Masking is used while logging, so it must never raise, whatever it is given.
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:
        return ""


def _compact(value: object) -> str:
    return "".join(_as_text(value).split())


def mask_id(value: str) -> str:
    """First 4 and last 2 characters visible: ``"6208************1X"``.

    Values shorter than 10 characters are masked completely, because showing six of them
    would reveal most of the value.
    """
    text = _compact(value)
    if len(text) < 10:
        return "*" * len(text)
    return text[:4] + "*" * (len(text) - 6) + text[-2:]


def mask_account(value: str) -> str:
    """``"****"`` followed by the last 4 characters; values under 8 characters show nothing."""
    text = _compact(value)
    if len(text) < 8:
        return "****"
    return "****" + text[-4:]


def mask_phone(value: str) -> str:
    """First 3 and last 4 characters visible: ``"13800138000" -> "138****8000"``.

    Spaces and hyphens are dropped first; values under 11 characters are masked completely.
    """
    text = _compact(value).replace("-", "")
    if len(text) < 11:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 7) + text[-4:]


def fingerprint(value: str, *, key: bytes | None = None) -> str:
    """First 16 hex characters of SHA-256 over the normalised value (NFKC, no whitespace,
    upper case), to correlate a person across log lines without the clear value.

    Resident ID numbers are few enough to enumerate, so an unkeyed hash can be reversed
    by anyone holding the logs; deployments should pass a secret ``key`` (HMAC-SHA-256).
    Never raises.
    """
    normalised = "".join(unicodedata.normalize("NFKC", _as_text(value)).split()).upper()
    data = normalised.encode("utf-8", "surrogatepass")
    if key:
        return hmac.new(key, data, hashlib.sha256).hexdigest()[:16]
    return hashlib.sha256(data).hexdigest()[:16]


# What a person may type between the digit groups of a number: any space, any dash
# (NFKC leaves the en and em dashes), dots, slashes, commas, middle dots; zero-width
# characters are dropped first.
_ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060\ufeff]")
_SEPARATOR = r"[\s\-\u2010-\u2015\u2212\ufe58\ufe63./_·•,，、]+"
_BETWEEN_DIGITS = re.compile(rf"(?<=[0-9]){_SEPARATOR}(?=[0-9Xx])")
# Dates, year-months and years, set aside before looking for an account number, so
# "2019.03-2024.11" or "20261201-20270115" does not read as one (an ID number or a phone
# number is looked for with them in place: an ID number holds a birth date).
_DATES = re.compile(
    r"(?<![0-9])(?:"
    r"(?:19|20)[0-9]{2}(?:[-./年][0-9]{1,2}(?:[-./月][0-9]{1,2}日?)?)?"
    r"|[0-9]{1,2}[-./][0-9]{1,2}[-./](?:19|20)[0-9]{2}"
    r"|(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
    r")(?![0-9])"
)
_ID_OR_PHONE = (
    re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])"),  # an ID number
    re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])"),  # a mobile phone number
)
_ACCOUNT = re.compile(r"(?<![0-9])[0-9]{12,30}(?![0-9])")  # a bank account or card


def personal_data_in_text(text: str) -> bool:
    """True when free text (a reason, a note) carries what looks like an ID number, a
    phone number or an account number, however it is typed (full-width digits, groups
    separated by spaces, dashes, dots, slashes or commas): it is refused where it is
    typed, before anything is written (it would reach the timeline, the audit trail and
    the other agency). A heuristic: dates and years are not read as account numbers."""
    folded = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))
    compact = _BETWEEN_DIGITS.sub("", folded)
    if any(pattern.search(compact) for pattern in _ID_OR_PHONE):
        return True
    without_dates = _BETWEEN_DIGITS.sub("", _DATES.sub(" ", folded))
    return _ACCOUNT.search(without_dates) is not None
