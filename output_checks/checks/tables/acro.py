"""ACRO's own verdicts as evidence: the `results.json` that `acro.finalise` writes beside its outputs, believed for a
file only while ACRO's recorded checksum still matches the file's bytes; a mismatch is itself a finding.

ACRO's record can only make a verdict stricter, never looser: Enclave's own rules run whatever ACRO said.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from kernel.digests import sha256_file
from output_checks.verdicts import Finding, Verdict

RESULTS = "results.json"
MAX_RESULTS_BYTES = 16 * 2**20
# ACRO renames outputs that must stay inside the TRE (its session summaries) with this suffix.
DO_NOT_RELEASE = re.compile(r"DONT_RELEASE|DO_NOT_RELEASE", re.IGNORECASE)
# ACRO's own records of a session beside its outputs: results.json and its session summaries (every output's
# variables and statuses), which are for the output checker, not for release.
SESSION_RECORD = re.compile(r"^session_summary\.[a-z]+$", re.IGNORECASE)
FAILED_CHECK = re.compile(r"\b([A-Za-z]+Check):\s*fail")


class AcroStatus(str):
    """ACRO's verdict on one file as the string the tables driver compares ("pass", "fail" or "review"), carrying
    the reason; formatted (as in a finding's message) it reads "review (the reason)"."""

    reason: str

    def __new__(cls, status: str, reason: str = "") -> AcroStatus:
        obj = super().__new__(cls, status)
        obj.reason = reason
        return obj

    @property
    def status(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        text = f"{self.status} ({self.reason})" if self.reason else self.status
        return format(text, spec)

    @property
    def verdict(self) -> Verdict:
        return {"pass": Verdict.PASS, "review": Verdict.REVIEW}.get(self.status, Verdict.BLOCK)


@dataclass(frozen=True)
class _Output:
    uid: str
    status: str
    kind: str
    summary: str
    exception: str


@lru_cache(maxsize=32)
def _load(results: Path, mtime_ns: int, size: int) -> dict[str, _Output] | None:
    """File name -> ACRO's output record, or None when the file is not ACRO's results.json."""
    del mtime_ns, size  # cache keys: a rewritten results.json is read again
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    outputs = data.get("results") if isinstance(data, dict) else None
    if not isinstance(outputs, dict):
        return None
    named: dict[str, _Output] = {}
    for key, output in outputs.items():
        if not isinstance(output, dict) or not isinstance(output.get("files"), list) or "status" not in output:
            continue
        record = _Output(
            uid=str(output.get("uid") or key),
            status=str(output.get("status", "")).strip().lower(),
            kind=str(output.get("type", "")),
            summary=str(output.get("summary", "")),
            exception=str(output.get("exception") or "").strip(),
        )
        for item in output["files"]:
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and name:
                named[Path(name).name] = record
    tool = data.get("tool") if isinstance(data.get("tool"), dict) else {}
    if not named and str(tool.get("name", "")).upper() != "ACRO":
        return None
    return named


def _records(folder: Path) -> dict[str, _Output] | None:
    results = folder / RESULTS
    try:
        st = results.stat()
    except OSError:
        return None
    if not results.is_file() or st.st_size > MAX_RESULTS_BYTES:
        return None
    return _load(results, st.st_mtime_ns, st.st_size)


def _recorded_checksum(folder: Path, name: str) -> str | None:
    try:
        text = (folder / "checksums" / f"{name}.txt").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    words = text.strip().split()
    return words[0].lower() if words else None


def _judged(record: _Output) -> AcroStatus:
    """What ACRO's record says about a file whose bytes are the ones ACRO checked."""
    if DO_NOT_RELEASE.search(record.uid):
        return AcroStatus("fail", f"ACRO marked output {record.uid!r} do not release")
    if record.status == "fail":
        failed = sorted(set(FAILED_CHECK.findall(record.summary)))
        why = f"ACRO's {', '.join(failed)} failed" if failed else "ACRO's checks failed"
        if record.exception:
            return AcroStatus("review", f"{why}; the researcher asked for an exception, which a reviewer decides")
        return AcroStatus("fail", why)
    if record.status == "pass":
        return AcroStatus("pass")
    if record.status == "review":
        what = "a custom output" if record.kind == "custom" else f"a {record.kind or 'output'}"
        return AcroStatus("review", f"ACRO leaves {what} to the output checker")
    return AcroStatus("review", f"ACRO's status {record.status!r} is not one Enclave knows")


def acro_evidence(path: Path, sha256: str) -> AcroStatus | None:
    """ACRO's verdict on this file from the `results.json` beside it ("pass", "fail" or "review", with its reason),
    or None where no ACRO record names it.

    A file ACRO checked whose bytes no longer match ACRO's recorded checksum (or whose checksum is missing) was
    edited after ACRO checked it: "review", whatever ACRO had said. ACRO's own record (`results.json`) is for the
    output checker, not for release: "review". An output ACRO named do-not-release (its session summaries) is
    "fail", and a failed output with an exception request is "review".
    """
    # The checker may read the file through a link its runner made (under the file's own name): ACRO's record
    # lies beside the file itself.
    path = Path(path).resolve()
    records = _records(path.parent)
    if records is None:
        return None
    if path.name == RESULTS:
        return AcroStatus("review", "ACRO's record of the session (results.json) is for the output checker")
    record = records.get(path.name)
    if record is None:
        if SESSION_RECORD.match(path.name):
            return AcroStatus("review", f"ACRO's summary of the session ({path.name}) is for the output checker")
        return None
    recorded = _recorded_checksum(path.parent, path.name)
    if recorded is None:
        return AcroStatus("review", "ACRO's checksum for it is missing: it may have been edited after ACRO checked it")
    if recorded != sha256.lower():
        had = f"; ACRO had marked it {record.status}" if record.status in ("fail", "review") else ""
        return AcroStatus("review", f"edited after ACRO checked it: its checksum no longer matches ACRO's record{had}")
    return _judged(record)


def is_acro_record(path: Path) -> bool:
    """Whether `path` is ACRO's own record of a session (its results.json) rather than an output."""
    path = Path(path).resolve()
    return path.name == RESULTS and _records(path.parent) is not None


def acro_finding(path: Path, sha256: str, location: str = "", check: str = "tables") -> Finding | None:
    """ACRO's evidence as a finding (None where it adds nothing: no record, or ACRO passed the unedited file)."""
    status = acro_evidence(path, sha256)
    if status is None or status.verdict is Verdict.PASS:
        return None
    return Finding(check, status.verdict, f"ACRO's evidence: {status.reason or status.status}", location)


class AcroEvidenceCheck:
    """ACRO's verdicts on outputs the tables check does not read (figures, custom outputs, text): a file ACRO
    failed, marked do-not-release or left to review does not pass, and neither does one edited since."""

    name: ClassVar[str] = "acro"
    kinds: ClassVar[frozenset[str] | None] = None

    def run(self, subject: Any, ctx: Any) -> list[Finding]:
        from output_checks.checks.tables.readers import READERS

        del ctx
        # Tables get the same evidence through the tables check (results.json itself is JSON but never a table);
        # archive members have no results.json beside them.
        table = subject.kind in READERS and subject.path.name != RESULTS and not SESSION_RECORD.match(subject.path.name)
        if subject.depth != 0 or table or not (subject.path.resolve().parent / RESULTS).is_file():
            return []

        found = acro_finding(subject.path, sha256_file(subject.path), subject.location, self.name)
        return [found] if found else []
