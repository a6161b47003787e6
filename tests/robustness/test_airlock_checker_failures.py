"""Files that break the parser: the checker sandbox (output_checks/sandbox) turns a crash, a hang or a memory
blow-up of the child into `review` with the reason for that one file, never a failure of the caller or a `pass`,
and a fresh child checks the files after it.

The misbehaving checks are the test doubles of `output_checks.sandbox.mocking`, swapped in as plugins and named
in the policy; each misbehaves only on a file starting with its trigger. The policy here runs no Presidio, so a
child starts in about a second. As root these run in the real bubblewrap sandbox as the checks account; as anyone
else in the plain-subprocess fallback, under the same limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from output_checks.policy import Policy, load_policy
from output_checks.sandbox import mocking
from output_checks.sandbox.runner import CheckerLimits, SandboxFile, check_files_sandboxed, preview_sandboxed
from output_checks.screening.known import KnownIdentifiers
from output_checks.verdicts import FileReport, Verdict

pytestmark = pytest.mark.robustness

# A hang is the one case only a time limit can catch: keep it short. A file takes milliseconds here.
LIMITS = CheckerLimits(seconds_per_file=3, startup_seconds=60, memory_bytes=2 * 2**30)


def policy_with(*checks: str) -> Policy:
    return load_policy().model_copy(update={"checks": ["file_type", "text", "tables", *checks]})


def batch(folder: Path, files: dict[str, bytes], policy: Policy, known: KnownIdentifiers | None = None):
    items = []
    for name, content in files.items():
        (folder / name).write_bytes(content)
        items.append(SandboxFile(folder / name, name))
    reports = check_files_sandboxed(items, policy, known, limits=LIMITS, plugins=mocking.PLUGINS)
    assert [r.path for r in reports] == list(files)
    return {r.path: r for r in reports}


def reasons(report: FileReport) -> list[str]:
    return [f.message for f in report.findings if f.check == "sandbox"]


AROUND = {"before.csv": b"site,n\nA,120\nB,45\n", "after.txt": b"Mean LDL fell by 0.4 mmol/L.\n"}


def assert_neighbours_checked(reports: dict[str, FileReport]) -> None:
    assert reports["before.csv"].verdict is Verdict.PASS and reports["before.csv"].type == "csv"
    assert reports["after.txt"].verdict is Verdict.PASS and reports["after.txt"].type == "text"


def test_a_parser_that_segfaults_makes_that_file_review_and_the_next_file_is_still_checked(tmp_path: Path) -> None:
    files = {"before.csv": AROUND["before.csv"], "bad.txt": mocking.CRASH + b" me", "after.txt": AROUND["after.txt"]}
    reports = batch(tmp_path, files, policy_with("mock_segfault"))
    bad = reports["bad.txt"]
    assert bad.verdict is Verdict.REVIEW
    assert reasons(bad) == ["the checker crashed (SIGSEGV) on this file: a reviewer must open it"]
    assert len(bad.sha256) == 64 or bad.sha256 == ""
    assert_neighbours_checked(reports)


def test_a_parser_that_hangs_is_stopped_at_the_time_limit_and_the_file_is_review(tmp_path: Path) -> None:
    files = {"before.csv": AROUND["before.csv"], "slow.txt": mocking.HANG + b"\n", "after.txt": AROUND["after.txt"]}
    reports = batch(tmp_path, files, policy_with("mock_hang"))
    assert reasons(reports["slow.txt"]) == ["the checker timed out on this file (over 3 s): a reviewer must open it"]
    assert reports["slow.txt"].verdict is Verdict.REVIEW
    assert_neighbours_checked(reports)


def test_a_parser_that_allocates_past_the_memory_limit_makes_the_file_review_saying_so(tmp_path: Path) -> None:
    files = {"before.csv": AROUND["before.csv"], "bomb.txt": mocking.GREEDY + b"\n", "after.txt": AROUND["after.txt"]}
    reports = batch(tmp_path, files, policy_with("mock_greedy"))
    assert reasons(reports["bomb.txt"]) == ["the checker ran out of memory on this file: a reviewer must open it"]
    assert reports["bomb.txt"].verdict is Verdict.REVIEW
    assert_neighbours_checked(reports)


def test_every_file_of_a_batch_crashing_still_gives_one_review_each(tmp_path: Path) -> None:
    files = {f"bad{i}.txt": mocking.CRASH for i in range(3)}
    reports = batch(tmp_path, files, policy_with("mock_segfault"))
    assert all(reasons(r) and r.verdict is Verdict.REVIEW for r in reports.values())


def test_a_file_that_cannot_be_read_is_review_and_the_batch_goes_on(tmp_path: Path) -> None:
    (tmp_path / "gone.csv").symlink_to(tmp_path / "nowhere")  # never followed: the bytes are opened O_NOFOLLOW
    (tmp_path / "ok.csv").write_bytes(AROUND["before.csv"])
    items = [SandboxFile(tmp_path / "gone.csv", "gone.csv"), SandboxFile(tmp_path / "ok.csv", "ok.csv")]
    gone, ok = check_files_sandboxed(items, policy_with(), limits=LIMITS)
    assert gone.verdict is Verdict.REVIEW and ok.verdict is Verdict.PASS


def test_known_identifiers_reach_the_child_as_keyed_hashes_and_still_block(tmp_path: Path) -> None:
    known = KnownIdentifiers("cardio-risk")
    known.add_name("Ada", "Lovelace")
    known.add("nhs", "943 476 5919")
    restored = KnownIdentifiers.restore(known.export())
    assert [m.kind for m in restored.matches("Ada Lovelace, 943 476 5919")] == ["nhs", "name"]
    assert "Lovelace" not in str(known.export()) and "9434765919" not in str(known.export())
    policy = load_policy().model_copy(update={"checks": ["file_type", "text", "known_identifiers"]})
    reports = batch(tmp_path, {"letter.txt": b"Seen today: Ada Lovelace, NHS 943 476 5919.\n"}, policy, known)
    letter = reports["letter.txt"]
    assert letter.verdict is Verdict.BLOCK
    assert {f.check for f in letter.findings} == {"known_identifiers"}
    assert not any("Lovelace" in f.message or "943 476 5919" in f.message for f in letter.findings)


def test_a_preview_of_a_damaged_file_is_no_preview_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "snap").write_bytes(b"PAR1" + b"\x00" * 64 + b"PAR1")
    shown = preview_sandboxed(tmp_path / "snap", "t.parquet", limits=LIMITS)
    assert shown.kind == "none" and shown.reason
    (tmp_path / "counts").write_bytes(b"site,n\nA,120\n")
    shown = preview_sandboxed(tmp_path / "counts", "counts.csv", limits=LIMITS)
    assert (shown.kind, shown.columns, shown.rows) == ("table", ["site", "n"], [["A", "120"]])


def test_without_root_the_checks_run_in_a_plain_subprocess_under_the_same_limits_and_say_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from output_checks.sandbox import confinement

    monkeypatch.setattr(confinement.os, "geteuid", lambda: 1000)  # a developer's machine: no account to switch to
    monkeypatch.setattr(confinement, "_SAID", set())
    assert not confinement.isolation().sandboxed
    files = {"before.csv": AROUND["before.csv"], "bomb.txt": mocking.GREEDY, "bad.txt": mocking.CRASH}
    files["after.txt"] = AROUND["after.txt"]
    with caplog.at_level("WARNING", logger="enclave.airlock.sandbox"):
        reports = batch(tmp_path, files, policy_with("mock_segfault", "mock_greedy"))
    assert reasons(reports["bad.txt"]) == ["the checker crashed (SIGSEGV) on this file: a reviewer must open it"]
    assert reasons(reports["bomb.txt"]) == ["the checker ran out of memory on this file: a reviewer must open it"]
    assert_neighbours_checked(reports)
    said = [r.getMessage() for r in caplog.records if "plain subprocess" in r.getMessage()]
    assert len(said) == 1


def test_a_checker_started_ahead_checks_the_next_request_and_a_crash_there_is_still_review(tmp_path: Path) -> None:
    from output_checks.sandbox import warm

    warm.keep_warm()  # as the airlock service does
    try:
        assert warm.wait_warm()
        spare = warm._SPARE[0].child
        files = {"before.csv": AROUND["before.csv"], "bad.txt": mocking.CRASH, "after.txt": AROUND["after.txt"]}
        for name, content in files.items():
            (tmp_path / name).write_bytes(content)
        items = [SandboxFile(tmp_path / name, name) for name in files]
        checked = check_files_sandboxed(items, policy_with("mock_segfault"), plugins=mocking.PLUGINS)
        reports = {r.path: r for r in checked}
        assert spare.proc.returncode is not None  # the warm child took the request (and died on bad.txt)
        assert reasons(reports["bad.txt"]) == ["the checker crashed (SIGSEGV) on this file: a reviewer must open it"]
        assert_neighbours_checked(reports)
        assert len(warm._SPARE) == 1 and warm._SPARE[0].child is not spare  # the next one, started after
    finally:
        warm.keep_warm(False)
    assert warm._SPARE == []
