"""A production host, without the demo: the site's settings file, systemd units that bring the host rules and Enclave
back at every boot and restart the hub if it fails, log rotation, and an empty registry. Each step is idempotent
(`ensure_*`, as in steps.py): a file already as it should be is left alone, and the settings file, once written, is
the admin's and never overwritten. `enclave install` runs them; docs/how-to/install.md is the walk-through.

| file | what |
| --- | --- |
| /etc/enclave/enclave.env | the site's ENCLAVE_* settings (provisioning/site_settings.py), root's, 0640 |
| /etc/systemd/system/enclave-host.service | at boot: `enclave host apply` (accounts, file systems, nftables) |
| /etc/systemd/system/enclave.service | `enclave up --foreground`, after the host rules; restarted on failure |
| /etc/logrotate.d/enclave | the hub's, the workspaces' and the airlock's log files, weekly, 8 kept, compressed |

`root` puts every path under another folder (a staging tree, the tests); the files still name the real paths.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kernel.config import Paths
from kernel.db import Registry
from provisioning.site_settings import DEFAULT_SETTINGS
from provisioning.steps import StepResult

UNITS = ("enclave-host.service", "enclave.service")
SYSTEMD_DIR = Path("/etc/systemd/system")
LOGROTATE_FILE = Path("/etc/logrotate.d/enclave")
DEFAULT_HOME = Path("/var/lib/enclave")
INSTALL_DOC = Path(__file__).resolve().parents[1] / "docs" / "how-to" / "install.md"

SETTINGS_TEMPLATE = """\
# Enclave's settings for this host (docs/reference/hub-config.md lists every one). Read by the systemd units and by
# every `enclave` command (also through sudo); a variable set in the environment wins. Root's, 0640: keep it so.
ENCLAVE_HOME={home}
# Where browsers reach Enclave, and its public name (each person's workspaces on NAME.host, with wildcard DNS and
# certificate; see docs/how-to/admin.md, "Separate origins").
ENCLAVE_HUB_IP=127.0.0.1
ENCLAVE_HUB_PORT=8000
# ENCLAVE_SUBDOMAIN_HOST=https://enclave.example.org
# ENCLAVE_PUBLIC_URL=https://enclave.example.org
# Platform admins (group platform-admins), comma-separated.
# ENCLAVE_ADMINS=
# The airlock's e-mail notices to output checkers (docs/reference/hub-config.md, "Notices").
# ENCLAVE_SMTP_HOST=
# ENCLAVE_SMTP_FROM=
# Sign-in: local accounts (password + TOTP) unless an OpenID provider is set up (docs/how-to/admin.md, "Production
# sign-in: OIDC with MFA"); the client secret and the crypt key stay in files of their own, root's, 0600.
# ENCLAVE_AUTH=oidc
# ENCLAVE_OIDC_ISSUER=https://idp.example.org/realms/enclave
# ENCLAVE_OIDC_CLIENT_ID=enclave-hub
# ENCLAVE_OIDC_CLIENT_SECRET_FILE=/etc/enclave/oidc-client-secret
# ENCLAVE_CRYPT_KEY_FILE=/etc/enclave/crypt-key
# ENCLAVE_OIDC_USERNAME_CLAIM=email
# ENCLAVE_OIDC_USERNAME_MAPPING=email
# ENCLAVE_OIDC_ALLOWED_DOMAINS=trust.nhs.uk
# Projects with compute.engine: slurm: the site's slurm.conf, where it is not /etc/slurm/slurm.conf (docs/how-to/
# admin.md, "Run Dask on a SLURM cluster"; the jobs' settings go in /etc/dask/enclave-slurm.yaml).
# ENCLAVE_SLURM_CONF=/etc/slurm/slurm.conf
"""

HOST_UNIT = """\
[Unit]
Description=Enclave host rules: project accounts and file systems, /proc hidepid, the nftables egress table
Documentation={docs}
DefaultDependencies=no
After=local-fs.target
Before=network-pre.target enclave.service
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
EnvironmentFile={settings}
ExecStart={enclave} host apply

[Install]
WantedBy=multi-user.target
"""

HUB_UNIT = """\
[Unit]
Description=Enclave: JupyterHub, its proxy, the airlock service and the workspaces
Documentation={docs}
Requires=enclave-host.service
After=enclave-host.service network-online.target
Wants=network-online.target

[Service]
Type=simple
EnvironmentFile={settings}
ExecStart={enclave} up --foreground
Restart=on-failure
RestartSec=10
TimeoutStopSec=180
KillMode=mixed

[Install]
WantedBy=multi-user.target
"""

LOGROTATE = """\
# Enclave's log files (journald keeps what the services print). copytruncate: the hub and workspaces keep their files
# open.
{home}/hub/jupyterhub.log {home}/hub/workspace-logs/*.log {home}/airlock/logs/*.log {{
    weekly
    rotate 8
    compress
    delaycompress
    missingok
    notifempty
    copytruncate
    su root root
}}
"""


@dataclass(frozen=True)
class InstallPlan:
    """Where everything goes: `root` prefixes every path written (the files name the real ones)."""

    home: Path = DEFAULT_HOME
    enclave: Path = Path("/usr/local/bin/enclave")  # the `enclave` command the units run
    settings: Path = DEFAULT_SETTINGS
    root: Path = Path("/")

    def under_root(self, path: Path) -> Path:
        return self.root / path.relative_to("/")


def _write(path: Path, content: str, mode: int) -> str:
    """Write `content` to `path` (0`mode`, root's), replacing it atomically when it differs: 'written', 'updated' or
    'unchanged'."""
    if path.is_file() and path.read_text() == content:
        os.chmod(path, mode)
        return "unchanged"
    existed = path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_text(content)
    os.chmod(temporary, mode)
    os.replace(temporary, path)
    return "updated" if existed else "written"


def ensure_settings(plan: InstallPlan) -> StepResult:
    """The settings file, written once with the defaults; after that it is the admin's and is left as it is."""
    path = plan.under_root(plan.settings)
    if path.exists():
        return StepResult("settings", f"{plan.settings} kept (yours to edit)")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    os.chmod(path.parent, 0o750)  # noqa: S103 (root's group may read the settings; nobody else, nobody writes)
    _write(path, SETTINGS_TEMPLATE.format(home=plan.home), 0o640)
    return StepResult("settings", f"{plan.settings} written: edit it, then start Enclave")


def unit_files(plan: InstallPlan) -> dict[str, str]:
    """The systemd units, by file name."""
    fields = {"settings": plan.settings, "enclave": plan.enclave, "docs": INSTALL_DOC.as_uri()}
    return {"enclave-host.service": HOST_UNIT.format(**fields), "enclave.service": HUB_UNIT.format(**fields)}


def ensure_units(plan: InstallPlan) -> StepResult:
    done = [f"{name} {_write(plan.under_root(SYSTEMD_DIR / name), text, 0o644)}"
            for name, text in unit_files(plan).items()]  # fmt: skip
    return StepResult("systemd", ", ".join(done))


def ensure_logrotate(plan: InstallPlan) -> StepResult:
    state = _write(plan.under_root(LOGROTATE_FILE), LOGROTATE.format(home=plan.home), 0o644)
    return StepResult("logrotate", f"{LOGROTATE_FILE} {state}")


def ensure_home(plan: InstallPlan) -> StepResult:
    """The Enclave home (root's, traversable so project accounts reach their folders) and its registry, migrated."""
    paths = Paths(plan.under_root(plan.home))
    paths.home.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.home, 0o711)  # noqa: S103 (traversable, not listable: host apply sets what lies below)
    Registry.of(paths).close()
    return StepResult("home", f"{plan.home}: registry schema up to date")


def systemd_running() -> bool:
    """Whether systemd is this host's init (not in a container without it)."""
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def ensure_enabled(plan: InstallPlan) -> StepResult:
    """The units enabled for the next boot (not started: the admin starts Enclave after editing its settings)."""
    if plan.root != Path("/") or not systemd_running():
        units = " ".join(UNITS)
        return StepResult("enable", f"not done here: run `systemctl daemon-reload && systemctl enable {units}`")
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    subprocess.run(["systemctl", "enable", "--quiet", *UNITS], check=True)
    return StepResult("enable", f"{' and '.join(UNITS)} enabled: they start at boot; `systemctl start enclave` now")


def install(plan: InstallPlan) -> list[StepResult]:
    """Every step, in order, as `enclave install` runs them."""
    return [ensure_settings(plan), ensure_home(plan), ensure_units(plan), ensure_logrotate(plan), ensure_enabled(plan)]
