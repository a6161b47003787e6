"""The automated checks on a request's snapshots: the checks engine over the immutable copies, under the project's
policy and with its known identifiers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from output_checks.engine import Target, check_file, make_context
from output_checks.policy import load_policy
from output_checks.release import workflow
from output_checks.release.models import ReleaseRequest

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
    import tempfile

    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="enclave-airlock-") as scratch:
        ctx = make_context(policy, known, Path(scratch))
        for file_id, path, snapshot, sha in files:
            source = airlock.store.verify(snapshot, sha)  # check exactly the bytes that will be reviewed
            # The snapshot has no extension; check it under its own name so name-based claims still apply.
            view = Path(scratch) / f"{file_id}" / Path(path).name
            view.parent.mkdir(parents=True, exist_ok=True)
            view.symlink_to(source)
            report = check_file(Target(view, path), ctx)
            results[file_id] = report.to_json()
    return results
