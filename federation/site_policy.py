"""What a site accepts from a consortium, as data: the federated projects its admin approved (each with its purpose,
its coordinator, who may submit to it and which kinds of output it may declare), whether a custodian must approve
running a task's code first, and the site's minimum cell count. Read from YAML, validated by pydantic (unknown
fields refused); `decide` turns a verified manifest and the policy into accept, needs-approval or refuse.

Deny by default: a project the policy does not name is refused, submitters and output kinds are listed (or `'*'`
for any submitter), and a custodian approves the code unless the site turned that off.

```yaml
approve_code: true          # the default; a project may override it
min_cell: 10
projects:
  cardio-outcomes:
    purpose: DS-CVD
    coordinator: consortium-hub
    submitters: [alice, bob]  # or "*"
    output_kinds: [table, counts, estimates]
```
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from federation.tasks import NAME, PURPOSE, TaskManifest
from kernel.documents import load_yaml_model
from kernel.names import USERNAME

NodeName = Annotated[str, StringConstraints(pattern=f"^{NAME.pattern}$")]
Purpose = Annotated[str, StringConstraints(pattern=f"^{PURPOSE.pattern}$")]
Submitter = Annotated[str, StringConstraints(pattern=USERNAME.pattern)]
OutputKind = Literal["table", "counts", "estimates", "figure", "text"]  # tasks.OUTPUT_KINDS; a test holds them equal


class Action(StrEnum):
    ACCEPT = "accept"
    NEEDS_APPROVAL = "needs-approval"
    REFUSE = "refuse"


class Reason(StrEnum):
    PROJECT_NOT_APPROVED = "project-not-approved"
    PURPOSE_MISMATCH = "purpose-mismatch"
    COORDINATOR_MISMATCH = "coordinator-mismatch"
    SUBMITTER_NOT_ALLOWED = "submitter-not-allowed"
    OUTPUT_KIND_NOT_ALLOWED = "output-kind-not-allowed"
    CODE_APPROVAL_REQUIRED = "code-approval-required"
    ALLOWED = "allowed"


@dataclass(frozen=True)
class Decision:
    """What a site does with a verified task, and why (a short code, `Reason`)."""

    action: Action
    reason: Reason


class ProjectPolicy(BaseModel):
    """One federated project a site's admin approved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    purpose: Purpose = Field(description="the DUO code the project declares; a task for another purpose is refused")
    coordinator: NodeName = Field(description="the coordinator node that may send this project's tasks")
    submitters: list[Submitter] | Literal["*"] = Field(description="coordinator users who may submit, or '*'")
    output_kinds: list[OutputKind] = Field(min_length=1, description="the kinds of output a task may declare")
    approve_code: bool | None = Field(None, description="overrides the site's approve_code for this project")

    @field_validator("submitters", "output_kinds")
    @classmethod
    def _no_repeats(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError("lists each name once")
        return value


class SitePolicy(BaseModel):
    """A site's whole federation policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    projects: dict[NodeName, ProjectPolicy] = Field(default_factory=dict)
    approve_code: bool = Field(True, description="a custodian approves running a task's code before it runs")
    min_cell: int = Field(10, ge=1, description="the site's minimum cell count for released tables")

    def needs_code_approval(self, project: str) -> bool:
        chosen = self.projects[project].approve_code
        return self.approve_code if chosen is None else chosen


def load_policy(path: Path) -> SitePolicy:
    """The site policy in the YAML file `path`; SpecError naming the field and the problem when it is invalid,
    InvalidInputError when it cannot be read."""
    return load_yaml_model(SitePolicy, path, "site policy")


def decide(manifest: TaskManifest, policy: SitePolicy, *, coordinator: str) -> Decision:
    """What the site does with `manifest`, already verified (federation/tasks.py `verify`), that `coordinator` (the
    peer's authenticated node name) served. Checked in order: the project is approved, for its purpose, from its
    coordinator (both the peer and the manifest's own field), by an allowed submitter, declaring only allowed kinds
    of output; then the code waits for a custodian unless the policy lets it run."""
    project = policy.projects.get(manifest.project)
    if project is None:
        return Decision(Action.REFUSE, Reason.PROJECT_NOT_APPROVED)
    if manifest.purpose != project.purpose:
        return Decision(Action.REFUSE, Reason.PURPOSE_MISMATCH)
    if coordinator != project.coordinator or manifest.coordinator != project.coordinator:
        return Decision(Action.REFUSE, Reason.COORDINATOR_MISMATCH)
    if project.submitters != "*" and manifest.submitter not in project.submitters:
        return Decision(Action.REFUSE, Reason.SUBMITTER_NOT_ALLOWED)
    if any(output.kind not in project.output_kinds for output in manifest.outputs):
        return Decision(Action.REFUSE, Reason.OUTPUT_KIND_NOT_ALLOWED)
    if policy.needs_code_approval(manifest.project):
        return Decision(Action.NEEDS_APPROVAL, Reason.CODE_APPROVAL_REQUIRED)
    return Decision(Action.ACCEPT, Reason.ALLOWED)
