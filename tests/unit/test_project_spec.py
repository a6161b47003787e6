"""Project specs: the demo spec is valid, and every kind of mistake gets a clear error naming the field."""

from pathlib import Path

import pytest

from fabric.projects import ProjectRole, ProjectSpec
from kernel.errors import InvalidInputError, SpecError
from provisioning.steps import DEMO_SPEC

pytestmark = pytest.mark.unit

VALID = """
name: hf-outcomes
title: Heart failure outcomes
purpose: HMB
members:
  - {user: alice, role: researcher}
  - {user: carol, role: output_checker}
datasets: [site-a-clinical]
compute: {cpus: 4, memory: 16GiB, dask_workers: 4}
airlock: {min_cell_count: 5}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_demo_spec_is_valid():
    spec = ProjectSpec.load(DEMO_SPEC)
    assert spec.purpose == "DS-CVD"
    assert {m.role for m in spec.members} == set(ProjectRole)


def test_valid_spec_with_defaults(tmp_path):
    spec = ProjectSpec.load(write(tmp_path, VALID))
    assert spec.compute.dask_workers == 4 and spec.compute.threads_per_worker == 1
    assert spec.airlock.min_cell_count == 5 and spec.airlock.reviews_required is None
    assert spec.commercial is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("name: hf-outcomes", "name: HF Outcomes!"), "name"),
        (("purpose: HMB", "purpose: CANCER"), "unknown purpose 'CANCER'"),
        (("role: researcher", "role: admin"), "members.0.role"),
        (("datasets: [site-a-clinical]", "datasets: []"), "datasets"),
        (("memory: 16GiB", "memory: lots"), "compute.memory"),
        (("min_cell_count: 5", "min_cell_count: 0"), "airlock.min_cell_count"),
        (("min_cell_count: 5", "min_cells: 5"), "airlock.min_cells: Extra inputs"),
        (("{user: carol, role: output_checker}", "{user: alice, role: researcher}"), "listed twice"),
        (("title: Heart failure outcomes\n", ""), "title: Field required"),
        # a member must be a name one can sign in as (kernel/names.py): the hub refuses these, so they never could
        (("{user: alice, role: researcher}", "{user: _svc, role: researcher}"), "members.0.user"),
        (("{user: alice, role: researcher}", "{user: x, role: researcher}"), "members.0.user"),
        (("{user: alice, role: researcher}", "{user: a.smith@trust.nhs.uk, role: researcher}"), "members.0.user"),
    ],
)
def test_invalid_specs_name_the_field_and_problem(tmp_path, change, message):
    path = write(tmp_path, VALID.replace(*change))
    with pytest.raises(SpecError, match=message) as info:
        ProjectSpec.load(path)
    assert str(path) in str(info.value)


def test_unreadable_specs(tmp_path):
    with pytest.raises(InvalidInputError, match="not found"):
        ProjectSpec.load(tmp_path / "missing.yaml")
    with pytest.raises(InvalidInputError, match="not valid YAML"):
        ProjectSpec.load(write(tmp_path, "name: [unclosed"))
    with pytest.raises(SpecError, match="YAML mapping"):
        ProjectSpec.load(write(tmp_path, "- a list"))


def test_view_compute_limits_split_memory_between_dask_workers(tmp_path):
    spec = ProjectSpec.load(write(tmp_path, VALID))
    limits = spec.compute.for_view()
    assert limits["memory_limit"] == 16 * 2**30 // 4
    assert limits["dask_workers"] == 4


def test_browser_limits_default_and_reach_the_workspace_as_bytes(tmp_path):
    spec = ProjectSpec.load(write(tmp_path, VALID))
    assert spec.browser.environment() == {
        "ENCLAVE_BROWSER_BYTES_PER_HOUR": str(64 * 2**20),
        "ENCLAVE_BROWSER_MAX_TEXT_BYTES": str(10 * 2**20),
        "ENCLAVE_BROWSER_MAX_IMAGE_BYTES": str(5 * 2**20),
    }
    tight = ProjectSpec.load(write(tmp_path, VALID + "browser: {bytes_per_hour: 4MiB, max_image: 1MB}\n"))
    assert tight.browser.environment()["ENCLAVE_BROWSER_BYTES_PER_HOUR"] == str(4 * 2**20)
    assert tight.browser.environment()["ENCLAVE_BROWSER_MAX_IMAGE_BYTES"] == str(10**6)
    for bad, field in (("bytes_per_hour: lots", "browser.bytes_per_hour"), ("per_day: 1GiB", "browser.per_day")):
        with pytest.raises(SpecError, match=field):
            ProjectSpec.load(write(tmp_path, VALID + f"browser: {{{bad}}}\n"))
