from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.regions import (
    Region,
    RegionDataError,
    RegionRegistry,
    UnknownRegion,
    load_region_registry,
    province_of,
    same_province,
)

pytestmark = pytest.mark.unit

EXPECTED = {
    "620800": "平凉市",
    "620100": "兰州市",
    "610100": "西安市",
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
