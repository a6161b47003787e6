"""The airlock's layers, read from the source: the release package has no import cycle (the checks are a function
of what they are given, so release/checks.py needs neither the workflow nor the business layer), and the web app
and the command line reach the rules only through the business layer (release/airlock.py), taking nothing from
the workflow but its refusals."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "output_checks" / "release"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every import in the file, at any depth (a function's own imports too): (module, names taken from it)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def release_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in RELEASE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for module, names in imports(path):
            for candidate in [module, *(f"{module}.{n}" for n in names)]:
                if candidate in modules and candidate != name:
                    targets.add(candidate)
        graph[name] = targets
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle in `graph` (empty when there is none). A package's __init__ importing its own modules is
    how a package is put together, not a cycle."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if node.startswith(target + "."):
                continue  # a module importing its own package's __init__ (its siblings' names)
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_release_package_has_no_import_cycle():
    assert cycle(release_graph()) == []


def test_a_cycle_would_be_found():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_checks_need_neither_the_workflow_nor_the_business_layer():
    reached = {module for module, _ in imports(RELEASE / "checks.py")}
    assert not {m for m in reached if m.startswith(("output_checks.release.workflow", "output_checks.release.service",
                                                     "output_checks.release.airlock"))}  # fmt: skip


CALLERS = [*sorted((ROOT / "output_checks" / "web").glob("*.py")), ROOT / "output_checks" / "cli.py"]


@pytest.mark.parametrize("path", CALLERS, ids=lambda p: p.name)
def test_the_web_app_and_the_cli_take_only_refusals_from_the_workflow(path):
    for module, names in imports(path):
        if module == "output_checks.release" and "workflow" in names:
            pytest.fail(f"{path.name} imports the workflow module itself")
        if module.startswith("output_checks.release.workflow"):
            assert set(names) <= {"InvalidRequest", "NotAllowed"}, (path.name, names)
        assert module != "output_checks.release.views" and "views" not in names, path.name
