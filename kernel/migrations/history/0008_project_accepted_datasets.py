"""project accepted datasets: a project whose spec says `datasets: ['*']` records the datasets an admin accepted, so
a dataset registered later does not join its view without a decision. Existing '*' projects keep every dataset
registered at upgrade time (they took in all of them until now).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 12:20:00.000000
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('datasets_accepted', sa.JSON(), nullable=True))
    bind = op.get_bind()
    every = sorted(bind.execute(sa.text('SELECT id FROM datasets')).scalars())
    projects = sa.table('projects', sa.column('name', sa.String), sa.column('spec', sa.JSON),
                        sa.column('datasets_accepted', sa.JSON))
    for name, spec in bind.execute(sa.select(projects.c.name, projects.c.spec)).all():
        if isinstance(spec, str):
            spec = json.loads(spec)
        if (spec or {}).get('datasets') == ['*']:
            bind.execute(projects.update().where(projects.c.name == name).values(datasets_accepted=every))


def downgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('datasets_accepted')
