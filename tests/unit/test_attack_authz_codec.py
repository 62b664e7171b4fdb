"""Attacks on the codec endpoint's authorisation (services/common/app_factory.py
codec_caller, services/common/operator_token.py).

1. Any key with the operator role decodes every payload of the deployment's namespace,
   whatever its regions: an operator of the outgoing agency 620800 (a key this incoming
   deployment lists so Tianshui can read its shared cases) decrypts the Temporal payloads
   of the Xi'an deployment, which hold the ID numbers, names and bank accounts of cases of
   every region it serves (cases 620800 is no party to). The dead-letter re-drive, which
   also acts on the whole deployment, needs every served region; the codec needs none.
2. The single-sign-on token's audience is never checked: a token the same identity
   provider issued for another application (with the permission claim) is accepted.
3. A token with an unknown key id makes the server fetch the JWKS again, every time: an
   unauthenticated caller makes it hit the identity provider once per request.
4. The JWKS address may be plain http: whoever is on the path supplies the signing keys.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from temporalio.api.common.v1 import Payload

from services.common.auth import ROLES, key_hash
from services.common.operator_token import OperatorTokenVerifier, TokenRefused
from services.common.temporal import temporal_codec
from tests.support.inprocess import inprocess_app, without_broker
from tests.unit.test_codec_endpoint import ISSUER, NAMESPACE, Provider, b64url

pytestmark = pytest.mark.unit

TIANSHUI_OPERATOR = "tianshui-operator-key-for-the-codec-attack"
XIAN_OPERATOR = "xian-operator-key-for-the-codec-attack-00"
KEYS = {
    key_hash(TIANSHUI_OPERATOR): {"agency": "tianshui-ops", "regions": ["620800"], "roles": ROLES},
    key_hash(XIAN_OPERATOR): {"agency": "xian-ops", "regions": ["610100"], "roles": ROLES},
}


def test_an_operator_of_another_region_cannot_decode_this_deployments_payloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agency = without_broker(
        inprocess_app(
            "incoming",
            tmp_path,
            monkeypatch,
            api_keys=json.dumps(KEYS),
            served_regions=["610100"],
        )
    )
    codec = temporal_codec(agency.service.settings)
    secret = b'{"person":{"id_number":"11010519491231002X","name":"x"}}'
    sealed = codec.encrypt(Payload(metadata={"encoding": b"json/plain"}, data=secret))
    body = {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in sealed.metadata.items()},
                "data": base64.b64encode(sealed.data).decode(),
            }
        ]
    }
    try:
        with TestClient(agency.app) as client:
            own = client.post("/codec/decode", json=body, headers={"X-Api-Key": XIAN_OPERATOR})
            assert own.status_code == 200  # the deployment's own operator
            foreign = client.post(
                "/codec/decode", json=body, headers={"X-Api-Key": TIANSHUI_OPERATOR}
            )
            redrive = client.post(
                "/v1/admin/dead-letters/redrive", headers={"X-Api-Key": TIANSHUI_OPERATOR}
            )
        assert redrive.status_code == 403  # the other whole-deployment route refuses it
        assert foreign.status_code == 403, (
            f"an operator of 620800 only (not served here) decoded this deployment's "
            f"payloads: {foreign.status_code} "
            f"{base64.b64decode(foreign.json()['payloads'][0]['data'])!r}"
        )
    finally:
        agency.service.engine.dispose()


def test_a_token_issued_for_another_application_is_refused() -> None:
    provider = Provider()
    # The deployment names the audience its tokens are for: the Temporal UI's client id.
    verifier = OperatorTokenVerifier(
        "https://sso/jwks", ISSUER, NAMESPACE, fetch=lambda _: provider.jwks, audience="temporal-ui"
    )
    assert verifier.subject(provider.token(aud="temporal-ui"))
    token = provider.token(aud="payroll-portal", azp="payroll-portal")
    with pytest.raises(TokenRefused, match="another application"):
        verifier.subject(token)


def test_unknown_key_ids_do_not_make_the_server_fetch_the_jwks_on_every_request() -> None:
    provider = Provider()
    fetches: list[str] = []

    def fetch(url: str) -> dict[str, Any]:
        fetches.append(url)
        return provider.jwks

    verifier = OperatorTokenVerifier("https://sso/jwks", ISSUER, NAMESPACE, fetch=fetch)
    verifier.subject(provider.token())  # the keys are cached now
    _, body, signature = provider.token().split(".")
    for n in range(50):
        header = b64url(json.dumps({"alg": "RS256", "kid": f"rotated-{n}"}).encode())
        with pytest.raises(TokenRefused):
            verifier.subject(f"{header}.{body}.{signature}")
    assert len(fetches) <= 3, (
        f"50 unauthenticated tokens with made-up key ids made {len(fetches)} JWKS fetches "
        "within the ten-minute cache"
    )


def test_the_identity_providers_keys_are_not_taken_over_plain_http() -> None:
    provider = Provider()
    try:
        verifier = OperatorTokenVerifier(
            "http://sso.agency-a.example/jwks", ISSUER, NAMESPACE, fetch=lambda _: provider.jwks
        )
    except ValueError:
        return
    try:
        verifier.subject(provider.token())
    except TokenRefused:
        return
    pytest.fail("a JWKS fetched over plain http verified an operator's token")
