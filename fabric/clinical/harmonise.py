"""What every clinical reader shares: the chunk size it reads in, unit conversion to the harmonised unit of each
measure (fabric/clinical/schema.py MEASURE_UNITS), and date columns parsed strictly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from fabric.clinical.schema import MEASURE_UNITS, SOURCE_COLUMNS
from kernel.errors import InvalidInputError

CHUNK_ROWS = 100_000

# (measure, unit as the site writes it) -> conversion to the harmonised unit of MEASURE_UNITS.
UNIT_CONVERSIONS: dict[tuple[str, str], Callable[[float], float]] = {
    ("ldl", "mmol/L"): lambda v: v,
    ("ldl", "mg/dL"): lambda v: v / 38.67,
    ("troponin_t", "ng/L"): lambda v: v,
    ("troponin_t", "ug/L"): lambda v: v * 1000.0,
    ("nt_probnp", "pg/mL"): lambda v: v,
    ("nt_probnp", "ng/L"): lambda v: v,
    ("hba1c", "mmol/mol"): lambda v: v,
    ("hba1c", "%"): lambda v: 10.929 * (v - 2.15),
    ("qtc", "ms"): lambda v: v,
    ("qrs", "ms"): lambda v: v,
    ("sbp", "mmHg"): lambda v: v,
    ("sbp", "mm[Hg]"): lambda v: v,
    ("dbp", "mmHg"): lambda v: v,
    ("dbp", "mm[Hg]"): lambda v: v,
    ("lvef", "%"): lambda v: v,
    ("lv_mass", "g"): lambda v: v,
}


def harmonise_units(frame: pd.DataFrame, source: Path) -> pd.DataFrame:
    """Convert `value` to each measure's harmonised unit; an unknown measure/unit pair is an error."""
    out = []
    for (measure, unit), group in frame.groupby(["measure", "unit"], sort=False):
        convert = UNIT_CONVERSIONS.get((measure, unit))
        if convert is None:
            raise InvalidInputError(source, f"no conversion for measure {measure!r} in unit {unit!r}")
        group = group.copy()
        group["value"] = convert(group["value"].astype(float))
        group["unit"] = MEASURE_UNITS[measure]
        out.append(group)
    if not out:
        return frame.iloc[0:0]
    return pd.concat(out, ignore_index=True)[SOURCE_COLUMNS["measurements"]]


def parse_dates(series: pd.Series, fmt: str, source: Path, column: str) -> pd.Series:
    parsed = pd.to_datetime(series.replace("", None), format=fmt, errors="coerce")
    bad = parsed.isna() & series.fillna("").ne("")
    if bad.any():
        raise InvalidInputError(source, f"column {column}: {int(bad.sum())} value(s) are not dates in {fmt}")
    return parsed.dt.date
