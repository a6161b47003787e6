"""Figures and documents: images, PDFs and SVGs go to review by default (a human must look at a figure); any text
that can be read from them — the PDF text layer, SVG text elements, OCR of raster images with Tesseract — is
screened like any text, so a name in a figure title blocks."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import ClassVar

from output_checks.checks.base import Context, Subject, finding
from output_checks.screening.text import Segment
from output_checks.verdicts import Finding, Verdict

RASTER = frozenset({"png", "jpeg", "gif", "tiff", "bmp", "webp"})
MAX_PDF_PAGES = 500
MAX_OCR_PIXELS = 40_000_000
OCR_TIMEOUT = 60


def ocr_text(subject: Subject) -> str:
    """Text Tesseract reads from a raster image (the image is decoded by Pillow, with its size guard)."""
    from PIL import Image

    with Image.open(subject.path) as image:
        if image.width * image.height > MAX_OCR_PIXELS:
            raise ValueError(f"{image.width}x{image.height} pixels: too large to read safely")
        image.load()
        frame = image.convert("L")
    import pytesseract

    text = pytesseract.image_to_string(frame, lang="eng", timeout=OCR_TIMEOUT)
    if not text.strip() and frame.width < 1000:
        # Small renders (10-pt text at 72 dpi) read better enlarged; large text reads worse, so only as a retry.
        frame = frame.resize((frame.width * 2, frame.height * 2))
        text = pytesseract.image_to_string(frame, lang="eng", timeout=OCR_TIMEOUT)
    return text


class PageLimit(Exception):
    def __init__(self, pages: int) -> None:
        super().__init__(pages)
        self.pages = pages


def pdf_segments(subject: Subject) -> Iterator[Segment]:
    from pypdf import PdfReader

    reader = PdfReader(subject.path, strict=False)
    if reader.is_encrypted:
        raise ValueError("the PDF is encrypted")
    for number, page in enumerate(reader.pages, start=1):
        if number > MAX_PDF_PAGES:
            raise PageLimit(len(reader.pages))
        text = page.extract_text() or ""
        if text.strip():
            yield Segment(f"page {number}", text)
    meta = reader.metadata or {}
    # Text fields only: /CreationDate and /ModDate ("D:20261130002512") are timestamps, and their digits look like
    # national ids (a Swedish personnummer) to a pattern recogniser.
    fields = " ".join(str(v) for k, v in meta.items() if isinstance(v, str) and k not in ("/CreationDate", "/ModDate"))
    if fields.strip():
        yield Segment("document properties", fields)


def svg_segments(subject: Subject) -> Iterator[Segment]:
    from defusedxml.ElementTree import iterparse  # refuses entity expansion and external entities

    texts: list[str] = []
    # matplotlib writes a DOCTYPE; entity declarations and external references stay forbidden.
    for _event, element in iterparse(subject.path, events=("end",), forbid_dtd=False):
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in ("text", "tspan", "title", "desc", "textPath", "metadata") and element.text and element.text.strip():
            texts.append(element.text.strip())
        for attr in ("aria-label", "{http://www.w3.org/1999/xlink}title"):
            if element.get(attr):
                texts.append(element.get(attr, ""))
        element.clear()
    if texts:
        yield Segment("svg text", "\n".join(texts))


class DocumentCheck:
    name: ClassVar[str] = "documents"
    kinds: ClassVar[frozenset[str] | None] = RASTER | {"pdf", "svg"}

    def run(self, subject: Subject, ctx: Context) -> Iterator[Finding]:
        kind = subject.kind
        what = "a PDF document" if kind == "pdf" else "a figure"
        yield finding(self.name, Verdict.REVIEW, f"{what}: needs a human look")
        try:
            if kind == "pdf":
                yield from ctx.screen(pdf_segments(subject), "identifiers")
            elif kind == "svg":
                yield from ctx.screen(svg_segments(subject), "identifiers")
            elif shutil.which("tesseract") is None:
                yield finding(self.name, Verdict.REVIEW, "text in the image was not read: Tesseract is not installed")
            else:
                text = ocr_text(subject)
                if text.strip():
                    yield from ctx.screen([Segment("text read by OCR", text)], "identifiers")
        except PageLimit as exc:
            why = f"only the first {MAX_PDF_PAGES} of {exc.pages} pages were read: a reviewer must check the rest"
            yield finding(self.name, Verdict.REVIEW, why)
        except (subprocess.TimeoutExpired, RuntimeError) as exc:
            yield finding(self.name, Verdict.REVIEW, f"text could not be read ({type(exc).__name__})")
