"""The checks engine: walks the paths, sniffs each file's real type, runs the checks the policy enables for that
type, and combines their findings into one verdict per file (the worst finding; a file nothing could read is
review, never pass). Files are checked on every core; each worker builds its Presidio engine once."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from kernel.digests import sha256_file
from output_checks.checks import Context, Subject, load_checks
from output_checks.policy import Policy, load_policy
from output_checks.screening.known import KnownIdentifiers
from output_checks.screening.text import Screener
from output_checks.sniff import refine, sniff
from output_checks.verdicts import FileReport, Finding, Report, Verdict

MAX_FINDINGS = 50  # per file; the rest are summarised (the verdict still counts them all)
PARALLEL_BYTES = 2**20  # below this in total, one process is faster than starting workers


@dataclass(frozen=True)
class Target:
    """A file to check: where it is, and the path it is reported under."""

    path: Path
    report_as: str


def targets(paths: Sequence[Path]) -> Iterator[Target | tuple[str, str]]:
    """Files under `paths` (directories walked recursively, sorted, links never followed); a link or special file
    yields (report_as, reason) instead."""
    for root in paths:
        if root.is_symlink():
            yield str(root), "a symbolic link: not followed"
        elif root.is_dir():
            for folder, dirs, files in os.walk(root, followlinks=False):
                dirs.sort()
                for name in sorted(files + [d for d in dirs if (Path(folder) / d).is_symlink()]):
                    path = Path(folder) / name
                    rel = path.relative_to(root).as_posix()
                    if path.is_symlink():
                        yield rel, "a symbolic link: not followed"
                    elif path.is_file():
                        yield Target(path, rel)
                    else:
                        yield rel, "not a regular file"
        elif root.is_file():
            yield Target(root, str(root))
        else:
            yield str(root), "not a regular file"


def run_checks(subject: Subject, ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    read = False
    for check in load_checks(ctx.policy.checks):
        if check.kinds is not None and subject.kind not in check.kinds:
            continue
        read = read or check.kinds is not None
        try:
            blocking = 0
            results = iter(check.run(subject, ctx))
            for f in results:
                findings.append(f)
                blocking += f.verdict is Verdict.BLOCK
                if blocking >= MAX_FINDINGS:
                    # The file cannot leave; reading further would only lengthen a report nobody needs longer.
                    results.close()
                    stop = f"stopped after {MAX_FINDINGS} blocking findings"
                    findings.append(Finding(check.name, Verdict.BLOCK, stop))
                    break
        except Exception as exc:  # any reader failure is a review, never a crash or a pass
            findings.append(
                Finding(
                    check.name,
                    Verdict.REVIEW,
                    f"could not be read as {subject.kind} ({type(exc).__name__}): a reviewer must open it",
                )
            )
    if not read and not findings:
        # Deny unless allowed: a file no enabled check could read has not been checked.
        findings.append(Finding("engine", Verdict.REVIEW, f"no enabled check reads {subject.kind} files"))
    return findings


def _cap(findings: list[Finding]) -> list[Finding]:
    if len(findings) <= MAX_FINDINGS:
        return findings
    ordered = sorted(findings, key=lambda f: -f.verdict.rank)
    kept, rest = ordered[: MAX_FINDINGS - 1], ordered[MAX_FINDINGS - 1 :]
    worst = Verdict.worst(f.verdict for f in rest)
    kept.append(Finding("engine", worst, f"and {len(rest)} more finding(s) like these"))
    return kept


def check_file(target: Target, ctx: Context) -> FileReport:
    path = target.path
    try:
        digest = sha256_file(path)
        size = path.stat().st_size
    except OSError as exc:
        unreadable = Finding("engine", Verdict.REVIEW, f"cannot read the file ({exc.strerror})")
        return FileReport(target.report_as, "", "unreadable", [unreadable])
    try:
        kind = refine(path, sniff(path))
    except Exception as exc:  # a damaged container can fail while its type is read: review, never a crash
        why = f"the file is damaged: its type could not be read ({type(exc).__name__})"
        return FileReport(target.report_as, digest, "damaged", [Finding("engine", Verdict.REVIEW, why)])
    subject = Subject(target.report_as, path, kind, size)
    findings = run_checks(subject, ctx)
    return FileReport(target.report_as, digest, kind, _cap(mask_echoes(findings, ctx)))


def mask_echoes(findings: list[Finding], ctx: Context) -> list[Finding]:
    """Backstop for the rule that a report never repeats an identifier: names a file controls (sheet titles, JSON
    keys, archive members, column headers) end up in locations and messages, so those are screened too and any
    identifier in them is masked."""
    texts = sorted({t for f in findings for t in (f.location, f.message) if t and any(c.isalnum() for c in t)})
    if not texts or ("identifiers" not in ctx.policy.checks and ctx.known is None):
        return findings
    masked = ctx.screener.mask_identifiers(texts, known=ctx.known)
    if not masked:
        return findings
    return [
        Finding(f.check, f.verdict, masked.get(f.message, f.message), masked.get(f.location, f.location))
        for f in findings
    ]


def make_context(policy: Policy, known: KnownIdentifiers | None, workdir: Path | None) -> Context:
    ctx = Context(policy=policy, screener_factory=lambda: Screener(policy), known=known, workdir=workdir)
    ctx.check_member = lambda member: run_checks(member, ctx)
    return ctx


_WORKER: Context | None = None  # the context forked workers inherit


def _work(target: Target) -> FileReport:
    assert _WORKER is not None
    return check_file(target, _WORKER)


def check_paths(
    paths: Sequence[Path],
    policy: Policy | None = None,
    known: KnownIdentifiers | None = None,
    *,
    workers: int | None = None,
    progress: bool = False,
) -> Report:
    """Check every file under `paths`; the report lists them in walk order."""
    policy = policy or load_policy()
    items = list(targets(paths))
    files = [t for t in items if isinstance(t, Target)]
    total = sum(t.path.stat().st_size for t in files)
    workers = workers or min(len(os.sched_getaffinity(0)), len(files)) or 1
    if total < PARALLEL_BYTES:
        workers = 1
    # Keyed by position: two directory arguments may hold files with the same relative path.
    results: dict[int, FileReport] = {}
    bar = _bar(len(files), progress)
    with tempfile.TemporaryDirectory(prefix="enclave-airlock-") as scratch:
        workdir = Path(scratch)
        if workers <= 1:
            ctx = make_context(policy, known, workdir)
            for index, target in enumerate(files):
                results[index] = check_file(target, ctx)
                bar.update()
        else:
            # Largest first, so that one big file does not finish last on a single core.
            ordered = sorted(range(len(files)), key=lambda i: -files[i].path.stat().st_size)
            # The parent loads the NLP model and the recognisers once, before any file is read (no reader
            # threads are running yet), then forks: workers share the loaded model copy-on-write instead of
            # each spending seconds loading their own.
            global _WORKER
            _WORKER = make_context(policy, known, workdir)
            if {"identifiers", "known_identifiers"} & set(policy.checks):
                _WORKER.screener.warm()
            chunk = max(1, len(files) // (workers * 16))
            with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
                reports = pool.map(_work, [files[i] for i in ordered], chunksize=chunk)
                for index, report in zip(ordered, reports, strict=True):
                    results[index] = report
                    bar.update()
    bar.close()
    report = Report()
    position = iter(range(len(files)))
    for item in items:
        if isinstance(item, Target):
            report.files.append(results[next(position)])
        else:
            where, why = item
            report.files.append(FileReport(where, "", "link", [Finding("engine", Verdict.REVIEW, why)]))
    return report


def _bar(total: int, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="airlock check", leave=False, disable=not progress)
