"""The hub's whole configuration, applied by one function to a traitlets Config.

It starts nothing, but it is not free of side effects: it opens the registry (creating or migrating its database)
to read the accounts, and makes revocation's API token in the hub state folder when that folder exists and has
none (hub/revocation.py). hub/jupyterhub_config.py is only `apply_config(c, HubSettings.from_env())`; tests apply
it to a bare `Config()` and check it, and start real hubs from it. Settings come from the environment (what
`enclave up` passes):

| variable | default | what |
| --- | --- | --- |
| ENCLAVE_HOME | see kernel/config.py | the installation: registry, projects, hub state |
| ENCLAVE_HUB_IP / ENCLAVE_HUB_PORT | 127.0.0.1 / 8000 | where browsers reach Enclave (the proxy) |
| ENCLAVE_PROXY_API_PORT | 8001 | the proxy's API, loopback only |
| ENCLAVE_AIRLOCK_PORT | 8090 | the airlock web app (a hub service), loopback only |
| ENCLAVE_ADMINS | (none) | comma-separated platform admins (group `platform-admins`) |
| ENCLAVE_SUBDOMAIN_HOST | http://localhost:PORT | each person on `NAME.host`, the airlock on its own; `off`: one |
| ENCLAVE_SESSION_MAX_SECONDS | 28800 | the longest a login, its cookies and its tokens live (8 h) |
| ENCLAVE_SESSION_IDLE_SECONDS | 3600 | a session with no request from the person this long is ended; 0: never |
| ENCLAVE_AUTH_REFRESH_SECONDS | 60 | how often a session is re-checked (account, idle, groups) |
| ENCLAVE_AUTH_CACHE_SECONDS | 5 | how long workspaces and the airlock trust a token (at least 1) |
| ENCLAVE_WORKSPACE_IDLE_SECONDS | 3600 | idle kernels culled, then an idle workspace stopped, after this; 0: never |
| ENCLAVE_SMTP_*, ENCLAVE_PUBLIC_URL | (none) | the airlock's e-mail notices (output_checks/release/notices.py) |
| ENCLAVE_AUTH | local | `local`: accounts with password + TOTP; `oidc`: an OpenID provider (hub/oidc.py) |
| ENCLAVE_OIDC_*, ENCLAVE_CRYPT_KEY_FILE | (none) | OIDC sign-in (docs/reference/hub-config.md lists them) |
"""

from __future__ import annotations

import html
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from fabric.models import ProjectMember
from hub.airlock_service import airlock_service
from hub.models import Account
from hub.oidc_settings import OIDCSettings, configure_oidc
from hub.origins import apply_origins, default_subdomain_host, subdomain_host
from hub.revocation import admin_role, admin_service
from hub.roles import TOKEN_MAX_SECONDS, hub_groups, hub_roles
from hub.sandbox import hub_socket, socket_url
from hub.workspaces import registry_of, researcher_projects
from kernel.config import Paths
from kernel.db import Registry
from kernel.names import USERNAME
from output_checks.release import notices
from output_checks.release.airlock import Airlock

REPO = Path(__file__).resolve().parents[1]
CHP = REPO / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
TEMPLATES = Path(__file__).with_name("templates")
log = logging.getLogger("enclave.hub")


@dataclass(frozen=True)
class HubSettings:
    home: Path
    ip: str = "127.0.0.1"
    port: int = 8000
    proxy_api_port: int = 8001
    airlock_port: int = 8090
    admins: list[str] = field(default_factory=list)
    proxy_command: str = str(CHP)
    python: str = sys.executable
    subdomain_host: str = ""  # "": off, one origin (from_env turns it on by default: hub/origins.py)
    session_max_seconds: int = TOKEN_MAX_SECONDS
    session_idle_seconds: int = 3600
    auth_refresh_seconds: int = 60
    auth_cache_seconds: int = 5
    workspace_idle_seconds: int = 3600
    # The airlock's e-mail notices (output_checks/release/notices.py): ENCLAVE_SMTP_* and ENCLAVE_PUBLIC_URL, passed
    # on to the airlock service (a managed service gets only the environment the hub gives it).
    notice_settings: dict[str, str] = field(default_factory=dict)
    oidc: OIDCSettings | None = None  # None: local accounts (ENCLAVE_AUTH=local, the default)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> HubSettings:
        env = os.environ if environ is None else environ

        def port(name: str, fallback: int) -> int:
            value = env.get(name)
            if not value:
                return fallback
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise ValueError(f"{name} must be a TCP port number, not {value!r}")
            return int(value)

        home = Path(env["ENCLAVE_HOME"]).resolve() if env.get("ENCLAVE_HOME") else Paths.from_env().home
        ip, public_port = env.get("ENCLAVE_HUB_IP") or "127.0.0.1", port("ENCLAVE_HUB_PORT", 8000)
        host = env.get("ENCLAVE_SUBDOMAIN_HOST", "")
        return cls(
            home=home,
            ip=ip,
            port=public_port,
            proxy_api_port=port("ENCLAVE_PROXY_API_PORT", 8001),
            airlock_port=port("ENCLAVE_AIRLOCK_PORT", 8090),
            admins=[a.strip() for a in env.get("ENCLAVE_ADMINS", "").split(",") if a.strip()],
            subdomain_host=subdomain_host(host) if host else default_subdomain_host(ip, public_port),
            session_max_seconds=seconds(env, "ENCLAVE_SESSION_MAX_SECONDS", TOKEN_MAX_SECONDS, minimum=60),
            session_idle_seconds=seconds(env, "ENCLAVE_SESSION_IDLE_SECONDS", 3600),
            auth_refresh_seconds=seconds(env, "ENCLAVE_AUTH_REFRESH_SECONDS", 60, minimum=1),
            # at least 1: JupyterHub's HubAuth reads a cache age of 0 as "trust a token forever"
            auth_cache_seconds=seconds(env, "ENCLAVE_AUTH_CACHE_SECONDS", 5, minimum=1),
            workspace_idle_seconds=seconds(env, "ENCLAVE_WORKSPACE_IDLE_SECONDS", 3600),
            notice_settings={k: env[k] for k in notices.VARIABLES if env.get(k)},
            oidc=OIDCSettings.from_env(env),
        )

    @property
    def url(self) -> str:
        """Where the proxy listens (the hub's health check): `http://ENCLAVE_HUB_IP:ENCLAVE_HUB_PORT`."""
        return f"http://{self.ip}:{self.port}"

    @property
    def public_url(self) -> str:
        """The address a person opens: the subdomain host when there is one (its cookies are on that name)."""
        return self.subdomain_host or self.url


def seconds(env: Any, name: str, fallback: int, minimum: int = 0) -> int:
    """A whole number of seconds from the environment (at least `minimum`), or `fallback` when unset."""
    value = env.get(name)
    if not value:
        return fallback
    if not value.isdigit() or int(value) < minimum:
        raise ValueError(f"{name} must be a whole number of seconds, at least {minimum}, not {value!r}")
    return int(value)


def spawn_confirmation(spawner: Any) -> str:
    """The spawner's options form: only a confirmation, so that a GET of /hub/spawn/... (a link on another site)
    shows a page and the workspace starts only on the form's POST, which carries the XSRF token."""
    return (
        f"<p>Start your workspace for project <strong>{html.escape(spawner.name)}</strong>? "
        "It runs until you stop it or it is idle too long.</p>"
    )


def workspace_projects(registry: Registry):
    """The home page's list of workspaces a person may open (a template variable called with the user)."""

    def projects(user: Any) -> list[dict[str, str]]:
        if user is None:
            return []
        return researcher_projects(registry, user.name)

    return projects


def waiting_reviews(registry: Registry, paths: Paths):
    """The home page's notice to an output checker of the release requests waiting for them (a template variable
    called with the signed-in user at each render, never cached): None for anyone with nothing waiting."""
    airlock = Airlock(registry, paths)  # its reads only: the notices' e-mail is the airlock service's to send

    def waiting(user: Any) -> dict[str, Any] | None:
        if user is None:
            return None
        try:
            rows = airlock.waiting(user.name)
        except Exception:  # the notice is a convenience: the home page still renders without it
            log.exception("could not read the release requests waiting for %s", user.name)
            return None
        if not rows:
            return None
        since = "{:%Y-%m-%d %H:%M} UTC".format
        return {
            "count": sum(w.count for w in rows), "oldest": since(min(w.oldest for w in rows)),
            "projects": [{"project": w.project, "to_review": w.to_review, "to_release": w.to_release,
                          "oldest": since(w.oldest)} for w in rows],
        }  # fmt: skip

    return waiting


def apply_config(c: Any, settings: HubSettings) -> None:
    """Everything Enclave sets on JupyterHub, its proxy, its spawner and its authenticator."""
    paths = Paths(settings.home)
    state = paths.hub
    registry = registry_of(paths)

    c.JupyterHub.bind_url = settings.url
    # The hub listens on a Unix socket, not a port: the proxy, the airlock service and (bound into their sandbox)
    # the workspaces reach it there; workspaces have no network at all.
    hub_url = socket_url(hub_socket(paths))
    c.JupyterHub.hub_bind_url = hub_url
    c.JupyterHub.hub_connect_url = hub_url
    c.JupyterHub.hub_socket_mode = 0o666  # any local account may connect, as to a loopback port; tokens decide
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "cookie_secret")
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = True  # stopping the hub stops every workspace
    c.JupyterHub.cleanup_proxy = True
    c.ConfigurableHTTPProxy.command = [settings.proxy_command]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")

    # Identity: local accounts with password + TOTP (hub/accounts.py), or an OpenID provider (hub/oidc.py).
    if settings.oidc is None:
        c.JupyterHub.authenticator_class = "enclave"
        c.EnclaveAuthenticator.enclave_home = str(settings.home)
    else:
        configure_oidc(c, settings.oidc, home=settings.home, public_url=settings.public_url, admins=settings.admins)
    c.Authenticator.username_pattern = USERNAME.pattern  # what JupyterHub accepts is what Enclave does

    # Roles and groups as data (hub/roles.py): nobody mints tokens; admins get the admin pages, never servers.
    # Enclave owns the groups with either sign-in: they follow the registry, never an identity provider's claims.
    with registry.session() as session:
        if settings.oidc is None:  # people with an account only
            people = set(session.scalars(select(Account.username)))
        else:  # every member and admin whose name one can sign in by (the hub refuses to start on any other)
            names = set(session.scalars(select(ProjectMember.username))) | set(settings.admins)
            people = {name for name in names if USERNAME.match(name)}
        c.JupyterHub.load_groups = hub_groups(session, admins=settings.admins, people=people)
    c.JupyterHub.load_roles = hub_roles()
    c.JupyterHub.token_expires_in_max_seconds = TOKEN_MAX_SECONDS

    # Workspaces: a named server per project, each in its own sandbox (hub/spawner.py).
    c.JupyterHub.spawner_class = "enclave"
    c.SandboxSpawner.enclave_home = str(settings.home)
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.default_url = "/hub/home"
    c.Spawner.default_url = "/lab"
    c.Spawner.start_timeout = 120
    c.Spawner.http_timeout = 60
    c.JupyterHub.template_paths = [str(TEMPLATES)]
    c.JupyterHub.template_vars = {
        "enclave_projects": workspace_projects(registry),
        "enclave_waiting": waiting_reviews(registry, paths),  # an output checker's requests waiting for them
    }

    # The airlock web app, as a managed service the hub proxies and authenticates for.
    c.JupyterHub.services = [airlock_service(home=settings.home, port=settings.airlock_port, python=settings.python)]
    # Each person's workspaces and the airlock on origins of their own, when the hub has a subdomain host.
    apply_origins(c, settings.subdomain_host)

    # No login outlives a working day.
    c.JupyterHub.cookie_max_age_days = TOKEN_MAX_SECONDS / 86400

    apply_sessions(c, settings, paths)


def apply_sessions(c: Any, settings: HubSettings, paths: Paths) -> None:
    """Revocation and sessions (docs/explanation/workspace-sandbox.md, "Revocation and sessions"): lifetimes, idle
    time-outs, SameSite cookies, no state change on GET, and the `enclave-admin` identity revocation uses."""
    days = settings.session_max_seconds / 86400
    c.JupyterHub.cookie_max_age_days = days
    c.JupyterHub.oauth_token_expires_in = settings.session_max_seconds
    # Every cookie SameSite=Lax (a cross-site POST carries none) and none outlives a session's maximum.
    cookies = {"samesite": "Lax", "expires_days": days}
    c.JupyterHub.tornado_settings = {**c.JupyterHub.get("tornado_settings", {}), "cookie_options": cookies}
    c.Spawner.environment = {**c.Spawner.get("environment", {}), "JUPYTERHUB_COOKIE_OPTIONS": json.dumps(cookies)}
    for service in c.JupyterHub.services:
        if service.get("name") == "airlock":
            service["environment"] = {
                **service.get("environment", {}),
                "JUPYTERHUB_COOKIE_OPTIONS": json.dumps(cookies),
                "ENCLAVE_AUTH_CACHE_SECONDS": str(settings.auth_cache_seconds),
                # a notice links to the airlock where people reach it
                "ENCLAVE_PUBLIC_URL": settings.public_url,
                **settings.notice_settings,
            }
    # Workspaces ask the hub again about a token after a few seconds (not JupyterHub's 300), so a revoked one is
    # refused at once; idle kernels are culled and an idle workspace stops.
    idle = settings.workspace_idle_seconds
    c.Spawner.args = [
        *c.Spawner.get("args", []),
        f"--HubOAuth.cache_max_age={settings.auth_cache_seconds}",
        *(
            [f"--ServerApp.shutdown_no_activity_timeout={idle}", f"--MappingKernelManager.cull_idle_timeout={idle}",
             "--MappingKernelManager.cull_interval=60"]
            if idle else []
        ),
    ]  # fmt: skip
    # Sessions are re-checked (account still there and enabled, not idle, groups) every few seconds of use; a
    # refused one is refused to tokens too, so workspaces and the airlock stop accepting it.
    c.Authenticator.auth_refresh_age = settings.auth_refresh_seconds
    c.Authenticator.auth_refresh_strict = True
    c.Authenticator.delete_invalid_users = True  # a user whose account is gone is deleted at the next start
    section = "EnclaveAuthenticator" if settings.oidc is None else "EnclaveOIDCAuthenticator"
    c[section].idle_timeout = settings.session_idle_seconds
    # No state change on GET: /hub/spawn/... shows a confirmation whose POST starts the workspace.
    c.Spawner.options_form = spawn_confirmation
    # Revocation's identity on the hub's API (hub/revocation.py): its token in the root-only state folder.
    admin = admin_service(paths)
    if admin is not None:
        c.JupyterHub.services = [*c.JupyterHub.services, admin]
        c.JupyterHub.load_roles = [*c.JupyterHub.load_roles, admin_role()]
