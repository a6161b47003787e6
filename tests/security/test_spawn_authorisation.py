"""Red team against the one authorisation rule of every spawner (hub/authorisation.py).

A researcher of one project names a server after another project to get its namespace and data claim. On
Kubernetes the real KubeSpawner, configured by `configure_kubespawner` and called in JupyterHub's order (pre-spawn
hook, then `start`), must refuse before it makes any Kubernetes call: its API is a loopback stand-in that records every
request (tests/kubernetes_harness.py), and the same spawn for the researcher's own project shows the stand-in is
reached when a spawn is allowed. The local SandboxSpawner must give the same refusal, through `prepare`.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes_asyncio.client.exceptions import ApiException
from tornado import web

from hub.authorisation import REFUSED, WorkspaceError
from hub.workspaces import prepare
from kernel.config import Paths
from tests.kubernetes_harness import (
    OTHER_PROJECT,
    PROJECT,
    REFUSED_SPAWNS,
    FakeKubernetesAPI,
    hub_config,
    hub_spawn,
    kube_spawner,
    member_registry,
    sandbox_spawner,
)

pytestmark = pytest.mark.security


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.delenv("ENCLAVE_DATABASE_URL", raising=False)  # Paths(tmp_path) then reads this same registry
    registry = member_registry(tmp_path)
    yield registry
    registry.close()


@pytest.fixture
def api(tmp_path, monkeypatch):
    with FakeKubernetesAPI().running() as api:
        api.use_as_cluster(monkeypatch, tmp_path)
        yield api


def test_a_server_named_after_another_project_never_reaches_kubernetes(registry, api):
    c = hub_config(registry)

    async def spawn(server: str) -> Exception:
        with pytest.raises(Exception) as failed:
            await hub_spawn(kube_spawner(c, api, "alice", server))
        return failed.value

    refused = asyncio.run(spawn(OTHER_PROJECT))
    assert isinstance(refused, web.HTTPError) and refused.status_code == 403 and refused.log_message == REFUSED
    assert api.requests == []  # refused before KubeSpawner asked the cluster anything

    # the control: her own project's spawn gets as far as the (refusing) cluster, for her project's namespace
    allowed = asyncio.run(spawn(PROJECT))
    assert isinstance(allowed, ApiException) and allowed.status == 403
    assert api.requests[0] == ("POST", "/api/v1/namespaces")
    assert json.loads(api.bodies[0])["metadata"]["name"] == f"enclave-{PROJECT}"


@pytest.mark.parametrize("user, server", REFUSED_SPAWNS.values(), ids=REFUSED_SPAWNS)
def test_both_spawners_refuse_alike(tmp_path, registry, api, user, server):
    c = hub_config(registry)

    async def refusals() -> tuple[web.HTTPError, web.HTTPError]:
        answers = []
        for spawner in (
            kube_spawner(c, api, user, server),
            sandbox_spawner(tmp_path, user, server, socket_root=tmp_path / "sockets"),
        ):
            with pytest.raises(web.HTTPError) as refused:
                await hub_spawn(spawner)
            answers.append(refused.value)
        return tuple(answers)

    on_kubernetes, in_the_sandbox = asyncio.run(refusals())
    assert (on_kubernetes.status_code, on_kubernetes.log_message) == (403, REFUSED)
    assert (in_the_sandbox.status_code, in_the_sandbox.log_message) == (403, REFUSED)
    assert api.requests == [] and not (tmp_path / "sockets").exists()  # neither made anything


def test_the_sandbox_spawner_refuses_through_prepare(tmp_path, registry):
    # the local path's one gate: `prepare`, which the SandboxSpawner and `enclave run` call, asks the same rule
    with pytest.raises(WorkspaceError) as refused:
        prepare(Paths(tmp_path), OTHER_PROJECT, "alice", insecure_dev_mode=True, socket_root=tmp_path / "sockets")
    assert (refused.value.status, refused.value.message) == (403, REFUSED)
    assert not (tmp_path / "sockets").exists()
