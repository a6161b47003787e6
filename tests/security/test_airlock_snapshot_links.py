"""The airlock reads researchers' outputs with more rights than they have; a folder swapped for a link between the
request's path check and the copy (a researcher can do that from a running workspace) must not lead it out of the
outputs folder. `open_beneath` follows no link at any component and opens no FIFO or device as a file."""

from __future__ import annotations

import os

import pytest

from kernel.errors import EnclaveError
from output_checks.release.storage import AirlockStore, open_beneath

pytestmark = [pytest.mark.security, pytest.mark.unit]


@pytest.fixture
def outputs(tmp_path):
    root = tmp_path / "outputs"
    (root / "tables").mkdir(parents=True)
    (root / "tables" / "counts.csv").write_text("group,n\na,20\n")
    secret = tmp_path / "elsewhere"
    secret.mkdir()
    (secret / "counts.csv").write_text("patient,nhs\nP1,9434765919\n")
    return root, secret


def test_a_plain_file_below_the_outputs_folder_opens(outputs):
    root, _ = outputs
    fd = open_beneath(root, root.joinpath("tables/counts.csv").relative_to(root))
    with os.fdopen(fd, "rb") as fh:
        assert fh.read().startswith(b"group")


def test_a_folder_swapped_for_a_link_is_refused(outputs):
    root, secret = outputs
    (root / "tables" / "counts.csv").unlink()
    (root / "tables").rmdir()
    (root / "tables").symlink_to(secret, target_is_directory=True)  # the swap, after the path was checked
    with pytest.raises(EnclaveError, match="cannot be read"):
        open_beneath(root, root.joinpath("tables/counts.csv").relative_to(root))
    store = AirlockStore(root.parent / "airlock")
    with pytest.raises(EnclaveError):
        store.snapshot("r1", 1, 1, root / "tables" / "counts.csv", beneath=root)
    assert not any((root.parent / "airlock").rglob("*-v1"))


def test_a_file_link_and_a_fifo_are_refused(outputs):
    root, secret = outputs
    (root / "link.csv").symlink_to(secret / "counts.csv")
    with pytest.raises(EnclaveError):
        open_beneath(root, root.joinpath("link.csv").relative_to(root))
    os.mkfifo(root / "pipe.csv")
    store = AirlockStore(root.parent / "airlock")
    with pytest.raises(EnclaveError, match="not a regular file"):  # opened without blocking, then refused
        store.snapshot("r1", 2, 1, root / "pipe.csv", beneath=root)
