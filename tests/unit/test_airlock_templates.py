"""The airlock's templates decide no rule: what a reader may do comes from the business layer (`r.can`), so no
template compares anything with a state's or a role's name, or tests a request's state, its reader's part in it or
who its author is. Read from the Jinja syntax tree of every template, as the web app loads them."""

from __future__ import annotations

import pytest
from jinja2 import nodes

from fabric.projects import ProjectRole
from output_checks.release.states import Actor, RequestState
from output_checks.web.app import HERE, templates

pytestmark = pytest.mark.unit

NAMES = {s.value for s in RequestState} | {a.value for a in Actor} | {r.value for r in ProjectRole}
# What a rule would be decided from: the request's state, the reader's part in it, its author, the reader.
RULE_INPUTS = {"state", "you", "author", "roles", "reviewer"}
ATTRIBUTE_FILTERS = {"rejectattr", "selectattr", "attr", "map", "sort", "groupby", "sum"}
TEMPLATES = sorted(p.name for p in (HERE / "templates").glob("*.html"))


def rules_in(source: str) -> list[str]:
    """Each place in a template's source that decides something from a state's or a role's name or from who the
    reader is (empty when there is none). Whether anyone is signed in (`{% if user %}`) is not a rule."""
    tree = templates().parse(source)
    attributes = {  # the name of an attribute a filter reads (`rejectattr("withdrawn")`), not a value compared
        id(f.args[0]) for f in tree.find_all(nodes.Filter) if f.name in ATTRIBUTE_FILTERS and f.args
    }
    found = [
        f"the name {c.value!r}" for c in tree.find_all(nodes.Const) if c.value in NAMES and id(c) not in attributes
    ]
    for branch in [*tree.find_all(nodes.If), *tree.find_all(nodes.CondExpr)]:
        for node in [branch.test, *branch.test.find_all(nodes.Getattr)]:
            if isinstance(node, nodes.Getattr) and node.attr in RULE_INPUTS:
                found.append(f"a condition on {node.attr!r}")
        for compare in [branch.test, *branch.test.find_all(nodes.Compare)]:
            if isinstance(compare, nodes.Compare) and any(n.name == "user" for n in compare.find_all(nodes.Name)):
                found.append("a comparison with the reader")
    return found


@pytest.mark.parametrize("name", TEMPLATES)
def test_no_template_decides_a_rule(name):
    assert rules_in((HERE / "templates" / name).read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        '{% if r.state == "approved" %}release{% endif %}',
        '{% if r.state in ("draft", "returned") %}edit{% endif %}',
        '{% set author = r.you == "author" %}',
        "{% if user == r.author %}yours{% endif %}",
        '{{ "again" if r.state else "first" }}',
        '{% for who in r.waiting_for %}{% if who == "checker" %}checkers{% endif %}{% endfor %}',
    ],
)
def test_a_rule_in_a_template_is_found(source):
    assert rules_in(source)


def test_what_the_pages_show_is_not_a_rule():
    shown = "{{ m.state(r.state) }} by {{ r.author }}{% if can.release %}<form></form>{% endif %}"
    assert rules_in('{% import "_macros.html" as m %}{% if f.blocked %}!{% endif %}' + shown) == []
