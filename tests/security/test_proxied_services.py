"""Red team against the workspace's proxied services, through the real hub, proxy and workspace:

- finding 2 of issue 10: the `dask` route proxied whatever listened on the dashboard's port, so a kernel's
  `python -m http.server 8787 --directory /project/data` handed out the raw view; now such a server gets nothing but
  text past the route (no Parquet, DICOM or VCF, whatever the request asks for), and a text file only within the cap;
- finding 3: MLflow served any file the workspace could read: an experiment whose artifact location is
  /project/data (or a run's location rewritten in mlflow.db), or any file logged as an artifact, downloaded raw
  through `get-artifact`; now artifacts outside the project's store are refused whatever they hold, binary artifacts
  are refused wherever they are, and the UI still shows text artifacts.

Every refusal is an immediate 403, not a time-out.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.workspace_hub import DEMO, needs_enclave

pytestmark = [pytest.mark.security, needs_enclave]

SQUAT = """
import json, os, subprocess, sys, time, urllib.request
server = subprocess.Popen([sys.executable, "-m", "http.server", "8787", "--bind", "127.0.0.1",
                           "--directory", "/project/data"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(100):
    try:
        urllib.request.urlopen("http://127.0.0.1:8787/", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
files = []
for root, _dirs, names in os.walk("/project/data"):
    files += [os.path.relpath(os.path.join(root, n), "/project/data") for n in names]
print(json.dumps({"pid": server.pid, "files": sorted(files)}))
"""


@pytest.fixture(scope="module")
def alice_in_demo(running_enclave):
    alice = running_enclave.person("alice")
    alice.spawn(DEMO)
    yield alice
    alice.stop(DEMO)


def test_a_server_squatting_the_dashboard_port_hands_out_no_data_file(alice_in_demo):
    alice = alice_in_demo
    with alice.kernel(DEMO) as run:
        squat = json.loads(run(SQUAT, 60))
        try:
            binaries = [f for f in squat["files"] if f.endswith((".parquet", ".dcm", ".vcf.gz", ".bam"))]
            assert {f.rsplit(".", 1)[-1] for f in binaries} >= {"parquet", "dcm", "gz"}, squat["files"][:20]
            dicom = next(f for f in binaries if f.endswith(".dcm"))
            for relative in (binaries[0], dicom):
                for headers in ({}, {"Accept": "text/event-stream"}, {"Accept-Encoding": "gzip"}):
                    got = alice.http.get(f"{alice.server(DEMO)}/dask/{relative}", headers=headers, timeout=60)
                    assert got.status_code == 403, (relative, headers, got.status_code)
                    assert b"PAR1" not in got.content and b"DICM" not in got.content
                    assert "airlock" in got.json()["message"]
            # text is what a person reads on screen: it passes, within the cap
            listing = alice.http.get(f"{alice.server(DEMO)}/dask/", timeout=60)
            assert listing.status_code == 200 and "clinical" in listing.text
        finally:
            run(f"import os, signal\nos.kill({squat['pid']}, signal.SIGTERM)", 30)


MLFLOW_ATTACK = """
import json, shutil
import mlflow
from workbench.tracking import experiment
experiment("red-team")
with mlflow.start_run() as run:
    mlflow.log_artifact("/project/data/clinical/patients.parquet")
    mlflow.log_text("aggregate only", "note.txt")
with mlflow.start_run() as rewritten:
    pass
import sqlite3  # the kernel rewrites the run's artifact location in the store's database directly
db = sqlite3.connect("/project/mlflow/mlflow.db")
db.execute("UPDATE runs SET artifact_uri = '/project/data' WHERE run_uuid = ?", (rewritten.info.run_id,))
db.commit()
print(json.dumps({"run": run.info.run_id, "rewritten": rewritten.info.run_id}))
"""


def test_mlflow_hands_out_no_data_file_whatever_the_artifact_location(alice_in_demo):
    alice = alice_in_demo
    mlflow = f"{alice.server(DEMO)}/mlflow"
    assert alice.http.get(f"{mlflow}/", timeout=180).status_code == 200  # started on first visit
    printed = alice.execute(DEMO, MLFLOW_ATTACK, timeout=180)
    runs = json.loads(printed.strip().splitlines()[-1])
    logged = runs["run"]
    api = f"{mlflow}/ajax-api/2.0/mlflow"
    headers = {**alice.server_xsrf(DEMO), "Content-Type": "application/json"}
    # an experiment and a run whose artifacts are the project's raw view, through the UI's own API
    made = alice.http.post(
        f"{api}/experiments/create",
        data=json.dumps({"name": "raw-view", "artifact_location": "/project/data"}),
        headers=headers,
        timeout=60,
    )
    attempts = [(logged, "patients.parquet")]
    if made.status_code == 200:
        experiment_id = made.json()["experiment_id"]
        run = alice.http.post(
            f"{api}/runs/create", data=json.dumps({"experiment_id": experiment_id}), headers=headers, timeout=60
        )
        assert run.status_code == 200, run.text[:300]
        attempts.append((run.json()["run"]["info"]["run_id"], "clinical/patients.parquet"))
    for run_id, path in attempts:
        for route in ("get-artifact", "ajax-api/2.0/mlflow/get-artifact"):
            got = alice.http.get(f"{mlflow}/{route}", params={"path": path, "run_uuid": run_id}, timeout=60)
            assert got.status_code in (403, 404), (route, path, got.status_code)
            assert b"PAR1" not in got.content
    # a text file of the view through a run whose location was rewritten in the database: refused by location
    for path in ("MANIFEST.json", "../data/MANIFEST.json"):
        got = alice.http.get(f"{mlflow}/get-artifact", params={"path": path, "run_uuid": runs["rewritten"]}, timeout=60)
        assert got.status_code == 403 and "not in the project's MLflow store" in got.json()["message"], path
    climbing = {"path": "../../../../project/data/MANIFEST.json", "run_uuid": logged}
    assert alice.http.get(f"{mlflow}/get-artifact", params=climbing, timeout=60).status_code in (400, 403, 404)
    # what a person reads in the UI still shows
    note = alice.http.get(f"{mlflow}/get-artifact", params={"path": "note.txt", "run_uuid": logged}, timeout=60)
    assert note.status_code == 200 and note.text == "aggregate only"


POSE = r"""
import errno, json, os, signal, socket, subprocess, sys
out = {}
def attempt(name, action):
    try:
        action()
        out[name] = "ok"
    except OSError as exc:
        out[name] = errno.errorcode[exc.errno]
def bind_socket():
    s = socket.socket(socket.AF_UNIX)
    s.bind("/run/enclave/mlflow-fake.sock")
attempt("bind in /run/enclave", bind_socket)
attempt("file in /run/enclave", lambda: open("/run/enclave/planted", "w").close())
attempt("remove the server's socket", lambda: os.unlink("/run/enclave/jupyter.sock"))
attempt("rename mlflow's socket", lambda: os.rename("/run/enclave/mlflow.sock", "/run/enclave/old.sock"))
mlflow = [int(p) for p in os.listdir("/proc") if p.isdigit() and b"mlflow" in open(f"/proc/{p}/cmdline", "rb").read()
          and b"server" in open(f"/proc/{p}/cmdline", "rb").read()]
out["mlflow running"] = bool(mlflow)
attempt("signal mlflow", lambda: os.kill(mlflow[0], signal.SIGTERM))
attempt("signal the server", lambda: os.kill(os.getppid(), signal.SIGTERM))
child = subprocess.run([sys.executable, "-c", "open('/run/enclave/child', 'w')"], capture_output=True, text=True)
out["a child process"] = "EACCES" if "Permission denied" in child.stderr else child.stderr[-200:]
attempt("write in home", lambda: open(os.path.expanduser("~/still-fine.txt"), "w").close())
attempt("write in outputs", lambda: open("/project/outputs/still-fine.txt", "w").close())
print(json.dumps(out))
"""


def test_a_kernel_cannot_pose_as_the_workspaces_services(alice_in_demo):
    """MLflow listens on a socket in the runtime folder, where kernels (and what they start) can create nothing, and
    kernels cannot signal the server or MLflow: no kernel can stand in for the MLflow UI."""
    alice = alice_in_demo
    assert alice.http.get(f"{alice.server(DEMO)}/mlflow/", timeout=180).status_code == 200  # MLflow started
    seen = json.loads(alice.execute(DEMO, POSE).strip().splitlines()[-1])
    assert seen["mlflow running"]
    for attempt in ("bind in /run/enclave", "file in /run/enclave", "remove the server's socket",
                    "rename mlflow's socket", "a child process"):  # fmt: skip
        assert seen[attempt] == "EACCES", (attempt, seen[attempt])
    assert seen["signal mlflow"] == seen["signal the server"] == "EPERM"
    assert seen["write in home"] == seen["write in outputs"] == "ok"
    assert alice.http.get(f"{alice.server(DEMO)}/mlflow/", timeout=60).status_code == 200  # still the server's own


def test_a_terminal_is_confined_as_a_kernel_is(alice_in_demo):
    alice = alice_in_demo
    alice.open_workspace(DEMO)
    made = alice.workspace("POST", DEMO, "/api/terminals")
    assert made.status_code == 200, made.text
    name = made.json()["name"]
    try:
        typed = "touch /run/enclave/from-terminal; echo rc=$?; touch ~/t; echo ok=$?"
        output = asyncio.run(terminal(alice, name, typed))
    finally:
        alice.workspace("DELETE", DEMO, f"/api/terminals/{name}")
    assert "rc=1" in output and "Permission denied" in output and "ok=0" in output, output[-500:]


async def terminal(person, name: str, line: str, timeout: float = 60) -> str:
    """Type `line` into a workspace terminal over its websocket, as JupyterLab does; what it printed."""
    url = person.server(DEMO).replace("http://", "ws://") + f"/terminals/websocket/{name}"
    cookies = person.cookie_header(url.replace("ws://", "http://", 1))
    ws = await websocket_connect(HTTPRequest(url, headers={"Cookie": cookies, **person.server_xsrf(DEMO)}))
    ws.write_message(json.dumps(["stdin", line + "\r"]))
    seen = ""
    deadline = time.monotonic() + timeout
    try:
        while not re.search(r"ok=\d", seen):  # the typed line is echoed first, with `ok=$?`
            raw = await asyncio.wait_for(ws.read_message(), timeout=max(1, deadline - time.monotonic()))
            assert raw is not None, "the terminal's websocket closed"
            kind, *content = json.loads(raw)
            if kind == "stdout":
                seen += content[0]
    finally:
        ws.close()
    return seen
