"""The parent side of the checker sandbox: checks files in one checker child after another (files shared out over
several for a command line's paths) and renders a reviewer's preview in one, turning whatever goes wrong in there
into a `review` finding for the file it happened on. Nothing from the child is unpickled: its results are JSON,
validated into FileReport and Preview here.

How a child is confined is `confinement`, what it may use `limits`, what it reads `staging`, how it is spoken to
`process`, and the child started ahead of a request `warm`; callers import the names they need from here."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from output_checks.sandbox.confinement import CHECKS_ACCOUNT, isolation
from output_checks.sandbox.limits import DEFAULT_LIMITS, CheckerLimits
from output_checks.sandbox.process import Child, start_child
from output_checks.sandbox.staging import SandboxFile, Staging
from output_checks.sandbox.warm import keep_warm, refill, take_spare, wait_warm
from output_checks.verdicts import FileReport, Finding, Report, Verdict

if TYPE_CHECKING:
    from output_checks.policy import Policy
    from output_checks.screening.known import KnownIdentifiers
    from output_checks.web.previews import Preview

log = logging.getLogger("enclave.airlock.sandbox")

__all__ = [
    "CHECKS_ACCOUNT", "DEFAULT_LIMITS", "CheckerLimits", "SandboxFile", "check_files_sandboxed",
    "check_paths_sandboxed", "isolation", "keep_warm", "preview_sandboxed", "wait_warm",
]  # fmt: skip


# ------------------------------------------------------------------------------------------------ checks


def _review(item: SandboxFile, digest: str, why: str) -> FileReport:
    return FileReport(item.report_as, digest, "unchecked", [Finding("sandbox", Verdict.REVIEW, why)])


def _report(data: dict[str, Any], item: SandboxFile, digest: str) -> FileReport:
    """The child's report, validated; the path is ours, and so is the digest where we copied the bytes."""
    findings = [
        Finding(str(f["check"]), Verdict(f["verdict"]), str(f["message"]), str(f.get("location", "")))
        for f in data["findings"]
    ]
    return FileReport(item.report_as, digest or str(data["sha256"]), str(data["type"]), findings)


def check_files_sandboxed(
    files: Sequence[SandboxFile],
    policy: Policy,
    known: KnownIdentifiers | None = None,
    *,
    limits: CheckerLimits = DEFAULT_LIMITS,
    account: str = CHECKS_ACCOUNT,
    plugins: dict[str, str] | None = None,
    on_done: Callable[[], None] | None = None,
) -> list[FileReport]:
    """Check `files` in one checker child after another: a file the child dies or hangs on is `review` with the
    reason, and a fresh child takes the files after it."""
    iso = isolation(account)
    extra = [policy.recognizers_file.resolve()] if policy.recognizers_file else []
    spare = take_spare(iso, limits, extra)
    staging = spare.staging if spare else Staging(iso)
    # A fresh child loads its readers and model while the files are copied in.
    first: Child | None = spare.child if spare else (start_child(iso, staging, limits, extra) if files else None)
    reports: dict[int, FileReport] = {}
    try:
        inside: dict[int, tuple[str, str]] = {}
        for index, item in enumerate(files):
            try:
                inside[index] = staging.add(index, item)
            except OSError as exc:
                why = f"cannot read the file ({exc.strerror})"
                reports[index] = FileReport(item.report_as, "", "unreadable", [Finding("engine", Verdict.REVIEW, why)])
        base = {
            "kind": "checks",
            "policy": policy.model_dump(mode="json"),
            "known": known.export() if known is not None else None,
            "plugins": plugins or {},
        }
        pending = [i for i in range(len(files)) if i not in reports]
        while pending:
            job = {**base, "files": [{"index": i, "path": inside[i][0], "report_as": files[i].report_as}
                                     for i in pending]}  # fmt: skip
            child, first = first or start_child(iso, staging, limits, extra), None
            _run_batch(child, limits, job, files, reports, inside, on_done)
            left = [i for i in pending if i not in reports]
            if len(left) == len(pending):  # a child that dies between files makes no progress: stop there
                why = "the checker crashed before reading this file: a reviewer must open it"
                reports.update({i: _review(files[i], inside[i][1], why) for i in left})
            pending = [i for i in left if i not in reports]
    finally:
        if first is not None:  # every file was unreadable: the child started for them has nothing to do
            first.kill()
            first.finish()
        staging.remove()
        refill(iso, limits, extra)  # after the batch, not during it: the next request's child must not slow this one
    return [reports[i] for i in range(len(files))]


def _run_batch(child: Child, limits: CheckerLimits, job, files, reports, inside, on_done) -> None:
    """One child over `job`'s files, until it has reported them all or stops; the file it stopped on is review."""
    child.send(job)
    current: int | None = None
    deadline = [time.monotonic() + limits.startup_seconds]
    ready = child.ready
    timed_out = False
    for message in child.messages(lambda: deadline[0]):
        if message is None:
            timed_out = True
            break
        if message.get("ready"):
            ready = True
        elif "start" in message and ready:
            current = int(message["start"])
            deadline[0] = time.monotonic() + limits.seconds_per_file
        elif "done" in message and current is not None and int(message["done"]) == current:
            try:
                reports[current] = _report(message["report"], files[current], inside[current][1])
            except (KeyError, TypeError, ValueError):
                reports[current] = _review(files[current], inside[current][1], "the checker's report was unreadable")
            if on_done:
                on_done()
            current = None
        else:
            child.kill()  # anything off-protocol: stop trusting this child
            break
    code = child.finish()
    if current is None and not ready:
        # It never got to a file: the sandbox itself failed. Every file left is unchecked, so review, said plainly.
        log.error("the checker sandbox failed to start (exit status %s)", code)
        why = "the checker could not start: a reviewer must open it"
        for item in job["files"]:
            reports.setdefault(item["index"], _review(files[item["index"]], inside[item["index"]][1], why))
        return
    if current is not None:
        if timed_out:
            why = f"the checker timed out on this file (over {limits.seconds_per_file:g} s): a reviewer must open it"
        else:
            what = child.death(code)
            limit = f" (over {limits.memory_bytes / 2**20:.0f} MiB)" if what == "ran out of memory" else ""
            why = f"the checker {what} on this file{limit}: a reviewer must open it"
        log.warning("checker child stopped on file %d of a batch: %s", current, why.split(":")[0])
        reports[current] = _review(files[current], inside[current][1], why)
        if on_done:
            on_done()


def check_paths_sandboxed(
    paths: Sequence[Path],
    policy: Policy,
    known: KnownIdentifiers | None = None,
    *,
    workers: int | None = None,
    progress: bool = False,
    limits: CheckerLimits = DEFAULT_LIMITS,
) -> Report:
    """`engine.check_paths`, with every file parsed in checker children (one per worker, files shared out)."""
    from output_checks.engine import PARALLEL_BYTES, Target, _bar, targets

    items = list(targets(paths))
    found = [t for t in items if isinstance(t, Target)]
    total = sum(t.path.stat().st_size for t in found)
    workers = workers or min(len(os.sched_getaffinity(0)), len(found)) or 1
    if total < PARALLEL_BYTES:
        workers = 1
    files = [SandboxFile(t.path, t.report_as) for t in found]
    # Largest first, dealt round-robin, so that no worker is left with every big file.
    order = sorted(range(len(files)), key=lambda i: -found[i].path.stat().st_size)
    shares = [order[w::workers] for w in range(workers)]
    results: dict[int, FileReport] = {}
    bar = _bar(len(files), progress)
    lock = threading.Lock()

    def tick() -> None:
        with lock:
            bar.update()

    def work(share: list[int]) -> None:
        done = check_files_sandboxed([files[i] for i in share], policy, known, limits=limits, on_done=tick)
        results.update(zip(share, done, strict=True))

    threads = [threading.Thread(target=work, args=(share,)) for share in shares if share]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
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


# ------------------------------------------------------------------------------------------------ previews


def preview_sandboxed(
    source: Path, name: str, *, limits: CheckerLimits = DEFAULT_LIMITS, account: str = CHECKS_ACCOUNT
) -> Preview:
    """The reviewer's preview of `source` (checked under `name`), rendered in a checker child."""
    from output_checks.web.previews import Preview

    iso = isolation(account)
    staging = Staging(iso)
    try:
        try:
            path, _ = staging.add(0, SandboxFile(source, name, name))
        except OSError as exc:
            return Preview("none", "", reason=f"the file could not be read for a preview ({exc.strerror})")
        child = start_child(iso, staging, limits, (), kind="preview")
        child.send({"kind": "preview", "path": path})
        deadline = time.monotonic() + limits.startup_seconds + limits.seconds_per_file
        got: dict[str, Any] | None = None
        timed_out = False
        for message in child.messages(lambda: deadline):
            if message is None:
                timed_out = True
            elif "preview" in message:
                got = message["preview"]
        code = child.finish()
    finally:
        staging.remove()
    if got is not None:
        try:
            known = {f.name for f in fields(Preview)}
            return Preview(**{k: v for k, v in got.items() if k in known})
        except TypeError:
            pass
    what = "timed out" if timed_out else child.death(code)
    return Preview("none", "", reason=f"the previewer {what} on this file: judge it by the checks' findings")
