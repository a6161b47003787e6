"""The contract of a project view: the one place that says what a published view is. The materialiser writes it
(fabric.materialise), the readers open it (workbench.view), host provisioning seals and owns it
(provisioning/host.py) and the workspace sandbox mounts it (hub/sandbox.py); docs/reference/data-layout.md
("Project view") describes the same.

    HOME/projects/PROJECT/views/BUILD_ID/       one build, sealed read-only (VIEW_DIR_MODE, VIEW_FILE_MODE)
        MANIFEST.json                          the build's facts and every file with its SHA-256 and size
        clinical/TABLE.parquet                 patients.parquet: one row per patient per site
        imaging/PSEUDONYM/STUDY/SERIES/N.dcm
        genomics/SITE.vcf.gz (+ .tbi), genomics/bam/PSEUDONYM.bam (+ .bai)
    HOME/projects/PROJECT/data -> views/BUILD_ID   the published view, swapped to a new build in one rename

Inside a workspace the published view is mounted read-only and $ENCLAVE_PROJECT_DATA names it. Every patient is
named by the project's pseudonym: `P-` and 16 base32 characters (fabric/pseudonyms.py makes them).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypedDict

ENV_VIEW = "ENCLAVE_PROJECT_DATA"  # the published view's folder, set in every workspace
# a JSON list of pseudonyms the readers leave out: a federated count-once run's patients another site counts
ENV_EXCLUDED = "ENCLAVE_EXCLUDED_PSEUDONYMS"
ENV_HOME = "ENCLAVE_HOME"  # the installation's home, where a view is found by its project's name

MANIFEST = "MANIFEST.json"
CLINICAL, IMAGING, GENOMICS = "clinical", "imaging", "genomics"  # one folder each, at the top of a build
MODALITIES = (CLINICAL, IMAGING, GENOMICS)
PATIENTS = "patients.parquet"  # in clinical/: one row per patient per site
VIEWS = "views"  # in the project's folder: one folder per build
PUBLISHED = "data"  # in the project's folder: the link to the published build

# Owner (root) and the project's Unix group may list and read; nobody may write: a view is an input, never scratch.
VIEW_DIR_MODE = 0o550
VIEW_FILE_MODE = 0o440

PSEUDONYM_PREFIX = "P-"
PSEUDONYM_BODY = "[A-Z2-7]{16}"  # 80 bits of an HMAC, in RFC 4648 base32
PSEUDONYM = re.compile(PSEUDONYM_PREFIX + PSEUDONYM_BODY)

COMPUTE_LIMITS = ("dask_workers", "threads_per_worker", "memory_limit")  # what the cluster reads of `compute`
ENGINES = ("local", "slurm", "kubernetes")  # `compute.engine`: where a workspace's Dask cluster runs (default local)
# In the workspace's runtime folder (/run/enclave) when the engine is slurm: its cluster service (clusters/service.py)
CLUSTER_SOCKET = "dask-cluster.sock"
# In a KubeSpawner workspace's environment when the engine is kubernetes: the cluster service's URL
# (clusters/kubernetes_service.py), which the workspace calls with its own JUPYTERHUB_API_TOKEN
ENV_CLUSTER_SERVICE = "ENCLAVE_CLUSTER_SERVICE_URL"


class ManifestFile(TypedDict):
    path: str  # relative to the build, POSIX separators
    sha256: str
    bytes: int


class ManifestDataset(TypedDict):
    id: str
    site: str
    modality: str  # one of MODALITIES
    format: str
    source_sha256: str


class Manifest(TypedDict):
    """MANIFEST.json as the materialiser writes it. The readers need only `files` (and `compute`, `pseudonyms`
    when present) and accept the older shapes `listed_files` reads."""

    project: str
    build_id: str
    built_at: str  # ISO 8601, UTC, with a Z
    purpose: str
    commercial: bool
    compute: dict[str, Any]  # the project's limits (cpus, memory, ...), COMPUTE_LIMITS among them, and `engine`
    patients: int
    modalities: dict[str, int]  # patients with data in each of MODALITIES
    datasets: list[ManifestDataset]
    files: list[ManifestFile]


def is_pseudonym(text: object) -> bool:
    return isinstance(text, str) and PSEUDONYM.fullmatch(text) is not None


def listed_files(manifest: dict[str, Any]) -> list[tuple[str, int | None]]:
    """(relative path, bytes) of each file the manifest lists; accepts a list of objects or a path-keyed map."""
    files = manifest.get("files")
    out: list[tuple[str, int | None]] = []
    if isinstance(files, dict):
        for rel, info in files.items():
            out.append((rel, info.get("bytes") if isinstance(info, dict) else None))
    elif isinstance(files, list):
        for item in files:
            if isinstance(item, dict) and isinstance(item.get("path"), str):
                out.append((item["path"], item.get("bytes")))
            elif isinstance(item, str):
                out.append((item, None))
    return out


def project_view(project: str, home: Path | None = None) -> Path:
    """Where project `project`'s published view is: HOME/projects/PROJECT/data, HOME being `home`, else
    $ENCLAVE_HOME, else the installation's default (as kernel.config.default_home; a test holds them equal)."""
    return (home or _home()) / "projects" / project / PUBLISHED


def _home() -> Path:
    if env := os.environ.get(ENV_HOME):
        return Path(env).expanduser().resolve()
    if os.geteuid() == 0:
        return Path("/var/lib/enclave")
    return Path.home() / ".local" / "share" / "enclave"
