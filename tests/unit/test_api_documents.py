"""The committed OpenAPI and AsyncAPI documents match the services that produce them."""

import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from contracts.export import ASYNCAPI_DIR, OPENAPI_DIR, render, stale_documents
from services.cli.api_documents import api_documents

pytestmark = pytest.mark.unit

SERVICES = {"incoming-agency", "outgoing-agency"}
REPO_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, dict]]:
    return api_documents()


def test_api_documents_are_up_to_date(documents):
    stale = stale_documents(documents["openapi"], OPENAPI_DIR) + stale_documents(
        documents["asyncapi"], ASYNCAPI_DIR
    )
    assert stale == [], f"out of date: {stale}; run: make schemas"


def test_every_service_has_both_documents(documents):
    assert set(documents["openapi"]) == SERVICES
    assert set(documents["asyncapi"]) == SERVICES
    assert {p.stem for p in OPENAPI_DIR.glob("*.json")} == SERVICES
    assert {p.stem for p in ASYNCAPI_DIR.glob("*.json")} == SERVICES


def test_asyncapi_names_the_platform_topics():
    addresses = {}
    for name in SERVICES:
        doc = json.loads((ASYNCAPI_DIR / f"{name}.json").read_text(encoding="utf-8"))
        assert doc["asyncapi"] == "3.0.0"
        addresses[name] = {channel["address"] for channel in doc["channels"].values()}
    assert "medtransfer.platform.to-outgoing" in addresses["outgoing-agency"]
    assert "medtransfer.platform.to-incoming" in addresses["incoming-agency"]


def test_openapi_has_the_application_submission():
    doc = json.loads((OPENAPI_DIR / "incoming-agency.json").read_text(encoding="utf-8"))
    assert "post" in doc["paths"]["/v1/applications"]


def test_documents_are_deterministic_and_machine_independent(documents):
    again = api_documents()
    for kind in ("openapi", "asyncapi"):
        for name in SERVICES:
            text = render(documents[kind][name])
            assert text == render(again[kind][name])
            assert tempfile.gettempdir() not in text
            assert str(REPO_DIR) not in text


def test_building_the_documents_leaves_logging_alone(documents):
    root = logging.getLogger()
    before = (root.handlers[:], root.level, logging.root.manager.disable)
    api_documents()
    assert (root.handlers[:], root.level, logging.root.manager.disable) == before


def test_importing_contracts_does_not_import_the_services():
    # contracts/ sits below the services: the API documents are built in services/cli.
    code = "import contracts, contracts.export, sys; print('services' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_DIR, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
