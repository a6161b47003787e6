"""The coordinator's server for site agents (federation/coordinator_server.py) attacked as a site, a coordinator-role
node, a stranger without a certificate and a node of a foreign authority would: the real server on 127.0.0.1 in a
thread with its own event loop, over the real business layer and registry, certificates issued by a real consortium
authority in a temporary folder, clients built with `pki.client_context`.

Each refusal is checked three ways: its status, its body (the JSON error, never a stack trace) and that nothing
changed: the registry's task rows, its audit log and the files under the coordinator's `federation/coordinator/`.
One server for the module; each test submits its own tasks."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import ssl
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from unittest import mock

import httpx
import pytest
from cryptography import x509
from sqlalchemy import select

from federation import coordinator as coordinator_module
from federation import coordinator_server, pki, tasks
from federation.coordinator import Coordinator
from federation.local_consortium import free_port
from federation.models import TaskSite
from kernel import audit
from kernel.clock import utcnow
from kernel.config import Paths
from kernel.db import Registry
from kernel.models import AuditEvent

pytestmark = pytest.mark.security

WAIT = 20  # seconds a request may take before the test fails: a bound for a stuck test, not a measurement
SHARED, B_ONLY = "fed-ab", "fed-bonly"  # site-a and site-b are in SHARED; only site-b is in B_ONLY
RESEARCHER = "alice"
MAX_BODY = 256 << 10  # the server's body cap in this module, so a body over it is cheap to send
NOTEBOOK = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
OUTPUTS = (tasks.DeclaredOutput("estimates.csv", "estimates"),)
UNKNOWN_TASK = "00000000-0000-4000-8000-000000000000"


class Node:
    """The coordinator (its business layer, registry and server) and the node folders of every client."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.authority = pki.init_authority(root / "authority", "Test consortium")
        for name, role in (("coord", "coordinator"), ("site-a", "site"), ("site-b", "site"), ("rogue", "coordinator")):
            pki.write_node_credentials(root / name, self.authority.issue(name, role))
        foreign = pki.init_authority(root / "foreign-authority", "Foreign consortium")
        # the intruder trusts the consortium (its bundle and CRL are public) but holds its own authority's certificate
        trusting = replace(foreign.issue("site-a", "site"), bundle_pem=self.authority.bundle_pem(),
                           crl_pem=self.authority.crl_pem())  # fmt: skip
        pki.write_node_credentials(root / "foreign", trusting)

        self.paths = Paths(root / "home")
        self.paths.home.mkdir()
        self.registry = Registry.of(self.paths)
        self.coordinator = Coordinator(self.registry, self.paths, "coord")
        for name, sites in ((SHARED, ["site-a", "site-b"]), (B_ONLY, ["site-b"])):
            self.coordinator.create_project(name=name, title=name, purpose="DS-CVD", sites=sites,
                                            members=[RESEARCHER], actor="coordinator-admin")  # fmt: skip
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self.thread.start()
        if not started.wait(WAIT) or self.failure is not None:
            raise AssertionError(f"the coordinator's server did not start: {self.failure!r}")

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            with mock.patch.object(coordinator_server, "MAX_BODY", MAX_BODY):
                self.server = coordinator_server.serve(self.coordinator, self.root / "coord", address="127.0.0.1",
                                                       port=self.port)  # fmt: skip

        try:
            self.loop.run_until_complete(start())
        except BaseException as exc:  # reported to the test that waits for the start
            self.failure = exc
            started.set()
            return
        started.set()
        self.loop.run_forever()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.registry.close()

    def client(self, folder: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=pki.client_context(self.root / folder), timeout=WAIT,
                            trust_env=False)  # fmt: skip

    def submit(self, project: str = SHARED, **kwargs) -> str:
        return self.coordinator.submit(project=project, submitter=RESEARCHER, notebook=NOTEBOOK, parameters={},
                                       outputs=OUTPUTS, **kwargs)  # fmt: skip

    def results_folder(self, task_id: str) -> Path:
        return self.coordinator.folder / "tasks" / task_id / "results"

    def snapshot(self) -> tuple:
        """What a refused request must leave as it was: every task row, the audit log, the coordinator's files."""
        with self.registry.session() as session:
            rows = sorted(
                (r.task_id, r.site, r.state, r.reason, r.reference, r.result_sha256, r.updated_at)
                for r in session.scalars(select(TaskSite))
            )
            events = session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
        files = sorted(
            (str(p.relative_to(self.coordinator.folder)), p.read_bytes())
            for p in self.coordinator.folder.rglob("*")
            if p.is_file()
        )
        return rows, events, files

    def state(self, task_id: str, site: str) -> str:
        with self.registry.session() as session:
            return session.get(TaskSite, (task_id, site)).state

    def audit_events(self, action: str, task_id: str) -> list[dict]:
        with self.registry.session() as session:
            rows = session.scalars(
                select(AuditEvent).where(AuditEvent.action == action, AuditEvent.target == task_id)
                .order_by(AuditEvent.seq)
            )  # fmt: skip
            return [{"actor": r.actor, **r.detail} for r in rows]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory):
    node = Node(tmp_path_factory.mktemp("coordinator-server"))
    yield node
    node.close()


@pytest.fixture(scope="module")
def site_a(node: Node):
    with node.client("site-a") as client:
        yield client


@pytest.fixture(scope="module")
def site_b(node: Node):
    with node.client("site-b") as client:
        yield client


def assert_json_error(response: httpx.Response, status: int) -> str:
    """The answer is `status` with the JSON error body and the headers every answer carries; its message."""
    assert response.status_code == status, (response.status_code, response.text)
    assert "Traceback" not in response.text and 'File "' not in response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    assert_safe_headers(response.headers)
    return body["error"]


def assert_safe_headers(headers: httpx.Headers) -> None:
    assert headers.get("Cache-Control") == "no-store"
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert "Server" not in headers


def refused(node: Node, client: httpx.Client, method: str, path: str, status: int, **kwargs) -> str:
    """Send the request, check it is refused with `status` and that nothing changed; the error's message."""
    before = node.snapshot()
    message = assert_json_error(client.request(method, path, **kwargs), status)
    assert node.snapshot() == before
    return message


def report(client: httpx.Client, task_id: str, state: str, **body: str) -> httpx.Response:
    return client.post(f"/v1/tasks/{task_id}/state", json={"state": state, **body})


def move(client: httpx.Client, task_id: str, *states: str) -> None:
    for state in states:
        response = report(client, task_id, state)
        assert response.status_code == 204, response.text


def offered(client: httpx.Client) -> list[dict]:
    response = client.get("/v1/tasks")
    assert response.status_code == 200
    assert_safe_headers(response.headers)
    return [json.loads(json.loads(t["signed"])["manifest"]) for t in response.json()["tasks"]]


def raw_request(node: Node, folder: str, request_line: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One request written byte for byte (no client normalises its target): status, headers, body."""
    context = pki.client_context(node.root / folder)
    with (
        socket.create_connection(("127.0.0.1", node.port), timeout=WAIT) as raw,
        context.wrap_socket(raw) as tls,
    ):
        head = f"{request_line}\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        tls.sendall(head.encode("latin-1") + body)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    head, _, content = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    return int(status_line.split()[1]), headers, content


# ------------------------------------------------------------------------------------------------ 1. who connects


def test_a_coordinator_certificate_is_refused_on_every_route(node: Node, site_a: httpx.Client) -> None:
    task_id = node.submit()
    with node.client("rogue") as rogue:
        for method, path, kwargs in (
            ("GET", "/v1/tasks", {}),
            ("GET", f"/v1/tasks/{task_id}/notebook", {}),
            ("POST", f"/v1/tasks/{task_id}/state", {"json": {"state": "fetched"}}),
            ("PUT", f"/v1/tasks/{task_id}/result", {"content": b"sealed"}),
            ("GET", "/v1/elsewhere", {}),
        ):
            refused(node, rogue, method, path, 403, **kwargs)
    assert task_id in [m["task_id"] for m in offered(site_a)]  # the task still waits for the site
    assert node.state(task_id, "site-a") == "queued"


@pytest.mark.parametrize("who", ["no certificate", "foreign authority"])
def test_a_client_outside_the_consortium_cannot_complete_the_handshake(node: Node, who: str) -> None:
    task_id = node.submit()
    before = node.snapshot()
    if who == "no certificate":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.load_verify_locations(cadata=node.authority.bundle_pem())
    else:
        context = pki.client_context(node.root / "foreign")
    with httpx.Client(base_url=node.url, verify=context, timeout=WAIT, trust_env=False) as client:
        for method, path in (("GET", "/v1/tasks"), ("POST", f"/v1/tasks/{task_id}/state")):
            with pytest.raises(httpx.TransportError):
                client.request(method, path, json={"state": "fetched"})
    assert node.snapshot() == before


def test_a_site_revoked_while_the_server_runs_is_refused_from_its_next_handshake(node: Node) -> None:
    pki.write_node_credentials(node.root / "site-c", node.authority.issue("site-c", "site"))
    with node.client("site-c") as client:
        assert client.get("/v1/tasks").status_code == 200
    # the new CRL is made in the same second as the one the server loaded when it started (two revocations in a row
    # do that): its `lastUpdate` is no newer, and the server must apply it all the same
    installed = x509.load_pem_x509_crl((node.root / "coord" / pki.CRL).read_bytes())
    node.authority.revoke("site-c")
    same_second = installed.last_update_utc + pki.CLOCK_SKEW
    pki.install_crl(node.root / "coord", node.authority.crl_pem(now=same_second))  # reloaded within seconds
    before = node.snapshot()
    deadline = time.monotonic() + WAIT  # a bound for a stuck test, not a measurement
    while True:
        with node.client("site-c") as client:
            try:
                client.get("/v1/tasks")
            except httpx.TransportError:
                break
        assert time.monotonic() < deadline, "the revoked site was still served"
        time.sleep(0.2)
    assert node.snapshot() == before
    with node.client("site-a") as client:  # the rest of the consortium is still served
        assert client.get("/v1/tasks").status_code == 200


# ------------------------------------------------------------------------------------- 2. one site, its own tasks


def test_a_site_sees_and_moves_only_its_own_tasks(node: Node, site_a: httpx.Client, site_b: httpx.Client) -> None:
    shared, b_only = node.submit(SHARED), node.submit(B_ONLY)
    seen_by_a = offered(site_a)
    assert shared in [m["task_id"] for m in seen_by_a]
    assert b_only not in [m["task_id"] for m in seen_by_a]
    assert all("site-a" in m["sites"] for m in seen_by_a)
    assert {shared, b_only} <= {m["task_id"] for m in offered(site_b)}

    # site-b's task answers exactly as a task that does not exist: no oracle of other sites' work
    for method, suffix, kwargs in (
        ("GET", "notebook", {}),
        ("POST", "state", {"json": {"state": "fetched"}}),
        ("PUT", "result", {"content": b"sealed"}),
    ):
        unknown = site_a.request(method, f"/v1/tasks/{UNKNOWN_TASK}/{suffix}", **kwargs)
        other = refused(node, site_a, method, f"/v1/tasks/{b_only}/{suffix}", 404, **kwargs)
        assert other == assert_json_error(unknown, 404)
    assert not node.results_folder(b_only).exists()
    assert node.state(b_only, "site-b") == "queued"

    # the shared task's row of site-b is site-b's own: site-a moves only its own
    move(site_a, shared, "fetched")
    assert (node.state(shared, "site-a"), node.state(shared, "site-b")) == ("fetched", "queued")
    notebook = site_b.get(f"/v1/tasks/{b_only}/notebook")
    assert notebook.status_code == 200 and notebook.content == NOTEBOOK
    assert_safe_headers(notebook.headers)


# ------------------------------------------------------------------------------------------- 3. the state machine


def test_moves_the_state_table_forbids_are_409_and_change_nothing(node: Node, site_a: httpx.Client) -> None:
    task_id = node.submit()
    for state in ("released", "in-airlock", "running", "awaiting-approval", "expired"):
        refused(node, site_a, "POST", f"/v1/tasks/{task_id}/state", 409, json={"state": state})
    assert node.state(task_id, "site-a") == "queued"

    move(site_a, task_id, "fetched", "refused")  # a terminal state
    for state in ("fetched", "running", "in-airlock", "failed", "queued", "released"):
        refused(node, site_a, "POST", f"/v1/tasks/{task_id}/state", 409, json={"state": state})
    refused(node, site_a, "PUT", f"/v1/tasks/{task_id}/result", 409, content=b"sealed")
    assert node.state(task_id, "site-a") == "refused"


def test_no_move_after_the_task_expired(node: Node, site_a: httpx.Client) -> None:
    swept, unswept = node.submit(), node.submit()
    move(site_a, swept, "fetched", "running", "in-airlock")
    move(site_a, unswept, "fetched", "running", "in-airlock")
    later = utcnow() + timedelta(days=8)
    node.coordinator.expire(now=later)  # the periodic sweep ran: both rows are `expired`
    for task_id in (swept, unswept):
        assert node.state(task_id, "site-a") == "expired"
    refused(node, site_a, "POST", f"/v1/tasks/{swept}/state", 409, json={"state": "refused"})
    refused(node, site_a, "PUT", f"/v1/tasks/{swept}/result", 409, content=b"sealed")
    assert not node.results_folder(swept).exists()


def test_no_move_after_expiry_before_the_sweep_ran(node: Node, site_a: httpx.Client) -> None:
    # the sweep runs every minute: between a manifest's expiry and the next sweep a site must not move its task
    # either, or a result would arrive for a task the sites' own verification already refuses as expired
    task_id = node.submit()
    move(site_a, task_id, "fetched", "running", "in-airlock")
    later = utcnow() + timedelta(days=8)
    with mock.patch.object(coordinator_module, "utcnow", lambda: later):
        refused(node, site_a, "POST", f"/v1/tasks/{task_id}/state", 409, json={"state": "refused"})
        refused(node, site_a, "PUT", f"/v1/tasks/{task_id}/result", 409, content=b"sealed")
        assert task_id not in [m["task_id"] for m in offered(site_a)]
    assert not node.results_folder(task_id).exists()
    assert node.state(task_id, "site-a") == "in-airlock"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe{}",
        b"[]",
        b'"fetched"',
        b"{}",
        b'{"state": 5}',
        b'{"state": "done"}',
        b'{"state": "FETCHED"}',
        b'{"state": "fetched", "reason": "has spaces"}',
        b'{"state": "fetched", "reason": "' + b"a" * 65 + b'"}',
        b'{"state": "fetched", "reason": "Upper"}',
        b'{"state": "fetched", "reason": {"nested": 1}}',
        b'{"state": "fetched", "reference": "../../etc/passwd"}',
        b'{"state": "fetched", "reference": "a b"}',
        b'{"state": "fetched", "reference": "' + b"r" * 65 + b'"}',
        b'{"state": "fetched", "reference": "ok\\nline"}',
        b"[" * 2000 + b"]" * 2000,  # deeper than the JSON parser recurses
    ],
    ids=lambda b: b[:40].decode("latin-1"),
)
def test_a_malformed_state_report_is_400(node: Node, site_a: httpx.Client, body: bytes) -> None:
    task_id = node.submit()
    refused(node, site_a, "POST", f"/v1/tasks/{task_id}/state", 400, content=body,
            headers={"Content-Type": "application/json"})  # fmt: skip
    assert node.state(task_id, "site-a") == "queued"


@pytest.mark.parametrize("reference", ["../x", "a b", "r" * 65, "-lead", "a/b", "é"])
def test_a_result_with_an_odd_reference_is_400(node: Node, site_a: httpx.Client, reference: str) -> None:
    task_id = node.submit()
    move(site_a, task_id, "fetched", "running", "in-airlock")
    refused(node, site_a, "PUT", f"/v1/tasks/{task_id}/result", 400, params={"reference": reference},
            content=b"sealed")  # fmt: skip
    assert not node.results_folder(task_id).exists()


# ------------------------------------------------------------------------------------------------ 4. body limits


def test_a_state_report_over_4_kib_is_413(node: Node, site_a: httpx.Client) -> None:
    task_id = node.submit()
    body = json.dumps({"state": "fetched", "reason": "", "reference": "", "padding": "x" * 4096}).encode()
    refused(node, site_a, "POST", f"/v1/tasks/{task_id}/state", 413, content=body)
    assert node.state(task_id, "site-a") == "queued"


def test_a_result_over_the_cap_or_empty_is_refused_and_nothing_is_written(node: Node, site_a: httpx.Client) -> None:
    task_id = node.submit()
    move(site_a, task_id, "fetched", "running", "in-airlock")
    with mock.patch.object(coordinator_module, "MAX_RESULT_BYTES", 1024):
        refused(node, site_a, "PUT", f"/v1/tasks/{task_id}/result", 413, content=b"x" * 1025)
    refused(node, site_a, "PUT", f"/v1/tasks/{task_id}/result", 413, content=b"")
    assert not node.results_folder(task_id).exists()

    # over the server's own cap the body is never read: the HTTP layer answers a bare 400 and closes the connection
    # (or closes it while the client is still sending)
    before = node.snapshot()
    with node.client("site-a") as fresh:
        try:
            response = fresh.put(f"/v1/tasks/{task_id}/result", content=b"x" * (MAX_BODY + 1))
        except httpx.TransportError:
            pass
        else:
            assert response.status_code == 400 and response.content == b""
    assert node.snapshot() == before
    assert node.state(task_id, "site-a") == "in-airlock"


# ---------------------------------------------------------------------------------- 5. a result only from in-airlock


def test_a_result_for_a_task_not_in_airlock_is_409_and_nothing_is_written(node: Node, site_a: httpx.Client) -> None:
    task_id = node.submit()
    for state in ("queued", "fetched", "running"):
        if state != "queued":
            move(site_a, task_id, state)
        refused(node, site_a, "PUT", f"/v1/tasks/{task_id}/result", 409, content=b"sealed")
        assert not node.results_folder(task_id).exists()
        assert node.state(task_id, "site-a") == state


def test_a_released_result_cannot_be_replaced(node: Node, site_a: httpx.Client) -> None:
    task_id = node.submit()
    move(site_a, task_id, "fetched", "running", "in-airlock")
    first = b"the first sealed bundle"
    response = site_a.put(f"/v1/tasks/{task_id}/result", params={"reference": "req-1"}, content=first)
    assert response.status_code == 204
    assert_safe_headers(response.headers)
    kept = node.results_folder(task_id) / f"site-a.{hashlib.sha256(first).hexdigest()}.sealed"
    assert kept.read_bytes() == first

    refused(node, site_a, "PUT", f"/v1/tasks/{task_id}/result", 409, content=b"another bundle")
    assert kept.read_bytes() == first
    assert node.state(task_id, "site-a") == "released"
    # the same bundle again (an answer lost on the way back) is accepted and changes nothing
    before = node.snapshot()
    assert site_a.put(f"/v1/tasks/{task_id}/result", content=first).status_code == 204
    assert node.snapshot() == before


# ------------------------------------------------------------------------------------- 6. routes, methods, paths


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/", 404),
        ("GET", "/v1", 404),
        ("GET", "/v1/tasks/", 404),
        ("GET", "/v1/tasks/../x", 404),
        ("GET", "/v1/tasks/%2e%2e/x", 404),
        ("GET", "/v1/tasks/{task}%2Fnotebook", 404),
        ("GET", "/v1/tasks/{task}/notebook/", 404),
        ("GET", "/v1/tasks/{task}/../{task}/notebook", 404),
        ("GET", "/v1/tasks/{TASK}/notebook", 404),
        ("GET", "/v1/tasks/not-a-uuid/notebook", 404),
        ("GET", "/v1/tasks/{task}x/notebook", 404),
        ("GET", "//v1/tasks", 404),
        ("POST", "/v1/tasks/../../etc/passwd", 404),
        ("DELETE", "/v1/tasks", 405),
        ("PATCH", "/v1/tasks", 405),
        ("POST", "/v1/tasks", 405),
        ("DELETE", "/v1/tasks/{task}/notebook", 405),
        ("PATCH", "/v1/tasks/{task}/state", 405),
        ("GET", "/v1/tasks/{task}/state", 405),
        ("POST", "/v1/tasks/{task}/result", 405),
        ("DELETE", "/v1/tasks/{task}/result", 405),
        ("PROPFIND", "/v1/tasks", 405),
        ("OPTIONS", "/v1/tasks", 405),
        ("DELETE", "/v1/elsewhere", 404),
    ],
)
def test_unknown_routes_methods_and_path_tricks_are_404_or_405(node: Node, method: str, path: str,
                                                                status: int) -> None:  # fmt: skip
    task_id = node.submit()
    target = path.replace("{task}", task_id).replace("{TASK}", task_id.upper())
    before = node.snapshot()
    got, headers, body = raw_request(node, "site-a", f"{method} {target} HTTP/1.1", b"{}")
    assert got == status, (got, body)
    assert headers["content-type"].startswith("application/json")
    assert set(json.loads(body)) == {"error"}
    assert b"Traceback" not in body and b'File "' not in body
    assert headers.get("cache-control") == "no-store" and headers.get("x-content-type-options") == "nosniff"
    assert "server" not in headers
    assert node.snapshot() == before


# ---------------------------------------------------------------------------------- 8. audited, the chain holds


def test_every_accepted_report_and_result_is_audited_and_the_chain_verifies(node: Node, site_a: httpx.Client) -> None:
    task_id = node.submit()
    for state in ("fetched", "running", "in-airlock"):
        response = report(site_a, task_id, state, reference="run-7")
        assert response.status_code == 204
        assert_safe_headers(response.headers)
    response = report(site_a, task_id, "in-airlock", reference="run-7")  # repeated after a lost answer: one event
    assert response.status_code == 204
    bundle = b"sealed bytes"
    assert site_a.put(f"/v1/tasks/{task_id}/result", params={"reference": "req-9"}, content=bundle).status_code == 204

    states = node.audit_events("federation.site_state", task_id)
    assert [(e["actor"], e["site"], e["state"], e["reference"]) for e in states] == [
        ("site:site-a", "site-a", state, "run-7") for state in ("fetched", "running", "in-airlock")
    ]
    [received] = node.audit_events("federation.result_received", task_id)
    assert received == {"actor": "site:site-a", "site": "site-a", "sha256": hashlib.sha256(bundle).hexdigest(),
                        "size": len(bundle)}  # fmt: skip
    with node.registry.session() as session:
        verification = audit.verify_log(session)
    assert verification.problems == []
