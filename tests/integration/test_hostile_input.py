"""Hostile records on the real Kafka topics, against the real incoming-agency process: a
record that is not UTF-8, one just under Kafka's default 1 MB limit but over our own
(256 KiB), and a replayed document each end as a dead letter with its reason, and the
valid documents right behind them on the same partition are still processed."""

from __future__ import annotations

import asyncio
from datetime import date

import httpx
import pytest

from contracts.documents import BalanceRemitted
from harness.agencies import AgencyStack
from services.common.acceptance import MAX_DOCUMENT_BYTES
from tests.integration.test_exceptions import peer_case, sheet_document
from tests.support.agencies import PeerAgency

pytestmark = pytest.mark.integration


async def test_bad_records_are_dead_lettered_and_never_block_the_partition(
    agencies: AgencyStack, peer: PeerAgency
) -> None:
    case_id, id_number, name = await peer_case(agencies, peer)
    before = len(agencies.query("incoming", "select id from dead_letter"))
    key = case_id.encode()  # the case's partition: what follows must still get through

    await peer.send_raw(b'{"message_id": "\xff\xfe not UTF-8"}', key=key)
    oversized = b'{"padding": "' + b"x" * 1_000_000 + b'"}'
    assert MAX_DOCUMENT_BYTES < len(oversized) < 1_048_576
    await peer.send_raw(oversized, key=key)
    sheet = peer.envelope(sheet_document(id_number, name, 70_000), case_id, "sheet", "610100")
    await peer.send(sheet)
    # The same message id again, validly signed, with another balance: a replay.
    await peer.send(
        peer.envelope(sheet_document(id_number, name, 9_000_000), case_id, "sheet", "610100")
    )
    await peer.send(sheet)  # and an identical redelivery: silently ignored
    remit = BalanceRemitted(
        remittance_id=f"{case_id}-main", amount_fen=70_000, remitted_on=date.today()
    )
    await peer.send(peer.envelope(remit, case_id, "remit", "610100"))

    await agencies.wait_status("incoming", case_id, "completed", timeout=90)
    assert agencies.query("incoming", "select amount_fen from ledger where case_id=?", case_id) == [
        (70_000,)
    ]
    for _ in range(50):  # the dead letters are written before the offsets behind them
        reasons = [r[0] for r in agencies.query("incoming", "select reason from dead_letter")]
        if len(reasons) - before >= 3:
            break
        await asyncio.sleep(0.2)
    new = reasons[before:]
    assert any(r.startswith("INVALID_ENVELOPE") for r in new), new
    assert f"OVERSIZED: {len(oversized)} bytes, the limit is {MAX_DOCUMENT_BYTES}" in new
    # One replay; the identical redelivery is no dead letter.
    assert sum(r.startswith("REPLAYED") for r in new) == 1, new

    async with httpx.AsyncClient(base_url=agencies.incoming_url, timeout=30) as http:
        metrics = (await http.get("/metrics")).text
    replayed = [x for x in metrics.splitlines() if 'reason="REPLAYED"' in x and "_total" in x]
    assert replayed, metrics[:2000]
    assert float(replayed[0].split()[-1]) >= 1
