"""The skeleton both agency APIs share: the Kafka entry point for platform documents, the
Temporal client, error handling, metrics, credentials, health, and the case read routes.
Each side adds its own routes and its routing of documents to workflows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.sdk.trace import TracerProvider
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from services.common.acceptance import MAX_DOCUMENT_BYTES
from services.common.api import (
    CaseOut,
    ConnectivityIn,
    ErrorBody,
    auth_error_response,
    case_out,
    install_error_handlers,
    owned_case,
    problem,
    redrive_for,
    set_region_connectivity,
)
from services.common.auth import (
    ANY_ROLE,
    CLERK_ROLES,
    AuthError,
    Principal,
    require_every_region,
)
from services.common.bootstrap import Service
from services.common.broker import KafkaDocumentPublisher, make_broker
from services.common.codec import CodecError, decode_for_ui
from services.common.inbound import InboundHandler, Route, raw_body
from services.common.kafka_topics import ensure_topics
from services.common.metrics import InboundCounters, install_metrics
from services.common.operator_token import OperatorTokenVerifier, TokenRefused, looks_like_jwt
from services.common.temporal import connect_temporal, temporal_codec
from services.common.throttle import LoginThrottle
from services.common.tracing import configure_tracing, instrument_app

# Unknown API keys an address may present per five minutes before it is answered 429.
KEY_GUESSES_PER_WINDOW = 20
# Consumers of the platform inbox per API process, each owning some of the topic's
# partitions: one case's documents stay in order (key = case_id), different cases are
# handled concurrently, and each offset is still committed only after its processing.
INBOX_SUBSCRIBER_WORKERS = 3


@dataclass
class AgencyApp:
    app: FastAPI
    temporal: Callable[[], Client]  # the connected client, once the app has started
    # Who may call what (services/common/auth.py): every /v1 route names one of these.
    any_caller: Any
    a_clerk: Any
    an_operator: Any
    publisher: KafkaDocumentPublisher | None = None  # for audit records of the API's own


async def redrive_forever(handler: InboundHandler, interval: timedelta) -> None:
    """Dead letters whose cause can clear are handed to their case again on a schedule
    (a document that came before its case's first one; services/common/inbound.py)."""
    while True:
        await asyncio.sleep(interval.total_seconds())
        try:
            await handler.redrive(older_than=interval)
        except Exception:  # the schedule outlives a database or Temporal blip
            logging.getLogger("medtransfer.inbound").exception("dead-letter re-drive failed")


def build_agency_app(
    service: Service,
    *,
    title: str,
    description: str,
    route: Route,
    workflow_id: Callable[[str], str],
) -> AgencyApp:
    settings = service.settings
    side = service.side
    tracer_provider = configure_tracing(settings, f"{side}-agency-api")
    broker = make_broker(settings, f"{side}-api", tracer_provider)
    publisher = KafkaDocumentPublisher(
        broker, settings.topics, side, signer=service.signer, timeline=service.repository
    )
    clients: dict[str, Client] = {}
    inbound_counters = InboundCounters()
    handler = _subscribe_inbox(service, broker, publisher, route, inbound_counters)
    lifespan = _lifespan(service, broker, handler, clients, tracer_provider)
    app = FastAPI(title=title, version="1.0.0", lifespan=lifespan, description=description)
    # Innermost (added first): the count sits next to the body's reader, so its 413 is not
    # wrapped by the outer middlewares' task groups.
    app.add_middleware(BodyLimit, limit=MAX_DOCUMENT_BYTES)
    instrument_app(app, tracer_provider)
    app.state.broker = broker
    install_error_handlers(app)
    _check_credentials_first(app, service)
    install_metrics(app, service, inbound_counters)
    app.state.inbound = handler  # in-process tests feed it records directly
    built = AgencyApp(
        app=app,
        temporal=lambda: clients["temporal"],
        any_caller=Depends(service.auth.require(*ANY_ROLE)),
        a_clerk=Depends(service.auth.require(*CLERK_ROLES)),
        an_operator=Depends(service.auth.require("operator")),
        publisher=publisher,
    )
    _add_case_routes(built, service, handler, workflow_id)
    _add_codec_route(app, service)

    @app.put("/v1/admin/regions/{region}/connectivity", responses={404: {"model": ErrorBody}})
    def set_connectivity(
        region: str, body: ConnectivityIn, principal: Principal = built.an_operator
    ) -> JSONResponse:
        """Record that a region went live on the platform (or dropped off), R23; only
        an operator of that region may."""
        return set_region_connectivity(service, region, body, principal)

    return built


def _subscribe_inbox(
    service: Service,
    broker: KafkaBroker,
    publisher: KafkaDocumentPublisher,
    route: Route,
    counters: InboundCounters,
) -> InboundHandler:
    """The Kafka entry point: the side's platform inbox handed to the inbound handler."""
    settings = service.settings
    side = service.side
    inbox_topic = settings.topics.inbox(side)
    handler = InboundHandler(
        repository=service.repository,
        registry=service.registry,
        served=service.served,
        broker=broker,
        topics=settings.topics,
        signer=service.signer,
        keys=service.keys,
        route=route,
        publisher=publisher,
        replay_window=timedelta(hours=settings.replay_window_hours),
        counters=counters,
    )

    @broker.subscriber(
        inbox_topic,
        # One group per deployment: two deployments of one side (different regions) each
        # read every document and skip the ones for regions they do not serve.
        group_id=settings.consumer_group(side),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=raw_body,
        max_workers=INBOX_SUBSCRIBER_WORKERS,
        title=f"{side}-agency platform inbox",
        description=f"Platform documents addressed to the {side} agency.",
    )
    async def on_platform_document(body: bytes, message: KafkaMessage) -> None:
        record = message.raw_message
        await handler.handle(
            body,
            topic=inbox_topic,
            partition=getattr(record, "partition", None),
            offset=getattr(record, "offset", None),
        )

    return handler


def _lifespan(
    service: Service,
    broker: KafkaBroker,
    handler: InboundHandler,
    clients: dict[str, Client],
    tracer_provider: TracerProvider | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up and shut-down: the Temporal client, the topics, the broker and the
    dead-letter re-drive schedule."""
    settings = service.settings
    log = logging.getLogger(f"medtransfer.{service.side}")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        clients["temporal"] = await connect_temporal(settings, tracer_provider)
        await ensure_topics(settings)
        await broker.start()
        log.info(
            "%s agency API up; serving regions %s", service.side, ",".join(sorted(service.served))
        )
        redriving = asyncio.create_task(
            redrive_forever(handler, timedelta(seconds=settings.redrive_dead_letters_seconds))
        )
        yield
        redriving.cancel()
        await broker.stop()

    return lifespan


def _check_credentials_first(app: FastAPI, service: Service) -> None:
    key_guesses = LoginThrottle(failures=KEY_GUESSES_PER_WINDOW)

    @app.middleware("http")
    async def credentials_first(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # A caller without a valid key learns nothing about its request, not even that
        # the body is malformed: the key is checked before the body is read.
        if request.url.path.startswith("/v1/"):
            client = request.client.host if request.client else "unknown"
            wait = key_guesses.retry_after(client)
            if wait is not None:
                # An address that keeps presenting unknown keys is slowed down, as at
                # the operations page's sign-in: the API is no unlimited key oracle.
                limited = problem(
                    429, "TOO_MANY_ATTEMPTS", f"too many unknown keys: retry in {wait} s"
                )
                limited.headers["Retry-After"] = str(wait)
                return limited
            try:
                service.auth.principal(request.headers.get("x-api-key"))
            except AuthError as exc:
                if exc.status_code == 401 and request.headers.get("x-api-key"):
                    key_guesses.failed(client)
                return auth_error_response(exc)
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_DOCUMENT_BYTES):
                return problem(
                    413, "TOO_LARGE", f"a request body is at most {MAX_DOCUMENT_BYTES} bytes"
                )
        return await call_next(request)


class BodyLimit:
    """A body sent without Content-Length (chunked) is counted as it is read: past
    ``limit`` bytes the read fails with 413 TOO_LARGE (FastAPI passes an HTTPException
    raised while it reads the body on to the error handlers)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        read = 0

        async def counted() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.limit:
                    raise HTTPException(413, f"a request body is at most {self.limit} bytes")
            return message

        await self.app(scope, counted, send)


def _add_case_routes(
    built: AgencyApp,
    service: Service,
    handler: InboundHandler,
    workflow_id: Callable[[str], str],
) -> None:
    """Health, the case read routes both sides answer, and the dead-letter re-drive."""
    app = built.app
    side = service.side
    any_caller = built.any_caller

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "side": side}

    @app.get("/v1/cases/{case_id}", response_model=CaseOut, responses={404: {"model": ErrorBody}})
    def get_case(case_id: str, principal: Principal = any_caller) -> CaseOut | JSONResponse:
        """Where the case stands (R17): status, working days in status, what is awaited from
        whom by when, deadlines, escalations, decisions with their rules, and the timeline."""
        row = owned_case(service.repository, case_id, principal)
        today = service.today()
        return case_out(
            row,
            service.calendar(today),
            today,
            list(service.repository.events(case_id)),
            service.workflow_url(workflow_id(case_id)),
        )

    @app.get("/v1/cases", response_model=list[CaseOut])
    def list_cases(
        status: str | None = None,
        region: str | None = None,
        escalated: bool | None = None,
        warning: str | None = Query(None, description="e.g. calendar-fallback-2027"),
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0, le=2**31 - 1),
        principal: Principal = any_caller,
    ) -> list[CaseOut]:
        today = service.today()
        calendar = service.calendar(today)
        rows = service.repository.list_cases(
            status=status,
            region=region,
            escalated=escalated,
            warning=warning,
            visible_to=principal.regions,
            limit=limit,
            offset=offset,
        )
        return [case_out(r, calendar, today) for r in rows]

    @app.post("/v1/admin/dead-letters/redrive")
    async def redrive_dead_letters(principal: Principal = built.an_operator) -> JSONResponse:
        """Hand the dead letters whose cause can clear (UNKNOWN_CASE, UNKNOWN_SENDER_REGION)
        to their case again now; the outcomes by count (the schedule does the same)."""
        return await redrive_for(service, handler, principal)


def _add_codec_route(app: FastAPI, service: Service) -> None:
    """The Temporal UI's codec server (``/codec/decode``, outside the API documents)."""
    settings = service.settings
    log = logging.getLogger(f"medtransfer.{service.side}")
    codec = temporal_codec(settings)
    sso = (
        OperatorTokenVerifier(
            settings.codec_jwks_url,
            settings.codec_issuer,
            settings.temporal_namespace,
            audience=settings.codec_audience,
            allow_http=settings.local_demo,
        )
        if settings.codec_jwks_url
        else None
    )

    @app.post("/codec/decode", include_in_schema=False)
    async def codec_decode(request: Request) -> JSONResponse:
        """The Temporal UI's codec server: an authorised operator sees a case's payloads
        decrypted; nobody else does."""
        caller = await _codec_caller(service, sso, request)
        if isinstance(caller, JSONResponse):
            return caller
        try:
            body = await request.json()
            decoded = decode_for_ui(codec, body if isinstance(body, dict) else {})
        except (CodecError, ValueError, RecursionError):  # RecursionError: "[[[[..." JSON
            return problem(400, "MALFORMED_BODY", "a codec request is {payloads: [...]} of ours")
        log.info("codec: %s decoded Temporal payloads", caller)
        return JSONResponse(decoded)


async def _codec_caller(
    service: Service, sso: OperatorTokenVerifier | None, request: Request
) -> str | JSONResponse:
    """Who asks to see payloads: an operator's API key (X-Api-Key or as the bearer),
    or, with MEDTRANSFER_CODEC_JWKS_URL, the operator's single-sign-on token the
    Temporal UI passes on, with a permission on this deployment's namespace."""
    bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if sso is not None and not request.headers.get("x-api-key") and looks_like_jwt(bearer):
        try:
            await asyncio.to_thread(sso.subject, bearer)
        except TokenRefused as refused:
            return problem(401, "CREDENTIALS_INVALID", str(refused))
        return "single-sign-on operator"
    try:
        principal = service.auth.principal(request.headers.get("x-api-key") or bearer or None)
    except AuthError as exc:
        return auth_error_response(exc)
    if "operator" not in principal.roles:
        return problem(403, "ROLE_REQUIRED", "decoding Temporal payloads needs the operator role")
    try:
        # The payloads are the whole deployment's: an operator of every region it serves.
        require_every_region(principal, service.served)
    except AuthError as exc:
        return auth_error_response(exc)
    return principal.agency
