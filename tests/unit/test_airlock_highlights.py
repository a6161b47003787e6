"""Finding locations, as the checks write them, placed in a preview: table cells, rows and columns, text lines and
notebook cells; what cannot be placed is not highlighted (and never raises)."""

from __future__ import annotations

import pytest

from output_checks.web.highlights import (
    mark_notebook,
    notebook_highlights,
    table_highlights,
    text_highlights,
)

pytestmark = pytest.mark.unit
COLUMNS = ["site", "sex", "n", "mean ldl"]


def f(location: str, message: str = "a finding") -> dict:
    return {"check": "tables", "verdict": "block", "message": message, "location": location}


def test_cells_named_by_column_and_row():
    marks = table_highlights([f("column 'n', row 2; column 'n', row 5; and 3 more", "small counts")], COLUMNS, 10)
    assert set(marks.cells) == {(1, 2), (4, 2)}
    assert marks.cell_title(1, 2) == "small counts"
    assert not marks.rows and not marks.columns


def test_columns_by_number_rows_and_whole_columns():
    named = [f("column 3, row 1"), f("row 4"), f("column 'mean ldl'"), f("column 'n', total of the rows")]
    marks = table_highlights(named, COLUMNS, 10)
    assert (0, 2) in marks.cells
    assert 3 in marks.rows
    assert set(marks.columns) == {3, 2}


def test_shortened_and_quoted_column_names():
    long = "number of patients with a recorded statin prescription in the year"
    marks = table_highlights([f(f"column {long[:37] + '...'!r}, row 1"), f('column "it\'s", row 2')],
                             [long, "it's"], 5)  # fmt: skip
    assert set(marks.cells) == {(0, 0), (1, 1)}


@pytest.mark.parametrize(
    "location",
    [
        "",
        "column 'missing', row 2",  # not a column of this table
        "column 'n', row 99",  # past the rows shown
        "HTML table 2, column 'n', row 1",  # a table inside something else
        "sheet 'Sheet1', column 'n', row 1",
        "cell 5 (code) output 1",
        "column 'unterminated, row 2",
        "rows 1-5000",  # too wide to mean a place
        "row 0",
        "colum n row x",
    ],
)
def test_what_cannot_be_placed_is_not_highlighted(location):
    assert not table_highlights([f(location)], COLUMNS, 10)


def test_text_lines_ranges_and_printed_tables():
    marks = text_highlights([f("line 3"), f("lines 7-9"), f("table at line 12, column 'n', row 2"), f("line 400")], 20)
    assert set(marks.lines) == {3, 7, 8, 9, 12}
    assert not text_highlights([f("lines 1-500")], 600)


def test_notebook_cells_and_outputs_become_a_style_sheet_of_numbers_only():
    marks = notebook_highlights([f("cell 5 (code) output 1", "<script>alert(1)</script>"), f("cell 2 (markdown)")])
    assert set(marks.notebook_cells) == {2, 5} and set(marks.outputs) == {(5, 1)}
    html = mark_notebook("<html><head><title>x</title></head><body><main></main></body></html>", marks)
    assert "nth-child(5)" in html and "nth-child(2)" in html and html.index("<style>") < html.index("</head>")
    assert "script" not in html
    assert mark_notebook("<p>plain</p>", notebook_highlights([f("line 2")])) == "<p>plain</p>"
