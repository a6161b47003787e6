"""Research projects: the YAML spec (purpose, members and roles, datasets, compute limits, storage quota, airlock
overrides), its validation, and the registry operations that create projects and change membership."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric import audit
from fabric.consent import PURPOSE_PARENT
from fabric.documents import load_yaml_model
from fabric.errors import FabricError, NotFoundError, SpecError
from fabric.models import Dataset, Project, ProjectMember

PROJECT_NAME = r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$"
USERNAME = r"^[a-z_][a-z0-9_-]{0,31}$"
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

    user: str = Field(pattern=USERNAME)
    role: ProjectRole


MEMORY_UNITS = {"MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "MB": 10**6, "GB": 10**9, "TB": 10**12}

SIZE = r"^\d+(\.\d+)?\s*(MiB|GiB|TiB|MB|GB|TB)$"


def size_bytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(\w+)", size).groups()
    return int(float(number) * MEMORY_UNITS[unit])


class ComputeLimits(BaseModel):
    """What one workspace of the project may use; Dask's LocalCluster is sized from these."""

    model_config = ConfigDict(extra="forbid")

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


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def resolve_datasets(session: Session, spec: ProjectSpec) -> list[str]:
    registered = set(session.scalars(select(Dataset.id)))
    if spec.datasets == ["*"]:
        return sorted(registered)
    unknown = [d for d in spec.datasets if d not in registered]
    if unknown:
        raise SpecError(f"project {spec.name}: unknown dataset(s) {', '.join(unknown)} (see 'enclave dataset list')")
    return list(spec.datasets)


def create_project(session: Session, spec: ProjectSpec, *, actor: str, replace: bool = False) -> Project:
    """Create a project from a validated spec; with `replace`, update an existing one to match the spec."""
    resolve_datasets(session, spec)
    project = session.get(Project, spec.name)
    if project is not None and not replace:
        raise FabricError(f"project {spec.name} already exists (use --replace to update it from the spec)")
    if project is None:
        project = Project(name=spec.name, created_at=_now())
        session.add(project)
    project.title, project.purpose, project.commercial = spec.title, spec.purpose, spec.commercial
    project.spec = spec.model_dump(mode="json")
    project.members = [ProjectMember(username=m.user, role=m.role.value) for m in spec.members]
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="project.update" if replace else "project.create",
        target=spec.name,
        purpose=spec.purpose,
        datasets=spec.datasets,
        members=[f"{m.user}:{m.role.value}" for m in spec.members],
    )
    return project


def get_project(session: Session, name: str) -> Project:
    project = session.get(Project, name)
    if project is None:
        raise NotFoundError(f"no project {name!r} (see 'enclave project list')")
    return project


def project_spec(project: Project) -> ProjectSpec:
    return ProjectSpec.model_validate(project.spec)


def add_member(session: Session, name: str, user: str, role: str, *, actor: str) -> None:
    project = get_project(session, name)
    member = Member(user=user, role=role)  # validates both
    if any(m.username == member.user and m.role == member.role.value for m in project.members):
        return
    project.members.append(ProjectMember(username=member.user, role=member.role.value))
    spec: dict[str, Any] = dict(project.spec)
    spec["members"] = [*spec.get("members", []), {"user": member.user, "role": member.role.value}]
    project.spec = spec
    session.flush()
    audit.record(session, actor=actor, action="project.add_member", target=name, user=user, role=member.role.value)
