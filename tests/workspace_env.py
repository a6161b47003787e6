"""Test helper: the workspace environment's Python (images/requirements.lock), where mlflow, papermill and bokeh
live. Tests that need it run it in a subprocess, on this checkout's code, and skip when it has not been built."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def workspace_env() -> Path:
    """$ENCLAVE_WORKSPACE_ENV, else the checkout's shared build in .workspace/."""
    env = os.environ.get("ENCLAVE_WORKSPACE_ENV")
    return Path(env) if env else REPO / ".workspace"


def workspace_python() -> Path:
    return workspace_env() / "bin" / "python"


requires_workspace_env = pytest.mark.skipif(
    not workspace_python().exists(),
    reason=f"no workspace environment at {workspace_env()} (images/requirements.lock): build it there or set "
    "ENCLAVE_WORKSPACE_ENV to one",
)


def run_workspace_python(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run the workspace Python with `args`, importing this checkout's fabric (not the copy installed there)."""
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), environ.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [str(workspace_python()), *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
