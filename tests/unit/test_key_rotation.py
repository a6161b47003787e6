"""Key rotation (issue 16): the audit anchor key rotates with the old anchors still verifying and forgeries (with the
new key, with the retired key past its last entry, with no key) still found; a person's password and authenticator
are reset in place, memberships kept; the hub's crypt keys rotate newest first; what does not rotate is refused with
its consequence, and the hub's secrets are refused while Enclave runs; `enclave keys list | rotate` never print a
value, and each rotation is audited by name. A real registry, real files, JupyterHub's own ORM and CryptKeeper."""

from __future__ import annotations

import os
import re
from datetime import datetime

import pyotp
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from fabric.models import Project, ProjectMember
from hub import accounts, hub_keys
from hub.revocation import ADMIN_SERVICE, TOKEN_FILE
from kernel import audit
from kernel.audit_anchors import Anchors
from kernel.config import Paths
from kernel.db import Registry
from kernel.errors import NotFoundError
from output_checks.release.ledger import ledger_key
from provisioning import keys
from provisioning.cli import main

pytestmark = pytest.mark.unit
PASSWORD = "correct horse battery"
NEW_PASSWORD = "a different long password"


@pytest.fixture
def paths(tmp_path, monkeypatch):
    monkeypatch.setenv("ENCLAVE_CRYPT_KEY_FILE", str(tmp_path / "etc" / "crypt-key"))  # never the host's /etc/enclave
    return Paths(tmp_path / "home")


@pytest.fixture
def registry(paths):
    reg = Registry(paths.database_url)
    for n in range(3):
        with reg.session() as session:
            audit.record(session, actor="admin", action="site.add", target=f"site-{n}")
    yield reg
    reg.close()


def verify(reg: Registry) -> audit.Verification:
    with reg.session() as session:
        return audit.verify_log(session)


def anchor_log(paths: Paths) -> str:
    return (paths.home / "audit" / "anchors.log").read_text()


def key_hex(paths: Paths) -> str:
    return (paths.secrets / "audit-anchor.key").read_text().strip()


def run(paths: Paths, *args: str, stdin: str | None = None):
    return CliRunner().invoke(main, ["--home", str(paths.home), *args], input=stdin)


# ------------------------------------------------------------------------------------------------ the anchor key


def test_rotating_the_anchor_key_keeps_the_log_verifying_and_audits_it(registry, paths):
    old = key_hex(paths)
    result = run(paths, "keys", "rotate", "audit-anchor-key")
    assert result.exit_code == 0, result.output
    assert "the old one sealed entry 3" in result.output
    new = key_hex(paths)
    assert new != old and len(new) == 64
    assert old not in result.output and new not in result.output
    assert (paths.secrets / "audit-anchor.retired").stat().st_mode & 0o777 == 0o600
    assert (paths.secrets / "audit-anchor.key").stat().st_mode & 0o777 == 0o600
    retired = Anchors.for_home(paths.home).retired()
    assert [(r.last_seq, r.key.hex()) for r in retired] == [(3, old)]
    # the rotation is entry 4, anchored under the new key; entries before stay anchored under the old one
    with registry.session() as session:
        event = audit.events(session)[-1]
    assert (event.seq, event.action, event.target, event.detail) == (
        4, "keys.rotated", "secret:audit-anchor-key", {"sealed_at_entry": 3},
    )  # fmt: skip
    assert old not in str(event.detail) and new not in str(event.detail)
    with registry.session() as session:
        audit.record(session, actor="admin", action="site.add", target="site-after")
    assert verify(registry) == audit.Verification([], None)
    checked = run(paths, "audit", "verify")
    assert checked.exit_code == 0 and "audit log intact" in checked.output
    # every line verifies with one of the two keys, and the lines after the rotation only with the new one
    lines = anchor_log(paths).splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2", "3", "3", "4", "5"]
    new_key = Anchors(paths.home / "x.log", paths.secrets / "audit-anchor.key")
    assert new_key._sign(bytes.fromhex(new), 4, lines[4].split()[1], lines[4].split()[2]) == lines[4].split()[3]


def test_after_rotations_a_forged_or_cut_anchor_is_still_found(registry, paths):
    for _ in range(2):
        assert run(paths, "keys", "rotate", "audit-anchor-key").exit_code == 0
    assert [r.last_seq for r in Anchors.for_home(paths.home).retired()] == [3, 4]
    assert verify(registry).problems == []
    seq, head, at, _sig = anchor_log(paths).splitlines()[-1].split()
    with (paths.home / "audit" / "anchors.log").open("a") as out:
        out.write(f"{seq} {head} {at} {'0' * 64}\n")
    found = run(paths, "audit", "verify")
    assert found.exit_code == 1
    assert "signature does not match (forged or altered)" in found.output


def test_a_leaked_retired_key_cannot_anchor_a_rewritten_tail(registry, paths):
    old = Anchors(paths.home / "audit" / "anchors.log", paths.secrets / "audit-anchor.key")
    stolen = (paths.secrets / "audit-anchor.key").read_text()
    assert run(paths, "keys", "rotate", "audit-anchor-key").exit_code == 0
    # someone holding the old key (and the database) writes a later entry and anchors it with the retired key
    (paths.home / "stolen.key").write_text(stolen)
    thief = Anchors(old.log_path, paths.home / "stolen.key")
    with registry.session() as session:
        event = audit.record(session, actor="mallory", action="site.add", target="site-x")
    thief.write(event.seq + 1, "f" * 64)
    problems = verify(registry).problems
    assert [p.problem for p in problems] == [
        "signed by a key retired at entry 3, for a later entry (forged)",
    ]


def test_a_rotation_cut_short_after_retiring_leaves_the_log_verifying(registry, paths):
    """A crash between writing the retired list and the new key: the old key is both current and retired; lines it
    signs later still verify, and the next rotation retires it again."""
    anchors = Anchors.for_home(paths.home)
    (paths.secrets / "audit-anchor.retired").write_text(f"3 2026-01-01T00:00:00Z {key_hex(paths)}\n")
    with registry.session() as session:
        audit.record(session, actor="admin", action="site.add", target="site-3")
    assert verify(registry).problems == []
    assert run(paths, "keys", "rotate", "audit-anchor-key").exit_code == 0
    assert [r.last_seq for r in anchors.retired()] == [3, 4]
    assert verify(registry).problems == []


def test_a_damaged_retired_key_file_is_said_not_crashed_on(registry, paths):
    assert run(paths, "keys", "rotate", "audit-anchor-key").exit_code == 0
    with (paths.secrets / "audit-anchor.retired").open("a") as out:
        out.write("not a key\n")
    result = run(paths, "audit", "verify")
    assert result.exit_code == 1
    assert "audit-anchor.retired is damaged: line 2 is not a retired key" in result.output


def test_no_anchor_key_yet_is_refused(paths):
    reg = Registry(paths.database_url)
    reg.close()
    result = run(paths, "keys", "rotate", "audit-anchor-key")
    assert result.exit_code == 1
    assert "no audit anchor key yet" in result.output
    assert not (paths.secrets / "audit-anchor.key").exists()


# ------------------------------------------------------------------------------------------------ people


@pytest.fixture
def alice(registry):
    with registry.session() as session:
        enrolment = accounts.add_account(session, "alice", PASSWORD, actor="admin")
        session.add(Project(name="p1", title="p1", purpose="GRU", commercial=False, created_at=datetime(2026, 1, 1),
                            spec={"members": [{"user": "alice", "role": "researcher"}]}))  # fmt: skip
        session.add(ProjectMember(project_name="p1", username="alice", role="researcher"))
    return enrolment


def login(registry: Registry, password: str, secret: str, at: float) -> bool:
    with registry.session() as session:
        return bool(accounts.verify_login(session, "alice", password, pyotp.TOTP(secret).at(at), at=at))


def test_a_password_reset_keeps_the_authenticator_and_memberships(registry, paths, alice):
    result = run(paths, "user", "reset-password", "alice", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "password replaced; project memberships kept" in result.output
    assert "the hub is not running: its next start applies this" in result.output
    assert NEW_PASSWORD not in result.output
    assert not login(registry, PASSWORD, alice.secret, 1_800_000_000)
    assert login(registry, NEW_PASSWORD, alice.secret, 1_800_000_060)
    with registry.session() as session:
        assert [m.role for m in session.scalars(select(ProjectMember))] == ["researcher"]
        events = [(e.action, e.target, e.detail) for e in audit.events(session) if e.action != "user.login_failed"]
    assert ("user.password_reset", "user:alice", {}) in events
    assert ("access.revoked", "user:alice") in [e[:2] for e in events]
    assert NEW_PASSWORD not in str(events) and PASSWORD not in str(events)


def test_an_mfa_reset_shows_the_new_enrolment_once_and_the_old_codes_stop(registry, paths, alice):
    result = run(paths, "user", "reset-mfa", "alice")
    assert result.exit_code == 0, result.output
    uri = re.search(r"otpauth://\S+", result.output).group(0)
    secret = pyotp.parse_uri(uri).secret
    assert secret != alice.secret and alice.secret not in result.output
    at = 1_800_000_000
    assert not login(registry, PASSWORD, alice.secret, at), "the old authenticator's code still works"
    assert login(registry, PASSWORD, secret, at + 30)
    with registry.session() as session:
        assert session.scalar(select(ProjectMember.project_name)) == "p1"
        events = audit.events(session)
    assert any(e.action == "user.mfa_reset" and e.target == "user:alice" for e in events)
    assert secret not in str([(e.detail, e.target) for e in events])


def test_resets_refuse_the_same_password_a_short_one_and_unknown_people(registry, alice):
    with registry.session() as session:
        with pytest.raises(accounts.AccountError, match="the new password is the old one"):
            accounts.reset_password(session, "alice", PASSWORD, actor="admin")
        with pytest.raises(accounts.AccountError, match="at least 12"):
            accounts.reset_password(session, "alice", "short", actor="admin")
        with pytest.raises(NotFoundError):
            accounts.reset_mfa(session, "bob", actor="admin")


# ------------------------------------------------------------------------------------------------ the hub's secrets


def test_crypt_keys_rotate_newest_first_and_reach_the_hubs_cryptkeeper(paths, registry, tmp_path):
    """The keys rotate in ENCLAVE_CRYPT_KEY_FILE, the file OIDC sign-in reads: `enclave up` passes it to the hub as
    JUPYTERHUB_CRYPT_KEY, from which JupyterHub's CryptKeeper encrypts with the newest and decrypts with any."""
    from jupyterhub.crypto import CryptKeeper

    from hub.oidc_settings import OIDCSettings, crypt_key

    assert hub_keys.crypt_keys(paths) == []
    first = run(paths, "keys", "rotate", "crypt-key")
    assert first.exit_code == 0 and "(1 kept, 0 dropped)" in first.output
    (one,) = hub_keys.crypt_keys(paths)
    second = run(paths, "keys", "rotate", "crypt-key")
    assert "(2 kept, 0 dropped)" in second.output
    newest, older = hub_keys.crypt_keys(paths)
    assert older == one and newest != one
    assert one not in first.output + second.output and newest not in second.output
    assert hub_keys.crypt_key_path(paths) == tmp_path / "etc" / "crypt-key"
    assert hub_keys.crypt_key_path(paths).stat().st_mode & 0o777 == 0o600
    settings = OIDCSettings(issuer="https://idp.example.org", client_id="hub", client_secret_file=tmp_path / "s",
                            crypt_key_file=hub_keys.crypt_key_path(paths))  # fmt: skip
    keeper = CryptKeeper(keys=[bytes.fromhex(k) for k in crypt_key(settings).split(";")])
    assert [k.hex() for k in keeper.keys] == [newest, one]
    dropped = run(paths, "keys", "rotate", "crypt-key", "--drop-old")
    assert "(1 kept, 2 dropped)" in dropped.output and len(hub_keys.crypt_keys(paths)) == 1


def _tokens(paths: Paths, *tokens: str) -> list[bool]:
    from jupyterhub import orm

    db = orm.new_session_factory(f"sqlite:///{paths.hub / hub_keys.HUB_DATABASE}")()
    try:
        return [orm.APIToken.find(db, token) is not None for token in tokens]
    finally:
        db.close()
        db.get_bind().dispose()


def test_hub_secrets_rotate_while_stopped_and_the_hub_forgets_the_old_ones(paths, registry):
    paths.hub.mkdir(parents=True, mode=0o700)
    old_token, old_secret = "0" * 64, "1" * 64
    (paths.hub / TOKEN_FILE).write_text(old_token)
    (paths.hub / hub_keys.COOKIE_SECRET_FILE).write_text(old_secret)
    session_token, own_token = _hub_database(paths, old_token)
    result = run(paths, "keys", "rotate", "cookie-secret", "admin-token")
    assert result.exit_code == 0, result.output
    assert "1 browser-session tokens deleted" in result.output
    assert "the hub forgot 1 old token(s)" in result.output
    new_token = (paths.hub / TOKEN_FILE).read_text()
    new_secret = (paths.hub / hub_keys.COOKIE_SECRET_FILE).read_text().strip()
    assert new_token != old_token and re.fullmatch(r"[0-9a-f]{64}", new_secret) and new_secret != old_secret
    for value in (old_token, new_token, new_secret, old_secret):
        assert value not in result.output
    for name in (TOKEN_FILE, hub_keys.COOKIE_SECRET_FILE):
        assert (paths.hub / name).stat().st_mode & 0o777 == 0o600
    assert _tokens(paths, old_token, session_token, own_token) == [False, False, True]
    with registry.session() as session:
        rotated = [(e.target, e.detail) for e in audit.events(session) if e.action == "keys.rotated"]
    assert rotated == [("secret:cookie-secret", {"session_tokens_deleted": 1}),
                       ("secret:admin-token", {"old_tokens_deleted": 1})]  # fmt: skip


def _hub_database(paths: Paths, admin_token: str) -> tuple[str, str]:
    """A hub database as a hub that ran leaves it: enclave-admin with its token, alice with a browser session's
    token and a token of her own. Returns alice's two tokens (session, own)."""
    from jupyterhub import orm

    db = orm.new_session_factory(f"sqlite:///{paths.hub / hub_keys.HUB_DATABASE}")()
    service = orm.Service(name=ADMIN_SERVICE)
    user = orm.User(name="alice")
    db.add_all([service, user, orm.OAuthClient(identifier="jupyterhub")])
    db.commit()
    service.new_api_token(admin_token, note="from config")
    session_token = user.new_api_token(session_id="a-browser-session")
    own_token = user.new_api_token()
    db.commit()
    db.close()
    db.get_bind().dispose()
    return session_token, own_token


@pytest.mark.parametrize("secret", ["cookie-secret", "admin-token"])
def test_hub_secrets_are_refused_while_enclave_runs(paths, registry, secret):
    paths.hub.mkdir(parents=True, mode=0o700)
    (paths.hub / "jupyterhub.pid").write_text(str(os.getpid()))  # a live process holds the hub's pid file
    (paths.hub / TOKEN_FILE).write_text("0" * 64)
    result = run(paths, "keys", "rotate", secret)
    assert result.exit_code == 1
    assert f"Enclave is running (hub pid {os.getpid()})" in result.output and "`enclave down` first" in result.output
    assert (paths.hub / TOKEN_FILE).read_text() == "0" * 64
    assert not (paths.hub / hub_keys.COOKIE_SECRET_FILE).exists()


@pytest.mark.parametrize(
    ("secret", "consequence"),
    [("pseudonym-key", "every pseudonym and re-keyed DICOM UID"), ("ledger-key", "no longer match"),
     ("password-totp", "enclave user reset-password"), ("nonsense", "these rotate: cookie-secret")],
)  # fmt: skip
def test_what_does_not_rotate_is_refused_with_its_consequence(paths, registry, secret, consequence):
    result = run(paths, "keys", "rotate", "crypt-key", secret)
    assert result.exit_code == 1
    assert consequence in result.output
    assert not hub_keys.crypt_key_path(paths).exists(), "a secret rotated before the refusal of another"


def test_keys_list_shows_where_and_when_never_a_value(paths, registry, alice):
    paths.hub.mkdir(parents=True, mode=0o700)
    hub_keys.replace_admin_token(paths)
    hub_keys.replace_cookie_secret(paths)
    hub_keys.add_crypt_key(paths)
    from fabric.pseudonyms import load_or_create_key

    pseudonym = load_or_create_key(paths.project_key("p1"))
    before = run(paths, "keys", "list").output
    assert "secrets/ledger-PROJECT.key" in before and "(none yet)" in before
    ledger = ledger_key(paths, "p1")
    result = run(paths, "keys", "list")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert set(rows) == {s.name for s in keys.SECRETS}
    assert "hub/enclave-admin.token" in rows["admin-token"] and "while Enclave is stopped" in rows["admin-token"]
    assert "secrets/audit-anchor.key" in rows["audit-anchor-key"] and " live" in rows["audit-anchor-key"]
    assert "(1 account)" in rows["password-totp"] and "(project p1)" in rows["pseudonym-key"]
    assert "secrets/ledger-p1.key" in rows["ledger-key"] and rows["ledger-key"].endswith("no (project p1)")
    assert "(1 key)" in rows["crypt-key"]
    values = [
        (paths.hub / TOKEN_FILE).read_text(),
        (paths.hub / hub_keys.COOKIE_SECRET_FILE).read_text().strip(),
        *hub_keys.crypt_keys(paths),
        key_hex(paths),
        pseudonym.hex(),
        ledger.hex(),
        alice.secret,
    ]
    for value in values:
        assert value not in result.output


def test_a_secret_is_written_whole_root_only_and_never_through_a_link(tmp_path):
    from kernel.secret_files import write_secret

    target = tmp_path / "elsewhere"
    target.write_text("not to be touched")
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    (folder / "token").symlink_to(target)
    write_secret(folder / "token", "new")
    assert target.read_text() == "not to be touched"
    assert not (folder / "token").is_symlink() and (folder / "token").read_text() == "new"
    assert (folder / "token").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in folder.iterdir()] == ["token"], "a staging file was left behind"
    write_secret(tmp_path / "new" / "key", "k")
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
