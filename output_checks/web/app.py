"""The airlock web app: a tornado application over the airlock's business layer, with its background check runner.

Run it behind JupyterHub as the `airlock` service (hub/airlock_service.py registers it; identity through the hub's
OAuth), or on its own for development: `enclave airlock web --dev-login` (127.0.0.1 only; pick a user at
/dev/login). `make_app(airlock, identity)` builds the application; `serve(...)` and `main()` run it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from tornado.httpserver import HTTPServer
from tornado.log import access_log
from tornado.web import Application, RedirectHandler, RequestHandler

from kernel.config import Paths
from kernel.db import Registry
from output_checks.release.airlock import Airlock
from output_checks.release.service import PURGE_EVERY_S, CheckRunner
from output_checks.sandbox.runner import keep_warm
from output_checks.web import handlers
from output_checks.web.auth import DevIdentity, HubIdentity, Identity, check_dev_host

HERE = Path(__file__).resolve().parent
DEFAULT_PORT = 8090
SECRET_PARAMETERS = frozenset({"code", "state", "token", "_xsrf"})  # OAuth callback, a hub token in the URL, XSRF
log = logging.getLogger("enclave.airlock.web")


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else ""


def _size(value: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def log_request(handler: RequestHandler) -> None:
    """Tornado's access log line, with the values of secret query parameters masked (as the hub masks its own):
    the OAuth callback's `code` and `state`, a hub token passed as `?token=`, an XSRF token."""
    status, request = handler.get_status(), handler.request
    uri = request.path
    if request.query:
        pairs = parse_qsl(request.query, keep_blank_values=True)
        uri += "?" + urlencode([(k, "[secret]" if k in SECRET_PARAMETERS else v) for k, v in pairs], safe="[]")
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    access_log.log(level, "%d %s %s (%s) %.2fms", status, request.method, uri, request.remote_ip,
                   1000.0 * request.request_time())  # fmt: skip


SECRET_IN_TEXT = re.compile(r"\b(" + "|".join(map(re.escape, sorted(SECRET_PARAMETERS))) + r")=([^&\s'\"]+)")


class SecretQueryFilter(logging.Filter):
    """Masks secret query values in any tornado log record (its warnings quote whole URLs, e.g. a failed OAuth
    callback's `code=`), as `log_request` does for the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "=" in message:
            record.msg, record.args = SECRET_IN_TEXT.sub(r"\1=[secret]", message), None
        return True


for _name in ("tornado.general", "tornado.application", "tornado.access"):
    logging.getLogger(_name).addFilter(SecretQueryFilter())


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, size=_size, label=lambda s: str(s).replace("_", " "))
    return env


def make_app(airlock: Airlock, identity: Identity, *, runner: CheckRunner | None = None) -> Application:
    """The application for `identity`'s users; `runner` copies and checks submitted requests (started here if not
    given, then also purging closed requests' snapshots after the policy's retention, hourly)."""
    base = identity.base_url
    pages = [(pattern, identity.bind(handler)) for pattern, handler in handlers.routes(base)]
    bare = [(base.rstrip("/"), RedirectHandler, {"url": base})] if base != "/" else []  # /services/airlock
    return Application(
        [*bare, *identity.routes(), *pages],
        airlock=airlock,
        identity=identity,
        runner=runner or CheckRunner(airlock, purge_every=PURGE_EVERY_S).start(),
        templates=templates(),
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"httponly": True, "samesite": "Strict", "path": base},
        static_path=str(HERE / "static"),
        static_url_prefix=base + "static/",
        static_handler_class=handlers.Static,
        default_handler_class=identity.bind(handlers.NotFound),
        log_function=log_request,
        **identity.settings(),
    )


def serve(paths: Paths, *, host: str | None, port: int | None, dev_login: bool) -> None:
    """Run the app until interrupted: dev login on loopback, or as the hub's service (address from the hub)."""

    if dev_login:
        host = host or "127.0.0.1"
        check_dev_host(host)
        identity: Identity = DevIdentity()
    else:
        if not (os.environ.get("JUPYTERHUB_API_TOKEN") and os.environ.get("JUPYTERHUB_CLIENT_ID")):
            raise ValueError(
                "not started by JupyterHub (no JUPYTERHUB_API_TOKEN / JUPYTERHUB_CLIENT_ID): run it as the hub's "
                "'airlock' service (hub/airlock_service.py), or use --dev-login for development"
            )
        service_url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", ""))
        host = host or service_url.hostname or "127.0.0.1"
        port = port or service_url.port
        identity = HubIdentity()
    port = port or DEFAULT_PORT
    airlock = Airlock(Registry.of(paths), paths)

    keep_warm()  # one checker child started ahead: a submitted request pays no interpreter or model start-up
    try:
        asyncio.run(_run(make_app(airlock, identity), host, port, identity))
    finally:
        airlock.registry.close()


async def _run(app: Application, host: str, port: int, identity: Identity) -> None:
    server = HTTPServer(app, xheaders=identity.name == "jupyterhub")  # behind the hub's proxy
    server.listen(port, host)
    log.warning("airlock web app (%s identity) on http://%s:%s%s", identity.name, host, port, identity.base_url)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m output_checks.web.app [--dev-login] [--host H] [--port P] [--home DIR]`."""
    parser = argparse.ArgumentParser(prog="airlock-web", description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="Enclave home (default: $ENCLAVE_HOME)")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--dev-login", action="store_true", help="development identity (127.0.0.1 only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    paths = Paths(args.home.resolve()) if args.home else Paths.from_env()
    try:
        serve(paths, host=args.host, port=args.port, dev_login=args.dev_login)
    except ValueError as exc:
        parser.exit(2, f"airlock-web: error: {exc}\n")


if __name__ == "__main__":
    main()
