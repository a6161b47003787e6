"""Jupyter Server 2's authorisation layer for a workspace: which actions on which resources a logged-in person may
take, as data. Anything else, an unknown resource included, is refused (403). This is the second layer: some
handlers never ask the authoriser, so the route table (routes.py) is the guarantee.

Resources are those handlers name (`auth_resource`); `files`, `nbconvert`, `server` (shutdown), `csp` and anything
new are not here."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.authorizer import Authorizer

PERMITTED: dict[str, frozenset[str]] = {
    "contents": frozenset({"read", "write"}),  # reads screened by contents.py
    "kernels": frozenset({"read", "write", "execute"}),
    "kernelspecs": frozenset({"read"}),
    "sessions": frozenset({"read", "write"}),
    "terminals": frozenset({"read", "write", "execute"}),
    "api": frozenset({"read"}),  # status, identity
    "config": frozenset({"read"}),  # front-end config sections, from the environment's config folder
    "lsp": frozenset({"read"}),  # which language servers there are (none); their websockets are refused by route
    "events": frozenset({"execute"}),  # subscribing to the event stream (JupyterLab does; posting is refused)
    "dask_clusters": frozenset({"read", "write"}),  # the Dask panel's project cluster (dask_panel.py)
}


class WorkspaceAuthorizer(Authorizer):
    """Allows the (resource, action) pairs in PERMITTED to any logged-in person (the hub decided who that is)."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return action in PERMITTED.get(resource, frozenset())
