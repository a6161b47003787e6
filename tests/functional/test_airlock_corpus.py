"""The airlock's automated checks against the labelled corpus (tests/airlock_corpus), through the real command line.

One `enclave airlock check --json CORPUS` run is judged against the labels: every file reported once, nothing
labelled block or review passes, at least 90% of clean outputs pass and at most 2% are blocked (issue 11's targets),
every verdict is one its label accepts, the summary and
exit status agree with the files, and the report never repeats a planted identifier (the report is an output too).
Failures list the offending files with label, verdict and findings so the checker can be fixed from the message.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.airlock_corpus import build as corpus_module
from tests.airlock_corpus.build import (
    CATEGORIES,
    UNPICKLE_SENTINEL,
    VERDICTS,
    LabelledFile,
    build_corpus,
    corpus_table,
    nhs_check_digit,
    planted_identifiers,
)

pytestmark = [pytest.mark.functional, pytest.mark.timeout(1500)]

ENCLAVE = shutil.which("enclave", path=str(Path(sys.executable).parent))
COMMAND = [ENCLAVE] if ENCLAVE else [sys.executable, "-m", "provisioning.cli"]
CLI_TIMEOUT_S = 1200
MIN_CLEAN_PASS_RATE = 0.9  # issue 11: at least 90% of clean files pass
MAX_CLEAN_BLOCK_RATE = 0.02  # issue 11: at most 2% of clean aggregates blocked
MIN_FILES = 150
MIN_REALWORLD = 40
RANK = {v: i for i, v in enumerate(VERDICTS)}


@dataclass(frozen=True)
class Corpus:
    root: Path
    labels: Path
    files: list[LabelledFile]


@dataclass(frozen=True)
class CheckRun:
    command: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    report: dict | None
    problem: str | None  # why there is no usable report


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    """The corpus, built once per session; read-only by convention."""
    base = tmp_path_factory.mktemp("airlock-corpus")
    files = build_corpus(base / "corpus", labels=base / "labels.json")
    return Corpus(base / "corpus", base / "labels.json", files)


@pytest.fixture(scope="module")
def run(corpus: Corpus, tmp_path_factory) -> CheckRun:
    """One run of the real command line over the whole corpus directory."""
    home = tmp_path_factory.mktemp("airlock-home")
    command = [*COMMAND, "--home", str(home), "airlock", "check", "--json", str(corpus.root)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        return CheckRun(command, None, _text(exc.stdout), _text(exc.stderr), None, f"timed out after {CLI_TIMEOUT_S} s")
    out, err = result.stdout, result.stderr
    if result.returncode == 2 and ("No such command" in err or "Usage:" in err):
        problem = f"`enclave airlock check` is not available (exit 2); stderr:\n{_tail(err)}"
        return CheckRun(command, 2, out, err, None, problem)
    try:
        report = json.loads(out)
    except ValueError as exc:
        problem = (
            f"stdout is not one JSON document ({exc}); exit {result.returncode}\n"
            f"stdout starts: {out[:500]!r}\nstderr:\n{_tail(err)}"
        )
        return CheckRun(command, result.returncode, out, err, None, problem)
    if not isinstance(report, dict) or not isinstance(report.get("files"), list):
        problem = f"the report has no 'files' list; keys: {sorted(report) if isinstance(report, dict) else report!r}"
        return CheckRun(command, result.returncode, out, err, None, problem)
    return CheckRun(command, result.returncode, out, err, report, None)


def _text(value: str | bytes | None) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value or ""


def _tail(text: str, n: int = 3000) -> str:
    return text[-n:] if text else "(empty)"


def _report(run: CheckRun) -> dict:
    if run.problem:
        pytest.fail(f"{' '.join(run.command)}\n{run.problem}", pytrace=False)
    return run.report


def _entries(run: CheckRun) -> dict[str, dict]:
    """Report entries by path (the last one wins where a path repeats; the once-only test reports repeats)."""
    return {e.get("path"): e for e in _report(run)["files"] if isinstance(e, dict)}


def _verdict(entry: dict | None) -> str:
    return entry.get("verdict", "?") if entry else "MISSING"


def _describe(f: LabelledFile, entry: dict | None) -> str:
    acceptable = "/".join(v for v in VERDICTS if v in f.acceptable)
    shape = f"{f.category}, real-world" if f.realworld else f.category
    lines = [f"  {f.relpath} [{shape}] label={f.label} (accepts {acceptable}) verdict={_verdict(entry)}: {f.why}"]
    for finding in (entry or {}).get("findings") or []:
        if isinstance(finding, dict):
            lines.append(
                f"      - {finding.get('verdict')} {finding.get('check')}: {finding.get('message')}"
                + (f" @ {finding['location']}" if finding.get("location") else "")
            )
        else:
            lines.append(f"      - malformed finding {finding!r}")
    if entry is not None and not entry.get("findings"):
        lines.append("      (no findings)")
    return "\n".join(lines)


def _confusion(files: list[LabelledFile], entries: dict[str, dict]) -> str:
    """Rows: category and label; columns: the verdicts given (MISSING where the file was not reported)."""
    columns = [*VERDICTS, "MISSING", "other"]
    counts = Counter()
    for f in files:
        v = _verdict(entries.get(f.relpath))
        counts[(f.category, f.label, v if v in columns else "other")] += 1
    head = f"{'category':<10} {'label':<7} " + " ".join(f"{c:>7}" for c in columns)
    lines = [head, "-" * len(head)]
    for cat in CATEGORIES:
        for label in VERDICTS:
            row = [counts[(cat, label, c)] for c in columns]
            if sum(row):
                lines.append(f"{cat:<10} {label:<7} " + " ".join(f"{n:>7}" for n in row))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- the corpus


def test_corpus_is_well_formed(corpus: Corpus):
    files = corpus.files
    assert len(files) >= MIN_FILES
    assert sum(f.realworld for f in files) >= MIN_REALWORLD, "too few files shaped like real release requests"
    for label in VERDICTS:
        assert sum(f.realworld and f.label == label for f in files) >= 5, f"too few real-world {label} files"
    assert len({f.relpath for f in files}) == len(files)
    on_disk = sorted(p.relative_to(corpus.root).as_posix() for p in corpus.root.rglob("*") if p.is_file())
    assert on_disk == sorted(f.relpath for f in files)
    for cat in CATEGORIES:
        assert any(f.category == cat for f in files), f"no {cat} files"
    for label in VERDICTS:
        assert sum(f.label == label for f in files) >= 10, f"too few {label}-labelled files"
    assert corpus_table(files) in corpus_module.__doc__, (
        f"update the table in build.py's docstring:\n{corpus_table(files)}"
    )
    manifest = json.loads(corpus.labels.read_text())
    assert [m["path"] for m in manifest] == [f.relpath for f in files]
    nhs = {re.sub(r"\D", "", p) for p in planted_identifiers(files) if re.fullmatch(r"\d{3}[ -]?\d{3}[ -]?\d{4}", p)}
    assert nhs and all(nhs_check_digit(n[:9]) == int(n[9]) for n in nhs), "planted NHS numbers must pass mod 11"


def test_corpus_is_deterministic(corpus: Corpus, tmp_path):
    again = build_corpus(tmp_path / "corpus", labels=tmp_path / "labels.json")
    assert again == corpus.files
    assert (tmp_path / "labels.json").read_bytes() == corpus.labels.read_bytes()
    differ = [
        f.relpath
        for f in corpus.files
        if hashlib.sha256((corpus.root / f.relpath).read_bytes()).digest()
        != hashlib.sha256((tmp_path / "corpus" / f.relpath).read_bytes()).digest()
    ]
    assert not differ, f"files differ between two builds: {differ}"


# ---------------------------------------------------------------------------------------------------- the checker


def test_report_lists_every_file_once(corpus: Corpus, run: CheckRun):
    report = _report(run)
    paths = [e.get("path") if isinstance(e, dict) else e for e in report["files"]]
    labelled = {f.relpath for f in corpus.files}
    repeated = sorted(p for p, n in Counter(paths).items() if n > 1)
    missing = sorted(labelled - set(paths))
    extra = sorted(set(paths) - labelled, key=str)
    assert not (repeated or missing or extra), (
        f"paths must be relative to the directory argument, each once.\n"
        f"repeated: {repeated}\nmissing: {missing}\nnot in the corpus: {extra}"
    )
    problems = []
    for entry in report["files"]:
        if not isinstance(entry, dict):
            problems.append(f"not an object: {entry!r}")
            continue
        path = entry.get("path")
        for key in ("path", "sha256", "type", "verdict", "findings"):
            if key not in entry:
                problems.append(f"{path}: no {key!r}")
        if entry.get("verdict") not in VERDICTS:
            problems.append(f"{path}: verdict {entry.get('verdict')!r}")
        if path in labelled:
            digest = hashlib.sha256((corpus.root / path).read_bytes()).hexdigest()
            if entry.get("sha256") != digest:
                problems.append(f"{path}: sha256 {entry.get('sha256')!r} is not the file's {digest}")
        for finding in entry.get("findings") or []:
            if not isinstance(finding, dict) or set(finding) < {"check", "verdict", "message", "location"}:
                problems.append(f"{path}: finding without check/verdict/message/location: {finding!r}")
            elif finding["verdict"] not in ("review", "block"):
                problems.append(f"{path}: finding verdict {finding['verdict']!r} (findings are review or block)")
    assert not problems, "report entries do not follow the contract:\n" + "\n".join(problems)


def test_summary_and_exit_status_agree_with_files(run: CheckRun):
    report = _report(run)
    entries = [e for e in report["files"] if isinstance(e, dict)]
    given = Counter(e.get("verdict") for e in entries)
    expected = {v: given.get(v, 0) for v in VERDICTS}
    assert report.get("summary") == expected, f"summary {report.get('summary')} but the files give {expected}"
    worst_mismatch = []
    for e in entries:
        ranks = [RANK.get(f.get("verdict"), -1) for f in e.get("findings") or [] if isinstance(f, dict)]
        worst = VERDICTS[max(ranks, default=0)] if min(ranks, default=0) >= 0 else "?"
        if e.get("verdict") != worst:
            worst_mismatch.append(f"  {e.get('path')}: verdict {e.get('verdict')} but worst finding {worst}")
    assert not worst_mismatch, "a file's verdict is the worst of its findings:\n" + "\n".join(worst_mismatch)
    assert run.returncode == 1, (
        f"exit status {run.returncode}, expected 1 (some files do not pass)\n{_tail(run.stderr)}"
    )


def test_nothing_labelled_block_or_review_passes(corpus: Corpus, run: CheckRun):
    entries = _entries(run)
    leaked = [f for f in corpus.files if f.label != "pass" and _verdict(entries.get(f.relpath)) == "pass"]
    by_label = {label: [f for f in leaked if f.label == label] for label in ("block", "review")}
    if leaked:
        pytest.fail(
            f"{len(by_label['block'])} block-labelled and {len(by_label['review'])} review-labelled files passed:\n"
            + "\n".join(_describe(f, entries.get(f.relpath)) for f in leaked),
            pytrace=False,
        )


def test_most_clean_outputs_pass(corpus: Corpus, run: CheckRun):
    entries = _entries(run)
    clean = [f for f in corpus.files if f.label == "pass"]
    flagged = [f for f in clean if _verdict(entries.get(f.relpath)) != "pass"]
    rate = 1 - len(flagged) / len(clean)
    if rate < MIN_CLEAN_PASS_RATE:
        pytest.fail(
            f"only {rate:.0%} of {len(clean)} clean outputs passed (at least {MIN_CLEAN_PASS_RATE:.0%} must); "
            "the checker cries wolf on:\n" + "\n".join(_describe(f, entries.get(f.relpath)) for f in flagged),
            pytrace=False,
        )


def test_clean_aggregates_are_rarely_blocked(corpus: Corpus, run: CheckRun):
    entries = _entries(run)
    clean = [f for f in corpus.files if f.label == "pass"]
    blocked = [f for f in clean if _verdict(entries.get(f.relpath)) == "block"]
    rate = len(blocked) / len(clean)
    if rate > MAX_CLEAN_BLOCK_RATE:
        pytest.fail(
            f"{len(blocked)} of {len(clean)} clean outputs ({rate:.1%}) were blocked (at most "
            f"{MAX_CLEAN_BLOCK_RATE:.0%} may be):\n" + "\n".join(_describe(f, entries.get(f.relpath)) for f in blocked),
            pytrace=False,
        )


def test_every_verdict_is_one_its_label_accepts(corpus: Corpus, run: CheckRun):
    entries = _entries(run)
    wrong = [f for f in corpus.files if _verdict(entries.get(f.relpath)) not in f.acceptable]
    if wrong:
        pytest.fail(
            f"{len(wrong)} of {len(corpus.files)} files got a verdict their label does not accept.\n\n"
            f"{_confusion(corpus.files, entries)}\n\n" + "\n".join(_describe(f, entries.get(f.relpath)) for f in wrong),
            pytrace=False,
        )


def test_report_never_repeats_a_planted_identifier(corpus: Corpus, run: CheckRun):
    report = _report(run)
    planted = [(p, p.casefold()) for p in planted_identifiers(corpus.files)]
    leaks = []

    def strings(value, where: str):
        if isinstance(value, str):
            yield where, value
        elif isinstance(value, dict):
            for k, v in value.items():
                if k != "sha256":  # hex digits could hold a 10-digit run by chance
                    yield from strings(v, f"{where}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                yield from strings(v, f"{where}[{i}]")

    for entry in report["files"]:
        for where, text in strings(entry, str(entry.get("path") if isinstance(entry, dict) else "?")):
            folded = text.casefold()
            leaks += [f"  {where}: repeats {p!r} in {text!r}" for p, low in planted if low in folded]
    for where, text in strings({k: v for k, v in report.items() if k != "files"}, "report"):
        folded = text.casefold()
        leaks += [f"  {where}: repeats {p!r}" for p, low in planted if low in folded]
    if leaks:
        pytest.fail("findings must mask identifiers (the report is an output):\n" + "\n".join(leaks), pytrace=False)


def test_opaque_files_are_never_unpickled(run: CheckRun):
    assert UNPICKLE_SENTINEL not in run.stdout + run.stderr, "the checker unpickled other/model_with_reduce.pkl"
    _report(run)
