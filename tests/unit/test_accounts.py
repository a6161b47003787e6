"""Local accounts: argon2id hashes, mandatory TOTP accepted once, lockout, and the JupyterHub authenticator over
them (a real registry database; JupyterHub's own Authenticator base class)."""

from __future__ import annotations

import asyncio
import time

import pyotp
import pytest

from fabric import audit
from fabric.config import Paths
from fabric.db import Registry
from hub import accounts
from hub.authenticator import EnclaveAuthenticator
from hub.models import Account

pytestmark = pytest.mark.unit
PASSWORD = "correct horse battery"


@pytest.fixture
def registry(tmp_path):
    registry = Registry(Paths(tmp_path).database_url)
    yield registry
    registry.close()


@pytest.fixture
def alice(registry):
    with registry.session() as session:
        enrolment = accounts.add_account(session, "alice", PASSWORD, actor="admin")
    return enrolment


def login(registry, password, code, at=None, user="alice"):
    with registry.session() as session:
        return accounts.verify_login(session, user, password, code, at=at)


def test_password_is_stored_as_argon2id_and_enrolment_is_an_otpauth_uri(registry, alice):
    with registry.session() as session:
        account = session.get(Account, "alice")
        assert account.password_hash.startswith("$argon2id$") and PASSWORD not in account.password_hash
    assert alice.uri.startswith("otpauth://totp/Enclave:alice?") and f"secret={alice.secret}" in alice.uri


def test_login_needs_both_password_and_a_fresh_code(registry, alice):
    now = time.time()
    code = pyotp.TOTP(alice.secret).at(now)
    assert not login(registry, "wrong password!", code, now)
    assert not login(registry, PASSWORD, "000000" if code != "000000" else "111111", now)
    assert not login(registry, PASSWORD, "", now)
    assert login(registry, PASSWORD, code, now)
    assert not login(registry, PASSWORD, code, now), "a code is accepted once"
    later = now + 30
    assert login(registry, PASSWORD, pyotp.TOTP(alice.secret).at(later), later)


def test_one_step_of_clock_drift_is_tolerated_and_no_more(registry, alice):
    now = time.time()
    assert login(registry, PASSWORD, pyotp.TOTP(alice.secret).at(now - 30), now)
    assert not login(registry, PASSWORD, pyotp.TOTP(alice.secret).at(now - 120), now + 60)


def test_five_failures_lock_the_account(registry, alice):
    now = time.time()
    for _ in range(accounts.MAX_FAILURES):
        assert not login(registry, "wrong password!", "123456", now)
    assert not login(registry, PASSWORD, pyotp.TOTP(alice.secret).at(now), now)
    with registry.session() as session:
        assert session.get(Account, "alice").locked_until is not None


def test_unknown_users_and_bad_names_fail_like_wrong_passwords(registry, alice):
    assert not login(registry, PASSWORD, "123456", user="nobody")
    assert not login(registry, PASSWORD, "123456", user="../etc")


@pytest.mark.parametrize(("name", "password"), [("Alice", PASSWORD), ("a", PASSWORD), ("bob", "short")])
def test_account_rules(registry, name, password):
    with registry.session() as session, pytest.raises(accounts.AccountError):
        accounts.add_account(session, name, password, actor="admin")


def test_audit_records_logins_without_secrets(registry, alice):
    now = time.time()
    code = pyotp.TOTP(alice.secret).at(now)
    login(registry, PASSWORD, code, now)
    login(registry, "wrong password!", code, now)
    with registry.session() as session:
        events = audit.events(session, actor="alice")
        text = " ".join(f"{e.action} {e.detail}" for e in events)
        assert "user.login" in text and "user.login_failed" in text
        for secret in (PASSWORD, code, alice.secret):
            assert secret not in text


def test_the_hub_authenticator_uses_the_accounts(tmp_path, registry, alice):
    authenticator = EnclaveAuthenticator(enclave_home=str(tmp_path))
    assert authenticator.request_otp
    with pytest.raises(Exception, match="always asks"):
        EnclaveAuthenticator(enclave_home=str(tmp_path), request_otp=False)
    code = pyotp.TOTP(alice.secret).now()
    data = {"username": "alice", "password": PASSWORD, "otp": code}
    assert asyncio.run(authenticator.authenticate(None, data)) == "alice"
    assert asyncio.run(authenticator.authenticate(None, data)) is None  # replayed code
    assert asyncio.run(authenticator.authenticate(None, {"username": "alice", "password": PASSWORD})) is None
