"""Bad input to the readers: damaged views, VCFs and DICOM, bad arguments, third-party edge-case files.

Each must end in a WorkbenchError naming the file or the problem, never a raw traceback from inside Dask.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pydicom
import pydicom.data
import pysam
import pytest
from distributed import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from readers_fixtures import build_view, pseudonym, pysam_frequencies, write_dicom

from tests.third_party import HTSLIB
from workbench import ProjectView, open_project
from workbench.errors import InvalidInputError, WorkbenchError
from workbench.imaging import _pydicom_header, _scan, _Unhandled, read_header

pytestmark = pytest.mark.robustness


@pytest.fixture(scope="module")
def client() -> Client:
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as c:
        yield c


@pytest.fixture
def view_root(tmp_path: Path) -> Path:
    return build_view(tmp_path / "view", n_variants=(120, 80))


def _bare_view(tmp_path: Path) -> Path:
    root = tmp_path / "bare"
    (root / "genomics").mkdir(parents=True)
    (root / "MANIFEST.json").write_text("{}")
    return root


def test_missing_view_and_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(WorkbenchError, match="not a folder"):
        open_project(path=tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    with pytest.raises(WorkbenchError, match=r"no MANIFEST\.json"):
        open_project(path=tmp_path / "half")
    monkeypatch.setenv("ENCLAVE_HOME", str(tmp_path))
    with pytest.raises(WorkbenchError, match="materialised"):
        open_project("no-such-project")
    monkeypatch.delenv("ENCLAVE_PROJECT_DATA", raising=False)
    with pytest.raises(WorkbenchError, match="ENCLAVE_PROJECT_DATA"):
        open_project()


def test_manifest_not_json_or_listing_missing_files(view_root: Path) -> None:
    manifest = json.loads((view_root / "MANIFEST.json").read_text())
    (view_root / "clinical" / "outcomes.parquet").unlink()
    with pytest.raises(InvalidInputError, match=r"outcomes\.parquet") as info:
        open_project(path=view_root)
    assert info.value.path.name == "MANIFEST.json"
    (view_root / "MANIFEST.json").write_text(json.dumps(manifest)[:40])
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        open_project(path=view_root)
    (view_root / "MANIFEST.json").write_text("[1, 2]")
    with pytest.raises(InvalidInputError, match="JSON object"):
        open_project(path=view_root)


def test_unknown_table_region_contig_site(view_root: Path) -> None:
    view = open_project(path=view_root)
    with pytest.raises(WorkbenchError, match=r"no clinical table 'labs'.*measurements"):
        view.clinical("labs")
    for bad in ("chr1:abc", "chr1:10-5", "", "chr1:0-10", "chr 1"):
        with pytest.raises(WorkbenchError, match="region"):
            view.variants(bad)
    with pytest.raises(WorkbenchError, match=r"contig 'chr9' is not in rbh\.vcf\.gz, uclh\.vcf\.gz"):
        view.allele_frequencies("chr9:1-100")
    with pytest.raises(WorkbenchError, match="no genomics for site"):
        view.genotypes(site="nowhere")
    with pytest.raises(WorkbenchError, match="no column"):
        view.clinical("patients", columns=["nhs_number"])


def test_truncated_vcf_fails_in_task_naming_file(view_root: Path, client: Client) -> None:
    path = view_root / "genomics" / "rbh.vcf.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InvalidInputError, match=r"rbh\.vcf\.gz \(\d+ bytes, manifest says \d+\)"):
        ProjectView(view_root)  # the manifest's sizes catch it at open
    (view_root / "MANIFEST.json").write_text("{}")  # without them, the task reading the file must
    view = ProjectView(view_root)
    with pytest.raises(InvalidInputError, match=r"rbh\.vcf\.gz") as info:
        view.allele_frequencies().compute()
    assert info.value.path == path


def test_corrupted_vcf_block_fails_naming_file(tmp_path: Path, client: Client) -> None:
    root = _bare_view(tmp_path)
    path = root / "genomics" / "a.vcf.gz"
    from readers_fixtures import write_vcf

    write_vcf(path, [pseudonym(i) for i in range(20)], 400, contigs=("chr1",))
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match=r"a\.vcf\.gz"):
        ProjectView(root).allele_frequencies().compute()


def test_plain_text_or_unindexed_vcf_rejected_at_open(tmp_path: Path) -> None:
    root = _bare_view(tmp_path)
    shutil.copy(HTSLIB / "index.vcf", root / "genomics" / "plain.vcf.gz")
    with pytest.raises(InvalidInputError, match=r"plain text.*bgzip"):
        ProjectView(root).variants()
    (root / "genomics" / "plain.vcf.gz").unlink()
    pysam.tabix_compress(str(HTSLIB / "index.vcf"), str(root / "genomics" / "noindex.vcf.gz"))
    with pytest.raises(InvalidInputError, match="no tabix index"):
        ProjectView(root).variants()
    (root / "genomics" / "noindex.vcf.gz.tbi").write_bytes(b"not an index")
    with pytest.raises(InvalidInputError, match="tabix index"):
        ProjectView(root).variants()


def test_malformed_records_name_the_record(tmp_path: Path, client: Client) -> None:
    root = _bare_view(tmp_path)
    text = (
        "##fileformat=VCFv4.2\n##contig=<ID=chr1>\n"
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tP-A\tP-B\n"
        "chr1\t10\t.\tA\tG\t.\t.\t.\tGT\t0/1\t1/1\n"
        "chr1\t20\t.\tA\tG\t.\t.\t.\tGT\t0/1\n"
        "chr1\t30\t.\tA\tG\t.\t.\t.\tGT\tx/y\t0/0\n"
    )
    (root / "bad.vcf").write_text(text)
    path = root / "genomics" / "bad.vcf.gz"
    pysam.tabix_compress(str(root / "bad.vcf"), str(path))
    pysam.tabix_index(str(path), preset="vcf")
    view = ProjectView(root)
    with pytest.raises(InvalidInputError, match=r"chr1:20 has 1 sample columns, the header names 2"):
        view.allele_frequencies("chr1:1-25").compute()
    with pytest.raises(InvalidInputError, match=r"chr1:30 genotype 'x/y'"):
        view.genotypes("chr1:25-40").dosages.compute()
    assert view.variants().compute()["pos"].tolist() == [10, 20, 30]  # sites alone are still readable


def _third_party_vcfs() -> list[Path]:
    return sorted(p for p in HTSLIB.glob("*.vcf*") if not p.name.endswith(".tbi"))


@pytest.mark.parametrize("source", _third_party_vcfs(), ids=lambda p: p.name)
def test_third_party_vcfs(source: Path, tmp_path: Path, client: Client) -> None:
    """Each htslib test VCF, bgzipped and indexed as a view requires, either reads and matches pysam or fails
    with a WorkbenchError; files a .tbi cannot index (positions past 2^29) are outside what a view can hold."""
    root = _bare_view(tmp_path)
    path = root / "genomics" / "site.vcf.gz"
    try:
        if source.suffix == ".gz":
            shutil.copy(source, path)
        else:
            pysam.tabix_compress(str(source), str(path))
        pysam.tabix_index(str(path), preset="vcf", force=True)
    except OSError:
        pytest.skip("htslib cannot build a .tbi for this file (needs CSI); views carry .tbi only")
    view = ProjectView(root)
    try:
        freqs = view.allele_frequencies().compute()
        variants = view.variants().compute()
        matrix = view.genotypes()
        dosages = matrix.dosages.compute()
    except WorkbenchError as exc:
        assert "site.vcf.gz" in str(exc)
        return
    assert dosages.shape == (len(variants), len(matrix.samples))
    try:
        expected = pysam_frequencies(path)
    except ValueError:
        return  # pysam's own record parser rejects this file; the reader read it without failing
    assert len(freqs) == len(expected)
    assert freqs["pos"].tolist() == expected["pos"].tolist()
    assert freqs["alt"].astype(str).tolist() == expected["alt"].astype(str).tolist()
    assert freqs["an"].tolist() == expected["an"].tolist()
    assert freqs["ac"].tolist() == expected["ac"].tolist()


def test_truncated_and_fake_dicom(view_root: Path, client: Client) -> None:
    view = ProjectView(view_root)
    files = sorted((view_root / "imaging").rglob("*.dcm"))
    (view_root / "MANIFEST.json").write_text("{}")
    files[0].write_bytes(files[0].read_bytes()[:200])
    with pytest.raises(InvalidInputError, match="truncated") as info:
        view.imaging_index().compute()
    assert info.value.path == files[0]
    files[0].write_text("hello, not DICOM")
    with pytest.raises(InvalidInputError, match="not a DICOM"):
        view.imaging_index().compute()


def test_pixels_of_a_damaged_file(tmp_path: Path, client: Client) -> None:
    root = _bare_view(tmp_path)
    p = write_dicom(
        root / "imaging" / "P-X" / "1.2" / "1.2.3" / "1.dcm", "P-X", study_uid="1.2", series_uid="1.2.3", instance=1
    )
    view = ProjectView(root)
    index = view.imaging_index().compute()
    p.write_bytes(p.read_bytes()[:-100])  # pixel data cut short after indexing
    with pytest.raises(InvalidInputError, match=r"1\.dcm"):
        view.pixels(index).compute()
    mixed = index.assign(rows=[16]).iloc[[0, 0]].copy()
    mixed.iloc[1, mixed.columns.get_loc("rows")] = 32
    with pytest.raises(WorkbenchError, match="one size"):
        view.pixels(mixed)


def _bundled_dicom() -> list[str]:
    """pydicom's bundled test files (what get_testdata_files() returns offline, without its network fetch)."""
    return sorted(str(p) for p in (Path(pydicom.data.__file__).parent / "test_files").rglob("*.dcm"))


@pytest.mark.parametrize("path", _bundled_dicom(), ids=lambda p: Path(p).name)
def test_pydicom_test_files(path: str) -> None:
    """Every pydicom test file indexes to what pydicom itself reads, or fails with InvalidInputError naming it."""
    try:
        row = read_header(path)
    except InvalidInputError as exc:
        assert Path(path).name in str(exc)
        return
    try:
        scanned = _scan(path)
    except (_Unhandled, UnicodeDecodeError, ValueError):
        return  # read by pydicom itself
    expected = _pydicom_header(path)
    assert scanned.keys() == expected.keys()
    for key, value in expected.items():
        assert row[key] == pytest.approx(value) if isinstance(value, float) else row[key] == value, key
