"""The operator's single-sign-on token, as the Temporal UI passes it to the codec endpoint
(``TEMPORAL_CODEC_PASS_ACCESS_TOKEN``): a JWT from the agency's identity provider, checked
against its published keys (JWKS), its issuer, its lifetime, and the Temporal permission
claim the default claim mapper reads (``"<namespace>:read"`` or more).

Only RS256 and ES256 are accepted (never ``none`` or an HMAC algorithm a public key could
be abused for). The JWKS is fetched over HTTPS and kept for ten minutes; an unknown key
id fetches it again, at most once a minute (the provider rotated its keys). With an
audience configured, the token must have been issued for it (the Temporal UI).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

JWKS_TTL_SECONDS = 600
JWKS_REFETCH_SECONDS = 60
LEEWAY_SECONDS = 60
PERMISSIONS = ("read", "write", "admin")


class TokenRefused(Exception):
    """The token does not let its bearer read this namespace's payloads."""


def _b64url(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenRefused("the token is not base64url") from exc


def _int(value: str) -> int:
    return int.from_bytes(_b64url(value), "big")


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def _fetch_jwks(url: str) -> dict[str, Any]:
    response = httpx.get(url, timeout=5)
    response.raise_for_status()
    document = response.json()
    return document if isinstance(document, dict) else {}


class OperatorTokenVerifier:
    def __init__(
        self,
        jwks_url: str,
        issuer: str,
        namespace: str,
        fetch: Callable[[str], dict[str, Any]] = _fetch_jwks,
        clock: Callable[[], float] = time.time,
        *,
        audience: str = "",
        allow_http: bool = False,
    ) -> None:
        if not jwks_url.startswith("https://") and not allow_http:
            # Whoever sits on a plain-http path could hand us the signing keys.
            raise ValueError("MEDTRANSFER_CODEC_JWKS_URL must be an https:// address")
        self._audience = audience
        self._jwks_url = jwks_url
        self._issuer = issuer
        self._namespace = namespace
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = float("-inf")

    def subject(self, token: str) -> str:
        """The token's subject, once every check passed; raises ``TokenRefused``."""
        try:
            header_b64, claims_b64, signature_b64 = token.split(".")
            header = json.loads(_b64url(header_b64))
            claims = json.loads(_b64url(claims_b64))
        except (ValueError, TypeError) as exc:
            raise TokenRefused("the token is not a JWT") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenRefused("the token is not a JWT")
        algorithm = header.get("alg")
        if algorithm not in ("RS256", "ES256"):
            raise TokenRefused("the token's algorithm is not RS256 or ES256")
        key = self._key(str(header.get("kid", "")))
        self._check_signature(
            algorithm, key, f"{header_b64}.{claims_b64}".encode("ascii"), _b64url(signature_b64)
        )
        self._check_claims(claims)
        return str(claims.get("sub", "operator"))

    def _key(self, kid: str) -> dict[str, Any]:
        now = self._clock()
        stale = now - self._fetched_at > JWKS_TTL_SECONDS
        # An unknown key id fetches again (the provider rotated), at most once a minute:
        # made-up key ids must not make every request a fetch.
        rotated = kid not in self._keys and now - self._fetched_at > JWKS_REFETCH_SECONDS
        if stale or rotated:
            try:
                document = self._fetch(self._jwks_url)
            except (httpx.HTTPError, ValueError) as exc:
                raise TokenRefused("the identity provider's keys cannot be fetched") from exc
            self._keys = {
                str(k.get("kid", "")): k for k in document.get("keys", []) if isinstance(k, dict)
            }
            self._fetched_at = now
        key = self._keys.get(kid)
        if key is None:
            raise TokenRefused("the token's key is not the identity provider's")
        return key

    @staticmethod
    def _check_signature(algorithm: str, jwk: dict[str, Any], signed: bytes, sig: bytes) -> None:
        try:
            if algorithm == "RS256" and jwk.get("kty") == "RSA":
                rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key().verify(
                    sig, signed, padding.PKCS1v15(), hashes.SHA256()
                )
                return
            if algorithm == "ES256" and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
                if len(sig) != 64:
                    raise TokenRefused("the token's signature is malformed")
                public = ec.EllipticCurvePublicNumbers(
                    _int(jwk["x"]), _int(jwk["y"]), ec.SECP256R1()
                ).public_key()
                der = encode_dss_signature(
                    int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
                )
                public.verify(der, signed, ec.ECDSA(hashes.SHA256()))
                return
        except (InvalidSignature, KeyError, ValueError) as exc:
            raise TokenRefused("the token's signature does not verify") from exc
        raise TokenRefused("the token's key does not fit its algorithm")

    def _check_claims(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        if claims.get("iss") != self._issuer:
            raise TokenRefused("the token is from another issuer")
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or now > expires + LEEWAY_SECONDS:
            raise TokenRefused("the token has expired")
        not_before = claims.get("nbf", claims.get("iat", 0))
        if isinstance(not_before, int | float) and now + LEEWAY_SECONDS < not_before:
            raise TokenRefused("the token is not valid yet")
        if self._audience:
            audience = claims.get("aud")
            audiences = audience if isinstance(audience, list) else [audience]
            if self._audience not in audiences:
                raise TokenRefused("the token was issued for another application")
        permissions = claims.get("permissions", [])
        wanted = {f"{self._namespace}:{level}" for level in PERMISSIONS}
        if not isinstance(permissions, list) or not wanted & {str(p) for p in permissions}:
            raise TokenRefused(f"the token gives no permission on namespace {self._namespace}")
