"""fabric branch: where the data fabric's tables (sites, datasets, patients, consent, projects, builds) migrate from
now on, each package in its own folder (issue 12), so no migration imports a package above the kernel. Changes
nothing: the tables as they stand were built by the shared history (kernel/migrations/history, 0001-0012).

Revision ID: fabric_0001
Revises: 0012
Create Date: 2026-12-07 16:00:00.000000
"""

from collections.abc import Sequence

revision: str = "fabric_0001"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = ("fabric",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
