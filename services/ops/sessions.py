"""Sign-in state of the operations page, in the API process's memory: a clerk's API key is
checked once at sign-in and never kept; the browser holds only a random session id.

A session ends after 8 hours without a request or 12 hours after sign-in, whichever comes
first, or at sign-out, and with the process (sign in again after a restart; behind several
replicas the page needs sticky sessions). Each session has its own CSRF token, which every
form of the page posts back. Failed sign-ins are counted per client address: the sixth
within five minutes is answered 429 until the oldest of them is five minutes old.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.common.auth import Principal

SESSION_COOKIE = "mt_session"
LOGIN_COOKIE = "mt_login"  # the sign-in form's own CSRF token (before any session exists)
CSRF_FIELD = "csrf_token"
IDLE_SECONDS = 8 * 3600
ABSOLUTE_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000
TOKEN_BYTES = 32  # 256 bits
TOKEN_MIN_LENGTH = 32  # a sign-in form token the browser sends back is one of ours
LOGIN_COOKIE_SECONDS = 3600


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def same_token(expected: str, presented: object) -> bool:
    """Constant-time comparison of a form's token with the one expected."""
    if not isinstance(presented, str) or not presented or not expected:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "surrogatepass"))


def _session_key(session_id: str) -> str:
    # Sessions are found by a hash of their id: the table itself holds no usable cookie.
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class OpsSession:
    principal: Principal
    csrf_token: str
    started: float
    last_seen: float


class OpsSessions:
    """Server-side sessions by random 256-bit id; ``clock`` is replaceable in tests."""

    def __init__(
        self,
        idle_seconds: float = IDLE_SECONDS,
        absolute_seconds: float = ABSOLUTE_SECONDS,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.absolute_seconds = absolute_seconds
        self.max_sessions = max_sessions
        self.clock = clock
        self._sessions: dict[str, OpsSession] = {}
        # The pages that only read run in FastAPI's threadpool, the forms on the event
        # loop: every look-up, expiry and purge holds the lock.
        self._lock = threading.Lock()

    def start(self, principal: Principal) -> tuple[str, OpsSession]:
        """A new session for ``principal``: its id (the cookie's value) and the session."""
        session_id = new_token()
        with self._lock:
            now = self.clock()
            self._purge(now)
            while len(self._sessions) >= self.max_sessions:
                oldest = min(self._sessions, key=lambda k: self._sessions[k].started)
                del self._sessions[oldest]
            session = OpsSession(principal, new_token(), started=now, last_seen=now)
            self._sessions[_session_key(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> OpsSession | None:
        """The live session of this id (its idle clock restarted), or None."""
        if not session_id:
            return None
        key = _session_key(session_id)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            now = self.clock()
            if self._expired(session, now):
                del self._sessions[key]
                return None
            session.last_seen = now
            return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(_session_key(session_id), None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _expired(self, session: OpsSession, now: float) -> bool:
        return (
            now - session.last_seen >= self.idle_seconds
            or now - session.started >= self.absolute_seconds
        )

    def _purge(self, now: float) -> None:
        """Drop the expired sessions (the lock held by the caller)."""
        for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[key]
