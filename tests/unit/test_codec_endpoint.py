"""The codec endpoint the Temporal UI calls (issue 13 item 4): an authorised operator,
by API key or by the single-sign-on token the UI passes on, sees a case's payloads; an
integrator, a clerk, a forged, expired or foreign token does not."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi.testclient import TestClient
from temporalio.api.common.v1 import Payload

from services.common.operator_token import OperatorTokenVerifier, TokenRefused
from services.common.temporal import temporal_codec
from tests.support.inprocess import inprocess_app, without_broker

pytestmark = pytest.mark.unit

NAMESPACE = "agency-a"
ISSUER = "https://sso.agency-a.example"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Provider:
    """A stand-in identity provider: an RSA key, its JWKS and tokens."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.key.public_key().public_numbers()
        self.jwks = {
            "keys": [
                {
                    "kty": "RSA",
                    "kid": "k1",
                    "n": b64url(numbers.n.to_bytes(256, "big")),
                    "e": b64url(numbers.e.to_bytes(3, "big")),
                }
            ]
        }

    def token(self, **claims: Any) -> str:
        header = {"alg": "RS256", "kid": "k1", "typ": "JWT"}
        body = {
            "iss": ISSUER,
            "sub": "operator-1",
            "exp": time.time() + 300,
            "permissions": [f"{NAMESPACE}:read"],
        } | claims
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(body).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"


def verifier(provider: Provider) -> OperatorTokenVerifier:
    return OperatorTokenVerifier(
        "https://sso/jwks", ISSUER, NAMESPACE, fetch=lambda _: provider.jwks
    )


def test_an_operators_token_from_the_identity_provider_is_accepted() -> None:
    provider = Provider()
    assert verifier(provider).subject(provider.token()) == "operator-1"


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"iss": "https://elsewhere"}, "another issuer"),
        ({"exp": time.time() - 3600}, "expired"),
        ({"permissions": ["agency-b:read"]}, "no permission"),
        ({"permissions": []}, "no permission"),
    ],
)
def test_a_token_for_someone_else_or_out_of_time_is_refused(
    claims: dict[str, Any], why: str
) -> None:
    provider = Provider()
    with pytest.raises(TokenRefused, match=why):
        verifier(provider).subject(provider.token(**claims))


def test_a_forged_or_algorithm_swapped_token_is_refused() -> None:
    provider, stranger = Provider(), Provider()
    with pytest.raises(TokenRefused, match="does not verify"):
        verifier(provider).subject(stranger.token())
    _, body, _ = provider.token().split(".")
    unsigned = b64url(json.dumps({"alg": "none", "kid": "k1"}).encode()) + f".{body}."
    with pytest.raises(TokenRefused, match="algorithm"):
        verifier(provider).subject(unsigned)
    hmac_header = b64url(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    with pytest.raises(TokenRefused, match="algorithm"):
        verifier(provider).subject(f"{hmac_header}.{body}.AAAA")


def test_the_endpoint_decodes_for_operators_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = Provider()
    monkeypatch.setattr("services.common.operator_token._fetch_jwks", lambda _url: provider.jwks)
    monkeypatch.setattr(
        "services.common.app_factory.OperatorTokenVerifier",
        lambda url, issuer, namespace, **options: OperatorTokenVerifier(
            url, issuer, namespace, fetch=lambda _: provider.jwks, **options
        ),
    )
    agency = without_broker(
        inprocess_app(
            "incoming",
            tmp_path,
            monkeypatch,
            codec_jwks_url="https://sso/jwks",
            codec_issuer=ISSUER,
            temporal_namespace=NAMESPACE,
        )
    )
    codec = temporal_codec(agency.service.settings)
    sealed = codec.encrypt(Payload(metadata={"encoding": b"json/plain"}, data=b'{"id":"x"}'))
    body = {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in sealed.metadata.items()},
                "data": base64.b64encode(sealed.data).decode(),
            }
        ]
    }
    with TestClient(agency.app) as client:

        def decode(headers: dict[str, str]) -> Any:
            return client.post("/codec/decode", json=body, headers=headers)

        for headers in (
            {"Authorization": f"Bearer {provider.token()}"},
            {"X-Api-Key": "demo-operator"},
        ):
            answer = decode(headers)
            assert answer.status_code == 200, answer.text
            assert base64.b64decode(answer.json()["payloads"][0]["data"]) == b'{"id":"x"}'
        assert decode({"X-Api-Key": "demo-clerk"}).status_code == 403
        assert decode({}).status_code == 401
        assert decode({"Authorization": f"Bearer {Provider().token()}"}).status_code == 401
        expired = provider.token(exp=time.time() - 3600)
        assert decode({"Authorization": f"Bearer {expired}"}).status_code == 401


@pytest.mark.parametrize("side", ["incoming", "outgoing"])
async def test_a_deeply_nested_codec_body_is_400_malformed_body_not_500(
    side: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``[[[[...`` far below the size limit makes the JSON parser recurse too deep."""
    import httpx

    app = without_broker(inprocess_app(side, tmp_path, monkeypatch)).app  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(
            "/codec/decode",
            content=b"[" * 100_000,
            headers={"Content-Type": "application/json", "X-Api-Key": "demo-operator"},
        )
    assert response.status_code == 400, response.text[:200]
    assert response.json()["reasons"][0]["code"] == "MALFORMED_BODY"
