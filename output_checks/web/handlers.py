"""The airlock's pages. Each handler reads its form, calls one verb of the airlock's business layer
(release/airlock.py) and renders a template with what it returns; the business layer decides who may do what
(pages show the forms its `can` allows), and its refusals become HTTP errors here: NotAllowed 403, NotFoundError
404, InvalidRequest 409, TooLarge 413, any other EnclaveError 400."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any, TypeVar
from urllib.parse import quote

from tornado.ioloop import IOLoop
from tornado.web import HTTPError, RequestHandler, StaticFileHandler, authenticated

from kernel.errors import EnclaveError, NotFoundError
from output_checks.release.airlock import Airlock
from output_checks.release.states import Decision, RequestState
from output_checks.release.storage import TooLarge
from output_checks.release.workflow import InvalidRequest, NotAllowed
from output_checks.sandbox.runner import preview_sandboxed
from output_checks.web import highlights, outputs

T = TypeVar("T")
PER_PAGE = 50
CHUNK = 1 << 20

STATUS: list[tuple[type[Exception], int]] = [
    (TooLarge, 413),
    (NotAllowed, 403),
    (NotFoundError, 404),
    (InvalidRequest, 409),
    (EnclaveError, 400),
]

# Shown after an action (the redirect carries a key, never text, so nothing is reflected from the URL).
DONE = {
    "created": "Saved as a draft.",
    "preparing": "Received: the airlock is copying your files. The automated checks start when the copy is done.",
    "submitted": "Submitted: the automated checks are running. Reload this page to see their results.",
    "checked": "Submitted, and the automated checks are done: their results are below.",
    "voted": "Your decision is saved. Submit your review when every file is decided.",
    "review": "Your review is submitted.",
    "release": "The approved files are released to the requester.",
    "withdraw": "The request is withdrawn.",
    "withdraw-file": "The file is withdrawn from the request.",
    "justify": "The justification is saved.",
    "revise": "A new version of the file is taken from the outputs folder. Submit the request again when ready.",
}

PAGE_CSP = (
    "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-src 'self'; frame-ancestors 'none'; img-src 'self'; style-src 'self'"
)
# A preview is someone's file: sandboxed (no script, opaque origin), nothing loaded from anywhere, framed only here.
PREVIEW_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; frame-ancestors 'self'"
)


def status_for(exc: Exception) -> int:
    return next(code for kind, code in STATUS if isinstance(exc, kind))


class Refused(HTTPError):
    """A refusal of the business layer, with its message for the error page."""

    def __init__(self, exc: EnclaveError) -> None:
        super().__init__(status_for(exc), reason=None)
        self.message = str(exc)


def security_headers(handler: RequestHandler, *, preview: bool = False) -> None:
    handler.set_header("Content-Security-Policy", PREVIEW_CSP if preview else PAGE_CSP)
    handler.set_header("X-Frame-Options", "SAMEORIGIN" if preview else "DENY")
    handler.set_header("Referrer-Policy", "no-referrer")
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Cross-Origin-Opener-Policy", "same-origin")
    handler.set_header("Cache-Control", "no-store")


def render(handler: RequestHandler, template: str, **context: Any) -> str:
    identity = handler.settings["identity"]
    context.setdefault("may_request", lambda: False)  # shows the nav's "New request" (Page.page looks it up)

    def xsrf_token() -> str:
        token = handler.xsrf_token
        return token.decode() if isinstance(token, bytes) else token

    return (
        handler.settings["templates"]
        .get_template(template)
        .render(
            base=identity.base_url, dev=identity.name == "development", hub_home=getattr(identity, "hub_home", ""),
            user=handler.current_user,
            xsrf_token=xsrf_token, static=handler.static_url, path=handler.request.path, **context,
        )
    )  # fmt: skip


class Page(RequestHandler):
    """Every page: security headers, the signed-in user, the business layer's refusals as error pages."""

    def set_default_headers(self) -> None:
        security_headers(self)

    @property
    def airlock(self) -> Airlock:
        return self.settings["airlock"]

    @property
    def user(self) -> str:
        return self.current_user

    def researcher_projects(self) -> list[str]:
        """The projects where the signed-in user is a researcher (looked up once per call)."""
        if not hasattr(self, "_researching"):
            self._researching = self.call(self.airlock.researcher_projects, self.user) if self.current_user else []
        return self._researching

    @contextmanager
    def refusals(self) -> Iterator[None]:
        try:
            yield
        except EnclaveError as exc:
            raise Refused(exc) from None

    def call(self, verb: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One verb of the business layer, its refusals as HTTP errors."""
        with self.refusals():
            return verb(*args, **kwargs)

    def url(self, *parts: object) -> str:
        return self.settings["identity"].base_url + "/".join(quote(str(p), safe="") for p in parts)

    def page_number(self) -> int:
        try:
            return max(1, int(self.get_argument("page", "1")))
        except ValueError:
            raise HTTPError(400, "page must be a number") from None

    def page(self, template: str, **context: Any) -> None:
        may_request = lambda: bool(self.researcher_projects())  # noqa: E731 (asked only by pages with the nav)
        self.write(render(self, template, may_request=may_request, **context))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "message", None) or (exc.log_message if isinstance(exc, HTTPError) else None)
        if status_code >= 500:
            message = None  # never show internals
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        try:
            self.finish(render(self, "error.html", status=status_code, reason=self._reason, message=message))
        except Exception:
            self.finish(f"{status_code} {self._reason}")


class Home(Page):
    @authenticated
    def get(self) -> None:
        checker = self.call(self.airlock.checks_outputs, self.user)
        self.redirect(self.url("review" if checker else "requests"), status=303)


class MyRequests(Page):
    @authenticated
    def get(self) -> None:
        number = self.page_number()
        page = self.call(self.airlock.my_requests_page, self.user, number, PER_PAGE)
        self.page("my_requests.html", page=page, researcher=bool(self.researcher_projects()))


class NewRequest(Page):
    """A researcher asks for files of one of their projects' outputs folder to be released: the same service call
    as `enclave airlock submit` (snapshots, hashes, then the checks in the background unless saved as a draft).
    A refused form is shown again with the reason and everything the person chose or wrote."""

    def researching(self) -> list[str]:
        projects = self.researcher_projects()
        if not projects:
            raise Refused(NotAllowed("only researchers can ask for a release, and you are not a researcher "
                                     "on any project"))  # fmt: skip
        return projects

    def require(self, projects: list[str], project: str) -> None:
        if project not in projects:  # another project's outputs are neither listed nor taken
            raise Refused(NotAllowed(f"you are not a researcher on project {project[:64]!r}"))

    def form(self, projects: list[str], project: str, *, problems: Sequence[str] = (), chosen: Iterable[str] = (),
             title: str = "", why: dict[str, str] | None = None) -> None:  # fmt: skip
        files, total = outputs.output_files(self.airlock.paths, project)
        self.page(
            "new_request.html", projects=projects, project=project, files=files, total=total, problems=problems,
            chosen=set(chosen), title=title, why=why or {}, workspace_outputs=outputs.WORKSPACE_OUTPUTS,
        )  # fmt: skip

    @authenticated
    def get(self) -> None:
        projects = self.researching()
        project = self.get_argument("project", "") or projects[0]
        self.require(projects, project)
        self.form(projects, project)

    @authenticated
    async def post(self) -> None:
        projects = self.researching()
        project = self.get_argument("project", "")
        self.require(projects, project)
        title = self.get_argument("title", "")
        chosen = list(dict.fromkeys(self.get_arguments("file", strip=False)))
        why = {key.removeprefix("why:"): self.get_body_argument(key, "")
               for key in self.request.body_arguments if key.startswith("why:")}  # fmt: skip
        draft = self.get_argument("then", "submit") == "draft"
        paths = self.airlock.paths
        problems, status = [], 400
        for path in chosen:
            try:
                outputs.check_chosen(paths, project, path)
            except outputs.NotAnOutput as exc:
                problems.append(str(exc))
        if not chosen:
            problems.append("choose at least one file")
        if not problems:  # nothing is snapshotted unless every chosen file is one the form could offer
            author, files = self.user, [(p, why.get(p, "")) for p in chosen]
            try:
                # Measured (and a small request copied) in a worker thread: other people's pages never wait on it.
                request_id, pending = await IOLoop.current().run_in_executor(
                    None, lambda: self.airlock.new_request(project=project, author=author, title=title, files=files,
                                                           draft=draft)
                )  # fmt: skip
            except EnclaveError as exc:
                problems, status = [str(exc)], status_for(exc)
        if problems:
            self.set_status(status)
            self.form(projects, project, problems=problems, chosen=chosen, title=title, why=why)
            return
        if pending:  # a large request: copied in the background; its page follows the copy
            self.settings["runner"].prepare(request_id)
            done = "preparing"
        else:
            if draft:  # its author sees the checks' verdicts before any reviewer is involved
                self.settings["runner"].check_draft(request_id)
            else:
                self.settings["runner"].submit(request_id)
            done = "created" if draft else "submitted"
        self.redirect(self.url("requests", request_id) + f"?done={done}", status=303)


class ReviewList(Page):
    @authenticated
    def get(self) -> None:
        number = self.page_number()
        page = self.call(self.airlock.review_page, self.user, number, PER_PAGE)
        self.page("review.html", page=page)


class ReleaseHistory(Page):
    """What the projects a checker checks let out or refused before (released and rejected requests), to difference
    a new request against; `?project=P` narrows it to one of them."""

    @authenticated
    def get(self) -> None:
        number = self.page_number()
        projects = self.call(self.airlock.checked_projects, self.user)
        project = self.get_argument("project", "") or None
        if project is not None and project not in projects:
            raise HTTPError(404, "no release history of that project that you can see")
        page = self.call(self.airlock.history_page, self.user, number, PER_PAGE, project)
        self.page("history.html", page=page, projects=projects, project=project)


class RequestPage(Page):
    @authenticated
    def get(self, request_id: str) -> None:
        opened = self.call(self.airlock.open_request, request_id, self.user)  # a checker's look is audited
        view = opened.view
        mine = {v["path"]: v for v in view["votes"] if v["reviewer"] == self.user}
        done = self.get_argument("done", "")
        if done == "submitted" and view["state"] != RequestState.CHECKING:
            done = "checked"  # a reload after the checks finished must not say they are still running
        if done == "preparing" and view["state"] != RequestState.PREPARING:
            done = {RequestState.CHECKING: "submitted", RequestState.DRAFT: "created"}.get(view["state"], "")
        self.page(
            "request.html", r=view, history=opened.history, viewed=opened.viewed, my_votes=mine,
            done=DONE.get(done), decisions=[d.value for d in Decision],
        )  # fmt: skip


def _vote(h: Page, request_id: str) -> None:
    decision = h.get_argument("decision", "")
    if decision not in {d.value for d in Decision}:
        raise HTTPError(400, "choose approve, reject or needs changes")
    path, comment, reason = h.get_argument("path"), h.get_argument("comment", ""), h.get_argument("override_reason", "")
    h.call(h.airlock.vote, request_id, h.user, path, decision, comment, reason)


def _revise(h: Page, request_id: str) -> None:
    h.call(h.airlock.revise, request_id, h.user, h.get_argument("path"))
    h.settings["runner"].check_draft(request_id)  # the new version's verdict, before it goes back to review


def _submit(h: Page, request_id: str) -> None:
    h.call(h.airlock.submit, request_id, h.user)
    h.settings["runner"].submit(request_id)


# Every action a form can post, each one verb of the business layer (the same verbs as `enclave airlock ...`).
ACTIONS: dict[str, Callable[[Page, str], None]] = {
    "vote": _vote,
    "review": lambda h, rid: h.call(h.airlock.submit_review, rid, h.user),
    "release": lambda h, rid: h.call(h.airlock.release, rid, h.user),
    "submit": _submit,
    "withdraw": lambda h, rid: h.call(h.airlock.withdraw, rid, h.user),
    "withdraw-file": lambda h, rid: h.call(h.airlock.withdraw_file, rid, h.user, h.get_argument("path")),
    "justify": lambda h, rid: h.call(
        h.airlock.justify, rid, h.user, h.get_argument("path"), h.get_argument("justification", "")
    ),
    "revise": _revise,
}


# Actions that wait on the checker sandbox (a release reads its tables for the ledger there) or copy a file (a revision
# takes a new snapshot): run off the event loop.
SLOW_ACTIONS = frozenset({"release", "revise"})


class RequestAction(Page):
    @authenticated
    async def post(self, request_id: str, action: str) -> None:
        if action not in ACTIONS:
            raise HTTPError(404)
        if action in SLOW_ACTIONS:  # it reads the signed-in user (already resolved) and writes nothing to the response
            await IOLoop.current().run_in_executor(None, ACTIONS[action], self, request_id)
        else:
            ACTIONS[action](self, request_id)
        done = "submitted" if action == "submit" else "voted" if action == "vote" else action
        self.redirect(self.url("requests", request_id) + f"?done={done}", status=303)


class FilePreview(Page):
    """A file's preview, from its verified snapshot, as a document meant for a sandboxed frame, with the places its
    findings name highlighted (web/highlights.py)."""

    def set_default_headers(self) -> None:
        security_headers(self, preview=True)

    @authenticated
    async def get(self, request_id: str, file_id: str) -> None:
        opened = self.call(self.airlock.open_preview, request_id, self.user, int(file_id))  # a checker's is audited
        name, findings = opened.path, opened.findings
        loop = IOLoop.current()
        with self.refusals():  # hashing a large snapshot takes seconds: not on the event loop
            source = await loop.run_in_executor(None, self.airlock.verified_snapshot, opened.snapshot, opened.sha256)
        # Rendered in the checker sandbox: nbconvert, pyarrow and the csv reader never run in this process.
        shown = await loop.run_in_executor(None, preview_sandboxed, source, PurePosixPath(name).name)
        if shown.kind == "image":
            self.set_header("Content-Type", shown.content_type)
            self.set_header("Content-Disposition", "inline")
            self.write(source.read_bytes())
            return
        if shown.kind == "notebook":
            self.set_header("Content-Type", "text/html; charset=UTF-8")
            self.write(highlights.mark_notebook(shown.html, highlights.notebook_highlights(findings)))
            return
        lines = shown.text.splitlines() if shown.kind == "text" else []
        if shown.kind == "table":
            marks = highlights.table_highlights(findings, shown.columns, len(shown.rows))
        else:
            marks = highlights.text_highlights(findings, len(lines))
        self.page("preview.html", name=name, shown=shown, lines=lines, marks=marks)


class FileDownload(Page):
    """A released file, for its requester only (the business layer decides), as an attachment."""

    @authenticated
    async def get(self, request_id: str, file_id: str) -> None:
        download = self.airlock.download_file
        # It hashes the released copy: not on the event loop.
        target = await IOLoop.current().run_in_executor(None, self.call, download, request_id, self.user, int(file_id))
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(target.name, safe='')}")
        self.set_header("Content-Length", str(target.stat().st_size))
        with target.open("rb") as fh:
            while block := fh.read(CHUNK):
                self.write(block)
                await self.flush()


class NotFound(Page):
    def prepare(self) -> None:
        raise HTTPError(404)


class Static(StaticFileHandler):
    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")


def routes(base: str) -> list[tuple[str, type[RequestHandler]]]:
    rid, fid = r"(r-[0-9A-Za-z-]{1,30})", r"([0-9]{1,12})"
    return [
        (base, Home),
        (base + "requests", MyRequests),
        (base + "new", NewRequest),
        (base + "review", ReviewList),
        (base + "history", ReleaseHistory),
        (base + f"requests/{rid}", RequestPage),
        (base + f"requests/{rid}/([a-z-]+)", RequestAction),
        (base + f"requests/{rid}/files/{fid}/preview", FilePreview),
        (base + f"requests/{rid}/files/{fid}/download", FileDownload),
    ]
