"""Test helper: the airlock web app served for real on a free loopback port (tornado in a thread), and a small
browser-like HTTP client per person (cookies, the development sign-in, XSRF tokens read from the page's forms), and
`footprint`, what a refused request must leave unchanged."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import requests
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

if TYPE_CHECKING:
    from output_checks.release.service import Airlock

XSRF = re.compile(r'name="_xsrf" value="([^"]+)"')


@contextmanager
def dev_airlock(app: Airlock) -> Iterator[str]:
    """The airlock web app over `app`, with the development sign-in and its check runner, served until the block
    ends; yields its base URL."""
    from output_checks.release.service import CheckRunner
    from output_checks.web.app import make_app
    from output_checks.web.auth import DevIdentity

    runner = CheckRunner(app).start()
    try:
        with serving(make_app(app, DevIdentity(), runner=runner)) as (url,):
            yield url
    finally:
        runner.stop()


@contextmanager
def serving(*apps: Application) -> Iterator[list[str]]:
    """Serve each application on its own free port of 127.0.0.1, all on one event loop in a thread; yields the
    base URLs (http://127.0.0.1:PORT) in order."""
    ready = threading.Event()
    state: dict = {}

    async def run() -> None:
        state["loop"], state["stop"] = asyncio.get_running_loop(), asyncio.Event()
        servers, urls = [], []
        for app in apps:
            sockets = bind_sockets(0, "127.0.0.1")
            server = HTTPServer(app)
            server.add_sockets(sockets)
            servers.append(server)
            urls.append(f"http://127.0.0.1:{sockets[0].getsockname()[1]}")
        state["urls"] = urls
        ready.set()
        await state["stop"].wait()
        for server in servers:
            server.stop()

    thread = threading.Thread(target=lambda: asyncio.run(run()), name="airlock-web-test", daemon=True)
    thread.start()
    assert ready.wait(30), "the web app did not start"
    try:
        yield state["urls"]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(30)


class Person:
    """One person's browser: signed in through the development login."""

    def __init__(self, base: str, user: str | None) -> None:
        self.base = base.rstrip("/")
        self.http = requests.Session()
        if user:
            r = self.http.get(f"{self.base}/dev/login", params={"user": user}, timeout=30)
            assert r.status_code == 200, r.status_code

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.base + path, timeout=60, **kwargs)

    def token(self, path: str = "/requests") -> str:
        page = self.get(path)
        found = XSRF.search(page.text)
        assert found, f"no form with an XSRF token on {path}"
        return found.group(1)

    def post(self, path: str, data: dict | None = None, *, xsrf: bool = True, **kwargs) -> requests.Response:
        data = dict(data or {})
        if xsrf:
            data["_xsrf"] = self.token()
        kwargs.setdefault("allow_redirects", False)
        return self.http.post(self.base + path, data=data, timeout=60, **kwargs)


def footprint(app: Airlock) -> tuple[int, int, list[str]]:
    """What a refused request must leave unchanged: the number of requests, of audit events, and the snapshot
    files on disk."""
    from sqlalchemy import func, select

    from kernel.models import AuditEvent
    from output_checks.release import workflow

    requests_, events = app.tx(
        lambda s: (workflow.count_requests(s), s.scalar(select(func.count()).select_from(AuditEvent)))
    )
    snapshots = sorted(str(p.relative_to(app.store.snapshots)) for p in app.store.snapshots.rglob("*"))
    return requests_, events, snapshots
