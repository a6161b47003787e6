"""Notebooks, HTML, figures and PDFs: every piece of text they hold is screened (cell sources, outputs, tracebacks,
widget state, HTML tables, PDF text layers, SVG text, OCR of images); figures themselves go to review."""

from __future__ import annotations

import base64
import io
import shutil

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from output_checks.preview import render_notebook
from output_checks.verdicts import Verdict
from tests.airlock_helpers import check_one, messages, write

pytestmark = pytest.mark.unit

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def notebook(tmp_path, *cells, widgets=None):
    nb = new_notebook(cells=list(cells))
    if widgets:
        nb.metadata["widgets"] = widgets
    path = tmp_path / "analysis.ipynb"
    nbformat.write(nb, path)
    return path


def test_clean_notebook_passes(tmp_path):
    path = notebook(
        tmp_path,
        new_markdown_cell("# LDL by site\nCounts are suppressed below 10."),
        new_code_cell(
            "df.groupby('site').ldl.agg(['count', 'mean'])",
            outputs=[
                new_output(
                    "execute_result",
                    {"text/plain": "      count  mean\nsite             \nA       120   3.1\nB       131   3.3"},
                    execution_count=1,
                )
            ],
        ),
        new_code_cell("print('done')", outputs=[new_output("stream", name="stdout", text="done\n")]),
    )
    report = check_one(path)
    assert report.type == "ipynb" and report.verdict is Verdict.PASS, messages(report)


@pytest.mark.parametrize(
    "cell",
    [
        new_markdown_cell("Case: Mrs Margaret Thompson, born 14/03/1956"),
        new_code_cell("x = 1", outputs=[new_output("stream", name="stdout", text="NHS 943 476 5919\n")]),
        new_code_cell(
            "lookup()",
            outputs=[
                new_output(
                    "error", ename="KeyError", evalue="'943 476 5919'", traceback=["\x1b[0;31mKeyError: 943 476 5919"]
                )
            ],
        ),
        new_code_cell(
            "df.head()",
            outputs=[
                new_output(
                    "display_data",
                    {"text/html": "<table><tr><th>name</th></tr><tr><td>Margaret Thompson</td></tr></table>"},
                )
            ],
        ),
    ],
    ids=["markdown", "stream", "traceback", "html-output"],
)
def test_identifiers_anywhere_in_a_notebook_block(tmp_path, cell):
    assert check_one(notebook(tmp_path, cell)).verdict is Verdict.BLOCK


def test_small_counts_in_an_html_output_table_block(tmp_path):
    html = "<table><tr><th>site</th><th>n</th></tr><tr><td>A</td><td>120</td></tr><tr><td>B</td><td>3</td></tr></table>"
    cell = new_code_cell("t", outputs=[new_output("execute_result", {"text/html": html}, execution_count=1)])
    assert check_one(notebook(tmp_path, cell)).verdict is Verdict.BLOCK


def test_widget_state_is_screened(tmp_path):
    widgets = {"application/vnd.jupyter.widget-state+json": {"state": {"w1": {"state": {"value": "NHS 943 476 5919"}}}}}
    assert check_one(notebook(tmp_path, new_code_cell("w"), widgets=widgets)).verdict is Verdict.BLOCK


def test_embedded_images_go_to_review(tmp_path):
    image = base64.b64encode(PNG_1PX).decode()
    cell = new_code_cell("plot()", outputs=[new_output("display_data", {"image/png": image, "text/plain": "<Figure>"})])
    report = check_one(notebook(tmp_path, cell))
    assert report.verdict is Verdict.REVIEW and "embedded image" in messages(report)


def test_preview_renders_without_executing(tmp_path):
    marker = tmp_path / "ran"
    path = notebook(tmp_path, new_code_cell(f"open({str(marker)!r}, 'w').write('x')"), new_markdown_cell("**Bold**"))
    html = render_notebook(path)
    assert "<strong>Bold</strong>" in html and not marker.exists()
    with pytest.raises(ValueError, match="not a readable notebook"):
        render_notebook(write(tmp_path, "bad.ipynb", "{not json"))


def test_html_report_tables_and_images(tmp_path):
    clean = write(tmp_path, "r.html", "<html><body><h1>Results</h1><p>LDL fell on atorvastatin.</p></body></html>")
    assert check_one(clean).verdict is Verdict.PASS
    image = write(
        tmp_path,
        "i.html",
        f"<html><body><img src='data:image/png;base64,{base64.b64encode(PNG_1PX).decode()}'></body></html>",
    )
    assert check_one(image).verdict is Verdict.REVIEW
    hidden = write(tmp_path, "h.html", "<html><body><p title='Margaret Thompson 943 476 5919'>x</p></body></html>")
    assert check_one(hidden).verdict is Verdict.BLOCK


def _figure(fmt: str, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"
    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    ax.bar(["A", "B"], [120, 98])
    ax.set_title(title, fontsize=22)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt)
    plt.close(fig)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["pdf", "svg", "png"])
def test_figures_review_and_block_on_text(tmp_path, fmt):
    if fmt == "png" and shutil.which("tesseract") is None:
        pytest.skip("Tesseract is not installed (make system-packages installs it)")
    clean = write(tmp_path, f"clean.{fmt}", _figure(fmt, "LDL by site"))
    report = check_one(clean)
    assert report.verdict is Verdict.REVIEW, messages(report)
    named = write(tmp_path, f"named.{fmt}", _figure(fmt, "Margaret Thompson NHS 943 476 5919"))
    report = check_one(named)
    assert report.verdict is Verdict.BLOCK, messages(report)


def test_printed_pandas_tables_in_outputs_are_checked(tmp_path):
    series = "site\nA    120\nB      3\ndtype: int64"
    cell = new_code_cell(
        "df.groupby('site').size()", outputs=[new_output("execute_result", {"text/plain": series}, execution_count=1)]
    )
    assert check_one(notebook(tmp_path, cell)).verdict is Verdict.BLOCK
    means = "   site  mean_ldl\n0     A       3.1\n1     B       3.3\n2     C       2.9"
    cell = new_code_cell("df", outputs=[new_output("execute_result", {"text/plain": means}, execution_count=1)])
    report = check_one(notebook(tmp_path, cell))
    # The index is not a count (no block); the means state no group sizes, so a reviewer confirms them.
    assert report.verdict is Verdict.REVIEW and "number of contributors" in messages(report), messages(report)
    with_n = "   site    n  mean_ldl\n0     A  120       3.1\n1     B  131       3.3\n2     C  118       2.9"
    cell = new_code_cell("df", outputs=[new_output("execute_result", {"text/plain": with_n}, execution_count=1)])
    assert check_one(notebook(tmp_path, cell)).verdict is Verdict.PASS


def test_pdf_timestamps_are_not_identifiers(tmp_path):
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.add_metadata({"/Title": "LDL by site", "/CreationDate": "D:20261130002512", "/ModDate": "D:19561403120000"})
    path = tmp_path / "blank.pdf"
    with path.open("wb") as fh:
        writer.write(fh)
    report = check_one(path)
    assert report.verdict is Verdict.REVIEW, messages(report)
