"""What replacing a project's spec changes: members added and removed, roles changed, datasets added and removed, and
every other field's old and new value, as a plan shown to the admin before it is applied and recorded in the audit
log. Pure data in, pure data out: the registry side is fabric/projects.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The spec's fields the plan shows one by one; every other field is compared whole and shown as old -> new.
MEMBERS, DATASETS, NAME = "members", "datasets", "name"
EVERY = ["*"]  # `datasets: ['*']`


def roles_by_user(members: list[tuple[str, str]]) -> dict[str, list[str]]:
    """{user: sorted roles} from (user, role) pairs."""
    out: dict[str, list[str]] = {}
    for user, role in members:
        out.setdefault(user, []).append(role)
    return {user: sorted(roles) for user, roles in sorted(out.items())}


@dataclass(frozen=True)
class SpecPlan:
    """The changes from a project's current spec and members to a new spec. Only usernames, roles, dataset ids and
    spec settings appear here, so the plan can be printed and audited as it is."""

    project: str
    added: dict[str, list[str]] = field(default_factory=dict)  # user -> roles, new members
    removed: dict[str, list[str]] = field(default_factory=dict)  # user -> roles they had
    roles_changed: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)  # user -> (old, new)
    datasets_added: list[str] = field(default_factory=list)
    datasets_removed: list[str] = field(default_factory=list)
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # title, purpose, compute, ... -> (old, new)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.roles_changed or self.datasets_added or self.datasets_removed
                    or self.fields)  # fmt: skip

    def affected_users(self) -> list[str]:
        """Whose access the change alters: the running hub must apply their memberships again."""
        return sorted({*self.added, *self.removed, *self.roles_changed})

    def lines(self) -> list[str]:
        """The plan as an admin reads it, one change a line."""
        out = [f"+ member {user} ({', '.join(roles)})" for user, roles in self.added.items()]
        out += [f"- member {user} ({', '.join(roles)})" for user, roles in self.removed.items()]
        out += [
            f"~ member {user}: {', '.join(old)} -> {', '.join(new)}" for user, (old, new) in self.roles_changed.items()
        ]
        out += [f"+ dataset {d}" for d in self.datasets_added] + [f"- dataset {d}" for d in self.datasets_removed]
        out += [f"~ {name}: {old} -> {new}" for name, (old, new) in self.fields.items()]
        return out

    def audit_detail(self) -> dict[str, Any]:
        """What the audit event of the change records: only the parts that changed."""
        detail: dict[str, Any] = {
            "members_added": self.added, "members_removed": self.removed,
            "roles_changed": {u: {"from": old, "to": new} for u, (old, new) in self.roles_changed.items()},
            "datasets_added": self.datasets_added, "datasets_removed": self.datasets_removed,
            "fields": {name: {"from": old, "to": new} for name, (old, new) in self.fields.items()},
        }  # fmt: skip
        return {key: value for key, value in detail.items() if value}


def plan_changes(
    old_spec: dict[str, Any],
    old_members: list[tuple[str, str]],
    new_spec: dict[str, Any],
    *,
    old_datasets: list[str] | None = None,
    new_datasets: list[str] | None = None,
) -> SpecPlan:
    """The plan from a project's stored spec and its (user, role) memberships to `new_spec` (both as dumped to JSON).
    Members come from the registry's rows, not the stored spec, since `add-member` and `set-role` change them.
    Datasets are compared as the concrete lists the caller resolves (['*'] stands for the datasets a project
    accepted, and for every registered one in a new spec); switching between ['*'] and a list shows as a field."""
    old_datasets = old_spec.get(DATASETS, []) if old_datasets is None else old_datasets
    new_datasets = new_spec.get(DATASETS, []) if new_datasets is None else new_datasets
    old = roles_by_user(old_members)
    new = roles_by_user([(m["user"], m["role"]) for m in new_spec.get(MEMBERS, [])])
    fields = {
        key: (old_spec.get(key), value)
        for key, value in new_spec.items()
        if key not in (NAME, MEMBERS, DATASETS) and old_spec.get(key) != value
    }
    if (old_spec.get(DATASETS) == EVERY) != (new_spec.get(DATASETS) == EVERY):
        fields[DATASETS] = (old_spec.get(DATASETS), new_spec.get(DATASETS))
    return SpecPlan(
        project=new_spec[NAME],
        added={user: roles for user, roles in new.items() if user not in old},
        removed={user: roles for user, roles in old.items() if user not in new},
        roles_changed={user: (old[user], new[user]) for user in new if user in old and old[user] != new[user]},
        datasets_added=[d for d in new_datasets if d not in old_datasets],
        datasets_removed=[d for d in old_datasets if d not in new_datasets],
        fields=fields,
    )
