"""Where a checker child reads a batch's files: a private folder with the sandbox's passwd and group and a
read-only copy of each file (with ACRO's record of a table beside it), owned by the checks account and never
copied through a link; without the sandbox, a link to each file under the name it is checked under."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from output_checks.sandbox.confinement import INSIDE_IN, Isolation

ACRO_RESULTS = "results.json"  # ACRO's record of the outputs it checked, beside them (checks/tables/acro.py)
ACRO_EVIDENCE_MAX = 16 * 2**20  # a larger record is not ACRO's: the acro module ignores it too


@dataclass(frozen=True)
class SandboxFile:
    """A file to check: its bytes (`source`), the name it is checked under and the path it is reported as."""

    source: Path
    report_as: str
    name: str = ""

    @property
    def checked_name(self) -> str:
        return self.name or self.source.name


@dataclass
class Staging:
    """A private folder for one batch: the sandbox's passwd and group, and the copies of the files to read."""

    iso: Isolation
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="enclave-airlock-sandbox-")))

    def __post_init__(self) -> None:
        (self.root / "etc").mkdir(mode=0o755)
        (self.root / "in").mkdir(mode=0o755)
        self.root.chmod(0o711)
        if self.iso.sandboxed:
            who = self.iso.account
            (self.root / "etc" / "passwd").write_text(
                f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n{who}:x:{self.iso.uid}:{self.iso.gid}::/tmp:/usr/sbin/nologin\n"
            )
            (self.root / "etc" / "group").write_text(f"root:x:0:\n{who}:x:{self.iso.gid}:\n")

    def add(self, index: int, item: SandboxFile) -> tuple[str, str]:
        """Put file `index` where the child reads it; (path inside, sha256 of what was put there)."""
        folder = self.root / "in" / str(index)
        folder.mkdir(mode=0o500 if self.iso.sandboxed else 0o700)
        target = folder / item.checked_name
        if not self.iso.sandboxed:
            # The caller's own process can read it where it is: a link gives it the name it is checked under.
            target.symlink_to(item.source.absolute())
            return str(target), ""
        # The source is root's (a verified snapshot, or a path root was given): never follow a link to it.
        digest = self._copy(item.source, target)
        self._stage_acro_evidence(item, folder)
        os.chown(folder, self.iso.uid, self.iso.gid)
        return f"{INSIDE_IN}/{index}/{item.checked_name}", digest

    def _copy(self, source: Path, target: Path, limit: int | None = None, dir_fd: int | None = None) -> str:
        """Copy a regular file (never through a link; relative to `dir_fd` when given) for the checks account to
        read; its sha256."""
        digest = hashlib.sha256()
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as src:
            if not stat.S_ISREG(os.fstat(src.fileno()).st_mode) or (limit and os.fstat(src.fileno()).st_size > limit):
                raise OSError(f"{source.name}: not a regular file within the limit")
            with open(target, "xb") as out:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
        os.chmod(target, 0o400)
        os.chown(target, self.iso.uid, self.iso.gid)
        return digest.hexdigest()

    def _stage_acro_evidence(self, item: SandboxFile, folder: Path) -> None:
        """ACRO's record of a table (results.json and checksums/NAME.txt beside it) goes into the sandbox with the
        table, so its evidence (an edit after ACRO checked it, ACRO's fail) is judged there as it is in-process."""
        # The folder beside the table may be the researcher's: no part of the way to the record is followed
        # through a link (a `checksums` link to a root-only folder would otherwise be copied from as root).
        wanted = [
            ((ACRO_RESULTS,), folder / ACRO_RESULTS),
            (("checksums", f"{item.source.name}.txt"), folder / "checksums" / f"{item.checked_name}.txt"),
        ]
        for parts, target in wanted:
            if target.exists():
                continue
            opened: list[int] = []
            try:
                opened.append(os.open(item.source.parent, os.O_RDONLY | os.O_DIRECTORY))
                for part in parts[:-1]:
                    opened.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=opened[-1]))
                target.parent.mkdir(mode=0o500, exist_ok=True)
                self._copy(Path(parts[-1]), target, ACRO_EVIDENCE_MAX, dir_fd=opened[-1])
            except OSError:
                target.unlink(missing_ok=True)  # no evidence is what a missing record gives: the table's own rules
            finally:
                for fd in opened:
                    os.close(fd)
            if target.parent != folder and target.parent.exists():
                os.chown(target.parent, self.iso.uid, self.iso.gid)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
