"""The one envelope around every platform document.

Kafka key = ``case_id``: all messages of one case land in one partition and stay ordered.
The ``message_id`` is deterministic per case step (``{case_id}/{type}/{step}``), so a
redelivered message or a retried publishing activity carries the same id and the receiver
recognises it as a duplicate.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, field_validator

from contracts.canonical import canonical_json
from contracts.documents import DOCUMENT_TYPES, RegionCode

SCHEMA_VERSION = 1

D = TypeVar("D", bound=BaseModel)

_Base64 = r"^[A-Za-z0-9+/]+={0,2}$"
_TYPE_NAMES: list[JsonValue] = [name for name in sorted(DOCUMENT_TYPES)]


class Envelope(BaseModel):
    """A platform message: routing, identity and ordering data around one document.

    ``payload`` is the document in JSON form; :meth:`document` validates it with the model
    named by ``type``. ``signature`` is base64 Ed25519 over :meth:`signing_bytes`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    message_id: str = Field(min_length=1, description="Deterministic: {case_id}/{type}/{step}.")
    case_id: str = Field(min_length=1, description="Also the Kafka message key.")
    type: str = Field(json_schema_extra={"enum": _TYPE_NAMES})
    schema_version: int = Field(ge=1)
    from_region: RegionCode
    to_region: RegionCode
    sent_at: AwareDatetime
    correlation_id: str = Field(min_length=1)
    causation_id: str | None = Field(
        default=None, description="message_id of the message that caused this one."
    )
    # repr=False: the payload may hold personal data (a contact letter's person and account).
    payload: dict[str, Any] = Field(repr=False)
    # <region>-<label> (contracts/keyring.py): a sender's free text never reaches a log.
    key_id: str | None = Field(default=None, pattern=r"^\d{6}-[A-Za-z0-9][A-Za-z0-9._-]{0,60}$")
    signature: str | None = Field(default=None, pattern=_Base64)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in DOCUMENT_TYPES:
            raise ValueError(f"unknown document type {value!r}")
        return value

    @property
    def kafka_key(self) -> bytes:
        """The Kafka message key: the case id, so one case stays in one partition."""
        return self.case_id.encode("utf-8")

    def document(self) -> BaseModel:
        """Validate the payload with the model for ``type``.

        Raises pydantic ``ValidationError`` when the payload does not fit.
        """
        return DOCUMENT_TYPES[self.type].model_validate(self.payload)

    def document_as(self, model: builtins.type[D]) -> D:
        """Like :meth:`document`, for a caller that expects one type.

        Raises ``ValueError`` when ``type`` names another model.
        """
        if DOCUMENT_TYPES[self.type] is not model:
            raise ValueError(f"envelope carries {self.type}, not {model.__name__}")
        return model.model_validate(self.payload)

    @classmethod
    def wrap(
        cls,
        document: BaseModel,
        *,
        case_id: str,
        step: str,
        from_region: str,
        to_region: str,
        sent_at: datetime,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Envelope:
        """Put a document into an envelope with the deterministic id ``{case_id}/{type}/{step}``.

        ``step`` names the case step (e.g. ``"request"``, ``"remit-1"``) and must be the same
        when the same step is retried. ``correlation_id`` defaults to ``case_id``.
        """
        doc_type = type(document).__name__
        if DOCUMENT_TYPES.get(doc_type) is not type(document):
            raise ValueError(f"{doc_type} is not a platform document")
        if not step:
            raise ValueError("step must not be empty")
        return cls(
            message_id=f"{case_id}/{doc_type}/{step}",
            case_id=case_id,
            type=doc_type,
            schema_version=SCHEMA_VERSION,
            from_region=from_region,
            to_region=to_region,
            sent_at=sent_at,
            correlation_id=correlation_id if correlation_id is not None else case_id,
            causation_id=causation_id,
            payload=document.model_dump(mode="json"),
        )

    def signing_bytes(self) -> bytes:
        """Canonical bytes that the signature covers: everything but ``signature``.

        RFC 8785 (JCS) canonical JSON of the envelope's JSON form without ``signature``
        (``key_id`` included), UTF-8 encoded, so a verifier in any language gets the same
        bytes from its own JCS library (``docs/signatures.md``). Raises ``ValueError`` for
        a value JCS cannot carry exactly, such as an integer beyond 2**53 - 1.
        """
        return canonical_json(self.model_dump(mode="json", exclude={"signature"}))
