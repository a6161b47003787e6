"""Making an Enclave a consortium's site: joining (pinning the coordinator's key, keeping this site's credentials)
and installing its policy. The command line (`enclave federation join`, `policy`) and the local consortium of the
demo and the benchmarks (federation/local_consortium.py) both call these."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import yaml

from federation import pki, site_policy, tasks
from federation.agent import SiteConfig, SiteFiles
from kernel import audit
from kernel.config import Paths
from kernel.db import Registry
from kernel.errors import EnclaveError
from kernel.secret_files import write_secret, write_secret_bytes

NOTHING_ACCEPTED = "projects: {}\n"  # a site that just joined accepts no federated project


def join(paths: Paths, registry: Registry, config: SiteConfig, credentials: Path, *, actor: str) -> pki.NodeIdentity:
    """Keep this site's node credentials (root-only) and its settings; the policy starts accepting nothing.
    Refused when the credentials are not a site's or the coordinator's key is not an Ed25519 public key."""
    tasks.load_public_key(config.coordinator_key)
    files = SiteFiles.of(paths)
    paths.federation.mkdir(mode=0o700, parents=True, exist_ok=True)
    for source in sorted(credentials.iterdir()):
        if source.is_file() and not source.is_symlink():
            write_secret_bytes(files.credentials / source.name, source.read_bytes())
    identity = pki.node_identity(files.credentials)
    if identity.role != "site":
        shutil.rmtree(files.credentials, ignore_errors=True)
        raise EnclaveError(f"those credentials are a {identity.role}'s, not a site's")
    write_secret(files.config, yaml.safe_dump(config.model_dump(), sort_keys=False))
    if not files.policy.exists():
        write_secret(files.policy, NOTHING_ACCEPTED)
    registry.transaction(lambda s: audit.record(s, actor=actor, action="federation.site_joined", target=identity.name,
                                                coordinator=config.coordinator, serial=identity.serial))  # fmt: skip
    return identity


def install_policy(paths: Paths, registry: Registry, text: str, *, actor: str) -> site_policy.SitePolicy:
    """Check the policy and make it the site's; audited with its SHA-256."""
    files = SiteFiles.of(paths)
    staged = files.root / ".policy.checking.yaml"
    write_secret(staged, text)
    try:
        policy = site_policy.load_policy(staged)
    finally:
        staged.unlink(missing_ok=True)
    write_secret(files.policy, text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    registry.transaction(lambda s: audit.record(s, actor=actor, action="federation.policy_installed",
                                                target="site-policy", sha256=digest))  # fmt: skip
    return policy
