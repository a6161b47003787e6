"""Re-keyed pseudonyms and other disguised identifiers: the project's known identifiers are found however a
release request rewrites them (prefix dropped, reversed, re-cased, split by invisible characters or separators),
the index crosses into the sandbox with its cohort size, and pseudonym-shaped tokens from elsewhere are found by
shape without catching digests, UUIDs or words."""

from __future__ import annotations

import json

import pytest

from output_checks.screening.known import KnownIdentifiers, dates_in
from output_checks.screening.pseudonyms import shaped_pseudonyms
from output_checks.screening.text import Segment
from output_checks.verdicts import Verdict

pytestmark = pytest.mark.unit

PSEUDONYM = "P-K7QM2XRA4TZB6WNE"
BODY = PSEUDONYM[2:]
NHS = "9434765919"


@pytest.fixture
def index() -> KnownIdentifiers:
    known = KnownIdentifiers("cardio", cohort_size=412)
    known.add("pseudonym", PSEUDONYM)
    known.add("nhs", "943 476 5919")
    known.add("id", "RBH0012345")
    known.add_name("Margaret", "Thompson")
    known.add("dob", "1961-03-03")
    return known


def kinds(index: KnownIdentifiers, text: str) -> list[tuple[str, Verdict]]:
    return [(f.message.split(" (")[0], f.verdict) for f in index.findings(Segment("row 3", text))]


def blocked_as(index: KnownIdentifiers, text: str, what: str) -> bool:
    found = list(index.findings(Segment("row 3", text)))
    return any(what in f.message and f.verdict is Verdict.BLOCK for f in found)


@pytest.mark.parametrize(
    "text",
    [
        f"id {PSEUDONYM}",
        f"id,{BODY},61",  # prefix dropped
        f"{BODY[::-1]},61",  # prefix dropped and reversed
        PSEUDONYM[::-1],  # reversed as a whole
        PSEUDONYM.lower(),
        BODY.lower(),
        BODY.lower()[::-1],
        f"P-{BODY[:6]}\u200b{BODY[6:]}",  # zero-width space
        f"{BODY[:4]}\u200c{BODY[4:8]}\u200d{BODY[8:12]}\u2060{BODY[12:]}",
        f"\ufeff{BODY[:8]}\u00ad{BODY[8:]}",  # BOM and soft hyphen
        " ".join(BODY[i : i + 4] for i in range(0, 16, 4)),
        "-".join(BODY[i : i + 4] for i in range(0, 16, 4)),
        ".".join(BODY[i : i + 4] for i in range(0, 16, 4)),
        "P-" + "-".join(BODY[i : i + 4] for i in range(0, 16, 4)),
        f"{BODY[:8]} {BODY[8:]}",
    ],
)
def test_disguised_pseudonyms_block(index, text):
    assert blocked_as(index, text, "a pseudonym of this project"), kinds(index, text)


def test_a_disguise_is_named_in_the_finding(index):
    (plain,) = index.findings(Segment("l", PSEUDONYM))
    (reversed_,) = index.findings(Segment("l", PSEUDONYM[::-1]))
    assert "disguised" not in plain.message and "disguised" in reversed_.message
    assert BODY not in reversed_.message and BODY[::-1] not in reversed_.message


@pytest.mark.parametrize(
    "text",
    [
        "943 476 5919",
        "943-476-5919",
        "943.476.5919",
        "9195674349",
        "919 567 4349",
        "9434\u200b765919",
        "94 34 76 59 19",
    ],
)
def test_disguised_nhs_numbers_block(index, text):
    assert blocked_as(index, f"patient {text} seen", "an NHS number"), kinds(index, text)


@pytest.mark.parametrize(
    "text",
    ["Margaret Thompson", "MARGARET THOMPSON", "nospmohT teragraM", "Marg\u200baret Thompson", "MargaretThompson",
     "margaret_thompson", "margaret.thompson", "thompsonmargaret", "Thompson, Margaret"],
)  # fmt: skip
def test_disguised_names_block(index, text):
    assert blocked_as(index, text, "the name of a source patient"), kinds(index, text)


@pytest.mark.parametrize("text", ["5432100HBR", "rbh0012345", "RBH 0012345"])
def test_disguised_hospital_numbers_block(index, text):
    assert blocked_as(index, text, "hospital or sample number"), kinds(index, text)


@pytest.mark.parametrize(
    "text", ["03/03/1961", "1961-03-03", "19610303", "3 March 1961", "3rd of March 1961", "March 3, 1961",
             "03MAR1961", "1961/03/03", "03.03.1961"],
)  # fmt: skip
def test_dates_of_birth_in_other_formats(index, text):
    assert kinds(index, f"born {text}") == [("a source patient's date of birth", Verdict.REVIEW)]


def test_ambiguous_day_month_order_reads_both_ways():
    assert {iso for _, iso in dates_in("04/03/1961")} == {"1961-03-04", "1961-04-03"}


@pytest.mark.parametrize(
    "text",
    [
        "P-K7QM2XRA4TZB6WNF",  # one character off
        "K7QM2XRA4TZB6WNF",
        "9434765918",
        "the patient was seen in clinic",
        "Margaret Thomson",
        "e3b0c44298fc1c149afbf4c8996fb924",
        "04/03/1962",
    ],
)
def test_near_misses_do_not_match(index, text):
    assert kinds(index, text) == []


def test_export_restore_keeps_matching_and_cohort_size(index):
    data = json.loads(json.dumps(index.export()))
    assert data["version"] == 2 and data["cohort_size"] == 412
    restored = KnownIdentifiers.restore(data)
    assert restored.cohort_size == 412
    assert blocked_as(restored, BODY[::-1].lower(), "a pseudonym of this project")
    assert blocked_as(restored, "9195674349", "an NHS number")


def test_a_version_1_export_still_matches_plain_pseudonyms(index):
    old = KnownIdentifiers("cardio")
    old._put("pseudonym", PSEUDONYM)  # format 1 hashed the pseudonym with its prefix
    data = old.export()
    del data["version"], data["cohort_size"]
    restored = KnownIdentifiers.restore(data)
    assert restored.cohort_size is None
    assert blocked_as(restored, f"row {PSEUDONYM}", "a pseudonym of this project")
    assert blocked_as(restored, PSEUDONYM.lower(), "a pseudonym of this project")


def test_cohort_size_defaults_to_unknown():
    assert KnownIdentifiers("x").cohort_size is None
    assert KnownIdentifiers.restore(KnownIdentifiers("x").export()).cohort_size is None


def test_birth_year_share_tells_a_column_of_cohort_birth_years():
    known = KnownIdentifiers("cardio")
    for year, n in ((1950, 3), (1955, 2), (1961, 4)):
        for day in range(1, n + 1):
            known.add("dob", f"{year}-01-{day:02d}")
    assert known.birth_year_share([1961, 1950, 1961, 1955, 1950]) == 1.0
    assert known.birth_year_share([1961] * 8) == 0.5  # more 1961s than the cohort has
    assert known.birth_year_share([1970, 1971, 1972]) == 0.0
    assert KnownIdentifiers("empty").birth_year_share([1961]) == 0.0


# ---------------------------------------------------------------------------------------- pseudonyms by shape


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("P-K7QM2XRA\u200b4TZB6WNE", Verdict.BLOCK),  # the prefix makes it unambiguous
        ("ENW6BZT4ARX2MQ7K-P", Verdict.BLOCK),
        ("id K7QM2XRA4TZB6WNE age 61", Verdict.REVIEW),
        ("enw6bzt4arx2mq7k", Verdict.REVIEW),
        ("K7QM-2XRA-4TZB-6WNE", Verdict.REVIEW),
        ("k7qm 2xra 4tzb 6wne", Verdict.REVIEW),
    ],
)
def test_pseudonyms_of_another_project_are_found_by_shape(text, verdict):
    found = list(shaped_pseudonyms(Segment("l", text), "identifiers"))
    assert [f.verdict for f in found] == [verdict]


@pytest.mark.parametrize(
    "text",
    [
        "P-K7QM2XRA4TZB6WNE",  # the plain form, in any case, is Presidio's (its own recogniser): not reported twice
        "p-k7qm2xra4tzb6wne",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "commit 4524470a1b2c3d4e5f60718293a4b5c6d7e8f901",
        "run 123e4567-e89b-12d3-a456-426614174000",
        "dGhpcyBpcyBhIHRl",  # base64, mixed case
        "CHARACTERIZATION and responsibilities",
        "deadbeefcafe2345",  # hex
        "ABCDEFGHIJKLMNOP",  # no digit: a word or a run of letters
        "the quick brown fox jumps over it",
        "rs11591147 chr1:55039974 G>T",
        "ENST00000302118 ENSG00000169174",
        "Heart failure subtype 23",  # prose joined across spaces
        "this will take some 2345 time",
        "Model 2 adjusted for age 45 to 67 years",
    ],
)
def test_look_alikes_are_not_pseudonyms(text):
    assert list(shaped_pseudonyms(Segment("l", text), "identifiers")) == []


def test_a_list_of_shaped_ids_blocks_in_text_and_in_a_column():
    from output_checks.policy import load_policy
    from output_checks.screening.text import Screener

    screener = Screener(load_policy())
    ids = ["EB7YBSGSD2RQAQ3W", "M4DTX42SSGCXWXVN", "EAJ4FDMVZ3OHTZMS", "4GYLWDHT7B2ILDEA"]
    text = "| id | LDL-C |\n|---|---|\n" + "\n".join(f"| {i} | 7.{n} |" for n, i in enumerate(ids))
    found = list(screener._shaped([Segment("outliers.md", text)], set(), "identifiers"))
    assert len(found) == 4 and all(f.verdict is Verdict.BLOCK for f in found)
    cells = [Segment(f"t.csv, column 'id', row {n}", i) for n, i in enumerate(ids)]
    assert {f.verdict for f in screener._shaped(cells, set(), "identifiers")} == {Verdict.BLOCK}
    assert [f.verdict for f in screener._shaped(cells[:1], set(), "identifiers")] == [Verdict.REVIEW]
