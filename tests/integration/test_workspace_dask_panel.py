"""JupyterLab's Dask panel (dask-labextension's front end; its cluster API answered by enclave_workspace/dask_panel.py)
on a real workspace server from the workspace environment (tests/workspace_server.py), a local-engine workspace (no
cluster service):

- the extension's front end is served from the environment and its settings point the panel at the workspace's own
  `dask/` route, checked from the browser;
- dask-labextension's server extension is off: `dask/dashboard-check/<url>` and `dask/dashboard/<id>/...` are refused
  before and after login, and a loopback server the check names is never asked anything; a config that turns it on
  stops the server;
- the cluster API lists no cluster, refuses to start one (saying how a notebook starts it) and knows no other id;
  methods the route table does not allow are refused;
- a kernel's `Client` given the address the panel shows for a SLURM cluster (its "inject client code") fails at once
  saying how to connect.

The same routes on a SLURM project's workspace (list, start, scale, close the project's cluster through the cluster
service): tests/integration/test_slurm_workspace.py."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.workspace_server import free_port, running_workspace

pytestmark = pytest.mark.integration

CLUSTER_ID = "5b0f1c7e-1111-4222-8333-444455556666"  # well formed, not the project's
PROJECT_CLUSTER_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "enclave:project-cluster"))  # dask_panel.py's
NOT_AVAILABLE = "This route is not available in a workspace."


@pytest.fixture(scope="module")
def workspace(workspace_env: Path):
    with running_workspace(workspace_env, base_url="/user/alice/cardio-risk/") as ws:
        yield ws


def test_the_panels_front_end_is_served_and_points_at_the_workspaces_dashboard(workspace):
    page = workspace.page_config()
    federated = {extension["name"]: extension for extension in page["federated_extensions"]}
    assert "dask-labextension" in federated
    entry = federated["dask-labextension"]["load"]
    script = workspace.request("GET", f"/lab/extensions/dask-labextension/{entry}")
    assert script.status == 200 and b"dask-labextension" in script.body
    # the environment's overrides are the settings' defaults
    schema = workspace.request("GET", "/lab/api/settings/dask-labextension:plugin").json()["schema"]
    defaults = {name: spec.get("default") for name, spec in schema["properties"].items()}
    assert defaults["defaultURL"] == "dask/status"  # under the server's base URL: the `dask/` route
    assert defaults["browserDashboardCheck"] is True
    assert defaults["autoStartClient"] is False


class _Recorder(http.server.BaseHTTPRequestHandler):
    asked: list[str] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"Individual Progress": "/individual-progress"}')

    def log_message(self, *args: object) -> None:
        pass


def test_the_server_fetches_no_url_for_the_panel(workspace):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        loopback = f"http://127.0.0.1:{server.server_address[1]}/"
        for url in (loopback, f"{loopback}status", "/user/alice/cardio-risk/dask/status", "http://example.org/"):
            for token in (False, True):
                answer = workspace.request("GET", "/dask/dashboard-check/" + urllib.parse.quote(url, safe=""),
                                           token=token)  # fmt: skip
                assert answer.status == 403, (url, token, answer.status, answer.body[:200])
                assert "fetches no URL" in answer.json()["message"]
        for path in (f"/dask/dashboard/{CLUSTER_ID}/status", f"/dask/dashboard/{CLUSTER_ID}/individual-plots.json"):
            assert workspace.request("GET", path).status == 403
        assert _Recorder.asked == []
    finally:
        server.shutdown()
        server.server_close()
    assert "dask_labextension" not in workspace.log.read_text()  # its server extension never loaded


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_the_project_clusters_panes_are_the_workspaces_own_dashboard_route(workspace):
    """The panel shows a listed cluster's panes at dask/dashboard/<id>/: for the project's cluster, a redirect to
    the dask/ route (query kept), with a login only; every other id stays refused."""
    opener = urllib.request.build_opener(_NoRedirect)
    path = f"/dask/dashboard/{PROJECT_CLUSTER_ID}/individual-plots.json?123"
    request = urllib.request.Request(workspace.url + path, headers={"Authorization": f"token {workspace.token}"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(request, timeout=60)
    assert answer.value.code == 302
    assert answer.value.headers["Location"].endswith("/dask/individual-plots.json?123")
    assert workspace.request("GET", path, token=False).status in (302, 403)  # the login page or a refusal
    assert workspace.request("GET", f"/dask/dashboard/{CLUSTER_ID}/individual-plots.json").status == 403
    for method in ("POST", "PUT", "DELETE"):
        assert workspace.request(method, path).status == 403


def test_the_panels_poll_for_panes_gets_no_content_while_no_dashboard_runs(workspace):
    """The panel polls dask/individual-plots.json: with no dashboard on the workspace's port, 204 (no failed load in
    the browser, no proxy error in the log); with one, only a JSON object of names and routes passes."""
    assert workspace.request("GET", "/dask/individual-plots.json").status == 204
    assert workspace.request("GET", "/dask/individual-plots.json", token=False).status in (302, 403)


def test_a_local_project_lists_no_cluster_and_the_panel_starts_none(workspace):
    assert workspace.request("GET", "/dask/clusters").json() == []
    assert workspace.request("GET", "/dask/clusters/").json() == []
    started = workspace.request("PUT", "/dask/clusters")
    assert started.status == 403
    assert "open_project().client()" in started.json()["message"]
    for method, body in (("GET", None), ("PATCH", {"workers": 2}), ("DELETE", None)):
        answer = workspace.request(method, f"/dask/clusters/{CLUSTER_ID}", body)
        assert answer.status == 404, (method, answer.status, answer.body[:200])
    assert workspace.request("GET", "/dask/clusters", token=False).status == 403  # a login is needed


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/dask/clusters"),
        ("DELETE", "/dask/clusters"),
        ("PATCH", "/dask/clusters"),
        ("PUT", f"/dask/clusters/{CLUSTER_ID}"),
        ("POST", f"/dask/clusters/{CLUSTER_ID}"),
        ("PUT", "/dask/status"),  # the dashboard's route is GET only
    ],
)
def test_methods_the_table_does_not_allow_are_refused(workspace, method, path):
    for token in (False, True):
        answer = workspace.request(method, path, {}, token=token)
        assert answer.status == 403, (method, path, token, answer.status, answer.body[:200])
        assert answer.json()["message"] == NOT_AVAILABLE


def test_a_plain_client_of_the_panels_slurm_address_says_how_to_connect(workspace):
    code = (
        "from distributed import Client\n"
        "try:\n    Client('enclave://project-cluster', timeout=30)\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([str(workspace.env / "bin" / "python"), "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    assert done.stdout.startswith("WorkbenchError") and "open_project().client()" in done.stdout, done.stdout


def test_a_server_with_dask_labextensions_server_extension_on_does_not_start(workspace):
    """An administrator's config higher in the config path than the environment's turns it on: the server stops."""
    extra = Path(tempfile.mkdtemp(prefix="enclave-dask-config-"))
    try:
        os.chmod(extra, 0o755)
        config = extra / "jupyter_server_config.json"
        config.write_text(json.dumps({"ServerApp": {"jpserver_extensions": {"dask_labextension": True}}}))
        os.chmod(config, 0o644)
        environ = {**workspace.environ, "JUPYTER_CONFIG_PATH": f"{extra}:{workspace.env / 'etc' / 'jupyter'}"}
        result = subprocess.run(workspace.server_command(free_port()), env=environ, cwd=workspace.home,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        shutil.rmtree(extra, ignore_errors=True)
    assert result.returncode != 0
    assert "dask-labextension's server extension is on" in result.stdout + result.stderr
