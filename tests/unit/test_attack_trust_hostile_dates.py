"""A validly signed document with a date at the end of the calendar (a hostile or buggy
peer holds a real key) is refused on arrival: its year-9999 ``applied_on`` would overflow
the deadline arithmetic and leave the case's first step retrying for ever."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from contracts.envelope import Envelope
from contracts.keyring import KeyRegistrySource
from contracts.local_trust import enrol_local_regions, platform_public_key, sign_locally
from domain.regions import load_region_registry
from services.common.acceptance import InboundProblem, parse_and_verify
from tests.support.workflow_fakes import INCOMING_REGION, OUTGOING_REGION, transfer_request

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("applied_on", [date(9999, 12, 20), date.today() + timedelta(days=400)])
def test_a_signed_letter_dated_far_ahead_is_refused_on_arrival(
    tmp_path: Path, applied_on: date
) -> None:
    registry_file = tmp_path / "trust" / "registry.json"
    enrol_local_regions(registry_file, tmp_path / "keys", [INCOMING_REGION])
    keys = KeyRegistrySource(registry_file, platform_public_key(registry_file.parent))
    letter = sign_locally(
        tmp_path / "keys",
        Envelope.wrap(
            transfer_request(applied_on),
            case_id="TC1",
            step="request",
            from_region=INCOMING_REGION,
            to_region=OUTGOING_REGION,
            sent_at=datetime.now(UTC),
        ),
    )
    with pytest.raises(InboundProblem, match=r"INVALID_DOCUMENT TransferRequested: .* late"):
        parse_and_verify(
            letter.model_dump_json().encode(), load_region_registry(), {OUTGOING_REGION}, keys
        )
    # A letter of today passes.
    today = letter.model_copy(
        update={"payload": transfer_request(date.today()).model_dump(mode="json")}
    )
    parse_and_verify(
        sign_locally(tmp_path / "keys", today).model_dump_json().encode(),
        load_region_registry(),
        {OUTGOING_REGION},
        keys,
    )
