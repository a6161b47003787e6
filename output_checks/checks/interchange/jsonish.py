"""JSON that is not a flat table: truncated or malformed documents (the complete records before the damage are
recovered), nested records (flattened into columns, depth capped) and JSON Lines. Records become rows for the
table rules; nothing is evaluated, only decoded."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 4  # nested objects deeper than this are kept as one JSON text cell
MAX_COLUMNS = 300
MAX_LIST_ITEMS = 3  # a list of objects inside a record: its first few items become columns
MAX_RECORDS = 100_000
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[{}\[\]]')
CLOSER = {"{": "}", "[": "]"}


@dataclass
class Recovered:
    """What a damaged JSON document still holds: the data before the damage, and where the damage starts."""

    data: Any
    offset: int  # characters of the text that were recovered
    line: int  # the line the damage starts on


def repair(text: str, limit: int = 32 * 2**20) -> Recovered | None:
    """The longest prefix of `text` that ends a complete nested value, closed as valid JSON (None if none)."""
    try:
        return Recovered(json.loads(text), len(text), 0)
    except json.JSONDecodeError as exc:
        end = min(exc.pos, limit)
    except (ValueError, RecursionError):
        return None
    stack: list[str] = []
    cuts: list[tuple[int, str]] = []  # (offset after a closed value, the closers still needed there)
    for match in TOKEN.finditer(text, 0, end):
        mark = match.group()
        if mark in "{[":
            stack.append(mark)
        elif mark in "}]":
            if not stack:
                break
            stack.pop()
            if stack:
                cuts.append((match.end(), "".join(CLOSER[c] for c in reversed(stack))))
                del cuts[:-8]
    for offset, closers in reversed(cuts):
        try:
            data = json.loads(text[:offset] + closers)
        except (ValueError, RecursionError):
            continue
        return Recovered(data, offset, text.count("\n", 0, offset) + 1)
    return None


def flatten(
    record: dict[str, Any], prefix: str = "", depth: int = 0, out: dict[str, str] | None = None
) -> dict[str, str]:
    """One record as columns: nested objects as dotted names, lists of scalars joined, the first few objects of a
    list by position; past MAX_DEPTH a value is kept as its JSON text."""
    out = {} if out is None else out
    for key, value in record.items():
        name = f"{prefix}{key}"
        if len(out) >= MAX_COLUMNS:
            break
        if isinstance(value, dict) and depth < MAX_DEPTH:
            flatten(value, f"{name}.", depth + 1, out)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value) and depth < MAX_DEPTH:
            for index, item in enumerate(value[:MAX_LIST_ITEMS]):
                flatten(item, f"{name}.{index}.", depth + 1, out)
        elif isinstance(value, list):
            out[name] = "; ".join(cell(v) for v in value)
        else:
            out[name] = cell(value)
    return out


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"  # the table rules read a boolean column as the 0/1 flag it is
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)[:500]
    return str(value)


def record_lists(data: Any, where: str = "$", depth: int = 0) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(JSON path, records) for every list of two or more objects in `data`, outermost first, depth capped."""
    if depth > MAX_DEPTH:
        return
    if isinstance(data, list):
        objects = [item for item in data[:MAX_RECORDS] if isinstance(item, dict)]
        if len(objects) >= 2 and len(objects) >= len(data[:MAX_RECORDS]) * 0.8:
            yield where, objects
            return
        for index, item in enumerate(data[:50]):
            yield from record_lists(item, f"{where}[{index}]", depth + 1)
    elif isinstance(data, dict):
        for key, value in list(data.items())[:200]:
            inner = f"{where}.{key}" if re.fullmatch(r"\w{1,40}", str(key)) else where  # keys are data: no odd ones
            yield from record_lists(value, inner, depth + 1)


def is_nested(records: list[dict[str, Any]]) -> bool:
    return any(isinstance(v, dict | list) for r in records[:100] for v in r.values())


def as_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """Records as rows with a header (the union of their flattened keys, in first-seen order)."""
    flat = [flatten(r) for r in records[:MAX_RECORDS]]
    columns = list(dict.fromkeys(k for r in flat for k in r))[:MAX_COLUMNS]
    # The header vocabulary knows "age", not "demographics.age": a leaf name that is unique stands alone.
    leaves = [c.rsplit(".", 1)[-1] for c in columns]
    header = [
        leaf if leaves.count(leaf) == 1 and not leaf.isdigit() else c for c, leaf in zip(columns, leaves, strict=True)
    ]
    return [header, *([r.get(c, "") for c in columns] for r in flat)]


@dataclass
class Lines:
    """A JSON Lines file read line by line: the parsed values, and the lines that did not parse."""

    values: list[tuple[int, Any]]
    bad: list[tuple[int, str]]


def read_lines(text_lines: Iterator[str], limit: int = MAX_RECORDS) -> Lines:
    values: list[tuple[int, Any]] = []
    bad: list[tuple[int, str]] = []
    for number, line in enumerate(text_lines, start=1):
        if len(values) >= limit:
            break
        if not line.strip():
            continue
        try:
            values.append((number, json.loads(line)))
        except (ValueError, RecursionError):
            bad.append((number, line))
    return Lines(values, bad)
