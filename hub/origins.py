"""Per-origin isolation, a hub setting (STYLE.md item 15): with a subdomain host, JupyterHub serves each person's
workspaces on their own origin (`alice.HOST`) and each service on its own (`airlock--service.HOST`), so a script
running in one person's workspace (an injected page of MLflow, say) cannot read the hub's pages, the airlock or
another person's workspace with the victim's cookies: those are other origins, whose host-only cookies it never
gets and whose answers CORS keeps from it.

One person's workspaces for different projects share that person's origin (JupyterHub names subdomains by user,
not by server); inside it the workspace's Content-Security-Policy confines each page's scripts and connections to
its own path (images/enclave_workspace/headers.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from jupyterhub.handlers.base import BaseHandler
from tornado.web import HTTPError


def subdomain_host(value: str) -> str:
    """`scheme://host[:port]` of the hub's public name, whose subdomains serve workspaces and services ("" = off).

    `http://localhost:8000` works on one machine with no DNS at all: browsers resolve every `*.localhost` name to
    loopback. In production: `https://enclave.example.org` with a wildcard DNS record and certificate."""
    if not value:
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
