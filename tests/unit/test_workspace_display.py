"""What a workspace sends to the browser (images/enclave_workspace/display.py): text and images up to their caps, data
files never, whatever their name, judged by their bytes. display.py needs only tornado, so it is loaded here on its
own, without the rest of the workspace extension (which needs the workspace environment)."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import pandas as pd
import pytest

from tests.workspace_server import PNG

pytestmark = pytest.mark.unit

_spec = importlib.util.spec_from_file_location(
    "workspace_display", Path(__file__).parents[2] / "images" / "enclave_workspace" / "display.py"
)
display = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(display)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\xff\xd9"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00"
WEBP = b"RIFF" + struct.pack("<I", 26) + b"WEBPVP8L" + struct.pack("<I", 13) + bytes(13)
SVG = b'<?xml version="1.0"?>\n<!-- a figure -->\n<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'
NOTEBOOK = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()


def _parquet() -> bytes:
    out = io.BytesIO()
    pd.DataFrame({"patient": ["P001", "P002"], "age": [61, 74]}).to_parquet(out)
    return out.getvalue()


def _dicom() -> bytes:
    return bytes(128) + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00" + bytes(8)


def _bgzf(text: bytes) -> bytes:
    """BAM and VCF.gz are BGZF: gzip members with an extra field; plain gzip's first bytes are the same."""
    return gzip.compress(text)


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("patients.csv", "patient,age\nP001,61\n")
    return out.getvalue()


def _png_with(data: bytes) -> bytes:
    """A PNG signature and header in front of any bytes: still an image to the sniffer (the cap bounds it)."""
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + data


@pytest.mark.parametrize(
    ("data", "mimetype"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp"), (SVG, "image/svg+xml")],
    ids=["png", "jpeg", "gif", "webp", "svg"],
)
def test_images_are_recognised_by_their_bytes(data, mimetype):
    assert display.image_type(data) == mimetype
    assert display.kind_of(data) == "image"


@pytest.mark.parametrize(
    "data",
    [
        b"site,n\nA,120\n",
        "naïve ✓ résultats\n".encode(),
        NOTEBOOK,
        b"",
        b"<html><body>not an svg</body></html>",
        pickle.dumps({"a": 1}, protocol=0),  # protocol 0 is printable text: a person can read it, so it is text
    ],
    ids=["csv", "utf8", "notebook", "empty", "html", "pickle-protocol-0"],
)
def test_text_is_text(data):
    assert display.kind_of(data) == "text"


@pytest.mark.parametrize(
    "make",
    [
        _parquet,
        _dicom,
        lambda: _bgzf(b"##fileformat=VCFv4.2\n"),
        lambda: _bgzf(b"BAM\x01"),
        _zip,
        lambda: pickle.dumps({"patient": "P001"}),
        lambda: b"text with a \x00 byte",
        lambda: "café".encode("latin-1"),
        lambda: b"\x89PNG\r\n\x1a\n" + bytes(16),  # a signature without its header is not enough
        lambda: b"RIFF\x00\x00\x00\x00WAVEfmt ",
    ],
    ids=["parquet", "dicom", "vcf.gz", "bam", "zip", "pickle", "nul", "latin-1", "png-signature-only", "riff-wave"],
)
def test_data_files_are_binary_whatever_their_name(make):
    data = make()
    assert display.kind_of(data) == "binary"
    with pytest.raises(display.BrowserRefusal) as refused:
        display.screen(data)
    assert refused.value.status_code == 403
    assert "airlock" in refused.value.message


def test_a_cut_utf8_sequence_is_text_only_at_the_end_of_a_prefix():
    cut = "é".encode() * 10
    assert display.kind_of(cut[:-1], complete=False) == "text"
    assert display.kind_of(cut[:-1]) == "binary"


def test_caps_default_and_follow_the_environment(monkeypatch):
    monkeypatch.delenv("ENCLAVE_BROWSER_MAX_TEXT_BYTES", raising=False)
    monkeypatch.delenv("ENCLAVE_BROWSER_MAX_IMAGE_BYTES", raising=False)
    assert display.response_cap("text") == 10 * 1024 * 1024
    assert display.response_cap("image") == 5 * 1024 * 1024
    assert display.response_cap("binary") == 0
    monkeypatch.setenv("ENCLAVE_BROWSER_MAX_TEXT_BYTES", "100")
    monkeypatch.setenv("ENCLAVE_BROWSER_MAX_IMAGE_BYTES", "200")
    assert display.response_cap("text") == 100
    assert display.screen(b"x" * 100) == "text"
    with pytest.raises(display.BrowserRefusal) as refused:
        display.screen(b"x" * 101)
    assert refused.value.status_code == 413
    assert "ENCLAVE_BROWSER_MAX_TEXT_BYTES" in refused.value.message and "airlock" in refused.value.message
    assert display.screen(_png_with(bytes(150))) == "image"
    with pytest.raises(display.BrowserRefusal):
        display.screen(_png_with(bytes(200)))
    # the whole response's size counts when only its start was sniffed
    with pytest.raises(display.BrowserRefusal):
        display.screen(b"x" * 10, size=101, complete=False)


@pytest.mark.parametrize("value", ["", "lots", "-1", "0", "1.5"])
def test_a_broken_cap_is_an_error_not_no_cap(monkeypatch, value):
    monkeypatch.setenv("ENCLAVE_BROWSER_MAX_IMAGE_BYTES", value)
    if value == "":
        assert display.response_cap("image") == display.DEFAULT_CAPS["image"]
    else:
        with pytest.raises(ValueError, match="ENCLAVE_BROWSER_MAX_IMAGE_BYTES"):
            display.response_cap("image")
