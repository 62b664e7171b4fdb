"""Faults in what the services are fed and where they store it: the database locked under
them, a whole topic replayed from the earliest offset, documents out of order, and a
burst of identical applications."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from datetime import date
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.documents import (
    BalanceRemitted,
)
from domain.identity import fingerprint
from harness.agencies import PEER_REGION, AgencyStack
from harness.invariants import check_invariants, wait_for_invariants
from tests.faults.conftest import FaultFigures, start_cases, terminal_count, wait_for
from tests.support.agencies import PeerAgency, sheet_document

pytestmark = pytest.mark.faults

SIDES = ("incoming", "outgoing")


def snapshot(stack: AgencyStack) -> dict[str, Any]:
    """Everything a duplicate could change: ledgers, inboxes, timelines, dead letters."""
    found: dict[str, Any] = {}
    for side in SIDES:
        found[f"{side}.ledger"] = stack.query(
            side, "select case_id, remittance_id, leg, amount_fen from ledger order by id"
        )
        found[f"{side}.inbox"] = stack.query(side, "select count(*) from inbox")
        found[f"{side}.events"] = stack.query(side, "select count(*) from case_event")
        found[f"{side}.cases"] = stack.query(
            side, "select case_id, status from case_record order by case_id"
        )
        found[f"{side}.dead_letters"] = stack.query(side, "select count(*) from dead_letter")
    return found


# --- the database locked --------------------------------------------------------------------
def hold_exclusive_lock(db_file: str, seconds: float, held: list[float]) -> None:
    """Another program takes the database's write lock and sits on it."""
    connection = sqlite3.connect(db_file, timeout=60, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        held.append(time.monotonic())
        time.sleep(seconds)
        connection.execute("COMMIT")
    finally:
        connection.close()


async def test_database_locked_for_seconds_delays_but_loses_nothing(
    fault_stack: AgencyStack, figures: FaultFigures
) -> None:
    """Both SQLite files are write-locked by another connection for several seconds while
    cases are in flight and an application comes in: everyone waits (busy timeout,
    redelivery, activity retry) and nothing is lost, dead-lettered or done twice."""
    stack = fault_stack
    if stack.env.get("MEDTRANSFER_INCOMING_DATABASE_URL"):
        pytest.skip("a SQLite file lock; on PostgreSQL the database is stopped instead")
    figures.fault = "sqlite write-locked 6 s" + figures.suffix
    dead_before = snapshot(stack)
    cases = await start_cases(stack, 3)
    held: list[float] = []
    locks = [
        asyncio.create_task(
            asyncio.to_thread(
                hold_exclusive_lock, str(stack.root / "data" / f"{side}-agency.db"), 6.0, held
            )
        )
        for side in SIDES
    ]
    await wait_for(lambda: len(held) == len(SIDES), 30, "the locks")
    # WAL: reads go on under the write lock.
    figures.cases_affected = len(cases) - terminal_count(stack, cases)
    # An application arriving while its database is locked waits; it is not refused.
    person = stack.person("620800")
    late = asyncio.create_task(stack.submit(stack.application(person, "610100")))
    await asyncio.gather(*locks)
    released_at = time.monotonic()
    await stack.enrol(person)
    response = await late
    assert response.status_code == 201, response.text
    cases.append(response.json()["case_id"])
    figures.cases_affected += 1

    report = await wait_for_invariants(stack, cases, timeout=180)
    figures.recovery_seconds = time.monotonic() - released_at
    figures.checked(report)
    assert set(report.states.values()) == {("completed", "completed")}
    after = snapshot(stack)
    for side in SIDES:
        key = f"{side}.dead_letters"
        assert after[key] == dead_before[key], f"{side} dead-lettered a good message"


# --- a whole topic replayed -----------------------------------------------------------------
async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of every partition of ``topic``, from the earliest offset."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await topic_partitions(bootstrap, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []

        async def behind() -> bool:
            positions = [await consumer.position(tp) for tp in partitions]
            return any(at < ends[tp] for at, tp in zip(positions, partitions, strict=True))

        while await behind():
            batch = await consumer.getmany(timeout_ms=1000)
            for found in batch.values():
                records.extend(found)
        return records
    finally:
        await consumer.stop()


async def topic_partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])


async def group_lag(bootstrap: str, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        partitions = await topic_partitions(bootstrap, topic)
        ends = await consumer.end_offsets(partitions)
        return sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in partitions)
    finally:
        await consumer.stop()
        await admin.close()


async def test_whole_topics_replayed_from_the_earliest_offset_change_nothing(
    fault_stack: AgencyStack, figures: FaultFigures
) -> None:
    """Every record ever sent to either agency is produced again (a partition replayed
    from offset 0): each one is recognised by its message id and has no effect."""
    figures.fault = "topics replayed from offset 0" + figures.suffix
    stack = fault_stack
    cases = await start_cases(stack, 2)
    await wait_for_invariants(stack, cases, timeout=180)
    topics = {
        stack.topics.to_incoming: f"{stack.prefix}-incoming-local",
        stack.topics.to_outgoing: f"{stack.prefix}-outgoing-local",
    }

    async def quiet() -> None:
        """Both consumers have worked through everything, twice in a row (the last
        receipts of a closed case, and those re-sent for a replay, come a moment later)."""
        deadline = time.monotonic() + 180
        steady = 0
        while steady < 2:
            assert time.monotonic() < deadline, "the consumers did not catch up"
            lags = [await group_lag(stack.kafka_bootstrap, g, t) for t, g in topics.items()]
            steady = 0 if any(lags) else steady + 1
            await asyncio.sleep(1)

    await quiet()
    before = snapshot(stack)
    replayed = 0
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        for topic in topics:
            for record in await read_topic(stack.kafka_bootstrap, topic):
                await producer.send(
                    topic, record.value, key=record.key, headers=list(record.headers)
                )
                replayed += 1
        await producer.flush()
    finally:
        await producer.stop()
    replayed_at = time.monotonic()
    figures.duplicates_attempted = replayed
    await quiet()
    figures.recovery_seconds = time.monotonic() - replayed_at

    after = snapshot(stack)
    assert after == before
    figures.duplicates_blocked = replayed
    ids = [row[0] for row in before["incoming.cases"]]
    figures.cases_affected = len(ids)
    report = check_invariants(stack, ids)
    figures.checked(report)
    assert report.ok, report.describe()


# --- documents out of order -----------------------------------------------------------------
async def test_r15_balance_remitted_before_the_information_sheet_is_credited_once_after_it(
    fault_stack: AgencyStack, figures: FaultFigures
) -> None:
    """The outgoing agency (played by the test) sends the remittance, then the sheet,
    then both again: the incoming agency credits only after its transfer-in, once."""
    figures.fault = "documents out of order" + figures.suffix
    stack = fault_stack
    async with PeerAgency(stack) as peer:
        person = stack.person(PEER_REGION)
        case_id = await stack.submit_ok(stack.application(person, "610100"))
        await peer.expect(case_id, "TransferRequested")
        remittance_id = f"{case_id}-main"
        remit = peer.envelope(
            BalanceRemitted(
                remittance_id=remittance_id, amount_fen=88_800, remitted_on=date.today()
            ),
            case_id,
            f"balance-{remittance_id}",
            "610100",
        )
        sheet = peer.envelope(
            sheet_document(person.id_number, person.name, 88_800), case_id, "sheet", "610100"
        )
        sent_at = time.monotonic()
        for envelope in (remit, sheet, remit, sheet):
            await peer.send(envelope)
        await peer.expect(case_id, "BalanceCredited")
    figures.cases = figures.cases_affected = 1
    figures.duplicates_attempted = 2

    report = await wait_for_invariants(stack, [case_id], timeout=120)
    figures.recovery_seconds = time.monotonic() - sent_at
    figures.checked(report)
    assert report.states[case_id][0] == "completed"
    events = [
        e
        for (e,) in stack.query(
            "incoming", "select event from case_event where case_id=? order by sequence", case_id
        )
    ]
    assert events.index("transfer_in_completed") < events.index("balance_credited")
    assert events.count("information_sheet_received") == events.count("balance_credited") == 1
    assert stack.query(
        "incoming", "select leg, amount_fen from ledger where case_id=?", case_id
    ) == [("credit_incoming", 88_800)]
    figures.duplicates_blocked = 2


# --- a burst of identical applications ------------------------------------------------------
async def test_r11_100_concurrent_duplicate_applications_make_exactly_one_case(
    fault_stack: AgencyStack, figures: FaultFigures
) -> None:
    """One person's application submitted 100 times at once: one case is opened; every
    other submission is answered with that case, marked as a duplicate of it."""
    figures.fault = "100 concurrent duplicate applications" + figures.suffix
    stack = fault_stack
    person = stack.person("620800")
    await stack.enrol(person)
    application = stack.application(person, "610100")
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    started = time.monotonic()
    async with httpx.AsyncClient(
        base_url=stack.incoming_url, timeout=120, headers=stack.auth, limits=limits
    ) as http:
        responses = await asyncio.gather(
            *(http.post("/v1/applications", json=application) for _ in range(100))
        )
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 1, 200: 99}, codes
    bodies = [r.json() for r in responses]
    case_ids = {b["case_id"] for b in bodies}
    assert len(case_ids) == 1
    (case_id,) = case_ids
    blocked = [b for b in bodies if b["duplicate_of_open_case"]]
    figures.duplicates_attempted = 99
    figures.duplicates_blocked = len(blocked)
    assert len(blocked) == 99
    figures.cases = figures.cases_affected = 1
    key = fingerprint(person.id_number)
    for side in SIDES:
        assert stack.query(side, "select count(*) from case_record where person_key=?", key) == [
            (1,)
        ], side

    report = await wait_for_invariants(stack, [case_id], timeout=120)
    figures.recovery_seconds = time.monotonic() - started
    figures.checked(report)
    assert report.states[case_id] == ("completed", "completed")
    assert terminal_count(stack, [case_id]) == 1
