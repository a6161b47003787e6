"""Where Enclave keeps its state: one home folder, overridable by environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_home() -> Path:
    """`ENCLAVE_HOME`, else `/var/lib/enclave` for root, else `~/.local/share/enclave`."""
    if env := os.environ.get("ENCLAVE_HOME"):
        return Path(env).expanduser().resolve()
    if os.geteuid() == 0:
        return Path("/var/lib/enclave")
    return Path.home() / ".local" / "share" / "enclave"


@dataclass(frozen=True)
class Paths:
    """The layout of one Enclave installation (docs/reference/data-layout.md)."""

    home: Path

    @classmethod
    def from_env(cls) -> Paths:
        return cls(default_home())

    @property
    def database_url(self) -> str:
        return os.environ.get("ENCLAVE_DATABASE_URL") or f"sqlite:///{self.home / 'registry.sqlite'}"

    @property
    def secrets(self) -> Path:
        return self.home / "secrets"

    @property
    def sites(self) -> Path:
        return self.home / "sites"

    @property
    def projects(self) -> Path:
        return self.home / "projects"

    def project_key(self, project: str) -> Path:
        """The project's pseudonym key (fabric/pseudonyms.py); never inside a project folder."""
        return self.secrets / f"project-{project}.key"

    def project_dir(self, project: str) -> Path:
        return self.projects / project

    def project_data(self, project: str) -> Path:
        """The published view of a project: a symlink to its current build."""
        return self.project_dir(project) / "data"

    @property
    def storage(self) -> Path:
        """Root only: each project's file-system image (`PROJECT.img`), whose size is the project's disk quota."""
        return self.home / "storage"

    def project_image(self, project: str) -> Path:
        return self.storage / f"{project}.img"

    def project_store(self, project: str) -> Path:
        """The mount point of the project's own file system (provisioning/storage.py): everything the project
        writes (outputs, homes, MLflow) is in it, so it stops at the quota and never fills the registry's disk."""
        return self.project_dir(project) / "store"

    def project_outputs(self, project: str) -> Path:
        """Where a project's researchers put what they want released; the only place a request takes files from."""
        return self.project_store(project) / "outputs"

    def project_homes(self, project: str) -> Path:
        """The project's members' workspace homes, one folder each; a workspace mounts only its own user's."""
        return self.project_store(project) / "homes"

    def project_home(self, project: str, user: str) -> Path:
        return self.project_homes(project) / user

    def project_mlflow(self, project: str) -> Path:
        """The project's MLflow store: `mlflow.db` (SQLite tracking) and `artifacts/`; never shared across projects."""
        return self.project_store(project) / "mlflow"

    @property
    def hub(self) -> Path:
        """JupyterHub's state: its SQLite database, cookie secret, proxy token, pid and log files."""
        return self.home / "hub"

    @property
    def workspace_env(self) -> Path:
        """The workspace environment (images/): `ENCLAVE_WORKSPACE_ENV`, else `workspace-env` in the home."""
        if env := os.environ.get("ENCLAVE_WORKSPACE_ENV"):
            return Path(env).expanduser().resolve()
        return self.home / "workspace-env"

    @property
    def airlock(self) -> Path:
        """The airlock's stores: immutable request snapshots and the egress store (never inside a project)."""
        return self.home / "airlock"

    @property
    def federation(self) -> Path:
        """Federation's state (root-only): this node's credentials and trust, the coordinator's signing key and its
        projects' keys, tasks' notebooks and sealed results (federation/)."""
        return self.home / "federation"
