"""A file's type comes from its content, not its name."""

from __future__ import annotations

import gzip
import io
import json
import pickle
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
