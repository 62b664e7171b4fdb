from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.regions import (
    Province,
    Region,
    RegionDataError,
    RegionRegistry,
    UnknownRegion,
    apply_overlay,
    load_region_registry,
    new_region_problems,
    overlay_entry,
    province_of,
    same_province,
)
from services.common.config import REPO_DIR

pytestmark = pytest.mark.unit

EXPECTED = {
    "620800": "平凉市",
    "620100": "兰州市",
    "610100": "西安市",
    "610400": "咸阳市",
    "350100": "福州市",
    "110000": "北京市",
    "440300": "深圳市",
    "441900": "东莞市",
    "440100": "广州市",
    "310000": "上海市",
    "510100": "成都市",
    "654300": "阿勒泰地区",
}


def key_b64(seed: int) -> str:
    return base64.b64encode(bytes([seed]) * 32).decode()


class TestRegionsFile:
    def test_contains_the_expected_regions(self, registry: RegionRegistry) -> None:
        assert set(registry.codes()) == set(EXPECTED)
        for code, name in EXPECTED.items():
            assert registry.require(code).name == name
            assert registry.require(code).province_code == code[:2]

    def test_connected_dates_in_2022_to_2024_except_altay(self, registry: RegionRegistry) -> None:
        for region in registry:
            if region.code == "654300":
                assert region.connected_since is None
            else:
                assert region.connected_since is not None
                assert 2022 <= region.connected_since.year <= 2024

    def test_no_public_keys_in_file(self, registry: RegionRegistry) -> None:
        assert all(region.public_key is None for region in registry)

    def test_r10_every_region_the_readme_docs_and_deploy_name_is_registered(
        self, registry: RegionRegistry
    ) -> None:
        # R10: an applicant chooses regions the registry knows; a code in the docs that
        # the shipped registry does not hold would be refused UNKNOWN_REGION.
        files = [REPO_DIR / "README.md"]
        for folder in ("docs", "deploy"):
            files += [p for p in (REPO_DIR / folder).rglob("*") if p.is_file()]
        # How to add a region shows regions not (yet) registered, on purpose.
        files.remove(REPO_DIR / "docs" / "regions.md")
        named: set[str] = set()
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            named.update(re.findall(r"(?<![0-9A-Za-z.:])[1-6][0-9]{5}(?![0-9A-Za-z])", text))
        # Six-digit numbers that are not regions: a benchmark's case count, a size limit.
        named -= {"100000", "524288"}
        assert named, "the docs name regions"
        assert named <= set(registry.codes()), sorted(named - set(registry.codes()))
        # And by name: the README's agencies list their regions in English.
        readme = (REPO_DIR / "README.md").read_text(encoding="utf-8")
        listed = re.findall(r"Agency [AB] \(([^)]*)\)", readme)
        assert listed
        english = {region.name_en for region in registry}
        for names in listed:
            assert {n.strip() for n in names.split(",")} <= english, names

    def test_every_region_is_in_a_registered_province(self, registry: RegionRegistry) -> None:
        assert len(registry.provinces()) == 31  # the mainland's provincial-level divisions
        for region in registry:
            province = registry.province(region.province_code)
            assert province is not None
            assert province.name.strip()


class TestR20ProvinceWidePlatform:
    def test_r20_shaanxi_runs_one_platform_for_its_cities(self, registry: RegionRegistry) -> None:
        shaanxi = registry.province("61")
        assert shaanxi is not None
        assert (shaanxi.name, shaanxi.province_wide_platform) == ("陕西省", True)
        assert registry.province_wide_platform("610400", "610100")

    def test_r20_only_shaanxi_and_only_within_it(self, registry: RegionRegistry) -> None:
        assert [p.code for p in registry.provinces() if p.province_wide_platform] == ["61"]
        assert not registry.province_wide_platform("610100", "620800")
        assert not registry.province_wide_platform("440300", "441900")
        assert not RegionRegistry().province_wide_platform("610400", "610100")

    def test_r20_setting_is_data_round_tripped(self, registry: RegionRegistry) -> None:
        data = json.loads(json.dumps(registry.to_json()))
        data["provinces"] = [
            p | {"province_wide_platform": p["code"] == "62"} for p in data["provinces"]
        ]
        changed = RegionRegistry.from_json(data)
        assert changed.province_wide_platform("620800", "620100")
        assert not changed.province_wide_platform("610400", "610100")
        assert changed != registry

    def test_province_entries_are_validated(self) -> None:
        with pytest.raises(RegionDataError, match="two digits"):
            Province("610", "陕西省")
        with pytest.raises(RegionDataError, match="true or false"):
            Province("61", "陕西省", province_wide_platform="yes")  # type: ignore[arg-type]
        region = Region("620800", "平凉市", "62", None, None)
        with pytest.raises(RegionDataError, match="province 62 is not registered"):
            RegionRegistry([region], [Province("61", "陕西省")])


class TestR23Connected:
    def test_r23_connected_from_go_live_day(self, registry: RegionRegistry) -> None:
        since = registry.require("620800").connected_since
        assert since is not None
        assert registry.is_connected("620800", since)
        assert registry.is_connected("620800", date(2026, 2, 13))
        assert not registry.is_connected("620800", date.fromordinal(since.toordinal() - 1))

    def test_r23_not_connected_region(self, registry: RegionRegistry) -> None:
        assert not registry.is_connected("654300", date(2026, 2, 13))

    def test_r23_unknown_region_is_not_connected(self, registry: RegionRegistry) -> None:
        assert not registry.is_connected("999999", date(2026, 2, 13))


class TestLookup:
    def test_get_unknown_is_none(self, registry: RegionRegistry) -> None:
        assert registry.get("999999") is None
        assert "999999" not in registry
        assert "620800" in registry

    def test_require_unknown_raises(self, registry: RegionRegistry) -> None:
        with pytest.raises(UnknownRegion, match="999999") as info:
            registry.require("999999")
        assert info.value.code == "999999"

    def test_unknown_region_error_does_not_echo_non_codes(self, registry: RegionRegistry) -> None:
        with pytest.raises(UnknownRegion) as info:
            registry.require("11010519491231002X")
        assert "11010519491231002X" not in str(info.value)


class TestProvince:
    def test_r20_same_province_guangdong(self, registry: RegionRegistry) -> None:
        assert registry.same_province("440300", "441900")
        assert registry.same_province("440100", "440300")
        assert registry.same_province("620800", "620100")

    def test_r18_cross_province(self, registry: RegionRegistry) -> None:
        assert not registry.same_province("620800", "610100")
        assert not registry.same_province("110000", "310000")

    def test_unregistered_codes_use_digits(self) -> None:
        assert same_province("130100", "130200")

    @pytest.mark.parametrize(
        ("a", "b"), [("", ""), ("44", "44"), ("44030X", "440300"), ("4403000", "440300")]
    )
    def test_invalid_codes_never_same_province(self, a: str, b: str) -> None:
        assert not same_province(a, b)

    def test_province_of(self) -> None:
        assert province_of("441900") == "44"
        with pytest.raises(RegionDataError):
            province_of("44")


class TestRegionValidation:
    def test_province_code_must_match(self) -> None:
        with pytest.raises(RegionDataError, match="province_code"):
            Region("620800", "平凉市", "620000", None, None)

    def test_code_must_be_six_digits(self) -> None:
        with pytest.raises(RegionDataError):
            Region("62080", "平凉市", "62", None, None)

    def test_public_key_must_be_32_bytes(self) -> None:
        with pytest.raises(RegionDataError, match="32-byte"):
            Region("620800", "平凉市", "62", None, base64.b64encode(b"short").decode())
        with pytest.raises(RegionDataError, match="base64"):
            Region("620800", "平凉市", "62", None, "not base64!")

    def test_duplicate_codes_rejected(self) -> None:
        region = Region("620800", "平凉市", "62", None, None)
        with pytest.raises(RegionDataError, match="duplicate"):
            RegionRegistry([region, region])


class TestPublicKeys:
    def test_with_public_keys_returns_copy(self, registry: RegionRegistry) -> None:
        keyed = registry.with_public_keys({"620800": key_b64(1), "610100": key_b64(2)})
        assert keyed.require("620800").public_key == key_b64(1)
        assert keyed.require("620800").public_key_bytes() == bytes([1]) * 32
        assert keyed.require("350100").public_key is None
        assert registry.require("620800").public_key is None
        assert keyed != registry

    def test_unknown_code_rejected(self, registry: RegionRegistry) -> None:
        with pytest.raises(UnknownRegion):
            registry.with_public_keys({"999999": key_b64(1)})

    def test_bad_key_rejected(self, registry: RegionRegistry) -> None:
        with pytest.raises(RegionDataError):
            registry.with_public_keys({"620800": "AAAA"})


TIANSHUI = Region("620500", "天水市", "62", date(2023, 6, 1), None, name_en="Tianshui")
AT = datetime(2026, 12, 2, 8, 30, tzinfo=UTC)


def journal_line(added: Region = TIANSHUI, /, **changes: object) -> str:
    return json.dumps(overlay_entry(added, at=AT, by="ops-li") | changes, ensure_ascii=False)


class TestR10Overlay:
    def test_r10_overlay_adds_a_region(self, registry: RegionRegistry) -> None:
        added = apply_overlay(registry, journal_line() + "\n\n", origin="overlay.jsonl")
        assert added.require("620500") == TIANSHUI
        assert len(added) == len(registry) + 1
        assert added.provinces() == registry.provinces()

    @pytest.mark.parametrize(
        ("region", "problem"),
        [
            (replace(TIANSHUI, code="620800"), "already registered (平凉市)"),
            (replace(TIANSHUI, code="620600", name="平凉市"), "already used by region 620800"),
            (replace(TIANSHUI, name="Tianshui"), "Chinese name"),
            (replace(TIANSHUI, name="天水 city"), "Chinese name"),
            (replace(TIANSHUI, name_en=""), "English name"),
            (Region("710100", "台北市", "71", None, None, "Taipei"), "not a registered province"),
        ],
    )
    def test_r10_new_region_problems(
        self, registry: RegionRegistry, region: Region, problem: str
    ) -> None:
        assert any(problem in p for p in new_region_problems(registry, region))

    def test_r10_clean_region_has_no_problems(self, registry: RegionRegistry) -> None:
        assert new_region_problems(registry, TIANSHUI) == []

    @pytest.mark.parametrize(
        ("line", "problem"),
        [
            ("{not json", "line 1: not valid JSON"),
            (journal_line(action="remove"), "line 1: action"),
            (journal_line(by=""), "line 1: by is missing"),
            (journal_line(at="2026-12-02T08:30:00"), "line 1: at has no time zone"),
            (journal_line(region={"code": "62050"}), "line 1: malformed region entry"),
            (journal_line(replace(TIANSHUI, code="620800")), "line 1: region 620800"),
        ],
    )
    def test_r10_bad_overlay_line_names_file_and_line(
        self, registry: RegionRegistry, line: str, problem: str
    ) -> None:
        with pytest.raises(RegionDataError, match=r"^overlay\.jsonl: ") as info:
            apply_overlay(registry, line, origin="overlay.jsonl")
        assert problem in str(info.value)

    def test_r10_the_same_region_added_twice_is_refused(self, registry: RegionRegistry) -> None:
        with pytest.raises(RegionDataError, match="line 2: region 620500"):
            apply_overlay(registry, journal_line() + "\n" + journal_line())

    def test_r10_shipped_entry_wins_over_the_same_added_region(self) -> None:
        shipped = RegionRegistry([replace(TIANSHUI, connected_since=date(2024, 1, 1))])
        assert apply_overlay(shipped, journal_line()) == shipped

    def test_r10_load_reads_the_overlay_when_it_exists(self, tmp_path: Path) -> None:
        overlay = tmp_path / "overlay.jsonl"
        assert "620500" not in load_region_registry(overlay=overlay)  # missing: nothing added
        overlay.write_text(journal_line() + "\n", encoding="utf-8")
        assert load_region_registry(overlay=overlay).require("620500").name == "天水市"

    def test_journal_timestamps_carry_their_zone(self) -> None:
        with pytest.raises(RegionDataError, match="time zone"):
            overlay_entry(TIANSHUI, at=datetime(2026, 12, 2, 8, 30), by="ops-li")


class TestJson:
    def test_round_trip_is_plain_json(self, registry: RegionRegistry) -> None:
        keyed = registry.with_public_keys({"620800": key_b64(7)})
        data = json.loads(json.dumps(keyed.to_json()))
        assert RegionRegistry.from_json(data) == keyed

    @given(
        st.lists(
            st.builds(
                lambda code, since, seed, name: Region(
                    code, name, code[:2], since, None if seed is None else key_b64(seed)
                ),
                st.from_regex(r"[1-6][0-9]{5}", fullmatch=True),
                st.none() | st.dates(),
                st.none() | st.integers(min_value=0, max_value=255),
                st.text(min_size=1).filter(lambda s: s.strip() != ""),
            ),
            unique_by=lambda r: r.code,
        )
    )
    def test_round_trip_property(self, regions: list[Region]) -> None:
        registry = RegionRegistry(regions)
        assert RegionRegistry.from_json(json.loads(json.dumps(registry.to_json()))) == registry

    def test_malformed_file_names_file(self, tmp_path: Path) -> None:
        path = tmp_path / "regions.json"
        path.write_text('{"regions": [{"code": "62080"}]}', encoding="utf-8")
        with pytest.raises(RegionDataError, match=r"regions\.json"):
            load_region_registry(path)
        path.write_text("{not json", encoding="utf-8")
        with pytest.raises(RegionDataError, match=r"regions\.json"):
            load_region_registry(path)

    def test_from_json_requires_regions_list(self) -> None:
        with pytest.raises(RegionDataError):
            RegionRegistry.from_json({"regions": {}})

    def test_replace_keeps_validation(self) -> None:
        region = Region("620800", "平凉市", "62", None, None)
        with pytest.raises(RegionDataError):
            replace(region, public_key="AAAA")
