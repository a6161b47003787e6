"""`enclave demo`, `up`, `down`, `status`, `run` and `run-status`, `host` and `workspace`: setting Enclave up on
this machine and running it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from fabric.models import Project
from kernel.errors import EnclaveError
from provisioning import steps
from provisioning.cli.base import Context, actor, friendly, main, pass_ctx

# ------------------------------------------------------------------------------------------------ demo

NL_SITE = click.option(
    "--nl-site/--no-nl-site",
    default=True,
    show_default=True,
    help="Add the Dutch site (umcu: BSNs, Dutch column names, dd-mm-yyyy dates, ';' and decimal comma) with "
    "PATIENTS/SITES patients of its own.",
)


def _extra_sites(nl_site: bool) -> tuple[str, ...]:
    return ("umcu",) if nl_site else ()


@main.command("demo-data")
@click.option("--patients", default=2000, show_default=True, type=click.IntRange(min=1))
@click.option("--sites", default=5, show_default=True, type=click.IntRange(1, 26))
@click.option("--seed", default=42, show_default=True, type=int)
@NL_SITE
@click.option("--out", type=click.Path(path_type=Path), help="Sites folder (default: $ENCLAVE_HOME/sites).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@pass_ctx
@friendly
def demo_data(ctx: Context, patients: int, sites: int, seed: int, nl_site: bool, out: Path | None, quiet: bool) -> None:
    """Generate the synthetic multimodal cardiac cohort (clinical, DICOM, VCF/BAM, consent): PATIENTS across SITES
    UK sites, and a Dutch site unless --no-nl-site."""
    from synthetic_sites import generate_cohort

    summary = generate_cohort(
        out or ctx.paths.sites,
        patients=patients,
        sites=sites,
        seed=seed,
        progress=not quiet,
        extra_sites=_extra_sites(nl_site),
    )
    click.echo(f"generated {summary.patients} patients across {summary.sites} sites in {out or ctx.paths.sites}")


@main.group(invoke_without_command=True)
@click.option("--patients", default=2000, show_default=True, type=click.IntRange(min=1))
@click.option("--sites", default=5, show_default=True, type=click.IntRange(1, 26))
@click.option("--seed", default=42, show_default=True, type=int)
@NL_SITE
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--no-start", is_flag=True, help="Provision only; do not start the hub.")
@click.pass_context
def demo(
    click_ctx: click.Context, patients: int, sites: int, seed: int, nl_site: bool, quiet: bool, no_start: bool
) -> None:
    """Generate the synthetic cohort, provision the demo project and users, build the workspace environment, and
    (as root) start Enclave in the foreground until Ctrl-C."""
    if click_ctx.invoked_subcommand is None:
        _demo(click_ctx.obj, patients, sites, seed, quiet, start=not no_start, extra_sites=_extra_sites(nl_site))


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
def _demo(
    ctx: Context, patients: int, sites: int, seed: int, quiet: bool, *, start: bool, extra_sites: tuple[str, ...] = ()
) -> None:
    if start and os.geteuid() != 0:
        raise EnclaveError(
            "the demo starts workspaces as per-project Unix accounts in bubblewrap, which needs root: run "
            "`sudo make demo` (or `enclave demo --no-start` to provision only)"
        )
    if start:
        _hub_settings(ctx)  # a setting to correct is said before anything is provisioned
    who = actor()
    registry, result = steps.ensure_registry(ctx.paths)
    done = [result]
    cohort = {"patients": patients, "sites": sites, "seed": seed, "extra_sites": extra_sites}
    done.append(steps.ensure_cohort(ctx.paths, **cohort, progress=not quiet))
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
        raise EnclaveError(str(exc)) from exc


def _serve_foreground(ctx: Context) -> None:
    """Start the hub, say where it is, and stop everything on Ctrl-C (or SIGTERM)."""
    import signal

    from hub import lifecycle

    settings = _hub_settings(ctx)
    click.echo("\nStarting JupyterHub, its proxy and the airlock service ...")
    process = lifecycle.start(settings)
    click.echo(f"\nEnclave is running at {settings.public_url}/  (hub log: {ctx.paths.hub / 'jupyterhub.log'})")
    if (ctx.paths.sites / steps.COHORT_MARKER).exists():  # the demo's synthetic cohort: say what to try
        click.echo("Log in as alice (password, then the code), start the cardio-risk workspace, and open")
        click.echo("cardiac_risk.ipynb in it: it reads all three modalities with Dask, logs a model to MLflow and")
        click.echo("writes a table and a figure to /project/outputs; the Airlock menu submits them for review by carol")
        click.echo("and dave.")
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
        raise EnclaveError(f"Enclave is running (hub pid {pid}); `enclave down` first")
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
    lifecycle.check_secrets(settings)  # and a missing secret (OIDC's crypt key, its client secret)
    done = [ensure_workspace_env(ctx.paths.workspace_env), *_apply_host(ctx)]
    done.append(steps.ensure_builds_swept(ctx.registry, ctx.paths, actor=actor()))
    for step in done:
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
@click.option("--slurm", is_flag=True, help="Run it as a SLURM batch job: print the job id and return at once.")
@click.option("--wait", is_flag=True, help="With --slurm: wait for the job to end; exit with papermill's status.")
@pass_ctx
@friendly
def run_notebook(
    ctx: Context,
    notebook: Path,
    project_name: str,
    user_name: str | None,
    parameters: tuple[tuple[str, str], ...],
    slurm: bool,
    wait: bool,
) -> None:
    """Execute NOTEBOOK with papermill inside the project's sandbox, as that project's account, with the
    workspace's limits. NOTEBOOK is read with the invoking user's rights (through sudo too) and must be a Jupyter
    notebook; the executed copy is saved in the user's project home under runs/. With --slurm, the same sandbox runs
    on a SLURM node as a batch job (`enclave run-status JOBID` says how it went)."""
    from provisioning.notebook_runs import invoker, run_in_sandbox

    caller = invoker().name
    if caller is not None and user_name not in (None, caller):
        # through sudo, a person runs in their own home only
        raise EnclaveError("through sudo, `enclave run` runs in your own project home: leave out --user")
    if wait and not slurm:
        raise EnclaveError("--wait goes with --slurm (without it, `enclave run` waits anyway)")
    if slurm:
        from provisioning.notebook_jobs import log_tail, submit_job, wait_for_job

        job = submit_job(ctx.paths, notebook, project_name, user_name or actor(), dict(parameters), actor=actor())
        click.echo(f"submitted notebook job {job.job_id} (SLURM job name enclave-run-{project_name})")
        click.echo(f"executed notebook will be: {job.executed} (in the workspace: {job.inside})")
        if not wait:
            click.echo(f"`enclave run-status {job.job_id}` says how it goes")
            return
        try:
            state = wait_for_job(ctx.paths, job, observer=actor())
        except KeyboardInterrupt:
            click.echo(f"stopped waiting; job {job.job_id} goes on (`enclave run-status {job.job_id}`)", err=True)
            sys.exit(130)
        if state.returncode != 0 and (tail := log_tail(job)):
            click.echo(f"--- the end of job {job.job_id}'s log\n{tail}", err=True)
        click.echo(state.message, err=state.returncode != 0)
        sys.exit(state.returncode if state.returncode is not None else 1)
    result = run_in_sandbox(ctx.paths, notebook, project_name, user_name or actor(), dict(parameters), actor=actor())
    click.echo(f"executed notebook: {result.executed} (in the workspace: {result.inside})")
    sys.exit(result.returncode)


@main.command("run-status")
@click.argument("job_id")
@click.option("--log", "show_log", is_flag=True, help="Also print the end of the job's log (papermill's output).")
@pass_ctx
@friendly
def run_status(ctx: Context, job_id: str, show_log: bool) -> None:
    """How notebook job JOB_ID (`enclave run --slurm`) stands: queued, running, or how it ended (papermill's status,
    killed for memory, stopped at its time limit, cancelled), and where its executed notebook is. Through sudo, your
    own jobs only. Exit 0 while it is queued or running, else papermill's (or the job's) exit status."""
    from provisioning.notebook_jobs import job_state, load_job, log_tail

    job = load_job(ctx.paths, job_id)
    state = job_state(ctx.paths, job, observer=actor())
    click.echo(f"{job.job_id}  project {job.project}  user {job.user}  submitted {job.submitted}  {state.state}")
    click.echo(state.message)
    if show_log and (tail := log_tail(job)):
        click.echo(tail)
    sys.exit((state.returncode or 0) if state.ended else 0)


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
