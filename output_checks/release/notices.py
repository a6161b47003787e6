"""Notices to output checkers of release requests waiting for them, so that no review waits unseen: what waits for
one checker now, per project (the hub's home page shows it), and one short e-mail to each checker who may act when
a request enters review (its checks finished) or is approved and waits for release.

E-mail goes through an SMTP relay configured by the environment (`RelaySettings.from_env`), after the change that
caused it has committed, and never fails or undoes that change: a relay that is down or refuses is logged and audited
as `airlock.notice_failed`; a sent notice is audited as `airlock.notice_sent` with its recipients' user names (never
their addresses). A message names only the project, the request's id and state and a link to it: never a file's name
or content, a finding, or anyone's identifiers. With no relay configured nothing is sent.

| variable | default | what |
| --- | --- | --- |
| ENCLAVE_SMTP_HOST | (none: no e-mail) | the relay's host name or address |
| ENCLAVE_SMTP_PORT | 25 | its port |
| ENCLAVE_SMTP_FROM | enclave-airlock@HOST's domain | the sender's address |
| ENCLAVE_SMTP_STARTTLS | on (off for loopback) | `on`: STARTTLS, the certificate verified, before anything else |
| ENCLAVE_SMTP_CREDENTIALS | (none: no login) | a root-only file: the user name on line 1, the password on line 2 |
| ENCLAVE_SMTP_TIMEOUT | 10 | seconds to wait for the relay |
| ENCLAVE_PUBLIC_URL | (none) | Enclave's public address; a notice links to `URL/services/airlock/requests/ID` |
"""

from __future__ import annotations

import ipaddress
import logging
import os
import smtplib
import ssl
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Boolean, String, column, event, select, table
from sqlalchemy.orm import Session

from fabric.models import ProjectMember
from fabric.projects import ProjectRole
from kernel import audit
from kernel.errors import EnclaveError
from output_checks.release.models import ReleaseRequest, Review
from output_checks.release.states import RequestState
from output_checks.release.workflow.access import SYSTEM
from output_checks.release.workflow.reviews import review_queue

log = logging.getLogger("enclave.airlock")
T = TypeVar("T")

# The states a notice is sent on entering, and what the checkers are asked to do there.
NOTICE_STATES = {RequestState.IN_REVIEW.value: "waits for your review",
                 RequestState.APPROVED.value: "is approved and waits for release"}  # fmt: skip

# The settings above, by name: what the hub passes on to the airlock service (hub/config.py), and nothing else.
VARIABLES = ("ENCLAVE_SMTP_HOST", "ENCLAVE_SMTP_PORT", "ENCLAVE_SMTP_FROM", "ENCLAVE_SMTP_STARTTLS",
             "ENCLAVE_SMTP_CREDENTIALS", "ENCLAVE_SMTP_TIMEOUT", "ENCLAVE_PUBLIC_URL")  # fmt: skip

# The hub's local accounts (hub/models.py `Account`), in the same registry: this layer may not import the hub, so it
# names the columns it reads; tests/integration/test_airlock_notices.py sets addresses through hub/accounts.py and
# reads them back here, so a renamed column fails there.
ACCOUNTS = table("accounts", column("username", String), column("email", String), column("disabled", Boolean))


# ------------------------------------------------------------------------------------------------ what waits


@dataclass(frozen=True)
class Waiting:
    """A project's requests waiting for one checker: to review (their review of the round not yet submitted) and to
    release (approved), and since when the longest-waiting of them waits (its last change of state)."""

    project: str
    to_review: int
    to_release: int
    oldest: datetime

    @property
    def count(self) -> int:
        return self.to_review + self.to_release


def waiting_for(session: Session, checker: str) -> list[Waiting]:
    """What waits for `checker`, one row per project, the longest-waiting first: the review queue
    (workflow.review_queue: in review or approved, never their own) less the requests whose current round they
    have already reviewed."""
    queue = review_queue(session, checker)
    reviewed = {
        (request_id, round_)
        for request_id, round_ in session.execute(
            select(Review.request_id, Review.round).where(
                Review.reviewer == checker, Review.submitted_at.is_not(None),
                Review.request_id.in_([r.id for r in queue]),
            )
        )
    }  # fmt: skip
    rows: dict[str, list[ReleaseRequest]] = {}
    for request in queue:
        if request.state == RequestState.IN_REVIEW.value and (request.id, request.round) in reviewed:
            continue
        rows.setdefault(request.project, []).append(request)
    out = [
        Waiting(
            project,
            sum(r.state == RequestState.IN_REVIEW.value for r in requests),
            sum(r.state == RequestState.APPROVED.value for r in requests),
            min(r.updated_at for r in requests),
        )
        for project, requests in rows.items()
    ]
    return sorted(out, key=lambda w: (w.oldest, w.project))


def recipients(session: Session, request: ReleaseRequest) -> list[str]:
    """The project's output checkers who may act on `request` now, by user name: never its author, nor a checker
    whose review of the round is already in."""
    checkers = session.scalars(
        select(ProjectMember.username).where(
            ProjectMember.project_name == request.project, ProjectMember.role == ProjectRole.OUTPUT_CHECKER.value
        )
    )
    done: set[str] = set()
    if request.state == RequestState.IN_REVIEW.value:
        submitted = select(Review.reviewer).where(
            Review.request_id == request.id, Review.round == request.round, Review.submitted_at.is_not(None)
        )
        done = set(session.scalars(submitted))
    return sorted({c for c in checkers if c != request.author and c not in done})


def addresses(session: Session, usernames: list[str]) -> dict[str, str]:
    """The e-mail address of each of `usernames` whose account has one and is not disabled."""
    if not usernames:
        return {}
    rows = session.execute(
        select(ACCOUNTS.c.username, ACCOUNTS.c.email).where(
            ACCOUNTS.c.username.in_(usernames), ACCOUNTS.c.email.is_not(None), ACCOUNTS.c.disabled.is_not(True)
        )
    )
    return {name: email for name, email in rows if email}


# ------------------------------------------------------------------------------------------------ the relay


class RelayError(EnclaveError):
    """The SMTP settings are not usable (the notice is not sent, and says why)."""


@dataclass(frozen=True)
class RelaySettings:
    host: str
    port: int = 25
    sender: str = ""
    starttls: bool = True
    credentials: Path | None = None  # a root-only file: user, then password; never an environment variable
    timeout: float = 10.0
    public_url: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RelaySettings | None:
        """The relay the environment names, or None when ENCLAVE_SMTP_HOST is unset (no e-mail)."""
        env = os.environ if environ is None else environ
        host = env.get("ENCLAVE_SMTP_HOST", "").strip()
        if not host:
            return None
        port = env.get("ENCLAVE_SMTP_PORT", "25").strip()
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise RelayError(f"ENCLAVE_SMTP_PORT must be a TCP port number, not {port!r}")
        tls = env.get("ENCLAVE_SMTP_STARTTLS", "").strip().lower()
        if tls and tls not in ("on", "off", "1", "0", "true", "false", "yes", "no"):
            raise RelayError(f"ENCLAVE_SMTP_STARTTLS is on or off, not {tls!r}")
        timeout = env.get("ENCLAVE_SMTP_TIMEOUT", "10").strip()
        if not timeout.isdigit() or int(timeout) < 1:
            raise RelayError(f"ENCLAVE_SMTP_TIMEOUT must be a whole number of seconds, not {timeout!r}")
        credentials = env.get("ENCLAVE_SMTP_CREDENTIALS", "").strip()
        return cls(
            host=host,
            port=int(port),
            sender=env.get("ENCLAVE_SMTP_FROM", "").strip() or f"enclave-airlock@{_domain(host)}",
            starttls=tls in ("on", "1", "true", "yes") if tls else not _loopback(host),
            credentials=Path(credentials) if credentials else None,
            timeout=float(timeout),
            public_url=env.get("ENCLAVE_PUBLIC_URL", "").strip().rstrip("/"),
        )

    def login(self) -> tuple[str, str] | None:
        """The user name and password from the credentials file, which must be a regular file only its owner (root,
        or the account running the airlock) may read; never logged."""
        if self.credentials is None:
            return None
        try:
            fd = os.open(self.credentials, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise RelayError(f"the SMTP credentials file cannot be read ({exc.strerror})") from None
        with os.fdopen(fd, encoding="utf-8") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077 or info.st_uid not in (0, os.geteuid()):
                raise RelayError("the SMTP credentials file must be a regular file readable by its owner alone")
            lines = f.read().splitlines()
        if len(lines) < 2 or not lines[0].strip():
            raise RelayError("the SMTP credentials file holds the user name on its first line, the password next")
        return lines[0].strip(), lines[1]


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _domain(host: str) -> str:
    return "localhost" if _loopback(host) or "." not in host else host.split(".", 1)[1]


# ------------------------------------------------------------------------------------------------ the message


def relay_from_env(environ: Mapping[str, str] | None = None) -> RelaySettings | None:
    """`RelaySettings.from_env`, except that unusable settings are logged and send nothing (never stop the airlock)."""
    try:
        return RelaySettings.from_env(environ)
    except RelayError as exc:
        log.error("no airlock e-mail: %s", exc)
        return None


@dataclass(frozen=True)
class Notice:
    """A notice due for a request that entered `state` (read in the transaction that moved it)."""

    request_id: str
    project: str
    state: str
    recipients: dict[str, str]  # user name -> address


def notice_for(session: Session, request_id: str, state: str) -> Notice | None:
    """The notice due now that `request_id` entered `state`, or None (not a state to tell, or nobody to tell)."""
    request = session.get(ReleaseRequest, request_id)
    if request is None or request.state != state or state not in NOTICE_STATES:
        return None
    to = addresses(session, recipients(session, request))
    return Notice(request.id, request.project, request.state, to) if to else None


def message(settings: RelaySettings, notice: Notice, to: str) -> EmailMessage:
    """The e-mail to one checker: the project, the request's id and state, and a link; nothing else of the request."""
    doing = NOTICE_STATES[notice.state]
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = to
    msg["Subject"] = f"[Enclave airlock] {notice.project}: release request {notice.request_id} {doing}"
    msg["Message-ID"] = make_msgid(domain=_domain(settings.host))
    where = (f"{settings.public_url}/services/airlock/requests/{notice.request_id}" if settings.public_url
             else "the airlock's review list (Enclave's home page: Open the airlock)")  # fmt: skip
    msg.set_content(
        f"Release request {notice.request_id} of project {notice.project} {doing} (state: {notice.state}).\n\n"
        f"Open it: {where}\n\n"
        "You get this because you are an output checker of the project. Its files, findings and comments are "
        "shown in the airlock only.\n"
    )
    return msg


def send(settings: RelaySettings, notice: Notice) -> None:
    """One message to each recipient, over one connection to the relay; raises on any failure (the caller records
    it)."""
    with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
        smtp.ehlo()
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        login = settings.login()
        if login is not None:
            smtp.login(*login)
        for name in sorted(notice.recipients):
            address = notice.recipients[name]
            smtp.send_message(message(settings, notice, address), from_addr=settings.sender, to_addrs=[address])


def deliver(transaction: Callable[[Callable[[Session], Any]], Any], settings: RelaySettings | None,
            notice: Notice) -> bool:  # fmt: skip
    """Send `notice` through the relay and audit the outcome in a transaction of its own (`transaction`, the
    registry's); any failure is logged and audited, never raised. True when the relay took every message."""
    if settings is None:
        return False
    names = sorted(notice.recipients)
    try:
        send(settings, notice)
    except (OSError, smtplib.SMTPException, RelayError) as exc:
        problem = type(exc).__name__ + (f": {exc}" if isinstance(exc, RelayError) else "")
        log.warning("notice of request %s not sent (%s)", notice.request_id, problem)
        _audit(transaction, "airlock.notice_failed", notice, names, problem=problem)
        return False
    _audit(transaction, "airlock.notice_sent", notice, names)
    return True


def _audit(transaction: Callable[[Callable[[Session], Any]], Any], action: str, notice: Notice, names: list[str],
           **detail: str) -> None:  # fmt: skip
    try:
        transaction(lambda session: audit.record(session, actor=SYSTEM, action=action,
                                                 target=f"request:{notice.request_id}", project=notice.project,
                                                 state=notice.state, recipients=names, **detail))  # fmt: skip
    except Exception:  # the audit store is down too: the log is what remains
        log.exception("could not audit %s for request %s", action, notice.request_id)


# ------------------------------------------------------------------------------------------------ the notifier

PENDING = "enclave.notices"  # session.info key: the notices due when this transaction commits


class Notifier:
    """Sends the notices a business-layer transaction made due, once it has committed (a rolled-back or retried one
    sends nothing), each in a thread of its own so that no caller waits for the relay. `relay` None: nothing is sent.
    """

    def __init__(self, records: Any, relay: RelaySettings | None) -> None:
        self.records = records  # `Records` of release/airlock.py: the registry's `transaction`
        self.relay = relay
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def watch(self, session: Session, verb: Callable[..., T], request_id: str, *args: Any) -> T:
        """`verb(session, request_id, *args)` (a workflow verb, in `session`'s transaction); if it moved the request
        into a state checkers are told of, the notice goes out after the commit."""
        request = session.get(ReleaseRequest, request_id)
        before = request.state if request is not None else None
        result = verb(session, request_id, *args)
        after = request.state if request is not None else None
        if self.relay is not None and after != before and after in NOTICE_STATES:
            notice = notice_for(session, request_id, after)
            if notice is not None:
                if PENDING not in session.info:
                    event.listen(session, "after_commit", self._committed, once=True)
                    event.listen(session, "after_rollback", _forget, once=True)
                session.info.setdefault(PENDING, []).append(notice)
        return result

    def _committed(self, session: Session) -> None:
        for notice in session.info.pop(PENDING, []):
            thread = threading.Thread(target=deliver, args=(self.records.transaction, self.relay, notice),
                                      name=f"airlock-notice-{notice.request_id}")  # fmt: skip
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def wait(self, timeout: float = 30) -> None:
        """Until the notices under way are sent or have failed (tests; a process's exit waits for them too)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)


def _forget(session: Session) -> None:
    session.info.pop(PENDING, None)
