"""Who may start a workspace of a project, and with which limits: the one rule every spawner applies.

Only a researcher member of project P starts P's workspace, and it gets P's `compute` limits. The sandbox spawner
asks through `prepare` (hub/workspaces.py), the Kubernetes configuration through its pre-spawn hook
(hub/kubernetes.py); neither decides on its own. Refusals are `WorkspaceError`s carrying an HTTP status for the hub
and a message for people, with no path, identifier or secret in it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from fabric.models import Project, ProjectMember
from fabric.projects import ComputeLimits, ProjectRole, ProjectSpec
from hub.limits import Limits
from kernel.db import Registry

# One answer for every refusal (not a member, a checker only, another project's member, no such project, the default
# server): it names neither the person nor the project, so nobody learns which projects exist by asking.
REFUSED = "You are not a researcher in this project: open a workspace from your list of projects."


class WorkspaceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class WorkspaceGrant:
    """Permission for `user` to start a workspace of `project`, with what the project's spec gives it."""

    user: str
    project: str
    spec: ProjectSpec

    @property
    def compute(self) -> ComputeLimits:
        return self.spec.compute

    @property
    def limits(self) -> Limits:
        return Limits.from_compute(self.spec.compute)


def authorise_workspace(registry: Registry, user: str, project: str) -> WorkspaceGrant:
    """The grant for `user` to work in `project`, or WorkspaceError(403) when they are not a researcher in it."""
    if not user or not project:  # the default (unnamed) server belongs to no project
        raise WorkspaceError(403, REFUSED)
    with registry.session() as session:
        spec = session.execute(
            select(Project.spec)
            .join(ProjectMember, ProjectMember.project_name == Project.name)
            .where(
                Project.name == project,
                ProjectMember.username == user,
                ProjectMember.role == ProjectRole.RESEARCHER.value,
            )
        ).scalar_one_or_none()
    if spec is None:
        raise WorkspaceError(403, REFUSED)
    return WorkspaceGrant(user=user, project=project, spec=ProjectSpec.model_validate(spec))
