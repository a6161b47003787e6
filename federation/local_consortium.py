"""A consortium on one machine: a coordinator and one Enclave home per hospital site, each provisioned with only its
own site's export, joined under a consortium authority of their own. The tests, the benchmarks and the demo's
federated walk-through use it; a real consortium is the same steps on separate machines (docs/how-to/federation.md).

Each site's home gets the federated project as a local project (its purpose, every dataset of the site, the run user
as its researcher and the site's output checkers), materialised from its own export, and a policy accepting the
project (or not, for a site listed in `refusing`; gating code for a site in `gated`). The processes are separate as
in a real consortium: the coordinator's server (`serve`) and each site's agent (`agents_pass`) are `enclave`
processes of their own, talking over loopback with mutual TLS.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from federation import pki, site_linkage, site_setup
from federation.agent import SiteConfig
from federation.coordinator import Coordinator
from federation.linkage import LinkageKey
from federation.models import SiteTask
from kernel.config import Paths
from kernel.db import Registry
from kernel.errors import EnclaveError
from kernel.secret_files import write_secret
from output_checks.release.service import Airlock
from provisioning import steps
from provisioning.host import EGRESS_TABLE, ensure_host

ENCLAVE = Path(sys.executable).with_name("enclave")
RUN_USER = "federation"


@dataclass(frozen=True)
class ConsortiumPlan:
    """Who is in it and what each site accepts."""

    project: str = "fed-cvd"
    purpose: str = "DS-CVD"
    title: str = "Federated MACE risk"
    coordinator: str = "coord"
    researchers: tuple[str, ...] = ("alice",)
    checkers: tuple[str, ...] = ("carol", "dave")
    output_kinds: tuple[str, ...] = ("estimates", "counts")
    refusing: frozenset[str] = frozenset()  # sites whose policy does not accept the project
    gated: frozenset[str] = frozenset()  # sites whose custodian approves each task's code first


@dataclass
class LocalConsortium:
    root: Path
    plan: ConsortiumPlan
    authority: Path
    coordinator: Paths
    coordinator_credentials: Path
    port: int
    sites: dict[str, Paths] = field(default_factory=dict)  # in the consortium's order
    server: subprocess.Popen | None = None  # the coordinator's server, once `serve` started it

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def site_spec(folder: Path, plan: ConsortiumPlan) -> Path:
    """The local project a site makes for the federated project it accepts."""
    checkers = [{"user": checker, "role": "output_checker"} for checker in plan.checkers]
    members = [{"user": RUN_USER, "role": "researcher"}, *checkers]
    spec = folder / f"{plan.project}.yaml"
    spec.write_text(yaml.safe_dump({"name": plan.project, "title": f"{plan.title} (federated)",
                                    "purpose": plan.purpose, "commercial": False, "members": members,
                                    "datasets": ["*"]}, sort_keys=False))  # fmt: skip
    return spec


def site_policy_text(plan: ConsortiumPlan, site: str) -> str:
    projects = {} if site in plan.refusing else {plan.project: {
        "purpose": plan.purpose, "coordinator": plan.coordinator, "submitters": list(plan.researchers),
        "output_kinds": list(plan.output_kinds), "approve_code": site in plan.gated}}  # fmt: skip
    return yaml.safe_dump({"approve_code": True, "projects": projects}, sort_keys=False)


def provision_site(root: Path, export: Path, plan: ConsortiumPlan, *, actor: str) -> Paths:
    """An Enclave home holding a copy of one site's export (a site's raw data is its own) and the local project,
    materialised."""
    paths = Paths(root / "home")
    paths.home.mkdir(parents=True, exist_ok=True)
    paths.home.chmod(0o711)
    if not (paths.sites / export.name).exists():
        shutil.copytree(export, paths.sites / export.name, symlinks=False)
    registry, _ = steps.ensure_registry(paths)
    try:
        steps.ensure_sites(registry, paths, actor=actor)
        steps.ensure_consent(registry, paths, actor=actor)
        steps.ensure_project(registry, site_spec(root, plan), actor=actor)
        steps.ensure_materialised(registry, paths, plan.project, actor=actor, progress=False)
    finally:
        registry.close()
    return paths


def build(
    root: Path,
    exports: Path,
    plan: ConsortiumPlan,
    *,
    coordinator: Paths | None = None,
    host: bool = True,
    egress_table: str | None = None,
    actor: str = "consortium-admin",
) -> LocalConsortium:
    """The authority, the coordinator (in `coordinator`'s home, else `root/coordinator`) with the federated project,
    and one site home per export folder under `exports`, each joined with its policy. `host`: also provision each
    site's sandbox (project account, folders, egress rule: root)."""
    names = sorted(p.name for p in exports.iterdir() if p.is_dir() and not p.is_symlink())
    if not names:
        raise EnclaveError(f"{exports}: no site export folders")
    authority = root / "authority"
    made = pki.init_authority(authority, "Local consortium") if not (authority / pki.STATE).exists() else None
    ca = made or pki.Authority.load(authority)
    coordinator_paths = coordinator or Paths(root / "coordinator")
    coordinator_paths.home.mkdir(parents=True, exist_ok=True)
    credentials = root / "coordinator-tls"
    pki.write_node_credentials(credentials, ca.issue(plan.coordinator, "coordinator", hosts=["127.0.0.1"]))
    registry = Registry.of(coordinator_paths)
    try:
        hub = Coordinator(registry, coordinator_paths, plan.coordinator)
        (coordinator_paths.federation / "coordinator").mkdir(parents=True, exist_ok=True, mode=0o700)
        write_secret(coordinator_paths.federation / "coordinator" / "coordinator.yaml",
                     yaml.safe_dump({"name": plan.coordinator}))  # fmt: skip
        signing_key = hub.signing_public_pem()
        try:
            hub.create_project(name=plan.project, title=plan.title, purpose=plan.purpose, sites=names,
                               members=plan.researchers, actor=actor)  # fmt: skip
        except EnclaveError as exc:
            if getattr(exc, "status", None) != 409:
                raise
    finally:
        registry.close()
    consortium = LocalConsortium(root, plan, authority, coordinator_paths, credentials, free_port())
    linkage_key = root / "linkage.key"  # the sites' shared key for count-once tasks: never in the coordinator's home
    if not linkage_key.exists():
        LinkageKey.generate().write(linkage_key)
    for name in names:
        paths = provision_site(root / name, exports / name, plan, actor=actor)
        if host:
            ensure_host(paths, {plan.project: [RUN_USER]}, egress_table=egress_table or EGRESS_TABLE)
        site_credentials = root / f"{name}-tls"
        pki.write_node_credentials(site_credentials, ca.issue(name, "site"))
        site_registry = Registry.of(paths)
        try:
            config = SiteConfig(coordinator_url=consortium.url, coordinator=plan.coordinator,
                                coordinator_key=signing_key, run_user=RUN_USER)  # fmt: skip
            site_setup.join(paths, site_registry, config, site_credentials, actor=actor)
            site_setup.install_policy(paths, site_registry, site_policy_text(plan, name), actor=actor)
            site_linkage.install_key(paths, linkage_key)
        finally:
            site_registry.close()
        consortium.sites[name] = paths
    return consortium


def serve(consortium: LocalConsortium, environment: Mapping[str, str] | None = None) -> subprocess.Popen:
    """The coordinator's server, as its own process, listening before this returns."""
    process = subprocess.Popen(
        [str(ENCLAVE), "--home", str(consortium.coordinator.home), "federation", "coordinator", "serve", "--port",
         str(consortium.port), "--credentials", str(consortium.coordinator_credentials)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(environment or {})},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EnclaveError(f"the coordinator's server exited ({process.returncode})")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", consortium.port)) == 0:
                consortium.server = process
                return process
        time.sleep(0.2)
    process.terminate()
    raise EnclaveError("the coordinator's server did not listen within 60 s")


def stop(consortium: LocalConsortium) -> None:
    """Stop the coordinator's server (a restart is `stop` then `serve`: its state is the registry's)."""
    if consortium.server is not None:
        consortium.server.terminate()
        consortium.server.wait(timeout=30)
        consortium.server = None


def agents_pass(consortium: LocalConsortium, sites: Iterable[str] | None = None,
                environment: Mapping[str, str] | None = None) -> dict[str, float]:  # fmt: skip
    """One pass of each site's agent (`enclave federation agent --once`), each its own process, all at once; the
    seconds each took. EnclaveError naming the site when one fails."""
    chosen = list(consortium.sites) if sites is None else list(sites)
    started = time.monotonic()
    env = {**os.environ, **(environment or {})}
    running = {}
    for name in chosen:
        command = [str(ENCLAVE), "--home", str(consortium.sites[name].home), "federation", "agent", "--once"]
        running[name] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    took = {}
    for name, process in running.items():
        _, err = process.communicate(timeout=3600)
        took[name] = time.monotonic() - started
        if process.returncode != 0:
            raise EnclaveError(f"site {name}'s agent failed ({process.returncode}): {err.decode()[-1000:]}")
    return took


def scripted_review(paths: Paths, task_id: str, checkers: Iterable[str], *, note: str) -> list[str]:
    """A site's output checkers played by a script (the benchmarks' automatic approval, the tests): each approves
    every file of the task's release request, a blocked one with `note` as the written reason, and the first
    releases it. What was released. Never part of a real site: there, people review."""
    checkers = list(checkers)
    registry = Registry.of(paths)
    try:
        airlock = Airlock(registry, paths)
        with registry.session() as session:
            request_id = session.get(SiteTask, task_id).request_id
        for checker in checkers:
            for f in airlock.request(request_id, checker)["files"]:
                airlock.vote(request_id, checker, f["path"], "approve", note, note if f["blocked"] else "")
            airlock.submit_review(request_id, checker)
        return airlock.release(request_id, checkers[0])
    finally:
        registry.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
