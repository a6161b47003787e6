"""The parent side of the checker sandbox: builds the child's command line (bubblewrap as the airlock's checks
account when root, a plain subprocess otherwise), hands it the job as JSON on stdin, reads JSON lines back under a
time limit per file, and turns whatever goes wrong in there into a `review` finding for the file it happened on.

| inside | what | access |
| --- | --- | --- |
| /usr, /bin, /lib… and a few /etc files | the system (as the workspace sandbox mounts it) | read-only |
| the airlock's Python environment and its interpreter | the same absolute paths as on the host | read-only |
| the `output_checks` and `fabric` packages | the same absolute paths as on the host | read-only |
| /airlock/in/N/NAME | a private copy of file N, owned by the checks account | read-only |
| /tmp | scratch (archive members), a size-capped tmpfs | read-write |

No network namespace but loopback, no other process visible, no registry, no secrets, no home: the known
identifiers arrive over stdin as keyed hashes (`KnownIdentifiers.export`). Nothing from the child is unpickled:
its results are JSON, validated into FileReport and Preview here."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import pwd
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.sandbox import HOST_ETC, NAMESPACES, SYSTEM_LINKS, base_python_home
from output_checks.verdicts import FileReport, Finding, Report, Verdict

if TYPE_CHECKING:
    from output_checks.policy import Policy
    from output_checks.screening.known import KnownIdentifiers
    from output_checks.web.previews import Preview

log = logging.getLogger("enclave.airlock.sandbox")

CHECKS_ACCOUNT = "enclave-airlock-checks"  # made by `enclave host apply` (provisioning/host.py)
NOBODY = 65534  # the overflow id, used only when root runs checks on a host where the account is not made yet
INSIDE_IN = "/airlock/in"
PACKAGES = ("output_checks", "fabric")  # all the child imports from the checkout
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")  # one file at a time, few arenas
ACRO_RESULTS = "results.json"  # ACRO's record of the outputs it checked, beside them (checks/tables/acro.py)
ACRO_EVIDENCE_MAX = 16 * 2**20  # a larger record is not ACRO's: the acro module ignores it too
STDERR_KEPT = 16 * 1024  # the tail of the child's stderr, read here only to tell a memory blow-up from a crash
MAX_MESSAGE = 64 * 2**20  # one JSON line from the child; a capped report is far smaller
MEMORY_SIGNS = ("MemoryError", "bad_alloc", "Cannot allocate memory", "out of memory")
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CheckerLimits:
    """What one checker child may use. A file over `seconds_per_file` or `memory_bytes` is `review`."""

    seconds_per_file: float = 300.0
    startup_seconds: float = 180.0  # interpreter, libraries and the screening model
    memory_bytes: int = 6 * 2**30  # address space (RLIMIT_AS), which is what a runaway allocation hits first
    scratch_bytes: int = 1 * 2**30  # /tmp inside: archive members are unpacked there (policy caps them at 512 MB)

    def prlimit(self) -> list[str]:
        size = str(self.memory_bytes)
        # no core files: a dump of a parser holds the researcher's bytes and the identifier index
        return ["--as=" + size, "--core=0", f"--fsize={self.scratch_bytes}"]


DEFAULT_LIMITS = CheckerLimits()


@dataclass(frozen=True)
class SandboxFile:
    """A file to check: its bytes (`source`), the name it is checked under and the path it is reported as."""

    source: Path
    report_as: str
    name: str = ""

    @property
    def checked_name(self) -> str:
        return self.name or self.source.name


@dataclass(frozen=True)
class Isolation:
    """How children start on this host: as `uid` in bubblewrap (root), or as the caller (uid None)."""

    uid: int | None
    gid: int | None
    account: str

    @property
    def sandboxed(self) -> bool:
        return self.uid is not None


_SAID: set[str] = set()


def _say_once(key: str, message: str, *args: object) -> None:
    if key not in _SAID:
        _SAID.add(key)
        log.warning(message, *args)


def isolation(account: str = CHECKS_ACCOUNT) -> Isolation:
    """Root: the checks account (or, where `enclave host apply` has not made it yet, the overflow id), in
    bubblewrap. Anyone else: a plain subprocess with the same limits (there is no account to switch to)."""
    if os.geteuid() != 0:
        _say_once("plain", "airlock checks run in a plain subprocess (not root: no sandbox account to switch to)")
        return Isolation(None, None, "")
    if shutil.which("bwrap") is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed: the airlock will not parse files as root")
    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        _say_once(account, "account %s is missing (run 'enclave host apply'): checks run sandboxed as nobody", account)
        return Isolation(NOBODY, NOBODY, "nobody")
    return Isolation(entry.pw_uid, entry.pw_gid, account)


# ------------------------------------------------------------------------------------------------ the command line


def _parents(path: Path) -> list[str]:
    """bwrap makes missing mount-point parents 0700; the checks account must traverse them."""
    args: list[str] = []
    for parent in reversed(path.parents):
        if str(parent) == "/" or str(parent) == "/usr" or str(parent).startswith("/usr/"):
            continue
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _python_env() -> list[Path]:
    env = Path(sys.prefix)
    roots = [env]
    if (home := base_python_home(env)) is not None:
        roots.insert(0, home)
    return roots


def environment() -> dict[str, str]:
    env = {
        "HOME": "/tmp",  # noqa: S108  (the sandbox's own tmpfs)
        "LANG": "C.UTF-8",
        "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "MPLCONFIGDIR": "/tmp/matplotlib",  # noqa: S108
    }
    return env


def sandbox_argv(
    iso: Isolation, staging: Path, limits: CheckerLimits, extra_ro: Sequence[Path] = (), kind: str = "checks"
) -> list[str]:
    """bwrap's command line for one checker child (pure: the security test reads it as well as running it)."""
    assert iso.uid is not None and iso.gid is not None
    args = [shutil.which("bwrap") or "bwrap", *NAMESPACES, "--die-with-parent", "--new-session"]
    args += ["--ro-bind", "/usr", "/usr"]
    for name in SYSTEM_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--size", str(limits.scratch_bytes), "--perms", "1777", "--tmpfs", "/tmp"]  # noqa: S108
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ("passwd", "group"):
        args += ["--ro-bind", str(staging / "etc" / name), f"/etc/{name}"]
    for name in HOST_ETC:
        if (Path("/etc") / name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for root in [*_python_env(), *(REPO / p for p in PACKAGES), *extra_ro]:
        args += [*_parents(root), "--ro-bind", str(root), str(root)]
    args += ["--perms", "0755", "--dir", "/airlock", "--ro-bind", str(staging / "in"), INSIDE_IN]
    args += ["--chdir", "/tmp", "--clearenv"]  # noqa: S108
    for key, value in sorted(environment().items()):
        args += ["--setenv", key, value]
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    args += ["--", setpriv, f"--reuid={iso.uid}", f"--regid={iso.gid}", "--clear-groups"]
    args += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return args + _child_command(kind)


def _child_command(kind: str) -> list[str]:
    return [sys.executable, "-I", "-m", "output_checks.sandbox.child", kind]


def _limited(argv: list[str], limits: CheckerLimits) -> list[str]:
    prlimit = shutil.which("prlimit") or shutil.which("prlimit", path="/usr/bin:/bin")
    if prlimit is None:
        raise RuntimeError("prlimit (util-linux) is not installed: the checker's memory limit cannot be set")
    return [prlimit, *limits.prlimit(), "--", *argv]


@dataclass
class Staging:
    """A private folder for one batch: the sandbox's passwd and group, and the copies of the files to read."""

    iso: Isolation
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="enclave-airlock-sandbox-")))

    def __post_init__(self) -> None:
        (self.root / "etc").mkdir(mode=0o755)
        (self.root / "in").mkdir(mode=0o755)
        self.root.chmod(0o711)
        if self.iso.sandboxed:
            who = self.iso.account
            (self.root / "etc" / "passwd").write_text(
                f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n{who}:x:{self.iso.uid}:{self.iso.gid}::/tmp:/usr/sbin/nologin\n"
            )
            (self.root / "etc" / "group").write_text(f"root:x:0:\n{who}:x:{self.iso.gid}:\n")

    def add(self, index: int, item: SandboxFile) -> tuple[str, str]:
        """Put file `index` where the child reads it; (path inside, sha256 of what was put there)."""
        folder = self.root / "in" / str(index)
        folder.mkdir(mode=0o500 if self.iso.sandboxed else 0o700)
        target = folder / item.checked_name
        if not self.iso.sandboxed:
            # The caller's own process can read it where it is: a link gives it the name it is checked under.
            target.symlink_to(item.source.absolute())
            return str(target), ""
        # The source is root's (a verified snapshot, or a path root was given): never follow a link to it.
        digest = self._copy(item.source, target)
        self._stage_acro_evidence(item, folder)
        os.chown(folder, self.iso.uid, self.iso.gid)
        return f"{INSIDE_IN}/{index}/{item.checked_name}", digest

    def _copy(self, source: Path, target: Path, limit: int | None = None, dir_fd: int | None = None) -> str:
        """Copy a regular file (never through a link; relative to `dir_fd` when given) for the checks account to
        read; its sha256."""
        digest = hashlib.sha256()
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as src:
            if not stat.S_ISREG(os.fstat(src.fileno()).st_mode) or (limit and os.fstat(src.fileno()).st_size > limit):
                raise OSError(f"{source.name}: not a regular file within the limit")
            with open(target, "xb") as out:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
        os.chmod(target, 0o400)
        os.chown(target, self.iso.uid, self.iso.gid)
        return digest.hexdigest()

    def _stage_acro_evidence(self, item: SandboxFile, folder: Path) -> None:
        """ACRO's record of a table (results.json and checksums/NAME.txt beside it) goes into the sandbox with the
        table, so its evidence (an edit after ACRO checked it, ACRO's fail) is judged there as it is in-process."""
        # The folder beside the table may be the researcher's: no part of the way to the record is followed
        # through a link (a `checksums` link to a root-only folder would otherwise be copied from as root).
        wanted = [
            ((ACRO_RESULTS,), folder / ACRO_RESULTS),
            (("checksums", f"{item.source.name}.txt"), folder / "checksums" / f"{item.checked_name}.txt"),
        ]
        for parts, target in wanted:
            if target.exists():
                continue
            opened: list[int] = []
            try:
                opened.append(os.open(item.source.parent, os.O_RDONLY | os.O_DIRECTORY))
                for part in parts[:-1]:
                    opened.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=opened[-1]))
                target.parent.mkdir(mode=0o500, exist_ok=True)
                self._copy(Path(parts[-1]), target, ACRO_EVIDENCE_MAX, dir_fd=opened[-1])
            except OSError:
                target.unlink(missing_ok=True)  # no evidence is what a missing record gives: the table's own rules
            finally:
                for fd in opened:
                    os.close(fd)
            if target.parent != folder and target.parent.exists():
                os.chown(target.parent, self.iso.uid, self.iso.gid)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ one child


class Child:
    """One running checker: JSON in on stdin (from a thread, so a child that never reads cannot block us), JSON
    lines out, stderr kept in a small ring for the reason of a death."""

    def __init__(self, argv: list[str], env: dict[str, str] | None) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            start_new_session=True, close_fds=True,
        )  # fmt: skip
        self.ready = False  # a checks child said it has loaded everything (read by wait_ready or by a batch)
        self._selector = selectors.DefaultSelector()
        for stream in (self.proc.stdout, self.proc.stderr):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
            self._selector.register(stream, selectors.EVENT_READ)
        self._out = b""
        self.stderr = b""
        self._open = 2

    def send(self, job: dict[str, Any]) -> None:
        payload = json.dumps(job).encode()
        threading.Thread(target=self._write, args=(payload,), daemon=True).start()

    def wait_ready(self, seconds: float) -> bool:
        """Read up to the child's "ready" (a child kept warm); False if it died or took longer."""
        deadline = time.monotonic() + seconds
        for message in self.messages(lambda: deadline):
            if message is None or not message.get("ready"):
                self.kill()
                return False
            self.ready = True
            return True
        return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _write(self, payload: bytes) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(payload)
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def messages(self, deadline: Callable[[], float]) -> Iterator[dict[str, Any] | None]:
        """Each JSON message as it comes; None once the deadline passes (the child is then killed). Ends when the
        child closes its output."""
        while True:
            while b"\n" in self._out:
                line, self._out = self._out.split(b"\n", 1)
                try:
                    message = json.loads(line)
                except ValueError:
                    message = {"garbled": True}
                yield message if isinstance(message, dict) else {"garbled": True}
            if self._open == 0:
                return
            left = deadline() - time.monotonic()
            if left <= 0:
                self.kill()
                yield None
                return
            for key, _ in self._selector.select(timeout=left):
                chunk = os.read(key.fileobj.fileno(), 1 << 16)  # type: ignore[union-attr]
                if not chunk:
                    self._selector.unregister(key.fileobj)
                    self._open -= 1
                elif key.fileobj is self.proc.stdout:
                    self._out += chunk
                    if len(self._out) > MAX_MESSAGE:  # a report is kilobytes: this child is not speaking the protocol
                        self.kill()
                        self._out = b'{"garbled": true}\n'
                else:
                    self.stderr = (self.stderr + chunk)[-STDERR_KEPT:]

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the plain child's group; bwrap takes its sandbox along

    def finish(self) -> int:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait()
        self._selector.close()
        for stream in (self.proc.stdout, self.proc.stderr):
            assert stream is not None
            stream.close()
        return code

    def death(self, code: int) -> str:
        """Why the child stopped, in words for a reviewer (never the child's own output: it may quote the file)."""
        if any(sign.encode() in self.stderr for sign in MEMORY_SIGNS):
            return "ran out of memory"
        if code < 0 or code > 128:
            number = -code if code < 0 else code - 128
            try:
                return f"crashed ({signal.Signals(number).name})"
            except ValueError:
                return f"crashed (signal {number})"
        return f"crashed (exit status {code})"


def _start(
    iso: Isolation, staging: Staging, limits: CheckerLimits, extra_ro: Sequence[Path], kind: str = "checks"
) -> Child:
    if iso.sandboxed:
        return Child(_limited(sandbox_argv(iso, staging.root, limits, extra_ro, kind), limits), env={})
    env = {**environment(), "HOME": os.environ.get("HOME", "/tmp")}  # noqa: S108
    return Child(_limited(_child_command(kind), limits), env=env)


# ------------------------------------------------------------------------------------------------ a child kept warm


@dataclass
class _Spare:
    key: tuple
    staging: Staging
    child: Child


_SPARE_LOCK = threading.Lock()
_SPARE: list[_Spare] = []  # at most one
_KEEP_WARM = False


def keep_warm(on: bool = True) -> None:
    """A long-running airlock keeps one checks child started ahead, its readers and model loaded and its sandbox
    empty until a request's files are copied in: a request then pays for none of it. One-shot callers (the command
    line) do not."""
    global _KEEP_WARM
    _KEEP_WARM = on
    if on:
        _refill(isolation(), DEFAULT_LIMITS, ())
    else:
        _drop_spare()


def wait_warm(seconds: float = 300) -> bool:
    """Block until the warm child has loaded everything (benchmarks, tests)."""
    with _SPARE_LOCK:
        spare = _SPARE[0] if _SPARE else None
    return spare is not None and (spare.child.ready or spare.child.wait_ready(seconds))


def _refill(iso: Isolation, limits: CheckerLimits, extra: Sequence[Path]) -> None:
    key = (iso, limits, tuple(extra))
    with _SPARE_LOCK:
        if not _KEEP_WARM or _SPARE:
            return
        staging = Staging(iso)
        _SPARE.append(_Spare(key, staging, _start(iso, staging, limits, extra, kind="checks-warm")))


def _take_spare(iso: Isolation, limits: CheckerLimits, extra: Sequence[Path]) -> _Spare | None:
    with _SPARE_LOCK:
        spare = _SPARE.pop() if _SPARE else None
    if spare is None:
        return None
    if spare.key == (iso, limits, tuple(extra)) and spare.child.alive():
        return spare
    spare.child.kill()
    spare.child.finish()
    spare.staging.remove()
    return None


@atexit.register
def _drop_spare() -> None:
    with _SPARE_LOCK:
        spares = list(_SPARE)
        _SPARE.clear()
    for spare in spares:
        spare.child.kill()
        spare.child.finish()
        spare.staging.remove()


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
    spare = _take_spare(iso, limits, extra)
    staging = spare.staging if spare else Staging(iso)
    # A fresh child loads its readers and model while the files are copied in.
    first: Child | None = spare.child if spare else (_start(iso, staging, limits, extra) if files else None)
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
            child, first = first or _start(iso, staging, limits, extra), None
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
        _refill(iso, limits, extra)  # after the batch, not during it: the next request's child must not slow this one
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
        child = _start(iso, staging, limits, (), kind="preview")
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
