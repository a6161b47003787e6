"""`enclave install`, `backup`, `restore` and `upgrade`: a production host set up without the demo
(provisioning/install.py), an installation copied out, put back on a new home, and its registry migrated with a
backup first (provisioning/backup.py and provisioning/restore.py own the rules)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from kernel.config import Paths
from kernel.errors import EnclaveError
from provisioning.backup import (
    LEFT_OUT,
    BackupReport,
    create_backup,
    current_revision,
    head_revision,
    record_backup,
    summary,
)
from provisioning.cli.base import Context, actor, friendly, main, pass_ctx

ENCRYPT = (
    "the backup holds NHS numbers, pseudonym keys, TOTP seeds and the audit log: keep it root-only, and let the "
    "site's backup system encrypt it at rest"
)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def _print_backup(report: BackupReport) -> None:
    click.echo(
        f"backup written to {report.dest}: {_files(report.files)}, {_size(report.bytes)}; registry ({report.database}) "
        f"at revision {report.revision}"
    )
    for name, part in report.parts.items():
        click.echo(f"  {name:<10} {_files(part.files)}, {_size(part.bytes)}")
    if not report.sites:
        click.echo("  sites      left out (--no-sites): keep the sites' exports elsewhere")
    if report.missing_sites:
        click.echo(f"  WARNING: the export folders of sites {', '.join(report.missing_sites)} are gone: not backed up")
    if report.skipped:
        click.echo(f"  passed over {report.skipped} sockets, fifos or files removed while the backup ran")
    click.echo("  left out: " + "; ".join(LEFT_OUT))


@main.command("backup")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--no-sites", is_flag=True, help="Leave the sites' exports out (kept elsewhere by the sites).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@pass_ctx
@friendly
def backup(ctx: Context, dest: Path, no_sites: bool, quiet: bool) -> None:
    """Write a root-only backup of everything this installation cannot rebuild into the new folder DEST."""
    report = create_backup(ctx.paths, dest, include_sites=not no_sites, progress=not quiet)
    _print_backup(report)
    if not record_backup(ctx.paths, report, actor()):
        click.echo(
            f"not audited: the registry is at revision {report.revision}, older than this Enclave's "
            f"({head_revision(ctx.paths.database_url)}); `enclave upgrade` backs up, migrates and audits both"
        )
    click.echo(ENCRYPT)


@main.command("restore")
@click.argument("backup_dir", metavar="BACKUP", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--home", type=click.Path(path_type=Path), help="The new Enclave home (as `enclave --home`).")
@click.option("--stores-only", is_flag=True, help="Only the projects' stores (as root: after `enclave host apply`).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@pass_ctx
@friendly
def restore(ctx: Context, backup_dir: Path, home: Path | None, stores_only: bool, quiet: bool) -> None:
    """Verify the backup BACKUP against its manifest, then restore it into a new Enclave home."""
    from provisioning.restore import restore_home, restore_stores

    paths = Paths(home.resolve()) if home else ctx.paths
    backup_dir = backup_dir.resolve()
    run = restore_stores if stores_only else restore_home
    report = run(paths, backup_dir, actor=actor(), progress=not quiet)
    click.echo(f"backup verified: every file matches its manifest ({backup_dir})")
    click.echo(f"restored into {paths.home}: {_files(report.files)}, {_size(report.bytes)}")
    if not stores_only:
        before, after = report.backup_revision, report.revision
        moved = f"migrated from revision {before} to {after}" if before != after else f"at revision {after}"
        click.echo(f"  registry   {moved}")
    if report.sites_moved:
        click.echo(f"  sites      {', '.join(report.sites_moved)}: their exports are now in {paths.sites}")
    if report.stores:
        click.echo(f"  stores     {', '.join(report.stores)}")
    for note in report.notes:
        click.echo(f"  note: {note}")
    me = f"enclave --home {paths.home}"
    if report.waiting:
        click.echo(
            f"  waiting    {', '.join(report.waiting)}: not mounted yet; run `{me} host apply`, then "
            f"`{me} restore {backup_dir} --stores-only`"
        )
    if report.audit_problems:
        raise EnclaveError(
            f"restored, but the audit log does not verify ({len(report.audit_problems)} problems): "
            + "; ".join(report.audit_problems[:5])
        )
    click.echo("audit log intact" + (f" ({report.audit_note})" if report.audit_note else ""))
    if not stores_only:
        click.echo(f"next: `{me} project materialise PROJECT` for each project (views are rebuilt), then `{me} up`")


@main.command("upgrade")
@click.option(
    "--backup-to", type=click.Path(path_type=Path), help="Where the backup goes (default: HOME/backups/upgrade-TIME)."
)
@click.option("--no-sites", is_flag=True, help="Leave the sites' exports out of the backup.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@pass_ctx
@friendly
def upgrade(ctx: Context, backup_to: Path | None, no_sites: bool, quiet: bool) -> None:
    """Back up, then migrate the registry to this Enclave's schema (Enclave must be stopped)."""
    from hub import lifecycle
    from kernel import audit
    from kernel.db import Registry
    from kernel.db import upgrade as migrate

    paths, url = ctx.paths, ctx.paths.database_url
    if paths.hub.is_dir() and (pid := lifecycle.read_pid(paths)) is not None:
        raise EnclaveError(f"Enclave is running (hub pid {pid}); `enclave down` first")
    before = current_revision(url)
    if before is None:
        raise EnclaveError(f"no registry in {paths.home}: nothing to upgrade")
    if backup_to is None:
        (paths.home / "backups").mkdir(mode=0o700, exist_ok=True)
        backup_to = paths.home / "backups" / f"upgrade-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    report = create_backup(paths, backup_to, include_sites=not no_sites, progress=not quiet)
    _print_backup(report)
    migrate(url)
    after = current_revision(url)
    registry = Registry.of(paths)
    try:
        detail = {**summary(report), "revision_before": before, "revision": after, "backup": str(report.dest)}
        registry.transaction(
            lambda session: audit.record(session, actor=actor(), action="registry.upgraded", target=str(paths.home),
                                         **detail)
        )  # fmt: skip
    finally:
        registry.close()
    if before == after:
        click.echo(f"registry already at revision {after}, this Enclave's: no migration to run")
    else:
        click.echo(f"registry migrated from revision {before} to {after}")
    click.echo(ENCRYPT)


@main.command("install")
@click.option("--home", "home", type=click.Path(path_type=Path), default=None,
              help="The Enclave home the settings name (default /var/lib/enclave).")  # fmt: skip
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("/"), show_default=True,
              help="Write every file under this folder instead (a staging tree); nothing is enabled then.")  # fmt: skip
@friendly
def install_cmd(home: Path | None, root: Path) -> None:
    """Set up this host for production, without demo data (as root): the settings file /etc/enclave/enclave.env
    (written once, then yours), systemd units that apply the host rules and start Enclave at every boot and restart
    it on failure, log rotation, and an empty registry. Idempotent. Then: edit the settings, add sites, users and
    projects, `systemctl start enclave` (docs/how-to/install.md)."""
    import os
    import sys

    from provisioning.install import DEFAULT_HOME, InstallPlan, install

    if root == Path("/") and os.geteuid() != 0:
        raise EnclaveError("enclave install writes /etc and enables services: run it as root (or give --root)")
    plan = InstallPlan(home=(home or DEFAULT_HOME).absolute(), enclave=Path(sys.executable).with_name("enclave"),
                       root=root.absolute())  # fmt: skip
    for step in install(plan):
        click.echo(f"  {step.step:<10} {step.detail}")
