"""Checks that misbehave on purpose, for the robustness tests of the checker sandbox (in the style of JupyterHub's
`mocking.py`): a test swaps one in with `check_files_sandboxed(..., plugins=PLUGINS)` and names it in the policy's
`checks`. Nothing in the product selects them; they live in the package only because the child must import them
from inside the sandbox, where the tests folder is not mounted.

Each misbehaves only on a file whose content starts with its trigger, so the other files of the same batch show that
a fresh child carries on after it."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from output_checks.checks.base import Context, Subject
from output_checks.verdicts import Finding, Verdict

CRASH = b"SEGFAULT"
HANG = b"HANG"
GREEDY = b"GREEDY"
PROBE = b"PROBE"


def _starts(subject: Subject, trigger: bytes) -> bool:
    with subject.path.open("rb") as fh:
        return fh.read(len(trigger)) == trigger


class SegfaultCheck:
    """Dereferences a null pointer: the parser crashes the way a C extension does on a hostile file."""

    name: ClassVar[str] = "mock_segfault"
    kinds: ClassVar[frozenset[str] | None] = None

    def run(self, subject: Subject, ctx: Context) -> Iterator[Finding]:
        if _starts(subject, CRASH):
            ctypes.string_at(0)
        yield from ()


class HangCheck:
    """Never returns (a decompressor in a loop)."""

    name: ClassVar[str] = "mock_hang"
    kinds: ClassVar[frozenset[str] | None] = None

    def run(self, subject: Subject, ctx: Context) -> Iterator[Finding]:
        if _starts(subject, HANG):
            while True:
                time.sleep(1)
        yield from ()


class GreedyCheck:
    """Asks for far more memory than any limit allows (a bomb that expands on read). The engine catches the
    MemoryError like any reader error; the sandbox must still say it was memory."""

    name: ClassVar[str] = "mock_greedy"
    kinds: ClassVar[frozenset[str] | None] = None

    def run(self, subject: Subject, ctx: Context) -> Iterator[Finding]:
        if _starts(subject, GREEDY):
            hoard = bytearray(64 * 2**30)
            del hoard
        yield from ()


class ProbeCheck:
    """Reports what the checker can reach, for the security test: the file is `PROBE` and a JSON list of probes
    (["read", path], ["list", path], ["connect", host, port]); the answer is one finding whose message is JSON."""

    name: ClassVar[str] = "mock_probe"
    kinds: ClassVar[frozenset[str] | None] = None

    def run(self, subject: Subject, ctx: Context) -> Iterator[Finding]:
        if not _starts(subject, PROBE):
            return
        probes = json.loads(subject.path.read_bytes()[len(PROBE) :])
        status = Path("/proc/self/status").read_text()
        caps = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))
        answers: dict[str, object] = {"uid": os.getuid(), "gid": os.getgid(), "cap_eff": caps, "pids": _pids()}
        for probe in probes:
            answers[json.dumps(probe)] = _probe(probe)
        yield Finding(self.name, Verdict.REVIEW, json.dumps(answers))


def _pids() -> list[int]:
    return sorted(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())


def _probe(probe: list) -> str:
    try:
        if probe[0] == "read":
            Path(probe[1]).read_bytes()
        elif probe[0] == "list":
            return ",".join(sorted(os.listdir(probe[1])))
        elif probe[0] == "connect":
            with socket.create_connection((probe[1], probe[2]), timeout=5):
                pass
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


PLUGINS = {cls.name: f"{__name__}:{cls.__name__}" for cls in (SegfaultCheck, HangCheck, GreedyCheck, ProbeCheck)}
