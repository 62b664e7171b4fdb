"""Kafka and Temporal closed to everyone else (issue 13 item 4): the clients speak
SASL/SCRAM over TLS and mutual TLS when production configures them."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from services.common.config import Settings
from services.common.transport import kafka_client_options, kafka_security, temporal_tls

pytestmark = pytest.mark.unit


def test_the_local_stack_is_plaintext_on_loopback() -> None:
    settings = Settings()
    assert kafka_security(settings) is None
    assert temporal_tls(settings) is False


def test_kafka_uses_scram_over_tls_with_the_agencys_own_principal() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="agency-610100",
        kafka_sasl_password="not-a-real-secret",
    )
    options = kafka_client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "agency-610100"
    assert options["ssl_context"] is not None
    with pytest.raises(ValueError, match="USERNAME"):
        kafka_security(Settings(kafka_security_protocol="SASL_SSL"))


def test_temporal_uses_mutual_tls_with_the_client_certificate(tmp_path: Path) -> None:
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_bytes(f"-----{name}-----".encode())
    tls = temporal_tls(
        Settings(
            temporal_tls_cert_file=tmp_path / "cert.pem",
            temporal_tls_key_file=tmp_path / "key.pem",
            temporal_tls_ca_file=tmp_path / "ca.pem",
            temporal_tls_server_name="temporal-frontend.medtransfer",
        )
    )
    assert isinstance(tls, TLSConfig)
    assert tls.client_cert == b"-----cert.pem-----"
    assert tls.domain == "temporal-frontend.medtransfer"
    with pytest.raises(ValueError, match="KEY_FILE"):
        temporal_tls(Settings(temporal_tls_cert_file=tmp_path / "cert.pem"))
