"""`enclave consortium ...`: the consortium's certificate authority on the command line, thin over federation/pki.py.
Every change is audited in the Enclave home's registry by serials and names; no command prints a key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from federation import pki
from kernel import audit
from kernel.errors import EnclaveError
from kernel.secret_files import write_secret
from provisioning.cli.base import Context, actor, friendly, pass_ctx

FOLDER_ENV = "ENCLAVE_CONSORTIUM_AUTHORITY"


def folder_option(fn: Any) -> Any:
    return click.option(
        "--folder",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=FOLDER_ENV,
        help=f"The authority's folder (default: ${FOLDER_ENV}, else federation/authority in the Enclave home).",
    )(fn)


def _folder(ctx: Context, folder: Path | None) -> Path:
    return folder if folder is not None else ctx.paths.federation / "authority"


def _audit(ctx: Context, action: str, target: str, **detail: Any) -> None:
    ctx.registry.transaction(
        lambda session: audit.record(session, actor=actor(), action=action, target=target, **detail)
    )


def _issued(creds: pki.NodeCredentials, out: Path) -> str:
    who = creds.identity
    return (
        f"{who.role} {who.name}: certificate {who.serial}, valid until {creds.not_after:%Y-%m-%d %H:%M} UTC; "
        f"key, certificate, bundle and CRL in {out}"
    )


@click.group("consortium")
def consortium() -> None:
    """The consortium's certificate authority: node certificates for mutual TLS between sites and the coordinator,
    their revocation and rotation (docs/reference/federation-pki.md)."""


@consortium.command("init")
@folder_option
@click.option("--name", "name", required=True, help="The consortium's name (in its certificates).")
@click.option("--days", type=click.IntRange(min=1), default=pki.AUTHORITY_DAYS, show_default=True,
              help="How long the authority's certificate is valid.")  # fmt: skip
@click.option("--crl-days", type=click.IntRange(min=1), default=pki.CRL_DAYS, show_default=True,
              help="How long each CRL is valid (then nodes refuse every peer until given a new one).")  # fmt: skip
@pass_ctx
@friendly
def init(ctx: Context, folder: Path | None, name: str, days: int, crl_days: int) -> None:
    """Make the consortium's authority: its key (0600) and certificate, in a 0700 folder."""
    where = _folder(ctx, folder)
    authority = pki.init_authority(where, name, days=days, crl_days=crl_days)
    first = authority.authorities()[0]
    _audit(ctx, "consortium.initialised", f"consortium:{name}", generation=first.generation, serial=first.serial,
           not_after=first.not_after)  # fmt: skip
    click.echo(f"authority of {name} made in {where} (certificate {first.serial}, valid until {first.not_after})")


@consortium.command("issue")
@folder_option
@click.argument("name")
@click.option("--role", type=click.Choice(pki.ROLES), required=True, help="What the node is.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The node's credentials folder (made 0700; the key 0600).")  # fmt: skip
@click.option("--days", type=click.IntRange(min=1), default=pki.NODE_DAYS, show_default=True)
@click.option("--host", "hosts", multiple=True, help="A DNS name or IP address the node is reached at (repeat).")
@pass_ctx
@friendly
def issue(
    ctx: Context, folder: Path | None, name: str, role: str, out: Path, days: int, hosts: tuple[str, ...]
) -> None:
    """Issue node NAME a key and certificate, written to --out with the trust bundle and the current CRL."""
    authority = pki.Authority.load(_folder(ctx, folder))
    pki.private_folder(out)  # a linked or foreign --out is refused before a certificate is issued for it
    creds = authority.issue(name, role, days=days, hosts=hosts)
    pki.write_node_credentials(out, creds)
    _audit(ctx, "consortium.issued", f"consortium-node:{name}", role=role, serial=creds.identity.serial,
           generation=authority.generation, not_after=creds.not_after.isoformat(), hosts=len(hosts))  # fmt: skip
    click.echo(f"issued {_issued(creds, out)}")


@consortium.command("revoke")
@folder_option
@click.argument("name_or_serial", metavar="NAME|SERIAL")
@pass_ctx
@friendly
def revoke(ctx: Context, folder: Path | None, name_or_serial: str) -> None:
    """Revoke every current certificate of node NAME (or the one certificate SERIAL). Nodes refuse it once they hold
    the new CRL (`enclave consortium crl`)."""
    authority = pki.Authority.load(_folder(ctx, folder))
    revoked = authority.revoke(name_or_serial)

    def record(session) -> None:
        for row in revoked:
            audit.record(session, actor=actor(), action="consortium.revoked", target=f"consortium-node:{row.name}",
                         serial=row.serial, role=row.role)  # fmt: skip

    ctx.registry.transaction(record)
    for row in revoked:
        click.echo(f"revoked {row.role} {row.name}: certificate {row.serial}")
    click.echo("hand every node the new CRL: enclave consortium crl --out FILE")


@consortium.command("crl")
@folder_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Where to write it.")
@click.option("--days", type=click.IntRange(min=1), help="Valid for this many days (default: the authority's).")
@pass_ctx
@friendly
def crl(ctx: Context, folder: Path | None, out: Path, days: int | None) -> None:
    """Write the current CRL (one per authority key in the bundle) to --out, for the nodes' `crl.pem`."""
    authority = pki.Authority.load(_folder(ctx, folder))
    write_secret(out, authority.crl_pem(days=days))
    revoked = sum(1 for row in authority.certificates() if row.revoked_at)
    click.echo(f"CRL of {revoked} revoked certificate(s) written to {out}")


@consortium.command("bundle")
@folder_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Where to write it.")
@pass_ctx
@friendly
def bundle(ctx: Context, folder: Path | None, out: Path) -> None:
    """Write the trust bundle (the authority's certificates nodes trust) to --out, for the nodes' `bundle.pem`."""
    authority = pki.Authority.load(_folder(ctx, folder))
    write_secret(out, authority.bundle_pem())
    click.echo(f"bundle of authority key(s) {authority.trusted_generations()} written to {out}")


@consortium.command("rotate")
@folder_option
@click.argument("name")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The node's credentials folder (its files replaced whole).")  # fmt: skip
@click.option("--days", type=click.IntRange(min=1), default=pki.NODE_DAYS, show_default=True)
@pass_ctx
@friendly
def rotate(ctx: Context, folder: Path | None, name: str, out: Path, days: int) -> None:
    """Give node NAME a fresh key and certificate (same role and hosts). The old certificate stays valid until it is
    revoked (`enclave consortium revoke SERIAL`) or expires."""
    authority = pki.Authority.load(_folder(ctx, folder))
    old = [row.serial for row in authority.certificates() if row.name == name and row.status(_now()) == "valid"]
    pki.private_folder(out)
    creds = authority.rotate(name, days=days)
    pki.write_node_credentials(out, creds)
    _audit(ctx, "consortium.rotated", f"consortium-node:{name}", role=creds.identity.role,
           serial=creds.identity.serial, previous=old, generation=authority.generation,
           not_after=creds.not_after.isoformat())  # fmt: skip
    click.echo(f"rotated {_issued(creds, out)}")
    if old:
        click.echo(f"still valid until revoked: {', '.join(old)}")


@consortium.command("rotate-authority")
@folder_option
@click.option("--days", type=click.IntRange(min=1), default=pki.AUTHORITY_DAYS, show_default=True)
@pass_ctx
@friendly
def rotate_authority(ctx: Context, folder: Path | None, days: int) -> None:
    """Make a new authority key and certificate that signs from now on; the old one stays in the bundle until every
    certificate it signed is revoked or expired."""
    authority = pki.Authority.load(_folder(ctx, folder))
    new = authority.rotate_authority(days=days)
    _audit(ctx, "consortium.authority-rotated", f"consortium:{authority.consortium}", generation=new.generation,
           serial=new.serial, not_after=new.not_after)  # fmt: skip
    click.echo(
        f"authority key {new.generation} made (certificate {new.serial}); next: give every node the new bundle "
        "(enclave consortium bundle), rotate each node, revoke the old certificates"
    )


@consortium.command("list")
@folder_option
@pass_ctx
@friendly
def list_certificates(ctx: Context, folder: Path | None) -> None:
    """The authority's keys and every certificate it issued, with their state (valid, expired, revoked)."""
    authority = pki.Authority.load(_folder(ctx, folder))
    now = _now()
    trusted = authority.trusted_generations(now=now)
    click.echo(f"consortium {authority.consortium}")
    for row in authority.authorities():
        state = (
            "current"
            if row.generation == authority.generation
            else "in bundle"
            if row.generation in trusted
            else "retired"
        )
        click.echo(f"  authority key {row.generation}: certificate {row.serial}, until {row.not_after} ({state})")
    click.echo(f"{'SERIAL':<42} {'ROLE':<12} {'NAME':<24} {'KEY':<4} {'NOT AFTER':<26} STATE")
    for cert in authority.certificates():
        click.echo(f"{cert.serial:<42} {cert.role:<12} {cert.name:<24} {cert.generation:<4} {cert.not_after:<26} "
                   f"{cert.status(now)}")  # fmt: skip


@consortium.command("linkage-key")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@pass_ctx
@friendly
def new_linkage_key(ctx: Context, out: Path) -> None:
    """A new linkage key for one federated project's count-once tasks (0600): hand it to every site's admin out of
    band, never to the coordinator. Prints its fingerprint, which each site's admin checks after installing it."""
    from federation.linkage import LinkageKey

    if out.exists() or out.is_symlink():
        raise EnclaveError(f"{out} exists: a linkage key is never overwritten (every site would need the new one)")
    key = LinkageKey.generate()
    key.write(out)
    _audit(ctx, "consortium.linkage_key_made", "linkage-key", fingerprint=key.fingerprint())
    click.echo(f"linkage key written to {out} (fingerprint {key.fingerprint()})")


def _now() -> datetime:
    return datetime.now(UTC)
