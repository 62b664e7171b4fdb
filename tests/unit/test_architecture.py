"""The floors of the house (docs/architecture.md): what each package may import, and how
long a function may grow. Read from the source with ``ast``, so a lazy import inside a
function counts as much as one at the top."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}

# Each floor and the top-level packages (besides the standard library) it may import.
ALLOWED_IMPORTS: dict[str, frozenset[str]] = {
    "domain": frozenset({"domain", "chinese_calendar"}),
    "contracts": frozenset({"contracts", "domain", "pydantic", "cryptography"}),
    # Deterministic workflow code and its ports: no I/O library, no service.
    "workflows": frozenset({"workflows", "contracts", "domain", "temporalio", "pydantic"}),
    # The live stack that integration tests and the benchmark share: below both of them.
    "harness": frozenset(
        {"harness", "contracts", "domain", "services", "httpx", "sqlalchemy", "temporalio"}
    ),
    # The benchmark runs on the harness, never on the tests' own helpers.
    "bench": frozenset(
        {
            "bench",
            "harness",
            "contracts",
            "domain",
            "workflows",
            "services",
            "aiokafka",
            "faststream",
            "httpx",
            "sqlalchemy",
            "sqlmodel",
            "temporalio",
        }
    ),
}

MAX_FUNCTION_LINES = 60
# Functions longer than MAX_FUNCTION_LINES today, to be split (issue 15: route closures into
# command handlers, the long workflow steps into named ones). The list only shrinks: a test
# fails when an entry is split, so it is taken off.
LONG_FUNCTIONS = frozenset(
    {
        ("services/common/migrations/versions/incoming/incoming_0001_baseline.py", "upgrade"),
        ("services/common/migrations/versions/outgoing/outgoing_0001_baseline.py", "upgrade"),
    }
)


def _sources(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def _imported_roots(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


@pytest.mark.parametrize("package", sorted(ALLOWED_IMPORTS))
def test_each_floor_imports_only_what_sits_below_it(package: str) -> None:
    allowed = ALLOWED_IMPORTS[package] | STDLIB
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {root}"
        for path in _sources(package)
        for line, root in _imported_roots(path)
        if root not in allowed
    ]
    assert wrong == []


def _long_functions() -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for package in ("domain", "contracts", "workflows", "services", "bench", "harness"):
        for path in _sources(package):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        found[(str(path.relative_to(ROOT)), node.name)] = lines
    return found


def test_no_new_function_over_sixty_lines_outside_tests() -> None:
    new = {key: lines for key, lines in _long_functions().items() if key not in LONG_FUNCTIONS}
    assert new == {}, f"split these (at most {MAX_FUNCTION_LINES} lines): {new}"


def test_the_list_of_long_functions_only_shrinks() -> None:
    split = LONG_FUNCTIONS - set(_long_functions())
    assert split == set(), f"now short or gone, take them off LONG_FUNCTIONS: {sorted(split)}"


def _service_imports() -> dict[str, set[str]]:
    """Which of services/'s packages each imports (common, audit, ops, the two agencies...)."""
    graph: dict[str, set[str]] = {}
    for path in _sources("services"):
        parts = path.relative_to(ROOT / "services").parts
        package = parts[0] if len(parts) > 1 else "services"
        for _line, module in _imported_modules(path):
            names = module.split(".")
            if names[0] == "services" and len(names) > 1 and names[1] != package:
                graph.setdefault(package, set()).add(names[1])
    return graph


def _imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def test_no_circle_between_the_services_packages() -> None:
    graph = _service_imports()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, set()) - seen:
            if nxt == goal or reaches(nxt, goal, seen | {nxt}):
                return True
        return False

    circles = sorted(p for p in graph if reaches(p, p, set()))
    assert circles == [], f"packages on an import circle: {circles} ({graph})"
    # common is the ground floor of services/: it imports none of the others.
    assert graph.get("common", set()) == set()
