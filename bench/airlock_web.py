"""The airlock web app under load: the review list with N requests in the database, against a static file served
by the same server (the named baseline: what tornado itself costs per request on this machine).

The requests are made through the real workflow; their check results are recorded through the workflow too, with
a 'pass' verdict, since what is measured is the page, not the checks."""

from __future__ import annotations

import http.client
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path


def populate(home: Path, count: int) -> None:
    from kernel.config import Paths
    from kernel.db import Registry
    from output_checks.release import workflow
    from output_checks.release.service import Airlock

    paths = Paths(home)
    app = Airlock(Registry.of(paths), paths)
    have = app.tx(workflow.count_requests)
    outputs = paths.project_outputs("cardio-risk")
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "web-bench.csv").write_text("site,n\nA,120\nB,45\n")
    for i in range(have, count):

        def make(session, i=i):
            rid = workflow.create_request(session, project="cardio-risk", author="alice", title=f"bench {i}")
            record = workflow.add_file(session, paths, app.store, rid, "alice", "web-bench.csv", "aggregate")
            workflow.submit(session, rid, "alice")
            workflow.record_checks(session, rid, {record.id: {"verdict": "pass", "type": "csv", "findings": []}})

        app.tx(make)
    app.registry.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(home: Path, root: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "provisioning.cli", "--home", str(home), "airlock", "web", "--dev-login", "--port",
         str(port)], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the airlock web app did not start")


def login(port: int, user: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/dev/login?user={user}")
    response = conn.getresponse()
    response.read()
    cookie = response.getheader("Set-Cookie", "").split(";", 1)[0]
    conn.close()
    if not cookie:
        raise SystemExit("dev login gave no cookie")
    return cookie


def load(port: int, path: str, cookie: str, seconds: float, clients: int) -> dict:
    """`clients` keep-alive connections requesting `path` for `seconds`; latencies of every response."""
    latencies: list[float] = []
    failures: list[int] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, bad = [], 0
        while time.perf_counter() < stop:
            start = time.perf_counter()
            conn.request("GET", path, headers={"Cookie": cookie})
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            bad += response.status != 200
        conn.close()
        with lock:
            latencies.extend(mine)
            failures.append(bad)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "rps": len(ordered) / elapsed,
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[int(len(ordered) * 0.95) - 1],
        "non_200": sum(failures),
        "clients": clients,
    }


def bench(home: Path, root: Path, count: int, seconds: float = 10.0, clients: int = 4) -> dict:
    populate(home, count)
    process, port = start(home, root)
    try:
        cookie = login(port, "carol")
        load(port, "/review", cookie, 1.0, 1)  # warm-up: templates compiled, caches filled
        page = load(port, "/review", cookie, seconds, clients)
        static = load(port, "/static/airlock.css", cookie, seconds, clients)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"review_list": page, "static_file": static, "requests_in_db": count}
