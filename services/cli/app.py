"""The clerk and operator command line of both agencies.

    python -m services.cli [--incoming-url URL] [--outgoing-url URL] [--api-key KEY] COMMAND

Exit codes: 0 done; 1 an error was printed (the agency refused or could not be reached,
unmatched remittances, audit problems, some import rows failed); 2 a usage error, a CSV
file that cannot be read, or an audit store or case that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from domain.money import format_fen
from domain.regions import RegionRegistry, load_region_registry
from services.cli.api import (
    DEFAULT_API_KEY,
    DEFAULT_INCOMING_URL,
    DEFAULT_OUTGOING_URL,
    AgencyApi,
    CliError,
)
from services.cli.bulk import (
    COLUMNS,
    CsvFileError,
    check_only,
    import_rows,
    read_applications,
    summary_line,
    write_report,
)
from services.cli.render import (
    cases_table,
    consoles,
    import_table,
    print_case,
    print_error,
    reconciliation_table,
)

cli = typer.Typer(
    name="python -m services.cli",
    help="Clerk and operator tools: cases, clerk actions, bulk import, reconciliation, audit.",
    no_args_is_help=True,
    add_completion=False,
)
cases_cli = typer.Typer(help="List and inspect cases.", no_args_is_help=True)
actions_cli = typer.Typer(
    help="A clerk's actions on an incoming case (202 accepted, 409 when the case is not in a "
    "state for it).",
    no_args_is_help=True,
)
audit_cli = typer.Typer(help="The audit trail: verify the hash chains.", no_args_is_help=True)
cli.add_typer(cases_cli, name="cases")
cli.add_typer(actions_cli, name="actions")
cli.add_typer(audit_cli, name="audit")


class Side(StrEnum):
    incoming = "incoming"
    outgoing = "outgoing"


class Decision(StrEnum):
    credit_received = "credit_received"
    return_to_sender = "return_to_sender"


class Channel(StrEnum):
    online = "online"
    counter = "counter"
    outgoing_entry = "outgoing_entry"


@dataclass(frozen=True)
class Endpoints:
    incoming_url: str
    outgoing_url: str
    api_key: str
    retries: int
    timeout: float

    def api(self, side: Side) -> AgencyApi:
        url = self.incoming_url if side is Side.incoming else self.outgoing_url
        return AgencyApi(side.value, url, self.api_key, retries=self.retries, timeout=self.timeout)


def _endpoints(ctx: typer.Context) -> Endpoints:
    endpoints = ctx.find_root().obj
    assert isinstance(endpoints, Endpoints)
    return endpoints


@contextmanager
def reported_errors() -> Iterator[None]:
    """A CliError becomes one printed error (with its reason codes) and an exit code."""
    try:
        yield
    except CliError as error:
        print_error(consoles()[1], error)
        raise typer.Exit(error.exit_code) from None


@cli.callback()
def main(
    ctx: typer.Context,
    incoming_url: Annotated[
        str,
        typer.Option(
            "--incoming-url", envvar="MEDTRANSFER_INCOMING_URL", help="Incoming agency API."
        ),
    ] = DEFAULT_INCOMING_URL,
    outgoing_url: Annotated[
        str,
        typer.Option(
            "--outgoing-url", envvar="MEDTRANSFER_OUTGOING_URL", help="Outgoing agency API."
        ),
    ] = DEFAULT_OUTGOING_URL,
    api_key: Annotated[
        str,
        typer.Option(
            "--api-key",
            envvar="MEDTRANSFER_API_KEY",
            help="Sent as X-Api-Key with every request.",
            show_default=False,
        ),
    ] = DEFAULT_API_KEY,
    retries: Annotated[
        int,
        typer.Option(
            "--retries", min=0, max=10, help="Extra attempts when an agency cannot be reached."
        ),
    ] = 3,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to wait for an answer.")
    ] = 30.0,
) -> None:
    """Clerk and operator tools of the two agencies."""
    ctx.obj = Endpoints(incoming_url, outgoing_url, api_key, retries, timeout)


SideOption = Annotated[Side, typer.Option("--side", help="Whose cases.")]


# --- cases ------------------------------------------------------------------------------
@cases_cli.command("list")
def list_cases(
    ctx: typer.Context,
    side: SideOption = Side.incoming,
    status: Annotated[str | None, typer.Option("--status", help="e.g. awaiting_balance")] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="Cases from or to this region.")
    ] = None,
    escalated: Annotated[bool, typer.Option("--escalated", help="Only escalated cases.")] = False,
    warning: Annotated[
        str | None, typer.Option("--warning", help="e.g. calendar-fallback-2027")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 50,
) -> None:
    """Cases, newest first: status, regions, person (masked), what is awaited, escalation."""
    params: dict[str, Any] = {"limit": limit}
    for name, value in (("status", status), ("region", region), ("warning", warning)):
        if value:
            params[name] = value
    if escalated:
        params["escalated"] = "true"
    with reported_errors(), _endpoints(ctx).api(side) as api:
        cases = api.get("/v1/cases", params)
    consoles()[0].print(cases_table(cases))


@cases_cli.command("show")
def show_case(
    ctx: typer.Context,
    case_id: Annotated[str, typer.Argument(help="The case id, e.g. TR20261125ABCDEF1234.")],
    side: SideOption = Side.incoming,
) -> None:
    """One case: status, awaiting, deadlines, decisions with their rules, continuity,
    timeline."""
    with reported_errors(), _endpoints(ctx).api(side) as api:
        case = api.get(f"/v1/cases/{quote(case_id, safe='')}")
    print_case(consoles()[0], case, side.value)


@cli.command()
def escalations(
    ctx: typer.Context,
    side: Annotated[
        Side | None, typer.Option("--side", help="Whose cases (default: both agencies).")
    ] = None,
) -> None:
    """Escalated cases (a limit was missed; the case still waits)."""
    out, err = consoles()
    failed = False
    found: list[dict[str, Any]] = []
    for one in [side] if side is not None else list(Side):
        try:
            with _endpoints(ctx).api(one) as api:
                cases = api.get("/v1/cases", {"escalated": "true", "limit": 500})
        except CliError as error:
            print_error(err, error)
            failed = True
            continue
        found.extend({**c, "_side": one.value} for c in cases)
    out.print(cases_table(found, with_side=side is None))
    if failed:
        raise typer.Exit(1)


# --- clerk actions ----------------------------------------------------------------------
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept on the case's timeline).")]
CaseArgument = Annotated[str, typer.Argument(help="The incoming case id.")]


def _act(ctx: typer.Context, case_id: str, path: str, body: dict[str, Any]) -> None:
    url = f"/v1/cases/{quote(case_id, safe='')}/{path}"
    # Not repeated after a lost answer: an action may have been applied already.
    with reported_errors(), _endpoints(ctx).api(Side.incoming) as api:
        answer = api.call("POST", url, json=body, idempotent=False)
    shown = json.dumps(answer, ensure_ascii=False) if answer else ""
    consoles()[0].print(f"[green]accepted[/]: {escape(case_id)} {escape(shown)}")


@actions_cli.command("retry-delivery")
def retry_delivery(ctx: typer.Context, case_id: CaseArgument, reason: ReasonOption) -> None:
    """Try the delivery to a not-yet-connected region now (R23) instead of at the next retry."""
    _act(ctx, case_id, "actions/retry-delivery", {"reason": reason})


@actions_cli.command("offline")
def offline_channel(ctx: typer.Context, case_id: CaseArgument, reason: ReasonOption) -> None:
    """Handle the case outside the platform (offline channel) while a region is unconnected."""
    _act(ctx, case_id, "actions/offline-channel", {"reason": reason})


@actions_cli.command("cancel")
def cancel(ctx: typer.Context, case_id: CaseArgument, reason: ReasonOption) -> None:
    """Cancel the case."""
    _act(ctx, case_id, "actions/cancel", {"reason": reason})


@actions_cli.command("resolve-mismatch")
def resolve_mismatch(
    ctx: typer.Context,
    case_id: CaseArgument,
    decision: Annotated[Decision, typer.Option("--decision", help="What to do with the money.")],
    note: Annotated[str, typer.Option("--note", help="The clerk's note.")],
) -> None:
    """A clerk's decision on an amount mismatch (R15): credit what arrived, or return it.
    The agency records the clerk from the API key, not from anything the CLI says."""
    _act(ctx, case_id, "mismatch-resolution", {"decision": decision.value, "note": note})


# --- operator: reconciliation and audit -------------------------------------------------
def _existing_database(url: str, what: str) -> str:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise CliError(
                f"no {what} database at {path} (set MEDTRANSFER_DATA_DIR or the database URL)"
            )
    return url


@contextmanager
def _database_errors(what: str) -> Iterator[None]:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise CliError(f"cannot read the {what}: {type(cause).__name__}: {cause}") from exc


@cli.command()
def reconcile(
    as_json: Annotated[bool, typer.Option("--json", help="The whole report as JSON.")] = False,
    incoming_db: Annotated[
        str | None, typer.Option("--incoming-db", help="SQLAlchemy URL (default: configured).")
    ] = None,
    outgoing_db: Annotated[
        str | None, typer.Option("--outgoing-db", help="SQLAlchemy URL (default: configured).")
    ] = None,
) -> None:
    """Match every remittance three ways (debit, settlement, message) across both agencies'
    databases; exit 1 when anything is unmatched."""
    from services.common.config import Settings
    from services.common.db import make_engine
    from services.ops.reconciliation import TABLE_COLUMNS
    from services.ops.reconciliation import reconcile as run_reconciliation

    settings = Settings()
    out, _ = consoles()
    with reported_errors():
        outgoing = _existing_database(outgoing_db or settings.database_url("outgoing"), "outgoing")
        incoming = _existing_database(incoming_db or settings.database_url("incoming"), "incoming")
        with _database_errors("agency databases"):
            report = run_reconciliation(
                make_engine(outgoing), make_engine(incoming), datetime.now(UTC)
            )
    if as_json:
        typer.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        out.print(reconciliation_table(TABLE_COLUMNS, report.to_table_rows(header=False)))
        t = report.totals
        out.print(
            f"{t.get('remittances', 0)} remittance(s): {t.get('matched', 0)} matched, "
            f"{t.get('unmatched', 0)} unmatched; debited {format_fen(t.get('debited_fen', 0))}, "
            f"credited {format_fen(t.get('credited_fen', 0))}, paid to bank "
            f"{format_fen(t.get('paid_to_bank_fen', 0))}, returned "
            f"{format_fen(t.get('returned_fen', 0))}, outstanding "
            f"{format_fen(t.get('outstanding_fen', 0))} yuan"
        )
    if report.unmatched:
        raise typer.Exit(1)


@audit_cli.command("verify")
def audit_verify(
    case: Annotated[str | None, typer.Option("--case", help="Only this case.")] = None,
) -> None:
    """Verify the hash chains (gaps, altered records, broken links, conflicting duplicates);
    exit 1 on a problem, 2 when the case or the audit store is unknown."""
    from services.audit import __main__ as audit_main
    from services.audit.config import AuditSettings

    try:
        _existing_database(AuditSettings().audit_url, "audit")
    except CliError as error:
        print_error(consoles()[1], error)
        raise typer.Exit(2) from None
    with reported_errors(), _database_errors("audit store"):
        audit_main.verify(case)


# --- bulk import ------------------------------------------------------------------------
def china_today() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


def _registry(err: Console) -> RegionRegistry | None:
    from services.common.config import Settings

    settings = Settings()
    try:
        return load_region_registry(settings.region_registry_file, settings.region_overlay_file)
    except (OSError, ValueError) as exc:
        err.print(
            f"[yellow]no region registry ({escape(str(exc))}): checking the rows' shape only[/]"
        )
        return None


@cli.command("import-applications")
def import_applications(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(help=f"CSV with a header row; columns: {', '.join(COLUMNS)}."),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the rows only; send nothing.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write the per-row report as CSV.")
    ] = None,
    channel: Annotated[Channel, typer.Option("--channel", help="How it was applied for.")] = (
        Channel.counter
    ),
    encoding: Annotated[
        str, typer.Option("--encoding", help="e.g. gb18030 for a Chinese Windows spreadsheet.")
    ] = "utf-8-sig",
) -> None:
    """Submit one application per CSV row (an employer moving many staff).

    A bad row never stops the others. The report shows the row number and the masked ID
    only. Exit 0 when every row was created or already open (duplicate), 1 when some row
    failed, 2 when the file cannot be read.
    """
    out, err = consoles()
    try:
        parsed = read_applications(file, encoding=encoding, channel=channel.value)
    except CsvFileError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if parsed.ignored_columns:
        err.print(f"[yellow]ignored column(s):[/] {escape(', '.join(parsed.ignored_columns))}")
    if dry_run:
        results = check_only(parsed.rows, _registry(err), china_today())
        title = f"dry run of {file.name}: nothing sent"
    else:
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        with _endpoints(ctx).api(Side.incoming) as api, progress:
            task = progress.add_task(f"importing {escape(file.name)}", total=len(parsed.rows))
            results = import_rows(api, parsed.rows, on_result=lambda _: progress.advance(task))
        title = f"import of {file.name}"
    out.print(import_table(results, escape(title)))
    out.print(summary_line(results))
    if report is not None:
        try:
            write_report(report, results)
        except OSError as exc:
            err.print(f"[bold red]error:[/] cannot write {escape(str(report))}: {exc.strerror}")
            raise typer.Exit(1) from None
        err.print(f"report written to {escape(str(report))}")
    raise typer.Exit(0 if all(r.ok for r in results) else 1)
