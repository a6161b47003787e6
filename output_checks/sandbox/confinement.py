"""How a checker child is confined on this host: as root, bubblewrap running it as the airlock's own unprivileged
checks account (or the overflow id where that account is not made yet); otherwise a plain subprocess as the caller,
under the same limits. This module owns the choice and bubblewrap's command line.

| inside | what | access |
| --- | --- | --- |
| /usr, /bin, /lib… and a few /etc files | the system (as the workspace sandbox mounts it) | read-only |
| the airlock's Python environment and its interpreter | the same absolute paths as on the host | read-only |
| the `output_checks` and `fabric` packages | the same absolute paths as on the host | read-only |
| /airlock/in/N/NAME | a private copy of file N, owned by the checks account | read-only |
| /tmp | scratch (archive members), a size-capped tmpfs | read-write |

No network namespace but loopback, no other process visible, no registry, no secrets, no home: the known
identifiers arrive over stdin as keyed hashes (`KnownIdentifiers.export`)."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kernel.bubblewrap import HOST_ETC, NAMESPACES, base_python_home, system_mounts
from output_checks.sandbox.limits import CheckerLimits

log = logging.getLogger("enclave.airlock.sandbox")

CHECKS_ACCOUNT = "enclave-airlock-checks"  # made by `enclave host apply` (provisioning/host.py)
NOBODY = 65534  # the overflow id, used only when root runs checks on a host where the account is not made yet
INSIDE_IN = "/airlock/in"
PACKAGES = ("output_checks", "fabric", "kernel", "workbench")  # all the child imports from the checkout
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")  # one file at a time, few arenas
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Isolation:
    """How children start on this host: as `uid` in bubblewrap (root), or as the caller (uid None)."""

    uid: int | None
    gid: int | None
    account: str

    @property
    def sandboxed(self) -> bool:
        return self.uid is not None


_SAID: set[str] = set()


def _say_once(key: str, message: str, *args: object) -> None:
    if key not in _SAID:
        _SAID.add(key)
        log.warning(message, *args)


def isolation(account: str = CHECKS_ACCOUNT) -> Isolation:
    """Root: the checks account (or, where `enclave host apply` has not made it yet, the overflow id), in
    bubblewrap. Anyone else: a plain subprocess with the same limits (there is no account to switch to)."""
    if os.geteuid() != 0:
        _say_once("plain", "airlock checks run in a plain subprocess (not root: no sandbox account to switch to)")
        return Isolation(None, None, "")
    if shutil.which("bwrap") is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed: the airlock will not parse files as root")
    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        _say_once(account, "account %s is missing (run 'enclave host apply'): checks run sandboxed as nobody", account)
        return Isolation(NOBODY, NOBODY, "nobody")
    return Isolation(entry.pw_uid, entry.pw_gid, account)


# ------------------------------------------------------------------------------------------------ the command line


def _parents(path: Path) -> list[str]:
    """bwrap makes missing mount-point parents 0700; the checks account must traverse them."""
    args: list[str] = []
    for parent in reversed(path.parents):
        if str(parent) == "/" or str(parent) == "/usr" or str(parent).startswith("/usr/"):
            continue
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _python_env() -> list[Path]:
    env = Path(sys.prefix)
    roots = [env]
    if (home := base_python_home(env)) is not None:
        roots.insert(0, home)
    return roots


def environment() -> dict[str, str]:
    env = {
        "HOME": "/tmp",  # noqa: S108  (the sandbox's own tmpfs)
        "LANG": "C.UTF-8",
        "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "MPLCONFIGDIR": "/tmp/matplotlib",  # noqa: S108
    }
    return env


def sandbox_argv(
    iso: Isolation, staging: Path, limits: CheckerLimits, extra_ro: Sequence[Path] = (), kind: str = "checks"
) -> list[str]:
    """bwrap's command line for one checker child (pure: the security test reads it as well as running it)."""
    assert iso.uid is not None and iso.gid is not None
    args = [shutil.which("bwrap") or "bwrap", *NAMESPACES, "--die-with-parent", "--new-session"]
    args += system_mounts()
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--size", str(limits.scratch_bytes), "--perms", "1777", "--tmpfs", "/tmp"]  # noqa: S108
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ("passwd", "group"):
        args += ["--ro-bind", str(staging / "etc" / name), f"/etc/{name}"]
    for name in HOST_ETC:
        if (Path("/etc") / name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for root in [*_python_env(), *(REPO / p for p in PACKAGES), *extra_ro]:
        args += [*_parents(root), "--ro-bind", str(root), str(root)]
    args += ["--perms", "0755", "--dir", "/airlock", "--ro-bind", str(staging / "in"), INSIDE_IN]
    args += ["--chdir", "/tmp", "--clearenv"]  # noqa: S108
    for key, value in sorted(environment().items()):
        args += ["--setenv", key, value]
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    args += ["--", setpriv, f"--reuid={iso.uid}", f"--regid={iso.gid}", "--clear-groups"]
    args += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return args + child_command(kind)


def child_command(kind: str) -> list[str]:
    """The inside's command line (`child.py`); `-I`: no PYTHON* variables, user site or current folder on its path."""
    return [sys.executable, "-I", "-m", "output_checks.sandbox.child", kind]
