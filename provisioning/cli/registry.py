"""`enclave user`, `site`, `dataset`, `consent` and `audit`: the registry's records, which these commands add to and
read, every change audited (projects: provisioning/cli/projects.py)."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

import click
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabric.catalogue import DatasetSpec, add_site, find_patient, get_site, register_dataset
from fabric.consent import ImportSummary, import_consent, state_in_force, withdraw
from fabric.identifiers.schemes import SCHEMES
from fabric.models import Dataset, PatientRecord, Project, Site
from fabric.projects import project_datasets
from kernel import audit
from provisioning.cli.base import Context, actor, friendly, main, pass_ctx

# ------------------------------------------------------------------------------------------------ users


@main.group()
def user() -> None:
    """Local accounts: password (argon2id) and TOTP."""


@user.command("add")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@click.option("--email", help="Where the airlock's notices of waiting release requests go (output checkers).")
@pass_ctx
@friendly
def user_add(ctx: Context, username: str, password_stdin: bool, email: str | None) -> None:
    """Create an account; prints the TOTP enrolment once (scan it into an authenticator app)."""
    from hub import accounts

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    enrolment = ctx.registry.transaction(
        lambda session: accounts.add_account(session, username, password, actor=actor(), email=email)
    )
    click.echo(f"user {username} created; set up their authenticator app with (shown once):\n{enrolment.uri}")


@user.command("reset-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input (for scripts).")
@pass_ctx
@friendly
def user_reset_password(ctx: Context, username: str, password_stdin: bool) -> None:
    """Give USERNAME a new password; their authenticator and project memberships stay, their hub sessions and
    workspaces end."""
    from hub import accounts, revocation

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    with ctx.registry.session() as session:
        accounts.reset_password(session, username, password, actor=actor())
    click.echo(f"user {username}: password replaced; project memberships kept")
    done = revocation.revoke_account(ctx.registry, ctx.paths, username, actor=actor(), reason="password reset")
    click.echo(f"access ended: {done.summary()}")


@user.command("reset-mfa")
@click.argument("username")
@pass_ctx
@friendly
def user_reset_mfa(ctx: Context, username: str) -> None:
    """Enrol USERNAME's authenticator afresh (a new TOTP seed, printed once); their old authenticator's codes are
    refused, their password and project memberships stay, their hub sessions and workspaces end."""
    from hub import accounts, revocation

    with ctx.registry.session() as session:
        enrolment = accounts.reset_mfa(session, username, actor=actor())
    click.echo(
        f"user {username}: authenticator reset, project memberships kept; set up their authenticator app with "
        f"(shown once):\n{enrolment.uri}"
    )
    done = revocation.revoke_account(ctx.registry, ctx.paths, username, actor=actor(), reason="authenticator reset")
    click.echo(f"access ended: {done.summary()}")


@user.command("set-email")
@click.argument("username")
@click.argument("address")
@pass_ctx
@friendly
def user_set_email(ctx: Context, username: str, address: str) -> None:
    """Set the e-mail address USERNAME's airlock notices go to ("" clears it: no e-mail)."""
    from hub import accounts

    ctx.registry.transaction(lambda session: accounts.set_email(session, username, address or None, actor=actor()))
    click.echo(f"user {username}: notices {'go to ' + address if address else 'by e-mail off'}")


@user.command("remove")
@click.argument("username")
@pass_ctx
@friendly
def user_remove(ctx: Context, username: str) -> None:
    """Remove an account and end its access at once: project memberships, hub sessions, tokens, workspaces."""
    from hub import accounts, revocation
    from kernel.errors import NotFoundError

    try:
        projects = ctx.registry.transaction(lambda session: accounts.remove_account(session, username, actor=actor()))
        click.echo(f"user {username} removed (from {len(projects)} project(s))")
    except NotFoundError:
        # removed before, but the running hub may still know the name (a revocation cut short): finish it
        if not revocation.revoke_account(ctx.registry, ctx.paths, username, actor=actor(), only_if_known=True).deleted:
            raise
        click.echo(f"no account {username}; its remaining hub access ended")
        return
    done = revocation.revoke_account(ctx.registry, ctx.paths, username, actor=actor())
    click.echo(f"access ended: {done.summary()}")


# ------------------------------------------------------------------------------------------------ sites


@main.group()
def site() -> None:
    """Hospital sites and their exports."""


@site.command("add")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
@pass_ctx
@friendly
def site_add(ctx: Context, folder: Path, quiet: bool) -> None:
    """Register the site exported in FOLDER (with its site.yaml) and index its patients."""
    added, summaries = ctx.registry.transaction(lambda session: add_site(session, folder, actor=actor(),
                                                                          progress=not quiet))  # fmt: skip
    click.echo(f"site {added.id}: {len(summaries)} datasets")
    for s in summaries:
        extra = f", {s.unlinked} unlinked" if s.unlinked else ""
        extra += f", {s.invalid_identifiers} invalid {SCHEMES[s.scheme].plural}" if s.invalid_identifiers else ""
        extra += f", {s.through_linkage} MRNs linked by the linkage table" if s.through_linkage else ""
        click.echo(f"  {s.dataset:<24} {s.linked} records linked ({s.new_patients} new patients{extra})")


@site.command("list")
@pass_ctx
@friendly
def site_list(ctx: Context) -> None:
    """List registered sites."""
    with ctx.registry.session() as session:
        for s in session.scalars(select(Site).order_by(Site.id)):
            click.echo(f"{s.id:<12} {s.clinical_format:<12} {len(s.datasets)} datasets  {s.name}")


# ------------------------------------------------------------------------------------------------ datasets


@main.group()
def dataset() -> None:
    """Datasets held by sites."""


@dataset.command("register")
@click.option("--site", "site_id", required=True)
@click.option("--id", "dataset_id", required=True)
@click.option("--modality", required=True, type=click.Choice(["clinical", "imaging", "genomics"]))
@click.option("--format", "fmt", required=True)
@click.option("--path", "rel_path", required=True, help="Relative to the site folder.")
@click.option("--samples", default="genomics/samples.csv", show_default=True, help="Lab sample manifest (genomics).")
@pass_ctx
@friendly
def dataset_register(
    ctx: Context, site_id: str, dataset_id: str, modality: str, fmt: str, rel_path: str, samples: str
) -> None:
    """Register (or re-verify) one dataset of a registered site."""
    spec = DatasetSpec(id=dataset_id, modality=modality, format=fmt, path=rel_path, samples=samples)
    s = ctx.registry.transaction(lambda session: register_dataset(session, get_site(session, site_id), spec,
                                                                  actor=actor()))  # fmt: skip
    click.echo(f"{s.dataset}: {s.linked} records linked ({s.new_patients} new patients, {s.unlinked} unlinked)")


@dataset.command("list")
@pass_ctx
@friendly
def dataset_list(ctx: Context) -> None:
    """List datasets with their patient counts and checksums."""
    with ctx.registry.session() as session:
        counts = dict(
            session.execute(select(PatientRecord.dataset_id, func.count()).group_by(PatientRecord.dataset_id)).all()
        )
        for d in session.scalars(select(Dataset).order_by(Dataset.id)):
            click.echo(
                f"{d.id:<22} {d.modality:<9} {d.format:<12} {counts.get(d.id, 0):>7} patients "
                f"{d.files:>7} files {d.bytes / 1e6:>9.1f} MB  sha256:{d.checksum[:12]}"
            )


# ------------------------------------------------------------------------------------------------ consent


@main.group()
def consent() -> None:
    """The consent registry."""


@consent.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--site", "site_id", required=True, help="The site the consent records come from.")
@pass_ctx
@friendly
def consent_import(ctx: Context, file: Path, site_id: str) -> None:
    """Import consent events (NDJSON) from a site; re-importing is a no-op."""

    def record(session: Session) -> ImportSummary:
        get_site(session, site_id)
        return import_consent(session, file, source=site_id, actor=actor())

    s = ctx.registry.transaction(record)
    click.echo(
        f"{s.recorded} consent events recorded, {s.already_present} already present, "
        f"{s.unknown_patients} for patients not in the index"
    )


@consent.command("withdraw")
@click.argument("patient")
@click.option("--on", "on", type=click.DateTime(formats=["%Y-%m-%d"]), help="Effective date (default today).")
@click.option("--rematerialise", is_flag=True, help="Rebuild every affected project's view now.")
@click.option("--site", "site_id", help="PATIENT is an MRN at this site.")
@click.option("--quiet", is_flag=True)
@pass_ctx
@friendly
def consent_withdraw(
    ctx: Context, patient: str, on: Any, rematerialise: bool, site_id: str | None, quiet: bool
) -> None:
    """Record that PATIENT (enclave id, national identifier, or MRN with --site) withdrew consent for every
    purpose."""
    from fabric.materialise.view import materialise_project

    def record(session: Session) -> tuple[str, list[str]]:
        p = find_patient(session, patient, site_id)
        withdraw(session, p, on=on.date() if on else None, actor=actor())
        dataset_ids = {r.dataset_id for r in p.records}
        return p.id, [
            proj.name
            for proj in session.scalars(select(Project).order_by(Project.name))
            # a project built from one of the patient's datasets, and still open (a closed one has no view)
            if proj.builds and proj.closed_at is None and dataset_ids & set(project_datasets(session, proj).accepted)
        ]

    patient_id, affected = ctx.registry.transaction(record)
    click.echo(f"withdrawal recorded for {patient_id}; projects affected: {', '.join(affected) or 'none'}")
    if rematerialise:
        for name in affected:
            summary = materialise_project(ctx.registry, ctx.paths, name, actor=actor(), progress=not quiet)
            click.echo(f"  {name}: rebuilt as {summary.build_id} ({summary.patients} patients)")
    elif affected:
        click.echo("run 'enclave project materialise' for each (or pass --rematerialise) to apply it")


@consent.command("show")
@click.argument("patient")
@click.option("--site", "site_id", help="PATIENT is an MRN at this site.")
@pass_ctx
@friendly
def consent_show(ctx: Context, patient: str, site_id: str | None) -> None:
    """Consent history of PATIENT (enclave id, national identifier, or MRN with --site) and which projects it
    covers today."""
    with ctx.registry.session() as session:
        p = find_patient(session, patient, site_id)
        click.echo(f"patient {p.id}")
        for e in p.consent_events:
            mods = f" [{', '.join(e.modifiers)}]" if e.modifiers else ""
            click.echo(f"  {e.date}  {e.action:<8} {', '.join(e.purposes) or '-'}{mods}  (from {e.source})")
        state = state_in_force(p.consent_events, date.today())
        for proj in session.scalars(select(Project).order_by(Project.name)):
            ok = state is not None and state.covers(proj.purpose, commercial=proj.commercial)
            click.echo(f"  project {proj.name} ({proj.purpose}): {'covered' if ok else 'not covered'}")


# ------------------------------------------------------------------------------------------------ audit


@main.group("audit")
def audit_group() -> None:
    """The hash-chained audit log."""


@audit_group.command("show")
@click.option("--project", help="Only events of this project.")
@click.option("--request", "request_id", help="Only events of this release request.")
@click.option("--user", help="Only events by this user.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(min=1))
@pass_ctx
@friendly
def audit_show(ctx: Context, project: str | None, request_id: str | None, user: str | None, limit: int) -> None:
    """The audit log, newest last, filtered by project, request or user."""
    with ctx.registry.session() as session:
        events = audit.events(session, project=project, request=request_id, actor=user, limit=limit)
    for e in events:
        detail = " ".join(f"{k}={v}" for k, v in sorted(e.detail.items()) if k not in ("files",))
        click.echo(f"{e.seq:>6}  {e.at:%Y-%m-%d %H:%M:%S}  {e.actor:<16} {e.action:<24} {e.target}  {detail}")


@audit_group.command("verify")
@pass_ctx
@friendly
def audit_verify(ctx: Context) -> None:
    """Check the audit log's hash chain and its anchors; exit 1 and say where if any entry was edited, deleted or
    reordered, the tail was cut or rewritten, or an anchor line was forged."""
    with ctx.registry.session() as session:
        result = audit.verify_log(session)
    for p in result.problems:
        click.echo(f"anchor line {p.anchor_line}: {p.problem}" if p.anchor_line else f"entry {p.seq}: {p.problem}")
    if result.problems:
        sys.exit(1)
    click.echo("audit log intact" + (f" ({result.note})" if result.note else ""))
