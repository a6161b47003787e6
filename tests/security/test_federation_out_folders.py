"""`enclave federate results | pool | dummy-view --out DIR` run as root through sudo for a researcher, and DIR is the
researcher's to choose: the files are written with the researcher's rights, never root's, so a link in DIR cannot
make root write where the researcher may not (a root-only folder, /etc)."""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
from pathlib import Path

import pytest

from federation.coordinator import Coordinator
from kernel.config import Paths
from kernel.db import Registry
from tests.federation_nodes import COORDINATOR, ENCLAVE, PROJECT, PURPOSE, RESEARCHER

pytestmark = [
    pytest.mark.security,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the command drops to the calling account's rights"),
]
NOBODY = pwd.getpwnam("nobody")


def as_researcher(home: Path, *args: str) -> subprocess.CompletedProcess:
    """`sudo enclave …` by an unprivileged account (nobody's ids, the registry's member name)."""
    env = {**os.environ, "SUDO_USER": RESEARCHER, "SUDO_UID": str(NOBODY.pw_uid), "SUDO_GID": str(NOBODY.pw_gid)}
    return subprocess.run([str(ENCLAVE), "--home", str(home), *args], capture_output=True, text=True, env=env,
                          timeout=600, check=False)  # fmt: skip


def test_an_out_folder_is_written_with_the_callers_rights_and_a_link_cannot_make_root_write(tmp_path: Path) -> None:
    home = tmp_path / "coordinator"
    home.mkdir()
    registry = Registry.of(Paths(home))
    try:
        coordinator = Coordinator(registry, Paths(home), COORDINATOR)
        coordinator.create_project(name=PROJECT, title="t", purpose=PURPOSE, sites=["rbh"], members=[RESEARCHER],
                                   actor="admin")  # fmt: skip
    finally:
        registry.close()
    (home / "federation" / "coordinator" / "coordinator.yaml").write_text(f"name: {COORDINATOR}\n")
    root_only = tmp_path / "root-only"
    root_only.mkdir(mode=0o700)
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="enclave-out-") as scratch:  # a folder nobody can reach
        Path(scratch).chmod(0o755)
        theirs = Path(scratch) / "theirs"
        theirs.mkdir()
        os.chown(theirs, NOBODY.pw_uid, NOBODY.pw_gid)
        (theirs / "evil").symlink_to(root_only)
        check_out_folders(home, theirs, root_only)


def check_out_folders(home: Path, theirs: Path, root_only: Path) -> None:
    refused = as_researcher(home, "federate", "dummy-view", "--project", PROJECT, "--out", str(theirs / "evil" / "v"),
                            "--patients", "20")  # fmt: skip
    assert refused.returncode == 1 and "with your rights" in refused.stderr, refused.stderr[-2000:]
    assert list(root_only.iterdir()) == []  # root followed no link into its own folder

    done = as_researcher(home, "federate", "dummy-view", "--project", PROJECT, "--out", str(theirs / "view"),
                         "--patients", "20")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    written = [p for p in (theirs / "view").rglob("*") if p.is_file()]
    assert written and {p.stat().st_uid for p in written} == {NOBODY.pw_uid}  # theirs, not root's
    assert (theirs / "view" / "MANIFEST.json").exists() and (theirs / "view" / "DUMMY.txt").exists()
