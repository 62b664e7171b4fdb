"""Regional policy as versioned data: time limits (R12-R14, R23), balance routing (R20, R22)
and continuity settings (R25, R27, R28), per national / province / region scope.

The table is read from ``data/policy/policies.jsonl`` (format: ``data/policy/README.md``).
Every line names its source: the document it comes from, or the project's own default.
``PolicyTable.resolve`` gives the settings in force for one region on one day; the result
is a plain frozen dataclass that round-trips through JSON, so a workflow receives it as
input and replays deterministically. ``check_in_force_unchanged`` refuses a table whose
version already in force differs from the one loaded before (a version in force is never
edited; the record of loaded versions is kept by the service).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, cast

from domain.balance import BalanceAction, BalancePolicy
from domain.limits import (
    NATIONAL_TRANSFER_IN_DAYS,
    NATIONAL_TRANSFER_OUT_DAYS,
    CaseLimits,
    PolicyError,
)
from domain.regions import RegionRegistry, is_region_code, load_region_registry, province_of

DEFAULT_POLICY_FILE = Path(__file__).parent.parent / "data" / "policy" / "policies.jsonl"

Scope = Literal["national", "province", "region"]
NATIONAL_CODE: Final = "CN"
MAX_WAITING_PERIOD_MONTHS: Final = 6  # R27
NATIONAL_LATE_FEE_PER_DAY_PER_10000: Final = 5  # R28: 0.05% per day

# Rule cited for errors in the table's structure: R14 is the rule that makes limits
# per-region configuration with national maxima, i.e. the reason this table exists.
_TABLE_RULE: Final = "R14"

_SCOPES: Final = ("national", "province", "region")
_SCOPE_RANK: Final = {"national": 0, "province": 1, "region": 2}
_REQUIRED: Final = ("scope", "code", "version", "effective_from")
_CHECKED_AFTER_SETTINGS: Final = ("source",)  # required too
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PROVINCE_CODE = re.compile(r"[0-9]{2}")
# "+" joins versions in ResolvedPolicy.version_label, so it cannot appear inside one.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


@dataclass(frozen=True)
class _Setting:
    rule: str
    minimum: int | None = None
    maximum: int | None = None
    national_maximum: bool = False
    choices: tuple[str, ...] = ()
    # False for the figures each region publishes itself (R28's base and rate): no national
    # value stands in for them, so the national line need not set them and a region
    # without them has them "not set".
    national: bool = True

    @property
    def is_int(self) -> bool:
        return not self.choices


# One entry per setting; the order is the order of ResolvedPolicy's fields.
SETTINGS: Final[Mapping[str, _Setting]] = MappingProxyType(
    {
        "transfer_out_days": _Setting("R12", 1, NATIONAL_TRANSFER_OUT_DAYS, True),
        "transfer_in_days": _Setting("R13", 1, NATIONAL_TRANSFER_IN_DAYS, True),
        # At least 1 because CaseLimits refuses 0; below transfer_out_days (checked per line
        # and on every resolved combination).
        "reminder_before_days": _Setting("R12", 1, NATIONAL_TRANSFER_OUT_DAYS - 1),
        "soft_refusal_window_days": _Setting("R6-R9", 1, 30),
        "not_connected_escalation_days": _Setting("R23", 1, 60),
        "waiting_period_months": _Setting("R27", 0, MAX_WAITING_PERIOD_MONTHS, True),
        "intra_province_balance": _Setting("R20", choices=("keep_usable", "pay_to_bank", "remit")),
        "employee_to_resident_balance": _Setting("R22", choices=("keep_usable", "pay_to_bank")),
        # R25 R26: whether the region lets a short interruption be back-paid.
        "back_payment": _Setting("R25", choices=("allowed", "not_allowed")),
        "back_payment_base_fen": _Setting("R28", 0, None, national=False),
        "back_payment_rate_per_mille": _Setting("R28", 0, 1000, national=False),
        "late_fee_per_day_per_10000": _Setting("R28", 0, NATIONAL_LATE_FEE_PER_DAY_PER_10000, True),
        # R28: the day of each month its contribution is due (the month's last day when the
        # day is past it); unset: the end of the month.
        "contribution_due_day": _Setting("R28", 1, 31, national=False),
    }
)
# Settings without a national value: None in a ResolvedPolicy where no line sets them.
REGIONAL_SETTINGS: Final = tuple(name for name, spec in SETTINGS.items() if not spec.national)

SettingValue = int | str

PROJECT_DEFAULT: Final = "project default"
_PROJECT_DEFAULT_SPELLINGS: Final = (PROJECT_DEFAULT, "项目默认值")
_SOURCE_KEYS: Final = frozenset({"title", "number", "date"})
_MAX_SOURCE_TEXT: Final = 200


class PolicyDataError(ValueError):
    """The policy table is invalid, or has nothing in force for a day.

    The message names the origin (file), the line, the field and the rule, e.g.
    ``data/policy/policies.jsonl line 7: transfer_out_days 12 exceeds the national
    maximum of 10 (R12)``.
    """

    def __init__(
        self,
        origin: str,
        line: int | None,
        problem: str,
        *,
        field: str | None = None,
        rule: str = _TABLE_RULE,
    ) -> None:
        where = origin if line is None else f"{origin} line {line}"
        super().__init__(f"{where}: {problem} ({rule})")
        self.origin = origin
        self.line = line
        self.field = field
        self.rule = rule
        self.problem = problem


class _LineProblem(Exception):
    """Raised while checking one line; the parser adds the origin and line number."""

    def __init__(self, problem: str, field: str | None = None, rule: str = _TABLE_RULE) -> None:
        super().__init__(problem)
        self.problem = problem
        self.field = field
        self.rule = rule


def _date_zh(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


@dataclass(frozen=True)
class PolicySource:
    """Where a policy line's figures come from: a published document (its title and/or
    number, and its date), or, with every field None, the project's own default."""

    title: str | None = None
    number: str | None = None
    issued_on: date | None = None

    def __post_init__(self) -> None:
        for name in ("title", "number"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, str)
                or not value.strip()
                or len(value) > _MAX_SOURCE_TEXT
                or value.strip() in _PROJECT_DEFAULT_SPELLINGS
            ):
                raise ValueError(
                    f"source {name} must be a non-empty string of at most "
                    f"{_MAX_SOURCE_TEXT} characters"
                )
        if self.issued_on is not None and (
            isinstance(self.issued_on, datetime) or not isinstance(self.issued_on, date)
        ):
            raise ValueError("source date must be a date")
        if self.is_project_default:
            return
        if self.title is None and self.number is None:
            raise ValueError('source needs the document\'s "title" or "number"')
        if self.issued_on is None:
            raise ValueError('source needs the document\'s "date" (YYYY-MM-DD)')

    @property
    def is_project_default(self) -> bool:
        return self.title is None and self.number is None and self.issued_on is None

    def label_en(self) -> str:
        """E.g. ``"《…通知》 (深医保规〔2024〕1号, 2024-06-15)"`` or ``"project default"``."""
        if self.is_project_default or self.issued_on is None:
            return PROJECT_DEFAULT
        title = f"《{self.title}》" if self.title else ""
        inside = ", ".join(p for p in (self.number, self.issued_on.isoformat()) if p)
        return f"{title} ({inside})" if title else inside

    def label_zh(self) -> str:
        """E.g. ``"《…通知》（深医保规〔2024〕1号，2024年6月15日）"`` or ``"项目默认值"``."""
        if self.is_project_default or self.issued_on is None:
            return "项目默认值"
        title = f"《{self.title}》" if self.title else ""
        inside = "，".join(p for p in (self.number, _date_zh(self.issued_on)) if p)
        return f"{title}（{inside}）" if title else inside

    def to_json(self) -> str | dict[str, str]:
        if self.is_project_default or self.issued_on is None:
            return PROJECT_DEFAULT
        data = {"title": self.title, "number": self.number, "date": self.issued_on.isoformat()}
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_json(cls, value: object) -> PolicySource:
        """The ``source`` of a line: ``"project default"`` (or ``"项目默认值"``), or an object
        with ``title`` and/or ``number`` and ``date``. Raises ValueError saying what is
        wrong."""
        if isinstance(value, str):
            if value.strip() in _PROJECT_DEFAULT_SPELLINGS:
                return cls()
            raise ValueError(
                f'source {value!r} is neither a document object nor "{PROJECT_DEFAULT}"'
            )
        if not isinstance(value, dict):
            raise ValueError(
                f'source must be a document object or "{PROJECT_DEFAULT}", got {_type_name(value)}'
            )
        unknown = sorted(set(value) - _SOURCE_KEYS)
        if unknown:
            raise ValueError(f"source: unknown field {unknown[0]!r} (title, number, date)")
        raw_date = value.get("date")
        if raw_date is not None and (
            not isinstance(raw_date, str) or not _ISO_DATE.fullmatch(raw_date)
        ):
            raise ValueError(f"source date {raw_date!r} is not an ISO date YYYY-MM-DD")
        try:
            issued_on = None if raw_date is None else date.fromisoformat(raw_date)
        except ValueError as exc:
            raise ValueError(f"source date {raw_date} is not a real date") from exc
        source = cls(title=value.get("title"), number=value.get("number"), issued_on=issued_on)
        if source.is_project_default:
            raise ValueError('source names no document: give "title" or "number", and "date"')
        return source


def line_digest(data: Mapping[str, Any]) -> str:
    """SHA-256 of a line's content (keys sorted, no whitespace), so re-spacing or reordering
    a line is no change and any change of a value is."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PolicyVersion:
    """One line of the table: the settings a scope sets from ``effective_from`` on, where
    they come from (``source``), and the digest of the line's content."""

    scope: Scope
    code: str
    version: str
    effective_from: date
    settings: Mapping[str, SettingValue]
    line: int = 0
    source: PolicySource = field(default_factory=PolicySource)
    digest: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))

    def applies_to(self, region: str) -> bool:
        if self.scope == "national":
            return True
        if self.scope == "province":
            return region[:2] == self.code
        return region == self.code


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _check_setting(name: str, value: object) -> SettingValue:
    spec = SETTINGS[name]
    if spec.is_int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _LineProblem(
                f"{name} must be an integer, got {_type_name(value)}", name, spec.rule
            )
        if spec.minimum is not None and value < spec.minimum:
            raise _LineProblem(
                f"{name} {value} is below the minimum of {spec.minimum}", name, spec.rule
            )
        if spec.maximum is not None and value > spec.maximum:
            kind = "national maximum" if spec.national_maximum else "maximum"
            raise _LineProblem(
                f"{name} {value} exceeds the {kind} of {spec.maximum}", name, spec.rule
            )
        return value
    if not isinstance(value, str):
        raise _LineProblem(f"{name} must be a string, got {_type_name(value)}", name, spec.rule)
    if value not in spec.choices:
        raise _LineProblem(
            f"{name} {value!r} is not one of {', '.join(spec.choices)}", name, spec.rule
        )
    return value


def _check_code(scope: str, code: object, registry: RegionRegistry) -> str:
    if not isinstance(code, str):
        raise _LineProblem(f"code must be a string, got {_type_name(code)}", "code")
    if scope == "national":
        if code != NATIONAL_CODE:
            raise _LineProblem(f"national scope takes code {NATIONAL_CODE}, got {code!r}", "code")
        return code
    if scope == "province":
        if not _PROVINCE_CODE.fullmatch(code):
            raise _LineProblem(f"province code {code!r} is not two digits", "code", "R20")
        if not any(known[:2] == code for known in registry.codes()):
            raise _LineProblem(
                f"code {code}: unknown province (no region in the registry starts with {code})",
                "code",
                "R20",
            )
        return code
    if not is_region_code(code):
        raise _LineProblem(f"region code {code!r} is not six digits", "code")
    if code not in registry:
        raise _LineProblem(f"code {code}: unknown pooling region (not in the registry)", "code")
    return code


def _parse_line(text: str, line: int, registry: RegionRegistry) -> PolicyVersion:
    data = _line_object(text)
    scope = data["scope"]
    if scope not in _SCOPES:
        raise _LineProblem(f"scope {scope!r} is not one of {', '.join(_SCOPES)}", "scope")
    code = _check_code(scope, data["code"], registry)
    version = _check_version(data["version"])
    effective_from = _check_effective_from(data["effective_from"])
    settings = {name: _check_setting(name, data[name]) for name in SETTINGS if name in data}
    _check_settings_together(scope, settings)
    # Checked after the settings, so a wrong figure is reported by its own rule first.
    source = _check_source(data)
    return PolicyVersion(
        scope=cast(Scope, scope),
        code=code,
        version=version,
        effective_from=effective_from,
        settings=settings,
        line=line,
        source=source,
        digest=line_digest(data),
    )


def _line_object(text: str) -> dict[str, Any]:
    """The line as a JSON object with only known fields and every required one."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _LineProblem(f"malformed JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(data, dict):
        raise _LineProblem(f"expected a JSON object, got {_type_name(data)}")
    for key in data:
        if key not in _REQUIRED and key not in _CHECKED_AFTER_SETTINGS and key not in SETTINGS:
            raise _LineProblem(f"unknown field {key!r}", str(key))
    for key in _REQUIRED:
        if key not in data:
            raise _LineProblem(f"missing field {key}", key)
    return data


def _check_version(version: object) -> str:
    if not isinstance(version, str):
        raise _LineProblem(f"version must be a string, got {_type_name(version)}", "version")
    if not _VERSION.fullmatch(version):
        raise _LineProblem(
            f"version {version!r}: letters, digits and . _ : - only (no '+')", "version"
        )
    return version


def _check_effective_from(raw_from: object) -> date:
    if not isinstance(raw_from, str) or not _ISO_DATE.fullmatch(raw_from):
        raise _LineProblem(
            f"effective_from {raw_from!r} is not an ISO date YYYY-MM-DD", "effective_from"
        )
    try:
        return date.fromisoformat(raw_from)
    except ValueError as exc:
        raise _LineProblem(
            f"effective_from {raw_from} is not a real date", "effective_from"
        ) from exc


def _check_settings_together(scope: str, settings: Mapping[str, SettingValue]) -> None:
    """The checks that look at several settings of a line, or at its scope."""
    # R20: the intra-province rule is set per province; the national line holds the default
    # for provinces without their own line. A region cannot have its own.
    if scope == "region" and "intra_province_balance" in settings:
        raise _LineProblem(
            "intra_province_balance is a per-province setting, not allowed on a region line",
            "intra_province_balance",
            "R20",
        )
    # R12: the reminder must come before the transfer-out deadline.
    reminder = settings.get("reminder_before_days")
    transfer_out = settings.get("transfer_out_days")
    if isinstance(reminder, int) and isinstance(transfer_out, int) and reminder >= transfer_out:
        raise _LineProblem(
            f"reminder_before_days {reminder} must be less than transfer_out_days {transfer_out}",
            "reminder_before_days",
            "R12",
        )
    if scope == "national":
        missing = [
            name for name, spec in SETTINGS.items() if spec.national and name not in settings
        ]
        if missing:
            raise _LineProblem(
                f"the national line must define every national setting; missing "
                f"{', '.join(missing)}",
                missing[0],
            )


def _check_source(data: Mapping[str, Any]) -> PolicySource:
    if "source" not in data:
        raise _LineProblem(
            "missing field source: name the document the line comes from "
            '({"title" or "number", and "date"}) or say "project default"',
            "source",
        )
    try:
        return PolicySource.from_json(data["source"])
    except ValueError as exc:
        raise _LineProblem(str(exc), "source") from exc


def parse_policy_table(
    text: str, registry: RegionRegistry, origin: str = "policy table"
) -> PolicyTable:
    """Parse the JSON Lines text of a policy table; errors name ``origin`` and the line."""
    versions: list[PolicyVersion] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            versions.append(_parse_line(stripped, number, registry))
        except _LineProblem as exc:
            raise PolicyDataError(
                origin, number, exc.problem, field=exc.field, rule=exc.rule
            ) from exc
    return PolicyTable(versions, origin=origin)


def load_policy_table(
    path: Path = DEFAULT_POLICY_FILE, registry: RegionRegistry | None = None
) -> PolicyTable:
    """Read and validate a policy table file.

    Region and province codes are checked against ``registry`` (default: the shipped
    ``data/regions.json``). Any problem raises ``PolicyDataError`` naming the file, the
    line, the field and the rule.
    """
    path = Path(path)
    if registry is None:
        registry = load_region_registry()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyDataError(str(path), None, f"cannot read the policy table: {exc}") from exc
    return parse_policy_table(text, registry, origin=str(path))


@dataclass(frozen=True)
class ResolvedPolicy:
    """The settings in force for ``region`` on ``resolved_on``.

    ``versions`` lists the table versions that contributed, national first, and
    ``sources`` their sources in the same order; a setting comes from the most specific of
    them that sets it (region > province > national), recorded in ``set_by``. A regional
    setting no line sets (R28's base and rate, the due day) is None: "not set".
    """

    region: str
    resolved_on: date
    transfer_out_days: int  # R12
    transfer_in_days: int  # R13
    reminder_before_days: int
    soft_refusal_window_days: int
    not_connected_escalation_days: int  # R23
    waiting_period_months: int  # R27
    intra_province_balance: BalanceAction  # R20
    employee_to_resident_balance: BalanceAction  # R22
    back_payment: str  # R25 R26: "allowed" or "not_allowed"
    back_payment_base_fen: int | None  # R28, None: not set
    back_payment_rate_per_mille: int | None  # R28, None: not set
    late_fee_per_day_per_10000: int  # R28
    contribution_due_day: int | None  # R28, None: the end of the month
    versions: tuple[str, ...] = field(default=())
    sources: tuple[PolicySource, ...] = field(default=())
    set_by: tuple[tuple[str, str], ...] = field(default=())  # (setting, version)

    def __post_init__(self) -> None:
        if not is_region_code(self.region):
            raise PolicyDataError("resolved policy", None, "region code is not six digits")
        if isinstance(self.resolved_on, datetime) or not isinstance(self.resolved_on, date):
            raise PolicyDataError("resolved policy", None, "resolved_on must be a date")
        object.__setattr__(self, "versions", tuple(self.versions))
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "set_by", tuple(tuple(pair) for pair in self.set_by))
        if len(self.sources) != len(self.versions):
            raise PolicyDataError("resolved policy", None, "one source per version")
        for name, version in self.set_by:
            if name not in SETTINGS or version not in self.versions:
                raise PolicyDataError(
                    "resolved policy", None, f"set_by names {name} by unknown {version}"
                )
        for name in SETTINGS:
            value = getattr(self, name)
            if value is None and name in REGIONAL_SETTINGS:
                continue
            try:
                _check_setting(name, value)
            except _LineProblem as exc:
                raise PolicyDataError(
                    "resolved policy", None, exc.problem, field=exc.field, rule=exc.rule
                ) from exc
        # R12
        if self.reminder_before_days >= self.transfer_out_days:
            raise PolicyDataError(
                "resolved policy",
                None,
                "reminder_before_days must be less than transfer_out_days",
                field="reminder_before_days",
                rule="R12",
            )

    def set_by_version(self, name: str) -> str | None:
        """The version whose line set ``name``, None when no line sets it."""
        return dict(self.set_by).get(name)

    def source_of(self, name: str) -> PolicySource | None:
        """The source of the line that set ``name``, None when no line sets it."""
        version = self.set_by_version(name)
        return None if version is None else self.sources[self.versions.index(version)]

    @property
    def version_label(self) -> str:
        """E.g. ``national-2024.1+44-2024.1+440300-2024.1``: recorded with every decision."""
        return "+".join(self.versions)

    def limits(self) -> CaseLimits:
        """R12-R14 and R23 limits as the existing ``CaseLimits`` type."""
        return CaseLimits(
            transfer_out_days=self.transfer_out_days,
            transfer_in_days=self.transfer_in_days,
            reminder_before_days=self.reminder_before_days,
            soft_refusal_window_days=self.soft_refusal_window_days,
            not_connected_escalation_days=self.not_connected_escalation_days,
        )

    def balance_policy(self) -> BalancePolicy:
        """R20 (for this region's province) and R22 as the existing ``BalancePolicy``."""
        return BalancePolicy(
            intra_province={province_of(self.region): self.intra_province_balance},
            employee_to_resident=self.employee_to_resident_balance,
            default_intra_province=self.intra_province_balance,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"region": self.region, "resolved_on": self.resolved_on.isoformat()}
        data.update({name: getattr(self, name) for name in SETTINGS})
        data["versions"] = list(self.versions)
        data["sources"] = [source.to_json() for source in self.sources]
        data["set_by"] = dict(self.set_by)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResolvedPolicy:
        expected = {f.name for f in fields(cls)}
        if not isinstance(data, Mapping) or set(data) != expected:
            raise PolicyDataError(
                "resolved policy", None, f"expected exactly the keys {', '.join(sorted(expected))}"
            )
        versions = data["versions"]
        if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
            raise PolicyDataError("resolved policy", None, "versions must be a list of strings")
        raw_on = data["resolved_on"]
        if not isinstance(raw_on, str) or not _ISO_DATE.fullmatch(raw_on):
            raise PolicyDataError("resolved policy", None, "resolved_on is not YYYY-MM-DD")
        set_by = data["set_by"]
        if not isinstance(set_by, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in set_by.items()
        ):
            raise PolicyDataError("resolved policy", None, "set_by must map settings to versions")
        if not isinstance(data["sources"], list):
            raise PolicyDataError("resolved policy", None, "sources must be a list")
        try:
            sources = tuple(PolicySource.from_json(source) for source in data["sources"])
        except ValueError as exc:
            raise PolicyDataError("resolved policy", None, str(exc), field="source") from exc
        return cls(
            region=data["region"],
            resolved_on=date.fromisoformat(raw_on),
            versions=tuple(versions),
            sources=sources,
            set_by=tuple(set_by.items()),
            **{name: data[name] for name in SETTINGS},
        )


_CITED_RULE = re.compile(r" \((R[0-9]+)\)$")


def _unused_province(provinces: set[str]) -> str:
    return next(f"{n:02d}" for n in range(100) if f"{n:02d}" not in provinces)


def _unused_region(province: str, regions: set[str]) -> str:
    return next(
        f"{province}{n:04d}" for n in range(9999, -1, -1) if f"{province}{n:04d}" not in regions
    )


class PolicyTable:
    """All policy versions of a deployment. Immutable; validated on construction."""

    __slots__ = ("_by_key", "_origin", "_versions")

    def __init__(self, versions: Iterable[PolicyVersion], origin: str = "policy table") -> None:
        self._origin = origin
        self._versions: tuple[PolicyVersion, ...] = tuple(versions)
        by_version: dict[str, PolicyVersion] = {}
        by_key: dict[tuple[str, str], list[PolicyVersion]] = {}
        for entry in self._versions:
            earlier = by_version.get(entry.version)
            if earlier is not None:
                raise PolicyDataError(
                    origin,
                    entry.line,
                    f"version {entry.version} is already used on line {earlier.line}",
                    field="version",
                )
            by_version[entry.version] = entry
            same_key = by_key.setdefault((entry.scope, entry.code), [])
            for other in same_key:
                if other.effective_from == entry.effective_from:
                    raise PolicyDataError(
                        origin,
                        entry.line,
                        f"{entry.scope} {entry.code} already has version {other.version} "
                        f"effective {entry.effective_from.isoformat()} (line {other.line}); "
                        "versions of one scope and code need distinct effective_from dates",
                        field="effective_from",
                    )
            same_key.append(entry)
        if ("national", NATIONAL_CODE) not in by_key:
            raise PolicyDataError(origin, None, "no national line (scope national, code CN)")
        self._by_key: dict[tuple[str, str], tuple[PolicyVersion, ...]] = {
            key: tuple(sorted(entries, key=lambda e: e.effective_from))
            for key, entries in by_key.items()
        }
        self._check_combinations()

    @property
    def origin(self) -> str:
        return self._origin

    @property
    def versions(self) -> tuple[PolicyVersion, ...]:
        """Every version, in file order."""
        return self._versions

    def _in_force(self, scope: str, code: str, on: date) -> PolicyVersion | None:
        current = None
        for entry in self._by_key.get((scope, code), ()):
            if entry.effective_from <= on:
                current = entry
        return current

    def _chain(self, region: str, on: date) -> list[PolicyVersion]:
        chain = []
        for scope, code in (
            ("national", NATIONAL_CODE),
            ("province", region[:2]),
            ("region", region),
        ):
            entry = self._in_force(scope, code, on)
            if entry is not None:
                chain.append(entry)
        return chain

    def resolve(self, region: str, on: date) -> ResolvedPolicy:
        """The settings in force for ``region`` on ``on``: national, then the province's,
        then the region's version in force that day (each the latest with
        ``effective_from <= on``), field by field."""
        if not is_region_code(region):
            raise ValueError("a region code is six digits")
        if isinstance(on, datetime) or not isinstance(on, date):
            raise TypeError("on must be a datetime.date (not a datetime)")
        chain = self._chain(region, on)
        if not chain or chain[0].scope != "national":
            raise PolicyDataError(
                self._origin, None, f"no national policy version in force on {on.isoformat()}"
            )
        merged: dict[str, SettingValue | None] = dict.fromkeys(REGIONAL_SETTINGS)
        set_by: dict[str, str] = {}
        for entry in chain:
            merged.update(entry.settings)
            set_by.update(dict.fromkeys(entry.settings, entry.version))
        return ResolvedPolicy(
            region=region,
            resolved_on=on,
            versions=tuple(entry.version for entry in chain),
            sources=tuple(entry.source for entry in chain),
            set_by=tuple((name, set_by[name]) for name in SETTINGS if name in set_by),
            **cast(dict[str, Any], merged),
        )

    def _check_combinations(self) -> None:
        """Each line is valid alone; a region's combination must be valid too (a region that
        shortens transfer_out_days below the inherited reminder would break R12). The
        combination changes only on an effective_from date of one of its lines, so those
        are the days checked."""
        region_keys = {code for scope, code in self._by_key if scope == "region"}
        province_keys = {code for scope, code in self._by_key if scope == "province"}
        probes: set[str] = set(region_keys)
        # A region without lines of its own stands for its whole province, and one in a
        # province without lines for the national settings alone.
        for province in [*sorted(province_keys), _unused_province(province_keys)]:
            probes.add(_unused_region(province, region_keys))
        for region in sorted(probes):
            chain_days = sorted(
                {entry.effective_from for entry in self._versions if entry.applies_to(region)}
            )
            for day in chain_days:
                chain = self._chain(region, day)
                if chain and chain[0].scope == "national":
                    self._check_chain(region, day, chain)

    def _check_chain(self, region: str, day: date, chain: list[PolicyVersion]) -> None:
        try:
            self.resolve(region, day).limits().validate()
        except (PolicyDataError, PolicyError) as exc:
            # Blame the latest-effective, most specific line among those that contributed.
            culprit = max(chain, key=lambda e: (e.effective_from, _SCOPE_RANK[e.scope]))
            if isinstance(exc, PolicyDataError):
                problem, rule, field_name = exc.problem, exc.rule, exc.field
            else:
                cited = _CITED_RULE.search(str(exc))
                problem = _CITED_RULE.sub("", str(exc))
                rule, field_name = (cited.group(1) if cited else "R14"), None
            raise PolicyDataError(
                self._origin,
                culprit.line,
                f"combined with the versions {'+'.join(e.version for e in chain)} in force "
                f"on {day.isoformat()}: {problem}",
                field=field_name,
                rule=rule,
            ) from exc

    def __len__(self) -> int:
        return len(self._versions)

    def __repr__(self) -> str:
        return f"PolicyTable({len(self._versions)} versions from {self._origin})"


@dataclass(frozen=True)
class LoadedVersion:
    """What a service remembers of a version it loaded: enough to tell later whether the
    line of a version in force was changed (or removed)."""

    scope: str
    code: str
    effective_from: date
    digest: str

    @classmethod
    def of(cls, entry: PolicyVersion) -> LoadedVersion:
        return cls(entry.scope, entry.code, entry.effective_from, entry.digest)

    def to_json(self) -> dict[str, str]:
        return {
            "scope": self.scope,
            "code": self.code,
            "effective_from": self.effective_from.isoformat(),
            "digest": self.digest,
        }

    @classmethod
    def from_json(cls, data: object) -> LoadedVersion:
        """Raises ValueError for anything but the object ``to_json`` writes."""
        keys = ("scope", "code", "effective_from", "digest")
        if not isinstance(data, dict) or set(data) != set(keys):
            raise ValueError(f"expected an object with exactly {', '.join(keys)}")
        if not all(isinstance(data[key], str) for key in keys):
            raise ValueError("every field is a string")
        return cls(
            data["scope"], data["code"], date.fromisoformat(data["effective_from"]), data["digest"]
        )


def check_in_force_unchanged(
    table: PolicyTable, loaded: Mapping[str, LoadedVersion], today: date, *, record: str
) -> dict[str, LoadedVersion]:
    """Refuse ``table`` when a version that was in force by ``today`` under the content
    loaded before (``loaded``, version -> what was loaded) is now changed or gone: decisions
    were taken and explained under that version, so it is never edited; a change is a new
    line with a new version and date. ``record`` names where ``loaded`` is kept.

    A version whose recorded ``effective_from`` is still ahead may change or go. Returns the
    record to keep from now on: every version of ``table``.
    """
    current = {entry.version: entry for entry in table.versions}
    for version in sorted(loaded, key=lambda v: (loaded[v].effective_from, v)):
        seen = loaded[version]
        if seen.effective_from > today:
            continue
        entry = current.get(version)
        since = seen.effective_from.isoformat()
        if entry is None:
            raise PolicyDataError(
                table.origin,
                None,
                f"version {version} ({seen.scope} {seen.code}) has been in force since {since} "
                f"and is missing from the file; a version in force is never removed or "
                f"edited: restore its line as it was loaded (recorded in {record})",
                field="version",
            )
        if entry.digest != seen.digest:
            raise PolicyDataError(
                table.origin,
                entry.line,
                f"version {version} has been in force since {since} and this line differs "
                f"from the one loaded before (recorded in {record}); a version in force is "
                "never edited: restore the line and add the change as a new version with a "
                "later effective_from",
                field="version",
            )
    return {entry.version: LoadedVersion.of(entry) for entry in table.versions}
