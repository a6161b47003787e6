"""`enclave airlock ...`: the airlock's command line, thin over `engine.check_paths`.

`check` prints the contract's JSON with --json (and nothing else on stdout) or a readable summary; it exits 0 when
every file passes, 1 when any is review or block, and 2 for a usage error (bad option, missing path, bad policy
file, unknown project)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from fabric.errors import FabricError
from output_checks.verdicts import Report, Verdict

SYMBOL = {Verdict.PASS: "pass  ", Verdict.REVIEW: "REVIEW", Verdict.BLOCK: "BLOCK "}


@click.group("airlock")
def airlock() -> None:
    """The airlock: check outputs before release."""


def _project_policy(home: Path | None, project: str):
    from fabric.config import Paths
    from fabric.db import Registry
    from fabric.projects import get_project, project_spec
    from output_checks.screening.known import build_known_identifiers

    paths = Paths(home.resolve()) if home else Paths.from_env()
    if not Path(paths.home).exists():
        raise click.UsageError(f"no Enclave home at {paths.home} (set ENCLAVE_HOME or --home)")
    registry = Registry(paths.database_url)
    try:
        with registry.session() as session:
            spec = project_spec(get_project(session, project))
        overrides = spec.airlock.model_dump() if getattr(spec, "airlock", None) else {}
        known = build_known_identifiers(registry, paths, project)
    finally:
        registry.close()
    return overrides, known


@airlock.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (the documented contract).")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Policy YAML over the defaults (docs/reference/policy.md).")  # fmt: skip
@click.option("--project", help="Also screen for this project's known identifiers and pseudonyms, under its policy.")
@click.option("--workers", type=click.IntRange(min=1), help="Processes to use (default: every core).")
@click.pass_context
def check(
    ctx: click.Context, paths: tuple[Path, ...], as_json: bool, policy_file: Path | None, project: str | None,
    workers: int | None,
) -> None:  # fmt: skip
    """Check files and folders (walked recursively) for identifiers, individual-level data, raw data and small
    counts. Exit 0: every file passes; 1: some need review or are blocked; 2: usage error."""
    from output_checks.engine import check_paths
    from output_checks.policy import load_policy

    home = getattr(ctx.find_root().obj, "paths", None)
    try:
        overrides, known = ({}, None)
        if project:
            overrides, known = _project_policy(home.home if home else None, project)
        policy = load_policy(policy_file, overrides)
    except FabricError as exc:
        raise click.UsageError(str(exc)) from None
    report = check_paths(list(paths), policy, known, workers=workers, progress=not as_json and sys.stderr.isatty())
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
