"""The case context a workflow loads (the ContextSource port): the working-day calendar,
the limits and the balance policy in force for a case's two regions, re-read when their
files change."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from domain.calendar import WorkingDayCalendar, build_calendar
from domain.limits import CaseLimits
from domain.policy import PolicyDataError, PolicyTable, load_policy_table
from domain.regions import RegionRegistry
from services.common.config import Settings
from services.common.policy_record import RECORD_FILE_NAME as POLICY_RECORD_FILE
from services.common.policy_record import PolicyVersionRecord
from workflows.types import CaseContext, LoadContextInput

# The logger keeps its name (operators filter on it).
log = logging.getLogger("medtransfer.platform")


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
