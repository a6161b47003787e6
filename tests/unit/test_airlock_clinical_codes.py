"""Clinical codes are not personal identifiers: SNOMED CT and dm+d ids that happen to pass a card number's Luhn check
or an NHS number's mod 11, ICD-10, OPCS-4, LOINC, Read, CTV3, ATC codes, gene symbols and rs ids, in codelists and
prevalence reports, raise no identifier finding; the same digits under an identifier's name still block."""

from __future__ import annotations

import pytest

from output_checks.checks.base import Context
from output_checks.checks.tables import check_rows
from output_checks.policy import load_policy
from output_checks.screening.codes import codes, luhn, printed_column, snomed_id, verhoeff
from output_checks.screening.text import Screener, Segment
from output_checks.verdicts import Verdict

pytestmark = pytest.mark.unit

POLICY = load_policy()


@pytest.fixture(scope="module")
def screener() -> Screener:
    return Screener(POLICY)


def with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if verhoeff(body + d))


def snomed_ids(predicate, *, namespace: str = "1000000", start: int = 4_000_000, n: int = 1) -> list[str]:
    """SNOMED CT extension concept ids (item + namespace + partition 10 + Verhoeff) that satisfy `predicate`."""
    out = []
    item = start
    while len(out) < n:
        value = with_check_digit(f"{item}{namespace}10")
        if predicate(value):
            out.append(value)
        item += 1
    return out


def is_nhs(value: str) -> bool:
    if len(value) != 10:
        return False
    total = sum(int(d) * w for d, w in zip(value[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    return (0 if check == 11 else check) == int(value[9]) and check != 10


def core_ids(predicate, *, start: int = 1_000_000, n: int = 1) -> list[str]:
    out, item = [], start
    while len(out) < n:
        value = with_check_digit(f"{item}00")
        if predicate(value):
            out.append(value)
        item += 1
    return out


# Digits that are SNOMED CT ids and also pass the checks of the identifiers they were mistaken for.
CARD_LIKE = snomed_ids(luhn, n=6)
NHS_LIKE = core_ids(is_nhs, start=4_000_000, n=3)


def findings(screener: Screener, segments: list[Segment]):
    return list(screener.screen_segments(segments, check="identifiers"))


def table(rows: list[list[str]]):
    ctx = Context(policy=POLICY, screener_factory=lambda: SCREENER[0])
    return list(check_rows(rows, "codes.csv", ctx))


SCREENER: list[Screener] = []


@pytest.fixture(autouse=True)
def _shared(screener):
    SCREENER[:] = [screener]


def identifier_findings(found) -> list[str]:
    return [f.message for f in found if f.check in ("identifiers", "known_identifiers")]


# ---------------------------------------------------------------------------------------------- the checksums


def test_the_look_alikes_really_are_both():
    assert all(snomed_id(v) and luhn(v) for v in CARD_LIKE)
    assert all(snomed_id(v) and is_nhs(v) for v in NHS_LIKE)


@pytest.mark.parametrize("code", ["22298006", "38341003", "73211009", "84114007", "49436004", "1240581000000104"])
def test_real_snomed_ids_validate(code):
    assert snomed_id(code)


@pytest.mark.parametrize("value", ["22298007", "2229800", "022298006", "4111111111111111", "9434765919"])
def test_other_numbers_are_not_snomed_ids(value):
    assert not snomed_id(value)


@pytest.mark.parametrize(
    ("value", "system"),
    [("I21.4", "icd10"), ("I50.9", "icd10"), ("E11.65", "icd10"), ("K40.1", "opcs4"), ("2160-0", "loinc"),
     ("C07AB02", "atc"), ("rs11591147", "rsid"), ("39720311000001101", "snomed")],
)  # fmt: skip
def test_codes_fit_their_systems(value, system):
    assert system in codes().fits(value)


@pytest.mark.parametrize(("value", "system"), [("G30..", "read2"), ("XE0Uc", "ctv3"), ("MYH7", "hgnc")])
def test_short_codes_fit_only_in_context(value, system):
    assert system not in codes().fits(value)
    assert system in codes().fits(value, context=True)


def test_loinc_check_digit():
    assert codes().fits("2160-0") and not codes().fits("2160-1")


# ---------------------------------------------------------------------------------------------- free text


def test_bare_card_like_snomed_id_is_review_not_block(screener):
    found = findings(screener, [Segment("line 1", f"value {CARD_LIKE[0]} recorded")])
    assert found and all(f.verdict is Verdict.REVIEW for f in found), [f.message for f in found]


@pytest.mark.parametrize(
    "line",
    [
        "SNOMED CT {code} was used to define the cohort.",
        "| {code} | Acute myocardial infarction | 1,204 | 3.1 |",
        "{code}\tHeart failure with reduced ejection fraction\t845",
        "Concept {code} (Hypertrophic cardiomyopathy): 212 patients",
    ],
)
def test_codes_in_prevalence_report_lines_pass(screener, line):
    segments = [Segment(f"line {i}", line.format(code=code)) for i, code in enumerate(CARD_LIKE + NHS_LIKE)]
    assert findings(screener, segments) == []


def test_markdown_codelist_whose_header_names_the_column(screener):
    rows = "\n".join(f"| {code} | Disorder {i} | {100 + i} |" for i, code in enumerate(CARD_LIKE))
    text = f"## Codelist\n\n| conceptId | term | n |\n|---|---|---|\n{rows}\n"
    assert findings(screener, [Segment("report.md", text)]) == []
    assert printed_column(text, text.index(CARD_LIKE[2]) - 2, text.index(CARD_LIKE[2])) == "conceptId"


def test_prevalence_report_as_text_passes(screener):
    counts = range(120, 120 + 731 * 9, 731)
    lines = [f"{code}  {n:>6}  {n / 41.2:5.1f}%" for code, n in zip(CARD_LIKE + NHS_LIKE, counts, strict=True)]
    assert findings(screener, [Segment("report.txt", "\n".join(lines))]) == []


# ---------------------------------------------------------------------------------------------- tables


@pytest.mark.parametrize("header", ["code", "snomed_code", "conceptId", "dmd_id", "SCTID", "id"])
def test_snomed_codelist_table_passes(header):
    rows = [[header, "term"]] + [[c, f"Disorder {i}"] for i, c in enumerate(CARD_LIKE + NHS_LIKE)]
    assert identifier_findings(table(rows)) == []


@pytest.mark.parametrize(
    "codes_",
    [
        ["I21.0", "I21.4", "I50.9", "I25.1", "E78.0"],  # ICD-10
        ["I50.21", "E11.65", "Z95.1", "I48.91", "Q21.3"],  # ICD-10-CM
        ["K40.1", "K49.2", "K75.4", "K63.1", "K57.1"],  # OPCS-4
        ["2160-0", "2093-3", "2085-9", "13457-7", "4548-4"],  # LOINC
        ["G30..", "G301.", "G3071", "G33..", "G58.."],  # Read v2
        ["XE0Uc", "X200E", "XaIzQ", "G30..", "Xa0lK"],  # CTV3
        ["C07AB02", "C10AA05", "B01AC06", "C09AA05", "C03CA01"],  # ATC
        ["MYH7", "TTN", "KCNQ1", "LMNA", "MYBPC3"],  # HGNC symbols
        ["rs11591147", "rs7412", "rs429358", "rs10455872", "rs3798220"],  # rs ids
    ],
)
def test_codelists_of_every_system_pass(codes_):
    rows = [["code", "term", "n"]] + [[c, f"Term {i}", str(1000 + 37 * i)] for i, c in enumerate(codes_)]
    assert identifier_findings(table(rows)) == []


def test_prevalence_report_table_passes():
    rows = [["snomed_concept", "description", "patients", "percent"]]
    rows += [[c, "Atrial fibrillation", str(200 + i * 31), f"{1.5 + i:.1f}"] for i, c in enumerate(CARD_LIKE)]
    assert identifier_findings(table(rows)) == []


# ---------------------------------------------------------------------------------------------- identifiers stay


def test_nhs_number_in_an_nhs_column_blocks_even_if_a_valid_snomed_id():
    rows = [["nhs_number", "age_band"]] + [[v, "60-69"] for v in NHS_LIKE]
    found = table(rows)
    assert any(f.verdict is Verdict.BLOCK and "UK_NHS" in f.message for f in found), identifier_findings(found)


def test_card_number_in_a_card_column_blocks_even_if_a_valid_snomed_id():
    rows = [["card_number", "amount"]] + [[v, "12.50"] for v in CARD_LIKE[:3]]
    found = table(rows)
    assert any(f.verdict is Verdict.BLOCK and "CREDIT_CARD" in f.message for f in found), identifier_findings(found)


def test_nhs_number_named_in_the_line_blocks_beside_a_code_word(screener):
    text = f"Patient NHS number {NHS_LIKE[0]}, SNOMED code 22298006 (myocardial infarction)"
    found = findings(screener, [Segment("line 1", text)])
    assert any(f.verdict is Verdict.BLOCK and "UK_NHS" in f.message for f in found)


def test_real_nhs_number_that_is_no_code_blocks_in_a_code_column():
    rows = [["code", "term"], ["9434765919", "Myocardial infarction"]]  # mod 11 valid, not a SNOMED id
    found = table(rows)
    assert any(f.verdict is Verdict.BLOCK and "UK_NHS" in f.message for f in found), identifier_findings(found)
