"""What a person may see of a request, as plain data for the CLI, the web app and their tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from output_checks.release import workflow
from output_checks.release.states import OWNERS, RequestState


def request_view(session: Session, request_id: str, user: str) -> dict[str, Any]:
    request = workflow.get_request(session, request_id, user)
    actor = workflow.actor_for(session, request, user)
    outcome = workflow.outcomes(session, request)
    files = []
    for f in workflow.current_files(request, include_withdrawn=True):
        files.append(
            {
                "id": f.id, "path": f.path, "version": f.version, "sha256": f.sha256, "size": f.size,
                "kind": f.kind, "verdict": f.verdict, "findings": f.findings or [], "justification": f.justification,
                "withdrawn": f.withdrawn, "released": f.released,
                "outcome": outcome.get(f.id).value if outcome and f.id in outcome else None,
                "previously_released": [r for r in workflow.previously_released(session, request.project, f.sha256)
                                        if r != request.id],
            }
        )  # fmt: skip
    votes = [v.__dict__ for v in workflow.visible_votes(session, request, user)]
    return {
        "id": request.id, "project": request.project, "author": request.author, "title": request.title,
        "state": request.state, "round": request.round, "reviews_required": request.reviews_required,
        "reviews_submitted": len(workflow._submitted_reviews(session, request)),
        "you": actor.value if actor else None,
        "waiting_for": sorted(a.value for a in OWNERS[RequestState(request.state)]),
        "files": files, "votes": votes,
        "created_at": request.created_at, "updated_at": request.updated_at,
    }  # fmt: skip
