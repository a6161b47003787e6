"""What every `enclave` command shares: the top-level group (`--home`), the context it hands each command (the
Enclave home and its registry), and `friendly`, which turns errors the user can act on into one line and exit 1."""

from __future__ import annotations

import functools
import getpass
import importlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from kernel.config import Paths
from kernel.db import Registry
from kernel.errors import EnclaveError
from provisioning.site_settings import apply_settings
from workbench.errors import WorkbenchError


def actor() -> str:
    """Who is acting: the invoking user (through sudo too)."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


class Context:
    def __init__(self, home: Path | None) -> None:
        self.paths = Paths(home.resolve()) if home else Paths.from_env()
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self.paths.home.mkdir(parents=True, exist_ok=True)
            self._registry = Registry.of(self.paths)
        return self._registry


def friendly(fn: Callable) -> Callable:
    """Turn EnclaveError (and the researcher's library's WorkbenchError, which a command reading a view may meet)
    into one line on stderr and exit 1; other failures into a short notice (the traceback only with
    ENCLAVE_DEBUG=1, since library messages may quote file contents)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (EnclaveError, WorkbenchError) as exc:
            click.echo(f"enclave: error: {exc}", err=True)
            sys.exit(1)
        except ValidationError as exc:
            click.echo(f"enclave: error: {exc.errors()[0]['msg']}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("enclave: interrupted; nothing was published", err=True)
            sys.exit(130)
        except Exception as exc:
            if os.environ.get("ENCLAVE_DEBUG"):
                raise
            click.echo(
                f"enclave: internal error ({type(exc).__name__}); rerun with ENCLAVE_DEBUG=1 for details", err=True
            )
            sys.exit(3)

    return wrapper


pass_ctx = click.make_pass_decorator(Context)


# Each top-level command and the module that defines it ("module" registers it on `main` when imported;
# "module:name" is a command `main` adds). `enclave X` imports X's module only: the others pull in pandas,
# JupyterHub's ORM or OAuthenticator, seconds of start-up an admin's every command would pay. `--help` loads them all.
COMMANDS: dict[str, str] = {
    **dict.fromkeys(("site", "dataset", "consent", "user", "audit"), "provisioning.cli.registry"),
    "project": "provisioning.cli.projects",
    **dict.fromkeys(("backup", "restore", "upgrade", "install"), "provisioning.cli.operations"),
    "keys": "provisioning.cli.keys",
    **dict.fromkeys(
        ("demo", "demo-data", "up", "down", "status", "host", "workspace", "run", "run-status"),
        "provisioning.cli.running",
    ),
    "airlock": "output_checks.cli:airlock",  # the airlock's commands live with the airlock
    **dict.fromkeys(("federation", "federate"), "federation.cli"),  # federation's with federation
    "consortium": "federation.cli_consortium:consortium",  # federation sits above provisioning: named, not imported
}


class CommandTable(click.Group):
    """A click group whose commands are imported when first asked for, from a table of name -> module."""

    def __init__(self, *args: Any, table: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.table = dict(table)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.table})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.table:
            self.load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def load(self, name: str) -> click.Command:
        """Import the module of command `name`; LookupError if it does not define it (the table is wrong)."""
        module, _, attr = self.table[name].partition(":")
        loaded = importlib.import_module(module)
        if attr:
            self.add_command(getattr(loaded, attr), name)
        if name not in self.commands:
            raise LookupError(f"{module} defines no command {name!r}")
        return self.commands[name]


@click.group(cls=CommandTable, table=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(path_type=Path), help="Enclave state folder (default: $ENCLAVE_HOME).")
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """Enclave: a trusted research environment for multimodal cardiovascular research."""
    try:
        apply_settings()  # the site's settings file (/etc/enclave/enclave.env): sudo drops ENCLAVE_* variables
    except EnclaveError as exc:
        click.echo(f"enclave: error: {exc}", err=True)
        sys.exit(1)
    ctx.obj = Context(home)
