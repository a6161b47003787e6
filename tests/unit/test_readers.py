"""The project-view readers against a real small view, checked against independent pysam/pydicom reads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pydicom
import pytest
from dask.utils import parse_bytes
from distributed import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import itertools

from readers_fixtures import build_view, pysam_dosages, pysam_frequencies

from workbench import GenotypeMatrix, ProjectView, Region, open_project, parse_region
from workbench.errors import WorkbenchError
from workbench.genotypes import parse_alleles
from workbench.regions import plan_chunks, read_tabix_index

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def view_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_view(tmp_path_factory.mktemp("view") / "views" / "b-test")


@pytest.fixture(scope="module")
def client() -> Client:
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as c:
        yield c


@pytest.fixture
def view(view_root: Path) -> ProjectView:
    return ProjectView(view_root, chunk_bytes=256)  # small chunks: several tasks per contig


def _key(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["chrom", "pos", "ref", "alt"]).reset_index(drop=True)


def test_open_by_name_path_and_env(view_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / "projects" / "cardio-risk").mkdir(parents=True)
    (home / "projects" / "cardio-risk" / "data").symlink_to(view_root)
    monkeypatch.setenv("ENCLAVE_HOME", str(home))
    by_name = open_project("cardio-risk")
    assert by_name.root == view_root.resolve()
    assert open_project(path=view_root).manifest["project"] == "cardio-risk"
    monkeypatch.setenv("ENCLAVE_PROJECT_DATA", str(view_root))
    assert open_project().root == view_root.resolve()


def test_manifest_pseudonyms_and_tables(view: ProjectView) -> None:
    assert view.manifest["build_id"] == "b-test"
    patients = pd.read_parquet(view.root / "clinical" / "patients.parquet")
    assert view.pseudonyms == sorted(patients["pseudonym"])
    assert view.tables == ["measurements", "outcomes", "patients"]
    assert view.sites == ["rbh", "uclh"]


def test_clinical_table_is_dask_and_matches_parquet(view: ProjectView, client: Client) -> None:
    frame = view.clinical("measurements")
    assert isinstance(frame, dd.DataFrame)
    expected = pd.read_parquet(view.root / "clinical" / "measurements.parquet")
    pd.testing.assert_frame_equal(frame.compute().reset_index(drop=True), expected, check_dtype=False)
    assert list(view.clinical("patients", columns=["pseudonym"]).columns) == ["pseudonym"]


def test_excluded_patients_are_left_out_by_every_reader(view_root: Path, client: Client, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A federated count-once run's patients another site counts: no reader hands them back, whatever the
    notebook does ($ENCLAVE_EXCLUDED_PSEUDONYMS, which the site's agent sets)."""
    everyone = ProjectView(view_root, chunk_bytes=256)
    rbh, uclh = everyone._site_files[0].samples, everyone._site_files[1].samples
    excluded = frozenset({rbh[1], rbh[4], uclh[0]})
    listed = tmp_path / "excluded.json"
    listed.write_text(json.dumps(sorted(excluded)))
    monkeypatch.setenv("ENCLAVE_PROJECT_DATA", str(view_root))
    monkeypatch.setenv("ENCLAVE_EXCLUDED_PSEUDONYMS", str(listed))
    view = open_project()
    assert view.excluded == excluded
    assert view.pseudonyms == [p for p in everyone.pseudonyms if p not in excluded]
    for table in view.tables:
        rows, all_rows = view.clinical(table).compute(), everyone.clinical(table).compute()
        assert not set(rows["pseudonym"]) & excluded
        assert len(rows) == (~all_rows["pseudonym"].isin(excluded)).sum()
    assert list(view.clinical("patients", columns=["sex"]).columns) == ["sex"]  # filtered, not widened
    index = view.imaging_index().compute()
    assert not set(index["pseudonym"]) & excluded
    assert set(index["pseudonym"]) == set(everyone.imaging_index().compute()["pseudonym"]) - excluded

    matrix = view.genotypes("chr1")
    assert matrix.samples == [s for s in [*rbh, *uclh] if s not in excluded]
    full = everyone.genotypes("chr1")
    kept = [full.samples.index(s) for s in matrix.samples]
    np.testing.assert_array_equal(matrix.dosages.compute(), full.dosages.compute()[:, kept])

    got = _key(view.allele_frequencies().compute())
    parts = [pysam_frequencies(view.root / "genomics" / f"{s}.vcf.gz", excluded) for s in view.sites]
    expected = _key(pd.concat(parts).groupby(["chrom", "pos", "ref", "alt"], as_index=False)[["an", "ac"]].sum())
    np.testing.assert_array_equal(got["an"], expected["an"])
    np.testing.assert_array_equal(got["ac"], expected["ac"])
    assert (got["an"] < _key(everyone.allele_frequencies().compute())["an"]).any()

    listed.write_text('{"not": "a list"}')
    with pytest.raises(WorkbenchError, match="JSON list of pseudonyms"):
        open_project()


def test_parse_region_forms() -> None:
    assert parse_region("chr1") == Region("chr1")
    assert parse_region("chr1:1,000-2,000") == Region("chr1", 1000, 2000)
    assert parse_region("chr1:500") == Region("chr1", 500, 500)
    assert parse_region("chr1:500-") == Region("chr1", 500, None)
    assert str(Region("chr2", 5, 9)) == "chr2:5-9"


def test_chunk_plan_covers_each_contig_once(view: ProjectView) -> None:
    index = read_tabix_index(view.root / "genomics" / "rbh.vcf.gz.tbi")
    assert list(index) == ["chr1", "chr2", "chrX"]
    chunks = plan_chunks([index], list(index), 256)
    for contig in index:
        mine = [c for c in chunks if c.contig == contig]
        assert mine[0].start == 1 and mine[-1].end is None
        assert all(a.end + 1 == b.start for a, b in itertools.pairwise(mine))
    assert len(chunks) > 3


def test_variants_match_pysam(view: ProjectView, client: Client) -> None:
    frame = view.variants()
    assert frame.npartitions > 3
    got = frame.compute()
    assert list(got.columns) == ["chrom", "pos", "id", "ref", "alt", "gene", "site"]
    for site in view.sites:
        mine = got[got["site"] == site].reset_index(drop=True)
        ref = pysam_frequencies(view.root / "genomics" / f"{site}.vcf.gz")
        cols = ["chrom", "pos", "ref", "alt"]
        pd.testing.assert_frame_equal(mine[cols].astype(str), ref[cols].astype(str))
    assert got["gene"].str.startswith("G").all()
    assert got["id"].str.startswith("rs").all()


def test_variants_region_filter(view: ProjectView, client: Client) -> None:
    everything = view.variants(site="rbh").compute()
    pos = everything[everything["chrom"] == "chr2"]["pos"].sort_values().to_numpy()
    lo, hi = int(pos[5]), int(pos[20])
    got = view.variants(f"chr2:{lo}-{hi}", site="rbh").compute()
    assert got["pos"].tolist() == [p for p in everything[everything["chrom"] == "chr2"]["pos"] if lo <= p <= hi]
    assert set(view.variants(["chrX", "chr1:1-1"]).compute()["chrom"]) <= {"chrX", "chr1"}


def test_allele_frequencies_match_pysam_over_both_sites(view: ProjectView, client: Client) -> None:
    got = view.allele_frequencies().compute()
    parts = [pysam_frequencies(view.root / "genomics" / f"{s}.vcf.gz") for s in view.sites]
    expected = pd.concat(parts).groupby(["chrom", "pos", "ref", "alt"], as_index=False)[["an", "ac"]].sum()
    got_k, exp_k = _key(got), _key(expected)
    assert len(got_k) == len(exp_k)
    assert got_k[["chrom", "pos", "ref", "alt"]].astype(str).equals(exp_k[["chrom", "pos", "ref", "alt"]].astype(str))
    np.testing.assert_array_equal(got_k["an"], exp_k["an"])
    np.testing.assert_array_equal(got_k["ac"], exp_k["ac"])
    np.testing.assert_allclose(got_k["af"], exp_k["ac"] / exp_k["an"])
    # shared chr1/chr2 variants were summed over both sites' samples, chrX is rbh only
    assert (got[got["chrom"] == "chrX"]["an"] <= 14).all() and (got[got["chrom"] == "chr1"]["an"] > 14).any()
    # result is in genomic order within each contig
    for _, block in got.groupby("chrom"):
        assert block["pos"].is_monotonic_increasing


def test_allele_frequencies_one_site_and_region(view: ProjectView, client: Client) -> None:
    got = view.allele_frequencies("chr1:1-20000000", site="uclh").compute()
    ref = pysam_frequencies(view.root / "genomics" / "uclh.vcf.gz")
    ref = ref[(ref["chrom"] == "chr1") & (ref["pos"] <= 20_000_000)].reset_index(drop=True)
    np.testing.assert_array_equal(got["pos"], ref["pos"])
    np.testing.assert_array_equal(got["ac"], ref["ac"])


def test_genotypes_match_pysam(view: ProjectView, client: Client) -> None:
    matrix = view.genotypes()
    assert isinstance(matrix, GenotypeMatrix)
    dosages = matrix.dosages.compute()
    variants = matrix.variants.compute()
    assert dosages.dtype == np.int8 and dosages.shape == (len(variants), len(matrix.samples))
    column = 0
    for site in view.sites:
        samples, expected = pysam_dosages(view.root / "genomics" / f"{site}.vcf.gz")
        rows = (variants["site"] == site).to_numpy()
        cols = slice(column, column + len(samples))
        assert matrix.samples[cols] == samples
        np.testing.assert_array_equal(dosages[rows][:, cols], expected)
        others = np.ones(len(matrix.samples), dtype=bool)
        others[cols] = False
        assert (dosages[rows][:, others] == -1).all()
        column += len(samples)


def test_genotypes_single_site_region(view: ProjectView, client: Client) -> None:
    matrix = view.genotypes("chrX", site="rbh")
    dosages = matrix.dosages.compute()
    assert dosages.shape == (len(matrix.variants.compute()), 7)
    assert set(np.unique(dosages)) <= {-1, 0, 1, 2}


def test_parse_alleles_shapes() -> None:
    formats = ["GT", "GT:DP", "GT", "DP", "GT"]
    samples = ["0/1\t1|1\t./.", "0/1:5\t.:3\t1/0:2", "0\t1\t.", "5\t6\t7", "10/2\t0/0\t1/."]
    first, second = parse_alleles(formats, samples, 3)
    assert first.tolist() == [[0, 1, -1], [0, -1, 1], [0, 1, -1], [-1, -1, -1], [10, 0, 1]]
    assert second.tolist() == [[1, 1, -1], [1, -2, 0], [-2, -2, -2], [-1, -1, -1], [2, 0, -1]]


def test_imaging_index_matches_dcmread(view: ProjectView, client: Client) -> None:
    index = view.imaging_index(batch_size=5)
    assert index.npartitions == 4
    got = index.compute().set_index("path")
    assert len(got) == 18
    for path, row in got.iterrows():
        ds = pydicom.dcmread(path)
        assert row["pseudonym"] == ds.PatientID == Path(path).parts[-4]
        assert (row["study_uid"], row["series_uid"], row["sop_uid"]) == (
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            ds.SOPInstanceUID,
        )
        assert row["instance_number"] == ds.InstanceNumber
        assert row["slice_location"] == pytest.approx(float(ds.SliceLocation))
        assert row["trigger_time"] == pytest.approx(float(ds.TriggerTime))
        assert (row["rows"], row["columns"], row["modality"]) == (ds.Rows, ds.Columns, ds.Modality)
        assert list(row["pixel_spacing"]) == [float(v) for v in ds.PixelSpacing]


def test_pixels_stack_matches_dcmread(view: ProjectView, client: Client) -> None:
    index = view.imaging_index()
    series = index[index["series_uid"] == index["series_uid"].compute().iloc[0]]
    stack = view.pixels(series, batch_size=2)
    paths = series["path"].compute().tolist()
    assert stack.shape == (len(paths), 16, 12) and stack.dtype == np.uint16
    expected = np.stack([pydicom.dcmread(p).pixel_array for p in paths])
    np.testing.assert_array_equal(stack.compute(), expected)
    pdf = index.compute().iloc[[4, 1]]
    np.testing.assert_array_equal(view.pixels(pdf)[0].compute(), pydicom.dcmread(pdf["path"].iloc[0]).pixel_array)


def test_client_is_sized_from_manifest(view: ProjectView) -> None:
    with view.client(processes=False) as c:
        info = c.scheduler_info()
        assert len(info["workers"]) == 2
        assert {w["nthreads"] for w in info["workers"].values()} == {1}
        # threads of this process: each is measured against the process, so each gets the workers' total
        per_worker = parse_bytes(view.manifest["compute"]["memory_limit"])
        assert {w["memory_limit"] for w in info["workers"].values()} == {2 * per_worker}
        # on this client explicitly: another in-process cluster (the module's) is alive, and a run of the whole
        # suite once hung in .compute() on the default one
        assert c.compute(view.allele_frequencies("chrX")).result(timeout=120)["an"].max() <= 14


def test_fixed_width_genotypes_parse_like_the_general_path() -> None:
    from workbench import genotypes

    rng = np.random.default_rng(5)
    calls = np.array(["0/0", "0/1", "1/1", "./.", "0|1", "1|0", "2/1", "./1"])
    texts = ["\t".join(rng.choice(calls, size=7)) for _ in range(50)]
    fixed = genotypes._parse_fixed_width(texts, 7)
    assert fixed is not None
    general = genotypes._parse_gt_first([*texts, "0/1\t" * 6 + "0"], np.arange(51), 7)  # haploid: general path
    assert np.array_equal(fixed[0], general[0][:50]) and np.array_equal(fixed[1], general[1][:50])
    assert genotypes._parse_fixed_width([*texts, "0/10\t" + "0/0\t" * 5 + "0/"], 7) is None
