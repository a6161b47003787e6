"""`enclave run`'s checks without a sandbox (provisioning/notebook_runs.py): what counts as a notebook, and the
run's sandbox as data (its own id beside the workspace's, no hub folder when asked). The real runs are in
tests/security/test_enclave_run.py."""

from __future__ import annotations

import os

import nbformat
import pytest

from hub import sandbox
from kernel.config import Paths
from kernel.errors import EnclaveError
from provisioning.notebook_runs import MAX_NOTEBOOK_BYTES, invoker, read_notebook

pytestmark = pytest.mark.unit


def test_a_notebook_is_read_whole(tmp_path):
    path = tmp_path / "ok.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), path)
    assert read_notebook(path, invoker()) == path.read_bytes()


@pytest.mark.parametrize(
    "content",
    [b"a,b\n1,2\n", b'{"cells": 3}', b"PAR1\x00\x01binary", b"[" * 100_000, b"\xff\xfe not utf-8"],
    ids=["csv", "wrong-schema", "binary", "deep-json", "not-utf8"],
)
def test_anything_but_a_notebook_is_refused_without_quoting_it(tmp_path, content):
    path = tmp_path / "x.ipynb"
    path.write_bytes(content)
    with pytest.raises(EnclaveError, match="not a Jupyter notebook") as refused:
        read_notebook(path, invoker())
    assert "a,b" not in str(refused.value) and "PAR1" not in str(refused.value)


def test_a_huge_file_a_folder_and_a_fifo_are_refused(tmp_path):
    huge = tmp_path / "huge.ipynb"
    with huge.open("wb") as out:
        out.truncate(MAX_NOTEBOOK_BYTES + 1)
    with pytest.raises(EnclaveError, match="larger than"):
        read_notebook(huge, invoker())
    with pytest.raises(EnclaveError, match="not a regular file"):
        read_notebook(tmp_path, invoker())
    fifo = tmp_path / "pipe.ipynb"
    os.mkfifo(fifo)
    with pytest.raises(EnclaveError, match="not a regular file"):  # at once: no writer needed
        read_notebook(fifo, invoker())
    with pytest.raises(EnclaveError, match="cannot be opened with your rights"):
        read_notebook(tmp_path / "missing.ipynb", invoker())


def test_a_run_has_its_own_sandbox_id_and_may_bind_no_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("ENCLAVE_WORKSPACE_ENV", str(tmp_path / "env"))
    paths = Paths(tmp_path / "home")
    workspace = sandbox.layout(paths, "cardio-risk", "alice", uid=990, gid=990)
    run = sandbox.layout(paths, "cardio-risk", "alice", uid=990, gid=990, instance="run-1a2b", hub_socket_root=None)
    assert run.run != workspace.run and run.etc != workspace.etc  # so its cleanup touches neither
    assert run.run.name.startswith(workspace.run.name) and run.home == workspace.home
    assert workspace.hub is not None and run.hub is None
    assert sandbox.INSIDE_HUB not in run.argv(["papermill"])
    assert len(str(run.socket)) < 108  # still a valid Unix socket path
