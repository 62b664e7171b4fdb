"""Every setting is documented in the README's one Configuration table (issue 8 item 5)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer

from services.audit.config import AuditSettings
from services.cli.app import cli
from services.common import metrics
from services.common.config import REPO_DIR, Settings

pytestmark = pytest.mark.unit


def configuration_section() -> str:
    readme = (REPO_DIR / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Configuration\n")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def documented() -> set[str]:
    """The variable names in the first column of the table's rows."""
    names: set[str] = set()
    for line in configuration_section().splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split(" | ")[0]))
    return names


def cli_variables(command: Any) -> set[str]:
    """Environment variables of a (Typer's) click command and its subcommands."""
    found = {
        name
        for param in command.params
        for name in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or [])
    }
    for sub in getattr(command, "commands", {}).values():
        found |= cli_variables(sub)
    return found


def test_the_configuration_section_has_one_table() -> None:
    assert configuration_section().count("| variable | default | meaning |") == 1


def test_every_service_setting_is_in_the_table() -> None:
    prefix = Settings.model_config.get("env_prefix", "")
    fields = set(Settings.model_fields) | set(AuditSettings.model_fields)
    missing = {f"{prefix}{name}".upper() for name in fields} - documented()
    assert not missing, f"settings missing from the README's Configuration table: {missing}"


def test_every_variable_read_outside_the_settings_is_in_the_table() -> None:
    read = {
        metrics.WORKER_PORT_ENV,
        metrics.WORKER_ADDR_ENV,
        *(f"MEDTRANSFER_{side}_WORKER_METRICS_PORT" for side in ("INCOMING", "OUTGOING")),
        *cli_variables(typer.main.get_command(cli)),
    }
    assert read - documented() == set()
