"""Shared fixtures: a small synthetic cohort generated once per session, and Enclave homes provisioned from it
through the real code paths (registry, consent import, projects, materialisation); and `*.localhost` names resolved
to loopback in the test process, as browsers resolve them."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.postgres import DATABASES, PostgresCluster, postgres_cluster, server_binaries
from tests.provisioned import Enclave, provision

COHORT = {"patients": 240, "sites": 3, "seed": 11}
# A host's own settings file (/etc/enclave/enclave.env, provisioning/site_settings.py) must not reach the Enclaves
# the tests make, nor the commands they run: none is read unless a test names one.
os.environ.setdefault("ENCLAVE_SETTINGS_FILE", "")


def resolve_localhost_like_a_browser(getaddrinfo):
    """`getaddrinfo` that answers 127.0.0.1 for `localhost` and every `*.localhost` name (RFC 6761), as Chromium and
    Firefox do, and passes every other name on. Enclaves under test serve each person on `NAME.localhost:PORT`
    (hub/origins.py), and the system's resolver knows only `localhost` itself."""

    def resolve(host, port, family=0, type=0, proto=0, flags=0):
        name = (host.decode() if isinstance(host, bytes) else host or "").lower().rstrip(".")
        if (name == "localhost" or name.endswith(".localhost")) and family in (0, socket.AF_INET):
            return getaddrinfo("127.0.0.1", port, socket.AF_INET, type, proto, flags)
        return getaddrinfo(host, port, family, type, proto, flags)

    return resolve


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test` runs pytest-xdist with two workers: the tests that change the host run in order on one, the
    host-free integration tests in order on the other beside them, and the unit tests fill in wherever a worker is
    free (tests/lanes.py says which is which). (Scopes by path, not xdist's `xdist_group` marks, which pytest 9 no
    longer lets xdist 3.8 apply.)"""
    from xdist.scheduler import LoadScopeScheduling

    from tests.lanes import scope

    class Lanes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope(nodeid)

    return Lanes(config, log)


@pytest.fixture(scope="session", autouse=True)
def localhost_names() -> Iterator[None]:
    """Python clients in the test process (requests, tornado's websocket client) reach `NAME.localhost:PORT` as a
    browser does, for the whole session."""
    original = socket.getaddrinfo
    socket.getaddrinfo = resolve_localhost_like_a_browser(original)
    yield
    socket.getaddrinfo = original


@pytest.fixture(scope="session", autouse=True)
def no_mounts_left(tmp_path_factory) -> Iterator[None]:
    """A safety net under each fixture's own teardown: no project file system (provisioning/storage.py) stays
    mounted in pytest's temporary folders, which pytest later deletes."""
    yield
    if os.geteuid() == 0:
        from provisioning.storage import release_all_under

        release_all_under(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Path:
    """A 240-patient, 3-site cohort (csv-local and FHIR sites, DICOM, VCF, BAM, consent); read-only by convention."""
    from synthetic_sites import generate_cohort

    out = tmp_path_factory.mktemp("cohort") / "sites"
    generate_cohort(out, progress=False, **COHORT)
    return out


@pytest.fixture(scope="module")
def enclave(tmp_path_factory, cohort) -> Enclave:
    """Two projects over the shared cohort: cardiovascular (DS-CVD) and general biomedical (HMB). Do not mutate."""
    env = provision(tmp_path_factory.mktemp("home"), cohort, {"cvd-risk": "DS-CVD", "biomed": "HMB"})
    yield env
    env.registry.close()


@pytest.fixture
def own_cohort(tmp_path, cohort) -> Path:
    """A private copy of the cohort that a test may damage."""
    target = tmp_path / "sites"
    shutil.copytree(cohort, target, symlinks=True)
    return target


@pytest.fixture(scope="session")
def running_enclave(tmp_path_factory, cohort, workspace_env):
    """A real Enclave (hub, proxy, airlock service, sandboxed workspaces) for the whole session, started on first
    use and stopped at the end (tests/workspace_hub.py). Tests using it carry `needs_enclave`."""
    from tests.workspace_hub import running_enclave as start

    with start(tmp_path_factory.mktemp("enclave-hub") / "home", cohort) as running:
        yield running


@pytest.fixture(scope="session")
def workspace_env() -> Path:
    """The workspace environment (images/) brought up to date once per session by its real builder:
    $ENCLAVE_WORKSPACE_ENV, else the checkout's shared .workspace/ (a no-op when its stamp is current; a rebuild
    after a change to images/ or workbench/). Read-only by convention."""
    from provisioning.workspace_env import ensure_workspace_env
    from tests.workspace_env import workspace_env as shared_env

    env = shared_env().absolute()
    ensure_workspace_env(env)
    return env


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A real PostgreSQL (tests/postgres.py), started on first use and stopped at the session's end. Without its
    server binaries the test is skipped with the reason, or fails under CI, whose `make test` installs them."""
    binaries = server_binaries()
    if binaries is None:
        reason = "PostgreSQL's server binaries are not installed (Debian: postgresql; `make system-packages`)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    with postgres_cluster(binaries) as cluster:
        yield cluster


@contextmanager
def _postgres_database(request: pytest.FixtureRequest, home: Path) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL, dropped after; its URL. A registry on a server keeps its audit
    anchors in ENCLAVE_HOME (kernel/db.py default_anchors), so that is `home` meanwhile: never the machine's
    /var/lib/enclave, and never shared with another test's database."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENCLAVE_HOME", str(home))
        with request.getfixturevalue("postgres").database() as url:
            yield url


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path) -> Iterator[str]:
    """An empty registry database for one test, on each database Enclave runs on: a SQLite file in the test's
    folder, and a fresh database on the session's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite'}"
        return
    with _postgres_database(request, tmp_path) as url:
        yield url


@pytest.fixture(scope="module")
def module_postgres_url(request, tmp_path_factory) -> Iterator[str]:
    """A registry database on the session's PostgreSQL shared by a module's tests (e.g. a provisioned Enclave's,
    built once per module); its anchors in a folder of the module's own."""
    with _postgres_database(request, tmp_path_factory.mktemp("postgres-home")) as url:
        yield url


@pytest.fixture(scope="session")
def slurm():
    """A real one-machine SLURM (tests/slurm.py), started on first use and stopped at the session's end, with
    SLURM_CONF pointing at it meanwhile. Skipped with the reason without root or Debian's packages (failed under CI)."""
    from tests.slurm import require_slurm, running_slurm

    require_slurm()
    with running_slurm() as running:
        yield running


@pytest.fixture(scope="session")
def cluster_enclave(cohort, workspace_env, slurm):
    """Two provisioned projects with Unix accounts, for SLURM workers that run as them (tests/slurm.py); the
    workspace environment is the workers' (ENCLAVE_WORKSPACE_ENV, set meanwhile)."""
    from tests.slurm import cluster_enclave as provision_cluster_enclave

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENCLAVE_WORKSPACE_ENV", str(workspace_env))
        with provision_cluster_enclave(cohort) as enclave:
            yield enclave
