"""HTTP access to the two agency APIs: the API key, retries of what is safe to retry, and
error answers turned into values a clerk can read."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

DEFAULT_INCOMING_URL = "http://127.0.0.1:8001"
DEFAULT_OUTGOING_URL = "http://127.0.0.1:8002"
DEFAULT_API_KEY = "demo-operator"
API_KEY_HEADER = "X-Api-Key"
USER_AGENT = "medtransfer-cli/1"
# Gateway and "try again" answers; a 503 of POST /v1/applications says to resubmit.
RETRY_STATUSES = frozenset({502, 503, 504})
MAX_BACKOFF_SECONDS = 5.0


def default_client_factory(
    base_url: str, headers: Mapping[str, str], timeout: float
) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers=dict(headers), timeout=timeout)


# Tests replace these two (an httpx.MockTransport client, a sleep that does not wait).
client_factory: Callable[[str, Mapping[str, str], float], httpx.Client] = default_client_factory
sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class Reason:
    """One reason of an error answer, as the APIs send it."""

    code: str
    rule: str | None = None
    message_en: str = ""
    message_zh: str | None = None
    field: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Reason:
        if not isinstance(data, Mapping):
            return cls(code="UNKNOWN", message_en=str(data))

        def text(key: str) -> str | None:
            value = data.get(key)
            return None if value is None else str(value)

        return cls(
            code=text("code") or "UNKNOWN",
            rule=text("rule"),
            message_en=text("message_en") or "",
            message_zh=text("message_zh"),
            field=text("field"),
        )

    @property
    def label(self) -> str:
        """``CODE``, or ``INVALID_FIELD(person.id_number)`` when a field is named."""
        return f"{self.code}({self.field})" if self.field else self.code


class CliError(Exception):
    """Anything a command reports as a one-line error (no traceback) and exit code 1."""

    exit_code = 1


class ApiError(CliError):
    """The agency answered with an error status."""

    def __init__(self, agency: str, status: int, error: str, reasons: tuple[Reason, ...]) -> None:
        super().__init__(f"{agency} agency answered {status}: {error}")
        self.agency = agency
        self.status = status
        self.error = error
        self.reasons = reasons

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.label for r in self.reasons)

    @classmethod
    def from_response(cls, agency: str, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, Mapping) and ("error" in body or "reasons" in body):
            reasons = tuple(Reason.from_json(r) for r in body.get("reasons") or [])
            return cls(agency, response.status_code, str(body.get("error", "")), reasons)
        # Not one of our error bodies: FastAPI's own 404/405 ({"detail": ...}) or a proxy.
        detail = body.get("detail") if isinstance(body, Mapping) else None
        error = detail if isinstance(detail, str) else response.reason_phrase or "error"
        return cls(agency, response.status_code, error, ())


class Unreachable(CliError):
    """The agency could not be reached, or did not answer in time, after the retries."""

    def __init__(self, agency: str, url: str, detail: str) -> None:
        super().__init__(f"cannot reach the {agency} agency at {url}: {detail}")
        self.agency = agency
        self.url = url
        self.detail = detail


class AgencyApi:
    """One agency's API. ``retries`` extra attempts (with backoff) when the agency cannot
    be reached or answers 502/503/504; a request that may have been applied already is
    repeated only when ``idempotent``."""

    def __init__(
        self,
        agency: str,
        base_url: str,
        api_key: str,
        *,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        timeout: float = 30.0,
    ) -> None:
        self.agency = agency
        self.base_url = base_url.rstrip("/")
        self.retries = max(retries, 0)
        self.backoff_seconds = backoff_seconds
        headers = {API_KEY_HEADER: api_key, "User-Agent": USER_AGENT}
        self.client = client_factory(self.base_url, headers, timeout)

    def __enter__(self) -> AgencyApi:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool = True,
    ) -> tuple[httpx.Response, int]:
        """The answer (whatever its status) and how many attempts it took."""
        attempt = 0
        while True:
            attempt += 1
            last = attempt > self.retries
            try:
                response = self.client.request(method, path, json=json, params=params)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Never reached the agency: repeating cannot apply anything twice.
                if last:
                    raise Unreachable(self.agency, self.base_url, _describe(exc)) from exc
            except httpx.TransportError as exc:
                if last or not idempotent:
                    raise Unreachable(self.agency, self.base_url, _describe(exc)) from exc
            else:
                if response.status_code in RETRY_STATUSES and idempotent and not last:
                    response.close()
                else:
                    return response, attempt
            sleep(min(self.backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS))

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool = True,
    ) -> Any:
        """The JSON body of a successful answer; ApiError for an error status."""
        response, _ = self.request(method, path, json=json, params=params, idempotent=idempotent)
        if response.status_code >= 400:
            raise ApiError.from_response(self.agency, response)
        try:
            return response.json()
        except ValueError as exc:
            raise CliError(
                f"the {self.agency} agency answered {response.status_code} without JSON"
            ) from exc

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.call("GET", path, params=params)


def _describe(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
