"""What a workspace may send to the researcher's browser: text to read and edit, and images to look at, each up to a
size cap; never a data file. This module owns the rule (sniffing bytes, never trusting a file's name) and the caps,
for every route that carries file bytes to the browser: the contents API (contents.py), kernelspec logos (routes.py)
and the proxied services' filter.

- text: UTF-8 with no NUL byte (notebooks, code, CSV, Markdown...), up to ENCLAVE_BROWSER_MAX_TEXT_BYTES (10 MiB);
- image: PNG, JPEG, GIF or WebP recognised by their signature and header, or SVG (UTF-8 text whose root element is
  `<svg>`), up to ENCLAVE_BROWSER_MAX_IMAGE_BYTES (5 MiB);
- binary: everything else (Parquet, DICOM, VCF.gz, BAM, zip, pickle...), never sent, whatever its name.

Any byte can be written as text or painted as pixels, so the caps (and the workspace's hourly budget) are what bound
those channels; what they stop is moving a data file out as itself."""

from __future__ import annotations

import codecs
import os
import re
from typing import Literal

from tornado import web

Kind = Literal["text", "image", "binary"]

MiB = 1024 * 1024
DEFAULT_CAPS: dict[str, int] = {"text": 10 * MiB, "image": 5 * MiB}
CAP_VARIABLES: dict[str, str] = {"text": "ENCLAVE_BROWSER_MAX_TEXT_BYTES", "image": "ENCLAVE_BROWSER_MAX_IMAGE_BYTES"}
SNIFF_BYTES = 8192  # enough to recognise an image header or an SVG root element after a prologue

AIRLOCK = "To take outputs out of the workspace, submit them to the airlock."
BINARY_REFUSED = (
    "This file is not text, a notebook or an image (PNG, JPEG, GIF, WebP, SVG), so the workspace does not send it "
    "to the browser. " + AIRLOCK
)

_SVG_PROLOGUE = re.compile(
    rb"\A(?:\xef\xbb\xbf)?(?:\s+|<\?xml[^>]*\?>|<!--.*?-->|<!DOCTYPE[^>]*>)*<svg[\s>/]", re.S | re.I
)


class BrowserRefusal(web.HTTPError):
    """A response the workspace will not send to the browser: 403 for a kind it never sends, 413 over a cap. The
    message is shown to the researcher as is (it never names the file)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(status, message, reason="Forbidden" if status == 403 else None)
        self.message = message


def is_text(data: bytes, *, carry: bytes = b"", final: bool = True) -> bool:
    """Whether `data` continues valid UTF-8 text after `carry` (an unfinished sequence) and holds no NUL byte.

    `final=False` accepts an unfinished sequence at the end, which the next bytes must complete."""
    if b"\x00" in data:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(carry + data, final)
    except UnicodeDecodeError:
        return False
    return True


def image_type(data: bytes) -> str | None:
    """The MIME type of the image `data` starts with, from its signature and header, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return "image/png"
    if data.startswith(b"\xff\xd8\xff") and len(data) > 3 and data[3] >= 0xC0:
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 13:
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and data[12:16] in (b"VP8 ", b"VP8L", b"VP8X"):
        return "image/webp"
    if _SVG_PROLOGUE.match(data[:SNIFF_BYTES]) and is_text(data, final=False):
        return "image/svg+xml"
    return None


def kind_of(data: bytes, *, complete: bool = True) -> Kind:
    """What `data` is to the browser. With `complete=False`, `data` is the start of a longer file: a UTF-8 sequence
    cut at its end still counts as text (the caller must check the rest before sending it)."""
    if image_type(data):
        return "image"
    if is_text(data, final=complete):
        return "text"
    return "binary"


def response_cap(kind: Kind) -> int:
    """The most bytes of `kind` one response may carry to the browser (0 for binary). Raises ValueError when the
    setting is not a positive whole number of bytes: a broken cap must not become no cap."""
    if kind not in CAP_VARIABLES:
        return 0
    variable = CAP_VARIABLES[kind]
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return DEFAULT_CAPS[kind]
    if not raw.isdigit() or int(raw) <= 0:
        raise ValueError(f"{variable} must be a positive number of bytes, not {raw!r}")
    return int(raw)


def screen(data: bytes, *, size: int | None = None, complete: bool = True) -> Kind:
    """The kind of `data` if the browser may receive it, else raise BrowserRefusal. `size` is the whole response's
    size when `data` is only its start (then pass `complete=False`)."""
    kind = kind_of(data, complete=complete)
    if kind == "binary":
        raise BrowserRefusal(BINARY_REFUSED)
    cap = response_cap(kind)
    total = len(data) if size is None else size
    if total > cap:
        raise BrowserRefusal(too_large(kind, cap), status=413)
    return kind


def too_large(kind: Kind, cap: int) -> str:
    what = "text file or notebook" if kind == "text" else "image"
    return (
        f"This {what} is larger than the {_amount(cap)} a workspace sends to the browser in one response "
        f"({CAP_VARIABLES[kind]}). " + AIRLOCK
    )


def _amount(size: int) -> str:
    return f"{size / MiB:g} MiB" if size >= MiB else f"{size} bytes"
