"""The record a service writes to the dead-letter topic for a message it cannot act on."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
