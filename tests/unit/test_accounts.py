"""Local accounts: argon2id hashes, mandatory TOTP accepted once, login throttling per (account, source) and per
source that never locks the owner out, and the JupyterHub authenticator over them (a real registry database;
JupyterHub's own Authenticator base class). The throttle's clock is the `at` passed in: nothing here waits."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from hub import accounts, throttle
from hub.authenticator import EnclaveAuthenticator
from hub.models import Account, LoginFailure
from kernel import audit
from kernel.config import Paths
from kernel.db import Registry

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


ATTACKER = "203.0.113.9"
OWNER = "198.51.100.7"


def login(registry, password, code, at=None, user="alice", source=throttle.UNKNOWN, policy=throttle.POLICY):
    with registry.session() as session:
        return accounts.verify_login(session, user, password, code, at=at, source=source, policy=policy)


def code_at(enrolment, at):
    return pyotp.TOTP(enrolment.secret).at(at)


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


def test_the_policy_covers_every_scope_once_and_a_patient_guesser_stays_slowed():
    assert sorted(limit.scope for limit in throttle.POLICY) == sorted(throttle.SCOPES)
    for limit in throttle.POLICY:
        assert limit.free > 0 and timedelta(0) < limit.first_delay <= limit.max_delay
        # the back-off reaches its ceiling before the first failures leave the window (else it would start over)
        doublings, climb = 0, timedelta(0)
        while limit.first_delay * 2**doublings < limit.max_delay:
            climb += limit.first_delay * 2**doublings
            doublings += 1
        assert climb < limit.window, limit.scope


def test_back_off_doubles_after_the_free_failures_up_to_its_ceiling():
    limit = throttle.Limit("source", free=3, window=timedelta(hours=1), first_delay=timedelta(seconds=10),
                           max_delay=timedelta(seconds=60))  # fmt: skip
    t = datetime(2026, 1, 1)
    assert [limit.wait(n, t, t) for n in range(8)] == [0, 0, 0, 10, 20, 40, 60, 60]
    assert limit.wait(4, t, t + timedelta(seconds=15)) == 5
    assert limit.wait(4, t, t + timedelta(seconds=25)) == 0
    assert limit.wait(10**6, t, t) == 60


@pytest.mark.parametrize(("address", "source"), [
    ("192.0.2.1", "192.0.2.1"),
    ("::ffff:192.0.2.1", "192.0.2.1"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),  # one client holds a whole /64
    ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
    ("unix:1234", "unix:1234"),
    ("", "unknown"),
])  # fmt: skip
def test_sources_are_addresses_ipv6_by_its_64_or_labels(address, source):
    assert throttle.source_of(address) == source


def test_failures_from_one_source_never_stop_the_owner_logging_in_from_another(registry, alice):
    now = time.time()
    free = throttle.POLICY[0].free
    for _ in range(free):
        assert not login(registry, "wrong password!", "123456", now, source=ATTACKER)
    refused = login(registry, PASSWORD, code_at(alice, now), now, source=ATTACKER)
    assert not refused and refused.retry_after == 30, "refused before the (right) password is checked"
    with registry.session() as session:
        assert session.get(Account, "alice").last_totp_step == 0, "the refused attempt used nothing up"
    assert login(registry, PASSWORD, code_at(alice, now), now, source=OWNER)
    assert login(registry, "wrong password!", "123456", now, source=OWNER).retry_after == 0


def test_the_back_off_grows_with_each_failure_and_the_window_slides(registry, alice):
    now = time.time()
    for _ in range(5):
        login(registry, "wrong password!", "123456", now, source=ATTACKER)
    assert login(registry, "wrong password!", "123456", now + 29, source=ATTACKER).retry_after == 1
    assert not login(registry, "wrong password!", "123456", now + 30, source=ATTACKER)  # checked: a failure
    assert login(registry, "wrong password!", "123456", now + 31, source=ATTACKER).retry_after == 59
    later = now + 30 + 24 * 3600 + 1  # every failure has left the 24 h window
    assert login(registry, PASSWORD, code_at(alice, later), later, source=ATTACKER)


def test_one_source_trying_many_names_is_throttled_for_every_name(registry, alice):
    policy = (
        throttle.Limit(throttle.ACCOUNT_SOURCE, free=5, window=timedelta(hours=1), first_delay=timedelta(seconds=30),
                       max_delay=timedelta(minutes=15)),
        throttle.Limit(throttle.SOURCE, free=3, window=timedelta(hours=1), first_delay=timedelta(seconds=10),
                       max_delay=timedelta(minutes=15)),
    )  # fmt: skip
    now = time.time()
    for name in ("bob", "carol", "../etc"):  # unknown and invalid names count like wrong passwords
        assert not login(registry, "wrong password!", "123456", now, user=name, source=ATTACKER, policy=policy)
    sprayed = login(registry, PASSWORD, code_at(alice, now), now, source=ATTACKER, policy=policy)
    assert sprayed.retry_after == 10
    assert login(registry, PASSWORD, code_at(alice, now), now, source=OWNER, policy=policy)


def test_a_success_clears_its_own_account_and_source_only(registry, alice):
    now = time.time()
    for _ in range(4):
        login(registry, "wrong password!", "123456", now, source=OWNER)
        login(registry, "wrong password!", "123456", now, user="mallory", source=OWNER)
    assert login(registry, PASSWORD, code_at(alice, now), now, source=OWNER)
    with registry.session() as session:
        left = session.query(LoginFailure).all()
        assert {(f.username, f.source) for f in left} == {("mallory", OWNER)}, "the source's own count stays"


def test_the_throttle_is_in_the_registry_and_outlives_the_hub(tmp_path, registry, alice):
    now = time.time()
    for _ in range(5):
        login(registry, "wrong password!", "123456", now, source=ATTACKER)
    restarted = Registry(Paths(tmp_path).database_url)  # another hub process, or the same after a restart
    try:
        assert login(restarted, PASSWORD, code_at(alice, now), now, source=ATTACKER).retry_after == 30
    finally:
        restarted.close()


def test_old_failures_are_forgotten(registry, alice):
    now = time.time()
    login(registry, "wrong password!", "123456", now, source=ATTACKER)
    login(registry, "wrong password!", "123456", now + 25 * 3600, source=OWNER)
    with registry.session() as session:
        at = datetime.fromtimestamp(now + 25 * 3600, UTC).replace(tzinfo=None)
        assert [f.at for f in session.query(LoginFailure).all()] == [at]


def test_throttled_attempts_are_audited_with_their_source_and_no_secrets(registry, alice):
    now = time.time()
    code = code_at(alice, now)
    for _ in range(6):
        login(registry, PASSWORD + "x", code, now, source=ATTACKER)
    with registry.session() as session:
        events = audit.events(session, actor="alice")
    actions = [e.action for e in events]
    assert actions.count("user.login_failed") == 5 and actions.count("user.login_throttled") == 1
    throttled = next(e for e in events if e.action == "user.login_throttled")
    assert throttled.detail == {"source": ATTACKER, "retry_after": 30}
    text = " ".join(f"{e.action} {e.target} {e.detail}" for e in events)
    for secret in (PASSWORD, code, alice.secret):
        assert secret not in text


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


def test_an_account_may_have_one_plain_email_address_set_and_cleared_audited_without_it(registry, alice):
    with registry.session() as session:
        accounts.add_account(session, "carol", PASSWORD, actor="admin", email="carol@hospital.example.org")
        assert session.get(Account, "carol").email == "carol@hospital.example.org"
        assert session.get(Account, "alice").email is None
        for bad in ("carol", "carol@", "a b@example.org", "x@example.org\nBcc: eve@example.org", "Carol <c@x.org>"):
            with pytest.raises(accounts.AccountError):
                accounts.set_email(session, "alice", bad, actor="admin")
        accounts.set_email(session, "alice", "alice@hospital.example.org", actor="admin")
        assert session.get(Account, "alice").email == "alice@hospital.example.org"
        accounts.set_email(session, "alice", None, actor="admin")
        assert session.get(Account, "alice").email is None
        events = [e for e in audit.events(session, limit=50) if e.action in ("user.add", "user.set_email")]
    assert [e.detail.get("email") for e in events if e.target == "user:alice"] == [False, True, False]
    assert not any("@" in str(e.detail) for e in events), "the audit says whether there is an address, not which"
