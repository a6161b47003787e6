"""What the workspace's proxied services (the Dask dashboard at `dask/`, the MLflow UI at `mlflow/`) may send to the
browser: the same rule as the contents API (display.py: text and images within caps, never a data file), applied to
every response body as it leaves the server, whatever the service behind it is.

A service on a loopback port is not trustworthy by where it listens: a kernel can bind the dashboard's port before
the cluster does (`python -m http.server 8787 --directory /project/data`), rewrite MLflow's artifact locations, or
log any file as an artifact. So the filter judges the bytes, not the service:

- text (HTML, JavaScript, CSS, JSON) and images pass within the caps;
- binary passes only when it is byte for byte a file the environment itself ships for these services' web pages
  (fonts and images of MLflow's and Bokeh's front ends; the environment is read-only in the sandbox, so no kernel
  can add one);
- an MLflow artifact of a run whose artifact location is outside the project's store (set through MLflow's API or
  written into mlflow.db directly), or a path that climbs or links out of it, is refused whatever it holds;
- anything else, compressed bodies included (the request asks for none), becomes a 403 with a message, and a
  response already streaming is cut off at the first byte that breaks the rule.

It is a tornado OutputTransform, so it sees every response of those routes, buffered or streamed
(jupyter-server-proxy streams when the browser asks for `text/event-stream`). WebSocket frames do not pass through
transforms: only the dashboard's route carries them (Bokeh's live plots), see docs/explanation/workspace-sandbox.md.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tornado import httputil
from tornado.web import OutputTransform

from enclave_workspace import display
from enclave_workspace.contents import unfinished_utf8

SERVICES = ("dask", "mlflow")
# Where the environment keeps the services' own web assets (relative to site-packages).
ASSET_FOLDERS = ("mlflow/server/js/build", "bokeh/server/static", "distributed/http")
OUTSIDE_STORE = "This MLflow artifact is not in the project's MLflow store, so the workspace does not show it."
ENCODING_REFUSED = "The service sent a compressed response, which the workspace does not pass to the browser."


@functools.cache
def shipped_assets() -> frozenset[str]:
    """SHA-256 of every file the environment ships for the services' web pages (computed once, on first need)."""
    digests = set()
    for root in sys.path:
        for folder in ASSET_FOLDERS:
            base = Path(root) / folder
            if not base.is_dir():
                continue
            for path in base.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    return frozenset(digests)


def service_of(path: str, base_url: str) -> str | None:
    """The proxied service a request path belongs to (`dask`, `mlflow`), or None."""
    base = base_url.rstrip("/") + "/"
    if not path.startswith(base):
        return None
    first = path[len(base) :].split("/", 1)[0]
    return first if first in SERVICES else None


def artifact_outside_store(request: httputil.HTTPServerRequest, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether an MLflow artifact request names a file outside the project's artifact store: a run whose
    artifact location is elsewhere (set through the API or written into mlflow.db directly), or a path that climbs or
    links out of it. Requests that name no run are judged by their content alone."""
    query = parse_qs(request.query)
    run = (query.get("run_uuid") or query.get("run_id") or [""])[0]
    if not run:
        return False
    store = environ.get("ENCLAVE_MLFLOW_ARTIFACTS", "")
    tracking = environ.get("MLFLOW_TRACKING_URI", "")
    if not store or not tracking.startswith("sqlite:///"):
        return True  # no store to compare with: refuse
    try:
        database = sqlite3.connect(f"file:{tracking[len('sqlite:///') :]}?mode=ro", uri=True, timeout=2)
        try:
            row = database.execute("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run,)).fetchone()
        finally:
            database.close()
    except sqlite3.Error:
        return True
    if row is None:
        return False  # MLflow answers 404 itself
    location = urlsplit(row[0])
    if location.scheme not in ("", "file"):
        return True
    root = os.path.realpath(store)
    target = os.path.realpath(os.path.join(unquote(location.path), (query.get("path") or [""])[0]))
    return os.path.commonpath([root, target]) != root


class ServiceResponseScreen(OutputTransform):
    """Screens the body of every response of the proxied services (one instance per request)."""

    base_url = "/"  # set by the extension to the server's base URL

    def __init__(self, request: httputil.HTTPServerRequest) -> None:
        self.service = service_of(request.path, self.base_url)
        self.outside = (
            self.service == "mlflow" and request.path.endswith("get-artifact") and artifact_outside_store(request)
        )
        self.sent = 0
        self.kind: display.Kind | None = None
        self.cut = False
        self.carry = b""

    def transform_first_chunk(
        self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        if self.service is None:
            return status_code, headers, chunk
        if self.outside:
            return self._refuse(headers, display.BrowserRefusal(OUTSIDE_STORE))
        encoding = headers.get("Content-Encoding", "identity").lower()
        if encoding != "identity":
            return self._refuse(headers, display.BrowserRefusal(ENCODING_REFUSED))
        if not chunk and not finishing:
            return status_code, headers, chunk
        try:
            self.kind = self._screen_start(chunk, finishing)
        except display.BrowserRefusal as refusal:
            return self._refuse(headers, refusal)
        self.sent = len(chunk)
        self.carry = unfinished_utf8(chunk) if self.kind == "text" else b""
        return status_code, headers, chunk

    def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
        if self.service is None or not chunk:
            return chunk
        if self.cut:
            return b""
        if self.kind is None:  # the first chunk was empty: judge this one as the start
            try:
                self.kind = self._screen_start(chunk, finishing)
            except display.BrowserRefusal:
                self.cut = True
                return b""
        elif self.kind == "binary-asset" or (
            self.kind == "text" and not display.is_text(chunk, carry=self.carry, final=finishing)
        ):
            # a shipped asset is judged whole (never streamed); text must stay text to the last byte
            self.cut = True
            return b""
        self.sent += len(chunk)
        if self.kind in ("text", "image") and self.sent > display.response_cap(self.kind):
            self.cut = True
            return b""
        self.carry = unfinished_utf8(chunk) if self.kind == "text" else b""
        return chunk

    def _screen_start(self, chunk: bytes, finishing: bool) -> Any:
        binary = finishing and display.kind_of(chunk) == "binary"
        if binary and hashlib.sha256(chunk).hexdigest() in shipped_assets():
            return "binary-asset"
        return display.screen(chunk, complete=finishing)

    def _refuse(
        self, headers: httputil.HTTPHeaders, refusal: display.BrowserRefusal
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        self.cut = True
        body = json.dumps({"message": refusal.message, "reason": "Forbidden"}).encode()
        fresh = httputil.HTTPHeaders({"Content-Type": "application/json", "Cache-Control": "no-store"})
        if "Content-Length" in headers:
            fresh["Content-Length"] = str(len(body))
        return refusal.status_code, fresh, body
