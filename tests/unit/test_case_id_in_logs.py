"""Case ids are not personal data: the log scrubber must leave them whole, so an operator
can find every log line of a case."""

from __future__ import annotations

from datetime import date

import pytest

from services.common.logging import scrub
from services.incoming_agency.applications import new_case_id

pytestmark = pytest.mark.unit


def test_r11_case_ids_survive_the_log_scrubber() -> None:
    ids = {new_case_id(date(2026, 11, 25)) for _ in range(2000)}
    assert len(ids) == 2000
    for case_id in ids:
        assert len(case_id) == 20, case_id
        assert case_id.startswith("TR20261125"), case_id
        assert scrub(f"received TransferOutCompleted {case_id}/TransferOutCompleted/sheet") == (
            f"received TransferOutCompleted {case_id}/TransferOutCompleted/sheet"
        )
