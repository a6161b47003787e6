"""The backup's file handling without an installation (issue 16): links are recorded, never followed, when reading
or writing; a file is never replaced; a manifest naming a path outside what a backup holds, an unlisted file or a
wrong size refuses the backup before anything is written."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath

import pytest

from provisioning import backup_files as files
from provisioning.backup import FORMAT, BackupError
from provisioning.restore import verify_backup

pytestmark = pytest.mark.unit


def test_walk_records_links_and_does_not_follow_them(tmp_path):
    root, outside = tmp_path / "store", tmp_path / "outside"
    (root / "homes" / "alice").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("not the project's")
    (root / "homes" / "alice" / "notes.txt").write_text("mine")
    (root / "homes" / "alice" / "elsewhere").symlink_to(outside)
    (root / "lost+found").mkdir()
    entries, skipped = files.walk(root, skip_top=("lost+found",))
    found = {str(e.rel): e for e in entries}
    assert set(found) == {"homes/alice/notes.txt", "homes/alice/elsewhere"} and skipped == 0
    assert found["homes/alice/elsewhere"].link == str(outside)
    assert found["homes/alice/notes.txt"].size == 4


def test_copy_refuses_a_link_swapped_in_for_a_folder(tmp_path):
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("x")
    src.mkdir()
    dst.mkdir()
    (src / "d").symlink_to(outside)
    src_fd, dst_fd = files.open_dir(src), files.open_dir(dst)
    try:
        with pytest.raises(OSError):
            files.copy_file(src_fd, PurePosixPath("d/f"), dst_fd, PurePosixPath("d/f"), progress=lambda _n: None)
    finally:
        os.close(src_fd)
        os.close(dst_fd)
    assert list(dst.iterdir()) == []


def test_write_never_replaces_a_file_nor_writes_through_a_link(tmp_path):
    (tmp_path / "there").write_text("kept")
    (tmp_path / "outside").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "outside")
    fd = files.open_dir(tmp_path)
    try:
        with pytest.raises(FileExistsError):
            files.write_stream(fd, PurePosixPath("there"), iter([b"new"]))
        with pytest.raises(OSError):
            files.write_stream(fd, PurePosixPath("via/file"), iter([b"new"]))
        written = files.write_stream(fd, PurePosixPath("a/b/new"), iter([b"new"]))
    finally:
        os.close(fd)
    assert (tmp_path / "there").read_text() == "kept" and list((tmp_path / "outside").iterdir()) == []
    assert written.sha256 == hashlib.sha256(b"new").hexdigest()
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o700 and (tmp_path / "a/b/new").stat().st_mode & 0o777 == 0o600


def _backup(folder: Path, listed: dict[str, bytes], manifest_extra: dict | None = None) -> Path:
    entries = {}
    for rel, body in listed.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(body)
        entries[rel] = {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body), "mode": "0600"}
    entries.update(manifest_extra or {})
    (folder / "MANIFEST.json").write_text(json.dumps({"format": FORMAT, "files": entries}))
    return folder


def test_a_whole_backup_verifies(tmp_path):
    backup = _backup(tmp_path, {"registry.sqlite": b"db", "secrets/project-p.key": b"k"},
                     {"projects/p/store/homes/a/l": {"link": "x"}})  # fmt: skip
    assert set(verify_backup(backup)["files"]) == {
        "registry.sqlite",
        "secrets/project-p.key",
        "projects/p/store/homes/a/l",
    }


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: (b / "extra.txt").write_text("x"), "extra.txt: not in the manifest"),
        (lambda b: (b / "secrets" / "project-p.key").write_bytes(b"kk"), "2 bytes, the manifest says 1"),
        (lambda b: (b / "secrets" / "project-p.key").unlink(), "secrets/project-p.key: missing"),
    ],
)
def test_a_damaged_backup_is_refused_naming_the_file(tmp_path, damage, message):
    backup = _backup(tmp_path, {"registry.sqlite": b"db", "secrets/project-p.key": b"k"})
    damage(backup)
    with pytest.raises(BackupError, match="nothing was restored") as refused:
        verify_backup(backup)
    assert message in str(refused.value)


@pytest.mark.parametrize("rel", ["../etc/cron.d/x", "/etc/passwd", "hub/cookie_secret", "secrets/../../x"])
def test_a_manifest_naming_a_path_outside_a_backup_is_refused(tmp_path, rel):
    backup = _backup(tmp_path, {"registry.sqlite": b"db"}, {rel: {"sha256": "0" * 64, "bytes": 0}})
    with pytest.raises(BackupError, match="not a path a backup holds"):
        verify_backup(backup)
