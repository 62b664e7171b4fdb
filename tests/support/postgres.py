"""The PostgreSQL cluster of a test session, from Debian's packages through
deploy/local/postgres.sh (installed when missing), on POSTGRES_PORT; databases made
through it are dropped at the end. The ``postgres`` fixture is in tests/conftest.py."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.servers import DEPLOY, REPO_DIR

TEST_STATE_DIR = Path(os.environ.get("MEDTRANSFER_TEST_STATE", REPO_DIR / "var" / "test"))
POSTGRES_PORT = int(os.environ.get("POSTGRES_PORT", "5433"))


@dataclass
class Postgres:
    """The session's cluster; databases made through it are dropped at the end."""

    env: dict[str, str]
    started_here: bool = False
    created: list[str] = field(default_factory=list)

    def script(self, *args: str) -> str:
        result = subprocess.run(
            [str(DEPLOY / "postgres.sh"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"postgres.sh {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result.stdout.strip()

    def new_database(self, label: str) -> str:
        name = f"t_{label}_{uuid.uuid4().hex[:10]}"
        self.script("createdb", name)
        self.created.append(name)
        return self.script("url", name)


def session_postgres() -> Iterator[Postgres]:
    """PostgreSQL on POSTGRES_PORT for the session; fails (never skips) when it cannot
    be had."""
    pg = Postgres(
        env={
            **os.environ,
            "MEDTRANSFER_STATE": str(TEST_STATE_DIR),
            "POSTGRES_PORT": str(POSTGRES_PORT),
        }
    )
    try:
        pg.script("status")
    except RuntimeError:
        pg.script("start")
        pg.started_here = True
    yield pg
    if pg.created:
        pg.script("dropdb", *pg.created)
    if pg.started_here:
        pg.script("stop")
