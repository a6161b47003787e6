"""The workspace server closes its proxy's connections lingeringly (images/enclave_workspace/connections.py): after
answering a `Connection: close` request it stops sending (the client reads end-of-file) but keeps reading until the
client closes, so a late write from the client (node's extra flush behind a request body) never meets a closed
socket. Without it that write fails with EPIPE and configurable-http-proxy turns a served save into a 503.

The server runs in the workspace environment (tornado there), on a Unix socket as a workspace's does; the client
is a raw socket that does what node does: request with a body, read the whole response, then write once more."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.workspace_env import REPO, requires_workspace_env, workspace_python

pytestmark = [pytest.mark.unit, requires_workspace_env]

SCRIPT = """
import json, os, socket, sys, tempfile, threading
from tornado import httpserver, ioloop, netutil, web

if sys.argv[1] == "lingering":
    from enclave_workspace import connections
    connections.install()

class Save(web.RequestHandler):
    def put(self):
        self.write({"saved": len(self.request.body)})

folder = tempfile.mkdtemp()
path = os.path.join(folder, "workspace.sock")
ready = threading.Event()
holder = {}

def serve():
    loop = ioloop.IOLoop(make_current=True)
    server = httpserver.HTTPServer(web.Application([(r"/api/contents/draft.txt", Save)]))
    server.add_socket(netutil.bind_unix_socket(path))
    holder["loop"] = loop
    ready.set()
    loop.start()

threading.Thread(target=serve, daemon=True).start()
ready.wait()
results = []
for attempt in range(20):
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    body = b'{"content": "draft"}'
    head = (b"PUT /api/contents/draft.txt HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n"
            b"Content-Type: application/json\\r\\nContent-Length: " + str(len(body)).encode() + b"\\r\\n\\r\\n")
    client.sendall(head + body)
    response = b""
    while chunk := client.recv(65536):
        response += chunk
    late = "ok"
    try:
        client.send(b"\\r\\n")  # node's last flush, after the response has arrived
    except BrokenPipeError:
        late = "EPIPE"
    client.close()
    results.append({"status": response.split(b"\\r\\n", 1)[0].decode(), "late_write": late})
holder["loop"].add_callback(holder["loop"].stop)
print(json.dumps(results))
"""


def run(mode: str) -> list[dict]:
    result = subprocess.run(
        [str(workspace_python()), "-I", "-c", f"import sys; sys.path.insert(0, {str(REPO / 'images')!r})\n" + SCRIPT,
         mode],
        capture_output=True, text=True, cwd="/", timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_a_late_write_after_the_response_meets_an_open_socket():
    results = run("lingering")
    assert {r["status"] for r in results} == {"HTTP/1.1 200 OK"}
    assert {r["late_write"] for r in results} == {"ok"}, results


def test_without_it_the_late_write_fails_as_the_proxy_saw():
    # The control: tornado's own close makes the same client's late write fail (what the proxy turned into a 503).
    results = run("plain")
    assert {r["status"] for r in results} == {"HTTP/1.1 200 OK"}
    assert "EPIPE" in {r["late_write"] for r in results}, results
