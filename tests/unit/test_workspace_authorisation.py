"""One rule for every spawner (hub/authorisation.py): only a researcher member of project P starts P's workspace,
with P's limits; everyone else gets one and the same refusal, which names neither person nor project. Here the rule
itself and the local path (`prepare`, as `SandboxSpawner` and `enclave run` call it) over a real registry; the
Kubernetes path is in test_hub_kubernetes.py."""

from __future__ import annotations

import pytest

from hub.authorisation import REFUSED, WorkspaceError, authorise_workspace
from hub.limits import Limits
from hub.workspaces import prepare
from kernel.config import Paths
from tests.kubernetes_harness import OTHER_PROJECT, PROJECT, REFUSED_SPAWNS, SPECS, member_registry

pytestmark = pytest.mark.unit


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.delenv("ENCLAVE_DATABASE_URL", raising=False)  # Paths(tmp_path) then reads this same registry
    registry = member_registry(tmp_path)
    yield registry
    registry.close()


def test_every_refused_case_names_users_and_projects_of_the_registry():
    # the table of refusals stays meaningful: each case names someone and something the registry holds or lacks
    members = {(m["user"], spec["name"], m["role"]) for spec in SPECS for m in spec["members"]}
    for user, server in REFUSED_SPAWNS.values():
        assert (user, server, "researcher") not in members


@pytest.mark.parametrize(
    "user, project, limits",
    [
        ("alice", PROJECT, Limits(cpus=3, memory_bytes=6 * 2**30, pids=300)),
        ("bob", OTHER_PROJECT, Limits(cpus=1.5, memory_bytes=2 * 2**30, pids=512)),
    ],
)
def test_a_researcher_is_granted_their_projects_limits(registry, user, project, limits):
    grant = authorise_workspace(registry, user, project)
    assert (grant.user, grant.project, grant.spec.name) == (user, project, project)
    assert grant.limits == limits


@pytest.mark.parametrize("user, server", REFUSED_SPAWNS.values(), ids=REFUSED_SPAWNS)
def test_everyone_else_gets_one_refusal(registry, user, server):
    with pytest.raises(WorkspaceError) as refused:
        authorise_workspace(registry, user, server)
    assert (refused.value.status, refused.value.message) == (403, REFUSED)
    for name in (user, PROJECT, OTHER_PROJECT):
        assert name not in refused.value.message  # nothing to learn about who or which projects exist


@pytest.mark.parametrize("user, server", REFUSED_SPAWNS.values(), ids=REFUSED_SPAWNS)
def test_prepare_refuses_with_the_same_rule(tmp_path, registry, user, server):
    with pytest.raises(WorkspaceError) as refused:
        prepare(Paths(tmp_path), server, user, insecure_dev_mode=True)
    assert (refused.value.status, refused.value.message) == (403, REFUSED)


def test_prepare_lets_a_researcher_past_the_rule(tmp_path, registry):
    # authorised, the next question is the host's: this unit test's project has no published data
    with pytest.raises(WorkspaceError) as next_check:
        prepare(Paths(tmp_path), PROJECT, "alice", insecure_dev_mode=True)
    assert next_check.value.status == 409 and "no published data" in next_check.value.message
