"""The sandbox as data (hub/sandbox.py), the limits (hub/limits.py) and the hub's configuration (hub/config.py),
checked without starting anything: every row of the sandbox's contract, and what JupyterHub is told."""

from __future__ import annotations

from pathlib import Path

import pytest
from traitlets.config import Config

from fabric.projects import ComputeLimits
from hub import sandbox
from hub.config import HubSettings, apply_config
from hub.limits import Limits, WorkspaceCgroup
from hub.roles import TOKEN_MAX_SECONDS
from kernel.config import Paths

pytestmark = pytest.mark.unit


@pytest.fixture
def layout(tmp_path, monkeypatch) -> sandbox.SandboxLayout:
    env = tmp_path / "env"
    env.mkdir()
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    monkeypatch.setenv("ENCLAVE_WORKSPACE_ENV", str(env))
    paths = Paths(tmp_path / "home")
    return sandbox.layout(paths, "cardio-risk", "alice", uid=990, gid=990, environment={"JUPYTERHUB_X": "1"})


def mounts(argv: list[str]) -> dict[str, tuple[str, str]]:
    """target -> (kind, source) for every bind in a bwrap command line."""
    found = {}
    for i, arg in enumerate(argv):
        if arg in ("--bind", "--ro-bind"):
            found[argv[i + 2]] = (arg, argv[i + 1])
    return found


def test_the_sandbox_mounts_exactly_the_contract(layout, tmp_path):
    argv = layout.argv(["jupyterhub-singleuser"])
    binds = mounts(argv)
    paths = Paths(tmp_path / "home")
    assert binds["/project/data"] == ("--ro-bind", str(paths.project_data("cardio-risk").resolve()))
    assert binds["/project/outputs"] == ("--bind", str(paths.project_outputs("cardio-risk")))
    assert binds["/project/mlflow"] == ("--bind", str(paths.project_mlflow("cardio-risk")))
    assert binds["/home/alice"] == ("--bind", str(paths.project_home("cardio-risk", "alice")))
    assert binds["/run/enclave"][0] == "--bind"
    assert binds["/run/hub"] == ("--ro-bind", str(sandbox.hub_socket(paths).parent))
    assert binds[str(layout.env)] == ("--ro-bind", str(layout.env))
    assert binds["/usr"] == ("--ro-bind", "/usr")
    writable = {target for target, (kind, _) in binds.items() if kind == "--bind"}
    assert writable == {"/project/outputs", "/project/mlflow", "/home/alice", "/run/enclave"}
    # nothing else of the host: no /etc, /var, /root, no sites, no registry, no other project
    sources = {source for _, source in binds.values()}
    assert not any(s.startswith(str(paths.sites)) or s == str(paths.home) for s in sources)
    assert all(not t.startswith(("/var", "/root", "/srv", "/opt")) for t in binds)


def test_the_sandbox_has_no_network_and_drops_to_the_project_account(layout):
    argv = layout.argv(["cmd"])
    for namespace in ("--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup"):
        assert namespace in argv
    assert "--unshare-user" not in argv  # as root: the account is dropped to by setpriv, not mapped
    assert "--die-with-parent" in argv
    tail = argv[argv.index("--") + 1 :]
    assert tail[:4] == ["setpriv", "--reuid=990", "--regid=990", "--clear-groups"]
    assert {"--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"} <= set(tail)
    assert tail[-1] == "cmd"


def test_no_environment_value_is_on_the_command_line(layout):
    # /proc/PID/cmdline is readable by every account: the hub token travels in bwrap's environment instead
    secret = "token-" + "x" * 32
    with_token = sandbox.replace(layout, environment={**layout.environment, "JUPYTERHUB_API_TOKEN": secret})
    argv = with_token.argv(["cmd"], seccomp_fd=7)
    assert not any(secret in arg for arg in argv)
    assert "--setenv" not in argv and "--clearenv" not in argv
    assert argv[argv.index("--seccomp") + 1] == "7"
    assert argv.index("--seccomp") < argv.index("--")  # bwrap's option, loaded before the command runs


def test_the_environment_is_the_workspace_contract_and_only_that(layout):
    environment = layout.environment
    assert environment["ENCLAVE_PROJECT_DATA"] == "/project/data"
    assert environment["MLFLOW_TRACKING_URI"] == "sqlite:////project/mlflow/mlflow.db"
    assert environment["JUPYTER_CONFIG_DIR"] == environment["JUPYTER_CONFIG_PATH"] == str(layout.env / "etc/jupyter")
    assert environment["HOME"] == "/home/alice" and environment["PYTHONNOUSERSITE"] == "1"
    assert environment["JUPYTERHUB_X"] == "1"
    assert not any(key.startswith(("ENCLAVE_HOME", "SUDO", "SSH")) for key in environment)


def test_the_sandbox_names_the_account_after_the_user_and_has_no_resolver(layout):
    files = layout.etc_files()
    assert "alice:x:990:990:" in files["passwd"]
    assert "hosts: files" in files["nsswitch.conf"] and "dns" not in files["nsswitch.conf"]
    assert "resolv.conf" not in files


def test_socket_paths_fit_and_urls_are_what_the_proxy_routes():
    long_home = Paths(Path("/tmp") / ("x" * 150))
    socket = sandbox.SOCKET_ROOT / sandbox.workspace_id(long_home, "p" * 24, "u" * 64) / "jupyter.sock"
    assert len(str(socket)) < 108 and len(str(sandbox.hub_socket(long_home))) < 108
    assert sandbox.socket_url(Path("/run/a b/s.sock")) == "http+unix://%2Frun%2Fa%20b%2Fs.sock"
    assert sandbox.workspace_id(long_home, "p", "u") != sandbox.workspace_id(Paths(Path("/other")), "p", "u")


def test_limits_follow_the_project_spec(tmp_path):
    limits = Limits.from_compute(ComputeLimits(cpus=1.5, memory="2GiB", max_processes=300))
    files = limits.v1_files()
    assert files["cpu"]["cpu.cfs_quota_us"] == "150000" and files["cpu"]["cpu.cfs_period_us"] == "100000"
    assert files["memory"]["memory.limit_in_bytes"] == str(2 * 2**30)
    assert files["pids"]["pids.max"] == "300"
    assert limits.v2_files()["cpu.max"] == "150000 100000"
    # written into a cgroup v1 tree (a fake one here; the integration tests use the real one)
    for controller in ("cpu", "memory", "pids"):
        (tmp_path / controller).mkdir()
    group = WorkspaceCgroup("w1", root=tmp_path)
    group.create(limits)
    assert group.read("memory.limit_in_bytes") == str(2 * 2**30)
    assert group.read("pids.max") == "300"


def test_the_hub_configuration(tmp_path):
    c = Config()
    apply_config(c, HubSettings(home=tmp_path, port=8123, proxy_api_port=8124, airlock_port=8125))
    hub = c.JupyterHub
    assert hub.bind_url == "http://127.0.0.1:8123"
    assert hub.hub_bind_url.startswith("http+unix://") and hub.hub_connect_url == hub.hub_bind_url
    assert hub.spawner_class == "enclave" and hub.authenticator_class == "enclave"
    assert hub.allow_named_servers is True
    assert hub.token_expires_in_max_seconds == TOKEN_MAX_SECONDS
    assert hub.db_url.startswith("sqlite:///") and str(tmp_path / "hub") in hub.db_url
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8124"
    assert hub.services[0]["url"] == "http://127.0.0.1:8125"
    user_role = next(r for r in hub.load_roles if r["name"] == "user")
    assert not any(scope.startswith(("tokens", "servers", "admin")) for scope in user_role["scopes"])
    assert c.SandboxSpawner.enclave_home == str(tmp_path)


def test_hub_settings_from_the_environment(tmp_path):
    settings = HubSettings.from_env({"ENCLAVE_HOME": str(tmp_path), "ENCLAVE_HUB_PORT": "9000"})
    assert settings.url == "http://127.0.0.1:9000" and settings.home == tmp_path.resolve()
    with pytest.raises(ValueError, match="ENCLAVE_HUB_PORT"):
        HubSettings.from_env({"ENCLAVE_HOME": str(tmp_path), "ENCLAVE_HUB_PORT": "http"})


def test_the_spawner_is_a_documented_plugin():
    from importlib.metadata import entry_points

    from hub.spawner import SandboxSpawner

    (plugin,) = [ep for ep in entry_points(group="jupyterhub.spawners") if ep.name == "enclave"]
    assert plugin.load() is SandboxSpawner
    own = {
        name for name, trait in SandboxSpawner.class_traits(config=True).items() if trait.this_class is SandboxSpawner
    }
    assert own >= {"enclave_home", "bwrap", "setpriv", "socket_root", "stop_grace", "insecure_dev_mode"}
    for name in own:
        assert SandboxSpawner.class_traits()[name].help, f"{name} has no help"


def test_workspaces_prepared_at_once_share_one_registry(tmp_path):
    """The spawner prepares concurrent workspaces in threads; opening a Registry migrates it (alembic is not
    thread-safe), so the process keeps one per database."""
    from concurrent.futures import ThreadPoolExecutor

    from hub.workspaces import registry_of

    paths = Paths(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        opened = list(pool.map(lambda _: registry_of(paths), range(16)))
    assert all(r is opened[0] for r in opened)
