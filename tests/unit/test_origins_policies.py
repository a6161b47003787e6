"""The workspace's page policies (images/enclave_workspace/headers.py) are complete and as strict as stated, and the
hub's subdomain setting (hub/origins.py) is validated and applied as JupyterHub expects."""

from __future__ import annotations

import importlib.util
import re

import pytest
from traitlets.config import Config

from hub.config import HubSettings, apply_config
from hub.origins import ServiceOriginRedirect, apply_origins, subdomain_host
from tests.workspace_env import REPO

pytestmark = pytest.mark.unit

# enclave_workspace's package imports jupyter_server (workspace environment only); headers.py itself needs tornado
_spec = importlib.util.spec_from_file_location("workspace_headers", REPO / "images/enclave_workspace/headers.py")
headers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(headers)

HOST, BASE = "enclave.example.org", "/user/alice/cardio-risk/"


def directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in policy.split("; ")}


@pytest.mark.parametrize("service", ["mlflow", "dask"])
def test_each_proxied_service_is_fenced_to_its_own_path(service):
    got = directives(headers.service_policy(service, HOST, BASE))
    own = f"{HOST}{BASE}{service}/"
    assert got["default-src"] == ["'none'"] and got["object-src"] == ["'none'"] and got["base-uri"] == ["'none'"]
    assert got["form-action"] == ["'none'"] and got["frame-ancestors"] == ["'self'"]
    assert got["connect-src"] == [own, f"ws://{own}", f"wss://{own}"]
    assert got["script-src"][0] == own
    assert "'unsafe-eval'" not in got["script-src"]
    for name, sources in got.items():  # nothing from anywhere but the service's own path (or inline data)
        assert all(s == own or s.startswith(("'", "data:", "blob:", "ws://", "wss://")) for s in sources), name


def test_the_policy_table_covers_exactly_the_proxied_services():
    proxied = set(re.findall(r"^PROXIED = (\{.*\})", (REPO / "images/enclave_workspace/__init__.py").read_text(), re.M))
    assert proxied == {'{"dask", "mlflow"}'}
    assert set(headers.SERVICE_POLICIES) == {"dask", "mlflow"}
    assert "'unsafe-inline'" not in directives(headers.service_policy("mlflow", HOST, BASE))["script-src"]


def test_the_lab_policy_confines_connections_to_the_workspace_path():
    got = directives(headers.lab_policy(HOST, BASE))
    assert got["connect-src"] == [f"{HOST}{BASE}", f"ws://{HOST}{BASE}", f"wss://{HOST}{BASE}"]
    assert "'unsafe-inline'" not in got["script-src"] and got["object-src"] == ["'none'"]
    assert headers.ORIGIN_WIDE_LAB_POLICY.startswith("default-src 'none'; script-src 'self'")


@pytest.mark.parametrize("host", ["evil.org; script-src *", "a b", "x,y", "host/path", ""])
def test_a_forged_host_never_writes_into_a_policy(host):
    assert headers.path_source(host, BASE) == "'self'"
    assert "script-src 'self'" in headers.service_policy("mlflow", host, BASE)


def test_a_path_is_quoted_into_one_source():
    assert headers.path_source(HOST, "/user/a;b c/") == f"{HOST}/user/a%3Bb%20c/"


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("", ""),
        ("http://localhost:8000", "http://localhost:8000"),
        ("https://Enclave.Example.org/", "https://enclave.example.org"),
    ],
)
def test_subdomain_host_is_a_bare_origin(value, normalised):
    assert subdomain_host(value) == normalised


@pytest.mark.parametrize(
    "value", ["enclave.example.org", "ftp://x", "https://x/hub", "https://x?a=1", "http://x:99999"]
)
def test_subdomain_host_refuses_anything_else(value):
    with pytest.raises(ValueError, match="ENCLAVE_SUBDOMAIN_HOST"):
        subdomain_host(value)


def test_the_setting_reaches_jupyterhub(tmp_path):
    settings = HubSettings.from_env(
        {"ENCLAVE_HOME": str(tmp_path), "ENCLAVE_SUBDOMAIN_HOST": "https://tre.example.org"}
    )
    assert settings.subdomain_host == "https://tre.example.org" and settings.public_url == "https://tre.example.org"
    c = Config()
    apply_origins(c, "")
    assert "subdomain_host" not in c.JupyterHub
    apply_origins(c, settings.subdomain_host)
    assert c.JupyterHub.subdomain_host == "https://tre.example.org"
    assert (r"/services/([^/]+)/(.*)", ServiceOriginRedirect) in c.JupyterHub.extra_handlers


@pytest.mark.parametrize("ip", [{}, {"ENCLAVE_HUB_IP": "127.0.0.1"}, {"ENCLAVE_HUB_IP": "::1"}])
def test_a_hub_on_loopback_is_on_localhost_subdomains_by_default(tmp_path, ip):
    settings = HubSettings.from_env({"ENCLAVE_HOME": str(tmp_path), **ip})
    assert settings.subdomain_host == "http://localhost:8000"
    assert settings.public_url == "http://localhost:8000"  # what `enclave up` and `enclave demo` print
    c = Config()
    apply_config(c, settings)
    assert c.JupyterHub.subdomain_host == "http://localhost:8000"
    assert c.JupyterHub.bind_url == settings.url  # the proxy still listens on the hub's address


def test_the_default_follows_the_hub_port(tmp_path):
    settings = HubSettings.from_env({"ENCLAVE_HOME": str(tmp_path), "ENCLAVE_HUB_PORT": "9123"})
    assert settings.subdomain_host == "http://localhost:9123" and settings.url == "http://127.0.0.1:9123"


@pytest.mark.parametrize("off", ["off", "OFF"])
def test_off_is_one_origin(tmp_path, off):
    settings = HubSettings.from_env({"ENCLAVE_HOME": str(tmp_path), "ENCLAVE_SUBDOMAIN_HOST": off})
    assert settings.subdomain_host == "" and settings.public_url == "http://127.0.0.1:8000"
    c = Config()
    apply_config(c, settings)
    assert "subdomain_host" not in c.JupyterHub


@pytest.mark.parametrize("ip", ["0.0.0.0", "10.1.2.3", "2001:db8::1", "127.0.0.2"])
def test_a_hub_elsewhere_needs_its_public_name_or_off(tmp_path, ip):
    env = {"ENCLAVE_HOME": str(tmp_path), "ENCLAVE_HUB_IP": ip}
    with pytest.raises(ValueError, match="ENCLAVE_SUBDOMAIN_HOST") as refused:
        HubSettings.from_env(env)
    assert "https://enclave.example.org" in str(refused.value) and "`off`" in str(refused.value)
    assert HubSettings.from_env({**env, "ENCLAVE_SUBDOMAIN_HOST": "off"}).subdomain_host == ""
    named = HubSettings.from_env({**env, "ENCLAVE_SUBDOMAIN_HOST": "https://enclave.example.org"})
    assert named.public_url == "https://enclave.example.org"


def test_the_hub_process_reads_back_what_enclave_up_chose(tmp_path):
    """`enclave up` passes its settings to the hub in the environment; one origin must stay one origin there."""
    from hub.lifecycle import hub_environment

    for chosen in ("off", "", "https://enclave.example.org"):
        settings = HubSettings.from_env({"ENCLAVE_HOME": str(tmp_path), "ENCLAVE_SUBDOMAIN_HOST": chosen})
        assert HubSettings.from_env(hub_environment(settings)) == settings


def test_the_command_line_says_what_to_set_on_a_public_address(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from provisioning.cli import main

    monkeypatch.setenv("ENCLAVE_HUB_IP", "0.0.0.0")
    monkeypatch.delenv("ENCLAVE_SUBDOMAIN_HOST", raising=False)
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "status"])
    assert result.exit_code == 1 and "set ENCLAVE_SUBDOMAIN_HOST" in result.output, result.output
