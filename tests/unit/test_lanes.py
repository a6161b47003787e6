"""The parallel lanes of `make test` (tests/lanes.py): a file runs beside the host's tests only when it is listed,
exists, and imports nothing that changes the host."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.lanes import DATA_LANE, HOST_HELPERS, UNIT, scope

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def data_lane_files() -> list[Path]:
    files: list[Path] = []
    for entry in DATA_LANE:
        path = ROOT / entry
        assert path.exists(), f"{entry} is in the data lane but does not exist"
        files += sorted(path.glob("test_*.py")) if path.is_dir() else [path]
    return files


def imported_modules(path: Path, seen: set[Path] | None = None) -> set[str]:
    """Every module a file imports, at its top or inside functions, and what the test helpers it imports import."""
    seen = set() if seen is None else seen
    seen.add(path)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    for module in sorted(m for m in found if m.startswith("tests.")):
        for helper in (ROOT / (module.replace(".", "/") + ".py"), ROOT / module.replace(".", "/") / "__init__.py"):
            if helper.exists() and helper not in seen:
                found |= imported_modules(helper, seen)
    return found


@pytest.mark.parametrize("path", data_lane_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_data_lane_file_imports_nothing_that_changes_the_host(path):
    bad = sorted(m for m in imported_modules(path) if any(m == h or m.startswith(h + ".") for h in HOST_HELPERS))
    assert not bad, f"{path.name} imports {bad}: it changes the host, so it belongs in the host lane"


def test_scopes():
    assert scope(UNIT + "test_x.py::test_y") == UNIT + "test_x.py::test_y"
    assert scope("tests/integration/test_airlock_workflow.py::test_z[a]") == "data"
    assert scope("tests/robustness/test_readers_bad_input.py::test_q") == "data"
    # deny by default: a file nobody listed changes the host as far as the scheduler knows
    assert scope("tests/integration/test_something_new.py::test_a") == "host"
    assert scope("tests/integration/test_airlock_hub.py::test_a") == "host"
