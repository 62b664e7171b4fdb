"""Item 13 at the service: the policy versions a deployment loaded are recorded in its data
directory, and a later load (a restart or a reload of the changed file) that edits a
version already in force is refused with the file, the line and the rule."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from domain.policy import PolicyDataError, load_policy_table
from domain.regions import load_region_registry
from services.common.config import Settings
from services.common.policy_context import PolicyContext
from services.common.policy_record import (
    RECORD_FILE_NAME,
    PolicyVersionRecord,
    read_record,
)

pytestmark = pytest.mark.unit

D = date.fromisoformat
NATIONAL: dict[str, Any] = {
    "scope": "national",
    "code": "CN",
    "version": "national-t1",
    "effective_from": "2024-01-01",
    "source": "project default",
    "transfer_out_days": 10,
    "transfer_in_days": 5,
    "reminder_before_days": 2,
    "soft_refusal_window_days": 5,
    "not_connected_escalation_days": 10,
    "waiting_period_months": 0,
    "intra_province_balance": "remit",
    "employee_to_resident_balance": "pay_to_bank",
    "back_payment": "allowed",
    "late_fee_per_day_per_10000": 5,
}
XIAN: dict[str, Any] = {
    "scope": "region",
    "code": "610100",
    "version": "610100-t1",
    "effective_from": "2025-01-01",
    "source": "project default",
    "waiting_period_months": 6,
}


def write(path: Path, *lines: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_r14_restart_with_an_edited_version_in_force_is_refused(tmp_path: Path) -> None:
    registry = load_region_registry()
    policy = write(tmp_path / "policies.jsonl", NATIONAL, XIAN)
    record = tmp_path / "data" / RECORD_FILE_NAME
    PolicyVersionRecord(record).accept(load_policy_table(policy, registry), D("2026-12-02"))
    assert set(read_record(record)) == {"national-t1", "610100-t1"}

    write(policy, NATIONAL, {**XIAN, "waiting_period_months": 2})
    with pytest.raises(PolicyDataError) as info:  # a new process: only the file remembers
        PolicyVersionRecord(record).accept(load_policy_table(policy, registry), D("2026-12-03"))
    message = str(info.value)
    assert message.startswith(f"{policy} line 2: version 610100-t1 has been in force")
    assert message.endswith("(R14)")
    assert str(record) in message


def test_r14_the_service_refuses_to_start_and_keeps_the_table_on_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy = write(tmp_path / "policies.jsonl", NATIONAL, XIAN)
    settings = Settings(policy_file=policy, data_dir=tmp_path / "data")
    registry = load_region_registry()
    context = PolicyContext(settings, registry)
    assert (tmp_path / "data" / RECORD_FILE_NAME).exists()
    assert context.table().resolve("610100", D("2026-12-01")).waiting_period_months == 6

    # Edited while running: refused, the last valid table stays in force.
    write(policy, NATIONAL, {**XIAN, "waiting_period_months": 2})
    with caplog.at_level(logging.ERROR, logger="medtransfer.platform"):
        table = context.table()
    assert table.resolve("610100", D("2026-12-01")).waiting_period_months == 6
    assert "policy table change refused" in caplog.text
    assert "610100-t1 has been in force" in caplog.text

    # And at the next start the service stops, naming the file, the line and the rule.
    with pytest.raises(PolicyDataError, match=r"policies\.jsonl line 2: .*\(R14\)$"):
        PolicyContext(settings, registry)


def test_r14_a_new_version_is_accepted_and_recorded(tmp_path: Path) -> None:
    policy = write(tmp_path / "policies.jsonl", NATIONAL, XIAN)
    settings = Settings(policy_file=policy, data_dir=tmp_path / "data")
    context = PolicyContext(settings, load_region_registry())
    newer = {
        **XIAN,
        "version": "610100-t2",
        "effective_from": "2026-06-01",
        "waiting_period_months": 4,
    }
    write(policy, NATIONAL, XIAN, newer)
    table = context.table()
    assert table.resolve("610100", D("2026-12-01")).waiting_period_months == 4
    assert "610100-t2" in read_record(tmp_path / "data" / RECORD_FILE_NAME)


def test_r14_an_unwritable_record_still_refuses_edits_in_the_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = load_region_registry()
    policy = write(tmp_path / "policies.jsonl", NATIONAL, XIAN)
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the data directory should be")
    record = PolicyVersionRecord(blocked / RECORD_FILE_NAME)
    with caplog.at_level(logging.ERROR, logger="medtransfer.policy"):
        record.accept(load_policy_table(policy, registry), D("2026-12-02"))
    assert "not saved" in caplog.text
    write(policy, NATIONAL, {**XIAN, "waiting_period_months": 2})
    with pytest.raises(PolicyDataError, match="has been in force"):
        record.accept(load_policy_table(policy, registry), D("2026-12-02"))


def test_r14_a_corrupt_record_stops_the_load(tmp_path: Path) -> None:
    record = tmp_path / RECORD_FILE_NAME
    record.write_text("{not json", encoding="utf-8")
    with pytest.raises(PolicyDataError, match="cannot read the record of loaded policy versions"):
        PolicyVersionRecord(record)
