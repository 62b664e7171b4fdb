"""PII-safe structured logging.

Code never passes a name, ID number, phone or bank account to a logger; as a second line
of defence every record is scrubbed of anything that looks like one before it is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from domain.identity import mask_account, mask_id, mask_phone

_ID_NUMBER = re.compile(r"(?<![0-9])[1-9][0-9]{16}[0-9Xx](?![0-9])")
_PHONE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")
_ACCOUNT = re.compile(r"(?<![0-9])[0-9]{12,30}(?![0-9])")


def scrub(text: str) -> str:
    """Mask ID numbers, phone numbers and bank-account-like digit runs in ``text``."""
    text = _ID_NUMBER.sub(lambda m: mask_id(m.group(0)), text)
    text = _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    return _ACCOUNT.sub(lambda m: mask_account(m.group(0)), text)


class ScrubbingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("case_id", "message_id", "service"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(service: str, *, json_output: bool = True, level: int = logging.INFO) -> None:
    """Route every logger (ours, uvicorn's, aiokafka's, temporalio's) through the scrubber."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(ScrubbingFilter())
    handler.setFormatter(
        JsonFormatter()
        if json_output
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka", "temporalio.worker._workflow_instance"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger(service).info("logging configured for %s", service)
