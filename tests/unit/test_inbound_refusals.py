"""Replay safety at the Kafka entry point (issue 6 item 2): a document that was already
received with other content (REPLAYED) or one between regions that are not the case's
parties (MISADDRESSED) is refused, recorded as a dead letter with that code, alerted (a WARNING line and
medtransfer_security_refusals_total) and never acted on. The same message delivered again
is Kafka's at-least-once delivery: a silent no-op, counted in medtransfer_redeliveries_total.
A document signed long ago (or by a skewed clock) is accepted: age alone refuses nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from contracts.documents import BalanceRemitted
from contracts.envelope import Envelope
from services.common.acceptance import DEFAULT_REPLAY_WINDOW
from tests.support.inprocess import InProcessAgency, inprocess_app, kafka_memory

pytestmark = pytest.mark.unit

OUTGOING, INCOMING, BYSTANDER = "620800", "610100", "350100"
PERSON_ID = "11010519491231002X"


@pytest.fixture(scope="module")
async def incoming(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessAgency]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        agency = inprocess_app("incoming", tmp_path_factory.mktemp("refusals"), monkeypatch)
        async with kafka_memory(agency):
            yield agency


def new_case(agency: InProcessAgency) -> str:
    case_id = f"TR20260105{uuid.uuid4().hex[:10].upper()}"
    agency.seed_case(
        case_id, "awaiting_balance", from_region=OUTGOING, to_region=INCOMING, person_id=PERSON_ID
    )
    return case_id


def remitted(
    agency: InProcessAgency,
    case_id: str,
    amount_fen: int = 70_000,
    *,
    sent_at: datetime | None = None,
    from_region: str = OUTGOING,
) -> Envelope:
    document = BalanceRemitted(
        remittance_id=f"{case_id}-main", amount_fen=amount_fen, remitted_on=date.today()
    )
    return agency.envelope(
        document,
        case_id,
        from_region=from_region,
        to_region=INCOMING,
        step="remit",
        sent_at=sent_at,
    )


def raw(envelope: Envelope) -> bytes:
    return envelope.model_dump_json().encode()


async def metrics(agency: InProcessAgency) -> str:
    transport = httpx.ASGITransport(app=agency.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return (await client.get("/metrics")).text


def refusals(text: str, reason: str) -> float:
    line = f'medtransfer_security_refusals_total{{reason="{reason}",side="incoming"}} '
    return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])


async def test_identical_redelivery_is_a_silent_counted_no_op(incoming: InProcessAgency) -> None:
    case_id = new_case(incoming)
    first = remitted(incoming, case_id)
    assert await incoming.deliver(raw(first)) == "signalled"
    signals, dead = len(incoming.temporal.signals), len(incoming.dead_letters())
    # The same bytes again, and the same message re-signed later by a retried send.
    resent = remitted(incoming, case_id, sent_at=first.sent_at + timedelta(minutes=3))
    assert await incoming.deliver(raw(first)) == "duplicate"
    assert await incoming.deliver(raw(resent)) == "duplicate"
    assert len(incoming.temporal.signals) == signals
    assert len(incoming.dead_letters()) == dead
    text = await metrics(incoming)
    assert 'medtransfer_redeliveries_total{side="incoming",type="BalanceRemitted"} 2.0' in text


async def test_replayed_message_id_with_other_content_is_refused_and_alerted(
    incoming: InProcessAgency, caplog: pytest.LogCaptureFixture
) -> None:
    case_id = new_case(incoming)
    assert await incoming.deliver(raw(remitted(incoming, case_id, 70_000))) == "signalled"
    before = refusals(await metrics(incoming), "REPLAYED")
    signals = len(incoming.temporal.signals)
    # Validly signed by the right region, same message_id, another amount.
    with caplog.at_level(logging.WARNING, logger="medtransfer.inbound"):
        assert await incoming.deliver(raw(remitted(incoming, case_id, 7_000_000))) == "dead_letter"
    assert incoming.dead_letters()[-1].startswith("REPLAYED:")
    assert len(incoming.temporal.signals) == signals  # never acted on
    assert refusals(await metrics(incoming), "REPLAYED") == before + 1
    alerts = [r for r in caplog.records if "security refusal REPLAYED" in r.getMessage()]
    assert alerts
    assert alerts[0].levelno == logging.WARNING
    assert PERSON_ID not in caplog.text


async def test_document_signed_before_the_replay_window_is_accepted_not_lost(
    incoming: InProcessAgency, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver offline longer than the window, or a skewed clock, loses no document:
    replays are refused by message id and content (above), not by age alone."""
    old = datetime.now(UTC) - DEFAULT_REPLAY_WINDOW - timedelta(days=3)
    case_id = new_case(incoming)
    with caplog.at_level(logging.WARNING, logger="medtransfer.inbound"):
        assert await incoming.deliver(raw(remitted(incoming, case_id, sent_at=old))) == "signalled"
    assert "late or skewed document accepted" in caplog.text
    assert PERSON_ID not in caplog.text
    future = datetime.now(UTC) + timedelta(hours=2)
    other = new_case(incoming)
    assert await incoming.deliver(raw(remitted(incoming, other, sent_at=future))) == "signalled"
    # The same old document again is a duplicate, with other content a replay.
    assert await incoming.deliver(raw(remitted(incoming, case_id, sent_at=old))) == "duplicate"


async def test_stale_check_comes_after_the_inbox_so_an_old_redelivery_stays_silent(
    incoming: InProcessAgency,
) -> None:
    """A whole partition replayed from the earliest offset redelivers old documents that
    were received long ago: duplicates, not attacks."""
    case_id = new_case(incoming)
    recent = datetime.now(UTC) - DEFAULT_REPLAY_WINDOW + timedelta(seconds=5)
    envelope = remitted(incoming, case_id, sent_at=recent)
    assert await incoming.deliver(raw(envelope)) == "signalled"
    dead = len(incoming.dead_letters())
    assert await incoming.deliver(raw(envelope)) == "duplicate"
    assert len(incoming.dead_letters()) == dead


async def test_validly_signed_document_from_a_region_not_party_to_the_case_is_misaddressed(
    incoming: InProcessAgency, caplog: pytest.LogCaptureFixture
) -> None:
    case_id = new_case(incoming)
    signals = len(incoming.temporal.signals)
    forged_party = remitted(incoming, case_id, from_region=BYSTANDER)  # BYSTANDER's real key
    with caplog.at_level(logging.WARNING, logger="medtransfer.inbound"):
        assert await incoming.deliver(raw(forged_party)) == "dead_letter"
    assert incoming.dead_letters()[-1].startswith("MISADDRESSED:")
    assert "security refusal MISADDRESSED" in caplog.text
    assert refusals(await metrics(incoming), "MISADDRESSED") >= 1
    assert len(incoming.temporal.signals) == signals
    # The real party's document for the same case still goes through afterwards.
    assert await incoming.deliver(raw(remitted(incoming, case_id))) == "signalled"


async def test_residual_remittance_for_an_unknown_case_starts_no_workflow(
    incoming: InProcessAgency,
) -> None:
    case_id = f"TR20260105{uuid.uuid4().hex[:10].upper()}"
    document = BalanceRemitted(
        remittance_id=f"{case_id}-late-1", amount_fen=100, remitted_on=date.today(), residual=True
    )
    envelope = incoming.envelope(document, case_id, from_region=OUTGOING, to_region=INCOMING)
    starts = len(incoming.temporal.starts)
    assert await incoming.deliver(raw(envelope)) == "dead_letter"
    assert incoming.dead_letters()[-1].startswith("UNKNOWN_CASE:")
    assert len(incoming.temporal.starts) == starts


async def test_a_dead_letter_whose_cause_clears_is_redriven_to_its_case(
    incoming: InProcessAgency,
) -> None:
    """Transient stays transient: a document for a case not known here yet is a dead
    letter (UNKNOWN_CASE) that keeps its record; once the case exists the re-drive (the
    schedule, or POST /v1/admin/dead-letters/redrive) hands it to the case, once."""
    case_id = f"TR20260105{uuid.uuid4().hex[:10].upper()}"
    early = remitted(incoming, case_id)
    assert await incoming.deliver(raw(early)) == "dead_letter"
    assert incoming.dead_letters()[-1].startswith("UNKNOWN_CASE")
    handler = incoming.app.state.inbound

    def outcome() -> str | None:
        rows = [
            r
            for r in incoming.service.repository.dead_letters()
            if r.message_id == early.message_id
        ]
        return rows[-1].redrive_outcome

    await handler.redrive()
    assert outcome() == "UNKNOWN_CASE"  # still unknown: left as it is
    incoming.seed_case(
        case_id, "awaiting_balance", from_region=OUTGOING, to_region=INCOMING, person_id=PERSON_ID
    )
    signals = len(incoming.temporal.signals)
    assert (await handler.redrive()).get("signalled") == 1
    assert outcome() == "signalled"
    assert len(incoming.temporal.signals) == signals + 1
    assert "signalled" not in await handler.redrive()  # acted on: never again
    # A malformed record keeps no raw copy and is never re-driven.
    assert await incoming.deliver(b"not json") == "dead_letter"
    assert incoming.service.repository.dead_letters()[-1].raw_base64 is None
