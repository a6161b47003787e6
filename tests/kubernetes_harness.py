"""Test helper: real KubeSpawner instances without a cluster, and the projects their spawns are authorised against.

`FakeKubernetesAPI` is a loopback HTTP server standing where the Kubernetes API would be: it records every request
and answers each with a Kubernetes 403 Status, so a test can show whether a spawn reached the cluster at all.
`kube_spawner` builds a KubeSpawner from `configure_kubespawner`'s configuration, pointed at that server through a
kubeconfig file (KubeSpawner loads one when it is created); `sandbox_spawner` builds the local SandboxSpawner;
`hub_spawn` calls a spawner as JupyterHub's `User.spawn` does. `member_registry` is a real registry with two projects.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

from traitlets.config import Config

from fabric.projects import ProjectSpec, create_project
from hub.kubernetes import configure_kubespawner
from kernel.db import Registry

IMAGE = "registry.invalid/enclave/workspace@sha256:" + "0" * 64

# Two projects with different limits: alice is a researcher in the first, bob in the second, carol checks the first.
PROJECT = "cardio-risk"
OTHER_PROJECT = "heart-imaging"
SPECS = [
    {
        "name": PROJECT,
        "title": "Cardiovascular risk",
        "purpose": "DS-CVD",
        "members": [{"user": "alice", "role": "researcher"}, {"user": "carol", "role": "output_checker"}],
        "datasets": ["*"],
        "compute": {"cpus": 3, "memory": "6GiB", "max_processes": 300},
    },
    {
        "name": OTHER_PROJECT,
        "title": "Cardiac imaging",
        "purpose": "HMB",
        "members": [{"user": "bob", "role": "researcher"}],
        "datasets": ["*"],
        "compute": {"cpus": 1.5, "memory": "2GiB"},
    },
]
# (user, server name) pairs every spawner refuses, with one and the same answer
REFUSED_SPAWNS = {
    "not a member": ("mallory", PROJECT),
    "an output checker": ("carol", PROJECT),
    "a member of another project": ("bob", PROJECT),
    "a researcher naming another project": ("alice", OTHER_PROJECT),
    "an unknown project": ("alice", "no-such-project"),
    "the default server": ("alice", ""),
}


def member_registry(folder: Path) -> Registry:
    """A registry (SQLite under `folder`) holding SPECS, made through the real project code."""
    registry = Registry(f"sqlite:///{folder / 'registry.sqlite'}")
    with registry.session() as session:
        for spec in SPECS:
            create_project(session, ProjectSpec.model_validate(spec), actor="test-admin")
    return registry


class FakeKubernetesAPI:
    """Where the Kubernetes API would be: records (method, path) of every request, refuses each with 403."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.bodies: list[bytes] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _refuse(self) -> None:
                api.requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                api.bodies.append(self.rfile.read(length))
                body = json.dumps(
                    {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403}
                ).encode()
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[FakeKubernetesAPI]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join()

    def use_as_cluster(self, monkeypatch, folder: Path) -> None:
        """Make KubeSpawner's client load a kubeconfig naming this server (its default location is read at import,
        so the environment's KUBECONFIG cannot move it)."""
        from kubernetes_asyncio.config import kube_config

        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(self.kubeconfig(folder / "kubeconfig")))

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "hub", "user": {"token": "not-a-real-token"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "hub"}}],
                    "current-context": "fake",
                }
            )
        )
        return path


def hub_config(registry: Registry) -> Config:
    c = Config()
    configure_kubespawner(c, image=IMAGE, hub_namespace="enclave-hub", registry=registry)
    return c


HUB = SimpleNamespace(public_host="", url="http://hub:8081/hub/", base_url="/", api_url="http://hub:8081/hub/api")


def _owner(user: str) -> SimpleNamespace:
    return SimpleNamespace(name=user, id=1, url=f"/user/{user}/")


def kube_spawner(c: Config, api: FakeKubernetesAPI, user: str, server: str):
    """A KubeSpawner for `user`'s server `server`, talking to `api` (create it inside a running event loop)."""
    from jupyterhub import orm
    from kubespawner import KubeSpawner

    # the server's name comes from the hub's own database row for it, as in the hub
    return KubeSpawner(config=c, user=_owner(user), orm_spawner=orm.Spawner(name=server), hub=HUB, k8s_api_host=api.url)


def sandbox_spawner(home: Path, user: str, server: str, *, socket_root: Path):
    """The local SandboxSpawner for `user`'s server `server` over the Enclave at `home`."""
    from jupyterhub import orm

    from hub.spawner import SandboxSpawner

    return SandboxSpawner(
        enclave_home=str(home),
        user=_owner(user),
        orm_spawner=orm.Spawner(name=server),
        hub=HUB,
        socket_root=str(socket_root),
        insecure_dev_mode=True,  # root or not: these tests stop at the checks before any sandbox starts
    )


async def hub_spawn(spawner) -> str:
    """What JupyterHub's `User.spawn` does with a spawner, in its order: the pre-spawn hook, then `start`."""
    from jupyterhub.utils import maybe_future

    await maybe_future(spawner.run_pre_spawn_hook())
    return await maybe_future(spawner.start())
