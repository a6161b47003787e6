"""Known identifiers of every national scheme a site may declare: a source patient's BSN, NIR, PESEL, personnummer,
codice fiscale, DNI/NIE or Belgian national number in an output blocks however it is written (grouped, dotted,
dashed, in a CSV cell, in prose, reversed), its value masked in the finding; a valid number of the same shape that is
no patient's is not this check's business; the exported index keeps the schemes it holds."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import yaml

from fabric.catalogue import add_site
from fabric.identifiers.schemes import SCHEMES
from fabric.projects import ProjectSpec, create_project
from kernel.config import Paths
from kernel.db import Registry
from output_checks.screening.known import KnownIdentifiers, build_known_identifiers
from output_checks.screening.national import DIGIT_LENGTHS, LETTER_SHAPES
from output_checks.screening.text import Segment
from output_checks.verdicts import Verdict
from tests.airlock_helpers import check_one, messages, write
from tests.site_exports import complete_csv_local

pytestmark = pytest.mark.unit

# scheme: (a patient's number as the registry stores it, the same number written otherwise, a valid number of the
# same shape that is no patient's). Synthetic numbers made by each scheme's algorithm (fabric/identifiers/).
CASES = {
    "nl-bsn": ("111222333", ["1112.22.333", "111 222 333", "11122-2333"], "123456782"),
    "fr-nir": ("184127512345640", ["1 84 12 75 123 456 40", "1.84.12.75.123.456.40", "184127512345640"],
               "184127512345739"),
    "pl-pesel": ("85031412347", ["850314 12347", "850-314-123-47", "85031412347"], "85031412354"),
    "se-personnummer": ("198112189876", ["811218-9876", "19811218-9876", "19811218 9876"], "198112181238"),
    "it-codice-fiscale": ("TSTNMO85M50L219V", ["tstnmo85m50l219v", "TST NMO 85M50 L219 V", "TSTNMO-85M50-L219V"],
                          "RSSMRA80A01H501U"),
    "es-dni-nie": ("X1234567L", ["X-1234567-L", "x 1234567 l", "X.1234567.L"], "X1234568C"),
    "be-national-number": ("85073003328", ["85.07.30-033.28", "850730 033 28", "85073003328"], "85073003427"),
}  # fmt: skip
SETTINGS = ["patient {} was seen twice", "mrn,number,age\nL1,{},54", "{}", "(ref: {})."]


def test_every_scheme_but_the_nhs_has_a_case_and_a_shape():
    assert set(CASES) == set(SCHEMES) - {"nhs"}
    for code in SCHEMES:
        assert code in DIGIT_LENGTHS or code in LETTER_SHAPES, code


def index_of(code: str, value: str) -> KnownIdentifiers:
    known = KnownIdentifiers("demo")
    known.add("nhs", "943 476 5919")
    known.add("id", "RBH0012345")
    known.add_national(code, value)
    return known


def national(known: KnownIdentifiers, text: str) -> list:
    return [f for f in known.findings(Segment("l", text)) if "national identifier" in f.message]


@pytest.mark.parametrize("code", sorted(CASES))
@pytest.mark.parametrize("setting", SETTINGS)
def test_a_patients_number_written_any_way_blocks_masked(code, setting):
    stored, written, _ = CASES[code]
    known = index_of(code, stored)
    for form in written:
        findings = national(known, setting.format(form))
        assert findings, (code, form)
        (finding,) = findings
        assert finding.verdict is Verdict.BLOCK
        assert SCHEMES[code].name in finding.message
        assert form not in finding.message and stored not in finding.message
        assert form[:2] in finding.message  # masked, not dropped: the checker sees where it was


@pytest.mark.parametrize("code", sorted(CASES))
def test_a_valid_number_that_is_no_patients_is_not_flagged(code):
    stored, _, other = CASES[code]
    assert SCHEMES[code].normalise(other) == other  # the same shape, and valid: only the index tells them apart
    known = index_of(code, stored)
    for setting in SETTINGS:
        assert national(known, setting.format(other)) == []


@pytest.mark.parametrize("code", sorted(CASES))
def test_a_reversed_number_is_the_same_person(code):
    stored, written, _ = CASES[code]
    findings = national(index_of(code, stored), f"id {written[0][::-1]} here")
    assert findings and "disguised" in findings[0].message


def test_invisible_characters_and_the_corsican_nir():
    known = index_of("fr-nir", "290052A00401266")
    assert national(known, "NIR 2 90 05 2\u200bA 004 012 66")
    assert national(known, "2900 52a0 0401 266")
    assert national(known, "NIR 2 90 05 2B 004 012 66") == []


def test_a_personnummer_of_someone_over_100_with_its_plus():
    known = index_of("se-personnummer", "188112189876")
    assert national(known, "pnr 811218+9876")
    assert national(known, "pnr 811218-9876") == []  # the same digits are someone born in 1981


def test_a_dni_and_a_bsn_written_without_leading_zero():
    known = index_of("es-dni-nie", "40506070B")
    assert national(known, "DNI 40.506.070-b,")
    assert national(index_of("nl-bsn", "012345672"), "bsn,12345672\n")


def test_schemes_not_in_the_index_are_not_tried():
    known = index_of("nl-bsn", "111222333")
    # a patient's PESEL is not known here: nothing national is found, and the NHS number still is
    findings = list(known.findings(Segment("l", "85031412347 and 943 476 5919")))
    assert [f.message.split(" (")[0] for f in findings] == ["an NHS number of a source patient"]


def test_nhs_numbers_are_unchanged_beside_national_ones():
    known = index_of("pl-pesel", "85031412347")
    messages = [f.message for f in known.findings(Segment("l", "943-476-5919; 850314-12347"))]
    assert len(messages) == 2 and "NHS number" in messages[0] and "PESEL" in messages[1]


def test_export_and_restore_keep_the_national_identifiers_and_no_plaintext():
    known = index_of("it-codice-fiscale", "TSTNMO85M50L219V")
    known.add_national("be-national-number", "85.07.30-033.28")
    data = json.loads(json.dumps(known.export()))
    assert data["schemes"] == ["be-national-number", "it-codice-fiscale"]
    restored = KnownIdentifiers.restore(data)
    assert national(restored, "cf: tstnmo85m50l219v") and national(restored, "85.07.30-033.28")
    assert national(restored, "RSSMRA80A01H501U") == []
    blob = pickle.dumps(known) + json.dumps(data).encode()
    for value in (b"TSTNMO85M50L219V", b"85073003328"):
        assert value not in blob


def test_an_export_without_schemes_restores_as_before():
    data = index_of("nl-bsn", "111222333").export()
    del data["schemes"]
    restored = KnownIdentifiers.restore(data)
    assert national(restored, "111222333") == []  # no scheme, no shape tried
    assert list(restored.findings(Segment("l", "9434765919")))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("summary.csv", "site,pesel,n_visits\nwarsaw,850-314-123-47,3\n"),
        ("notes.md", "# Findings\n\nThe outlier (PESEL 850314 12347) was excluded.\n"),
    ],
)
def test_an_output_file_with_a_patients_number_is_blocked_as_a_known_identifier(tmp_path, name, content):
    known = index_of("pl-pesel", "85031412347")
    report = check_one(write(tmp_path, name, content), known=known)
    found = [f for f in report.findings if f.check == "known_identifiers" and "PESEL" in f.message]
    assert found and found[0].verdict is Verdict.BLOCK, messages(report)
    assert "12347" not in messages(report)


def bsn_site(root: Path, site_id: str, rows: list[tuple[str, str]]) -> Path:
    folder = root / site_id
    (folder / "clinical").mkdir(parents=True)
    header = "MRN,NHS_NO,SURNAME,FORENAME,DOB,SEX,POSTCODE,ETHNIC_GRP,SMOKER"
    lines = [header] + [f"{mrn},{number},Jansen,Anna,01/02/1980,F,AB1 2CD,,N" for mrn, number in rows]
    (folder / "clinical" / "patients.csv").write_text("\n".join(lines) + "\n")
    complete_csv_local(folder / "clinical")  # site add checks the whole export
    datasets = [{"id": f"{site_id}-clinical", "modality": "clinical", "format": "csv-local", "path": "clinical"}]
    manifest = {"id": site_id, "name": site_id.title(), "clinical_format": "csv-local", "datasets": datasets,
                "identifier_scheme": "nl-bsn"}  # fmt: skip
    (folder / "site.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def test_the_index_of_a_project_holds_its_patients_national_identifiers(tmp_path):
    paths = Paths(tmp_path)
    registry = Registry(paths.database_url)
    try:
        with registry.session() as session:
            add_site(session, bsn_site(tmp_path, "leiden", [("L1", "1112.22.333")]), actor="test")
            spec = {"name": "heart", "title": "Heart", "purpose": "DS-CVD", "datasets": ["*"],
                    "members": [{"user": "alice", "role": "researcher"}]}  # fmt: skip
            create_project(session, ProjectSpec.model_validate(spec), actor="admin")
        known = build_known_identifiers(registry, paths, "heart")
    finally:
        registry.close()
    assert known.export()["schemes"] == ["nl-bsn"]
    assert national(known, "the patient (BSN 111 222 333) was seen")
    assert national(known, "BSN 123456782") == []
