"""Acceptance of a platform document, before anything acts on it: size, envelope and
document validation, addressing, the sender's signature, the replay window and the
content digest, and the receipt that acknowledges it. Pure checks that raise or return
an :class:`InboundProblem` naming codes and fields, never values; the Kafka entry point
(services/common/inbound.py) and the certificate upload route both apply them."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, ValidationError

from contracts.dead_letter import DeadLetterCode
from contracts.documents import Receipt, TransferRequested
from contracts.envelope import Envelope
from contracts.keyring import KeyRegistrySource
from contracts.signing import SignatureInvalid
from domain.regions import RegionRegistry
from services.common.config import Side


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
    {
        DeadLetterCode.SIGNATURE_INVALID,
        DeadLetterCode.UNKNOWN_SENDER_REGION,
        DeadLetterCode.REPLAYED,
        DeadLetterCode.MISADDRESSED,
    }
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
        raise InboundProblem(
            f"{DeadLetterCode.OVERSIZED}: {len(raw)} bytes, the limit is {MAX_DOCUMENT_BYTES}"
        )
    try:
        envelope = Envelope.model_validate_json(raw)
    except ValidationError as exc:
        raise InboundProblem(
            f"{DeadLetterCode.INVALID_ENVELOPE}: {_fields(exc) or 'not JSON'}"
        ) from None
    ids = {"message_id": envelope.message_id, "case_id": envelope.case_id}
    if registry.get(envelope.to_region) is None:
        raise InboundProblem(
            f"{DeadLetterCode.UNKNOWN_REGION}: to_region {envelope.to_region}", **ids
        )
    if served and envelope.to_region not in served:
        raise NotAddressedToUs(f"{DeadLetterCode.NOT_OUR_REGION}: {envelope.to_region}", **ids)
    try:
        document = envelope.document()
    except ValidationError as exc:
        raise InboundProblem(
            f"{DeadLetterCode.INVALID_DOCUMENT} {envelope.type}: {_fields(exc)}", **ids
        ) from None
    far = _far_future_field(document, date.today() + FUTURE_DATE_LIMIT)
    if far is not None:
        # A date no real document carries (year 9999) would overflow the deadline
        # arithmetic and leave the case's first step retrying for ever.
        raise InboundProblem(
            f"{DeadLetterCode.INVALID_DOCUMENT} {envelope.type}: {far} is implausibly late", **ids
        )
    if registry.get(envelope.from_region) is None:
        raise InboundProblem(
            f"{DeadLetterCode.UNKNOWN_SENDER_REGION}: {envelope.from_region}", **ids
        )
    try:
        keys.verify(envelope, datetime.now(UTC))
    except SignatureInvalid as exc:
        raise InboundProblem(f"{DeadLetterCode.SIGNATURE_INVALID}: {exc.reason}", **ids) from None
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
        return InboundProblem(
            f"{DeadLetterCode.STALE}: signed more than {window} before arrival", **ids
        )
    if envelope.sent_at > now + CLOCK_SKEW:
        return InboundProblem(
            f"{DeadLetterCode.STALE}: signed more than {CLOCK_SKEW} in the future", **ids
        )
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
        return InboundProblem(f"{DeadLetterCode.UNKNOWN_CASE}: no case with this id", **ids)
    wanted = {case_regions} if case_regions else set()
    if request is not None:
        wanted.add((request.from_region, request.to_region))
    for outgoing, incoming in wanted:
        sender, receiver = (incoming, outgoing) if side == "outgoing" else (outgoing, incoming)
        if (envelope.from_region, envelope.to_region) != (sender, receiver):
            return InboundProblem(
                f"{DeadLetterCode.MISADDRESSED}: the documents of this {side} case come from region "
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
