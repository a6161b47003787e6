"""VCF and BAM materialisers: sample subsetting and renaming, header scrubbing, summaries, indexes."""

from __future__ import annotations

import gzip
from pathlib import Path

import pysam
import pytest

from fabric.materialise.genomics import materialise_bam, materialise_vcf, observed_sites
from kernel.digests import sha256_file
from kernel.errors import InvalidInputError

pytestmark = pytest.mark.unit

VCF_TEXT = """##fileformat=VCFv4.2
##fileDate=20240101
##source=site-pipeline /data/rbh/run42
##reference=file:///data/rbh/ref/GRCh38.fa
##contig=<ID=1,length=248956422>
##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count">
##INFO=<ID=AN,Number=1,Type=Integer,Description="Allele number">
##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">
##INFO=<ID=NS,Number=1,Type=Integer,Description="Samples with data">
##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">
##SAMPLE=<ID=LAB001,Description="John Smith NHS 9434765919">
##PEDIGREE=<Child=LAB001,Mother=LAB003>
##bcftools_viewCommand=view -s LAB001,LAB002 /data/rbh/cohort.vcf.gz
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tLAB001\tLAB002\tLAB003
1\t100\trs1\tA\tG\t50\tPASS\tAC=3;AN=6;AF=0.5;NS=3;DP=30\tGT:DP\t0/1:10\t1/1:10\t0/0:10
1\t200\trs2\tC\tT\t50\tPASS\tAC=1;AN=6;AF=0.166667;NS=3;DP=30\tGT:DP\t0/0:10\t0/0:10\t0/1:10
1\t300\trs3\tG\tA,C\t50\tPASS\tAC=1,2;AN=6;AF=0.17,0.33\tGT:DP\t0/2:10\t1/2:10\t./.:10
1\t400\t.\tT\t.\t50\tPASS\tDP=30\tGT\t0/0\t0/0\t0/0
"""
SAMPLES = {"LAB002": "P-BBBBBBBBBBBBBBBB", "LAB001": "P-AAAAAAAAAAAAAAAA"}


def write_vcf(path: Path, text: str = VCF_TEXT, *, compress: bool = True) -> Path:
    plain = path.with_suffix("") if path.suffix == ".gz" else path
    plain.write_text(text)
    if not compress:
        return plain
    pysam.tabix_compress(str(plain), str(path), force=True)
    return path


def read_text(path: Path) -> str:
    with gzip.open(path, "rt") as fh:
        return fh.read()


def test_samples_subset_renamed_in_dict_order(tmp_path: Path) -> None:
    src = write_vcf(tmp_path / "site.vcf.gz")
    dst = tmp_path / "view" / "rbh.vcf.gz"
    n = materialise_vcf(src, dst, SAMPLES)
    with pysam.VariantFile(str(dst)) as vf:
        assert list(vf.header.samples) == list(SAMPLES.values())
        records = list(vf)
        # rs2 is carried only by LAB003, who is not in the view: the site goes too.
        assert [r.id for r in records] == ["rs1", "rs3", None]
        assert n == 3
        first = records[0]
        assert first.samples["P-BBBBBBBBBBBBBBBB"]["GT"] == (1, 1)
        assert first.samples["P-AAAAAAAAAAAAAAAA"]["GT"] == (0, 1)
        assert first.info["AN"] == 4
        assert first.info["AC"] == (3,)
        assert first.info["AF"] == pytest.approx((0.75,))
        assert "NS" not in first.info
        assert first.info["DP"] == 30
        multi = records[1]
        assert multi.info["AC"] == (1, 2)
        assert multi.info["AN"] == 4
        assert [r.id for r in vf.fetch("1", 250, 350)] == ["rs3"]
    assert Path(str(dst) + ".tbi").is_file()


def test_header_keeps_schema_only(tmp_path: Path) -> None:
    src = write_vcf(tmp_path / "site.vcf.gz")
    dst = tmp_path / "view.vcf.gz"
    materialise_vcf(src, dst, SAMPLES)
    header = [line for line in read_text(dst).splitlines() if line.startswith("##")]
    assert header[0] == "##fileformat=VCFv4.2"
    keys = {line[2:].split("=", 1)[0] for line in header}
    assert keys <= {"fileformat", "contig", "INFO", "FORMAT", "FILTER", "ALT"}
    assert not any("NS," in line for line in header)


def test_unobserved_sites_kept_on_request(tmp_path: Path) -> None:
    src = write_vcf(tmp_path / "site.vcf.gz")
    assert materialise_vcf(src, tmp_path / "v.vcf.gz", SAMPLES, keep_unobserved=True) == 4


def test_sites_observed_elsewhere_are_kept_with_hom_ref_calls(tmp_path: Path) -> None:
    src = write_vcf(tmp_path / "site.vcf.gz")
    observed = observed_sites(src, SAMPLES)
    assert observed == {(b"1", b"100", b"A", b"G"), (b"1", b"300", b"G", b"A,C")}  # rs2 is carried by LAB003 only
    assert materialise_vcf(src, tmp_path / "a.vcf.gz", SAMPLES) == 3
    n = materialise_vcf(src, tmp_path / "b.vcf.gz", SAMPLES, keep_sites={(b"1", b"200", b"C", b"T")})
    assert n == 4
    assert "1\t200\trs2\tC\tT\t50\tPASS\tAC=0;AN=4;AF=0;DP=30" in read_text(tmp_path / "b.vcf.gz")


def test_plain_text_and_bcf_inputs(tmp_path: Path) -> None:
    plain = write_vcf(tmp_path / "site.vcf", compress=False)
    assert materialise_vcf(plain, tmp_path / "a.vcf.gz", SAMPLES) == 3
    bcf = tmp_path / "site.bcf"
    with pysam.VariantFile(str(plain)) as inp, pysam.VariantFile(str(bcf), "wb", header=inp.header) as out:
        for rec in inp:
            out.write(rec)
    assert materialise_vcf(bcf, tmp_path / "b.vcf.gz", SAMPLES) == 3
    body_a = [ln for ln in read_text(tmp_path / "a.vcf.gz").splitlines() if not ln.startswith("#")]
    body_b = [ln for ln in read_text(tmp_path / "b.vcf.gz").splitlines() if not ln.startswith("#")]
    assert body_a == body_b


def test_empty_samples_rejected(tmp_path: Path) -> None:
    src = write_vcf(tmp_path / "site.vcf.gz")
    with pytest.raises(ValueError, match="at least one"):
        materialise_vcf(src, tmp_path / "v.vcf.gz", {})
    assert not (tmp_path / "v.vcf.gz").exists()


def test_unknown_sample_named_by_count_only(tmp_path: Path) -> None:
    src = write_vcf(tmp_path / "site.vcf.gz")
    with pytest.raises(InvalidInputError) as err:
        materialise_vcf(src, tmp_path / "v.vcf.gz", {"LAB999": "P-CCCCCCCCCCCCCCCC"})
    assert "LAB999" not in str(err.value)
    assert "1 requested sample" in str(err.value)
    assert {p.name for p in tmp_path.iterdir()} == {"site.vcf", "site.vcf.gz"}


def test_large_file_round_trip(tmp_path: Path) -> None:
    """Many BGZF blocks: the parallel writer keeps block order and the index finds every record."""
    samples = [f"LAB{i:04d}" for i in range(200)]
    lines = [
        VCF_TEXT.split("#CHROM")[0] + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples)
    ]
    for pos in range(1, 3001):
        gts = "\t".join("0/1:7" if (pos + i) % 3 == 0 else "0/0:7" for i in range(200))
        lines.append(f"1\t{pos * 10}\t.\tA\tC\t9\tPASS\tAC=1;AN=2\tGT:DP\t{gts}")
    src = write_vcf(tmp_path / "big.vcf.gz", "\n".join(lines) + "\n")
    keep = {s: f"P-{i:016d}" for i, s in enumerate(reversed(samples[::2]))}
    assert materialise_vcf(src, tmp_path / "out.vcf.gz", keep) == 3000
    with pysam.VariantFile(str(tmp_path / "out.vcf.gz")) as vf:
        assert len(list(vf.fetch("1", 15000, 15100))) == 10
        assert sum(1 for _ in vf.fetch("1")) == 3000


def make_bam(path: Path, *, sample: str = "LAB001") -> Path:
    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": "chr1", "LN": 10000, "UR": "file:///data/rbh/ref.fa"}],
        "RG": [
            {
                "ID": f"{sample}.L1",
                "SM": sample,
                "LB": f"{sample}-lib",
                "PU": "FC1.1",
                "PL": "ILLUMINA",
                "CN": "Royal Brompton Genomics",
                "DS": f"patient {sample} John Smith",
                "DT": "2023-01-01",
            },
            {"ID": f"{sample}.L2", "SM": sample, "LB": f"{sample}-lib", "PU": "FC1.2", "PL": "ILLUMINA"},
        ],
        "PG": [{"ID": "bwa", "PN": "bwa", "VN": "0.7.17", "CL": f"bwa mem /data/rbh/{sample}_R1.fq"}],
        "CO": [f"sample {sample} NHS 9434765919"],
    }
    unsorted = path.with_suffix(".tmp.bam")
    with pysam.AlignmentFile(str(unsorted), "wb", header=header) as out:
        for i in range(50):
            read = pysam.AlignedSegment(out.header)
            read.query_name = f"read{i}"
            read.query_sequence = "ACGT" * 10
            read.flag = 0
            read.reference_id = 0
            read.reference_start = 100 + i * 37
            read.mapping_quality = 60
            read.cigartuples = [(0, 40)]
            read.query_qualities = pysam.qualitystring_to_array("I" * 40)
            read.set_tag("RG", f"{sample}.L{1 + i % 2}")
            out.write(read)
    pysam.sort("-o", str(path), str(unsorted))
    unsorted.unlink()
    return path


def test_bam_read_groups_pseudonymised(tmp_path: Path) -> None:
    src = make_bam(tmp_path / "LAB001.bam")
    dst = tmp_path / "view" / "P-AAAAAAAAAAAAAAAA.bam"
    materialise_bam(src, dst, "P-AAAAAAAAAAAAAAAA")
    assert Path(str(dst) + ".bai").is_file()
    with pysam.AlignmentFile(str(dst)) as bam:
        header = bam.header.to_dict()
        assert {rg["SM"] for rg in header["RG"]} == {"P-AAAAAAAAAAAAAAAA"}
        assert {rg["LB"] for rg in header["RG"]} == {"P-AAAAAAAAAAAAAAAA.lib1"}
        assert len({rg["PU"] for rg in header["RG"]}) == 2
        assert all(k not in rg for rg in header["RG"] for k in ("DS", "CN", "DT"))
        assert "CO" not in header
        assert all("CL" not in pg for pg in header["PG"])
        assert all("UR" not in sq for sq in header["SQ"])
        assert header["HD"]["SO"] == "coordinate"
        reads = list(bam.fetch("chr1"))
        ids = {rg["ID"] for rg in header["RG"]}
        assert len(reads) == 50
        assert {r.get_tag("RG") for r in reads} == ids
    with pysam.AlignmentFile(str(src)) as before, pysam.AlignmentFile(str(dst)) as after:
        for a, b in zip(before, after, strict=True):
            assert (a.query_name, a.reference_start, a.query_sequence) == (
                b.query_name,
                b.reference_start,
                b.query_sequence,
            )


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
