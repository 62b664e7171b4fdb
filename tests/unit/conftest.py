from __future__ import annotations

from datetime import date

import pytest
from hypothesis import strategies as st

from domain.calendar import WorkingDayCalendar, build_calendar
from domain.identity import resident_id_check_char
from domain.regions import DEFAULT_REGIONS_FILE, RegionRegistry, load_region_registry

# Independent of domain.identity: the weights and check characters written out.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


def reference_check_char(first17: str) -> str:
    return ID_CHECK[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def make_id(region: str, born: date, sequence: int) -> str:
    first17 = f"{region}{born:%Y%m%d}{sequence:03d}"
    return first17 + resident_id_check_char(first17)


@st.composite
def valid_resident_ids(draw: st.DrawFn) -> str:
    region = draw(st.from_regex(r"[1-6][0-9]{5}", fullmatch=True))
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)))
    sequence = draw(st.integers(min_value=0, max_value=999))
    return make_id(region, born, sequence)


@pytest.fixture(scope="session")
def calendar() -> WorkingDayCalendar:
    return build_calendar(range(2004, 2028))


@pytest.fixture(scope="session")
def registry() -> RegionRegistry:
    return load_region_registry(DEFAULT_REGIONS_FILE)
