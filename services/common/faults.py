"""Test-only crash points for the fault suite (tests/faults). Inert in production.

Code calls ``crash_point("after-debit-commit")`` at a moment where a crash is the worst
(work committed, nobody told yet). Nothing happens unless the environment variable
MEDTRANSFER_FAULT_POINT names that point; then the process SIGKILLs itself there, like a
power cut: no cleanup, no flush, no offset commit. With MEDTRANSFER_FAULT_MARKER set to a
path the point fires once: the first process to create that file dies, later ones (the
restarted process) carry on, and the file tells the test that the crash happened.
A point may pass a detail (the document type); ``name:detail`` in the variable then
fires only for that detail.
"""

from __future__ import annotations

import os
import signal

POINT_ENV = "MEDTRANSFER_FAULT_POINT"
MARKER_ENV = "MEDTRANSFER_FAULT_MARKER"


def crash_point(name: str, detail: str | None = None) -> None:
    wanted = os.environ.get(POINT_ENV)
    if wanted is None or wanted not in (name, f"{name}:{detail}"):
        return
    marker = os.environ.get(MARKER_ENV)
    if marker:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # fired already
    os.kill(os.getpid(), signal.SIGKILL)
