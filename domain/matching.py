"""Counterparty documents matched against this agency's own case file, never trusted as
sent: the information sheet against the application (R9, R13), the balance notice
against the sheet (R15). Each check answers None or a reason code for a clerk; the code
names fields, never their values."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.identity import normalize_resident_id


class MismatchCode(StrEnum):
    SHEET_PERSON = "SHEET_PERSON_DOES_NOT_MATCH_CASE"
    SHEET_REGION = "SHEET_REGION_DOES_NOT_MATCH_CASE"
    SHEET_SCHEME = "SHEET_SCHEME_DOES_NOT_MATCH_CASE"
    NOTICE_KIND = "BALANCE_NOTICE_DOES_NOT_MATCH_SHEET"
    REMITTANCE_ID = "REMITTANCE_OF_ANOTHER_CASE"
    AMOUNT = "AMOUNT_DOES_NOT_MATCH_SHEET"


@dataclass(frozen=True)
class CaseFile:
    """What this agency itself recorded for the case when it accepted the application."""

    case_id: str
    id_number: str
    from_region: str
    from_scheme: str


@dataclass(frozen=True)
class SheetFacts:
    id_number: str
    from_region: str
    issued_by_region: str
    scheme: str


def sheet_mismatch(case: CaseFile, sheet: SheetFacts) -> MismatchCode | None:
    """R9/R13: the sheet must be about this case's person, from the region and scheme the
    application named, before anything is loaded or credited from it."""
    if normalize_resident_id(sheet.id_number) != normalize_resident_id(case.id_number):
        return MismatchCode.SHEET_PERSON
    if case.from_region not in (sheet.from_region, sheet.issued_by_region) or (
        sheet.from_region != sheet.issued_by_region
    ):
        return MismatchCode.SHEET_REGION
    if sheet.scheme != case.from_scheme:
        return MismatchCode.SHEET_SCHEME
    return None


# Which notice settles which balance action of the sheet (R18-R22).
NOTICE_FOR_ACTION = {
    "remit": "BalanceRemitted",
    "pay_to_bank": "BalancePaidToBank",
    "keep_usable": "BalanceNotTransferred",
    "none": "BalanceNotTransferred",
}


def main_remittance_id(case_id: str) -> str:
    """The remittance id of a case's balance: one per case, so a notice carrying another
    case's id settles nothing here."""
    return f"{case_id}-main"


def notice_mismatch(
    *,
    case_id: str,
    balance_action: str,
    sheet_balance_fen: int,
    notice_type: str,
    remittance_id: str | None,
    amount_fen: int,
) -> MismatchCode | None:
    """R15: the balance notice must be the one the sheet announced, for this case. A
    remittance of the right kind and case but another amount is not refused here: it is
    the R15 amount mismatch a clerk decides (the money has moved)."""
    if NOTICE_FOR_ACTION.get(balance_action) != notice_type:
        return MismatchCode.NOTICE_KIND
    if notice_type != "BalanceNotTransferred" and remittance_id != main_remittance_id(case_id):
        return MismatchCode.REMITTANCE_ID
    if notice_type != "BalanceRemitted" and amount_fen != sheet_balance_fen:
        return MismatchCode.AMOUNT
    return None


def remittance_matches_sheet(*, amount_fen: int, sheet_balance_fen: int) -> bool:
    """R15: a remittance is credited only when its amount is the balance the sheet
    announced, to the fen; any other amount goes to a clerk, never an automatic credit."""
    return amount_fen == sheet_balance_fen
