"""`enclave keys list | rotate`: Enclave's secrets, shown without their values, and the rotation of those that rotate
(provisioning/keys.py owns the rules)."""

from __future__ import annotations

import click

from provisioning import keys
from provisioning.cli.base import Context, actor, friendly, main, pass_ctx


@main.group("keys")
def keys_group() -> None:
    """Enclave's secrets: where each lives, its age, and rotating those that can rotate (never their values)."""


@keys_group.command("list")
@pass_ctx
@friendly
def keys_list(ctx: Context) -> None:
    """Each secret: where it lives (relative to the home), when it was last written, and whether it rotates."""
    click.echo(f"{'SECRET':<18} {'WHERE':<34} {'WRITTEN (UTC)':<17} ROTATES")
    for row in keys.states(ctx.paths, ctx.registry):
        written = f"{row.modified:%Y-%m-%d %H:%M}" if row.modified else "-"
        note = f" ({row.note})" if row.note else ""
        click.echo(f"{row.secret.name:<18} {row.where:<34} {written:<17} {row.secret.rotation.value}{note}")


MESSAGES = {
    "cookie-secret": "the hub's cookie secret replaced; {session_tokens_deleted} browser-session tokens deleted: "
    "everyone signs in again after `enclave up`",
    "admin-token": "enclave-admin's API token replaced; the hub forgot {old_tokens_deleted} old token(s) and is given "
    "the new one at `enclave up`",
    "crypt-key": "a new auth-state key put first ({keys} kept, {dropped} dropped): it encrypts from the hub's next "
    "start",
    "audit-anchor-key": "the audit anchor key replaced: the old one sealed entry {sealed_at_entry} and still verifies "
    "the anchors it signed up to there; new anchors are signed with the new one",
}


@keys_group.command("rotate")
@click.argument("secrets", nargs=-1, required=True, metavar="SECRET...")
@click.option("--drop-old", is_flag=True, help="crypt-key: keep only the new key (old auth state becomes unreadable).")
@pass_ctx
@friendly
def keys_rotate(ctx: Context, secrets: tuple[str, ...], drop_old: bool) -> None:
    """Replace each SECRET (cookie-secret, admin-token, crypt-key, audit-anchor-key) with a new random one, audited
    `keys.rotated`. cookie-secret and admin-token only while Enclave is stopped."""
    for name in secrets:  # all refusals before any change
        keys.check(ctx.paths, name, drop_old=drop_old)
    for name in secrets:
        done = keys.rotate(ctx.registry, ctx.paths, name, actor=actor(), drop_old=drop_old)
        click.echo(MESSAGES[name].format(**done.detail))
