"""Kafka topic names. Every message is keyed by ``case_id``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Topics:
    """The topics of one deployment; ``prefix`` separates deployments and test runs."""

    prefix: str = "medtransfer"

    @property
    def to_outgoing(self) -> str:
        """Platform documents addressed to the outgoing agency."""
        return f"{self.prefix}.platform.to-outgoing"

    @property
    def to_incoming(self) -> str:
        """Platform documents addressed to the incoming agency."""
        return f"{self.prefix}.platform.to-incoming"

    @property
    def audit(self) -> str:
        """Append-only AuditRecord stream of both sides."""
        return f"{self.prefix}.audit.case-events"

    @property
    def dead_letter(self) -> str:
        """Messages that could not be processed, with the reason."""
        return f"{self.prefix}.platform.dead-letter"

    def inbox(self, side: Literal["incoming", "outgoing"]) -> str:
        """The platform topic ``side``'s agency reads its documents from."""
        return self.to_incoming if side == "incoming" else self.to_outgoing

    def outbox(self, side: Literal["incoming", "outgoing"]) -> str:
        """The platform topic ``side``'s agency sends its documents on (the other's inbox)."""
        return self.to_outgoing if side == "incoming" else self.to_incoming

    def all(self) -> tuple[str, ...]:
        return (self.to_outgoing, self.to_incoming, self.audit, self.dead_letter)
