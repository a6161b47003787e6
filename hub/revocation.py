"""Revocation: ending a person's access at once, through JupyterHub's own REST API, as one operation that account
removal, membership changes and logout all use; each revocation is recorded in the audit log.

The `enclave` CLI runs as root on the host and reaches the running hub on its Unix socket as the API-only service
`enclave-admin`, whose token lives in the root-only hub state folder and whose role holds only the scopes listed in
`ADMIN_SCOPES` (validated against JupyterHub's scope table at import). What it does:

| change | in the running hub |
| --- | --- |
| account removed; password or TOTP reset | stop every workspace, then delete the hub user: servers, tokens, grants go |
| membership removed, role changed | groups set from the registry; workspaces not allowed now stopped |
| membership added | group membership set from the registry |
| logout (inside the hub) | the person's hub cookie and browser tokens revoked (`end_browser_sessions`) |
| a step the hub refuses | recorded `access.apply_failed` and raised; `enclave project apply-access` resumes it |

When the hub is not running, the next start converges: users without an account are deleted from the hub and group
membership is set from the registry (hub/authenticator.py `add_user`), and no workspace outlives the hub.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jupyterhub.scopes import scope_definitions
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric.models import ProjectMember
from fabric.projects import ProjectRole
from hub.roles import GROUP_OF_ROLE
from hub.sandbox import hub_socket
from kernel import audit
from kernel.config import Paths
from kernel.db import Registry
from kernel.errors import EnclaveError

ADMIN_SERVICE = "enclave-admin"
TOKEN_FILE = "enclave-admin.token"  # noqa: S105 (a file name, not a secret)
# What revocation needs and nothing more: find people and their servers, stop servers, delete users, set the
# project groups' members. Never `tokens`, `admin:users` (auth state), `start:servers` or `access:servers`.
ADMIN_SCOPES = ["list:users", "read:users", "read:servers", "delete:servers", "delete:users", "groups"]
NEVER_GRANTED = frozenset(
    {"tokens", "admin:users", "admin:auth_state", "admin:server_state", "admin:servers", "servers",
     "start:servers", "access:servers", "admin:groups", "delete:groups", "shares", "admin-ui"}
)  # fmt: skip
PROJECT_GROUPS = frozenset(GROUP_OF_ROLE.values())  # groups that follow project membership (not platform-admins)
STOP_WAIT_SECONDS = 60
PAGINATED = "application/jupyterhub-pagination+json"  # asks JupyterHub for its paged form of a list


def _check(scopes: list[str]) -> None:
    for scope in scopes:
        base = scope.split("!", 1)[0]
        if base not in scope_definitions:
            raise ValueError(f"unknown JupyterHub scope {scope!r}")
        if base in NEVER_GRANTED:
            raise ValueError(f"{scope!r} is never granted to {ADMIN_SERVICE}")


_check(ADMIN_SCOPES)


class HubUnavailable(Exception):
    """The hub is not running (or not reachable on its socket): the next start converges instead."""


class RevocationError(EnclaveError):
    """The running hub refused or did not finish a step; running the command again resumes it."""


# ------------------------------------------------------------------------------------------------ the identity


def admin_token(paths: Paths, *, create: bool = False) -> str | None:
    """`enclave-admin`'s token, from the root-only hub state folder; made there (0600) when `create` and the folder
    exists. None when there is none."""
    path = paths.hub / TOKEN_FILE
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip() or None
    if not create or not paths.hub.is_dir():
        return None
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token)
    return token


def admin_service(paths: Paths) -> dict[str, Any] | None:
    """The `c.JupyterHub.services` entry of `enclave-admin`: an API-only identity (no URL, no process), or None when
    the hub state folder does not exist yet."""
    token = admin_token(paths, create=True)
    if token is None:
        return None
    return {"name": ADMIN_SERVICE, "api_token": token, "display": False}


def admin_role() -> dict[str, Any]:
    """The `c.JupyterHub.load_roles` entry granting `enclave-admin` its scopes."""
    return {
        "name": ADMIN_SERVICE,
        "description": "Enclave's revocation: stop servers, delete users, set project groups",
        "scopes": list(ADMIN_SCOPES),
        "services": [ADMIN_SERVICE],
    }


# ------------------------------------------------------------------------------------------------ the hub's API


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self._path))
        self.sock = sock


class HubAPI:
    """JupyterHub's REST API on its Unix socket, as `enclave-admin`."""

    def __init__(self, socket_path: Path, token: str, timeout: float = 30) -> None:
        self.socket_path = socket_path
        self._token = token
        self.timeout = timeout

    @classmethod
    def of(cls, paths: Paths) -> HubAPI:
        token = admin_token(paths)
        path = hub_socket(paths)
        if token is None or not path.is_socket():
            raise HubUnavailable("the hub is not running")
        return cls(path, token)

    def call(self, method: str, path: str, body: Any = None, accept: str = "application/json") -> tuple[int, Any]:
        connection = _UnixConnection(self.socket_path, self.timeout)
        headers = {"Authorization": f"token {self._token}", "Accept": accept}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, "/hub/api" + path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            raise HubUnavailable("the hub is not running") from exc
        finally:
            connection.close()
        if response.status >= 500 or response.status in (401, 403):
            raise RevocationError(f"the hub refused to change {path.split('/')[1]} (HTTP {response.status}); try again")
        return response.status, (json.loads(raw) if raw else None)

    def user(self, name: str) -> dict[str, Any] | None:
        status, model = self.call("GET", f"/users/{quote(name)}")
        return None if status == 404 else model

    def active_users(self) -> list[dict[str, Any]]:
        """Every hub user with a server running or starting, page by page (the hub pages its user list)."""
        users: list[dict[str, Any]] = []
        offset = 0
        while True:
            _, page = self.call("GET", f"/users?state=active&offset={offset}&limit=200", accept=PAGINATED)
            users.extend(page["items"])
            if not page["_pagination"]["next"] or not page["items"]:
                return users
            offset += len(page["items"])

    def stop_servers(self, name: str, servers: list[str]) -> None:
        """Ask the hub to stop `servers` of `name` together, then wait until none is left running."""
        for server in servers:
            self.call("DELETE", f"/users/{quote(name)}/servers/{quote(server)}")
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while time.monotonic() < deadline:
            model = self.user(name) or {}
            if not set(model.get("servers", {})) & set(servers):
                return
            time.sleep(0.2)
        raise RevocationError("a workspace did not stop within a minute; run the command again")

    def delete_user(self, name: str) -> None:
        self.call("DELETE", f"/users/{quote(name)}")

    def set_groups(self, name: str, groups: set[str], current: set[str]) -> None:
        for group in sorted(PROJECT_GROUPS):
            body = {"users": [name]}
            if group in groups and group not in current:
                status, _ = self.call("POST", f"/groups/{group}/users", body)
            elif group not in groups and group in current:
                status, _ = self.call("DELETE", f"/groups/{group}/users", body)
            else:
                continue
            if status >= 300:  # 404 too: the hub answers so for a group it lacks or one this identity may not change
                raise RevocationError(f"the hub refused to change a project group (HTTP {status}); try again")


# ------------------------------------------------------------------------------------------------ the operation


@dataclass
class Revocation:
    """What one revocation did: `live` is False when the hub was not running (the next start converges)."""

    user: str
    live: bool = False
    stopped: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    removed_groups: list[str] = field(default_factory=list)
    deleted: bool = False

    def summary(self) -> str:
        if not self.live:
            return "the hub is not running: its next start applies this"
        parts = []
        if self.stopped:
            parts.append(f"stopped {len(self.stopped)} workspace(s)")
        if self.deleted:  # the hub no longer knows the person: no groups to speak of until they log in again
            parts.append("ended every hub session, token and grant")
            return "; ".join(parts)
        parts.append("groups " + (", ".join(self.groups) or "none"))
        return "; ".join(parts)


def project_groups(session: Session, username: str) -> set[str]:
    """The project groups `username` belongs in, from the registry."""
    roles = session.scalars(select(ProjectMember.role).where(ProjectMember.username == username))
    return {GROUP_OF_ROLE[role] for role in roles if role in GROUP_OF_ROLE}


def researcher_projects(session: Session, username: str) -> set[str]:
    rows = session.scalars(
        select(ProjectMember.project_name).where(
            ProjectMember.username == username, ProjectMember.role == ProjectRole.RESEARCHER.value
        )
    )
    return set(rows)


def revoke_account(
    registry: Registry, paths: Paths, username: str, *, actor: str, only_if_known: bool = False,
    reason: str = "account removed",
) -> Revocation:  # fmt: skip
    """After an account is removed, or its password or authenticator replaced (`reason`): stop the person's
    workspaces and delete them from the hub, which removes their servers, tokens, OAuth grants and hub cookie in one
    call (a person who still has an account is made again at their next login, with their project groups). With
    `only_if_known`, nothing is done or recorded unless the running hub still has the user (finishing a revocation
    cut short)."""
    result = Revocation(username)
    try:
        hub = HubAPI.of(paths)
        model = hub.user(username)
        result.live = True
        if model is not None:
            result.stopped = sorted(model.get("servers", {}))
            if result.stopped:
                hub.stop_servers(username, result.stopped)
            hub.delete_user(username)
            result.deleted = True
    except HubUnavailable:
        result.live = False
    if only_if_known and not result.deleted:
        return result
    _record(registry, actor, "access.revoked", reason, result)
    return result


def apply_membership(registry: Registry, paths: Paths, username: str, *, actor: str) -> Revocation:
    """After a membership of `username` was added, removed or changed: set their project groups in the running hub
    and stop any workspace of a project they are no longer a researcher in."""
    with registry.session() as session:
        groups = project_groups(session, username)
        allowed = researcher_projects(session, username)
    result = Revocation(username, groups=sorted(groups))
    try:
        hub = HubAPI.of(paths)
        model = hub.user(username)
        result.live = True
        if model is not None:
            current = set(model.get("groups", [])) & PROJECT_GROUPS
            hub.set_groups(username, groups, current)
            result.removed_groups = sorted(current - groups)
            result.stopped = sorted(set(model.get("servers", {})) - allowed)
            if result.stopped:
                hub.stop_servers(username, result.stopped)
    except HubUnavailable:
        result.live = False
    except RevocationError as exc:  # recorded, then raised: the caller reports it and `apply-access` resumes it
        _record(registry, actor, "access.apply_failed", f"membership changed; {exc}", result)
        raise
    action = "access.revoked" if (result.stopped or result.removed_groups) else "access.applied"
    _record(registry, actor, action, "membership changed", result)
    return result


def running_workspace_owners(paths: Paths, project: str) -> set[str]:
    """Who has a workspace of `project` running in the hub now (a server is named for its project); empty when the hub
    is not running."""
    try:
        users = HubAPI.of(paths).active_users()
    except HubUnavailable:
        return set()
    return {user["name"] for user in users if project in user.get("servers", {})}


def _record(registry: Registry, actor: str, action: str, reason: str, result: Revocation) -> None:
    registry.transaction(
        lambda session: audit.record(
            session,
            actor=actor,
            action=action,
            target=f"user:{result.user}",
            reason=reason,
            live=result.live,
            stopped=result.stopped,
            groups=result.groups,
            hub_user_deleted=result.deleted,
        )
    )


# ------------------------------------------------------------------------------------------------ inside the hub


def end_browser_sessions(db: Any, orm_user: Any) -> int:
    """Logout, inside the hub: every browser session of the person ends. Their hub cookie is refused from now on
    (its id is replaced, as JupyterHub's cookie names the user by it) and every token a browser session was given
    (OAuth grants to workspaces and the airlock) is deleted; servers' own tokens stay. Returns how many tokens."""
    from jupyterhub import orm
    from jupyterhub.utils import new_token

    orm_user.cookie_id = new_token()
    count = 0
    for token in db.query(orm.APIToken).filter(
        orm.APIToken.user_id == orm_user.id, orm.APIToken.session_id.isnot(None)
    ):
        db.delete(token)
        count += 1
    db.commit()
    return count
