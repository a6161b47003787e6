"""Kernelspecs in a workspace: from the environment only, never from the home (jupyter_client looks in
~/.local/share/jupyter/kernels first, and its `kernel_dirs` is not configurable, hence the manager class set in the
environment's config), and of their folders only the logos reach the browser, and only if their bytes are an image
within the image cap. jupyter_server's own `/kernelspecs/<name>/<file>` route serves any file of a kernelspec's
folder; KernelLogoHandler is registered in front of it for logo files (routes.KERNEL_LOGO) and the route table
refuses the rest."""

from __future__ import annotations

import os
import sys

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from enclave_workspace.confine import launcher
from enclave_workspace.display import image_type, response_cap


def environment_kernels() -> str:
    return os.path.join(sys.prefix, "share", "jupyter", "kernels")


class EnvironmentKernelSpecManager(KernelSpecManager):
    """Finds kernelspecs in the environment's share/jupyter/kernels only, and starts every kernel confined
    (confine.py: no writes to the workspace's runtime folder, no signals to the server or its services)."""

    def _kernel_dirs_default(self) -> list[str]:
        return [environment_kernels()]

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        spec = super().get_kernel_spec(kernel_name)
        prefix = launcher()
        if spec.argv[: len(prefix)] != prefix:
            spec.argv = [*prefix, *spec.argv]
        return spec


class KernelLogoHandler(JupyterHandler):
    auth_resource = "kernelspecs"

    @web.authenticated
    @authorized
    async def get(self, kernel_name: str, path: str) -> None:
        specs = await ensure_async(self.kernel_spec_manager.find_kernel_specs())  # the allowed kernels only
        if kernel_name.lower() not in specs:
            raise web.HTTPError(404, "No such kernel.")
        cap = response_cap("image")
        try:
            fd = os.open(os.path.join(specs[kernel_name.lower()], path), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise web.HTTPError(404, "No such logo.") from exc
        with os.fdopen(fd, "rb") as logo:
            data = logo.read(cap + 1)
        mimetype = image_type(data)
        if mimetype is None or len(data) > cap:
            raise web.HTTPError(403, "A kernel's logo must be an image.")
        self.set_header("Content-Type", mimetype)
        # An SVG opened on its own must not run scripts in the workspace's origin.
        self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(data)
