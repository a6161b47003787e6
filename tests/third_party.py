"""Where the real third-party test inputs live: `shared/testdata/third_party/` beside the repository (CI lays a
copy of shared/ there), or $ENCLAVE_SHARED. Missing inputs fail the run: a robustness test must not pass by
having nothing to read."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ENCLAVE_SHARED", REPO.parent / "shared"))
THIRD_PARTY = SHARED / "testdata" / "third_party"
HTSLIB = THIRD_PARTY / "htslib"
NBFORMAT = THIRD_PARTY / "nbformat"

if not HTSLIB.is_dir():
    raise RuntimeError(f"third-party test data not found at {HTSLIB}; set ENCLAVE_SHARED to the shared/ folder")
