"""The audit process on the real audit topic: a whole case, signed by both agencies, goes
into its own store and the chains verify; a record forged on the topic is refused; a record
altered in the store afterwards is named by ``verify``, also once the store's own chain has
been recomputed over it (its emitter's signature and its successor's link give it away)."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.documents import AuditRecord, AuditSignature
from harness.agencies import AgencyStack
from harness.servers import REPO_DIR
from services.audit.chain import GENESIS_HASH, link_hash

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


def rejected(db: Path) -> list[str]:
    with sqlite3.connect(db, timeout=30) as conn:
        return [str(reason) for (reason,) in conn.execute("select reason from audit_rejected")]


def forged_by_a_stranger(record: AuditRecord, sequence: int) -> AuditRecord:
    """``record`` as the next of its chain, claiming its emitter's key but signed with
    another: what somebody who can write to the audit topic, but holds no agency key,
    can publish."""
    assert record.signature is not None
    claimed = AuditSignature.model_construct(
        key_id=record.signature.key_id, signed_at=datetime.now(UTC), value="-"
    )
    forged = record.model_copy(
        update={
            "sequence": sequence,
            "status": "refused",
            "prev_hash": record.content_digest(),
            "signature": claimed,
        }
    )
    value = base64.b64encode(Ed25519PrivateKey.generate().sign(forged.signing_bytes()))
    return forged.model_copy(
        update={"signature": claimed.model_copy(update={"value": value.decode("ascii")})}
    )


def rehash_chain(db: Path, case_id: str, side: str) -> None:
    """What an operator covering its tracks does: recompute the store's own chain."""
    with sqlite3.connect(db, timeout=30) as conn:
        rows = conn.execute(
            "select id, record_json from audit_entry where case_id=? and side=? order by sequence",
            (case_id, side),
        ).fetchall()
        prev = GENESIS_HASH
        for row_id, text in rows:
            new = link_hash(prev, text)
            conn.execute(
                "update audit_entry set prev_hash=?, hash=? where id=?", (prev, new, row_id)
            )
            prev = new


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
    # Each record came signed by its emitting agency, with its region's key, and linked to
    # that agency's previous record: the store verified every one on arrival.
    regions = {"incoming": "610100", "outgoing": "620800"}
    records = [AuditRecord.model_validate_json(e["record_json"]) for e in trail["entries"]]
    for record in records:
        assert record.signature is not None, (record.side, record.sequence)
        assert record.region == regions[record.side]
        assert record.signature.key_id.startswith(f"{record.region}-")

    # Somebody who can write to the audit topic, but holds no agency's key, publishes the
    # next record of the incoming chain: the consumer refuses it, it enters no chain.
    last = max((r for r in records if r.side == "incoming"), key=lambda r: r.sequence)
    forged = forged_by_a_stranger(last, last.sequence + 1)
    producer = AIOKafkaProducer(bootstrap_servers=agencies.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            agencies.topics.audit,
            forged.model_dump_json().encode(),
            key=f"{case_id}:forged:{uuid.uuid4().hex[:6]}".encode(),
        )
    finally:
        await producer.stop()
    deadline = time.monotonic() + 60
    while not any(r.startswith("SIGNATURE_INVALID") for r in rejected(audit_db)):
        assert audit_process.poll() is None, "the audit process exited"
        assert time.monotonic() < deadline, f"forged record not refused: {rejected(audit_db)}"
        await asyncio.sleep(0.5)
    assert stored(audit_db, case_id) == sorted(expected)
    assert audit_cli(audit_env, "verify", "--case", case_id).returncode == 0

    # Somebody with write access to the audit database rewrites one record.
    with sqlite3.connect(audit_db, timeout=30) as conn:
        (text,) = conn.execute(
            "select record_json from audit_entry where case_id=? and side='incoming' "
            "and sequence=2",
            (case_id,),
        ).fetchone()
        altered = json.loads(text) | {"status": "refused"}
        conn.execute(
            "update audit_entry set record_json=? where case_id=? and side='incoming' "
            "and sequence=2",
            (json.dumps(altered, separators=(",", ":"), sort_keys=True), case_id),
        )

    dirty = audit_cli(audit_env, "verify", "--case", case_id)
    assert dirty.returncode == 1, dirty.stdout + dirty.stderr
    assert f"hash_mismatch: case {case_id} side incoming sequence 2" in dirty.stdout
    assert f"signature_invalid: case {case_id} side incoming sequence 2" in dirty.stdout
    assert f"link_mismatch: case {case_id} side incoming sequence 3" in dirty.stdout

    # ...and recomputes the store's own chain over it: the store's hashes agree again, the
    # emitter's signature of the record and its successor's signed link still do not.
    rehash_chain(audit_db, case_id, "incoming")
    covered = audit_cli(audit_env, "verify", "--case", case_id)
    assert covered.returncode == 1, covered.stdout + covered.stderr
    assert "hash_mismatch" not in covered.stdout
    assert f"signature_invalid: case {case_id} side incoming sequence 2" in covered.stdout
    assert f"link_mismatch: case {case_id} side incoming sequence 3" in covered.stdout
    assert "side outgoing" not in covered.stdout

    audit_process.terminate()
    assert audit_process.wait(timeout=20) == 0
