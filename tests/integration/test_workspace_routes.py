"""The workspace server's HTTP surface is deny by default, checked on a real server from the workspace environment
(tests/workspace_server.py): once started, the server takes the inventory of every route it registers (tornado's
rules through nested routers: jupyter_server's, JupyterLab's, the terminals', jupyter-lsp's, jupyter-server-proxy's)
and every one is in the route table (images/enclave_workspace/routes.py); routes the table refuses answer 403 before
any login; the contents API reads text, notebooks and images to the browser and nothing else; kernelspecs come from
the environment and only their logos are served."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from tests.workspace_server import PNG, running_workspace

pytestmark = pytest.mark.integration

NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
INVENTORY = re.compile(r"enclave_workspace route inventory: (\{.*\})")


@pytest.fixture(scope="module")
def workspace(workspace_env: Path):
    # Under a base URL as the hub gives it: some routes are registered with it escaped (`cardio\-risk`).
    with running_workspace(workspace_env, base_url="/user/alice/cardio-risk/") as ws:
        yield ws


def test_every_route_the_running_server_registers_is_allowed_or_refused(workspace):
    found = INVENTORY.findall(workspace.log.read_text())
    assert found, "the server logged no route inventory (is the enclave_workspace extension started?)"
    assert json.loads(found[-1]) == {"unclassified": []}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/spec.yaml"),
        ("PATCH", "/api/config/notebook"),
        ("POST", "/api/shutdown"),
        ("GET", "/metrics"),
        ("GET", "/login"),
        ("POST", "/lab/api/build"),
        ("GET", "/lsp/ws/pylsp"),
        ("GET", "/kernelspecs/python3/kernel.json"),
        ("DELETE", "/api/kernelspecs"),  # an allowed route, a method it does not allow
        ("OPTIONS", "/api/contents"),
        ("GET", "/no/such/route"),
    ],
)
def test_routes_outside_the_table_are_refused_before_login(workspace, method, path):
    for token in (False, True):
        answer = workspace.request(method, path, token=token)
        assert answer.status == 403, (method, path, token, answer.status, answer.body[:200])
        assert answer.json()["message"] == "This route is not available in a workspace."


def test_what_jupyterlab_needs_still_answers(workspace):
    for path in ("/api/status", "/api/me", "/api/kernelspecs", "/api/sessions", "/api/kernels", "/api/terminals",
                 "/lab/api/settings", "/lab/api/workspaces", "/lab/api/translations", "/server-proxy/servers-info",
                 "/lab", "/api/contents"):  # fmt: skip
        answer = workspace.request("GET", path)
        assert answer.status == 200, (path, answer.status, answer.body[:200])
    # JupyterLab asks which export formats there are (none: exporting is refused) and whether printed paths are files
    assert workspace.request("GET", "/api/nbconvert").json() == {}
    assert workspace.request("GET", "/api/resolvePath?path=nowhere.txt").status in (200, 404)
    assert workspace.request("GET", "/nbconvert/html/x.ipynb").status == 403


def _get(workspace, name: str, query: str = "content=1"):
    return workspace.request("GET", f"/api/contents/{name}?{query}")


def test_contents_api_serves_text_notebooks_and_images(workspace):
    (workspace.home / "notes.md").write_text("# Results\nnaïve ✓\n")
    (workspace.home / "figure.png").write_bytes(PNG)
    (workspace.home / "analysis.ipynb").write_text(json.dumps(NOTEBOOK))
    text = _get(workspace, "notes.md")
    assert text.status == 200 and text.json()["content"] == "# Results\nnaïve ✓\n"
    assert text.json()["format"] == "text"
    image = _get(workspace, "figure.png", "content=1&type=file&format=base64")
    assert image.status == 200 and base64.b64decode(image.json()["content"]) == PNG
    notebook = _get(workspace, "analysis.ipynb", "content=1&type=notebook")
    assert notebook.status == 200 and notebook.json()["content"]["nbformat"] == 4
    listing = _get(workspace, "")
    assert listing.status == 200
    assert {"notes.md", "figure.png", "analysis.ipynb"} <= {entry["name"] for entry in listing.json()["content"]}


def test_contents_api_never_serves_a_data_file(workspace):
    data = b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x04\x15\x00\x12\x00\x00\x08\x1c" + bytes(64) + b"PAR1"
    for name in ("copy.parquet", "copy.csv", "copy.png", "copy.ipynb"):
        (workspace.home / name).write_bytes(data)
        for query in ("content=1&format=base64", "content=1&format=text", "content=1", "content=1&type=file"):
            answer = _get(workspace, name, query)
            assert answer.status in (400, 403), (name, query, answer.status)
            assert b"PAR1" not in answer.body
        assert _get(workspace, name, "content=0").status == 200  # it is listed, just not sent


def test_contents_api_caps_what_it_sends(workspace):
    big = workspace.home / "big.txt"
    big.write_bytes(b"x" * (10 * 1024 * 1024 + 1))
    answer = _get(workspace, "big.txt")
    assert answer.status == 413
    assert "10 MiB" in answer.json()["message"] and "airlock" in answer.json()["message"]


def test_kernelspecs_come_from_the_environment_and_only_logos_are_served(workspace):
    planted = workspace.home / ".local" / "share" / "jupyter" / "kernels" / "x"
    planted.mkdir(parents=True, exist_ok=True)
    (planted / "kernel.json").write_text(json.dumps({"argv": ["python3"], "display_name": "x", "language": "python"}))
    (planted / "patients.parquet").write_bytes(b"PAR1" + bytes(32))
    specs = workspace.request("GET", "/api/kernelspecs").json()["kernelspecs"]
    assert set(specs) == {"python3"}
    assert workspace.request("GET", "/kernelspecs/x/patients.parquet").status in (403, 404)
    assert workspace.request("GET", "/kernelspecs/python3/kernel.json").status == 403
    logos = [url for url in specs["python3"]["resources"].values() if "logo" in url]
    assert logos
    for url in logos:
        path = url.split("/kernelspecs/", 1)[1]
        answer = workspace.request("GET", f"/kernelspecs/{path}")
        assert answer.status == 200, (url, answer.status)
        assert answer.headers["Content-Type"].startswith("image/")
