"""Tests that read `../shared/` skip with their reason when it is absent and `CI` is unset, and fail loudly when
`CI` is set (tests/third_party.py): run on a module that needs it, in a child pytest, with the data hidden."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.third_party import REPO

pytestmark = pytest.mark.unit

NEEDS_DATA = "from tests.third_party import HTSLIB\n\ndef test_reads_it():\n    assert HTSLIB.is_dir()\n"


def run_without_shared(tmp_path, ci: str | None) -> subprocess.CompletedProcess:
    module = tmp_path / "test_needs_shared.py"
    module.write_text(NEEDS_DATA)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(ENCLAVE_SHARED=str(tmp_path / "no-shared-here"), PYTHONPATH=str(REPO))
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q", str(module), "--rootdir", tmp_path],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_missing_shared_data_skips_with_the_reason_outside_ci(tmp_path):
    done = run_without_shared(tmp_path, None)
    assert done.returncode in (0, 5), done.stdout + done.stderr  # 5: pytest collected nothing to run
    assert "1 skipped" in done.stdout and "third-party test data not found" in done.stdout


def test_missing_shared_data_fails_loudly_in_ci(tmp_path):
    done = run_without_shared(tmp_path, "true")
    assert done.returncode != 0
    assert "CI must lay shared/ beside the checkout" in done.stdout + done.stderr
