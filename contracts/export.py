"""Generated contract documents: ``python -m contracts.export [--check]``.

Writes the JSON Schema of the Envelope and of every document to ``contracts/schemas/``,
and the OpenAPI and AsyncAPI documents of both agency services to ``contracts/openapi/``
and ``contracts/asyncapi/`` (``<service>.json``). ``--check`` writes nothing and exits 1
listing files that are missing or out of date. Every file goes through
:func:`write_documents` and :func:`stale_documents` so all are formatted and checked the
same way.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
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


def api_documents() -> dict[str, dict[str, dict[str, Any]]]:
    """``{"openapi" | "asyncapi": {service: document}}`` of both agency services."""
    # Imported here: building the documents imports the services, ``contracts`` must not.
    from contracts.api_documents import api_documents as build

    return build()


def write_api_documents() -> list[str]:
    """Regenerate ``contracts/openapi/`` and ``contracts/asyncapi/``; return changed paths."""
    docs = api_documents()
    return [p for kind, d in API_DOCUMENT_DIRS.items() for p in write_documents(docs[kind], d)]


def stale_api_documents() -> list[str]:
    """OpenAPI and AsyncAPI files that are missing or out of date."""
    docs = api_documents()
    return [p for kind, d in API_DOCUMENT_DIRS.items() for p in stale_documents(docs[kind], d)]


def _rendered(docs: Mapping[str, Mapping[str, Any]], directory: Path) -> list[tuple[Path, str]]:
    return [(directory / f"{name}.json", render(doc)) for name, doc in sorted(docs.items())]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.export", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_schemas() + stale_api_documents()
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        if stale:
            print("run: make schemas (python -m contracts.export)", file=sys.stderr)
            return 1
        return 0
    for path in write_schemas() + write_api_documents():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
