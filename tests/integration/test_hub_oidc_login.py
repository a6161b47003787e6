"""OIDC sign-in end to end (issue 16, "The documented OIDC set-up stops the hub from starting"): Enclave's own hub
configuration with `ENCLAVE_AUTH=oidc`, started the way `enclave up` starts it (`hub.lifecycle.start`: the real
configurable-http-proxy, the airlock service, JUPYTERHUB_CRYPT_KEY from its root-only file), signs people in through
a real OpenID provider on loopback (tests/oidc_provider.py, Authlib), over HTTP the way a browser does: the hub's
/hub/oauth_login, the provider's sign-in form, the provider's redirect back to /hub/oauth_callback, the hub's code
exchange, UserInfo and ID-token check.

Members are named by the mapped user name (`a.smith@trust.nhs.uk` -> `a-smith`) and added through `enclave project`
as usual. Checked: the hub starts at all (the finding); a person with a second factor signs in as the mapped name,
holds their project's group and sees its workspace, a member of another project does not; a password-only sign-in,
an e-mail outside the allowed domains, a claim that makes no user name, a second identity on a taken name and a
person in no project are refused with a 403 saying why, each audited; a member added while the hub runs can sign in
at once; `enclave up` refuses OIDC without the crypt key.
"""

from __future__ import annotations

import html
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
import requests
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey

from hub import lifecycle
from hub.config import HubSettings
from hub.oidc import EnclaveOIDCAuthenticator, SignInRefused
from hub.oidc_settings import OIDCError, discover
from hub.revocation import HubAPI
from kernel import audit
from kernel.config import Paths
from kernel.db import Registry
from tests.hub_runner import CHP, NO_CHP, free_ports
from tests.oidc_provider import ProviderUser, running_provider

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not CHP.exists(), reason=NO_CHP), pytest.mark.timeout(400)]
ENCLAVE = Path(sys.executable).with_name("enclave")
CLIENT_ID = "enclave-hub"
FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')
CHECKERS = "  - {user: carol, role: output_checker}\n  - {user: dave, role: output_checker}\n"
MFA = ["pwd", "otp"]
PEOPLE = {  # the provider's own login names
    "asmith": ProviderUser("sub-0001", {"email": "A.Smith@trust.nhs.uk", "name": "Ann Smith"}, MFA),
    "bjones": ProviderUser("sub-0002", {"email": "b.jones@trust.nhs.uk", "name": "Bob Jones"}, ["pwd", "hwk"]),
    "cpwd": ProviderUser("sub-0003", {"email": "c.pwd@trust.nhs.uk", "name": "Cy Pwd"}, ["pwd"]),
    "gmail": ProviderUser("sub-0004", {"email": "d.doe@gmail.example", "name": "Di Doe"}, MFA),
    "digits": ProviderUser("sub-0005", {"email": "9lives@trust.nhs.uk", "name": "Nine"}, MFA),
    "twin": ProviderUser("sub-0006", {"email": "a-smith@trust.nhs.uk", "name": "Another Smith"}, MFA),
    "newbie": ProviderUser("sub-0007", {"email": "e.new@trust.nhs.uk", "name": "Eve New"}, MFA),
    "noclaim": ProviderUser("sub-0008", {"name": "No Mail"}, MFA),
    # another identity with e.new's address, trying before she is a member, without a second factor
    "early": ProviderUser("sub-0009", {"email": "E.New@trust.nhs.uk", "name": "Not Eve"}, ["pwd"]),
}


def spec(name: str, researchers: list[str]) -> str:
    people = "".join(f"  - {{user: {r}, role: researcher}}\n" for r in researchers)
    return f"name: {name}\ntitle: OIDC sign-in\npurpose: GRU\ndatasets: ['*']\nmembers:\n{CHECKERS}{people}"


def enclave(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ENCLAVE), *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def owner_only(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def sign_in(hub_url: str, issuer: str, login: str) -> tuple[requests.Session, requests.Response]:
    """The authorization-code flow as a browser follows it: the hub sends the browser to the provider, whose form
    signs `login` in and sends the browser back to the hub with the code."""
    http = requests.Session()
    page = http.get(f"{hub_url}/hub/oauth_login", timeout=30)
    assert page.status_code == 200 and page.url.startswith(f"{issuer}/authorize?"), page.url
    action = html.unescape(FORM_ACTION.search(page.text).group(1))
    back = http.post(f"{issuer}{action}", data={"login": login}, timeout=60)
    visited = [r.url for r in back.history] + [back.url]
    assert any(u.startswith(f"{hub_url}/hub/oauth_callback?") for u in visited), "never came back to the hub"
    return http, back


def refused(response: requests.Response, message: str) -> bool:
    return response.status_code == 403 and message in html.unescape(response.text)


def hub_groups(paths: Paths, name: str) -> set[str]:
    model = HubAPI.of(paths).user(name)
    return set(model["groups"]) if model else set()


@pytest.fixture
def site(tmp_path):
    """An Enclave home with two projects whose members are named as the mapping names them, and the OIDC settings
    (as the settings file would give them) for a provider on `issuer`."""
    paths = Paths(tmp_path / "home")
    lifecycle.ensure_hub_state(paths)
    public, proxy_api, airlock = free_ports(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENCLAVE_", "JUPYTERHUB_"))}
    env.update(
        ENCLAVE_SETTINGS_FILE="", ENCLAVE_HOME=str(paths.home), ENCLAVE_HUB_PORT=str(public),
        ENCLAVE_PROXY_API_PORT=str(proxy_api), ENCLAVE_AIRLOCK_PORT=str(airlock), ENCLAVE_SUBDOMAIN_HOST="off",
        ENCLAVE_AUTH="oidc", ENCLAVE_OIDC_CLIENT_ID=CLIENT_ID,
        ENCLAVE_OIDC_CLIENT_SECRET_FILE=str(owner_only(tmp_path / "client-secret", secrets.token_urlsafe(24))),
        ENCLAVE_OIDC_USERNAME_CLAIM="email", ENCLAVE_OIDC_USERNAME_MAPPING="email",
        ENCLAVE_OIDC_ALLOWED_DOMAINS="trust.nhs.uk",
        ENCLAVE_CRYPT_KEY_FILE=str(owner_only(tmp_path / "crypt-key", secrets.token_hex(32))),
    )  # fmt: skip
    for name, researchers in (("oidc-heart", ["a-smith", "c-pwd"]), ("oidc-lung", ["b-jones"])):
        path = tmp_path / f"{name}.yaml"
        path.write_text(spec(name, researchers))
        created = enclave(env, "project", "create", "-f", str(path))
        assert created.returncode == 0, created.stdout + created.stderr
    yield paths, env, f"http://127.0.0.1:{public}"
    if (pid := lifecycle.read_pid(paths)) is not None:
        lifecycle.stop_process(pid)
    lifecycle.remove_runtime(paths)


def test_people_sign_in_through_the_provider_as_enclave_names(site, monkeypatch):
    paths, env, url = site
    monkeypatch.setenv("ENCLAVE_AUTH_REFRESH_SECONDS", "1")  # the hub's environment is this one's (as `enclave up`)
    secret = Path(env["ENCLAVE_OIDC_CLIENT_SECRET_FILE"]).read_text()
    with running_provider(PEOPLE, client_id=CLIENT_ID, client_secret=secret,
                          redirect_uri=f"{url}/hub/oauth_callback") as op:  # fmt: skip
        env["ENCLAVE_OIDC_ISSUER"] = op.issuer
        settings = HubSettings.from_env(env)
        lifecycle.start(settings, timeout=120)  # the finding: this hub did not start with OIDC on

        # a member with a second factor: the mapped name, their project's group, its workspace on the home page
        ann, home = sign_in(url, op.issuer, "asmith")
        assert home.status_code == 200 and home.url == f"{url}/hub/home", (home.status_code, home.url)
        assert "a-smith" in home.text and "oidc-heart" in home.text and "oidc-lung" not in home.text
        assert hub_groups(paths, "a-smith") == {"researchers"}
        who = ann.get(f"{url}/hub/api/user", headers={"X-XSRFToken": ann.cookies.get("_xsrf", "")}, timeout=30)
        assert who.status_code == 200 and who.json()["name"] == "a-smith"

        # a member of the other project sees that one, not this one (a hardware key is a second factor too)
        bob_http, bob = sign_in(url, op.issuer, "bjones")
        assert bob.status_code == 200 and "oidc-lung" in bob.text and "oidc-heart" not in bob.text

        # refused, each saying why
        assert refused(sign_in(url, op.issuer, "cpwd")[1], "Enclave requires a second factor at sign-in")
        assert refused(sign_in(url, op.issuer, "gmail")[1], "not in a domain this Enclave accepts")
        assert refused(sign_in(url, op.issuer, "digits")[1], "does not make an Enclave user name")
        assert refused(sign_in(url, op.issuer, "noclaim")[1], "did not send the 'email' claim")
        assert refused(sign_in(url, op.issuer, "twin")[1], "already signs in to Enclave under the name")
        # a refused attempt takes no name: "early" has e.new's address (no second factor), e.new is in no project yet
        assert refused(sign_in(url, op.issuer, "early")[1], "Enclave requires a second factor at sign-in")
        assert refused(sign_in(url, op.issuer, "newbie")[1], "not a member of any Enclave project")
        assert HubAPI.of(paths).user("e-new") is None and HubAPI.of(paths).user("d-doe") is None  # no user made

        # added through Enclave's usual path while the hub runs: she signs in at once, with her project
        added = enclave(env, "project", "add-member", "oidc-lung", "e-new", "researcher")
        assert added.returncode == 0, added.stdout + added.stderr
        eve_http, eve = sign_in(url, op.issuer, "newbie")
        assert eve.status_code == 200 and "oidc-lung" in eve.text and "oidc-heart" not in eve.text
        assert hub_groups(paths, "e-new") == {"researchers"}

        # taken off her only project, her session ends at its next check; bob's goes on (the provider still
        # accepts his tokens: OAuthenticator's refresh, then Enclave's)
        removed = enclave(env, "project", "remove-member", "oidc-lung", "e-new")
        assert removed.returncode == 0, removed.stdout + removed.stderr
        time.sleep(2)  # past the session check's age (1 s)
        after = eve_http.get(f"{url}/hub/home", timeout=30, allow_redirects=False)
        assert after.status_code == 302 and "/hub/login" in after.headers["Location"]
        again = bob_http.get(f"{url}/hub/home", timeout=30, allow_redirects=False)
        assert again.status_code == 200 and "oidc-lung" in again.text

        # logging out of Enclave (the confirmation's POST) goes on to the provider's logout
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', bob_http.get(f"{url}/hub/logout", timeout=30).text).group(1)
        out = bob_http.post(f"{url}/hub/logout", data={"_xsrf": xsrf}, timeout=30)
        assert out.url.startswith(f"{op.issuer}/logout?") and op.logouts == [CLIENT_ID]
        assert bob_http.get(f"{url}/hub/home", timeout=30, allow_redirects=False).status_code == 302

        # the tokens kept for refresh are encrypted with the crypt key, which reached the hub
        with sqlite3.connect(f"file:{paths.hub / 'jupyterhub.sqlite'}?mode=ro", uri=True) as db:
            stored = dict(db.execute("select name, encrypted_auth_state from users").fetchall())
        assert stored["a-smith"] and b"access_token" not in stored["a-smith"]
        log = (paths.hub / "jupyterhub.log").read_text(errors="replace")
        key = Path(env["ENCLAVE_CRYPT_KEY_FILE"]).read_text()
        assert key not in log and secret not in log
        assert not re.search(r"[?&](code|state)=(?!\[secret\])", log), "an authorization code reached the hub's log"
        assert "trust.nhs.uk" not in log and "gmail.example" not in log, "a claim's value reached the hub's log"
        lifecycle.stop(paths)

    registry = Registry(paths.database_url)
    try:
        with registry.session() as session:
            events = [e for e in audit.events(session) if e.detail.get("method") == "oidc"]
            assert audit.verify(session) == []
    finally:
        registry.close()
    failed = {(e.target, e.detail["reason"]) for e in events if e.action == "user.login_failed"}
    assert failed == {
        ("user:c-pwd", "no-second-factor"), ("user:unknown", "domain-not-allowed"),
        ("user:unknown", "unmappable-username"), ("user:unknown", "no-username-claim"),
        ("user:a-smith", "username-taken"), ("user:e-new", "not-a-member"), ("user:e-new", "no-second-factor"),
    }  # fmt: skip
    logins = [(e.target, e.detail["amr"]) for e in events if e.action == "user.login"]
    assert logins == [
        ("user:a-smith", ["otp", "pwd"]),
        ("user:b-jones", ["hwk", "pwd"]),
        ("user:e-new", ["otp", "pwd"]),
    ]
    assert not any("trust.nhs.uk" in str(e.detail) or "sub-000" in str(e.detail) for e in events)


def test_enclave_up_refuses_oidc_without_the_crypt_key(site, tmp_path):
    paths, env, _ = site
    env.update(ENCLAVE_OIDC_ISSUER="https://idp.invalid", ENCLAVE_CRYPT_KEY_FILE=str(tmp_path / "no-such-key"))
    up = enclave(env, "up")
    assert up.returncode == 1, up.stdout + up.stderr
    assert "ENCLAVE_CRYPT_KEY_FILE" in up.stderr and "openssl rand -hex 32" in up.stderr
    assert "Traceback" not in up.stderr and lifecycle.read_pid(paths) is None

    owner_only(tmp_path / "no-such-key", secrets.token_hex(32)).chmod(0o644)
    up = enclave(env, "up")
    assert up.returncode == 1 and "chmod 600" in up.stderr, up.stdout + up.stderr


def test_id_tokens_are_verified_against_the_providers_keys(tmp_path):
    """Only an ID token the provider signed, for this hub, still valid, is believed (its `amr` decides the second
    factor): one signed by another key under the provider's key id, for another client, from another issuer,
    expired, or unsigned is refused."""
    with running_provider({}, client_id=CLIENT_ID, client_secret="x", redirect_uri="http://127.0.0.1:1/cb") as op:
        auth = EnclaveOIDCAuthenticator(enclave_home=str(tmp_path), issuer=op.issuer, client_id=CLIENT_ID,
                                        jwks_url=f"{op.issuer}/jwks")  # fmt: skip
        now = int(time.time())
        claims = {"iss": op.issuer, "aud": CLIENT_ID, "sub": "sub-1", "iat": now, "exp": now + 300, "amr": MFA}

        def signed(key: RSAKey, **change: object) -> str:
            return jose_jwt.encode({"alg": "RS256", "kid": op.key.kid}, {**claims, **change}, key)

        assert auth._verified_id_claims(signed(op.key))["amr"] == MFA
        impostor = RSAKey.generate_key(2048, parameters={"kid": op.key.kid})
        unsigned = jwt.encode(claims, None, algorithm="none")
        forged = [signed(impostor), signed(op.key, aud="another-client"), signed(op.key, iss="https://idp.invalid"),
                  signed(op.key, exp=now - 3600, iat=now - 7200), unsigned]  # fmt: skip
        for token in forged:
            with pytest.raises(SignInRefused) as refused:
                auth._verified_id_claims(token)
            assert refused.value.status_code == 403 and refused.value.reason == "id-token-invalid"


def test_discovery_refuses_a_document_of_another_issuer():
    with running_provider({}, client_id=CLIENT_ID, client_secret="x", redirect_uri="http://127.0.0.1:1/cb") as op:
        assert discover(op.issuer)["ENCLAVE_OIDC_JWKS_URL"] == f"{op.issuer}/jwks"
        elsewhere = op.issuer.replace("127.0.0.1", "localhost")  # the same server, under a name it does not claim
        with pytest.raises(OIDCError, match="names another issuer"):
            discover(elsewhere)
        with pytest.raises(OIDCError, match="cannot read the identity provider's discovery document"):
            discover(f"{op.issuer}/no-such-realm")
