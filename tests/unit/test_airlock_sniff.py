"""A file's type comes from its content, not its name."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import tarfile
import zipfile

import numpy as np
import pytest

from output_checks.sniff import refine, sniff

pytestmark = pytest.mark.unit


def _dicom_bytes() -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "Test^Patient", "X1", "MR"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def _tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as t:
        info = tarfile.TarInfo("a.csv")
        info.size = 4
        t.addfile(info, io.BytesIO(b"a,b\n"))
    return buffer.getvalue()


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3))
    return buffer.getvalue()


VCF = (
    b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
    b"1\t10\t.\tA\tG\t.\t.\t.\tGT\t0/1\n"
)
SITES = b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n1\t10\trs1\tA\tG\t.\t.\tAF=0.2\n"

CASES = [
    ("scan.png", _dicom_bytes, "dicom"),
    ("table.csv", lambda: VCF, "vcf"),
    ("sites.txt", lambda: SITES, "vcf-sites"),
    ("calls.vcf.gz", lambda: gzip.compress(VCF), "vcf"),
    ("reads.txt", lambda: b"@r1\nACGT\n+\nIIII\n@r2\nACGA\n+\nIIII\n", "fastq"),
    ("aligned.bin", lambda: b"CRAM\x03\x01" + b"\x00" * 20 + bytes(range(200)), "cram"),
    ("reads.csv", lambda: b"@HD\tVN:1.6\nr1\t0\tchr1\t100\t60\t4M\t*\t0\t0\tACGT\tIIII\n", "sam"),
    ("data.csv", lambda: b"site;n\nA;12\nB;30\n", "csv"),
    ("data.txt", lambda: b"site\tn\nA\t12\nB\t30\n", "tsv"),
    ("data.csv", lambda: "site,n\nA,12\nB,30\n".encode("utf-16"), "csv"),
    (
        "nb.json",
        lambda: json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}).encode(),
        "ipynb",
    ),
    ("records.txt", lambda: json.dumps([{"a": 1}]).encode(), "json"),
    ("page.txt", lambda: b"<!DOCTYPE html><html><body><p>Hi</p></body></html>", "html"),
    ("fig.png", lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><text>x</text></svg>', "svg"),
    ("model.csv", lambda: pickle.dumps({"a": 1}), "pickle"),
    ("arr.csv", _npy, "npy"),
    ("out.csv", lambda: _zip({"a.csv": b"a,b\n1,2\n"}), "zip"),
    ("out.csv", _tar, "tar"),
    ("out.csv", lambda: gzip.compress(b"a,b\n1,2\n"), "gzip"),
    ("doc.pdf", lambda: b"hello world, plain text\n", "text"),
    ("notes", lambda: b"# Title\n\n- one\n- two\n", "markdown"),
    ("empty.csv", lambda: b"", "empty"),
    ("blob.txt", lambda: bytes(range(256)) * 4, "binary"),
]


@pytest.mark.parametrize(("name", "make", "kind"), CASES, ids=[f"{c[2]}-{c[0]}" for c in CASES])
def test_type_comes_from_content(tmp_path, name, make, kind):
    path = tmp_path / name
    path.write_bytes(make())
    assert refine(path, sniff(path)) == kind


def test_xlsx_is_not_just_a_zip(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.save(tmp_path / "t.zip")
    assert sniff(tmp_path / "t.zip") == "xlsx"


# Interchange formats and genotype files get kinds of their own; their look-alikes keep theirs.
PED_ROWS = b"FAM1 IND1 0 0 1 2 A G G G\nFAM1 IND2 0 0 2 1 A A G T\nFAM2 IND3 IND1 IND2 1 -9 G G T T\n"
INTERCHANGE = [
    ("cohort.txt", lambda: PED_ROWS, "plink-ped"),
    ("cohort.tsv", lambda: PED_ROWS.replace(b" ", b"\t"), "plink-ped"),
    ("samples.csv", lambda: b"F1 S1 0 0 1 -9\nF2 S2 0 0 2 -9\nF3 S3 S1 S2 0 1\n", "plink-fam"),
    ("v.txt", lambda: b"1 rs123 0 10583\n1 rs456 0.1 10611\nX rs789 0 2700157\n", "plink-map"),
    ("v.csv", lambda: b"1\trs123\t0\t10583\tA\tG\n1\t1:10611:C:G\t0\t10611\tC\tG\n", "plink-bim"),
    ("d.txt", lambda: b"FID IID PAT MAT SEX PHENOTYPE rs1_A\nF1 S1 0 0 1 -9 2\n", "plink-raw"),
    ("t.txt", lambda: b"1 rs1 0 1000 A A G A\n1 rs2 0 2000 C C C T\n", "plink-tped"),
    ("g.txt", lambda: b"1 rs1 1000 A G 1 0 0 0.9 0.1 0\n1 rs2 2000 C T 0 1 0 0 0 1\n", "oxford-gen"),
    ("s.txt", lambda: b"ID_1 ID_2 missing sex\n0 0 0 D\nS1 S1 0 1\n", "oxford-sample"),
    ("e.txt", lambda: b"01209120\n21100201\n00112299\n", "eigenstrat-geno"),
    ("i.txt", lambda: b"S1 M Case\nS2 F Control\n", "eigenstrat-ind"),
    ("g.bin", lambda: b"l\x1b\x01" + bytes(range(64)), "plink-bed"),
    ("g.pgen", lambda: b"l\x1b\x10" + bytes(range(64)), "plink-bed"),
    ("pcs.txt", lambda: b"FID IID PC1 PC2\nF1 I1 0.01 -0.02\nF2 I2 0.03 0.01\n", "plink-samples"),
    ("s.psam", lambda: b"#IID\tSEX\nI1\t1\nI2\t2\n", "plink-samples"),
    ("g.bin", lambda: struct.pack("<IIII", 20, 20, 5, 9) + b"bgen" + b"\x00" * 20, "bgen"),
    ("msg.txt", lambda: b"MSH|^~\\&|LAB|H|||20240101||ORU^R01|1|P|2.5\rPID|1||X1\r", "hl7v2"),
    ("msg.dat", lambda: b"\x0bMSH|^~\\&|PAS|H|||20240101||ADT^A01|1|P|2.5\rPID|1||X1\r\x1c\r", "hl7v2"),
    ("r.txt", lambda: b'{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n', "ndjson"),
    ("r.json", lambda: b'{"a": 1}\n{"a": 2}\n{"a": 3, "b": "cut', "ndjson"),
    ("p.ndjson", lambda: b'{"resourceType":"Patient","id":"1"}\n{"resourceType":"Patient","id":"2"}\n', "fhir"),
    ("b.txt", lambda: b'{"resourceType":"Bundle","type":"collection","entry":[]}', "fhir"),
    (
        "b.json",
        lambda: b'{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Pa',
        "fhir",
    ),
    ("p.xml", lambda: b'<?xml version="1.0"?>\n<Patient xmlns="http://hl7.org/fhir"><id value="x"/></Patient>', "fhir"),
    ("a.csv", lambda: b"<stata_dta><header><release>118</release>", "stata"),
    ("a.dta", lambda: bytes([114, 2, 1, 0, 3, 0, 50, 0, 0, 0]) + b"\x00" * 40, "stata"),
    ("a.sav", lambda: b"$FL2@(#) SPSS DATA FILE" + b"\x00" * 80, "spss-sav"),
    ("a.xpt", lambda: b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!" + b"0" * 32, "sas-xpt"),
    ("a.rds", lambda: gzip.compress(b"X\n\x00\x00\x00\x03\x00\x04\x02\x00"), "rds"),
    ("a.RData", lambda: gzip.compress(b"RDX3\nX\n\x00\x00\x00\x03"), "rdata"),
    # Look-alikes: CDISC/OMOP extracts stay tables (the table rules judge them), aligned text stays text.
    ("dm.csv", lambda: b"STUDYID,DOMAIN,USUBJID,SUBJID,AGE,SEX\nS1,DM,S1-001,001,54,F\nS1,DM,S1-002,002,61,M\n", "csv"),
    ("person.csv", lambda: b"person_id,gender_concept_id,year_of_birth\n1,8507,1961\n2,8532,1975\n", "csv"),
    ("t.txt", lambda: b"1\t23\t0.5\t1200\n2\t24\t0.6\t1300\n", "tsv"),
    ("t.txt", lambda: b"site n mean\nA 12 3.4\nB 30 4.1\n", "ssv"),
    ("rt.txt", lambda: b'"age" "sex"\n"1" 54 "F"\n"2" 61 "M"\n"3" 47 "F"\n', "ssv"),
    ("prose.txt", lambda: b"The cat sat\nThe dog ran\nA big one\n", "text"),
    ("printed.txt", lambda: b"     F  M\n  0 12 30\n  1 11 40\n", "text"),
    ("years.txt", lambda: b"2019\n2020\n2021\n2022\n", "text"),
    ("t.txt", lambda: b"chr snp cm pos a1 a2\n1 rs1 0 100 A G\n", "text"),
    (
        "calls.txt",
        lambda: b"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\n",
        "vcf",
    ),
    (
        "ldl.glm.linear",
        lambda: (
            b"#CHROM\tPOS\tID\tREF\tALT\tA1\tTEST\tOBS_CT\tBETA\tSE\tT_STAT\tP\n"
            b"1\t10583\trs58108140\tG\tA\tA\tADD\t18204\t0.012\t0.004\t3.1\t0.002\n"
            b"1\t10611\trs189107123\tC\tG\tG\tADD\t18198\t-0.003\t0.006\t-0.5\t0.61\n"
        ),
        "tsv",
    ),
    ("config.json", lambda: json.dumps({"resources": {"resourceType": "x"}, "seed": 1}, indent=2).encode(), "json"),
]


@pytest.mark.parametrize(("name", "make", "kind"), INTERCHANGE, ids=[f"{c[2]}-{c[0]}" for c in INTERCHANGE])
def test_interchange_type_comes_from_content(tmp_path, name, make, kind):
    path = tmp_path / name
    path.write_bytes(make())
    assert refine(path, sniff(path)) == kind
