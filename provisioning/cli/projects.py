"""`enclave project`: create a project from its spec, replace it by a plan shown first, change its members, accept
the datasets registered since a `datasets: ['*']` project was made, build and verify its view. Every change is
audited, and membership changes reach the running hub at once through hub/revocation.py (the registry side,
fabric/projects.py, knows nothing of the hub); `apply-access` makes the hub follow the registry again where a change
could not reach it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from fabric.materialise.builds import GRACE_ENV, withdraw_view
from fabric.models import Project
from fabric.projects import (
    ProjectSpec,
    accept_datasets,
    add_member,
    close_project,
    create_project,
    get_open_project,
    get_project,
    plan_replacement,
    project_datasets,
    remove_member,
    require_enough_checkers,
    set_role,
)
from kernel.errors import EnclaveError
from provisioning.cli.base import Context, actor, friendly, main, pass_ctx


@main.group()
def project() -> None:
    """Research projects."""


def _default_reviews() -> int:
    """The airlock's default number of reviews per release, for projects that do not set their own."""
    from output_checks.release.workflow import DEFAULT_REVIEWS

    return DEFAULT_REVIEWS


def _apply_to_hub(ctx: Context, project_name: str, users: list[str]) -> None:
    """The running hub follows each membership change at once: groups set, workspaces no longer allowed stopped.
    Every user is tried even when the hub fails one; the registry change already stands, so the failures end in one
    error naming the command that applies them again (`apply-access`, idempotent)."""
    from hub import revocation

    failed = []
    for user in users:
        try:
            done = revocation.apply_membership(ctx.registry, ctx.paths, user, actor=actor())
        except revocation.RevocationError as exc:
            failed.append(user)
            click.echo(f"hub, {user}: NOT APPLIED: {exc}", err=True)
            continue
        click.echo(f"hub, {user}: {done.summary()}")
    if failed:
        again = " ".join(["enclave project apply-access", project_name, *failed])
        raise EnclaveError(
            f"the registry changed but the running hub did not follow for {len(failed)} of {len(users)} "
            f"{'person' if len(users) == 1 else 'people'}; when the hub answers, run: {again}"
        )


def _confirmed(question: str) -> bool:
    try:
        return click.confirm(question, default=False)
    except click.Abort:  # no answer (standard input closed or Ctrl-C): a no, not an internal error
        click.echo()
        return False


@project.command("create")
@click.option("-f", "spec_file", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Update an existing project to match the spec (its changes shown first).")
@click.option("--yes", is_flag=True, help="With --replace: apply the changes without asking.")
@pass_ctx
@friendly
def project_create(ctx: Context, spec_file: Path, replace: bool, yes: bool) -> None:
    """Create a project from a YAML spec (see docs/reference/project-spec.md); refused when it names fewer output
    checkers than its releases need reviews."""
    spec = ProjectSpec.load(spec_file)
    require_enough_checkers(spec, _default_reviews())
    plan = None
    if replace:
        with ctx.registry.session() as session:
            plan = plan_replacement(session, spec)
    if plan is not None:
        if plan.empty:
            click.echo(f"project {spec.name}: no changes")
            return
        click.echo(f"project {spec.name} changes:\n" + "\n".join(f"  {line}" for line in plan.lines()))
        if not yes and not _confirmed("Apply these changes?"):
            raise EnclaveError("nothing changed (pass --yes to apply without asking)")
    ctx.registry.transaction(
        lambda session: create_project(session, spec, actor=actor(), replace=replace, expected=plan)
    )
    click.echo(f"project {spec.name} {'updated' if plan else 'created'}; next: enclave project materialise {spec.name}")
    if plan is not None:
        _apply_to_hub(ctx, spec.name, plan.affected_users())


@project.command("list")
@pass_ctx
@friendly
def project_list(ctx: Context) -> None:
    """List projects with their current build."""
    with ctx.registry.session() as session:
        for p in session.scalars(select(Project).order_by(Project.name)):
            build = p.builds[-1] if p.builds else None
            current = f"{build.id} ({build.patients} patients)" if build else "not materialised"
            if p.closed_at is not None:
                current = f"closed {p.closed_at:%Y-%m-%d}"
            click.echo(f"{p.name:<20} {p.purpose:<8} {len(p.members)} members  {current}")


@project.command("show")
@click.argument("name")
@pass_ctx
@friendly
def project_show(ctx: Context, name: str) -> None:
    """A project's purpose, members, datasets and builds."""
    with ctx.registry.session() as session:
        p = get_project(session, name)
        click.echo(f"{p.name}: {p.title}\n  purpose {p.purpose}{' (commercial)' if p.commercial else ''}")
        if p.closed_at is not None:
            click.echo(f"  closed {p.closed_at:%Y-%m-%d %H:%M} UTC: no researchers, no view; history and outputs kept")
        for m in p.members:
            click.echo(f"  member {m.username} ({m.role})")
        chosen = project_datasets(session, p)
        if p.spec["datasets"] == ["*"]:
            click.echo(f"  datasets * (accepted: {', '.join(chosen.accepted) or 'none'})")
        else:
            click.echo(f"  datasets {', '.join(chosen.accepted)}")
        if chosen.waiting:
            click.echo(f"  {_waiting_notice(name, chosen.waiting)}: {', '.join(chosen.waiting)}")
        for b in p.builds:
            click.echo(f"  build {b.id}: {b.patients} patients, {b.files} files, manifest {b.manifest_sha256[:12]}")
        click.echo(f"  view {ctx.paths.project_data(name)}")


def _waiting_notice(name: str, waiting: list[str]) -> str:
    return (
        f"{len(waiting)} dataset(s) registered since wait for a decision, not in the view "
        f"(enclave project accept-datasets {name})"
    )


@project.command("accept-datasets")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Accept without asking.")
@pass_ctx
@friendly
def project_accept_datasets(ctx: Context, name: str, yes: bool) -> None:
    """Let the datasets registered since project NAME took `datasets: ['*']` into its view (shown first, then asked);
    they join at its next materialisation. To keep one out for good, list the datasets in the spec instead and
    replace it (enclave project create -f SPEC --replace)."""
    with ctx.registry.session() as session:
        waiting = project_datasets(session, get_project(session, name)).waiting
    if not waiting:
        click.echo(f"project {name}: no datasets wait for a decision")
        return
    click.echo(f"project {name} changes:\n" + "\n".join(f"  + dataset {d}" for d in waiting))
    if not yes and not _confirmed("Add these datasets to the project?"):
        raise EnclaveError("nothing changed (pass --yes to accept without asking)")
    ctx.registry.transaction(lambda session: accept_datasets(session, name, actor=actor(), expected=waiting))
    click.echo(f"project {name}: {len(waiting)} dataset(s) accepted; next: enclave project materialise {name}")


@project.command("add-member")
@click.argument("name")
@click.argument("user")
@click.argument("role", type=click.Choice(["researcher", "output_checker"]))
@pass_ctx
@friendly
def project_add_member(ctx: Context, name: str, user: str, role: str) -> None:
    """Add USER to project NAME with ROLE; the running hub follows at once."""
    ctx.registry.transaction(
        lambda session: add_member(session, name, user, role, actor=actor(), default_reviews=_default_reviews())
    )
    click.echo(f"{user} is a {role} on {name}")
    _apply_to_hub(ctx, name, [user])


@project.command("remove-member")
@click.argument("name")
@click.argument("user")
@pass_ctx
@friendly
def project_remove_member(ctx: Context, name: str, user: str) -> None:
    """Take USER off project NAME in every role; their running workspace for it stops and their access ends at once.
    Refused when it would leave fewer output checkers than the project's releases need reviews."""
    roles = ctx.registry.transaction(
        lambda session: remove_member(session, name, user, actor=actor(), default_reviews=_default_reviews())
    )
    click.echo(f"{user} is no longer a member of {name} (was {', '.join(roles)})")
    _apply_to_hub(ctx, name, [user])


@project.command("set-role")
@click.argument("name")
@click.argument("user")
@click.argument("role", type=click.Choice(["researcher", "output_checker"]))
@pass_ctx
@friendly
def project_set_role(ctx: Context, name: str, user: str, role: str) -> None:
    """Make ROLE the only role of member USER on project NAME; the running hub follows at once (a researcher made an
    output checker loses their workspace). Refused when it would leave too few output checkers."""
    before = ctx.registry.transaction(
        lambda session: set_role(session, name, user, role, actor=actor(), default_reviews=_default_reviews())
    )
    if before == [role]:
        click.echo(f"{user} is already a {role} on {name}")
        return
    click.echo(f"{user} is now a {role} on {name} (was {', '.join(before)})")
    _apply_to_hub(ctx, name, [user])


@project.command("close")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Close without asking.")
@pass_ctx
@friendly
def project_close(ctx: Context, name: str, yes: bool) -> None:
    """Close project NAME for good: its researchers' access ends (workspaces stopped, no new release requests), its
    view is removed, and it can no longer be changed or materialised; its outputs, MLflow store, airlock history
    (still open to its output checkers) and audit log are kept. Refused while a release request is under way."""
    from output_checks.release.workflow import requests_under_way

    def refuse_if_busy(session: Any) -> None:
        if busy := requests_under_way(session, name):
            raise EnclaveError(
                f"project {name} has {len(busy)} release request(s) under way ({', '.join(busy[:5])}"
                f"{', ...' if len(busy) > 5 else ''}): let their reviews finish, or their authors withdraw them, first"
            )

    with ctx.registry.session() as session:
        project = get_open_project(session, name)
        refuse_if_busy(session)
        researchers = sorted({m.username for m in project.members if m.role == "researcher"})
    click.echo(
        f"closing project {name}: access ends for {len(researchers)} researcher(s) "
        f"({', '.join(researchers) or 'none'}); its view is removed; outputs, MLflow store, airlock history and "
        "audit log are kept. This cannot be undone."
    )
    if not yes and not _confirmed("Close it?"):
        raise EnclaveError("nothing changed (pass --yes to close without asking)")
    with ctx.registry.session() as session:
        refuse_if_busy(session)  # a request submitted while the question was open
        researchers = close_project(session, name, actor=actor())
    swept = withdraw_view(ctx.registry, ctx.paths, name, actor=actor())
    kept = f"; {len(swept.in_use)} build(s) still in use go when their workspace or run ends" if swept.in_use else ""
    click.echo(f"project {name} closed; view removed ({len(swept.removed)} build(s)){kept}")
    _apply_to_hub(ctx, name, researchers)


@project.command("apply-access")
@click.argument("name")
@click.argument("users", nargs=-1)
@pass_ctx
@friendly
def project_apply_access(ctx: Context, name: str, users: tuple[str, ...]) -> None:
    """Make the running hub follow the registry for project NAME again: for each of USERS (default: every member and
    everyone with a workspace of NAME running), set their groups and stop workspaces they may no longer have.
    Idempotent: what a membership change could not apply (the hub down or failing) is applied by this."""
    from hub import revocation

    with ctx.registry.session() as session:
        members = sorted({m.username for m in get_project(session, name).members})
    people = list(dict.fromkeys(users)) or sorted({*members, *revocation.running_workspace_owners(ctx.paths, name)})
    if not people:
        click.echo(f"{name}: no members and no running workspaces")
        return
    _apply_to_hub(ctx, name, people)


@project.command("materialise")
@click.argument("name")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: all cores).")
@pass_ctx
@friendly
def project_materialise(ctx: Context, name: str, quiet: bool, workers: int | None) -> None:
    """Build and atomically publish project NAME's consented, pseudonymised view (from the datasets it accepted; a
    note names any that wait for a decision)."""
    from fabric.materialise.view import materialise_project

    s = materialise_project(ctx.registry, ctx.paths, name, actor=actor(), progress=not quiet, workers=workers)
    click.echo(
        f"{name}: build {s.build_id} published: {s.patients} patients ({s.excluded} excluded by consent), "
        f"{s.files} files, {s.bytes / 1e6:.1f} MB; modalities {s.modalities}"
    )
    with ctx.registry.session() as session:
        waiting = project_datasets(session, get_project(session, name)).waiting
    if waiting:
        click.echo(f"  note: {_waiting_notice(name, waiting)}")
    if s.kept:
        click.echo(
            f"  previous build(s) {', '.join(s.kept)} kept while a workspace or run still uses them (or within "
            f"{GRACE_ENV}); removed once they end. Open workspaces see the new build after a restart."
        )


@project.command("prune-builds")
@click.argument("names", nargs=-1)
@pass_ctx
@friendly
def project_prune_builds(ctx: Context, names: tuple[str, ...]) -> None:
    """Remove the superseded builds of projects NAMES (default: every project) that no workspace or run uses any more
    and whose grace period is over; each removal is audited. Also done after every publish, at every workspace's or
    run's end and at `enclave up`."""
    from fabric.materialise.builds import sweep_project

    with ctx.registry.session() as session:
        projects = [get_project(session, n).name for n in names] or list(
            session.scalars(select(Project.name).order_by(Project.name))
        )
    for name in projects:
        swept = sweep_project(ctx.registry, ctx.paths, name, actor=actor())
        click.echo(
            f"{name}: {len(swept.removed)} removed"
            + (f"; in use: {', '.join(swept.in_use)}" if swept.in_use else "")
            + (f"; within the grace period: {', '.join(swept.within_grace)}" if swept.within_grace else "")
        )


@project.command("verify")
@click.argument("name")
@pass_ctx
@friendly
def project_verify(ctx: Context, name: str) -> None:
    """Check project NAME's published view against its manifest (SHA-256 of every file)."""
    from fabric.materialise.view import verify_view

    view = ctx.paths.project_data(name)
    if not view.exists():
        raise EnclaveError(f"project {name} has no published view (run 'enclave project materialise {name}')")
    problems = verify_view(view.resolve())
    for p in problems:
        click.echo(p)
    if problems:
        sys.exit(1)
    click.echo(f"{name}: every file matches the manifest")
