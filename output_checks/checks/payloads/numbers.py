"""Bytes hidden in numbers: a column (or a JSON array) whose values, read the ways a program would pack bytes into
numbers — byte values 0..255, int32/int64 or float32/float64 bit patterns, three-digit groups of their decimal
digits — form a known file or plain text; and cells with more digits than any statistic needs. A column of
ordinary values (p-values, estimates, counts, SNOMED codes) reads as noise every way and adds nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pandas as pd

from output_checks.checks.base import finding
from output_checks.checks.payloads.judge import CHECK, Scan, bz2_ok, decompress
from output_checks.verdicts import Finding, Verdict

MIN_VALUES = 8
MAX_FLOAT_DIGITS = 17  # significant digits a float64 needs to round-trip
MAX_INT_DIGITS = 24  # longer integers are no count, code or id (SNOMED CT ids have up to 18 digits)
STRONG = (b"\x89PNG\r\n\x1a\n", b"PK\x03\x04", b"PAR1", b"%PDF-", b"\xfd7zXZ\x00", b"7z\xbc\xaf\x27\x1c",
          b"SQLite format 3", b"\x93NUMPY", b"\x89HDF\r\n\x1a\n", b"ARROW1", b"\x28\xb5\x2f\xfd", b"\x80\x04\x95",
          b"\x80\x05\x95", b"DICM", b"BAM\x01", b"CRAM")  # fmt: skip
TOKEN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
PRINTABLE = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


def recognisable(stream: bytes, text_ok: bool) -> bool:
    """Whether bytes read out of numbers are a file (a strong signature, or a stream that really decompresses) or,
    where `text_ok`, plain text — never true of the noise ordinary numbers make."""
    if len(stream) < 16:
        return False
    if stream.startswith(STRONG):
        return True
    if stream.startswith(b"\x1f\x8b\x08"):
        return _gunzips(stream)
    if stream.startswith(b"BZh") and stream[3:4].isdigit():
        return bz2_ok(stream)
    if stream[:1] in (b"\x78", b"\x5d"):
        return decompress(stream, 1 << 16) is not None
    if text_ok and len(stream) >= 32:
        head = stream[:1024].rstrip(b"\x00")
        return len(head) >= 32 and sum(b in PRINTABLE for b in head) >= 0.97 * len(head)
    return False


def _gunzips(stream: bytes) -> bool:
    import zlib

    try:
        return len(zlib.decompressobj(31).decompress(stream[:65536], 1024)) > 0
    except zlib.error:
        return False


def _digit_groups(digits: str) -> bytes | None:
    """Three-digit decimal groups as bytes, or None when any group is over 255 (then it is not that code)."""
    digits = digits[: len(digits) // 3 * 3]
    if len(digits) < 48:
        return None
    groups = np.frombuffer(digits.encode("ascii"), dtype=np.uint8).reshape(-1, 3).astype(np.int32) - 48
    values = groups[:, 0] * 100 + groups[:, 1] * 10 + groups[:, 2]
    if (values > 255).any():
        return None
    return values.astype(np.uint8).tobytes()


def _integer(value: str) -> bool:
    return value.lstrip("+-").isdigit()


def streams(values: list[str]) -> Iterator[tuple[str, bytes, bool]]:
    """(how, bytes, text allowed) for each way `values` (numbers as written, non-empty) could carry bytes."""
    if all(_integer(v) for v in values):
        numbers = [int(v) for v in values]
        low, high = min(numbers), max(numbers)
        if low >= 0 and high <= 255:
            yield "byte values", bytes(numbers), False
        if low >= -(2**31) and 255 < high < 2**31:
            yield "int32 bit patterns", np.array(numbers, dtype="<i4").tobytes(), True
        if high >= 2**31 or low < -(2**31):
            for how, dtype in (("int64 bit patterns", "<i8"), ("uint64 bit patterns", "<u8")):
                try:
                    yield how, np.array(numbers, dtype=dtype).tobytes(), True
                except OverflowError:
                    continue
        long = [v.lstrip("+-") for v in values if len(v) > 12]
        if len(long) >= MIN_VALUES and (groups := _digit_groups("".join(long))) is not None:
            yield "three-digit groups", groups, True
        return
    try:
        # Python's float() rounds correctly (pandas' fast parser may not): the bit patterns must survive.
        array = np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        return
    yield "float64 bit patterns", array.astype("<f8").tobytes(), True
    yield "big-endian float64 bit patterns", array.astype(">f8").tobytes(), True
    with np.errstate(over="ignore", invalid="ignore"):
        yield "float32 bit patterns", array.astype("<f4").tobytes(), True
    fractions = [v.partition(".")[2] for v in values if "." in v and "e" not in v and "E" not in v]
    if len(fractions) >= MIN_VALUES and (groups := _digit_groups("".join(fractions))) is not None:
        yield "three-digit groups of the decimals", groups, True


def significant_digits(value: str) -> int:
    mantissa = value.partition("e")[0].partition("E")[0]
    return len(mantissa.replace(".", "").lstrip("+-").lstrip("0"))


def _numbers(values: list[str]) -> list[str] | None:
    """The values that are numbers, when nearly all are (a numeric column), else None."""
    if not values:
        return None
    parsed = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    mask = parsed.notna().to_numpy()
    if mask.sum() < 0.9 * len(values):
        return None
    return [v for v, keep in zip(values, mask, strict=True) if keep]


def column(scan: Scan, label: str, raw: list[str]) -> Iterator[Finding]:
    """Findings for one column's (or array's) values, as strings in order."""
    values = [v.strip() for v in raw if v and not v.isspace()]
    if len(values) < MIN_VALUES:
        return
    numeric = _numbers(values)
    if numeric is not None:
        lengths = [(significant_digits(v), _integer(v)) for v in numeric if len(v) > MAX_FLOAT_DIGITS]
        long = [d for d, is_int in lengths if d > (MAX_INT_DIGITS if is_int else MAX_FLOAT_DIGITS)]
        if len(long) >= 3 or (long and len(long) == len(numeric)):
            yield finding(
                CHECK,
                Verdict.REVIEW,
                f"{len(long):,} numbers with up to {max(long)} significant digits, more than any statistic needs: "
                "numbers that may encode data",
                label,
            )
        for how, stream, text_ok in streams(numeric):
            if recognisable(stream, text_ok):
                yield from scan.judge(stream, label, f"the numbers read as {how}", opaque=False, verb="form")
                return
        return
    tokens = [v for v in values if TOKEN.fullmatch(v)]
    if len(tokens) >= 0.9 * len(values) and len(tokens) >= MIN_VALUES // 2:
        from output_checks.checks.payloads.encodings import _decode

        decoded = _decode("".join(v.rstrip("=") for v in tokens))
        if decoded is not None:
            encoding, data = decoded
            # Hashes and ids in a column read as noise: only a recognisable file or text counts.
            if recognisable(data, text_ok=True):
                how = f"the cells joined and read as {encoding}"
                yield from scan.judge(data, label, how, opaque=False, verb="form")


def frame(scan: Scan, table: pd.DataFrame, name: str = "") -> Iterator[Finding]:
    """Every column of a table of strings, then the numeric cells of all columns row by row."""
    prefix = f"{name}, " if name else ""
    floats = []
    for index, col in enumerate(table.columns):
        values = [str(v) for v in table[col].tolist()]
        label = f"{prefix}column {index + 1}" + (f" ('{col}')" if re.fullmatch(r"[\w .()%-]{1,40}", str(col)) else "")
        yield from column(scan, label, values)
        if all(values):
            as_float = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
            if not np.isnan(as_float).any():
                floats.append(as_float)
    if len(floats) >= 2:
        rows = np.column_stack(floats).ravel()
        candidates = [("float64 bit patterns", rows.astype("<f8").tobytes())]
        if ((rows >= 0) & (rows <= 255) & (rows == np.floor(rows))).all():
            candidates.append(("byte values", rows.astype(np.uint8).tobytes()))
        for how, stream in candidates:
            if recognisable(stream, how != "byte values"):
                label = f"{prefix}numeric cells row by row"
                yield from scan.judge(stream, label, f"the numbers read as {how}", opaque=False, verb="form")
                return
