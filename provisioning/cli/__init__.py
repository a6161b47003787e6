"""The `enclave` command line: thin commands over fabric/ and provisioning/steps.py. Errors the user can act on
print one line and exit 1; nothing here prints an identifier or a secret."""

from __future__ import annotations

from output_checks.cli import airlock  # the airlock's commands live with the airlock

# each module's commands register on `main` when it is imported
from provisioning.cli import keys, operations, projects, registry, running  # noqa: F401
from provisioning.cli.base import main

main.add_command(airlock)

__all__ = ["main"]
