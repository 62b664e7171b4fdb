"""The audit trail's trust: every record signed by the agency that emits it, linked to that
agency's previous record, checked by the audit store on arrival and by ``verify`` with
public keys only; checkpoints of the chain heads catch a dropped suffix."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from faststream.kafka import KafkaBroker
from sqlmodel import SQLModel
from typer.testing import CliRunner

from contracts.audit_trust import AuditCheckpoint, sign_checkpoint
from contracts.documents import AUDIT_GENESIS, AuditRecord, AuditSignature
from contracts.keyring import KeyCustodyError, KeyEntry, KeyRegistryError, held_keys
from contracts.signing import SignatureInvalid, public_key_b64
from contracts.topics import Topics
from services.audit.__main__ import cli
from services.audit.chain import GENESIS_HASH, link_hash
from services.audit.config import AuditSettings
from services.audit.consumer import receive
from services.audit.store import AuditStore, RecordRefused
from services.common.audit_records import AuditRecordSigner
from services.common.broker import KafkaDocumentPublisher
from services.common.db import create_tables, make_engine
from services.common.repository import CaseRepository
from services.common.tables import COMMON_TABLES, CaseRow
from tests.support.audit_keys import (
    INCOMING_REGION,
    NOT_BEFORE,
    OUTGOING_REGION,
    T0,
    AuditTrust,
    content,
    make_trust,
    signed,
)
from workflows.types import CaseEvent

pytestmark = pytest.mark.unit


@pytest.fixture
def trust(tmp_path: Path) -> AuditTrust:
    return make_trust(tmp_path)


@pytest.fixture
def case_id() -> str:
    return f"TR{uuid.uuid4().hex[:10]}"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


@pytest.fixture
def store(db_path: Path, trust: AuditTrust) -> AuditStore:
    return AuditStore.open(f"sqlite:///{db_path}", keys=trust.registry)


def fill(store: AuditStore, trust: AuditTrust, case_id: str, side: str, count: int) -> None:
    for n in range(1, count + 1):
        assert store.append(signed(trust, case_id, side, n)) == "appended"


def key_of(trust: AuditTrust, side: str) -> tuple[str, Ed25519PrivateKey]:
    """The agency's own private key: only to forge with, as a dishonest holder would."""
    ((key_id, key),) = next(iter(held_keys(trust.keys_dirs[side]).values())).items()
    return key_id, key


def forge(record: AuditRecord, key_id: str, key: Ed25519PrivateKey) -> AuditRecord:
    """``record`` signed with any key at all."""
    stub = AuditSignature.model_construct(key_id=key_id, signed_at=datetime.now(UTC), value="-")
    data = record.model_copy(update={"signature": stub}).signing_bytes()
    value = base64.b64encode(key.sign(data)).decode("ascii")
    return record.model_copy(update={"signature": stub.model_copy(update={"value": value})})


def kinds(problems: list[Any]) -> list[tuple[str, int, str]]:
    return [(p.side, p.sequence, p.kind) for p in problems]


def sql(db_path: Path, statement: str, *args: object) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute(statement, args)


def rehash_everything(db_path: Path, case_id: str, side: str) -> None:
    """What an operator covering its tracks does: recompute the store's own chain."""
    with sqlite3.connect(db_path) as conn:
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


async def offer(store: AuditStore, record: AuditRecord, offset: int = 1) -> str:
    raw = record.model_dump_json().encode()
    return await receive(store, raw, topic="audit", partition=0, offset=offset)


# --- signing and the signed bytes -----------------------------------------------------------


def test_a_signed_record_verifies_and_its_signature_covers_link_and_key(
    trust: AuditTrust, case_id: str
) -> None:
    record = signed(trust, case_id, "outgoing", 2)
    assert record.region == OUTGOING_REGION
    assert record.prev_hash == content(case_id, "outgoing", 1).content_digest()
    assert record.signature is not None
    assert record.signature.key_id.startswith(OUTGOING_REGION)
    signature = record.signature
    registry = trust.registry
    registry.verify_bytes(
        OUTGOING_REGION,
        signature.key_id,
        record.signing_bytes(),
        signature.value,
        signature.signed_at,
        datetime.now(UTC),
    )
    # The signed bytes are the record's JCS form with the signature reduced to key and time.
    signed_json = json.loads(record.signing_bytes())
    assert signed_json["signature"] == {
        "key_id": signature.key_id,
        "signed_at": signature.signed_at.isoformat().replace("+00:00", "Z"),
    }
    assert signed_json["prev_hash"] == record.prev_hash
    assert signed(trust, case_id, "outgoing", 1).prev_hash == AUDIT_GENESIS
    # The digest is of the content only: the same however it is signed or linked.
    assert record.content_digest() == content(case_id, "outgoing", 2).content_digest()


def test_a_signer_signs_only_for_its_own_region(trust: AuditTrust) -> None:
    with pytest.raises(KeyCustodyError):
        trust.signer("incoming").sign_bytes(OUTGOING_REGION, b"x", datetime.now(UTC))


def test_verify_bytes_refuses_a_revoked_key_and_a_time_outside_its_validity(
    trust: AuditTrust, case_id: str
) -> None:
    record = signed(trust, case_id, "incoming", 1)
    assert record.signature is not None
    sig = record.signature
    now = datetime.now(UTC)

    def check(signed_at: datetime) -> None:
        trust.registry.verify_bytes(
            INCOMING_REGION, sig.key_id, record.signing_bytes(), sig.value, signed_at, now
        )

    with pytest.raises(SignatureInvalid, match="was not valid at"):
        check(NOT_BEFORE - timedelta(days=1))
    revoked = [
        KeyEntry(e.region, e.key_id, e.public_key, e.not_before, revoked_at=now - timedelta(1))
        if e.region == INCOMING_REGION
        else e
        for e in trust.entries
    ]
    trust.publish(revoked)
    with pytest.raises(SignatureInvalid, match="revoked"):
        check(sig.signed_at)


def test_a_stored_record_still_verifies_after_its_key_was_rotated_out(
    store: AuditStore, trust: AuditTrust, case_id: str
) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=400)
    for n in (1, 2):
        assert store.append(signed(trust, case_id, "outgoing", n, at=long_ago)) == "appended"
    ended = datetime.now(UTC) - timedelta(days=300)
    successor = Ed25519PrivateKey.generate()
    trust.publish(
        [
            KeyEntry(e.region, e.key_id, e.public_key, e.not_before, not_after=ended)
            if e.region == OUTGOING_REGION
            else e
            for e in trust.entries
        ]
        + [KeyEntry(OUTGOING_REGION, f"{OUTGOING_REGION}-next", public_key_b64(successor), ended)]
    )
    assert store.verify(case_id) == []  # the trail outlives its keys
    revoked = [
        KeyEntry(e.region, e.key_id, e.public_key, e.not_before, e.not_after, ended)
        if e.key_id.endswith("-out")
        else e
        for e in trust.entries
    ]
    trust.publish(revoked)
    assert kinds(store.verify(case_id)) == [
        ("outgoing", 1, "signature_invalid"),
        ("outgoing", 2, "signature_invalid"),
    ]


# --- the store refuses what the emitter did not sign ----------------------------------------


async def test_a_record_signed_by_another_regions_key_is_rejected(
    store: AuditStore, trust: AuditTrust, case_id: str
) -> None:
    fill(store, trust, case_id, "outgoing", 2)
    # The incoming agency (region 610100) writes an outgoing record of region 620800 with
    # its own, registered, key.
    key_id, key = key_of(trust, "incoming")
    claim = content(case_id, "outgoing", 3, status="refused").model_copy(
        update={
            "region": OUTGOING_REGION,
            "prev_hash": content(case_id, "outgoing", 2).content_digest(),
        }
    )
    assert await offer(store, forge(claim, key_id, key), offset=5) == "rejected"
    # ...or names its own region for the outgoing chain: its signature verifies, the
    # region is not the chain's.
    own = forge(claim.model_copy(update={"region": INCOMING_REGION}), key_id, key)
    assert await offer(store, own, offset=6) == "rejected"

    reasons = [(r.offset, r.reason) for r in store.rejected()]
    assert reasons == [
        (5, f"SIGNATURE_INVALID: no key {key_id} registered for region {OUTGOING_REGION}"),
        (
            6,
            f"REGION_MISMATCH: region {INCOMING_REGION} signed a record of a outgoing chain "
            f"of region {OUTGOING_REGION}",
        ),
    ]
    assert store.count(case_id) == 2
    assert store.verify(case_id) == []


async def test_a_forged_record_with_a_valid_looking_link_is_rejected(
    store: AuditStore, trust: AuditTrust, db_path: Path, case_id: str
) -> None:
    fill(store, trust, case_id, "incoming", 3)
    real = signed(trust, case_id, "incoming", 3)
    assert real.signature is not None
    # Sequence 4 linked exactly as its emitter would link it, with a real signature
    # block copied from another record, or with none.
    forged = content(case_id, "incoming", 4, status="completed").model_copy(
        update={
            "region": INCOMING_REGION,
            "prev_hash": content(case_id, "incoming", 3).content_digest(),
            "signature": real.signature,
        }
    )
    assert await offer(store, forged, offset=1) == "rejected"
    unsigned = forged.model_copy(update={"signature": None})
    assert await offer(store, unsigned, offset=2) == "rejected"
    with pytest.raises(RecordRefused, match="SIGNATURE_INVALID: signature does not match"):
        store.append(forged)
    assert [r.reason for r in store.rejected()] == [
        "SIGNATURE_INVALID: signature does not match",
        "SIGNATURE_INVALID: not signed",
    ]
    assert store.count(case_id) == 3

    # Written into the database behind the consumer's back, with a correct store hash:
    # verify still names it.
    head = next(e for e in store.entries(case_id) if e.sequence == 3)
    text = forged.model_dump_json()
    sql(
        db_path,
        "insert into audit_entry (case_id, side, sequence, record_json, prev_hash, hash, "
        "received_at) values (?, 'incoming', 4, ?, ?, ?, ?)",
        case_id,
        text,
        head.hash,
        link_hash(head.hash or "", text),
        T0.isoformat(),
    )
    assert kinds(store.verify(case_id)) == [("incoming", 4, "signature_invalid")]


# --- verify, with public keys only -----------------------------------------------------------


def test_a_record_altered_in_the_database_is_reported_even_when_rehashed(
    store: AuditStore, trust: AuditTrust, db_path: Path, case_id: str
) -> None:
    fill(store, trust, case_id, "outgoing", 3)
    with sqlite3.connect(db_path) as conn:
        (text,) = conn.execute(
            "select record_json from audit_entry where case_id=? and sequence=2", (case_id,)
        ).fetchone()
        altered = json.loads(text) | {"status": "completed", "detail": {"step": 9}}
        conn.execute(
            "update audit_entry set record_json=? where case_id=? and sequence=2",
            (json.dumps(altered), case_id),
        )
    rehash_everything(db_path, case_id, "outgoing")
    # The store's chain is consistent again; the emitter's signature and link are not.
    assert kinds(store.verify(case_id)) == [
        ("outgoing", 2, "signature_invalid"),
        ("outgoing", 3, "link_mismatch"),
    ]


def test_a_deleted_middle_record_is_reported(
    store: AuditStore, trust: AuditTrust, db_path: Path, case_id: str
) -> None:
    fill(store, trust, case_id, "incoming", 4)
    sql(db_path, "delete from audit_entry where case_id=? and sequence=2", case_id)
    rehash_everything(db_path, case_id, "incoming")
    assert ("incoming", 2, "gap") in kinds(store.verify(case_id))

    # Closing the gap by renumbering breaks the signatures of the records moved.
    with sqlite3.connect(db_path) as conn:
        for n in (3, 4):
            (text,) = conn.execute(
                "select record_json from audit_entry where case_id=? and sequence=?", (case_id, n)
            ).fetchone()
            moved = json.dumps(json.loads(text) | {"sequence": n - 1})
            conn.execute(
                "update audit_entry set sequence=?, record_json=? where case_id=? and sequence=?",
                (n - 1, moved, case_id, n),
            )
    rehash_everything(db_path, case_id, "incoming")
    assert kinds(store.verify(case_id)) == [
        ("incoming", 2, "link_mismatch"),
        ("incoming", 2, "signature_invalid"),
        ("incoming", 3, "link_mismatch"),
        ("incoming", 3, "signature_invalid"),
    ]


def test_unsigned_records_from_before_are_reported_not_fatal(
    db_path: Path, trust: AuditTrust, case_id: str
) -> None:
    old = AuditStore.open(f"sqlite:///{db_path}")  # as the store was before signatures
    for n in (1, 2):
        assert old.append(content(case_id, "incoming", n)) == "appended"
    assert old.verify(case_id) == []  # without keys: the store's own chain only

    store = AuditStore.open(f"sqlite:///{db_path}", keys=trust.registry)
    assert kinds(store.verify(case_id)) == [
        ("incoming", 1, "unsigned"),
        ("incoming", 2, "unsigned"),
    ]
    # The first signed record links to the last unsigned one (the digest is of content).
    assert store.append(signed(trust, case_id, "incoming", 3)) == "appended"
    assert kinds(store.verify(case_id)) == [
        ("incoming", 1, "unsigned"),
        ("incoming", 2, "unsigned"),
    ]
    with pytest.raises(RecordRefused, match="not signed"):
        store.append(content(case_id, "incoming", 4))
    result = CliRunner().invoke(
        cli, ["verify"], env=trust.env(MEDTRANSFER_AUDIT_DATABASE_URL=f"sqlite:///{db_path}")
    )
    assert result.exit_code == 1
    assert f"unsigned: case {case_id} side incoming sequence 1" in result.output


def test_each_agency_verifies_the_others_chain_with_public_keys_only(
    store: AuditStore,
    trust: AuditTrust,
    db_path: Path,
    tmp_path: Path,
    case_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fill(store, trust, case_id, "incoming", 3)
    fill(store, trust, case_id, "outgoing", 4)

    def no_private_keys(*_: object) -> object:
        raise AssertionError("verification read a private key")

    monkeypatch.setattr("contracts.keyring.load_private_key", no_private_keys)
    monkeypatch.setattr("contracts.keyring.held_keys", no_private_keys)
    empty = tmp_path / "no-keys"
    env = trust.env(
        MEDTRANSFER_AUDIT_DATABASE_URL=f"sqlite:///{db_path}",
        MEDTRANSFER_KEYS_DIR=str(empty),
    )
    runner = CliRunner()
    clean = runner.invoke(cli, ["verify"], env=env)
    assert clean.exit_code == 0, clean.output
    assert "1 case(s) verified" in clean.output

    sql(
        db_path,
        "delete from audit_entry where case_id=? and side='outgoing' and sequence=2",
        case_id,
    )
    dirty = runner.invoke(cli, ["verify", "--case", case_id], env=env)
    assert dirty.exit_code == 1
    assert f"gap: case {case_id} side outgoing sequence 2" in dirty.output

    no_registry = runner.invoke(cli, ["verify"], env=env | {"MEDTRANSFER_PLATFORM_PUBLIC_KEY": ""})
    assert no_registry.exit_code == 2


# --- checkpoints: the suffix --------------------------------------------------------------


def checkpoint(trust: AuditTrust, case_id: str, side: str, last: int) -> AuditCheckpoint:
    region = INCOMING_REGION if side == "incoming" else OUTGOING_REGION
    return sign_checkpoint(
        trust.signer(side),
        side=cast(Any, side),
        region=region,
        case_id=case_id,
        last_sequence=last,
        head_hash=content(case_id, side, last).content_digest(),
        at=datetime.now(UTC),
    )


def test_a_dropped_suffix_is_reported_against_the_emitters_checkpoint(
    store: AuditStore, trust: AuditTrust, db_path: Path, tmp_path: Path, case_id: str
) -> None:
    fill(store, trust, case_id, "outgoing", 4)
    points = [checkpoint(trust, case_id, "outgoing", 3), checkpoint(trust, case_id, "outgoing", 4)]
    assert store.verify(case_id, points) == []
    lost = f"TR{uuid.uuid4().hex[:10]}"  # a case the store lost entirely
    points.append(checkpoint(trust, lost, "incoming", 2))

    sql(db_path, "delete from audit_entry where case_id=? and sequence>=3", case_id)
    assert store.verify(case_id) == []  # nothing else says the chain was longer
    problems = store.verify(None, points)
    assert sorted((p.case_id, p.side, p.sequence, p.kind) for p in problems) == sorted(
        [
            (lost, "incoming", 1, "truncated"),
            (case_id, "outgoing", 3, "truncated"),  # against each checkpoint
            (case_id, "outgoing", 3, "truncated"),
        ]
    )
    assert "sequence 3..4 missing" in " ".join(str(p) for p in problems)

    file = tmp_path / "checkpoints.jsonl"
    file.write_text("".join(p.model_dump_json() + "\n" for p in points), encoding="utf-8")
    env = trust.env(MEDTRANSFER_AUDIT_DATABASE_URL=f"sqlite:///{db_path}")
    result = CliRunner().invoke(cli, ["verify", "--checkpoints", str(file)], env=env)
    assert result.exit_code == 1
    assert f"truncated: case {case_id} side outgoing sequence 3" in result.output
    lost_case = CliRunner().invoke(
        cli, ["verify", "--case", lost, "--checkpoints", str(file)], env=env
    )
    assert lost_case.exit_code == 1, lost_case.output


def test_a_checkpoint_must_be_the_chain_regions_and_name_the_stored_head(
    store: AuditStore, trust: AuditTrust, case_id: str
) -> None:
    fill(store, trust, case_id, "outgoing", 2)
    good = checkpoint(trust, case_id, "outgoing", 2)
    key_id, key = key_of(trust, "incoming")  # the other agency signs for this chain
    stub = AuditSignature.model_construct(key_id=key_id, signed_at=datetime.now(UTC), value="-")
    data = good.model_copy(update={"signature": stub}).signing_bytes()
    value = base64.b64encode(key.sign(data)).decode("ascii")
    foreign = good.model_copy(update={"signature": stub.model_copy(update={"value": value})})
    other_head = good.model_copy(update={"head_hash": hashlib.sha256(b"x").hexdigest()})
    assert kinds(store.verify(case_id, [foreign])) == [("outgoing", 2, "checkpoint_invalid")]
    assert kinds(store.verify(case_id, [other_head])) == [("outgoing", 2, "checkpoint_invalid")]
    resigned = checkpoint(trust, case_id, "outgoing", 1).model_copy(
        update={"last_sequence": 2}
    )  # not what was signed
    assert kinds(store.verify(case_id, [resigned])) == [("outgoing", 2, "checkpoint_invalid")]
    honest_other_head = sign_checkpoint(
        trust.signer("outgoing"),
        side="outgoing",
        region=OUTGOING_REGION,
        case_id=case_id,
        last_sequence=2,
        head_hash=hashlib.sha256(b"x").hexdigest(),
        at=datetime.now(UTC),
    )
    assert kinds(store.verify(case_id, [honest_other_head])) == [
        ("outgoing", 2, "checkpoint_mismatch")
    ]


# --- the emitter: what an agency publishes -----------------------------------------------------


@pytest.fixture
def repository(tmp_path: Path, case_id: str) -> CaseRepository:
    engine = make_engine(f"sqlite:///{tmp_path / 'incoming.db'}")
    create_tables(engine, cast(list[type[SQLModel]], COMMON_TABLES))
    repo = CaseRepository(engine, "incoming")
    repo.insert_case(
        CaseRow(
            case_id=case_id,
            status="submitted",
            status_since=T0,
            from_region=OUTGOING_REGION,
            to_region=INCOMING_REGION,
            from_scheme="employee",
            to_scheme="employee",
            person_key="k",
            id_masked="6208************39",
            open_key=f"k:{case_id}",
            created_at=T0,
            updated_at=T0,
        )
    )
    return repo


def case_event(case_id: str, step: int) -> CaseEvent:
    return CaseEvent(
        case_id=case_id,
        side="incoming",
        event_key=f"incoming-{case_id}:{step}",
        event=f"step_{step}",
        status="submitted",
        occurred_at=(T0 + timedelta(seconds=step)).astimezone(timezone(timedelta(hours=8))),
        detail={"n": step},
    )


class CapturingPublisher:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def publish(self, body: bytes, **_: object) -> None:
        self.sent.append(body)


async def test_the_publisher_signs_and_links_every_record_of_its_timeline(
    repository: CaseRepository, trust: AuditTrust, store: AuditStore, case_id: str
) -> None:
    publisher = KafkaDocumentPublisher(
        KafkaBroker("127.0.0.1:1"),
        Topics(prefix="t"),
        "incoming",
        signer=trust.signer("incoming"),
        timeline=repository,
    )
    capture = CapturingPublisher()
    publisher._audit = capture  # type: ignore[assignment]
    for step in (1, 2, 3):
        record = repository.append_event(case_event(case_id, step))
        assert record is not None
        await publisher.publish_audit(record)
    again = repository.append_event(case_event(case_id, 2))  # a retried activity
    assert again is not None
    await publisher.publish_audit(again)

    published = [AuditRecord.model_validate_json(body) for body in capture.sent]
    assert {r.region for r in published} == {INCOMING_REGION}
    assert published[0].prev_hash == AUDIT_GENESIS
    assert published[1].prev_hash == published[0].content_digest()
    assert published[2].prev_hash == published[1].content_digest()
    outcomes = [await offer(store, r, offset=i) for i, r in enumerate(published)]
    assert outcomes == ["appended", "appended", "appended", "duplicate"]
    assert store.verify(case_id) == []

    # The agency's own checkpoint, from its own timeline, pins the head.
    signer = AuditRecordSigner(trust.signer("incoming"), repository)
    (point,) = signer.checkpoints("incoming", case_id, datetime.now(UTC))
    assert isinstance(point, AuditCheckpoint)
    assert (point.last_sequence, point.region) == (3, INCOMING_REGION)
    assert store.verify(case_id, [point]) == []

    with pytest.raises(ValueError, match="both"):
        KafkaDocumentPublisher(
            KafkaBroker("127.0.0.1:1"), Topics(prefix="t"), "incoming", timeline=repository
        )


def test_a_subject_that_is_not_a_case_is_signed_by_the_region_it_names(
    repository: CaseRepository, trust: AuditTrust
) -> None:
    record = repository.append_record_event(
        f"ENROLMENT-{INCOMING_REGION}-7", event="enrolment_upserted", detail={"status": "a"}
    )
    signer = AuditRecordSigner(trust.signer("incoming"), repository)
    published = signer.sign_now(record, datetime.now(UTC))
    assert published.region == INCOMING_REGION
    assert published.prev_hash == AUDIT_GENESIS


def test_the_checkpoint_command_signs_the_agencys_own_heads(
    repository: CaseRepository,
    trust: AuditTrust,
    store: AuditStore,
    db_path: Path,
    tmp_path: Path,
    case_id: str,
) -> None:
    signer = AuditRecordSigner(trust.signer("incoming"), repository)
    for step in (1, 2):
        record = repository.append_event(case_event(case_id, step))
        assert record is not None
        assert store.append(signer.sign_now(record, datetime.now(UTC))) == "appended"
    out = tmp_path / "incoming-checkpoints.jsonl"
    agency = {
        "MEDTRANSFER_INCOMING_DATABASE_URL": str(repository.engine.url),
        "MEDTRANSFER_SERVED_REGIONS": json.dumps([INCOMING_REGION]),
        "MEDTRANSFER_KEYS_DIR": str(trust.keys_dirs["incoming"]),
    }
    runner = CliRunner()
    made = runner.invoke(
        cli, ["checkpoint", "--side", "incoming", "--output", str(out)], env=trust.env(**agency)
    )
    assert made.exit_code == 0, made.output
    (line,) = out.read_text(encoding="utf-8").splitlines()
    assert AuditCheckpoint.model_validate_json(line).last_sequence == 2

    env = trust.env(MEDTRANSFER_AUDIT_DATABASE_URL=f"sqlite:///{db_path}")
    ok = runner.invoke(cli, ["verify", "--checkpoints", str(out)], env=env)
    assert ok.exit_code == 0, ok.output
    sql(db_path, "delete from audit_entry where case_id=? and sequence=2", case_id)
    cut = runner.invoke(cli, ["verify", "--checkpoints", str(out)], env=env)
    assert cut.exit_code == 1
    assert f"truncated: case {case_id} side incoming sequence 2" in cut.output


# --- the audit process's settings ---------------------------------------------------------


async def test_an_unreadable_registry_redelivers_rather_than_rejects(
    tmp_path: Path, trust: AuditTrust, case_id: str
) -> None:
    missing = tmp_path / "later" / "registry.json"
    settings = AuditSettings(
        key_registry_file=missing,
        platform_public_key=trust.platform_public,
        data_dir=tmp_path / "data",
    )
    store = AuditStore.open(f"sqlite:///{tmp_path / 'a.db'}", keys=settings.lazy_key_registry())
    record = signed(trust, case_id, "incoming", 1)
    with pytest.raises(KeyRegistryError):
        await offer(store, record)  # the consumer nacks: the record comes again
    assert store.rejected() == []
    missing.parent.mkdir()
    missing.write_bytes(trust.registry_file.read_bytes())
    assert await offer(store, record) == "appended"
    assert (tmp_path / "data" / "audit-registry-issued-at").exists()


def test_the_local_demo_reads_the_operators_public_key_beside_the_registry(
    trust: AuditTrust,
) -> None:
    demo = AuditSettings(local_demo=True, key_registry_file=trust.registry_file)
    with pytest.raises(KeyRegistryError, match="MEDTRANSFER_PLATFORM_PUBLIC_KEY"):
        demo.platform_public()
    (trust.registry_file.parent / "platform.pub").write_text(trust.platform_public + "\n")
    assert demo.platform_public() == trust.platform_public
    assert demo.key_registry().current().regions() == {INCOMING_REGION, OUTGOING_REGION}
    production = AuditSettings(local_demo=False, key_registry_file=trust.registry_file)
    with pytest.raises(KeyRegistryError):
        production.key_registry()
