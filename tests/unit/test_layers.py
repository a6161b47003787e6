"""Imports run one way, down the layers of tests/layers.py, with no cycle; the package diagram in
docs/developers.md is generated from the code (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import layers

pytestmark = pytest.mark.unit


def test_no_package_imports_a_layer_above_it():
    found = sorted(f"{i.path}:{i.line} imports {i.target}" for i in layers.upward(layers.imports()))
    assert not found, "imports from a lower layer to a higher one: " + "; ".join(found)


def test_no_import_cycles():
    assert layers.cycles(layers.imports()) == []


def test_every_layer_may_import_itself_and_those_below_only():
    assert set(layers.MAY_IMPORT) == set(layers.SOURCES)
    for i, name in enumerate(layers.LAYERS):
        if name != "kernel":
            assert layers.MAY_IMPORT[name] == set(layers.LAYERS[: i + 1])
    assert layers.MAY_IMPORT["kernel"] == {"kernel"}  # the ground floor: no other package, not even workbench
    assert layers.MAY_IMPORT[layers.WORKSPACE] == {layers.WORKSPACE, "workbench"}
    assert layers.MAY_IMPORT["workbench"] == {"workbench"}  # all a workspace installs: it imports no other package


def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    known = {}
    for module, text in files.items():
        path = tmp_path / (module.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        known[module] = path
    return known


def test_control_an_upward_import_and_a_cycle_are_found(tmp_path):
    """The checks can fail: fabric importing the hub (inside a function too) and two modules importing each other."""
    known = _tree(tmp_path, {
        "fabric.store": "def f():\n    from hub.spawn import start\n",
        "hub.spawn": "from fabric import store\nstart = 1\n",
        "output_checks.a": "from . import b\n",
        "output_checks.b": "import output_checks.a\n",
        "output_checks.c": "import json\nfrom output_checks.b import x\n",
    })  # fmt: skip
    found = layers.imports(known)
    assert [(i.source, i.target) for i in layers.upward(found)] == [("fabric.store", "hub.spawn")]
    assert layers.cycles(found) == [["fabric.store", "hub.spawn"], ["output_checks.a", "output_checks.b"]]


def test_annotation_only_imports_count_for_layers_not_for_cycles(tmp_path):
    typed = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from {} import X\nelse:\n    import json\n"
    known = _tree(tmp_path, {
        "fabric.a": typed.format("hub.b"),
        "hub.b": "import fabric.a\n",
    })  # fmt: skip
    found = layers.imports(known)
    assert [(i.source, i.target, i.typing_only) for i in layers.upward(found)] == [("fabric.a", "hub.b", True)]
    assert layers.cycles(found) == []


def test_the_committed_import_diagram_is_current():
    assert layers.main([]) == 0, f"run: {layers.COMMAND}"
