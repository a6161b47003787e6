"""Research projects: the YAML spec (purpose, members and roles, datasets, compute limits, storage quota, airlock
overrides), its validation, and the registry operations that create and replace projects, change membership and
accept datasets, each audited. `datasets: ['*']` is a decision made when the project is created or replaced: it
takes the datasets registered then (kept in `Project.datasets_accepted`); one registered later waits until an admin
accepts it (`accept_datasets`, or a replace whose plan shows it). Who may review releases is checked here against a
number the caller passes in (the airlock's default lives in output_checks, which fabric does not import)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric.consent import PURPOSE_PARENT
from fabric.models import Dataset, Project, ProjectMember
from fabric.project_plan import SpecPlan, plan_changes
from kernel import audit
from kernel.clock import utcnow
from kernel.documents import load_yaml_model
from kernel.errors import EnclaveError, NotFoundError, SpecError
from kernel.names import USERNAME

PROJECT_NAME = r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$"
ACCOUNT_PREFIX = "enclave-"  # each project's own Unix account, which its workspaces and runs use
MAX_UNIX_NAME = 32  # useradd's limit on Linux (utmp's ut_user)


def project_account_name(project: str) -> str:
    """The project's Unix account, `enclave-PROJECT` (made by host provisioning, used by the hub's sandbox): SpecError
    unless `project` is a project name whose account fits a Unix user name (at most 32 characters)."""
    if not re.fullmatch(PROJECT_NAME, project):
        raise SpecError(f"{project!r} is not a project name (lower case, digits and '-', 3-32 characters)")
    name = ACCOUNT_PREFIX + project
    if len(name) > MAX_UNIX_NAME:
        raise SpecError(
            f"project {project}: its Unix account {name} would be {len(name)} characters, over the limit of "
            f"{MAX_UNIX_NAME}; host provisioning needs project names of at most {MAX_UNIX_NAME - len(ACCOUNT_PREFIX)}"
        )
    return name


class ProjectRole(StrEnum):
    RESEARCHER = "researcher"
    OUTPUT_CHECKER = "output_checker"


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(pattern=USERNAME.pattern)
    role: ProjectRole


MEMORY_UNITS = {"MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "MB": 10**6, "GB": 10**9, "TB": 10**12}

SIZE = r"^\d+(\.\d+)?\s*(MiB|GiB|TiB|MB|GB|TB)$"


def size_bytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(\w+)", size).groups()
    return int(float(number) * MEMORY_UNITS[unit])


class ComputeLimits(BaseModel):
    """What one workspace of the project may use, and where its Dask cluster runs: `engine: local` (the default) is
    a LocalCluster inside the workspace sized from these; `engine: slurm` is the project's cluster on the site's SLURM
    (clusters/), each job sized from these, reached through the workspace's cluster service; `engine: kubernetes` a
    DaskCluster in the project's namespace beside a KubeSpawner workspace, each worker one LocalCluster worker's size
    (clusters/kubernetes.py), made by the Kubernetes cluster service (clusters/kubernetes_service.py)."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["local", "slurm", "kubernetes"] = "local"
    cpus: float = Field(default=2, gt=0, le=256)
    memory: str = Field(default="8GiB", pattern=SIZE)
    dask_workers: int = Field(default=2, ge=1, le=256)
    threads_per_worker: int = Field(default=1, ge=1, le=64)
    max_processes: int = Field(default=512, ge=16, le=65536)

    def memory_bytes(self) -> int:
        return size_bytes(self.memory)

    def for_view(self) -> dict[str, Any]:
        """What a view's manifest carries for its readers: the limits, plus each Dask worker's share of memory."""
        return {**self.model_dump(), "memory_limit": self.memory_bytes() // self.dask_workers}


class BrowserLimits(BaseModel):
    """What one workspace may send to the researcher's browser: caps per response and a budget per hour across every
    route that carries data (files, kernel and terminal output, the Dask dashboard, the MLflow UI). JupyterLab's own
    static assets do not count. Reading on screen is the remaining way out; these numbers bound it."""

    model_config = ConfigDict(extra="forbid")

    bytes_per_hour: str = Field(default="64MiB", pattern=SIZE)
    max_text: str = Field(default="10MiB", pattern=SIZE)  # one text file or notebook
    max_image: str = Field(default="5MiB", pattern=SIZE)  # one image

    def environment(self) -> dict[str, str]:
        """The workspace server's settings (images/enclave_workspace/display.py and budget.py read them)."""
        return {
            "ENCLAVE_BROWSER_BYTES_PER_HOUR": str(size_bytes(self.bytes_per_hour)),
            "ENCLAVE_BROWSER_MAX_TEXT_BYTES": str(size_bytes(self.max_text)),
            "ENCLAVE_BROWSER_MAX_IMAGE_BYTES": str(size_bytes(self.max_image)),
        }


MIN_QUOTA = 64 * 2**20  # an ext4 file system with its journal needs a few MiB of its own


class StorageLimits(BaseModel):
    """The project's disk quota: the size of its own file system, which holds its outputs, its members' homes and
    its MLflow store (provisioning/storage.py). It can be raised later; it is never shrunk."""

    model_config = ConfigDict(extra="forbid")

    quota: str = Field(default="20GiB", pattern=SIZE)

    @field_validator("quota")
    @classmethod
    def _large_enough(cls, value: str) -> str:
        if size_bytes(value) < MIN_QUOTA:
            raise ValueError(f"a storage quota of {value} is too small; at least 64MiB")
        return value

    def quota_bytes(self) -> int:
        return size_bytes(self.quota)


class AirlockOverrides(BaseModel):
    """Per-project release policy; anything unset takes the platform default (docs/reference/policy.md)."""

    model_config = ConfigDict(extra="forbid")

    min_cell_count: int | None = Field(default=None, ge=1)
    reviews_required: int | None = Field(default=None, ge=1, le=5)
    max_file_mb: float | None = Field(default=None, gt=0)
    max_table_rows: int | None = Field(default=None, ge=1)
    rounding_base: int | None = Field(default=None, ge=5)  # as the airlock policy: smaller bases hide nothing


class ProjectSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=PROJECT_NAME, description="lower case, digits and '-', 3-32 characters")
    title: str = Field(min_length=1, max_length=200)
    purpose: str
    commercial: bool = False
    members: list[Member] = Field(default_factory=list)
    datasets: list[str] = Field(min_length=1, description="dataset ids, or ['*'] for every registered dataset")
    compute: ComputeLimits = Field(default_factory=ComputeLimits)
    browser: BrowserLimits = Field(default_factory=BrowserLimits)
    storage: StorageLimits = Field(default_factory=StorageLimits)
    airlock: AirlockOverrides = Field(default_factory=AirlockOverrides)

    @field_validator("purpose")
    @classmethod
    def _known_purpose(cls, value: str) -> str:
        if value not in PURPOSE_PARENT:
            raise ValueError(f"unknown purpose {value!r}; use a Data Use Ontology code: {', '.join(PURPOSE_PARENT)}")
        return value

    @model_validator(mode="after")
    def _unique(self) -> ProjectSpec:
        seen = set()
        for member in self.members:
            if (member.user, member.role) in seen:
                raise ValueError(f"member {member.user} is listed twice as {member.role}")
            seen.add((member.user, member.role))
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError("datasets are listed more than once")
        return self

    @classmethod
    def load(cls, path: Path) -> ProjectSpec:
        return load_yaml_model(cls, path, "project spec")


EVERY_DATASET = ["*"]


def _registered(session: Session) -> list[str]:
    return sorted(session.scalars(select(Dataset.id)))


def resolve_datasets(session: Session, spec: ProjectSpec) -> list[str]:
    """The datasets `spec` names; for ['*'], every dataset registered now (what creating or replacing accepts)."""
    registered = _registered(session)
    if spec.datasets == EVERY_DATASET:
        return registered
    unknown = [d for d in spec.datasets if d not in registered]
    if unknown:
        raise SpecError(f"project {spec.name}: unknown dataset(s) {', '.join(unknown)} (see 'enclave dataset list')")
    return list(spec.datasets)


@dataclass(frozen=True)
class ProjectDatasets:
    """A project's datasets: those in its view, and (with ['*']) those registered since that wait for an admin."""

    accepted: list[str]
    waiting: list[str]


def project_datasets(session: Session, project: Project) -> ProjectDatasets:
    """Which datasets project `project` builds its view from, and which wait for a decision."""
    named = list(project.spec.get("datasets", []))
    if named != EVERY_DATASET:
        return ProjectDatasets(named, [])
    accepted = set(project.datasets_accepted or [])
    registered = _registered(session)
    return ProjectDatasets([d for d in registered if d in accepted], [d for d in registered if d not in accepted])


def accept_datasets(session: Session, name: str, *, actor: str, expected: list[str] | None = None) -> list[str]:
    """Let the datasets waiting for project `name` (registered after it accepted ['*']) into its view from the next
    materialisation; returns them. With `expected` (the list an admin was shown), refuse if it changed since."""
    project = get_open_project(session, name)
    waiting = project_datasets(session, project).waiting
    if expected is not None and waiting != expected:
        raise EnclaveError(
            f"the datasets waiting for project {name} changed since they were shown; run the command again"
        )
    if waiting:
        project.datasets_accepted = sorted({*(project.datasets_accepted or []), *waiting})
        session.flush()
        audit.record(session, actor=actor, action="project.accept_datasets", target=name, datasets=waiting)
    return waiting


def reviews_required(spec: ProjectSpec, default_reviews: int) -> int:
    """Independent reviews each of the project's release requests needs: its own setting, else the airlock's default."""
    return spec.airlock.reviews_required or default_reviews


def _checkers(members: Iterable[tuple[str, str]]) -> set[str]:
    return {user for user, role in members if role == ProjectRole.OUTPUT_CHECKER.value}


def available_reviewers(members: Iterable[tuple[str, str]]) -> tuple[int, str | None]:
    """The fewest output checkers any of the project's release requests can have, and who wrote that request when
    it is a member who is both a researcher and a checker (never their own reviewer); (checkers, None) otherwise."""
    members = list(members)
    checkers = _checkers(members)
    authors = {user for user, role in members if role == ProjectRole.RESEARCHER.value}
    fewest, who = len(checkers), None
    for author in sorted(authors & checkers):
        if len(checkers) - 1 < fewest:
            fewest, who = len(checkers) - 1, author
    return fewest, who


def _shortfall(
    name: str, members: Iterable[tuple[str, str]], needed: int, default_reviews: int, *, would: bool = False
) -> str | None:
    fewest, author = available_reviewers(members)
    if fewest >= needed:
        return None
    reviews = f"each release needs {needed} independent reviews (airlock.reviews_required, default {default_reviews})"
    if author is None:
        return f"project {name}{' would have' if would else ':'} {fewest} output checker(s), but {reviews}"
    return (f"project {name}: {author} {'would be' if would else 'is'} a researcher and an output checker, so their "
            f"own release requests {'would have' if would else 'have'} only {fewest} other output checker(s), but "
            f"{reviews}")  # fmt: skip


def require_enough_checkers(spec: ProjectSpec, default_reviews: int) -> None:
    """SpecError unless every release request of the project can get as many reviews as it needs: at least that many
    output checkers, and as many besides themselves for a member who is both a researcher and a checker. With fewer,
    a release request would wait for a review nobody can give."""
    needed = reviews_required(spec, default_reviews)
    if problem := _shortfall(spec.name, ((m.user, m.role.value) for m in spec.members), needed, default_reviews):
        raise SpecError(f"{problem}; name more output checkers or lower airlock.reviews_required")


def _members(project: Project) -> list[tuple[str, str]]:
    return [(m.username, m.role) for m in project.members]


def _set_members(session: Session, project: Project, members: list[tuple[str, str]]) -> None:
    """Make the project's member rows and its stored spec's members match `members`. Rows that stay are kept: replacing
    them all inserted a (project, user, role) row before its old twin was deleted, which the unique key refused."""
    wanted = set(members)
    for row in [r for r in project.members if (r.username, r.role) not in wanted]:
        project.members.remove(row)
    session.flush()  # deletions first, so a role given back in the same change does not meet its old row
    have = set(_members(project))
    project.members.extend(ProjectMember(username=u, role=r) for u, r in dict.fromkeys(members) if (u, r) not in have)
    spec: dict[str, Any] = dict(project.spec or {})
    spec["members"] = [{"user": u, "role": r} for u, r in dict.fromkeys(members)]
    project.spec = spec


def plan_replacement(session: Session, spec: ProjectSpec) -> SpecPlan | None:
    """What replacing project `spec.name` with `spec` would change; None when there is no such project yet."""
    project = session.get(Project, spec.name)
    if project is None:
        return None
    get_open_project(session, spec.name)
    return plan_changes(
        project.spec,
        _members(project),
        spec.model_dump(mode="json"),
        old_datasets=project_datasets(session, project).accepted,
        new_datasets=resolve_datasets(session, spec),
    )


def create_project(
    session: Session, spec: ProjectSpec, *, actor: str, replace: bool = False, expected: SpecPlan | None = None
) -> Project:
    """Create a project from a validated spec; with `replace`, update an existing one to match the spec, auditing what
    changed. With `expected` (the plan an admin approved), refuse if the project changed since it was shown. With
    ['*'], the datasets registered now are the ones accepted (a replace's plan shows those that join)."""
    datasets = resolve_datasets(session, spec)
    project = session.get(Project, spec.name)
    if project is not None and not replace:
        raise EnclaveError(f"project {spec.name} already exists (use --replace to update it from the spec)")
    plan = plan_replacement(session, spec)
    if expected is not None and plan != expected:
        raise EnclaveError(f"project {spec.name} changed since its plan was shown; run the command again")
    if project is None:
        project = Project(name=spec.name, created_at=utcnow(), spec={})
        session.add(project)
    project.title, project.purpose, project.commercial = spec.title, spec.purpose, spec.commercial
    _set_members(session, project, [(m.user, m.role.value) for m in spec.members])
    project.spec = spec.model_dump(mode="json")
    project.datasets_accepted = datasets if spec.datasets == EVERY_DATASET else None
    session.flush()
    if plan is None:
        audit.record(session, actor=actor, action="project.create", target=spec.name, purpose=spec.purpose,
                     datasets=spec.datasets, accepted=datasets,
                     members=[f"{m.user}:{m.role.value}" for m in spec.members])  # fmt: skip
    elif not plan.empty:
        audit.record(session, actor=actor, action="project.update", target=spec.name, **plan.audit_detail())
    return project


def get_project(session: Session, name: str) -> Project:
    project = session.get(Project, name)
    if project is None:
        raise NotFoundError(f"no project {name!r} (see 'enclave project list')")
    return project


def get_open_project(session: Session, name: str) -> Project:
    """The project, refused when it is closed: a closed project's members, datasets and view change no more."""
    project = get_project(session, name)
    if project.closed_at is not None:
        raise EnclaveError(f"project {name} is closed (since {project.closed_at:%Y-%m-%d}): it changes no more")
    return project


def close_project(session: Session, name: str, *, actor: str) -> list[str]:
    """Close project `name`: its researchers' memberships end (every access keyed on them goes: workspaces, hub
    groups, airlock authoring) while its output checkers stay, to read its release history; it can no longer be
    changed or materialised. Returns the researchers whose access ended. Its view is removed by the caller
    (materialise/builds.py); outputs, MLflow stores, airlock records and the audit log are kept."""
    project = get_open_project(session, name)
    researchers = sorted({u for u, r in _members(project) if r == ProjectRole.RESEARCHER.value})
    _set_members(session, project, [(u, r) for u, r in _members(project) if r != ProjectRole.RESEARCHER.value])
    project.closed_at = utcnow()
    session.flush()
    audit.record(session, actor=actor, action="project.close", target=name, researchers=researchers,
                 checkers=sorted(_checkers(_members(project))))  # fmt: skip
    return researchers


def project_spec(project: Project) -> ProjectSpec:
    return ProjectSpec.model_validate(project.spec)


def add_member(
    session: Session, name: str, user: str, role: str, *, actor: str, default_reviews: int | None = None
) -> None:
    """Add `user` to project `name` with `role`. With `default_reviews` (the CLI's), refused when it leaves a release
    request fewer reviewers than it needs (a checker made a researcher too can never review their own requests)."""
    project = get_open_project(session, name)
    member = Member(user=user, role=role)  # validates both
    if any(m.username == member.user and m.role == member.role.value for m in project.members):
        return
    after = [*_members(project), (member.user, member.role.value)]
    if default_reviews is not None:
        _keep_enough_checkers(project, after, default_reviews)
    _set_members(session, project, after)
    session.flush()
    audit.record(session, actor=actor, action="project.add_member", target=name, user=user, role=member.role.value)


def _roles_of(project: Project, user: str) -> list[str]:
    roles = sorted(role for u, role in _members(project) if u == user)
    if not roles:
        raise NotFoundError(f"{user} is not a member of project {project.name} (see 'enclave project show')")
    return roles


def _keep_enough_checkers(project: Project, after: list[tuple[str, str]], default_reviews: int) -> None:
    """Refuse a membership change that leaves a release request of the project fewer output checkers than it needs
    reviews (`available_reviewers`). A project already short (made before this rule) may change in ways that do not
    make it shorter."""
    needed = reviews_required(project_spec(project), default_reviews)
    before, _ = available_reviewers(_members(project))
    remaining, _ = available_reviewers(after)
    if remaining < needed and remaining < before:
        problem = _shortfall(project.name, after, needed, default_reviews, would=True)
        raise EnclaveError(f"{problem}; add another output checker first or lower airlock.reviews_required")


def remove_member(session: Session, name: str, user: str, *, actor: str, default_reviews: int) -> list[str]:
    """Take `user` off project `name` in every role they hold there; returns those roles."""
    project = get_open_project(session, name)
    roles = _roles_of(project, user)
    after = [(u, r) for u, r in _members(project) if u != user]
    _keep_enough_checkers(project, after, default_reviews)
    _set_members(session, project, after)
    session.flush()
    audit.record(session, actor=actor, action="project.remove_member", target=name, user=user, roles=roles)
    return roles


def set_role(session: Session, name: str, user: str, role: str, *, actor: str, default_reviews: int) -> list[str]:
    """Make `role` the only role of member `user` on project `name`; returns the roles they had (unchanged when they
    already held just that one)."""
    project = get_open_project(session, name)
    new = Member(user=user, role=role).role.value  # validates both
    roles = _roles_of(project, user)
    if roles == [new]:
        return roles
    after = [(u, r) for u, r in _members(project) if u != user] + [(user, new)]
    _keep_enough_checkers(project, after, default_reviews)
    _set_members(session, project, after)
    session.flush()
    audit.record(session, actor=actor, action="project.set_role", target=name, user=user, roles_before=roles, role=new)
    return roles
