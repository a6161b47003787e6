"""Test helper: a consortium on one machine. A coordinator Enclave and one Enclave per hospital site, each a home
of its own provisioned through the real steps with only its own site's export, each run as separate `enclave`
processes (the coordinator's server, each site's agent) talking over loopback with mutual TLS."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kernel.config import Paths
from kernel.db import Registry
from provisioning import steps

ENCLAVE = Path(sys.executable).with_name("enclave")
PROJECT = "fed-cvd"
PURPOSE = "DS-CVD"
RUN_USER = "federation"
CHECKERS = ("carol", "dave")
COORDINATOR = "coord"
RESEARCHER = "alice"


def enclave(home: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """`enclave --home HOME ARGS` as its own process; the researcher's name through SUDO_USER, as under sudo."""
    env = {**os.environ, "ENCLAVE_HOME": str(home), "SUDO_USER": RESEARCHER}
    env.pop("SUDO_UID", None)
    done = subprocess.run([str(ENCLAVE), "--home", str(home), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(f"enclave {' '.join(args[:3])} failed ({done.returncode}): {done.stderr[-3000:]}")
    return done


@dataclass
class SiteNode:
    name: str
    paths: Paths
    credentials: Path
    registry: Registry | None = None

    def open(self) -> Registry:
        if self.registry is None:
            self.registry = Registry.of(self.paths)
        return self.registry


@dataclass
class Consortium:
    root: Path
    authority: Path
    coordinator: Paths
    coordinator_credentials: Path
    port: int
    sites: dict[str, SiteNode] = field(default_factory=dict)
    server: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def site_spec(folder: Path, project: str = PROJECT, purpose: str = PURPOSE) -> Path:
    """The local project a site makes for a federated project it accepts: its purpose, every dataset of the
    site, the run user as its researcher and the site's own output checkers."""
    spec = folder / f"{project}.yaml"
    members = [f"{{user: {RUN_USER}, role: researcher}}", *(f"{{user: {c}, role: output_checker}}" for c in CHECKERS)]
    spec.write_text(f"name: {project}\ntitle: {project} (federated)\npurpose: {purpose}\ncommercial: false\n"
                    f"members: [{', '.join(members)}]\ndatasets: ['*']\n")  # fmt: skip
    return spec


def provision_site(root: Path, export: Path, *, project: str = PROJECT) -> Paths:
    """An Enclave home holding one site's export (a copy: a site's raw data is its own) and the local project."""
    paths = Paths(root / "home")
    paths.home.mkdir(parents=True, exist_ok=True)
    paths.home.chmod(0o711)
    shutil.copytree(export, paths.sites / export.name, symlinks=False)
    registry, _ = steps.ensure_registry(paths)
    try:
        steps.ensure_sites(registry, paths, actor="site-admin")
        steps.ensure_consent(registry, paths, actor="site-admin")
        steps.ensure_project(registry, site_spec(root, project), actor="site-admin")
        steps.ensure_materialised(registry, paths, project, actor="site-admin", progress=False)
    finally:
        registry.close()
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the coordinator's server exited ({process.returncode})")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError("the coordinator's server did not listen")


class InProcessLink:
    """A site's link to a coordinator in the same process (federation/agent.py's CoordinatorLink): the coordinator's
    business layer called directly, its refusals turned into what the HTTPS client raises. `only` limits the offers
    to some tasks; `offline_after_offers` makes every report fail as an unreachable coordinator would."""

    def __init__(self, coordinator, site: str) -> None:
        self.coordinator, self.site = coordinator, site
        self.only: set[str] | None = None
        self.offline_after_offers = False

    def _call(self, fn, *args, **kwargs):
        from federation.agent import CoordinatorRefused, CoordinatorUnreachable
        from federation.coordinator import FederationError

        if self.offline_after_offers:
            raise CoordinatorUnreachable("the coordinator could not be reached (offline)")
        try:
            return fn(*args, **kwargs)
        except FederationError as exc:
            raise CoordinatorRefused(exc.status, str(exc)) from None

    def offers(self) -> list[dict[str, str]]:
        offered = self.coordinator.offers(self.site)
        return [
            {"signed": o.signed, "project_key": o.project_key}
            for o in offered
            if self.only is None or json.loads(json.loads(o.signed)["manifest"])["task_id"] in self.only
        ]

    def notebook(self, task_id: str) -> bytes:
        return self.coordinator.notebook(self.site, task_id)  # fetched with the offer, before any report

    def report(self, task_id: str, state: str, reason: str, reference: str) -> None:
        self._call(self.coordinator.report, self.site, task_id, state, reason=reason, reference=reference)

    def result(self, task_id: str, blob: bytes, reference: str) -> None:
        self._call(self.coordinator.receive_result, self.site, task_id, blob, reference=reference)
