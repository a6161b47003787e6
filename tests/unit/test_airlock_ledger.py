"""The release ledger's keyed cells and its differencing rule: the "n and n-1" pair of tables is caught, through a
changed cell or a changed total; unrelated tables, new years of the same table and tables of means are not."""

from __future__ import annotations

import pytest

from output_checks.release.ledger import Released, differencing_findings, keyed_cells, number

pytestmark = pytest.mark.unit
KEY = b"k" * 32
EARLIER = Released("r-20261201-aaaa", "tables/by_site.csv")


def table(text: str) -> tuple[list[str], list[list[str]]]:
    header, *rows = [line.split(",") for line in text.strip().splitlines()]
    return header, rows


def cells_of(text: str, key: bytes = KEY, **kw):
    return keyed_cells(*table(text), key, **kw)


def ledger_of(text: str, which: Released = EARLIER) -> dict:
    return {which: {(c.row_key, c.column_key): c.value for c in cells_of(text)}}


BY_SITE = "site,sex,n\nNorth,F,120\nNorth,M,98\nSouth,F,240\nSouth,M,233\n"


@pytest.mark.parametrize(
    ("text", "value"),
    [("12", 12), ("1,204", 1204), ("245 (59.5%)", 245), ("3.25", 3.25), ("-4", -4), ("<10", None), ("A1", None)],
)
def test_cell_values(text, value):
    assert number(text) == value


def test_cells_are_keyed_by_their_labels_without_keeping_them():
    cells = cells_of(BY_SITE)
    assert len(cells) == 5  # four cells and the sum of the rows
    assert {c.value for c in cells} == {120, 98, 240, 233, 691}
    for c in cells:
        assert len(c.row_key) == 64 and "north" not in c.row_key.lower()
    assert cells_of(BY_SITE)[0].row_key == cells[0].row_key  # the same labels, the same key
    assert cells_of(BY_SITE, key=b"o" * 32)[0].row_key != cells[0].row_key  # another project, unlinkable
    # Labels are compared after case and spacing are normalised: a re-typed label is the same row.
    assert cells_of(BY_SITE.replace("North,F", " north ,f"))[0].row_key == cells[0].row_key


def test_numeric_label_columns_are_labels_not_cells():
    cells = cells_of("year,age_group,n\n2020,1,40\n2020,2,55\n2021,1,41\n")
    assert {c.column for c in cells} == {"n"}
    assert cells_of("a,b\n1,2\n3,4\n")[0].column == "b"  # all numeric: the first column labels the rows


def test_a_cut_short_table_has_no_sums():
    assert all(c.row is not None for c in cells_of(BY_SITE, complete=False))


def test_the_n_and_n_minus_one_pair_is_review_naming_the_earlier_release():
    changed = BY_SITE.replace("South,M,233", "South,M,230")
    found = differencing_findings(cells_of(changed), ledger_of(BY_SITE), 10)
    assert len(found) == 1
    finding = found[0]
    assert finding["check"] == "differencing" and finding["verdict"] == "review"
    assert EARLIER.request_id in finding["message"] and EARLIER.path in finding["message"]
    assert "column 'n', row 4" in finding["location"] and "total of the rows" in finding["location"]
    assert "South" not in finding["message"] + finding["location"]  # labels are never repeated
    assert "230" not in finding["message"] and " 3 " not in finding["message"]  # nor the values or the difference


def test_a_total_that_loses_a_small_group_is_caught():
    released = "site,n\nNorth,120\nSouth,240\nEast,75\nAll,435\n"
    again = "site,n\nNorth,120\nSouth,240\nEast,75\nAll,431\n"  # four people left out of the total only
    found = differencing_findings(cells_of(again), ledger_of(released), 10)
    assert found and "row 4" in found[0]["location"]


def test_a_dropped_row_is_caught_through_the_sum_of_the_rows():
    released = "site,n\nNorth,120\nSouth,240\nEast,75\nWest,6\n"
    again = "site,n\nNorth,120\nSouth,240\nEast,75\n"
    found = differencing_findings(cells_of(again), ledger_of(released), 10)
    assert found and "total of the rows" in found[0]["location"]


@pytest.mark.parametrize(
    "again",
    [
        BY_SITE,  # the same table again: nothing new is revealed
        "region,n\nWales,50\nScotland,60\n",  # unrelated rows: only the sum's key could match
        BY_SITE.replace("120", "161").replace("98", "143").replace("240", "201").replace("233", "275"),  # next year
        "site,sex,n\nNorth,F,120\nNorth,M,98\nSouth,F,240\nSouth,M,213\n",  # a change of 20: not a small group
    ],
)
def test_tables_that_reveal_no_small_group_pass(again):
    assert differencing_findings(cells_of(again), ledger_of(BY_SITE), 10) == []


def test_a_new_year_with_one_close_cell_by_chance_is_not_the_same_table():
    again = BY_SITE.replace("120", "161").replace("98", "143").replace("240", "201").replace("233", "235")
    assert differencing_findings(cells_of(again), ledger_of(BY_SITE), 10) == []


def test_means_are_not_compared():
    released = "group,mean_ldl\nA,3.41\nB,3.12\n"
    again = "group,mean_ldl\nA,3.43\nB,3.12\n"
    assert differencing_findings(cells_of(again), ledger_of(released), 10) == []


def test_each_released_table_gets_its_own_finding():
    other = Released("r-20261202-bbbb", "tables/by_site_v2.csv")
    ledger = ledger_of(BY_SITE) | ledger_of(BY_SITE.replace("120", "119"), other)
    changed = BY_SITE.replace("120", "117")
    found = differencing_findings(cells_of(changed), ledger, 10)
    assert [other.request_id in f["message"] for f in found] == [False, True]
