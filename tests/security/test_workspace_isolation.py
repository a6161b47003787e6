"""Red team from inside a real workspace and against the hub (tests/workspace_hub.py). Each attempt must fail at
once with a refusal, never by timing out:

- no way out: DNS, TCP and UDP towards a network namespace this test makes (the only addresses it ever aims at);
- no way across: another project's data, homes, sockets and MLflow store, the sites' raw data, the registry and the
  hub's state are not in the sandbox at all; the project's data is read-only; no capabilities, no new privileges;
- no bulk download: /files and nbconvert downloads refused server-side, binary uploads refused;
- no privilege: a researcher cannot mint a token, use the admin API or another's workspace; a checker cannot
  open a workspace.
"""

from __future__ import annotations

import json
import time

import pytest

from hub import sandbox
from hub.workspaces import WorkspaceError, prepare
from tests.netns import PROBE, SOCKET_TIMEOUT, target_network
from tests.workspace_hub import DEMO, SECOND_PROJECT, needs_enclave

pytestmark = [pytest.mark.security, needs_enclave]


@pytest.fixture(scope="module")
def alice_in_demo(running_enclave):
    alice = running_enclave.person("alice")
    alice.spawn(DEMO)
    yield alice
    alice.stop(DEMO)


def run_probe(person, target) -> dict:
    code = (
        "import sys\n"
        f"sys.argv = ['probe', {target.address!r}, '{target.tcp_port}', '{target.udp_port}', '{SOCKET_TIMEOUT}']\n"
        + PROBE
    )
    return json.loads(person.execute(DEMO, code))


def test_no_dns_tcp_or_udp_leaves_a_workspace(running_enclave, alice_in_demo):
    with target_network() as target:
        started = time.monotonic()
        seen = run_probe(alice_in_demo, target)
        print("errors seen inside the workspace:", seen, f"({time.monotonic() - started:.2f} s)")
        for kind in ("tcp", "udp", "dns"):
            assert not seen[kind]["ok"], f"{kind} reached the test network from a workspace"
            assert seen[kind]["error"] != "timeout", f"{kind} timed out instead of failing at once"
            assert seen[kind]["error"] == "ENETUNREACH"  # the sandbox's network namespace has no route at all
    lookup = alice_in_demo.execute(
        DEMO,
        "import socket\ntry:\n    socket.getaddrinfo('enclave-probe.invalid', 443)\n    print('resolved')\n"
        "except OSError as exc:\n    print(type(exc).__name__)",
    )
    assert lookup.strip() == "gaierror"  # no resolver in the sandbox (no resolv.conf), and nowhere to send one


def test_nothing_of_other_projects_the_sites_or_the_hub_is_reachable(running_enclave, alice_in_demo):
    paths = running_enclave.paths
    other = sandbox.workspace_id(paths, SECOND_PROJECT, "alice")
    forbidden = [
        paths.project_dir(SECOND_PROJECT),
        paths.project_data(SECOND_PROJECT),
        paths.project_home(SECOND_PROJECT, "alice"),
        paths.project_mlflow(SECOND_PROJECT) / "mlflow.db",
        paths.project_home(DEMO, "bob"),  # another member's home in the same project
        sandbox.SOCKET_ROOT / other / "jupyter.sock",
        paths.sites,
        paths.home / "registry.sqlite",
        paths.secrets,
        paths.hub,
        paths.airlock,
        "/root",
        "/var/lib/enclave",
    ]
    code = (
        "import errno, json, os\nout = {}\n"
        f"for path in {[str(p) for p in forbidden]!r}:\n"
        "    try:\n        os.stat(path)\n        out[path] = 'visible'\n"
        "    except OSError as exc:\n        out[path] = errno.errorcode[exc.errno]\n"
        "print(json.dumps(out))"
    )
    seen = json.loads(alice_in_demo.execute(DEMO, code))
    assert set(seen.values()) == {"ENOENT"}, seen


def test_the_sandbox_holds_no_privilege_and_the_data_is_read_only(alice_in_demo):
    code = """
import json, os
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
try:
    open("/project/data/MANIFEST.json", "a").close()
    write = "written"
except OSError as exc:
    write = type(exc).__name__ + str(exc.errno)
try:
    os.setuid(0)
    setuid = "root"
except OSError as exc:
    setuid = type(exc).__name__
print(json.dumps({"CapEff": status["CapEff"].strip(), "CapBnd": status["CapBnd"].strip(),
                  "NoNewPrivs": status["NoNewPrivs"].strip(), "write": write, "setuid": setuid}))
"""
    seen = json.loads(alice_in_demo.execute(DEMO, code))
    assert seen["CapEff"] == seen["CapBnd"] == "0000000000000000"
    assert seen["NoNewPrivs"] == "1"
    assert seen["write"] in ("OSError30", "PermissionError13")  # EROFS (read-only mount) or EACCES
    assert seen["setuid"] == "PermissionError"


def test_files_and_nbconvert_downloads_are_refused_server_side(alice_in_demo):
    alice_in_demo.open_workspace(DEMO)
    put = alice_in_demo.workspace(
        "PUT", DEMO, "/api/contents/table.csv", json={"type": "file", "format": "text", "content": "a,b\n1,2\n"}
    )
    assert put.status_code in (200, 201), put.text
    for path in ("/files/table.csv", "/files/table.csv?download=1", "/nbconvert/html/table.csv?download=true",
                 "/nbconvert/script/table.csv"):  # fmt: skip
        response = alice_in_demo.workspace("GET", DEMO, path)
        assert response.status_code == 403, (path, response.status_code)


def test_a_binary_upload_is_refused(alice_in_demo):
    import base64

    alice_in_demo.open_workspace(DEMO)  # its cookies, whichever test ran first
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256))).decode()
    response = alice_in_demo.workspace(
        "PUT", DEMO, "/api/contents/smuggled.png", json={"type": "file", "format": "base64", "content": png}
    )
    assert response.status_code in (400, 403, 415), response.status_code
    listing = alice_in_demo.workspace("GET", DEMO, "/api/contents/").json()
    assert "smuggled.png" not in {entry["name"] for entry in listing["content"]}


def test_a_researcher_cannot_mint_tokens_use_the_admin_api_or_anothers_workspace(running_enclave, alice_in_demo):
    alice = alice_in_demo
    assert alice.api("POST", "/users/alice/tokens", json={"note": "exfil"}).status_code == 403
    assert alice.api("GET", "/users").status_code in (403, 404)
    assert alice.api("GET", "/users/bob").status_code in (403, 404)
    assert alice.api("POST", "/users/bob/servers/cardio-risk").status_code in (403, 404)
    assert alice.api("POST", "/users", json={"usernames": ["mallory"]}).status_code == 403
    assert alice.api("GET", "/proxy").status_code == 403
    # bob's workspace through the proxy, on his origin: the hub refuses alice at OAuth, whatever the server's state
    bob_space = alice.http.get(f"{running_enclave.origin('bob')}/user/bob/{DEMO}/api/contents", timeout=30)
    assert bob_space.status_code in (403, 404, 424)


def test_a_checker_cannot_open_a_workspace(running_enclave):
    carol = running_enclave.person("carol")
    assert carol.api("POST", f"/users/carol/servers/{DEMO}").status_code == 403  # no `servers` scope
    # and were a scope ever granted by mistake, the spawner's own rule still refuses a non-researcher
    with pytest.raises(WorkspaceError) as refused:
        prepare(running_enclave.paths, DEMO, "carol")
    assert refused.value.status == 403
