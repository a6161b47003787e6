"""The synthetic cohort's Dutch site (synthetic_sites/dutch.py) end to end: a UK-only cohort is byte for byte what
it was before the site existed, and adding the Dutch site changes no UK file; its export speaks Dutch (file and
column names, dd-mm-yyyy dates, `;`, decimal comma, Windows-1252), its patients carry valid BSNs (consent and the
lab manifest too) and Dutch postcodes; it registers with the installed `enclave site add`, its consent imports by
BSN, and its patients reach a project's view pseudonymised in every modality, with no BSN, MRN, name, postcode or
lab sample id left in it."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pydicom
import pysam
import pytest
import yaml

from fabric.clinical import open_site_clinical
from fabric.identifiers import bsn
from kernel.errors import EnclaveError
from synthetic_sites import generate_cohort
from synthetic_sites.dutch import DIALECT
from tests.view_scan import decoded

pytestmark = pytest.mark.integration

ENCLAVE = shutil.which("enclave", path=str(Path(sys.executable).parent)) or "enclave"
SMALL_UK = {"patients": 60, "sites": 3, "seed": 7, "variants": 200}
# sha256 over (path, sha256) of every file of SMALL_UK's cohort, computed with the generator before the Dutch site
# existed (commit 196eef1): UK output must never change when another country's site is added.
SMALL_UK_DIGEST = "6d4b66f8ceee158ac489ae25ab0a15fc7dc0d9dbae22ece88ed40ee8142a9cb2"
PSEUDONYM = re.compile(r"^P-[A-Z2-7]{16}$")


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


@pytest.fixture(scope="module")
def nl_cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nl") / "sites"
    summary = generate_cohort(out, patients=100, sites=2, seed=3, variants=200, progress=False, extra_sites=("umcu",))
    assert (summary.sites, summary.patients, summary.per_site["umcu"]["records"]) == (3, 150, 50)
    return out


def enclave(home: Path, *args: str) -> str:
    result = subprocess.run(
        [ENCLAVE, "--home", str(home), *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_uk_only_cohort_is_unchanged_and_the_dutch_site_changes_no_uk_file(tmp_path):
    generate_cohort(tmp_path / "uk", progress=False, **SMALL_UK)
    assert digest(tmp_path / "uk") == SMALL_UK_DIGEST
    generate_cohort(tmp_path / "both", progress=False, **SMALL_UK, extra_sites=("umcu",))
    for site in ("rbh", "bhc", "ouh"):
        assert digest(tmp_path / "both" / site) == digest(tmp_path / "uk" / site)
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == ["bhc", "ouh", "rbh", "umcu"]


def test_the_dutch_export_speaks_dutch_and_carries_valid_bsns(nl_cohort):
    site = nl_cohort / "umcu"
    manifest = yaml.safe_load((site / "site.yaml").read_text())
    assert manifest["identifier_scheme"] == "nl-bsn" and manifest["clinical_dialect"] == DIALECT
    raw = (site / "clinical" / "patienten.csv").read_bytes().decode("cp1252")
    assert raw.startswith("patientnummer;bsn;achternaam;voornaam;geboortedatum;geslacht;postcode;")
    assert re.search(r";\d{2}-\d{2}-\d{4};[MF];\d{4} [A-Z]{2};", raw)
    assert re.search(r";LDL;\d+,\d;mmol/L;\d{2}-\d{2}-\d{4}\n", (site / "clinical" / "labuitslagen.csv").read_text())

    patients = pd.concat(open_site_clinical(site / "clinical", "csv-local", "umcu", DIALECT).iter_table("patients"))
    assert len(patients) == 50 and patients["mrn"].is_unique
    assert patients["nhs_number"].str.fullmatch(r"\d{4}\.\d{2}\.\d{3}").all()  # written as 1234.56.789
    numbers = {bsn.normalise(n) for n in patients["nhs_number"]}  # None: failing the 11-test
    assert None not in numbers and len(numbers) == 50 and patients["ethnicity"].isna().all()
    assert patients["postcode"].str.fullmatch(r"35\d{2} [A-Z]{2}").all()
    consent = [json.loads(line) for line in (site / "consent.ndjson").read_text().splitlines()]
    assert {c["identifier"] for c in consent} == numbers
    samples = pd.read_csv(site / "genomics" / "samples.csv", dtype=str)
    assert len(samples) and set(samples["nhs_number"]) <= numbers

    uk_numbers = set()
    for uk in ("rbh", "bhc"):
        uk_numbers |= {json.loads(line)["nhs_number"] for line in (nl_cohort / uk / "consent.ndjson").open()}
    assert not uk_numbers & numbers  # other people than the UK sites'


def test_the_dutch_site_registers_and_reaches_a_project_view_pseudonymised(nl_cohort, tmp_path):
    home, site = tmp_path / "home", nl_cohort / "umcu"
    added = enclave(home, "site", "add", str(site), "--quiet")
    assert "umcu-clinical            50 records linked (50 new patients)" in added and "invalid" not in added
    imported = enclave(home, "consent", "import", str(site / "consent.ndjson"), "--site", "umcu")
    assert "0 for patients not in the index" in imported
    spec = tmp_path / "nl.yaml"
    spec.write_text(
        "name: nl-cvd\ntitle: t\npurpose: DS-CVD\ncommercial: false\n"
        "members: [{user: alice, role: researcher}, {user: carol, role: output_checker}]\n"
        "datasets: [umcu-clinical, umcu-imaging, umcu-variants, umcu-reads]\nairlock: {reviews_required: 1}\n"
    )
    enclave(home, "project", "create", "-f", str(spec))
    enclave(home, "project", "materialise", "nl-cvd", "--quiet")
    view = home / "projects" / "nl-cvd" / "data"

    people = pd.read_parquet(view / "clinical" / "patients.parquet")
    assert len(people) > 20 and set(people["site"]) == {"umcu"}
    assert people["pseudonym"].str.fullmatch(PSEUDONYM.pattern).all()
    measurements = pd.read_parquet(view / "clinical" / "measurements.parquet")
    assert (measurements.loc[measurements["measure"] == "ldl", "value"] % 1 != 0).any()  # decimal commas read
    pseudonyms = set(people["pseudonym"])
    studies = [p for p in (view / "imaging").iterdir() if p.is_dir()]
    assert studies and {p.name for p in studies} <= pseudonyms
    one = next(studies[0].rglob("*.dcm"))
    header = pydicom.dcmread(one, stop_before_pixels=True)
    assert header.PatientID == header.PatientName == studies[0].name
    with pysam.VariantFile(str(view / "genomics" / "umcu.vcf.gz")) as vcf:
        assert vcf.header.samples and set(vcf.header.samples) <= pseudonyms
    bams = sorted((view / "genomics" / "bam").glob("*.bam"))
    assert bams and {b.stem for b in bams} <= pseudonyms

    patients = pd.concat(open_site_clinical(site / "clinical", "csv-local", "umcu", DIALECT).iter_table("patients"))
    samples = pd.read_csv(site / "genomics" / "samples.csv", dtype=str)["sample_id"]
    plain = {bsn.normalise(n) for n in patients["nhs_number"]}
    names = {f"{f} {s}" for f, s in zip(patients["forename"], patients["surname"], strict=True)}
    names |= {f"{s.upper()}^{f}" for f, s in zip(patients["forename"], patients["surname"], strict=True)}
    identifiers = set(patients["nhs_number"]) | plain | set(patients["mrn"]) | names | set(samples)
    identifiers |= set(patients["postcode"])
    for path in sorted(p for p in view.rglob("*") if p.is_file()):
        text = (path.relative_to(view).as_posix() + "\n").encode() + decoded(path)
        found = [i for i in identifiers if i.encode("latin-1") in text]
        assert not found, f"{path.relative_to(view)} holds {len(found)} identifier(s) of the Dutch site"


def test_demo_data_adds_the_dutch_site_unless_told_not_to(tmp_path):
    home, small = tmp_path / "home", ("--patients", "10", "--sites", "1", "--seed", "2", "--quiet")
    said = enclave(home, "demo-data", *small, "--out", str(tmp_path / "with"))
    assert "generated 20 patients across 2 sites" in said
    assert sorted(p.name for p in (tmp_path / "with").iterdir()) == ["rbh", "umcu"]
    said = enclave(home, "demo-data", *small, "--no-nl-site", "--out", str(tmp_path / "without"))
    assert "generated 10 patients across 1 sites" in said
    assert sorted(p.name for p in (tmp_path / "without").iterdir()) == ["rbh"]
    assert digest(tmp_path / "with" / "rbh") == digest(tmp_path / "without" / "rbh")


def test_the_demo_cohort_step_remembers_the_dutch_site(tmp_path):
    from kernel.config import Paths
    from provisioning import steps

    paths = Paths(tmp_path / "home")
    cohort = {"patients": 10, "sites": 1, "seed": 2, "progress": False}
    made = steps.ensure_cohort(paths, **cohort, extra_sites=("umcu",))
    assert made.detail == "generated 20 patients across 2 sites"
    again = steps.ensure_cohort(paths, **cohort, extra_sites=("umcu",))
    assert again.detail == "already generated (10 patients, 1 sites + umcu, seed 2)"
    with pytest.raises(EnclaveError, match="holds another cohort"):  # not silently the UK-only one
        steps.ensure_cohort(paths, **cohort)


def test_the_airlock_knows_the_dutch_patients_through_their_dialect(nl_cohort, tmp_path):
    """The airlock's known-identifier index reads each site's clinical records as registered: the Dutch site's in
    its dialect, so a Dutch patient's name or BSN in an output is found."""
    from kernel.config import Paths
    from output_checks.screening.known import build_known_identifiers
    from output_checks.screening.text import Segment
    from provisioning import steps

    home, site = tmp_path / "home", nl_cohort / "umcu"
    enclave(home, "site", "add", str(site), "--quiet")
    spec = tmp_path / "nl.yaml"
    spec.write_text(
        "name: nl-out\ntitle: t\npurpose: HMB\nmembers: [{user: carol, role: output_checker}]\n"
        "datasets: ['*']\nairlock: {reviews_required: 1}\n"
    )
    enclave(home, "project", "create", "-f", str(spec))
    registry, _ = steps.ensure_registry(Paths(home))
    try:
        known = build_known_identifiers(registry, Paths(home), "nl-out")
    finally:
        registry.close()
    patients = next(open_site_clinical(site / "clinical", "csv-local", "umcu", DIALECT).iter_table("patients"))
    # a one-word surname: the name check pairs adjacent words, so "van der Meer" is not matched (left as found)
    patient = patients[~patients["surname"].str.contains(" ")].iloc[0]
    for text in (f"{patient.forename} {patient.surname} was seen", f"BSN {patient.nhs_number}"):
        findings = list(known.findings(Segment("l", text)))
        assert findings and all(patient.surname not in f.message for f in findings), text


def test_extra_sites_are_validated(tmp_path):
    for extra, message in [
        (("paris",), "extra_sites must name sites among umcu, got ('paris',)"),
        ("umcu", "extra_sites must name sites among umcu"),
        (("umcu", "umcu"), "extra_sites names a site twice"),
    ]:
        with pytest.raises(EnclaveError, match=re.escape(message)):
            generate_cohort(tmp_path / "x", patients=5, sites=1, progress=False, extra_sites=extra)
    assert not (tmp_path / "x").exists()  # refused before anything was written
    (tmp_path / "y" / "umcu").mkdir(parents=True)
    (tmp_path / "y" / "umcu" / "real.csv").write_text("custodian data")
    with pytest.raises(EnclaveError, match="umcu: already exists and is not empty"):
        generate_cohort(tmp_path / "y", patients=5, sites=1, progress=False, extra_sites=("umcu",))
    assert not (tmp_path / "y" / "rbh").exists()
