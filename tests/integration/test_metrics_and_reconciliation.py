"""Metrics and the remittance reconciliation over the real services' records.

One remitted balance (R18) and one balance paid to the person's bank account (R22) run to
completion; then both APIs' /metrics show them and the reconciliation matches both
remittances three ways (debit, credit or payout, message).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import cast

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.agencies import AgencyStack, free_port
from services.common.bootstrap import Service
from services.common.db import make_engine
from services.common.metrics import start_worker_metrics
from services.ops.reconciliation import Report, reconcile

pytestmark = pytest.mark.integration

BANK = {
    "bank_name": "中国工商银行",
    "account_number": "6222020200112233445",
    "account_holder": "本人",
}


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def value(text: str, name: str, **labels: str) -> float:
    found = [
        v for sample_labels, v in samples(text, name) if labels.items() <= sample_labels.items()
    ]
    assert found, f"no {name}{labels} in the metrics"
    return sum(found)


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def reconciled(agencies: AgencyStack, case_ids: set[str], timeout: float = 20) -> Report:
    """The inbox row of a message is written just after the workflow got it, so the report
    may trail the case status by a moment."""
    data = agencies.root / "data"
    outgoing = make_engine(f"sqlite:///{data / 'outgoing-agency.db'}")
    incoming = make_engine(f"sqlite:///{data / 'incoming-agency.db'}")
    deadline = time.monotonic() + timeout
    try:
        while True:
            report = reconcile(outgoing, incoming, datetime.now(UTC), case_ids=case_ids)
            if (len(report.items) == len(case_ids) and not report.unmatched) or (
                time.monotonic() > deadline
            ):
                return report
            await asyncio.sleep(0.3)
    finally:
        outgoing.dispose()
        incoming.dispose()


async def test_r18_r22_cases_show_in_metrics_and_reconcile(agencies: AgencyStack) -> None:
    remitted = agencies.person("620800")
    await agencies.enrol(remitted, balance_fen=523_400)
    remit_case = await agencies.submit_ok(agencies.application(remitted, "610100"))
    paid = agencies.person("620800")
    await agencies.enrol(paid, balance_fen=310_000)
    bank_case = await agencies.submit_ok(
        agencies.application(
            paid, "350100", to_scheme="resident", bank_account=BANK | {"account_holder": paid.name}
        )
    )
    for case_id in (remit_case, bank_case):
        await agencies.wait_status("incoming", case_id, "completed")
        await agencies.wait_status("outgoing", case_id, "completed")

    for side, url in (("incoming", agencies.incoming_url), ("outgoing", agencies.outgoing_url)):
        text = await scrape(url)
        assert value(text, "medtransfer_db_up", side=side) == 1
        assert value(text, "medtransfer_cases", side=side, status="completed") >= 2
        assert value(text, "medtransfer_cases_escalated", side=side) >= 0
        assert value(text, "medtransfer_dead_letters_total", side=side) >= 0
        assert value(text, "medtransfer_region_waits_total", side=side) >= 0
        assert value(text, "medtransfer_stage_duration_seconds_count", side=side) >= 1
        assert value(text, "process_cpu_seconds_total") > 0
        # The platform topic this side consumes has been fetched from, so its lag is known.
        lag = samples(text, "medtransfer_consumer_lag")
        assert lag, text
        assert all(v >= 0 and labels["side"] == side for labels, v in lag)
    incoming_text = await scrape(agencies.incoming_url)
    assert value(incoming_text, "medtransfer_inbox_messages_total", type="BalanceRemitted") >= 1
    assert value(incoming_text, "medtransfer_inbox_messages_total", type="BalancePaidToBank") >= 1
    outgoing_text = await scrape(agencies.outgoing_url)
    assert value(outgoing_text, "medtransfer_inbox_messages_total", type="TransferRequested") >= 2

    report = await reconciled(agencies, {remit_case, bank_case})
    assert report.unmatched == [], report.to_json()
    by_id = {item.remittance_id: item for item in report.items}
    remit = by_id[f"{remit_case}-main"]
    assert (remit.status, remit.settlement, remit.message_type) == (
        "matched",
        "credit_incoming",
        "BalanceRemitted",
    )
    assert remit.debit_fen == remit.settled_fen == 523_400
    payout = by_id[f"{bank_case}-main"]
    assert (payout.status, payout.settlement, payout.message_type) == (
        "matched",
        "bank_payout",
        "BalancePaidToBank",
    )
    assert payout.debit_fen == payout.settled_fen == 310_000
    assert report.totals["outstanding_fen"] == 0
    assert report.totals["debited_fen"] == 833_400
    rows = report.to_table_rows(header=False)
    assert {row[0] for row in rows} == set(by_id)


async def test_worker_metrics_server_serves_the_sides_figures(
    agencies: AgencyStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(f"sqlite:///{agencies.root / 'data' / 'incoming-agency.db'}")
    service = cast(Service, SimpleNamespace(engine=engine, side="incoming"))
    monkeypatch.delenv("MEDTRANSFER_WORKER_METRICS_PORT", raising=False)
    monkeypatch.delenv("MEDTRANSFER_INCOMING_WORKER_METRICS_PORT", raising=False)
    assert start_worker_metrics(service) is None  # not configured: no server

    port = free_port()
    monkeypatch.setenv("MEDTRANSFER_WORKER_METRICS_PORT", str(port))
    started = start_worker_metrics(service)
    assert started is not None
    server, thread = started
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        assert value(response.text, "medtransfer_db_up", side="incoming") == 1
        assert "# TYPE medtransfer_cases gauge" in response.text
        assert value(response.text, "process_resident_memory_bytes") > 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        engine.dispose()
