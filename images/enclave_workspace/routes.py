"""The routes a workspace refuses outright, whoever asks: raw file downloads (`/files`, `/view`), notebook conversion
(`/nbconvert`, any format, download or not) and jupyter-server-proxy's generic `/proxy/<port>` and
`/proxy/<host>:<port>` routes (only the named `dask` and `mlflow` routes are served). The rules go in front of
every other rule of the server, so no handler that jupyter_server or another extension registers can win."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado.routing import Rule
from tornado.web import Application

# (pattern under the server's base URL, what the refusal says); the patterns match with and without a trailing path.
REFUSED: tuple[tuple[str, str], ...] = (
    (r"/files(?:/.*)?", "Downloading files from a workspace is disabled; release outputs through the airlock."),
    (r"/view(?:/.*)?", "Downloading files from a workspace is disabled; release outputs through the airlock."),
    (
        r"/nbconvert(?:/.*)?",
        "Exporting notebooks from a workspace is disabled; release outputs through the airlock.",
    ),
    (r"/proxy(?:/.*)?", "Only the workspace's Dask dashboard (/dask/) and MLflow (/mlflow/) can be proxied."),
)


class RefusedHandler(JupyterHandler):
    """Answers 403 with a JSON message for every method, before authentication: refusing tells nobody anything."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

    def initialize(self, message: str, route: str) -> None:
        self.message = message
        self.route = route

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        # The path may name a file, so the log says which kind of route was refused and nothing more.
        self.log.warning("Refused a request to a disabled workspace route (%s)", self.route)
        self.set_status(403)
        if self.request.method == "HEAD":
            self.finish()
            return
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": self.message, "reason": "Forbidden"}))

    def check_xsrf_cookie(self) -> None:
        """Nothing is ever done here, so there is nothing to forge."""


def refused_rules(base_url: str) -> list[tuple[str, type[RefusedHandler], dict[str, str]]]:
    rules = []
    for pattern, message in REFUSED:
        route = pattern.split("(", 1)[0]
        rules.append((url_path_join(base_url, pattern), RefusedHandler, {"message": message, "route": route}))
    return rules


def add_in_front(web_app: Application, handlers: list) -> Rule:
    """Register `handlers` ahead of every rule the application has now.

    Tornado tries rules in order and `add_handlers` inserts each new group just before the server's own handlers,
    behind the groups that extensions added earlier; moving ours to the front makes the order of extension loading
    irrelevant. Rules added later (by extensions loading after this one) still land behind it."""
    rules = web_app.default_router.rules
    before = {id(rule) for rule in rules}
    web_app.add_handlers(".*$", handlers)
    (ours,) = [rule for rule in rules if id(rule) not in before]
    rules.remove(ours)
    rules.insert(0, ours)
    return ours
