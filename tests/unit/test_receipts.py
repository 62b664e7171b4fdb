"""Found by a second review (each a bug before its fix): receipts (services/common/inbound.py _send_receipt + repository
receipt_received). A receipt marks *any* sent document acknowledged by its
acknowledges_message_id: no check that it names a document of the receipt's own case,
sent to the region that signed the receipt. One agency (a bug, a replayed receipt of
another case) stops the resending of another case's document to another region, so
that document is never resent and its case never escalated (NO_RECEIPT)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest

from contracts.documents import Receipt, WithdrawalRequested
from tests.support.inprocess import InProcessAgency, inprocess_app, kafka_memory

pytestmark = pytest.mark.unit

INCOMING, PEER_A, PEER_B = "610100", "620800", "350100"
PERSON_ID = "11010519491231002X"


@pytest.fixture(scope="module")
async def incoming(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessAgency]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        agency = inprocess_app("incoming", tmp_path_factory.mktemp("receipts"), monkeypatch)
        async with kafka_memory(agency):
            yield agency


def _case(agency: InProcessAgency, outgoing: str) -> str:
    case_id = f"TR20260105{uuid.uuid4().hex[:10].upper()}"
    agency.seed_case(
        case_id,
        "withdrawal_requested",
        from_region=outgoing,
        to_region=INCOMING,
        person_id=PERSON_ID,
    )
    return case_id


async def test_a_receipt_acknowledges_only_a_document_of_its_own_case_and_sender(
    incoming: InProcessAgency,
) -> None:
    ours = _case(incoming, PEER_A)
    other = _case(incoming, PEER_B)
    # We sent a stop on case `other` to region B; kept until B's receipt.
    stop = incoming.envelope(
        WithdrawalRequested(kind="withdrawal", reason="not now", requested_on=date.today()),
        other,
        from_region=INCOMING,
        to_region=PEER_B,
        step="stop-request",
    )
    incoming.service.repository.record_sent(stop)
    # Region A, on its own case `ours`, signs a receipt naming that document.
    receipt = incoming.envelope(
        Receipt(
            acknowledges_message_id=stop.message_id,
            acknowledges_type="WithdrawalRequested",
            status="accepted",
        ),
        ours,
        from_region=PEER_A,
        to_region=INCOMING,
        step="receipt-x",
    )
    assert await incoming.deliver(receipt.model_dump_json().encode()) == "receipt"
    later = datetime.now(UTC) + timedelta(hours=2)
    pending = [r.message_id for r in incoming.service.repository.unacknowledged(later)]
    assert stop.message_id in pending, "region A's receipt of case X silenced case Y's resend"
