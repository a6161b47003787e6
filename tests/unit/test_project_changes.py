"""Changing a project (issue 16): replacing its spec keeps the members who stay (it used to fail with the unique key's
IntegrityError), the plan says what changes, members are removed and roles changed with an audit event each, a
project never gets or keeps fewer output checkers than its releases need reviews, and a closed project's researchers
lose their membership while nothing about it changes any more (a real registry database)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fabric.models import ProjectMember
from fabric.project_plan import plan_changes
from fabric.projects import (
    ProjectSpec,
    accept_datasets,
    add_member,
    close_project,
    create_project,
    plan_replacement,
    remove_member,
    require_enough_checkers,
    set_role,
)
from kernel import audit
from kernel.config import Paths
from kernel.db import Registry
from kernel.errors import EnclaveError, NotFoundError, SpecError

pytestmark = pytest.mark.unit
DEFAULT_REVIEWS = 2  # the airlock's default, passed in as the CLI does
MEMBERS = [("alice", "researcher"), ("bob", "researcher"), ("carol", "output_checker"), ("dave", "output_checker")]


def spec(members=MEMBERS, **changes) -> ProjectSpec:
    fields = {"name": "heart", "title": "Heart", "purpose": "DS-CVD", "datasets": ["*"],
              "members": [{"user": u, "role": r} for u, r in members], **changes}  # fmt: skip
    return ProjectSpec.model_validate(fields)


@pytest.fixture
def registry(tmp_path):
    registry = Registry(Paths(tmp_path).database_url)
    with registry.session() as session:
        create_project(session, spec(), actor="admin")
    yield registry
    registry.close()


def rows(registry) -> list[tuple[str, str]]:
    with registry.session() as session:
        found = session.scalars(select(ProjectMember).where(ProjectMember.project_name == "heart"))
        return sorted((m.username, m.role) for m in found)


def last_event(registry):
    with registry.session() as session:
        return audit.events(session, project="heart")[-1]


def test_replacing_a_spec_keeps_the_members_who_stay(registry):
    changed = [*MEMBERS[1:], ("erin", "researcher"), ("alice", "output_checker")]
    with registry.session() as session:
        create_project(session, spec(changed, purpose="HMB"), actor="admin", replace=True)
    assert rows(registry) == sorted(changed)
    event = last_event(registry)
    assert event.action == "project.update"
    assert event.detail["members_added"] == {"erin": ["researcher"]}
    assert event.detail["roles_changed"] == {"alice": {"from": ["researcher"], "to": ["output_checker"]}}
    assert event.detail["fields"] == {"purpose": {"from": "DS-CVD", "to": "HMB"}}
    assert "members_removed" not in event.detail


def test_replacing_with_the_same_spec_changes_and_records_nothing(registry):
    before = last_event(registry).seq
    with registry.session() as session:
        assert plan_replacement(session, spec()).empty
        create_project(session, spec(), actor="admin", replace=True)
    assert rows(registry) == sorted(MEMBERS) and last_event(registry).seq == before


def test_a_plan_approved_earlier_is_refused_once_the_project_changed(registry):
    with registry.session() as session:
        shown = plan_replacement(session, spec(MEMBERS[1:]))
    with registry.session() as session:
        add_member(session, "heart", "erin", "researcher", actor="admin")
    with registry.session() as session, pytest.raises(EnclaveError, match="changed since its plan was shown"):
        create_project(session, spec(MEMBERS[1:]), actor="admin", replace=True, expected=shown)


def test_the_plan_names_every_kind_of_change():
    old = spec().model_dump(mode="json") | {"datasets": ["a", "b"]}
    members = [("bob", "output_checker"), ("carol", "output_checker"), ("erin", "researcher")]
    new = spec(members, datasets=["b", "c"], title="Hearts", airlock={"reviews_required": 1}).model_dump(mode="json")
    plan = plan_changes(old, MEMBERS, new)
    assert plan.lines() == [
        "+ member erin (researcher)",
        "- member alice (researcher)",
        "- member dave (output_checker)",
        "~ member bob: researcher -> output_checker",
        "+ dataset c",
        "- dataset a",
        "~ title: Heart -> Hearts",
        "~ airlock: " + str(old["airlock"]) + " -> " + str(new["airlock"]),
    ]
    assert plan.affected_users() == ["alice", "bob", "dave", "erin"]
    assert not plan.empty and plan_changes(old, MEMBERS, old).empty


def test_remove_member_takes_every_role_and_is_audited(registry):
    with registry.session() as session:
        add_member(session, "heart", "bob", "output_checker", actor="admin")
        roles = remove_member(session, "heart", "bob", actor="admin", default_reviews=DEFAULT_REVIEWS)
    assert roles == ["output_checker", "researcher"]
    assert "bob" not in {u for u, _ in rows(registry)}
    event = last_event(registry)
    assert (event.action, event.detail) == ("project.remove_member", {"user": "bob", "roles": roles})
    with registry.session() as session, pytest.raises(NotFoundError, match="bob is not a member of project heart"):
        remove_member(session, "heart", "bob", actor="admin", default_reviews=DEFAULT_REVIEWS)


def test_set_role_replaces_the_members_roles_and_is_audited(registry):
    with registry.session() as session:
        assert set_role(session, "heart", "alice", "output_checker", actor="admin", default_reviews=2) == ["researcher"]
    assert ("alice", "output_checker") in rows(registry) and ("alice", "researcher") not in rows(registry)
    event = last_event(registry)
    assert event.action == "project.set_role" and event.detail["roles_before"] == ["researcher"]
    before = event.seq
    with registry.session() as session:
        set_role(session, "heart", "alice", "output_checker", actor="admin", default_reviews=2)
    assert last_event(registry).seq == before, "no change, no event"


def test_a_spec_with_fewer_checkers_than_reviews_is_refused():
    one = [("alice", "researcher"), ("carol", "output_checker")]
    with pytest.raises(SpecError, match=r"1 output checker\(s\), but each release needs 2 independent reviews"):
        require_enough_checkers(spec(one), DEFAULT_REVIEWS)
    with pytest.raises(SpecError, match="needs 3 independent reviews"):
        require_enough_checkers(spec(airlock={"reviews_required": 3}), DEFAULT_REVIEWS)
    both = [("carol", "researcher"), ("carol", "output_checker")]  # never their own reviewer: no one for carol's
    with pytest.raises(SpecError, match=r"carol is a researcher and an output checker.* only 0 other"):
        require_enough_checkers(spec(both), DEFAULT_REVIEWS)
    require_enough_checkers(spec(one, airlock={"reviews_required": 1}), DEFAULT_REVIEWS)
    require_enough_checkers(spec(), DEFAULT_REVIEWS)


def test_membership_changes_keep_enough_checkers(registry):
    for change in (
        lambda s: remove_member(s, "heart", "carol", actor="admin", default_reviews=DEFAULT_REVIEWS),
        lambda s: set_role(s, "heart", "dave", "researcher", actor="admin", default_reviews=DEFAULT_REVIEWS),
    ):
        with registry.session() as session, pytest.raises(EnclaveError, match="would have 1 output checker"):
            change(session)
    assert rows(registry) == sorted(MEMBERS)
    with registry.session() as session:  # researchers may still leave, and a lower default lets a checker go
        remove_member(session, "heart", "alice", actor="admin", default_reviews=DEFAULT_REVIEWS)
        remove_member(session, "heart", "carol", actor="admin", default_reviews=1)
    assert rows(registry) == [("bob", "researcher"), ("dave", "output_checker")]


def test_closing_ends_the_researchers_access_keeps_the_checkers_and_freezes_the_project(registry):
    with registry.session() as session:
        assert close_project(session, "heart", actor="admin") == ["alice", "bob"]
    assert rows(registry) == [("carol", "output_checker"), ("dave", "output_checker")]
    with registry.session() as session:
        [event] = [e for e in audit.events(session) if e.action == "project.close"]
        assert event.detail["researchers"] == ["alice", "bob"] and event.detail["checkers"] == ["carol", "dave"]
    refusals = {
        "add a member": lambda s: add_member(s, "heart", "erin", "researcher", actor="admin"),
        "remove one": lambda s: remove_member(s, "heart", "carol", actor="admin", default_reviews=DEFAULT_REVIEWS),
        "change a role": lambda s: set_role(s, "heart", "dave", "researcher", actor="admin",
                                            default_reviews=DEFAULT_REVIEWS),
        "replace it": lambda s: create_project(s, spec(), actor="admin", replace=True),
        "accept datasets": lambda s: accept_datasets(s, "heart", actor="admin"),
        "close it again": lambda s: close_project(s, "heart", actor="admin"),
    }  # fmt: skip
    for what, change in refusals.items():
        with registry.session() as session, pytest.raises(EnclaveError, match="heart is closed"):
            change(session)
            pytest.fail(f"a closed project let the admin {what}")
    assert rows(registry) == [("carol", "output_checker"), ("dave", "output_checker")]


def test_a_researcher_who_also_checks_needs_enough_other_checkers():
    """Review finding (issue 16): a member who is both a researcher and an output checker can never review their own
    requests, so counting them as one of the two reviewers left their requests waiting forever."""
    both = [("erin", "researcher"), ("erin", "output_checker"), ("carol", "output_checker")]
    with pytest.raises(SpecError, match="erin is a researcher and an output checker, so their own release requests"):
        require_enough_checkers(spec(both), DEFAULT_REVIEWS)
    require_enough_checkers(spec([*both, ("dave", "output_checker")]), DEFAULT_REVIEWS)  # two others for erin
    require_enough_checkers(spec(both, airlock={"reviews_required": 1}), DEFAULT_REVIEWS)


def test_making_a_checker_a_researcher_too_is_refused_when_their_requests_would_lack_reviewers(registry):
    with registry.session() as session, pytest.raises(EnclaveError, match="carol would be a researcher and an output"):
        add_member(session, "heart", "carol", "researcher", actor="admin", default_reviews=DEFAULT_REVIEWS)
    assert ("carol", "researcher") not in rows(registry)
    with registry.session() as session:  # a third checker first: then carol's requests have two others
        add_member(session, "heart", "erin", "output_checker", actor="admin", default_reviews=DEFAULT_REVIEWS)
        add_member(session, "heart", "carol", "researcher", actor="admin", default_reviews=DEFAULT_REVIEWS)
    assert ("carol", "researcher") in rows(registry)
    with registry.session() as session, pytest.raises(EnclaveError, match="would be a researcher and an output"):
        remove_member(session, "heart", "erin", actor="admin", default_reviews=DEFAULT_REVIEWS)
