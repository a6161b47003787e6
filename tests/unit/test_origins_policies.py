"""The workspace's page policies (images/enclave_workspace/headers.py) are complete and as strict as stated, and the
hub's subdomain setting (hub/origins.py) is validated and applied as JupyterHub expects."""

from __future__ import annotations

import importlib.util
import re

import pytest
from traitlets.config import Config

from hub.config import HubSettings
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
    assert HubSettings.from_env({"ENCLAVE_HOME": str(tmp_path)}).subdomain_host == ""
    settings = HubSettings.from_env(
        {"ENCLAVE_HOME": str(tmp_path), "ENCLAVE_SUBDOMAIN_HOST": "https://tre.example.org"}
    )
    assert settings.subdomain_host == "https://tre.example.org"
    c = Config()
    apply_origins(c, "")
    assert "subdomain_host" not in c.JupyterHub
    apply_origins(c, settings.subdomain_host)
    assert c.JupyterHub.subdomain_host == "https://tre.example.org"
    assert (r"/services/([^/]+)/(.*)", ServiceOriginRedirect) in c.JupyterHub.extra_handlers
