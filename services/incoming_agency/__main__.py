"""python -m services.incoming_agency api [--port 8002] | worker"""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn

from domain.calendar import CalendarDataError
from domain.policy import PolicyDataError
from domain.regions import RegionDataError
from services.common.bootstrap import build_service
from services.incoming_agency.tables import INCOMING_TABLES


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.incoming_agency")
    sub = parser.add_subparsers(dest="command", required=True)
    api = sub.add_parser("api", help="HTTP API + Kafka consumer")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8001)
    sub.add_parser("worker", help="Temporal worker")
    args = parser.parse_args()
    try:
        service = build_service("incoming", INCOMING_TABLES)
    except (PolicyDataError, CalendarDataError, RegionDataError) as exc:
        # Invalid reference data: refuse to start, say which file, line and rule.
        sys.exit(f"error: {exc}")
    except ValueError as exc:
        # Settings that cannot be run safely (key custody, the key registry, API keys,
        # codec keys, served regions): refuse to start and say why, without a traceback.
        sys.exit(f"error: {exc}")
    if args.command == "api":
        from services.incoming_agency.app import create_app

        uvicorn.run(create_app(service), host=args.host, port=args.port, log_config=None)
    else:
        from services.incoming_agency.worker import run

        asyncio.run(run(service))


if __name__ == "__main__":
    main()
