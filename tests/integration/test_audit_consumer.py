"""The audit process on the real audit topic: a whole case goes into its own store, the
chains verify, and a record altered in the store afterwards is named by ``verify``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agencies import AgencyStack
from tests.support.stack import REPO_DIR

pytestmark = pytest.mark.integration


@pytest.fixture
def audit_db(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


@pytest.fixture
def audit_env(agencies: AgencyStack, audit_db: Path) -> dict[str, str]:
    return {**agencies.env, "MEDTRANSFER_AUDIT_DATABASE_URL": f"sqlite:///{audit_db}"}


@pytest.fixture
def audit_process(agencies: AgencyStack, audit_env: dict[str, str]) -> Iterator[subprocess.Popen]:
    agencies.log_dir.mkdir(parents=True, exist_ok=True)
    # In the stack's log directory, so the personal-data scan of every log covers it too.
    log = (agencies.log_dir / "audit.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.audit", "run"],
        cwd=REPO_DIR,
        env=audit_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def audit_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.audit", *args],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def stored(db: Path, case_id: str) -> list[tuple[str, int]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            rows = conn.execute(
                "select side, sequence from audit_entry where case_id=? order by side, sequence",
                (case_id,),
            ).fetchall()
    except sqlite3.OperationalError:  # the consumer has not created its tables yet
        return []
    return [(str(side), int(sequence)) for side, sequence in rows]


async def test_audit_store_holds_and_verifies_a_whole_case_and_names_a_tampered_record(
    agencies: AgencyStack,
    audit_process: subprocess.Popen,
    audit_db: Path,
    audit_env: dict[str, str],
) -> None:
    person = agencies.person("620800")
    await agencies.enrol(person, balance_fen=311_000)
    case_id = await agencies.submit_ok(agencies.application(person, "610100"))
    await agencies.wait_status("incoming", case_id, "completed")
    await agencies.wait_status("outgoing", case_id, "completed")
    incoming = await agencies.case("incoming", case_id)
    outgoing = await agencies.case("outgoing", case_id)
    expected = [("incoming", e["sequence"]) for e in incoming["timeline"]] + [
        ("outgoing", e["sequence"]) for e in outgoing["timeline"]
    ]

    deadline = time.monotonic() + 60
    while len(stored(audit_db, case_id)) < len(expected):
        if audit_process.poll() is not None:
            log = (agencies.log_dir / "audit.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"audit process exited with {audit_process.returncode}:\n{log}")
        assert time.monotonic() < deadline, (
            f"audit store holds {stored(audit_db, case_id)}, expected {expected}"
        )
        await asyncio.sleep(0.5)
    assert stored(audit_db, case_id) == sorted(expected)

    clean = audit_cli(audit_env, "verify", "--case", case_id)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    trail = json.loads(audit_cli(audit_env, "export", case_id, "--format", "json").stdout)
    assert trail["verified"] is True
    assert len(trail["entries"]) == len(expected)
    assert all(e["hash"] for e in trail["entries"])

    # Somebody with write access to the audit database rewrites one record.
    with sqlite3.connect(audit_db, timeout=30) as conn:
        (text,) = conn.execute(
            "select record_json from audit_entry where case_id=? and side='incoming' "
            "and sequence=2",
            (case_id,),
        ).fetchone()
        forged = json.loads(text) | {"status": "refused"}
        conn.execute(
            "update audit_entry set record_json=? where case_id=? and side='incoming' "
            "and sequence=2",
            (json.dumps(forged, separators=(",", ":"), sort_keys=True), case_id),
        )

    dirty = audit_cli(audit_env, "verify", "--case", case_id)
    assert dirty.returncode == 1, dirty.stdout + dirty.stderr
    assert f"hash_mismatch: case {case_id} side incoming sequence 2" in dirty.stdout

    audit_process.terminate()
    assert audit_process.wait(timeout=20) == 0
