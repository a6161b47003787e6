"""Revocation and sessions as data (issue 17): the `enclave-admin` identity's scopes, the session settings the hub is
given, and what removing an account does to the registry. The behaviour against a real hub is in
tests/security/test_revocation_sessions.py."""

from __future__ import annotations

import json
import stat
from datetime import datetime

import pytest
from sqlalchemy import select
from traitlets.config import Config

from fabric.models import Project, ProjectMember
from hub import accounts, revocation
from hub.config import HubSettings, apply_config, spawn_confirmation
from hub.roles import hub_groups
from kernel import audit
from kernel.config import Paths
from kernel.db import Registry

pytestmark = pytest.mark.unit


def test_the_admin_identity_gets_only_what_revocation_needs():
    role = revocation.admin_role()
    assert role["services"] == [revocation.ADMIN_SERVICE]
    needed = {"list:users", "read:users", "read:servers", "delete:servers", "delete:users", "groups"}
    assert set(role["scopes"]) == needed
    for scope in ("tokens", "admin:users", "start:servers", "access:servers", "admin:auth_state"):
        with pytest.raises(ValueError, match="never granted"):
            revocation._check([scope])
    with pytest.raises(ValueError, match="unknown"):
        revocation._check(["no-such-scope"])


def test_a_token_is_never_trusted_forever(tmp_path, monkeypatch):
    """JupyterHub's HubAuth reads a cache age of 0 as "cache forever": the setting refuses it, and the airlock's
    authenticator never passes it on."""
    with pytest.raises(ValueError, match=r"ENCLAVE_AUTH_CACHE_SECONDS must be .* at least 1"):
        HubSettings.from_env({"ENCLAVE_HOME": str(tmp_path), "ENCLAVE_AUTH_CACHE_SECONDS": "0"})
    from output_checks.web.auth import HubIdentity

    monkeypatch.setenv("ENCLAVE_AUTH_CACHE_SECONDS", "0")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "unused-in-this-test")
    assert HubIdentity().hub_auth.cache_max_age == 1


def test_the_hub_is_given_sessions_that_end(tmp_path):
    paths = Paths(tmp_path)
    paths.hub.mkdir(parents=True, mode=0o700)
    c = Config()
    settings = HubSettings.from_env({"ENCLAVE_HOME": str(tmp_path), "ENCLAVE_AUTH_CACHE_SECONDS": "3"})
    apply_config(c, settings)
    cookies = c.JupyterHub.tornado_settings["cookie_options"]
    assert cookies["samesite"] == "Lax" and cookies["expires_days"] <= 1
    assert json.loads(c.Spawner.environment["JUPYTERHUB_COOKIE_OPTIONS"]) == cookies
    airlock = next(s for s in c.JupyterHub.services if s["name"] == "airlock")
    assert json.loads(airlock["environment"]["JUPYTERHUB_COOKIE_OPTIONS"]) == cookies
    assert airlock["environment"]["ENCLAVE_AUTH_CACHE_SECONDS"] == "3"
    assert "--HubOAuth.cache_max_age=3" in c.Spawner.args
    assert "--ServerApp.shutdown_no_activity_timeout=3600" in c.Spawner.args
    assert c.Authenticator.auth_refresh_strict is True and c.Authenticator.delete_invalid_users is True
    assert c.Spawner.options_form is spawn_confirmation
    admin = next(s for s in c.JupyterHub.services if s["name"] == revocation.ADMIN_SERVICE)
    token = paths.hub / revocation.TOKEN_FILE
    assert admin["api_token"] == token.read_text() and "url" not in admin and "command" not in admin
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert revocation.admin_role() in c.JupyterHub.load_roles


def test_session_settings_are_checked():
    with pytest.raises(ValueError, match="ENCLAVE_SESSION_IDLE_SECONDS"):
        HubSettings.from_env({"ENCLAVE_HOME": "/tmp", "ENCLAVE_SESSION_IDLE_SECONDS": "an hour"})
    with pytest.raises(ValueError, match="ENCLAVE_SESSION_MAX_SECONDS"):
        HubSettings.from_env({"ENCLAVE_HOME": "/tmp", "ENCLAVE_SESSION_MAX_SECONDS": "5"})


def test_the_spawn_confirmation_escapes_the_name():
    class Spawner:
        name = "<b>x</b>"

    assert "<b>x</b>" not in spawn_confirmation(Spawner())


def test_removing_an_account_removes_its_memberships(tmp_path):
    registry = Registry(Paths(tmp_path).database_url)
    with registry.session() as session:
        accounts.add_account(session, "erin", "a long enough password", actor="admin")
        spec = {"members": [{"user": "erin"}, {"user": "x"}]}
        now = datetime.now()
        session.add(Project(name="p1", title="P1", purpose="GRU", commercial=False, spec=spec, created_at=now))
        session.flush()
        session.add(ProjectMember(project_name="p1", username="erin", role="researcher"))
        session.add(ProjectMember(project_name="p1", username="x", role="researcher"))
    with registry.session() as session:
        assert accounts.remove_account(session, "erin", actor="admin") == ["p1"]
    with registry.session() as session:
        assert session.scalars(select(ProjectMember.username)).all() == ["x"]
        assert session.get(Project, "p1").spec["members"] == [{"user": "x"}]
        events = {e.action: e for e in audit.events(session)}
        assert events["user.remove"].detail["projects"] == ["p1"]
        assert events["project.remove_member"].target == "p1"
        assert revocation.project_groups(session, "erin") == set()
        assert hub_groups(session, admins=["ghost"], people={"x"})["platform-admins"]["users"] == []
    registry.close()


def test_removing_an_unknown_account_is_an_error_without_a_running_hub(tmp_path):
    from click.testing import CliRunner

    from provisioning.cli import main

    result = CliRunner().invoke(main, ["--home", str(tmp_path), "user", "remove", "ghost"])
    assert result.exit_code == 1 and "no user ghost" in result.output
    registry = Registry(Paths(tmp_path).database_url)
    with registry.session() as session:
        assert not [e for e in audit.events(session) if e.action == "access.revoked"], "nothing was revoked"
    registry.close()
