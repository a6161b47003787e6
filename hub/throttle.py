"""Login throttling: back-off per (account, source) and per source, so that guessing is slow and nobody without the
password can lock a real user out.

A source is the client address the hub sees (an IPv6 address counts by its /64, which one client holds whole), or
the Unix account of a local process on the hub's socket (a workspace's kernel). Failed logins are rows in the
registry (`login_failures`), so the throttle holds across hub restarts and is shared by several hub processes. For
each limit below, the failures of its scope inside its sliding window are counted; past `free` of them, the source
waits `first_delay` after its latest failure, doubled at each further failure, up to `max_delay`. A throttled
attempt is refused before the password is checked and does not count as a failure.

There is deliberately no account-wide lock: failures from one source never stop the account's owner logging in from
another. A successful login clears that (account, source)'s failures only, never the source's: an insider who can
log in as themselves cannot reset the count of their guesses at other accounts.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hub.models import LoginFailure

ACCOUNT_SOURCE = "account+source"  # failures at one account from one source
SOURCE = "source"  # failures from one source, at any account (password spraying)
SCOPES = (ACCOUNT_SOURCE, SOURCE)


@dataclass(frozen=True)
class Limit:
    scope: str
    free: int  # failures in the window before any back-off
    window: timedelta  # longer than the back-off takes to reach max_delay, so a patient guesser stays slowed
    first_delay: timedelta
    max_delay: timedelta

    def wait(self, failures: int, latest: datetime, now: datetime) -> float:
        """Seconds still to wait after `failures` in the window, the latest at `latest` (0: may try now)."""
        if failures < self.free:
            return 0.0
        doublings = min(failures - self.free, 32)  # 2**32 first delays is past any max_delay
        delay = min(self.first_delay * 2**doublings, self.max_delay)
        return max((latest + delay - now).total_seconds(), 0.0)


# The policy, in one place. Per (account, source): 5 tries, then 30 s, 1 min, 2 min, ... up to 15 min between
# tries, so about 100 guesses a day at one account from one source. Per source: 100 failures an hour (a site's users
# behind one NAT mistyping), then 10 s doubling up to 15 min. Sites with many users behind one address raise
# SOURCE's `free`, or use OIDC (docs/how-to/admin.md).
POLICY: tuple[Limit, ...] = (
    Limit(ACCOUNT_SOURCE, free=5, window=timedelta(hours=24), first_delay=timedelta(seconds=30),
          max_delay=timedelta(minutes=15)),
    Limit(SOURCE, free=100, window=timedelta(hours=1), first_delay=timedelta(seconds=10),
          max_delay=timedelta(minutes=15)),
)  # fmt: skip

UNKNOWN = "unknown"


def source_of(address: str) -> str:
    """The throttle's name for a client address: the address itself for IPv4 (also when IPv4-mapped IPv6), the /64
    for IPv6; anything that is not an address is kept as a label (`unix:UID`, `unknown`), cut to the column."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address.strip()[:64] or UNKNOWN
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def retry_after(session: Session, username: str, source: str, now: datetime, policy: tuple[Limit, ...] = POLICY) -> int:
    """Whole seconds before `source` may try `username` again: 0 when it may try now."""
    wait = 0.0
    for limit in policy:
        query = select(func.count(), func.max(LoginFailure.at)).where(
            LoginFailure.source == source, LoginFailure.at > now - limit.window
        )
        if limit.scope == ACCOUNT_SOURCE:
            query = query.where(LoginFailure.username == username)
        failures, latest = session.execute(query).one()
        if failures:
            wait = max(wait, limit.wait(failures, latest, now))
    return math.ceil(wait)


def record_failure(
    session: Session, username: str, source: str, now: datetime, policy: tuple[Limit, ...] = POLICY
) -> None:
    """Count one failed login, and forget failures older than every window."""
    session.add(LoginFailure(source=source, username=username, at=now))
    oldest = now - max(limit.window for limit in policy)
    session.execute(delete(LoginFailure).where(LoginFailure.at < oldest))


def clear(session: Session, username: str, source: str) -> None:
    """After a successful login: this account starts afresh from this source (the source's own count stays)."""
    session.execute(delete(LoginFailure).where(LoginFailure.source == source, LoginFailure.username == username))
