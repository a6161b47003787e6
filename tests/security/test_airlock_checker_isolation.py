"""Red team on the checker sandbox: the airlock parses researcher files as its own unprivileged account, in a
bubblewrap sandbox with no network and nothing of the host's but the read-only system and Python environment.

A probe check (`output_checks.sandbox.mocking.ProbeCheck`, swapped in as a plugin) runs inside the real sandbox
and reports what it can reach; every refusal is immediate (a missing path, a refused connection), never a time-out.
Root only: it makes a throwaway checks account through the same provisioning step as `enclave host apply`."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from output_checks.policy import load_policy
from output_checks.sandbox import mocking
from output_checks.sandbox.confinement import REPO, Isolation, isolation, sandbox_argv
from output_checks.sandbox.runner import CheckerLimits, SandboxFile, check_files_sandboxed
from output_checks.sandbox.staging import Staging
from provisioning.host import HostError, ensure_checks_account
from tests.host_accounts import needs_root

pytestmark = [pytest.mark.integration, pytest.mark.security, needs_root("useradd", "userdel", "setpriv", "bwrap")]

LIMITS = CheckerLimits(seconds_per_file=60, startup_seconds=60)


@pytest.fixture
def account() -> Iterator[Isolation]:
    name = f"enclave-ac-{secrets.token_hex(3)}"
    try:
        ensure_checks_account(name)
        yield isolation(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture
def secrets_on_host() -> Iterator[dict[str, Path]]:
    """Files the checker must not see: root's, and an Enclave registry that any account could read by its mode."""
    root_canary = Path("/root") / f"enclave-canary-{secrets.token_hex(4)}"
    root_canary.write_text("root's")
    home = Path(tempfile.mkdtemp(prefix="enclave-home-", dir="/tmp"))
    home.chmod(0o755)
    registry = home / "registry.db"
    registry.write_text("the registry")
    registry.chmod(0o644)
    try:
        yield {"root": root_canary, "registry": registry, "home": home}
    finally:
        root_canary.unlink()
        registry.unlink()
        home.rmdir()


def probe(tmp_path: Path, account: Isolation, probes: list[list]) -> dict:
    (tmp_path / "probe.txt").write_bytes(mocking.PROBE + json.dumps(probes).encode())
    policy = load_policy().model_copy(update={"checks": ["mock_probe"]})
    (report,) = check_files_sandboxed(
        [SandboxFile(tmp_path / "probe.txt", "probe.txt")], policy, limits=LIMITS, account=account.account,
        plugins=mocking.PLUGINS,
    )  # fmt: skip
    (finding,) = report.findings
    assert finding.check == "mock_probe", finding.message
    return json.loads(finding.message)


def test_checks_run_as_the_checks_account_with_no_capability(tmp_path: Path, account: Isolation) -> None:
    seen = probe(tmp_path, account, [])
    assert (seen["uid"], seen["gid"]) == (account.uid, account.gid) and account.uid not in (0, None)
    assert int(seen["cap_eff"], 16) == 0
    assert len(seen["pids"]) <= 3  # its own PID namespace: bwrap's init and the checker, no host process


def test_the_checker_cannot_read_root_or_the_registry_or_the_hosts_tmp(
    tmp_path: Path, account: Isolation, secrets_on_host: dict[str, Path]
) -> None:
    seen = probe(
        tmp_path, account,
        [["read", str(secrets_on_host["root"])], ["read", str(secrets_on_host["registry"])], ["list", "/root"],
         ["list", "/tmp"], ["list", "/"], ["read", "/etc/shadow"], ["list", "/airlock/in"]],
    )  # fmt: skip
    assert seen[json.dumps(["read", str(secrets_on_host["root"])])] == "ENOENT"
    assert seen[json.dumps(["read", str(secrets_on_host["registry"])])] == "ENOENT"
    assert seen[json.dumps(["read", "/etc/shadow"])] == "ENOENT"
    assert seen[json.dumps(["list", "/root"])] in (".pyenv", "ENOENT")  # at most the interpreter it runs on
    assert seen[json.dumps(["list", "/tmp"])].startswith("airlock-")  # its own scratch, not the host's /tmp
    bound_trees = {Path(p).resolve().parts[1] for p in (REPO, sys.prefix, sys.base_prefix)}  # code it runs, wherever
    assert set(seen[json.dumps(["list", "/"])].split(",")) <= {
        "airlock", "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "root", "sbin", "tmp", "usr",
    } | bound_trees  # fmt: skip
    assert seen[json.dumps(["list", "/airlock/in"])] == "0"  # only the file under check


def test_the_checker_has_no_network(tmp_path: Path, account: Isolation) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        seen = probe(tmp_path, account, [["connect", "127.0.0.1", port], ["connect", "192.0.2.1", 80]])
    assert seen[json.dumps(["connect", "127.0.0.1", port])] == "ECONNREFUSED"  # its own loopback, not the host's
    assert seen[json.dumps(["connect", "192.0.2.1", 80])] == "ENETUNREACH"  # no route anywhere


def test_the_sandbox_command_line_unshares_the_network_and_drops_to_the_account(account: Isolation) -> None:
    staging = Staging(account)
    try:
        argv = sandbox_argv(account, staging.root, LIMITS)
    finally:
        staging.remove()
    assert "--unshare-net" in argv and "--die-with-parent" in argv
    assert f"--reuid={account.uid}" in argv and "--no-new-privs" in argv
    assert not any(token in " ".join(argv) for token in ("registry", "secrets", "TOKEN", "PASSWORD"))


def test_the_checks_account_is_never_one_that_someone_else_made() -> None:
    name = f"enclave-ac-{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/bash", name], check=True)
    try:
        with pytest.raises(HostError, match="not Enclave's checks account"):
            ensure_checks_account(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def test_acro_evidence_is_never_staged_through_a_link(tmp_path: Path, account: Isolation) -> None:
    # ACRO's record beside a table is copied into the sandbox by root: a researcher's `checksums` link to a folder
    # only root can read must not make root copy from it.
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "t.csv").write_text("site,n\na,120\n")
    (outputs / "results.json").write_text('{"tool": {"name": "ACRO"}, "results": {}}')
    private = Path(tempfile.mkdtemp(prefix="enclave-root-only-"))
    try:
        private.chmod(0o700)
        (private / "t.csv.txt").write_text("ROOT-ONLY-SECRET")
        (outputs / "checksums").symlink_to(private)
        staging = Staging(account)
        try:
            staging.add(0, SandboxFile(outputs / "t.csv", "t.csv"))
            staged = staging.root / "in" / "0"
            assert (staged / "results.json").is_file()  # the record itself, beside the table, is staged
            assert not (staged / "checksums" / "t.csv.txt").exists()
        finally:
            staging.remove()
    finally:
        shutil.rmtree(private)
