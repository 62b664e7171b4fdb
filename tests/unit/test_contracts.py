import json
import re
import stat
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from contracts import (
    DOCUMENT_TYPES,
    SCHEMA_VERSION,
    AuditRecord,
    BalanceCredited,
    BalanceMismatch,
    BalanceNotTransferred,
    BalancePaidToBank,
    BalanceRemitted,
    BalanceReturned,
    BankAccount,
    EnrolmentPeriod,
    Envelope,
    Escalation,
    InformationSheet,
    PersonIdentity,
    Receipt,
    RefusalReason,
    Reminder,
    Topics,
    TransferInCompleted,
    TransferOutCompleted,
    TransferRefused,
    TransferRequested,
    WithdrawalAnswered,
    WithdrawalRequested,
)
from contracts import keys as keys_cli
from contracts.documents import (
    InsuranceCertificate,
    InsuranceCertificateIssued,
    looks_like_id_number,
)
from contracts.export import (
    SCHEMA_DIR,
    schemas,
    stale_documents,
    stale_schemas,
    write_documents,
)
from contracts.keyring import KeyEntry, KeyRegistry, private_key_path, write_private_key
from contracts.signing import (
    SignatureInvalid,
    generate_keypair,
    load_private_key,
    sign_envelope,
    verify_envelope,
)
from services.cli.export import main as export_main

pytestmark = pytest.mark.unit

ID_NUMBER = "11010519491231002X"  # the published sample number, valid check character
ACCOUNT = "6222021234567890123"
PINGLIANG, XIAN, FUZHOU = "620800", "610100", "350100"
SENT_AT = datetime(2026, 2, 13, 9, 30, tzinfo=timezone(timedelta(hours=8)))
PERSON = PersonIdentity(id_number=ID_NUMBER, name="张三")


def new_case_id() -> str:
    return f"case-{uuid.uuid4().hex[:12]}"


def sample_documents() -> dict[str, BaseModel]:
    sheet = InformationSheet(
        person=PERSON,
        from_region=PINGLIANG,
        scheme="employee",
        enrolment_periods=[
            EnrolmentPeriod(
                region=PINGLIANG,
                scheme="employee",
                start=date(2015, 3, 1),
                end=date(2025, 12, 31),
                contribution_months=130,
            ),
            EnrolmentPeriod(
                region=FUZHOU, scheme="employee", start=date(2026, 1, 1), contribution_months=0
            ),
        ],
        total_contribution_months=130,
        balance_fen=1_234_567,
        transferred_out_on=date(2026, 2, 20),
        issued_by_region=PINGLIANG,
    )
    docs: list[BaseModel] = [
        TransferRequested(
            person=PERSON,
            from_region=PINGLIANG,
            to_region=FUZHOU,
            from_scheme="employee",
            to_scheme="employee",
            reason="工作调动",
            applied_on=date(2026, 2, 13),
            channel="online",
            incoming_agency="福州市医疗保障局",
            bank_account=BankAccount(
                bank_name="中国工商银行", account_number=ACCOUNT, account_holder="张三"
            ),
            correction_of="case-1/TransferRefused/refuse-1",
        ),
        TransferRefused(
            reasons=[
                RefusalReason(
                    code="ARREARS",
                    rule="R7",
                    soft=True,
                    message_zh="存在欠费，请补缴后重新申请",
                    message_en="Contribution arrears; pay them and apply again",
                )
            ],
            correctable_until=date(2026, 3, 13),
        ),
        TransferOutCompleted(info_sheet=sheet, balance_action="remit", balance_rule="R18"),
        # R10/R23: the offline channel's certificate, and its notice through the platform.
        InsuranceCertificate(
            certificate_number="620800-TR20260213A123456789",
            issued_on=date(2026, 2, 20),
            to_region=FUZHOU,
            info_sheet=sheet,
            balance_action="remit",
            balance_rule="R18",
        ),
        InsuranceCertificateIssued(
            certificate_number="620800-TR20260213A123456789",
            issued_on=date(2026, 2, 20),
            balance_action="remit",
            balance_rule="R18",
        ),
        BalanceRemitted(remittance_id="rem-1", amount_fen=1_234_567, remitted_on=date(2026, 2, 20)),
        BalancePaidToBank(
            remittance_id="rem-2",
            amount_fen=500,
            rule="R22",
            account_last4=ACCOUNT[-4:],
            paid_on=date(2026, 2, 20),
        ),
        BalanceNotTransferred(
            rule="R20", reason_en="Stays usable in Guangdong", reason_zh="省内通用", amount_fen=0
        ),
        TransferInCompleted(completed_on=date(2026, 2, 27), deemed_contribution_months=130),
        BalanceCredited(remittance_id="rem-1", amount_fen=1_234_567, credited_on=date(2026, 2, 27)),
        BalanceMismatch(remittance_id="rem-1", expected_fen=1_234_567, received_fen=1_234_500),
        BalanceReturned(
            remittance_id="rem-1",
            amount_fen=1_234_500,
            reason="mismatch",
            returned_on=date(2026, 3, 2),
        ),
        Reminder(
            due_on=date(2026, 2, 27),
            stage="transfer_out",
            message_en="Transfer-out due soon",
            message_zh="转出即将到期",
        ),
        Escalation(
            stage="transfer_out",
            reason_code="DEADLINE_MISSED",
            due_on=date(2026, 2, 27),
            message_en="Transfer-out is overdue",
            message_zh="转出已逾期",
        ),
        Receipt(
            acknowledges_message_id="case-1/TransferRequested/request",
            acknowledges_type="TransferRequested",
            status="rejected",
            reason="invalid signature",
        ),
        WithdrawalRequested(kind="withdrawal", reason="不再需要", requested_on=date(2026, 2, 16)),
        WithdrawalAnswered(
            kind="withdrawal",
            accepted=False,
            reason_code="TOO_LATE_TRANSFERRED_OUT",
            rule="R16",
            message_en="Too late: transferred out.",
            message_zh="已办理转出。",
        ),
        AuditRecord(
            case_id="case-1",
            side="incoming",
            sequence=1,
            event="TransferRequested",
            status="awaiting_transfer_out",
            occurred_at=SENT_AT,
            detail={"channel": "online", "balance_fen": 1_234_567, "fallback": False, "x": None},
            rule="R12",
        ),
    ]
    return {type(doc).__name__: doc for doc in docs}


def wrap(doc: BaseModel, case_id: str, step: str = "s1", **kwargs: object) -> Envelope:
    params: dict[str, object] = {
        "case_id": case_id,
        "step": step,
        "from_region": PINGLIANG,
        "to_region": FUZHOU,
        "sent_at": SENT_AT,
    }
    params.update(kwargs)
    return Envelope.wrap(doc, **params)  # type: ignore[arg-type]


LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def key_id(region: str) -> str:
    return f"{region}-k1"


def region_key(region_dir: Path, region: str) -> Any:
    write_private_key(region_dir, region, key_id(region))
    return load_private_key(private_key_path(region_dir, region, key_id(region)).read_bytes())


def registry_of(region_dir: Path) -> KeyRegistry:
    """The public keys of every key file in ``region_dir``, valid since long ago."""
    entries = []
    for path in sorted(region_dir.glob("*/*.pem")):
        public = write_private_key(region_dir, path.parent.name, path.stem)
        entries.append(KeyEntry(path.parent.name, path.stem, public, LONG_AGO))
    return KeyRegistry(tuple(entries), LONG_AGO)


def public_of(region_dir: Path, region: str) -> str:
    return write_private_key(region_dir, region, key_id(region))


def signed_request(region_dir, region: str = PINGLIANG) -> Envelope:
    env = wrap(sample_documents()["TransferRequested"], new_case_id(), from_region=region)
    return sign_envelope(env, region_key(region_dir, region), key_id=key_id(region))


def test_samples_cover_every_document_type():
    assert set(sample_documents()) == set(DOCUMENT_TYPES)


@pytest.mark.parametrize("name", sorted(DOCUMENT_TYPES))
def test_every_document_round_trips_through_envelope_json(name):
    doc = sample_documents()[name]
    env = wrap(doc, new_case_id())

    received = Envelope.model_validate_json(env.model_dump_json().encode("utf-8"))

    assert received == env
    assert received.type == name
    assert received.schema_version == SCHEMA_VERSION
    assert received.document() == doc
    assert received.document_as(type(doc)) == doc


def test_message_id_is_deterministic_per_case_step():
    case_id = new_case_id()
    doc = sample_documents()["BalanceRemitted"]

    first = wrap(doc, case_id, step="remit-1")
    retried = wrap(doc, case_id, step="remit-1", sent_at=SENT_AT + timedelta(minutes=5))
    residual = wrap(doc, case_id, step="remit-2")

    assert first.message_id == retried.message_id == f"{case_id}/BalanceRemitted/remit-1"
    assert residual.message_id != first.message_id
    assert first.correlation_id == case_id
    assert first.kafka_key == case_id.encode()


def test_wrap_rejects_a_model_that_is_not_a_document():
    with pytest.raises(ValueError, match="not a platform document"):
        wrap(PERSON, new_case_id())


def test_unknown_type_is_rejected():
    env = wrap(sample_documents()["TransferInCompleted"], new_case_id())
    data = env.model_dump(mode="json") | {"type": "TransferTeleported"}
    with pytest.raises(ValidationError, match="unknown document type"):
        Envelope.model_validate(data)


def test_naive_sent_at_is_rejected():
    with pytest.raises(ValidationError):
        wrap(
            sample_documents()["TransferInCompleted"], new_case_id(), sent_at=datetime(2026, 2, 13)
        )


def test_payload_that_does_not_fit_its_type_raises_on_document():
    env = wrap(sample_documents()["BalanceRemitted"], new_case_id())
    broken = env.model_copy(update={"payload": env.payload | {"unexpected": 1}})
    with pytest.raises(ValidationError):
        broken.document()
    with pytest.raises(ValueError, match="not BalanceCredited"):
        env.document_as(BalanceCredited)


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("BalanceRemitted", "amount_fen"),
        ("BalancePaidToBank", "amount_fen"),
        ("BalanceNotTransferred", "amount_fen"),
        ("BalanceCredited", "amount_fen"),
        ("BalanceMismatch", "expected_fen"),
        ("BalanceMismatch", "received_fen"),
    ],
)
def test_negative_money_is_rejected(model, field):
    data = sample_documents()[model].model_dump(mode="json") | {field: -1}
    with pytest.raises(ValidationError):
        DOCUMENT_TYPES[model].model_validate(data)


def test_negative_balance_on_the_information_sheet_is_rejected():
    data = sample_documents()["TransferOutCompleted"].model_dump(mode="json")
    data["info_sheet"]["balance_fen"] = -100
    with pytest.raises(ValidationError):
        TransferOutCompleted.model_validate(data)


def test_remitting_a_zero_balance_and_dropping_a_positive_one_are_rejected():
    sheet = sample_documents()["TransferOutCompleted"].info_sheet  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="lose money"):
        TransferOutCompleted(info_sheet=sheet, balance_action="none", balance_rule="R18")
    empty = sheet.model_copy(update={"balance_fen": 0})
    with pytest.raises(ValidationError, match="zero balance"):
        TransferOutCompleted(info_sheet=empty, balance_action="remit", balance_rule="R18")


def test_region_codes_must_have_six_digits():
    data = sample_documents()["TransferRequested"].model_dump(mode="json") | {"to_region": "35010"}
    with pytest.raises(ValidationError):
        TransferRequested.model_validate(data)


def test_sign_and_verify(tmp_path):
    env = signed_request(tmp_path)

    verify_envelope(env, public_of(tmp_path, PINGLIANG))
    received = Envelope.model_validate_json(env.model_dump_json())
    registry_of(tmp_path).verify(received, datetime.now(UTC))
    assert received.key_id == key_id(PINGLIANG)


def test_a_changed_payload_byte_fails_verification(tmp_path):
    env = signed_request(tmp_path)
    raw = env.model_dump_json()
    assert "工作调动" in raw
    tampered = Envelope.model_validate_json(raw.replace("工作调动", "工作调迁"))

    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_envelope(tampered, public_of(tmp_path, PINGLIANG))


def test_a_changed_key_id_fails_verification(tmp_path):
    env = signed_request(tmp_path)
    relabelled = env.model_copy(update={"key_id": key_id(XIAN)})
    with pytest.raises(SignatureInvalid):
        verify_envelope(relabelled, public_of(tmp_path, PINGLIANG))


def test_a_wrong_key_fails_verification(tmp_path):
    env = signed_request(tmp_path)
    _, other_public = generate_keypair()
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_envelope(env, other_public)


def test_a_missing_signature_fails_verification(tmp_path):
    env = signed_request(tmp_path).model_copy(update={"signature": None})
    with pytest.raises(SignatureInvalid, match="missing"):
        verify_envelope(env, public_of(tmp_path, PINGLIANG))


def test_another_regions_key_fails_verification(tmp_path):
    region_key(tmp_path, XIAN)
    env = signed_request(tmp_path, region=PINGLIANG)
    # A message claiming to come from Xi'an but signed with Pingliang's key, under
    # Xi'an's key id or under Pingliang's.
    registry = registry_of(tmp_path)
    for claimed in (key_id(XIAN), key_id(PINGLIANG)):
        forged = sign_envelope(
            env.model_copy(update={"from_region": XIAN}),
            region_key(tmp_path, PINGLIANG),
            key_id=claimed,
        )
        with pytest.raises(SignatureInvalid):
            registry.verify(forged, datetime.now(UTC))
    with pytest.raises(SignatureInvalid):
        verify_envelope(env, public_of(tmp_path, XIAN))


def test_an_unregistered_region_fails_verification(tmp_path):
    env = signed_request(tmp_path)
    with pytest.raises(SignatureInvalid, match="no key"):
        KeyRegistry((), LONG_AGO).verify(env, datetime.now(UTC))


def test_region_key_file_is_private_and_kept(tmp_path):
    key_dir = tmp_path / "keys"
    public = write_private_key(key_dir, FUZHOU, key_id(FUZHOU))

    path = key_dir / FUZHOU / f"{key_id(FUZHOU)}.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert write_private_key(key_dir, FUZHOU, key_id(FUZHOU)) == public
    assert [e.public_key for e in registry_of(key_dir).entries] == [public]
    assert sorted(p.name for p in (key_dir / FUZHOU).iterdir()) == [f"{key_id(FUZHOU)}.pem"]
    with pytest.raises(ValueError, match="6-digit"):
        write_private_key(key_dir, "../etc", "../etc-1")


def test_generated_keypair_loads():
    pem, public = generate_keypair()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    env = sign_envelope(
        wrap(sample_documents()["Reminder"], new_case_id()), load_private_key(pem), "k1"
    )
    verify_envelope(env, public)


def test_keys_cli_prints_the_public_registry_entry_only(tmp_path, capsys):
    assert keys_cli.main(["generate", "--dir", str(tmp_path), "--region", PINGLIANG]) == 0

    out = capsys.readouterr().out
    entry = KeyEntry.from_json(json.loads(out))
    assert entry.region == PINGLIANG
    assert entry.key_id.startswith(f"{PINGLIANG}-")
    assert registry_of(tmp_path).entries[0].public_key == entry.public_key
    assert "PRIVATE" not in out


def test_personal_data_stays_out_of_repr_and_errors():
    doc = sample_documents()["TransferRequested"]
    env = wrap(doc, new_case_id())
    for text in (repr(doc), str(doc), repr(env)):
        assert ID_NUMBER not in text
        assert ACCOUNT not in text
        assert "张三" not in text

    with pytest.raises(ValidationError) as excinfo:
        BankAccount(bank_name="x", account_number=ACCOUNT + "A", account_holder="张三")
    assert ACCOUNT not in str(excinfo.value)


def test_audit_detail_refuses_personal_data():
    base = sample_documents()["AuditRecord"].model_dump(mode="json")
    with pytest.raises(ValidationError, match="personal data"):
        AuditRecord.model_validate(base | {"detail": {"id_number": "masked"}})
    with pytest.raises(ValidationError, match="ID number"):
        AuditRecord.model_validate(base | {"detail": {"note": f"person {ID_NUMBER.lower()}"}})
    # A numeric case reference is not an ID number.
    AuditRecord.model_validate(base | {"detail": {"ref": "620800202602130001"}})
    assert looks_like_id_number(ID_NUMBER)
    assert not looks_like_id_number("110105194912310021")


def test_schemas_are_up_to_date():
    assert stale_schemas() == [], "run: make schemas"
    assert export_main(["--check"]) == 0


def test_schemas_exist_for_envelope_and_every_document():
    assert {p.stem for p in SCHEMA_DIR.glob("*.json")} >= {"Envelope", *DOCUMENT_TYPES}


def test_write_documents_and_its_check(tmp_path):
    docs = {"asyncapi": {"asyncapi": "3.0.0", "info": {"title": "t"}}}
    assert stale_documents(docs, tmp_path) == [str(tmp_path / "asyncapi.json")]
    assert write_documents(docs, tmp_path) == [str(tmp_path / "asyncapi.json")]
    assert stale_documents(docs, tmp_path) == []
    assert write_documents(docs, tmp_path) == []
    text = (tmp_path / "asyncapi.json").read_text(encoding="utf-8")
    assert text == json.dumps(docs["asyncapi"], indent=2, sort_keys=True) + "\n"


_FULL_ACCOUNT_FIELD = re.compile(r"^(bank_)?account(_(number|no))?$|card_?(number|no)$|^iban$")


def test_only_the_contact_letter_carries_a_full_bank_account_number():
    found = set()
    for schema_name, schema in schemas().items():
        nodes = {schema_name: schema, **schema.get("$defs", {})}
        for node_name, node in nodes.items():
            for prop in node.get("properties", {}):
                if _FULL_ACCOUNT_FIELD.search(prop):
                    found.add((schema_name, node_name, prop))

    assert found == {
        ("TransferRequested", "TransferRequested", "bank_account"),
        ("TransferRequested", "BankAccount", "account_number"),
    }


def test_account_last4_holds_four_digits_only():
    data = sample_documents()["BalancePaidToBank"].model_dump(mode="json")
    with pytest.raises(ValidationError):
        BalancePaidToBank.model_validate(data | {"account_last4": ACCOUNT})


def test_topics():
    topics = Topics(prefix=f"t-{uuid.uuid4().hex[:6]}")
    assert topics.to_outgoing == f"{topics.prefix}.platform.to-outgoing"
    assert topics.to_incoming == f"{topics.prefix}.platform.to-incoming"
    assert topics.audit == f"{topics.prefix}.audit.case-events"
    assert topics.dead_letter == f"{topics.prefix}.platform.dead-letter"
    assert len(set(topics.all())) == 4
    assert Topics().audit == "medtransfer.audit.case-events"


def test_sent_at_keeps_its_offset_in_signed_bytes():
    env = wrap(sample_documents()["Reminder"], new_case_id(), sent_at=SENT_AT.astimezone(UTC))
    assert (
        Envelope.model_validate_json(env.model_dump_json()).signing_bytes() == env.signing_bytes()
    )


def test_keys_cli_rejects_a_bad_region_before_writing_anything(tmp_path):
    with pytest.raises(SystemExit):
        keys_cli.main(["generate", "--dir", str(tmp_path), "--region", PINGLIANG, "--region", "x"])
    assert list(tmp_path.iterdir()) == []
