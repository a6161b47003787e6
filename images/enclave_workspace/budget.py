"""The workspace's hourly budget of bytes to the browser, counted where every byte leaves: the body of every HTTP
response (an OutputTransform) and every WebSocket message (kernel and terminal output, the dashboard's live plots).

Whatever a kernel can read it can print, paint or put in a file, so what reaches the browser is bounded in total,
not only per file: ENCLAVE_BROWSER_BYTES_PER_HOUR (the project spec's `browser.bytes_per_hour`) across every route
but JupyterLab's own static assets. Over it, an HTTP response becomes a 429 with a message and a WebSocket is closed
with the same message; the budget renews at the top of each UTC hour.

The count is tamper-proof from inside the workspace:
- it lives in the server process, which makes itself non-dumpable at start, so no kernel (the same Unix account) can
  read or write its memory or open its file descriptors through /proc (and the seccomp filter refuses ptrace and
  process_vm_*);
- the hub is its ledger: what was spent this hour comes in ENCLAVE_BROWSER_SPENT when the server starts (killing the
  server does not reset it), and the server reports what it sends, by route, on a pipe whose write end only it holds
  (ENCLAVE_USAGE_FD, close-on-exec so no kernel inherits it). The hub keeps the hour's totals and writes them to the
  audit log once per workspace and hour (hub/browser_usage.py); never any content.
"""

from __future__ import annotations

import ctypes
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from tornado import httputil, websocket
from tornado.web import OutputTransform

HOUR = 3600
DEFAULT_BYTES_PER_HOUR = 64 * 1024 * 1024
REPORT_SECONDS = 1.0  # at most one report a second to the hub, plus one at each change of hour
PR_SET_DUMPABLE = 4
# Served from the read-only environment, the same for everyone: JupyterLab's code, styles and fonts.
STATIC_PREFIXES = ("static/", "lab/static/", "lab/extensions/", "lab/api/themes/", "lab/api/translations")


def over_budget_message(renews: float) -> str:
    at = time.strftime("%H:%M UTC", time.gmtime(renews))
    return (
        "This workspace has sent its hourly allowance of data to the browser; it renews at "
        f"{at}. To take outputs out of the workspace, submit them to the airlock."
    )


def _setting(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ValueError(f"{name} must be a whole number of bytes, not {raw!r}")
    return int(raw)


@dataclass
class Budget:
    """Bytes sent to the browser this hour, by route kind, against the hourly limit."""

    limit: int
    hour: int  # the start of the current hour (epoch seconds)
    spent: int = 0
    by_route: dict[str, int] = field(default_factory=dict)
    report_fd: int | None = None
    unreported: dict[str, int] = field(default_factory=dict)
    last_report: float = 0.0
    refused: int = 0

    @classmethod
    def from_env(cls, now: float | None = None) -> Budget:
        now = time.time() if now is None else now
        hour = int(now // HOUR * HOUR)
        started = _setting("ENCLAVE_BROWSER_HOUR", hour)
        spent = _setting("ENCLAVE_BROWSER_SPENT", 0) if started == hour else 0
        fd = os.environ.get("ENCLAVE_USAGE_FD", "").strip()
        return cls(
            limit=_setting("ENCLAVE_BROWSER_BYTES_PER_HOUR", DEFAULT_BYTES_PER_HOUR),
            hour=hour,
            spent=spent,
            report_fd=int(fd) if fd.isdigit() else None,
        )

    @property
    def renews(self) -> float:
        return self.hour + HOUR

    def _roll(self, now: float) -> None:
        hour = int(now // HOUR * HOUR)
        if hour != self.hour:
            self.report(now, force=True)
            self.hour, self.spent, self.by_route, self.refused = hour, 0, {}, 0

    def allows(self, now: float | None = None) -> bool:
        self._roll(time.time() if now is None else now)
        return self.spent < self.limit

    def charge(self, route: str, size: int, now: float | None = None) -> bool:
        """Count `size` bytes about to go out on `route`; False (and nothing counted) when over the budget."""
        now = time.time() if now is None else now
        self._roll(now)
        if self.spent + size > self.limit:
            self.refused += 1
            self.report(now, force=True, refused=True)
            return False
        self.spent += size
        self.by_route[route] = self.by_route.get(route, 0) + size
        self.unreported[route] = self.unreported.get(route, 0) + size
        self.report(now)
        return True

    def report(self, now: float, *, force: bool = False, refused: bool = False) -> None:
        """Tell the hub what went out since the last report (a JSON line on the usage pipe)."""
        if self.report_fd is None or not (self.unreported or refused):
            return
        if not force and now - self.last_report < REPORT_SECONDS:
            return
        line = json.dumps({"hour": self.hour, "bytes": self.unreported, "refused": int(refused)}) + "\n"
        try:
            os.write(self.report_fd, line.encode())
        except BlockingIOError:
            return  # the hub is behind: keep the counts and send them with the next report
        except OSError:
            self.report_fd = None  # the hub is gone; the server still enforces what it knows
            return
        self.unreported, self.last_report = {}, now


BUDGET: Budget | None = None


def budget() -> Budget:
    global BUDGET
    if BUDGET is None:
        BUDGET = Budget.from_env()
    return BUDGET


def route_kind(path: str, base_url: str) -> str | None:
    """The kind of route a request path is, for the budget's counts; None for static assets (not counted)."""
    base = base_url.rstrip("/") + "/"
    relative = path[len(base) :] if path.startswith(base) else path.lstrip("/")
    if relative.startswith(STATIC_PREFIXES):
        return None
    first = relative.split("/", 1)[0]
    if first == "api":
        parts = relative.split("/")
        return f"api/{parts[1]}" if len(parts) > 1 else "api"
    return first or "root"


class BrowserBytes(OutputTransform):
    """Counts every response body against the budget; refuses (429) a response that would go over it."""

    base_url = "/"

    def __init__(self, request: httputil.HTTPServerRequest) -> None:
        self.route = route_kind(request.path, self.base_url)
        self.cut = False

    def transform_first_chunk(
        self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        if self.route is None or not chunk:
            return status_code, headers, chunk
        if budget().charge(self.route, len(chunk)):
            return status_code, headers, chunk
        self.cut = True
        body = json.dumps({"message": over_budget_message(budget().renews), "reason": "Too Many Requests"}).encode()
        fresh = httputil.HTTPHeaders({"Content-Type": "application/json", "Cache-Control": "no-store"})
        fresh["Retry-After"] = str(max(1, int(budget().renews - time.time())))
        if "Content-Length" in headers:
            fresh["Content-Length"] = str(len(body))
        return 429, fresh, body

    def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
        if self.route is None or not chunk:
            return chunk
        if self.cut or not budget().charge(self.route, len(chunk)):
            self.cut = True
            return b""
        return chunk


_original_write_message = websocket.WebSocketHandler.write_message


def _counted_write_message(self: websocket.WebSocketHandler, message: Any, binary: bool = False) -> Any:
    if isinstance(message, dict):  # tornado sends a dict as its JSON text: count that, not the dict's keys
        size = len(json.dumps(message).encode())
    else:
        size = len(message.encode() if isinstance(message, str) else message)
    route = route_kind(self.request.path, BrowserBytes.base_url) or "websocket"
    if not budget().charge(f"{route} (websocket)", size):
        # close with the reason (the browser shows it as a lost connection; the HTTP routes say why in words)
        self.close(1008, over_budget_message(budget().renews)[:120])
        raise websocket.WebSocketClosedError()
    return _original_write_message(self, message, binary=binary)


def install(web_app: Any, base_url: str) -> None:
    """Count every response and WebSocket message of this server, and keep the count out of the kernels' reach."""
    BrowserBytes.base_url = base_url
    web_app.add_transform(BrowserBytes)
    # One choke point for every WebSocket of the server (kernels, terminals, proxied dashboards): tornado's own
    # write_message, which every handler's output goes through.
    websocket.WebSocketHandler.write_message = _counted_write_message
    counter = budget()
    if counter.report_fd is not None:
        os.set_inheritable(counter.report_fd, False)
        os.set_blocking(counter.report_fd, False)
    # Non-dumpable: /proc/<server>/{mem,fd,environ} become root's, so a kernel of the same account cannot reach the
    # count, the usage pipe or the server's hub token.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "could not make the workspace server non-dumpable")
