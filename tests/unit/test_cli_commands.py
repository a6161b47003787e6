"""The `enclave` command table (provisioning/cli/base.py's COMMANDS): complete, each entry the module that defines
its command, and a command importing only its own module, so no command pays for another's libraries."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click
import pytest

from provisioning.cli.base import COMMANDS, CommandTable, main

pytestmark = pytest.mark.unit

MODULES = sorted({target.partition(":")[0] for target in COMMANDS.values()})


def defined_commands() -> dict[str, str]:
    """Every top-level command, by name, and the module its callback lives in (after importing every module)."""
    for module in MODULES:
        importlib.import_module(module)
    for name in COMMANDS:
        main.get_command(click.Context(main), name)
    return {name: command.callback.__module__ for name, command in main.commands.items()}


def test_every_command_is_in_the_table_with_the_module_that_defines_it():
    defined = defined_commands()
    assert set(defined) == set(COMMANDS)
    for name, module in defined.items():
        assert module == COMMANDS[name].partition(":")[0], name


def test_help_lists_every_command():
    listed = main.list_commands(click.Context(main))
    assert listed == sorted(COMMANDS)


def test_a_table_entry_whose_module_lacks_the_command_is_an_error():
    group = CommandTable(name="t", table={"nope": "provisioning.cli.keys"})
    with pytest.raises(LookupError, match="defines no command 'nope'"):
        group.get_command(click.Context(group), "nope")


@pytest.mark.parametrize(
    ("command", "absent"),
    [
        ("keys", ["oauthenticator", "pandas", "provisioning.cli.registry", "provisioning.cli.running"]),
        ("airlock", ["oauthenticator", "pandas", "jupyterhub", "provisioning.cli.keys"]),
        ("consortium", ["oauthenticator", "pandas", "jupyterhub", "provisioning.cli.keys", "output_checks"]),
    ],
)
def test_a_command_imports_its_own_module_only(command, absent):
    # a fresh interpreter: this one has imported everything already
    probe = (
        "import sys\nfrom provisioning.cli import main\n"
        f"main([{command!r}, '--help'], standalone_mode=False)\n"
        f"print(sorted(m for m in {absent!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
