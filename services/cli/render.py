"""Rich output of the CLI: case tables, one case in full, the import report, errors.

Every cell that comes from an API or a file is escaped (a ``[`` in a reason is text, not
markup). Person columns are passed through ``mask_id`` again even though the APIs already
mask them: the command line must never be where an ID number leaks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from domain.identity import mask_id
from domain.money import format_fen
from services.cli.api import ApiError, CliError, Unreachable
from services.cli.bulk import RowResult

CHINA = ZoneInfo("Asia/Shanghai")
OUTCOME_STYLE = {
    "created": "green",
    "duplicate": "cyan",
    "valid": "green",
    "refused": "yellow",
    "error": "red",
}


def consoles() -> tuple[Console, Console]:
    """Standard output and standard error, made per command so that the streams (and a
    test runner's replacements) in use at that moment are the ones written to."""
    return Console(highlight=False), Console(stderr=True, highlight=False, soft_wrap=True)


def _text(value: Any) -> str:
    return "" if value is None else escape(str(value))


def when(value: Any) -> str:
    """An API timestamp in China time, to the second (the services store UTC)."""
    if not value:
        return ""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return _text(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def _yes(value: Any) -> str:
    return "[bold red]yes[/]" if value else ""


# --- errors -----------------------------------------------------------------------------
def print_error(console: Console, error: CliError) -> None:
    console.print(f"[bold red]error:[/] {_text(error)}")
    if isinstance(error, ApiError):
        for reason in error.reasons:
            rule = f" ({reason.rule})" if reason.rule else ""
            field = f" [{reason.field}]" if reason.field else ""
            zh = f" / {reason.message_zh}" if reason.message_zh else ""
            console.print(
                f"  [bold]{_text(reason.code)}[/]{_text(rule)}{_text(field)}: "
                f"{_text(reason.message_en)}{_text(zh)}"
            )
        if error.status == 401:
            console.print(
                "  hint: the API key was not accepted; set --api-key or MEDTRANSFER_API_KEY"
            )
        elif error.status == 403 and any(r.code == "NOT_YOUR_PARTY" for r in error.reasons):
            console.print(
                "  hint: this is the other agency's side of the case; "
                "use a key that holds the region named above"
            )
        elif error.status == 403:
            console.print("  hint: the API key lacks the role, or the case is outside its regions")
    elif isinstance(error, Unreachable):
        option = f"--{error.agency}-url / MEDTRANSFER_{error.agency.upper()}_URL"
        console.print(f"  hint: is the {error.agency} agency running? ({option})")


# --- cases ------------------------------------------------------------------------------
def _regions(case: Mapping[str, Any]) -> str:
    return f"{case.get('from_region', '?')} → {case.get('to_region', '?')}"


def cases_table(cases: Sequence[Mapping[str, Any]], *, with_side: bool = False) -> Table:
    """One line per case; ``with_side`` adds the side's column (from each case's
    ``_side``) when cases of both agencies are listed together."""
    table = Table(title=f"{len(cases)} case(s)", title_justify="left")
    if with_side:
        table.add_column("side")
    table.add_column("case", no_wrap=True)
    table.add_column("status")
    table.add_column("regions", no_wrap=True)
    table.add_column("person", no_wrap=True)
    table.add_column("awaiting")
    table.add_column("from")
    table.add_column("by", no_wrap=True)
    table.add_column("escalated")
    table.add_column("days in status", justify="right")
    for case in cases:
        awaiting = case.get("awaiting") or {}
        cells = [
            _text(case.get("case_id")),
            _text(case.get("status")),
            _text(_regions(case)),
            _text(mask_id(str(case.get("person", "")))),
            _text(awaiting.get("what")),
            _text(awaiting.get("from_party")),
            _text(awaiting.get("by")),
            _yes(case.get("escalated")),
            _text(case.get("working_days_in_status")),
        ]
        table.add_row(*([_text(case.get("_side"))] if with_side else []), *cells)
    return table


def print_case(console: Console, case: Mapping[str, Any], side: str) -> None:
    """Everything about one case: where it stands, why, and what happened."""
    console.print(f"[bold]case {_text(case.get('case_id'))}[/] ({side} agency)")
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    awaiting = case.get("awaiting")
    rows: list[tuple[str, str]] = [
        (
            "status",
            f"{_text(case.get('status'))} since {when(case.get('status_since'))} "
            f"({_text(case.get('working_days_in_status'))} working day(s))",
        ),
        ("regions", _text(_regions(case))),
        ("schemes", f"{_text(case.get('from_scheme'))} → {_text(case.get('to_scheme'))}"),
        ("person", _text(mask_id(str(case.get("person", ""))))),
        ("awaiting", _awaiting(awaiting) if awaiting else "nothing"),
        ("escalated", _yes(case.get("escalated")) or "no"),
        ("closed", "yes" if case.get("closed") else "no"),
    ]
    if case.get("warnings"):
        rows.append(("warnings", _text(", ".join(map(str, case["warnings"])))))
    if case.get("policy_version"):
        rows.append(("policy", _text(case["policy_version"])))
    if case.get("workflow_url"):
        rows.append(("workflow", _text(case["workflow_url"])))
    for name, value in rows:
        facts.add_row(name, value)
    console.print(facts)

    deadlines = case.get("deadlines") or {}
    if deadlines:
        table = Table(title="deadlines", title_justify="left")
        table.add_column("deadline")
        table.add_column("date", no_wrap=True)
        for name, day in sorted(deadlines.items(), key=lambda kv: (str(kv[1]), kv[0])):
            table.add_row(_text(name), _text(day))
        console.print(table)

    decisions = case.get("decisions") or []
    if decisions:
        console.print(decisions_table(decisions))
    continuity = case.get("continuity")
    if continuity:
        console.print(continuity_table(continuity))
    timeline = case.get("timeline") or []
    if timeline:
        console.print(timeline_table(timeline))


def _awaiting(awaiting: Mapping[str, Any]) -> str:
    text = _text(awaiting.get("what"))
    if awaiting.get("from_party"):
        text += f" from {_text(awaiting['from_party'])}"
    if awaiting.get("by"):
        text += f" by {_text(awaiting['by'])}"
    return text


def decisions_table(decisions: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(title="decisions (why)", title_justify="left", show_lines=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("outcome")
    table.add_column("explanation")
    table.add_column("policy")
    table.add_column("at (UTC+8)", no_wrap=True)
    for d in decisions:
        explanation = "\n".join(
            _text(d.get(k)) for k in ("explanation_en", "explanation_zh") if d.get(k)
        )
        table.add_row(
            _text(d.get("rule")),
            _text(d.get("outcome")),
            explanation,
            _text(d.get("policy_version")),
            when(d.get("at")),
        )
    return table


CONTINUITY_FIELDS = (
    ("total_contribution_months", "contribution months"),
    ("months_by_region", "months by region"),
    ("deemed_years", "deemed years"),
    ("interruption_months", "interruption (months)"),
    ("back_payment_allowed", "back payment allowed"),
    ("benefits_from", "benefits from"),
    ("waiting_period_months", "waiting period (months)"),
    ("waiting_period_ends_on", "waiting period ends"),
    ("back_payment_estimate_fen", "back payment estimate (yuan)"),
    ("late_fee_estimate_fen", "late fee estimate (yuan)"),
    ("rules", "rules"),
    ("explanation_en", "explanation"),
    ("explanation_zh", "说明 (zh)"),
)


def continuity_table(continuity: Mapping[str, Any]) -> Table:
    """The R24-R28 summary: months, interruption, back payment or waiting period."""
    table = Table(title="continuity (R24-R28)", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, label in CONTINUITY_FIELDS:
        if key not in continuity or continuity[key] is None:
            continue
        value = continuity[key]
        if key.endswith("_fen") and isinstance(value, int):
            shown = format_fen(value)
        elif isinstance(value, Mapping):
            shown = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list):
            shown = ", ".join(map(str, value))
        elif isinstance(value, bool):
            shown = "yes" if value else "no"
        else:
            shown = str(value)
        table.add_row(label, _text(shown))
    return table


def timeline_table(timeline: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(title="timeline", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("at (UTC+8)", no_wrap=True)
    table.add_column("event")
    table.add_column("status")
    table.add_column("rule", no_wrap=True)
    table.add_column("detail")
    for entry in timeline:
        detail = entry.get("detail") or {}
        table.add_row(
            _text(entry.get("sequence")),
            when(entry.get("at")),
            _text(entry.get("event")),
            _text(entry.get("status")),
            _text(entry.get("rule")),
            _text(json.dumps(detail, ensure_ascii=False, sort_keys=True)) if detail else "",
        )
    return table


# --- import -----------------------------------------------------------------------------
def import_table(results: Iterable[RowResult], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("row", justify="right")
    table.add_column("person", no_wrap=True)
    table.add_column("outcome")
    table.add_column("case", no_wrap=True)
    table.add_column("codes", overflow="fold")
    table.add_column("detail")
    for r in results:
        style = OUTCOME_STYLE.get(r.outcome, "")
        table.add_row(
            str(r.row),
            _text(r.person),
            f"[{style}]{r.outcome}[/]" if style else r.outcome,
            _text(r.case_id),
            _text(r.codes),
            _text(r.message_en),
        )
    return table


def reconciliation_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    table = Table(title="remittances (unmatched first)", title_justify="left")
    for column in columns:
        table.add_column(column, no_wrap=column in ("remittance_id", "case_id"))
    for row in rows:
        styled = [_text(c) for c in row]
        if row[columns.index("status")] == "unmatched":
            styled = [f"[red]{c}[/]" if c else c for c in styled]
        table.add_row(*styled)
    return table
