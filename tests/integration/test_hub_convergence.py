"""When the hub was not running while an account or a membership was removed, its next start converges (issue 17,
finding 1): the removed account's hub user is deleted with its tokens (its old cookie is refused) and group
membership is set from the registry. A real JupyterHub with Enclave's authenticator, started twice on one state."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pyotp
import pytest

from fabric.models import Project, ProjectMember
from hub import accounts
from kernel.config import Paths
from kernel.db import Registry
from tests.hub_runner import CHP, NO_CHP, free_ports, login_form, loopback_config, running_hub

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not CHP.exists(), reason=NO_CHP), pytest.mark.timeout(300)]
PASSWORD = "a long enough password"


def hub_rows(db: str, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        return connection.execute(sql).fetchall()


def test_the_next_start_converges(tmp_path):
    home = tmp_path / "home"
    registry = Registry(Paths(home).database_url)
    secrets = {}
    with registry.session() as session:
        for name in ("erin", "fred"):
            secrets[name] = accounts.add_account(session, name, PASSWORD, actor="test-admin").secret
        session.add(Project(name="p1", title="P1", purpose="GRU", commercial=False, spec={}, created_at=datetime.now()))
        session.flush()
        session.add(ProjectMember(project_name="p1", username="erin", role="researcher"))
    public, hub_port, api = free_ports(3)
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        loopback_config(tmp_path, public=public, hub=hub_port, proxy_api=api)
        + f'c.JupyterHub.authenticator_class = "enclave"\nc.EnclaveAuthenticator.enclave_home = {str(home)!r}\n'
        + 'c.JupyterHub.load_groups = {"researchers": {"users": []}}\n'
        + "c.Authenticator.delete_invalid_users = True\n"
    )
    url = f"http://127.0.0.1:{public}"
    db = str(tmp_path / "jupyterhub.sqlite")
    groups_of_erin = (
        "select g.name from groups g join user_group_map m on m.group_id = g.id join users u on u.id = m.user_id "
        "where u.name = 'erin'"
    )
    with running_hub(tmp_path, config, [f"{url}/hub/health"]):
        people = {}
        for name in ("erin", "fred"):
            people[name], ok = login_form(
                url, {"username": name, "password": PASSWORD, "otp": pyotp.TOTP(secrets[name]).now()}
            )
            assert ok.status_code == 302
        assert people["fred"].get(f"{url}/hub/api/user", timeout=30).status_code == 200
        assert hub_rows(db, groups_of_erin) == [("researchers",)], "a member's group is set at her first login"

    # while the hub is down: fred's account is removed, erin leaves the project
    with registry.session() as session:
        accounts.remove_account(session, "fred", actor="test-admin")
        for member in session.query(ProjectMember).filter_by(username="erin"):
            session.delete(member)
    registry.close()

    with running_hub(tmp_path, config, [f"{url}/hub/health"]):
        assert people["fred"].get(f"{url}/hub/api/user", timeout=30).status_code == 403, "fred's cookie still works"
        assert hub_rows(db, "select name from users where name = 'fred'") == []
        assert hub_rows(db, groups_of_erin) == []
        assert people["erin"].get(f"{url}/hub/api/user", timeout=30).status_code == 200
