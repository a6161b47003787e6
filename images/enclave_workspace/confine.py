"""What runs researchers' code in a workspace (kernels and terminals) is confined further than the server that
started it, with Landlock, so that it cannot pose as the server's own services:

- it may write only beneath the researcher's home, the project's outputs and MLflow store, /tmp and /dev/shm (and
  to existing device and /proc files): never in the workspace's runtime folder /run/enclave, where the server's
  socket and the MLflow UI's socket live, so no kernel can put a socket of its own where the proxy looks;
- it may not signal, and (as always with Landlock) not ptrace, any process outside its own confinement: the server
  and the MLflow server it started cannot be killed or replaced from a kernel (kernel ≥ 6.12; without that, a kernel
  can stop MLflow, and the route then answers 503, never a kernel's pages);
- nor connect to an abstract Unix socket outside it.

Kernels and terminals started by the server run `python -I .../enclave_workspace/confine.py -- COMMAND...` (the
kernelspec manager and the terminals' shell command put it in front), which applies
the rules to itself and executes COMMAND: a Landlock domain is inherited by every child and can never be lifted
(no_new_privs is already set by the sandbox). It fails closed: without Landlock the command does not run.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446  # x86_64 and aarch64 (generic table)
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1

WRITE_FILE = 1 << 1
REMOVE_DIR, REMOVE_FILE = 1 << 4, 1 << 5
MAKE_CHAR, MAKE_DIR, MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = (1 << n for n in range(6, 13))
REFER, TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
WRITES = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_CHAR | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO | MAKE_BLOCK
WRITES |= MAKE_SYM
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

# Where confined code may create, remove and write files; the workspace's runtime folder is not among them.
WRITABLE = ("HOME", "ENCLAVE_OUTPUTS", "/project/mlflow", "/tmp", "/dev/shm")  # noqa: S108 (the sandbox's own tmpfs)
# Existing files only: /dev/null, terminals, /proc/self/...
WRITE_EXISTING = ("/dev", "/proc")


class ConfinementError(RuntimeError):
    pass


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]  # fmt: skip


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(number: int, *args: object) -> int:
    result = _libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        error = ctypes.get_errno()
        raise ConfinementError(f"Landlock system call {number} failed: {os.strerror(error)}")
    return result


def abi_version() -> int:
    """The kernel's Landlock ABI (0 when Landlock is missing or disabled)."""
    result = _libc.syscall(ctypes.c_long(SYS_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(result), 0)


def writable_roots(environ: dict[str, str] | os._Environ = os.environ) -> list[str]:
    roots = []
    for entry in WRITABLE:
        path = environ.get(entry, "") if not entry.startswith("/") else entry
        if path and os.path.isdir(path) and path not in roots:
            roots.append(path)
    return roots


def confine(roots: Iterable[str], existing: Iterable[str] = WRITE_EXISTING) -> int:
    """Apply the rules to this process (and so to everything it starts); the Landlock ABI used."""
    abi = abi_version()
    if abi < 1:
        raise ConfinementError("this kernel has no Landlock: researchers' code cannot be confined")
    handled = WRITES | (REFER if abi >= 2 else 0) | (TRUNCATE if abi >= 3 else 0)
    attr = _RulesetAttr(handled, 0, (SCOPE_SIGNAL | SCOPE_ABSTRACT_UNIX_SOCKET) if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 8  # older kernels know only the first field
    ruleset = _syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        grants = [(root, handled) for root in roots]
        grants += [(path, WRITE_FILE | (TRUNCATE if abi >= 3 else 0)) for path in existing if os.path.isdir(path)]
        for path, access in grants:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneath(access, fd)
                _syscall(SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH), ctypes.byref(rule),
                         ctypes.c_uint32(0))  # fmt: skip
            finally:
                os.close(fd)
        _syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    return abi


def launcher() -> list[str]:
    """The prefix that confines a command: this file run by the environment's interpreter, isolated (-I) and by path,
    so that confining costs one small interpreter start and not the package's imports."""
    return [sys.executable, "-I", os.path.abspath(__file__), "--"]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "--" or len(args) < 2:
        sys.exit("usage: python -I confine.py -- COMMAND [ARG...]")
    try:
        confine(writable_roots())
    except (ConfinementError, OSError) as exc:
        sys.exit(f"enclave: refusing to run researchers' code unconfined: {exc}")
    os.execvp(args[1], args[1:])  # noqa: S606 (the kernel or shell, as the server asked)


if __name__ == "__main__":
    main()
