"""The release policy and the check registry are data: defaults load and validate, overrides layer in order, and
the registry is complete (every check the policy names exists, every type the policy names can be sniffed)."""

from __future__ import annotations

import pytest

from kernel.errors import SpecError
from output_checks.checks import CHECKS, load_checks
from output_checks.policy import Policy, default_values, load_policy
from output_checks.sniff import KINDS, MAGIC

pytestmark = pytest.mark.unit

SNIFFABLE = set(KINDS) | {kind for _, kind in MAGIC} | {
    "dicom", "pickle", "tar", "xlsx", "docx", "pptx", "zip", "csv", "tsv", "text", "markdown", "html", "xml", "json",
    "ipynb", "svg", "vcf", "vcf-sites", "bcf-sites", "sam", "fastq", "empty", "binary", "webp", "riff", "bmp",
}  # fmt: skip


def test_defaults_are_the_documented_anchors():
    policy = load_policy()
    assert policy.min_cell_count == 10 and policy.zeros == "review"
    assert policy.max_file_mb == 16 and policy.max_table_rows == 5000
    assert set(policy.blocked_types) >= {"dicom", "bam", "cram", "fastq", "vcf"}
    # DESIGN.md's list (txt and md are the sniffed types text and markdown).
    allowed = {"csv", "tsv", "text", "markdown", "json", "html", "png", "svg", "pdf", "ipynb", "parquet", "xlsx"}
    assert set(policy.allowed_types) >= allowed


def test_every_default_key_is_a_policy_field_and_back():
    assert set(default_values()) == set(Policy.model_fields)


def test_policy_file_then_project_overrides(tmp_path):
    file = tmp_path / "site.yaml"
    file.write_text("min_cell_count: 7\nmax_table_rows: 100\n")
    policy = load_policy(file, {"min_cell_count": 5, "rounding_base": None})
    assert policy.min_cell_count == 5 and policy.max_table_rows == 100 and policy.rounding_base is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("min_cel_count: 7\n", "unknown policy setting"),
        ("min_cell_count: 0\n", "min_cell_count"),
        ("zeros: maybe\n", "zeros"),
        ("checks: [tables, telepathy]\n", "unknown check"),
        ("- a list\n", "mapping"),
        ("min_cell_count: [\n", "not valid YAML"),
    ],
)
def test_bad_policy_files_say_what_is_wrong(tmp_path, text, problem):
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(SpecError, match=problem):
        load_policy(file)


def test_check_registry_is_complete():
    policy = load_policy()
    assert set(policy.checks) == set(CHECKS)
    for check in load_checks(policy.checks):
        assert check.name in CHECKS and CHECKS[check.name].endswith(type(check).__name__)
        assert check.kinds is None or check.kinds <= SNIFFABLE, check.kinds - SNIFFABLE
    covered = set().union(*(c.kinds or set() for c in load_checks(policy.checks)))
    # Every type a policy can allow or block is read by some check beyond the file-type rules.
    assert (set(policy.allowed_types) | set(policy.blocked_types)) - covered == set()


def test_bad_recognisers_file_is_refused_at_load(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("recognizers_file: missing.yaml\n")
    with pytest.raises(SpecError, match="cannot read"):
        load_policy(policy)
    (tmp_path / "r.yaml").write_text("recognizers: [{name: x}]\n")
    policy.write_text("recognizers_file: r.yaml\n")
    with pytest.raises(SpecError, match="supported_entity"):
        load_policy(policy)


def test_a_rounding_base_below_five_is_refused(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("rounding_base: 2\n")
    with pytest.raises(SpecError, match="rounding_base"):
        load_policy(policy)


def test_disabling_checks_never_lets_a_file_through_unread(tmp_path):
    from output_checks.engine import check_paths

    (tmp_path / "model.pkl").write_bytes(__import__("pickle").dumps([1]))
    (tmp_path / "scan.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\2\0\0\0UL\4\0\0\0\0\0")
    policy = tmp_path / "p.yaml"
    policy.write_text("checks: [tables, text]\n")
    report = check_paths([tmp_path / "model.pkl", tmp_path / "scan.dcm"], load_policy(policy), workers=1)
    assert [f.verdict.value for f in report.files] == ["review", "review"]
