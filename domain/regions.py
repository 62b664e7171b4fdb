"""Pooling regions (统筹区), their provinces, and their connection to the national platform.

The shipped registry is ``data/regions.json``; an operator adds regions without a code
change through an overlay (``services/common/regions_admin.py``), an append-only journal
that the services read at start after the shipped file (``load_region_registry``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

DEFAULT_REGIONS_FILE = Path(__file__).parent.parent / "data" / "regions.json"

ED25519_PUBLIC_KEY_BYTES = 32

_REGION_CODE = re.compile(r"[0-9]{6}")
_PROVINCE_CODE = re.compile(r"[0-9]{2}")
# A region's Chinese name is wholly Chinese (市, 地区, 自治州 ...); its English name plain
# Latin letters ("Xi'an", "Hong Kong").
_CHINESE_NAME = re.compile(r"[\u4e00-\u9fff]{2,20}")
_ENGLISH_NAME = re.compile(r"[A-Za-z][A-Za-z' -]{0,59}")


class RegionDataError(ValueError):
    """Region data (a file, a JSON payload or a constructor argument) is malformed."""


class UnknownRegion(LookupError):
    """The region code is not in the registry."""

    def __init__(self, code: str) -> None:
        # Echo the code only when it looks like one: a wrong field could hold an ID number.
        shown = code if isinstance(code, str) and _REGION_CODE.fullmatch(code) else "<invalid>"
        super().__init__(f"unknown pooling region {shown}")
        self.code = code


def is_region_code(value: str) -> bool:
    """Six ASCII digits (行政区划代码)."""
    return isinstance(value, str) and _REGION_CODE.fullmatch(value) is not None


def province_of(code: str) -> str:
    """The province part of a region code: its first two digits."""
    if not is_region_code(code):
        raise RegionDataError("a region code is six digits")
    return code[:2]


def same_province(a: str, b: str) -> bool:
    """Both codes valid and with the same first two digits (R18/R20 intra- vs cross-province)."""
    # R18 R20: the province is the first two digits of the division code.
    return is_region_code(a) and is_region_code(b) and a[:2] == b[:2]


def _decode_public_key(value: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RegionDataError("public_key is not valid base64") from exc
    if len(raw) != ED25519_PUBLIC_KEY_BYTES:
        raise RegionDataError("public_key must be a raw 32-byte Ed25519 key")
    return raw


@dataclass(frozen=True)
class Region:
    """A pooling region.

    ``province_code`` is the two-digit province prefix of ``code`` (e.g. ``"62"``).
    ``public_key`` is a base64 raw Ed25519 public key used to verify the region's
    e-signed documents, or None until keys are merged in at deployment.
    """

    code: str
    name: str
    province_code: str
    connected_since: date | None
    public_key: str | None
    name_en: str = ""

    def __post_init__(self) -> None:
        if not is_region_code(self.code):
            raise RegionDataError("a region code is six digits")
        if self.province_code != self.code[:2]:
            raise RegionDataError(f"region {self.code}: province_code must be its first two digits")
        if not isinstance(self.name, str) or not self.name.strip():
            raise RegionDataError(f"region {self.code}: name is empty")
        if self.connected_since is not None and (
            isinstance(self.connected_since, datetime) or not isinstance(self.connected_since, date)
        ):
            raise RegionDataError(f"region {self.code}: connected_since must be a date")
        if self.public_key is not None:
            _decode_public_key(self.public_key)

    def is_connected(self, on: date) -> bool:
        """R23: connected to the national platform on that day."""
        # R23
        return self.connected_since is not None and self.connected_since <= on

    def public_key_bytes(self) -> bytes | None:
        return None if self.public_key is None else _decode_public_key(self.public_key)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "name_en": self.name_en,
            "province_code": self.province_code,
            "connected_since": (
                None if self.connected_since is None else self.connected_since.isoformat()
            ),
            "public_key": self.public_key,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Region:
        try:
            code = data["code"]
            since = data.get("connected_since")
            return cls(
                code=code,
                name=data["name"],
                province_code=data.get("province_code", code[:2] if isinstance(code, str) else ""),
                connected_since=None if since is None else date.fromisoformat(since),
                public_key=data.get("public_key"),
                name_en=data.get("name_en", ""),
            )
        except RegionDataError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise RegionDataError(f"malformed region entry: {exc}") from exc


@dataclass(frozen=True)
class Province:
    """A province (省级行政区), the first two digits of its regions' codes.

    ``province_wide_platform``: the province runs one medical-insurance platform for all
    its cities (Shaanxi): a move between two of its regions needs no handshake between
    agencies and no balance transfer (eligibility.PROVINCE_WIDE_PLATFORM).
    """

    code: str
    name: str
    name_en: str = ""
    province_wide_platform: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not _PROVINCE_CODE.fullmatch(self.code):
            raise RegionDataError("a province code is two digits")
        if not isinstance(self.name, str) or not self.name.strip():
            raise RegionDataError(f"province {self.code}: name is empty")
        if not isinstance(self.province_wide_platform, bool):
            raise RegionDataError(f"province {self.code}: province_wide_platform is true or false")

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "name_en": self.name_en,
            "province_wide_platform": self.province_wide_platform,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Province:
        try:
            return cls(
                code=data["code"],
                name=data["name"],
                name_en=data.get("name_en", ""),
                province_wide_platform=data.get("province_wide_platform", False),
            )
        except RegionDataError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise RegionDataError(f"malformed province entry: {exc}") from exc


class RegionRegistry:
    """The pooling regions this deployment knows, by code, and their provinces. Immutable.

    ``provinces`` may be left empty (then any two-digit prefix is accepted); when given,
    every region's province must be among them.
    """

    __slots__ = ("_provinces", "_regions")

    def __init__(self, regions: Iterable[Region] = (), provinces: Iterable[Province] = ()) -> None:
        by_province: dict[str, Province] = {}
        for province in provinces:
            if not isinstance(province, Province):
                raise RegionDataError("a registry's provinces are Province values")
            if province.code in by_province:
                raise RegionDataError(f"duplicate province code {province.code}")
            by_province[province.code] = province
        by_code: dict[str, Region] = {}
        for region in regions:
            if not isinstance(region, Region):
                raise RegionDataError("a registry holds Region values")
            if region.code in by_code:
                raise RegionDataError(f"duplicate region code {region.code}")
            if by_province and region.province_code not in by_province:
                raise RegionDataError(
                    f"region {region.code}: province {region.province_code} is not registered"
                )
            by_code[region.code] = region
        self._provinces: dict[str, Province] = dict(sorted(by_province.items()))
        self._regions: dict[str, Region] = dict(sorted(by_code.items()))

    def get(self, code: str) -> Region | None:
        return self._regions.get(code)

    def require(self, code: str) -> Region:
        region = self._regions.get(code)
        if region is None:
            raise UnknownRegion(code)
        return region

    def is_connected(self, code: str, on: date) -> bool:
        """R23: the region is known and connected to the national platform on that day."""
        # R23: an unknown region can never receive platform documents.
        region = self._regions.get(code)
        return region is not None and region.is_connected(on)

    def same_province(self, a: str, b: str) -> bool:
        """Same first two digits; the codes need not be registered."""
        return same_province(a, b)

    def province(self, code: str) -> Province | None:
        """The province with this two-digit code, if registered."""
        return self._provinces.get(code)

    def provinces(self) -> tuple[Province, ...]:
        return tuple(self._provinces.values())

    def province_wide_platform(self, a: str, b: str) -> bool:
        """Two regions of one province that runs one platform for all its cities: a move
        between them needs no handshake between agencies (the platform already holds the
        enrolment and its contribution years)."""
        if not same_province(a, b):
            return False
        province = self._provinces.get(a[:2])
        return province is not None and province.province_wide_platform

    def codes(self) -> tuple[str, ...]:
        return tuple(self._regions)

    def regions(self) -> tuple[Region, ...]:
        return tuple(self._regions.values())

    def with_public_keys(self, mapping: Mapping[str, str]) -> RegionRegistry:
        """A copy with the given public keys set; a code not in the registry raises."""
        for code in mapping:
            if code not in self._regions:
                raise UnknownRegion(code)
        return RegionRegistry(
            (
                replace(region, public_key=mapping[code]) if code in mapping else region
                for code, region in self._regions.items()
            ),
            self._provinces.values(),
        )

    def with_regions(self, regions: Iterable[Region]) -> RegionRegistry:
        """A copy with these regions added (validated like any registry's entries)."""
        return RegionRegistry([*self._regions.values(), *regions], self._provinces.values())

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-compatible data, e.g. as a Temporal workflow argument."""
        data: dict[str, Any] = {"regions": [region.to_json() for region in self._regions.values()]}
        if self._provinces:
            data["provinces"] = [province.to_json() for province in self._provinces.values()]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RegionRegistry:
        entries = data.get("regions") if isinstance(data, Mapping) else None
        if not isinstance(entries, list):
            raise RegionDataError('expected an object with a "regions" list')
        provinces = data.get("provinces", [])
        if not isinstance(provinces, list):
            raise RegionDataError('"provinces" must be a list')
        return cls(
            (Region.from_json(entry) for entry in entries),
            (Province.from_json(entry) for entry in provinces),
        )

    def __contains__(self, code: object) -> bool:
        return code in self._regions

    def __iter__(self) -> Iterator[Region]:
        return iter(self._regions.values())

    def __len__(self) -> int:
        return len(self._regions)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RegionRegistry):
            return NotImplemented
        return self._regions == other._regions and self._provinces == other._provinces

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RegionRegistry({len(self._regions)} regions)"


def load_region_registry(
    path: Path = DEFAULT_REGIONS_FILE, overlay: Path | None = None
) -> RegionRegistry:
    """Read a registry from a JSON file in the ``to_json`` format, then apply the
    operator's overlay journal (``apply_overlay``) when ``overlay`` names an existing file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RegionDataError(f"{Path(path).name}: not valid JSON: {exc}") from exc
    try:
        registry = RegionRegistry.from_json(data)
    except RegionDataError as exc:
        raise RegionDataError(f"{Path(path).name}: {exc}") from exc
    if overlay is None or not Path(overlay).exists():
        return registry
    try:
        text = Path(overlay).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegionDataError(f"{Path(overlay).name}: cannot read the overlay: {exc}") from exc
    return apply_overlay(registry, text, origin=Path(overlay).name)


# --- the operator's overlay ---------------------------------------------------------------
OVERLAY_ACTIONS = frozenset({"add"})


def new_region_problems(registry: RegionRegistry, region: Region) -> list[str]:
    """Why ``region`` may not be added to ``registry`` (empty: it may). The Region type
    already holds six digits, the province prefix and a non-empty name."""
    problems: list[str] = []
    if not _CHINESE_NAME.fullmatch(region.name):
        problems.append("name must be the region's Chinese name (2 to 20 Chinese characters)")
    if not _ENGLISH_NAME.fullmatch(region.name_en):
        problems.append("name_en must be the region's English name (Latin letters)")
    if region.public_key is not None:
        problems.append("public_key is not set here: keys come from the key registry")
    if registry.provinces() and registry.province(region.province_code) is None:
        problems.append(f"province {region.province_code} is not a registered province")
    existing = registry.get(region.code)
    if existing is not None:
        problems.append(f"region {region.code} is already registered ({existing.name})")
    problems.extend(
        f"the name {region.name} is already used by region {other.code}"
        for other in registry
        if (other.province_code, other.name) == (region.province_code, region.name)
        and other.code != region.code
    )
    return problems


def overlay_entry(region: Region, *, at: datetime, by: str, note: str = "") -> dict[str, Any]:
    """One journal line: who added which region when (``at`` timezone-aware)."""
    if at.tzinfo is None:
        raise RegionDataError("the journal's timestamps carry their time zone")
    return {
        "action": "add",
        "at": at.isoformat(),
        "by": by,
        "note": note,
        "region": region.to_json(),
    }


def _entry_region(number: int, line: str) -> Region:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RegionDataError(f"line {number}: not valid JSON: {exc}") from exc
    if not isinstance(entry, dict) or entry.get("action") not in OVERLAY_ACTIONS:
        raise RegionDataError(f"line {number}: action must be one of {sorted(OVERLAY_ACTIONS)}")
    for field in ("at", "by"):
        if not isinstance(entry.get(field), str) or not entry[field].strip():
            raise RegionDataError(f"line {number}: {field} is missing")
    try:
        stamp = datetime.fromisoformat(entry["at"])
    except ValueError as exc:
        raise RegionDataError(f"line {number}: at is not an ISO timestamp") from exc
    if stamp.tzinfo is None:
        raise RegionDataError(f"line {number}: at has no time zone")
    data = entry.get("region")
    if not isinstance(data, dict):
        raise RegionDataError(f"line {number}: region is missing")
    try:
        return Region.from_json(data)
    except RegionDataError as exc:
        raise RegionDataError(f"line {number}: {exc}") from exc


def apply_overlay(
    registry: RegionRegistry, text: str, *, origin: str = "overlay"
) -> RegionRegistry:
    """The registry with the overlay journal's additions, checked line by line as the
    command checked them. A region the shipped file has since gained under the same code
    and name is skipped (the shipped entry wins); any other problem raises
    ``RegionDataError`` naming the file and the line, so a service does not start on a
    registry that lost a region."""
    shipped = set(registry.codes())
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            region = _entry_region(number, line)
            existing = registry.get(region.code)
            if (
                region.code in shipped
                and existing is not None
                and (existing.name, existing.province_code) == (region.name, region.province_code)
            ):
                continue
            problems = new_region_problems(registry, region)
            if problems:
                raise RegionDataError(f"line {number}: region {region.code}: {'; '.join(problems)}")
            registry = registry.with_regions([region])
        except RegionDataError as exc:
            raise RegionDataError(f"{origin}: {exc}") from exc
    return registry
