"""The workspace's HTTP surface, deny by default: the table of every route the server registers (jupyter_server's, its
extensions', jupyter-server-proxy's) with the methods that may reach it, empty for a route refused outright.

One rule in front of every other rule of the server finds the route a request would reach and answers 403, before
any login, unless that route is in the table with the request's method. So a route that a new dependency registers
is refused until someone adds it here, and `unclassified_routes` (run by the extension when the server starts, and
by the route inventory test) names it. Raw file downloads (`/files`, `/view`), notebook conversion (`/nbconvert`)
and jupyter-server-proxy's generic `/proxy/<port>` routes also get rules of their own in front, whose 403 says why.

Patterns are the regular expressions the handlers are registered with, the server's base URL written as `/`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httputil import HTTPServerRequest
from tornado.routing import Matcher, PathMatches, Rule, RuleRouter
from tornado.web import Application

from enclave_workspace.dask_panel import DASHBOARD_PLOTS, PROJECT_CLUSTER_ID, PROJECT_DASHBOARD

CONTENTS_PATH = r"(?P<path>(?:(?:/[^/]+)+|/?))"
KERNEL_ID = r"(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)"
SESSION_ID = r"(?P<session_id>\w+-\w+-\w+-\w+-\w+)"
KERNEL_NAME = r"(?P<kernel_name>[\w\.\-%]+)"
KERNEL_LOGO = rf"/kernelspecs/{KERNEL_NAME}/(?P<path>logo-[\w-]+\.(?:png|svg))$"

NO_EXPORT_FORMATS = r"/api/nbconvert$"  # JupyterLab asks which export formats there are; the answer is none

NOT_ALLOWED = "This route is not available in a workspace."


@dataclass(frozen=True)
class Route:
    pattern: str  # as registered, under the base URL written as "/"
    methods: frozenset[str]  # the methods that may reach it (HEAD with GET); empty: refused
    why: str


def allow(pattern: str, methods: str, why: str) -> Route:
    return Route(pattern, frozenset(methods.split()), why)


def refuse(pattern: str, why: str) -> Route:
    return Route(pattern, frozenset(), why)


ROUTES: tuple[Route, ...] = (
    # jupyter_server: files, kernels, sessions
    allow(rf"/api/contents{CONTENTS_PATH}$", "GET PUT POST PATCH DELETE", "files: reads screened (contents.py)"),
    allow(rf"/api/contents{CONTENTS_PATH}/checkpoints$", "GET POST", "save points of a file"),
    allow(rf"/api/contents{CONTENTS_PATH}/checkpoints/(?P<checkpoint_id>[\w-]+)$", "POST DELETE", "restore points"),
    allow(rf"/api/contents{CONTENTS_PATH}/trust$", "POST", "trust a notebook's outputs"),
    refuse(r"/api/notebooks/?(.*)$", "old redirect to the contents API"),
    allow(r"/api/kernels$", "GET POST", "list and start kernels"),
    allow(rf"/api/kernels/{KERNEL_ID}$", "GET DELETE", "a kernel"),
    allow(rf"/api/kernels/{KERNEL_ID}/(?P<action>restart|interrupt)$", "POST", "restart, interrupt"),
    allow(rf"/api/kernels/{KERNEL_ID}/channels$", "GET", "the kernel's websocket"),
    allow(r"/api/kernelspecs$", "GET", "the kernels on offer (the environment's only)"),
    allow(rf"/api/kernelspecs/{KERNEL_NAME}$", "GET", "one kernel's spec"),
    allow(KERNEL_LOGO, "GET", "a kernel's logo, screened as an image (kernelspecs.py)"),
    refuse(rf"/kernelspecs/{KERNEL_NAME}/(?P<path>.*)$", "any other file of a kernelspec's folder"),
    allow(rf"/api/sessions/{SESSION_ID}$", "GET PATCH DELETE", "a notebook's kernel session"),
    allow(r"/api/sessions$", "GET POST", "kernel sessions"),
    # jupyter_server: the server itself
    allow(r"/api/status$", "GET", "liveness, activity"),
    allow(r"/api/me$", "GET", "who is logged in, what they may do"),
    allow(r"/api$", "GET", "the server's version"),
    allow(r"/api/events/subscribe$", "GET", "the server's event stream (websocket) that JupyterLab listens to"),
    refuse(r"/api/events$", "posting events into the server's event bus"),
    refuse(r"/api/spec.yaml$", "the REST API's description"),
    allow(r"/api/resolvePath$", "GET", "whether a path printed by a kernel names a file (for links; names only)"),
    allow(r"/api/config/(?P<section_name>\w+)$", "GET", "front-end config sections (the environment's; no writes)"),
    allow(NO_EXPORT_FORMATS, "GET", "the export formats: none (NoExportFormatsHandler answers; export is refused)"),
    refuse(r"/api/security/csp-report$", "CSP reports"),
    refuse(r"/api/shutdown$", "the hub stops workspaces"),
    refuse(r"/login$", "the hub logs people in"),
    allow(r"/logout$", "GET", "log out (through the hub)"),
    allow(r"/oauth_callback$", "GET", "the hub's OAuth callback (jupyterhub-singleuser)"),
    refuse(r"/metrics$", "Prometheus metrics"),
    refuse(r"/nbconvert/(?P<format>\w+)$", "notebook conversion"),
    refuse(rf"/nbconvert/(?P<format>\w+){CONTENTS_PATH}$", "notebook conversion and download"),
    refuse(rf"/view{CONTENTS_PATH}$", "files opened raw in the browser"),
    allow(r"/$", "GET", "redirect to JupyterLab"),
    allow(r"/.*/$", "GET", "redirect without the trailing slash"),
    allow(r"/static/(.*)$", "GET", "the server's static files"),
    allow(r"/(robots\.txt|favicon\.ico)$", "GET", "robots.txt and the icon"),
    refuse(r"/(robots\.txt)$", "outside the base URL"),
    refuse(r"/(favicon\.ico)$", "outside the base URL"),
    refuse(r"(.*)$", "the server's 404 page for anything else"),
    allow(r"/?$", "GET", "the workspace's address (where the hub sends the browser): a redirect to JupyterLab"),
    # JupyterLab
    allow(r"/(?P<mode>lab|doc)(?P<workspace>/workspaces/[a-zA-Z0-9\-\_]+)?(?P<tree>/tree/.*)?$", "GET", "the lab page"),
    allow(r"/static/lab/(.*)$", "GET", "JupyterLab's bundle"),
    allow(r"/lab/extensions/(.*)$", "GET", "front-end extensions (the environment's only)"),
    allow(r"/lab/api/settings/?$", "GET", "settings"),
    allow(r"/lab/api/settings/(?P<schema_name>.+)$", "GET PUT", "settings"),
    allow(r"/lab/api/translations/?$", "GET", "languages"),
    allow(r"/lab/api/translations/(?P<locale>.*)$", "GET", "languages"),
    allow(r"/lab/api/workspaces/?$", "GET", "layouts"),
    allow(r"/lab/api/workspaces/(?P<space_name>.+)$", "GET PUT DELETE", "layouts"),
    allow(r"/lab/api/listings/(.*)$", "GET", "extension listings"),
    allow(r"/lab/api/themes/(.*)$", "GET", "themes"),
    allow(r"/lab/api/licenses/(.*)$", "GET", "Help > Licenses"),
    allow(r"/lab/api/extensions$", "GET POST", "the extension manager, read-only and locked (lab.py)"),
    allow(r"/lab/api/plugins$", "GET POST", "the plugin manager, locked"),
    allow(r"/lab/api/news$", "GET", "announcements (none: news_url is off)"),
    allow(r"/lab/api/update$", "GET", "update check (never checks)"),
    allow(r"/lab/api/build$", "GET", "whether a build is needed (never: rebuilding, POST, is refused)"),
    refuse(r"/lab/.*$", "JupyterLab's 404 page"),
    # jupyter_server_terminals
    allow(r"/api/terminals$", "GET POST", "terminals"),
    allow(r"/api/terminals/(\w+)$", "GET DELETE", "a terminal"),
    allow(r"/terminals/websocket/(\w+)$", "GET", "a terminal's websocket"),
    # jupyter_lsp (no language servers are configured)
    allow(r"/lsp/status$", "GET", "language servers on offer (none)"),
    refuse(r"/lsp/ws/(?P<language_server>.*)$", "a language server's websocket"),
    # jupyter-server-proxy: the named routes only (what they return is filtered in proxy.py)
    allow(r"/dask/(.*)$", "GET", "the Dask dashboard"),
    allow(r"/dask$", "GET", "the Dask dashboard"),
    allow(r"/mlflow/(.*)$", "GET POST PATCH DELETE", "the MLflow UI and its API"),
    allow(r"/mlflow$", "GET", "the MLflow UI"),
    # JupyterLab's Dask panel (dask-labextension's front end): its cluster API, answered by the workspace
    # (dask_panel.py, ahead of the dashboard's route); its dashboard is the `dask/` route above
    allow(r"/dask/clusters/?$", "GET PUT", "the panel's clusters: list, start the project's (dask_panel.py)"),
    allow(r"/dask/clusters/(?P<cluster_id>\w+-\w+-\w+-\w+-\w+)$", "GET PATCH DELETE", "the cluster: see, scale, close"),
    allow(PROJECT_DASHBOARD, "GET", "the project cluster's panes: a redirect to dask/ (dask_panel.py)"),
    allow(DASHBOARD_PLOTS, "GET", "the dashboard's panes, or none while it is down (dask_panel.py)"),
    allow(r"/server-proxy/servers-info$", "GET", "the launcher's list of proxied services"),
    allow(r"/server-proxy/icon/(.*)$", "GET", "their icons"),
    refuse(r"/proxy/([^/:@]+):(\d+)(/.*|)$", "proxy to any host and port"),
    refuse(r"/proxy/absolute/([^/:@]+):(\d+)(/.*|)$", "proxy to any host and port"),
    refuse(r"/proxy/(\d+)(/.*|)$", "proxy to any port"),
    refuse(r"/proxy/absolute/(\d+)(/.*|)$", "proxy to any port"),
)

TABLE: dict[str, Route] = {route.pattern: route for route in ROUTES}
assert len(TABLE) == len(ROUTES), "a route is listed twice"

# (pattern under the server's base URL, what the refusal says); the patterns match with and without a trailing path.
REFUSED: tuple[tuple[str, str], ...] = (
    (r"/files(?:/.*)?", "Downloading files from a workspace is disabled; release outputs through the airlock."),
    (r"/view(?:/.*)?", "Downloading files from a workspace is disabled; release outputs through the airlock."),
    (
        r"/nbconvert(?:/.*)?",
        "Exporting notebooks from a workspace is disabled; release outputs through the airlock.",
    ),
    (r"/proxy(?:/.*)?", "Only the workspace's Dask dashboard (/dask/) and MLflow (/mlflow/) can be proxied."),
    # dask-labextension's server routes (its server extension is off, dask_panel.py): the server fetching a URL the
    # browser names, and a proxy to any dashboard a cluster names. The panel checks and shows the `dask/` route.
    (r"/dask/dashboard-check(?:/.*)?", "The workspace fetches no URL for the Dask panel: it shows the dask/ route."),
    (
        rf"/dask/dashboard(?!/{PROJECT_CLUSTER_ID}(?:/|$))(?:/.*)?",
        "The Dask panel shows the workspace's own dashboard route, dask/, only.",
    ),
)


def allowed(method: str, pattern: str) -> bool:
    """Whether `method` may reach the route registered as `pattern` (under the base URL written as "/")."""
    route = TABLE.get(pattern)
    if route is None:
        return False
    return method in route.methods or (method == "HEAD" and "GET" in route.methods)


class NoExportFormatsHandler(JupyterHandler):
    """`GET /api/nbconvert`: no export formats. JupyterLab's notebook panel asks for them when it opens and reports
    an error when refused; nbconvert's own handler would list every format, which the workspace refuses to run."""

    @web.authenticated
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish("{}")


class RefusedHandler(JupyterHandler):
    """Answers 403 with a JSON message for every method, before authentication: refusing tells nobody anything."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

    def initialize(self, message: str, route: str) -> None:
        self.message = message
        self.route = route

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        # The path may name a file, so the log says which route was refused (its pattern) and nothing more.
        route = getattr(self.request, "enclave_route", None) or self.route
        self.log.warning("Refused a %s request to a route the workspace does not serve: %s", self.request.method, route)
        self.set_status(403)
        if self.request.method == "HEAD":
            self.finish()
            return
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": self.message, "reason": "Forbidden"}))

    def check_xsrf_cookie(self) -> None:
        """Nothing is ever done here, so there is nothing to forge."""


class NotAllowed(Matcher):
    """Matches (so that RefusedHandler answers) every request whose method may not reach the route it would reach."""

    def __init__(self, app: Application, base_url: str) -> None:
        self.app = app
        self.base_url = base_url

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        rule = reached_rule(self.app.default_router, request)
        if rule is None:
            return {}
        if isinstance(rule.target, type) and issubclass(rule.target, RefusedHandler):
            return None  # a refusal of its own, with its own message
        regex = getattr(rule.matcher, "regex", None)  # a rule on anything but a path is in no table
        pattern = relative(regex.pattern, self.base_url) if regex is not None else type(rule.matcher).__name__
        if allowed(request.method or "", pattern):
            return None
        request.enclave_route = pattern  # type: ignore[attr-defined]  (for RefusedHandler's log line)
        return {}


def reached_rule(router: RuleRouter, request: HTTPServerRequest) -> Rule | None:
    """The handler rule tornado would route `request` to, NotAllowed's own rule left out."""
    for rule in router.rules:
        if isinstance(rule.matcher, NotAllowed) or rule.matcher.match(request) is None:
            continue
        if isinstance(rule.target, RuleRouter):
            if (found := reached_rule(rule.target, request)) is not None:
                return found
            continue
        return rule
    return None


def relative(pattern: str, base_url: str) -> str:
    """`pattern` with the server's base URL (as is, or escaped for a regular expression) written as "/"."""
    for prefix in (base_url, re.escape(base_url)):
        if pattern.startswith(prefix):
            return "/" + pattern[len(prefix) :]
    return pattern


def registered_routes(app: Application) -> Iterator[tuple[Rule, str]]:
    """Every handler rule of `app`, through nested routers, with its handler's qualified name."""

    def walk(router: RuleRouter) -> Iterator[tuple[Rule, str]]:
        for rule in router.rules:
            if isinstance(rule.target, RuleRouter):
                yield from walk(rule.target)
            else:
                target = rule.target
                yield rule, f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"

    yield from walk(app.default_router)


def unclassified_routes(app: Application, base_url: str) -> list[str]:
    """The routes of `app` that are neither in the table nor refused by a rule of their own: empty when the table
    covers the whole server. Each is `pattern (handler)`."""
    unknown = []
    for rule, handler in registered_routes(app):
        if isinstance(rule.matcher, NotAllowed):
            continue
        if isinstance(rule.target, type) and issubclass(rule.target, RefusedHandler):
            continue
        pattern = relative(rule.matcher.regex.pattern, base_url) if isinstance(rule.matcher, PathMatches) else None
        if pattern is None or pattern not in TABLE:
            unknown.append(f"{pattern or type(rule.matcher).__name__} ({handler})")
    return unknown


def front_rules(base_url: str, app: Application, extra: list | None = None) -> list:
    """The rules that go in front: the deny-by-default rule, the refusals with their own message, then `extra` (the
    workspace's own handlers, which must be in the table too)."""
    rules: list = [Rule(NotAllowed(app, base_url), RefusedHandler, {"message": NOT_ALLOWED, "route": "not allowed"})]
    rules += refused_rules(base_url)
    return rules + list(extra or [])


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
