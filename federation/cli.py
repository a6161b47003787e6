"""`enclave federation …` (a coordinator's and a site's admin) and `enclave federate …` (a researcher on the
coordinator): thin commands over federation/coordinator.py and federation/agent.py."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

import click
import yaml

from federation import pki, site_setup, tasks
from federation.agent import CoordinatorClient, SiteAgent, SiteConfig, SiteFiles, load_config
from federation.coordinator import Coordinator
from kernel import audit
from kernel.errors import EnclaveError
from kernel.secret_files import write_secret
from provisioning.cli.base import Context, actor, friendly, main, pass_ctx
from provisioning.notebook_runs import acting_as, invoker

COORDINATOR_FILE = "coordinator.yaml"


def coordinator_of(ctx: Context) -> Coordinator:
    settings = ctx.paths.federation / "coordinator" / COORDINATOR_FILE
    if not settings.exists():
        raise EnclaveError("this Enclave is not a coordinator: run `enclave federation coordinator init` first")
    name = str((yaml.safe_load(settings.read_text(encoding="utf-8")) or {}).get("name", ""))
    return Coordinator(ctx.registry, ctx.paths, name)


# ------------------------------------------------------------------------------------------------- admin


@main.group("federation")
def federation_group() -> None:
    """Federated analysis: this Enclave as a consortium's coordinator, or as a site that runs its tasks."""


@federation_group.group("coordinator")
def coordinator_group() -> None:
    """This Enclave as the consortium's coordinator."""


@coordinator_group.command("init")
@click.option("--name", required=True, help="The coordinator's name, as its certificate says it.")
@pass_ctx
@friendly
def coordinator_init(ctx: Context, name: str) -> None:
    """Make the coordinator's signing key (kept once made) and print the public key sites pin when they join."""
    Coordinator(ctx.registry, ctx.paths, name)  # checks the name
    ctx.paths.federation.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_secret(ctx.paths.federation / "coordinator" / COORDINATOR_FILE, yaml.safe_dump({"name": name}))
    click.echo(coordinator_of(ctx).signing_public_pem(), nl=False)


@coordinator_group.command("key")
@pass_ctx
@friendly
def coordinator_key(ctx: Context) -> None:
    """The coordinator's public signing key (PEM), for the sites."""
    click.echo(coordinator_of(ctx).signing_public_pem(), nl=False)


@coordinator_group.command("serve")
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8443, show_default=True)
@click.option("--credentials", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="This coordinator's credentials (`enclave consortium issue NAME --role coordinator`).")  # fmt: skip
@pass_ctx
@friendly
def coordinator_serve(ctx: Context, address: str, port: int, credentials: Path) -> None:
    """Serve the sites over mutual TLS until interrupted; unfinished tasks past their expiry expire every minute."""
    import asyncio

    from federation.coordinator_server import serve

    coordinator = coordinator_of(ctx)

    async def run() -> None:
        serve(coordinator, credentials, address=address, port=port)
        click.echo(f"coordinator {coordinator.name} serving sites on https://{address}:{port}", err=True)
        while True:
            await asyncio.to_thread(coordinator.expire)
            await asyncio.sleep(60)

    asyncio.run(run())


@federation_group.group("project")
def project_group() -> None:
    """Federated projects (on the coordinator)."""


@project_group.command("create")
@click.argument("name")
@click.option("--title", required=True)
@click.option("--purpose", required=True, help="Data Use Ontology code, e.g. DS-CVD.")
@click.option("--site", "sites", multiple=True, required=True, help="A site, in the consortium's order (repeat).")
@click.option("--member", "members", multiple=True, help="A researcher of the project (repeat).")
@pass_ctx
@friendly
def project_create(ctx: Context, name: str, title: str, purpose: str, sites: tuple[str, ...],
                   members: tuple[str, ...]) -> None:  # fmt: skip
    """A federated project, its sealing key and its members."""
    coordinator_of(ctx).create_project(name=name, title=title, purpose=purpose, sites=sites, members=members,
                                       actor=actor())  # fmt: skip
    click.echo(f"federated project {name}: {len(sites)} site(s), {len(set(members))} member(s)")


@project_group.command("add-member")
@click.argument("name")
@click.argument("user")
@pass_ctx
@friendly
def project_add_member(ctx: Context, name: str, user: str) -> None:
    coordinator_of(ctx).add_member(name, user, actor=actor())
    click.echo(f"{user} is a member of federated project {name}")


@federation_group.command("join")
@click.option("--coordinator-url", required=True, help="https://HOST:PORT of the coordinator's site server.")
@click.option("--coordinator", "coordinator_name", required=True, help="The coordinator's name (its certificate's).")
@click.option("--coordinator-key", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The coordinator's public signing key (`enclave federation coordinator key` there).")  # fmt: skip
@click.option("--credentials", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="This site's node credentials (`enclave consortium issue … --role site`).")  # fmt: skip
@click.option("--run-user", default="federation", show_default=True,
              help="The Enclave user tasks run as: a researcher of each local project that takes tasks.")  # fmt: skip
@click.option("--poll-seconds", type=float, default=30.0, show_default=True)
@pass_ctx
@friendly
def join(ctx: Context, coordinator_url: str, coordinator_name: str, coordinator_key: Path, credentials: Path,
         run_user: str, poll_seconds: float) -> None:  # fmt: skip
    """Join a consortium as a site: pin the coordinator's key, keep this site's credentials (root-only)."""
    config = SiteConfig(coordinator_url=coordinator_url.rstrip("/"), coordinator=coordinator_name,
                        coordinator_key=coordinator_key.read_text(encoding="utf-8"), run_user=run_user,
                        poll_seconds=poll_seconds)  # fmt: skip
    identity = site_setup.join(ctx.paths, ctx.registry, config, credentials, actor=actor())
    files = SiteFiles.of(ctx.paths)
    click.echo(f"site {identity.name} joined coordinator {coordinator_name}; accept projects in {files.policy}")


@federation_group.command("policy")
@click.argument("policy_file", type=click.Path(path_type=Path, dir_okay=False))
@pass_ctx
@friendly
def install_policy(ctx: Context, policy_file: Path) -> None:
    """Check and install this site's policy (which federated projects, submitters and outputs it accepts)."""
    site_setup.install_policy(ctx.paths, ctx.registry, policy_file.read_text(encoding="utf-8"), actor=actor())
    click.echo(f"policy installed: {SiteFiles.of(ctx.paths).policy}")


@federation_group.command("linkage-key")
@click.argument("key_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@pass_ctx
@friendly
def linkage_key(ctx: Context, key_file: Path) -> None:
    """Keep the consortium's linkage key at this site (root-only), for count-once tasks; prints its fingerprint,
    which every site's admin compares. The coordinator never holds it."""
    from federation import site_linkage

    key = site_linkage.install_key(ctx.paths, key_file)
    ctx.registry.transaction(lambda s: audit.record(s, actor=actor(), action="federation.linkage_key_installed",
                                                    target="linkage-key", fingerprint=key.fingerprint()))  # fmt: skip
    click.echo(f"linkage key installed (fingerprint {key.fingerprint()})")


@federation_group.command("agent")
@click.option("--once", is_flag=True, help="One pass (pull, run, report), then exit.")
@pass_ctx
@friendly
def agent(ctx: Context, once: bool) -> None:
    """The site's agent: pull tasks, run them here, return what the site's airlock released. It never listens."""
    files = SiteFiles.of(ctx.paths)
    config = load_config(files)
    identity = pki.node_identity(files.credentials)
    client = CoordinatorClient(config, files.credentials)
    runner = SiteAgent(ctx.paths, ctx.registry, client, site=identity.name)
    try:
        while True:
            done = runner.run_once()
            for task_id, state in done.moved:
                click.echo(f"{task_id} {state}", err=True)
            if once:
                return
            time.sleep(config.poll_seconds)
    finally:
        client.close()


@federation_group.command("tasks")
@pass_ctx
@friendly
def site_tasks(ctx: Context) -> None:
    """The tasks this site has pulled, and where each stands."""
    from sqlalchemy import select

    from federation.models import SiteTask

    rows = ctx.registry.transaction(lambda s: [
        (t.id, t.project, t.submitter, t.state, t.reason, t.reference)
        for t in s.scalars(select(SiteTask).order_by(SiteTask.updated_at.desc())).all()])  # fmt: skip
    click.echo(f"{'TASK':<36} {'PROJECT':<20} {'STATE':<18} REASON / REFERENCE")
    for task_id, project, _submitter, state, reason, reference in rows:
        click.echo(f"{task_id:<36} {project:<20} {state:<18} {reason or '-'} / {reference}")


def _decide(ctx: Context, task_id: str, user: str, run: bool) -> None:
    files = SiteFiles.of(ctx.paths)
    load_config(files)
    agent = SiteAgent(ctx.paths, ctx.registry, _NoLink(), site="")
    agent.approve(task_id, user, run=run)


@federation_group.command("approve")
@click.argument("task_id")
@click.option("--as", "user", required=True, help="The output checker of the local project who approves.")
@pass_ctx
@friendly
def approve(ctx: Context, task_id: str, user: str) -> None:
    """Approve running a task's code at this site (the policy's `approve_code`)."""
    _decide(ctx, task_id, user, True)
    click.echo(f"{task_id} approved by {user}: it runs at the agent's next pass")


@federation_group.command("decline")
@click.argument("task_id")
@click.option("--as", "user", required=True)
@pass_ctx
@friendly
def decline(ctx: Context, task_id: str, user: str) -> None:
    """Refuse to run a task's code at this site."""
    _decide(ctx, task_id, user, False)
    click.echo(f"{task_id} declined by {user}")


class _NoLink:
    def offers(self) -> list[dict[str, str]]:
        return []

    def notebook(self, task_id: str) -> bytes:
        raise EnclaveError("no coordinator link in this command")

    def report(self, task_id: str, state: str, reason: str, reference: str) -> None:
        raise EnclaveError("no coordinator link in this command")

    def result(self, task_id: str, blob: bytes, reference: str) -> None:
        raise EnclaveError("no coordinator link in this command")


# --------------------------------------------------------------------------------------------- researcher


def write_as_invoker(out: Path, files: Iterable[tuple[str, bytes]]) -> None:
    """Write each (relative path, bytes) under `out` with the rights of whoever called `enclave` (through sudo, that
    account's, never root's: `out` is theirs to choose, and root never follows a path a researcher can write).
    Paths come from the coordinator's own checks (declared outputs, pooled names): never absolute, never `..`."""
    who = invoker()
    for name, content in files:
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise EnclaveError(f"{name}: not a path inside --out")
        with acting_as(who):
            try:
                target = out / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(content)
            except OSError as exc:
                raise EnclaveError(f"{out}: cannot write {name} there with your rights ({exc.strerror})") from None


@main.group("federate")
def federate_group() -> None:
    """Run a notebook at every site of a federated project and collect what their airlocks released."""


def _output(value: str) -> tasks.DeclaredOutput:
    path, _, kind = value.rpartition(":")
    if not path:
        raise click.BadParameter(f"{value!r}: PATH:KIND, e.g. estimates.csv:estimates", param_hint="--output")
    try:
        return tasks.DeclaredOutput(path=path, kind=kind)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--output") from None


@federate_group.command("submit")
@click.argument("notebook", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--project", required=True)
@click.option("-p", "--parameter", "parameters", nargs=2, multiple=True, metavar="NAME VALUE",
              help="A papermill parameter (JSON value, else text).")  # fmt: skip
@click.option("--output", "outputs", multiple=True, required=True, metavar="PATH:KIND",
              help="A declared output, relative to the notebook's `outputs` folder; KIND is table, counts, "
              "estimates, figure or text. Nothing else leaves a site.")  # fmt: skip
@click.option("--days", type=int, default=7, show_default=True, help="How long the sites may take.")
@click.option("--count-once", is_flag=True,
              help="Count a patient with records at several sites once: the sites exchange linkage tokens first and "
              "each run gets `excluded`, the pseudonyms another site counts.")  # fmt: skip
@pass_ctx
@friendly
def submit(ctx: Context, notebook: Path, project: str, parameters: tuple[tuple[str, str], ...],
           outputs: tuple[str, ...], days: int, count_once: bool) -> None:  # fmt: skip
    """Sign NOTEBOOK as a task for every site of PROJECT; prints the task's id."""
    from datetime import timedelta

    from provisioning.notebook_runs import invoker, read_notebook

    content = read_notebook(notebook, invoker())
    values = {name: _value(value) for name, value in parameters}
    declared = [_output(o) for o in outputs]
    task_id = coordinator_of(ctx).submit(project=project, submitter=actor(), notebook=content, parameters=values,
                                         outputs=declared, valid_for=timedelta(days=days),
                                         count_once=count_once)  # fmt: skip
    click.echo(task_id)


def _value(text: str) -> object:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str | int | float | bool) or value is None else text


@federate_group.command("status")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def status(ctx: Context, task_id: str, as_json: bool) -> None:
    """Where TASK stands at each site."""
    found = coordinator_of(ctx).status(task_id, actor())
    if as_json:
        click.echo(json.dumps({"task": found.task_id, "project": found.project, "finished": found.finished,
                               "sites": [{"site": s.site, "state": s.state, "reason": s.reason,
                                          "reference": s.reference} for s in found.sites]}))  # fmt: skip
        return
    click.echo(f"task {found.task_id} ({found.project}): {len(found.released)} of {len(found.sites)} sites released")
    for s in found.sites:
        extra = f" ({s.reason})" if s.reason else ""
        click.echo(f"  {s.site:<20} {s.state:<18} {s.description}{extra} [{s.reference or '-'}]")


@federate_group.command("results")
@click.argument("task_id")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@pass_ctx
@friendly
def results(ctx: Context, task_id: str, out: Path) -> None:
    """Open what each site released for TASK into OUT/SITE/PATH (the coordinator's project key opens them)."""
    opened = coordinator_of(ctx).results(task_id, actor())
    write_as_invoker(out, ((f"{site}/{path}", content) for site, files in opened.items()
                           for path, content in files.items()))  # fmt: skip
    click.echo(f"{sum(len(f) for f in opened.values())} file(s) from {len(opened)} site(s) in {out}")


@federate_group.command("pool")
@click.argument("task_id")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--min-cell", type=int, default=10, show_default=True, help="The pooled tables' minimum cell count.")
@pass_ctx
@friendly
def pool(ctx: Context, task_id: str, out: Path, min_cell: int) -> None:
    """Pool what the sites released for TASK into OUT: meta-analysed estimates with forest plots, pooled counts
    whose suppression holds across sites, and `pooled.json` naming every site and what became of it."""
    from federation.pooled_results import pool_task

    coordinator = coordinator_of(ctx)
    found = coordinator.status(task_id, actor())
    opened = coordinator.results(task_id, actor())
    result = pool_task(opened, list(coordinator.declared_outputs(task_id)),
                       {s.site: (s.state, s.reason) for s in found.sites}, min_cell=min_cell)  # fmt: skip
    write_as_invoker(out, result.files.items())
    click.echo(f"{result.coverage.text()}; {len(result.files)} file(s) in {out}")
    for problem in result.problems:
        click.echo(f"not pooled: {problem}", err=True)


@federate_group.command("dummy-view")
@click.option("--project", required=True)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--patients", type=int, default=200, show_default=True)
@pass_ctx
@friendly
def dummy_view(ctx: Context, project: str, out: Path, patients: int) -> None:
    """A view of generated dummy data with the same schema as the sites' views of PROJECT, to write and test a
    notebook on before submitting it (`open_project(path=OUT)`). No real record is in it."""
    from federation.dummy_view import build_dummy_view

    purpose = coordinator_of(ctx).purpose(project, actor())
    build_dummy_view(out, project=project, purpose=purpose, patients=patients,
                     write=lambda files: write_as_invoker(out, files))  # fmt: skip
    click.echo(f'dummy view of {project} ({patients} generated patients) in {out}: open_project(path="{out}")')
