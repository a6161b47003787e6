"""The checker child started ahead: a long-running airlock keeps one child with its readers and model loaded and its
sandbox empty, which the next request's batch takes; a fresh one is started after each batch, never during it."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from output_checks.sandbox.confinement import Isolation, isolation
from output_checks.sandbox.limits import DEFAULT_LIMITS, CheckerLimits
from output_checks.sandbox.process import Child, start_child
from output_checks.sandbox.staging import Staging


@dataclass
class Spare:
    """A child started ahead, its staging folder, and what it was started for (isolation, limits, extra mounts)."""

    key: tuple
    staging: Staging
    child: Child


_SPARE_LOCK = threading.Lock()
_SPARE: list[Spare] = []  # at most one
_KEEP_WARM = False


def keep_warm(on: bool = True) -> None:
    """A long-running airlock keeps one checks child started ahead, its readers and model loaded and its sandbox
    empty until a request's files are copied in: a request then pays for none of it. One-shot callers (the command
    line) do not."""
    global _KEEP_WARM
    _KEEP_WARM = on
    if on:
        refill(isolation(), DEFAULT_LIMITS, ())
    else:
        _drop_spare()


def wait_warm(seconds: float = 300) -> bool:
    """Block until the warm child has loaded everything (benchmarks, tests)."""
    with _SPARE_LOCK:
        spare = _SPARE[0] if _SPARE else None
    return spare is not None and (spare.child.ready or spare.child.wait_ready(seconds))


def refill(iso: Isolation, limits: CheckerLimits, extra: Sequence[Path]) -> None:
    """Start the next child ahead, if the airlock keeps one warm and none is waiting."""
    key = (iso, limits, tuple(extra))
    with _SPARE_LOCK:
        if not _KEEP_WARM or _SPARE:
            return
        staging = Staging(iso)
        _SPARE.append(Spare(key, staging, start_child(iso, staging, limits, extra, kind="checks-warm")))


def take_spare(iso: Isolation, limits: CheckerLimits, extra: Sequence[Path]) -> Spare | None:
    """The waiting child, if it was started for this batch's isolation, limits and mounts and is still alive."""
    with _SPARE_LOCK:
        spare = _SPARE.pop() if _SPARE else None
    if spare is None:
        return None
    if spare.key == (iso, limits, tuple(extra)) and spare.child.alive():
        return spare
    spare.child.kill()
    spare.child.finish()
    spare.staging.remove()
    return None


@atexit.register
def _drop_spare() -> None:
    with _SPARE_LOCK:
        spares = list(_SPARE)
        _SPARE.clear()
    for spare in spares:
        spare.child.kill()
        spare.child.finish()
        spare.staging.remove()
