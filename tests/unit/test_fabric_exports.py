"""Every name a package of the data side (fabric, the site simulator, the researcher's library) lists in `__all__`
is importable from it: a notebook's `from workbench import X` follows the list, so a name listed but never imported
fails only there, at the researcher's first use."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import fabric
import synthetic_sites
import workbench

ROOTS = (fabric, synthetic_sites, workbench)
pytestmark = pytest.mark.unit


def _packages() -> list[str]:
    # Packages only: their __init__ is where the public lists live, and importing kernel.migrations' env.py would
    # run Alembic.
    found = [root.__name__ for root in ROOTS]
    for root in ROOTS:
        found += [m.name for m in pkgutil.walk_packages(root.__path__, f"{root.__name__}.") if m.ispkg]
    return sorted(found)


def test_the_readers_package_is_among_those_checked() -> None:
    assert {"workbench", "fabric.clinical", "synthetic_sites"} <= set(_packages())


def test_the_researchers_library_loads_each_name_it_lists_on_first_use() -> None:
    assert workbench.__all__ == sorted(workbench._FROM)


@pytest.mark.parametrize("name", _packages())
def test_every_name_in_all_is_importable(name: str) -> None:
    package = importlib.import_module(name)
    listed = getattr(package, "__all__", [])
    missing = [n for n in listed if not hasattr(package, n)]
    assert not missing, f"{name}.__all__ lists names it does not define: {missing}"
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)  # what a notebook's star import does with the list
    assert set(listed) <= namespace.keys()
