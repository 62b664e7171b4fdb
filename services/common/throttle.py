"""Attempts per client address within a window: the operations page's sign-in and the
APIs' unknown keys are limited by it."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from starlette.requests import Request

LOGIN_FAILURES = 5
LOGIN_WINDOW_SECONDS = 300
MAX_TRACKED_CLIENTS = 10_000


class LoginThrottle:
    """At most ``failures`` failed sign-ins per client address within ``window_seconds``."""

    def __init__(
        self,
        failures: int = LOGIN_FAILURES,
        window_seconds: float = LOGIN_WINDOW_SECONDS,
        max_clients: int = MAX_TRACKED_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.window_seconds = window_seconds
        self.max_clients = max_clients
        self.clock = clock
        self._failed: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it may now."""
        now = self.clock()
        recent = self._recent(client, now)
        if len(recent) < self.failures:
            return None
        return max(1, math.ceil(recent[0] + self.window_seconds - now))

    def failed(self, client: str) -> None:
        now = self.clock()
        if client not in self._failed and len(self._failed) >= self.max_clients:
            for stale in [c for c in self._failed if not self._recent(c, now)]:
                del self._failed[stale]
            while len(self._failed) >= self.max_clients:
                del self._failed[next(iter(self._failed))]
        self._failed.setdefault(client, deque()).append(now)

    def attempt(self, client: str) -> int | None:
        """Count a sign-in attempt before it is checked (one synchronous step, so
        simultaneous guesses cannot all pass the check first); the seconds to wait when
        the address has used up its attempts, else None."""
        wait = self.retry_after(client)
        if wait is None:
            self.failed(client)
        return wait

    def succeeded(self, client: str) -> None:
        """A sign-in that worked gives its own attempt back, not the failures before it
        (a valid key of one's own must not reset someone's guessing)."""
        recent = self._failed.get(client)
        if recent:
            recent.pop()

    def _recent(self, client: str, now: float) -> deque[float]:
        recent = self._failed.get(client, deque())
        while recent and now - recent[0] >= self.window_seconds:
            recent.popleft()
        if not recent:
            self._failed.pop(client, None)
        return recent


def client_address(request: Request) -> str:
    # The peer as the server sees it (uvicorn --proxy-headers puts a trusted proxy's
    # X-Forwarded-For here); never a header the client could set itself.
    return request.client.host if request.client else "unknown"
