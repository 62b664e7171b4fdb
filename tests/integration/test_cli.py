"""The CLI as an operator runs it (``python -m services.cli`` in its own process) against
the real agency services: a bulk import of applications, then the cases it opened."""

from __future__ import annotations

import asyncio
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from domain.identity import mask_id
from harness.agencies import AgencyStack, Person
from harness.servers import REPO_DIR

pytestmark = pytest.mark.integration

COLUMNS = (
    "id_number,name,from_region,to_region,from_scheme,to_scheme,reason,"
    "incoming_enrolled_since,left_outgoing_on,resettled_retiree,bank_name,account_number,"
    "account_holder"
)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


async def cli(agencies: AgencyStack, *args: str, timeout: float = 120) -> Run:
    env = {
        **agencies.env,
        "MEDTRANSFER_INCOMING_URL": agencies.incoming_url,
        "MEDTRANSFER_OUTGOING_URL": agencies.outgoing_url,
        "MEDTRANSFER_API_KEY": "demo-operator",
        "COLUMNS": "250",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *args,
        cwd=REPO_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


def row(person: Person, id_number: str, to_region: str) -> str:
    return (
        f"{id_number},{person.name},{person.region},{to_region},employee,employee,"
        "employer relocation,2026-11-01,,false,,,"
    )


def wrong_check_digit(id_number: str) -> str:
    return id_number[:17] + ("0" if id_number[17] != "0" else "1")


async def test_bulk_import_then_the_cases_are_listed(agencies: AgencyStack, tmp_path: Path) -> None:
    staff = [agencies.person("620800"), agencies.person("441900")]
    for person in staff:
        await agencies.enrol(person)
    typo = agencies.person("620800")
    bad_id = wrong_check_digit(typo.id_number)
    source = tmp_path / "staff.csv"
    source.write_text(
        "\n".join(
            [
                COLUMNS,
                row(staff[0], staff[0].id_number, "610100"),
                row(typo, bad_id, "610100"),
                row(staff[1], staff[1].id_number, "610100"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    report = tmp_path / "report.csv"

    result = await cli(agencies, "import-applications", str(source), "--report", str(report))

    assert result.returncode == 1, result.output
    assert "3 row(s): 2 created, 1 refused" in result.stdout, result.output
    rows = list(csv.DictReader(report.read_text(encoding="utf-8-sig").splitlines()))
    assert [(r["row"], r["outcome"]) for r in rows] == [
        ("2", "created"),
        ("3", "refused"),
        ("4", "created"),
    ]
    assert "INVALID_ID_NUMBER" in rows[1]["codes"]
    assert [r["person"] for r in rows] == [
        mask_id(staff[0].id_number),
        mask_id(bad_id),
        mask_id(staff[1].id_number),
    ]
    case_ids = [rows[0]["case_id"], rows[2]["case_id"]]
    assert all(case_ids)
    for person, id_number in ((staff[0], staff[0].id_number), (typo, bad_id), (staff[1], None)):
        for text in (result.output, report.read_text(encoding="utf-8-sig")):
            assert person.id_number not in text
            assert person.name not in text
            if id_number:
                assert id_number not in text

    listed = await cli(agencies, "cases", "list", "--region", "610100", "--limit", "500")
    assert listed.returncode == 0, listed.output
    for case_id in case_ids:
        line = next((x for x in listed.stdout.splitlines() if case_id in x), None)
        assert line is not None, listed.output
        assert "→ 610100" in line
    assert mask_id(staff[0].id_number) in listed.stdout

    shown = await cli(agencies, "cases", "show", case_ids[0])
    assert shown.returncode == 0, shown.output
    assert case_ids[0] in shown.stdout
    assert mask_id(staff[0].id_number) in shown.stdout
    assert staff[0].id_number not in shown.output


async def test_an_agency_that_is_not_there(agencies: AgencyStack) -> None:
    result = await cli(
        agencies, "--incoming-url", "http://127.0.0.1:9", "--retries", "0", "cases", "list"
    )
    assert result.returncode == 1
    assert "cannot reach the incoming agency" in result.stderr
    assert "Traceback" not in result.output


async def test_a_key_the_agency_does_not_know(agencies: AgencyStack) -> None:
    result = await cli(agencies, "--api-key", "not-a-key", "cases", "list")
    assert result.returncode == 1
    assert "answered 401" in result.stderr, result.output
    assert "MEDTRANSFER_API_KEY" in result.stderr
    assert "not-a-key" not in result.output
