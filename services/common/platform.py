"""Adapters to the platform: key custody, the Kafka publisher, inbound verification,
the case context (calendar + limits), and the Temporal client."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel, ValidationError
from temporalio.client import Client

from contracts.documents import AuditRecord, Receipt, TransferRequested
from contracts.envelope import Envelope
from contracts.keyring import KeyRegistrySource, RegionSigner, custody_problems
from contracts.local_trust import enrol_local_regions, platform_public_key
from contracts.signing import SignatureInvalid
from contracts.topics import Topics
from domain.calendar import WorkingDayCalendar, build_calendar
from domain.limits import CaseLimits
from domain.policy import PolicyDataError, PolicyTable, load_policy_table
from domain.regions import RegionRegistry, load_region_registry
from services.audit.emitter import AuditRecordSigner, AuditTimeline
from services.common.codec import EncryptionCodec, codec_from_settings, encrypted_converter
from services.common.config import Settings, Side
from services.common.policy_record import RECORD_FILE_NAME as POLICY_RECORD_FILE
from services.common.policy_record import PolicyVersionRecord
from services.common.tracing import kafka_middlewares, temporal_interceptors
from services.common.transport import kafka_security, temporal_tls
from workflows.types import CaseContext, LoadContextInput

log = logging.getLogger("medtransfer.platform")


def load_registry(settings: Settings) -> RegionRegistry:
    """The region registry (names, provinces, platform connection) with the operator's
    added regions (services/common/regions_admin.py); keys are apart."""
    return load_region_registry(settings.region_registry_file, settings.region_overlay_file)


def served_regions(settings: Settings, registry: RegionRegistry) -> set[str]:
    """The regions this deployment serves. Only the local demo may leave them unset (then
    it serves every region, playing both agencies)."""
    served = set(settings.served_regions)
    unknown = sorted(code for code in served if registry.get(code) is None)
    if unknown:
        raise ValueError(f"MEDTRANSFER_SERVED_REGIONS names unknown regions: {unknown}")
    if not served and not settings.local_demo:
        raise ValueError("MEDTRANSFER_SERVED_REGIONS must list the regions this deployment serves")
    return served or set(registry.codes())


def load_trust(settings: Settings, served: set[str]) -> KeyRegistrySource:
    """The public-key registry, verified with the platform operator's key, after checking
    key custody: the key directory holds private keys of served regions only.

    In the local demo the deployment first plays the platform operator for its own
    regions (contracts/local_trust.py); elsewhere it never creates or registers a key.
    """
    platform_public = settings.platform_public_key
    if settings.local_demo:
        enrol_local_regions(settings.key_registry_file, settings.keys_dir, served)
        platform_public = platform_public or platform_public_key(settings.key_registry_file.parent)
    problems = custody_problems(settings.keys_dir, served)
    if problems:
        raise ValueError("; ".join(problems))
    if not platform_public:
        raise ValueError(
            "MEDTRANSFER_PLATFORM_PUBLIC_KEY is not set: the key registry cannot be checked"
        )
    # The newest registry seen is remembered in the deployment's data directory (the key
    # folder is read-only in production): an older one, from before a revocation, is
    # refused, also after a restart.
    return KeyRegistrySource(
        settings.key_registry_file, platform_public, settings.data_dir / "registry-issued-at"
    )


class KafkaDocumentPublisher:
    """Publishes to the other side's platform topic (key = case_id) and to the audit topic.

    The publishers are declared on the broker, so the AsyncAPI document of each service
    shows what it sends and in which schema.
    """

    def __init__(
        self,
        broker: KafkaBroker,
        topics: Topics,
        side: Side,
        *,
        signer: RegionSigner | None = None,
        timeline: AuditTimeline | None = None,
    ) -> None:
        # With signer and timeline, every audit record goes out signed by its case's
        # region, linked to this side's previous record of the case (docs/audit-trust.md);
        # without them (tests, tools) unsigned, which the audit store refuses.
        if (signer is None) != (timeline is None):
            raise ValueError("signing audit records needs both the signer and the timeline")
        self._audit_signer = (
            AuditRecordSigner(signer, timeline)
            if signer is not None and timeline is not None
            else None
        )
        destination = topics.to_outgoing if side == "incoming" else topics.to_incoming
        other = "outgoing" if side == "incoming" else "incoming"
        self._documents = broker.publisher(
            destination,
            schema=Envelope,
            title=f"{side}-agency documents to the {other} agency",
            description="Signed platform documents; Kafka key = case_id.",
        )
        self._audit = broker.publisher(
            topics.audit,
            schema=AuditRecord,
            title=f"{side}-agency audit trail",
            description="Every state change of every case, append-only; key = case_id.",
        )

    async def publish_document(self, envelope: Envelope) -> None:
        await self._documents.publish(
            envelope.model_dump_json().encode("utf-8"),
            key=envelope.kafka_key,
            headers={"content-type": "application/json", "document-type": envelope.type},
        )

    async def publish_audit(self, record: AuditRecord) -> None:
        if self._audit_signer is not None:
            record = await self._audit_signer.sign(record)
        await self._audit.publish(
            record.model_dump_json().encode("utf-8"),
            key=record.case_id.encode("utf-8"),
            headers={"content-type": "application/json", "document-type": "AuditRecord"},
        )


def make_broker(
    settings: Settings, client_id: str, tracer_provider: TracerProvider | None = None
) -> KafkaBroker:
    # Idempotent producer with acks=all: a retried send never duplicates a record.
    return KafkaBroker(
        settings.kafka_servers,
        client_id=client_id,
        security=kafka_security(settings),
        enable_idempotence=True,
        acks="all",
        # FastStream would create a subscribed topic itself with 1 partition and 1
        # replica; the topics are created from settings instead (kafka_topics.py).
        allow_auto_create_topics=False,
        logger=logging.getLogger(f"medtransfer.kafka.{client_id}"),
        # "Received"/"Processed" for every message is debug detail, not an INFO line per
        # record (the inbound handler logs what it did with each document).
        log_level=logging.DEBUG,
        # With tracing on, publish puts the trace context in the record's headers and
        # the subscriber continues the trace from them.
        middlewares=kafka_middlewares(tracer_provider),
    )


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


@dataclass(frozen=True)
class InboundProblem(Exception):
    """A platform message that cannot be acted on; it goes to the dead-letter record."""

    reason: str
    message_id: str | None = None
    case_id: str | None = None


class NotAddressedToUs(InboundProblem):
    """For a region another deployment serves: skipped, not a dead letter."""


# The largest platform message we accept. A document with its information sheet is a few
# KiB; the limit stays far below Kafka's default max.message.bytes (1 MiB) and Temporal's
# 2 MiB payload limit, so nothing oversized ever reaches a workflow signal.
MAX_DOCUMENT_BYTES = 256 * 1024
# A validly signed document is refused when its signed sent_at is older than the replay
# window (README "Hostile input"), or later than the clock skew we tolerate.
DEFAULT_REPLAY_WINDOW = timedelta(days=7)
CLOCK_SKEW = timedelta(minutes=10)
# Reason codes that mean someone may be attacking the platform (alerted, counted by
# medtransfer_security_refusals_total), as opposed to a merely malformed message.
SECURITY_REASONS = frozenset(
    {"SIGNATURE_INVALID", "UNKNOWN_SENDER_REGION", "REPLAYED", "MISADDRESSED"}
)
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")


def reason_code(reason: str) -> str:
    """The code a dead-letter reason starts with (``"STALE: ..."`` -> ``"STALE"``)."""
    return re.split(r"[\s:]", reason, maxsplit=1)[0]


def _fields(exc: ValidationError) -> str:
    # Only our own field names: an unknown key chosen by the sender (it may be an ID
    # number) is never copied into the reason.
    def part(p: object) -> str:
        return str(p) if isinstance(p, int) or _FIELD_NAME.match(str(p)) else "<key>"

    return ",".join(".".join(part(p) for p in e["loc"]) for e in exc.errors()[:5])


def parse_and_verify(
    raw: bytes, registry: RegionRegistry, served: set[str], keys: KeyRegistrySource
) -> Envelope:
    """Check the size, validate the envelope and its document, check it is for a region
    we serve, and verify the sending region's signature. Raises InboundProblem with a
    reason naming codes and fields, never values."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InboundProblem(f"OVERSIZED: {len(raw)} bytes, the limit is {MAX_DOCUMENT_BYTES}")
    try:
        envelope = Envelope.model_validate_json(raw)
    except ValidationError as exc:
        raise InboundProblem(f"INVALID_ENVELOPE: {_fields(exc) or 'not JSON'}") from None
    ids = {"message_id": envelope.message_id, "case_id": envelope.case_id}
    if registry.get(envelope.to_region) is None:
        raise InboundProblem(f"UNKNOWN_REGION: to_region {envelope.to_region}", **ids)
    if served and envelope.to_region not in served:
        raise NotAddressedToUs(f"NOT_OUR_REGION: {envelope.to_region}", **ids)
    try:
        document = envelope.document()
    except ValidationError as exc:
        raise InboundProblem(f"INVALID_DOCUMENT {envelope.type}: {_fields(exc)}", **ids) from None
    far = _far_future_field(document, date.today() + FUTURE_DATE_LIMIT)
    if far is not None:
        # A date no real document carries (year 9999) would overflow the deadline
        # arithmetic and leave the case's first step retrying for ever.
        raise InboundProblem(f"INVALID_DOCUMENT {envelope.type}: {far} is implausibly late", **ids)
    if registry.get(envelope.from_region) is None:
        raise InboundProblem(f"UNKNOWN_SENDER_REGION: {envelope.from_region}", **ids)
    try:
        keys.verify(envelope, datetime.now(UTC))
    except SignatureInvalid as exc:
        raise InboundProblem(f"SIGNATURE_INVALID: {exc.reason}", **ids) from None
    return envelope


# No platform document speaks of a day further ahead than this (due dates are weeks away).
FUTURE_DATE_LIMIT = timedelta(days=366)


def _far_future_field(value: object, limit: date, path: str = "") -> str | None:
    """The first field holding a date after ``limit``, by its name, or None."""
    if isinstance(value, datetime):
        return path or "sent_at" if value.date() > limit else None
    if isinstance(value, date):
        return path if value > limit else None
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found = _far_future_field(getattr(value, name), limit, f"{path}.{name}".lstrip("."))
            if found:
                return found
    if isinstance(value, list | tuple):
        for item in value:
            found = _far_future_field(item, limit, path)
            if found:
                return found
    return None


def content_digest(envelope: Envelope) -> str:
    """What makes two deliveries of one message_id the same message: everything but the
    signing time and the signature (a retried send is re-signed, maybe later)."""
    data = envelope.model_dump(mode="json", exclude={"sent_at", "key_id", "signature"})
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def stale_problem(envelope: Envelope, now: datetime, window: timedelta) -> InboundProblem | None:
    """A signed document outside the replay window: too old, or from the future. Only
    noted (a WARNING): the inbox's message id and content digest refuse replays."""
    ids = {"message_id": envelope.message_id, "case_id": envelope.case_id}
    if envelope.sent_at < now - window:
        return InboundProblem(f"STALE: signed more than {window} before arrival", **ids)
    if envelope.sent_at > now + CLOCK_SKEW:
        return InboundProblem(f"STALE: signed more than {CLOCK_SKEW} in the future", **ids)
    return None


def misaddressed_problem(
    envelope: Envelope, side: Side, case_regions: tuple[str, str] | None
) -> InboundProblem | None:
    """A document must travel between the two regions of its case, towards our side:
    a region that is not a party to the case cannot act on it, even with a valid key.

    ``case_regions`` is the case's (outgoing region, incoming region), or None when this
    side has no such case; only a contact letter may start one (on the outgoing side).
    """
    ids = {"message_id": envelope.message_id, "case_id": envelope.case_id}
    request = (
        envelope.document_as(TransferRequested)
        if side == "outgoing" and envelope.type == "TransferRequested"
        else None
    )
    if case_regions is None and request is None:
        return InboundProblem("UNKNOWN_CASE: no case with this id", **ids)
    wanted = {case_regions} if case_regions else set()
    if request is not None:
        wanted.add((request.from_region, request.to_region))
    for outgoing, incoming in wanted:
        sender, receiver = (incoming, outgoing) if side == "outgoing" else (outgoing, incoming)
        if (envelope.from_region, envelope.to_region) != (sender, receiver):
            return InboundProblem(
                f"MISADDRESSED: the documents of this {side} case come from region "
                f"{sender} to {receiver}",
                **ids,
            )
    return None


def receipt_for(envelope: Envelope, sent_at: datetime) -> Envelope:
    """The receiver's acknowledgement of a document (every document but a receipt)."""
    step = "receipt-" + envelope.message_id.split("/", 1)[-1].replace("/", "-")
    return Envelope.wrap(
        Receipt(
            acknowledges_message_id=envelope.message_id,
            acknowledges_type=envelope.type,
            status="accepted",
        ),
        case_id=envelope.case_id,
        step=step,
        from_region=envelope.to_region,
        to_region=envelope.from_region,
        sent_at=sent_at,
        causation_id=envelope.message_id,
    )


class PolicyContext:
    """Calendar, limits and balance policy for a case (the ContextSource port).

    The policy table is validated when the service starts (invalid data stops it) and
    re-read when the file changes; a table that turns invalid at run time is refused with
    an error log and the last valid one stays in force. The calendar is rebuilt when the
    calendar directory changes, so next year's official calendar needs no redeploy.
    """

    def __init__(self, settings: Settings, registry: RegionRegistry) -> None:
        self._settings = settings
        self._registry = registry
        self._stamp = _file_stamp(settings.policy_file)
        # Item 13: a version in force is never edited (the record of loaded versions).
        self._record = PolicyVersionRecord(settings.data_dir / POLICY_RECORD_FILE)
        self._table = self._record.accept(load_policy_table(settings.policy_file, registry))

    def table(self) -> PolicyTable:
        stamp = _file_stamp(self._settings.policy_file)
        if stamp != self._stamp:
            try:
                self._table = self._record.accept(
                    load_policy_table(self._settings.policy_file, self._registry)
                )
                log.info("policy table reloaded: %d versions", len(self._table))
            except PolicyDataError as exc:
                log.error("policy table change refused, previous table stays in force: %s", exc)
            self._stamp = stamp
        return self._table

    def load(self, request: LoadContextInput) -> CaseContext:
        calendar_dir = self._settings.calendar_dir
        calendar_json = _calendar_json(
            request.start.year, str(calendar_dir), _dir_stamp(calendar_dir)
        )
        table = self.table()
        own = table.resolve(request.region, request.start)
        other = table.resolve(request.counterpart, request.start) if request.counterpart else own
        outgoing, incoming = (own, other) if request.side == "outgoing" else (other, own)
        # R12/R14: the outgoing region's transfer-out limit and the incoming region's
        # transfer-in limit, each never above the national maximum (checked on load).
        limits = CaseLimits(
            transfer_out_days=outgoing.transfer_out_days,
            transfer_in_days=incoming.transfer_in_days,
            reminder_before_days=min(own.reminder_before_days, outgoing.transfer_out_days - 1),
            soft_refusal_window_days=outgoing.soft_refusal_window_days,
            not_connected_escalation_days=own.not_connected_escalation_days,
        )
        limits.validate()
        balance = outgoing.balance_policy()  # R20, R22: the outgoing region's policy decides
        return CaseContext(
            calendar=calendar_json,
            limits={k: int(v) for k, v in vars(limits).items()},
            intra_province_balance=dict(balance.intra_province),
            employee_to_resident_balance=balance.employee_to_resident,
            policy_version=f"out:{outgoing.version_label} in:{incoming.version_label}",
            policy=own.to_json(),
            delivery_retry_initial_seconds=self._settings.delivery_retry_initial_seconds,
            delivery_retry_max_seconds=self._settings.delivery_retry_max_seconds,
            region_names=self._region_names(request.region, request.counterpart),
        )

    def _region_names(self, *codes: str | None) -> dict[str, str]:
        names: dict[str, str] = {}
        for code in codes:
            region = None if code is None else self._registry.get(code)
            if region is not None:
                names[region.code] = region.name
        return names


def _file_stamp(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


def working_day_calendar(years: tuple[int, ...], calendar_dir: Path) -> WorkingDayCalendar:
    """The calendar for ``years``, rebuilt only when the calendar directory changes."""
    return _calendar(years, str(calendar_dir), _dir_stamp(calendar_dir))


@lru_cache(maxsize=16)
def _calendar(years: tuple[int, ...], calendar_dir: str, _stamp: float) -> WorkingDayCalendar:
    return build_calendar(years, Path(calendar_dir))


def _dir_stamp(path: Path) -> float:
    if not path.exists():
        return 0.0
    return max([path.stat().st_mtime, *(p.stat().st_mtime for p in path.glob("*.json"))])


@lru_cache(maxsize=16)
def _calendar_json(year: int, calendar_dir: str, _stamp: float) -> dict[str, Any]:
    # Two years cover every limit that starts this year (at most 15 working days).
    return _calendar((year, year + 1), calendar_dir, _stamp).to_json()
