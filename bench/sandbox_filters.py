"""What the workspace's new filters cost, each against the same sandboxed command without it, runs interleaved so both
see the same machine load (root only: the sandbox drops to an unprivileged account as a workspace does).

  seccomp   a system-call-heavy Python loop (stat, open/read/close, getpid) in the workspace sandbox
            with the seccomp filter (hub/seccomp.py)             vs  the same sandbox without it
  confine   a kernel's start (`import ipykernel`) under enclave_workspace/confine.py (Landlock)
            inside the sandbox with the filter                    vs  the same start unconfined

Reported per measurement: the median of each side, their ratio, and the spread (min-max) of each side.
"""

from __future__ import annotations

import os
import pwd
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from hub import sandbox, seccomp
from kernel import bubblewrap
from kernel.config import Paths

SYSCALLS = """
import os, time
t = time.perf_counter()
for i in range(40_000):
    os.stat("/project/data")
    with open("/etc/passwd", "rb") as f:
        f.read(64)
    os.getpid()
print(time.perf_counter() - t)
"""
KERNEL_START = "import ipykernel.kernelapp"


def _layout(root: Path, env: Path) -> sandbox.SandboxLayout:
    nobody = pwd.getpwnam("nobody")
    for name in ("data", "outputs", "mlflow", "home", "run", "etc"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "home").chmod(0o777)
    layout = sandbox.SandboxLayout(
        project="bench", user="bench", uid=nobody.pw_uid, gid=nobody.pw_gid, env=env,
        data=root / "data", outputs=root / "outputs", mlflow=root / "mlflow", home=root / "home",
        run=root / "run", etc=root / "etc", python_home=bubblewrap.base_python_home(env),
    )  # fmt: skip
    layout = sandbox.replace(layout, environment=layout.base_environment())
    layout.write_etc()
    return layout


def _timed(layout: sandbox.SandboxLayout, command: list[str], filtered: bool) -> float:
    fd = seccomp.filter_fd() if filtered else None
    try:
        argv = layout.argv(command, seccomp_fd=fd)
        started = time.perf_counter()
        subprocess.run(  # bwrap, as the sandbox layout builds it
            argv, env=layout.environment, pass_fds=(fd,) if fd is not None else (), check=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        return time.perf_counter() - started
    finally:
        if fd is not None:
            os.close(fd)


def _pair(label: str, baseline: list[float], candidate: list[float], what: str) -> dict:
    b, c = statistics.median(baseline), statistics.median(candidate)
    return {
        "baseline": what,
        "baseline_s": b,
        "enclave_s": c,
        "ratio": c / b,
        "spread_s": {"baseline": [min(baseline), max(baseline)], "enclave": [min(candidate), max(candidate)]},
        "repeats": len(baseline),
        "label": label,
        "peak_rss_bytes": 0,  # not measured: the command is the same on both sides
    }


def bench(env: Path, repeats: int) -> dict:
    if os.geteuid() != 0 or not shutil.which("bwrap"):
        raise SystemExit("the sandbox filters bench needs root and bubblewrap")
    python = str(env / "bin" / "python")
    confine = [python, "-I", str(next(env.glob("lib/python3*/site-packages/enclave_workspace/confine.py"))), "--"]
    with tempfile.TemporaryDirectory(prefix="enclave-bench-filters-") as scratch:
        root = Path(scratch)
        root.chmod(0o755)
        layout = _layout(root, env)
        seccomp.compile_filter()  # compiled once per hub process; not part of a workspace's start
        times: dict[str, list[float]] = {k: [] for k in ("plain", "seccomp", "unconfined", "confined")}
        loop = [python, "-c", SYSCALLS]
        for _ in range(repeats):
            times["plain"].append(_timed(layout, loop, filtered=False))
            times["seccomp"].append(_timed(layout, loop, filtered=True))
            times["unconfined"].append(_timed(layout, [python, "-c", KERNEL_START], filtered=True))
            times["confined"].append(_timed(layout, [*confine, python, "-c", KERNEL_START], filtered=True))
    return {
        "seccomp": _pair("seccomp", times["plain"], times["seccomp"], "the same sandbox without the seccomp filter"),
        "confine": _pair("confine", times["unconfined"], times["confined"], "the same kernel start, unconfined"),
    }


def report(result: dict) -> str:
    lines = ["", f"{'sandbox filter':<16} {'without s':>10} {'with s':>9} {'ratio':>7}  spread (without / with)"]
    for name, r in result.items():
        (b_low, b_high), (c_low, c_high) = r["spread_s"]["baseline"], r["spread_s"]["enclave"]
        lines.append(
            f"{name:<16} {r['baseline_s']:>10.3f} {r['enclave_s']:>9.3f} {r['ratio']:>6.2f}x  "
            f"{b_low:.3f}-{b_high:.3f} / {c_low:.3f}-{c_high:.3f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_filters", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    result = bench(Paths.from_env().workspace_env, args.repeats)
    print(json.dumps(result, indent=2))
    print(report(result))
