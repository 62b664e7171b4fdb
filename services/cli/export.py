"""Regenerate or check every generated contract document: ``python -m services.cli.export
[--check]`` (``make schemas``).

Writes the JSON Schemas (contracts/schemas/) and both agency services' OpenAPI and AsyncAPI
documents (contracts/openapi/, contracts/asyncapi/). ``--check`` writes nothing and exits 1
listing files that are missing or out of date.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from contracts.export import (
    API_DOCUMENT_DIRS,
    stale_documents,
    stale_schemas,
    write_documents,
    write_schemas,
)
from services.cli.api_documents import api_documents


def write_api_documents() -> list[str]:
    """Regenerate contracts/openapi/ and contracts/asyncapi/; return the changed paths."""
    docs = api_documents()
    return [p for kind, d in API_DOCUMENT_DIRS.items() for p in write_documents(docs[kind], d)]


def stale_api_documents() -> list[str]:
    """OpenAPI and AsyncAPI files that are missing or out of date."""
    docs = api_documents()
    return [p for kind, d in API_DOCUMENT_DIRS.items() for p in stale_documents(docs[kind], d)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.cli.export", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_schemas() + stale_api_documents()
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        if stale:
            print("run: make schemas (python -m services.cli.export)", file=sys.stderr)
            return 1
        return 0
    for path in write_schemas() + write_api_documents():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
