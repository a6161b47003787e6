"""A site's federation policy (federation/site_policy.py): the YAML and its errors, and `decide` as a table in
which every action and every reason is reached."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import yaml

from federation.site_policy import Action, Decision, Reason, SitePolicy, decide, load_policy
from federation.tasks import OUTPUT_KINDS, DeclaredOutput
from kernel.errors import InvalidInputError, SpecError
from tests.federation_factories import make_manifest

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs" / "reference" / "federation-tasks.md"

POLICY = SitePolicy.model_validate(
    {
        "projects": {
            "cardio-outcomes": {
                "purpose": "DS-CVD",
                "coordinator": "consortium-hub",
                "submitters": ["alice", "bob"],
                "output_kinds": ["counts", "estimates", "table"],
                "approve_code": False,
            },
            "open-project": {
                "purpose": "DS-CVD",
                "coordinator": "consortium-hub",
                "submitters": "*",
                "output_kinds": ["counts", "estimates"],
            },
        }
    }
)

ESTIMATES = (DeclaredOutput("model/estimates.csv", "estimates"),)

# (what the manifest changes, the peer coordinator, the decision)
MATRIX = [
    ({}, "consortium-hub", Decision(Action.ACCEPT, Reason.ALLOWED)),
    (
        {"project": "open-project", "submitter": "carol"},
        "consortium-hub",
        Decision(Action.NEEDS_APPROVAL, Reason.CODE_APPROVAL_REQUIRED),
    ),
    ({"project": "unknown-project"}, "consortium-hub", Decision(Action.REFUSE, Reason.PROJECT_NOT_APPROVED)),
    ({"purpose": "GRU"}, "consortium-hub", Decision(Action.REFUSE, Reason.PURPOSE_MISMATCH)),
    ({"purpose": "HMB"}, "consortium-hub", Decision(Action.REFUSE, Reason.PURPOSE_MISMATCH)),
    ({}, "rogue-hub", Decision(Action.REFUSE, Reason.COORDINATOR_MISMATCH)),
    ({"coordinator": "rogue-hub"}, "consortium-hub", Decision(Action.REFUSE, Reason.COORDINATOR_MISMATCH)),
    ({"submitter": "mallory"}, "consortium-hub", Decision(Action.REFUSE, Reason.SUBMITTER_NOT_ALLOWED)),
    (
        {"outputs": (*ESTIMATES, DeclaredOutput("plots/km.png", "figure"))},
        "consortium-hub",
        Decision(Action.REFUSE, Reason.OUTPUT_KIND_NOT_ALLOWED),
    ),
    (
        {"project": "open-project", "outputs": (DeclaredOutput("notes.txt", "text"),)},
        "consortium-hub",
        Decision(Action.REFUSE, Reason.OUTPUT_KIND_NOT_ALLOWED),
    ),
    # The first failing rule decides: project, purpose, coordinator, submitter, output kinds.
    (
        {"project": "unknown-project", "purpose": "GRU"},
        "rogue-hub",
        Decision(Action.REFUSE, Reason.PROJECT_NOT_APPROVED),
    ),
    ({"purpose": "GRU", "submitter": "mallory"}, "rogue-hub", Decision(Action.REFUSE, Reason.PURPOSE_MISMATCH)),
    ({"submitter": "mallory"}, "rogue-hub", Decision(Action.REFUSE, Reason.COORDINATOR_MISMATCH)),
]


@pytest.mark.parametrize(("changes", "peer", "expected"), MATRIX)
def test_decide(changes, peer, expected):
    assert decide(make_manifest(**changes), POLICY, coordinator=peer) == expected


def test_the_matrix_reaches_every_action_and_reason():
    assert {decision.action for _, _, decision in MATRIX} == set(Action)
    assert {decision.reason for _, _, decision in MATRIX} == set(Reason)


def test_actions_and_reasons_are_the_codes_the_agent_reports():
    assert [action.value for action in Action] == ["accept", "needs-approval", "refuse"]
    assert "output-kind-not-allowed" in {reason.value for reason in Reason}


def test_an_empty_policy_refuses_everything():
    assert decide(make_manifest(), SitePolicy(), coordinator="consortium-hub") == Decision(
        Action.REFUSE, Reason.PROJECT_NOT_APPROVED
    )


def test_code_approval_is_the_default_and_a_site_or_project_may_turn_it_off():
    project = {
        "purpose": "DS-CVD",
        "coordinator": "consortium-hub",
        "submitters": "*",
        "output_kinds": ["counts", "estimates"],
    }
    manifest = make_manifest()
    for site_setting, project_setting, action in [
        ({}, {}, Action.NEEDS_APPROVAL),
        ({"approve_code": False}, {}, Action.ACCEPT),
        ({"approve_code": False}, {"approve_code": True}, Action.NEEDS_APPROVAL),
        ({}, {"approve_code": False}, Action.ACCEPT),
    ]:
        policy = SitePolicy.model_validate(
            {**site_setting, "projects": {"cardio-outcomes": {**project, **project_setting}}}
        )
        assert decide(manifest, policy, coordinator="consortium-hub").action == action


def test_the_policy_knows_the_manifests_output_kinds():
    field = SitePolicy.model_fields["projects"].annotation
    project_model = typing.get_args(field)[1]
    kinds = typing.get_args(typing.get_args(project_model.model_fields["output_kinds"].annotation)[0])
    assert set(kinds) == set(OUTPUT_KINDS)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_a_policy_file_loads_with_its_defaults(tmp_path):
    policy = load_policy(
        write(
            tmp_path,
            """
projects:
  cardio-outcomes:
    purpose: DS-CVD
    coordinator: consortium-hub
    submitters: "*"
    output_kinds: [table]
""",
        )
    )
    assert policy.min_cell == 10
    assert policy.approve_code is True
    assert policy.projects["cardio-outcomes"].submitters == "*"


def test_the_documented_example_policy_loads(tmp_path):
    text = DOCS.read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    policy = load_policy(write(tmp_path, example))
    assert policy.projects


def one_project(**fields) -> str:
    """A policy of one project `p` as YAML: a valid one, with `fields` changed (None: left out)."""
    project = {"purpose": "GRU", "coordinator": "c", "submitters": "*", "output_kinds": ["table"], **fields}
    return yaml.safe_dump({"projects": {"p": {k: v for k, v in project.items() if v is not None}}})


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("projects: {}\nmin_cels: 5\n", "min_cels"),
        ("min_cell: 0\n", "min_cell"),
        ("approve_code: maybe\n", "approve_code"),
        ("projects:\n  Cardio:\n    purpose: GRU\n", "projects.Cardio"),
        (one_project(output_kinds=["movie"]), "projects.p.output_kinds.0"),
        (one_project(output_kinds=[]), "projects.p.output_kinds"),
        (one_project(output_kinds=["table", "table"]), "projects.p.output_kinds"),
        (one_project(submitters=["Alice"]), "projects.p.submitters"),
        (one_project(submitters=["a1", "a1"]), "projects.p.submitters"),
        (one_project(submitters="everyone"), "projects.p.submitters"),
        (one_project(purpose="gru"), "projects.p.purpose"),
        (one_project(coordinator=None), "projects.p.coordinator"),
        (one_project(min_cell=3), "projects.p.min_cell"),
    ],
)
def test_a_bad_policy_names_the_field(tmp_path, text, field):
    with pytest.raises(SpecError) as caught:
        load_policy(write(tmp_path, text))
    assert field in str(caught.value)


def test_a_policy_that_is_not_a_mapping_or_not_yaml_is_refused(tmp_path):
    with pytest.raises(SpecError):
        load_policy(write(tmp_path, "- a list\n"))
    with pytest.raises(InvalidInputError):
        load_policy(write(tmp_path, "projects: [unclosed\n"))
    with pytest.raises(InvalidInputError):
        load_policy(tmp_path / "missing.yaml")
