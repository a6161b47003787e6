"""Encoded payloads: a table or text hidden in base64, hex or base32 text, in numbers, in image chunks and segments,
in PDF attachments or after a container's end is decoded and checked as a file of its own; the ordinary
look-alikes (checksums, hashes, identifiers of code and data, matplotlib figures, PDFs with incremental updates,
a page's own fonts and scripts, p-values) add nothing."""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import json
import os
import struct
import zipfile
import zlib

import numpy as np
import pandas as pd
import pytest

from output_checks.verdicts import Verdict
from tests.airlock_helpers import check_one, messages, write

pytestmark = pytest.mark.unit

NHS = "943 476 5919"
SMALL_COUNTS = "region,outcome,n\nNorth,died,3\nNorth,survived,41\nSouth,died,2\nSouth,survived,57\n"
PATIENTS = (
    "\n".join(
        ["patient,nhs_number,age,sex,sbp"]
        + [
            f"P-{1000 + i},{9434765919 if i == 0 else 9000000000 + i * 7},{40 + i % 30},{'MF'[i % 2]},{110 + i}"
            for i in range(40)
        ]
    )
    + "\n"
)


def payload_findings(report):
    return [f for f in report.findings if f.check == "payloads"]


def png_bytes(text_chunks: list[tuple[bytes, bytes]] = (), extra: list[tuple[bytes, bytes]] = ()) -> bytes:
    """A 4x4 PNG written by Pillow, with tEXt chunks (and raw chunks) inserted before IEND."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(out, format="PNG")
    data = out.getvalue()
    iend = data.rindex(b"IEND") - 4
    chunks = b""
    for key, value in text_chunks:
        chunks += _chunk(b"tEXt", key + b"\x00" + value)
    for ctype, body in extra:
        chunks += _chunk(ctype, body)
    return data[:iend] + chunks + data[iend:]


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def zip_of(name: str, content: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(name, content)
    return out.getvalue()


def matplotlib_figure(fmt: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([1, 2, 3], [2, 1, 3])
    out = io.BytesIO()
    fig.savefig(out, format=fmt)
    plt.close(fig)
    return out.getvalue()


def wrapped(text: str, width: int = 76) -> str:
    return "\n".join(text[i : i + width] for i in range(0, len(text), width))


# --- what is caught ----------------------------------------------------------------------------------------------


def test_base64_of_a_small_count_table_in_markdown_blocks(tmp_path):
    encoded = base64.b64encode(SMALL_COUNTS.encode()).decode()
    path = write(tmp_path, "notes.md", f"# Results\n\nThe table is attached below.\n\n{wrapped(encoded)}\n")
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK, messages(report)
    assert any("decodes to a CSV table" in f.message for f in payload_findings(report)), messages(report)
    assert any(f.location.startswith("line 5 (base64)") for f in report.findings), messages(report)


def test_base64_of_a_parquet_of_patient_rows_blocks(tmp_path):
    frame = pd.read_csv(io.StringIO(PATIENTS))
    out = io.BytesIO()
    frame.to_parquet(out)
    path = write(tmp_path, "appendix.txt", "Appendix data: " + base64.b64encode(out.getvalue()).decode() + "\n")
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK, messages(report)
    assert any("Parquet table" in f.message for f in payload_findings(report))


@pytest.mark.parametrize(
    "encode",
    [
        lambda b: binascii.hexlify(b).decode(),
        lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="),
        lambda b: base64.b32encode(b).decode(),
        lambda b: base64.b64encode(zlib.compress(b)).decode(),
        lambda b: base64.b64encode(gzip.compress(b)).decode(),
        lambda b: base64.b64encode(zlib.compress(b)[2:-4]).decode(),  # raw deflate
        lambda b: " ".join(f"{x:02x}" for x in b),
    ],
    ids=["hex", "urlsafe", "base32", "zlib", "gzip", "deflate", "hex-dump"],
)
def test_every_standard_encoding_of_a_small_count_table_blocks(tmp_path, encode):
    path = write(tmp_path, "log.txt", "model converged\npayload=" + encode(SMALL_COUNTS.encode()) + "\nend\n")
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK, messages(report)


def test_base64_in_a_csv_cell_blocks(tmp_path):
    encoded = base64.b64encode(SMALL_COUNTS.encode()).decode()
    path = write(tmp_path, "summary.csv", f"measure,value\nmean_age,54.2\nnotes,{encoded}\n")
    assert check_one(path).verdict is Verdict.BLOCK


def test_a_payload_split_over_the_cells_of_a_column_blocks(tmp_path):
    encoded = base64.b64encode(PATIENTS.encode()).decode()
    pieces = [encoded[i : i + 40] for i in range(0, len(encoded), 40)]
    rows = "\n".join(f"{i},{p}" for i, p in enumerate(pieces))
    path = write(tmp_path, "keys.csv", "row,token\n" + rows + "\n")
    assert check_one(path).verdict is Verdict.BLOCK


def test_fhir_document_reference_attachment_is_decoded_and_screened(tmp_path):
    note = f"Discharge summary for Mrs Margaret Thompson, NHS number {NHS}. Admitted with chest pain."
    resource = {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [{"attachment": {"contentType": "text/plain", "data": base64.b64encode(note.encode()).decode()}}],
    }
    path = write(tmp_path, "document.json", json.dumps(resource))
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK, messages(report)
    assert NHS not in messages(report) and "9434765919" not in messages(report)


def test_notebook_output_with_base64_of_a_table_blocks(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    encoded = base64.b64encode(zlib.compress(SMALL_COUNTS.encode())).decode()
    cell = new_code_cell("print(blob)", outputs=[new_output("stream", name="stdout", text=encoded + "\n")])
    path = tmp_path / "analysis.ipynb"
    nbformat.write(new_notebook(cells=[cell]), path)
    assert check_one(path).verdict is Verdict.BLOCK


def test_random_bytes_in_base64_are_an_unreadable_payload(tmp_path):
    encoded = base64.b64encode(os.urandom(600)).decode()
    path = write(tmp_path, "notes.md", f"# Notes\n\n{wrapped(encoded)}\n")
    report = check_one(path)
    assert report.verdict is Verdict.REVIEW, messages(report)
    assert any("cannot read" in f.message for f in payload_findings(report))


def test_png_text_chunk_with_an_nhs_number_blocks(tmp_path):
    path = write(tmp_path, "figure.png", png_bytes([(b"Comment", f"cohort member {NHS}".encode())]))
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK, messages(report)
    assert NHS not in messages(report)


def test_png_text_chunk_holding_a_table_is_checked_as_one(tmp_path):
    path = write(tmp_path, "figure.png", png_bytes([(b"data", SMALL_COUNTS.encode())]))
    assert check_one(path).verdict is Verdict.BLOCK


def test_png_compressed_text_chunk_and_private_chunk(tmp_path):
    ztxt = b"Comment\x00\x00" + zlib.compress(f"patient NHS {NHS}".encode())
    blob = zlib.compress(SMALL_COUNTS.encode())
    path = write(tmp_path, "figure.png", png_bytes(extra=[(b"zTXt", ztxt), (b"prVt", blob)]))
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK, messages(report)
    assert any("unknown PNG chunk" in f.message for f in payload_findings(report))


@pytest.mark.parametrize("host", ["png", "jpeg", "gif"])
def test_zip_after_an_image_end_blocks(tmp_path, host):
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 120, 200)).save(out, format=host.upper())
    path = write(tmp_path, f"figure.{host}", out.getvalue() + zip_of("counts.csv", SMALL_COUNTS))
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK, messages(report)
    assert any("bytes after the" in f.message for f in payload_findings(report)), messages(report)


def test_zip_after_the_last_eof_of_a_pdf_blocks(tmp_path):
    path = write(tmp_path, "report.pdf", matplotlib_figure("pdf") + zip_of("counts.csv", SMALL_COUNTS))
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK, messages(report)
    assert any("last %%EOF" in f.message for f in payload_findings(report))


def test_jpeg_comment_with_an_nhs_number_blocks(tmp_path):
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="JPEG", comment=f"subject {NHS}".encode())
    report = check_one(write(tmp_path, "scan.jpg", out.getvalue()))
    assert report.verdict is Verdict.BLOCK, messages(report)


def test_bytes_after_a_zip_end_record_are_found(tmp_path):
    path = write(tmp_path, "bundle.zip", zip_of("readme.txt", "hello\n") + gzip.compress(SMALL_COUNTS.encode()))
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK, messages(report)


def test_float_coefficients_carrying_a_compressed_table_block(tmp_path):
    payload = zlib.compress(PATIENTS.encode())
    payload += b"\x00" * (-len(payload) % 8)
    values = np.frombuffer(payload, dtype="<f8")
    table = pd.DataFrame({"term": [f"x{i}" for i in range(len(values))], "estimate": values})
    path = tmp_path / "coefficients.csv"
    table.to_csv(path, index=False, float_format="%.17g")  # written to round-trip, as a payload must be
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK, messages(report)


def test_byte_value_column_forming_a_gzip_file_blocks(tmp_path):
    payload = gzip.compress(SMALL_COUNTS.encode())
    table = pd.DataFrame({"position": range(len(payload)), "value": list(payload)})
    path = tmp_path / "weights.csv"
    table.to_csv(path, index=False)
    assert check_one(path).verdict is Verdict.BLOCK


def test_decimals_carrying_three_digit_byte_groups_block(tmp_path):
    payload = PATIENTS.encode()
    digits = "".join(f"{b:03d}" for b in payload)
    cells = [f"0.{digits[i : i + 15]}" for i in range(0, len(digits) - 15, 15)]
    path = write(
        tmp_path, "loadings.csv", "component,loading\n" + "\n".join(f"{i},{c}" for i, c in enumerate(cells)) + "\n"
    )
    assert check_one(path).verdict is Verdict.BLOCK


def test_numbers_longer_than_any_statistic_go_to_review(tmp_path):
    rows = "\n".join(f"x{i},0.{str(7 ** (40 + i))[:30]}" for i in range(10))
    report = check_one(write(tmp_path, "estimates.csv", "term,estimate\n" + rows + "\n"))
    assert report.verdict is not Verdict.PASS, messages(report)
    assert any("significant digits" in f.message for f in payload_findings(report))


def test_xlsx_string_cell_with_base64_of_a_table_blocks(tmp_path):
    encoded = base64.b64encode(SMALL_COUNTS.encode()).decode()
    path = tmp_path / "summary.xlsx"
    pd.DataFrame({"measure": ["mean age", "note"], "value": ["54.2", encoded]}).to_excel(path, index=False)
    assert check_one(path).verdict is Verdict.BLOCK


def test_pdf_attachment_is_checked(tmp_path):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(matplotlib_figure("pdf"))))
    writer.add_attachment("counts.csv", SMALL_COUNTS.encode())
    out = io.BytesIO()
    writer.write(out)
    report = check_one(write(tmp_path, "report.pdf", out.getvalue()))
    assert report.verdict is Verdict.BLOCK, messages(report)


# --- what is not caught ------------------------------------------------------------------------------------------


def test_matplotlib_png_with_its_software_chunk_has_no_payload(tmp_path):
    report = check_one(write(tmp_path, "figure.png", matplotlib_figure("png")))
    assert not payload_findings(report), messages(report)
    assert report.verdict is Verdict.REVIEW  # a figure: a human looks at it


def test_matplotlib_svg_and_pdf_have_no_payload(tmp_path):
    for fmt in ("svg", "pdf"):
        report = check_one(write(tmp_path, f"figure.{fmt}", matplotlib_figure(fmt)))
        assert not payload_findings(report), messages(report)
        assert report.verdict is Verdict.REVIEW


def test_pdf_with_incremental_updates_and_trailing_newlines_has_no_payload(tmp_path):
    original = matplotlib_figure("pdf")
    update = (
        b"\n99 0 obj\n<< /Producer (update) >>\nendobj\nxref\n0 1\n0000000000 65535 f \n"
        b"trailer\n<< /Size 100 >>\nstartxref\n0\n%%EOF\r\n\n"
    )
    report = check_one(write(tmp_path, "report.pdf", original + update))
    assert not payload_findings(report), messages(report)


def test_methods_text_with_checksums_hashes_and_identifiers_passes(tmp_path):
    text = (
        "# Methods\n\nAnalyses ran in the container image "
        "ghcr.io/opensafely-core/python@sha256:3f1c9c7d2b8e4a6f0e5d7c9b1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1 "
        "at commit 9fceb02d0ae598e95dc970b74767f19372d61af8 (git).\n"
        "Outputs (SHA-256):\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  tables/table1.csv\n"
        "5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9  tables/table2.csv\n"
        "Run id 550e8400-e29b-41d4-a716-446655440000; doi:10.1038/s41586-020-2649-2; ORCID 0000-0002-1825-0097.\n"
        "SHA-512 of the bundle: "
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e\n"
    )
    report = check_one(write(tmp_path, "methods.md", text))
    assert report.verdict is Verdict.PASS, messages(report)


def test_checksum_manifest_table_passes(tmp_path):
    rows = "\n".join(f"table{i}.csv,{os.urandom(32).hex()}" for i in range(30))
    report = check_one(write(tmp_path, "manifest.csv", "file,sha256\n" + rows + "\n"))
    assert not payload_findings(report), messages(report)


def test_gwas_table_with_tiny_p_values_has_no_payload(tmp_path):
    rng = np.random.default_rng(7)
    table = pd.DataFrame(
        {
            "rsid": [f"rs{1000 + i}" for i in range(200)],
            "beta": rng.normal(0, 0.05, 200),
            "se": rng.uniform(0.005, 0.02, 200),
            "p": 10.0 ** -rng.uniform(1, 300, 200),
            "n": 412_937,
        }
    )
    path = tmp_path / "gwas.csv"
    table.to_csv(path, index=False)
    report = check_one(path)
    assert not payload_findings(report), messages(report)


def test_snomed_codelist_and_high_precision_floats_have_no_payload(tmp_path):
    rows = "\n".join(
        f"{c},{0.1 * i + 1 / 3!r}" for i, c in enumerate([22298006, 1082601000000103, 999000011000001104] * 10)
    )
    report = check_one(write(tmp_path, "codes.csv", "code,weight\n" + rows + "\n"))
    assert not payload_findings(report), messages(report)


def test_self_contained_html_report_fonts_and_scripts_are_not_payloads(tmp_path):
    font = b"wOFF" + os.urandom(400)
    script = b"window.render = function (x) { return x * 2; };\n" * 20
    html = (
        "<!doctype html><html><head>"
        f"<style>@font-face {{ src: url(data:font/woff;base64,{base64.b64encode(font).decode()}) }}</style>"
        f'<script src="data:text/javascript;base64,{base64.b64encode(script).decode()}"></script>'
        "</head><body><h1>Results</h1><p>Mean age was 54.2 years.</p></body></html>"
    )
    report = check_one(write(tmp_path, "report.html", html))
    assert report.verdict is Verdict.PASS, messages(report)


def test_html_report_with_an_inline_logo_is_review_not_block(tmp_path):
    logo = base64.b64encode(png_bytes()).decode()
    html = f'<html><body><img src="data:image/png;base64,{logo}"><p>Mean age 54.2</p></body></html>'
    report = check_one(write(tmp_path, "report.html", html))
    assert report.verdict is Verdict.REVIEW, messages(report)
    assert not payload_findings(report), messages(report)


def test_notebook_figure_output_is_not_a_payload(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    image = base64.b64encode(matplotlib_figure("png")).decode()
    cell = new_code_cell("plot()", outputs=[new_output("display_data", {"image/png": image, "text/plain": "<Figure>"})])
    path = tmp_path / "figures.ipynb"
    nbformat.write(new_notebook(cells=[cell]), path)
    report = check_one(path)
    assert not payload_findings(report), messages(report)


def test_a_data_uri_declared_as_a_script_that_holds_a_table_is_checked(tmp_path):
    encoded = base64.b64encode(SMALL_COUNTS.encode()).decode()
    html = f'<html><head><script src="data:text/javascript;base64,{encoded}"></script></head><body>Hi</body></html>'
    assert check_one(write(tmp_path, "report.html", html)).verdict is Verdict.BLOCK


def test_svg_comment_with_an_nhs_number_blocks(tmp_path):
    svg = matplotlib_figure("svg").decode().replace("<metadata>", f"<!-- patient {NHS} --><metadata>", 1)
    report = check_one(write(tmp_path, "figure.svg", svg))
    assert report.verdict is Verdict.BLOCK, messages(report)


def test_parquet_metadata_holding_a_table_blocks(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"group": ["a", "b"], "mean": [1.5, 2.5]})
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"notes": PATIENTS.encode()})
    path = tmp_path / "summary.parquet"
    pq.write_table(table, path)
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK, messages(report)


def test_payload_nested_past_the_depth_limit_is_not_passed(tmp_path):
    data = SMALL_COUNTS.encode()
    for _ in range(6):
        data = base64.b64encode(data)
    report = check_one(write(tmp_path, "blob.txt", data.decode() + "\n"))
    assert report.verdict is not Verdict.PASS, messages(report)


def test_bytes_after_a_gzip_member_are_found(tmp_path):
    path = write(tmp_path, "counts.csv.gz", gzip.compress(b"a,b\n") + zip_of("counts.csv", SMALL_COUNTS))
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK, messages(report)


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "PNG"])
def test_clean_images_from_pillow_have_no_payload(tmp_path, fmt):
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 40, 200)).save(out, format=fmt)
    report = check_one(write(tmp_path, f"figure.{fmt.lower()}", out.getvalue()))
    assert not payload_findings(report), messages(report)


def test_xlsx_embedded_file_and_pivot_cache_are_found(tmp_path):
    path = tmp_path / "summary.xlsx"
    pd.DataFrame({"group": ["a", "b"], "mean": ["1.5", "2.5"]}).to_excel(path, index=False)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("xl/embeddings/oleObject1.bin", SMALL_COUNTS)
        archive.writestr("xl/pivotCache/pivotCacheRecords1.xml", "<pivotCacheRecords count='0'/>")
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK, messages(report)
    assert any("pivot cache" in f.message for f in payload_findings(report)), messages(report)


def test_plain_xlsx_has_no_payload(tmp_path):
    path = tmp_path / "summary.xlsx"
    pd.DataFrame({"group": ["a", "b"], "mean": [1.5, 2.5], "n": [120, 140]}).to_excel(path, index=False)
    assert not payload_findings(check_one(path))


def test_bytes_after_a_parquet_footer_are_found(tmp_path):
    out = io.BytesIO()
    pd.DataFrame({"group": ["a", "b"], "mean": [1.5, 2.5]}).to_parquet(out)
    path = write(tmp_path, "summary.parquet", out.getvalue() + gzip.compress(SMALL_COUNTS.encode()))
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK, messages(report)
    assert any("Parquet footer" in f.message for f in payload_findings(report))


def test_pdf_file_attachment_annotation_is_checked(tmp_path):
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import (
        ArrayObject,
        DecodedStreamObject,
        DictionaryObject,
        FloatObject,
        NameObject,
        TextStringObject,
    )

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(matplotlib_figure("pdf"))))
    embedded = DecodedStreamObject()
    embedded.set_data(SMALL_COUNTS.encode())
    embedded[NameObject("/Type")] = NameObject("/EmbeddedFile")
    spec = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Filespec"),
            NameObject("/F"): TextStringObject("counts.csv"),
            NameObject("/EF"): DictionaryObject({NameObject("/F"): writer._add_object(embedded)}),
        }
    )
    annotation = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/FileAttachment"),
            NameObject("/Rect"): ArrayObject([FloatObject(10), FloatObject(10), FloatObject(30), FloatObject(30)]),
            NameObject("/FS"): writer._add_object(spec),
        }
    )
    writer.add_annotation(0, annotation)
    out = io.BytesIO()
    writer.write(out)
    report = check_one(write(tmp_path, "report.pdf", out.getvalue()))
    assert report.verdict is Verdict.BLOCK, messages(report)


def test_html_comment_with_an_nhs_number_blocks(tmp_path):
    html = f"<html><body><!-- reviewer note: patient {NHS} --><p>Mean age 54.2</p></body></html>"
    assert check_one(write(tmp_path, "report.html", html)).verdict is Verdict.BLOCK


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "PDF", "XLSX", "PARQUET", "GZIP"])
def test_damaged_containers_are_walked_without_error(tmp_path, fmt):
    import random

    from PIL import Image

    from output_checks.checks.base import Subject
    from output_checks.checks.payloads import PayloadCheck
    from output_checks.engine import make_context
    from output_checks.policy import load_policy

    if fmt in ("PNG", "JPEG", "GIF"):
        out = io.BytesIO()
        Image.new("RGB", (16, 16), (1, 2, 3)).save(out, format=fmt)
        data = out.getvalue()
    elif fmt == "PDF":
        data = matplotlib_figure("pdf")
    elif fmt == "XLSX":
        data = zip_of("xl/workbook.xml", "<workbook/>")
    elif fmt == "PARQUET":
        out = io.BytesIO()
        pd.DataFrame({"a": [1, 2]}).to_parquet(out)
        data = out.getvalue()
    else:
        data = gzip.compress(b"a,b\n1,2\n")
    ctx = make_context(load_policy(), None, tmp_path)
    rng = random.Random(11)
    for attempt in range(40):
        damaged = bytearray(data[: rng.randint(16, len(data))] if attempt % 2 else data)
        for _ in range(rng.randint(1, 6)):
            damaged[rng.randrange(8, len(damaged))] = rng.randrange(256)
        path = write(tmp_path, f"damaged-{attempt}", bytes(damaged))
        subject = Subject(path.name, path, fmt.lower(), len(damaged))
        findings = list(PayloadCheck().run(subject, ctx))  # raises on a reader bug
        assert all(f.verdict is not Verdict.BLOCK for f in findings if f.check == "payloads")
