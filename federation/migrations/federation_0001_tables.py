"""federation branch: a coordinator's federated projects, members, tasks and per-site states; a site's pulled tasks
and the manifest nonces it has seen (issue 14).

Revision ID: federation_0001
Revises: 0012
Create Date: 2026-12-08 01:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "federation_0001"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = ("federation",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "federated_projects",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("sites", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "federated_members",
        sa.Column("project", sa.String(63), sa.ForeignKey("federated_projects.name"), primary_key=True),
        sa.Column("user", sa.String(64), primary_key=True),
    )
    op.create_table(
        "federated_tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project", sa.String(63), sa.ForeignKey("federated_projects.name"), nullable=False),
        sa.Column("submitter", sa.String(64), nullable=False),
        sa.Column("signed", sa.Text(), nullable=False),
        sa.Column("notebook_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_federated_tasks_project", "federated_tasks", ["project"])
    op.create_index("ix_federated_tasks_submitter", "federated_tasks", ["submitter"])
    op.create_index("ix_federated_tasks_expires_at", "federated_tasks", ["expires_at"])
    op.create_table(
        "federated_task_sites",
        sa.Column("task_id", sa.String(36), sa.ForeignKey("federated_tasks.id"), primary_key=True),
        sa.Column("site", sa.String(63), primary_key=True),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("result_sha256", sa.String(64), nullable=False),
        sa.Column("result_size", sa.Integer(), nullable=False),
        sa.Column("tokens_sha256", sa.String(64), nullable=False),
        sa.Column("tokens_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_federated_task_sites_state", "federated_task_sites", ["state"])
    op.create_table(
        "site_tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project", sa.String(63), nullable=False),
        sa.Column("submitter", sa.String(64), nullable=False),
        sa.Column("signed", sa.Text(), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("approved_by", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("linkage", sa.String(16), nullable=False),
        sa.Column("reported", sa.String(24), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_site_tasks_project", "site_tasks", ["project"])
    op.create_index("ix_site_tasks_state", "site_tasks", ["state"])
    op.create_table(
        "site_seen_nonces",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_site_seen_nonces_expires_at", "site_seen_nonces", ["expires_at"])


def downgrade() -> None:
    for index, table in (
        ("ix_site_seen_nonces_expires_at", "site_seen_nonces"),
        ("ix_site_tasks_state", "site_tasks"),
        ("ix_site_tasks_project", "site_tasks"),
        ("ix_federated_task_sites_state", "federated_task_sites"),
        ("ix_federated_tasks_expires_at", "federated_tasks"),
        ("ix_federated_tasks_submitter", "federated_tasks"),
        ("ix_federated_tasks_project", "federated_tasks"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("site_seen_nonces", "site_tasks", "federated_task_sites", "federated_tasks", "federated_members",
                  "federated_projects"):  # fmt: skip
        op.drop_table(table)
