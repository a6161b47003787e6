"""airlock release ledger: released table cells as keyed hashes of their labels, with their values

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 03:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('release_ledger',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project', sa.String(length=64), nullable=False),
    sa.Column('request_id', sa.String(length=32), nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('row_key', sa.String(length=64), nullable=False),
    sa.Column('column_key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['request_files.id'], ),
    sa.ForeignKeyConstraint(['request_id'], ['release_requests.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('release_ledger', schema=None) as batch_op:
        batch_op.create_index('ix_release_ledger_keys', ['project', 'row_key', 'column_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_release_ledger_request_id'), ['request_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('release_ledger', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_release_ledger_request_id'))
        batch_op.drop_index('ix_release_ledger_keys')

    op.drop_table('release_ledger')
