"""Bulk import of transfer applications from a CSV file (an employer moving many staff).

Every row becomes one ``POST /v1/applications``. A row is checked for its shape here
(columns, required values, schemes, dates, yes/no, a complete bank account or none); the
transfer rules themselves (check digit, regions, R1-R4, R21/R22) are the incoming
agency's, and its refusal reasons are reported per row. Nothing here keeps or reports an
ID number or a name in clear: rows are identified by their row number and the masked ID.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from domain.eligibility import ApplicationFacts, check_application
from domain.identity import mask_id
from domain.regions import RegionRegistry
from services.cli.api import AgencyApi, ApiError, Reason, Unreachable

COLUMNS = (
    "id_number",
    "name",
    "from_region",
    "to_region",
    "from_scheme",
    "to_scheme",
    "reason",
    "incoming_enrolled_since",
    "left_outgoing_on",
    "resettled_retiree",
    "bank_name",
    "account_number",
    "account_holder",
)
REQUIRED = ("id_number", "name", "from_region", "to_region", "from_scheme", "to_scheme")
BANK_COLUMNS = ("bank_name", "account_number", "account_holder")
REPORT_COLUMNS = ("row", "person", "outcome", "case_id", "codes", "message_en", "message_zh")
# Rows in a row that found the agency unreachable before the rest are not even tried.
UNREACHABLE_LIMIT = 3
INTERRUPTED_NOTE = (
    "interrupted while sending: the case may exist; run the file again "
    "(an existing case is reported as duplicate)"
)

Outcome = Literal["created", "duplicate", "refused", "error", "valid"]
OK_OUTCOMES = frozenset({"created", "duplicate", "valid"})

_SCHEMES = {
    "employee": "employee",
    "resident": "resident",
    "职工": "employee",
    "职工医保": "employee",
    "居民": "resident",
    "居民医保": "resident",
}
_TRUE = {"true", "yes", "y", "1", "是"}
_FALSE = {"", "false", "no", "n", "0", "否"}
_DATE = re.compile(r"([0-9]{4})[-/.]([0-9]{1,2})[-/.]([0-9]{1,2})")
_REGION = re.compile(r"[0-9]{6}")
# 6.20800199E+17: what a spreadsheet makes of an ID number in a number-formatted column.
_SCIENTIFIC = re.compile(r"[0-9](\.[0-9]+)?[eE]\+?[0-9]+")


class CsvFileError(Exception):
    """The file as a whole cannot be used: unreadable, not in the encoding, no header or
    required columns missing."""


@dataclass(frozen=True)
class CsvRow:
    """One data row: ``row`` is its spreadsheet row number (the header is row 1)."""

    row: int
    person: str  # masked ID number
    application: dict[str, Any] | None
    problems: tuple[Reason, ...] = ()


@dataclass(frozen=True)
class CsvFile:
    rows: list[CsvRow]
    ignored_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowResult:
    row: int
    person: str
    outcome: Outcome
    case_id: str | None = None
    reasons: tuple[Reason, ...] = ()
    note: str = ""
    status: int | None = None  # the HTTP status, when the agency answered

    @property
    def ok(self) -> bool:
        return self.outcome in OK_OUTCOMES

    @property
    def codes(self) -> str:
        return ", ".join(r.label for r in self.reasons)

    @property
    def message_en(self) -> str:
        return "; ".join(filter(None, [*(r.message_en for r in self.reasons), self.note]))

    @property
    def message_zh(self) -> str:
        return "；".join(r.message_zh for r in self.reasons if r.message_zh)


def _problem(code: str, column: str, message: str) -> Reason:
    # Messages name the column and what is expected, never the value found.
    return Reason(code=code, field=column, message_en=f"{column}: {message}")


# --- reading ----------------------------------------------------------------------------
def read_applications(path: Path, *, encoding: str = "utf-8-sig", channel: str) -> CsvFile:
    """Parse the file into rows, each either an application body or its problems."""
    try:
        text = path.read_bytes().decode(encoding)
    except OSError as exc:
        raise CsvFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CsvFileError(
            f"{path} is not {encoding} text (byte {exc.start}); a spreadsheet saved in "
            "Chinese Windows usually needs --encoding gb18030"
        ) from exc
    except LookupError as exc:
        raise CsvFileError(f"unknown encoding {encoding}") from exc

    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[CsvRow] = []
    ignored: tuple[str, ...] = ()
    previous_line = 0
    while True:
        start = previous_line + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if reader.line_num == previous_line:
                break  # the reader cannot move on: nothing more can be read
            previous_line = reader.line_num
            if header is None:
                raise CsvFileError(f"{path}: the header cannot be read ({exc})") from exc
            problem = Reason(code="CSV_SYNTAX", message_en=f"not valid CSV: {exc}")
            rows.append(CsvRow(start, "", None, (problem,)))
            continue
        previous_line = reader.line_num
        if not any(v.strip() for v in values):
            continue  # a blank line
        if header is None:
            header, ignored = _header(path, values)
            continue
        rows.append(_row(start, header, values, channel))
    if header is None:
        raise CsvFileError(f"{path} has no header row; expected columns: {', '.join(COLUMNS)}")
    return CsvFile(rows, ignored)


def _header(path: Path, values: list[str]) -> tuple[list[str], tuple[str, ...]]:
    header = [v.strip().lstrip("\ufeff").lower() for v in values]
    duplicates = sorted(c for c, n in Counter(header).items() if n > 1 and c)
    if duplicates:
        raise CsvFileError(f"{path}: column(s) named twice: {', '.join(duplicates)}")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CsvFileError(
            f"{path}: required column(s) missing: {', '.join(missing)} "
            f"(expected: {', '.join(COLUMNS)})"
        )
    return header, tuple(c for c in header if c and c not in COLUMNS)


def _row(number: int, header: list[str], values: list[str], channel: str) -> CsvRow:
    if len(values) > len(header) and not any(v.strip() for v in values[len(header) :]):
        values = values[: len(header)]  # trailing empty cells a spreadsheet added
    cells = {c: v.strip() for c, v in zip(header, values, strict=False)}
    person = mask_id(cells.get("id_number", ""))
    if len(values) != len(header):
        problem = Reason(
            code="CSV_FIELD_COUNT",
            message_en=f"the row has {len(values)} fields, the header {len(header)}",
        )
        return CsvRow(number, person, None, (problem,))

    problems = _text_problems(cells)
    schemes, bad = _parsed(
        cells, ("from_scheme", "to_scheme"), _scheme, "expected employee or resident"
    )
    problems += bad
    dates, bad = _parsed(
        cells,
        ("incoming_enrolled_since", "left_outgoing_on"),
        _iso_date,
        "expected a date YYYY-MM-DD",
    )
    problems += bad
    retiree = cells.get("resettled_retiree", "").lower()
    if retiree not in _TRUE | _FALSE:
        problems.append(_problem("CSV_BAD_VALUE", "resettled_retiree", "expected true or false"))
    bank = {c: cells.get(c, "") for c in BANK_COLUMNS}
    if any(bank.values()) and not all(bank.values()):
        problems += [
            _problem(
                "CSV_MISSING_VALUE",
                column,
                "a bank account needs bank_name, account_number and account_holder",
            )
            for column in (c for c, v in bank.items() if not v)
        ]
    if problems:
        return CsvRow(number, person, None, tuple(problems))

    application: dict[str, Any] = {
        "person": {"id_number": cells.get("id_number", ""), "name": cells["name"]},
        "from_region": cells["from_region"],
        "to_region": cells["to_region"],
        "from_scheme": schemes["from_scheme"],
        "to_scheme": schemes["to_scheme"],
        "reason": cells.get("reason", ""),
        "channel": channel,
        "resettled_retiree": retiree in _TRUE,
        **dates,
    }
    if all(bank.values()):
        application["bank_account"] = bank
    return CsvRow(number, person, application)


def _text_problems(cells: dict[str, str]) -> list[Reason]:
    """Required values present, the ID number still text, region codes of six digits."""
    problems = [
        _problem("CSV_MISSING_VALUE", column, "a value is required")
        for column in REQUIRED
        if not cells.get(column)
    ]
    if _SCIENTIFIC.fullmatch(cells.get("id_number", "")):
        problems.append(
            _problem(
                "CSV_BAD_VALUE",
                "id_number",
                "a spreadsheet turned it into a number; format the column as text and export again",
            )
        )
    for column in ("from_region", "to_region"):
        if cells.get(column) and not _REGION.fullmatch(cells[column]):
            problems.append(_problem("CSV_BAD_VALUE", column, "expected a 6-digit region code"))
    return problems


def _parsed(
    cells: dict[str, str],
    columns: tuple[str, ...],
    parse: Callable[[str], str | None],
    expected: str,
) -> tuple[dict[str, str], list[Reason]]:
    """The non-empty ``columns`` parsed, and a CSV_BAD_VALUE for each that does not parse."""
    parsed: dict[str, str] = {}
    problems: list[Reason] = []
    for column in columns:
        value = cells.get(column, "")
        if value:
            result = parse(value)
            if result is None:
                problems.append(_problem("CSV_BAD_VALUE", column, expected))
            else:
                parsed[column] = result
    return parsed, problems


def _scheme(value: str) -> str | None:
    return _SCHEMES.get(value.lower())


def _iso_date(value: str) -> str | None:
    parsed = _date(value)
    return None if parsed is None else parsed.isoformat()


def _date(value: str) -> date | None:
    match = _DATE.fullmatch(value)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


# --- importing --------------------------------------------------------------------------
def check_only(
    rows: Iterable[CsvRow], registry: RegionRegistry | None, today: date
) -> list[RowResult]:
    """The dry run, nothing sent: the file's own checks, then (with a region registry) the
    incoming agency's acceptance checks, the same pure function it runs (R1-R4, R21,
    R22, check digit, known regions). Enrolment records and served regions are only
    known to the agencies."""
    results = []
    for row in rows:
        if row.application is None:
            results.append(RowResult(row.row, row.person, "error", reasons=row.problems))
            continue
        refusals = (
            [] if registry is None else check_application(_facts(row.application, today), registry)
        )
        if refusals:
            reasons = tuple(Reason(r.code, r.rule, r.message_en, r.message_zh) for r in refusals)
            results.append(RowResult(row.row, row.person, "refused", reasons=reasons))
        else:
            results.append(RowResult(row.row, row.person, "valid"))
    return results


def _facts(application: Mapping[str, Any], today: date) -> ApplicationFacts:
    def day(key: str) -> date | None:
        value = application.get(key)
        return date.fromisoformat(value) if value else None

    bank = application.get("bank_account")
    return ApplicationFacts(
        id_number=application["person"]["id_number"],
        from_region=application["from_region"],
        to_region=application["to_region"],
        from_scheme=application["from_scheme"],
        to_scheme=application["to_scheme"],
        applied_on=today,
        incoming_enrolled_since=day("incoming_enrolled_since"),
        left_outgoing_on=day("left_outgoing_on"),
        bank_account=bank["account_number"] if bank else None,
        resettled_retiree=bool(application.get("resettled_retiree")),
    )


def submit_row(api: AgencyApi, row: CsvRow) -> RowResult:
    """POST one row. Submitting is idempotent on the agency's side (the open case of the
    same person and regions comes back with 200), so it is retried like a read."""
    if row.application is None:
        return RowResult(row.row, row.person, "error", reasons=row.problems)
    try:
        response, attempts = api.request(
            "POST", "/v1/applications", json=row.application, idempotent=True
        )
    except Unreachable as exc:
        reason = Reason(code="UNREACHABLE", message_en=str(exc))
        return RowResult(row.row, row.person, "error", reasons=(reason,))
    status = response.status_code
    if status in (200, 201):
        try:
            case_id = str(response.json()["case_id"])
        except (ValueError, KeyError, TypeError):
            reason = Reason(code="BAD_ANSWER", message_en=f"answer {status} without a case id")
            return RowResult(row.row, row.person, "error", reasons=(reason,), status=status)
        if status == 201:
            return RowResult(row.row, row.person, "created", case_id, status=status)
        note = "an open case of this person and regions exists"
        if attempts > 1:
            note += " (maybe opened by an earlier attempt of this same row)"
        return RowResult(row.row, row.person, "duplicate", case_id, note=note, status=status)
    error = ApiError.from_response(api.agency, response)
    reasons = error.reasons or (Reason(code=f"HTTP_{status}", message_en=error.error),)
    outcome: Outcome = "refused" if 400 <= status < 500 else "error"
    return RowResult(row.row, row.person, outcome, reasons=reasons, status=status)


def import_rows(
    api: AgencyApi,
    rows: Sequence[CsvRow],
    on_result: Callable[[RowResult], None] | None = None,
) -> list[RowResult]:
    """Submit every row; a bad row never stops the others. Only when sending is pointless
    (the key refused, or the agency unreachable for several rows in a row) are the rest
    reported NOT_ATTEMPTED; running the same file again is safe."""
    results: list[RowResult] = []
    unreachable_streak = 0
    stop: Reason | None = None
    pending = list(rows)
    try:
        while pending:
            row = pending[0]
            if stop is not None and row.application is not None:
                result = RowResult(row.row, row.person, "error", reasons=(stop,))
            else:
                result = submit_row(api, row)
            pending.pop(0)
            if row.application is not None and stop is None:
                unreachable = any(r.code == "UNREACHABLE" for r in result.reasons)
                unreachable_streak = unreachable_streak + 1 if unreachable else 0
                if unreachable_streak >= UNREACHABLE_LIMIT:
                    stop = _not_attempted(
                        f"the {api.agency} agency was unreachable for "
                        f"{UNREACHABLE_LIMIT} rows in a row"
                    )
                elif result.status == 401:
                    stop = _not_attempted("the API key was refused (401)")
            results.append(result)
            if on_result is not None:
                on_result(result)
    except KeyboardInterrupt:
        interrupted = _not_attempted("the import was interrupted")
        for i, row in enumerate(pending):
            note = INTERRUPTED_NOTE if i == 0 else ""
            results.append(
                RowResult(row.row, row.person, "error", reasons=(interrupted,), note=note)
            )
    return results


def _not_attempted(why: str) -> Reason:
    return Reason(code="NOT_ATTEMPTED", message_en=f"not sent: {why}")


def summary_line(results: Sequence[RowResult]) -> str:
    counts: Counter[str] = Counter(r.outcome for r in results)
    order = ("created", "duplicate", "valid", "refused", "error")
    parts = [f"{counts[o]} {o}" for o in order if counts[o]]
    return f"{len(results)} row(s): {', '.join(parts) if parts else 'nothing to import'}"


def write_report(path: Path, results: Iterable[RowResult]) -> None:
    """The per-row report as CSV (UTF-8 with BOM, so spreadsheets show the Chinese)."""
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(REPORT_COLUMNS)
        for r in results:
            writer.writerow(
                [r.row, r.person, r.outcome, r.case_id or "", r.codes, r.message_en, r.message_zh]
            )
