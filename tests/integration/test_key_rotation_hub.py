"""Rotation against a real JupyterHub (issue 16): Enclave's authenticator and `enclave-admin` on the installation's
Unix socket, with the hub's state (cookie secret, database, pid file) in the home's hub folder, as `enclave up` runs
it. A person's authenticator and password are reset while the hub runs: their session ends at once, the old code and
the old password are refused at the login form, the new ones log in, and their project group is still theirs. The
hub's cookie secret and enclave-admin's token are refused while it runs and replaced while it is stopped: after the
next start the old browser session and the old API token are refused, the new token works. No secret is printed by
any command or written to the hub's log, every step is audited, and the audit log verifies. And a home restored from
a backup taken after an anchor-key rotation verifies, forgery still found."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pyotp
import pytest
import requests

from hub import accounts, hub_keys
from hub.lifecycle import ensure_hub_state
from hub.revocation import TOKEN_FILE, HubAPI, RevocationError, admin_role, admin_service
from hub.sandbox import hub_socket, socket_url
from kernel import audit
from kernel.config import Paths
from kernel.db import Registry
from tests.enclave_cli import enclave
from tests.hub_runner import CHP, NO_CHP, free_ports, login_form, loopback_config, running_hub

pytestmark = [
    pytest.mark.integration,
    pytest.mark.security,
    pytest.mark.skipif(not CHP.exists(), reason=NO_CHP),
    pytest.mark.timeout(400),
]
PASSWORD = "a long enough password"
NEW_PASSWORD = "another long enough password"
SPEC = """\
name: keys-p1
title: Key rotation
purpose: GRU
datasets: ['*']
members:
  - {user: carol, role: output_checker}
  - {user: dave, role: output_checker}
  - {user: alice, role: researcher}
"""


@pytest.fixture
def home(tmp_path):
    paths = Paths(tmp_path / "home")
    ensure_hub_state(paths)
    yield paths
    shutil.rmtree(hub_socket(paths).parent, ignore_errors=True)


def hub_config(paths: Paths, ports: list[int]) -> Path:
    """What hub/config.py sets for the parts under test, written afresh before each start as `enclave up` applies
    the configuration afresh: enclave-admin's service entry reads its token file then."""
    public, hub_port, api = ports
    socket = socket_url(hub_socket(paths))
    config = paths.hub / "jupyterhub_config.py"
    config.write_text(
        loopback_config(paths.hub, public=public, hub=hub_port, proxy_api=api)
        + f"c.JupyterHub.pid_file = {str(paths.hub / 'jupyterhub.pid')!r}\n"
        + f'c.JupyterHub.authenticator_class = "enclave"\nc.EnclaveAuthenticator.enclave_home = {str(paths.home)!r}\n'
        + f"c.JupyterHub.hub_bind_url = {socket!r}\nc.JupyterHub.hub_connect_url = {socket!r}\n"
        + f"c.JupyterHub.services = [{admin_service(paths)!r}]\nc.JupyterHub.load_roles = [{admin_role()!r}]\n"
        + 'c.JupyterHub.load_groups = {"researchers": {"users": []}, "output-checkers": {"users": []}}\n'
    )
    return config


def whoami(url: str, http: requests.Session) -> int:
    return http.get(
        f"{url}/hub/api/user", timeout=30, headers={"X-XSRFToken": http.cookies.get("_xsrf", "")}
    ).status_code


def code_after(seed: str, used: float) -> str:
    """A code of a later time step than the one `used` was in (each step's code logs in once) that the hub still
    accepts now (it takes one step either side of its clock): waits for the next step when it must."""
    totp = pyotp.TOTP(seed)
    used_step = int(used // totp.interval)
    while int(time.time() // totp.interval) + 1 <= used_step:
        time.sleep(1)
    return totp.at(max(used_step + 1, int(time.time() // totp.interval)) * totp.interval)


def logs_in(url: str, password: str, code: str) -> tuple[requests.Session, bool]:
    http, response = login_form(url, {"username": "alice", "password": password, "otp": code})
    return http, response.status_code == 302


def test_resets_and_hub_secret_rotation_against_a_real_hub(tmp_path, home):
    registry = Registry(home.database_url)
    try:
        with registry.session() as session:
            seeds = {name: accounts.add_account(session, name, PASSWORD, actor="test-admin").secret
                     for name in ("alice", "carol", "dave")}  # fmt: skip
    finally:
        registry.close()
    (tmp_path / "p1.yaml").write_text(SPEC)
    enclave(home.home, "project", "create", "-f", str(tmp_path / "p1.yaml"))
    ports = free_ports(3)
    url = f"http://127.0.0.1:{ports[0]}"
    printed: list[str] = []  # everything the commands printed, searched for secrets at the end
    old_token = None
    new_seed = None

    with running_hub(home.hub, hub_config(home, ports), [f"{url}/hub/health"]):
        old_token = (home.hub / TOKEN_FILE).read_text()
        old_cookie_secret = (home.hub / hub_keys.COOKIE_SECRET_FILE).read_text().strip()
        http, ok = logs_in(url, PASSWORD, pyotp.TOTP(seeds["alice"]).now())
        assert ok and whoami(url, http) == 200
        assert "researchers" in HubAPI.of(home).user("alice")["groups"]

        # the hub's secrets are read at its start: refused while it runs, nothing changed
        for secret in ("cookie-secret", "admin-token"):
            refused = enclave(home.home, "keys", "rotate", secret, ok=False)
            assert refused.returncode == 1 and "Enclave is running (hub pid" in refused.stderr
        assert (home.hub / TOKEN_FILE).read_text() == old_token

        # a new authenticator: the session ends now, the old app's codes are refused, the new one logs in
        reset = enclave(home.home, "user", "reset-mfa", "alice")
        printed.append(reset.stdout + reset.stderr)
        assert "project memberships kept" in reset.stdout
        assert "access ended: ended every hub session, token and grant\n" in reset.stdout
        new_seed = pyotp.parse_uri(re.search(r"otpauth://\S+", reset.stdout).group(0)).secret
        assert whoami(url, http) == 403, "the session outlived the reset"
        _, ok = logs_in(url, PASSWORD, pyotp.TOTP(seeds["alice"]).now())
        assert not ok, "the old authenticator's code was accepted"
        step = time.time()
        http, ok = logs_in(url, PASSWORD, pyotp.TOTP(new_seed).at(step))
        assert ok and whoami(url, http) == 200
        assert "researchers" in HubAPI.of(home).user("alice")["groups"], "the reset lost her project group"

        # a new password: the old one is refused, the new one logs in (with the next step's code: one use each)
        reset = enclave(home.home, "user", "reset-password", "alice", "--password-stdin", stdin=NEW_PASSWORD + "\n")
        printed.append(reset.stdout + reset.stderr)
        assert "password replaced; project memberships kept" in reset.stdout
        assert whoami(url, http) == 403
        _, ok = logs_in(url, PASSWORD, pyotp.TOTP(new_seed).at(step + 30))
        assert not ok, "the old password was accepted"
        http, ok = logs_in(url, NEW_PASSWORD, pyotp.TOTP(new_seed).at(step + 30))
        assert ok and whoami(url, http) == 200

    # stopped: both replaced, and the hub's database forgets the old token and the browser sessions
    rotated = enclave(home.home, "keys", "rotate", "cookie-secret", "admin-token")
    printed.append(rotated.stdout + rotated.stderr)
    assert "the hub forgot 1 old token(s)" in rotated.stdout
    new_token = (home.hub / TOKEN_FILE).read_text()
    new_cookie_secret = (home.hub / hub_keys.COOKIE_SECRET_FILE).read_text().strip()
    assert new_token != old_token and new_cookie_secret != old_cookie_secret

    with running_hub(home.hub, hub_config(home, ports), [f"{url}/hub/health"]):
        assert whoami(url, http) == 403, "a browser session outlived the cookie secret"
        with pytest.raises(RevocationError, match="HTTP 403"):
            HubAPI(hub_socket(home), old_token).user("alice")
        assert HubAPI.of(home).user("alice") is not None, "the new token does not reach the hub's API"
        http, ok = logs_in(url, NEW_PASSWORD, code_after(new_seed, step + 30))
        assert ok and whoami(url, http) == 200

    log = (home.hub / "jupyterhub.log").read_text(errors="replace")
    for value in (old_token, new_token, old_cookie_secret, new_cookie_secret, seeds["alice"], new_seed):
        assert value not in log, "a secret reached the hub's log"
        if value != new_seed:
            assert value not in "".join(printed), "a secret was printed"
    assert "".join(printed).count(new_seed) == 1, "the new enrolment is shown once, in its URI only"
    registry = Registry(home.database_url)
    try:
        with registry.session() as session:
            events = audit.events(session, limit=1000)
            assert audit.verify(session) == []
    finally:
        registry.close()
    actions = [(e.action, e.target) for e in events]
    for expected in [("user.mfa_reset", "user:alice"), ("user.password_reset", "user:alice"),
                     ("keys.rotated", "secret:cookie-secret"), ("keys.rotated", "secret:admin-token")]:  # fmt: skip
        assert expected in actions
    reasons = [e.detail["reason"] for e in events if e.action == "access.revoked" and e.target == "user:alice"]
    assert reasons[-2:] == ["authenticator reset", "password reset"]


def test_a_backup_taken_after_an_anchor_key_rotation_restores_and_verifies(tmp_path):
    """The retired anchor key travels with `secrets/`: a home restored from a backup taken after a rotation verifies
    the anchors of both keys, and still finds a forged line."""
    source = Paths(tmp_path / "source")
    registry = Registry(source.database_url)
    try:
        with registry.session() as session:
            accounts.add_account(session, "alice", PASSWORD, actor="test-admin")
    finally:
        registry.close()
    rotated = enclave(source.home, "keys", "rotate", "audit-anchor-key")
    assert "sealed entry 1" in rotated.stdout
    enclave(source.home, "user", "reset-mfa", "alice")  # entries after the rotation, under the new key
    enclave(source.home, "backup", str(tmp_path / "backup"), "--no-sites", "--quiet")
    target = tmp_path / "restored"
    restored = enclave(source.home, "restore", str(tmp_path / "backup"), "--home", str(target), "--quiet")
    assert "audit log intact" in restored.stdout
    assert (target / "secrets" / "audit-anchor.retired").read_text() == (
        source.secrets / "audit-anchor.retired"
    ).read_text()
    assert "audit log intact" in enclave(target, "audit", "verify").stdout
    seq, head, at, _signature = (target / "audit" / "anchors.log").read_text().splitlines()[-1].split()
    with (target / "audit" / "anchors.log").open("a") as out:
        out.write(f"{seq} {head} {at} {'0' * 64}\n")
    forged = enclave(target, "audit", "verify", ok=False)
    assert forged.returncode == 1 and "signature does not match (forged or altered)" in forged.stdout
