"""ACRO's results.json as evidence: believed only for the bytes ACRO checked. A table edited after ACRO checked it
is at least review with that reason; outputs ACRO marks do-not-release, failed or left to review never pass; a
results.json that is not ACRO's is no evidence at all."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from output_checks.checks.base import Subject
from output_checks.checks.tables.acro import AcroEvidenceCheck, AcroStatus, acro_evidence, acro_finding
from output_checks.verdicts import Verdict
from tests.airlock_helpers import check_one, messages, write

pytestmark = pytest.mark.unit


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def acro_folder(tmp_path: Path, outputs: dict[str, dict], files: dict[str, str], *, checksums: bool = True) -> Path:
    """An ACRO-shaped output folder: the files, results.json naming them and checksums/NAME.txt for each."""
    folder = tmp_path / "acro"
    (folder / "checksums").mkdir(parents=True)
    for name, text in files.items():
        path = write(folder, name, text)
        if checksums:
            (folder / "checksums" / f"{name}.txt").write_text(sha(path))
    results = {"version": "1.0.2", "tool": {"name": "ACRO", "version": "1.0.2"}, "results": outputs}
    (folder / "results.json").write_text(json.dumps(results, indent=4))
    return folder


def output(uid: str, status: str, names: list[str], kind: str = "table", summary: str = "", exception: str = ""):
    return {
        "uid": uid,
        "status": status,
        "type": kind,
        "files": [{"name": n} for n in names],
        "summary": summary,
        "exception": exception,
    }


CLEAN = "site,F,M\na,120,131\nb,98,104\nc,143,150\n"
FAIL_SUMMARY = "FrequencyTable : \n MinimumThresholdCheck: fail - 2 cells may need suppressing.\n"


def test_acro_pass_on_unedited_table_adds_nothing(tmp_path):
    folder = acro_folder(tmp_path, {"output_0": output("output_0", "pass", ["t.csv"])}, {"t.csv": CLEAN})
    table = folder / "t.csv"
    status = acro_evidence(table, sha(table))
    assert status == "pass" and isinstance(status, AcroStatus)
    assert acro_finding(table, sha(table)) is None
    assert check_one(table).verdict is Verdict.PASS, messages(check_one(table))


def test_acro_fail_names_the_failed_checks(tmp_path):
    outputs = {"output_0": output("output_0", "fail", ["t.csv"], summary=FAIL_SUMMARY)}
    folder = acro_folder(tmp_path, outputs, {"t.csv": CLEAN})
    table = folder / "t.csv"
    status = acro_evidence(table, sha(table))
    assert status == "fail" and "MinimumThresholdCheck" in status.reason
    # The driver compares the string and formats it into its message: the reason travels with it.
    assert status in ("fail", "review") and "MinimumThresholdCheck" in f"{status}"
    report = check_one(table)
    assert report.verdict is Verdict.BLOCK and "MinimumThresholdCheck" in messages(report)


@pytest.mark.parametrize("acro_status", ["pass", "fail"])
def test_table_edited_after_acro_checked_it_is_review_with_the_reason(tmp_path, acro_status):
    outputs = {"output_0": output("output_0", acro_status, ["t.csv"], summary=FAIL_SUMMARY)}
    folder = acro_folder(tmp_path, outputs, {"t.csv": CLEAN})
    table = folder / "t.csv"
    table.write_text(CLEAN.replace("120", "121"))  # still clean by Enclave's own rules
    status = acro_evidence(table, sha(table))
    assert status == "review" and "edited after ACRO checked it" in status.reason
    report = check_one(table)
    assert report.verdict is not Verdict.PASS
    assert "edited after ACRO checked it" in messages(report)


def test_missing_checksum_is_review(tmp_path):
    folder = acro_folder(
        tmp_path, {"output_0": output("output_0", "pass", ["t.csv"])}, {"t.csv": CLEAN}, checksums=False
    )
    table = folder / "t.csv"
    status = acro_evidence(table, sha(table))
    assert status == "review" and "checksum" in status.reason
    assert check_one(table).verdict is not Verdict.PASS


def test_checksum_compare_ignores_case_and_trailing_text(tmp_path):
    folder = acro_folder(tmp_path, {"output_0": output("output_0", "pass", ["t.csv"])}, {"t.csv": CLEAN})
    table = folder / "t.csv"
    (folder / "checksums" / "t.csv.txt").write_text(sha(table).upper() + "  t.csv\n")
    assert acro_evidence(table, sha(table)) == "pass"


def test_do_not_release_outputs_never_pass(tmp_path):
    summary_csv = "uid,output_type,analysis_name\noutput_0,table,crosstab\n"
    outputs = {
        "2ndary_risk_summary_csv-DONT_RELEASE": output(
            "2ndary_risk_summary_csv-DONT_RELEASE", "review", ["session_summary.csv"], kind="custom"
        )
    }
    folder = acro_folder(tmp_path, outputs, {"session_summary.csv": summary_csv})
    path = folder / "session_summary.csv"
    status = acro_evidence(path, sha(path))
    assert status == "fail" and "do not release" in status.reason
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK and "do not release" in messages(report)


def test_results_json_itself_is_for_the_output_checker(tmp_path):
    folder = acro_folder(tmp_path, {"output_0": output("output_0", "pass", ["t.csv"])}, {"t.csv": CLEAN})
    results = folder / "results.json"
    status = acro_evidence(results, sha(results))
    assert status == "review"
    # ACRO's record is JSON but no table: the evidence check, not the tables check, reports it.
    found = AcroEvidenceCheck().run(Subject("results.json", results, "json", results.stat().st_size), None)
    assert [f.verdict for f in found] == [Verdict.REVIEW]


def test_failed_output_with_exception_request_goes_to_a_reviewer(tmp_path):
    outputs = {"output_0": output("output_0", "fail", ["t.csv"], summary=FAIL_SUMMARY, exception="structural zero")}
    folder = acro_folder(tmp_path, outputs, {"t.csv": CLEAN})
    table = folder / "t.csv"
    status = acro_evidence(table, sha(table))
    assert status == "review" and "exception" in status.reason


def test_custom_and_unknown_statuses_are_review(tmp_path):
    outputs = {
        "output_0": output("output_0", "review", ["notes.txt"], kind="custom"),
        "output_1": output("output_1", "withheld", ["t.csv"]),
    }
    folder = acro_folder(tmp_path, outputs, {"notes.txt": "Analysis notes.\n", "t.csv": CLEAN})
    notes = folder / "notes.txt"
    assert acro_evidence(notes, sha(notes)) == "review"
    table = folder / "t.csv"
    assert acro_evidence(table, sha(table)) == "review"


def test_evidence_check_covers_files_the_tables_check_does_not_read(tmp_path):
    outputs = {"output_0": output("output_0", "fail", ["hist.png"], kind="histogram", summary=FAIL_SUMMARY)}
    folder = acro_folder(tmp_path, outputs, {"hist.png": "not really a png"})
    png = folder / "hist.png"
    found = AcroEvidenceCheck().run(Subject("hist.png", png, "png", png.stat().st_size), None)
    assert [f.verdict for f in found] == [Verdict.BLOCK] and "MinimumThresholdCheck" in found[0].message
    # Tables get the evidence through the tables check, not twice.
    table = write(folder, "t.csv", CLEAN)
    assert AcroEvidenceCheck().run(Subject("t.csv", table, "csv", table.stat().st_size), None) == []


def test_results_json_that_is_not_acros_is_no_evidence(tmp_path):
    table = write(tmp_path, "t.csv", CLEAN)
    (tmp_path / "results.json").write_text(json.dumps({"results": {"auc": 0.81, "brier": 0.12}}))
    assert acro_evidence(table, sha(table)) is None
    (tmp_path / "results.json").write_text("{not json")
    assert acro_evidence(table, sha(table)) is None


def test_table_not_named_by_acro_is_left_to_enclaves_rules(tmp_path):
    folder = acro_folder(tmp_path, {"output_0": output("output_0", "pass", ["t.csv"])}, {"t.csv": CLEAN})
    other = write(folder, "later.csv", CLEAN)
    assert acro_evidence(other, sha(other)) is None


def test_real_acro_session_edited_table_and_session_summary(tmp_path):
    from acro import ACRO

    rng = np.random.default_rng(7)
    data = pd.DataFrame({"site": rng.choice(["a", "b", "c"], 400), "sex": rng.choice(["F", "M"], 400)})
    acro = ACRO(suppress=False)
    acro.crosstab(data.site, data.sex)
    out = tmp_path / "acro"
    acro.finalise(str(out), "json")
    table = next(out.glob("output_*.csv"))
    assert acro_evidence(table, sha(table)) == "pass"
    # A researcher "tidies" the table after ACRO checked it.
    table.write_text(table.read_text().replace("site", "Site"))
    status = acro_evidence(table, sha(table))
    assert status == "review" and "edited after ACRO checked it" in status.reason
    summary = out / "session_summary.csv"
    assert acro_evidence(summary, sha(summary)) == "fail"


def test_evidence_is_found_through_a_link_to_the_file(tmp_path):
    # The checks runner hands the child a link named like the file, in a folder of its own.
    outputs = {"output_0": output("output_0", "fail", ["t.csv"], summary=FAIL_SUMMARY)}
    folder = acro_folder(tmp_path, outputs, {"t.csv": CLEAN})
    staged = tmp_path / "staging" / "0"
    staged.mkdir(parents=True)
    (staged / "t.csv").symlink_to(folder / "t.csv")
    assert acro_evidence(staged / "t.csv", sha(folder / "t.csv")) == "fail"


def test_a_real_acro_folder_through_the_engine(tmp_path):
    # ACRO's own records are for the output checker: results.json is not read as a table of names, a session summary
    # ACRO does not name is still its record, and the outputs ACRO passed pass on Enclave's own rules.
    from acro import ACRO

    rng = np.random.default_rng(11)
    data = pd.DataFrame({"x": rng.normal(size=300), "z": rng.normal(size=300)})
    data["y"] = 2 * data.x + rng.normal(size=300)
    acro = ACRO(suppress=False)
    acro.ols(data.y, data[["x", "z"]])
    out = tmp_path / "acro"
    acro.finalise(str(out), "json")
    (out / "session_summary.md").write_text("# Session\n\nOne OLS model.\n")  # a summary ACRO's record does not name
    results = check_one(out / "results.json")
    assert results.verdict is Verdict.REVIEW and {f.check for f in results.findings} == {"acro"}
    summary = check_one(out / "session_summary.md")
    assert summary.verdict is Verdict.REVIEW and "summary of the session" in messages(summary)
    for table in out.glob("output_*.csv"):
        assert check_one(table).verdict is Verdict.PASS, messages(check_one(table))
