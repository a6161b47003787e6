"""The automated checks on a request's snapshots: the checks engine over the immutable copies, under the project's
policy and with its known identifiers, run in the checker sandbox (output_checks/sandbox)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from output_checks.policy import load_policy
from output_checks.release import workflow
from output_checks.release.models import ReleaseRequest
from output_checks.sandbox.runner import SandboxFile, check_files_sandboxed

if TYPE_CHECKING:
    from output_checks.release.service import Airlock


def run_checks_on_snapshots(airlock: Airlock, request_id: str) -> dict[int, dict[str, Any]]:
    from fabric.projects import get_project, project_spec
    from output_checks.screening.known import build_known_identifiers

    def plan(session):
        request = session.get(ReleaseRequest, request_id)
        files = [(f.id, f.path, f.snapshot, f.sha256) for f in workflow.current_files(request)]
        spec = project_spec(get_project(session, request.project))
        overrides = spec.airlock.model_dump() if spec.airlock else {}
        return request.project, files, overrides

    project, files, overrides = airlock.tx(plan)
    policy = load_policy(None, overrides)
    known = build_known_identifiers(airlock.registry, airlock.paths, project)
    # Check exactly the bytes that will be reviewed, under the file's own name (the snapshot has none), in the
    # checker sandbox: researcher bytes are never parsed in the airlock's process.
    batch = [
        SandboxFile(airlock.store.verify(snapshot, sha), path, Path(path).name) for _, path, snapshot, sha in files
    ]
    reports = check_files_sandboxed(batch, policy, known)
    return {file_id: report.to_json() for (file_id, *_), report in zip(files, reports, strict=True)}
