"""One contract of a project view (workbench/view_contract.py), read by its builder (fabric.materialise), its
readers (workbench), host provisioning and the airlock's pseudonym screening: a build the builder writes, seals and
publishes opens in the readers by the project's name, and the facts each side once wrote for itself agree."""

from __future__ import annotations

import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fabric.materialise.plan import BuildPlan, DatasetPlan
from fabric.materialise.view import _seal, publish, write_manifest
from fabric.pseudonyms import pseudonym
from kernel.config import Paths
from output_checks.screening import known, pseudonyms
from tests.readers_fixtures import write_dicom, write_vcf
from workbench import cluster, open_project, view_contract

pytestmark = pytest.mark.unit

KEY = bytes(range(32))
RECOGNISERS = Path(known.__file__).with_name("recognizers.yaml")


def _published(home: Path) -> tuple[Path, list[str]]:
    """A small build of project `p1` written as the materialiser lays it out, manifest, seal and publish its own."""
    people = {f"site-{i}": (f"EP{i:04d}", pseudonym(KEY, f"EP{i:04d}")) for i in range(3)}
    names = sorted(pseudo for _pid, pseudo in people.values())
    project_dir = Paths(home).project_dir("p1")
    staging = project_dir / view_contract.VIEWS / ".staging-b1"
    for folder in view_contract.MODALITIES:
        (staging / folder).mkdir(parents=True)
    pd.DataFrame({"pseudonym": names, "site": "rbh"}).to_parquet(staging / view_contract.CLINICAL / "patients.parquet")
    write_vcf(staging / view_contract.GENOMICS / "rbh.vcf.gz", names[:2], 5)
    series = staging / view_contract.IMAGING / names[0] / "2.25.1" / "2.25.2"
    series.mkdir(parents=True)
    write_dicom(series / "1.dcm", names[0], study_uid="2.25.1", series_uid="2.25.2", instance=1)
    datasets = [DatasetPlan("d-c", "rbh", "clinical", "csv", staging, "x", people)]
    compute = {"dask_workers": 2, "threads_per_worker": 1, "memory_limit": 1 << 30}
    plan = BuildPlan("p1", "DS-CVD", False, compute, datasets, eligible=3, excluded=0)
    write_manifest(staging, plan, "b1", datetime(2026, 1, 2, 3, 4, 5))
    _seal(staging)
    publish(project_dir, staging, "b1")
    return project_dir, names


def test_the_builders_output_opens_in_the_readers_through_the_contract(tmp_path, monkeypatch):
    home = tmp_path / "home"
    project_dir, names = _published(home)
    monkeypatch.setenv(view_contract.ENV_HOME, str(home))
    view = open_project("p1")
    assert view.root == (project_dir / view_contract.VIEWS / "b1").resolve()
    assert set(view.manifest) == set(view_contract.Manifest.__annotations__)
    assert set(view.manifest["modalities"]) == set(view_contract.MODALITIES)
    assert view.pseudonyms == names and all(view_contract.is_pseudonym(p) for p in names)
    assert view.tables == ["patients"] and view.sites == ["rbh"]
    assert {rel for rel, _size in view_contract.listed_files(view.manifest)} == {
        p.relative_to(view.root).as_posix() for p in view.root.rglob("*") if p.is_file() and p.name != "MANIFEST.json"
    }
    assert stat.S_IMODE(view.root.stat().st_mode) == view_contract.VIEW_DIR_MODE
    assert stat.S_IMODE((view.root / view_contract.MANIFEST).stat().st_mode) == view_contract.VIEW_FILE_MODE
    assert cluster.compute_limits(view.manifest)["dask_workers"] == 2


def test_a_view_is_found_where_the_fabric_publishes_it(tmp_path, monkeypatch):
    home = tmp_path / "home"
    assert view_contract.project_view("p1", home) == Paths(home).project_data("p1")
    monkeypatch.setenv("ENCLAVE_HOME", str(home))
    assert view_contract.project_view("p1") == Paths.from_env().project_data("p1")
    monkeypatch.delenv("ENCLAVE_HOME")
    assert view_contract.project_view("p1") == Paths.from_env().project_data("p1")  # the default home, root or not


def test_one_pseudonym_pattern_for_the_fabric_and_the_airlock():
    made = pseudonym(KEY, "EP0001")
    assert made.startswith(view_contract.PSEUDONYM_PREFIX) and view_contract.is_pseudonym(made)
    assert not view_contract.is_pseudonym(made.lower()) and not view_contract.is_pseudonym(made + "A")
    assert known.PSEUDONYM.search(f"patient {made} left").group() == made
    assert known.PSEUDONYM_BODY.match(made.replace("-", "")).group(1) == made[2:]
    assert pseudonyms.PLAIN.match(made.lower())
    # Presidio's recogniser is configuration (YAML), not code: it holds the same pattern.
    recognisers = yaml.safe_load(RECOGNISERS.read_text())["recognizers"]
    found = [p["regex"] for r in recognisers if r.get("supported_entity") == "ENCLAVE_PSEUDONYM" for p in r["patterns"]]
    assert found == [rf"\b{view_contract.PSEUDONYM.pattern}\b"]


def test_the_manifests_compute_section_is_what_the_cluster_sizes_from():
    assert set(cluster.LIMIT_KEYS) == set(view_contract.COMPUTE_LIMITS)


def test_the_contract_is_light_to_import():
    """The builder, the host and the airlock import it: it must not pull in Dask or register its defaults."""
    heavy = "{'dask', 'distributed', 'pysam', 'pydicom'}"
    code = f"import sys, workbench.view_contract; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
