"""A membership change the running hub refuses part-way is finished later, not lost (issue 17, review of issue 16):
`enclave project create --replace` tries every person it affects even when the hub refuses one, records each refusal
(`access.apply_failed`), exits 1 naming the command that applies them again, and `enclave project apply-access`
then makes the hub follow the registry. A real JupyterHub with Enclave's authenticator on its Unix socket, as
`enclave up` starts it; the failure is injected the way a misconfigured site would cause it: `enclave-admin`'s role
may change only the `researchers` group, so adding anyone to `output-checkers` is refused (HTTP 403)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select

from fabric.models import ProjectMember
from hub import accounts
from hub.lifecycle import ensure_hub_state
from hub.revocation import ADMIN_SCOPES, admin_role, admin_service
from hub.sandbox import hub_socket, socket_url
from kernel import audit
from kernel.config import Paths
from kernel.db import Registry
from tests.hub_runner import CHP, NO_CHP, free_ports, login_form, loopback_config, running_hub

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not CHP.exists(), reason=NO_CHP), pytest.mark.timeout(400)]
ENCLAVE = shutil.which("enclave", path=str(Path(sys.executable).parent)) or "enclave"
PASSWORD = "a long enough password"
PEOPLE = ("carol", "dave", "erin", "fred")
SPEC = """\
name: apply-p1
title: Membership applied to the hub
purpose: GRU
datasets: ['*']
members:
  - {user: carol, role: output_checker}
  - {user: dave, role: output_checker}
"""
GROUPS_OF = (
    "select u.name, g.name from groups g join user_group_map m on m.group_id = g.id join users u on u.id = m.user_id"
)


def enclave(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ENCLAVE, "--home", str(home), *args], capture_output=True, text=True, timeout=300, check=False
    )


def hub_groups(db: Path) -> dict[str, set[str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        rows = connection.execute(GROUPS_OF).fetchall()
    groups: dict[str, set[str]] = {}
    for user, group in rows:
        groups.setdefault(user, set()).add(group)
    return groups


def hub_config(tmp: Path, paths: Paths, ports: list[int], *, groups_scope: str) -> Path:
    """Enclave's authenticator, its `enclave-admin` service and the hub's API on the installation's Unix socket (as
    hub/config.py sets them), with `groups_scope` in place of the service's `groups` scope."""
    public, hub_port, api = ports
    role = admin_role()
    role["scopes"] = [scope for scope in ADMIN_SCOPES if scope != "groups"] + [groups_scope]
    socket = socket_url(hub_socket(paths))
    config = tmp / "jupyterhub_config.py"
    config.write_text(
        loopback_config(tmp, public=public, hub=hub_port, proxy_api=api)
        + f'c.JupyterHub.authenticator_class = "enclave"\nc.EnclaveAuthenticator.enclave_home = {str(paths.home)!r}\n'
        + f"c.JupyterHub.hub_bind_url = {socket!r}\nc.JupyterHub.hub_connect_url = {socket!r}\n"
        + f"c.JupyterHub.services = [{admin_service(paths)!r}]\nc.JupyterHub.load_roles = [{role!r}]\n"
        + 'c.JupyterHub.load_groups = {"researchers": {"users": []}, "output-checkers": {"users": []}}\n'
    )
    return config


@pytest.fixture
def home(tmp_path):
    paths = Paths(tmp_path / "home")
    ensure_hub_state(paths)
    yield paths
    shutil.rmtree(hub_socket(paths).parent, ignore_errors=True)


def test_a_change_the_hub_refuses_is_reported_recorded_and_applied_again(tmp_path, home):
    registry = Registry(home.database_url)
    try:
        with registry.session() as session:
            seeds = {name: accounts.add_account(session, name, PASSWORD, actor="test-admin").secret for name in PEOPLE}
    finally:
        registry.close()
    spec = tmp_path / "p1.yaml"
    spec.write_text(SPEC + "  - {user: erin, role: researcher}\n  - {user: fred, role: researcher}\n")
    assert enclave(home.home, "project", "create", "-f", str(spec)).returncode == 0
    ports = free_ports(3)
    url = f"http://127.0.0.1:{ports[0]}"
    db = tmp_path / "jupyterhub.sqlite"

    narrow = hub_config(tmp_path, home, ports, groups_scope="groups!group=researchers")
    with running_hub(tmp_path, narrow, [f"{url}/hub/health"]):
        for name in PEOPLE:
            _, ok = login_form(url, {"username": name, "password": PASSWORD, "otp": pyotp.TOTP(seeds[name]).now()})
            assert ok.status_code == 302
        assert hub_groups(db)["erin"] == {"researchers"} and hub_groups(db)["fred"] == {"researchers"}

        # erin becomes an output checker (the hub refuses her new group), fred leaves (allowed): both are tried
        spec.write_text(SPEC + "  - {user: erin, role: output_checker}\n")
        changed = enclave(home.home, "project", "create", "-f", str(spec), "--replace", "--yes")
        assert changed.returncode == 1, changed.stdout + changed.stderr
        assert "hub, erin: NOT APPLIED" in changed.stderr
        assert "hub, fred: groups none" in changed.stdout, "the hub's refusal for erin stopped fred's change"
        assert "did not follow for 1 of 2 people" in changed.stderr
        assert "enclave project apply-access apply-p1 erin" in changed.stderr
        assert "Traceback" not in changed.stderr
        assert "fred" not in hub_groups(db), "fred's group survived his removal"
        assert "output-checkers" not in hub_groups(db).get("erin", set())

    registry = Registry(home.database_url)
    try:
        with registry.session() as session:
            failed = [e for e in audit.events(session) if e.action == "access.apply_failed"]
            roles = {
                m.username: m.role
                for m in session.scalars(select(ProjectMember).where(ProjectMember.project_name == "apply-p1"))
            }
    finally:
        registry.close()
    assert [e.target for e in failed] == ["user:erin"], "the refusal is not in the audit log"
    assert roles == {"carol": "output_checker", "dave": "output_checker", "erin": "output_checker"}

    full = hub_config(tmp_path, home, ports, groups_scope="groups")
    with running_hub(tmp_path, full, [f"{url}/hub/health"]):
        again = enclave(home.home, "project", "apply-access", "apply-p1", "erin")
        assert again.returncode == 0, again.stderr
        assert "hub, erin: groups output-checkers" in again.stdout
        assert hub_groups(db)["erin"] == {"output-checkers"}
        # with no names: every member (and whoever runs a workspace of the project), idempotent
        everyone = enclave(home.home, "project", "apply-access", "apply-p1")
        assert everyone.returncode == 0, everyone.stderr
        assert [line.split(":")[0] for line in everyone.stdout.splitlines()] == [
            "hub, carol",
            "hub, dave",
            "hub, erin",
        ]
