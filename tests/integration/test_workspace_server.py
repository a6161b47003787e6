"""The hardened workspace server (images/) checked from outside, over HTTP, as a browser or a script in the workspace
would try it: a real Jupyter server from the workspace environment, run as an unprivileged account with only the
environment's Jupyter config and a home full of user config that tries to undo the hardening (tests/
workspace_server.py). Also the route ordering, proxy configuration and upload text rule, in the environment's
Python."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.workspace_server import DOWNLOAD_PLUGIN, PNG, Answer, free_port, running_workspace, start_server, stop_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def workspace(workspace_env: Path):
    with running_workspace(workspace_env) as ws:
        yield ws


def _refused(answer: Answer, word: str) -> None:
    assert answer.status == 403, (answer.status, answer.body[:300])
    assert word in answer.json()["message"]  # our message: enclave_workspace answered, not jupyter_server


def test_files_route_is_refused_before_jupyter_servers_own(workspace):
    (workspace.home / "notes.txt").write_text("hello")
    _refused(workspace.request("GET", "/files/notes.txt"), "airlock")
    _refused(workspace.request("GET", "/files/notes.txt?download=1"), "airlock")
    _refused(workspace.request("GET", "/view/notes.txt"), "airlock")
    _refused(workspace.request("GET", "/files/notes.txt", token=False), "airlock")  # refused before any login
    # The file is there and readable through the contents API: only the download route is gone.
    assert workspace.request("GET", "/api/contents/notes.txt").status == 200


def test_every_nbconvert_route_is_refused(workspace):
    notebook = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    assert workspace.request("PUT", "/api/contents/nb.ipynb", {"type": "notebook", "content": notebook}).status in (
        200,
        201,
    )
    for path in (
        "/nbconvert/html/nb.ipynb?download=true",
        "/nbconvert/html/nb.ipynb",
        "/nbconvert/script/nb.ipynb?download=true",
        "/nbconvert/pdf/nb.ipynb",
    ):
        _refused(workspace.request("GET", path), "airlock")
    _refused(workspace.request("POST", "/nbconvert/html", {"content": notebook}), "airlock")


def test_binary_upload_is_refused_and_nothing_is_written(workspace):
    answer = workspace.upload("image.png", PNG)
    assert answer.status == 415
    assert "Binary files cannot be uploaded" in answer.json()["message"]
    assert not (workspace.home / "image.png").exists()
    assert workspace.upload("nul.txt", b"text with a \x00 byte").status == 415
    assert not (workspace.home / "nul.txt").exists()


def test_text_sent_as_base64_and_notebooks_save(workspace):
    text = "patient-level data stays inside: naïve → ok\n".encode()
    assert workspace.upload("upload.txt", text).status == 201
    assert (workspace.home / "upload.txt").read_bytes() == text
    notebook = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()
    assert workspace.upload("uploaded.ipynb", notebook).status == 201


def test_chunked_uploads_are_checked_as_one_file(workspace):
    text = ("é" * 999 + "\n").encode()
    first, rest = text[:101], text[101:]  # the cut falls inside a two-byte character
    assert workspace.upload("chunked.txt", first, chunk=1).status in (200, 201)
    assert workspace.upload("chunked.txt", rest, chunk=-1).status in (200, 201)
    assert (workspace.home / "chunked.txt").read_bytes() == text

    assert workspace.upload("smuggled.txt", b"harmless start\n", chunk=1).status in (200, 201)
    answer = workspace.upload("smuggled.txt", PNG, chunk=2)
    assert answer.status == 415
    assert not (workspace.home / "smuggled.txt").exists()  # the partial upload is gone too


def test_terminals_are_on(workspace):
    answer = workspace.request("POST", "/api/terminals")
    assert answer.status == 200
    name = answer.json()["name"]
    assert workspace.request("DELETE", f"/api/terminals/{name}").status == 204


def test_generic_proxy_routes_are_refused(workspace):
    port = workspace.url.rsplit(":", 1)[1]
    for path in (
        f"/proxy/{port}/api/status",
        f"/proxy/127.0.0.1:{port}/api/status",
        f"/proxy/localhost:{port}/api/status",
        f"/proxy/absolute/{port}/api/status",
        f"/proxy/absolute/127.0.0.1:{port}/api/status",
    ):
        _refused(workspace.request("GET", path), "/dask/")


def test_only_dask_and_mlflow_are_proxied(workspace):
    servers = workspace.request("GET", "/server-proxy/servers-info").json()["server_processes"]
    assert {s["name"] for s in servers} == {"dask", "mlflow"}  # the user's "evil" server is not there


def test_dask_route_reaches_the_dashboard(workspace):
    script = (
        "import sys, time\n"
        "from distributed import LocalCluster\n"
        "cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=sys.argv[1])\n"
        "print('ready', flush=True)\n"
        "time.sleep(300)\n"
    )
    dashboard = subprocess.Popen(
        [*workspace.run_as, str(workspace.env / "bin" / "python"), "-c", script, workspace.dask_address],
        env=workspace.environ,
        cwd=workspace.home,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert dashboard.stdout.readline().strip() == "ready"
        answer = workspace.request("GET", "/dask/status")
        assert answer.status == 200, answer.body[:300]
        assert b"Dask" in answer.body
    finally:
        os.killpg(dashboard.pid, signal.SIGKILL)
        dashboard.wait(timeout=10)


def test_mlflow_route_starts_mlflow_and_keeps_its_origin_check(workspace):
    page = workspace.request("GET", "/mlflow/")  # starts MLflow on first visit (tens of seconds)
    assert page.status == 200, page.body[:300]
    assert b"<title>MLflow</title>" in page.body
    search = "/mlflow/ajax-api/2.0/mlflow/experiments/search"
    same_origin = workspace.request("POST", search, {"max_results": 5}, headers={"Origin": workspace.url})
    assert same_origin.status == 200, same_origin.body[:300]
    assert [e["name"] for e in same_origin.json()["experiments"]] == ["Default"]
    elsewhere = workspace.request("POST", search, {"max_results": 5}, headers={"Origin": "https://elsewhere.example"})
    # MLflow refuses with 403 before reading the body and closes its Unix socket; the proxy, still sending the
    # body, may then see a broken pipe and answer 500. Refused either way, never served.
    assert elsewhere.status in (403, 500)
    assert b"experiments" not in elsewhere.body


def test_user_jupyter_config_is_ignored(workspace):
    assert (workspace.home / ".jupyter" / "jupyter_server_config.py").is_file()  # planted by the fixture
    config = workspace.page_config()
    assert DOWNLOAD_PLUGIN in config["disabledExtensions"]
    assert DOWNLOAD_PLUGIN in config["lockedExtensions"]
    assert config["extensionManager"]["name"] == "read-only"
    assert workspace.upload("still-refused.png", PNG).status == 415  # still the workspace's contents manager


def test_lab_extension_and_plugin_managers_refuse_changes(workspace):
    page_config = workspace.env / "etc" / "jupyter" / "labconfig" / "page_config.json"
    before = page_config.read_bytes()
    install = workspace.request("POST", "/lab/api/extensions", {"cmd": "install", "extension_name": "jupyterlab-git"})
    assert install.status == 422
    for cmd in ("enable", "disable"):
        answer = workspace.request(
            "POST", "/lab/api/extensions", {"cmd": cmd, "extension_name": "@jupyterlab/filebrowser-extension"}
        )
        assert answer.status == 500 and "locked" in answer.json()["message"]
    plugin = workspace.request("POST", "/lab/api/plugins", {"cmd": "enable", "plugin_name": DOWNLOAD_PLUGIN})
    assert plugin.status == 500 and "locked" in plugin.json()["message"]
    assert page_config.read_bytes() == before
    assert DOWNLOAD_PLUGIN in workspace.page_config()["disabledExtensions"]


def test_airlock_menu_comes_from_the_environment_settings(workspace):
    settings = workspace.request("GET", "/lab/api/settings/@jupyterlab/mainmenu-extension:plugin").json()
    menus = settings["schema"]["properties"]["menus"]["default"]
    (airlock,) = [m for m in menus if m["id"] == "jp-mainmenu-airlock"]
    assert airlock["label"] == "Airlock"
    assert airlock["items"][0]["command"] == "help:open"
    assert airlock["items"][0]["args"]["url"] == "/services/airlock/new"


def test_a_workspace_restarts_in_a_used_home(workspace):
    """With ~/.ipython present, jupyter_core would migrate IPython 3 config into the (read-only) config folder and
    crash the server; the environment's `migrated` marker stops it."""
    (workspace.home / ".ipython").mkdir(exist_ok=True)
    again, proc = start_server(workspace, free_port(), workspace.home.parent / "again.log")
    try:
        assert again.request("GET", "/api/status").status == 200
    finally:
        stop_server(proc)


def test_a_server_whose_config_is_not_hardened_does_not_start(workspace):
    """An administrator's config that swaps the contents manager back (higher in the config path than the
    environment's) leaves the extension enabled: it must stop the server rather than serve it unhardened."""
    extra = Path(tempfile.mkdtemp(prefix="enclave-bad-config-"))
    try:
        os.chmod(extra, 0o755)
        config = extra / "jupyter_server_config.json"
        plain = "jupyter_server.services.contents.largefilemanager.AsyncLargeFileManager"
        config.write_text(json.dumps({"ServerApp": {"contents_manager_class": plain}}))
        os.chmod(config, 0o644)
        environ = {**workspace.environ, "JUPYTER_CONFIG_PATH": f"{extra}:{workspace.env / 'etc' / 'jupyter'}"}
        result = subprocess.run(
            workspace.server_command(free_port()),
            env=environ,
            cwd=workspace.home,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(extra, ignore_errors=True)
    assert result.returncode != 0
    assert "workspace configuration is not hardened: the contents manager" in result.stdout + result.stderr


def _in_workspace_python(env: Path, script: str) -> dict:
    """Run `script` with the environment's Python in isolated mode (its own packages only); it prints JSON."""
    result = subprocess.run(
        [str(env / "bin" / "python"), "-I", "-c", script], capture_output=True, text=True, cwd="/", timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_refusals_go_in_front_of_rules_added_before_and_after(workspace_env):
    """Whatever order extensions load in, the refusals win over any handler for the same paths."""
    script = """
import json
from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.web import Application, RequestHandler
from enclave_workspace.routes import add_in_front, refused_rules

class Server(RequestHandler): pass
class Earlier(RequestHandler): pass
class Later(RequestHandler): pass

app = Application([(r"/files/(.*)", Server), (r"/nbconvert/(.*)", Server)])
app.add_handlers(".*$", [(r"/proxy/(.*)", Earlier), (r"/view/(.*)", Earlier)])
add_in_front(app, refused_rules("/user/a/p/"))
app.add_handlers(".*$", [(r"/user/a/p/files/(.*)", Later), (r"/user/a/p/lab", Later)])

def winner(path):
    request = HTTPServerRequest(method="GET", uri=path, headers=HTTPHeaders({"Host": "127.0.0.1"}))
    return app.find_handler(request).handler_class.__name__

paths = ["files/x", "proxy/8888/", "view/x", "nbconvert/html/x", "lab"]
print(json.dumps({"/user/a/p/" + path: winner("/user/a/p/" + path) for path in paths}))
"""
    winners = _in_workspace_python(workspace_env, script)
    assert winners == {
        "/user/a/p/files/x": "RefusedHandler",
        "/user/a/p/proxy/8888/": "RefusedHandler",
        "/user/a/p/view/x": "RefusedHandler",
        "/user/a/p/nbconvert/html/x": "RefusedHandler",
        "/user/a/p/lab": "Later",  # everything else routes as before
    }


def test_proxy_configuration_under_a_hub_prefix(workspace_env):
    script = """
import json, os
os.environ.update({
    "MLFLOW_TRACKING_URI": "sqlite:////project/mlflow/mlflow.db",
    "ENCLAVE_MLFLOW_ARTIFACTS": "/project/mlflow/artifacts{x}",
    "JUPYTERHUB_PUBLIC_URL": "https://enclave.example.org/user/alice/cardio-risk/",
})
from enclave_workspace.proxy import dask_dashboard_port, mlflow_command
command = mlflow_command(5000, "/user/alice/cardio-risk/", "/run/enclave/mlflow.sock")
refused = []
for address in ("10.0.0.5:8787", "0.0.0.0:8787", "127.0.0.1", "127.0.0.1:http"):
    try:
        dask_dashboard_port(address)
    except ValueError:
        refused.append(address)
print(json.dumps({"command": command, "port": dask_dashboard_port("127.0.0.1:8787"), "refused": refused}))
"""
    found = _in_workspace_python(workspace_env, script)
    command = found["command"]
    option = {name: command[i + 1] for i, name in enumerate(command) if name.startswith("--") and i + 1 < len(command)}
    assert command[1:4] == ["-m", "mlflow", "server"]
    assert option["--static-prefix"] == "/user/alice/cardio-risk/mlflow"
    assert option["--uvicorn-opts"] == "--uds /run/enclave/mlflow.sock"  # the server's own socket, not a port
    assert option["--backend-store-uri"] == "sqlite:////project/mlflow/mlflow.db"
    assert option["--default-artifact-root"] == "/project/mlflow/artifacts{{x}}"  # braces survive str.format
    assert option["--cors-allowed-origins"] == "https://enclave.example.org"
    assert "--no-serve-artifacts" in command and "--disable-security-middleware" not in command
    assert found["port"] == 8787
    assert found["refused"] == ["10.0.0.5:8787", "0.0.0.0:8787", "127.0.0.1", "127.0.0.1:http"]


def test_text_rule_for_uploads(workspace_env):
    script = """
import json
from enclave_workspace.contents import is_text, unfinished_utf8
e = "é".encode()
print(json.dumps({
    "ascii": is_text(b"plain"),
    "utf8": is_text("naïve ✓".encode()),
    "nul": is_text(b"a\\x00b"),
    "latin1": is_text("café".encode("latin-1")),
    "cut_final": is_text(e[:1]),
    "cut_not_final": is_text(e[:1], final=False),
    "carried": is_text(e[1:], carry=e[:1]),
    "pending": [unfinished_utf8(b"ab" + e[:1]).hex(), unfinished_utf8(b"ab" + e).hex(), unfinished_utf8(b"abc").hex(),
                unfinished_utf8("✓".encode()[:2]).hex()],
}))
"""
    found = _in_workspace_python(workspace_env, script)
    assert found == {
        "ascii": True,
        "utf8": True,
        "nul": False,
        "latin1": False,
        "cut_final": False,
        "cut_not_final": True,
        "carried": True,
        "pending": ["c3", "", "", "e29c"],
    }


def test_environment_is_world_readable(workspace_env):
    """Sandboxes run it as project accounts: every folder must be enterable and every file readable by others."""
    closed = []
    for folder, _dirs, files in os.walk(workspace_env):
        for name in [folder, *(os.path.join(folder, n) for n in files)]:
            mode = os.lstat(name).st_mode
            needed = 0o005 if os.path.isdir(name) else 0o004
            if not os.path.islink(name) and mode & needed != needed:
                closed.append(name)
    assert not closed, closed[:10]
