"""Demo enrolment records for the outgoing agency (synthetic people, valid check digits)."""

from __future__ import annotations

from datetime import date

from domain.identity import resident_id_check_char
from services.common.bootstrap import Service
from services.outgoing_agency.enrolments import EnrolmentIn, upsert_enrolment


def demo_id(region: str, birth: str, serial: str) -> str:
    first17 = f"{region}{birth}{serial}"
    return first17 + resident_id_check_char(first17)


# (region, birth date, serial, name, scheme, status, balance fen, months, arrears, account,
# last paid month): the suspension is recorded on 2026-09-30; 赵六's last payment was for
# June, so moving in October is an interruption of 3 months (July to September, R25).
M2026_06, M2026_08, M2026_09, M2026_11 = (date(2026, m, 1) for m in (6, 8, 9, 11))
# fmt: off
DEMO_PEOPLE = [
    ("620800", "19900312", "123", "张三", "employee", "suspended", 1_234_56, 96, 0, "normal", M2026_09),
    ("620800", "19851104", "215", "李四", "employee", "active", 50_000_00, 120, 0, "normal", M2026_11),
    ("620800", "19920720", "337", "王五", "employee", "suspended", 8_800_00, 48, 12_000, "normal", M2026_08),
    ("441900", "19880101", "452", "赵六", "employee", "suspended", 15_000_00, 72, 0, "normal", M2026_06),
    ("350100", "19950505", "561", "孙七", "employee", "suspended", 3_210_00, 36, 0, "frozen", M2026_09),
    ("110000", "19580808", "678", "周八", "employee", "suspended", 20_000_00, 360, 0, "normal", M2026_09),
]
# fmt: on

SAMPLE_APPLICATION = {
    "person": {"id_number": demo_id("620800", "19900312", "123"), "name": "张三"},
    "from_region": "620800",
    "to_region": "610100",
    "from_scheme": "employee",
    "to_scheme": "employee",
    "reason": "new job in Xi'an",
    "channel": "online",
    "incoming_enrolled_since": "2026-10-01",
}


def load_demo(service: Service) -> int:
    count = 0
    for (
        region,
        birth,
        serial,
        name,
        scheme,
        status,
        balance,
        months,
        arrears,
        account,
        last_paid,
    ) in DEMO_PEOPLE:
        if region not in service.served:
            continue
        upsert_enrolment(
            service,
            EnrolmentIn(
                id_number=demo_id(region, birth, serial),
                name=name,
                region=region,
                scheme=scheme,
                status=status,
                enrolled_since=date(2018, 1, 1),
                suspended_on=date(2026, 9, 30) if status == "suspended" else None,
                arrears_fen=arrears,
                account_status=account,
                balance_fen=balance,
                contribution_months=months,
                last_paid_month=last_paid,
            ),
        )
        count += 1
    return count
