"""Attack: the verified_document check compares the payload *as received* with the
workflow's *validated model* dumped again. Where the contract model normalises a value
(id_number ``x`` -> ``X``, stripped whitespace) or fills a default the sender left out,
the two differ, and a properly signed, verified contact letter is refused by
``transfer_out`` as "unverified" (non-retryable: the case is escalated, nothing moves).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any, cast

import pytest
from sqlmodel import SQLModel
from temporalio.testing import ActivityEnvironment

from contracts.documents import TransferRequested
from contracts.envelope import Envelope
from services.common.db import create_tables, make_engine
from services.common.repository import CaseRepository
from services.common.tables import COMMON_TABLES
from tests.support.workflow_fakes import (
    INCOMING_REGION,
    OUTGOING_REGION,
    FakeOutgoingRecords,
    transfer_request,
)
from workflows.outgoing.activities import OutgoingActivities
from workflows.outgoing.types import TransferOutInput

pytestmark = pytest.mark.unit


@pytest.fixture
def repository(tmp_path: Path) -> CaseRepository:
    engine = make_engine(f"sqlite:///{tmp_path / 'outgoing.db'}")
    create_tables(engine, cast(list[type[SQLModel]], COMMON_TABLES))
    return CaseRepository(engine, "outgoing")


def peer_envelope(payload: dict[str, Any]) -> Envelope:
    """A contact letter as a non-Python peer puts it on the wire (parsed the way the inbound
    path parses it: ``Envelope.model_validate_json``)."""
    raw = {
        "message_id": "C-9/TransferRequested/request",
        "case_id": "C-9",
        "type": "TransferRequested",
        "schema_version": 1,
        "from_region": INCOMING_REGION,
        "to_region": OUTGOING_REGION,
        "sent_at": "2027-01-04T09:00:00+08:00",
        "correlation_id": "C-9",
        "payload": payload,
    }
    return Envelope.model_validate_json(json.dumps(raw, ensure_ascii=False))


async def transfer_out_of(envelope: Envelope, repository: CaseRepository) -> FakeOutgoingRecords:
    # What the inbound path does (services/common/inbound.py) once the signature verified,
    # then what the outgoing workflow hands transfer_out: the validated model.
    envelope.document()  # valid per the contract
    repository.record_verified(envelope)
    records = FakeOutgoingRecords()
    activities = OutgoingActivities(records, repository)
    request = TransferOutInput(
        case_id=envelope.case_id,
        request=envelope.document_as(TransferRequested),
        balance_action="remit",
        balance_rule="R18",
        remittance_id="C-9-main",
        transferred_out_on=date(2027, 1, 5),
        expected_balance_fen=records.balance_fen,
    )
    await ActivityEnvironment().run(activities.transfer_out, request)
    return records


async def test_a_verified_letter_with_a_lowercase_x_check_character_is_acted_on(
    repository: CaseRepository,
) -> None:
    payload = transfer_request(date(2027, 1, 4)).model_dump(mode="json")
    # GB 11643 check character 'x' in lower case: the contract accepts it (and upper-cases
    # it), so the document is valid and its signature covers the lower-case form.
    payload["person"]["id_number"] = payload["person"]["id_number"].lower()
    records = await transfer_out_of(peer_envelope(payload), repository)
    assert len(records.transfers) == 1


async def test_a_verified_letter_that_leaves_out_a_defaulted_field_is_acted_on(
    repository: CaseRepository,
) -> None:
    payload = transfer_request(date(2027, 1, 4)).model_dump(mode="json")
    # Optional members with defaults (resettled_retiree=false, the null ones) left out, as
    # a Jackson/Go encoder with omit-empty writes them: still a valid document.
    for name in ("resettled_retiree", "bank_account", "limit_starts_on", "correction_of"):
        payload.pop(name)
    records = await transfer_out_of(peer_envelope(payload), repository)
    assert len(records.transfers) == 1
