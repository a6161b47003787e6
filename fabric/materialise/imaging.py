"""DICOM de-identification for project views: one site file in, one pseudonymised file out.

What changes in a file is the recipe's business (deid_recipe.py: deid's default DICOM recipe, modelled on the DICOM
PS3.15 basic profile, and the enclave's policy on top: UIDs re-keyed per project, analysis parameters kept,
institution and free text removed, the pseudonym as PatientID and PatientName). Two paths apply it and write the
same bytes: explicit VR little endian files (the common case) take the byte-level fast path (deid_fast_path.py,
over the scanner in dicom_bytes.py); every other file, and any file the fast path cannot vouch for, goes through
the pydicom path (deid_pydicom.py). Untouched elements (pixel data above all) are never decoded or re-encoded.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

from fabric.materialise import deid_fast_path, deid_pydicom

_quiet_state = threading.local()


class _DropWhileQuiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet_state, "on", False)


# pydicom's warnings quote element values (patient names, UIDs) into the log: dropped while a file is de-identified.
logging.getLogger("pydicom").addFilter(_DropWhileQuiet())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    _quiet_state.on = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        _quiet_state.on = False


def _deidentify(src: Path, dst: Path, pseudonym: str, key: bytes, atomic: bool) -> tuple[str, int]:
    fast = deid_fast_path.deidentify_fast(src, dst, pseudonym, key, atomic=atomic)
    return fast or deid_pydicom.deidentify(src, dst, pseudonym, key, atomic=atomic)


def deidentify_dicom(src: Path, dst: Path, *, pseudonym: str, key: bytes, atomic: bool = True) -> tuple[str, int]:
    """Write a de-identified copy of DICOM file `src` to `dst` (see fabric/materialise/deid_recipe.py for what
    changes) and return the SHA-256 and size of what was written.

    Raises InvalidInputError for a file that is not complete, readable DICOM; `dst` is then left untouched (with
    `atomic=False`, for a fresh staging folder: `dst` must not exist, and is removed again on failure).
    """
    with _quiet():
        return _deidentify(Path(src), Path(dst), pseudonym, key, atomic)


def deidentify_dicom_many(
    pairs: list[tuple[Path, Path]], *, pseudonym: str, key: bytes, atomic: bool = True
) -> list[tuple[str, int]]:
    """`deidentify_dicom` over one study's files; the recipe and per-tag plan are shared (memoised) across calls."""
    return [deidentify_dicom(src, dst, pseudonym=pseudonym, key=key, atomic=atomic) for src, dst in pairs]
