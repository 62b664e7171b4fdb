"""The record a service writes to the dead-letter topic for a message it cannot act on."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class DeadLetterCode(StrEnum):
    """The code a dead letter's ``reason`` starts with: why the message was not acted on."""

    OVERSIZED = "OVERSIZED"  # over the size limit
    INVALID_ENVELOPE = "INVALID_ENVELOPE"  # not JSON, or not an envelope
    INVALID_DOCUMENT = "INVALID_DOCUMENT"  # the payload is not its document type
    UNKNOWN_REGION = "UNKNOWN_REGION"  # addressed to a region the registry does not hold
    NOT_OUR_REGION = "NOT_OUR_REGION"  # another deployment's (not dead-lettered: skipped)
    UNKNOWN_SENDER_REGION = "UNKNOWN_SENDER_REGION"  # no public key for the sender
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    STALE = "STALE"  # signed too long before arrival, or in the future
    REPLAYED = "REPLAYED"  # a message id seen before with other content
    MISADDRESSED = "MISADDRESSED"  # not between the case's two regions
    UNKNOWN_CASE = "UNKNOWN_CASE"  # no case (or workflow) of this id here


class DeadLetter(BaseModel):
    """Why a platform message was not acted on, with the message itself for a re-drive.

    ``reason`` names a code and the fields concerned, never the values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(min_length=1)
    message_id: str | None = None
    case_id: str | None = None
    topic: str
    partition: int | None = None
    offset: int | None = None
    raw_base64: str = Field(repr=False, description="The message bytes as received.")
    raw_truncated: bool = Field(
        default=False,
        description="True when the message was over the size limit and raw_base64 holds "
        "only its first bytes.",
    )
