"""The workspace's seccomp filter as data: the system calls a notebook has no use for, refused with EPERM.

Every process of a workspace (the Jupyter server, kernels, terminals, Dask workers and whatever they start) runs
under this filter; bubblewrap loads it (`--seccomp FD`) just before it runs the sandbox's first command, after it
has built the sandbox, and no process can lift it (seccomp filters only ever stack, and no_new_privs is set).

Why these: a researcher who controls code in a kernel must not reach kernel attack surface that user namespaces,
mounts, BPF or keyrings open, nor read or steer another process of the workspace (the Jupyter server holds the
workspace's hub token and counts what reaches the browser). The filter is compiled with libseccomp's Python
bindings from Debian (`python3-seccomp`), never written by hand: `compile_filter()` runs this file with Debian's
interpreter, which prints the BPF program, and `python3 hub/seccomp.py --pfc` prints the readable form.

This module imports nothing of Enclave: Debian's interpreter runs it on its own.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

# (system call, why it is refused) — every call named here gets EPERM whatever its arguments.
REFUSED: tuple[tuple[str, str], ...] = (
    ("unshare", "new namespaces: nested user namespaces give a sandboxed process root-like powers over its own mounts"),
    ("setns", "joining another namespace"),
    ("mount", "mounting file systems (e.g. a tmpfs over /project/data)"),
    ("umount2", "unmounting what the sandbox mounted"),
    ("pivot_root", "changing the root file system"),
    ("chroot", "changing the root folder"),
    ("open_tree", "new mount API"),
    ("move_mount", "new mount API"),
    ("fsopen", "new mount API"),
    ("fsconfig", "new mount API"),
    ("fsmount", "new mount API"),
    ("fspick", "new mount API"),
    ("mount_setattr", "new mount API"),
    ("ptrace", "reading or steering another process of the workspace (the server holds its token)"),
    ("process_vm_readv", "reading another process's memory"),
    ("process_vm_writev", "writing another process's memory"),
    ("kcmp", "comparing other processes' kernel resources"),
    ("pidfd_getfd", "taking a file descriptor out of another process"),
    ("keyctl", "kernel keyrings: shared kernel state, a frequent source of kernel bugs"),
    ("add_key", "kernel keyrings"),
    ("request_key", "kernel keyrings"),
    ("bpf", "loading BPF programs into the kernel"),
    ("perf_event_open", "performance counters: side channels and kernel attack surface"),
    ("userfaultfd", "a primitive of many kernel exploits"),
    ("io_uring_setup", "io_uring: large kernel attack surface that bypasses per-call filtering"),
    ("io_uring_enter", "io_uring"),
    ("io_uring_register", "io_uring"),
    ("init_module", "loading kernel modules"),
    ("finit_module", "loading kernel modules"),
    ("delete_module", "unloading kernel modules"),
    ("kexec_load", "replacing the running kernel"),
    ("kexec_file_load", "replacing the running kernel"),
    ("reboot", "rebooting the host"),
    ("swapon", "host swap"),
    ("swapoff", "host swap"),
    ("syslog", "reading the kernel log"),
    ("acct", "process accounting"),
    ("quotactl", "file system quotas"),
    ("settimeofday", "the host clock"),
    ("clock_settime", "the host clock"),
    ("clock_adjtime", "the host clock"),
    ("adjtimex", "the host clock"),
    ("iopl", "direct hardware I/O"),
    ("ioperm", "direct hardware I/O"),
    ("open_by_handle_at", "opening files by handle, around path permissions"),
    ("name_to_handle_at", "file handles"),
    ("lookup_dcookie", "kernel profiling"),
    ("uselib", "obsolete loader call"),
    ("personality", "changing the execution domain (can turn off address randomisation)"),
)

# clone() is needed for threads and processes; only the flags that make namespaces are refused.
CLONE_NAMESPACE_FLAGS: dict[str, int] = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
    "CLONE_NEWTIME": 0x00000080,
}

# clone3 passes its flags in memory, which seccomp cannot read: it answers ENOSYS, so the C library falls back to
# clone(), whose flags the filter does check.
NOT_IMPLEMENTED: tuple[str, ...] = ("clone3",)

# ioctl requests that push input into a terminal other programs read (TIOCSTI) or reach the console (TIOCLINUX).
REFUSED_IOCTLS: dict[str, int] = {"TIOCSTI": 0x5412, "TIOCLINUX": 0x541C}

DEBIAN_PYTHON = "/usr/bin/python3"


def _build():  # runs under Debian's interpreter, where `seccomp` (python3-seccomp) is importable
    import seccomp

    refused = seccomp.ERRNO(errno.EPERM)
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name, _why in REFUSED:
        f.add_rule(refused, name)
    for name in NOT_IMPLEMENTED:
        f.add_rule(seccomp.ERRNO(errno.ENOSYS), name)
    for flag in CLONE_NAMESPACE_FLAGS.values():
        f.add_rule(refused, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    for request in REFUSED_IOCTLS.values():
        # the request is an int in the kernel: compare its low 32 bits whatever the caller put in the high ones
        f.add_rule(refused, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, request))
    return f


def _numbers() -> dict[str, int]:
    import seccomp

    names = [name for name, _ in REFUSED] + list(NOT_IMPLEMENTED) + ["clone", "ioctl"]
    return {name: seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) for name in names}


class SeccompUnavailable(RuntimeError):
    pass


def _run(flag: str) -> bytes:
    if not Path(DEBIAN_PYTHON).exists():
        raise SeccompUnavailable(f"{DEBIAN_PYTHON} is missing: install Debian's python3 and python3-seccomp")
    done = subprocess.run(  # a fixed interpreter running this very file
        [DEBIAN_PYTHON, "-I", "-S", __file__, flag], capture_output=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise SeccompUnavailable(
            "the workspace seccomp filter could not be compiled (is Debian's python3-seccomp installed?): "
            + done.stderr.decode(errors="replace").strip()[-300:]
        )
    return done.stdout


@functools.cache
def compile_filter() -> bytes:
    """The filter as a BPF program for bubblewrap's `--seccomp FD` (compiled once per process)."""
    return _run("--bpf")


def readable_filter() -> str:
    """libseccomp's pseudo-filter-code: what the BPF program does, for people and tests."""
    return _run("--pfc").decode()


@functools.cache
def syscall_numbers() -> dict[str, int]:
    """This machine's numbers of the refused calls (tests make them by number from inside a workspace)."""
    return json.loads(_run("--numbers"))


def filter_fd() -> int:
    """A file descriptor holding the BPF program, positioned at its start (the caller closes it)."""
    fd = os.memfd_create("enclave-seccomp", 0)
    os.write(fd, compile_filter())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


if __name__ == "__main__":
    # Debian's /usr/lib/python3/dist-packages holds the bindings; -S left site-packages out, so add it alone.
    sys.path.append("/usr/lib/python3/dist-packages")
    if sys.argv[1:] == ["--bpf"]:
        _build().export_bpf(sys.stdout.buffer)
    elif sys.argv[1:] == ["--pfc"]:
        _build().export_pfc(sys.stdout.buffer)
    elif sys.argv[1:] == ["--numbers"]:
        print(json.dumps(_numbers()))
    else:
        sys.exit("usage: python3 hub/seccomp.py --bpf | --pfc | --numbers")
