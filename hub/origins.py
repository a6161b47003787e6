"""Per-origin isolation, a hub setting (STYLE.md item 15): with a subdomain host, JupyterHub serves each person's
workspaces on their own origin (`alice.HOST`) and each service on its own (`airlock--service.HOST`), so a script
running in one person's workspace (an injected page of MLflow, say) cannot read the hub's pages, the airlock or
another person's workspace with the victim's cookies: those are other origins, whose host-only cookies it never
gets and whose answers CORS keeps from it.

One person's workspaces for different projects share that person's origin (JupyterHub names subdomains by user,
not by server); inside it the workspace's Content-Security-Policy confines each page's scripts and connections to
its own path (images/enclave_workspace/headers.py).

On by default: a hub on loopback gets `http://localhost:PORT`, which browsers reach with no DNS at all; a hub on any
other address must be given its public name, or `off` for one origin (`default_subdomain_host`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from jupyterhub.handlers.base import BaseHandler
from tornado.web import HTTPError

OFF = "off"
# The addresses a browser reaches as `localhost` (and as every `*.localhost` name, RFC 6761).
LOCALHOST_ADDRESSES = frozenset({"127.0.0.1", "::1", "localhost"})


def subdomain_host(value: str) -> str:
    """`scheme://host[:port]` of the hub's public name, whose subdomains serve workspaces and services; `off` (or
    "") gives "": one origin.

    `http://localhost:8000` works on one machine with no DNS at all: browsers resolve every `*.localhost` name to
    loopback. In production: `https://enclave.example.org` with a wildcard DNS record and certificate."""
    if not value or value.strip().lower() == OFF:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
        raise ValueError(
            f"ENCLAVE_SUBDOMAIN_HOST must be http(s)://host[:port] with no path (e.g. https://enclave.example.org), "
            f"not {value!r}"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"ENCLAVE_SUBDOMAIN_HOST has an invalid port: {value!r}") from exc
    host = parts.hostname.lower()
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def default_subdomain_host(ip: str, port: int) -> str:
    """The subdomain host when ENCLAVE_SUBDOMAIN_HOST is unset: `http://localhost:PORT` for a hub that browsers reach
    as `localhost`; ValueError for any other address, whose public name Enclave cannot guess."""
    if ip.strip("[]").lower() in LOCALHOST_ADDRESSES:
        return f"http://localhost:{port}"
    raise ValueError(
        f"Enclave listens on {ip} (ENCLAVE_HUB_IP), which is not reached as http://localhost: set "
        f"ENCLAVE_SUBDOMAIN_HOST to Enclave's public name (e.g. https://enclave.example.org, with a wildcard DNS "
        f"record and certificate for *.enclave.example.org), so that each person's workspaces and the airlock get "
        f"origins of their own; or to `off` for one origin for all (docs/how-to/admin.md)"
    )


class ServiceOriginRedirect(BaseHandler):
    """`/hub/services/NAME/PATH` to the service on its own origin. Links written as `/services/airlock/...` (the
    hub's home page, JupyterLab's Airlock menu) reach the hub from any origin (JupyterHub sends what no route
    matches to `/hub/...` on the hub's own host); this sends them on to the service's host."""

    def get(self, name: str, path: str) -> None:
        service = self.services.get(name)
        if service is None or not service.host or not service.url:
            raise HTTPError(404)
        query = f"?{self.request.query}" if self.request.query else ""
        self.redirect(f"{service.host}{service.prefix}{path}{query}", permanent=False)


def apply_origins(c: Any, host: str) -> None:
    """JupyterHub's subdomain settings for `host` (from `subdomain_host`); nothing when it is empty."""
    if not host:
        return
    # JupyterHub's default subdomain hook ("idna"): `alice.HOST` for people, `airlock--service.HOST` for services
    c.JupyterHub.subdomain_host = host
    # deprecated since JupyterHub 3.1 but still the one way to add a page to the hub itself
    c.JupyterHub.extra_handlers = [*c.JupyterHub.get("extra_handlers", []),
                                   (r"/services/([^/]+)/(.*)", ServiceOriginRedirect)]  # fmt: skip
