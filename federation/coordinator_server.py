"""The coordinator's server for site agents: HTTPS with mutual TLS under the consortium's authority, thin over the
business layer (federation/coordinator.py). A site is who its certificate says (`enclave-node://site/NAME`, checked
against the consortium's CRL during the handshake); it sees only its own tasks and moves only its own rows.

Routes (all JSON but the notebook and the bundle):

    GET  /v1/tasks                     the tasks queued for this site: [{signed, project_key}]
    GET  /v1/tasks/ID/notebook         the task's notebook (its SHA-256 is in the signed manifest)
    POST /v1/tasks/ID/state            {"state", "reason", "reference"}: the site's move
    PUT  /v1/tasks/ID/result           the sealed bundle of what the site's airlock released
    PUT  /v1/tasks/ID/linkage          a count-once task: the site's linkage tokens, one a line
    GET  /v1/tasks/ID/linkage          the tokens to leave out ({"leave_out": [...]}), or 202 while sites are missing

Researchers never reach this server: they submit on the coordinator's own Enclave (the command line or their
workspace, through the hub). Answers carry no stack trace and no data; errors are `{"error": message}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
from pathlib import Path
from typing import Any

from tornado import httpserver, ioloop, web

from federation import pki
from federation.coordinator import Coordinator, FederationError
from federation.states import TaskState

log = logging.getLogger("enclave.federation.coordinator")
TASK_ID = r"(?P<task_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
MAX_BODY = 64 << 20
MAX_STATE_BODY = 4096
CRL_RELOAD_SECONDS = 2


class SiteHandler(web.RequestHandler):
    coordinator: Coordinator

    def initialize(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.clear_header("Server")

    def prepare(self) -> None:
        der = self.request.get_ssl_certificate(binary_form=True)
        try:
            identity = pki.peer_identity(der) if der else None
        except ValueError:
            identity = None
        if identity is None or identity.role != "site":
            raise web.HTTPError(403, reason="only a consortium site's certificate is served here")
        self.site = identity.name

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": self._reason}))

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """The business layer in a worker thread (it holds a database transaction), its refusals as HTTP errors."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except FederationError as exc:
            raise web.HTTPError(exc.status, reason=str(exc)) from None


class TasksHandler(SiteHandler):
    async def get(self) -> None:
        offers = await self.call(self.coordinator.offers, self.site)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"tasks": [{"signed": o.signed, "project_key": o.project_key} for o in offers]}))


class NotebookHandler(SiteHandler):
    async def get(self, task_id: str) -> None:
        content = await self.call(self.coordinator.notebook, self.site, task_id)
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(content)


class StateHandler(SiteHandler):
    async def post(self, task_id: str) -> None:
        if len(self.request.body) > MAX_STATE_BODY:
            raise web.HTTPError(413, reason="a state report is a small JSON object")
        try:
            body = json.loads(self.request.body)
            state = TaskState(body["state"]).value
            reason, reference = str(body.get("reason", "")), str(body.get("reference", ""))
        except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: JSON nested too deep
            raise web.HTTPError(400, reason="expected {state, reason, reference} with a known state") from None
        await self.call(self.coordinator.report, self.site, task_id, state, reason=reason, reference=reference)
        self.set_status(204)
        self.finish()


class ResultHandler(SiteHandler):
    async def put(self, task_id: str) -> None:
        reference = self.get_query_argument("reference", "")
        if reference and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", reference):
            raise web.HTTPError(400, reason="reference: letters, digits, '.', '_' and '-'")
        await self.call(self.coordinator.receive_result, self.site, task_id, self.request.body, reference=reference)
        self.set_status(204)
        self.finish()


class LinkageHandler(SiteHandler):
    async def put(self, task_id: str) -> None:
        count = await self.call(self.coordinator.receive_tokens, self.site, task_id, self.request.body)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"tokens": count}))

    async def get(self, task_id: str) -> None:
        left_out = await self.call(self.coordinator.exclusions, self.site, task_id)
        self.set_header("Content-Type", "application/json")
        if left_out is None:  # a site that may still run the task has not sent its tokens yet
            self.set_status(202)
            self.finish(json.dumps({"waiting": True}))
        else:
            self.finish(json.dumps({"leave_out": left_out}))


class NotFound(SiteHandler):
    def get(self, *_: Any) -> None:
        raise web.HTTPError(404, reason="not found")

    post = put = delete = patch = get


def make_app(coordinator: Coordinator) -> web.Application:
    routes = [
        (r"/v1/tasks", TasksHandler),
        (rf"/v1/tasks/{TASK_ID}/notebook", NotebookHandler),
        (rf"/v1/tasks/{TASK_ID}/state", StateHandler),
        (rf"/v1/tasks/{TASK_ID}/result", ResultHandler),
        (rf"/v1/tasks/{TASK_ID}/linkage", LinkageHandler),
    ]
    return web.Application(
        [(path, handler, {"coordinator": coordinator}) for path, handler in routes],
        default_handler_class=NotFound,
        default_handler_args={"coordinator": coordinator},
        xsrf_cookies=False,  # no browser and no cookie: a site is its client certificate
    )


def serve(coordinator: Coordinator, credentials: Path, *, address: str, port: int) -> httpserver.HTTPServer:
    """Listen on `address:port` with the node credentials in folder `credentials` (federation/pki.py). A CRL
    installed there later (`pki.install_crl`) is in force for new connections within CRL_RELOAD_SECONDS: a revoked
    site is refused from its next handshake, without a restart."""
    server = httpserver.HTTPServer(
        make_app(coordinator),
        ssl_options=pki.server_context(credentials),
        max_body_size=MAX_BODY,
        idle_connection_timeout=60,
        body_timeout=120,
    )
    server.listen(port, address=address)
    crl = credentials / pki.CRL
    loaded = [crl.stat().st_mtime_ns]

    def reload_crl() -> None:
        try:
            changed = crl.stat().st_mtime_ns
        except OSError:
            return
        if changed != loaded[0]:
            # a fresh context for the next handshakes, not the new CRL added to the live one: OpenSSL keeps every CRL
            # it was given and checks against the one with the latest `lastUpdate`, and so ignores a new CRL made in
            # the same second as the one it holds (whole seconds), with the revocations it adds
            try:
                server.ssl_options = pki.server_context(credentials)
            except (OSError, ssl.SSLError, pki.PkiError):
                log.warning("the consortium's CRL could not be loaded; the one before stays in force")
                return
            loaded[0] = changed
            log.info("the consortium's CRL was reloaded")

    ioloop.PeriodicCallback(reload_crl, CRL_RELOAD_SECONDS * 1000).start()
    return server
