"""Output checkers are told of release requests waiting for them (issue 16): the business layer's read of what waits
for one checker, and the e-mail sent through a real SMTP server on loopback (aiosmtpd, started by the test) when a
request enters review and when it is approved and waits for release: who got which message, that the author never
does, that no file name, file content or finding text is in any message, and that a relay that refuses or is down is
audited and never fails the workflow. With no relay configured nothing is sent.

Requests reach each state through tests/airlock_factories.py (the business layer, checks included)."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email.message import EmailMessage as Message
from email.policy import default

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from hub import accounts
from kernel.models import AuditEvent
from output_checks.release import notices
from output_checks.release.airlock import Airlock
from output_checks.release.states import RequestState
from tests.airlock_factories import AUTHOR, BOTH, CHECKERS, PROJECT, ensure_people, request_at, review_all
from tests.hub_runner import free_ports
from tests.provisioned import provision

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
ADDRESSES = {name: f"{name}@hospital.example.org" for name in (AUTHOR, *CHECKERS, BOTH)}
# A file whose name, content and findings must never reach an e-mail: a small count the checks block.
SECRET_FILE = {"ward_7_cardiomyopathy_counts.csv": "site,n\nWard7,3\nWard9,120\n"}


class Inbox:
    """aiosmtpd's handler: keeps every message with its envelope; `refuse` answers every recipient 550."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self.refuse = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return "550 5.7.1 relaying refused"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content, policy=default)))
        return "250 Message accepted"

    def take(self) -> list[tuple[list[str], Message]]:
        out, self.messages = self.messages, []
        return out


@pytest.fixture(scope="module")
def app(tmp_path_factory, cohort) -> Iterator[Airlock]:
    env = provision(tmp_path_factory.mktemp("airlock-notices"), cohort, {PROJECT: "DS-CVD"})
    airlock = Airlock(env.registry, env.paths)
    ensure_people(airlock)

    def people(session) -> None:
        for name, address in ADDRESSES.items():
            accounts.add_account(session, name, "a long enough password", actor="test-admin", email=address)

    airlock.tx(people)
    yield airlock
    env.registry.close()


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    (port,) = free_ports(1)
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def relay(app, inbox) -> Iterator[Inbox]:
    handler, port = inbox
    handler.refuse = False
    handler.take()
    app.notifier.relay = notices.RelaySettings(
        host="127.0.0.1", port=port, sender="airlock@enclave.example.org", starttls=False,
        public_url="https://enclave.example.org",
    )  # fmt: skip
    yield handler
    app.notifier.wait()
    app.notifier.relay = None


def events(app: Airlock, request_id: str, action: str) -> list[dict]:
    rows = app.tx(
        lambda s: [e.detail for e in s.scalars(select(AuditEvent).where(
            AuditEvent.target == f"request:{request_id}", AuditEvent.action == action))]
    )  # fmt: skip
    return rows


def leaked(app: Airlock, request_id: str, message: Message) -> list[str]:
    """What of the request's files and findings a message repeats (it must repeat nothing)."""
    text = message.as_string()
    view = app.request(request_id, CHECKERS[0])
    words = []
    for f in view["files"]:
        words += [f["path"], f["sha256"]] + [finding["message"] for finding in f["findings"]]
    words += ["Ward7", "cardiomyopathy", view["title"]]
    return [w for w in words if w and w in text]


def test_entering_review_mails_each_checker_but_never_the_author(app, relay):
    request_id = request_at(app, RequestState.IN_REVIEW, author=BOTH, files=SECRET_FILE)
    app.notifier.wait()
    got = relay.take()
    assert sorted(rcpt for rcpts, _ in got for rcpt in rcpts) == sorted(ADDRESSES[c] for c in CHECKERS)
    everything = " ".join(message.as_string() for _, message in got)
    assert ADDRESSES[BOTH] not in everything, "the author, though an output checker too, is never told"
    assert ADDRESSES[AUTHOR] not in everything, "a researcher is never told"
    for rcpts, message in got:
        assert message["To"] == rcpts[0], "each checker gets a message of their own"
        assert PROJECT in message["Subject"] and request_id in message["Subject"]
        body = message.get_content()
        assert f"https://enclave.example.org/services/airlock/requests/{request_id}" in body
        assert leaked(app, request_id, message) == []
    assert any(f["findings"] for f in app.request(request_id, CHECKERS[0])["files"]), "the file had findings"
    (sent,) = events(app, request_id, "airlock.notice_sent")
    assert sent["recipients"] == sorted(CHECKERS) and sent["state"] == "in_review"
    assert "@" not in str(sent), "the audit names people, never their addresses"


def test_approval_mails_the_checkers_who_may_release(app, relay):
    request_id = request_at(app, RequestState.IN_REVIEW)
    app.notifier.wait()
    relay.take()
    review_all(app, request_id, "approve")
    app.notifier.wait()
    got = relay.take()
    assert sorted(r for rcpts, _ in got for r in rcpts) == sorted(ADDRESSES[c] for c in (*CHECKERS, BOTH))
    assert all("approved and waits for release" in m["Subject"] for _, m in got)
    assert [e["recipients"] for e in events(app, request_id, "airlock.notice_sent")] == [
        sorted((*CHECKERS, BOTH)), sorted((*CHECKERS, BOTH))]  # fmt: skip


def test_a_relay_that_refuses_is_audited_and_the_workflow_goes_on(app, relay):
    relay.refuse = True
    request_id = request_at(app, RequestState.IN_REVIEW)  # check_request returned: nothing raised
    app.notifier.wait()
    assert app.state(request_id, AUTHOR) == "in_review"
    assert relay.take() == []
    (failed,) = events(app, request_id, "airlock.notice_failed")
    assert failed["recipients"] == sorted((*CHECKERS, BOTH)) and "Refused" in failed["problem"]
    assert events(app, request_id, "airlock.notice_sent") == []


def test_a_relay_that_is_down_is_audited_and_the_workflow_goes_on(app, relay):
    (closed,) = free_ports(1)
    app.notifier.relay = notices.RelaySettings(
        host="127.0.0.1", port=closed, sender="airlock@enclave.example.org", starttls=False
    )
    request_id = request_at(app, RequestState.IN_REVIEW)
    app.notifier.wait()
    assert app.state(request_id, AUTHOR) == "in_review"
    (failed,) = events(app, request_id, "airlock.notice_failed")
    assert failed["problem"] == "ConnectionRefusedError"


def test_no_relay_sends_nothing(app, inbox):
    handler, _ = inbox
    handler.take()
    assert app.notifier.relay is None
    request_id = request_at(app, RequestState.IN_REVIEW)
    app.notifier.wait()
    assert handler.take() == []
    assert events(app, request_id, "airlock.notice_sent") == events(app, request_id, "airlock.notice_failed") == []


def test_what_waits_for_each_checker(app):
    def counts(user: str) -> dict[str, tuple[int, int]]:
        return {w.project: (w.to_review, w.to_release) for w in app.waiting(user)}

    before = {user: counts(user).get(PROJECT, (0, 0)) for user in (*CHECKERS, BOTH, AUTHOR)}
    in_review = request_at(app, RequestState.IN_REVIEW, author=BOTH)
    request_at(app, RequestState.APPROVED)
    carol, dave = CHECKERS
    assert counts(carol)[PROJECT] == (before[carol][0] + 1, before[carol][1] + 1)
    assert counts(BOTH)[PROJECT] == (before[BOTH][0], before[BOTH][1] + 1), "never their own request"
    assert counts(AUTHOR) == {}, "a researcher has nothing waiting"
    for f in app.request(in_review, carol)["files"]:
        app.vote(in_review, carol, f["path"], "approve", "ok")
    app.submit_review(in_review, carol)
    assert counts(carol)[PROJECT][0] == before[carol][0], "reviewed: no longer waiting for carol"
    assert counts(dave)[PROJECT][0] == before[dave][0] + 1, "still waiting for dave"
    (row,) = [w for w in app.waiting(dave) if w.project == PROJECT]
    assert row.count == sum(counts(dave)[PROJECT]) and row.oldest is not None


def test_relay_settings_from_the_environment(tmp_path):
    assert notices.RelaySettings.from_env({}) is None
    local = notices.RelaySettings.from_env({"ENCLAVE_SMTP_HOST": "127.0.0.1"})
    assert (local.port, local.starttls, local.credentials) == (25, False, None)
    remote = notices.RelaySettings.from_env({"ENCLAVE_SMTP_HOST": "smtp.hospital.example.org", "ENCLAVE_SMTP_PORT":
                                             "587", "ENCLAVE_SMTP_FROM": "tre@hospital.example.org"})  # fmt: skip
    assert (remote.port, remote.starttls, remote.sender) == (587, True, "tre@hospital.example.org")
    with pytest.raises(notices.RelayError):
        notices.RelaySettings.from_env({"ENCLAVE_SMTP_HOST": "x", "ENCLAVE_SMTP_PORT": "smtp"})
    secret = tmp_path / "smtp"
    secret.write_text("relay-user\nrelay password\n")
    secret.chmod(0o644)
    settings = notices.RelaySettings(host="x", credentials=secret)
    with pytest.raises(notices.RelayError, match="owner alone"):
        settings.login()
    secret.chmod(0o600)
    assert settings.login() == ("relay-user", "relay password")


def test_the_hub_passes_the_relay_settings_and_its_address_to_the_airlock_service(tmp_path):
    from traitlets.config import Config

    from hub.config import HubSettings, apply_config

    c = Config()
    environ = {"ENCLAVE_HOME": str(tmp_path), "ENCLAVE_SMTP_HOST": "smtp.hospital.example.org",
               "ENCLAVE_SMTP_CREDENTIALS": "/etc/enclave/smtp", "ENCLAVE_SMTP_PASSWORD_TYPO": "x"}  # fmt: skip
    apply_config(c, HubSettings.from_env(environ))
    airlock = next(s for s in c.JupyterHub.services if s["name"] == "airlock")["environment"]
    assert airlock["ENCLAVE_SMTP_HOST"] == "smtp.hospital.example.org"
    assert airlock["ENCLAVE_SMTP_CREDENTIALS"] == "/etc/enclave/smtp", "the file's path, never its content"
    assert airlock["ENCLAVE_PUBLIC_URL"] == "http://localhost:8000"
    assert "ENCLAVE_SMTP_PASSWORD_TYPO" not in airlock, "only the relay's own settings are passed on"
    with_url = Config()
    apply_config(with_url, HubSettings.from_env({**environ, "ENCLAVE_PUBLIC_URL": "https://tre.example.org"}))
    service = next(s for s in with_url.JupyterHub.services if s["name"] == "airlock")
    assert service["environment"]["ENCLAVE_PUBLIC_URL"] == "https://tre.example.org"
