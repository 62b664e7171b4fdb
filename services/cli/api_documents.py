"""The OpenAPI and AsyncAPI documents of both agency services.

Built here, not in contracts/: building them imports the services. Each service is built offline in a throw-away directory: ``create_app`` connects
to Kafka and Temporal only when its lifespan runs, so nothing here touches the network.
Settings come from fixed values and the defaults only (never the environment), so the
output is the same on every machine.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from faststream.specification import AsyncAPI

from services.common.bootstrap import Service, build_service
from services.common.config import FixedSettings, Side

TOPIC_PREFIX = "medtransfer"
ASYNCAPI_VERSION = "3.0.0"
SERVICE_NAMES: dict[Side, str] = {"incoming": "incoming-agency", "outgoing": "outgoing-agency"}


def api_documents() -> dict[str, dict[str, dict[str, Any]]]:
    """``{"openapi": {service: document}, "asyncapi": {service: document}}``."""
    from services.incoming_agency.app import create_app as create_incoming
    from services.incoming_agency.tables import INCOMING_TABLES
    from services.outgoing_agency.app import create_app as create_outgoing
    from services.outgoing_agency.tables import OUTGOING_TABLES

    sides: list[tuple[Side, list[Any], Callable[[Service], FastAPI]]] = [
        ("incoming", INCOMING_TABLES, create_incoming),
        ("outgoing", OUTGOING_TABLES, create_outgoing),
    ]
    result: dict[str, dict[str, dict[str, Any]]] = {"openapi": {}, "asyncapi": {}}
    with tempfile.TemporaryDirectory(prefix="medtransfer-api-docs-") as tmp, _logging_kept():
        for side, tables, create_app in sides:
            settings = FixedSettings(
                data_dir=Path(tmp) / side / "data",
                keys_dir=Path(tmp) / side / "keys",
                key_registry_file=Path(tmp) / "trust" / "registry.json",
                local_demo=True,  # a throw-away deployment, only to render its documents
                topic_prefix=TOPIC_PREFIX,
            )
            service = build_service(side, tables, settings)
            try:
                app = create_app(service)
                name = SERVICE_NAMES[side]
                result["openapi"][name] = app.openapi()
                result["asyncapi"][name] = asyncapi_document(app, name)
            finally:
                service.engine.dispose()
    return result


def asyncapi_document(app: FastAPI, name: str) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the Kafka broker attached to ``app`` as a JSON dict."""
    spec = AsyncAPI(
        app.state.broker,
        title=f"{app.title}: Kafka",
        version=app.version,
        description=f"Kafka topics the {name} service consumes.",
        schema_version=ASYNCAPI_VERSION,
    ).to_specification()
    document: dict[str, Any] = spec.to_jsonable()
    return document


@contextmanager
def _logging_kept() -> Iterator[None]:
    """Keep ``build_service``'s logging set-up from showing or outliving the build."""
    names = ["", "aiokafka", "kafka", "temporalio.worker._workflow_instance"]
    names += ["uvicorn", "uvicorn.error", "uvicorn.access", "faststream"]
    saved = [
        (logger, logger.handlers[:], logger.level, logger.propagate)
        for logger in map(logging.getLogger, names)
    ]
    disabled = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(disabled)
        for logger, handlers, level, propagate in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
