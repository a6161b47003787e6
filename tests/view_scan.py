"""Test helper: collect every direct identifier from a cohort's raw site exports, and scan a project view's
decoded contents for any of them (Parquet as text, BGZF/gzip decompressed, everything else as raw bytes)."""

from __future__ import annotations

import csv
import gzip
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import yaml

from fabric.clinical import open_site_clinical


@dataclass
class RawIdentifiers:
    names: set[str] = field(default_factory=set)
    nhs_numbers: set[str] = field(default_factory=set)
    mrns: set[str] = field(default_factory=set)
    birth_dates: set[str] = field(default_factory=set)
    postcodes: set[str] = field(default_factory=set)
    sample_ids: set[str] = field(default_factory=set)

    def find(self, content: bytes) -> set[str]:
        """Kinds of identifier present in `content`: candidate tokens by shape, then exact set membership (a
        linear scan; one regex alternation of thousands of identifiers is far too slow on imaging bytes)."""
        text = content.decode("latin-1")
        found = set()
        digits10 = set(re.findall(r"(?<![0-9])(?:[0-9]{10}|[0-9]{3} [0-9]{3} [0-9]{4})(?![0-9])", text))
        if digits10 & self.nhs_numbers:
            found.add("nhs_number")
        dates = re.findall(
            r"(?<![0-9])(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{2}/[0-9]{2}/[0-9]{4}|[0-9]{8})(?![0-9])", text
        )
        if set(dates) & self.birth_dates:
            found.add("birth_date")
        tokens = set(re.findall(r"[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]", text))
        if tokens & self.mrns:
            found.add("mrn")
        if tokens & self.sample_ids:
            found.add("sample_id")
        postcodes = re.findall(r"(?<![A-Za-z0-9])[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}(?![A-Za-z0-9])", text)
        if set(postcodes) & self.postcodes:
            found.add("postcode")
        words = list(re.finditer(r"[A-Za-z][A-Za-z'-]*", text))
        for first, second in itertools.pairwise(words):
            separator = text[first.end() : second.start()]
            if separator in (" ", "^", ", ") and f"{first.group()}{separator}{second.group()}" in self.names:
                found.add("name")
                break
        return found


def raw_identifiers(sites: Path) -> RawIdentifiers:
    ids = RawIdentifiers()
    for site_dir in sorted(p for p in sites.iterdir() if (p / "site.yaml").exists()):
        manifest = yaml.safe_load((site_dir / "site.yaml").read_text())
        for ds in manifest["datasets"]:
            if ds["modality"] == "clinical":
                reader = open_site_clinical(
                    site_dir / ds["path"], ds["format"], manifest["id"], manifest.get("clinical_dialect")
                )
                for chunk in reader.iter_table("patients"):
                    for row in chunk.itertuples():
                        nhs = row.nhs_number
                        ids.nhs_numbers |= {nhs, f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"}
                        ids.mrns.add(row.mrn)
                        ids.names |= {
                            f"{row.forename} {row.surname}",
                            f"{row.surname}^{row.forename}",
                            f"{row.surname}, {row.forename}",
                        }
                        d = row.birth_date
                        ids.birth_dates |= {d.isoformat(), d.strftime("%d/%m/%Y"), d.strftime("%Y%m%d")}
                        ids.postcodes |= {row.postcode, row.postcode.replace(" ", "")}
        samples = site_dir / "genomics" / "samples.csv"
        if samples.exists():
            with samples.open() as fh:
                for row in csv.DictReader(fh):
                    ids.sample_ids.add(row["sample_id"])
    return ids


def decoded(path: Path) -> bytes:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pandas().to_csv(index=False).encode()
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":  # gzip / BGZF (VCF, BAM, and their indexes)
        return gzip.decompress(data)
    return data


def scan_view(view: Path, identifiers: RawIdentifiers) -> list[tuple[str, str]]:
    """(file, kind of identifier) for every hit; empty when the view is clean."""
    hits = []
    for path in sorted(p for p in view.rglob("*") if p.is_file()):
        content = path.relative_to(view).as_posix().encode() + b"\n" + decoded(path)
        hits += [(path.relative_to(view).as_posix(), kind) for kind in sorted(identifiers.find(content))]
    return hits


def view_tables(view: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in sorted((view / "clinical").glob("*.parquet"))}
