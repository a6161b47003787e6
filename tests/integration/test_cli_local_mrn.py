"""A site with only local MRNs takes part (issue 16), through the installed `enclave` command: a local-mrn site linked
to one of the cohort's UK sites by its linkage table (to the UK site's MRN, or to an NHS number) is refused while a row
is wrong (every problem listed, no MRN repeated, nothing registered), then registered; its consent, keyed by MRN, is
imported; `consent show --site` finds a patient by either site's MRN as the same enclave patient; and in a project
built from both sites its linked patients carry the same pseudonym as their UK records, its unlinked one its own."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.enclave_cli import enclave
from tests.site_exports import complete_csv_local

pytestmark = pytest.mark.integration

CHECKERS = "members: [{user: carol, role: output_checker}, {user: dave, role: output_checker}]\n"
HEADER = "MRN,NHS_NO,SURNAME,FORENAME,DOB,SEX,POSTCODE,ETHNIC_GRP,SMOKER"


def local_mrn_site(folder: Path, uk: list[dict[str, str]], linkage: str) -> Path:
    """Site `amc`: A1..A3 the UK patients `uk` (same birth date and sex), A4 a patient of its own; no NHS numbers."""
    (folder / "clinical").mkdir(parents=True, exist_ok=True)
    people = [(f"A{i}", p["DOB"], p["SEX"]) for i, p in enumerate(uk, start=1)] + [("A4", "01/01/1970", "M")]
    lines = [HEADER] + [f"{mrn},,Local,Person,{dob},{sex},,,N" for mrn, dob, sex in people]
    (folder / "clinical" / "patients.csv").write_text("\n".join(lines) + "\n")
    complete_csv_local(folder / "clinical")
    (folder / "linkage.csv").write_text(linkage)
    grant = {"date": "2026-06-01", "action": "grant", "purposes": ["GRU"], "modifiers": []}
    (folder / "consent.ndjson").write_text("".join(json.dumps({"mrn": p[0], **grant}) + "\n" for p in people))
    manifest = {
        "id": "amc",
        "name": "A local-MRN hospital (synthetic)",
        "clinical_format": "csv-local",
        "identifier_scheme": "local-mrn",
        "linkage": "linkage.csv",
        "datasets": [{"id": "amc-clinical", "modality": "clinical", "format": "csv-local", "path": "clinical"}],
    }
    (folder / "site.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def patient_shown(home: Path, site: str, mrn: str) -> str:
    return enclave(home, "consent", "show", "--site", site, mrn).stdout.splitlines()[0]


def test_a_local_mrn_site_linked_to_a_uk_site_shares_its_patients_pseudonyms(tmp_path, cohort):
    home = tmp_path / "home"
    rbh = cohort / "rbh"
    enclave(home, "site", "add", str(rbh), "--quiet")
    enclave(home, "consent", "import", str(rbh / "consent.ndjson"), "--site", "rbh")
    consented = {json.loads(line)["nhs_number"] for line in (rbh / "consent.ndjson").read_text().splitlines()}
    with (rbh / "clinical" / "patients.csv").open(newline="") as handle:
        uk = [p for p in csv.DictReader(handle) if p["NHS_NO"].replace(" ", "") in consented][:3]
    nhs = uk[1]["NHS_NO"].replace(" ", "")

    bad = (
        f"mrn,site,site_mrn,scheme,identifier\nA1,rbh,{uk[0]['MRN']}X,,\nA2,,,nhs,{nhs[:-1]}{(int(nhs[-1]) + 1) % 10}\n"
    )
    site = local_mrn_site(tmp_path / "sites" / "amc", uk, bad)
    refused = enclave(home, "site", "add", str(site), "--quiet", ok=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "nothing was registered; 2 problem(s)" in refused.stderr
    assert "linkage.csv line 2: no patient of site rbh has that MRN" in refused.stderr
    assert "linkage.csv line 3: identifier is not a valid NHS number" in refused.stderr
    assert uk[0]["MRN"] not in refused.stderr and nhs[:-1] not in refused.stderr
    assert [line.split()[0] for line in enclave(home, "site", "list").stdout.splitlines()] == ["rbh"]

    good = f"mrn,site,site_mrn,scheme,identifier\nA1,rbh,{uk[0]['MRN']},,\nA2,,,nhs,{nhs}\nA3,rbh,{uk[2]['MRN']},,\n"
    local_mrn_site(site, uk, good)
    added = enclave(home, "site", "add", str(site), "--quiet").stdout
    assert "amc-clinical" in added and "4 records linked (1 new patients, 3 MRNs linked by the linkage table)" in added
    imported = enclave(home, "consent", "import", str(site / "consent.ndjson"), "--site", "amc").stdout
    assert imported.startswith("4 consent events recorded")
    for i in range(3):
        assert patient_shown(home, "amc", f"A{i + 1}") == patient_shown(home, "rbh", uk[i]["MRN"])
    shown = enclave(home, "consent", "show", "--site", "amc", "A1").stdout
    assert "(from amc)" in shown and "(from rbh)" in shown
    assert patient_shown(home, "amc", "A4") not in {patient_shown(home, "rbh", p["MRN"]) for p in uk}
    unknown = enclave(home, "consent", "show", "--site", "amc", "A9", ok=False)
    assert unknown.returncode == 1 and "no patient of site amc has that MRN" in unknown.stderr

    spec = tmp_path / "p.yaml"
    spec.write_text("name: linked\ntitle: t\npurpose: HMB\ndatasets: [rbh-clinical, amc-clinical]\n" + CHECKERS)
    enclave(home, "project", "create", "-f", str(spec))
    enclave(home, "project", "materialise", "linked", "--quiet")
    patients = pd.read_parquet(home / "projects" / "linked" / "data" / "clinical" / "patients.parquet")
    amc = patients[patients["site"] == "amc"]
    uk_pseudonyms = set(patients.loc[patients["site"] == "rbh", "pseudonym"])
    assert len(amc) == 4
    linked = amc[amc["pseudonym"].isin(uk_pseudonyms)]
    assert len(linked) == 3  # one enclave patient each: the same pseudonym as their UK record
    by_pseudonym = patients[patients["site"] == "rbh"].set_index("pseudonym")["year_of_birth"]
    assert all(by_pseudonym[p] == y for p, y in zip(linked["pseudonym"], linked["year_of_birth"], strict=True))
    audit = enclave(home, "audit", "show").stdout
    assert "site.add" in audit and "linkage_mrns=3" in audit and "through_linkage=3" in audit
    assert "audit log intact" in enclave(home, "audit", "verify").stdout
