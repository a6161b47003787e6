"""A csv-local site's CSV dialect (site.yaml `clinical_dialect`, fabric/clinical/dialect.py): without one an export
reads exactly as before; a Dutch export of the same facts (its own file and column names, dd-mm-yyyy dates, `;`,
a decimal comma, Windows-1252) reads into the same harmonised tables; bad dialects are refused with the field and
the reason; `site add` checks the export in its dialect, keeps the dialect in the registry and audits it."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from sqlalchemy import select

from fabric.catalogue import SiteManifest, add_site
from fabric.clinical import DEFAULT_DIALECT, CsvDialect, open_site_clinical
from fabric.clinical.dialect import as_dialect
from fabric.clinical.schema import SOURCE_COLUMNS
from fabric.models import Site
from fabric.site_export import IncompleteExportError
from kernel.db import Registry
from kernel.errors import InvalidInputError, SpecError
from kernel.models import AuditEvent
from synthetic_sites.dutch import DIALECT as DUTCH

pytestmark = pytest.mark.unit

TABLES = ("patients", "diagnoses", "medications", "measurements", "outcomes")

UK_FILES = {
    "patients.csv": "MRN,NHS_NO,SURNAME,FORENAME,DOB,SEX,POSTCODE,ETHNIC_GRP,SMOKER\n"
    "M001,111 222 333,Visser,Anouk,04/07/1956,F,3584 CX,,EX\n"
    "M002,123456721,de Vries,Daniël,31/12/1970,M,3511 AB,,N\n",
    "diagnoses.csv": 'MRN,ICD10,DIAG_DESC,DIAG_DATE\nM001,i21.4,"NSTEMI, anterior",02/03/2019\n',
    "medications.csv": "MRN,DRUG,DOSE,START_DATE\nM001,Atorvastatin,80 mg,03/03/2019\n",
    "results.csv": "MRN,TEST_CODE,RESULT,UNITS,RESULT_DATE\nM001,LDL,4.2,mmol/L,02/03/2019\n"
    "M002,HBA1C,48,mmol/mol,05/05/2020\n",
    "events.csv": "MRN,EVENT,EVENT_DATE\nM001,MI,01/02/2022\n",
}
# The same facts as the Dutch site writes them (synthetic_sites/dutch.py DIALECT).
NL_FILES = {
    "patienten.csv": "patientnummer;bsn;achternaam;voornaam;geboortedatum;geslacht;postcode;etniciteit;rookstatus\n"
    "M001;111 222 333;Visser;Anouk;04-07-1956;F;3584 CX;;EX\n"
    "M002;123456721;de Vries;Daniël;31-12-1970;M;3511 AB;;N\n",
    "diagnoses.csv": "patientnummer;icd10_code;omschrijving;diagnosedatum\nM001;i21.4;NSTEMI, anterior;02-03-2019\n",
    "medicatie.csv": "patientnummer;geneesmiddel;dosering;startdatum\nM001;Atorvastatin;80 mg;03-03-2019\n",
    "labuitslagen.csv": "patientnummer;bepaling;uitslag;eenheid;uitslagdatum\nM001;LDL;4,2;mmol/L;02-03-2019\n"
    "M002;HBA1C;48;mmol/mol;05-05-2020\n",
    "gebeurtenissen.csv": "patientnummer;gebeurtenis;datum_gebeurtenis\nM001;MI;01-02-2022\n",
}


def export(root, files: dict[str, str], encoding: str = "utf-8"):
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_bytes(text.encode(encoding))
    return root


def read_all(reader) -> dict[str, pd.DataFrame]:
    out = {}
    for name in TABLES:
        chunks = list(reader.iter_table(name))
        out[name] = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=SOURCE_COLUMNS[name])
    return out


def test_without_a_dialect_an_export_reads_as_before(tmp_path):
    root = export(tmp_path / "uk", UK_FILES)
    before = read_all(open_site_clinical(root, "csv-local", "uk"))
    assert as_dialect(None) == as_dialect({}) == DEFAULT_DIALECT and DEFAULT_DIALECT.is_default()
    for dialect in ({}, DEFAULT_DIALECT, {"date_format": "%d/%m/%Y", "delimiter": ","}):
        again = read_all(open_site_clinical(root, "csv-local", "uk", dialect))
        for name in TABLES:
            pd.testing.assert_frame_equal(again[name], before[name])
    assert before["patients"]["nhs_number"].tolist() == ["111222333", "123456721"]
    assert before["measurements"]["value"].tolist() == [4.2, 48.0]


def test_a_dutch_export_reads_into_the_same_harmonised_tables(tmp_path):
    uk = read_all(open_site_clinical(export(tmp_path / "uk", UK_FILES), "csv-local", "uk"))
    root = export(tmp_path / "nl", NL_FILES, encoding="cp1252")
    nl = read_all(open_site_clinical(root, "csv-local", "umcu", DUTCH))
    for name in TABLES:
        pd.testing.assert_frame_equal(nl[name], uk[name])
    assert nl["patients"]["forename"].tolist() == ["Anouk", "Daniël"]  # Windows-1252 read as such
    assert nl["diagnoses"]["description"].tolist() == ["NSTEMI, anterior"]  # a comma is data under ';'


def test_reading_in_the_wrong_dialect_says_what_is_wrong(tmp_path):
    root = export(tmp_path / "nl", NL_FILES, encoding="cp1252")
    (root / "patients.csv").write_text(NL_FILES["patienten.csv"], encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"missing column\(s\) MRN, NHS_NO.*is the delimiter ','\?"):
        list(open_site_clinical(root, "csv-local", "umcu").iter_table("patients"))
    comma_dates = {**DUTCH, "date_format": "%d/%m/%Y"}
    with pytest.raises(InvalidInputError, match=r"column geboortedatum: 2 value\(s\) are not dates in %d/%m/%Y"):
        list(open_site_clinical(root, "csv-local", "umcu", comma_dates).iter_table("patients"))
    (root / "labuitslagen.csv").write_text(
        "patientnummer;bepaling;uitslag;eenheid;uitslagdatum\nM1;LDL;4.2;mmol/L;02-03-2019\n"
    )
    with pytest.raises(InvalidInputError, match=r"1 uitslag value\(s\) are not numbers with decimal separator ','"):
        list(open_site_clinical(root, "csv-local", "umcu", DUTCH).iter_table("measurements"))
    (root / "patienten.csv").write_bytes("patientnummer;bsn\nM1;Daniël\n".encode())  # UTF-8, not cp1252
    utf8 = {**DUTCH, "encoding": "ascii"}
    with pytest.raises(InvalidInputError, match=r"not a readable CSV \(UnicodeDecodeError\)"):
        list(open_site_clinical(root, "csv-local", "umcu", utf8).iter_table("patients"))


BAD_DIALECTS = [
    ({"date_format": "%Y"}, "date_format '%Y' needs %d, %m and %Y"),
    ({"date_format": "%d-%m-%Y-%d"}, "does not read back the dates it writes"),
    ({"delimiter": ";;"}, "delimiter ';;' must be one character"),
    ({"delimiter": "a"}, "delimiter 'a' must be one character"),
    ({"decimal": "·"}, "decimal '·' must be '.' or ','"),
    ({"decimal": ","}, "delimiter and decimal separator must differ"),
    ({"encoding": "klingon"}, "unknown encoding 'klingon'"),
    ({"encoding": "utf-16"}, "encoding 'utf-16' is not ASCII-compatible"),
    ({"columns": {"NHS": "bsn"}}, "unknown column 'NHS'"),
    ({"columns": {"SURNAME": "naam", "FORENAME": "naam"}}, "two columns of patients would have the same name"),
    ({"columns": {"MRN": " "}}, "the site's name for MRN is empty"),
    ({"files": {"results": "x.csv"}}, "unknown table 'results'"),
    ({"files": {"patients": "../p.csv"}}, "must be a plain file name"),
    ({"files": {"patients": "events.csv"}}, "two tables would be read from the same file"),
    ({"quotechar": "'"}, "Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("dialect", "message"), BAD_DIALECTS)
def test_bad_dialects_are_refused_naming_the_field(tmp_path, dialect, message):
    manifest = {
        "id": "s",
        "name": "S",
        "clinical_format": "csv-local",
        "clinical_dialect": dialect,
        "datasets": [{"id": "s-clinical", "modality": "clinical", "format": "csv-local", "path": "clinical"}],
    }
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(SpecError, match="clinical_dialect") as raised:
        SiteManifest.load(tmp_path / "site.yaml")
    assert message in str(raised.value)
    with pytest.raises(SpecError, match="clinical_dialect"):
        as_dialect(dialect)


def test_a_dialect_is_for_csv_local_only(tmp_path):
    manifest = {
        "id": "s",
        "name": "S",
        "clinical_format": "fhir-ndjson",
        "clinical_dialect": {"delimiter": ";"},
        "datasets": [{"id": "s-clinical", "modality": "clinical", "format": "fhir-ndjson", "path": "clinical"}],
    }
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(SpecError, match="clinical_dialect describes a csv-local export, not fhir-ndjson"):
        SiteManifest.load(tmp_path / "site.yaml")


def dutch_site(root, dialect) -> None:
    export(root / "clinical", NL_FILES, encoding="cp1252")
    manifest = {
        "id": "umcu",
        "name": "UMCU",
        "clinical_format": "csv-local",
        "identifier_scheme": "nl-bsn",
        "datasets": [{"id": "umcu-clinical", "modality": "clinical", "format": "csv-local", "path": "clinical"}],
    }
    if dialect is not None:
        manifest["clinical_dialect"] = dialect
    (root / "site.yaml").write_text(yaml.safe_dump(manifest, allow_unicode=True))


def test_site_add_reads_the_export_in_its_dialect_and_keeps_it(tmp_path):
    registry = Registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    try:
        dutch_site(tmp_path / "without", None)
        with pytest.raises(IncompleteExportError) as refused, registry.session() as session:
            add_site(session, tmp_path / "without", actor="test")
        assert "patients.csv: missing from the site's clinical export" in str(refused.value)

        dutch_site(tmp_path / "umcu", DUTCH)
        with registry.session() as session:
            _site, summaries = add_site(session, tmp_path / "umcu", actor="test")
        assert (summaries[0].linked, summaries[0].invalid_identifiers) == (2, 0)
        with registry.session() as session:
            site = session.get(Site, "umcu")
            assert CsvDialect.model_validate(site.clinical_dialect) == CsvDialect.model_validate(DUTCH)
            event = session.scalars(select(AuditEvent).where(AuditEvent.action == "site.add")).one()
            assert event.detail["clinical_dialect"]["delimiter"] == ";"
            assert event.detail["clinical_dialect_changed"] is True
            reader = open_site_clinical(tmp_path / "umcu" / "clinical", "csv-local", "umcu", site.clinical_dialect)
            assert len(read_all(reader)["measurements"]) == 2
    finally:
        registry.close()
