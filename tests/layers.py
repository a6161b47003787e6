"""The import structure of Enclave's packages, read from the code: which module imports which (every `import`,
at module level or inside a function), the layers they must respect, the cycles they must not form, and the
package diagram in docs/developers.md and docs/explanation/architecture.md.

Layers, lowest first: a package may import the ones below it, never one above. The order is the data flow
(DESIGN.md) on a ground floor of two packages that import no other: the researcher's library (`workbench`: the
readers of a project view and the view's contract, which the fabric builds to; a workspace installs nothing else of
Enclave) and the kernel (configuration, the registry database, the audit log, errors). Then the data fabric, the
hospital-site simulator that writes sites' exports in the fabric's formats, the airlock's checks and release, the hub
that runs workspaces and the airlock service, a project's Dask clusters on the site's engines (SLURM, Kubernetes),
the admin's provisioning and command line, then the benchmarks. The workspace server's extension
(`images/enclave_workspace`) runs inside a workspace beside the researcher's library: it may import workbench alone.

    python -m tests.layers           # exit 1 when the committed diagram differs from the code's
    python -m tests.layers --write   # write it

An import names a module as Python resolves it: `from a.b import c` imports `a.b.c` when that is a module, else
`a.b`; relative imports are resolved against the importing module. Imports under `if TYPE_CHECKING:` count for the
layers (an annotation naming a higher layer's type is a dependency on it) but not for cycles (they never run).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = (
    "workbench",
    "kernel",
    "fabric",
    "synthetic_sites",
    "output_checks",
    "hub",
    "clusters",
    "provisioning",
    "federation",
    "bench",
)  # lowest first
WORKSPACE = "enclave_workspace"
SOURCES = {**{name: ROOT / name for name in LAYERS}, WORKSPACE: ROOT / "images" / WORKSPACE}
MAY_IMPORT = {
    **{name: set(LAYERS[: i + 1]) for i, name in enumerate(LAYERS)},
    "kernel": {"kernel"},  # the ground floor beside workbench: it imports neither it nor anything else
    WORKSPACE: {WORKSPACE, "workbench"},
}
# Imports that break the layers today, each with what removes it. The list only shrinks: a test fails on any other.
# The docs that carry the generated diagram, each between BEGIN and END.
DOCS = (ROOT / "docs" / "developers.md", ROOT / "docs" / "explanation" / "architecture.md")
COMMAND = "python -m tests.layers --write"
BEGIN, END = f"<!-- import-diagram:begin (generated: {COMMAND}) -->", "<!-- import-diagram:end -->"


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module, dotted
    path: str  # importing file, relative to the repository
    line: int
    typing_only: bool = False  # under `if TYPE_CHECKING:`


def modules() -> dict[str, Path]:
    """Every module of the packages above, dotted name -> file."""
    found: dict[str, Path] = {}
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            if "node_modules" in path.parts or "__pycache__" in path.parts:
                continue
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that `name` is or lies in; None outside the packages (the standard library,
    third parties)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(known: dict[str, Path] | None = None) -> list[Import]:
    known = modules() if known is None else known
    out: list[Import] = []
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {
            id(n) for block in ast.walk(tree) if _type_checking(block) for stmt in block.body for n in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
            for name in names:
                target = _resolve(name, known)
                if target and target != module:
                    where = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
                    out.append(Import(module, target, where, node.lineno, id(node) in typing_only))
    return out


def _type_checking(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`)."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def top(module: str) -> str:
    return module.split(".")[0]


def upward(found: list[Import]) -> list[Import]:
    """Imports of a package its layer may not import."""
    return [i for i in found if top(i.target) not in MAY_IMPORT[top(i.source)]]


def cycles(found: list[Import]) -> list[list[str]]:
    """The module graph's strongly connected components of more than one module (Tarjan's algorithm)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for i in found:
        if not i.typing_only:
            edges[i.source].add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for node in sorted(edges):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(components)


def diagram(found: list[Import]) -> str:
    """The packages and which way they import (Mermaid), each arrow labelled with how many modules import across it;
    then the layers."""
    across: dict[tuple[str, str], set[str]] = defaultdict(set)
    for i in found:
        if top(i.source) != top(i.target):
            across[(top(i.source), top(i.target))].add(i.source)
    lines = ["```mermaid", "flowchart TD"]
    for (source, target), importers in sorted(across.items()):
        lines.append(f"    {source} -->|{len(importers)}| {target}")
    lines.append("```")
    order = " → ".join(reversed(LAYERS))
    lines += ["", f"Layers, highest first: {order}. `{WORKSPACE}` (images/) may import workbench only."]
    return "\n".join(lines)


def _block(text: str) -> tuple[int, int]:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return start, end


def committed(doc: Path = DOCS[0]) -> str:
    text = doc.read_text()
    start, end = _block(text)
    return text[start:end].strip("\n")


def write() -> None:
    current = diagram(imports())
    for doc in DOCS:
        text = doc.read_text()
        start, end = _block(text)
        doc.write_text(text[:start] + "\n" + current + "\n" + text[end:])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--write"]:
        write()
        return 0
    current = diagram(imports())
    stale = [doc.relative_to(ROOT).as_posix() for doc in DOCS if committed(doc) != current]
    for doc in stale:
        print(f"{doc}'s import diagram is out of date: run {COMMAND}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
