"""CPU time and resident memory of processes, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (0 when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    fields = raw.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


@dataclass
class CpuMeter:
    """CPU seconds per named process between ``start`` and ``stop``."""

    pids: dict[str, int]

    def __post_init__(self) -> None:
        self._before: dict[str, float] = {}

    def start(self) -> None:
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def busy_percent(self, seconds: float) -> dict[str, int]:
        """Per process, the share of one core used since ``start`` over ``seconds``."""
        used = self.stop()
        return {name: round(100 * value / seconds) for name, value in used.items()}

    def stop(self) -> dict[str, float]:
        return {
            name: round(cpu_seconds(pid) - self._before.get(name, 0.0), 3)
            for name, pid in self.pids.items()
        }


def memory(pids: dict[str, int]) -> dict[str, int]:
    """Resident set size per named process, in MiB."""
    return {name: round(rss_bytes(pid) / 2**20) for name, pid in pids.items()}
