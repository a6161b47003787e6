"""The `enclave` command line: thin commands over fabric/ and provisioning/steps.py. Errors the user can act on
print one line and exit 1; nothing here prints an identifier or a secret."""

from __future__ import annotations

import functools
import getpass
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from sqlalchemy import func, select

from fabric import audit
from fabric.catalogue import DatasetSpec, add_site, find_patient, get_site, register_dataset
from fabric.config import Paths
from fabric.consent import import_consent, state_in_force, withdraw
from fabric.db import Registry
from fabric.errors import FabricError
from fabric.models import Dataset, PatientRecord, Project, Site
from fabric.projects import ProjectSpec, add_member, create_project, get_project
from provisioning import steps


def actor() -> str:
    """Who is acting: the invoking user (through sudo too)."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


class Context:
    def __init__(self, home: Path | None) -> None:
        self.paths = Paths(home.resolve()) if home else Paths.from_env()
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self.paths.home.mkdir(parents=True, exist_ok=True)
            self._registry = Registry(self.paths.database_url)
        return self._registry


def friendly(fn: Callable) -> Callable:
    """Turn FabricError into one line on stderr and exit 1; other failures into a short notice (the traceback
    only with ENCLAVE_DEBUG=1, since library messages may quote file contents)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FabricError as exc:
            click.echo(f"enclave: error: {exc}", err=True)
            sys.exit(1)
        except ValidationError as exc:
            click.echo(f"enclave: error: {exc.errors()[0]['msg']}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("enclave: interrupted; nothing was published", err=True)
            sys.exit(130)
        except Exception as exc:
            if os.environ.get("ENCLAVE_DEBUG"):
                raise
            click.echo(
                f"enclave: internal error ({type(exc).__name__}); rerun with ENCLAVE_DEBUG=1 for details", err=True
            )
            sys.exit(3)

    return wrapper


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(path_type=Path), help="Enclave state folder (default: $ENCLAVE_HOME).")
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """Enclave: a trusted research environment for multimodal cardiovascular research."""
    ctx.obj = Context(home)


# ------------------------------------------------------------------------------------------------ demo


@main.command("demo-data")
@click.option("--patients", default=2000, show_default=True, type=click.IntRange(min=1))
@click.option("--sites", default=5, show_default=True, type=click.IntRange(1, 26))
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--out", type=click.Path(path_type=Path), help="Sites folder (default: $ENCLAVE_HOME/sites).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@pass_ctx
@friendly
def demo_data(ctx: Context, patients: int, sites: int, seed: int, out: Path | None, quiet: bool) -> None:
    """Generate the synthetic multimodal cardiac cohort (clinical, DICOM, VCF/BAM, consent) for SITES sites."""
    from fabric.synthetic import generate_cohort

    summary = generate_cohort(out or ctx.paths.sites, patients=patients, sites=sites, seed=seed, progress=not quiet)
    click.echo(f"generated {summary.patients} patients across {summary.sites} sites in {out or ctx.paths.sites}")


@main.group(invoke_without_command=True)
@click.option("--patients", default=2000, show_default=True, type=click.IntRange(min=1))
@click.option("--sites", default=5, show_default=True, type=click.IntRange(1, 26))
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--no-start", is_flag=True, help="Provision only; do not start the hub.")
@click.pass_context
def demo(click_ctx: click.Context, patients: int, sites: int, seed: int, quiet: bool, no_start: bool) -> None:
    """Generate the synthetic cohort, provision the demo project and users, build the workspace environment, and
    (as root) start Enclave in the foreground until Ctrl-C."""
    if click_ctx.invoked_subcommand is None:
        _demo(click_ctx.obj, patients, sites, seed, quiet, start=not no_start)


@demo.command("otp")
@click.argument("user")
@pass_ctx
@friendly
def demo_otp(ctx: Context, user: str) -> None:
    """Print USER's current TOTP code (for the demo and tests; a real user reads it from their app)."""
    from hub import accounts

    with ctx.registry.session() as session:
        click.echo(accounts.current_code(session, user))


@friendly
def _demo(ctx: Context, patients: int, sites: int, seed: int, quiet: bool, *, start: bool) -> None:
    if start and os.geteuid() != 0:
        raise FabricError(
            "the demo starts workspaces as per-project Unix accounts in bubblewrap, which needs root: run "
            "`sudo make demo` (or `enclave demo --no-start` to provision only)"
        )
    if start:
        _hub_settings(ctx)  # a setting to correct is said before anything is provisioned
    who = actor()
    registry, result = steps.ensure_registry(ctx.paths)
    done = [result]
    done.append(steps.ensure_cohort(ctx.paths, patients=patients, sites=sites, seed=seed, progress=not quiet))
    done.append(steps.ensure_sites(registry, ctx.paths, actor=who, progress=not quiet))
    done.append(steps.ensure_consent(registry, ctx.paths, actor=who))
    project, result = steps.ensure_project(registry, steps.DEMO_SPEC, actor=who)
    done.append(result)
    summary, result = steps.ensure_materialised(registry, ctx.paths, project, actor=who, progress=not quiet)
    done.append(result)
    users, result = steps.ensure_demo_users(registry, ctx.paths, steps.demo_users(), actor=who)
    done.append(result)
    if start:
        from provisioning.workspace_env import ensure_workspace_env

        done.append(ensure_workspace_env(ctx.paths.workspace_env))
        done += _apply_host(ctx)
        done.append(steps.ensure_example_notebooks(ctx.paths, project, steps.demo_researchers()))
    click.echo(f"\nEnclave demo ready in {ctx.paths.home}")
    for step in done:
        click.echo(f"  {step.step:<12} {step.detail}")
    click.echo(f"\nProject view: {ctx.paths.project_data(project)} (build {summary.build_id})")
    click.echo("\nDemo users: alice and bob are researchers, carol and dave output checkers. Sign in with the")
    click.echo("password, then the 6-digit code from an authenticator app set up with the otpauth URI")
    click.echo("(`enclave demo otp USER` prints a current code, for testing):")
    for user, (password, uri) in users.items():
        click.echo(f"  {user:<6} {password}  {uri or '(enrolled earlier)'}")
    if start:
        _serve_foreground(ctx)


def _apply_host(ctx: Context) -> list[steps.StepResult]:
    """Every project's account and folders and the egress rule (table: $ENCLAVE_EGRESS_TABLE, else Enclave's)."""
    from provisioning.host import EGRESS_TABLE, ensure_host

    return ensure_host(ctx.paths, _researchers(ctx), egress_table=os.environ.get("ENCLAVE_EGRESS_TABLE", EGRESS_TABLE))


def _researchers(ctx: Context) -> dict[str, list[str]]:
    with ctx.registry.session() as session:
        return {
            p.name: [m.username for m in p.members if m.role == "researcher"]
            for p in session.scalars(select(Project).order_by(Project.name))
        }


def _hub_settings(ctx: Context) -> Any:
    """The hub's settings from the environment, for this command's Enclave home (`--home` wins)."""
    from hub.config import HubSettings

    try:
        return HubSettings.from_env({**os.environ, "ENCLAVE_HOME": str(ctx.paths.home)})
    except ValueError as exc:  # a setting the admin must correct, said in full
        raise FabricError(str(exc)) from exc


def _serve_foreground(ctx: Context) -> None:
    """Start the hub, say where it is, and stop everything on Ctrl-C (or SIGTERM)."""
    import signal

    from hub import lifecycle

    settings = _hub_settings(ctx)
    click.echo("\nStarting JupyterHub, its proxy and the airlock service ...")
    process = lifecycle.start(settings)
    click.echo(f"\nEnclave is running at {settings.public_url}/  (hub log: {ctx.paths.hub / 'jupyterhub.log'})")
    click.echo("Log in as alice (password, then the code), start the cardio-risk workspace, and open")
    click.echo("cardiac_risk.ipynb in it: it reads all three modalities with Dask, logs a model to MLflow and writes")
    click.echo("a table and a figure to /project/outputs; the Airlock menu submits them for review by carol and dave.")
    click.echo("Press Ctrl-C (or run `enclave down`) to stop everything.")

    def _terminate(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        process.wait()
        click.echo(f"the hub exited ({process.returncode}); see {ctx.paths.hub / 'jupyterhub.log'}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("\nStopping workspaces, the airlock service, the proxy and the hub ...")
        lifecycle.stop_process(process.pid)
        lifecycle.remove_runtime(ctx.paths)
        click.echo("Enclave stopped.")


# ------------------------------------------------------------------------------------------------ users


@main.group()
def user() -> None:
    """Local accounts: password (argon2id) and TOTP."""


@user.command("add")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@pass_ctx
@friendly
def user_add(ctx: Context, username: str, password_stdin: bool) -> None:
    """Create an account; prints the TOTP enrolment once (scan it into an authenticator app)."""
    from hub import accounts

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with ctx.registry.session() as session:
        enrolment = accounts.add_account(session, username, password, actor=actor())
    click.echo(f"user {username} created; set up their authenticator app with (shown once):\n{enrolment.uri}")


@user.command("remove")
@click.argument("username")
@pass_ctx
@friendly
def user_remove(ctx: Context, username: str) -> None:
    """Remove an account and end its access at once: project memberships, hub sessions, tokens, workspaces."""
    from fabric.errors import NotFoundError
    from hub import accounts, revocation

    try:
        with ctx.registry.session() as session:
            projects = accounts.remove_account(session, username, actor=actor())
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
    with ctx.registry.session() as session:
        added, summaries = add_site(session, folder, actor=actor(), progress=not quiet)
        click.echo(f"site {added.id}: {len(summaries)} datasets")
        for s in summaries:
            extra = f", {s.unlinked} unlinked" if s.unlinked else ""
            extra += f", {s.invalid_nhs_numbers} invalid NHS numbers" if s.invalid_nhs_numbers else ""
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
    with ctx.registry.session() as session:
        s = register_dataset(session, get_site(session, site_id), spec, actor=actor())
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
    with ctx.registry.session() as session:
        get_site(session, site_id)
        s = import_consent(session, file, source=site_id, actor=actor())
    click.echo(
        f"{s.recorded} consent events recorded, {s.already_present} already present, "
        f"{s.unknown_patients} for patients not in the index"
    )


@consent.command("withdraw")
@click.argument("patient")
@click.option("--on", "on", type=click.DateTime(formats=["%Y-%m-%d"]), help="Effective date (default today).")
@click.option("--rematerialise", is_flag=True, help="Rebuild every affected project's view now.")
@click.option("--quiet", is_flag=True)
@pass_ctx
@friendly
def consent_withdraw(ctx: Context, patient: str, on: Any, rematerialise: bool, quiet: bool) -> None:
    """Record that PATIENT (enclave id or NHS number) withdrew consent for every purpose."""
    from fabric.materialise.view import materialise_project

    with ctx.registry.session() as session:
        p = find_patient(session, patient)
        patient_id = p.id
        withdraw(session, p, on=on.date() if on else None, actor=actor())
        dataset_ids = {r.dataset_id for r in p.records}
        affected = [
            proj.name
            for proj in session.scalars(select(Project).order_by(Project.name))
            if proj.builds and (proj.spec["datasets"] == ["*"] or dataset_ids & set(proj.spec["datasets"]))
        ]
    click.echo(f"withdrawal recorded for {patient_id}; projects affected: {', '.join(affected) or 'none'}")
    if rematerialise:
        for name in affected:
            summary = materialise_project(ctx.registry, ctx.paths, name, actor=actor(), progress=not quiet)
            click.echo(f"  {name}: rebuilt as {summary.build_id} ({summary.patients} patients)")
    elif affected:
        click.echo("run 'enclave project materialise' for each (or pass --rematerialise) to apply it")


@consent.command("show")
@click.argument("patient")
@pass_ctx
@friendly
def consent_show(ctx: Context, patient: str) -> None:
    """Consent history of PATIENT and which projects it covers today."""
    with ctx.registry.session() as session:
        p = find_patient(session, patient)
        click.echo(f"patient {p.id}")
        for e in p.consent_events:
            mods = f" [{', '.join(e.modifiers)}]" if e.modifiers else ""
            click.echo(f"  {e.date}  {e.action:<8} {', '.join(e.purposes) or '-'}{mods}  (from {e.source})")
        state = state_in_force(p.consent_events, date.today())
        for proj in session.scalars(select(Project).order_by(Project.name)):
            ok = state is not None and state.covers(proj.purpose, commercial=proj.commercial)
            click.echo(f"  project {proj.name} ({proj.purpose}): {'covered' if ok else 'not covered'}")


# ------------------------------------------------------------------------------------------------ projects


@main.group()
def project() -> None:
    """Research projects."""


@project.command("create")
@click.option("-f", "spec_file", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Update an existing project to match the spec.")
@pass_ctx
@friendly
def project_create(ctx: Context, spec_file: Path, replace: bool) -> None:
    """Create a project from a YAML spec (see docs/reference/project-spec.md)."""
    spec = ProjectSpec.load(spec_file)
    with ctx.registry.session() as session:
        create_project(session, spec, actor=actor(), replace=replace)
    click.echo(
        f"project {spec.name} {'updated' if replace else 'created'}; next: enclave project materialise {spec.name}"
    )


@project.command("list")
@pass_ctx
@friendly
def project_list(ctx: Context) -> None:
    """List projects with their current build."""
    with ctx.registry.session() as session:
        for p in session.scalars(select(Project).order_by(Project.name)):
            build = p.builds[-1] if p.builds else None
            current = f"{build.id} ({build.patients} patients)" if build else "not materialised"
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
        for m in p.members:
            click.echo(f"  member {m.username} ({m.role})")
        click.echo(f"  datasets {', '.join(p.spec['datasets'])}")
        for b in p.builds:
            click.echo(f"  build {b.id}: {b.patients} patients, {b.files} files, manifest {b.manifest_sha256[:12]}")
        click.echo(f"  view {ctx.paths.project_data(name)}")


@project.command("add-member")
@click.argument("name")
@click.argument("user")
@click.argument("role", type=click.Choice(["researcher", "output_checker"]))
@pass_ctx
@friendly
def project_add_member(ctx: Context, name: str, user: str, role: str) -> None:
    """Add USER to project NAME with ROLE."""
    with ctx.registry.session() as session:
        add_member(session, name, user, role, actor=actor())
    click.echo(f"{user} is a {role} on {name}")
    from hub import revocation  # the running hub's groups follow at once

    click.echo(f"hub: {revocation.apply_membership(ctx.registry, ctx.paths, user, actor=actor()).summary()}")


@project.command("materialise")
@click.argument("name")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: all cores).")
@pass_ctx
@friendly
def project_materialise(ctx: Context, name: str, quiet: bool, workers: int | None) -> None:
    """Build and atomically publish project NAME's consented, pseudonymised view."""
    from fabric.materialise.view import materialise_project

    s = materialise_project(ctx.registry, ctx.paths, name, actor=actor(), progress=not quiet, workers=workers)
    click.echo(
        f"{name}: build {s.build_id} published: {s.patients} patients ({s.excluded} excluded by consent), "
        f"{s.files} files, {s.bytes / 1e6:.1f} MB; modalities {s.modalities}"
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
        raise FabricError(f"project {name} has no published view (run 'enclave project materialise {name}')")
    problems = verify_view(view.resolve())
    for p in problems:
        click.echo(p)
    if problems:
        sys.exit(1)
    click.echo(f"{name}: every file matches the manifest")


# ------------------------------------------------------------------------------------------------ host


@main.group()
def host() -> None:
    """This machine: project Unix accounts, folder owners and modes, egress rules (as root)."""


@host.command("apply")
@click.option(
    "--egress-table",
    envvar="ENCLAVE_EGRESS_TABLE",
    default="enclave_egress",
    show_default=True,
    help="The nftables table (inet) Enclave owns and replaces; another name keeps a second installation apart "
    "(also $ENCLAVE_EGRESS_TABLE, which `enclave up` and `enclave demo` use too).",
)
@pass_ctx
@friendly
def host_apply(ctx: Context, egress_table: str) -> None:
    """Ensure every project's Unix account and folders, and the nftables rule denying them egress."""
    from provisioning.host import ensure_host

    for step in ensure_host(ctx.paths, _researchers(ctx), egress_table=egress_table):
        click.echo(f"  {step.step:<12} {step.detail}")


@host.command("release")
@pass_ctx
@friendly
def host_release(ctx: Context) -> None:
    """Unmount every project's file system and detach its loop device, as a reboot does (before removing or moving
    the Enclave home); `host apply` or `up` mounts them again. Enclave must be stopped."""
    from hub import lifecycle
    from provisioning.storage import release_all_under

    if (pid := lifecycle.read_pid(ctx.paths)) is not None:
        raise FabricError(f"Enclave is running (hub pid {pid}); `enclave down` first")
    released = release_all_under(ctx.paths.home) if ctx.paths.home.exists() else []
    click.echo(f"  {'storage':<12} {len(released)} mounts and loop devices released")


# ------------------------------------------------------------------------------------------------ hub


@main.command()
@click.option("--foreground", is_flag=True, help="Stay attached; Ctrl-C stops everything.")
@pass_ctx
@friendly
def up(ctx: Context, foreground: bool) -> None:
    """Start Enclave: the host rules, JupyterHub, its proxy and the airlock service (as root)."""
    from hub import lifecycle
    from provisioning.workspace_env import ensure_workspace_env

    settings = _hub_settings(ctx)  # a setting to correct is said before the host is touched
    for step in [ensure_workspace_env(ctx.paths.workspace_env), *_apply_host(ctx)]:
        click.echo(f"  {step.step:<12} {step.detail}")
    if foreground:
        _serve_foreground(ctx)
        return
    process = lifecycle.start(settings)
    click.echo(f"Enclave is running at {settings.public_url}/ (hub pid {process.pid}); `enclave down` stops it.")


@main.command()
@pass_ctx
@friendly
def down(ctx: Context) -> None:
    """Stop Enclave: every workspace, the airlock service, the proxy and the hub."""
    from hub import lifecycle

    pid = lifecycle.stop(ctx.paths)
    click.echo("Enclave stopped." if pid else "Enclave was not running.")


@main.command()
@pass_ctx
@friendly
def status(ctx: Context) -> None:
    """Whether Enclave runs, where, and which workspaces are open. Exit 0 when the hub answers, 3 when it is down."""
    from hub import lifecycle

    settings = _hub_settings(ctx)
    state = lifecycle.status(settings, _researchers(ctx))
    if not state.running:
        click.echo("Enclave is not running (`enclave up` starts it).")
        sys.exit(3)
    click.echo(f"hub        pid {state.pid}, {'answering' if state.healthy else 'NOT answering'} at {state.url}/")
    click.echo(f"workspaces {len(state.workspaces)} open")
    for project_name, user_name in state.workspaces:
        click.echo(f"  {project_name:<24} {user_name}")
    sys.exit(0 if state.healthy else 1)


@main.command("run")
@click.argument("notebook", type=click.Path(path_type=Path))  # opened with the caller's rights, not stat-ed as root
@click.option("--project", "project_name", required=True, help="The project whose sandbox runs it.")
@click.option("--user", "user_name", help="Whose workspace home to run in (default: the invoking user).")
@click.option("-p", "--parameter", "parameters", multiple=True, nargs=2, help="papermill parameter NAME VALUE.")
@pass_ctx
@friendly
def run_notebook(
    ctx: Context, notebook: Path, project_name: str, user_name: str | None, parameters: tuple[tuple[str, str], ...]
) -> None:
    """Execute NOTEBOOK with papermill inside the project's sandbox, as that project's account, with the
    workspace's limits. NOTEBOOK is read with the invoking user's rights (through sudo too) and must be a Jupyter
    notebook; the executed copy is saved in the user's project home under runs/."""
    from provisioning.notebook_runs import invoker, run_in_sandbox

    caller = invoker().name
    if caller is not None and user_name not in (None, caller):
        # through sudo, a person runs in their own home only
        raise FabricError("through sudo, `enclave run` runs in your own project home: leave out --user")
    result = run_in_sandbox(ctx.paths, notebook, project_name, user_name or actor(), dict(parameters))
    click.echo(f"executed notebook: {result.executed} (in the workspace: {result.inside})")
    sys.exit(result.returncode)


# ------------------------------------------------------------------------------------------------ workspace


@main.group()
def workspace() -> None:
    """The workspace environment (images/): what researchers' JupyterLab runs."""


@workspace.command("build")
@click.option(
    "--dest",
    type=click.Path(path_type=Path),
    help="Where to build it (default: $ENCLAVE_WORKSPACE_ENV, else workspace-env in the Enclave home).",
)
@click.option("--python", default="/usr/bin/python3", show_default=True, help="The Python 3.11 to build it on.")
@click.option("--force", is_flag=True, help="Rebuild even when it is up to date.")
@pass_ctx
@friendly
def workspace_build(ctx: Context, dest: Path | None, python: str, force: bool) -> None:
    """Build the workspace environment from images/, unless it is up to date."""
    from provisioning.workspace_env import ensure_workspace_env

    step = ensure_workspace_env(dest or ctx.paths.workspace_env, python=python, force=force)
    click.echo(f"  {step.step:<12} {step.detail}")


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


from output_checks.cli import airlock  # noqa: E402  (the airlock's commands live with the airlock)

main.add_command(airlock)


if __name__ == "__main__":
    main()
