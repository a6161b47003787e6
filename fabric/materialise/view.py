"""Materialising a project's view: the build that runs the per-modality de-identified copies in parallel over the
plan (plan.py: the consent filter and pseudonym assignment), the manifest, and the atomic publish that swaps the
project's `data` link to a complete new build (builds.py then removes the superseded builds nobody uses).

A build is written into a staging folder and only renamed into place and linked once every file is written and
hashed; any failure removes the staging folder and leaves the published view as it was.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session
from tqdm import tqdm

from fabric.materialise.builds import BUILD_TIME_FORMAT, remove_tree, sweep_project
from fabric.materialise.clinical import write_clinical
from fabric.materialise.genomics import materialise_bam, materialise_vcf, observed_sites
from fabric.materialise.imaging import deidentify_dicom_many
from fabric.materialise.plan import BuildPlan, DatasetPlan, plan_build
from fabric.models import ProjectBuild
from fabric.pseudonyms import load_or_create_key, rekey_uid
from kernel import audit
from kernel.clock import utcnow
from kernel.config import Paths
from kernel.db import Registry
from kernel.digests import sha256_file
from kernel.errors import EnclaveError
from workbench.view_contract import (
    CLINICAL,
    GENOMICS,
    IMAGING,
    MANIFEST,
    MODALITIES,
    PUBLISHED,
    VIEW_DIR_MODE,
    VIEW_FILE_MODE,
    VIEWS,
    Manifest,
)

IMAGING_BATCH = 4  # studies per worker task: large enough to amortise task overhead, small for a smooth bar


@dataclass
class BuildSummary:
    project: str
    build_id: str
    path: Path
    patients: int
    excluded: int
    files: int
    bytes: int
    modalities: dict[str, int] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)  # superseded builds kept: in use, or within their grace period


# ------------------------------------------------------------------------------------------------ workers


def _redacted(error: Exception, members: dict[str, tuple[str, str]]) -> EnclaveError:
    """The error with every site-local id (MRN, sample id) replaced by the enclave patient id."""
    message = str(error)
    for local, (pid, _pseudo) in members.items():
        message = message.replace(local, pid)
    return EnclaveError(message)


def _imaging_task(batch: list[tuple[list[tuple[Path, Path]], str]], key: bytes) -> dict[str, tuple[str, int]]:
    """De-identify a batch of studies; the SHA-256 and size of each file written, for the manifest."""
    written = {}
    for pairs, pseudo in batch:
        digests = deidentify_dicom_many(pairs, pseudonym=pseudo, key=key, atomic=False)  # staging is private
        written.update((str(dst), digest) for (_src, dst), digest in zip(pairs, digests, strict=True))
    return written


def _imaging_batches(plan: DatasetPlan, out: Path, key: bytes) -> Iterator[list[tuple[list[tuple[Path, Path]], str]]]:
    """Studies of consented patients, in batches; destination folders named by re-keyed study and series UIDs."""
    batch: list[tuple[list[tuple[Path, Path]], str]] = []
    for mrn, (_pid, pseudo) in plan.members.items():
        for study in sorted(p for p in (plan.location / mrn).iterdir() if p.is_dir()):
            pairs = []
            for series in sorted(p for p in study.iterdir() if p.is_dir()):
                target = out / pseudo / rekey_uid(key, study.name) / rekey_uid(key, series.name)
                target.mkdir(parents=True, exist_ok=True)
                pairs += [(f, target / f.name) for f in sorted(series.iterdir()) if f.is_file()]
            batch.append((pairs, pseudo))
            if len(batch) >= IMAGING_BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


@contextmanager
def _project_lock(project_dir: Path) -> Iterator[None]:
    project_dir.mkdir(parents=True, exist_ok=True)
    with (project_dir / ".materialise.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EnclaveError(f"project {project_dir.name} is already being materialised") from None
        yield


def _seal(path: Path) -> None:
    """Read-only, for the owner and the project's group only: the view is an input, never a scratch space."""
    for root, dirs, files in os.walk(path):
        for f in files:
            os.chmod(os.path.join(root, f), VIEW_FILE_MODE)
        for d in dirs:
            os.chmod(os.path.join(root, d), VIEW_DIR_MODE)
    os.chmod(path, VIEW_DIR_MODE)


def write_manifest(
    staging: Path, plan: BuildPlan, build_id: str, built_at: datetime, known: dict[str, tuple[str, int]] | None = None
) -> tuple[int, int, str]:
    """Write MANIFEST.json listing every file with its SHA-256 and size; `known` holds those already computed while
    the files were written (path -> (sha256, bytes)), the rest are read and hashed here."""
    known = known or {}
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    unknown = [f for f in files if str(f) not in known]
    with ThreadPoolExecutor(max_workers=4) as pool:
        hashed = dict(zip(unknown, pool.map(sha256_file, unknown), strict=True))
    entries = []
    for f in files:
        digest, size = known.get(str(f)) or (hashed[f], f.stat().st_size)
        entries.append({"path": f.relative_to(staging).as_posix(), "sha256": digest, "bytes": size})
    pseudonyms = plan.pseudonyms()
    manifest: Manifest = {
        "project": plan.project,
        "build_id": build_id,
        "built_at": built_at.isoformat(timespec="seconds") + "Z",
        "purpose": plan.purpose,
        "commercial": plan.commercial,
        "compute": plan.compute,
        "patients": len(pseudonyms),
        "modalities": {
            m: len({pseudo for d in plan.datasets if d.modality == m for _pid, pseudo in d.members.values()})
            for m in MODALITIES
        },
        "datasets": [
            {"id": d.id, "site": d.site, "modality": d.modality, "format": d.format, "source_sha256": d.checksum}
            for d in plan.datasets
        ],
        "files": entries,
    }
    body = json.dumps(manifest, indent=1, sort_keys=False).encode()
    (staging / MANIFEST).write_bytes(body)
    return len(entries), sum(e["bytes"] for e in entries), hashlib.sha256(body).hexdigest()


def publish(project_dir: Path, staging: Path, build_id: str) -> Path:
    """Rename the finished build into place and swap the `data` link to it in one atomic rename. Older builds are
    left to `builds.sweep`, which keeps those a workspace or run still uses."""
    views = project_dir / VIEWS
    final = views / build_id
    os.rename(staging, final)
    link_tmp = project_dir / f".data-{build_id}"
    os.symlink(os.path.relpath(final, project_dir), link_tmp)
    os.replace(link_tmp, project_dir / PUBLISHED)
    fd = os.open(project_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return final


def materialise_project(
    registry: Registry,
    paths: Paths,
    name: str,
    *,
    actor: str,
    progress: bool = True,
    workers: int | None = None,
) -> BuildSummary:
    """Build and publish project `name`'s view from the registry's current state."""
    project_dir = paths.project_dir(name)
    with _project_lock(project_dir):
        plan = plan_build(registry, paths, name)
        key = load_or_create_key(paths.project_key(name))
        built_at = utcnow(whole_seconds=True)
        build_id = built_at.strftime(BUILD_TIME_FORMAT) + "-" + secrets.token_hex(3)
        staging = project_dir / VIEWS / f".staging-{build_id}"
        staging.mkdir(parents=True)
        try:
            written = _build(plan, staging, key, progress=progress, workers=workers)
            files, size, manifest_sha = write_manifest(staging, plan, build_id, built_at, written)
            _seal(staging)
            final = publish(project_dir, staging, build_id)
        except BaseException:
            remove_tree(staging)
            raise
        summary = BuildSummary(
            project=name,
            build_id=build_id,
            path=final,
            patients=len(plan.pseudonyms()),
            excluded=plan.excluded,
            files=files,
            bytes=size,
            modalities=json.loads((final / MANIFEST).read_text())["modalities"],
        )

        def record(session: Session) -> None:
            session.add(
                ProjectBuild(
                    id=build_id,
                    project_name=name,
                    built_at=built_at,
                    patients=summary.patients,
                    files=files,
                    bytes=size,
                    manifest_sha256=manifest_sha,
                )
            )
            audit.record(
                session,
                actor=actor,
                action="project.materialise",
                target=name,
                build=build_id,
                patients=summary.patients,
                excluded=plan.excluded,
                files=files,
                manifest_sha256=manifest_sha,
            )

        registry.transaction(record)
        swept = sweep_project(registry, paths, name, actor=actor)
        summary.kept = swept.in_use + swept.within_grace
        return summary


def _build(
    plan: BuildPlan, staging: Path, key: bytes, *, progress: bool, workers: int | None
) -> dict[str, tuple[str, int]]:
    """Write every modality into `staging`: clinical in this process while workers copy images and genomes.
    Returns the SHA-256 and size of the files whose writers hashed them on the way out."""
    written: dict[str, tuple[str, int]] = {}
    genomics = staging / GENOMICS
    imaging = staging / IMAGING
    workers = workers or os.cpu_count() or 2
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs: dict[Future, tuple[DatasetPlan, int]] = {}

        def submit(fn: Callable, plan_: DatasetPlan, weight: int, *args, **kwargs) -> Future:
            future = pool.submit(fn, *args, **kwargs)
            jobs[future] = (plan_, weight)
            return future

        # VCFs take two passes: which sites the included patients carry, in every file, then each file copied
        # keeping those sites, so a variant seen at one site keeps its hom-ref record at the others.
        vcf_copies: list[tuple[DatasetPlan, Path, dict[str, str]]] = []
        observing: set[Future] = set()
        bam_targets: set[Path] = set()
        for d in plan.datasets:
            if not d.members:
                continue
            if d.modality == "genomics" and d.format == "vcf":
                genomics.mkdir(exist_ok=True)
                stem = d.site if not any(t.name == f"{d.site}.vcf.gz" for _d, t, _s in vcf_copies) else d.id
                samples = {local: pseudo for local, (_pid, pseudo) in d.members.items()}
                vcf_copies.append((d, genomics / f"{stem}.vcf.gz", samples))
                observing.add(submit(observed_sites, d, 1, d.location, samples))
            elif d.modality == "genomics" and d.format == "bam":
                (genomics / "bam").mkdir(parents=True, exist_ok=True)
                for sample, (_pid, pseudo) in d.members.items():
                    target = genomics / "bam" / f"{pseudo}.bam"
                    n = 2
                    while target in bam_targets:  # a patient with BAMs from several labs or runs
                        target = genomics / "bam" / f"{pseudo}-{n}.bam"
                        n += 1
                    bam_targets.add(target)
                    submit(materialise_bam, d, 1, d.location / f"{sample}.bam", target, pseudo)
            elif d.modality == "imaging":
                for batch in _imaging_batches(d, imaging, key):
                    submit(_imaging_task, d, len(batch), batch, key)
        clinical = [d for d in plan.datasets if d.modality == "clinical"]
        with ThreadPoolExecutor(max_workers=1) as local:  # Parquet writing releases the GIL; the bar keeps moving
            everyone = {k: v for d in clinical for k, v in d.members.items()}
            label = DatasetPlan("clinical", "*", "clinical", "*", staging, "", everyone)
            jobs[local.submit(write_clinical, staging / CLINICAL, plan.datasets)] = (label, len(clinical))
            total = sum(w for _p, w in jobs.values()) + len(vcf_copies)
            carried: set = set()
            with tqdm(total=total, desc=f"materialise {plan.project}", unit="item", disable=not progress) as bar:
                pending = set(jobs)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in done:
                        d, weight = jobs[future]
                        error = future.exception()
                        if error is not None:
                            for other in pending:
                                other.cancel()
                            raise _redacted(error, d.members) from None
                        bar.update(weight)
                        if d.modality == "imaging":
                            written.update(future.result())
                        if future in observing:
                            carried |= future.result()
                            observing.discard(future)
                            if not observing:
                                pending |= {
                                    submit(materialise_vcf, vd, 1, vd.location, target, samples, keep_sites=carried)
                                    for vd, target, samples in vcf_copies
                                }
        return written


def verify_view(view: Path) -> list[str]:
    """Every difference between a published view and its manifest: changed, missing or unlisted files."""
    try:
        manifest = json.loads((view / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [f"{MANIFEST}: unreadable ({type(exc).__name__})"]
    problems = []
    listed = {e["path"]: e for e in manifest.get("files", [])}
    present = {p.relative_to(view).as_posix() for p in view.rglob("*") if p.is_file() and p.name != MANIFEST}
    for path in sorted(present - listed.keys()):
        problems.append(f"{path}: not in the manifest")
    for path, entry in sorted(listed.items()):
        if path not in present:
            problems.append(f"{path}: listed in the manifest but missing")
        elif sha256_file(view / path) != entry["sha256"]:
            problems.append(f"{path}: content differs from the manifest")
    return problems
