"""What one checker child may use: time per file and to start, address space, scratch space, no core files. The
memory and scratch limits are set with prlimit around the child's command line; the time limits are the parent's
deadlines (`process`, `runner`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass


@dataclass(frozen=True)
class CheckerLimits:
    """What one checker child may use. A file over `seconds_per_file` or `memory_bytes` is `review`."""

    seconds_per_file: float = 300.0
    startup_seconds: float = 180.0  # interpreter, libraries and the screening model
    memory_bytes: int = 6 * 2**30  # address space (RLIMIT_AS), which is what a runaway allocation hits first
    scratch_bytes: int = 1 * 2**30  # /tmp inside: archive members are unpacked there (policy caps them at 512 MB)

    def prlimit(self) -> list[str]:
        size = str(self.memory_bytes)
        # no core files: a dump of a parser holds the researcher's bytes and the identifier index
        return ["--as=" + size, "--core=0", f"--fsize={self.scratch_bytes}"]


DEFAULT_LIMITS = CheckerLimits()


def limited(argv: list[str], limits: CheckerLimits) -> list[str]:
    """`argv` under prlimit: the address space and scratch file size capped, no core files."""
    prlimit = shutil.which("prlimit") or shutil.which("prlimit", path="/usr/bin:/bin")
    if prlimit is None:
        raise RuntimeError("prlimit (util-linux) is not installed: the checker's memory limit cannot be set")
    return [prlimit, *limits.prlimit(), "--", *argv]
