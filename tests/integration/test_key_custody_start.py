"""A deployment whose key directory holds a private key of a region it does not serve
refuses to start, with the reason and no traceback (issue 13 items 1 and 7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.keyring import write_private_key
from services.common.config import REPO_DIR

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("side", ["incoming", "outgoing"])
def test_a_key_of_a_region_not_served_stops_the_service(tmp_path: Path, side: str) -> None:
    keys = tmp_path / "keys"
    write_private_key(keys, "610100", "610100-own")
    write_private_key(keys, "620800", "620800-someone-elses")
    env = {
        **os.environ,
        "MEDTRANSFER_DATA_DIR": str(tmp_path / "data"),
        "MEDTRANSFER_KEYS_DIR": str(keys),
        "MEDTRANSFER_KEY_REGISTRY_FILE": str(tmp_path / "trust" / "registry.json"),
        "MEDTRANSFER_SERVED_REGIONS": json.dumps(["610100"]),
        "MEDTRANSFER_LOCAL_DEMO": "true",
    }
    result = subprocess.run(
        [sys.executable, "-m", f"services.{side}_agency", "worker"],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "error: the key directory holds a private key of region 620800" in result.stderr
    assert "Traceback" not in result.stderr
    # The refused start created no key and entered nothing for the other region.
    registry = tmp_path / "trust" / "registry.json"
    assert "620800" not in (registry.read_text() if registry.exists() else "")
