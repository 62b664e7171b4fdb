"""Transport security of the clients: Kafka over TLS with SASL/SCRAM (or mutual TLS), and
Temporal over mutual TLS. Unset, both talk plaintext on loopback (the local stack);
production sets them from Secrets (docs/production-trust.md)."""

from __future__ import annotations

import ssl
from typing import Any

from faststream.kafka.security import parse_security
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)
from temporalio.service import TLSConfig

from services.common.config import Settings


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_ca_file) if settings.kafka_ssl_ca_file else None
    )
    if settings.kafka_ssl_cert_file and settings.kafka_ssl_key_file:
        context.load_cert_chain(str(settings.kafka_ssl_cert_file), str(settings.kafka_ssl_key_file))
    return context


def kafka_security(settings: Settings) -> BaseSecurity | None:
    """FastStream's security object for the broker, or None for plaintext."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = _ssl_context(settings)
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    if not settings.kafka_sasl_username or not settings.kafka_sasl_password:
        raise ValueError("SASL_SSL needs MEDTRANSFER_KAFKA_SASL_USERNAME and _PASSWORD")
    sasl = {
        "SCRAM-SHA-512": SASLScram512,
        "SCRAM-SHA-256": SASLScram256,
        "PLAIN": SASLPlaintext,
    }[settings.kafka_sasl_mechanism]
    return sasl(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password,
        ssl_context=context,
        use_ssl=True,
    )


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """The same as aiokafka keyword arguments (the admin client that creates topics)."""
    return parse_security(kafka_security(settings))


def temporal_tls(settings: Settings) -> TLSConfig | bool:
    """Mutual TLS to the Temporal frontend when a client certificate is configured."""
    cert, key, ca = (
        settings.temporal_tls_cert_file,
        settings.temporal_tls_key_file,
        settings.temporal_tls_ca_file,
    )
    if not (cert or ca):
        return False
    if bool(cert) != bool(key):
        raise ValueError(
            "Temporal mTLS needs both MEDTRANSFER_TEMPORAL_TLS_CERT_FILE and _KEY_FILE"
        )
    return TLSConfig(
        server_root_ca_cert=ca.read_bytes() if ca else None,
        client_cert=cert.read_bytes() if cert else None,
        client_private_key=key.read_bytes() if key else None,
        domain=settings.temporal_tls_server_name or None,
    )
