"""Known identifiers: keyed hashes of real identifiers, matched in any spelling the text uses, with no plaintext
list and no false matches on near misses."""

from __future__ import annotations

import pickle

import pytest

from output_checks.screening.known import KnownIdentifiers, dates_in
from output_checks.screening.text import Segment
from output_checks.verdicts import Verdict

pytestmark = pytest.mark.unit


@pytest.fixture
def index() -> KnownIdentifiers:
    known = KnownIdentifiers("demo")
    known.add("nhs", "943 476 5919")
    known.add("id", "RBH0012345")
    known.add_name("Margaret", "Thompson")
    known.add("dob", "1956-03-14")
    known.add("postcode", "LS6 2QT")
    known.add("pseudonym", "P-ABCDEFGHIJKLMNOP")
    return known


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("nhs 9434765919", "NHS number"),
        ("943-476-5919", "NHS number"),
        ("ref rbh0012345", "hospital or sample number"),
        ("THOMPSON, Margaret", "name of a source patient"),
        ("margaret thompson", "name of a source patient"),
        ("ls62qt", "postcode"),
        ("row P-ABCDEFGHIJKLMNOP", "pseudonym"),
    ],
)
def test_matches_in_any_spelling(index, text, kind):
    findings = list(index.findings(Segment("l", text)))
    assert findings and kind in findings[0].message and findings[0].verdict is Verdict.BLOCK


@pytest.mark.parametrize("text", ["943 476 5918", "Margaret Thomson", "Thompson", "P-ABCDEFGHIJKLMNOQ", "LS6 2QU"])
def test_near_misses_do_not_match(index, text):
    assert list(index.findings(Segment("l", text))) == []


def test_date_of_birth_alone_is_review_and_with_a_name_block(index):
    assert [f.verdict for f in index.findings(Segment("l", "seen 14/03/1956"))] == [Verdict.REVIEW]
    verdicts = {f.verdict for f in index.findings(Segment("l", "Margaret Thompson 14 March 1956"))}
    assert verdicts == {Verdict.BLOCK}


def test_dates_in_every_common_form():
    text = "14/03/1956, 1956-03-14, 14th March 1956, March 14, 1956 and 31/02/2020"
    assert [iso for _, iso in dates_in(text)] == ["1956-03-14"] * 4


def test_the_index_holds_no_plaintext(index):
    blob = pickle.dumps(index)
    for value in (b"9434765919", b"margaret", b"RBH0012345", b"LS62QT", b"P-ABCDEFGHIJKLMNOP", b"1956-03-14"):
        assert value not in blob.replace(b"\x00", b"")
    assert len(index) == 17  # names in two orders, joined too; each id also reversed; the birth year


def test_findings_mask_the_match(index):
    message = " ".join(f.message for f in index.findings(Segment("l", "Margaret Thompson 9434765919")))
    assert "Margaret" not in message and "9434765919" not in message
