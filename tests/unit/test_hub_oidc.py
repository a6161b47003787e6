"""OIDC sign-in's rules without a provider (tests/integration/test_hub_oidc_login.py runs them against a real one):
the settings as the settings file gives them, the hub configuration they make (groups Enclave's, not the provider's,
so JupyterHub starts), the crypt key and how it reaches the hub, claims turned into Enclave user names and each name
kept to one identity, and a sign-in without a second factor refused
and audited."""

from __future__ import annotations

import asyncio
from datetime import datetime
from importlib.metadata import entry_points

import pytest
from traitlets.config import Config

from fabric.models import Project, ProjectMember
from hub import lifecycle
from hub.config import HubSettings, apply_config
from hub.oidc import EnclaveOIDCAuthenticator, SignInRefused, second_factor_used
from hub.oidc_names import NameRefused, SubjectBindings, UsernameRule, read_explicit_map
from hub.oidc_settings import AUTHENTICATOR, ENDPOINTS, OIDCError, OIDCSettings, crypt_key
from kernel import audit
from kernel.config import Paths
from kernel.db import Registry

pytestmark = pytest.mark.unit
ISSUER = "https://idp.invalid/realms/enclave"  # never contacted: the endpoints are given
KEY = "ab" * 32


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "client-secret"
    path.write_text("s3cr3t\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "crypt-key"
    path.write_text(KEY + "\n")
    path.chmod(0o600)
    return path


def oidc_env(tmp_path, secret, key_file, **more: str) -> dict[str, str]:
    env = {
        "ENCLAVE_HOME": str(tmp_path / "home"), "ENCLAVE_AUTH": "oidc", "ENCLAVE_OIDC_ISSUER": ISSUER + "/",
        "ENCLAVE_OIDC_CLIENT_ID": "enclave-hub", "ENCLAVE_OIDC_CLIENT_SECRET_FILE": str(secret),
        "ENCLAVE_CRYPT_KEY_FILE": str(key_file), "ENCLAVE_SUBDOMAIN_HOST": "https://enclave.invalid",
        **{name: f"{ISSUER}/{member}" for name, member in ENDPOINTS.items()},
    }  # fmt: skip
    return {**env, **more}


# -- settings


def test_local_accounts_unless_oidc_is_chosen(tmp_path):
    assert HubSettings.from_env({"ENCLAVE_HOME": str(tmp_path)}).oidc is None
    assert HubSettings.from_env({"ENCLAVE_HOME": str(tmp_path), "ENCLAVE_AUTH": "local"}).oidc is None
    with pytest.raises(ValueError, match="ENCLAVE_AUTH must be local or oidc"):
        HubSettings.from_env({"ENCLAVE_HOME": str(tmp_path), "ENCLAVE_AUTH": "ldap"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ENCLAVE_OIDC_ISSUER": ""}, "needs ENCLAVE_OIDC_ISSUER"),
        ({"ENCLAVE_OIDC_CLIENT_ID": ""}, "needs ENCLAVE_OIDC_CLIENT_ID"),
        ({"ENCLAVE_OIDC_CLIENT_SECRET_FILE": ""}, "needs ENCLAVE_OIDC_CLIENT_SECRET_FILE"),
        ({"ENCLAVE_OIDC_ISSUER": "http://idp.invalid"}, "ENCLAVE_OIDC_ISSUER must be an https://"),
        ({"ENCLAVE_OIDC_TOKEN_URL": ""}, "or none"),
        ({"ENCLAVE_OIDC_USERNAME_MAPPING": "guess"}, "must be exact or email"),
        ({"ENCLAVE_OIDC_USERNAME_MAPPING": "email"}, "needs ENCLAVE_OIDC_ALLOWED_DOMAINS"),
        ({"ENCLAVE_OIDC_USERNAME_MAPPING": "email", "ENCLAVE_OIDC_ALLOWED_DOMAINS": "not a domain"}, "not a domain"),
    ],
)
def test_oidc_settings_say_what_to_correct(tmp_path, secret, key_file, change, message):
    with pytest.raises(ValueError, match=message):
        HubSettings.from_env(oidc_env(tmp_path, secret, key_file, **change))


def test_the_settings_travel_to_the_hub_as_they_were_read(tmp_path, secret, key_file):
    domains = "Trust.NHS.uk, other.nhs.uk"
    env = oidc_env(tmp_path, secret, key_file, ENCLAVE_OIDC_USERNAME_MAPPING="email",
                   ENCLAVE_OIDC_ALLOWED_DOMAINS=domains, ENCLAVE_OIDC_REQUIRED_AMR="otp,hwk")  # fmt: skip
    settings = OIDCSettings.from_env(env)
    assert settings.issuer == ISSUER and settings.allowed_domains == ("trust.nhs.uk", "other.nhs.uk")
    assert OIDCSettings.from_env(settings.environment()) == settings


# -- the hub's configuration


def test_oidc_config_leaves_groups_to_enclave_so_the_hub_starts(tmp_path, secret, key_file, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", KEY)
    c = Config()
    env = oidc_env(tmp_path, secret, key_file, ENCLAVE_ADMINS="ada", ENCLAVE_SESSION_IDLE_SECONDS="120")
    apply_config(c, HubSettings.from_env(env))
    # named by its entry point: reading the settings (the CLI, `enclave up`) never imports OAuthenticator
    assert c.JupyterHub.authenticator_class == AUTHENTICATOR
    assert entry_points(group="jupyterhub.authenticators")[AUTHENTICATOR].load() is EnclaveOIDCAuthenticator
    # JupyterHub refuses load_groups beside an authenticator that manages groups: Enclave keeps both its own
    assert c.JupyterHub.load_groups["platform-admins"] == {"users": ["ada"]}
    auth = EnclaveOIDCAuthenticator(config=c)
    assert auth.manage_groups is False and auth.enable_auth_state is True
    assert auth.client_secret == "s3cr3t" and auth.token_url == f"{ISSUER}/token_endpoint"
    assert auth.oauth_callback_url == "https://enclave.invalid/hub/oauth_callback"
    assert auth.enclave_home == str((tmp_path / "home").resolve()) and auth.platform_admins == ["ada"]
    assert auth.idle_timeout == 120 and not auth.validate_username("a.smith@trust.nhs.uk")


def test_oidc_groups_hold_every_member_one_can_sign_in_as(tmp_path, secret, key_file, monkeypatch):
    """No account is needed with OIDC, but a member's name must be one JupyterHub accepts (`_svc` is a valid project
    member name, not a user name): the hub refuses to start on a group member it does not."""
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", KEY)
    registry = Registry(Paths(tmp_path / "home").database_url)
    try:
        with registry.session() as session:
            session.add(
                Project(name="p1", title="P1", purpose="GRU", commercial=False, spec={}, created_at=datetime.now())
            )
            session.flush()
            for user, role in (("a-smith", "researcher"), ("_svc", "researcher"), ("carol", "output_checker")):
                session.add(ProjectMember(project_name="p1", username=user, role=role))
    finally:
        registry.close()
    c = Config()
    apply_config(c, HubSettings.from_env(oidc_env(tmp_path, secret, key_file, ENCLAVE_ADMINS="ada,Bad Name")))
    assert c.JupyterHub.load_groups == {"researchers": {"users": ["a-smith"]}, "output-checkers": {"users": ["carol"]},
                                        "platform-admins": {"users": ["ada"]}}  # fmt: skip


def test_oidc_config_refuses_a_hub_without_the_crypt_key(tmp_path, secret, key_file, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
    with pytest.raises(OIDCError, match="start the hub with `enclave up`"):
        apply_config(Config(), HubSettings.from_env(oidc_env(tmp_path, secret, key_file)))
    secret.chmod(0o640)
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", KEY)
    with pytest.raises(OIDCError, match="chmod 600"):
        apply_config(Config(), HubSettings.from_env(oidc_env(tmp_path, secret, key_file)))


def test_the_crypt_key_reaches_the_hub_in_its_environment_only(tmp_path, secret, key_file, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "inherited, never passed on")
    settings = HubSettings.from_env(oidc_env(tmp_path, secret, key_file))
    env = lifecycle.hub_environment(settings)
    assert env["JUPYTERHUB_CRYPT_KEY"] == KEY and env["ENCLAVE_AUTH"] == "oidc"
    assert "JUPYTERHUB_CRYPT_KEY" not in lifecycle.hub_environment(HubSettings.from_env({"ENCLAVE_HOME": "/x"}))


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [(None, 0o600, "does not exist"), (KEY, 0o644, "chmod 600"), ("not-hex", 0o600, "64 hex digits"),
     ("ab" * 16, 0o600, "64 hex digits"), ("", 0o600, "is empty")],
)  # fmt: skip
def test_a_bad_crypt_key_file_is_refused_saying_how_to_make_one(tmp_path, secret, key_file, content, mode, message):
    if content is None:
        key_file.unlink()
    else:
        key_file.write_text(content)
        key_file.chmod(mode)
    with pytest.raises(OIDCError, match=message) as refused:
        crypt_key(OIDCSettings.from_env(oidc_env(tmp_path, secret, key_file)))
    assert KEY not in str(refused.value)


def test_two_crypt_keys_rotate(tmp_path, secret, key_file):
    key_file.write_text(f"{'cd' * 32};{KEY}")
    assert crypt_key(OIDCSettings.from_env(oidc_env(tmp_path, secret, key_file))) == f"{'cd' * 32};{KEY}"


# -- user names


EMAIL = UsernameRule("email", "email", ("trust.nhs.uk",))


@pytest.mark.parametrize(
    ("rule", "claims", "name"),
    [
        (UsernameRule(), {"preferred_username": "Alice"}, "alice"),
        (EMAIL, {"email": "A.Smith@Trust.NHS.uk"}, "a-smith"),
        (EMAIL, {"email": "o_brien@trust.nhs.uk"}, "o_brien"),
        (UsernameRule("email", "email", ("trust.nhs.uk",), {"9lives@trust.nhs.uk": "nine"}),
         {"email": "9Lives@trust.nhs.uk"}, "nine"),
    ],
)  # fmt: skip
def test_claims_become_enclave_user_names(rule, claims, name):
    assert rule.username(claims) == name


@pytest.mark.parametrize(
    ("rule", "claims", "reason"),
    [
        (UsernameRule(), {"preferred_username": "a.smith@trust.nhs.uk"}, "unmappable-username"),
        (UsernameRule(), {"email": "alice@trust.nhs.uk"}, "no-username-claim"),
        (UsernameRule(), {"preferred_username": 7}, "no-username-claim"),
        (EMAIL, {"email": "a.smith@evil-trust.nhs.uk"}, "domain-not-allowed"),
        (EMAIL, {"email": "a.smith@sub.trust.nhs.uk"}, "domain-not-allowed"),
        (EMAIL, {"email": "a.smith"}, "not-an-email"),
        (EMAIL, {"email": "9lives@trust.nhs.uk"}, "unmappable-username"),
        (EMAIL, {"email": "a" * 40 + "@trust.nhs.uk"}, "unmappable-username"),
        (EMAIL, {"email": "a+b@trust.nhs.uk"}, "unmappable-username"),
    ],
)
def test_claims_that_make_no_user_name_are_refused_without_repeating_them(rule, claims, reason):
    with pytest.raises(NameRefused) as refused:
        rule.username(claims)
    assert refused.value.reason == reason
    assert not any(str(v).lower() in refused.value.message.lower() for v in claims.values() if len(str(v)) > 3)


def test_the_explicit_map_file(tmp_path):
    path = tmp_path / "names"
    path.write_text("# who does not fit the rule\nA.Smith@other.nhs.uk = asmith2\n\n9lives@trust.nhs.uk=nine\n")
    assert read_explicit_map(path) == {"a.smith@other.nhs.uk": "asmith2", "9lives@trust.nhs.uk": "nine"}
    for bad, message in (("x = Not Valid", "not an Enclave user name"), ("x = a1\ny = a1", "mapped to twice"),
                         ("x = a1\nX = a2", "mapped twice"), ("just text", "not a 'claim value")):  # fmt: skip
        path.write_text(bad)
        with pytest.raises(ValueError, match=message):
            read_explicit_map(path)


def test_each_name_is_kept_to_the_first_identity_that_used_it(tmp_path):
    bindings = SubjectBindings(tmp_path / "subjects.json")
    assert bindings.claim("a-smith", ISSUER, "sub-1")
    assert bindings.claim("a-smith", ISSUER, "sub-1")  # the same person again
    assert not bindings.claim("a-smith", ISSUER, "sub-2")  # another identity mapping to the same name
    assert not bindings.claim("a-smith", "https://other.invalid", "sub-1")  # the same sub at another provider
    stored = (tmp_path / "subjects.json").read_text()
    assert "sub-1" not in stored and (tmp_path / "subjects.json").stat().st_mode & 0o077 == 0
    assert bindings.release_name("a-smith") and bindings.claim("a-smith", ISSUER, "sub-2")


# -- ID tokens and the second factor


def authenticator(tmp_path, **config) -> EnclaveOIDCAuthenticator:
    return EnclaveOIDCAuthenticator(enclave_home=str(tmp_path / "home"), issuer=ISSUER, client_id="enclave-hub",
                                    **config)  # fmt: skip


def model(amr: list[str]) -> dict:
    """An auth model as `authenticate` leaves it: the verified ID token's claims kept as id_claims."""
    return {"name": "alice", "admin": None, "auth_state": {"id_claims": {"amr": amr, "iss": ISSUER, "sub": "s"}}}


@pytest.mark.parametrize(("amr", "ok"), [(["pwd", "otp"], True), (["hwk"], True), (["pwd"], False), ([], False)])
def test_second_factor_is_required(amr, ok):
    assert second_factor_used(model(amr), ["otp", "hwk", "mfa"]) is ok


def test_a_sign_in_without_a_second_factor_is_refused_and_audited(tmp_path):
    auth = authenticator(tmp_path, platform_admins=["alice"])
    with pytest.raises(SignInRefused) as refused:
        asyncio.run(auth.check_allowed("alice", model(["pwd"])))
    assert refused.value.status_code == 403 and "second factor" in refused.value.jupyterhub_message
    assert asyncio.run(auth.check_allowed("alice", model(["pwd", "otp"])))
    with pytest.raises(SignInRefused, match="not a member of any Enclave project"):
        asyncio.run(auth.check_allowed("bob", model(["otp"])))
    registry = Registry(Paths(tmp_path / "home").database_url)
    try:
        with registry.session() as session:
            seen = [(e.action, e.target, e.detail.get("reason")) for e in audit.events(session)]
    finally:
        registry.close()
    assert seen == [("user.login_failed", "user:alice", "no-second-factor"), ("user.login", "user:alice", None),
                    ("user.login_failed", "user:bob", "not-a-member")]  # fmt: skip
