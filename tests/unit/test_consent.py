"""The consent rule: DUO purposes as data, modifiers, history, and parsing of site exports."""

from datetime import date

import pytest

from fabric.consent import (
    MODIFIER_RULES,
    PURPOSE_PARENT,
    ConsentAction,
    ConsentRecord,
    ConsentState,
    purpose_chain,
    state_in_force,
)
from fabric.models import ConsentEvent
from kernel.errors import EnclaveError

pytestmark = pytest.mark.unit


def test_purpose_table_is_a_tree_with_one_root():
    roots = [p for p, parent in PURPOSE_PARENT.items() if parent is None]
    assert roots == ["GRU"]
    for purpose in PURPOSE_PARENT:
        chain = purpose_chain(purpose)
        assert chain[-1] == "GRU"
        assert len(chain) == len(set(chain))


def test_every_modifier_rule_is_known():
    assert set(MODIFIER_RULES.values()) <= {"non-commercial", "publication"}


def grant(*purposes, modifiers=()):
    return ConsentState(ConsentAction.GRANT, tuple(purposes), tuple(modifiers), date(2020, 1, 1))


@pytest.mark.parametrize(
    ("consented", "project", "covered"),
    [
        ("GRU", "GRU", True),
        ("GRU", "HMB", True),
        ("GRU", "DS-CVD", True),
        ("HMB", "DS-CVD", True),
        ("HMB", "HMB", True),
        ("HMB", "GRU", False),
        ("DS-CVD", "DS-CVD", True),
        ("DS-CVD", "HMB", False),
        ("DS-CVD", "POA", False),
        ("POA", "DS-CVD", False),
    ],
)
def test_a_consent_covers_its_purpose_and_narrower_ones(consented, project, covered):
    assert grant(consented).covers(project, commercial=False) is covered


def test_not_for_profit_consent_excludes_commercial_projects():
    assert grant("GRU", modifiers=["NPU"]).covers("DS-CVD", commercial=False)
    assert not grant("GRU", modifiers=["NPU"]).covers("DS-CVD", commercial=True)
    assert grant("GRU").covers("DS-CVD", commercial=True)


def test_an_unknown_modifier_covers_nothing():
    assert not grant("GRU", modifiers=["XYZ"]).covers("DS-CVD", commercial=False)


def test_withdrawal_covers_nothing():
    state = ConsentState(ConsentAction.WITHDRAW, (), (), date(2024, 1, 1))
    assert not state.covers("GRU", commercial=False)


def event(day, action, purposes=(), id_=None):
    return ConsentEvent(id=id_, date=day, action=action, purposes=list(purposes), modifiers=[])


def test_latest_event_on_or_before_the_day_is_in_force():
    history = [
        event(date(2020, 1, 1), "grant", ["GRU"], 1),
        event(date(2022, 6, 1), "narrow", ["DS-CVD"], 2),
        event(date(2024, 3, 1), "withdraw", [], 3),
    ]
    assert state_in_force(history, date(2019, 1, 1)) is None
    assert state_in_force(history, date(2021, 1, 1)).purposes == ("GRU",)
    assert state_in_force(history, date(2023, 1, 1)).purposes == ("DS-CVD",)
    assert state_in_force(history, date(2024, 3, 1)).action is ConsentAction.WITHDRAW
    # order of the input does not matter
    assert state_in_force(list(reversed(history)), date(2023, 1, 1)).purposes == ("DS-CVD",)


def test_consent_record_parses_a_site_line():
    rec = ConsentRecord.parse(
        {"nhs_number": "943 476 5919", "date": "2021-03-04", "action": "grant", "purposes": ["HMB"]}, "x"
    )
    assert rec.nhs_number == "9434765919"
    assert rec.action is ConsentAction.GRANT


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"date": "2021-03-04", "action": "grant", "purposes": ["GRU"]}, "missing field 'nhs_number'"),
        ({"nhs_number": "9434765919", "date": "04/03/2021", "action": "grant", "purposes": ["GRU"]}, "isoformat"),
        ({"nhs_number": "9434765919", "date": "2021-03-04", "action": "maybe", "purposes": ["GRU"]}, "maybe"),
        ({"nhs_number": "9434765919", "date": "2021-03-04", "action": "grant", "purposes": ["XYZ"]}, "unknown purpose"),
        ({"nhs_number": "9434765919", "date": "2021-03-04", "action": "grant", "purposes": []}, "at least one"),
        ({"nhs_number": "12345", "date": "2021-03-04", "action": "grant", "purposes": ["GRU"]}, "10 digits"),
    ],
)
def test_bad_consent_lines_are_refused_clearly(raw, message):
    with pytest.raises(EnclaveError, match=message) as info:
        ConsentRecord.parse(raw, "consent.ndjson line 3")
    assert str(info.value).startswith("consent.ndjson line 3")
    assert "9434765919" not in str(info.value)
