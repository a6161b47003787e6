"""JupyterHub roles and groups as data, validated against JupyterHub's own scope table at import.

Every user starts from a base role with no way to mint tokens or start servers (JupyterHub's default `user` role,
`self`, allows both); the group of a person's project role then adds what that role needs:

| group | may |
| --- | --- |
| `researchers` | start, use and stop their own workspace servers; use the airlock |
| `output-checkers` | use the airlock (review); no workspace, so no project data through a workspace |
| `platform-admins` | the hub's admin pages for users and groups; never access to anyone's server, never tokens |

Who is in which group comes from project membership in the registry (`hub_groups`).
"""

from __future__ import annotations

from typing import Any

from jupyterhub.scopes import scope_definitions
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric.models import ProjectMember
from fabric.projects import ProjectRole

AIRLOCK_ACCESS = "access:services!service=airlock"
BASE_USER = ["read:users!user", "users:activity!user"]  # no `tokens`, no `servers`: the default `user` role has both
GROUP_ROLES: dict[str, dict[str, Any]] = {
    "researchers": {
        "description": "Researchers: their own workspaces and the airlock",
        "scopes": ["servers!user", "access:servers!user", "read:servers!user", AIRLOCK_ACCESS],
    },
    "output-checkers": {
        "description": "Output checkers: the airlock only (no workspace)",
        "scopes": [AIRLOCK_ACCESS],
    },
    "platform-admins": {
        "description": "Platform admins: users and groups, no servers, no tokens, no airlock decisions",
        "scopes": ["admin-ui", "list:users", "read:users", "admin:groups", "read:groups", "read:roles", "read:hub"],
    },
}
GROUP_OF_ROLE = {ProjectRole.RESEARCHER.value: "researchers", ProjectRole.OUTPUT_CHECKER.value: "output-checkers"}
TOKEN_MAX_SECONDS = 8 * 3600  # any token a person is given lives at most a working day


def _check(scopes: list[str]) -> None:
    for scope in scopes:
        base = scope.split("!", 1)[0]
        if base not in scope_definitions:
            raise ValueError(f"unknown JupyterHub scope {scope!r}")
        if base in ("tokens", "admin:auth_state", "admin:server_state"):
            raise ValueError(f"{scope!r} is never granted to people in Enclave")


_check(BASE_USER)
for _role in GROUP_ROLES.values():
    _check(_role["scopes"])


def hub_roles() -> list[dict[str, Any]]:
    """`c.JupyterHub.load_roles`: the base user role (replacing JupyterHub's default) and one role per group."""
    roles = [{"name": "user", "description": "Every Enclave user: their own name, nothing else", "scopes": BASE_USER}]
    for group, role in GROUP_ROLES.items():
        roles.append({"name": f"enclave-{group}", "groups": [group], **role})
    return roles


def hub_groups(
    session: Session, admins: list[str] | None = None, people: set[str] | None = None
) -> dict[str, dict[str, list[str]]]:
    """`c.JupyterHub.load_groups` from project membership (a person in several projects is in each group once).
    With `people`, only those names (the hub makes a user for every name in a group: one without an account would
    come back at each start)."""
    groups: dict[str, set[str]] = {group: set() for group in GROUP_ROLES}
    for user, role in session.execute(select(ProjectMember.username, ProjectMember.role)):
        if role in GROUP_OF_ROLE:
            groups[GROUP_OF_ROLE[role]].add(user)
    groups["platform-admins"] |= set(admins or [])
    if people is not None:
        groups = {group: users & people for group, users in groups.items()}
    return {group: {"users": sorted(users)} for group, users in groups.items()}
