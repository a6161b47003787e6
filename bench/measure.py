"""Wall time and peak resident memory of a command's whole process tree (the command, its workers, their
children), sampled from /proc so that Dask worker processes count too."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss: int
    stdout: str


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        out: list[int] = []
        for task in tasks:
            text = (task / "children").read_text().split()
            out += [int(c) for c in text]
        return out
    except OSError:
        return []


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(root: int) -> int:
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _rss(pid)
        stack += _children(pid)
    return total


def run(command: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    """Run `command` to completion; raise with its stderr if it fails. Dirty pages are flushed first, so a run does
    not pay for the previous run's writes."""
    os.sync()
    peak = 0
    start = time.perf_counter()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])}… failed ({proc.returncode}):\n{stderr[-3000:]}")
    return Run(seconds, peak, stdout)


# ------------------------------------------------------------------------------------------------ helpers of make bench

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def median_run(command: list[str], repeats: int) -> tuple[Run, list[Run]]:
    runs = [run(command, cwd=ROOT) for _ in range(repeats)]
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2], runs


def task(name: str, *args: str) -> list[str]:
    return [PYTHON, "-m", "bench.tasks", name, *args]
