"""Dummy data for writing a federated notebook: a project view with the same schema as the sites' views, built by the
same materialiser from a generated cohort (synthetic_sites), never from anyone's records. A researcher opens it with
`open_project(path=...)` and runs the notebook on it before submitting; its numbers mean nothing.

It is built in a throwaway Enclave home of its own (a registry, the generated sites' exports, consent, the project
with the federated project's purpose) and only the finished view is kept."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

from kernel.config import Paths
from kernel.errors import EnclaveError
from provisioning import steps
from synthetic_sites import generate_cohort

NOTICE = "DUMMY.txt"
NOTICE_TEXT = (
    "Dummy data, generated (synthetic_sites) with the same schema as the sites' views of this federated project.\n"
    "No real patient's record is in it and its numbers mean nothing: use it to write and test a notebook.\n"
)


def build_dummy_view(out: Path, *, project: str, purpose: str, patients: int = 200, sites: int = 2, seed: int = 7,
                     write: Callable[[Iterable[tuple[str, bytes]]], None] | None = None) -> Path:  # fmt: skip
    """The dummy view at `out` (which must not exist yet), for a project of `purpose`; its path. `write` puts the
    view's files (relative path, bytes) there instead of a copy (the command line: with its caller's rights)."""
    if out.exists() or out.is_symlink():
        raise EnclaveError(f"{out} exists: a dummy view is written to a new folder")
    with tempfile.TemporaryDirectory(prefix="enclave-dummy-") as scratch:
        paths = Paths(Path(scratch) / "home")
        generate_cohort(paths.sites, patients=patients, sites=sites, seed=seed, progress=False)
        spec = Path(scratch) / "project.yaml"
        spec.write_text(yaml.safe_dump({"name": project, "title": f"{project} (dummy data)", "purpose": purpose,
                                        "commercial": False, "members": [], "datasets": ["*"]}))  # fmt: skip
        registry, _ = steps.ensure_registry(paths)
        try:
            steps.ensure_sites(registry, paths, actor="dummy-data")
            steps.ensure_consent(registry, paths, actor="dummy-data")
            steps.ensure_project(registry, spec, actor="dummy-data")
            steps.ensure_materialised(registry, paths, project, actor="dummy-data", progress=False)
        finally:
            registry.close()
        built = paths.project_data(project).resolve()
        if write is not None:
            files = sorted(p for p in built.rglob("*") if p.is_file() and not p.is_symlink())
            write([*((p.relative_to(built).as_posix(), p.read_bytes()) for p in files), (NOTICE, NOTICE_TEXT.encode())])
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(built, out, symlinks=False)
    for folder in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        folder.chmod(0o755)  # the builder's read-only modes are for a published view, not a researcher's copy
    for file in (p for p in out.rglob("*") if p.is_file()):
        file.chmod(0o644)
    (out / NOTICE).write_text(NOTICE_TEXT)
    return out
