"""PostgreSQL as the services' database, and the migrations that SQLite shares with it.

A throwaway cluster is started once per session through deploy/local/postgres.sh (which
installs Debian's postgresql package when missing) on POSTGRES_PORT, and stopped at the
end when this session started it. Every test uses fresh databases.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client

from contracts.audit_trust import sign_record
from contracts.documents import AuditRecord
from harness.agencies import AgencyStack, free_port, stack_env
from harness.invariants import wait_for_invariants
from harness.servers import REPO_DIR, ScriptServer
from services.audit.store import AuditStore, RecordRefused
from services.cli import migrate
from services.cli.migrate import DATABASES, Database
from services.common import migrate as runner
from services.common.db import create_tables, make_engine
from services.common.migrate import MigrationError
from services.common.tables import LedgerEntry
from services.ops.reconciliation import reconcile
from tests.support.audit_keys import OUTGOING_REGION, content, make_trust, signed
from tests.support.postgres import Postgres

pytestmark = pytest.mark.integration

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def new_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Makes fresh, empty databases of one backend: ``new_url(label) -> URL``."""
    if request.param == "sqlite":
        yield lambda label: f"sqlite:///{tmp_path / uuid.uuid4().hex[:8]}-{label}.db"
    else:
        pg: Postgres = request.getfixturevalue("postgres")
        yield pg.new_database


@pytest.fixture
def engines() -> Iterator[Callable[[str], Engine]]:
    made: list[Engine] = []

    def make(url: str) -> Engine:
        made.append(make_engine(url))
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


# --- (a) an empty database upgraded to head is the models ------------------------------------
@pytest.mark.parametrize("database", DATABASES)
def test_empty_database_upgraded_to_head_matches_the_models(
    database: Database, new_url: Callable[[str], str], engines: Callable[[str], Engine]
) -> None:
    engine = engines(new_url(database))
    assert migrate.upgrade(engine, database) == "created"
    # compare_metadata (Alembic's autogenerate comparison, types included): no difference.
    assert migrate.check(engine, database) == []
    assert migrate.upgrade(engine, database) == "current"


@pytest.mark.parametrize("database", DATABASES)
def test_head_creates_exactly_what_create_all_of_the_models_makes(
    database: Database, new_url: Callable[[str], str], engines: Callable[[str], Engine]
) -> None:
    """Same columns, type families, nullability, keys, unique constraints and indexes as
    the services' create_all (the first revision was made from it, and was this test's
    subject until a second revision came)."""
    legacy = engines(new_url(f"{database}_create_all"))
    create_tables(legacy, migrate.database_models(database))
    migrated = engines(new_url(f"{database}_migrated"))
    migrate.upgrade(migrated, database)
    names = sorted(table_names(legacy))
    with legacy.connect() as a, migrated.connect() as b:
        assert runner._shape(a, names) == runner._shape(b, names)
    assert table_names(migrated) - table_names(legacy) == {"alembic_version"}


# --- (b) a database made before migrations is adopted ---------------------------------------
def test_database_made_by_create_tables_is_stamped_and_upgraded(
    new_url: Callable[[str], str], engines: Callable[[str], Engine]
) -> None:
    engine = engines(new_url("outgoing_old"))
    create_tables(engine, migrate.database_models("outgoing"))
    with Session(engine) as session:
        session.add(
            LedgerEntry(
                case_id="c-1",
                remittance_id="r-1",
                leg="debit_outgoing",
                amount_fen=523_400,
                created_at=datetime.now(UTC),
            )
        )
        session.commit()

    assert migrate.upgrade(engine, "outgoing") == "adopted"
    with engine.connect() as connection:
        assert runner.current_revision(connection) == migrate.head_revision("outgoing")
    assert migrate.check(engine, "outgoing") == []
    with Session(engine) as session:
        kept = session.exec(select(LedgerEntry.amount_fen)).all()
    assert kept == [523_400]
    assert migrate.upgrade(engine, "outgoing") == "current"


def test_database_at_the_baseline_without_history_is_stamped_there_and_upgraded(
    new_url: Callable[[str], str], engines: Callable[[str], Engine]
) -> None:
    """A database made by the services' create_all when the first revision was written
    (that revision's exact tables, no history) gets every later migration."""
    engine = engines(new_url("incoming_baseline"))
    migrate.upgrade(engine, "incoming", migrate.BASELINE["incoming"])
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))

    assert migrate.upgrade(engine, "incoming") == "adopted"
    with engine.connect() as connection:
        assert runner.current_revision(connection) == migrate.head_revision("incoming")
    assert migrate.check(engine, "incoming") == []


def test_old_database_that_differs_from_the_baseline_is_not_stamped(
    new_url: Callable[[str], str], engines: Callable[[str], Engine]
) -> None:
    engine = engines(new_url("outgoing_odd"))
    create_tables(engine, migrate.database_models("outgoing"))
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE ledger DROP COLUMN created_at"))

    with pytest.raises(MigrationError, match=r"ledger\.created_at is missing"):
        migrate.upgrade(engine, "outgoing")
    assert "alembic_version" not in table_names(engine)


def test_replica_of_an_older_release_starts_on_a_newer_schema(
    new_url: Callable[[str], str], engines: Callable[[str], Engine]
) -> None:
    """Rolling upgrade: a revision this code does not know is left alone, not an error."""
    engine = engines(new_url("incoming_newer"))
    migrate.upgrade(engine, "incoming")
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'incoming_9999'"))

    assert migrate.upgrade(engine, "incoming") == "newer"
    with engine.connect() as connection:
        assert runner.current_revision(connection) == "incoming_9999"


# --- (c) replicas starting at once ----------------------------------------------------------
CHILD = """
import sys, time
from pathlib import Path
from services.common.db import make_engine
from services.cli.migrate import upgrade
engine = make_engine(sys.argv[1])
print("ready", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.01)
print(upgrade(engine, "outgoing"), flush=True)
"""


def test_concurrent_upgrade_from_several_processes_is_safe(
    new_url: Callable[[str], str], engines: Callable[[str], Engine], tmp_path: Path
) -> None:
    url = new_url("outgoing_race")
    engine = engines(url)
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(go)],
            cwd=REPO_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready", child.stderr
        if engine.dialect.name == "postgresql":
            # Hold the migration lock until every child is inside upgrade() waiting for
            # it, so all of them contend the moment it is released.
            with engine.connect() as holder:
                key = runner._lock_key("outgoing")
                holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                go.touch()
                wait_for_connections(engine, len(children) + 1)
                holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                holder.commit()
        else:
            go.touch()
        outcomes = []
        for child in children:
            out, err = child.communicate(timeout=180)
            assert child.returncode == 0, err
            outcomes.append(out.strip())
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert sorted(outcomes) == ["created", "current", "current"]
    assert migrate.check(engine, "outgoing") == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def wait_for_connections(engine: Engine, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if (connection.execute(query).scalar() or 0) >= count:
                return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} connections to the database")


# --- the audit store's SQL on PostgreSQL ----------------------------------------------------
def test_audit_store_on_postgres_links_records_that_arrive_out_of_order(
    postgres: Postgres, tmp_path: Path
) -> None:
    # Opened with the public-key registry, as the audit process opens it: every record is
    # checked against its emitter's signature and its chain's region on arrival.
    trust = make_trust(tmp_path)
    store = AuditStore.open(postgres.new_database("audit"), keys=trust.registry)
    try:
        case_id = f"case-{uuid.uuid4().hex[:8]}"

        def record(sequence: int, status: str = "submitted") -> AuditRecord:
            return signed(trust, case_id, "incoming", sequence, status)

        assert [store.append(record(n)) for n in (2, 3, 1)] == ["appended"] * 3
        assert store.append(record(2)) == "duplicate"  # signed again later: the same record
        assert store.append(record(2, status="refused")) == "conflict"
        # The outgoing agency's key signing a record of the incoming region's chain.
        stranger = sign_record(
            trust.signer("outgoing"),
            content(case_id, "incoming", 4),
            region=OUTGOING_REGION,
            prev_hash=content(case_id, "incoming", 3).content_digest(),
            at=datetime.now(UTC),
        )
        with pytest.raises(RecordRefused, match="REGION_MISMATCH"):
            store.append(stranger)
        entries = store.entries(case_id)
        assert [e.sequence for e in entries] == [1, 2, 3]
        assert all(e.hash for e in entries)
        assert all(e.received_at is not None and e.received_at.tzinfo for e in entries)
        assert [p.kind for p in store.verify(case_id)] == ["duplicate_conflict"]
    finally:
        store.engine.dispose()


# --- (d) the handshake with both services on PostgreSQL --------------------------------------
@pytest.fixture
async def pg_agencies(
    tmp_path: Path,
    postgres: Postgres,
    kafka: ScriptServer,
    temporal: ScriptServer,
    temporal_client: Client,
) -> AsyncIterator[AgencyStack]:
    root = tmp_path / "agencies"
    prefix = f"pg{uuid.uuid4().hex[:10]}"
    urls = {side: postgres.new_database(side) for side in ("incoming", "outgoing")}
    stack = AgencyStack(
        root=root,
        prefix=prefix,
        kafka_bootstrap=kafka.target,
        temporal=temporal_client,
        incoming_url=f"http://127.0.0.1:{free_port()}",
        outgoing_url=f"http://127.0.0.1:{free_port()}",
        env=stack_env(root, prefix, kafka.target, temporal.target, database_urls=urls),
    )
    stack.start()  # API and worker of a side migrate the same database at once
    try:
        await stack.wait_ready()
        yield stack
    finally:
        stack.stop()


async def test_r16_r18_handshake_on_postgres_completes_with_money_conserved(
    pg_agencies: AgencyStack,
) -> None:
    stack = pg_agencies
    person = stack.person("620800")
    await stack.enrol(person, balance_fen=523_400)
    case_id = await stack.submit_ok(stack.application(person, "610100"))

    await stack.wait_status("incoming", case_id, "completed", timeout=120)
    await stack.wait_status("outgoing", case_id, "completed", timeout=120)

    # R16: the debit at the outgoing account has exactly one matching credit.
    debit = stack.query(
        "outgoing",
        "select amount_fen from ledger where case_id=? and leg='debit_outgoing'",
        case_id,
    )
    credit = stack.query(
        "incoming",
        "select amount_fen from ledger where case_id=? and leg='credit_incoming'",
        case_id,
    )
    assert debit == credit == [(523_400,)]
    assert stack.query(
        "outgoing", "select balance_fen, status from enrolment where id_number=?", person.id_number
    ) == [(0, "transferred_out")]
    # Reconciliation reads both PostgreSQL databases and finds nothing unmatched.
    outgoing = make_engine(stack.env["MEDTRANSFER_OUTGOING_DATABASE_URL"])
    incoming = make_engine(stack.env["MEDTRANSFER_INCOMING_DATABASE_URL"])
    try:
        report = reconcile(outgoing, incoming, datetime.now(UTC), case_ids=[case_id])
    finally:
        outgoing.dispose()
        incoming.dispose()
    assert report.unmatched == []
    assert report.totals["outstanding_fen"] == 0
    # The metrics queries (JSON field access, counts) and case listings work there too.
    for url, side in ((stack.incoming_url, "incoming"), (stack.outgoing_url, "outgoing")):
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=stack.auth) as http:
            metrics = (await http.get("/metrics")).text
            listed = await http.get(
                "/v1/cases", params={"status": "completed", "warning": "calendar-fallback-2099"}
            )
        assert f'medtransfer_db_up{{side="{side}"}} 1.0' in metrics
        assert listed.status_code == 200, listed.text


@pytest.mark.faults
async def test_r16_postgres_stopped_mid_flight_loses_no_case_and_no_money(
    pg_agencies: AgencyStack, postgres: Postgres
) -> None:
    """The database stopped while cases are in flight (issue 6's fault suite, PostgreSQL
    variant; it needs this module's cluster): consumers redeliver, activities retry and
    pooled connections are re-made (pre-ping), so every case completes once the database
    is back, with I1-I3 intact."""
    stack = pg_agencies
    case_ids = []
    for balance_fen in (120_000, 230_000, 340_000):
        person = stack.person("620800")
        await stack.enrol(person, balance_fen=balance_fen)
        case_ids.append(await stack.submit_ok(stack.application(person, "610100")))

    stopped_at = time.monotonic()
    postgres.script("stop")
    try:
        # A real outage of a few seconds: the services keep running against no database.
        await asyncio.sleep(5)
    finally:
        postgres.script("start")
    for case_id in case_ids:
        await stack.wait_status("incoming", case_id, "completed", timeout=240)
        await stack.wait_status("outgoing", case_id, "completed", timeout=240)
    recovery_seconds = time.monotonic() - stopped_at

    report = await wait_for_invariants(stack, case_ids, timeout=120)
    assert report.ok, report.describe()
    # The services are still alive: nothing exited on the lost connections.
    stack._check_alive()
    print(f"postgres stopped 5 s: {len(case_ids)} cases recovered in {recovery_seconds:.1f} s")


# --- R5: one enrolment, one transfer, under concurrent checks ----------------------------------
def _claim_race(url: str, cases: int) -> tuple[list[list[str]], list[str]]:
    """``cases`` concurrent outgoing checks of one enrolment, each on its own connection
    (as two worker replicas would run them), then each winner's transfer-out."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import date
    from types import SimpleNamespace
    from typing import Any, cast

    from contracts.documents import PersonIdentity, TransferRequested
    from domain.regions import load_region_registry
    from harness.agencies import new_person
    from services.common.repository import RegionConnectivity
    from services.outgoing_agency.enrolments import (
        EnrolmentIn,
        EnrolmentInTransfer,
        upsert_enrolment,
    )
    from services.outgoing_agency.records import OutgoingRecordsSql, TransferOutRefused
    from services.outgoing_agency.tables import EnrolmentRow
    from workflows.outgoing.types import CheckRequestInput, TransferOutInput

    engine = make_engine(url)
    migrate.upgrade(engine, "outgoing")
    person = new_person("620800")
    with Session(engine) as session:
        session.add(
            EnrolmentRow(
                id_number=person.id_number,
                name=person.name,
                region="620800",
                scheme="employee",
                status="suspended",
                enrolled_since=date(2016, 3, 1),
                suspended_on=date(2026, 10, 31),
                balance_fen=523_400,
                contribution_months=120,
            )
        )
        session.commit()
    registry = load_region_registry()
    records = OutgoingRecordsSql(engine, RegionConnectivity(engine, registry))

    def request(to_region: str) -> TransferRequested:
        return TransferRequested(
            person=PersonIdentity(id_number=person.id_number, name=person.name),
            from_region="620800",
            to_region=to_region,
            from_scheme="employee",
            to_scheme="employee",
            reason="new job",
            applied_on=date(2026, 12, 1),
            channel="online",
            incoming_agency="agency",
        )

    regions = ["610100", "110000", "350100", "440300"]
    ids = [f"RACE{uuid.uuid4().hex[:8].upper()}" for _ in range(cases)]
    seen: dict[str, int] = {}
    edits: list[bool] = []

    def check(index: int) -> list[str]:
        facts = records.check_request(
            CheckRequestInput(case_id=ids[index], request=request(regions[index % 4]))
        )
        seen[ids[index]] = facts.balance_fen
        return [r.code for r in facts.refusals]

    def edit(index: int) -> None:
        # An operator's correction of the balance at the same moment (R16: it must not
        # land under a claim).
        body = EnrolmentIn(
            id_number=person.id_number,
            name=person.name,
            region="620800",
            scheme="employee",
            status="suspended",
            enrolled_since=date(2016, 3, 1),
            suspended_on=date(2026, 10, 31),
            balance_fen=523_400 + index,
            contribution_months=120,
        )
        try:
            upsert_enrolment(cast(Any, SimpleNamespace(engine=engine)), body)
            edits.append(True)
        except EnrolmentInTransfer:
            edits.append(False)

    with ThreadPoolExecutor(max_workers=cases * 2) as pool:
        checking = [pool.submit(check, i) for i in range(cases)]
        for i in range(cases):
            pool.submit(edit, i)
        outcomes = [f.result() for f in checking]
    transferred: list[str] = []
    for index, case_id in enumerate(ids):
        try:
            records.transfer_out(
                TransferOutInput(
                    case_id=case_id,
                    request=request(regions[index % 4]),
                    balance_action="remit",
                    balance_rule="R18",
                    remittance_id=f"{case_id}-main",
                    transferred_out_on=date(2026, 12, 2),
                    expected_balance_fen=seen[case_id],
                )
            )
            transferred.append(case_id)
        except TransferOutRefused:
            pass
    with Session(engine) as session:
        debits = session.exec(select(LedgerEntry).where(col(LedgerEntry.case_id).in_(ids))).all()
    engine.dispose()
    assert [d.case_id for d in debits] == transferred
    return outcomes, transferred


def test_r5_concurrent_checks_of_one_enrolment_let_exactly_one_case_transfer_it_out(
    new_url: Callable[[str], str],
) -> None:
    """The conditional update that claims the enrolment holds on SQLite and PostgreSQL:
    of eight concurrent cases exactly one passes, the others are refused with R5, and
    only the winner's transfer-out debits (once). Eight balance edits race the checks:
    none lands under the claim, so the winner debits the balance it checked."""
    outcomes, transferred = _claim_race(new_url("outgoing"), cases=8)
    passed = [o for o in outcomes if o == []]
    assert len(passed) == 1, outcomes
    assert all(o == ["ENROLMENT_IN_TRANSFER"] for o in outcomes if o), outcomes
    assert len(transferred) == 1


def test_r5_applications_of_one_person_at_once_open_one_case_on_both_databases(
    new_url: Callable[[str], str],
) -> None:
    """R5 at the incoming agency: eight applications of one person from eight outgoing
    regions reach the check together (threads, as the API's routes run it; or replicas).
    The check and the insert are one transaction serialised per person
    (CaseRepository.open_case), so exactly one case opens on SQLite and on PostgreSQL, and
    a resubmission of the winner's application gets the winner's case."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from datetime import date

    from contracts.documents import PersonIdentity, TransferRequested
    from harness.agencies import new_person
    from services.common.repository import CaseRepository
    from services.common.tables import CaseRow
    from services.incoming_agency.applications import new_case_row

    engine = make_engine(new_url("incoming"))
    migrate.upgrade(engine, "incoming")
    repository = CaseRepository(engine, "incoming")
    person = new_person("620800")
    origins = ["620800", "620100", "110000", "350100", "440100", "440300", "441900", "620800"]

    def candidate(from_region: str) -> CaseRow:
        request = TransferRequested(
            person=PersonIdentity(id_number=person.id_number, name=person.name),
            from_region=from_region,
            to_region="610100",
            from_scheme="employee",
            to_scheme="employee",
            reason="new job",
            applied_on=date(2026, 12, 1),
            channel="online",
            incoming_agency="agency",
        )
        return new_case_row(request, date(2026, 11, 1))

    together = threading.Barrier(len(origins))

    def apply(from_region: str) -> CaseRow | None:
        row = candidate(from_region)
        together.wait(timeout=30)
        return repository.open_case(row)

    with ThreadPoolExecutor(max_workers=len(origins)) as pool:
        answers = list(pool.map(apply, origins))
    person_key = candidate("620800").person_key
    with Session(engine) as session:
        open_rows = session.exec(
            select(CaseRow).where(
                CaseRow.person_key == person_key, col(CaseRow.open_key).is_not(None)
            )
        ).all()
    engine.dispose()
    assert len(open_rows) == 1, [(r.from_region, r.case_id) for r in open_rows]
    winner = open_rows[0]
    opened = [a for a in answers if a is not None]
    # The winner, and (when its region comes twice) its duplicate resubmission: one case.
    assert {a.case_id for a in opened} == {winner.case_id}
    assert all(a is None for a, o in zip(answers, origins, strict=True) if o != winner.from_region)


def test_r5_puts_of_a_new_enrolment_at_once_make_one_record_on_both_databases(
    new_url: Callable[[str], str],
) -> None:
    """R5/R16 at the outgoing agency: eight PUT /v1/enrolments of one new record at once
    (threads of one API, or replicas) leave one record per person and region, never two
    balances that could each be claimed (upsert_enrolment serialises on the record)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from datetime import date
    from types import SimpleNamespace
    from typing import Any, cast

    from harness.agencies import new_person
    from services.outgoing_agency.enrolments import EnrolmentIn, upsert_enrolment
    from services.outgoing_agency.tables import EnrolmentRow

    engine = make_engine(new_url("outgoing"))
    migrate.upgrade(engine, "outgoing")
    service = cast(Any, SimpleNamespace(engine=engine))
    doubled: list[int] = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for person in [new_person("620800") for _ in range(20)]:
            body = EnrolmentIn(
                id_number=person.id_number,
                name=person.name,
                region="620800",
                scheme="employee",
                status="suspended",
                enrolled_since=date(2020, 1, 1),
                suspended_on=date(2026, 11, 1),
                balance_fen=100_000,
            )
            together = threading.Barrier(8)

            def put(
                _: int, body: EnrolmentIn = body, together: threading.Barrier = together
            ) -> None:
                together.wait(timeout=30)
                upsert_enrolment(service, body)

            list(pool.map(put, range(8)))
            with Session(engine) as session:
                rows = session.exec(
                    select(EnrolmentRow).where(
                        EnrolmentRow.id_number == body.id_number, EnrolmentRow.region == "620800"
                    )
                ).all()
            if len(rows) != 1:
                doubled.append(len(rows))
    engine.dispose()
    assert doubled == [], f"{len(doubled)} of 20 persons got several records: {doubled}"
