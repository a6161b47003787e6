"""The airlock web app as a JupyterHub managed service: `airlock_service` is its `c.JupyterHub.services` entry,
which hub/config.py adds (`apply_config`), with the session settings in its environment (`apply_sessions`).

The hub starts `enclave airlock web` with the environment a managed service gets (JUPYTERHUB_API_TOKEN,
JUPYTERHUB_CLIENT_ID, JUPYTERHUB_SERVICE_PREFIX=/services/airlock/, JUPYTERHUB_SERVICE_URL, ...), proxies
/services/airlock/ to it (on its own origin, `airlock--service.HOST`, when the hub has a subdomain host:
hub/origins.py) and is its OAuth provider. A visitor is identified by their own OAuth token, which must carry the
scope `access:services!service=airlock`. Enclave's hub grants that scope to the `researchers` and
`output-checkers` groups (hub/roles.py); what each person may see and do there is then decided by the release
workflow from their project roles. `load_roles` grants it instead to named users and groups, or to every hub user,
for a hub configured by hand (tests/integration/test_airlock_hub.py). The service itself needs no hub API scope: it
only asks the hub who a visitor is, with the visitor's token, so it is given no role (least privilege).
`oauth_no_confirm` skips the hub's "authorise this service?" page: the airlock is part of the platform, not a third
party.

The service runs as root (it owns the request store and the audit chain) but never parses a researcher's file
itself: checks and previews run in the checker sandbox as `enclave-airlock-checks` (output_checks/sandbox), which
`enclave host apply` creates.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from output_checks.web.auth import ACCESS_SCOPE, SERVICE_NAME

DEFAULT_PORT = 8090
REPO = Path(__file__).resolve().parents[1]


def airlock_service(*, home: Path | str, port: int = DEFAULT_PORT, python: str = sys.executable) -> dict[str, Any]:
    """The `c.JupyterHub.services` entry: a managed service on loopback, serving the Enclave home `home`."""
    return {
        "name": SERVICE_NAME,
        "url": f"http://127.0.0.1:{port}",
        "command": [python, "-m", "provisioning.cli", "--home", str(home), "airlock", "web"],
        "cwd": str(REPO),
        "environment": {"ENCLAVE_HOME": str(home)},
        "oauth_no_confirm": True,
        "display": True,  # listed on the hub's home page (Services menu)
    }


def load_roles(users: list[str] | None = None, groups: list[str] | None = None) -> list[dict[str, Any]]:
    """`c.JupyterHub.load_roles` entries letting people reach the airlock: the named users and groups, or, with
    neither, every hub user (the built-in `user` role, keeping its own `self` scope)."""
    if users is None and groups is None:
        return [{"name": "user", "description": "Standard user privileges, and the airlock",
                 "scopes": ["self", ACCESS_SCOPE]}]  # fmt: skip
    return [
        {
            "name": "airlock-user",
            "description": "Use the airlock web app (what each person may do there is decided by project roles)",
            "scopes": [ACCESS_SCOPE],
            "users": users or [],
            "groups": groups or [],
        }
    ]
