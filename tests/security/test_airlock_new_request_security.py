"""Red team: the web app's new-request page must never take one project's outputs into another project's request,
nor offer them. bob is a researcher on cvd-risk only and controls its outputs folder from his workspace (he can
plant links there); alice is a researcher on both cvd-risk and biomed. Every attempt to reach biomed's file through
cvd-risk's form, or biomed's form without membership, is refused and leaves no request, audit event or snapshot."""

from __future__ import annotations

import pytest

from output_checks.release.service import Airlock
from tests.airlock_factories import AUTHOR, OTHER_RESEARCHER, ensure_people, write_output
from tests.airlock_web import Person, dev_airlock, footprint
from tests.provisioned import provision

pytestmark = pytest.mark.security

PROJECT, OTHER = "cvd-risk", "biomed"
SECRET = b"group,n\nbiomed-only-marker-7f3a,150\n"


@pytest.fixture(scope="module")
def app(tmp_path_factory, cohort) -> Airlock:
    env = provision(tmp_path_factory.mktemp("new-request-sec"), cohort, {PROJECT: "DS-CVD", OTHER: "HMB"})
    airlock = Airlock(env.registry, env.paths)
    ensure_people(airlock)
    yield airlock
    env.registry.close()


@pytest.fixture(scope="module")
def base(app) -> str:
    with dev_airlock(app) as url:
        yield url


@pytest.fixture(scope="module")
def planted(app) -> dict[str, str]:
    """biomed's file, and the links bob plants in cvd-risk's outputs to reach it: cvd-risk paths by attack."""
    theirs = app.paths.project_outputs(OTHER)
    theirs.mkdir(parents=True, exist_ok=True)
    (theirs / "secret.csv").write_bytes(SECRET)
    write_output(app, "mine.csv", "site,n\nA,120\n")
    ours = app.paths.project_outputs(PROJECT)
    (ours / "steal.csv").symlink_to(theirs / "secret.csv")
    (ours / "biomed-outputs").symlink_to(theirs, target_is_directory=True)
    return {
        "link to the file": "steal.csv",
        "linked folder": "biomed-outputs/secret.csv",
        "dot-dot": f"../../{OTHER}/outputs/secret.csv",
        "absolute": str(theirs / "secret.csv"),
    }


def snapshots_hold_the_secret(app: Airlock) -> bool:
    return any(p.is_file() and p.read_bytes() == SECRET for p in app.store.snapshots.rglob("*"))


def test_another_projects_outputs_are_never_offered(app, base, planted):
    bob = Person(base, OTHER_RESEARCHER)
    page = bob.get("/new")
    assert page.status_code == 200 and 'value="mine.csv"' in page.text
    for name in ("secret.csv", "steal.csv", "biomed-outputs", "biomed-only-marker"):
        assert name not in page.text, name
    refused = bob.get("/new", params={"project": OTHER})
    assert refused.status_code == 403 and "secret.csv" not in refused.text


@pytest.mark.parametrize("attack", ["link to the file", "linked folder", "dot-dot", "absolute"])
@pytest.mark.parametrize("user", [OTHER_RESEARCHER, AUTHOR])
def test_another_projects_file_cannot_be_smuggled_into_a_request(app, base, planted, attack, user):
    before = footprint(app)
    r = Person(base, user).post("/new", {"project": PROJECT, "title": "Smuggle", "file": ["mine.csv", planted[attack]],
                                         "then": "submit"})  # fmt: skip
    assert r.status_code == 400, (user, attack)
    assert "biomed-only-marker" not in r.text
    assert footprint(app) == before and not snapshots_hold_the_secret(app)


def test_a_project_you_are_not_a_researcher_on_is_refused(app, base, planted):
    before = footprint(app)
    r = Person(base, OTHER_RESEARCHER).post("/new", {"project": OTHER, "title": "Not mine", "file": "secret.csv"})
    assert r.status_code == 403 and "not a researcher on project" in r.text
    assert footprint(app) == before and not snapshots_hold_the_secret(app)
    # alice is a researcher on biomed: the same file through biomed's own form is hers to ask for
    r = Person(base, AUTHOR).post("/new", {"project": OTHER, "title": "Mine", "file": "secret.csv", "then": "draft"})
    assert r.status_code == 303 and snapshots_hold_the_secret(app)
