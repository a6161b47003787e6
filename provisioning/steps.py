"""Idempotent provisioning steps, each safe to run again: `ensure_*` brings one thing to its desired state and
says what it did. `enclave demo` reads as a checklist of them."""

from __future__ import annotations

import json
import os
import secrets as token
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric.catalogue import add_site
from fabric.consent import import_consent
from fabric.materialise.builds import sweep_project
from fabric.materialise.view import BuildSummary, materialise_project
from fabric.models import Project
from fabric.projects import ProjectSpec, create_project
from hub import accounts
from hub.models import Account
from kernel.config import Paths
from kernel.db import Registry
from kernel.errors import EnclaveError
from synthetic_sites import generate_cohort

DEMO_SPEC = Path(__file__).with_name("demo") / "cardio-risk.yaml"
COHORT_MARKER = ".cohort.json"


@dataclass
class StepResult:
    step: str
    detail: str


def ensure_registry(paths: Paths) -> tuple[Registry, StepResult]:
    paths.home.mkdir(parents=True, exist_ok=True)
    registry = Registry.of(paths)
    return registry, StepResult("registry", "schema up to date")


def ensure_cohort(
    paths: Paths, *, patients: int, sites: int, seed: int, progress: bool, extra_sites: tuple[str, ...] = ()
) -> StepResult:
    """Generate the synthetic cohort unless one with the same parameters is already there; `extra_sites` adds
    sites outside the UK (synthetic_sites/dutch.py)."""
    wanted: dict = {"patients": patients, "sites": sites, "seed": seed}
    if extra_sites:  # a UK-only cohort's marker is as it was before there were other sites
        wanted["extra_sites"] = list(extra_sites)
    marker = paths.sites / COHORT_MARKER
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        also = f" + {', '.join(extra_sites)}" if extra_sites else ""
        return StepResult("cohort", f"already generated ({patients} patients, {sites} sites{also}, seed {seed})")
    if paths.sites.exists() and any(paths.sites.iterdir()):
        raise EnclaveError(
            f"{paths.sites} holds another cohort; remove it (make clean) or pass the parameters it was made with"
        )
    summary = generate_cohort(
        paths.sites, patients=patients, sites=sites, seed=seed, progress=progress, extra_sites=tuple(extra_sites)
    )
    marker.write_text(json.dumps(wanted))
    return StepResult("cohort", f"generated {summary.patients} patients across {summary.sites} sites")


def site_folders(paths: Paths) -> list[Path]:
    return sorted(p for p in paths.sites.iterdir() if (p / "site.yaml").is_file())


def ensure_sites(registry: Registry, paths: Paths, *, actor: str, progress: bool = False) -> StepResult:
    linked = 0
    folders = site_folders(paths)
    for folder in folders:
        _site, summaries = registry.transaction(partial(add_site, site_dir=folder, actor=actor, progress=progress))
        linked += sum(s.linked for s in summaries)
    return StepResult("sites", f"{len(folders)} sites registered, {linked} patient records linked")


def ensure_consent(registry: Registry, paths: Paths, *, actor: str) -> StepResult:
    recorded = 0
    for folder in site_folders(paths):
        consent = folder / "consent.ndjson"
        if consent.exists():
            imported = registry.transaction(partial(import_consent, path=consent, source=folder.name, actor=actor))
            recorded += imported.recorded
    return StepResult("consent", f"{recorded} new consent events recorded")


def ensure_project(registry: Registry, spec_path: Path, *, actor: str) -> tuple[str, StepResult]:
    spec = ProjectSpec.load(spec_path)

    def ensure(session: Session) -> str:
        existing = session.get(Project, spec.name)
        if existing is not None and existing.spec == spec.model_dump(mode="json"):
            return "up to date"
        create_project(session, spec, actor=actor, replace=existing is not None)
        return "updated" if existing else "created"

    return spec.name, StepResult("project", f"{spec.name} {registry.transaction(ensure)}")


def ensure_materialised(
    registry: Registry, paths: Paths, project: str, *, actor: str, progress: bool
) -> tuple[BuildSummary, StepResult]:
    summary = materialise_project(registry, paths, project, actor=actor, progress=progress)
    return summary, StepResult(
        "materialise",
        f"{project}: {summary.patients} consented patients ({summary.excluded} excluded by consent), "
        f"{summary.files} files, {summary.bytes / 1e6:.0f} MB",
    )


def ensure_builds_swept(registry: Registry, paths: Paths, *, actor: str) -> StepResult:
    """Every project's superseded builds that nobody uses any more, past their grace period, removed (audited)."""

    removed = kept = 0
    names = registry.transaction(lambda session: list(session.scalars(select(Project.name).order_by(Project.name))))
    for name in names:
        swept = sweep_project(registry, paths, name, actor=actor)
        removed, kept = removed + len(swept.removed), kept + len(swept.in_use) + len(swept.within_grace)
    return StepResult("builds", f"{removed} superseded build(s) removed, {kept} kept (in use or within the grace)")


def ensure_demo_users(registry: Registry, paths: Paths, users: list[str], *, actor: str) -> tuple[dict, StepResult]:
    """An account per demo user, with a generated password (kept 0600 under secrets/ so reruns can show it) and a
    TOTP enrolment; returns {user: (password, otpauth URI or None if the account already existed)}."""

    store = paths.secrets / "demo-passwords.json"
    paths.secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
    known = json.loads(store.read_text()) if store.exists() else {}

    def add(session: Session) -> dict[str, tuple[str, str | None]]:
        shown: dict[str, tuple[str, str | None]] = {}
        for user in users:
            if session.get(Account, user) is not None:
                shown[user] = (known.get(user, "(set before; see your records)"), None)
                continue
            password = token.token_urlsafe(12)
            shown[user] = (password, accounts.add_account(session, user, password, actor=actor).uri)
        return shown

    shown = registry.transaction(add)
    created = sum(1 for _password, uri in shown.values() if uri is not None)
    known.update({user: password for user, (password, uri) in shown.items() if uri is not None})
    fd = os.open(store, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(known, fh)
    return shown, StepResult("users", f"{created} created, {len(users) - created} already there")


def demo_users() -> list[str]:
    spec = ProjectSpec.load(DEMO_SPEC)
    return sorted({m.user for m in spec.members})


def demo_researchers() -> list[str]:
    spec = ProjectSpec.load(DEMO_SPEC)
    return sorted({m.user for m in spec.members if m.role == "researcher"})


EXAMPLES = Path(__file__).resolve().parents[1] / "notebooks"


def ensure_example_notebooks(paths: Paths, project: str, researchers: list[str]) -> StepResult:
    """Copy each example notebook (notebooks/) into each researcher's home in `project` where it is missing; a copy
    a researcher changed is never overwritten. Owned by the home's owner (the project account, as root)."""
    copied = 0
    for user in researchers:
        home = paths.project_home(project, user)
        if not home.is_dir() or home.is_symlink():
            continue
        owner = home.stat()
        for notebook in sorted(EXAMPLES.glob("*.ipynb")):
            target = home / notebook.name
            if os.path.lexists(target):
                continue
            shutil.copyfile(notebook, target)
            os.chown(target, owner.st_uid, owner.st_gid, follow_symlinks=False)
            copied += 1
    return StepResult("examples", f"{copied} example notebooks copied into researchers' homes")
