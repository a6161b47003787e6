"""The `enclave` command line: thin commands over fabric/ and provisioning/steps.py. Errors the user can act on
print one line and exit 1; nothing here prints an identifier or a secret."""

from __future__ import annotations

from output_checks.cli import airlock  # the airlock's commands live with the airlock
from provisioning.cli import operations, projects, registry, running  # noqa: F401  (their commands register on `main`)
from provisioning.cli.base import main

main.add_command(airlock)

__all__ = ["main"]
