"""Container health check of the medtransfer images (python:slim has neither curl nor wget).

    python healthcheck.py http://127.0.0.1:8001/health   an API: HTTP 200 within 3 s
    python healthcheck.py http://127.0.0.1:9100/metrics  a worker: its metrics endpoint
    python healthcheck.py kafka                          the audit consumer: a Kafka broker
                                                         of MEDTRANSFER_KAFKA_BOOTSTRAP accepts
                                                         a connection (it serves no HTTP)

Exit 0 when healthy, 1 otherwise, with the reason on stderr (Docker keeps it in
``docker inspect``). Standard library only: a health check must not import the service.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request

TIMEOUT_SECONDS = 3.0


def http_ok(url: str) -> None:
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")


def kafka_reachable(bootstrap: str) -> None:
    failures = []
    for server in (s.strip() for s in bootstrap.split(",") if s.strip()):
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=TIMEOUT_SECONDS):
                return
        except (OSError, ValueError) as exc:
            failures.append(f"{server}: {exc}")
    raise RuntimeError("no broker reachable: " + "; ".join(failures or ["none configured"]))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    target = argv[1]
    try:
        if target == "kafka":
            kafka_reachable(os.environ.get("MEDTRANSFER_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
        else:
            http_ok(target)
    except Exception as exc:  # any failure means "unhealthy", with its reason
        print(f"unhealthy: {target}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
