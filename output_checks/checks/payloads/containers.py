"""Containers walked by their structure: where each one ends (bytes after a PNG's IEND, a JPEG's EOI, a GIF's
trailer, a PDF's last %%EOF, a zip's end record, a gzip member, a Parquet footer are hidden from every reader),
and the places inside them that viewers do not show (PNG text and private chunks, JPEG comments and APPn
segments, GIF comments and application blocks, PDF attachments and XMP, Parquet key-value metadata and gaps)."""

from __future__ import annotations

import contextlib
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from output_checks.checks.base import finding
from output_checks.checks.payloads.judge import CHECK, Scan, rules
from output_checks.verdicts import Finding, Verdict

MAX_PART = 16 * 2**20  # bytes read from one chunk, segment or attachment
MAX_READ = 64 * 2**20  # bytes of a JPEG or GIF read whole (larger files are over the size limit anyway)
PADDING = b" \t\r\n\f\x00"
TextHandler = Callable[[str, str], Iterator[Finding]]  # (text, where) -> findings


def trailing(scan: Scan, tail: bytes, what: str) -> Iterator[Finding]:
    """Bytes after a container's end: a finding, and checked as a file of their own when they are one."""
    if not tail.strip(PADDING):
        return  # writers pad with newlines or zeros
    data = tail.lstrip(b"\r\n")
    where = f"after the {what}"
    scan.trailing = True
    yield finding(CHECK, Verdict.REVIEW, f"{len(data):,} bytes after the {what}: data no viewer shows", where)
    yield from scan.judge(data, where, f"the data after the {what}", opaque=False, verb="is")


def printable_strings(data: bytes, minimum: int = 6) -> str:
    """The runs of printable ASCII in binary metadata (EXIF), one a line, for screening."""
    return "\n".join(m.decode("ascii") for m in re.findall(rb"[\x20-\x7e]{%d,}" % minimum, data[:MAX_PART]))


def png(fh: BinaryIO, size: int, scan: Scan, text: TextHandler) -> Iterator[Finding]:
    known = set(rules()["png_chunks"])
    keywords = set(rules()["png_keywords"])
    text_max = rules()["png_text_max"]
    fh.seek(8)
    pos, number = 8, 0
    while pos + 12 <= size:
        header = fh.read(8)
        if len(header) < 8:
            break
        length, ctype = struct.unpack(">I4s", header)
        number += 1
        name = ctype.decode("latin-1")
        where = f"PNG chunk {number} ({name})" if name.isalpha() else f"PNG chunk {number}"
        body_at = pos + 8
        if name in ("tEXt", "zTXt", "iTXt", "eXIf") or name not in known:
            body = fh.read(min(length, MAX_PART))
            yield from _png_chunk(name, body, length, where, scan, text, keywords, text_max, known)
        if name == "IEND":
            end = body_at + length + 4
            fh.seek(end)
            yield from trailing(scan, fh.read(MAX_PART), "PNG's end (IEND)")
            return
        pos = body_at + length + 4
        fh.seek(pos)
    yield finding(CHECK, Verdict.REVIEW, "the PNG has no IEND chunk: it is cut short or not what it claims")


def _png_chunk(
    name: str,
    body: bytes,
    length: int,
    where: str,
    scan: Scan,
    text: TextHandler,
    keywords: set[str],
    text_max: int,
    known: set[str],
) -> Iterator[Finding]:
    if name == "eXIf":
        yield from text(printable_strings(body), f"{where} strings")
        return
    if name not in ("tEXt", "zTXt", "iTXt"):
        yield finding(CHECK, Verdict.REVIEW, f"an unknown PNG chunk of {length:,} bytes: data no viewer shows", where)
        yield from scan.judge(body, where, "the chunk's data", opaque=False, verb="is")
        return
    keyword, _, rest = body.partition(b"\x00")
    try:
        if name == "tEXt":
            content = rest.decode("latin-1")
        elif name == "zTXt":
            content = zlib.decompressobj().decompress(rest[1:], MAX_PART).decode("latin-1")
        else:
            flag, _method, rest = rest[0], rest[1], rest[2:]
            _language, _, rest = rest.partition(b"\x00")
            _translated, _, rest = rest.partition(b"\x00")
            raw = zlib.decompressobj().decompress(rest, MAX_PART) if flag else rest
            content = raw.decode("utf-8", errors="replace")
    except (zlib.error, IndexError):
        yield finding(CHECK, Verdict.REVIEW, "a damaged compressed PNG text chunk", where)
        return
    key = keyword.decode("latin-1")
    label = f"{where} '{key}'" if re.fullmatch(r"[\w :.-]{1,40}", key) else where
    if key.startswith("Raw profile type"):
        # ImageMagick's hex-encoded EXIF/IPTC/XMP: metadata, screened as the strings it holds.
        hexed = re.sub(r"[^0-9a-fA-F]", "", content.split("\n", 3)[-1])
        with contextlib.suppress(ValueError):
            content = printable_strings(bytes.fromhex(hexed[: len(hexed) // 2 * 2]))
        yield from text(content, label)
        return
    yield from text(content, label)
    if key not in keywords or len(content) > text_max:
        yield finding(
            CHECK,
            Verdict.REVIEW,
            f"a PNG text chunk of {len(content):,} characters: text no viewer shows (checked as a file of its own)",
            label,
        )
        yield from scan.member(content.encode("utf-8"), label)


JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def jpeg(data: bytes, scan: Scan, text: TextHandler) -> Iterator[Finding]:
    ids = [i.encode("latin-1") for i in rules()["jpeg_app_ids"]]
    pos, segment = 2, 0
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            yield finding(CHECK, Verdict.REVIEW, f"the JPEG's structure breaks at byte {pos:,}: not a clean image")
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            yield from trailing(scan, data[pos + 2 :], "JPEG's end (EOI)")
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if pos + 4 > len(data):
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        body = data[pos + 4 : pos + 2 + length]
        segment += 1
        where = f"JPEG segment {segment}"
        if marker == 0xFE:
            yield from text(body.decode("latin-1"), f"{where} (comment)")
        elif 0xE0 <= marker <= 0xEF:
            app = f"{where} (APP{marker - 0xE0})"
            if body.startswith(b"Exif"):
                yield from text(printable_strings(body), f"{app} strings")
            elif body.startswith(b"http://ns.adobe.com/xap/1.0/"):
                yield from text(body.decode("utf-8", errors="replace"), f"{app} XMP")
            elif not any(body.startswith(i) for i in ids):
                yield finding(CHECK, Verdict.REVIEW, f"an unknown APP segment of {len(body):,} bytes", app)
                yield from scan.judge(body, app, "the segment's data", opaque=False, verb="is")
        pos += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next marker
            found = JPEG_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
    yield finding(CHECK, Verdict.REVIEW, "the JPEG has no end marker (EOI): it is cut short or not what it claims")


def gif(data: bytes, scan: Scan, text: TextHandler) -> Iterator[Finding]:
    apps = {a.encode("latin-1") for a in rules()["gif_applications"]}
    if len(data) < 13:
        return
    flags = data[10]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    block = 0
    while pos < len(data):
        introducer = data[pos]
        block += 1
        if introducer == 0x3B:
            yield from trailing(scan, data[pos + 1 :], "GIF's trailer")
            return
        if introducer == 0x2C:
            if pos + 10 > len(data):
                break
            local = data[pos + 9]
            pos += 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0) + 1  # + LZW minimum code size
            _, pos = _sub_blocks(data, pos)
        elif introducer == 0x21 and pos + 1 < len(data):
            label = data[pos + 1]
            body, pos = _sub_blocks(data, pos + 2)
            where = f"GIF block {block}"
            if label == 0xFE:
                yield from text(body.decode("latin-1"), f"{where} (comment)")
            elif label == 0x01:
                yield from text(printable_strings(body, 2), f"{where} (plain text)")
            elif label == 0xFF and body[1:12] not in apps and body[:11] not in apps:
                yield finding(CHECK, Verdict.REVIEW, f"an unknown GIF application block of {len(body):,} bytes", where)
                yield from scan.judge(body, where, "the block's data", opaque=False, verb="is")
        else:
            break
    yield finding(CHECK, Verdict.REVIEW, "the GIF has no trailer: it is cut short or not what it claims")


def _sub_blocks(data: bytes, pos: int) -> tuple[bytes, int]:
    parts = []
    while pos < len(data):
        n = data[pos]
        pos += 1
        if n == 0:
            break
        parts.append(data[pos : pos + n])
        pos += n
    return b"".join(parts), pos


XMP_NOISE = re.compile(r"^(\d{4}-\d\d-\d\d([T ][\d:.+\-Z]*)?|(uuid|xmp\.(did|iid)):[\w-]+|[\w-]+/[\w.+-]+)$")


def xmp_values(xml: str) -> str:
    """The values an XMP packet states (element text and attribute values), less timestamps, document ids and
    media types: what a person wrote into the document's properties."""
    values = re.findall(r">([^<>]+)<", xml) + re.findall(r"\w+:\w+=\"([^\"]*)\"", xml)
    kept = [v.strip() for v in values if v.strip() and not XMP_NOISE.match(v.strip()) and "://" not in v]
    return "\n".join(dict.fromkeys(kept))


def pdf(path: Path, size: int, scan: Scan, text: TextHandler) -> Iterator[Finding]:
    tail_size = min(size, 4 * 2**20)
    with path.open("rb") as fh:
        fh.seek(size - tail_size)
        tail = fh.read()
    end = tail.rfind(b"%%EOF")
    if end < 0:
        yield finding(CHECK, Verdict.REVIEW, "no %%EOF in the PDF's last 4 MB: its end cannot be found")
    else:
        # Incremental updates add whole sections, each ending in %%EOF: only what follows the last one counts.
        yield from trailing(scan, tail[end + 5 :], "PDF's last %%EOF")
    yield from _pdf_parts(path, scan, text)


def _pdf_parts(path: Path, scan: Scan, text: TextHandler) -> Iterator[Finding]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            return  # the documents check reports it
        attachments = reader.attachments
        root = reader.trailer["/Root"]
        metadata = root.get("/Metadata") if hasattr(root, "get") else None
        xmp = metadata.get_object().get_data() if metadata is not None else b""
    except (PyPdfError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return  # a PDF pypdf cannot read is the documents check's finding
    if xmp:
        yield from text(xmp_values(xmp[:MAX_PART].decode("utf-8", errors="replace")), "PDF XMP metadata")
    files = [part for contents in attachments.values() for part in contents]
    files += _annotation_files(reader)
    for number, part in enumerate(files, start=1):
        where = f"PDF attachment {number}"
        yield finding(CHECK, Verdict.REVIEW, f"a file of {len(part):,} bytes attached to the PDF", where)
        yield from scan.judge(part[:MAX_PART], where, "the attachment", opaque=False, verb="is")


def _annotation_files(reader: object) -> list[bytes]:
    """Files attached to pages as annotations (a paperclip icon), which the document's name tree does not list."""
    from pypdf.errors import PyPdfError

    found: list[bytes] = []
    try:
        for number, page in enumerate(reader.pages):  # type: ignore[attr-defined]
            if number >= 500:
                break
            for ref in page.get("/Annots") or []:
                annot = ref.get_object()
                if annot.get("/Subtype") != "/FileAttachment":
                    continue
                spec = annot.get("/FS")
                stream = spec.get_object().get("/EF", {}).get("/F") if spec is not None else None
                if stream is not None:
                    found.append(stream.get_object().get_data()[:MAX_PART])
    except (PyPdfError, OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # a damaged annotation is the documents check's concern
    return found


def zip_end(fh: BinaryIO, size: int, scan: Scan) -> Iterator[Finding]:
    """Bytes after a zip's end-of-central-directory record (and its declared comment)."""
    tail_size = min(size, 65_557 + 22)
    fh.seek(size - tail_size)
    tail = fh.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return  # not a well-formed zip: the archive or table reader reports it
    (comment,) = struct.unpack("<H", tail[at + 20 : at + 22])
    if comment:
        text = tail[at + 22 : at + 22 + comment]
        yield finding(CHECK, Verdict.REVIEW, f"the zip carries a comment of {comment:,} bytes", "zip comment")
        yield from scan.judge(text, "zip comment", "the zip comment", opaque=False, verb="is")
    yield from trailing(scan, tail[at + 22 + comment :], "zip's end record")


def workbook_parts(path: Path, scan: Scan, text: TextHandler) -> Iterator[Finding]:
    """Parts of an Excel workbook that a table reader never reads: pivot caches, data models, embedded files and
    anything that is not part of the format are review and checked as files; cell comments are screened."""
    known = tuple(rules()["xlsx_parts"])
    hidden: dict[str, str] = rules()["xlsx_hidden"]
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    with archive:
        for number, info in enumerate(archive.infolist()[:2000], start=1):
            name = info.filename
            if info.is_dir():
                continue
            where = f"workbook part {number}"
            if name.startswith(("xl/comments", "xl/threadedComments/")) and name.endswith(".xml"):
                body = archive.open(info).read(MAX_PART).decode("utf-8", errors="replace")
                yield from text("\n".join(re.findall(r"<(?:\w+:)?t(?:\s[^>]*)?>([^<]*)<", body)), f"{where} (comments)")
                continue
            what = next((why for prefix, why in hidden.items() if name.startswith(prefix)), None)
            if what is None and name.startswith(known):
                continue
            what = what or "a part that is not part of a workbook"
            why = f"{what} ({info.file_size:,} bytes): data a reader does not see"
            yield finding(CHECK, Verdict.REVIEW, why, where)
            with archive.open(info) as member:
                yield from scan.judge(member.read(MAX_PART), where, "the part", opaque=False, verb="is")


def appended_zip(path: Path, kind: str, scan: Scan) -> Iterator[Finding]:
    """A zip whose end record closes a file of another type (a polyglot: PNG, PDF or table with a zip behind it)
    is found by zipfile the same way unzip finds it."""
    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            names = len(archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    with path.open("rb") as fh:
        data = fh.read(MAX_READ)
    start = data.find(b"PK\x03\x04")
    where = "zip inside the file"
    yield finding(CHECK, Verdict.REVIEW, f"a zip archive of {names} member(s) hidden in a {kind} file", where)
    if start >= 0:
        yield from scan.member(data[start:], where)


def gzip_end(path: Path, scan: Scan) -> Iterator[Finding]:
    """Bytes after the last gzip member (concatenated members are legitimate; anything else is not)."""
    with path.open("rb") as fh:
        engine = zlib.decompressobj(31)
        expanded = 0
        while True:
            block = fh.read(1 << 20)
            if not block:
                return
            try:
                expanded += len(engine.decompress(block, 0))
            except zlib.error:
                return  # damaged: the archive check reports it
            if expanded > scan.limit:
                return  # the archive check refuses it
            if engine.eof:
                rest = engine.unused_data + fh.read(MAX_PART)
                if rest.startswith(b"\x1f\x8b"):
                    engine = zlib.decompressobj(31)
                    fh.seek(fh.tell() - len(rest))
                    continue
                yield from trailing(scan, rest, "gzip stream's end")
                return


def parquet(path: Path, size: int, scan: Scan, text: TextHandler) -> Iterator[Finding]:
    """Parquet key-value metadata beyond what pandas and Arrow write, and byte ranges no column chunk uses."""
    import pyarrow.parquet as pq

    with path.open("rb") as fh:
        fh.seek(max(0, size - MAX_READ))
        tail = fh.read()
    if not tail.endswith(b"PAR1"):
        end = tail.rfind(b"PAR1")
        if end > 0:
            yield from trailing(scan, tail[end + 4 :], "Parquet footer (PAR1)")
        return  # not readable as Parquet: the tables check reports it
    try:
        meta = pq.ParquetFile(path).metadata
    except Exception:  # an unreadable Parquet file is the tables check's finding
        return
    for key, value in (meta.metadata or {}).items():
        name = key.decode("utf-8", errors="replace")
        if name in ("pandas", "ARROW:schema", "org.apache.spark.sql.parquet.row.metadata", "writer.model.name"):
            continue
        where = "Parquet metadata" + (f" '{name}'" if re.fullmatch(r"[\w:.-]{1,40}", name) else "")
        yield from text(value[:MAX_PART].decode("utf-8", errors="replace"), where)
        if len(value) > 2000:
            yield finding(CHECK, Verdict.REVIEW, f"{len(value):,} bytes of file metadata a reader does not show", where)
            yield from scan.judge(value, where, "the metadata value", opaque=False, verb="is")
    ranges = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            start = column.dictionary_page_offset or column.data_page_offset
            if column.dictionary_page_offset is not None and column.data_page_offset:
                start = min(column.dictionary_page_offset, column.data_page_offset)
            ranges.append((start, start + column.total_compressed_size))
    with path.open("rb") as fh:
        fh.seek(size - 8)
        (footer,) = struct.unpack("<I", fh.read(4))
        covered = 4  # "PAR1"
        gaps = []
        for start, end in sorted(ranges):
            if start - covered > 64:
                gaps.append((covered, start))
            covered = max(covered, end)
        if size - 8 - footer - covered > 64:
            gaps.append((covered, size - 8 - footer))
        for number, (start, end) in enumerate(gaps[:5], start=1):
            where = f"Parquet gap {number}"
            fh.seek(start)
            data = fh.read(min(end - start, MAX_PART))
            why = f"{end - start:,} bytes inside the Parquet file that no column uses: data no reader shows"
            yield finding(CHECK, Verdict.REVIEW, why, where)
            yield from scan.judge(data, where, "the unused bytes", opaque=False, verb="is")


def image_bytes(data: bytes, kind: str, scan: Scan, text: TextHandler) -> Iterator[Finding]:
    """The structural checks of an image held in memory (an embedded figure decoded from a page)."""
    if kind == "png":
        yield from png(io.BytesIO(data), len(data), scan, text)
    elif kind == "jpeg":
        yield from jpeg(data, scan, text)
    elif kind == "gif":
        yield from gif(data, scan, text)
