"""py-spy profiles of the five service processes during one load step, and their summary:
the functions that hold the most samples, inclusive (anywhere on the stack) and self
(at the top of the stack).

    python -m bench.profiles var/bench/profiles/incoming-worker-20.txt [--top 25]
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
from pathlib import Path


class Profiler:
    """``py-spy record`` attached to running processes for a fixed time (raw format)."""

    def __init__(self, pids: dict[str, int], out_dir: Path) -> None:
        self.pids = pids
        self.out_dir = out_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.files: list[Path] = []

    def start(self, seconds: float, label: str) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).parent / "py-spy"
        for name, pid in self.pids.items():
            target = self.out_dir / f"{name}-{label}.txt"
            self.files.append(target)
            self.processes.append(
                subprocess.Popen(
                    [
                        *(str(spy), "record", "--pid", str(pid)),
                        *("--duration", str(int(seconds)), "--rate", "67"),
                        *("--format", "raw", "--output", str(target), "--nonblocking"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop(self) -> list[Path]:
        for process in self.processes:
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()
        files, self.files = [f for f in self.files if f.exists()], []
        return files


def _frame_name(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0].rstrip(")")
    return f"{name} ({module})" if module else name


def summarise(path: Path, top: int = 20) -> tuple[int, list[tuple[str, float, float]]]:
    """Total samples, and (function, inclusive %, self %) for the top functions."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    names = sorted(inclusive, key=lambda n: inclusive[n], reverse=True)
    rows = [
        (n, 100 * inclusive[n] / total, 100 * own[n] / total)
        for n in names
        if n.split(" (")[0] not in PLUMBING
    ][:top]
    return total, rows


# Frames on (nearly) every stack of an asyncio or threaded process: they say nothing.
PLUMBING = {
    "<module>",
    "main",
    "run",
    "_run_code",
    "_run_module_as_main",
    "asyncio_run",
    "Runner.run",
    "Server.run",
    "Server.serve",
    "BaseEventLoop.run_until_complete",
    "BaseEventLoop.run_forever",
    "BaseEventLoop._run_once",
    "Handle._run",
    "Thread._bootstrap",
    "Thread._bootstrap_inner",
    "Thread.run",
    "_worker",
    "_WorkItem.run",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profiles")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.files:
        total, rows = summarise(path, args.top)
        print(f"== {path.name}: {total} samples")
        for name, incl, self_ in rows:
            print(f"  {incl:5.1f}% incl {self_:5.1f}% self  {name}")


if __name__ == "__main__":
    main()
