"""`enclave up`, `enclave status` and `enclave down` as an admin runs them: the hub starts in the background on the
configured loopback port, both say the address a person opens (`http://localhost:PORT`: on loopback each person and
the airlock get origins of their own by default), status reports it (exit 0) and which workspaces are open, down
stops the hub, the proxy and the airlock service (status then exits 3), and a second `up` while running is refused.
Root only."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from hub import lifecycle
from provisioning.host import remove_egress_rules
from tests.hub_runner import free_ports
from tests.workspace_hub import needs_enclave, provision

pytestmark = [pytest.mark.integration, needs_enclave]

ENCLAVE = Path(sys.executable).with_name("enclave")


def test_up_status_down(tmp_path, cohort, workspace_env):
    paths, _ = provision(tmp_path / "home", cohort)
    public, proxy_api, airlock = free_ports(3)
    table = f"enclave_egress_t{secrets.token_hex(3)}"
    inherited = {k: v for k, v in os.environ.items() if k not in ("ENCLAVE_HUB_IP", "ENCLAVE_SUBDOMAIN_HOST")}
    env = {**inherited, "ENCLAVE_HOME": str(paths.home), "ENCLAVE_WORKSPACE_ENV": str(workspace_env),
           "ENCLAVE_HUB_PORT": str(public), "ENCLAVE_PROXY_API_PORT": str(proxy_api),
           "ENCLAVE_AIRLOCK_PORT": str(airlock), "ENCLAVE_EGRESS_TABLE": table}  # fmt: skip

    def enclave(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(ENCLAVE), *args], env=env, capture_output=True, text=True, timeout=300, check=False)

    try:
        assert enclave("status").returncode == 3
        up = enclave("up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"running at http://localhost:{public}/ " in up.stdout
        assert requests.get(f"http://localhost:{public}/hub/login", timeout=10).status_code == 200
        airlock = requests.get(f"http://localhost:{public}/services/airlock/", timeout=10)  # on its own origin
        assert airlock.ok and any(
            r.url.startswith(f"http://airlock--service.localhost:{public}/") for r in airlock.history
        )

        state = enclave("status")
        assert state.returncode == 0 and f"answering at http://localhost:{public}/" in state.stdout
        assert "workspaces 0 open" in state.stdout
        again = enclave("up")
        assert again.returncode == 1 and "already running" in again.stderr

        pid = lifecycle.read_pid(paths)
        down = enclave("down")
        assert down.returncode == 0 and "stopped" in down.stdout
        assert lifecycle.read_pid(paths) is None
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # the proxy and the service went with the hub
        assert enclave("status").returncode == 3
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{public}/hub/login", timeout=5)
    finally:
        if (pid := lifecycle.read_pid(paths)) is not None:
            lifecycle.stop_process(pid)
        remove_egress_rules(table=table)
