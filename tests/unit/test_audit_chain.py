"""The audit process's hash chain, store, export and CLI, on a throwaway SQLite file.

Records reach the store signed by their emitter (tests/support/audit_keys.py); the
signature and checkpoint checks themselves are in test_audit_trust.py."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contracts.audit_trust import sign_record
from contracts.documents import AuditRecord
from services.audit.__main__ import cli
from services.audit.chain import (
    GENESIS_HASH,
    Problem,
    TrailEntry,
    canonical_json,
    link_hash,
    verify_chain,
)
from services.audit.consumer import receive
from services.audit.export import trail_csv, trail_json
from services.audit.store import AuditStore
from tests.support.audit_keys import T0, AuditTrust, make_trust, signed
from tests.support.audit_keys import content as record

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> AuditTrust:
    return make_trust(tmp_path_factory.mktemp("audit-trust"))


@pytest.fixture
def case_id() -> str:
    return f"case-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


@pytest.fixture
def store(db_path: Path, trust: AuditTrust) -> AuditStore:
    return AuditStore.open(f"sqlite:///{db_path}", keys=trust.registry)


Fill = Callable[[AuditStore, str, dict[str, list[int]]], None]


@pytest.fixture
def fill(trust: AuditTrust) -> Fill:
    """Append each side's records, signed by their emitter, in the order given."""

    def append_all(store: AuditStore, case_id: str, sequences: dict[str, list[int]]) -> None:
        for side, numbers in sequences.items():
            for n in numbers:
                assert store.append(signed(trust, case_id, side, n)) == "appended"

    return append_all


def store_signature(store: AuditStore, case_id: str, sequence: int) -> object:
    entry = next(e for e in store.entries(case_id) if e.sequence == sequence)
    return AuditRecord.model_validate_json(entry.record_json).signature


def tamper(db_path: Path, case_id: str, side: str, sequence: int, **changes: object) -> None:
    with sqlite3.connect(db_path) as conn:
        (text,) = conn.execute(
            "select record_json from audit_entry where case_id=? and side=? and sequence=?",
            (case_id, side, sequence),
        ).fetchone()
        altered = json.loads(text) | changes
        conn.execute(
            "update audit_entry set record_json=? where case_id=? and side=? and sequence=?",
            (json.dumps(altered), case_id, side, sequence),
        )


# --- the pure chain -----------------------------------------------------------------------


def test_canonical_json_is_sorted_compact_utf8_and_utc() -> None:
    china = timezone(timedelta(hours=8))
    local = record("c1", "incoming", 1).model_copy(
        update={"occurred_at": (T0 + timedelta(minutes=1)).astimezone(china)}
    )
    text = canonical_json(local)
    assert text == canonical_json(record("c1", "incoming", 1))
    assert text.startswith('{"case_id":"c1","detail":{"note":"转入","step":1},"event":')
    assert " " not in text
    assert '"occurred_at":"2026-11-02T09:31:00Z"' in text


def test_link_hash_is_sha256_of_prev_hash_and_record() -> None:
    text = canonical_json(record("c1", "incoming", 1))
    expected = hashlib.sha256((GENESIS_HASH + text).encode()).hexdigest()
    assert link_hash(GENESIS_HASH, text) == expected
    assert GENESIS_HASH == "0" * 64


def chain(case_id: str, side: str, count: int) -> list[TrailEntry]:
    entries, prev = [], GENESIS_HASH
    for n in range(1, count + 1):
        text = canonical_json(record(case_id, side, n))
        entries.append(TrailEntry(case_id, side, n, text, prev, link_hash(prev, text)))
        prev = entries[-1].hash or ""
    return entries


def test_pure_chain_verifies_and_names_a_broken_link() -> None:
    entries = chain("c1", "outgoing", 4)
    assert verify_chain(entries) == []
    # Record 2 rewritten together with its hash: row 2 is consistent in itself, but
    # row 3 no longer points at it.
    altered = entries[1].record_json.replace("event_2", "event_x")
    rehashed = link_hash(entries[1].prev_hash or "", altered)
    entries[1] = replace(entries[1], record_json=altered, hash=rehashed)
    assert [(p.sequence, p.kind) for p in verify_chain(entries)] == [(3, "broken_link")]


def test_a_record_moved_to_another_sequence_is_reported() -> None:
    entries = chain("c1", "incoming", 2)
    entries[1] = replace(entries[1], sequence=5)
    problems = verify_chain(entries)
    assert {(p.sequence, p.kind) for p in problems} >= {
        (2, "gap"),
        (3, "gap"),
        (4, "gap"),
        (5, "key_mismatch"),
    }


# --- the store ----------------------------------------------------------------------------


def test_a_complete_chain_of_a_case_verifies(store: AuditStore, case_id: str, fill: Fill) -> None:
    fill(store, case_id, {"incoming": [1, 2, 3, 4], "outgoing": [1, 2, 3]})
    assert store.verify(case_id) == []
    assert store.verify() == []
    incoming = [e for e in store.entries(case_id) if e.side == "incoming"]
    assert incoming[0].prev_hash == GENESIS_HASH
    for before, after in pairwise(incoming):
        assert after.prev_hash == before.hash
    assert store.count(case_id) == 7


def test_an_altered_stored_record_is_named(
    store: AuditStore, db_path: Path, case_id: str, fill: Fill
) -> None:
    fill(store, case_id, {"incoming": [1, 2, 3], "outgoing": [1, 2, 3]})
    tamper(db_path, case_id, "outgoing", 2, status="refused")
    problems = store.verify(case_id)
    # The store's chain, the emitter's signature and the next record's link all name it.
    assert [(p.case_id, p.side, p.sequence, p.kind) for p in problems] == [
        (case_id, "outgoing", 2, "hash_mismatch"),
        (case_id, "outgoing", 2, "signature_invalid"),
        (case_id, "outgoing", 3, "link_mismatch"),
    ]
    assert f"case {case_id} side outgoing sequence 2" in str(problems[0])


def test_a_missing_sequence_is_a_gap(store: AuditStore, case_id: str, fill: Fill) -> None:
    fill(store, case_id, {"incoming": [1, 2, 4, 6]})
    problems = store.verify(case_id)
    assert [(p.side, p.sequence, p.kind) for p in problems] == [
        ("incoming", 3, "gap"),
        ("incoming", 5, "gap"),
    ]


def test_the_same_record_again_is_ignored(
    store: AuditStore, case_id: str, fill: Fill, trust: AuditTrust
) -> None:
    fill(store, case_id, {"incoming": [1, 2]})
    # A retried activity publishes the same record again, possibly in another time zone;
    # its emitter signs it again, later.
    retried = record(case_id, "incoming", 2)
    retried = retried.model_copy(
        update={"occurred_at": retried.occurred_at.astimezone(timezone(timedelta(hours=8)))}
    )
    again = sign_record(
        trust.signer("incoming"),
        retried,
        region="610100",
        prev_hash=record(case_id, "incoming", 1).content_digest(),
        at=datetime.now(UTC) + timedelta(minutes=5),
    )
    assert again.signature != store_signature(store, case_id, 2)
    assert store.append(again) == "duplicate"
    assert store.count(case_id) == 2
    assert store.conflicts(case_id) == []
    assert store.verify(case_id) == []


def test_a_conflicting_duplicate_is_kept_and_reported(
    store: AuditStore, case_id: str, fill: Fill, trust: AuditTrust
) -> None:
    fill(store, case_id, {"outgoing": [1, 2, 3]})
    other = signed(trust, case_id, "outgoing", 2, status="completed")
    assert store.append(other) == "conflict"
    assert store.append(other) == "conflict"  # redelivered: kept once
    assert len(store.conflicts(case_id)) == 1
    problems = store.verify(case_id)
    assert [(p.side, p.sequence, p.kind) for p in problems] == [
        ("outgoing", 2, "duplicate_conflict")
    ]
    # The first record stays in the chain.
    stored = next(e for e in store.entries(case_id) if e.sequence == 2)
    assert json.loads(stored.record_json)["status"] == "submitted"


def test_out_of_order_arrival_verifies_once_complete(
    store: AuditStore, tmp_path: Path, case_id: str, fill: Fill, trust: AuditTrust
) -> None:
    arrived = {n: signed(trust, case_id, "incoming", n) for n in (1, 2, 3, 4, 5)}
    for n in (3, 1, 5):
        store.append(arrived[n])
    waiting = {e.sequence: e for e in store.entries(case_id)}
    assert waiting[1].hash is not None
    assert waiting[3].hash is None
    assert waiting[5].hash is None
    assert [(p.sequence, p.kind) for p in store.verify(case_id)] == [(2, "gap"), (4, "gap")]

    store.append(arrived[2])
    store.append(arrived[4])
    assert store.verify(case_id) == []
    assert store.relink(case_id, "incoming") == 0  # append already linked everything
    # The chain is the one an in-order arrival builds.
    in_order = AuditStore.open(f"sqlite:///{tmp_path / 'in-order.db'}", keys=trust.registry)
    for n in range(1, 6):
        in_order.append(arrived[n])
    assert [e.hash for e in store.entries(case_id)] == [e.hash for e in in_order.entries(case_id)]


def test_relink_fills_in_rows_waiting_behind_a_complete_prefix(
    store: AuditStore, db_path: Path, case_id: str, fill: Fill
) -> None:
    fill(store, case_id, {"incoming": [1, 2, 3]})
    with sqlite3.connect(db_path) as conn:  # as if a link had been lost
        conn.execute(
            "update audit_entry set prev_hash=null, hash=null where case_id=? and sequence>=2",
            (case_id,),
        )
    assert {p.kind for p in store.verify(case_id)} == {"broken_link"}
    assert store.relink(case_id, "incoming") == 2
    assert store.verify(case_id) == []


async def test_an_invalid_message_is_rejected_without_its_content(
    store: AuditStore, case_id: str, trust: AuditTrust
) -> None:
    person_id = "620802199001011234"
    bad = signed(trust, case_id, "incoming", 1).model_dump(mode="json")
    bad["detail"] = {"id_number": person_id}
    raw = json.dumps(bad).encode()
    assert await receive(store, raw, topic="t", partition=0, offset=7, key=b"k") == "rejected"
    assert await receive(store, b"not json", topic="t", partition=0, offset=8) == "rejected"
    ok = signed(trust, case_id, "incoming", 1).model_dump_json().encode()
    assert await receive(store, ok, topic="t", partition=0, offset=9) == "appended"
    assert await receive(store, ok, topic="t", partition=0, offset=10) == "duplicate"

    rejected = store.rejected()
    assert [(r.offset, r.reason) for r in rejected] == [
        (7, "INVALID_AUDIT_RECORD: detail"),
        (8, "INVALID_AUDIT_RECORD: not JSON"),
    ]
    assert rejected[0].raw_sha256 == hashlib.sha256(raw).hexdigest()
    assert person_id not in repr(rejected)
    assert store.count(case_id) == 1


# --- export and command line --------------------------------------------------------------


def test_json_and_csv_exports_carry_every_record_with_its_hash(
    store: AuditStore, case_id: str, fill: Fill, trust: AuditTrust
) -> None:
    fill(store, case_id, {"outgoing": [1, 2], "incoming": [1, 2, 3]})
    store.append(signed(trust, case_id, "incoming", 3, status="completed"))  # a conflict
    entries, conflicts = store.entries(case_id), store.conflicts(case_id)
    problems = store.verify(case_id)

    document = json.loads(trail_json(case_id, entries, conflicts, problems, T0))
    exported = [(e["side"], e["sequence"], e["hash"]) for e in document["entries"]]
    assert exported == [(e.side, e.sequence, e.hash) for e in entries]
    assert [s for s, _, _ in exported] == ["incoming"] * 3 + ["outgoing"] * 2
    for item in document["entries"]:  # anyone can recompute the chain from the export
        assert item["hash"] == link_hash(item["prev_hash"], item["record_json"])
        assert item["record"]["sequence"] == item["sequence"]
        assert item["record"]["signature"]["key_id"].startswith(item["record"]["region"])
    assert document["heads"]["incoming"] == {"sequence": 3, "hash": entries[2].hash}
    assert document["verified"] is False
    assert [(p["sequence"], p["kind"]) for p in document["problems"]] == [(3, "duplicate_conflict")]
    assert len(document["conflicts"]) == 1

    rows = list(csv.DictReader(io.StringIO(trail_csv(case_id, entries, conflicts))))
    chained = [r for r in rows if r["kind"] == "entry"]
    assert [(r["side"], int(r["sequence"]), r["hash"]) for r in chained] == [
        (e.side, e.sequence, e.hash) for e in entries
    ]
    for row in chained:
        assert row["hash"] == link_hash(row["prev_hash"], row["record_json"])
        assert row["case_id"] == case_id
    assert [(r["side"], r["sequence"], r["hash"]) for r in rows if r["kind"] == "conflict"] == [
        ("incoming", "3", "")
    ]


def test_cli_verify_names_the_altered_record_and_export_writes_the_trail(
    store: AuditStore, db_path: Path, tmp_path: Path, case_id: str, fill: Fill, trust: AuditTrust
) -> None:
    fill(store, case_id, {"incoming": [1, 2, 3], "outgoing": [1, 2]})
    runner = CliRunner()
    env = trust.env(MEDTRANSFER_AUDIT_DATABASE_URL=f"sqlite:///{db_path}")

    clean = runner.invoke(cli, ["verify", "--case", case_id], env=env)
    assert clean.exit_code == 0, clean.output
    assert runner.invoke(cli, ["verify", "--case", "nobody"], env=env).exit_code == 2

    out = tmp_path / "trail.csv"
    exported = runner.invoke(
        cli, ["export", case_id, "--format", "csv", "--output", str(out)], env=env
    )
    assert exported.exit_code == 0, exported.output
    assert len(list(csv.DictReader(out.open(encoding="utf-8")))) == 5
    as_json = runner.invoke(cli, ["export", case_id, "--format", "json"], env=env)
    assert json.loads(as_json.stdout)["verified"] is True

    tamper(db_path, case_id, "incoming", 2, event="forged")
    dirty = runner.invoke(cli, ["verify", "--case", case_id], env=env)
    assert dirty.exit_code == 1
    assert f"hash_mismatch: case {case_id} side incoming sequence 2" in dirty.output
    assert f"signature_invalid: case {case_id} side incoming sequence 2" in dirty.output
    assert runner.invoke(cli, ["verify"], env=env).exit_code == 1


def test_problem_reads_as_one_line() -> None:
    problem = Problem("c9", "incoming", 4, "gap", "record missing")
    assert str(problem) == "gap: case c9 side incoming sequence 4: record missing"
