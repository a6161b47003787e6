"""Access ends when it should (issue 17, findings 1, 2, 3 and 7), against a real hub, real sandboxed workspaces and
the airlock service: a removed account's cookies are refused everywhere within seconds and its workspace stops; a
logged-out session's cookies are refused everywhere; membership changes (`enclave project add-member`, `remove-member`,
`set-role`) apply to the running hub; a cross-site GET of /hub/spawn/... or /hub/logout changes nothing; every cookie
carries SameSite.

Each test makes its own people (`enclave user add`, `enclave project add-member`) and never touches the shared
fixture's alice, bob, carol or dave.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select

from fabric.models import ProjectMember
from hub import revocation
from kernel import audit
from kernel.db import Registry
from provisioning.cli import main
from tests.workspace_hub import DEMO, BrowserSession, Person, RunningEnclave, cookie_for, needs_enclave

pytestmark = [pytest.mark.security, needs_enclave, pytest.mark.timeout(900)]

REFUSAL_BOUND = 30  # seconds; the issue asks for "within seconds" (the airlock and workspaces re-ask after 5 s)
CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
XSRF_FIELD = re.compile(r'name="_xsrf" value="([^"]+)"')


def enclave_cli(enclave: RunningEnclave, *args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(main, ["--home", str(enclave.paths.home), *args], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def new_person(enclave: RunningEnclave, prefix: str, role: str | None = "researcher") -> Person:
    """A fresh account (and, with `role`, a member of the demo project), logged in."""
    name = f"{prefix}{secrets.token_hex(2)}"
    password = secrets.token_urlsafe(18)
    enclave_cli(enclave, "user", "add", name, "--password-stdin", stdin=password + "\n")
    enclave.passwords[name] = password
    if role:
        enclave_cli(enclave, "project", "add-member", DEMO, name, role)
    return Person.log_in(enclave, name)


def remove(enclave: RunningEnclave, name: str) -> None:
    """Tidy up after a test (the account may already be gone)."""
    CliRunner().invoke(main, ["--home", str(enclave.paths.home), "user", "remove", name])


def copy_of(person: Person) -> requests.Session:
    """Someone holding a copy of the person's cookies (a stolen or left-behind browser profile)."""
    thief = BrowserSession()
    thief.cookies.update(person.http.cookies)
    return thief


def places(enclave: RunningEnclave, person: Person) -> dict[str, Callable[[requests.Session], bool]]:
    """Whether a browser with these cookies is let in: the hub API, the workspace (status, a new kernel, MLflow), the
    airlock. A redirect to a login is a refusal."""
    url, server = enclave.url, person.server(DEMO)

    def hub(http: requests.Session) -> bool:
        xsrf = {"X-XSRFToken": cookie_for(http, f"{url}/hub/", "_xsrf")}
        return http.get(f"{url}/hub/api/user", headers=xsrf, timeout=30, allow_redirects=False).status_code == 200

    def xsrf(http: requests.Session) -> dict[str, str]:
        return {"X-XSRFToken": cookie_for(http, f"{server}/", "_xsrf")}

    def workspace(http: requests.Session) -> bool:
        answer = http.get(f"{server}/api/status", headers=xsrf(http), timeout=30, allow_redirects=False)
        return answer.status_code == 200

    def kernel(http: requests.Session) -> bool:
        started = http.post(f"{server}/api/kernels", json={"name": "python3"}, headers=xsrf(http), timeout=60,
                            allow_redirects=False)  # fmt: skip
        if started.status_code == 201:
            http.delete(f"{server}/api/kernels/{started.json()['id']}", headers=xsrf(http), timeout=30)
            return True
        return False

    def mlflow(http: requests.Session) -> bool:
        return http.get(f"{server}/mlflow/", timeout=60, allow_redirects=False).status_code == 200

    def airlock(http: requests.Session) -> bool:
        # its pages redirect within the app; a refused visitor ends on the hub's login page
        page = http.get(f"{url}/services/airlock/", timeout=30)
        return page.status_code == 200 and urlsplit(page.url).path.startswith("/services/airlock/")

    return {"hub API": hub, "workspace": workspace, "new kernel": kernel, "MLflow": mlflow, "airlock": airlock}


def visit_everything(enclave: RunningEnclave, person: Person) -> None:
    """Open the workspace and the airlock as a browser does, so their own cookies are set."""
    assert person.open_workspace(DEMO).status_code == 200
    assert person.http.get(f"{person.server(DEMO)}/mlflow/", timeout=180).status_code == 200  # MLflow started
    assert person.http.get(f"{enclave.url}/services/airlock/", timeout=60).status_code == 200


def refused_within(checks: dict[str, Callable[[requests.Session], bool]], http: requests.Session) -> float:
    """Seconds until every check refuses these cookies (fails with those still let in after the bound)."""
    started = time.monotonic()
    open_now = dict(checks)
    while open_now:
        open_now = {name: check for name, check in open_now.items() if check(http)}
        if not open_now:
            break
        assert time.monotonic() - started < REFUSAL_BOUND, f"still let in after {REFUSAL_BOUND} s: {sorted(open_now)}"
        time.sleep(0.5)
    return time.monotonic() - started


def servers_of(enclave: RunningEnclave, name: str) -> dict:
    model = revocation.HubAPI.of(enclave.paths).user(name)
    return {} if model is None else model.get("servers", {})


def actions_for(enclave: RunningEnclave, name: str) -> list[str]:
    registry = Registry(enclave.paths.database_url)
    try:
        with registry.session() as session:
            return [e.action for e in audit.events(session, limit=500) if e.target == f"user:{name}"]
    finally:
        registry.close()


# ------------------------------------------------------------------------------------------------ finding 1


def test_removing_an_account_ends_its_access_everywhere(running_enclave):
    enclave = running_enclave
    person = new_person(enclave, "rv-gone")
    try:
        person.spawn(DEMO)
        visit_everything(enclave, person)
        checks = places(enclave, person)
        thief = copy_of(person)
        assert not [name for name, check in checks.items() if not check(thief)], "the copies work before the removal"

        output = enclave_cli(enclave, "user", "remove", person.name)
        seconds = refused_within(checks, thief)
        print(f"\nremoved account's cookies refused everywhere after {seconds:.1f} s")
        assert "access ended" in output
        assert revocation.HubAPI.of(enclave.paths).user(person.name) is None, "the hub still has the user"

        registry = Registry(enclave.paths.database_url)
        try:
            with registry.session() as session:
                left = session.scalars(select(ProjectMember).where(ProjectMember.username == person.name)).all()
                removal = [e for e in audit.events(session, limit=500) if e.action == "user.remove"]
        finally:
            registry.close()
        assert not left, "the registry still lists the removed account's memberships"
        assert removal[-1].detail["projects"] == [DEMO]
        assert "access.revoked" in actions_for(enclave, person.name)

        # a new account with the same name inherits nothing
        password = secrets.token_urlsafe(18)
        enclave_cli(enclave, "user", "add", person.name, "--password-stdin", stdin=password + "\n")
        enclave.passwords[person.name] = password
        again = Person.log_in(enclave, person.name)
        assert again.api("GET", "/user").json()["groups"] == []
        assert again.api("POST", f"/users/{person.name}/servers/{DEMO}").status_code == 403
    finally:
        remove(enclave, person.name)


# ------------------------------------------------------------------------------------------------ finding 2


def test_logging_out_ends_the_session_everywhere(running_enclave):
    enclave = running_enclave
    person = new_person(enclave, "rv-out")
    try:
        person.spawn(DEMO)
        visit_everything(enclave, person)
        checks = places(enclave, person)
        thief = copy_of(person)
        assert not [name for name, check in checks.items() if not check(thief)], "the copies work before"

        page = person.http.get(f"{enclave.url}/hub/logout", timeout=30)
        form = XSRF_FIELD.search(page.text) if 'id="logout-form"' in page.text else None
        if form:  # the person confirms
            done = person.http.post(f"{enclave.url}/hub/logout", data={"_xsrf": form.group(1)}, timeout=30)
            assert done.status_code == 200 and "/hub/login" in done.url

        seconds = refused_within(checks, thief)
        print(f"\nlogged-out cookies refused everywhere after {seconds:.1f} s")
        assert form, "the logout page asks for a confirmation, posted with the XSRF token"
        actions = actions_for(enclave, person.name)
        assert "user.logout" in actions and "access.revoked" in actions
        assert servers_of(enclave, person.name), "logging out leaves the workspace running (stop is separate)"
    finally:
        remove(enclave, person.name)


# ------------------------------------------------------------------------------------------------ finding 3


def test_membership_changes_apply_to_the_running_hub(running_enclave):
    enclave = running_enclave
    person = new_person(enclave, "rv-join", role=None)
    try:
        assert person.api("GET", "/user").json()["groups"] == []
        enclave_cli(enclave, "project", "add-member", DEMO, person.name, "researcher")
        assert "researchers" in person.api("GET", "/user").json()["groups"], "the addition applies at once"
        person.spawn(DEMO)
        visit_everything(enclave, person)
        checks = places(enclave, person)
        thief = copy_of(person)
        workspace_checks = {k: v for k, v in checks.items() if k in ("workspace", "new kernel", "MLflow")}
        assert not [name for name, check in workspace_checks.items() if not check(thief)]

        # taken off the project: `enclave project remove-member` changes the registry and revokes through the hub
        out = enclave_cli(enclave, "project", "remove-member", DEMO, person.name)
        assert f"{person.name} is no longer a member of {DEMO}" in out and "stopped 1 workspace(s)" in out
        assert not servers_of(enclave, person.name), "the workspace of a project they left still runs"
        refused_within(workspace_checks, thief)
        assert "researchers" not in person.api("GET", "/user").json()["groups"]
        assert person.api("POST", f"/users/{person.name}/servers/{DEMO}").status_code == 403
        assert checks["airlock"](person.http), "the person still reaches the airlock (their own requests)"

        # back as a researcher, then made an output checker (`set-role`): no workspace for a checker
        enclave_cli(enclave, "project", "add-member", DEMO, person.name, "researcher")
        person.spawn(DEMO)
        out = enclave_cli(enclave, "project", "set-role", DEMO, person.name, "output_checker")
        assert "(was researcher)" in out and "stopped 1 workspace(s)" in out
        assert not servers_of(enclave, person.name), "a checker's workspace still runs"
        assert person.api("GET", "/user").json()["groups"] == ["output-checkers"]
        assert person.api("POST", f"/users/{person.name}/servers/{DEMO}").status_code == 403
        registry = Registry(enclave.paths.database_url)
        try:
            with registry.session() as session:
                events = audit.events(session, project=DEMO, limit=500)
                changes = [e.action for e in events if e.detail.get("user") == person.name]
        finally:
            registry.close()
        assert changes == ["project.add_member", "project.remove_member", "project.add_member", "project.set_role"]
    finally:
        remove(enclave, person.name)


# ------------------------------------------------------------------------------------------------ finding 7


def test_cross_site_gets_change_nothing(running_enclave):
    enclave = running_enclave
    person = new_person(enclave, "rv-get")
    try:
        spawn_url = f"{enclave.url}/hub/spawn/{person.name}/{DEMO}"
        page = person.http.get(spawn_url, headers=CROSS_SITE, timeout=30)
        assert page.status_code == 200 and "Start your workspace" in page.text
        time.sleep(3)
        assert not servers_of(enclave, person.name), "a GET of /hub/spawn/... started the workspace"

        logout = person.http.get(f"{enclave.url}/hub/logout", headers=CROSS_SITE, timeout=30)
        assert logout.status_code == 200 and 'id="logout-form"' in logout.text
        assert person.api("GET", "/user").status_code == 200, "a GET of /hub/logout logged the person out"

        # the confirmation's own POST (the Start button) still starts the workspace
        form = XSRF_FIELD.search(page.text) or re.search(r'action="[^"]*_xsrf=([^"&]+)', page.text)
        assert form, "the spawn page carries the XSRF token"
        action = re.search(r'<form[^>]*id="spawn_form"[^>]*action="([^"]+)"', page.text, re.S)
        target = enclave.url + action.group(1).replace("&amp;", "&") if action else spawn_url
        # as the browser submits it: the form's action carries the XSRF token, its body nothing
        started = person.http.post(target, data=None if action else {"_xsrf": form.group(1)}, timeout=120)
        assert started.status_code == 200, started.status_code
        person.wait_ready(DEMO, time.monotonic() + 180)
        person.stop(DEMO)

        # the home page's Start button is a form posted with the XSRF token, and starts the workspace at once
        home = person.http.get(f"{enclave.url}/hub/home", timeout=30).text
        start = re.search(rf'<form[^>]*action="([^"]*spawn/{person.name}/{DEMO}\?_xsrf=[^"]+)"', home)
        assert start, "the home page offers Start"
        assert person.http.post(enclave.url + start.group(1).replace("&amp;", "&"), timeout=120).status_code == 200
        person.wait_ready(DEMO, time.monotonic() + 180)
    finally:
        remove(enclave, person.name)


def deletion(cookie: str) -> bool:
    """A Set-Cookie that removes a cookie (tornado's `clear_cookie`: expired a year ago, or Max-Age=0)."""
    expires = re.search(r"expires=([^;]+)", cookie, re.I)
    return bool(re.search(r"max-age=0\b", cookie, re.I)) or (
        expires is not None and parsedate_to_datetime(expires.group(1)).timestamp() < time.time()
    )


def test_every_cookie_carries_samesite(running_enclave):
    enclave = running_enclave
    seen: list[str] = []
    person = new_person(enclave, "rv-ck")
    try:
        http = BrowserSession()  # log in again, watching every Set-Cookie on the way (redirects included)
        http.hooks["response"].append(lambda r, *a, **k: seen.extend(r.raw.headers.getlist("Set-Cookie")))
        page = http.get(f"{enclave.url}/hub/login", timeout=30)
        data = {"username": person.name, "password": enclave.passwords[person.name], "otp": enclave.totp(person.name),
                "_xsrf": XSRF_FIELD.search(page.text).group(1)}  # fmt: skip
        assert http.post(f"{enclave.url}/hub/login", data=data, timeout=30).status_code == 200
        watched = Person(enclave, person.name, http)
        watched.spawn(DEMO)
        visit_everything(enclave, watched)
        for cookie in seen:
            name = cookie.split("=", 1)[0]
            if deletion(cookie):
                continue
            assert re.search(r"samesite=(lax|strict)", cookie, re.I), f"{name} has no SameSite"
            # Max-Age wins over Expires in browsers (RFC 6265 5.3): JupyterHub's OAuth state cookie has both
            max_age = re.search(r"max-age=(\d+)", cookie, re.I)
            expires = re.search(r"expires=([^;]+)", cookie, re.I)
            if max_age:
                left = int(max_age.group(1))
            elif expires:
                left = parsedate_to_datetime(expires.group(1)).timestamp() - time.time()
            else:
                continue  # a session cookie
            assert left <= 86400, f"{name} lives {left / 86400:.1f} days"
        names = {cookie.split("=", 1)[0] for cookie in seen}
        assert "jupyterhub-hub-login" in names, names
        assert any(name.startswith("jupyterhub-user-") for name in names), names
        assert "service-airlock" in names, names  # the airlock's OAuth cookie
    finally:
        remove(enclave, person.name)
