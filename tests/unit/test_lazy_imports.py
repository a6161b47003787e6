"""Imports sit at the top of a module (issue 12). An import of an Enclave module inside a function is kept only where
it is the point, each place named here with why; any other fails, so the list only shrinks or grows on purpose."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kernel", "workbench", "fabric", "synthetic_sites", "output_checks", "hub", "clusters", "provisioning")

COMMAND_START = "a command imports what it runs, so `enclave --help` and every other command start without it"
CHECKS_CHILD = (
    "the checker sandbox's child process starts per batch and loads a check's readers, parsers and models only "
    "for the content it meets (its start time and memory are the airlock's)"
)
PARENT_ONLY = "runs in the airlock's parent only: the checks child never imports the registry or the fabric"
LAZY_ALLOWED = {
    **dict.fromkeys(
        ["provisioning/cli/operations.py", "provisioning/cli/projects.py", "provisioning/cli/registry.py",
         "provisioning/cli/running.py", "output_checks/cli.py"], COMMAND_START),
    **dict.fromkeys(
        ["output_checks/sandbox/child.py", "output_checks/policy.py", "output_checks/checks/archives.py",
         "output_checks/checks/interchange/__init__.py", "output_checks/checks/notebooks.py",
         "output_checks/checks/payloads/__init__.py", "output_checks/checks/payloads/judge.py",
         "output_checks/checks/payloads/numbers.py", "output_checks/checks/printed/__init__.py",
         "output_checks/checks/tables/acro.py", "output_checks/checks/tables/readers.py",
         "output_checks/checks/text.py", "output_checks/screening/text.py", "output_checks/web/previews.py"],
        CHECKS_CHILD),
    **dict.fromkeys(
        ["output_checks/screening/known.py", "output_checks/release/ledger.py", "output_checks/release/site_policy.py",
         "output_checks/release/checks.py", "output_checks/release/airlock.py", "output_checks/sandbox/runner.py"],
        PARENT_ONLY),
}  # fmt: skip


def lazy_imports(root: Path = ROOT) -> dict[str, list[int]]:
    """Module path -> the lines where a function imports an Enclave module."""
    found: dict[str, list[int]] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for function in ast.walk(ast.parse(path.read_text())):
                if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(function):
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                        names = [node.module]
                    if any(name.split(".")[0] in PACKAGES for name in names):
                        found.setdefault(path.relative_to(root).as_posix(), []).append(node.lineno)
    return found


def test_enclave_modules_are_imported_at_the_top_except_where_laziness_is_the_point():
    unexpected = {path: lines for path, lines in lazy_imports().items() if path not in LAZY_ALLOWED}
    assert not unexpected, f"move these imports to the top of their module (or name why here): {unexpected}"


def test_the_list_holds_no_module_that_no_longer_needs_it():
    assert set(LAZY_ALLOWED) <= set(lazy_imports()), sorted(set(LAZY_ALLOWED) - set(lazy_imports()))


def test_the_rule_finds_a_function_level_import(tmp_path):
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel" / "late.py").write_text("def f():\n    from kernel import audit\n    return audit\n")
    assert lazy_imports(tmp_path) == {"kernel/late.py": [2]}
