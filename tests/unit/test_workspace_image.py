"""The workspace image's static parts against what they configure: the plugin ids that page_config.json disables
exist in the installed JupyterLab (its bundle and schemas in the workspace environment), the commands meant to go
are added only by disabled plugins, the Airlock menu runs a command that exists with arguments it takes, the
Dockerfile builds from the same lock and config as the local builder, and the builder's stamp follows its inputs.

Reading a minified bundle: JupyterLab declares each plugin as an object literal `{id:"@scope/pkg:name",...,
activate:...}` and its command ids as a namespace object filled by `!function(e){e.download="filebrowser:download",
...}(n||(n={}))`; `addCommand(n.download,...)` inside a plugin's activate adds it. A command is attributed to the
nearest plugin declared before the `addCommand` call."""

from __future__ import annotations

import bisect
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import jsonschema
import pytest

from kernel.errors import EnclaveError
from provisioning.workspace_env import (
    ADMIN_PACKAGES,
    PROJECTS,
    REPO,
    config_targets,
    ensure_workspace_env,
    input_digest,
    stamp_inputs,
)
from tests.workspace_env import requires_workspace_env, workspace_env

pytestmark = pytest.mark.unit

IMAGES = REPO / "images"
PAGE_CONFIG = json.loads((IMAGES / "jupyter" / "labconfig" / "page_config.json").read_text())
OVERRIDES = json.loads((IMAGES / "jupyter" / "lab" / "settings" / "overrides.json").read_text())
DISABLED = {plugin for plugin, off in PAGE_CONFIG["disabledExtensions"].items() if off}

# What must not be in a workspace's UI, and why.
REMOVED_COMMANDS = {
    "filebrowser:download": "file browser: Download",
    "filebrowser:copy-download-link": "file browser: Copy Download Link",
    "filebrowser:open-browser-tab": "file browser: Open in New Browser Tab",
    "docmanager:download": "File > Download",
    "docmanager:open-browser-tab": "open a document in a new browser tab (a /files URL)",
    "notebook:export-to-format": "File > Save and Export Notebook As",
    "apputils:print": "File > Print",
}

NAMESPACE = re.compile(r'function\((\w+)\)\{((?:\1\.\w+="[^"]*",?)+)\}\((\w+)\|\|\(\3=\{\}\)\)')
PLUGIN = re.compile(r'\bid:"(@?[\w@./-]+:[\w.-]+)"')
ADD_COMMAND = re.compile(r'addCommand\(\s*([\w$.]+|"[^"]*")\s*,')
CONSTANT = re.compile(r'\b([\w$]+)="([^"]*:[^"]*)"')


@dataclass
class Bundle:
    """One JavaScript file of the installed JupyterLab (core bundle or a prebuilt extension)."""

    name: str
    text: str

    @cached_property
    def plugins(self) -> list[tuple[int, str]]:
        return [(m.start(), m.group(1)) for m in PLUGIN.finditer(self.text)]

    @cached_property
    def namespaces(self) -> list[tuple[int, int, str, dict[str, str]]]:
        found = []
        for m in NAMESPACE.finditer(self.text):
            ids = dict(re.findall(re.escape(m.group(1)) + r'\.(\w+)="([^"]*)"', m.group(2)))
            found.append((m.start(), m.end(), m.group(3), ids))
        return found

    @cached_property
    def constants(self) -> dict[str, list[tuple[int, str]]]:
        """Every `name="scope:id"` assignment, by name, in order."""
        found: dict[str, list[tuple[int, str]]] = {}
        for m in CONSTANT.finditer(self.text):
            found.setdefault(m.group(1), []).append((m.start(), m.group(2)))
        return found

    def owner(self, position: int) -> str | None:
        index = bisect.bisect_left([start for start, _plugin in self.plugins], position)
        return self.plugins[index - 1][1] if index else None

    def resolve(self, arg: str, position: int) -> str | None:
        """The command id an addCommand argument stands for, from the nearest declaration before it."""
        if arg.startswith('"'):
            return arg.strip('"')
        if "." in arg:
            var, prop = arg.split(".", 1)
            ids = [ids for start, _end, name, ids in self.namespaces if name == var and start < position]
            ids = [found for found in ids if prop in found]
            return ids[-1][prop] if ids else None
        before = [value for start, value in self.constants.get(arg, []) if start < position]
        return before[-1] if before else None

    @cached_property
    def added_commands(self) -> list[tuple[str, str | None]]:
        """(command id, plugin adding it) for every addCommand call whose command id can be resolved."""
        added = []
        for m in ADD_COMMAND.finditer(self.text):
            command = self.resolve(m.group(1), m.start())
            if command is not None:
                added.append((command, self.owner(m.start())))
        return added

    def definition(self, plugin: str) -> str:
        """The plugin's declaration up to its activate function."""
        start = self.text.index(f'id:"{plugin}"')
        return self.text[start : self.text.index("activate:", start)]


@cache
def bundles() -> tuple[Bundle, ...]:
    share = workspace_env() / "share" / "jupyter"
    files = sorted((share / "lab" / "static").glob("*.js")) + sorted((share / "labextensions").glob("**/static/*.js"))
    return tuple(Bundle(f.name, f.read_text(errors="replace")) for f in files)


def installed_plugins() -> set[str]:
    schemas = workspace_env() / "share" / "jupyter" / "lab" / "schemas"
    from_schemas = {f"{p.parent.relative_to(schemas).as_posix()}:{p.stem}" for p in schemas.glob("**/*.json")}
    return from_schemas | {plugin for b in bundles() for _pos, plugin in b.plugins}


@requires_workspace_env
def test_every_plugin_in_page_config_exists_in_the_installed_jupyterlab():
    installed = installed_plugins()
    assert len(installed) > 100  # the real core bundle, not an empty folder
    for key in ("disabledExtensions", "lockedExtensions"):
        unknown = set(PAGE_CONFIG[key]) - installed
        assert not unknown, f"{key} names plugins JupyterLab does not have: {unknown}"
    assert set(PAGE_CONFIG["lockedExtensions"]) == DISABLED  # what is disabled cannot be re-enabled from the UI


@requires_workspace_env
def test_removed_commands_are_added_only_by_disabled_plugins():
    adders: dict[str, set[str | None]] = {command: set() for command in REMOVED_COMMANDS}
    for bundle in bundles():
        for command, plugin in bundle.added_commands:
            if command in adders:
                adders[command].add(plugin)
    for command, plugins in adders.items():
        assert plugins, f"{command} ({REMOVED_COMMANDS[command]}) is added nowhere: has JupyterLab renamed it?"
        assert plugins <= DISABLED, f"{command} is also added by enabled plugins: {plugins - DISABLED}"


@requires_workspace_env
def test_removed_command_ids_appear_only_in_declarations_and_disabled_plugins():
    """A command id written out anywhere else could be added in a way the attribution above does not resolve."""
    for bundle in bundles():
        declared = [(start, end) for start, end, _name, _ids in bundle.namespaces]
        for command in REMOVED_COMMANDS:
            for m in re.finditer(re.escape(f'"{command}"'), bundle.text):
                if any(start <= m.start() < end for start, end in declared):
                    continue
                assert bundle.owner(m.start()) in DISABLED, f"{command} used by {bundle.owner(m.start())}"


@requires_workspace_env
def test_disabled_plugins_provide_nothing_other_plugins_need():
    core = next(b for b in bundles() if b.name.startswith("jlab_core"))
    for plugin in DISABLED:
        definition = core.definition(plugin)
        assert "provides:" not in definition, f"disabling {plugin} would break the plugins that require it"


@requires_workspace_env
def test_airlock_menu_runs_an_existing_command_with_arguments_it_takes():
    (menu,) = OVERRIDES["@jupyterlab/mainmenu-extension:plugin"]["menus"]
    (item,) = menu["items"]
    core = next(b for b in bundles() if b.name.startswith("jlab_core"))
    adders = {plugin for command, plugin in core.added_commands if command == item["command"]}
    assert adders == {"@jupyterlab/help-extension:open"} and not adders & DISABLED
    activate = core.text[core.text.index('id:"@jupyterlab/help-extension:open"') :][:6000]
    for arg in item["args"]:
        assert f"e.{arg}" in activate or f'"{arg}"' in activate or f"{arg}:" in activate, arg
    assert item["args"]["newBrowserTab"] is True
    assert item["args"]["url"].startswith("/services/airlock/")


@requires_workspace_env
def test_overrides_are_valid_against_the_mainmenu_schema():
    schema_file = workspace_env() / "share/jupyter/lab/schemas/@jupyterlab/mainmenu-extension/plugin.json"
    schema = json.loads(schema_file.read_text())
    menus_schema = {**schema["properties"]["menus"], "definitions": schema["definitions"]}
    jsonschema.validate(OVERRIDES["@jupyterlab/mainmenu-extension:plugin"]["menus"], menus_schema)


def _dockerfile() -> list[str]:
    """The Dockerfile's instructions, one per entry, continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for line in (IMAGES / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += " " + line.strip().removesuffix("\\")
        if not line.rstrip().endswith("\\"):
            instructions.append(current.strip())
            current = ""
    return instructions


def test_dockerfile_builds_from_the_same_lock_config_and_packages():
    instructions = _dockerfile()
    final = instructions[max(i for i, ins in enumerate(instructions) if ins.startswith("FROM ")) :]
    text = "\n".join(final)
    assert instructions[0].startswith("ARG BASE_IMAGE=")
    assert [i for i in instructions if i.startswith("FROM ")] == ["FROM ${BASE_IMAGE} AS wheels", "FROM ${BASE_IMAGE}"]
    assert "COPY images/requirements.lock /tmp/requirements.lock" in final
    assert re.search(r"pip install --require-hashes --only-binary :all: -r /tmp/requirements.lock", text)
    assert re.search(r"pip install --no-deps /tmp/wheels/\*\.whl", text)
    # As the local builder: the two workspace projects' wheels and nothing else of Enclave (no admin command).
    wheels = [i for i in instructions if i.startswith("RUN python -m pip wheel")]
    assert wheels == [f"RUN python -m pip wheel --no-deps --wheel-dir /wheels {' '.join(f'./{p}' for p in PROJECTS)}"]
    stage = instructions[: instructions.index(wheels[0])]
    copied = {i.split()[1].split("/")[0] for i in stage if i.startswith("COPY ")}
    assert copied == set(PROJECTS) and not copied & set(ADMIN_PACKAGES)
    assert "/bin/enclave" not in text
    # Every config file goes where the local builder puts it, under the image's environment.
    copies = [i.split()[1:] for i in final if i.startswith("COPY ") and "images/jupyter/" in i]
    placed = {}
    for *sources, target in copies:
        for source in sources:
            dest = target + Path(source).name if target.endswith("/") else target
            placed[source] = dest
    expected = {
        str(source.relative_to(REPO)): f"/opt/workspace/{target}" for source, target in config_targets().items()
    }
    assert placed == expected
    # Not root, and nothing built in the final stage.
    user = [i for i in final if i.startswith("USER ")]
    assert user and user[-1].split()[1] not in ("0", "root")
    assert not re.search(r"apt-get|gcc|build-essential", text)


def test_config_targets_follow_the_environment_layout():
    targets = {str(source.relative_to(IMAGES / "jupyter")): str(target) for source, target in config_targets().items()}
    assert targets == {
        "jupyter_server_config.json": "etc/jupyter/jupyter_server_config.json",
        "jupyter_server_config.py": "etc/jupyter/jupyter_server_config.py",
        "labconfig/page_config.json": "etc/jupyter/labconfig/page_config.json",
        "migrated": "etc/jupyter/migrated",  # no IPython 3 migration: jupyter_core must not write here
        "lab/settings/overrides.json": "share/jupyter/lab/settings/overrides.json",
    }


def test_stamp_changes_when_a_config_file_changes(tmp_path):
    copy = tmp_path / "repo"
    for source in stamp_inputs(REPO):
        target = copy / source.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    assert input_digest(copy) == input_digest(REPO)  # paths and contents, not where the checkout is
    page_config = copy / "images" / "jupyter" / "labconfig" / "page_config.json"
    page_config.write_text(page_config.read_text().replace("print", "prin"))
    changed = input_digest(copy)
    assert changed != input_digest(REPO)
    (copy / "workbench" / "__init__.py").write_text("# changed\n")
    assert input_digest(copy) not in (changed, input_digest(REPO))
    assert input_digest(REPO, python="/usr/bin/python3") != input_digest(REPO, python="/opt/python3.11/bin/python3")


def test_builder_refuses_a_missing_interpreter(tmp_path):
    with pytest.raises(EnclaveError, match="not found"):
        ensure_workspace_env(tmp_path / "env", python="/nonexistent/python3")
    assert not (tmp_path / "env").exists()


def test_builder_never_replaces_a_folder_that_is_not_an_environment(tmp_path):
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    with pytest.raises(EnclaveError, match="not a Python environment"):
        ensure_workspace_env(precious)
    assert (precious / "keep.txt").read_text() == "keep"


def test_the_workspace_environment_holds_the_researchers_library_and_nothing_of_the_admin_side(workspace_env):
    """A workspace installs the researcher's library and the server's extension, not the fabric, the hub, the
    airlock or the admin's command line (issue 12): `enclave` there crashed (no registry, no checks' models, issue
    16), and a researcher has no business with them. Checked on the built environment, by its own isolated Python,
    from outside the checkout."""
    env = workspace_env  # the session's environment, brought up to date by its real builder
    assert not (env / "bin" / "enclave").exists(), "the admin command is in the workspace environment"
    assert (env / "bin" / "jupyterhub-singleuser").is_file()
    site = next((env / "lib").glob("python3*/site-packages"))
    assert (site / "workbench" / "view_contract.py").is_file() and (site / "workbench" / "cluster.yaml").is_file()
    code = (
        "import importlib, json\n"
        "def tried(name):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError:\n"
        "        return False\n"
        "    return True\n"
        f"print(json.dumps({{n: tried(n) for n in {['workbench', 'enclave_workspace', *ADMIN_PACKAGES]!r}}}))"
    )
    done = subprocess.run([env / "bin" / "python", "-I", "-c", code], cwd="/", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"workbench": True, "enclave_workspace": True} | dict.fromkeys(
        ADMIN_PACKAGES, False
    )
    done = subprocess.run(
        [env / "bin" / "python", "-I", "-c", "from workbench import open_project, experiment; print('ok')"],
        cwd="/",
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == "ok", done.stderr
    installed = {p.name.split("-")[0] for p in site.glob("*.dist-info")}
    assert {"enclave_workbench", "enclave_workspace"} <= installed and "enclave" not in installed
