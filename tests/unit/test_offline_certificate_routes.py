"""The offline channel's two counters (R10, R23): the outgoing agency prints the insurance
certificate it signed, the incoming agency loads it after verifying it like a platform
document (the outgoing region's key from the registry) and against its own case file.
Both apps in-process on SQLite with the local demo's real keys; Temporal is a fake."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.documents import (
    EnrolmentPeriod,
    InformationSheet,
    InsuranceCertificate,
    PersonIdentity,
    TransferOutCompleted,
    TransferRequested,
)
from contracts.envelope import Envelope
from domain.identity import resident_id_check_char
from services.incoming_agency.applications import new_case_row
from services.outgoing_agency.certificates import CertificateStoreSql
from tests.support.inprocess import InProcessAgency, inprocess_app, kafka_memory
from workflows.incoming.types import CertificateLoad
from workflows.outgoing.workflows import certificate_number

pytestmark = pytest.mark.unit

OUTGOING, INCOMING = "620800", "610100"
CLERK = {"X-API-Key": "demo-clerk"}
PERSON_ID = "11010519491231002X"


def other_person_id() -> str:
    first17 = "62080219800101123"
    return first17 + resident_id_check_char(first17)


def case_id() -> str:
    return f"TR20261202A{uuid.uuid4().hex[:9].upper()}"


def request(id_number: str = PERSON_ID) -> TransferRequested:
    return TransferRequested(
        person=PersonIdentity(id_number=id_number, name="测试参保人"),
        from_region=OUTGOING,
        to_region=INCOMING,
        from_scheme="employee",
        to_scheme="employee",
        reason="new job",
        applied_on=date(2026, 11, 30),
        channel="online",
        incoming_agency=f"medical insurance agency of region {INCOMING}",
    )


def sheet(id_number: str = PERSON_ID) -> InformationSheet:
    return InformationSheet(
        person=PersonIdentity(id_number=id_number, name="测试参保人"),
        from_region=OUTGOING,
        scheme="employee",
        enrolment_periods=[
            EnrolmentPeriod(
                region=OUTGOING,
                scheme="employee",
                start=date(2018, 7, 1),
                end=date(2026, 10, 31),
                contribution_months=96,
            )
        ],
        total_contribution_months=96,
        balance_fen=123_456,
        transferred_out_on=date(2026, 12, 2),
        issued_by_region=OUTGOING,
    )


def certificate(case: str, id_number: str = PERSON_ID, *, number_of: str | None = None) -> Envelope:
    """The case's certificate as the outgoing workflow builds it, unsigned."""
    document = InsuranceCertificate(
        certificate_number=certificate_number(OUTGOING, number_of or case),
        issued_on=date(2026, 12, 2),
        to_region=INCOMING,
        info_sheet=sheet(id_number),
        balance_action="remit",
        balance_rule="R18",
    )
    return Envelope.wrap(
        document,
        case_id=case,
        step="certificate",
        from_region=OUTGOING,
        to_region=INCOMING,
        sent_at=datetime.now(UTC),
    )


@asynccontextmanager
async def http(agency: InProcessAgency) -> AsyncIterator[httpx.AsyncClient]:
    async with kafka_memory(agency):  # audit records go to the in-memory broker
        transport = httpx.ASGITransport(app=agency.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
def agencies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[InProcessAgency, InProcessAgency]:
    """The two agencies of one local demo: the same keys and key registry."""
    outgoing = inprocess_app("outgoing", tmp_path, monkeypatch)
    incoming = inprocess_app("incoming", tmp_path, monkeypatch)
    return outgoing, incoming


def seed_incoming(agency: InProcessAgency, status: str, **facts: Any) -> str:
    """An incoming case of the person, switched offline, as the workflow records it."""
    row = new_case_row(request(), None)
    row.case_id, row.status, row.open_key = case_id(), status, None
    row.facts = {**(row.facts or {}), **facts}
    agency.service.repository.insert_case(row)
    agency.temporal.running.add(f"incoming-{row.case_id}")
    return row.case_id


def sent_sheet(agency: InProcessAgency, case: str) -> Envelope:
    """What an online transfer-out's delivery keeps: the signed sheet."""
    envelope = agency.signed(
        Envelope.wrap(
            TransferOutCompleted(info_sheet=sheet(), balance_action="remit", balance_rule="R18"),
            case_id=case,
            step="sheet",
            from_region=OUTGOING,
            to_region=INCOMING,
            sent_at=datetime.now(UTC),
        )
    )
    agency.service.repository.record_sent(envelope)
    return envelope


def no_id_number_logged(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert PERSON_ID not in record.getMessage()


async def test_r10_r23_the_certificate_printed_at_the_outgoing_counter_loads_at_the_incoming_one(
    agencies: tuple[InProcessAgency, InProcessAgency], caplog: pytest.LogCaptureFixture
) -> None:
    outgoing, incoming = agencies
    caplog.set_level(logging.INFO)
    case = case_id()
    outgoing.seed_case(
        case, "awaiting_confirmation", from_region=OUTGOING, to_region=INCOMING, person_id=PERSON_ID
    )
    async with http(outgoing) as client:
        before = await client.post(
            f"/v1/cases/{case}/insurance-certificate/print", json={}, headers=CLERK
        )
        assert before.status_code == 409, before.text
        assert before.json()["reasons"][0]["code"] == "NO_CERTIFICATE"
        # What the workflow's issue activity keeps: signed with the outgoing region's key.
        signed = outgoing.service.signer.sign(certificate(case))
        CertificateStoreSql(outgoing.service.engine).keep_issued(signed)
        printed = await client.post(
            f"/v1/cases/{case}/insurance-certificate/print",
            json={"reason": "the person at the counter"},
            headers=CLERK,
        )
        again = await client.post(
            f"/v1/cases/{case}/insurance-certificate/print", json={}, headers=CLERK
        )
    assert printed.status_code == 200, printed.text
    body = printed.json()
    assert (body["kind"], body["certificate_number"]) == (
        "insurance_certificate",
        certificate_number(OUTGOING, case),
    )
    assert Envelope.model_validate(body["document"]) == signed
    assert again.json()["document"] == body["document"]  # the same signed document
    prints = [
        e
        for e in outgoing.service.repository.events(case)
        if e.event == "insurance_certificate_printed"
    ]
    assert [e.detail["clerk"] for e in prints] == ["clerk-7", "clerk-7"]

    incoming_case = seed_incoming(
        incoming, "offline_certificate_issued", stop_kind="offline_channel"
    )
    # The same person's certificate, for the incoming agency's own case id.
    mine = outgoing.service.signer.sign(certificate(incoming_case))
    async with http(incoming) as client:
        loaded = await client.post(
            f"/v1/cases/{incoming_case}/offline-certificate",
            json={"certificate": mine.model_dump(mode="json"), "reason": "brought it"},
            headers=CLERK,
        )
        twice = await client.post(
            f"/v1/cases/{incoming_case}/offline-certificate",
            json={"certificate": mine.model_dump(mode="json")},
            headers=CLERK,
        )
    assert loaded.status_code == 202, loaded.text
    assert loaded.json()["certificate_number"] == certificate_number(OUTGOING, incoming_case)
    [(workflow_id, name, load)] = incoming.temporal.signals
    assert (workflow_id, name) == (f"incoming-{incoming_case}", "load_certificate")
    assert isinstance(load, CertificateLoad)
    assert (load.envelope, load.clerk) == (mine, "clerk-7")
    assert incoming.service.repository.has_verified(
        incoming_case,
        "InsuranceCertificate",
        {"certificate_number": certificate_number(OUTGOING, incoming_case)},
    )
    assert twice.status_code == 409
    assert twice.json()["reasons"][0]["code"] == "CERTIFICATE_ALREADY_LOADED"
    assert len(incoming.temporal.signals) == 1
    no_id_number_logged(caplog)


async def test_r10_a_case_transferred_out_online_prints_the_sheet_it_sent(
    agencies: tuple[InProcessAgency, InProcessAgency],
) -> None:
    outgoing, _ = agencies
    case = case_id()
    outgoing.seed_case(
        case, "awaiting_confirmation", from_region=OUTGOING, to_region=INCOMING, person_id=PERSON_ID
    )
    sent = sent_sheet(outgoing, case)
    async with http(outgoing) as client:
        printed = await client.post(
            f"/v1/cases/{case}/insurance-certificate/print", json={}, headers=CLERK
        )
    assert printed.status_code == 200, printed.text
    body = printed.json()
    assert (body["kind"], body["certificate_number"]) == ("information_sheet", None)
    assert Envelope.model_validate(body["document"]) == sent
    assert CertificateStoreSql(outgoing.service.engine).issued(case) is None  # none issued


@pytest.mark.parametrize(
    ("tamper", "status", "code"),
    [
        ("another_case", 422, "CERTIFICATE_OF_ANOTHER_CASE"),
        ("another_person", 422, "SHEET_PERSON_DOES_NOT_MATCH_CASE"),
        ("forged", 422, "CERTIFICATE_NOT_VERIFIED"),
        ("not_a_certificate", 422, "NOT_A_CERTIFICATE"),
    ],
)
async def test_r10_r13_a_certificate_of_another_case_or_person_or_forged_is_refused(
    agencies: tuple[InProcessAgency, InProcessAgency],
    caplog: pytest.LogCaptureFixture,
    tamper: str,
    status: int,
    code: str,
) -> None:
    outgoing, incoming = agencies
    caplog.set_level(logging.INFO)
    case = seed_incoming(incoming, "offline_certificate_issued", stop_kind="offline_channel")
    signer = outgoing.service.signer
    document = {
        "another_case": lambda: signer.sign(certificate(case_id())),
        "another_person": lambda: signer.sign(certificate(case, other_person_id())),
        "forged": lambda: signer.sign(certificate(case)).model_copy(
            update={"sent_at": datetime.now(UTC).replace(microsecond=0)}
        ),
        "not_a_certificate": lambda: sent_sheet(outgoing, case),
    }[tamper]()
    async with http(incoming) as client:
        answer = await client.post(
            f"/v1/cases/{case}/offline-certificate",
            json={"certificate": document.model_dump(mode="json")},
            headers=CLERK,
        )
    assert answer.status_code == status, answer.text
    assert answer.json()["reasons"][0]["code"] == code
    assert incoming.temporal.signals == []
    assert PERSON_ID not in answer.text
    assert other_person_id() not in answer.text
    no_id_number_logged(caplog)


@pytest.mark.parametrize(
    ("status", "facts"),
    [
        ("awaiting_transfer_out", {}),  # never switched offline
        ("awaiting_transfer_out", {"stop_kind": "offline_channel", "stop": "refused"}),  # online
        ("transfer_in", {"stop_kind": "offline_channel"}),  # loaded already
    ],
)
async def test_r10_a_case_that_does_not_wait_for_a_certificate_takes_none(
    agencies: tuple[InProcessAgency, InProcessAgency], status: str, facts: dict[str, str]
) -> None:
    outgoing, incoming = agencies
    case = seed_incoming(incoming, status, **facts)
    signed = outgoing.service.signer.sign(certificate(case))
    async with http(incoming) as client:
        answer = await client.post(
            f"/v1/cases/{case}/offline-certificate",
            json={"certificate": signed.model_dump(mode="json")},
            headers=CLERK,
        )
    assert answer.status_code == 409, answer.text
    assert answer.json()["reasons"][0]["code"] == "NOT_AWAITING_CERTIFICATE"
    assert incoming.temporal.signals == []
