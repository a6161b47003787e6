"""The workspace's route table (images/enclave_workspace/routes.py) and its deny-by-default rule, on small tornado
applications: the table is well formed, a request reaches a handler only with a method the table allows for the
route it would reach, and the inventory names any route the table does not list, so a route that a new dependency
adds fails the route inventory test (tests/integration/test_workspace_routes.py) until someone decides on it.

routes.py imports jupyter_server, which lives in the workspace environment only: each test runs a short script
there (its own interpreter, this checkout's images/ first on the path) and checks what it prints."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.workspace_env import REPO, requires_workspace_env, workspace_python

pytestmark = [pytest.mark.unit, requires_workspace_env]

PRELUDE = """
import json, re
from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.web import Application, RequestHandler
from enclave_workspace.routes import ROUTES, TABLE, add_in_front, front_rules, unclassified_routes

BASE = "/user/alice/cardio-risk/"

class Served(RequestHandler):
    pass

def app_with(patterns):
    app = Application([(BASE.rstrip("/") + p, Served) for p in patterns])
    add_in_front(app, front_rules(BASE, app))
    return app

def reaches(app, method, path):
    request = HTTPServerRequest(method=method, uri=BASE.rstrip("/") + path, headers=HTTPHeaders({"Host": "x"}))
    return app.find_handler(request).handler_class.__name__
"""


def _run(script: str) -> dict:
    result = subprocess.run(
        [str(workspace_python()), "-I", "-c", f"import sys; sys.path.insert(0, {str(REPO / 'images')!r})\n"
         + PRELUDE + script],
        capture_output=True, text=True, cwd="/", timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_the_table_is_well_formed():
    found = _run("""
bad = [r.pattern for r in ROUTES if not r.why or not r.methods <= {"GET", "POST", "PUT", "PATCH", "DELETE"}]
for r in ROUTES:
    re.compile(r.pattern)
print(json.dumps({"bad": bad, "unique": len(TABLE) == len(ROUTES), "anchored": all(r.pattern.endswith("$")
      for r in ROUTES)}))
""")
    assert found == {"bad": [], "unique": True, "anchored": True}


def test_requests_reach_only_routes_and_methods_in_the_table():
    found = _run("""
app = app_with([
    "/api/contents(?P<path>(?:(?:/[^/]+)+|/?))",
    "/api/kernelspecs",
    "/api/shutdown",
    "/api/export/(.*)",  # a route no one listed
])
app.add_handlers(".*$", [(re.escape(BASE) + "static/(.*)", Served)])
print(json.dumps({
    "read": reaches(app, "GET", "/api/contents/notes.md"),
    "save": reaches(app, "PUT", "/api/contents/notes.md"),
    "head": reaches(app, "HEAD", "/api/kernelspecs"),
    "wrong_method": reaches(app, "DELETE", "/api/kernelspecs"),
    "options": reaches(app, "OPTIONS", "/api/contents/notes.md"),
    "refused_route": reaches(app, "POST", "/api/shutdown"),
    "unlisted": reaches(app, "GET", "/api/export/notes.md"),
    "nothing_there": reaches(app, "GET", "/elsewhere"),
    "files": reaches(app, "GET", "/files/notes.md"),
    "escaped_base": reaches(app, "GET", "/static/style/index.css"),
}))
""")
    assert found == {
        "read": "Served",
        "save": "Served",
        "head": "Served",
        "wrong_method": "RefusedHandler",
        "options": "RefusedHandler",
        "refused_route": "RefusedHandler",
        "unlisted": "RefusedHandler",
        "nothing_there": "RefusedHandler",
        "files": "RefusedHandler",
        "escaped_base": "Served",
    }


def test_an_added_unknown_route_fails_the_inventory():
    """The check the extension runs on the started server, and the route inventory test reads: a route in the table
    passes, the workspace's own refusals pass, and a route added by anyone else, in any group, is named."""
    found = _run("""
app = app_with(["/api/contents(?P<path>(?:(?:/[^/]+)+|/?))", "/api/status"])
app.add_handlers(".*$", [(re.escape(BASE) + "static/(.*)", Served)])  # jupyter_server escapes the base URL here
before = unclassified_routes(app, BASE)
app.add_handlers(".*$", [(BASE + "api/export/(.*)", Served)])  # as an extension would add it
after = unclassified_routes(app, BASE)
print(json.dumps({"before": before, "after": after}))
""")
    assert found["before"] == []
    assert len(found["after"]) == 1
    assert found["after"][0].startswith("/api/export/(.*)$ (") and "Served" in found["after"][0]
