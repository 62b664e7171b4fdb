"""The case vocabulary (domain/vocabulary.py) is the whole vocabulary: every status and
event name the workflows and services record is a member, every member is recorded
somewhere, and the README's case states are exactly the members a reader can see."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest

from contracts.dead_letter import DeadLetterCode
from contracts.documents import WithdrawalAnswered
from domain.vocabulary import (
    CaseEventName,
    ClerkActionName,
    EscalationReason,
    IncomingStatus,
    OutgoingStatus,
    StopAnswerCode,
)
from services.common.acceptance import reason_code

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CODE = sorted([*(ROOT / "workflows").rglob("*.py"), *(ROOT / "services").rglob("*.py")])
# Set before the first event (the workflow's own initial value, the outgoing row's first
# status): never shown as a state of its own in the README.
UNSHOWN = {IncomingStatus.STARTING, OutgoingStatus.STARTING, OutgoingStatus.RECEIVED}


def _constants(node: ast.AST | None) -> Iterator[str]:
    """The string constants a value can be: a literal, or either branch of ``a if c else b``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from _constants(node.body)
        yield from _constants(node.orelse)


def _recorded(path: Path) -> Iterator[tuple[str, str, int]]:
    """``("event" | "status", value, line)`` for each literal passed to ``record(...)``
    or as ``event=`` / ``status=`` anywhere in the module."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and node.func.attr == "record" and node.args:
            for value in _constants(node.args[0]):
                yield "event", value, node.lineno
            for value in _constants(node.args[1] if len(node.args) > 1 else None):
                yield "status", value, node.lineno
        for keyword in node.keywords:
            if keyword.arg in ("event", "status"):
                for value in _constants(keyword.value):
                    yield keyword.arg, value, node.lineno


def _statuses_for(path: Path) -> set[str]:
    relative = path.relative_to(ROOT).as_posix()
    if "incoming" in relative:
        return set(IncomingStatus)
    if "outgoing" in relative:
        return set(OutgoingStatus)
    return set(IncomingStatus) | set(OutgoingStatus)


# Status values of other things than a case (a document's receipt, a reconciliation row).
OTHER_STATUSES = {"accepted", "recorded", "matched", "unmatched", "transferred_out"}


def test_every_recorded_event_and_status_is_in_the_vocabulary() -> None:
    unknown = []
    for path in CODE:
        for kind, value, line in _recorded(path):
            allowed = set(CaseEventName) if kind == "event" else _statuses_for(path)
            if value not in allowed and not (kind == "status" and value in OTHER_STATUSES):
                unknown.append(f"{path.relative_to(ROOT)}:{line} {kind} {value!r}")
    assert unknown == []


def test_every_event_name_is_recorded_somewhere() -> None:
    text = "\n".join(path.read_text(encoding="utf-8") for path in CODE)
    unused = [
        name
        for name in CaseEventName
        if f'"{name.value}"' not in text and f"CaseEventName.{name.name}" not in text
    ]
    # The two notice events are built from the document type (``reminder_received``).
    assert unused == [CaseEventName.REMINDER_RECEIVED, CaseEventName.ESCALATION_RECEIVED]
    assert 'f"{notice.type.lower()}_received"' in text


def _readme_states(side: str) -> set[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Case states", 1)[1].split("\n## ", 1)[0]
    incoming, outgoing = section.split("\nOutgoing:", 1)
    part = incoming if side == "incoming" else outgoing.split("Who is escalated", 1)[0]
    return set(re.findall(r"`([a-z_]+)`", part))


@pytest.mark.parametrize(
    ("side", "statuses"), [("incoming", IncomingStatus), ("outgoing", OutgoingStatus)]
)
def test_the_readme_case_states_are_the_vocabulary(
    side: str, statuses: type[IncomingStatus] | type[OutgoingStatus]
) -> None:
    shown = {s.value for s in statuses if s not in UNSHOWN}
    assert _readme_states(side) == shown


def test_the_operations_page_offers_every_clerk_action() -> None:
    from services.incoming_agency.clerk_actions import PAGE_LABELS

    # accept-correction has a form of its own (the corrected document), not a button.
    assert set(PAGE_LABELS) | {ClerkActionName.ACCEPT_CORRECTION} == set(ClerkActionName)


def _legs_named(path: Path) -> Iterator[tuple[ast.AST, int]]:
    """Each value given as a ledger leg: ``leg=...`` or compared with ``<x>.leg``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            yield from ((k.value, node.lineno) for k in node.keywords if k.arg == "leg")
        elif isinstance(node, ast.Compare) and len(node.comparators) == 1:
            left = node.left
            if isinstance(left, ast.Attribute) and left.attr == "leg":
                yield node.comparators[0], node.lineno


def test_every_ledger_leg_is_named_by_the_vocabulary() -> None:
    bare = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in CODE
        if "migrations" not in path.parts
        for value, line in _legs_named(path)
        if not (isinstance(value, ast.Attribute) and ast.unparse(value).startswith("LedgerLeg."))
    ]
    assert bare == []


def test_the_stop_answer_codes_are_the_documents_codes() -> None:
    annotation = WithdrawalAnswered.model_fields["reason_code"].annotation
    assert set(get_args(annotation)) == {code.value for code in StopAnswerCode}


def test_escalation_reasons_are_named_by_the_vocabulary() -> None:
    text = "\n".join(path.read_text(encoding="utf-8") for path in CODE)
    for reason in EscalationReason:
        assert f'"{reason.value}"' not in text, reason
        assert f"EscalationReason.{reason.name}" in text, reason


def _problems(path: Path) -> Iterator[tuple[ast.expr | None, int]]:
    """The first argument of each InboundProblem(...) or NotAddressedToUs(...) built."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        called = node.func if isinstance(node, ast.Call) else None
        if isinstance(called, ast.Name) and called.id in ("InboundProblem", "NotAddressedToUs"):
            assert isinstance(node, ast.Call)
            yield (node.args[0] if node.args else None), node.lineno


def test_every_dead_letter_reason_starts_with_its_code() -> None:
    """A dead letter's reason opens with a DeadLetterCode member, so the code the metrics
    count, the re-drive picks and the operator reads is one of a closed set."""
    loose = []
    for path in CODE:
        for first, line in _problems(path):
            head = first.values[0] if isinstance(first, ast.JoinedStr) else None
            named = isinstance(head, ast.FormattedValue) and ast.unparse(head.value).startswith(
                "DeadLetterCode."
            )
            if not named:
                loose.append(f"{path.relative_to(ROOT)}:{line}")
    assert loose == []
    assert {reason_code(f"{code}: detail") for code in DeadLetterCode} == set(DeadLetterCode)
