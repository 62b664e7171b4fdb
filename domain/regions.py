"""Pooling regions (统筹区) and their connection to the national platform."""

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


class RegionRegistry:
    """The pooling regions this deployment knows, by code. Immutable."""

    __slots__ = ("_regions",)

    def __init__(self, regions: Iterable[Region] = ()) -> None:
        by_code: dict[str, Region] = {}
        for region in regions:
            if not isinstance(region, Region):
                raise RegionDataError("a registry holds Region values")
            if region.code in by_code:
                raise RegionDataError(f"duplicate region code {region.code}")
            by_code[region.code] = region
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
            replace(region, public_key=mapping[code]) if code in mapping else region
            for code, region in self._regions.items()
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-compatible data, e.g. as a Temporal workflow argument."""
        return {"regions": [region.to_json() for region in self._regions.values()]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RegionRegistry:
        entries = data.get("regions") if isinstance(data, Mapping) else None
        if not isinstance(entries, list):
            raise RegionDataError('expected an object with a "regions" list')
        return cls(Region.from_json(entry) for entry in entries)

    def __contains__(self, code: object) -> bool:
        return code in self._regions

    def __iter__(self) -> Iterator[Region]:
        return iter(self._regions.values())

    def __len__(self) -> int:
        return len(self._regions)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RegionRegistry):
            return NotImplemented
        return self._regions == other._regions

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RegionRegistry({len(self._regions)} regions)"


def load_region_registry(path: Path = DEFAULT_REGIONS_FILE) -> RegionRegistry:
    """Read a registry from a JSON file in the ``to_json`` format."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RegionDataError(f"{Path(path).name}: not valid JSON: {exc}") from exc
    try:
        return RegionRegistry.from_json(data)
    except RegionDataError as exc:
        raise RegionDataError(f"{Path(path).name}: {exc}") from exc
