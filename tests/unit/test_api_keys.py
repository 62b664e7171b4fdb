"""API keys are configured by their SHA-256 only; plaintext keys and the "*" region are the
local demo's, refused anywhere else at start-up; a presented key is compared in constant
time with every stored hash; ``python -m services.common.auth hash-key`` makes new keys."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
from pathlib import Path

import pytest

import services.common.auth as auth
from contracts.local_trust import platform_public_key
from services.common.auth import (
    Authenticator,
    AuthError,
    key_hash,
    parse_api_keys,
)
from tests.support.inprocess import build_inprocess_service

pytestmark = pytest.mark.unit

KEY = "a-long-random-agency-key-0123456789"
ENTRY = {"agency": "xian-portal", "regions": ["610100"], "roles": ["integrator"]}
REPO_DIR = Path(__file__).resolve().parents[2]


def keys_text(**entries: object) -> str:
    return json.dumps(entries)


def test_api_keys_hashed_entry_is_sha256_of_the_key() -> None:
    assert key_hash(KEY) == "sha256:" + hashlib.sha256(KEY.encode()).hexdigest()


def test_api_keys_a_hashed_key_authenticates_and_nothing_else_does() -> None:
    authenticator = Authenticator(parse_api_keys(keys_text(**{key_hash(KEY): ENTRY})))
    principal = authenticator.principal(KEY)
    assert (principal.agency, principal.regions) == ("xian-portal", frozenset({"610100"}))
    for wrong in (KEY + "x", KEY[:-1], key_hash(KEY), key_hash(KEY).removeprefix("sha256:")):
        with pytest.raises(AuthError) as refused:
            authenticator.principal(wrong)
        assert refused.value.status_code == 401
    with pytest.raises(AuthError) as missing:
        authenticator.principal(None)
    assert missing.value.status_code == 401


def test_api_keys_upper_case_hex_is_the_same_hash() -> None:
    upper = "sha256:" + key_hash(KEY).removeprefix("sha256:").upper()
    assert Authenticator(parse_api_keys(keys_text(**{upper: ENTRY}))).principal(KEY)


def test_api_keys_plaintext_is_refused_outside_the_local_demo() -> None:
    with pytest.raises(ValueError, match="plaintext") as refused:
        parse_api_keys(keys_text(**{KEY: ENTRY}))
    assert KEY not in str(refused.value)  # the message names the entry, never the key


def test_api_keys_every_region_star_is_refused_outside_the_local_demo() -> None:
    every = ENTRY | {"regions": ["*"]}
    with pytest.raises(ValueError, match="local demo only"):
        parse_api_keys(keys_text(**{key_hash(KEY): every}))


def test_api_keys_the_local_demo_takes_plaintext_and_star_and_keeps_only_hashes() -> None:
    every = ENTRY | {"regions": ["*"]}
    parsed = parse_api_keys(keys_text(**{KEY: every}), allow_demo=True)
    assert list(parsed) == [key_hash(KEY)]
    authenticator = Authenticator(parsed)
    assert authenticator.principal(KEY).holds("440300")
    assert KEY not in repr(vars(authenticator))
    with pytest.raises(ValueError, match="takes keys by hash"):
        Authenticator({KEY: parsed[key_hash(KEY)]})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (keys_text(**{"sha256:abc": ENTRY}), "64 hex"),
        (keys_text(**{"sha256:" + "g" * 64: ENTRY}), "64 hex"),
        (keys_text(**{key_hash(KEY): ENTRY | {"roles": ["root"]}}), "roles among"),
        (keys_text(**{key_hash(KEY): ENTRY | {"regions": "610100"}}), "list of regions"),
        (keys_text(**{key_hash(KEY): {"regions": ["610100"]}}), "needs an agency"),
        ("[1, 2]", "JSON object"),
        ("{not json", "not JSON"),
    ],
)
def test_api_keys_a_malformed_entry_stops_the_service(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_api_keys(text)


def test_api_keys_the_same_key_twice_is_refused() -> None:
    text = json.dumps({KEY: ENTRY, key_hash(KEY): ENTRY})
    with pytest.raises(ValueError, match="same key"):
        parse_api_keys(text, allow_demo=True)


def test_api_keys_every_stored_hash_is_compared_with_no_early_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    others = {key_hash(f"another-agency-key-{i:04d}"): ENTRY for i in range(5)}
    authenticator = Authenticator(parse_api_keys(json.dumps({key_hash(KEY): ENTRY, **others})))
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)  # the module services.common.auth calls
    authenticator.principal(KEY)  # the first entry matches
    assert len(compared) == 6
    assert {b for _, b in compared} == {hashlib.sha256(KEY.encode()).digest()}
    compared.clear()
    with pytest.raises(AuthError):
        authenticator.principal("unknown-key-000000")
    assert len(compared) == 6


def test_api_keys_hash_key_prints_an_entry_the_service_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = auth.main(
        ["hash-key", "--agency", "xian-clerks", "--region", "610100", "--role", "clerk"]
    )
    assert code == 0
    out, err = capsys.readouterr()
    key = err.strip().rsplit(" ", 1)[-1]
    entry = json.loads(out)
    assert len(key) >= 43  # 256 random bits, URL-safe base64
    assert list(entry) == [key_hash(key)]
    assert key not in out
    principal = Authenticator(parse_api_keys(out)).principal(key)
    assert (principal.agency, principal.roles) == ("xian-clerks", frozenset({"clerk"}))


def test_api_keys_hash_key_runs_as_a_module_and_hashes_a_key_from_stdin() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.common.auth", "hash-key", "--stdin", "--region", "610100"],
        input=KEY + "\n",
        capture_output=True,
        text=True,
        cwd=REPO_DIR,
        check=True,
    )
    assert json.loads(done.stdout) == {key_hash(KEY): ENTRY | {"agency": "CHANGE-ME"}}
    assert KEY not in done.stdout + done.stderr


def test_api_keys_a_service_outside_the_local_demo_refuses_star_at_start(tmp_path: Path) -> None:
    hashed = json.dumps({key_hash(KEY): ENTRY | {"regions": ["*"]}})
    # The local demo takes "*" (the flag reaches parse_api_keys from build_service) and
    # sets up the keys and the signed registry a real deployment would be given.
    demo = build_inprocess_service("incoming", tmp_path, api_keys=hashed, served_regions=["610100"])
    assert demo.auth.principal(KEY).holds("440300")
    demo.engine.dispose()
    production = {
        "local_demo": False,
        "served_regions": ["610100"],
        "platform_public_key": platform_public_key(tmp_path / "trust"),
    }
    with pytest.raises(ValueError, match="local demo only"):
        build_inprocess_service("incoming", tmp_path, api_keys=hashed, **production)
    plaintext = json.dumps({KEY: ENTRY})
    with pytest.raises(ValueError, match="plaintext"):
        build_inprocess_service("incoming", tmp_path, api_keys=plaintext, **production)
    started = build_inprocess_service(
        "incoming", tmp_path, api_keys=json.dumps({key_hash(KEY): ENTRY}), **production
    )
    assert started.auth.principal(KEY).agency == "xian-portal"
    started.engine.dispose()
