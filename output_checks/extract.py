"""Text out of structured formats (HTML, JSON, terminal output), for the identifier screening. Parsers here never
fetch, execute or resolve anything: HTML through the standard library's tokenizer, JSON as data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MEDIA_TAGS = ("img", "svg", "canvas", "object", "embed", "iframe", "video", "audio", "picture")
TEXT_ATTRIBUTES = ("title", "alt", "aria-label", "value", "placeholder", "content")


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._skip = 0
        self.media: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
            self._in_script = tag == "script"
        if tag in MEDIA_TAGS:
            self.media.append(tag)
        for name, value in attrs:
            if name in TEXT_ATTRIBUTES and value:
                self.parts.append(value)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self._row = []
            self.tables[-1].append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        if tag in ("br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "table"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
            self._in_script = False
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag in ("td", "th"):
            self.parts.append("\t")

    def handle_data(self, data: str) -> None:
        if self._skip:
            # Style bodies are CSS; script bodies are code, but plotting libraries put their data there.
            if self._in_script and data.strip():
                self.scripts.append(data)
            return
        self.parts.append(data)
        if self._cell is not None:
            self._cell.append(data)


@dataclass
class HtmlContent:
    text: str  # visible text plus title/alt attributes
    tables: list[list[list[str]]]  # every <table>, as rows of cell strings
    media: list[str]  # embedded images, canvases, frames: things only a human can judge
    scripts: list[str]  # script bodies (never run): plotting libraries embed their data, hover text included


def html_content(html: str) -> HtmlContent:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return HtmlContent("".join(parser.parts), [t for t in parser.tables if t], parser.media, parser.scripts)


def json_strings(value: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """(JSON path, text) for every string and key in a JSON document, depth-first; numbers are joined per array."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            keys = " ".join(str(k) for k in item)
            if keys:
                yield where, keys
            named = [(_key_label(k, i), v) for i, (k, v) in enumerate(item.items(), start=1)]
            stack.extend((f"{where}.{label}", v) for label, v in reversed(named))
        elif isinstance(item, list):
            scalars = [str(v) for v in item if isinstance(v, int | float) and not isinstance(v, bool)]
            if scalars:
                yield where, " ".join(scalars)
            stack.extend(
                (f"{where}[{i}]", v) for i, v in reversed(list(enumerate(item))) if isinstance(v, dict | list | str)
            )
        elif isinstance(item, str):
            yield where, item
        elif isinstance(item, int | float) and not isinstance(item, bool):
            yield where, str(item)


SAFE_KEY = re.compile(r"^[A-Za-z_][A-Za-z_-]{0,40}$")


def _key_label(key: object, position: int) -> str:
    """A key as it may appear in a location: plain words as they are, anything else (digits, spaces — where a
    name or a number could hide) by position, since keys are data the file controls."""
    text = str(key)
    return text if SAFE_KEY.match(text) and " " not in text else f"<key {position}>"


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)
