"""The automated checks on a request's snapshots: the checks engine over the immutable copies, under the policy
`site_policy.resolve_policy` gives (defaults, the site's file, the project's overrides) and with the project's known
identifiers, run in the checker sandbox (output_checks/sandbox)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from output_checks.release import workflow
from output_checks.release.models import ReleaseRequest
from output_checks.release.site_policy import project_overrides, resolve_policy
from output_checks.sandbox.runner import SandboxFile, check_files_sandboxed

if TYPE_CHECKING:
    from output_checks.release.service import Airlock


def run_checks_on_snapshots(airlock: Airlock, request_id: str) -> dict[int, dict[str, Any]]:
    from output_checks.screening.known import build_known_identifiers

    def plan(session):
        request = session.get(ReleaseRequest, request_id)
        files = [(f.id, f.path, f.snapshot, f.sha256) for f in workflow.current_files(request)]
        return request.project, files, project_overrides(session, request.project)

    project, files, overrides = airlock.tx(plan)
    policy = resolve_policy(airlock.paths, overrides)
    known = build_known_identifiers(airlock.registry, airlock.paths, project)
    # Check exactly the bytes that will be reviewed, under the file's own name (the snapshot has none), in the
    # checker sandbox: researcher bytes are never parsed in the airlock's process.
    batch = [
        SandboxFile(airlock.store.verify(snapshot, sha), path, Path(path).name) for _, path, snapshot, sha in files
    ]
    reports = check_files_sandboxed(batch, policy, known)
    return {file_id: report.to_json() for (file_id, *_), report in zip(files, reports, strict=True)}
