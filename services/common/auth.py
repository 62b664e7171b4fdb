"""Agency credentials for the HTTP APIs: an API key per agency system or clerk, with the
regions it may see and the roles it holds.

    MEDTRANSFER_API_KEYS='{"<key>": {"agency": "xian-portal", "regions": ["610100"],
                           "roles": ["integrator"]}, ...}'

Roles: ``integrator`` (submit, follow, withdraw, correct), ``clerk`` (+ resolve
exceptions, act on escalations), ``operator`` (+ enrolment records, region connectivity).
An agency reads and acts only on cases of its own regions ("*" = every region). Keys are
compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Header, HTTPException

Role = Literal["integrator", "clerk", "operator"]
ROLES: tuple[Role, ...] = ("integrator", "clerk", "operator")
ANY_ROLE: tuple[Role, ...] = ROLES
CLERK_ROLES: tuple[Role, ...] = ("clerk", "operator")


@dataclass(frozen=True)
class Principal:
    agency: str
    regions: frozenset[str]
    roles: frozenset[str]

    def may_see(self, *regions: str) -> bool:
        return "*" in self.regions or any(r in self.regions for r in regions)


class AuthError(HTTPException):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status_code=status, detail={"code": code, "message_en": message})


def parse_api_keys(text: str) -> dict[str, Principal]:
    """Parse MEDTRANSFER_API_KEYS; a malformed value stops the service at start-up."""
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"MEDTRANSFER_API_KEYS is not JSON: {exc.msg}") from None
    keys: dict[str, Principal] = {}
    for index, (key, entry) in enumerate(dict(raw).items(), start=1):
        roles = frozenset(entry.get("roles", []))
        if not roles <= set(ROLES) or len(key) < 8 or not entry.get("agency"):
            raise ValueError(
                f"MEDTRANSFER_API_KEYS entry {index}: needs an agency, a key of "
                f"8+ characters and roles among {', '.join(ROLES)}"
            )
        keys[key] = Principal(
            agency=str(entry["agency"]), regions=frozenset(entry.get("regions", [])), roles=roles
        )
    return keys


class Authenticator:
    def __init__(self, keys: dict[str, Principal]) -> None:
        self._keys = keys

    def principal(self, presented: str | None) -> Principal:
        if not presented:
            raise AuthError(401, "CREDENTIALS_REQUIRED", "send the agency's API key in X-Api-Key")
        for key, principal in self._keys.items():
            if hmac.compare_digest(key.encode(), presented.encode()):
                return principal
        raise AuthError(401, "CREDENTIALS_INVALID", "the API key is not known")

    def require(self, *roles: Role) -> Callable[..., Principal]:
        """A FastAPI dependency: the caller's principal, holding one of ``roles``."""
        wanted = set(roles)

        def dependency(x_api_key: Annotated[str | None, Header()] = None) -> Principal:
            principal = self.principal(x_api_key)
            if not (principal.roles & wanted):
                raise AuthError(
                    403, "ROLE_REQUIRED", f"this needs the role {' or '.join(sorted(wanted))}"
                )
            return principal

        return dependency


def check_regions(principal: Principal, regions: Iterable[str]) -> None:
    """403 unless the principal's agency serves one of the case's ``regions``."""
    if not principal.may_see(*regions):
        raise AuthError(403, "NOT_YOUR_REGION", "this case belongs to another agency's region")
