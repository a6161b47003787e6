"""A production host without the demo (issue 16): `enclave install` writes the site's settings file, systemd units
that systemd itself accepts (`systemd-analyze verify`), log rotation and an empty registry, idempotently and never
over the admin's settings; and every `enclave` command, through sudo too, reads the settings file, which root trusts
only when nobody else may write it. The CLI runs as an admin would run it, in subprocesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ENCLAVE = Path(sys.executable).with_name("enclave")
HOME = "/var/lib/enclave-under-test"


def enclave(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")} | {"ENCLAVE_SETTINGS_FILE": ""}
    return subprocess.run([str(ENCLAVE), *args], capture_output=True, text=True, timeout=300, check=False,
                          env=environ | (env or {}))  # fmt: skip


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing: .ci/run installs the systemd package")
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    return found


def test_install_writes_a_host_that_systemd_accepts_and_keeps_the_admins_settings(tmp_path):
    root = tmp_path / "host"
    first = enclave("install", "--root", str(root), "--home", HOME)
    assert first.returncode == 0, first.stderr
    settings = root / "etc/enclave/enclave.env"
    units = root / "etc/systemd/system"
    assert f"ENCLAVE_HOME={HOME}\n" in settings.read_text()
    assert settings.stat().st_mode & 0o777 == 0o640 and settings.parent.stat().st_mode & 0o777 == 0o750
    assert (root / HOME.lstrip("/") / "registry.sqlite").is_file(), "no registry: no demo data, but a schema"
    hub = (units / "enclave.service").read_text()
    assert f"ExecStart={ENCLAVE} up --foreground" in hub and "Restart=on-failure" in hub
    assert "EnvironmentFile=/etc/enclave/enclave.env" in hub, "the units name the real paths, not the staging tree"
    assert (
        "Requires=enclave-host.service" in hub
        and f"ExecStart={ENCLAVE} host apply" in (units / "enclave-host.service").read_text()
    )
    assert f"{HOME}/hub/jupyterhub.log" in (root / "etc/logrotate.d/enclave").read_text()
    assert "not done here" in first.stdout  # a staging tree: nothing enabled

    verified = subprocess.run([systemd_analyze(), "verify", "enclave-host.service", "enclave.service"], cwd=units,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr

    settings.write_text(settings.read_text() + "ENCLAVE_HUB_PORT=8443\n")  # the admin's edit
    again = enclave("install", "--root", str(root), "--home", HOME)
    assert again.returncode == 0, again.stderr
    assert "kept (yours to edit)" in again.stdout and "enclave.service unchanged" in again.stdout
    assert settings.read_text().endswith("ENCLAVE_HUB_PORT=8443\n")


def test_every_command_reads_the_settings_file_and_the_environment_wins(tmp_path):
    folder = tmp_path / "etc-enclave"
    folder.mkdir(mode=0o700)
    settings = folder / "enclave.env"
    settings.write_text(f"# this host\nENCLAVE_HOME='{tmp_path / 'from-file'}'\n\n")
    settings.chmod(0o600)
    listed = enclave("site", "list", env={"ENCLAVE_SETTINGS_FILE": str(settings)})
    assert listed.returncode == 0, listed.stderr
    assert (tmp_path / "from-file" / "registry.sqlite").is_file(), "the settings file's home was not used"
    mine = enclave("site", "list", env={"ENCLAVE_SETTINGS_FILE": str(settings), "ENCLAVE_HOME": str(tmp_path / "env")})
    assert mine.returncode == 0 and (tmp_path / "env" / "registry.sqlite").is_file(), "the environment must win"


@pytest.mark.parametrize(
    ("content", "mode", "expected"),
    [
        ("ENCLAVE_HOME=/x\n", 0o620, "must not be writable by its group or others"),
        ("PATH=/tmp/evil\n", 0o600, "line 1: PATH is not an Enclave setting"),
        ("ENCLAVE_HOME /x s3cr3t-value\n", 0o600, "line 1: not a NAME=value setting"),
    ],
)
def test_a_settings_file_root_should_not_trust_is_refused(tmp_path, content, mode, expected):
    folder = tmp_path / "etc-enclave"
    folder.mkdir(mode=0o700)
    settings = folder / "enclave.env"
    settings.write_text(content)
    settings.chmod(mode)
    refused = enclave("site", "list", env={"ENCLAVE_SETTINGS_FILE": str(settings)})
    assert refused.returncode == 1 and expected in refused.stderr, refused.stderr
    assert "s3cr3t" not in refused.stderr and "Traceback" not in refused.stderr
