"""The `enclave` command line: thin commands over fabric/ and provisioning/steps.py. Errors the user can act on
print one line and exit 1; nothing here prints an identifier or a secret.

Each command's module is imported when the command runs (provisioning/cli/base.py's COMMANDS): registry.py (sites,
datasets, consent, users, audit), projects.py, operations.py (backup, restore, upgrade, install), keys.py,
running.py (demo, up, down, status, host, workspace, run) and the airlock's own output_checks/cli.py."""

from __future__ import annotations

from provisioning.cli.base import main

__all__ = ["main"]
