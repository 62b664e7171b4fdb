"""The public progress routes (R17): no API key, POST only (no secret in a URL or an
access log), every attempt counted before it is checked, every failure the same "no case
matches". JSON for apps, and a small server-rendered page for a browser. The lookup and
the rendering are services/incoming_agency/progress.py's; this module translates."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from services.common.api import ErrorBody, ErrorReason, problem
from services.common.bootstrap import Service
from services.common.throttle import LoginThrottle, client_address
from services.incoming_agency.progress import (
    NO_MATCH,
    PAGE_HEADERS,
    ProgressAnswer,
    ProgressLookup,
    ProgressRecords,
    answer_page,
    cross_site_page,
    form_page,
    not_found_page,
    throttled_page,
)

# A query is four short fields: anything longer is refused before it is read on.
MAX_QUERY_BYTES = 4096
NO_STORE = {"Cache-Control": "no-store"}


class ByCaseIn(BaseModel):
    """The case number and the access secret given at acceptance."""

    case_id: str = Field(min_length=1, max_length=40)
    secret: str = Field(min_length=1, max_length=64, repr=False)


class ByPersonIn(BaseModel):
    """The ID number and the name, both as in the application."""

    id_number: str = Field(min_length=1, max_length=40, repr=False)
    name: str = Field(min_length=1, max_length=100, repr=False)


Query = TypeVar("Query", ByCaseIn, ByPersonIn)


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


PUBLIC_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: _error("Sent by a browser for another site's page (CROSS_SITE), not counted"),
    404: _error("No case matches (the same answer for every kind of mismatch)"),
    413: _error(f"The body is over {MAX_QUERY_BYTES} bytes (TOO_LARGE)"),
    422: _error("Invalid request: the fields and problems, never the submitted values"),
    429: _error("Too many queries from this address (TOO_MANY_ATTEMPTS); see Retry-After"),
}


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    # The body is read by the route itself (after the attempt is counted), so the
    # document is told its shape here.
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def throttle_key(client: str) -> str:
    """The address the throttle counts: an IPv6 client by its /64 (one customer's network,
    2**64 addresses to rotate through), an IPv4 address mapped into IPv6 as that address."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def cross_site(request: Request) -> bool:
    """A browser sending this query for another site's page (CSRF): it would spend the
    visitor's attempts and lock the visitor's address out. Browsers say so in
    Sec-Fetch-Site, older ones by an Origin that is not this host; other clients send
    neither and are not affected."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site == "cross-site"
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


def refused_cross_site() -> JSONResponse:
    return problem(
        403,
        "CROSS_SITE",
        "a query from another site's page is refused",
        message_zh="请在本站的查询页面上提交查询。",
    )


def no_match() -> JSONResponse:
    response = problem(404, "NO_MATCHING_CASE", NO_MATCH[1], message_zh=NO_MATCH[0])
    response.headers.update(NO_STORE)
    return response


def throttled(wait: int) -> JSONResponse:
    response = problem(
        429,
        "TOO_MANY_ATTEMPTS",
        f"too many queries: retry in {wait} s",
        message_zh=f"查询次数过多，请{wait}秒后再试。",
    )
    response.headers["Retry-After"] = str(wait)
    return response


async def capped_body(request: Request) -> bytes | None:
    """The body, or None when it is longer than MAX_QUERY_BYTES (declared or sent)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_QUERY_BYTES):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_QUERY_BYTES:
            return None
    return bytes(body)


def invalid(exc: ValidationError) -> JSONResponse:
    # Field names and problems only: the values are a person's data.
    reasons = [
        ErrorReason(
            code="INVALID_FIELD",
            field=".".join(str(p) for p in e["loc"]),
            message_en=str(e["msg"]).split(", input")[0],
        )
        for e in exc.errors()
    ]
    body = ErrorBody(error="invalid request", reasons=reasons)
    return JSONResponse(status_code=422, content=body.model_dump(exclude_none=True))


@dataclass(frozen=True)
class PublicProgress:
    """The routes of create_public_router. Every attempt is counted before anything is
    read; the lookups' SQL runs off the event loop."""

    lookup: ProgressLookup
    throttle: LoginThrottle

    async def json_query(
        self, request: Request, model: type[Query]
    ) -> tuple[str, Query | JSONResponse]:
        client = throttle_key(client_address(request))
        if cross_site(request):
            return client, refused_cross_site()  # refused before it is counted
        wait = self.throttle.attempt(client)  # counted before anything is checked
        if wait is not None:
            return client, throttled(wait)
        raw = await capped_body(request)
        if raw is None:
            return client, problem(413, "TOO_LARGE", f"a query is at most {MAX_QUERY_BYTES} bytes")
        try:
            return client, model.model_validate_json(raw)
        except ValidationError as exc:
            return client, invalid(exc)

    def json_answer(self, client: str, answer: ProgressAnswer | None) -> JSONResponse:
        if answer is None:
            return no_match()
        self.throttle.succeeded(client)
        return JSONResponse(answer.model_dump(mode="json"), headers=NO_STORE)

    async def progress_by_case(self, request: Request) -> JSONResponse:
        """R17, for the person or the employer, no API key: the case's progress by its
        number and the access secret given at acceptance. Chinese first, masked."""
        client, query = await self.json_query(request, ByCaseIn)
        if isinstance(query, JSONResponse):
            return query
        answer = await asyncio.to_thread(self.lookup.by_case, query.case_id, query.secret)
        return self.json_answer(client, answer)

    async def progress_by_person(self, request: Request) -> JSONResponse:
        """R17, for the person or the employer, no API key: the person's cases at this
        agency by the ID number and the name (both must match). Chinese first, masked."""
        client, query = await self.json_query(request, ByPersonIn)
        if isinstance(query, JSONResponse):
            return query
        answer = await asyncio.to_thread(self.lookup.by_person, query.id_number, query.name)
        return self.json_answer(client, answer)

    async def progress_form(self) -> HTMLResponse:
        return HTMLResponse(form_page(), headers=PAGE_HEADERS)

    async def progress_page(self, request: Request) -> Response:
        client = throttle_key(client_address(request))
        if cross_site(request):  # refused before it is counted
            return HTMLResponse(cross_site_page(), status_code=403, headers=PAGE_HEADERS)
        wait = self.throttle.attempt(client)
        if wait is not None:
            return HTMLResponse(
                throttled_page(wait),
                status_code=429,
                headers={**PAGE_HEADERS, "Retry-After": str(wait)},
            )
        raw = await capped_body(request)
        fields = parse_qs(raw.decode("utf-8", errors="replace")) if raw else {}
        answer = await asyncio.to_thread(self.page_answer, fields)
        if answer is None:
            return HTMLResponse(not_found_page(), status_code=404, headers=PAGE_HEADERS)
        self.throttle.succeeded(client)
        return HTMLResponse(answer_page(answer), headers=PAGE_HEADERS)

    def page_answer(self, fields: dict[str, list[str]]) -> ProgressAnswer | None:
        """The page form's query answered, by case or by person."""

        def field(name: str) -> str:
            return (fields.get(name) or [""])[0]

        try:
            if field("by") == "case":
                query_case = ByCaseIn(case_id=field("case_id"), secret=field("secret"))
                return self.lookup.by_case(query_case.case_id, query_case.secret)
            if field("by") == "person":
                query_person = ByPersonIn(id_number=field("id_number"), name=field("name"))
                return self.lookup.by_person(query_person.id_number, query_person.name)
        except ValidationError:
            pass  # a blank or overlong field: no case matches it either
        return None


def create_public_router(
    service: Service, records: ProgressRecords, throttle: LoginThrottle
) -> APIRouter:
    """The person's and the employer's own progress routes (R17), under /public."""
    public = PublicProgress(ProgressLookup(service.repository, records, service.registry), throttle)
    router = APIRouter(tags=["public"])
    for path, route, query in (
        ("/public/progress/by-case", public.progress_by_case, ByCaseIn),
        ("/public/progress/by-person", public.progress_by_person, ByPersonIn),
    ):
        router.add_api_route(
            path,
            route,
            methods=["POST"],
            response_model=ProgressAnswer,
            responses=PUBLIC_RESPONSES,
            openapi_extra=_body_schema(query),
        )
    router.add_api_route(
        "/public/progress", public.progress_form, methods=["GET"], include_in_schema=False
    )
    router.add_api_route(
        "/public/progress", public.progress_page, methods=["POST"], include_in_schema=False
    )
    return router
