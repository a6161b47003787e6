"""Bad input to the airlock checks engine: real third-party files (htslib, nbformat, pydicom's test files),
truncated and corrupted files of every releasable kind, zip bombs and archive abuse, hostile content.

The engine must never crash, hang or pass what it could not read (an unreadable or malformed file is review), and
it must stay safe: never unpickle, execute or follow a link, never write outside its scratch folder, and never
repeat an identifier in full in a finding (the report is itself an output). Each group runs the real engine once
over a folder of files (module-scoped fixtures), so the whole file stays quick.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import pathlib
import pickle
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pydicom
import pytest

from output_checks.engine import check_paths
from output_checks.policy import Policy, load_policy
from output_checks.verdicts import FileReport, Verdict
from tests.airlock_helpers import messages
from tests.readers_fixtures import pseudonym, write_dicom
from tests.third_party import HTSLIB, NBFORMAT, REPO, THIRD_PARTY

pytestmark = pytest.mark.robustness

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
CLEAN_CSV = "site,diagnosis,n\nA,I25,120\nB,I25,45\nC,I42,80\n"


def run(paths: Sequence[Path], policy: Policy | None = None) -> dict[str, FileReport]:
    """One in-process engine run; reports by the path they are reported under (which must be unique)."""
    report = check_paths(list(paths), policy or load_policy(), workers=1)
    by_path = {f.path: f for f in report.files}
    assert len(by_path) == len(report.files), "duplicate report paths"
    return by_path


def policy_file(folder: Path, text: str) -> Policy:
    path = folder / f"policy-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(text)
    return load_policy(path)


def describe(report: FileReport) -> str:
    return f"{report.path} ({report.type}, {report.verdict}):\n{messages(report)}"


def not_pass(report: FileReport) -> None:
    assert report.verdict is not Verdict.PASS, describe(report)


# ------------------------------------------------------------------------------------------------ identifiers


def nhs_number(start: int) -> str:
    """The first valid (mod-11) NHS number at or after `start` whose first digit is not 9."""
    n = start
    while True:
        digits = [int(c) for c in f"{n:09d}"]
        check = 11 - sum(d * (10 - i) for i, d in enumerate(digits)) % 11
        check = 0 if check == 11 else check
        if check != 10 and digits[0] != 9:
            return "".join(map(str, digits)) + str(check)
        n += 1


def spaced(nhs: str) -> str:
    return f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"


def compact(text: str) -> str:
    return "".join(ch for ch in text.lower() if not ch.isspace() and ch != "-")


def echoed(report: FileReport, identifiers: Sequence[str]) -> list[str]:
    """Findings (message or location) that hold one of `identifiers` in full, with or without spaces."""
    hits = []
    for f in report.findings:
        for text in (f.message, f.location):
            for ident in identifiers:
                if ident.lower() in text.lower() or compact(ident) in compact(text):
                    hits.append(f"{ident!r} in {text!r}")
    return hits


NHS_A = nhs_number(412_345_678)
NHS_B = nhs_number(623_456_789)
NHS_C = nhs_number(734_567_890)
NAMES = ["Margaret Thornton", "Jane Smith", "Oliver Hughes"]
EMAILS = ["margaret.thornton@example.org", "j.smith1980@example.co.uk"]
DOBS = ["14/03/1980", "1975-11-02"]
IDENTIFIERS = [NHS_A, NHS_B, NHS_C, *NAMES, *EMAILS, *DOBS]


# ================================================================================================ 1. third party


@pytest.fixture(scope="module")
def third_party() -> dict[str, FileReport]:
    return run([THIRD_PARTY])


def _third_party_files() -> list[Path]:
    return sorted(p for folder in (HTSLIB, NBFORMAT) for p in folder.iterdir() if p.is_file())


def _vcf_sample_columns(path: Path) -> int:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", errors="replace") as fh:
        for line in fh:
            if line.startswith("#CHROM"):
                return max(0, len(line.rstrip("\r\n").split("\t")) - 9)
    return 0


def test_every_third_party_file_gets_a_report(third_party):
    expected = {p.relative_to(THIRD_PARTY).as_posix() for p in _third_party_files()}
    assert expected <= set(third_party), sorted(expected - set(third_party))
    assert len(expected) >= 40
    for name in expected:
        report = third_party[name]
        assert len(report.sha256) == 64 and report.type and report.type not in ("unreadable", "link"), describe(report)


def test_third_party_raw_genomic_files_block(third_party):
    raw = []
    for path in _third_party_files():
        if path.parent != HTSLIB or path.name == "LICENSE":
            continue
        report = third_party[path.relative_to(THIRD_PARTY).as_posix()]
        name = path.name.removesuffix(".gz")
        if name.endswith((".sam", ".bam", ".bcf")) or (name.endswith(".vcf") and _vcf_sample_columns(path) > 0):
            raw.append(path.name)
            assert report.verdict is Verdict.BLOCK, describe(report)
            assert report.type in ("sam", "bam", "bcf", "vcf"), describe(report)
        else:  # a sites-only VCF is a table: it may pass, but only as one
            assert report.verdict is Verdict.BLOCK or report.type == "vcf-sites", describe(report)
    assert len(raw) >= 12, raw


def test_third_party_notebooks_are_read_not_guessed(third_party):
    """Notebooks of format v3, v4 and v4.5, valid or not against the schema: each read as a notebook, none left
    to the catch-all 'could not be read' review."""
    for path in NBFORMAT.glob("*.ipynb"):
        report = third_party[path.relative_to(THIRD_PARTY).as_posix()]
        assert report.type == "ipynb", describe(report)
        assert "could not be read" not in messages(report), describe(report)


# ================================================================================================ 2. pydicom


def _readable_dicoms() -> list[Path]:
    readable = []
    for path in sorted(PYDICOM_FILES.rglob("*")):
        if not path.is_file():
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pydicom.dcmread(path)
        except Exception:  # pydicom refuses it: not a DICOM for this test
            continue
        readable.append(path)
    return readable


@pytest.fixture(scope="module")
def dicom_reports(tmp_path_factory) -> tuple[dict[str, str], dict[str, FileReport]]:
    folder = tmp_path_factory.mktemp("pydicom")
    copies: dict[str, str] = {}  # copy name -> original
    for path in _readable_dicoms():
        name = path.relative_to(PYDICOM_FILES).as_posix().replace("/", "_")
        shutil.copyfile(path, folder / name)
        copies[name] = path.name
    ct = PYDICOM_FILES / "CT_small.dcm"
    mr = PYDICOM_FILES / "MR_small_implicit.dcm"
    for disguise in ("figure.png", "table.csv", "noextension", "notes.txt"):
        shutil.copyfile(ct, folder / f"disguised-{disguise}")
    with zipfile.ZipFile(folder / "disguised-bundle.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.write(ct, "results/figure1.png")
        z.write(mr, "results/summary.csv")
    shutil.copyfile(PYDICOM_FILES / "zipMR.gz", folder / "zipMR.gz")
    return copies, run([folder])


def test_pydicom_test_files_all_block(dicom_reports):
    copies, reports = dicom_reports
    assert len(copies) >= 50
    for name in copies:
        report = reports[name]
        assert report.type == "dicom" and report.verdict is Verdict.BLOCK, describe(report)


@pytest.mark.parametrize("name", ["figure.png", "table.csv", "noextension", "notes.txt"])
def test_dicom_under_a_misleading_name_blocks(dicom_reports, name):
    report = dicom_reports[1][f"disguised-{name}"]
    assert report.type == "dicom" and report.verdict is Verdict.BLOCK, describe(report)


@pytest.mark.parametrize("name", ["disguised-bundle.zip", "zipMR.gz"])
def test_dicom_inside_an_archive_blocks(dicom_reports, name):
    report = dicom_reports[1][name]
    assert report.verdict is Verdict.BLOCK, describe(report)
    assert any(f.check == "raw_data" and "DICOM" in f.message and f.location for f in report.findings)


# ================================================================================================ 3. damaged files

CONTAINERS = ("parquet", "xlsx", "png", "pdf", "zip", "tar.gz", "gz", "ipynb")
RAW = ("dcm", "bam", "vcf", "vcf.gz", "bcf")
CUTS = (0.1, 0.5, 0.9)
FLIPS = (0.35, 0.65)
# Short labels, long counts: each cut (10%, 50%, 90%) lands past the last row's comma.
SMALL_COUNT_CSV = "site,n\nA,3\n" + "".join(f"{chr(66 + i)},{100_000 + i}\n" for i in range(24))
SAMPLES = [pseudonym(i, "robust") for i in range(4)]


def _vcf_text(n: int = 60) -> str:
    rng = random.Random(5)
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=chr1,length=248956422>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(SAMPLES),
    ]
    for i in range(n):
        gts = "\t".join(f"{rng.randint(0, 1)}/{rng.randint(0, 1)}" for _ in SAMPLES)
        lines.append(f"chr1\t{1000 + 37 * i}\trs{i}\tA\tG\t50\tPASS\t.\tGT\t{gts}")
    return "\n".join(lines) + "\n"


def _write_bam(path: Path) -> None:
    import pysam

    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": 100_000}],
              "RG": [{"ID": "rg1", "SM": SAMPLES[0]}]}  # fmt: skip
    rng = random.Random(2)
    with pysam.AlignmentFile(str(path), "wb", header=header) as bam:
        for i in range(200):
            read = pysam.AlignedSegment(bam.header)
            read.query_name = f"read{i}"
            read.reference_id = 0
            read.reference_start = 100 + 7 * i
            read.mapping_quality = 60
            read.cigarstring = "50M"
            read.query_sequence = "".join(rng.choice("ACGT") for _ in range(50))
            read.query_qualities = pysam.qualitystring_to_array("I" * 50)
            read.set_tag("RG", "rg1")
            bam.write(read)


def _write_bcf(path: Path, folder: Path) -> None:
    import pysam

    plain = folder / "for-bcf.vcf"
    plain.write_text(_vcf_text())
    with pysam.VariantFile(str(plain)) as src, pysam.VariantFile(str(path), "wb", header=src.header) as out:
        for record in src:
            out.write(record)
    plain.unlink()


def _good_files(folder: Path) -> dict[str, Path]:
    """One good file per kind, written by the library that normally writes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nbformat
    import openpyxl
    import pandas as pd
    import pysam
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    out["csv"] = folder / "good.csv"
    out["csv"].write_text(SMALL_COUNT_CSV)
    regions = [f"Region {chr(65 + i % 26)}{chr(65 + i // 26)}" for i in range(40)]
    # means with the size of each group beside them (a mean with no N is review: its contributors are unknown)
    frame = pd.DataFrame(
        {"region": regions, "n": [120 + i for i in range(40)], "mean_ldl": [3.1 + i / 100 for i in range(40)]}
    )
    out["parquet"] = folder / "good.parquet"
    frame.to_parquet(out["parquet"])
    out["xlsx"] = folder / "good.xlsx"
    book = openpyxl.Workbook()
    for row in [["region", "n", "mean_ldl"], *frame.values.tolist()]:
        book.active.append(row)
    book.save(out["xlsx"])
    out["png"] = folder / "good.png"
    image = Image.new("RGB", (240, 120), "white")
    ImageDraw.Draw(image).rectangle((20, 20, 200, 100), outline="black", fill="#88aacc")
    image.save(out["png"])
    out["pdf"] = folder / "good.pdf"
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 2, 3], [2, 1, 3])
    ax.set_title("LDL by decile")
    fig.savefig(out["pdf"])
    plt.close(fig)
    out["ipynb"] = folder / "good.ipynb"
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("df.groupby('site').ldl.mean()", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="mean LDL 3.2 mmol/L\n" * 40)]
    nb.cells = [nbformat.v4.new_markdown_cell("# LDL summary\n" + "Aggregate results only.\n" * 30), cell]
    nbformat.write(nb, str(out["ipynb"]))
    out["zip"] = folder / "good.zip"
    with zipfile.ZipFile(out["zip"], "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("tables/summary.csv", CLEAN_CSV * 30)
        z.writestr("README.md", "# Outputs\n" + "Aggregate tables.\n" * 50)
    out["tar.gz"] = folder / "good.tar.gz"
    with tarfile.open(out["tar.gz"], "w:gz") as tar:
        data = (CLEAN_CSV * 40).encode()
        info = tarfile.TarInfo("tables/summary.csv")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    out["gz"] = folder / "good.csv.gz"
    out["gz"].write_bytes(gzip.compress((CLEAN_CSV * 40).encode()))
    out["dcm"] = write_dicom(
        folder / "good.dcm", SAMPLES[0], study_uid="1.2.3.4", series_uid="1.2.3.4.5", instance=1, rows=48, columns=48
    )
    out["bam"] = folder / "good.bam"
    _write_bam(out["bam"])
    out["vcf"] = folder / "good.vcf"
    out["vcf"].write_text(_vcf_text())
    out["vcf.gz"] = folder / "good.vcf.gz"
    pysam.tabix_compress(str(out["vcf"]), str(out["vcf.gz"]), force=True)
    out["bcf"] = folder / "good.bcf"
    _write_bcf(out["bcf"], folder)
    return out


def _damaged(good: dict[str, Path], folder: Path) -> dict[str, tuple[str, str]]:
    """Truncated and byte-flipped copies: name -> (kind, how)."""
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, tuple[str, str]] = {}
    for kind, path in good.items():
        data = path.read_bytes()
        suffix = path.name.removeprefix("good")
        for cut in CUTS:
            name = f"cut{int(cut * 100):02d}{suffix}"
            (folder / name).write_bytes(data[: int(len(data) * cut)])
            made[name] = (kind, f"truncated at {cut:.0%}")
        for number, where in enumerate(FLIPS):
            rng = random.Random(f"{kind}-{number}")
            damaged = bytearray(data)
            start = int(len(data) * where)
            damaged[start : start + 32] = bytes(rng.randrange(256) for _ in range(32))
            name = f"flip{number}{suffix}"
            (folder / name).write_bytes(bytes(damaged))
            made[name] = (kind, f"32 random bytes at {where:.0%}")
    return made


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged")
    good = _good_files(root / "good")
    made = _damaged(good, root / "bad")
    reports = run([root])
    return good, made, reports


def test_good_files_are_what_they_claim(damaged):
    """The undamaged originals, so that the damaged ones are damaged versions of something real."""
    good, _, reports = damaged
    expect = {"csv": ("csv", Verdict.BLOCK), "parquet": ("parquet", Verdict.PASS), "xlsx": ("xlsx", Verdict.PASS),
              "png": ("png", Verdict.REVIEW), "pdf": ("pdf", Verdict.REVIEW), "ipynb": ("ipynb", Verdict.PASS),
              "zip": ("zip", Verdict.REVIEW), "tar.gz": ("gzip", Verdict.REVIEW), "gz": ("gzip", Verdict.REVIEW),
              "dcm": ("dicom", Verdict.BLOCK), "bam": ("bam", Verdict.BLOCK), "vcf": ("vcf", Verdict.BLOCK),
              "vcf.gz": ("vcf", Verdict.BLOCK), "bcf": ("bcf", Verdict.BLOCK)}  # fmt: skip
    for kind, path in good.items():
        report = reports[f"good/{path.name}"]
        assert (report.type, report.verdict) == expect[kind], describe(report)


def test_every_damaged_file_gets_a_verdict(damaged):
    _, made, reports = damaged
    assert len(made) >= 60
    for name in made:
        report = reports[f"bad/{name}"]
        assert len(report.sha256) == 64 and report.type, describe(report)
        assert report.verdict in (Verdict.PASS, Verdict.REVIEW, Verdict.BLOCK)


def test_damaged_containers_never_pass(damaged):
    _, made, reports = damaged
    for name, (kind, how) in made.items():
        if kind in CONTAINERS:
            report = reports[f"bad/{name}"]
            assert report.verdict is not Verdict.PASS, f"{how}: {describe(report)}"


def test_damaged_raw_data_never_passes(damaged):
    _, made, reports = damaged
    for name, (kind, how) in made.items():
        if kind in RAW:
            report = reports[f"bad/{name}"]
            assert report.verdict is not Verdict.PASS, f"{how}: {describe(report)}"


def test_damaged_raw_data_that_is_still_recognisable_blocks(damaged):
    """A DICOM keeps its preamble, a BAM its first BGZF block: cut or flipped later, they are still raw data."""
    _, made, reports = damaged
    for name, (kind, how) in made.items():
        if kind in ("dcm", "bam", "vcf") and ("90%" in how or "50%" in how or "random" in how):
            report = reports[f"bad/{name}"]
            if kind == "vcf" and report.type == "vcf-sites":
                continue
            assert report.verdict is Verdict.BLOCK, f"{how}: {describe(report)}"


def test_truncated_csv_keeps_catching_its_small_count(damaged):
    _, made, reports = damaged
    checked = 0
    for name, (kind, how) in made.items():
        if kind != "csv" or "truncated" not in how:
            continue
        kept = SMALL_COUNT_CSV[: int(len(SMALL_COUNT_CSV) * int(how[-3:-1]) / 100)]
        if "\nA,3\n" not in kept or "," not in kept.rsplit("\n", 1)[-1]:
            continue  # the count was cut away, or the cut fell before the last row's comma (see the test below)
        checked += 1
        assert reports[f"bad/{name}"].verdict is Verdict.BLOCK, f"{how}: {describe(reports[f'bad/{name}'])}"
    assert checked == 3


def test_byte_flipped_csv_keeps_catching_its_small_count(damaged):
    _, made, reports = damaged
    for name, (kind, how) in made.items():
        if kind == "csv" and "random" in how:
            assert reports[f"bad/{name}"].verdict is not Verdict.PASS, f"{how}: {describe(reports[f'bad/{name}'])}"


def test_csv_cut_before_the_comma_of_its_last_row_still_blocks(tmp_path):
    path = tmp_path / "cut.csv"
    path.write_text("site,n\nA,3\nB,120\nC")
    report = run([path])[str(path)]
    assert report.verdict is Verdict.BLOCK, describe(report)


def test_bgzipped_vcf_cut_before_its_header_ends_is_review_or_block(tmp_path):
    import pysam

    rng = random.Random(1)
    header = [f"##contig=<ID=ctg{i}_{rng.random()}>" for i in range(3000)]
    plain = tmp_path / "long.vcf"
    plain.write_text(_vcf_text().replace("##fileformat=VCFv4.2\n", "##fileformat=VCFv4.2\n" + "\n".join(header) + "\n"))
    pysam.tabix_compress(str(plain), str(tmp_path / "long.vcf.gz"), force=True)
    plain.unlink()
    data = (tmp_path / "long.vcf.gz").read_bytes()
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[: len(data) // 2])
    report = run([cut])[str(cut)]
    assert report.verdict is Verdict.BLOCK, describe(report)


# ================================================================================================ 4. archives


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory) -> Path:
    """One member of 1 GiB of zeros, deflated while it is written (the zip is about 1 MB)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    block = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open("zeros.bin", "w", force_zip64=True) as m:
        for _ in range(1024):
            m.write(block)
    assert path.stat().st_size < 4 * 2**20
    return path


def test_zip_bomb_is_refused(zip_bomb):
    report = run([zip_bomb])[str(zip_bomb)]
    assert report.verdict is Verdict.BLOCK, describe(report)
    assert any("refused" in f.message or "bomb" in f.message for f in report.findings), describe(report)


def test_zip_bomb_never_expands_past_the_policy_limit(zip_bomb, tmp_path):
    """With the compression-ratio guard set out of reach, only the streaming size budget stands between the bomb
    and the disk. The run happens in a child process that may not write any file larger than 16 MB (RLIMIT_FSIZE):
    had the engine expanded past its 8 MB budget, the write would fail and the archive be reported damaged, not
    refused."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("archive_max_total_mb: 8\narchive_max_ratio: 1000000000\n")
    code = (
        "import json, resource, sys\n"
        "from pathlib import Path\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 2**20, 16 * 2**20))\n"
        "from output_checks.engine import check_paths\n"
        "from output_checks.policy import load_policy\n"
        "report = check_paths([Path(sys.argv[1])], load_policy(Path(sys.argv[2])), workers=1)\n"
        "print(json.dumps(report.to_json()))\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(zip_bomb), str(policy)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (entry,) = json.loads(done.stdout)["files"]
    text = json.dumps(entry["findings"])
    assert entry["verdict"] == "block", text
    assert "refused" in text and "expands beyond 8 MB" in text, text
    assert "damaged" not in text, text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("enclave-airlock-")]  # scratch removed


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    root = tmp_path_factory.mktemp("archives")
    folder = root / "in"
    folder.mkdir()
    with zipfile.ZipFile(folder / "many.zip", "w") as z:
        for i in range(1001):
            z.writestr(f"part{i:04d}.txt", "ok\n")
    data = b""
    with io.BytesIO() as buffer:
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr("summary.csv", CLEAN_CSV)
        data = buffer.getvalue()
    for level in range(4):  # zip in zip in zip in zip in zip: one deeper than archive_max_depth (3)
        with io.BytesIO() as buffer:
            with zipfile.ZipFile(buffer, "w") as z:
                z.writestr(f"level{level}.zip", data)
            data = buffer.getvalue()
    (folder / "nested.zip").write_bytes(data)
    escape = f"escaped-{uuid.uuid4().hex}"
    with tarfile.open(folder / "links.tar", "w") as tar:
        for name, kind, target in (
            ("symlink-to-passwd", tarfile.SYMTYPE, "/etc/passwd"),
            ("hardlink-to-passwd", tarfile.LNKTYPE, "/etc/passwd"),
            ("dirlink", tarfile.SYMTYPE, str(root)),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)
        for name in (f"../../{escape}", f"../{escape}", f"/tmp/{escape}", f"dirlink/{escape}"):
            payload = b"written outside\n"
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with zipfile.ZipFile(folder / "traversal.zip", "w") as z:
        z.writestr(f"../../{escape}", "written outside\n")
        z.writestr(f"/tmp/{escape}", "written outside\n")
        link = zipfile.ZipInfo("ziplink")
        link.external_attr = (0o120777 << 16) | 0x20  # a symlink entry, as Info-ZIP stores one
        z.writestr(link, "/etc/passwd")
    (folder / "clean.csv.gz").write_bytes(gzip.compress(CLEAN_CSV.encode()))
    (folder / "encrypted.zip").write_bytes(_encrypted_flag_zip())
    with gzip.open(folder / "bomb.gz", "wb", compresslevel=1) as g:
        for _ in range(64):
            g.write(bytes(1 << 20))
    with zipfile.ZipFile(folder / "big.zip", "w", zipfile.ZIP_STORED) as z:
        z.writestr("noise.bin", random.Random(3).randbytes(3 * 2**20))
    reports = run([folder], policy_file(root, "archive_max_total_mb: 2\n"))
    return root, folder, escape, reports


def _encrypted_flag_zip() -> bytes:
    """A zip whose member has the 'encrypted' flag set (local and central headers): no password will open it."""
    with io.BytesIO() as buffer:
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr("summary.csv", CLEAN_CSV)
        raw = bytearray(buffer.getvalue())
    assert raw[:4] == b"PK\x03\x04"
    raw[6] |= 0x1
    central = raw.find(b"PK\x01\x02")
    raw[central + 8] |= 0x1
    return bytes(raw)


@pytest.mark.parametrize(
    ("name", "verdict", "says"),
    [
        ("many.zip", Verdict.BLOCK, "more than 1000 members"),
        ("nested.zip", Verdict.REVIEW, "nested deeper than 3"),
        ("big.zip", Verdict.BLOCK, "expands beyond 2 MB"),
        ("bomb.gz", Verdict.BLOCK, "refused"),
    ],
)
def test_archive_limits(archives, name, verdict, says):
    report = archives[3][name]
    assert report.verdict is verdict, describe(report)
    assert says in messages(report)


def test_tar_links_are_reported_not_followed(archives):
    report = archives[3]["links.tar"]
    not_pass(report)
    flagged = {f.location for f in report.findings if "not followed" in f.message}
    assert {"symlink-to-passwd", "hardlink-to-passwd", "dirlink"} <= flagged, describe(report)
    assert "root:" not in messages(report)


def test_archive_members_never_land_outside_the_scratch_folder(archives):
    root, folder, escape, reports = archives
    not_pass(reports["traversal.zip"])
    places = [folder, root, root.parent, Path(tempfile.gettempdir()), Path("/tmp")]
    leaked = [str(p / escape) for p in places if (p / escape).exists()]
    assert not leaked
    assert not list(root.rglob(f"*{escape}*"))
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["many.zip", "nested.zip", "links.tar", "traversal.zip", "clean.csv.gz", "encrypted.zip", "bomb.gz", "big.zip"]
    )


def test_gzip_of_a_clean_csv_is_review(archives):
    report = archives[3]["clean.csv.gz"]
    assert report.verdict is Verdict.REVIEW, describe(report)
    assert all(f.verdict is Verdict.REVIEW for f in report.findings)


def test_encrypted_member_is_review(archives):
    report = archives[3]["encrypted.zip"]
    assert report.verdict is Verdict.REVIEW, describe(report)
    assert any("encrypted" in f.message and f.location == "summary.csv" for f in report.findings), describe(report)


# ================================================================================================ 5. never unsafe


class _TouchOnUnpickle:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def unsafe(tmp_path_factory):
    root = tmp_path_factory.mktemp("unsafe")
    folder, outside = root / "outputs", root / "outside"
    folder.mkdir()
    outside.mkdir()
    marker = outside / "marker"
    secret = outside / "secret.txt"
    secret.write_text(f"Patient {NAMES[0]}, NHS number {spaced(NHS_A)}\n")
    (folder / "model.pkl").write_bytes(pickle.dumps(_TouchOnUnpickle(marker), protocol=4))
    (folder / "results.csv").write_bytes(pickle.dumps(_TouchOnUnpickle(marker), protocol=2))
    notebook = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [
            {"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": None, "outputs": [],
             "source": f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"},
            {"cell_type": "code", "id": "c2", "metadata": {}, "execution_count": 1, "source": "%%javascript\n",
             "outputs": [{"output_type": "display_data", "metadata": {}, "data": {
                 "application/javascript": f"require('fs').writeFileSync({str(marker)!r}, 'x')",
                 "text/html": f"<script>fetch('file://{secret}')</script><p>done</p>",
                 "text/plain": "<IPython.core.display.Javascript object>"}}]},
        ],
    }  # fmt: skip
    (folder / "run-me.ipynb").write_text(json.dumps(notebook))
    os.symlink(secret, folder / "link-to-secret.txt")
    os.symlink(outside, folder / "link-to-outside")
    os.mkfifo(folder / "a-fifo")
    laughs = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
    (folder / "laughs.svg").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE svg [\n<!ENTITY lol0 "lol">\n' + laughs + "]>\n"
        '<svg xmlns="http://www.w3.org/2000/svg"><text x="1" y="1">&lol9;</text></svg>\n'
    )
    (folder / "xxe.svg").write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY leak SYSTEM "file://{secret}">]>\n'
        '<svg xmlns="http://www.w3.org/2000/svg"><text x="1" y="1">&leak;</text></svg>\n'
    )
    (folder / "page.html").write_text(
        f"<html><head><script>fetch('file://{secret}').then(r => r.text());"
        f"require('fs').writeFileSync({str(marker)!r}, 'x')</script></head>"
        f"<body><h1>Results</h1><p>Mean LDL 3.2 mmol/L</p><iframe src='file://{secret}'></iframe></body></html>\n"
    )
    (folder / "visible.html").write_text(
        f"<html><body><script>var x = 1;</script><p>Seen in clinic: {NAMES[1]}, NHS {spaced(NHS_B)}</p></body></html>"
    )
    reports = run([folder])
    link_argument = run([folder / "link-to-secret.txt"])
    return marker, secret, folder, reports, link_argument


def test_nothing_was_unpickled_or_executed(unsafe):
    marker, *_ = unsafe
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.pkl", "results.csv"])
def test_pickles_are_review_never_loaded(unsafe, name):
    report = unsafe[3][name]
    assert report.type == "pickle" and report.verdict is Verdict.REVIEW, describe(report)
    assert "never unpickled" in messages(report)


def test_protocol_0_pickle_is_review(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(_TouchOnUnpickle(marker), protocol=0))
    report = run([path])[str(path)]
    assert not marker.exists()
    assert report.verdict is not Verdict.PASS, describe(report)


def test_notebook_is_read_not_run(unsafe):
    marker, _, _, reports, _ = unsafe
    report = reports["run-me.ipynb"]
    assert report.type == "ipynb" and not marker.exists(), describe(report)


@pytest.mark.parametrize("name", ["link-to-secret.txt", "link-to-outside"])
def test_links_in_a_folder_are_reported_not_followed(unsafe, name):
    report = unsafe[3][name]
    assert report.type == "link" and report.verdict is Verdict.REVIEW, describe(report)
    assert [f.check for f in report.findings] == ["engine"] and "not followed" in messages(report)


def test_nothing_behind_a_link_is_read(unsafe):
    *_, reports, link_argument = unsafe
    assert not any(name.startswith("link-to-outside/") for name in reports)
    assert all(f.check == "engine" for r in reports.values() if r.type == "link" for f in r.findings)
    (report,) = link_argument.values()
    assert report.type == "link" and report.verdict is Verdict.REVIEW and report.sha256 == "", describe(report)


def test_a_fifo_is_reported_not_opened(unsafe):
    report = unsafe[3]["a-fifo"]
    assert report.verdict is Verdict.REVIEW and "not a regular file" in messages(report), describe(report)


@pytest.mark.parametrize("name", ["laughs.svg", "xxe.svg"])
def test_svg_entities_are_refused_not_expanded(unsafe, name):
    report = unsafe[3][name]
    assert report.type == "svg" and report.verdict is Verdict.REVIEW, describe(report)
    assert not echoed(report, [NHS_A, NAMES[0]]) and "lollol" not in messages(report)


def test_html_scripts_and_frames_are_not_run_or_fetched(unsafe):
    marker, _, _, reports, _ = unsafe
    report = reports["page.html"]
    assert report.type == "html" and not marker.exists()
    assert report.verdict is Verdict.REVIEW, describe(report)  # the frame: a human must look
    assert not any(f.check == "identifiers" for f in report.findings), describe(report)  # the secret was not fetched


def test_html_visible_text_is_screened(unsafe):
    report = unsafe[3]["visible.html"]
    assert report.verdict is Verdict.BLOCK, describe(report)


def test_identifiers_inside_html_script_data_do_not_pass(tmp_path):
    path = tmp_path / "figure.html"
    hover = json.dumps({"data": [{"x": [1, 2], "y": [3, 4], "hovertext": [f"{NAMES[0]} {spaced(NHS_A)}", "b"]}]})
    path.write_text(f"<html><body><div id='fig'></div><script>Plotly.newPlot('fig', {hover});</script></body></html>")
    report = run([path])[str(path)]
    assert report.verdict is not Verdict.PASS, describe(report)


# ================================================================================================ 6. no echo


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Files of many kinds, each holding identifiers in its content."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import openpyxl
    import pandas as pd

    folder = tmp_path_factory.mktemp("planted")
    (folder / "notes.txt").write_text(
        f"Patient {NAMES[0]}, NHS number {spaced(NHS_A)}, date of birth {DOBS[0]}, e-mail {EMAILS[0]}.\n"
        f"Mr {NAMES[2]} (NHS {NHS_C}) was born on {DOBS[1]}.\n"
    )
    (folder / "notes.md").write_text(f"# Case\n\n* {NAMES[1]} — NHS {NHS_B} — contact {EMAILS[1]}\n")
    (folder / "table.csv").write_text(
        "nhs_number,name,date_of_birth,email,ldl\n"
        f"{spaced(NHS_A)},{NAMES[0]},{DOBS[0]},{EMAILS[0]},3.1\n{NHS_B},{NAMES[1]},{DOBS[1]},{EMAILS[1]},2.7\n"
    )
    (folder / "free-text.csv").write_text(
        f"site,comment,n\nA,seen by clinic,120\nB,{NAMES[2]} NHS {spaced(NHS_C)},45\nC,contact {EMAILS[1]},80\n"
    )
    pd.DataFrame({"comment": [f"{NAMES[0]} {spaced(NHS_A)}", "fine"], "mean": [1.0, 2.0]}).to_parquet(
        folder / "table.parquet"
    )
    book = openpyxl.Workbook()
    book.active.append(["comment", "value"])
    book.active.append([f"Patient {NAMES[1]} NHS {spaced(NHS_B)}", 12])
    book.active.append([f"contact {EMAILS[0]}", 13])
    book.save(folder / "table.xlsx")
    (folder / "data.json").write_text(
        json.dumps({"note": f"{NAMES[0]} NHS {spaced(NHS_A)}", "contacts": [EMAILS[0], EMAILS[1]]})
    )
    (folder / "page.html").write_text(
        f"<html><body><p>Patient {NAMES[1]}, NHS {spaced(NHS_B)}</p><p title='{EMAILS[1]}'>x</p></body></html>"
    )
    (folder / "figure.svg").write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg"><text x="1" y="10">Patient {NAMES[0]} NHS {spaced(NHS_A)}'
        "</text></svg>\n"
    )
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.set_title(f"Patient {NAMES[0]} NHS {spaced(NHS_A)}")
    fig.savefig(folder / "figure.pdf")
    plt.close(fig)
    notebook = {
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [
            {"cell_type": "markdown", "id": "m", "metadata": {}, "source": f"Notes on {NAMES[2]}, born {DOBS[0]}"},
            {"cell_type": "code", "id": "c", "metadata": {}, "execution_count": 1, "source": "df.head()",
             "outputs": [{"output_type": "stream", "name": "stdout", "text": f"{NAMES[0]} {spaced(NHS_A)}\n"},
                         {"output_type": "error", "ename": "KeyError", "evalue": f"'{NHS_B}'", "traceback": []}]},
        ],
    }  # fmt: skip
    (folder / "analysis.ipynb").write_text(json.dumps(notebook))
    with zipfile.ZipFile(folder / "bundle.zip", "w") as z:
        z.writestr("letters/letter.txt", f"Dear {NAMES[1]}, your NHS number is {spaced(NHS_B)}.\n")
    return run([folder])


def test_identifiers_are_found_in_every_kind(planted):
    for report in planted.values():
        assert report.verdict is Verdict.BLOCK, describe(report)


def test_findings_never_echo_an_identifier(planted):
    for report in planted.values():
        assert not echoed(report, IDENTIFIERS), describe(report)


@pytest.fixture(scope="module")
def hostile_names(tmp_path_factory):
    """Identifiers where the engine builds locations: CSV headers, JSON keys, sheet titles, member names."""
    import openpyxl

    folder = tmp_path_factory.mktemp("hostile")
    (folder / "header.csv").write_text(f"{spaced(NHS_A)},{NAMES[0]},1980-03-14\n{spaced(NHS_B)},{NAMES[1]},{DOBS[1]}\n")
    (folder / "count-header.csv").write_text(f"group,{spaced(NHS_C)}\nx,3\ny,60\n")
    (folder / "keys.json").write_text(json.dumps({spaced(NHS_A): {"email": EMAILS[0]}, NAMES[1]: NAMES[1]}))
    book = openpyxl.Workbook()
    book.active.title = f"{NAMES[0]} {NHS_A}"
    book.active.append(["group", "n"])
    book.active.append(["a", 3])
    book.save(folder / "sheet.xlsx")
    with zipfile.ZipFile(folder / "members.zip", "w") as z:
        z.writestr(f"{NAMES[1]} {spaced(NHS_B)}.txt", f"contact {EMAILS[1]}\n")
    notebook = {
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"cell_type": "markdown", "id": "m", "metadata": {}, "source": "![x](attachment:a.png)",
                   "attachments": {f"{NHS_C}.png": {"image/png": "iVBORw0KGgo="}}}],
    }  # fmt: skip
    (folder / "attachment.ipynb").write_text(json.dumps(notebook))
    return run([folder])


@pytest.mark.parametrize(
    "name",
    [
        "header.csv",
        "count-header.csv",
        "keys.json",
        "sheet.xlsx",
        "members.zip",
        "attachment.ipynb",
    ],
)
def test_locations_never_echo_an_identifier(hostile_names, name):
    report = hostile_names[name]
    not_pass(report)
    assert not echoed(report, IDENTIFIERS), describe(report)


def test_sheet_title_with_an_identifier_does_not_pass(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = f"{NAMES[0]} {NHS_A}"
    book.active.append(["site", "mean_ldl"])
    book.active.append(["A", 3.1])
    book.save(tmp_path / "sheet.xlsx")
    report = run([tmp_path / "sheet.xlsx"])[str(tmp_path / "sheet.xlsx")]
    assert report.verdict is Verdict.BLOCK, describe(report)


# ================================================================================================ 7. odd text


@pytest.fixture(scope="module")
def odd_text(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd")
    with (folder / "huge-field.csv").open("w") as fh:
        fh.write('label,value\n"')
        fh.write("x" * (20 * 2**20))
        fh.write('",12\nother,40\n')
    (folder / "long-line.txt").write_text("mean ldl 3.2 " * (5 * 2**20 // 13) + "\n")
    (folder / "empty.csv").write_bytes(b"")
    (folder / "bom-only.csv").write_bytes(codecs.BOM_UTF8)
    (folder / "bom16-only.txt").write_bytes(codecs.BOM_UTF16_LE)
    (folder / "nul.csv").write_bytes(b"\x00" * 4096)
    (folder / "ragged.csv").write_text("group,n\na,30\nb,50,extra\nc,60,x,y\nd,,\n")
    (folder / "quotes.csv").write_text('group,n\n"a,30\nb,50\n')
    return run([folder])


def test_every_odd_text_file_finishes_with_a_verdict(odd_text):
    assert len(odd_text) == 8
    for report in odd_text.values():
        assert report.verdict in (Verdict.PASS, Verdict.REVIEW, Verdict.BLOCK), describe(report)


def test_huge_field_over_the_size_limit_is_review(odd_text):
    report = odd_text["huge-field.csv"]
    assert report.verdict is Verdict.REVIEW, describe(report)
    assert "larger than the policy's 16 MB" in messages(report)


def test_empty_file_is_review(odd_text):
    report = odd_text["empty.csv"]
    assert report.type == "empty" and report.verdict is Verdict.REVIEW, describe(report)


@pytest.mark.parametrize("name", ["bom-only.csv", "bom16-only.txt"])
def test_bom_only_file_does_not_crash(odd_text, name):
    assert odd_text[name].verdict in (Verdict.PASS, Verdict.REVIEW), describe(odd_text[name])


def test_nul_bytes_are_not_passed_as_text(odd_text):
    not_pass(odd_text["nul.csv"])


def test_ragged_csv_with_a_small_count_does_not_pass(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("group,n\na,3\nb,50,extra\nc,60,x,y\n")
    report = run([path])[str(path)]
    assert report.verdict is not Verdict.PASS, describe(report)


# ================================================================================================ contract


def test_same_relative_name_under_two_arguments_is_reported_for_each(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "t.csv").write_text("site,n\nA,3\nB,50\n")
    (tmp_path / "b" / "t.csv").write_text(CLEAN_CSV)
    report = check_paths([tmp_path / "a", tmp_path / "b"], workers=1)
    assert len(report.files) == 2
    assert sorted(f.verdict for f in report.files) == sorted([Verdict.BLOCK, Verdict.PASS])
    assert report.exit_code == 1
