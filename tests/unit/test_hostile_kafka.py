"""Hostile input over Kafka: hypothesis-generated records against each side's real entry
point (services/common/inbound.py with the side's routing), on SQLite in a temporary
directory, FastStream's in-memory broker and a fake Temporal client.

Every record here is one the platform must refuse: bytes that are not JSON or not UTF-8,
oversized records, missing fields, wrong types, negative, fractional or overflowing
amounts, ID numbers with a wrong check character, unknown and wrong regions, forged or
re-keyed signatures (an old or future signing time is no longer hostile: replays are
caught by message id and content, tests/unit/test_inbound_refusals.py). Each must end as exactly one dead letter with a
reason (and the same on the dead-letter topic), start or signal no workflow, raise
nothing (so its partition moves on), and put no personal value in a reason or a log line.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from contracts.dead_letter import DeadLetter
from contracts.documents import (
    BalanceCredited,
    BalanceRemitted,
    EnrolmentPeriod,
    InformationSheet,
    PersonIdentity,
    TransferOutCompleted,
    TransferRequested,
)
from contracts.envelope import Envelope
from contracts.signing import generate_keypair, load_private_key, sign_envelope
from services.common.acceptance import MAX_DOCUMENT_BYTES
from tests.support.inprocess import InProcessAgency, inprocess_app, kafka_memory

pytestmark = pytest.mark.unit

OUTGOING, INCOMING, BYSTANDER = "620800", "610100", "350100"
UNKNOWN_REGIONS = st.from_regex(r"[0-9]{6}", fullmatch=True).filter(
    lambda code: (
        code
        not in {
            "110000",
            "310000",
            "350100",
            "440100",
            "440300",
            "441900",
            "510100",
            "610100",
            "620100",
            "620800",
            "654300",
        }
    )
)
PERSON = PersonIdentity(id_number="11010519491231002X", name="测试参保人")
BANK_DIGITS = "6222020200112233445"
CASE = "TR20260105HOSTILE001"
REASON_CODES = {
    "OVERSIZED",
    "INVALID_ENVELOPE",
    "INVALID_DOCUMENT",
    "UNKNOWN_REGION",
    "UNKNOWN_SENDER_REGION",
    "SIGNATURE_INVALID",
    "REPLAYED",
    "MISADDRESSED",
    "UNKNOWN_CASE",
}
HYPOTHESIS = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Platform:
    incoming: InProcessAgency
    outgoing: InProcessAgency
    dead_letter_records: list[DeadLetter]

    def side(self, name: str) -> InProcessAgency:
        return self.incoming if name == "incoming" else self.outgoing


def sheet() -> TransferOutCompleted:
    return TransferOutCompleted(
        info_sheet=InformationSheet(
            person=PERSON,
            from_region=OUTGOING,
            scheme="employee",
            enrolment_periods=[
                EnrolmentPeriod(
                    region=OUTGOING,
                    scheme="employee",
                    start=date(2015, 1, 1),
                    end=date(2026, 1, 2),
                    contribution_months=130,
                )
            ],
            total_contribution_months=130,
            balance_fen=70_000,
            transferred_out_on=date(2026, 1, 5),
            issued_by_region=OUTGOING,
        ),
        balance_action="remit",
        balance_rule="R18",
    )


def remittance() -> BalanceRemitted:
    return BalanceRemitted(
        remittance_id=f"{CASE}-main", amount_fen=70_000, remitted_on=date.today()
    )


def contact_letter() -> TransferRequested:
    return TransferRequested(
        person=PERSON,
        from_region=OUTGOING,
        to_region=INCOMING,
        from_scheme="employee",
        to_scheme="employee",
        reason="new job",
        applied_on=date.today(),
        channel="online",
        incoming_agency="西安市医疗保障局",
        bank_account={
            "bank_name": "工商银行",
            "account_number": BANK_DIGITS,
            "account_holder": PERSON.name,
        },
    )


# (side that receives it, document, sender, receiver)
BASES: list[tuple[str, Callable[[], BaseModel], str, str]] = [
    ("incoming", sheet, OUTGOING, INCOMING),
    ("incoming", remittance, OUTGOING, INCOMING),
    ("outgoing", contact_letter, INCOMING, OUTGOING),
]


@pytest.fixture(scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    root: Path = tmp_path_factory.mktemp("hostile-kafka")
    records: list[DeadLetter] = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        incoming = inprocess_app("incoming", root, monkeypatch)
        outgoing = inprocess_app("outgoing", root, monkeypatch)
        for agency in (incoming, outgoing):
            broker = agency.app.state.broker

            @broker.subscriber(agency.service.settings.topics.dead_letter)
            async def collect(record: DeadLetter) -> None:
                records.append(record)

        # The incoming side knows the case (and its workflow runs); the outgoing side
        # learns it only from a contact letter.
        incoming.seed_case(
            CASE,
            "awaiting_transfer_out",
            from_region=OUTGOING,
            to_region=INCOMING,
            person_id=PERSON.id_number,
        )
        async with kafka_memory(incoming), kafka_memory(outgoing):
            yield Platform(incoming, outgoing, records)


def signed_dict(agency: InProcessAgency, document: BaseModel, sender: str, receiver: str) -> dict:
    envelope = agency.envelope(document, CASE, from_region=sender, to_region=receiver)
    return json.loads(envelope.model_dump_json())


def resign(agency: InProcessAgency, data: dict) -> bytes:
    """Sign a changed envelope with its sender's real key when it still is an envelope (a
    buggy or hostile region signs what it sends); send it as it is otherwise."""
    try:
        envelope = Envelope.model_validate(data)
        return agency.signed(envelope).model_dump_json().encode()
    except Exception:
        return json.dumps(data).encode()


def leaf_paths(value: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in leaf_paths(v, (*path, k))] or [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in leaf_paths(v, (*path, i))] or [path]
    return [path]


def put(data: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def take(data: Any, path: tuple) -> Any:
    for key in path:
        data = data[key]
    return data


def wrong_type(current: Any) -> st.SearchStrategy[Any]:
    """Values no field of the current value's type accepts."""
    if isinstance(current, bool):
        return st.sampled_from([[], {}, "maybe", 2.5])
    if isinstance(current, int):
        return st.sampled_from([[], {}, "twelve", 12.5, None])
    if isinstance(current, str):
        return st.sampled_from([[], {}, 12.5])
    return st.sampled_from([12.5, "text"])


@st.composite
def hostile_records(draw: st.DrawFn, platform: Platform) -> tuple[str, bytes, str]:
    """(receiving side, record, the kind of attack)."""
    side, make, sender, receiver = draw(st.sampled_from(BASES))
    agency = platform.side(side)
    data = signed_dict(agency, make(), sender, receiver)
    kind = draw(
        st.sampled_from(
            [
                "bytes",
                "not-utf8",
                "oversized",
                "drop-field",
                "wrong-type",
                "extra-key",
                "amount",
                "check-digit",
                "unknown-region",
                "unknown-sender",
                "bystander",
                "wrong-receiver",
                "tampered",
                "foreign-key",
                "bad-signature",
                "unknown-case",
            ]
        )
    )
    if kind == "bytes":
        return side, draw(st.binary(max_size=512)), kind
    if kind == "not-utf8":
        raw = json.dumps(data).encode()
        at = draw(st.integers(0, len(raw)))
        return (
            side,
            raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"])) + raw[at:],
            kind,
        )
    if kind == "oversized":
        pad = draw(st.integers(1, 4 * MAX_DOCUMENT_BYTES))
        return side, b" " * (MAX_DOCUMENT_BYTES + pad) + json.dumps(data).encode(), kind
    if kind == "drop-field":
        required = [
            "message_id",
            "case_id",
            "type",
            "schema_version",
            "from_region",
            "to_region",
            "sent_at",
            "correlation_id",
            "payload",
        ]
        payload_required = type(make()).model_json_schema().get("required", [])
        where = draw(
            st.sampled_from([(k,) for k in required] + [("payload", k) for k in payload_required])
        )
        parent = take(data, where[:-1])
        del parent[where[-1]]
        return side, resign(agency, data), kind
    if kind == "wrong-type":
        paths = [
            p
            for p in leaf_paths(data)
            if p
            and p[0] not in ("signature", "key_id", "causation_id")
            and take(data, p) is not None
        ]
        where = draw(st.sampled_from(paths))
        put(data, where, draw(wrong_type(take(data, where))))
        return side, resign(agency, data), kind
    if kind == "extra-key":
        target = draw(st.sampled_from([(), ("payload",)]))
        take(data, target)[PERSON.id_number] = PERSON.name
        return side, resign(agency, data), kind
    if kind == "amount":
        amount = draw(
            st.one_of(
                st.integers(max_value=-1),
                st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f >= 0),
                st.integers(min_value=2**53),
                st.from_regex(r"[0-9]{1,9}", fullmatch=True),
            )
        )
        if side == "outgoing":  # a contact letter carries no amount: use a sheet instead
            side, agency = "incoming", platform.incoming
            data = signed_dict(agency, sheet(), OUTGOING, INCOMING)
        where = (
            ("payload", "amount_fen")
            if "amount_fen" in data["payload"]
            else ("payload", "info_sheet", "balance_fen")
        )
        put(data, where, amount)
        return side, resign(agency, data), kind
    if kind == "check-digit":
        person = data["payload"]["person"] if side == "outgoing" else None
        if person is None:
            person = data["payload"].get("info_sheet", {}).get("person")
        if person is None:  # a remittance names nobody: use the sheet
            data = signed_dict(agency, sheet(), sender, receiver)
            person = data["payload"]["info_sheet"]["person"]
        right = person["id_number"][17]
        person["id_number"] = person["id_number"][:17] + draw(
            st.sampled_from([c for c in "0123456789X" if c != right])
        )
        return side, resign(agency, data), kind
    if kind == "unknown-region":
        data["to_region"] = draw(UNKNOWN_REGIONS)
        return side, resign(agency, data), kind
    if kind == "unknown-sender":
        data["from_region"] = draw(UNKNOWN_REGIONS)
        return side, json.dumps(data).encode(), kind  # no key exists to sign it with
    if kind == "bystander":  # a real region, validly signed, that is no party to the case
        data["from_region"] = BYSTANDER
        return side, resign(agency, data), kind
    if kind == "wrong-receiver":
        data["to_region"] = BYSTANDER
        return side, resign(agency, data), kind
    if kind == "tampered":  # changed after signing, signature kept
        paths = [p for p in leaf_paths(data["payload"]) if p]
        where = ("payload", *draw(st.sampled_from(paths)))
        current = take(data, where)
        put(
            data,
            where,
            current + 1
            if isinstance(current, int) and not isinstance(current, bool)
            else (not current if isinstance(current, bool) else f"{current}0"),
        )
        return side, json.dumps(data).encode(), kind
    if kind == "foreign-key":
        envelope = Envelope.model_validate(data)
        forger = load_private_key(generate_keypair()[0])
        return (
            side,
            sign_envelope(envelope, forger, key_id=data["key_id"]).model_dump_json().encode(),
            kind,
        )
    if kind == "bad-signature":
        data["signature"] = draw(
            st.one_of(st.text(max_size=40), st.from_regex(r"[A-Za-z0-9+/]{86}==", fullmatch=True))
        )
        return side, json.dumps(data).encode(), kind
    # unknown-case: a well-formed, validly signed document for a case this side never had
    # (on the outgoing side only a contact letter may start one)
    if side == "outgoing":
        credited = BalanceCredited(remittance_id="r-1", amount_fen=1, credited_on=date.today())
        data = signed_dict(agency, credited, INCOMING, OUTGOING)
    data["case_id"] = "TR20260105" + draw(st.from_regex(r"[A-F0-9]{10}", fullmatch=True))
    return side, resign(agency, data), kind


PERSONAL = re.compile("|".join(map(re.escape, [PERSON.id_number, PERSON.name, BANK_DIGITS])))


@HYPOTHESIS
@given(data=st.data())
async def test_hostile_records_are_dead_lettered_with_a_reason_and_never_acted_on(
    platform: Platform, data: st.DataObject, caplog: pytest.LogCaptureFixture
) -> None:
    side, raw, kind = data.draw(hostile_records(platform), label="record")
    agency = platform.side(side)
    actions = (platform.incoming.temporal.actions, platform.outgoing.temporal.actions)
    before = len(agency.dead_letters())
    published = len(platform.dead_letter_records)

    with caplog.at_level(logging.INFO):
        outcome = await agency.deliver(raw)  # raising here would block the partition

    assert outcome == "dead_letter", kind
    reasons = agency.dead_letters()[before:]
    assert len(reasons) == 1, (kind, reasons)
    code = re.split(r"[\s:]", reasons[0])[0]
    event(f"{kind} -> {code}")  # --hypothesis-show-statistics shows what each attack got
    assert code in REASON_CODES, (kind, reasons[0])
    assert (platform.incoming.temporal.actions, platform.outgoing.temporal.actions) == actions
    assert platform.dead_letter_records[published:][0].reason == reasons[0]
    assert not PERSONAL.search(reasons[0]), (kind, reasons[0])
    assert not PERSONAL.search(caplog.text), kind


@pytest.mark.parametrize("size", [MAX_DOCUMENT_BYTES + 1, 1_000_000, 3 * 1024 * 1024])
async def test_records_over_our_limit_and_temporals_are_refused_before_any_workflow(
    platform: Platform, size: int
) -> None:
    """Over 256 KiB (our limit), just under Kafka's default 1 MB, and over Temporal's 2 MiB
    payload limit: refused with OVERSIZED before parsing, the dead letter keeps only the
    head of the record so it still fits on the dead-letter topic."""
    document = signed_dict(platform.incoming, remittance(), OUTGOING, INCOMING)
    raw = json.dumps(document).encode()
    raw = raw[:-1] + b', "padding": "' + b"x" * (size - len(raw) - 15) + b'"}'
    published = len(platform.dead_letter_records)
    assert await platform.incoming.deliver(raw) == "dead_letter"
    assert platform.incoming.dead_letters()[-1] == (
        f"OVERSIZED: {len(raw)} bytes, the limit is {MAX_DOCUMENT_BYTES}"
    )
    record = platform.dead_letter_records[published]
    assert record.raw_truncated
    assert len(record.model_dump_json()) < 1_000_000
    assert platform.incoming.temporal.actions == 0
