"""Red team: getting the project's data out of a workspace through the browser, against a real hub, a real sandboxed
workspace and the real proxy (tests/workspace_hub.py), with alice's own session, as her browser would. Issue 10:

- finding 4: files planted in ~/.local/share/jupyter/kernels/<name>/ were served raw by /kernelspecs/<name>/<file>;
  now kernelspecs come from the environment only and of their folders only logos, sniffed as images, are served;
- finding 5: the contents API served any file of the home as base64: copy the view into the home and download it;
  now it reads text, notebooks and images (sniffed, never by name) up to their caps, and refuses the rest;
- and any route outside the workspace's table is refused before login.

Every attempt is refused at once (403/404/413), never by a time-out."""

from __future__ import annotations

import base64
import json
import re

import pytest

from tests.workspace_hub import DEMO, needs_enclave
from tests.workspace_server import PNG

pytestmark = [pytest.mark.security, needs_enclave]

NOTEBOOK = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# Risk"}], "metadata": {}, "nbformat": 4,
            "nbformat_minor": 5}  # fmt: skip

PLANT = """
import base64, glob, json, os, shutil
home = os.path.expanduser("~")
source = sorted(glob.glob("/project/data/clinical/*.parquet"))[0]
for name in ("copy.parquet", "copy.csv", "copy.png", "copy.ipynb"):
    shutil.copyfile(source, os.path.join(home, name))
with open(os.path.join(home, "figure.png"), "wb") as f:
    f.write(base64.b64decode(PNG))
with open(os.path.join(home, "notes.md"), "w") as f:
    f.write("# Findings\\nrisk rises with age\\n")
with open(os.path.join(home, "analysis.ipynb"), "w") as f:
    f.write(NOTEBOOK)
for kernel in ("x", "python3"):  # a kernel of her own, and one shadowing the environment's
    folder = os.path.join(home, ".local", "share", "jupyter", "kernels", kernel)
    os.makedirs(folder, exist_ok=True)
    shutil.copyfile(source, os.path.join(folder, "patients.parquet"))
    shutil.copyfile(source, os.path.join(folder, "logo-64x64.png"))
    with open(os.path.join(folder, "kernel.json"), "w") as f:
        json.dump({"argv": ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                   "display_name": kernel, "language": "python"}, f)
print(json.dumps({"size": os.path.getsize(source), "magic": open(source, "rb").read(4).decode()}))
"""


@pytest.fixture(scope="module")
def alice_in_demo(running_enclave):
    alice = running_enclave.person("alice")
    alice.spawn(DEMO)
    alice.open_workspace(DEMO)
    code = f"PNG = {base64.b64encode(PNG).decode()!r}\nNOTEBOOK = {json.dumps(NOTEBOOK)!r}\n" + PLANT
    planted = json.loads(alice.execute(DEMO, code))
    assert planted["magic"] == "PAR1" and planted["size"] > 0  # the view's real data, now in her home
    yield alice
    alice.stop(DEMO)


def _refused(response, *statuses: int) -> None:
    assert response.status_code in statuses, (response.request.url, response.status_code, response.text[:200])
    assert b"PAR1" not in response.content


def test_finding_4_kernelspec_folders_are_not_served(alice_in_demo):
    alice = alice_in_demo
    for path in ("x/patients.parquet", "x/kernel.json", "x/logo-64x64.png", "python3/patients.parquet",
                 "python3/kernel.json"):  # fmt: skip
        _refused(alice.workspace("GET", DEMO, f"/kernelspecs/{path}"), 403, 404)
    specs = alice.workspace("GET", DEMO, "/api/kernelspecs").json()["kernelspecs"]
    assert set(specs) == {"python3"}  # hers are not offered
    logo = alice.workspace("GET", DEMO, "/kernelspecs/python3/logo-64x64.png")  # the environment's logo still is
    assert logo.status_code == 200 and logo.content.startswith(b"\x89PNG")


@pytest.mark.parametrize("name", ["copy.parquet", "copy.csv", "copy.png", "copy.ipynb"])
@pytest.mark.parametrize("query", ["content=1&format=base64", "content=1&format=text", "content=1",
                                   "content=1&type=file&format=base64"])  # fmt: skip
def test_finding_5_the_contents_api_does_not_send_data_files(alice_in_demo, name, query):
    response = alice_in_demo.workspace("GET", DEMO, f"/api/contents/{name}?{query}")
    _refused(response, 400, 403)
    if response.status_code == 403:
        assert "airlock" in response.json()["message"]


def test_text_images_and_notebooks_still_open(alice_in_demo):
    alice = alice_in_demo
    notes = alice.workspace("GET", DEMO, "/api/contents/notes.md?content=1&type=file&format=text")
    assert notes.status_code == 200 and notes.json()["content"].startswith("# Findings")
    figure = alice.workspace("GET", DEMO, "/api/contents/figure.png?content=1&type=file&format=base64")
    assert figure.status_code == 200 and base64.b64decode(figure.json()["content"]) == PNG
    notebook = alice.workspace("GET", DEMO, "/api/contents/analysis.ipynb?content=1&type=notebook")
    assert notebook.status_code == 200 and notebook.json()["content"]["cells"][0]["source"] == "# Risk"
    listing = alice.workspace("GET", DEMO, "/api/contents/?content=1").json()
    assert {"copy.parquet", "figure.png", "notes.md"} <= {entry["name"] for entry in listing["content"]}


def test_routes_outside_the_table_are_refused_before_login(running_enclave, alice_in_demo):
    import requests

    server = alice_in_demo.server(DEMO)
    for path in ("/api/spec.yaml", "/api/shutdown", "/nbconvert/html/x.ipynb", "/metrics", "/kernelspecs/x/kernel.json",
                 "/lsp/ws/pylsp", "/no/such/route"):  # fmt: skip
        anonymous = requests.get(f"{server}{path}", timeout=30, allow_redirects=False)
        assert anonymous.status_code == 403, (path, anonymous.status_code)
        hers = alice_in_demo.workspace("GET", DEMO, path, allow_redirects=False)
        assert hers.status_code == 403, (path, hers.status_code)


def test_the_hub_run_server_has_no_route_outside_the_table(running_enclave, alice_in_demo):
    """jupyterhub-singleuser adds routes of its own (OAuth callback, logout): the inventory the server took when it
    started, in its log, names no route outside the table."""
    from hub import sandbox

    workspace = sandbox.workspace_id(running_enclave.paths, DEMO, "alice")
    log = (running_enclave.paths.hub / "workspace-logs" / f"{workspace}.log").read_text()
    found = re.findall(r"enclave_workspace route inventory: (\{.*\})", log)
    assert found, "the workspace's server logged no route inventory"
    assert json.loads(found[-1]) == {"unclassified": []}
