"""The inside of a checker sandbox (`python -I -m output_checks.sandbox.child`): one job as JSON on stdin, JSON
lines on stdout, nothing else there. Jobs:

- `checks`: {"policy", "known" (KnownIdentifiers.export() or null), "plugins", "files": [{"index", "path",
  "report_as"}]}; prints {"ready": true} once the screening model is loaded, then {"start": i} before each file and
  {"done": i, "report": FileReport JSON} after it, so the parent knows which file a crash or a hang happened on;
- `preview`: {"path"}; prints {"preview": Preview fields}.

Parsers may print: the protocol has its own copy of stdout, and file descriptor 1 is pointed at stderr."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

MEMORY_ERROR = "(MemoryError)"
OUT_OF_MEMORY = "the checker ran out of memory on this file: a reviewer must open it"


def _emit(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def run_checks_job(job: dict[str, Any], out: TextIO) -> None:
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
        if {"identifiers", "known_identifiers"} & set(policy.checks):
            ctx.screener.warm()  # model load belongs to start-up, not to the first file's time limit
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


def run_preview_job(job: dict[str, Any], out: TextIO) -> None:
    from output_checks.web.previews import preview

    _emit(out, {"preview": dataclasses.asdict(preview(Path(job["path"])))})


JOBS = {"checks": run_checks_job, "preview": run_preview_job}


def main() -> None:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    job = json.loads(sys.stdin.buffer.read())
    from output_checks.screening.offline import use_bundled_public_suffix_list

    use_bundled_public_suffix_list()
    JOBS[job["kind"]](job, out)


if __name__ == "__main__":
    main()
