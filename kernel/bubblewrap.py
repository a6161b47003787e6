"""The base both of Enclave's bubblewrap sandboxes start from, the workspaces' (hub/sandbox.py) and the airlock
checker's (output_checks/sandbox/confinement.py): the namespaces they unshare, the host's programs mounted read-only,
the few host files of /etc they need, and the interpreter prefix a virtual environment was made from."""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # merged-/usr symlinks on Debian
# Read-only files from the host's /etc that programs in the workspace need (time zone, MIME types for the file
# browser, fonts for matplotlib); nothing that names a host, a network or an account.
HOST_ETC = ("localtime", "timezone", "mime.types", "fonts", "ld.so.cache", "alternatives")


def system_mounts() -> list[str]:
    """bwrap arguments for the host's programs, read-only: /usr, and /bin, /lib, ... as the host has them (merged-/usr
    symlinks, or folders). Both sandboxes start from it, the workspaces' and the airlock checker's."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in SYSTEM_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    return args


NAMESPACES = ("--unshare-pid", "--unshare-ipc", "--unshare-net", "--unshare-uts", "--unshare-cgroup")


def base_python_home(env: Path) -> Path | None:
    """The prefix of the interpreter a venv was made from, when the sandbox must mount it (not under /usr)."""
    cfg = env / "pyvenv.cfg"
    if not cfg.exists():
        return None
    for line in cfg.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            prefix = Path(value.strip()).resolve().parent
            return None if prefix == Path("/usr") or Path("/usr") in prefix.parents else prefix
    return None
