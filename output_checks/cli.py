"""`enclave airlock ...`: the airlock's command line, thin over the checker sandbox (`check`) and the airlock's
business layer (`output_checks.release.airlock.Airlock`) for the release workflow, whose refusals are one line on
stderr and exit status 1.

`check` prints the contract's JSON with --json (and nothing else on stdout) or a readable summary; it exits 0 when
every file passes, 1 when any is review or block, and 2 for a usage error (bad option, missing path, bad policy
file, unknown project)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from kernel.errors import EnclaveError
from output_checks.verdicts import Report, Verdict

SYMBOL = {Verdict.PASS: "pass  ", Verdict.REVIEW: "REVIEW", Verdict.BLOCK: "BLOCK "}


@click.group("airlock")
def airlock() -> None:
    """The airlock: check outputs before release."""


def _project_policy(paths, project: str):
    from kernel.db import Registry
    from output_checks.release.site_policy import project_overrides
    from output_checks.screening.known import build_known_identifiers

    if not Path(paths.home).exists():
        raise click.UsageError(f"no Enclave home at {paths.home} (set ENCLAVE_HOME or --home)")
    registry = Registry.of(paths)
    try:
        with registry.session() as session:
            overrides = project_overrides(session, project)
        known = build_known_identifiers(registry, paths, project)
    finally:
        registry.close()
    return overrides, known


@airlock.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (the documented contract).")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Policy YAML over the defaults, instead of the site's (docs/reference/policy.md).")  # fmt: skip
@click.option("--project", help="Also screen for this project's known identifiers and pseudonyms, under its policy.")
@click.option("--workers", type=click.IntRange(min=1), help="Processes to use (default: every core).")
@click.pass_context
def check(
    ctx: click.Context, paths: tuple[Path, ...], as_json: bool, policy_file: Path | None, project: str | None,
    workers: int | None,
) -> None:  # fmt: skip
    """Check files and folders (walked recursively) for identifiers, individual-level data, raw data and small
    counts. Exit 0: every file passes; 1: some need review or are blocked; 2: usage error."""
    from kernel.config import Paths
    from output_checks.release.site_policy import resolve_policy
    from output_checks.sandbox.runner import check_paths_sandboxed

    installation = getattr(ctx.find_root().obj, "paths", None) or Paths.from_env()
    try:
        overrides, known = ({}, None)
        if project:
            overrides, known = _project_policy(installation, project)
        # The same layers as the release workflow's checks; an account that may not read the site's file (a
        # researcher's advisory check) gets the defaults, but a project's check must see the site's policy.
        policy = resolve_policy(installation, overrides, policy_file, strict=bool(project))
    except EnclaveError as exc:
        raise click.UsageError(str(exc)) from None
    # Parsed in checker children (a sandbox as root), never in this process: the contract is unchanged.
    progress = not as_json and sys.stderr.isatty()
    report = check_paths_sandboxed(list(paths), policy, known, workers=workers, progress=progress)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=None if os.environ.get("ENCLAVE_COMPACT") else 1))
    else:
        _print(report)
    ctx.exit(report.exit_code)


def _print(report: Report) -> None:
    for f in report.files:
        click.echo(f"{SYMBOL[f.verdict]}  {f.path}  ({f.type})")
        for finding in f.findings:
            where = f" [{finding.location}]" if finding.location else ""
            click.echo(f"          {finding.verdict}: {finding.message}{where}")
    s = report.summary
    click.echo(f"\n{len(report.files)} file(s): {s['pass']} pass, {s['review']} review, {s['block']} block")


# ------------------------------------------------------------------------------------------------ release workflow


def _user() -> str:
    """Who is acting: the Unix user. Root (an admin on the host, tests) may act as ENCLAVE_USER."""
    import getpass

    if os.geteuid() == 0 and os.environ.get("ENCLAVE_USER"):
        return os.environ["ENCLAVE_USER"]
    return os.environ.get("SUDO_USER") or getpass.getuser()


def _airlock(ctx: click.Context):
    from kernel.config import Paths
    from kernel.db import Registry
    from output_checks.release.airlock import Airlock

    paths = getattr(ctx.find_root().obj, "paths", None) or Paths.from_env()
    paths.home.mkdir(parents=True, exist_ok=True)
    return Airlock(Registry.of(paths), paths)


def _fail(exc: Exception) -> None:
    click.echo(f"enclave: error: {exc}", err=True)
    sys.exit(1)


def workflow_command(fn):
    """Run a verb of the business layer; its refusals (not allowed, wrong state, not found) are one line on
    stderr, exit 1."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EnclaveError as exc:
            _fail(exc)

    return wrapper


def _start_checks(app, request_id: str, wait: bool) -> None:
    """Check a submitted request (or a draft's files, for its author) now (--wait) or in a detached process, so the
    command returns at once."""
    if wait:
        app.check_request(request_id)
        app.check_draft(request_id)
    else:
        from output_checks.release.service import detach_check

        detach_check(app.paths, request_id)


@airlock.command("submit")
@click.argument("files", nargs=-1, required=True)
@click.option("--project", required=True)
@click.option("--title", required=True, help="What the outputs are, for the reviewers.")
@click.option("--justify", "justifications", multiple=True, metavar="FILE=TEXT", help="Why FILE should be released.")
@click.option("--wait", is_flag=True, help="Run the checks now and wait for them (default: in the background).")
@click.option("--draft", is_flag=True, help="Keep it as a draft (submit later with 'airlock resubmit').")
@click.pass_context
@workflow_command
def submit_cmd(ctx, files, project, title, justifications, wait, draft) -> None:
    """Request release of FILES from the project's outputs folder (paths relative to it)."""
    from output_checks.release.workflow import InvalidRequest

    app, user = _airlock(ctx), _user()
    why = dict(j.split("=", 1) for j in justifications if "=" in j)
    # Over the policy's size limits: refused here with the reason, before anything is copied or recorded.
    request_id, pending = app.new_request(project=project, author=user, title=title, draft=draft,
                                          files=[(path, why.get(path, "")) for path in files])  # fmt: skip
    if pending:  # a large request: copied here, outside any transaction, so the web app's writers never wait on it
        submitted = app.prepare(request_id)
        refused = app.refusal(request_id, user)
        if refused:
            _fail(InvalidRequest(f"the airlock refused request {request_id}: {refused}"))
        if not submitted and not draft:
            click.echo(request_id)
            return
    _start_checks(app, request_id, wait)  # a draft's too: its author sees the verdicts before submitting
    click.echo(request_id)


@airlock.command("run-checks")
@click.argument("request_id", required=False)
@click.option("--pending", is_flag=True, help="Check every request left in 'checking' (after a restart).")
@click.pass_context
@workflow_command
def run_checks_cmd(ctx, request_id, pending) -> None:
    """Run the automated checks of a submitted request, or of a draft's files not checked yet (the background step of
    submit)."""
    app = _airlock(ctx)
    if pending or not request_id:
        for done in app.resume():
            click.echo(done)
    else:
        app.check_request(request_id)
        app.check_draft(request_id)


@airlock.command("purge")
@click.pass_context
@workflow_command
def purge_cmd(ctx) -> None:
    """Remove the snapshots of withdrawn and rejected requests closed longer ago than the policy's retention_days
    (each removal audited; the requests' records and hashes stay). The airlock service also runs this hourly."""
    app = _airlock(ctx)
    for request_id in app.purge():
        click.echo(request_id)


@airlock.command("list")
@click.option("--to-review", is_flag=True, help="Requests waiting for your review instead of your own.")
@click.option("--project", help="Only this project's requests.")
@click.option("--all", "everything", is_flag=True,
              help="With --project, as its output checker: every request of the project you may list, the release "
                   "history (released and rejected) included.")  # fmt: skip
@click.pass_context
@workflow_command
def list_cmd(ctx, to_review, project, everything) -> None:
    """Your requests, those waiting for your review, or (--project P --all) a project's requests and release
    history."""
    app, user = _airlock(ctx), _user()
    if everything:
        if not project:
            raise click.UsageError("--all needs --project: a release history is one project's")
        rows = app.project_requests(user, project)
    else:
        rows = app.review_queue(user) if to_review else app.my_requests(user)
        rows = [r for r in rows if project in (None, r.project)]
    for r in rows:
        click.echo(f"{r.id}  {r.project}  {r.state:<9}  {r.author}  {r.title}")


@airlock.command("show")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@workflow_command
def show_cmd(ctx, request_id, as_json) -> None:
    """A request: its files, the checks' findings, the reviews you may see."""
    app, user = _airlock(ctx), _user()
    view = app.request(request_id, user)
    if as_json:
        click.echo(json.dumps(view, indent=1, default=str))
        return
    click.echo(f"{view['id']}  {view['project']}  {view['state']}  by {view['author']}: {view['title']}")
    for f in view["files"]:
        flag = " (withdrawn)" if f["withdrawn"] else ""
        click.echo(f"  {f['verdict'] or '…':<7} {f['path']} v{f['version']} {f['sha256'][:12]}{flag}")
        for finding in f["findings"] or []:
            click.echo(f"          {finding['verdict']}: {finding['message']} [{finding.get('location', '')}]")
        if f["justification"]:
            click.echo(f"          justification: {f['justification']}")
    for v in view["votes"]:
        click.echo(f"  vote: {v['reviewer']} {v['decision']} {v['path']} {v['comment']}")


@airlock.command("review")
@click.argument("request_id")
@click.option("--file", "path", help="The file to decide.")
@click.option("--decision", type=click.Choice(["approve", "reject", "needs_changes"]))
@click.option("--comment", default="")
@click.option("--override-reason", default="", help="Required to approve a file the checks blocked.")
@click.option("--submit", "finish", is_flag=True, help="Submit your review (after deciding every file).")
@click.pass_context
@workflow_command
def review_cmd(ctx, request_id, path, decision, comment, override_reason, finish) -> None:
    """Decide files of a request in review, then submit the review."""
    app, user = _airlock(ctx), _user()
    if path and decision:
        app.vote(request_id, user, path, decision, comment, override_reason)
    elif path or decision:
        raise click.UsageError("--file and --decision go together")
    if finish:
        app.submit_review(request_id, user)
    click.echo(app.state(request_id, user))


@airlock.command("release")
@click.argument("request_id")
@click.pass_context
@workflow_command
def release_cmd(ctx, request_id) -> None:
    """Copy an approved request's approved files to the egress store (hashes verified)."""
    for path in _airlock(ctx).release(request_id, _user()):
        click.echo(f"released {path}")


@airlock.command("download")
@click.argument("request_id")
@click.argument("path")
@click.option("--to", "folder", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.pass_context
@workflow_command
def download_cmd(ctx, request_id, path, folder) -> None:
    """Copy a file released to you out of the egress store."""
    import shutil

    app, user = _airlock(ctx), _user()
    source = app.download(request_id, user, path)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(path).name
    shutil.copyfile(source, target)
    click.echo(str(target))


@airlock.command("withdraw")
@click.argument("request_id")
@click.option("--file", "path", help="Withdraw one file instead of the whole request.")
@click.pass_context
@workflow_command
def withdraw_cmd(ctx, request_id, path) -> None:
    """Withdraw a request, or one file of it."""
    app, user = _airlock(ctx), _user()
    if path:
        app.withdraw_file(request_id, user, path)
    else:
        app.withdraw(request_id, user)
    click.echo("withdrawn")


@airlock.command("resubmit")
@click.argument("request_id")
@click.option("--revise", "revised", multiple=True, metavar="FILE", help="Take a new version of FILE first.")
@click.option("--wait", is_flag=True)
@click.pass_context
@workflow_command
def resubmit_cmd(ctx, request_id, revised, wait) -> None:
    """Submit a draft, or send a returned request back for checks and review with revised files."""
    app, user = _airlock(ctx), _user()
    app.submit(request_id, user, revised=revised)
    _start_checks(app, request_id, wait)
    click.echo(request_id)


@airlock.command("justify")
@click.argument("request_id")
@click.argument("path")
@click.argument("text")
@click.pass_context
@workflow_command
def justify_cmd(ctx, request_id, path, text) -> None:
    """Say why a file of a draft or returned request should be released (replaces its justification)."""
    app, user = _airlock(ctx), _user()
    app.justify(request_id, user, path, text)
    click.echo("justified")


@airlock.command("web")
@click.option("--host", help="Address to listen on (default: 127.0.0.1, or the hub's service URL).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: 8090, or the hub's service URL).")
@click.option("--dev-login", is_flag=True, help="Development only: sign in as any user at /dev/login (127.0.0.1).")
@click.pass_context
def web_cmd(ctx, host, port, dev_login) -> None:
    """Serve the airlock web app: as JupyterHub's 'airlock' service, or stand-alone with --dev-login. Submitted
    requests are checked in the background; requests a restart left in 'checking' are checked on start."""
    import logging

    from kernel.config import Paths
    from output_checks.web.app import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    paths = getattr(ctx.find_root().obj, "paths", None) or Paths.from_env()
    paths.home.mkdir(parents=True, exist_ok=True)
    try:
        serve(paths, host=host, port=port, dev_login=dev_login)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
