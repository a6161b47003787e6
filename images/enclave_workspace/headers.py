"""The security headers every page of the workspace server carries: a Content-Security-Policy for JupyterLab's own
pages, and a stricter one per proxied service (the MLflow UI, the Dask dashboard) that confines its scripts and
connections to the service's own path, with nosniff, framing, referrer and opener rules.

The proxied services are other people's web apps whose pages a co-researcher's data flows into (run names, task
names), so a script injected there must not reach the hub, the airlock or another workspace. Host-based origins
(hub/origins.py, `JupyterHub.subdomain_host`) separate people; these policies are the rest of the fence inside one
person's origin: a source with a path (`HOST/user/U/P/mlflow/`) lets MLflow's page fetch and run scripts from MLflow
only. What each app needs was measured in Chromium (tests/security/test_service_headers.py fails on any violation):

- MLflow (a React bundle, no inline script) styles itself with CSS-in-JS, so it needs `style-src 'unsafe-inline'`;
  scripts come from its own path only.
- The Dask dashboard's Bokeh pages embed each document with an inline script whose text changes per page (document
  ids, session tokens) and use inline `onclick` handlers, so no hash or nonce can list them: `'unsafe-inline'` is
  needed, confined to scripts, with every connection (its WebSocket included) held to the dashboard's path.

Proxied responses arrive with the service's own headers only (jupyter-server-proxy replaces the server's), so the
service policy is set by a tornado OutputTransform on the response, after the proxy has copied them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import sys
from pathlib import Path
from urllib.parse import quote

from tornado import httputil
from tornado.web import Application, OutputTransform

# What every page of the workspace may do: JupyterLab's bundle, its styles (lumino writes <style> elements), images
# and fonts of its own; connections to this server's own path only (a script in the lab cannot read the hub's pages,
# the airlock or another workspace through fetch, even on a shared origin). `'unsafe-eval'`: JupyterLab validates
# its settings with ajv, which compiles schemas with `new Function`; without it the lab never draws (measured).
LAB_POLICY = (
    "default-src 'none'",
    "script-src {self} 'unsafe-eval' {lab_scripts}",
    "style-src {self} 'unsafe-inline'",
    "img-src {self} data: blob:",
    "font-src {self} data:",
    "connect-src {self} {sockets}",
    "worker-src {self} blob:",
    "manifest-src {self}",
    "frame-src {self}",
    "media-src {self} data: blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",  # the hub's forms (log out) too
    "frame-ancestors 'self'",
)

SERVICE_POLICIES: dict[str, tuple[str, ...]] = {
    "mlflow": (
        "default-src 'none'",
        "script-src {service}",
        "style-src {service} 'unsafe-inline'",
        "img-src {service} data: blob:",
        "font-src {service} data:",
        "connect-src {service} {sockets}",
        "worker-src {service} blob:",
        "manifest-src {service}",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'self'",
    ),
    "dask": (
        "default-src 'none'",
        "script-src {service} 'unsafe-inline'",
        "style-src {service} 'unsafe-inline'",
        "img-src {service} data: blob:",
        "font-src {service} data:",
        "connect-src {service} {sockets}",
        "worker-src {service} blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'self'",
    ),
}

COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
SERVICE_HEADERS = {**COMMON_HEADERS, "X-Frame-Options": "SAMEORIGIN", "Cross-Origin-Opener-Policy": "same-origin"}

# A Host header as a browser sends it: a DNS name or IP literal and a port. Anything else (a forged header with `;`
# or spaces) must not write itself into a policy.
HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")


# JupyterLab's page template: its one inline script (it strips a token from the address bar) is allowed by hash,
# read from the installed template so an upgrade of the lab keeps it in step.
LAB_TEMPLATES = ("share/jupyter/lab/static/index.html", "lib/python{v}/site-packages/jupyterlab/static/index.html")
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


@functools.cache
def lab_script_hashes() -> str:
    """`'sha256-…'` sources for the inline scripts of the installed JupyterLab page template."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    hashes: list[str] = []
    for template in LAB_TEMPLATES:
        path = Path(sys.prefix) / template.format(v=version)
        if path.is_file():
            for script in INLINE_SCRIPT.findall(path.read_text(encoding="utf-8", errors="replace")):
                digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
                if f"'sha256-{digest}'" not in hashes:
                    hashes.append(f"'sha256-{digest}'")
    return " ".join(hashes)


def path_source(host: str, path: str) -> str:
    """A CSP source for `path` on the page's own host (scheme-less, so it matches the page's scheme and its secure
    upgrade), or `'self'` when the host is not one a browser would send."""
    if not HOST.match(host):
        return "'self'"
    return host + quote(path, safe="/-._~%!$&'()*+=:@")


def socket_sources(source: str) -> str:
    """The WebSocket forms of a path source (Chromium matches a scheme-less source to http(s) only)."""
    return "" if source == "'self'" else f"ws://{source} wss://{source}"


def policy(directives: tuple[str, ...], source: str) -> str:
    values = {"self": source, "service": source, "sockets": socket_sources(source), "lab_scripts": lab_script_hashes()}
    return "; ".join(" ".join(d.format(**values).split()) for d in directives)


def lab_policy(host: str, base_url: str) -> str:
    """The CSP of JupyterLab's pages and the server's API for a server at `base_url` reached as `host`."""
    return policy(LAB_POLICY, path_source(host, base_url.rstrip("/") + "/"))


def service_policy(service: str, host: str, base_url: str) -> str:
    """The CSP of a proxied service's responses (`service` is `mlflow` or `dask`)."""
    return policy(SERVICE_POLICIES[service], path_source(host, f"{base_url.rstrip('/')}/{service}/"))


class SecurityHeaders(OutputTransform):
    """Sets the headers of every response (one instance per request): a proxied service's own policy and headers,
    or, on the server's own pages, the lab policy with its sources confined to this server's path (the host is
    only known per request; what handlers add after it, `default-src 'none'` on the API, `sandbox` on /files,
    stays)."""

    base_url = "/"  # set by `install` to the server's base URL

    def __init__(self, request: httputil.HTTPServerRequest) -> None:
        from enclave_workspace.services import service_of

        self.service = service_of(request.path, self.base_url)
        self.host = request.host

    def transform_first_chunk(
        self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        if self.service is not None:
            headers["Content-Security-Policy"] = service_policy(self.service, self.host, self.base_url)
            for name, value in SERVICE_HEADERS.items():
                headers[name] = value
            return status_code, headers, chunk
        current = headers.get("Content-Security-Policy", "")
        if current.startswith(ORIGIN_WIDE_LAB_POLICY):
            confined = lab_policy(self.host, self.base_url)
            headers["Content-Security-Policy"] = confined + current[len(ORIGIN_WIDE_LAB_POLICY) :]
        return status_code, headers, chunk


ORIGIN_WIDE_LAB_POLICY = policy(LAB_POLICY, "'self'")


def install(web_app: Application, base_url: str) -> None:
    """Every page of the server gets the lab policy; every proxied service response its own (services.py screens
    the same responses' bodies)."""
    headers = web_app.settings.setdefault("headers", {})
    # JupyterHub's singleuser extension sets `frame-ancestors 'none'` only; ours replaces it (it keeps a framing rule)
    headers["Content-Security-Policy"] = ORIGIN_WIDE_LAB_POLICY
    headers.update(COMMON_HEADERS)
    SecurityHeaders.base_url = base_url
    web_app.add_transform(SecurityHeaders)
