"""Configuration of both services, from environment variables (prefix MEDTRANSFER_).

One table in the README lists every setting; defaults are the embedded single-machine
setup (SQLite under the state directory, local Kafka and Temporal).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from contracts.topics import Topics

REPO_DIR = Path(__file__).resolve().parents[2]
Side = Literal["incoming", "outgoing"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDTRANSFER_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    # The platform topics are created with these when missing (services/common/kafka_topics.py
    # ensure_topics); a cluster sets replication 3 and min.insync.replicas 2.
    kafka_topic_partitions: int = Field(6, ge=1)
    kafka_replication_factor: int = Field(1, ge=1)
    kafka_min_insync_replicas: int = Field(1, ge=1)
    # Kafka transport security (services/common/transport.py): PLAINTEXT on loopback only.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_ssl_ca_file: Path | None = None
    kafka_ssl_cert_file: Path | None = None
    kafka_ssl_key_file: Path | None = None
    temporal_target: str = "127.0.0.1:7233"
    # Mutual TLS to the Temporal frontend (a client certificate its authorizer maps to
    # this deployment's namespace); unset = plaintext on loopback.
    temporal_tls_cert_file: Path | None = None
    temporal_tls_key_file: Path | None = None
    temporal_tls_ca_file: Path | None = None
    temporal_tls_server_name: str = ""
    # A file holding the bearer token (JWT) Temporal's authorizer maps to this deployment's
    # namespace permissions; read at each connect (a renewed token needs no redeploy).
    temporal_api_key_file: Path | None = None
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://127.0.0.1:8233"
    topic_prefix: str = "medtransfer"
    task_queue_prefix: str = "medtransfer"
    data_dir: Path = REPO_DIR / "var" / "local" / "data"
    # This deployment's own private keys only: <keys_dir>/<region>/<key_id>.pem, for the
    # regions it serves (contracts/keyring.py); every other region's key is public.
    keys_dir: Path = REPO_DIR / "var" / "local" / "keys"
    # The public-key registry (every region's keys with their validity), signed by the
    # platform operator, whose public key (base64 raw Ed25519) verifies it.
    key_registry_file: Path = REPO_DIR / "var" / "local" / "trust" / "registry.json"
    platform_public_key: str = ""
    # The local demo and the tests only: plaintext API keys and "*" regions are allowed,
    # and the deployment plays the platform operator (creates its served regions' keys and
    # enters them in the registry, platform.pem beside it). Never set in production.
    local_demo: bool = False
    # This deployment's name: its Kafka consumer groups are <prefix>-<side>-<deployment>,
    # so two deployments of one side each get every document (and skip other regions').
    deployment: str = "local"
    # Temporal payload encryption (services/common/codec.py): JSON {key_id: base64 32-byte
    # AES-256 key}; new payloads use temporal_codec_key_id, any listed key decrypts.
    temporal_codec_keys: str = ""
    temporal_codec_key_id: str = ""
    # The codec endpoint also takes the operator's single-sign-on token (a JWT the Temporal
    # UI passes on): its identity provider's JWKS address and issuer; unset = API keys only.
    codec_jwks_url: str = ""
    codec_issuer: str = ""
    # The audience (the Temporal UI's client id) the token must be issued for; unset = any.
    codec_audience: str = ""
    # An explicit URL (postgresql+psycopg://...) overrides the per-side SQLite file.
    incoming_database_url: str | None = None
    outgoing_database_url: str | None = None
    region_registry_file: Path = REPO_DIR / "data" / "regions.json"
    # Regions an operator added (services/common/regions_admin.py): an append-only journal
    # read at start after the shipped registry; a missing file adds nothing.
    region_overlay_file: Path = REPO_DIR / "var" / "local" / "regions" / "overlay.jsonl"
    # Official calendar years, <year>.json, that add to or override chinesecalendar's;
    # re-read whenever the directory changes. In production a volume (compose) or the
    # ConfigMap medtransfer-calendar (Kubernetes) outside the image: loading a year
    # (calendar_admin) needs no new image (deploy/production/README.md, "Calendar").
    calendar_dir: Path = REPO_DIR / "data" / "calendar"
    policy_file: Path = REPO_DIR / "data" / "policy" / "policies.jsonl"
    # Regions this deployment serves on each side; empty = every region in the registry.
    served_regions: list[str] = Field(default_factory=list)
    # Agency API keys as JSON (services/common/auth.py); none = every /v1 call is refused.
    api_keys: str = ""
    # Retry of a delivery to a region that is not connected (R23): first wait and cap.
    delivery_retry_initial_seconds: float = 5.0
    delivery_retry_max_seconds: float = 600.0
    # A signed document older than this on arrival is accepted with a WARNING (a receiver
    # was offline, or a clock is skewed): replays are refused by message id and content.
    replay_window_hours: float = Field(168.0, gt=0)
    # The stuck-case sweep (services/common/stuck.py), run by each side's worker.
    stuck_sweep_seconds: float = Field(60.0, gt=0)
    stuck_quiet_seconds: float = Field(120.0, ge=0)
    # The resend sweep (services/common/resend.py): a document without receipt is sent
    # again after this, doubling up to an hour; a clerk exception after so many sends.
    resend_after_seconds: float = Field(60.0, gt=0)
    resend_escalate_after: int = Field(10, ge=2)
    # How often each API hands dead letters whose cause can clear to their case again.
    redrive_dead_letters_seconds: float = Field(300.0, gt=0)
    log_json: bool = True
    # OpenTelemetry traces (services/common/tracing.py): off, JSON lines per process in
    # tracing_dir, or OTLP over HTTP (endpoint unset = the exporter's OTEL_* defaults).
    tracing_exporter: Literal["off", "file", "otlp"] = "off"
    tracing_dir: Path = REPO_DIR / "var" / "local" / "traces"
    tracing_otlp_endpoint: str | None = None

    @property
    def kafka_servers(self) -> list[str]:
        """The bootstrap servers as a list: FastStream takes a comma-separated string for
        a single host."""
        return [server.strip() for server in self.kafka_bootstrap.split(",") if server.strip()]

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix)

    def consumer_group(self, side: Side) -> str:
        """This deployment's group on its side's platform inbox: a group per deployment,
        so two deployments of one side never take each other's documents."""
        return f"{self.topic_prefix}-{side}-{self.deployment}"

    def task_queue(self, side: Side) -> str:
        return f"{self.task_queue_prefix}-{side}"

    def database_url(self, side: Side) -> str:
        explicit = self.incoming_database_url if side == "incoming" else self.outgoing_database_url
        if explicit:
            return explicit
        return f"sqlite:///{self.data_dir / f'{side}-agency.db'}"


class FixedSettings(Settings):
    """Settings from explicit values and defaults only, never the environment or a file:
    for output that must be the same on every machine (the API documents) and for tests."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)
