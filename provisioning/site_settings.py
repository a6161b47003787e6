"""A site's settings in one root-owned file, `/etc/enclave/enclave.env` (`ENCLAVE_SETTINGS_FILE` names another; set
to an empty value, none is read): the `ENCLAVE_*` variables of docs/reference/hub-config.md as `NAME=value` lines.
The systemd units read it (`EnvironmentFile=`) and so does every `enclave` command before it starts, so that
`sudo enclave ...`, which drops the caller's environment, acts on the same installation as the services. A variable
already in the environment wins over the file.

Root trusts what this file says (where the home is, which ports to open), so it is refused unless root owns it and
nobody else may write to it or its folder.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import MutableMapping
from pathlib import Path

from kernel.errors import EnclaveError

SETTINGS_ENV = "ENCLAVE_SETTINGS_FILE"
DEFAULT_SETTINGS = Path("/etc/enclave/enclave.env")
NAME = re.compile(r"[A-Z][A-Z0-9_]*")
ALLOWED = re.compile(r"ENCLAVE_[A-Z0-9_]+")  # what the file may set: Enclave's own settings


def settings_file(environ: MutableMapping[str, str] | None = None) -> Path | None:
    """The settings file in force: `ENCLAVE_SETTINGS_FILE` when set (empty: none), else the default."""
    environ = os.environ if environ is None else environ
    if SETTINGS_ENV in environ:
        return Path(environ[SETTINGS_ENV]) if environ[SETTINGS_ENV] else None
    return DEFAULT_SETTINGS


def _trusted(path: Path) -> None:
    for checked in (path, path.parent):
        info = checked.stat()
        if os.geteuid() == 0 and info.st_uid != 0:
            raise EnclaveError(f"{checked} must belong to root: root trusts the settings it holds")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise EnclaveError(f"{checked} must not be writable by its group or others (chmod go-w {checked})")


def read_settings(path: Path) -> dict[str, str]:
    """`NAME=value` lines (blank lines and `#` comments skipped; a value may be quoted with ' or "). A line that is
    not one, or a name that is not an Enclave setting, is an error naming the line (never its value)."""
    _trusted(path)
    settings: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not NAME.fullmatch(name):
            raise EnclaveError(f"{path}, line {number}: not a NAME=value setting")
        if not ALLOWED.fullmatch(name):
            raise EnclaveError(f"{path}, line {number}: {name} is not an Enclave setting (ENCLAVE_...)")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        settings[name] = value
    return settings


def apply_settings(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Put the settings file's variables into `environ` (the process environment), each only where it is not set
    already; returns their names. No file, nothing to do."""
    environ = os.environ if environ is None else environ
    path = settings_file(environ)
    if path is None or not path.is_file():
        return []
    applied = []
    for name, value in read_settings(path).items():
        if name not in environ:
            environ[name] = value
            applied.append(name)
    return applied
