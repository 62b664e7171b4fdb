"""python -m services.audit run | verify [--case CASE_ID] [--checkpoints FILE]
| export CASE_ID --format json|csv | checkpoint --side SIDE [--case CASE_ID]

``run`` consumes the audit topic until SIGTERM or SIGINT. ``verify`` checks the stored
chains, the emitters' signatures and links (public keys only: either agency, or anyone,
can verify the other's chain) and, given checkpoint files, that no chain lost its end; it
exits 1 when it finds a problem (2 when the case is unknown or the key registry cannot be
read). ``export`` writes one case's trail, both sides, for a dispute. ``checkpoint`` runs
in an agency deployment: it signs the heads of its own side's chains from its own timeline
(docs/audit-trust.md).
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

from contracts.audit_trust import AuditCheckpoint
from contracts.keyring import KeyRegistryError, RegionSigner
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


class AgencySide(StrEnum):
    incoming = "incoming"
    outgoing = "outgoing"


def _store() -> AuditStore:
    settings = AuditSettings()
    try:
        keys = settings.key_registry()
    except KeyRegistryError as exc:
        Console(stderr=True).print(
            f"[red]cannot verify the emitters' signatures[/]: {escape(str(exc))}"
        )
        raise typer.Exit(2) from None
    return AuditStore.open(settings.audit_url, keys=keys)


def _checkpoints(paths: list[Path]) -> list[AuditCheckpoint]:
    """Checkpoints from JSON-lines files (``checkpoint``'s output); exit 2 if unreadable."""
    found: list[AuditCheckpoint] = []
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
            found.extend(
                AuditCheckpoint.model_validate_json(line) for line in lines if line.strip()
            )
        except (OSError, ValueError) as exc:
            message = f"checkpoint file {path} cannot be read: {type(exc).__name__}"
            Console(stderr=True).print(escape(message))
            raise typer.Exit(2) from None
    return found


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
    checkpoints: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoints",
            help="A file of signed checkpoints (from `checkpoint`), kept outside this store; "
            "may be repeated.",
        ),
    ] = None,
) -> None:
    """Verify the trail: gaps, altered records, broken links, conflicting duplicates, the
    emitters' signatures and links, and truncation against signed checkpoints."""
    # soft_wrap: one problem per line, never cut, so the output can be grepped.
    console = Console(soft_wrap=True, highlight=False)
    store = _store()
    points = _checkpoints(checkpoints or [])
    cases = sorted({*store.case_ids(), *(p.case_id for p in points)})
    if case is not None and case not in cases:
        console.print(f"no audit entries for case {escape(case)}")
        raise typer.Exit(2)
    problems = store.verify(case, points)
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


@cli.command()
def checkpoint(
    side: Annotated[AgencySide, typer.Option("--side", help="This deployment's side.")],
    case: Annotated[str | None, typer.Option("--case", help="Only this case.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write here instead of standard output.")
    ] = None,
) -> None:
    """Sign the head of each chain of this agency side (periodically, or at case close):
    one checkpoint per case as JSON lines, to keep and hand to the other agency. Runs with
    the agency's settings: its database, its keys, the registry."""
    from services.common.audit_records import AuditRecordSigner
    from services.common.config import Settings
    from services.common.db import make_engine
    from services.common.keys import load_registry, load_trust, served_regions
    from services.common.repository import CaseRepository

    settings = Settings()
    served = served_regions(settings, load_registry(settings))
    signer = RegionSigner(settings.keys_dir, served, load_trust(settings, served))
    repository = CaseRepository(make_engine(settings.database_url(side.value)), side.value)
    err = Console(stderr=True)
    lines, skipped = [], 0
    for item in AuditRecordSigner(signer, repository).checkpoints(
        side.value, case, datetime.now(UTC)
    ):
        if isinstance(item, AuditCheckpoint):
            lines.append(item.model_dump_json() + "\n")
        else:
            skipped += 1
            err.print(f"skipped: {escape(str(item))}")
    if case is not None and not lines:
        err.print(f"no signed timeline for case {escape(case)}")
        raise typer.Exit(2)
    if output is None:
        sys.stdout.write("".join(lines))
    else:
        output.write_text("".join(lines), encoding="utf-8")
        err.print(f"wrote {len(lines)} checkpoint(s) to {output}")
    if skipped:
        raise typer.Exit(1)


if __name__ == "__main__":
    cli()
