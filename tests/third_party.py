"""Where the real third-party test inputs live: `shared/testdata/third_party/` beside the repository (CI lays a
copy of shared/ there), or $ENCLAVE_SHARED.

A test module that imports this one needs those files. When they are missing, the module is skipped with the reason
(someone who cloned the repository alone still gets a green run that says what it skipped), unless the `CI`
variable is set: then the import fails loudly, because in CI a robustness test must not pass by having nothing to
read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ENCLAVE_SHARED", REPO.parent / "shared"))
THIRD_PARTY = SHARED / "testdata" / "third_party"
HTSLIB = THIRD_PARTY / "htslib"
NBFORMAT = THIRD_PARTY / "nbformat"

if not HTSLIB.is_dir():
    missing = f"third-party test data not found at {HTSLIB} (the shared/ folder beside the repository)"
    if os.environ.get("CI"):
        raise RuntimeError(f"{missing}; CI must lay shared/ beside the checkout, or set ENCLAVE_SHARED")
    pytest.skip(f"{missing}; set ENCLAVE_SHARED to run these tests", allow_module_level=True)
