"""python -m services.audit run | verify [--case CASE_ID] | export CASE_ID --format json|csv

``run`` consumes the audit topic until SIGTERM or SIGINT. ``verify`` checks the stored
chains and exits 1 when it finds a problem (2 when the case is unknown). ``export``
writes one case's trail, both sides, for a dispute.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from services.audit.config import AuditSettings
from services.audit.export import trail_csv, trail_json
from services.audit.store import AuditStore

cli = typer.Typer(
    name="python -m services.audit",
    help="The audit process: consume, verify and export the case audit trail.",
    no_args_is_help=True,
    add_completion=False,
)


class ExportFormat(StrEnum):
    json = "json"
    csv = "csv"


def _store() -> AuditStore:
    return AuditStore.open(AuditSettings().audit_url)


@cli.command()
def run() -> None:
    """Consume the audit topic into the audit store (foreground, until SIGTERM/SIGINT)."""
    from services.audit.consumer import create_app
    from services.common.logging import configure_logging
    from services.common.tracing import configure_tracing

    settings = AuditSettings()
    configure_logging("audit", json_output=settings.log_json)
    tracer_provider = configure_tracing(settings, "audit-consumer")
    asyncio.run(create_app(settings, tracer_provider=tracer_provider).run())


@cli.command()
def verify(
    case: Annotated[str | None, typer.Option("--case", help="Only this case.")] = None,
) -> None:
    """Verify the hash chains: gaps, altered records, broken links, conflicting duplicates."""
    # soft_wrap: one problem per line, never cut, so the output can be grepped.
    console = Console(soft_wrap=True, highlight=False)
    store = _store()
    cases = store.case_ids()
    if case is not None and case not in cases:
        console.print(f"no audit entries for case {escape(case)}")
        raise typer.Exit(2)
    problems = store.verify(case)
    for problem in problems:
        console.print(f"[bold red]{escape(problem.kind)}[/] {escape(str(problem))}")
    scope = f"case {case}" if case is not None else f"{len(cases)} case(s)"
    if problems:
        console.print(f"[red]{len(problems)} problem(s)[/] in {escape(scope)}")
        raise typer.Exit(1)
    console.print(f"[green]ok[/]: {escape(scope)} verified, no problems")


@cli.command()
def export(
    case_id: Annotated[str, typer.Argument(help="The case whose trail to export.")],
    format: Annotated[ExportFormat, typer.Option("--format", help="json or csv.")] = (
        ExportFormat.json
    ),
    output: Annotated[
        Path | None, typer.Option("--output", help="Write here instead of standard output.")
    ] = None,
) -> None:
    """Export one case's trail (both sides, by side then sequence, with hashes)."""
    store = _store()
    entries, conflicts = store.entries(case_id), store.conflicts(case_id)
    if not entries and not conflicts:
        Console(stderr=True).print(f"no audit entries for case {escape(case_id)}")
        raise typer.Exit(2)
    if format is ExportFormat.json:
        problems = store.verify(case_id)
        text = trail_json(case_id, entries, conflicts, problems, datetime.now(UTC))
    else:
        text = trail_csv(case_id, entries, conflicts)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        Console(stderr=True).print(f"wrote {len(entries)} entries of case {case_id} to {output}")


if __name__ == "__main__":
    cli()
