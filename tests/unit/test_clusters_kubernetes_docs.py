"""The Kubernetes manifests in docs/how-to/kubernetes/ are the output of the command their first line names
(`python -m clusters.kubernetes ...`, `python -m clusters.kubernetes_service manifests ...`), kept from drifting:
this fails when the code would print something else.

    python -m tests.unit.test_clusters_kubernetes_docs --write   # rewrite them, keeping their header comments
"""

from __future__ import annotations

import contextlib
import io
import shlex
import sys
from pathlib import Path

import pytest

from clusters import kubernetes, kubernetes_service

DOCS = Path(__file__).resolve().parents[2] / "docs" / "how-to" / "kubernetes"
PREFIX = "# Generated: python -m "
COMMANDS = {"clusters.kubernetes": kubernetes.main, "clusters.kubernetes_service": kubernetes_service.main}


def split(path: Path) -> tuple[str, str, str]:
    """(the header comments, the command's arguments, the YAML)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[0].startswith(PREFIX), f"{path.name}: the first line names the command"
    count = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    return "".join(lines[:count]), lines[0].removeprefix(PREFIX).strip(), "".join(lines[count:])


def printed(arguments: str) -> str:
    """What `python -m MODULE ARGS...` prints (`arguments` starts with the module)."""
    module, *rest = shlex.split(arguments)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        COMMANDS[module](rest)
    return out.getvalue()


@pytest.mark.unit
@pytest.mark.parametrize("path", sorted(DOCS.glob("*.yaml")), ids=lambda path: path.name)
def test_the_documented_manifests_are_what_the_command_prints(path):
    _, arguments, documented = split(path)
    assert documented == printed(arguments), "run: python -m tests.unit.test_clusters_kubernetes_docs --write"


@pytest.mark.unit
def test_both_documents_are_there():
    assert {path.name for path in DOCS.glob("*.yaml")} == {
        "dask-project.yaml",
        "dask-cluster.yaml",
        "cluster-service.yaml",
    }


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    for path in sorted(DOCS.glob("*.yaml")):
        header, arguments, _ = split(path)
        path.write_text(header + printed(arguments), encoding="utf-8")
