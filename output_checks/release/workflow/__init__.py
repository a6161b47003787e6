"""The release workflow's rules, one module per concept: who is who and the permission checks (`access`), what a
submission may copy (`limits`), the author's verbs (`authoring`), large requests copied in the background
(`preparing`), the automated checks' results (`checking`), independent reviews (`reviews`), release and download
(`egress`), snapshot retention (`retention`), and what a person may do now (`abilities`).

Every function takes the caller's session (one transaction) and writes its audit event in it, so a change and its
audit entry commit together or not at all. The airlock's business layer (release/airlock.py) calls them; the CLI
and the web app call that layer."""

from output_checks.release.models import ReleaseRequest
from output_checks.release.states import Action, Activity, Actor, Decision, RequestState
from output_checks.release.storage import IntegrityError
from output_checks.release.workflow.abilities import abilities, reviewed
from output_checks.release.workflow.access import (
    SYSTEM,
    InvalidRequest,
    NotAllowed,
    actor_for,
    can_view,
    current_files,
    file_named,
    get_request,
    move,
    now,
    permit,
    previously_released,
    project_roles,
    require,
)
from output_checks.release.workflow.authoring import (
    DEFAULT_REVIEWS,
    add_file,
    create_request,
    justify,
    request_release,
    revise_file,
    submit,
    withdraw,
    withdraw_file,
)
from output_checks.release.workflow.checking import MAX_CHECK_ATTEMPTS, checks_failed, pending_checks, record_checks
from output_checks.release.workflow.egress import download, record_view, release, release_aborted
from output_checks.release.workflow.limits import Limits, limits, measure_request, refused_submission
from output_checks.release.workflow.preparing import (
    PendingFile,
    Preparation,
    begin_request,
    preparation,
    prepared,
    preparing,
    refusal,
    refuse,
    snapshot_taken,
)
from output_checks.release.workflow.retention import purge_snapshot, purgeable
from output_checks.release.workflow.reviews import (
    CLOSED_STATES,
    VoteView,
    checked_projects,
    count_requests,
    my_requests,
    my_requests_query,
    outcomes,
    release_history,
    release_history_query,
    review_queue,
    review_queue_query,
    submit_review,
    submitted_reviews,
    visible_votes,
    vote,
)

__all__ = [
    "CLOSED_STATES", "DEFAULT_REVIEWS", "MAX_CHECK_ATTEMPTS", "SYSTEM", "Action", "Activity", "Actor", "Decision",
    "IntegrityError", "InvalidRequest", "Limits", "NotAllowed", "PendingFile", "Preparation", "ReleaseRequest",
    "RequestState", "VoteView", "abilities", "actor_for", "add_file", "begin_request", "can_view", "checked_projects",
    "checks_failed", "count_requests", "create_request", "current_files", "download", "file_named", "get_request",
    "justify", "limits", "measure_request", "move", "my_requests", "my_requests_query", "now", "outcomes",
    "pending_checks", "permit", "preparation", "prepared", "preparing", "previously_released", "project_roles",
    "purge_snapshot", "purgeable", "record_checks", "record_view", "refusal", "refuse", "refused_submission", "release",
    "release_aborted", "release_history", "release_history_query", "request_release", "require", "review_queue",
    "review_queue_query", "reviewed", "revise_file", "snapshot_taken", "submit", "submit_review", "submitted_reviews",
    "visible_votes", "vote", "withdraw", "withdraw_file",
]  # fmt: skip
