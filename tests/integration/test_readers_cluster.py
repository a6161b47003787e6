"""The readers on a real two-process LocalCluster: tasks pickle, run on separate workers, and errors come back."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from readers_fixtures import build_view, pysam_frequencies

from workbench import ProjectView, open_project
from workbench.errors import InvalidInputError

pytestmark = pytest.mark.integration


def test_two_worker_processes_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = build_view(tmp_path / "view")
    monkeypatch.setenv("ENCLAVE_PROJECT_DATA", str(root))
    view = open_project()
    with view.client() as client:  # 2 worker processes x 1 thread, from MANIFEST.json
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2 and all(w["nthreads"] == 1 for w in workers.values())
        small = ProjectView(root, chunk_bytes=256)
        freqs = small.allele_frequencies()
        assert freqs.npartitions >= 4
        got = freqs.compute().sort_values(["chrom", "pos", "ref", "alt"], ignore_index=True)
        parts = [pysam_frequencies(root / "genomics" / f"{s}.vcf.gz") for s in small.sites]
        expected = (
            pd.concat(parts)
            .groupby(["chrom", "pos", "ref", "alt"], as_index=False)[["an", "ac"]]
            .sum()
            .sort_values(["chrom", "pos", "ref", "alt"], ignore_index=True)
        )
        np.testing.assert_array_equal(got["ac"], expected["ac"])
        np.testing.assert_array_equal(got["an"], expected["an"])
        # both workers took part
        who = client.run(lambda dask_worker: len(dask_worker.data) + dask_worker.state.executed_count)
        assert all(n > 0 for n in who.values())

        index = small.imaging_index(batch_size=4).compute()
        assert len(index) == 18
        series = index[index["series_uid"] == index["series_uid"].iloc[0]]
        assert small.pixels(series).compute().shape == (3, 16, 12)
        matrix = small.genotypes("chr1")
        assert matrix.dosages.compute().shape[1] == 12

        # an error inside a worker process arrives as InvalidInputError naming the file
        (root / "MANIFEST.json").write_text(json.dumps({"project": "cardio-risk"}))
        vcf = root / "genomics" / "uclh.vcf.gz"
        vcf.write_bytes(vcf.read_bytes()[:-300])
        with pytest.raises(InvalidInputError, match=r"uclh\.vcf\.gz") as info:
            ProjectView(root).allele_frequencies().compute()
        assert info.value.path == vcf
