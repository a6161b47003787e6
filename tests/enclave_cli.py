"""Test helper: the installed `enclave` command run as an admin runs it, in a subprocess, on one Enclave home."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ENCLAVE = shutil.which("enclave", path=str(Path(sys.executable).parent)) or "enclave"


def enclave(home: Path, *args: str, ok: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`enclave --home HOME ARGS...`; with `ok`, a non-zero exit fails the test with its standard error."""
    result = subprocess.run(
        [ENCLAVE, "--home", str(home), *args], capture_output=True, text=True, timeout=300, check=False, input=stdin
    )
    if ok:
        assert result.returncode == 0, result.stderr
    return result
