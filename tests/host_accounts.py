"""Test helper for host provisioning: throwaway project accounts (removed even when a test fails), a traversable
scratch Enclave home, and running a small probe as a project account through setpriv.

These tests change the host (Unix accounts, nftables, network namespaces), so they need root and skip otherwise;
every name they create carries a random suffix and is removed in a `finally`."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fabric.materialise.view import _seal, publish
from kernel.config import Paths
from provisioning.host import ProjectAccount, ensure_project_account, remove_project_account

SYSTEM_PYTHON = "/usr/bin/python3"  # reachable by any account, unlike the venv under the checkout


def needs_root(*tools: str) -> pytest.MarkDecorator:
    """Skip unless root with every tool on PATH (or in /usr/sbin): these tests create accounts and rules."""
    missing = [t for t in tools if not (shutil.which(t) or shutil.which(t, path="/usr/sbin:/sbin"))]
    if os.geteuid() != 0:
        return pytest.mark.skipif(True, reason="needs root: creates Unix accounts, nftables tables, network namespaces")
    return pytest.mark.skipif(
        bool(missing), reason=f"needs {', '.join(missing)} (Debian packages nftables, iproute2, util-linux, passwd)"
    )


def throwaway_project(prefix: str = "ht") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@contextmanager
def throwaway_account(prefix: str = "ht") -> Iterator[ProjectAccount]:
    project = throwaway_project(prefix)
    try:
        account, _ = ensure_project_account(project)
        yield account
    finally:
        remove_project_account(project)


@contextmanager
def scratch_home() -> Iterator[Path]:
    """An Enclave home under /tmp that other accounts may traverse (0711), as /var/lib/enclave is."""
    home = Path(tempfile.mkdtemp(prefix="enclave-host-", dir="/tmp"))
    try:
        home.chmod(0o711)
        yield home
    finally:
        from provisioning.storage import release_all_under

        release_all_under(home)  # `enclave host apply` mounts each project's file system inside the home
        shutil.rmtree(home, ignore_errors=True)


PROBE = r"""
import errno, json, os, sys
op, path = sys.argv[1], sys.argv[2]
try:
    if op == "read":
        with open(path, "rb") as fh:
            fh.read(1)
    elif op == "list":
        os.listdir(path)
    elif op == "write":
        with open(os.path.join(path, "probe.txt"), "x") as fh:
            fh.write("written by the project account")
    print(json.dumps("ok"))
except OSError as exc:
    print(json.dumps(errno.errorcode.get(exc.errno, str(exc.errno))))
"""


def as_account(account: ProjectAccount, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run `argv` as the account with only its own group, as a workspace runs after bubblewrap."""
    drop = ["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--clear-groups", "--"]
    return subprocess.run([*drop, *argv], capture_output=True, text=True, cwd="/", check=False, **kwargs)


def try_as(account: ProjectAccount, op: str, path: Path) -> str:
    """'ok' or the errno name of `op` (read a file, list a folder, write a new file in a folder) as the account."""
    done = as_account(account, [SYSTEM_PYTHON, "-I", "-c", PROBE, op, str(path)], timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def fake_build(paths: Paths, project: str, build_id: str, files: dict[str, bytes]) -> Path:
    """A build laid out and published as the materialiser does it: staging folder, sealed, renamed, `data` swapped."""
    staging = paths.project_dir(project) / "views" / f".staging-{build_id}"
    staging.mkdir(parents=True)
    for relative, body in files.items():
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        (staging / relative).write_bytes(body)
    _seal(staging)
    return publish(paths.project_dir(project), staging, build_id)


VIEW = {
    "MANIFEST.json": b"{}",
    "clinical/patients.parquet": b"PAR1",
    "imaging/p1/s1/1.dcm": b"DICM",
    "genomics/bam/p1.bam": b"BAM\x01",
}
