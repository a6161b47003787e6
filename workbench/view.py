"""A published project view, opened read-only: the one object a notebook uses to reach every modality.

Opening a view reads only MANIFEST.json and checks that the files it lists exist; everything else is lazy. Each
accessor returns a Dask collection whose tasks take file paths and regions (never open handles), so they run on
any worker of whichever `distributed.Client` is current, and memory per task stays bounded as the cohort grows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client

from workbench import clinical, cluster, imaging, vcf
from workbench.errors import InvalidInputError, WorkbenchError
from workbench.regions import Region, parse_regions, plan_chunks
from workbench.view_contract import (
    CLINICAL,
    ENV_EXCLUDED,
    ENV_VIEW,
    GENOMICS,
    IMAGING,
    MANIFEST,
    PATIENTS,
    listed_files,
    project_view,
)

CHUNK_BYTES = 512 << 10  # compressed VCF bytes per task: ~2.5k records x 500 samples; measured in bench/
IMAGING_BATCH = (250, 2000)  # DICOM files per index task: one task per worker thread, within these bounds
PIXEL_BATCH = 32  # images per pixel-stack task

RegionArg = str | Region | Sequence[str | Region] | None
PSEUDONYM_COLUMN = "pseudonym"  # every clinical table's and the imaging index's patient column


@dataclass(frozen=True)
class GenotypeMatrix:
    """Alt-allele dosages: `dosages[i, j]` is how many copies of `variants` row i's alt sample j carries.

    int8; -1 where the call is missing or the sample is not in that row's site file. Row chunk sizes are only
    known after computing (`dosages.compute_chunk_sizes()`), as in any VCF scan.
    """

    dosages: da.Array
    samples: list[str]
    variants: dd.DataFrame


def open_project(
    name: str | None = None, *, path: Path | str | None = None, excluded: Iterable[str] | None = None
) -> ProjectView:
    """Open a project's published view by name, by folder, or (no arguments) from $ENCLAVE_PROJECT_DATA.

    `excluded`: pseudonyms every reader leaves out; by default those listed in the JSON file at
    $ENCLAVE_EXCLUDED_PSEUDONYMS, which a federated count-once run sets to the patients another site counts."""
    if name is not None and path is not None:
        raise WorkbenchError("open_project takes a project name or a path, not both")
    if path is not None:
        root = Path(path)
    elif name is not None:
        root = project_view(name)
        if not root.exists():
            raise WorkbenchError(f"project {name!r} has no published view at {root}; has it been materialised?")
    elif env := os.environ.get(ENV_VIEW):
        root = Path(env)
    else:
        raise WorkbenchError(f"open_project needs a project name, a path, or ${ENV_VIEW} set to a view folder")
    return ProjectView(root, excluded=excluded_from_environment() if excluded is None else excluded)


def excluded_from_environment(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The pseudonyms listed in the JSON file at $ENCLAVE_EXCLUDED_PSEUDONYMS (none when it is unset)."""
    where = (os.environ if environ is None else environ).get(ENV_EXCLUDED, "")
    if not where:
        return frozenset()
    try:
        listed = json.loads(Path(where).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkbenchError(f"${ENV_EXCLUDED}: {where} cannot be read as a JSON list ({type(exc).__name__})") from None
    if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
        raise WorkbenchError(f"${ENV_EXCLUDED}: {where} must hold a JSON list of pseudonyms")
    return frozenset(listed)


class ProjectView:
    """One build of a project view (docs/reference/data-layout.md, "Project view")."""

    def __init__(
        self, root: Path | str, *, chunk_bytes: int = CHUNK_BYTES, excluded: Iterable[str] | None = None
    ) -> None:
        self.chunk_bytes = chunk_bytes  # compressed VCF bytes per task; smaller means more, smaller tasks
        # patients every reader leaves out (a federated count-once run: those another site counts)
        self.excluded = frozenset(excluded or ())
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise WorkbenchError(f"{self.root}: no project view here (not a folder)")
        self.manifest = _read_manifest(self.root)
        _check_listed_files(self.root, self.manifest)

    def __repr__(self) -> str:
        return f"ProjectView({str(self.root)!r}, project={self.manifest.get('project')!r})"

    # ---- identity --------------------------------------------------------------------------------------------

    @cached_property
    def pseudonyms(self) -> list[str]:
        """Every pseudonym in the view: the manifest's list if it has one, else clinical patients, else data."""
        return [p for p in self._all_pseudonyms() if p not in self.excluded]

    def _all_pseudonyms(self) -> list[str]:
        listed = self.manifest.get("pseudonyms")
        if isinstance(listed, list) and all(isinstance(p, str) for p in listed):
            return sorted(listed)
        patients = self.root / CLINICAL / PATIENTS
        if patients.exists():
            return clinical.read_pseudonyms(patients)
        found = {s for f in self._site_files for s in f.samples}
        imaging_dir = self.root / IMAGING
        if imaging_dir.is_dir():
            found |= {p.name for p in imaging_dir.iterdir() if p.is_dir()}
        return sorted(found)

    def _keep(self, f: vcf.SiteVcf) -> np.ndarray | None:
        """The columns of `f`'s samples that are not excluded; None when none is."""
        if not self.excluded.intersection(f.samples):
            return None
        return np.array([i for i, s in enumerate(f.samples) if s not in self.excluded], dtype=np.int64)

    def _without_excluded(self, frame: dd.DataFrame, column: str = PSEUDONYM_COLUMN) -> dd.DataFrame:
        if not self.excluded or column not in frame.columns:
            return frame
        return frame[~frame[column].isin(list(self.excluded))]

    # ---- clinical --------------------------------------------------------------------------------------------

    @property
    def tables(self) -> list[str]:
        return clinical.table_names(self.root / CLINICAL)

    def clinical(self, table: str, columns: list[str] | None = None) -> dd.DataFrame:
        """`clinical/<table>.parquet` as a Dask DataFrame (without the excluded patients' rows)."""
        if not self.excluded:
            return clinical.open_table(self.root / CLINICAL, table, columns)
        wanted = None if columns is None else list(dict.fromkeys([*columns, PSEUDONYM_COLUMN]))
        frame = self._without_excluded(clinical.open_table(self.root / CLINICAL, table, wanted))
        return frame if columns is None else frame[list(columns)]

    # ---- genomics --------------------------------------------------------------------------------------------

    @property
    def sites(self) -> list[str]:
        return [f.site for f in self._site_files]

    @cached_property
    def _site_files(self) -> list[vcf.SiteVcf]:
        genomics = self.root / GENOMICS
        if not genomics.is_dir():
            return []
        return [vcf.open_site_vcf(p) for p in sorted(genomics.glob("*.vcf.gz"))]

    def _select(self, site: str | Sequence[str] | None) -> list[vcf.SiteVcf]:
        files = self._site_files
        if not files:
            raise WorkbenchError(f"{self.root}: this view has no genomics (no genomics/*.vcf.gz)")
        if site is None:
            return files
        wanted = [site] if isinstance(site, str) else list(site)
        if unknown := [s for s in wanted if s not in self.sites]:
            raise WorkbenchError(f"no genomics for site(s) {', '.join(unknown)}; sites: {', '.join(self.sites)}")
        return [f for f in files if f.site in wanted]

    def _regions(self, files: list[vcf.SiteVcf], region: RegionArg) -> list[Region] | None:
        """The caller's regions, parsed, each on a contig that at least one of `files` knows."""
        regions = parse_regions(region)
        for r in regions or ():
            vcf.check_contig(files, r.contig)
        return regions

    def _plan(self, files: list[vcf.SiteVcf], regions: list[Region] | None, target: int | None = None) -> list[Region]:
        contigs = list(dict.fromkeys(c for f in files for c in f.contigs))
        return plan_chunks([f.index for f in files], contigs, target or self.chunk_bytes, regions)

    def variants(self, region: RegionArg = None, site: str | Sequence[str] | None = None) -> dd.DataFrame:
        """One row per alternate allele per site file: chrom, pos, id, ref, alt, gene, site."""
        files = self._select(site)
        regions = self._regions(files, region)
        parts = [
            (str(f.path), f.site, chunk) for f in files for chunk in self._plan([f], regions) if chunk.contig in f.index
        ]
        meta = vcf.variant_frame(None, "")
        if not parts:
            return dd.from_pandas(meta, npartitions=1)
        return dd.from_map(_call_variants, parts, meta=meta, enforce_metadata=False, label="vcf-variants")

    def allele_frequencies(self, region: RegionArg = None, site: str | Sequence[str] | None = None) -> dd.DataFrame:
        """chrom, pos, ref, alt, an, ac, af over every sample of the view (all site files), per alternate allele.

        The site files share one chunk plan; each chunk's per-file counts are summed in a small merge task, so
        the result is ordered by contig and position with no shuffle.
        """
        files = self._select(site)
        meta = vcf.frequency_frame(vcf.count_frame([], np.zeros(0, np.int64), [], [], np.zeros(0), np.zeros(0)))
        chunks = self._plan(files, self._regions(files, region), self.chunk_bytes * len(files))
        parts = []
        for chunk in chunks:
            present = [f for f in files if chunk.contig in f.index]
            if len(present) == 1:
                f = present[0]
                parts.append(
                    dask.delayed(vcf.frequencies_task, pure=True)(str(f.path), chunk, len(f.samples), self._keep(f))
                )
            elif present:
                counts = [
                    dask.delayed(vcf.counts_task, pure=True)(str(f.path), chunk, len(f.samples), self._keep(f))
                    for f in present
                ]
                parts.append(dask.delayed(vcf.merge_counts_task, pure=True)(counts))
        if not parts:
            return dd.from_pandas(meta, npartitions=1)
        return dd.from_delayed(parts, meta=meta, verify_meta=False)

    def genotypes(self, region: RegionArg = None, site: str | Sequence[str] | None = None) -> GenotypeMatrix:
        """Alt-allele dosages (variants x samples) of the selected site files; see GenotypeMatrix."""
        files = self._select(site)
        samples = [s for f in files for s in f.samples if s not in self.excluded]
        width = len(samples)
        regions = self._regions(files, region)
        blocks, frames, column = [], [], 0
        for f in files:
            keep = self._keep(f)
            kept = len(f.samples) if keep is None else len(keep)
            # Scale chunks so a task's full-width int8 block stays about as big as its own samples' block.
            target = max(self.chunk_bytes * kept // max(width, 1), 1)
            for chunk in self._plan([f], regions, target):
                if chunk.contig not in f.index:
                    continue
                both = dask.delayed(vcf.genotypes_task, pure=True, nout=2)(
                    str(f.path), f.site, chunk, len(f.samples), column, width, keep
                )
                frames.append(both[0])
                blocks.append(da.from_delayed(both[1], shape=(np.nan, width), dtype=np.int8))
            column += kept
        meta = vcf.variant_frame(None, "")
        if not blocks:
            return GenotypeMatrix(da.zeros((0, width), dtype=np.int8), samples, dd.from_pandas(meta, npartitions=1))
        return GenotypeMatrix(
            da.concatenate(blocks, axis=0), samples, dd.from_delayed(frames, meta=meta, verify_meta=False)
        )

    # ---- imaging ---------------------------------------------------------------------------------------------

    def imaging_index(self, batch_size: int | None = None) -> dd.DataFrame:
        """One row per DICOM file under imaging/ with its header fields (see imaging.INDEX_COLUMNS).

        With a distributed client current, the index (a small table) starts building on the cluster at once and
        the frame is backed by those futures, as if persisted; without one it is lazy.
        """
        files = imaging.list_dicom_files(self.root / IMAGING)
        meta = imaging.index_frame([])
        if not files:
            return dd.from_pandas(meta, npartitions=1)
        client = cluster.current_client()
        if batch_size is None:
            # Reading a header is ~60 us, so per-task overhead matters: one task per worker thread (measured in bench/).
            low, high = IMAGING_BATCH
            batch_size = min(high, max(low, -(-len(files) // cluster.worker_threads(client))))
        batches = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]
        if client is not None:
            # pure=False: files can change between calls (a rebuilt view), so results are never reused by key
            futures = client.map(imaging.index_task, batches, pure=False)
            return self._without_excluded(dd.from_delayed(futures, meta=meta, verify_meta=False))
        index = dd.from_map(imaging.index_task, batches, meta=meta, enforce_metadata=False, label="dicom-index")
        return self._without_excluded(index)

    def pixels(self, index: pd.DataFrame | dd.DataFrame, batch_size: int = PIXEL_BATCH) -> da.Array:
        """Lazy stack (n, rows, columns) of the pixel arrays of an index frame's rows, in row order.

        The rows must be single-frame monochrome images of one size and pixel type (e.g. one series).
        """
        if isinstance(index, dd.DataFrame):
            index = index[["path", "rows", "columns", "bits_allocated", "pixel_representation", "frames"]].compute()
        if len(index) == 0:
            return da.zeros((0, 0, 0), dtype=np.uint16)
        shapes = index[["rows", "columns"]].drop_duplicates()
        kinds = index[["bits_allocated", "pixel_representation"]].drop_duplicates()
        if len(shapes) != 1 or shapes.isna().any(axis=None):
            raise WorkbenchError(
                f"pixels() needs images of one size; these rows have {len(shapes)}: filter to a series"
            )
        if len(kinds) != 1 or kinds.isna().any(axis=None):
            raise WorkbenchError("pixels() needs one pixel type (BitsAllocated/PixelRepresentation); filter the rows")
        if "frames" in index and (index["frames"].fillna(1) > 1).any():
            raise WorkbenchError("pixels() reads single-frame images; these rows include multi-frame files")
        shape = (int(shapes.iloc[0, 0]), int(shapes.iloc[0, 1]))
        try:
            dtype = imaging.pixel_dtype(int(kinds.iloc[0, 0]), int(kinds.iloc[0, 1]))
        except ValueError as exc:
            raise WorkbenchError(f"pixels(): {exc}") from exc
        paths = [str(p) for p in index["path"]]
        stacks = [
            da.from_delayed(
                dask.delayed(imaging.pixels_task, pure=True)(paths[i : i + batch_size], shape, dtype.str),
                shape=(len(paths[i : i + batch_size]), *shape),
                dtype=dtype,
            )
            for i in range(0, len(paths), batch_size)
        ]
        return da.concatenate(stacks, axis=0)

    # ---- compute ---------------------------------------------------------------------------------------------

    def client(self, n_workers: int | None = None, **kwargs: Any) -> Client:
        """A `distributed.Client` on a LocalCluster sized from MANIFEST.json's `compute` limits (or arguments), or,
        when its `compute.engine` is `slurm` or `kubernetes`, on the project's cluster there (workbench/cluster.py)."""
        return cluster.start_client(self.manifest, n_workers=n_workers, **kwargs)


def _call_variants(part: tuple[str, str, Region]) -> pd.DataFrame:
    path, site, chunk = part
    return vcf.variants_task(path, site, chunk)


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.exists():
        raise WorkbenchError(f"{root}: not a complete project view (no {MANIFEST}); was materialisation interrupted?")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(path, f"is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise InvalidInputError(path, f"must hold a JSON object, not {type(manifest).__name__}")
    return manifest


def _check_listed_files(root: Path, manifest: dict[str, Any]) -> None:
    missing, resized = [], []
    for rel, size in listed_files(manifest):
        path = root / rel
        try:
            actual = path.stat().st_size
        except OSError:
            missing.append(rel)
            continue
        if isinstance(size, int) and actual != size:
            resized.append(f"{rel} ({actual} bytes, manifest says {size})")
    if missing or resized:
        problems = []
        if missing:
            problems.append(f"{len(missing)} listed file(s) missing: {', '.join(missing[:5])}")
        if resized:
            problems.append(f"{len(resized)} file(s) changed size: {', '.join(resized[:5])}")
        raise InvalidInputError(root / MANIFEST, "view is incomplete or altered; " + "; ".join(problems))
