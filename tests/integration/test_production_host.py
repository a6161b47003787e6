"""The production path end to end (issue 16's acceptance): a host installed with the documented steps and no demo
(`enclave install`, its settings file edited, sites, people and a project added through the CLI, the project's spec
then edited) serves the project; a simulated reboot (the service stopped as systemd stops it, the host's loop mounts
and nftables table gone, as after a power cycle) is survived by running what the two systemd units run, in their
order; and a backup taken while it runs restores onto a second home whose audit chain verifies.

The units' commands are read from the unit files `enclave install` wrote, and their environment from the settings
file those units name, so the test runs what systemd would. The staging tree stands in for `/`. Root only."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
import requests

from provisioning.host import remove_egress_rules
from provisioning.storage import release_all_under
from tests.hub_runner import free_ports, login_form
from tests.workspace_hub import needs_enclave

pytestmark = [pytest.mark.integration, needs_enclave, pytest.mark.timeout(900)]
ENCLAVE = Path(sys.executable).with_name("enclave")
PASSWORD = "a long enough password for tests"
PEOPLE = {"erin": "researcher", "fred": "researcher", "carol": "output_checker", "dave": "output_checker"}


def unit_command(unit: Path) -> list[str]:
    """The ExecStart= command of a unit file `enclave install` wrote."""
    line = next(x for x in unit.read_text().splitlines() if x.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def settings_environment(settings: Path) -> dict[str, str]:
    """What systemd's EnvironmentFile= gives the unit: the settings file's NAME=value lines."""
    pairs = (line.split("=", 1) for line in settings.read_text().splitlines() if line and not line.startswith("#"))
    return dict(pairs)


class Host:
    """The staged host: `enclave` as an admin runs it (only the settings file says where things are)."""

    def __init__(self, root: Path, settings: Path) -> None:
        self.root, self.settings = root, settings
        base = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
        self.env = {**base, "ENCLAVE_SETTINGS_FILE": str(settings)}
        self.service: subprocess.Popen | None = None

    def enclave(self, *args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(ENCLAVE), *args], env=self.env, input=stdin, capture_output=True, text=True,
                              timeout=600, check=False)  # fmt: skip
        if ok:
            assert done.returncode == 0, f"enclave {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done

    def boot(self, url: str) -> None:
        """What systemd runs at boot: enclave-host.service to the end, then enclave.service, left running."""
        units = self.root / "etc/systemd/system"
        environment = {**self.env, **settings_environment(self.settings)}
        host = subprocess.run(unit_command(units / "enclave-host.service"), env=environment, capture_output=True,
                              text=True, timeout=600, check=False)  # fmt: skip
        assert host.returncode == 0, host.stdout[-2000:] + host.stderr[-2000:]
        log = (self.root / "enclave.service.log").open("ab")
        self.service = subprocess.Popen(unit_command(units / "enclave.service"), env=environment, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 240
        while True:
            assert self.service.poll() is None, "enclave.service exited: " + self.log_tail()
            try:
                if requests.get(f"{url}/hub/health", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the hub did not answer: " + self.log_tail()
            time.sleep(1)

    def stop(self) -> None:
        """As `systemctl stop enclave`: SIGTERM to the service, which stops everything it started."""
        if self.service is not None and self.service.poll() is None:
            self.service.send_signal(signal.SIGTERM)
            self.service.wait(180)
        self.service = None

    def log_tail(self) -> str:
        path = self.root / "enclave.service.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def serves_the_project(url: str, user: str, seed: str, project: str) -> None:
    http, answer = login_form(url, {"username": user, "password": PASSWORD, "otp": pyotp.TOTP(seed).now()})
    assert answer.status_code == 302, "the researcher cannot sign in"
    home = http.get(f"{url}/hub/home", timeout=30)
    assert home.status_code == 200 and project in home.text, "the hub does not offer the project's workspace"


def test_a_production_host_serves_an_edited_project_survives_a_reboot_and_restores(tmp_path, cohort, workspace_env):
    root = tmp_path / "host"
    installed = subprocess.run([str(ENCLAVE), "install", "--root", str(root), "--home", "/var/lib/enclave"],
                               env={**os.environ, "ENCLAVE_SETTINGS_FILE": ""}, capture_output=True, text=True,
                               timeout=300, check=False)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    home = root / "var/lib/enclave"
    settings = root / "etc/enclave/enclave.env"
    public, proxy_api, airlock = free_ports(3)
    table = f"enclave_egress_t{secrets.token_hex(3)}"
    # the admin edits the settings (here the staging tree stands in for /, so the home is under it)
    text = settings.read_text().replace("ENCLAVE_HOME=/var/lib/enclave", f"ENCLAVE_HOME={home}")
    settings.write_text(text + f"ENCLAVE_HUB_PORT={public}\nENCLAVE_PROXY_API_PORT={proxy_api}\n"
                        f"ENCLAVE_AIRLOCK_PORT={airlock}\nENCLAVE_EGRESS_TABLE={table}\n"
                        f"ENCLAVE_WORKSPACE_ENV={workspace_env}\n")  # fmt: skip
    host = Host(root, settings)
    url = f"http://localhost:{public}"
    try:
        # sites, consent, people and a project, as the admin how-to says, through the settings file only
        for site in sorted(p for p in cohort.iterdir() if (p / "site.yaml").exists()):
            host.enclave("site", "add", str(site), "--quiet")
            host.enclave("consent", "import", str(site / "consent.ndjson"), "--site", site.name)
        seeds = {}
        for user in PEOPLE:
            added = host.enclave("user", "add", user, "--password-stdin", stdin=PASSWORD + "\n").stdout
            uri = re.search(r"otpauth://\S+", added).group(0)
            seeds[user] = parse_qs(urlparse(uri).query)["secret"][0]
        spec = tmp_path / "heart.yaml"
        members = "".join(f"  - {{user: {u}, role: {r}}}\n" for u, r in PEOPLE.items() if u != "fred")
        spec.write_text(f"name: heart\ntitle: Heart\npurpose: DS-CVD\ndatasets: ['*']\nmembers:\n{members}")
        host.enclave("project", "create", "-f", str(spec))
        host.enclave("project", "materialise", "heart", "--quiet")
        # the spec edited: fred joins, the title changes
        spec.write_text(spec.read_text().replace("title: Heart", "title: Heart failure")
                        + "  - {user: fred, role: researcher}\n")  # fmt: skip
        changed = host.enclave("project", "create", "-f", str(spec), "--replace", "--yes").stdout
        assert "+ member fred (researcher)" in changed and "project heart updated" in changed

        host.boot(url)
        serves_the_project(url, "fred", seeds["fred"], "heart")
        store = home / "projects/heart/store"
        assert os.path.ismount(store)

        # a simulated reboot: the service stopped, then what a power cycle loses (loop mounts, the nftables table)
        host.stop()
        host.enclave("host", "release")
        remove_egress_rules(table=table)
        assert not os.path.ismount(store)
        host.boot(url)
        serves_the_project(url, "erin", seeds["erin"], "heart")
        assert os.path.ismount(store), "enclave-host.service did not mount the project's file system again"
        rules = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True, check=False)
        assert rules.returncode == 0, "enclave-host.service did not put the egress rule back"

        # a backup while it runs, restored onto a second home: the audit chain verifies
        backup = tmp_path / "backups" / "nightly"
        backup.parent.mkdir(mode=0o700)
        host.enclave("backup", str(backup), "--quiet")
        host.stop()
        second = tmp_path / "second-home"
        restored = host.enclave("restore", str(backup), "--home", str(second), "--quiet").stdout
        assert "audit log intact" in restored
        alone = {**host.env, "ENCLAVE_SETTINGS_FILE": ""}  # the second home, not the host's settings
        verified = subprocess.run([str(ENCLAVE), "--home", str(second), "audit", "verify"], capture_output=True,
                                  text=True, timeout=300, check=False, env=alone)  # fmt: skip
        assert verified.returncode == 0 and "audit log intact" in verified.stdout, verified.stdout + verified.stderr
    finally:
        host.stop()
        release_all_under(root)
        release_all_under(tmp_path / "second-home")
        remove_egress_rules(table=table)
