"""The inside of a checker sandbox (`python -I -m output_checks.sandbox.child KIND`): one job as JSON on stdin, JSON
lines on stdout, nothing else there. Jobs:

- `checks` (and `checks-warm`, a child started ahead of a request, which loads the readers and the screening model
  under the default policy *before* reading its job, so that the request has nothing left to load): prints
  {"ready": true} once loaded; reads {"policy", "known" (KnownIdentifiers.export() or null), "plugins",
  "files": [{"index", "path", "report_as"}]} and prints {"start": i} before each file and {"done": i, "report":
  FileReport JSON} after it, so the parent knows which file a crash or a hang happened on;
- `preview`: {"path"}; prints {"preview": Preview fields}.

Parsers may print: the protocol has its own copy of stdout, and file descriptor 1 is pointed at stderr."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from output_checks.screening.text import Screener

MEMORY_ERROR = "(MemoryError)"
OUT_OF_MEMORY = "the checker ran out of memory on this file: a reviewer must open it"


def _emit(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def prewarm(out: TextIO) -> tuple[dict[str, Any], Screener]:
    """Import every reader and load the screening model under the default policy, then say so."""
    from output_checks.checks import CHECKS, load_checks
    from output_checks.policy import load_policy
    from output_checks.screening.text import Screener

    load_checks([name for name, target in CHECKS.items() if target])
    for module in ("pandas", "pyarrow.parquet", "nbformat", "openpyxl", "pypdf", "PIL.Image"):
        with contextlib.suppress(ImportError):  # the readers import these on first use: a second or two in all
            importlib.import_module(module)
    policy = load_policy()
    screener = Screener(policy)
    screener.warm()
    _emit(out, {"ready": True})
    return policy.model_dump(mode="json"), screener


def run_checks_job(job: dict[str, Any], out: TextIO, warm: tuple[dict[str, Any], Screener] | None) -> None:
    from output_checks.checks import CHECKS
    from output_checks.engine import Target, check_file, make_context
    from output_checks.policy import Policy
    from output_checks.screening.known import KnownIdentifiers
    from output_checks.verdicts import Finding, Verdict

    CHECKS.update(job.get("plugins") or {})  # test doubles only: the parent decides, never the file
    policy = Policy.model_validate(job["policy"])
    known = KnownIdentifiers.restore(job["known"]) if job.get("known") else None
    with tempfile.TemporaryDirectory(prefix="airlock-") as scratch:
        ctx = make_context(policy, known, Path(scratch))
        if warm is not None and job["policy"] == warm[0]:
            ctx.screener_factory = lambda: warm[1]  # the model loaded ahead serves this policy as it is
        elif {"identifiers", "known_identifiers"} & set(policy.checks):
            ctx.screener.warm()  # before the first file's time limit starts
        if warm is None:
            _emit(out, {"ready": True})
        for item in job["files"]:
            _emit(out, {"start": item["index"]})
            report = check_file(Target(Path(item["path"]), item["report_as"]), ctx)
            # A MemoryError the engine caught is the memory limit at work: say so, not "could not be read".
            report.findings = [
                Finding("sandbox", Verdict.REVIEW, OUT_OF_MEMORY) if MEMORY_ERROR in f.message else f
                for f in report.findings
            ]
            _emit(out, {"done": item["index"], "report": report.to_json()})


def run_preview_job(job: dict[str, Any], out: TextIO, warm: None = None) -> None:
    from output_checks.web.previews import preview

    _emit(out, {"preview": dataclasses.asdict(preview(Path(job["path"])))})


JOBS = {"checks": run_checks_job, "preview": run_preview_job}


def main() -> None:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from output_checks.screening.offline import use_bundled_public_suffix_list

    use_bundled_public_suffix_list()
    kind = sys.argv[1]
    warm = prewarm(out) if kind == "checks-warm" else None
    job = json.loads(sys.stdin.buffer.read())
    kind = kind.removesuffix("-warm")
    if job["kind"] != kind:
        raise SystemExit(f"a {kind} child was sent a {job['kind']} job")
    JOBS[kind](job, out, warm)


if __name__ == "__main__":
    main()
