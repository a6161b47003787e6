"""What the Dask panel's own routes (images/enclave_workspace/dask_panel.py) can hand the browser when whatever
listens on the workspace's dashboard port is a kernel's, not a dashboard: `dask/individual-plots.json` passes only a
JSON object of names and routes, within its cap, and 204 for anything else; the redirect for the project
cluster's panes leads only to the workspace's own `dask/` route."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from tests.workspace_server import running_workspace

pytestmark = pytest.mark.security


class _FakeDashboard(http.server.BaseHTTPRequestHandler):
    body = b"{}"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(type(self).body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def workspace(workspace_env: Path):
    with running_workspace(workspace_env, base_url="/user/alice/cardio-risk/") as ws:
        host, _, port = ws.dask_address.rpartition(":")
        server = http.server.ThreadingHTTPServer((host, int(port)), _FakeDashboard)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield ws
        finally:
            server.shutdown()
            server.server_close()


def plots(ws, body: bytes):
    _FakeDashboard.body = body
    return ws.request("GET", "/dask/individual-plots.json")


def test_only_names_and_routes_pass(workspace):
    answer = plots(workspace, json.dumps({"Progress": "/individual-progress", "rows": [1, 2], "n": 3}).encode())
    assert answer.status == 200 and answer.json() == {"Progress": "/individual-progress"}


@pytest.mark.parametrize(
    "body",
    [b"[1, 2, 3]", b"not json", b"\x00\x01binary", json.dumps({"x": "y" * (128 << 10)}).encode()],
    ids=["a list", "text", "bytes", "over the cap"],
)
def test_anything_else_is_no_content(workspace, body):
    answer = plots(workspace, body)
    assert answer.status == 204 and answer.body == b""
