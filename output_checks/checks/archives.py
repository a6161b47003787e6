"""Archives (zip, tar, gzip, bzip2, xz) are opened recursively under the policy's limits on depth, member count,
total size and compression ratio; each member is unpacked into a private folder, checked like a file, and its
findings reported under "archive!member". Sizes are counted while unpacking, not taken from headers, so a zip bomb
is refused when it crosses a limit instead of being expanded. Links and devices are never followed or created.
An archive whose members all pass is still review: a reviewer must see what is inside."""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, ClassVar

from output_checks.checks.base import Context, Subject, finding
from output_checks.verdicts import Finding, Verdict

COPY_BLOCK = 1 << 20


class LimitExceeded(Exception):
    pass


class _Budget:
    def __init__(self, ctx: Context, compressed: int) -> None:
        self.policy = ctx.policy
        self.compressed = max(compressed, 1)
        self.total = 0
        self.members = 0

    def member(self) -> None:
        self.members += 1
        if self.members > self.policy.archive_max_members:
            raise LimitExceeded(f"more than {self.policy.archive_max_members} members")

    def grow(self, n: int) -> None:
        self.total += n
        if self.total > self.policy.archive_max_total_bytes:
            raise LimitExceeded(f"expands beyond {self.policy.archive_max_total_mb:g} MB")
        if self.total > 10 * 2**20 and self.total / self.compressed > self.policy.archive_max_ratio:
            raise LimitExceeded(
                f"compression ratio above {self.policy.archive_max_ratio:g}:1 (a decompression bomb is refused)"
            )


def _copy(source: IO[bytes], target: Path, budget: _Budget) -> int:
    size = 0
    with target.open("wb") as out:
        while block := source.read(COPY_BLOCK):
            budget.grow(len(block))
            size += len(block)
            out.write(block)
    return size


def _safe_name(index: int, name: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name)[:80] or "member"
    return f"{index:05d}-{base}"


def _members(subject: Subject, folder: Path, budget: _Budget) -> Iterator[tuple[str, Path | None, str]]:
    """(member name, unpacked path or None, note) for each member, unpacking one at a time."""
    kind = subject.kind
    if kind == "zip":
        with zipfile.ZipFile(subject.path) as archive:
            for index, info in enumerate(archive.infolist()):
                if info.is_dir():
                    continue
                budget.member()
                if info.flag_bits & 0x1:
                    yield info.filename, None, "encrypted member: cannot be checked"
                    continue
                ratio = info.file_size / max(info.compress_size, 1)
                if ratio > budget.policy.archive_max_ratio and info.file_size > 10 * 2**20:
                    raise LimitExceeded(f"member {index + 1} would expand {info.file_size / info.compress_size:,.0f}:1")
                target = folder / _safe_name(index, info.filename)
                with archive.open(info) as source:
                    _copy(source, target, budget)
                yield info.filename, target, ""
    elif kind == "tar":
        with tarfile.open(subject.path, mode="r:*") as archive:
            for index, info in enumerate(archive):
                if info.isdir():
                    continue
                budget.member()
                if not info.isfile():
                    yield info.name, None, "a link or special file: not followed"
                    continue
                source = archive.extractfile(info)
                if source is None:
                    yield info.name, None, "unreadable member"
                    continue
                target = folder / _safe_name(index, info.name)
                _copy(source, target, budget)
                yield info.name, target, ""
    else:
        opener: dict[str, Callable[[Path], IO[bytes]]] = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}
        name = re.sub(r"\.(gz|tgz|bz2|xz)$", "", Path(subject.location).name) or "content"
        budget.member()
        target = folder / _safe_name(0, name)
        with opener[kind](subject.path) as source:
            _copy(source, target, budget)
        if tarfile.is_tarfile(target):
            inner = Subject(f"{subject.location}!{name}", target, "tar", target.stat().st_size, subject.depth)
            yield from _members(inner, folder, budget)
            return
        yield name, target, ""


class ArchiveCheck:
    name: ClassVar[str] = "archives"
    kinds: ClassVar[frozenset[str] | None] = frozenset({"zip", "tar", "gzip", "bzip2", "xz"})

    def run(self, subject: Subject, ctx: Context) -> Iterator[Finding]:
        policy = ctx.policy
        yield finding(self.name, Verdict.REVIEW, "an archive: its members are checked, and a reviewer must see them")
        if subject.depth >= policy.archive_max_depth:
            yield finding(
                self.name, Verdict.REVIEW, f"nested deeper than {policy.archive_max_depth} archives: not opened"
            )
            return
        if ctx.check_member is None:
            return
        budget = _Budget(ctx, subject.size)
        folder = Path(tempfile.mkdtemp(prefix="airlock-", dir=ctx.workdir))
        members = 0
        try:
            for name, path, note in _members(subject, folder, budget):
                members += 1
                where = f"{subject.location}!{name}" if subject.depth else name
                if path is None:
                    yield finding(self.name, Verdict.REVIEW, note, where)
                    continue
                from output_checks.sniff import refine, sniff

                kind = refine(path, sniff(path))
                member = Subject(where, path, kind, path.stat().st_size, subject.depth + 1)
                for f in ctx.check_member(member):
                    if f.location.startswith(f"{where}!"):
                        yield f  # already placed by a nested archive
                    else:
                        yield finding(f.check, f.verdict, f.message, f"{where}: {f.location}" if f.location else where)
                path.unlink(missing_ok=True)
        except LimitExceeded as exc:
            members = -1
            yield finding(self.name, Verdict.BLOCK, f"archive refused: {exc}")
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, lzma.LZMAError, ValueError) as exc:
            members = -1
            yield finding(self.name, Verdict.REVIEW, f"archive is damaged or unreadable ({type(exc).__name__})")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if members == 0:
            yield finding(self.name, Verdict.REVIEW, "the archive is empty")
