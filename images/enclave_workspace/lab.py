"""JupyterLab's extension manager for a workspace (LabApp.extension_manager = "readonly-locked"): JupyterLab's
read-only manager, which installs and uninstalls nothing, with every extension and plugin locked too, so nobody can
re-enable through `/lab/api/extensions` what the environment's page_config.json disables. (The `/lab/api/plugins`
manager is locked by LabApp.lock_all_plugins.)"""

from __future__ import annotations

from typing import Any

from jupyterlab.extensions import ExtensionManager, ReadOnlyExtensionManager

MANAGER = "readonly-locked"


def locked_readonly_manager(
    app_options: dict | None = None, ext_options: dict | None = None, parent: Any = None
) -> ExtensionManager:
    """The `jupyterlab.extension_manager_v1` entry point named `readonly-locked`."""
    return ReadOnlyExtensionManager(app_options, {**(ext_options or {}), "lock_all": True}, parent)
