"""The airlock benchmark's generator: deterministic at a tiny scale, and it plants what it says it plants."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import nbformat
import pytest

from bench import airlock_bundle
from synthetic_sites.identifiers import is_valid_nhs_number

pytestmark = pytest.mark.unit

SCALE = 0.002


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return airlock_bundle.prepare(tmp_path_factory.mktemp("a"), SCALE, flat_mb=(1,))


def test_the_same_seed_gives_the_same_bytes(home: Path, tmp_path: Path) -> None:
    again = airlock_bundle.prepare(tmp_path, SCALE, flat_mb=(1,))
    assert _digests(home) == _digests(again)
    assert len(_digests(home)) > 40


def test_every_planted_identifier_is_where_it_is_said_to_be(home: Path) -> None:
    plants = json.loads((home / "plants.json").read_text())
    kinds = {p["kind"] for p in plants}
    assert {"name+nhs_number", "small_count", "name+dob+postcode", "mrn+phone", "mrn+email"} <= kinds
    for plant in plants:
        text = (home / "bundle" / plant["path"]).read_text()
        for kind, needle in plant["needles"]:
            assert text.count(needle) >= 1, (plant["path"], kind)
            if kind == "nhs_number":
                assert is_valid_nhs_number(needle)


def test_one_row_of_two_thousand_holds_the_identifier(home: Path) -> None:
    plants = {p["path"]: p for p in json.loads((home / "plants.json").read_text())}
    for rel in ("tables/rows/followup_2000.csv", "tables/aggregates/site_comments.csv"):
        with (home / "bundle" / rel).open(newline="") as fh:
            rows = list(csv.reader(fh))[1:]
        assert len(rows) == 2000
        nhs = dict(plants[rel]["needles"])["nhs_number"]
        assert sum(nhs in ",".join(row) for row in rows) == 1
        # the slice keeps these tables whole, so the baseline sees the planted row too
        assert (home / "slice" / rel).read_bytes() == (home / "bundle" / rel).read_bytes()


def test_rows_tables_use_project_pseudonyms(home: Path) -> None:
    with (home / "bundle" / "tables/rows/cohort_extract.csv").open() as fh:
        header, first = next(csv.reader(fh)), next(csv.reader(fh))
    assert header == ["patient_id", "age", "sex", "ldl_mmol_l", "icd10", "event_date"]
    assert first[0].startswith("P-") and len(first[0]) == 18
    assert set(first[0][2:]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def test_notebooks_are_valid_nbformat_4(home: Path) -> None:
    notebooks = sorted((home / "bundle" / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 3
    kinds: set[str] = set()
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        kinds |= {o["output_type"] for c in nb.cells for o in c.get("outputs", [])}
        assert {c.cell_type for c in nb.cells} == {"markdown", "code"}
    assert {"stream", "execute_result", "display_data"} <= kinds


def test_the_slice_is_split_into_tables_and_text(home: Path) -> None:
    tables = {p.suffix for p in (home / "slice" / "tables").rglob("*") if p.is_file()}
    text = {p.suffix for p in (home / "slice" / "text").rglob("*") if p.is_file()}
    assert tables == {".csv", ".tsv", ".parquet"}
    assert {".ipynb", ".md", ".html", ".txt"} <= text


def test_the_labelled_set_has_both_classes_and_valid_nhs_numbers(home: Path) -> None:
    labels = json.loads((home / "labelled" / "labels.json").read_text())
    items = home / "labelled" / "items"
    assert len(labels) >= 300
    assert sorted(p.name for p in items.iterdir()) == sorted(x["file"] for x in labels)
    positives = [x for x in labels if x["positive"]]
    assert 100 <= len(positives) <= len(labels) - 100
    kinds = {x["kind"] for x in positives}
    assert {"name", "nhs_number", "dob", "email", "phone", "postcode", "mrn", "address", "national_id"} <= kinds
    for x in positives:
        if x["kind"] == "nhs_number" and x["file"].endswith(".txt"):
            digits = "".join(ch for ch in (items / x["file"]).read_text() if ch.isdigit())
            assert any(is_valid_nhs_number(digits[i : i + 10]) for i in range(len(digits) - 9))
