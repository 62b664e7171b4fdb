"""Regional policy and the working-day calendar as data, in force without a redeploy;
every decision explained with its rule and policy version (issue: policy as data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from contracts.documents import BalanceRemitted
from domain.calendar import WorkingDayCalendar
from domain.regions import load_region_registry
from harness.agencies import PEER_REGION, AgencyStack
from harness.servers import REPO_DIR
from services.common.calendar_admin import main as calendar_admin
from services.common.config import Settings
from services.common.policy_context import PolicyContext
from tests.integration.test_exceptions import sheet_document
from tests.support.agencies import PeerAgency, today
from workflows.types import LoadContextInput

pytestmark = pytest.mark.integration


def synthetic_year(year: int) -> dict:
    """Test data shaped like an official notice (not one): New Year and a spring break."""
    holidays = [date(year, 1, 1), date(year, 2, 8), date(year, 2, 9), date(year, 2, 10)]
    holidays = [d for d in holidays if d.weekday() < 5]
    return {
        "year": year,
        "version": f"{year}-test",
        "source": "test data, not official",
        "holidays": [d.isoformat() for d in holidays],
        "makeup_workdays": [date(year, 2, 6).isoformat()]
        if date(year, 2, 6).weekday() >= 5
        else [],
    }


def test_calendar_load_command_validates_and_installs(tmp_path: Path) -> None:
    calendar_dir = tmp_path / "calendar"
    good = tmp_path / "2027.json"
    good.write_text(json.dumps(synthetic_year(2027)))
    assert calendar_admin(["load", str(good), "--calendar-dir", str(calendar_dir)]) == 0
    assert (calendar_dir / "2027.json").exists()

    bad = tmp_path / "incoming" / "2028.json"
    bad.parent.mkdir()
    data = synthetic_year(2028)
    data["holidays"].append("2028-01-08")  # a Saturday cannot be a weekday holiday
    bad.write_text(json.dumps(data))
    assert calendar_admin(["load", str(bad), "--calendar-dir", str(calendar_dir)]) == 2
    assert not (calendar_dir / "2028.json").exists()


def test_new_year_calendar_is_used_without_a_redeploy(tmp_path: Path) -> None:
    calendar_dir = tmp_path / "calendar"
    calendar_dir.mkdir()
    context = PolicyContext(Settings(calendar_dir=calendar_dir), load_region_registry())
    request = LoadContextInput(region="610100", start=date(2026, 12, 24), counterpart="620800")

    before = WorkingDayCalendar.from_json(context.load(request).calendar)
    assert before.add_working_days(date(2026, 12, 24), 15).fallback_years == (2027,)

    source = tmp_path / "2027.json"
    source.write_text(json.dumps(synthetic_year(2027)))
    assert calendar_admin(["load", str(source), "--calendar-dir", str(calendar_dir)]) == 0
    after = WorkingDayCalendar.from_json(context.load(request).calendar)  # same process
    deadline = after.add_working_days(date(2026, 12, 24), 15)
    assert deadline.fallback_years == ()
    assert not after.is_working_day(date(2027, 1, 1))


def test_invalid_policy_data_stops_the_service_with_file_line_and_rule(tmp_path: Path) -> None:
    policy = tmp_path / "policies.jsonl"
    lines = (REPO_DIR / "data" / "policy" / "policies.jsonl").read_text().splitlines()
    lines.append(
        json.dumps(
            {
                "scope": "region",
                "code": "610100",
                "version": "610100-bad",
                "effective_from": "2026-01-01",
                "transfer_out_days": 12,
            }
        )
    )
    policy.write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        "MEDTRANSFER_POLICY_FILE": str(policy),
        "MEDTRANSFER_DATA_DIR": str(tmp_path / "data"),
        "MEDTRANSFER_KEYS_DIR": str(tmp_path / "keys"),
        "MEDTRANSFER_KEY_REGISTRY_FILE": str(tmp_path / "trust" / "registry.json"),
        "MEDTRANSFER_LOCAL_DEMO": "true",
    }
    result = subprocess.run(
        [sys.executable, "-m", "services.incoming_agency", "worker"],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert f"line {len(lines)}" in result.stderr
    assert "(R12)" in result.stderr
    assert "Traceback" not in result.stderr


async def test_r27_waiting_period_and_every_decision_explained(agencies: AgencyStack) -> None:
    person = agencies.person("620800")
    # Contributions ended in March; enrolled in Xi'an (waiting period 6 months) in November.
    await agencies.enrol(person, suspended_on="2026-03-31", balance_fen=80_000)
    case_id = await agencies.submit_ok(
        agencies.application(person, "610100", incoming_enrolled_since="2026-11-01")
    )
    case = await agencies.wait_status("incoming", case_id, "completed")

    continuity = case["continuity"]
    assert continuity["interruption_months"] > 3
    assert continuity["back_payment_allowed"] is False
    assert continuity["waiting_period_months"] == 6
    assert continuity["waiting_period_ends_on"] == "2027-04-30"  # its last day
    assert continuity["total_contribution_months"] == 120
    rules = {d["rule"] for d in case["decisions"]}
    assert {"R12", "R13", "R14", "R24", "R27"} <= rules
    assert "R28" not in rules  # R28 figures only where back-payment is allowed
    for decision in case["decisions"]:
        assert decision["policy_version"]
        assert decision["explanation_en"]
        assert decision["explanation_zh"]
    assert "610100-2025.1" in case["policy_version"]
    outgoing = await agencies.case("outgoing", case_id)
    assert "R18" in {d["rule"] for d in outgoing["decisions"]}


async def test_policy_change_applies_to_new_cases_only(
    agencies: AgencyStack, peer: PeerAgency
) -> None:
    # Case A starts under the table as it is: Xi'an transfer-in within 5 working days.
    person_a = agencies.person(PEER_REGION)
    case_a = await agencies.submit_ok(agencies.application(person_a, "610100"))
    await peer.expect(case_a, "TransferRequested")

    # Xi'an publishes a faster transfer-in (3 working days), effective today.
    version = f"610100-{today():%Y%m%d}-test"
    with agencies.policy_file.open("a") as policy:
        policy.write(
            json.dumps(
                {
                    "scope": "region",
                    "code": "610100",
                    "version": version,
                    "effective_from": today().isoformat(),
                    "source": "project default",
                    "transfer_in_days": 3,
                    "waiting_period_months": 6,
                }
            )
            + "\n"
        )

    person_b = agencies.person("620800")
    await agencies.enrol(person_b)
    case_b = await agencies.submit_ok(agencies.application(person_b, "610100"))
    b = await agencies.wait_status("incoming", case_b, "completed")
    assert version in b["policy_version"]

    # Case A's sheet arrives after the change: A still counts 5 days, under its version.
    await peer.send(
        peer.envelope(
            sheet_document(person_a.id_number, person_a.name, 10_000), case_a, "sheet", "610100"
        )
    )
    await peer.send(
        peer.envelope(
            BalanceRemitted(remittance_id=f"{case_a}-main", amount_fen=10_000, remitted_on=today()),
            case_a,
            "remit",
            "610100",
        )
    )
    a = await agencies.wait_status("incoming", case_a, "completed")
    assert version not in a["policy_version"]
    r13_a = next(d for d in a["decisions"] if d["rule"] == "R13")
    r13_b = next(d for d in b["decisions"] if d["rule"] == "R13")
    assert "5 working days" in r13_a["explanation_en"]
    assert "3 working days" in r13_b["explanation_en"]
    # Both sheets arrived today: 5 working days for A, 3 for B.
    assert a["deadlines"]["transfer_in_due"] > b["deadlines"]["transfer_in_due"]
