"""Test helper: an Enclave home provisioned through the real steps (registry, sites, consent, projects, builds)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fabric.projects import ProjectSpec
from kernel.config import Paths
from kernel.db import Registry
from provisioning import steps


@dataclass
class Enclave:
    paths: Paths
    registry: Registry

    def view(self, project: str) -> Path:
        return self.paths.project_data(project).resolve()


def spec_file(tmp: Path, name: str, purpose: str, *, commercial: bool = False, extra: str = "") -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ntitle: {name}\npurpose: {purpose}\ncommercial: {str(commercial).lower()}\n"
        "members: [{user: alice, role: researcher}, {user: carol, role: output_checker}]\ndatasets: ['*']\n" + extra
    )
    ProjectSpec.load(path)
    return path


def provision(home: Path, sites: Path, projects: dict[str, str], *, database_url: str | None = None) -> Enclave:
    """Register every site, import consent, create and materialise each project (name -> purpose); the registry at
    `database_url` when given (e.g. the `module_database_url` fixture's PostgreSQL), else the home's own SQLite."""
    paths = Paths(home)
    if not paths.sites.exists():
        paths.home.mkdir(parents=True, exist_ok=True)
        paths.sites.symlink_to(sites, target_is_directory=True)
    registry = Registry(database_url) if database_url else steps.ensure_registry(paths)[0]
    steps.ensure_sites(registry, paths, actor="test-admin")
    steps.ensure_consent(registry, paths, actor="test-admin")
    for name, purpose in projects.items():
        steps.ensure_project(registry, spec_file(home, name, purpose), actor="test-admin")
        steps.ensure_materialised(registry, paths, name, actor="test-admin", progress=False)
    return Enclave(paths, registry)
