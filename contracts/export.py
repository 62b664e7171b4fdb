"""Generated contract documents: the JSON Schema of the Envelope and of every document in
``contracts/schemas/``, and where the services' OpenAPI and AsyncAPI documents are kept
(``contracts/openapi/``, ``contracts/asyncapi/``; built by :mod:`services.cli.export`, as
building them imports the services). Every file goes through :func:`write_documents` and
:func:`stale_documents` so all are formatted and checked the same way. The command:
``python -m services.cli.export [--check]`` (``make schemas``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contracts.documents import DOCUMENT_TYPES
from contracts.envelope import Envelope

SCHEMA_DIR = Path(__file__).parent / "schemas"
OPENAPI_DIR = Path(__file__).parent / "openapi"
ASYNCAPI_DIR = Path(__file__).parent / "asyncapi"
API_DOCUMENT_DIRS = {"openapi": OPENAPI_DIR, "asyncapi": ASYNCAPI_DIR}


def render(doc: Mapping[str, Any]) -> str:
    """The stored text of a generated JSON document."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schemas() -> dict[str, dict[str, Any]]:
    """Name -> JSON Schema for the Envelope and every document type."""
    result = {"Envelope": Envelope.model_json_schema()}
    for name, model in DOCUMENT_TYPES.items():
        result[name] = model.model_json_schema()
    return result


def write_documents(
    docs: Mapping[str, Mapping[str, Any]], directory: Path = SCHEMA_DIR
) -> list[str]:
    """Write each ``<name>.json`` into ``directory``; return the paths that changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for path, text in _rendered(docs, directory):
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(str(path))
    return changed


def stale_documents(
    docs: Mapping[str, Mapping[str, Any]], directory: Path = SCHEMA_DIR
) -> list[str]:
    """Paths of ``<name>.json`` in ``directory`` that are missing or differ from ``docs``."""
    return [
        str(path)
        for path, text in _rendered(docs, directory)
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def write_schemas() -> list[str]:
    """Regenerate ``contracts/schemas/``; return the paths that changed."""
    return write_documents(schemas())


def stale_schemas() -> list[str]:
    """Schema files that are missing or out of date (empty when all is current)."""
    return stale_documents(schemas())


def _rendered(docs: Mapping[str, Mapping[str, Any]], directory: Path) -> list[tuple[Path, str]]:
    return [(directory / f"{name}.json", render(doc)) for name, doc in sorted(docs.items())]
