"""`enclave run`: execute a notebook with papermill inside a project's sandbox, as the project's account.

The notebook is copied into the user's project home (`runs/`), executed there by the workspace environment's
papermill with the same namespaces, mounts, limits and environment as a JupyterLab workspace (hub/workspaces.py),
and the executed copy stays beside it. What the notebook writes to /project/outputs is what the airlock can take.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fabric.config import Paths
from fabric.errors import FabricError
from hub.workspaces import WorkspaceError, insecure_allowed, prepare


@dataclass(frozen=True)
class NotebookRun:
    executed: Path  # on the host
    inside: str  # the same file inside the workspace
    returncode: int


def run_in_sandbox(
    paths: Paths, notebook: Path, project: str, user: str, parameters: dict[str, str], *, timeout: float | None = None
) -> NotebookRun:
    """Run `notebook` in `user`'s workspace sandbox of `project` with papermill `parameters` (as `-p NAME VALUE`)."""
    try:
        plan = prepare(paths, project, user, insecure_dev_mode=insecure_allowed())
    except WorkspaceError as exc:
        raise FabricError(exc.message) from exc
    try:
        layout = plan.layout
        runs = layout.home / "runs"
        runs.mkdir(exist_ok=True, mode=0o700)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        source = runs / f"{notebook.stem}-{stamp}.ipynb"
        executed = runs / f"{notebook.stem}-{stamp}.out.ipynb"
        shutil.copyfile(notebook, source)
        if plan.secure:
            for path in (runs, source):
                os.chown(path, layout.uid, layout.gid, follow_symlinks=False)
        inside_runs = f"{layout.inside_home}/runs"
        papermill = str(layout.env / "bin" / "papermill")
        command = [papermill, f"{inside_runs}/{source.name}", f"{inside_runs}/{executed.name}"]
        command += ["--cwd", layout.inside_home, "--kernel", "python3", "--language", "python"]
        command += ["--log-output", "--no-progress-bar"]
        for name, value in parameters.items():
            command += ["-p", name, value]
        completed = subprocess.run(  # output streams to the caller's terminal
            plan.argv(command), preexec_fn=plan.join_cgroup, stdin=subprocess.DEVNULL, timeout=timeout, check=False
        )
        return NotebookRun(executed=executed, inside=f"{inside_runs}/{executed.name}", returncode=completed.returncode)
    finally:
        plan.cleanup()
