"""The hub's home page tells an output checker how many release requests wait for them (issue 16), read for the
signed-in person at each render: a real JupyterHub with Enclave's authenticator, home page template and template
variables (hub/config.py), over a registry where requests were brought to review and approval through the airlock's
business layer. A researcher sees no notice; the checker's count falls as soon as they submit their review."""

from __future__ import annotations

import re

import pyotp
import pytest

from hub import accounts
from output_checks.release.airlock import Airlock
from output_checks.release.states import RequestState
from tests.airlock_factories import CHECKERS, OTHER_RESEARCHER, PROJECT, ensure_people, request_at
from tests.hub_runner import CHP, NO_CHP, free_ports, login_form, loopback_config, running_hub
from tests.provisioned import provision

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not CHP.exists(), reason=NO_CHP), pytest.mark.timeout(300)]
PASSWORD = "a long enough password"
NOTICE = re.compile(r"(\d+) release request\(s\) wait for your review \(oldest since (\d{4}-\d\d-\d\d \d\d:\d\d) UTC\)")


def test_a_checker_sees_what_waits_for_them_and_a_researcher_sees_nothing(tmp_path, cohort):
    env = provision(tmp_path / "enclave", cohort, {PROJECT: "DS-CVD"})
    app = Airlock(env.registry, env.paths)
    ensure_people(app)
    checker = CHECKERS[0]
    secrets = {}

    def people(session) -> None:
        for name in (checker, OTHER_RESEARCHER):
            secrets[name] = accounts.add_account(session, name, PASSWORD, actor="test-admin").secret

    app.tx(people)
    first = request_at(app, RequestState.IN_REVIEW)
    request_at(app, RequestState.IN_REVIEW)
    request_at(app, RequestState.APPROVED)

    public, hub_port, api = free_ports(3)
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        loopback_config(tmp_path, public=public, hub=hub_port, proxy_api=api)
        + f"""
from pathlib import Path
from kernel.config import Paths
from hub.config import TEMPLATES, waiting_reviews, workspace_projects
from hub.workspaces import registry_of

paths = Paths(Path({str(env.paths.home)!r}))
registry = registry_of(paths)
c.JupyterHub.authenticator_class = "enclave"
c.EnclaveAuthenticator.enclave_home = {str(env.paths.home)!r}
c.JupyterHub.allow_named_servers = True
c.JupyterHub.template_paths = [str(TEMPLATES)]
c.JupyterHub.template_vars = {{"enclave_projects": workspace_projects(registry),
                              "enclave_waiting": waiting_reviews(registry, paths)}}
"""
    )
    url = f"http://127.0.0.1:{public}"
    with running_hub(tmp_path, config, [f"{url}/hub/health"]):
        pages = {}
        for name in (checker, OTHER_RESEARCHER):
            http, ok = login_form(url, {"username": name, "password": PASSWORD,
                                        "otp": pyotp.TOTP(secrets[name]).now()})  # fmt: skip
            assert ok.status_code == 302, name
            pages[name] = http

        def home(name: str) -> str:
            response = pages[name].get(f"{url}/hub/home", timeout=30)
            assert response.status_code == 200
            return response.text

        text = home(checker)
        shown = NOTICE.search(text)
        assert shown, text
        assert shown.group(1) == "3", "two to review, one approved to release"
        assert "2 to review" in text and "1 approved to release" in text
        assert "/services/airlock/review" in text

        researcher = home(OTHER_RESEARCHER)
        assert "airlock-waiting" not in researcher and not NOTICE.search(researcher)

        for f in app.request(first, checker)["files"]:
            app.vote(first, checker, f["path"], "approve", "ok")
        app.submit_review(first, checker)
        assert NOTICE.search(home(checker)).group(1) == "2", "computed at each render, for the person signed in"
    env.registry.close()
