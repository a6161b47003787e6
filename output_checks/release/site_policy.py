"""One policy resolution for every path that checks a project's outputs: the defaults, the installation's site
policy file (`$ENCLAVE_HOME/airlock/policy.yaml`, or the file `--policy` names), then the project's `airlock:`
overrides. `enclave airlock check`, submit-time checks (CLI and web app) and re-checks all call `resolve_policy`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel.errors import SpecError
from output_checks.policy import Policy, load_policy

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from kernel.config import Paths

SITE_POLICY = "policy.yaml"  # in the airlock's folder: root's, like the rest of the airlock's state


def site_policy_file(paths: Paths, *, strict: bool = True) -> Path | None:
    """The installation's policy file, if it has one. Where it cannot be reached, the release workflow (`strict`)
    stops with an error rather than check under the wrong policy; an advisory `airlock check` by an account that
    may not read the airlock's folder runs under the defaults."""
    candidate = paths.airlock / SITE_POLICY
    try:
        return candidate if candidate.is_file() else None
    except PermissionError:
        if not strict:
            return None
        raise SpecError(f"{candidate}: the site's policy file cannot be read by this account") from None


def project_overrides(session: Session, project: str) -> dict[str, Any]:
    """The `airlock:` section of the project's spec, as policy keys (unset keys are None and ignored)."""
    from fabric.projects import get_project, project_spec

    spec = project_spec(get_project(session, project))
    return spec.airlock.model_dump() if getattr(spec, "airlock", None) else {}


def resolve_policy(
    paths: Paths | None, overrides: dict[str, Any] | None = None, explicit: Path | None = None, *, strict: bool = True
) -> Policy:
    """The policy a check runs under: an explicit policy file replaces the site's; the project's overrides go last."""
    layer = explicit
    if layer is None and paths is not None:
        layer = site_policy_file(paths, strict=strict)
    return load_policy(layer, overrides)
