"""The Temporal client both services connect with: TLS, API key, tracing, and the payload
codec that keeps personal data out of Temporal's history."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from temporalio.client import Client

from services.common.codec import EncryptionCodec, codec_from_settings, encrypted_converter
from services.common.config import Settings
from services.common.tracing import temporal_interceptors
from services.common.transport import temporal_tls


def temporal_codec(settings: Settings) -> EncryptionCodec:
    """The payload codec: Temporal sees only ciphertext (services/common/codec.py)."""
    return codec_from_settings(
        settings.temporal_codec_keys,
        settings.temporal_codec_key_id,
        local_demo=settings.local_demo,
        # The local demo's codec key is the deployment's own secret, beside its keys.
        trust_dir=settings.keys_dir,
    )


async def connect_temporal(
    settings: Settings, tracer_provider: TracerProvider | None = None
) -> Client:
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        tls=temporal_tls(settings),
        api_key=(
            settings.temporal_api_key_file.read_text(encoding="ascii").strip()
            if settings.temporal_api_key_file
            else None
        ),
        data_converter=encrypted_converter(temporal_codec(settings)),
        interceptors=temporal_interceptors(tracer_provider),
    )
