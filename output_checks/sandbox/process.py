"""One checker child as the parent sees it: started confined and limited, its job sent as JSON on stdin, JSON lines
read back under a deadline, and the reason it stopped (a crash, a signal, a memory blow-up) in words for a
reviewer."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from output_checks.sandbox.confinement import Isolation, child_command, environment, sandbox_argv
from output_checks.sandbox.limits import CheckerLimits, limited
from output_checks.sandbox.staging import Staging

STDERR_KEPT = 16 * 1024  # the tail of the child's stderr, read here only to tell a memory blow-up from a crash
MAX_MESSAGE = 64 * 2**20  # one JSON line from the child; a capped report is far smaller
MEMORY_SIGNS = ("MemoryError", "bad_alloc", "Cannot allocate memory", "out of memory")


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


def start_child(
    iso: Isolation, staging: Staging, limits: CheckerLimits, extra_ro: Sequence[Path], kind: str = "checks"
) -> Child:
    """A checker child of `kind`: in bubblewrap as the checks account when sandboxed, else a plain subprocess."""
    if iso.sandboxed:
        return Child(limited(sandbox_argv(iso, staging.root, limits, extra_ro, kind), limits), env={})
    env = {**environment(), "HOME": os.environ.get("HOME", "/tmp")}  # noqa: S108
    return Child(limited(child_command(kind), limits), env=env)
