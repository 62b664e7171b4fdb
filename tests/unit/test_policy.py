from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.balance import decide_balance
from domain.limits import CaseLimits
from domain.policy import (
    DEFAULT_POLICY_FILE,
    SETTINGS,
    LoadedVersion,
    PolicyDataError,
    PolicySource,
    PolicyTable,
    ResolvedPolicy,
    check_in_force_unchanged,
    load_policy_table,
    parse_policy_table,
)
from domain.regions import RegionRegistry, load_region_registry

pytestmark = pytest.mark.unit

D = date.fromisoformat

NATIONAL: dict[str, Any] = {
    "scope": "national",
    "code": "CN",
    "version": "national-2024.1",
    "effective_from": "2024-01-01",
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
    "source": "project default",
}
CIRCULAR = {
    "title": "关于调整转移接续经办时限的通知",
    "number": "示例〔2026〕2号",
    "date": "2026-05-20",
}


def region_line(code: str, version: str, effective_from: str, **settings: Any) -> dict[str, Any]:
    return {
        "scope": "region",
        "code": code,
        "version": version,
        "effective_from": effective_from,
        "source": "project default",
        **settings,
    }


def province_line(code: str, version: str, effective_from: str, **settings: Any) -> dict[str, Any]:
    return {
        "scope": "province",
        "code": code,
        "version": version,
        "effective_from": effective_from,
        "source": "project default",
        **settings,
    }


def write(tmp_path: Path, *lines: dict[str, Any] | str) -> Path:
    path = tmp_path / "policies.jsonl"
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def refused(
    tmp_path: Path, registry: RegionRegistry, *lines: dict[str, Any] | str
) -> PolicyDataError:
    path = write(tmp_path, *lines)
    with pytest.raises(PolicyDataError) as info:
        load_policy_table(path, registry)
    assert str(path) in str(info.value)
    return info.value


def assert_names(error: PolicyDataError, line: int, rule: str, field: str | None) -> None:
    message = str(error)
    assert f" line {line}: " in message
    assert message.endswith(f"({rule})")
    assert (error.line, error.rule) == (line, rule)
    if field is not None:
        assert field in message
        assert error.field == field


# --- the shipped file ----------------------------------------------------------------


def test_r14_shipped_policy_file_loads_against_the_region_registry() -> None:
    table = load_policy_table(DEFAULT_POLICY_FILE, load_region_registry())
    assert len(table) >= 4
    national = table.resolve("620800", D("2024-01-01"))
    assert national.versions == ("national-2024.1",)
    assert national.limits() == CaseLimits()


def test_r14_shipped_national_line_defines_every_setting() -> None:
    table = load_policy_table(DEFAULT_POLICY_FILE, load_region_registry())
    national = [v for v in table.versions if v.scope == "national"]
    assert national
    national_settings = {name for name, spec in SETTINGS.items() if spec.national}
    assert all(set(v.settings) == national_settings for v in national)


def test_r20_shipped_guangdong_keeps_balance_usable(registry: RegionRegistry) -> None:
    table = load_policy_table(DEFAULT_POLICY_FILE, registry)
    policy = table.resolve("441900", D("2026-03-02"))
    assert policy.intra_province_balance == "keep_usable"
    assert policy.version_label == "national-2024.1+44-2024.1"
    decision = decide_balance(
        from_region="441900",
        to_region="440300",
        from_scheme="employee",
        to_scheme="employee",
        balance_fen=10000,
        resettled_retiree=False,
        incoming_connected=True,
        has_bank_account=True,
        policy=policy.balance_policy(),
    )
    assert (decision.action, decision.rule) == ("keep_usable", "R20")


def test_r20_other_provinces_remit_by_default(registry: RegionRegistry) -> None:
    policy = load_policy_table(DEFAULT_POLICY_FILE, registry).resolve("620800", D("2026-03-02"))
    decision = decide_balance(
        from_region="620100",
        to_region="620800",
        from_scheme="employee",
        to_scheme="employee",
        balance_fen=10000,
        resettled_retiree=False,
        incoming_connected=True,
        has_bank_account=True,
        policy=policy.balance_policy(),
    )
    assert (decision.action, decision.rule) == ("remit", "R20")


def test_r12_r13_r27_shipped_shenzhen_and_xian(registry: RegionRegistry) -> None:
    table = load_policy_table(DEFAULT_POLICY_FILE, registry)
    shenzhen = table.resolve("440300", D("2026-03-02"))
    assert (shenzhen.transfer_out_days, shenzhen.transfer_in_days) == (7, 3)
    assert shenzhen.waiting_period_months == 3
    assert shenzhen.intra_province_balance == "keep_usable"  # from the province line
    assert shenzhen.version_label == "national-2024.1+44-2024.1+440300-2024.1"
    xian = table.resolve("610100", D("2026-03-02"))
    assert xian.waiting_period_months == 6
    assert xian.version_label == "national-2024.1+610100-2025.1"


def test_r14_second_version_applies_from_its_date_only(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    path = write(
        tmp_path,
        NATIONAL,
        region_line("440300", "440300-2024.1", "2024-07-01", transfer_out_days=7),
        region_line(
            "440300",
            "440300-2027.1",
            "2027-01-01",
            transfer_out_days=5,
            transfer_in_days=2,
            reminder_before_days=1,
        ),
    )
    table = load_policy_table(path, registry)
    before = table.resolve("440300", D("2026-12-31"))
    after = table.resolve("440300", D("2027-01-01"))
    assert before.versions[-1] == "440300-2024.1"
    assert after.versions[-1] == "440300-2027.1"
    assert (before.transfer_out_days, after.transfer_out_days) == (7, 5)


def test_r14_shipped_file_has_no_future_lines() -> None:
    # Item 13: the shipped data holds no fictitious future versions.
    table = load_policy_table(DEFAULT_POLICY_FILE, load_region_registry())
    assert [v.version for v in table.versions if v.effective_from > date.today()] == []


def test_r14_shipped_lines_each_name_their_source() -> None:
    table = load_policy_table(DEFAULT_POLICY_FILE, load_region_registry())
    lines = [
        json.loads(line)
        for line in DEFAULT_POLICY_FILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(lines) == len(table)
    assert all("source" in line for line in lines)
    # The shipped figures are this project's defaults, and say so.
    assert all(v.source == PolicySource() for v in table.versions)


# --- resolution ----------------------------------------------------------------------


def test_r14_resolution_precedence_national_then_province_then_region(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    path = write(
        tmp_path,
        NATIONAL,
        province_line("44", "44-2024.1", "2024-01-01", transfer_out_days=9, transfer_in_days=4),
        region_line("440300", "440300-2024.1", "2024-01-01", transfer_out_days=8),
    )
    table = load_policy_table(path, registry)
    region = table.resolve("440300", D("2025-01-01"))
    assert region.transfer_out_days == 8  # region over province
    assert region.transfer_in_days == 4  # province over national
    assert region.soft_refusal_window_days == 5  # national
    assert region.versions == ("national-2024.1", "44-2024.1", "440300-2024.1")
    other_city = table.resolve("441900", D("2025-01-01"))
    assert (other_city.transfer_out_days, other_city.transfer_in_days) == (9, 4)
    other_province = table.resolve("620800", D("2025-01-01"))
    assert (other_province.transfer_out_days, other_province.transfer_in_days) == (10, 5)


def test_r14_later_version_does_not_apply_before_its_date(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    path = write(
        tmp_path,
        NATIONAL,
        {
            **NATIONAL,
            "version": "national-2026.1",
            "effective_from": "2026-07-01",
            "transfer_in_days": 4,
        },
        region_line("610100", "610100-2026.1", "2026-07-01", waiting_period_months=6),
    )
    table = load_policy_table(path, registry)
    before = table.resolve("610100", D("2026-06-30"))
    after = table.resolve("610100", D("2026-07-01"))
    assert (before.transfer_in_days, before.waiting_period_months) == (5, 0)
    assert before.versions == ("national-2024.1",)
    assert (after.transfer_in_days, after.waiting_period_months) == (4, 6)
    assert after.version_label == "national-2026.1+610100-2026.1"


def test_r14_new_version_replaces_the_previous_one_of_its_scope(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    path = write(
        tmp_path,
        NATIONAL,
        region_line("610100", "610100-2024.1", "2024-01-01", waiting_period_months=6),
        region_line("610100", "610100-2025.1", "2025-01-01", transfer_in_days=3),
    )
    policy = load_policy_table(path, registry).resolve("610100", D("2025-06-01"))
    assert (policy.transfer_in_days, policy.waiting_period_months) == (3, 0)


def test_r14_no_national_version_in_force_is_an_error(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    table = load_policy_table(write(tmp_path, NATIONAL), registry)
    with pytest.raises(PolicyDataError, match=r"no national policy version in force on 2023-12-31"):
        table.resolve("620800", D("2023-12-31"))


def test_r14_resolve_refuses_a_malformed_region_code(registry: RegionRegistry) -> None:
    table = load_policy_table(DEFAULT_POLICY_FILE, registry)
    with pytest.raises(ValueError, match="six digits"):
        table.resolve("4403", D("2026-01-01"))


def test_r14_resolved_policy_json_round_trip(registry: RegionRegistry) -> None:
    policy = load_policy_table(DEFAULT_POLICY_FILE, registry).resolve("440300", D("2026-03-02"))
    data = json.loads(json.dumps(policy.to_json()))
    assert ResolvedPolicy.from_json(data) == policy


def test_r14_resolved_policy_from_json_refuses_unknown_keys(registry: RegionRegistry) -> None:
    policy = load_policy_table(DEFAULT_POLICY_FILE, registry).resolve("440300", D("2026-03-02"))
    with pytest.raises(PolicyDataError):
        ResolvedPolicy.from_json({**policy.to_json(), "extra": 1})


def test_r12_r13_r23_limits_adapter(tmp_path: Path, registry: RegionRegistry) -> None:
    path = write(
        tmp_path,
        NATIONAL,
        region_line(
            "440300",
            "440300-2025.1",
            "2025-01-01",
            transfer_out_days=5,
            transfer_in_days=2,
            reminder_before_days=1,
        ),
    )
    limits = load_policy_table(path, registry).resolve("440300", D("2025-02-01")).limits()
    limits.validate()
    assert limits == CaseLimits(
        transfer_out_days=5,
        transfer_in_days=2,
        reminder_before_days=1,
        soft_refusal_window_days=5,
        not_connected_escalation_days=10,
    )


def test_r22_balance_policy_adapter(tmp_path: Path, registry: RegionRegistry) -> None:
    path = write(
        tmp_path,
        NATIONAL,
        region_line(
            "620800", "620800-2024.1", "2024-01-01", employee_to_resident_balance="keep_usable"
        ),
    )
    balance = load_policy_table(path, registry).resolve("620800", D("2025-01-01")).balance_policy()
    assert balance.employee_to_resident == "keep_usable"
    assert balance.intra_province_action("62") == "remit"


def test_r14_comments_and_blank_lines_are_ignored(tmp_path: Path, registry: RegionRegistry) -> None:
    path = write(tmp_path, "# a comment", "", NATIONAL, "   ", "# another")
    assert len(load_policy_table(path, registry)) == 1


@given(
    transfer_out=st.integers(min_value=2, max_value=10),
    transfer_in=st.integers(min_value=1, max_value=5),
    waiting=st.integers(min_value=0, max_value=6),
    data=st.data(),
)
def test_r12_r13_r14_r27_any_value_in_range_resolves_to_valid_limits(
    transfer_out: int, transfer_in: int, waiting: int, data: st.DataObject
) -> None:
    reminder = data.draw(st.integers(min_value=1, max_value=transfer_out - 1))
    registry = load_region_registry()
    text = "\n".join(
        json.dumps(line)
        for line in (
            NATIONAL,
            region_line(
                "350100",
                "350100-2025.1",
                "2025-01-01",
                transfer_out_days=transfer_out,
                transfer_in_days=transfer_in,
                reminder_before_days=reminder,
                waiting_period_months=waiting,
            ),
        )
    )
    policy = parse_policy_table(text, registry).resolve("350100", D("2025-01-01"))
    policy.limits().validate()
    assert policy.limits().total_days <= 15
    assert policy.waiting_period_months == waiting


# --- refused data: each names the file, the line, the field and the rule -------------


def test_r12_transfer_out_above_national_maximum_refused(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    error = refused(
        tmp_path,
        registry,
        "# header",
        NATIONAL,
        region_line("440300", "440300-2024.1", "2024-01-01", transfer_out_days=12),
    )
    assert_names(error, 3, "R12", "transfer_out_days")
    assert "transfer_out_days 12 exceeds the national maximum of 10 (R12)" in str(error)


def test_r13_r14_transfer_in_above_national_maximum_refused(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        province_line("44", "44-2024.1", "2024-01-01", transfer_in_days=6),
    )
    assert_names(error, 2, "R13", "transfer_in_days")
    assert "national maximum of 5" in str(error)


def test_r12_r14_national_line_above_maximum_refused(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    error = refused(tmp_path, registry, {**NATIONAL, "transfer_out_days": 11})
    assert_names(error, 1, "R12", "transfer_out_days")


def test_r12_limit_below_one_refused(tmp_path: Path, registry: RegionRegistry) -> None:
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        region_line("440300", "440300-2024.1", "2024-01-01", transfer_out_days=0),
    )
    assert_names(error, 2, "R12", "transfer_out_days")


def test_r12_reminder_not_before_transfer_out_deadline_refused(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        region_line(
            "440300", "440300-2024.1", "2024-01-01", transfer_out_days=3, reminder_before_days=3
        ),
    )
    assert_names(error, 2, "R12", "reminder_before_days")


def test_r12_r14_combination_with_inherited_reminder_refused(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    # The line is fine alone; with the national reminder of 2 days it is not.
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        region_line("440300", "440300-2025.1", "2025-01-01", transfer_out_days=2),
    )
    assert_names(error, 2, "R12", "reminder_before_days")
    assert "2025-01-01" in str(error)


def test_r27_waiting_period_of_seven_months_refused(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        region_line("610100", "610100-2025.1", "2025-01-01", waiting_period_months=7),
    )
    assert_names(error, 2, "R27", "waiting_period_months")
    assert "exceeds the national maximum of 6" in str(error)


def test_r28_late_fee_above_national_rate_refused(tmp_path: Path, registry: RegionRegistry) -> None:
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        region_line("610100", "610100-2025.1", "2025-01-01", late_fee_per_day_per_10000=6),
    )
    assert_names(error, 2, "R28", "late_fee_per_day_per_10000")


def test_r14_unknown_region_code_refused(tmp_path: Path, registry: RegionRegistry) -> None:
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        region_line("999999", "999999-2025.1", "2025-01-01", transfer_in_days=3),
    )
    assert_names(error, 2, "R14", "code")
    assert "999999" in str(error)
    assert "unknown pooling region" in str(error)


def test_r20_unknown_province_code_refused(tmp_path: Path, registry: RegionRegistry) -> None:
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        province_line("99", "99-2025.1", "2025-01-01", intra_province_balance="keep_usable"),
    )
    assert_names(error, 2, "R20", "code")
    assert "unknown province" in str(error)


def test_r14_overlapping_versions_refused(tmp_path: Path, registry: RegionRegistry) -> None:
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        region_line("440300", "440300-2025.1", "2025-01-01", transfer_in_days=3),
        region_line("440300", "440300-2025.2", "2025-01-01", transfer_in_days=4),
    )
    assert_names(error, 3, "R14", "effective_from")
    assert "line 2" in str(error)  # points at the other version too


def test_r14_duplicate_version_string_refused(tmp_path: Path, registry: RegionRegistry) -> None:
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        region_line("440300", "v-2025.1", "2025-01-01", transfer_in_days=3),
        region_line("610100", "v-2025.1", "2025-01-01", waiting_period_months=2),
    )
    assert_names(error, 3, "R14", "version")
    assert "already used on line 2" in str(error)


def test_r14_unknown_field_refused(tmp_path: Path, registry: RegionRegistry) -> None:
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        region_line("440300", "440300-2025.1", "2025-01-01", transfer_out_dayz=7),
    )
    assert_names(error, 2, "R14", "transfer_out_dayz")
    assert "unknown field" in str(error)


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("transfer_out_days", "7", "R12"),
        ("transfer_in_days", True, "R13"),
        ("waiting_period_months", 2.0, "R27"),
        ("back_payment_base_fen", None, "R28"),
        ("employee_to_resident_balance", 1, "R22"),
    ],
)
def test_wrong_type_refused_names_the_rule(
    tmp_path: Path, registry: RegionRegistry, field: str, value: object, rule: str
) -> None:
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        region_line("440300", "440300-2025.1", "2025-01-01", **{field: value}),
    )
    assert_names(error, 2, rule, field)
    assert "must be" in str(error)


def test_r22_unknown_choice_refused(tmp_path: Path, registry: RegionRegistry) -> None:
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        region_line("440300", "440300-2025.1", "2025-01-01", employee_to_resident_balance="remit"),
    )
    assert_names(error, 2, "R22", "employee_to_resident_balance")


def test_r20_intra_province_balance_on_region_line_refused(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        region_line("440300", "440300-2025.1", "2025-01-01", intra_province_balance="remit"),
    )
    assert_names(error, 2, "R20", "intra_province_balance")


def test_r14_malformed_json_refused(tmp_path: Path, registry: RegionRegistry) -> None:
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        "",
        '{"scope": "region", "code": "440300",',
    )
    assert_names(error, 3, "R14", None)
    assert "malformed JSON" in str(error)


def test_r14_line_not_an_object_refused(tmp_path: Path, registry: RegionRegistry) -> None:
    error = refused(tmp_path, registry, NATIONAL, "[1, 2]")
    assert_names(error, 2, "R14", None)


def test_r14_national_line_missing_a_setting_refused(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    national = {k: v for k, v in NATIONAL.items() if k != "late_fee_per_day_per_10000"}
    error = refused(tmp_path, registry, national)
    assert_names(error, 1, "R14", "late_fee_per_day_per_10000")
    assert "every national setting" in str(error)


def test_r14_missing_required_field_refused(tmp_path: Path, registry: RegionRegistry) -> None:
    line = region_line("440300", "440300-2025.1", "2025-01-01", transfer_in_days=3)
    del line["effective_from"]
    error = refused(tmp_path, registry, NATIONAL, line)
    assert_names(error, 2, "R14", "effective_from")


@pytest.mark.parametrize("effective_from", ["2025-02-30", "1.1.2025", 20250101])
def test_r14_bad_effective_from_refused(
    tmp_path: Path, registry: RegionRegistry, effective_from: object
) -> None:
    line = region_line("440300", "440300-2025.1", "2025-01-01", transfer_in_days=3)
    line["effective_from"] = effective_from
    error = refused(tmp_path, registry, NATIONAL, line)
    assert_names(error, 2, "R14", "effective_from")


@pytest.mark.parametrize(
    ("scope", "code"),
    [("national", "44"), ("city", "440300"), ("province", "440"), ("region", "4403")],
)
def test_r14_scope_and_code_must_fit(
    tmp_path: Path, registry: RegionRegistry, scope: str, code: str
) -> None:
    line = {"scope": scope, "code": code, "version": "x-1", "effective_from": "2025-01-01"}
    error = refused(tmp_path, registry, NATIONAL, line)
    assert error.line == 2
    assert error.field in ("scope", "code")


def test_r14_version_with_plus_refused(tmp_path: Path, registry: RegionRegistry) -> None:
    error = refused(
        tmp_path,
        registry,
        NATIONAL,
        region_line("440300", "440300+2025", "2025-01-01", transfer_in_days=3),
    )
    assert_names(error, 2, "R14", "version")


def test_r14_file_without_national_line_refused(tmp_path: Path, registry: RegionRegistry) -> None:
    error = refused(
        tmp_path, registry, region_line("440300", "440300-2025.1", "2025-01-01", transfer_in_days=3)
    )
    assert error.line is None
    assert "no national line" in str(error)


def test_r14_missing_file_names_the_path(tmp_path: Path, registry: RegionRegistry) -> None:
    path = tmp_path / "absent.jsonl"
    with pytest.raises(PolicyDataError, match=r"absent\.jsonl"):
        load_policy_table(path, registry)


def test_r14_table_can_be_built_from_versions(registry: RegionRegistry) -> None:
    table = parse_policy_table(json.dumps(NATIONAL), registry, origin="inline")
    again = PolicyTable(table.versions, origin="copy")
    assert again.resolve("110000", D("2024-06-01")) == table.resolve("110000", D("2024-06-01"))


# --- item 13: every line names its source --------------------------------------------


def test_r14_line_without_source_refused(tmp_path: Path, registry: RegionRegistry) -> None:
    line = region_line("440300", "440300-2025.1", "2025-01-01", transfer_in_days=3)
    del line["source"]
    error = refused(tmp_path, registry, NATIONAL, line)
    assert_names(error, 2, "R14", "source")
    assert "missing field source" in str(error)
    assert '"project default"' in str(error)


def test_r12_a_wrong_figure_is_named_by_its_rule_before_the_missing_source(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    line = region_line("610100", "610100-bad", "2026-01-01", transfer_out_days=12)
    del line["source"]
    error = refused(tmp_path, registry, NATIONAL, line)
    assert_names(error, 2, "R12", "transfer_out_days")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "neither a document object"),
        ("official", "neither a document object"),
        (5, "got integer"),
        (None, "got null"),
        ({"title": "某通知"}, '"date"'),
        ({"date": "2025-01-01"}, '"title" or "number"'),
        ({}, "names no document"),
        ({"title": "某通知", "date": "2025-02-30"}, "not a real date"),
        ({"title": "某通知", "date": "2025/01/01"}, "not an ISO date"),
        ({"title": "某通知", "date": "2025-01-01", "url": "x"}, "unknown field 'url'"),
        ({"title": " ", "date": "2025-01-01"}, "non-empty"),
        ({"title": "project default", "date": "2025-01-01"}, "non-empty"),
    ],
)
def test_r14_source_must_name_a_document_or_say_project_default(
    tmp_path: Path, registry: RegionRegistry, source: object, message: str
) -> None:
    line = region_line("440300", "440300-2025.1", "2025-01-01", transfer_in_days=3)
    line["source"] = source
    error = refused(tmp_path, registry, NATIONAL, line)
    assert_names(error, 2, "R14", "source")
    assert message in str(error)


@pytest.mark.parametrize(
    "source",
    [
        "project default",
        "项目默认值",
        CIRCULAR,
        {"number": "示例〔2026〕2号", "date": "2026-05-20"},
        {"title": "关于调整转移接续经办时限的通知", "date": "2026-05-20"},
    ],
)
def test_r14_source_of_each_setting_is_resolved(
    tmp_path: Path, registry: RegionRegistry, source: object
) -> None:
    line = region_line("440300", "440300-2026.1", "2026-06-01", transfer_in_days=3)
    line["source"] = source
    policy = load_policy_table(write(tmp_path, NATIONAL, line), registry).resolve(
        "440300", D("2026-07-01")
    )
    expected = PolicySource.from_json(source)
    assert policy.source_of("transfer_in_days") == expected
    assert policy.set_by_version("transfer_in_days") == "440300-2026.1"
    assert policy.source_of("transfer_out_days") == PolicySource()  # the national line's
    assert policy.source_of("back_payment_base_fen") is None  # not set anywhere
    assert policy.back_payment_base_fen is None
    assert ResolvedPolicy.from_json(json.loads(json.dumps(policy.to_json()))) == policy


def test_r14_source_labels_in_both_languages() -> None:
    source = PolicySource.from_json(CIRCULAR)
    assert source.label_en() == "《关于调整转移接续经办时限的通知》 (示例〔2026〕2号, 2026-05-20)"
    assert (
        source.label_zh() == "《关于调整转移接续经办时限的通知》（示例〔2026〕2号，2026年5月20日）"
    )
    assert PolicySource().label_en() == "project default"
    assert PolicySource().label_zh() == "项目默认值"
    assert PolicySource.from_json(source.to_json()) == source


# --- item 13: a version in force is never edited -------------------------------------

TODAY = D("2026-12-02")


def table_of(tmp_path: Path, registry: RegionRegistry, *lines: dict[str, Any] | str) -> PolicyTable:
    return load_policy_table(write(tmp_path, *lines), registry)


def test_r14_version_in_force_cannot_be_changed(tmp_path: Path, registry: RegionRegistry) -> None:
    xian = region_line("610100", "610100-2025.1", "2025-01-01", waiting_period_months=6)
    first = table_of(tmp_path, registry, NATIONAL, xian)
    record = check_in_force_unchanged(first, {}, TODAY, record="state.json")
    assert set(record) == {"national-2024.1", "610100-2025.1"}

    edited = table_of(
        tmp_path, registry, "# header", NATIONAL, {**xian, "waiting_period_months": 3}
    )
    with pytest.raises(PolicyDataError) as info:
        check_in_force_unchanged(edited, record, TODAY, record="state.json")
    error = info.value
    assert_names(error, 3, "R14", "version")
    message = str(error)
    assert str(tmp_path / "policies.jsonl") in message
    assert "version 610100-2025.1 has been in force since 2025-01-01" in message
    assert "never edited" in message
    assert "state.json" in message


def test_r14_respacing_or_reordering_a_line_is_no_change(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    xian = region_line("610100", "610100-2025.1", "2025-01-01", waiting_period_months=6)
    record = check_in_force_unchanged(
        table_of(tmp_path, registry, NATIONAL, xian), {}, TODAY, record="r"
    )
    reordered = json.dumps(
        dict(reversed(list(xian.items()))), indent=None, separators=(" , ", " : ")
    )
    again = table_of(tmp_path, registry, NATIONAL, reordered)
    assert check_in_force_unchanged(again, record, TODAY, record="r") == record


def test_r14_a_source_change_of_a_version_in_force_is_a_change(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    xian = region_line("610100", "610100-2025.1", "2025-01-01", waiting_period_months=6)
    record = check_in_force_unchanged(
        table_of(tmp_path, registry, NATIONAL, xian), {}, TODAY, record="r"
    )
    cited = table_of(tmp_path, registry, NATIONAL, {**xian, "source": CIRCULAR})
    with pytest.raises(PolicyDataError, match=r"610100-2025\.1 has been in force"):
        check_in_force_unchanged(cited, record, TODAY, record="r")


def test_r14_version_in_force_cannot_be_removed(tmp_path: Path, registry: RegionRegistry) -> None:
    xian = region_line("610100", "610100-2025.1", "2025-01-01", waiting_period_months=6)
    record = check_in_force_unchanged(
        table_of(tmp_path, registry, NATIONAL, xian), {}, TODAY, record="r"
    )
    with pytest.raises(PolicyDataError) as info:
        check_in_force_unchanged(table_of(tmp_path, registry, NATIONAL), record, TODAY, record="r")
    assert info.value.line is None
    assert "missing from the file" in str(info.value)
    assert str(info.value).endswith("(R14)")


def test_r14_future_version_may_change_until_it_is_in_force(
    tmp_path: Path, registry: RegionRegistry
) -> None:
    future = region_line("610100", "610100-2027.1", "2027-01-01", waiting_period_months=6)
    record = check_in_force_unchanged(
        table_of(tmp_path, registry, NATIONAL, future), {}, TODAY, record="r"
    )
    changed = {**future, "waiting_period_months": 4}
    table = table_of(tmp_path, registry, NATIONAL, changed)
    record = check_in_force_unchanged(table, record, TODAY, record="r")
    assert record["610100-2027.1"] == LoadedVersion.of(table.versions[1])
    # Once 1 January 2027 has come, the content loaded last is the one in force.
    with pytest.raises(PolicyDataError, match="in force since 2027-01-01"):
        check_in_force_unchanged(
            table_of(tmp_path, registry, NATIONAL, future), record, D("2027-01-01"), record="r"
        )
    # A future version may also be withdrawn before its date.
    assert set(
        check_in_force_unchanged(table_of(tmp_path, registry, NATIONAL), record, TODAY, record="r")
    ) == {"national-2024.1"}


def test_r14_loaded_version_round_trips() -> None:
    seen = LoadedVersion("region", "610100", D("2025-01-01"), "sha256:" + "0" * 64)
    assert LoadedVersion.from_json(json.loads(json.dumps(seen.to_json()))) == seen
    with pytest.raises(ValueError, match="exactly"):
        LoadedVersion.from_json({"scope": "region"})
