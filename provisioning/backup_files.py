"""How a backup reads and writes files without ever following a link: folders are walked and opened one component
at a time through descriptors (`O_NOFOLLOW`), since a project's store is written by its researchers and root must
never be led elsewhere by a link planted there; SQLite databases are copied through SQLite's online backup API, so
a copy taken while Enclave writes is a consistent database, never a torn file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CHUNK = 1 << 20
SQLITE_MAGIC = b"SQLite format 3\x00"
# what SQLite keeps beside a database; folded into the copy by the backup API, so never copied on their own
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Entry:
    """One thing found under a root: a plain file (its size), or a symbolic link (its target, never followed)."""

    rel: PurePosixPath
    size: int = 0
    mode: int = 0o600
    link: str | None = None


def open_dir(path: Path) -> int:
    """A descriptor of a folder an admin named (a link there is followed: it is the admin's, not a researcher's)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def walk(root: Path, *, skip_top: tuple[str, ...] = ()) -> tuple[list[Entry], int]:
    """Every plain file and link below `root` (not following links), and how many other things (sockets, fifos,
    devices) were passed over. `skip_top` names entries of `root` itself to leave out (a store's lost+found)."""
    entries: list[Entry] = []
    skipped = 0
    for folder, dirs, files, fd in os.fwalk(root, follow_symlinks=False):
        rel = PurePosixPath(Path(folder).relative_to(root).as_posix())
        if folder == str(root):
            dirs[:] = [d for d in dirs if d not in skip_top]
            files = [f for f in files if f not in skip_top]
        for name in sorted(files) + [d for d in dirs if stat.S_ISLNK(_lstat(d, fd).st_mode)]:
            st = _lstat(name, fd)
            if stat.S_ISREG(st.st_mode):
                entries.append(Entry(rel / name, st.st_size, stat.S_IMODE(st.st_mode)))
            elif stat.S_ISLNK(st.st_mode):
                entries.append(Entry(rel / name, link=os.readlink(name, dir_fd=fd)))
            else:
                skipped += 1
    return entries, skipped


def _lstat(name: str, dir_fd: int) -> os.stat_result:
    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


def _descend(
    root_fd: int, parts: tuple[str, ...], *, create: bool, mode: int = 0o700, owner: tuple[int, int] | None = None
) -> int:
    """A descriptor of the folder `parts` below `root_fd`, each component opened without following a link (and
    made, with `mode` and `owner`, when `create` and absent). The caller closes it."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            if part in ("", ".", ".."):
                raise ValueError(f"unsafe path component {part!r}")
            made = False
            if create:
                try:
                    os.mkdir(part, mode, dir_fd=fd)
                    made = True
                except FileExistsError:
                    pass
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
            if made and owner is not None:
                os.fchown(fd, *owner)
        return fd
    except BaseException:
        os.close(fd)
        raise


def make_dirs(root_fd: int, rel: PurePosixPath, *, mode: int = 0o700) -> None:
    """The folders of `rel` below `root_fd`, each made with `mode` (never through a link)."""
    os.close(_descend(root_fd, rel.parts, create=True, mode=mode))


def is_sqlite(root_fd: int, rel: PurePosixPath) -> bool:
    """Whether the file begins as a SQLite database does (read through descriptors, never a link)."""
    parent = _descend(root_fd, rel.parts[:-1], create=False)
    try:
        fd = os.open(rel.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    finally:
        os.close(parent)
    with os.fdopen(fd, "rb") as source:
        return source.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def sqlite_side_file(rel: PurePosixPath, databases: set[PurePosixPath]) -> bool:
    """Whether `rel` is a database's write-ahead log, shared memory or journal (copied through the database)."""
    return any(rel.name == db.name + suffix and rel.parent == db.parent for db in databases for suffix in
               SQLITE_SIDE_FILES)  # fmt: skip


@dataclass(frozen=True)
class Written:
    sha256: str
    size: int


def copy_file(
    src_root: int, rel: PurePosixPath, dst_root: int, dest: PurePosixPath, *, mode: int = 0o600,
    progress: Callable[[int], object],
) -> Written:  # fmt: skip
    """Copy the plain file `rel` below `src_root` to `dest` below `dst_root` (a new file), hashing it."""
    parent = _descend(src_root, rel.parts[:-1], create=False)
    try:
        fd = os.open(rel.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    finally:
        os.close(parent)
    with os.fdopen(fd, "rb") as source:
        if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
            raise OSError(f"{rel} is no longer a plain file")
        return write_stream(dst_root, dest, _chunks(source), mode=mode, progress=progress)


def _chunks(source) -> Iterator[bytes]:
    while chunk := source.read(CHUNK):
        yield chunk


def write_stream(
    dst_root: int, rel: PurePosixPath, chunks: Iterator[bytes], *, mode: int = 0o600,
    progress: Callable[[int], object] = lambda _n: None, owner: tuple[int, int] | None = None,
    dir_mode: int = 0o700,
) -> Written:  # fmt: skip
    """Write `chunks` as the new file `rel` below `dst_root` (folders made `dir_mode`), under a temporary name
    renamed into place once whole; refuses to replace a file that exists. `owner` (uid, gid) is given to the file
    and to each folder made."""
    parent = _descend(dst_root, rel.parts[:-1], create=True, mode=dir_mode, owner=owner)
    temporary = f".{rel.name}.partial-{os.getpid()}"
    digest, size = hashlib.sha256(), 0
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=parent)  # fmt: skip
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                for chunk in chunks:
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    progress(len(chunk))
                out.flush()
                os.fsync(fd)
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        try:
            os.stat(rel.name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            os.rename(temporary, rel.name, src_dir_fd=parent, dst_dir_fd=parent)
        else:
            raise FileExistsError(f"{rel} exists; refusing to replace it")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=parent)
        os.close(parent)
    return Written(digest.hexdigest(), size)


def make_link(
    dst_root: int, rel: PurePosixPath, target: str, *, dir_mode: int = 0o700, owner: tuple[int, int] | None = None
) -> None:
    """The symbolic link `rel` below `dst_root`, pointing at `target` (never followed here)."""
    parent = _descend(dst_root, rel.parts[:-1], create=True, mode=dir_mode, owner=owner)
    try:
        os.symlink(target, rel.name, dir_fd=parent)
        if owner is not None:
            os.chown(rel.name, *owner, dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(parent)


def sqlite_copy(source: Path, dest: Path) -> None:
    """A consistent copy of the SQLite database `source` while others write to it: SQLite's online backup API in
    one step (a read transaction, so the copy is one committed state), then switched to a plain rollback journal
    so that the copy is one self-contained file."""
    if not stat.S_ISREG(os.lstat(source).st_mode):
        raise OSError(f"{source} is not a plain file")
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.close(fd)
    owner = os.lstat(source)
    side = [Path(f"{source}{suffix}") for suffix in SQLITE_SIDE_FILES]
    absent = [path for path in side if not os.path.lexists(path)]
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
            out.execute("PRAGMA journal_mode=DELETE")
        finally:
            out.close()
    finally:
        src.close()
    # Reading a WAL database leaves its -wal and -shm files behind: give any this copy made to the database's
    # owner, so that a project's MLflow (its own account) can still open its store.
    for path in absent:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            os.fchown(fd, owner.st_uid, owner.st_gid)
        finally:
            os.close(fd)


def sha256_of(path: Path, progress: Callable[[int], object] = lambda _n: None) -> Written:
    digest, size = hashlib.sha256(), 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as source:
        for chunk in _chunks(source):
            digest.update(chunk)
            size += len(chunk)
            progress(len(chunk))
    return Written(digest.hexdigest(), size)
