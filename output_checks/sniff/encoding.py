"""How much of a file its type is judged on (`HEAD`), and the text encoding that head shows: BOM-aware UTF-8/16/32,
UTF-16 without a BOM, then Latin-1 for legacy exports; the same encoding opens the whole file as a text stream."""

from __future__ import annotations

import codecs
import gzip
import io
from pathlib import Path

HEAD = 64 * 1024


def decode_text(data: bytes) -> str | None:
    """Decode a text file's bytes (BOM-aware UTF-8/16/32, then Latin-1 for legacy exports); None if binary."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):  # fmt: skip
        if data.startswith(bom):
            try:
                return data.decode(codec, errors="strict" if len(data) < HEAD else "ignore")
            except UnicodeDecodeError:
                return None
    if b"\x00" in data[:4096]:
        # UTF-16 without a BOM: every other byte zero.
        even, odd = data[0:4096:2], data[1:4096:2]
        if odd.count(0) > len(odd) * 0.4 and even.count(0) < len(even) * 0.1:
            return data.decode("utf-16-le", errors="ignore")
        if even.count(0) > len(even) * 0.4 and odd.count(0) < len(odd) * 0.1:
            return data.decode("utf-16-be", errors="ignore")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 4:  # a multi-byte character cut by the head
            return data[: exc.start].decode("utf-8")
    text = data.decode("latin-1")
    controls = sum(1 for ch in text[:4096] if ord(ch) < 32 and ch not in "\t\n\r\f") + sum(
        1 for ch in text[:4096] if 0x7F <= ord(ch) < 0xA0
    )
    return None if controls > len(text[:4096]) * 0.05 else text


def text_encoding(data: bytes) -> str:
    """The codec that `decode_text` would use, for streaming a whole file."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):  # fmt: skip
        if data.startswith(bom):
            return codec
    if b"\x00" in data[:4096]:
        odd = data[1:4096:2]
        return "utf-16-le" if odd.count(0) > len(odd) * 0.4 else "utf-16-be"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        return "utf-8" if exc.start >= len(data) - 4 else "latin-1"


def open_text(path: Path) -> io.TextIOBase:
    """A text stream over `path` in the encoding its head shows (gzip-transparent for the raw-data readers)."""
    with path.open("rb") as fh:
        head = fh.read(HEAD)
    if head.startswith(b"\x1f\x8b"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace", newline="")
    return path.open("r", encoding=text_encoding(head), errors="replace", newline="")
