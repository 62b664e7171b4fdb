"""Agency credentials for the HTTP APIs: an API key per agency system or clerk, with the
regions it may see and the roles it holds. Only the key's SHA-256 is configured:

    MEDTRANSFER_API_KEYS='{"sha256:<64 hex>": {"agency": "xian-portal",
                           "regions": ["610100"], "roles": ["integrator"]}, ...}'

``python -m services.common.auth hash-key`` makes a new random key and prints it once
with its entry. The local demo (``MEDTRANSFER_LOCAL_DEMO``) may also list plaintext keys
and ``"*"`` (every region); anywhere else either stops the service at start-up.

Roles: ``integrator`` (submit, follow, withdraw, correct), ``clerk`` (+ resolve
exceptions, act on escalations), ``operator`` (+ enrolment records, region connectivity).
A key reads the cases of its regions, either side's, and acts only for the side whose
region it holds (:func:`require_party`; docs/authorisation.md lists every route). Keys are
compared in constant time and never logged.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import secrets
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Header, HTTPException

Role = Literal["integrator", "clerk", "operator"]
ROLES: tuple[Role, ...] = ("integrator", "clerk", "operator")
ANY_ROLE: tuple[Role, ...] = ROLES
CLERK_ROLES: tuple[Role, ...] = ("clerk", "operator")
EVERY_REGION = "*"
HASH_PREFIX = "sha256:"
_HASH_ENTRY = re.compile(r"^sha256:[0-9a-f]{64}$")
MIN_DEMO_KEY_LENGTH = 8
MIN_KEY_LENGTH = 16  # a key hashed from standard input

# Whose action a route performs, and so which region the caller's key must hold:
# ``incoming`` the case's incoming region (to_region), ``outgoing`` its outgoing region
# (from_region), ``region`` the region the route administers, ``deployment`` every region
# this deployment serves (routes that act on all of its documents at once).
Party = Literal["incoming", "outgoing", "region", "deployment"]
PARTY_NAMES: dict[Party, str] = {
    "incoming": "the incoming agency",
    "outgoing": "the outgoing agency",
    "region": "the region's own agency",
    "deployment": "an operator of every region this deployment serves",
}


@dataclass(frozen=True)
class Principal:
    agency: str
    regions: frozenset[str]
    roles: frozenset[str]

    def may_see(self, *regions: str) -> bool:
        return EVERY_REGION in self.regions or any(r in self.regions for r in regions)

    def holds(self, region: str) -> bool:
        """The key acts for ``region`` (the local demo's "*" holds every region)."""
        return EVERY_REGION in self.regions or region in self.regions


class AuthError(HTTPException):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status_code=status, detail={"code": code, "message_en": message})


def key_hash(key: str) -> str:
    """The configuration entry of ``key``: ``sha256:`` and the hex SHA-256 of its UTF-8."""
    return HASH_PREFIX + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def parse_api_keys(text: str, *, allow_demo: bool = False) -> dict[str, Principal]:
    """Parse MEDTRANSFER_API_KEYS into principals by key hash (``sha256:<hex>``); a
    malformed value stops the service at start-up. ``allow_demo`` (the local demo only)
    also accepts plaintext keys, hashed here, and the region ``"*"``."""
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"MEDTRANSFER_API_KEYS is not JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise ValueError("MEDTRANSFER_API_KEYS is not a JSON object of key entries")
    keys: dict[str, Principal] = {}
    for index, (key, entry) in enumerate(raw.items(), start=1):
        # Entries are named by position, never by key: the text is a credential.
        where = f"MEDTRANSFER_API_KEYS entry {index}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: is not an object")
        roles, regions = entry.get("roles", []), entry.get("regions", [])
        if (
            not entry.get("agency")
            or not isinstance(roles, list)
            or not set(roles) <= set(ROLES)
            or not isinstance(regions, list)
            or not all(isinstance(r, str) and r for r in regions)
        ):
            raise ValueError(
                f"{where}: needs an agency, a list of regions and roles among {', '.join(ROLES)}"
            )
        if key.lower().startswith(HASH_PREFIX):
            if not _HASH_ENTRY.match(key.lower()):
                raise ValueError(f"{where}: a hashed key is sha256: and 64 hex digits")
            hashed = key.lower()
        elif not allow_demo:
            raise ValueError(
                f"{where}: a plaintext key; configure its hash "
                "(python -m services.common.auth hash-key), plaintext is for the local demo only"
            )
        elif len(key) < MIN_DEMO_KEY_LENGTH:
            raise ValueError(f"{where}: a key needs {MIN_DEMO_KEY_LENGTH}+ characters")
        else:
            hashed = key_hash(key)
        if EVERY_REGION in regions and not allow_demo:
            raise ValueError(
                f'{where}: the region "*" (every region) is for the local demo only; '
                "list the regions the key serves"
            )
        if hashed in keys:
            raise ValueError(f"{where}: the same key as an earlier entry")
        keys[hashed] = Principal(
            agency=str(entry["agency"]), regions=frozenset(regions), roles=frozenset(roles)
        )
    return keys


class Authenticator:
    """Knows the keys only by their SHA-256: a presented key is hashed and compared in
    constant time with every stored hash (no early exit, so the time taken says nothing
    about which entry, if any, matched)."""

    def __init__(self, keys: Mapping[str, Principal]) -> None:
        entries: list[tuple[bytes, Principal]] = []
        for hashed, principal in keys.items():
            if not _HASH_ENTRY.match(hashed):
                raise ValueError("Authenticator takes keys by hash: use parse_api_keys")
            entries.append((bytes.fromhex(hashed.removeprefix(HASH_PREFIX)), principal))
        self._entries = tuple(entries)

    def principal(self, presented: str | None) -> Principal:
        if not presented:
            raise AuthError(401, "CREDENTIALS_REQUIRED", "send the agency's API key in X-Api-Key")
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found: Principal | None = None
        for stored, principal in self._entries:
            if hmac.compare_digest(stored, digest):
                found = principal
        if found is None:
            raise AuthError(401, "CREDENTIALS_INVALID", "the API key is not known")
        return found

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
    """403 unless the principal's agency serves one of the case's ``regions`` (reading a
    case: either party may)."""
    if not principal.may_see(*regions):
        raise AuthError(403, "NOT_YOUR_REGION", "this case belongs to another agency's region")


def require_party(principal: Principal, region: str, party: Party) -> None:
    """403 NOT_YOUR_PARTY unless the key holds ``region``, the region of the ``party``
    the route acts for (a case's to_region for the incoming agency's actions, its
    from_region for the outgoing agency's, the administered region for connectivity)."""
    if not principal.holds(region):
        raise AuthError(
            403,
            "NOT_YOUR_PARTY",
            f"only {PARTY_NAMES[party]} (region {region}) may do this; "
            "the key does not hold that region",
        )


def require_every_region(principal: Principal, regions: Iterable[str]) -> None:
    """403 NOT_YOUR_PARTY unless the key holds all of ``regions`` (a route acting on
    every region the deployment serves at once)."""
    missing = sorted(r for r in regions if not principal.holds(r))
    if missing:
        raise AuthError(
            403,
            "NOT_YOUR_PARTY",
            f"only {PARTY_NAMES['deployment']} may do this; "
            f"the key does not hold {', '.join(missing)}",
        )


def new_key_entry(
    agency: str, regions: Sequence[str], roles: Sequence[str], key: str | None = None
) -> tuple[str, dict[str, Any]]:
    """A random 256-bit key (or ``key``) and its MEDTRANSFER_API_KEYS entry."""
    key = key or secrets.token_urlsafe(32)
    entry = {"agency": agency, "regions": list(regions), "roles": list(roles)}
    # The entry must parse as the service will parse it.
    parse_api_keys(json.dumps({key_hash(key): entry}))
    return key, {key_hash(key): entry}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.common.auth",
        description="Make an API key and its MEDTRANSFER_API_KEYS entry (the key's hash).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser(
        "hash-key",
        help="print a new random key (give it to the agency system, once) and its entry",
    )
    make.add_argument("--agency", default="CHANGE-ME", help="who holds the key")
    make.add_argument("--region", action="append", default=[], help="a region it serves")
    make.add_argument("--role", action="append", choices=ROLES, default=[])
    make.add_argument(
        "--stdin",
        action="store_true",
        help="hash a key read from standard input instead of making one",
    )
    args = parser.parse_args(argv)
    presented = sys.stdin.readline().rstrip("\r\n") if args.stdin else None
    if presented is not None and len(presented) < MIN_KEY_LENGTH:
        parser.error(f"a key needs {MIN_KEY_LENGTH}+ characters (one made here has 43)")
    try:
        key, entry = new_key_entry(
            args.agency, args.region or ["CHANGE-ME"], args.role or ["integrator"], presented
        )
    except ValueError as exc:
        parser.error(str(exc))
    if presented is None:
        print(f"key (shown once, not stored anywhere): {key}", file=sys.stderr)
    print(json.dumps(entry, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
