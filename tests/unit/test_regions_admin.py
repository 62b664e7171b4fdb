"""The region registry's operator command end to end in a temporary directory (R10): a
region is added without a code change, checked, journaled (who, when, what), and read by
the services at start; the incoming agency's acceptance answers a province-wide move
with the rule (R20)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.eligibility import ApplicationFacts, check_application
from domain.regions import DEFAULT_REGIONS_FILE, load_region_registry
from services.common.config import REPO_DIR, Settings
from services.common.keys import load_registry
from services.common.regions_admin import main as regions_admin
from tests.support.inprocess import inprocess_app, kafka_memory

pytestmark = pytest.mark.unit

TIANSHUI = ["--code", "620500", "--name", "天水市", "--name-en", "Tianshui"]


def run(overlay: Path, *args: str, user: str = "ops-wang") -> subprocess.CompletedProcess[str]:
    """The command as an operator types it, in its own process."""
    env = {
        **os.environ,
        "MEDTRANSFER_REGION_OVERLAY_FILE": str(overlay),
        "LOGNAME": user,
        "USER": user,
    }
    return subprocess.run(
        [sys.executable, "-m", "services.common.regions_admin", *args],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lines(overlay: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in overlay.read_text(encoding="utf-8").splitlines()]


def test_r10_operator_adds_a_region_without_a_code_change(tmp_path: Path) -> None:
    overlay = tmp_path / "operator" / "regions.jsonl"
    before = datetime.now(UTC)
    added = run(
        overlay,
        "add",
        *TIANSHUI,
        "--province",
        "62",
        "--connected-since",
        "2023-06-01",
        "--note",
        "new pooling region on the platform",
    )
    assert added.returncode == 0, added.stderr
    assert "added 620500 天水市 (Tianshui, province 62 甘肃省)" in added.stdout

    # The journal: append-only, who added what and when.
    [entry] = lines(overlay)
    assert entry["action"] == "add"
    assert entry["by"] == "ops-wang"  # the login name when --by is not given
    assert entry["note"] == "new pooling region on the platform"
    at = datetime.fromisoformat(entry["at"])
    assert before - timedelta(seconds=1) <= at <= datetime.now(UTC)
    assert entry["region"] == {
        "code": "620500",
        "name": "天水市",
        "name_en": "Tianshui",
        "province_code": "62",
        "connected_since": "2023-06-01",
        "public_key": None,
    }

    # The services read it at start, after the shipped file (which is unchanged).
    registry = load_registry(Settings(region_overlay_file=overlay))
    tianshui = registry.require("620500")
    assert (tianshui.name, tianshui.province_code) == ("天水市", "62")
    assert "620500" not in load_region_registry(DEFAULT_REGIONS_FILE)
    facts = ApplicationFacts(
        id_number="11010519491231002X",
        from_region="620500",
        to_region="350100",
        from_scheme="employee",
        to_scheme="employee",
        applied_on=datetime.now(UTC).date(),
        incoming_enrolled_since=datetime.now(UTC).date() - timedelta(days=30),
        left_outgoing_on=None,
        bank_account=None,
    )
    assert check_application(facts, registry) == []

    # A second operator adds the same region: refused, the journal keeps one line.
    again = run(overlay, "add", *TIANSHUI, "--by", "ops-li")
    assert again.returncode == 2
    assert "already registered (天水市)" in again.stderr
    assert "nothing was added" in again.stderr
    assert len(lines(overlay)) == 1

    listed = run(overlay, "list")
    assert listed.returncode == 0, listed.stderr
    assert "620500 天水市 (Tianshui), connected 2023-06-01; added by ops-wang at" in listed.stdout
    assert "610100 西安市 (Xi'an), connected 2022-08-01; shipped" in listed.stdout


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--code", "62050", "--name", "天水市", "--name-en", "Tianshui"], "six digits"),
        ([*TIANSHUI, "--province", "61"], "province prefix 61 is not the code's first two"),
        (["--code", "620500", "--name", " ", "--name-en", "Tianshui"], "name is empty"),
        (["--code", "620500", "--name", "Tianshui", "--name-en", "Tianshui"], "Chinese name"),
        (["--code", "620500", "--name", "天水市", "--name-en", "天水"], "English name"),
        (["--code", "710100", "--name", "台北市", "--name-en", "Taipei"], "not a registered"),
        (["--code", "620600", "--name", "平凉市", "--name-en", "Pingliang"], "already used"),
        (["--code", "610100", "--name", "西安市", "--name-en", "Xi'an"], "already registered"),
        ([*TIANSHUI, "--by", "ops li"], "--by names the operator"),
        ([*TIANSHUI, "--note", "two\nlines"], "--note is one line"),
    ],
)
def test_r10_invalid_region_is_refused_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], problem: str
) -> None:
    overlay = tmp_path / "regions.jsonl"
    operator = [] if "--by" in args else ["--by", "ops-li"]
    assert regions_admin(["add", *args, *operator, "--overlay", str(overlay)]) == 2
    assert problem in capsys.readouterr().err
    assert not overlay.exists() or overlay.read_text(encoding="utf-8") == ""


def test_r10_a_broken_overlay_stops_the_services_naming_file_and_line(tmp_path: Path) -> None:
    overlay = tmp_path / "regions.jsonl"
    assert regions_admin(["add", *TIANSHUI, "--by", "ops-li", "--overlay", str(overlay)]) == 0
    with overlay.open("a", encoding="utf-8") as file:
        file.write('{"action": "add", "by": "hand-edit"}')  # no newline, no region
    with pytest.raises(ValueError, match=r"regions\.jsonl: line 2"):
        load_registry(Settings(region_overlay_file=overlay))
    # The command refuses to add on top of it, too.
    assert (
        regions_admin(
            [
                "add",
                "--code",
                "620600",
                "--name",
                "嘉峪关市",
                "--name-en",
                "Jiayuguan",
                "--by",
                "ops-li",
                "--overlay",
                str(overlay),
            ]
        )
        == 2
    )


def application(from_region: str, to_region: str) -> dict[str, Any]:
    return {
        "person": {"id_number": "11010519491231002X", "name": "测试参保人"},
        "from_region": from_region,
        "to_region": to_region,
        "from_scheme": "employee",
        "to_scheme": "employee",
        "reason": "new job",
        "incoming_enrolled_since": (datetime.now(UTC).date() - timedelta(days=30)).isoformat(),
    }


async def test_r20_r10_incoming_acceptance_reads_the_added_region_and_the_province_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overlay = tmp_path / "regions.jsonl"
    assert regions_admin(["add", *TIANSHUI, "--by", "ops-li", "--overlay", str(overlay)]) == 0
    agency = inprocess_app("incoming", tmp_path, monkeypatch, region_overlay_file=overlay)
    async with kafka_memory(agency):
        transport = httpx.ASGITransport(app=agency.app)
        headers = {"X-API-Key": "demo-operator"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as client:
            # R20: Xianyang -> Xi'an, one platform for Shaanxi: answered with the rule.
            shaanxi = await client.post("/v1/applications", json=application("610400", "610100"))
            assert shaanxi.status_code == 422, shaanxi.text
            [reason] = shaanxi.json()["reasons"]
            assert (reason["code"], reason["rule"]) == ("PROVINCE_WIDE_PLATFORM", "R20")
            assert reason["message_zh"].startswith("两地同属一个省份")
            assert agency.temporal.actions == 0  # no case, no handshake
            # R10: the region the operator added is accepted like a shipped one.
            tianshui = await client.post("/v1/applications", json=application("620500", "350100"))
            assert tianshui.status_code == 201, tianshui.text
    assert len(agency.temporal.starts) == 1
    agency.service.engine.dispose()
