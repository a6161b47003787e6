"""site mrns: the MRNs of sites that identify patients by MRN alone (identifier_scheme local-mrn), each scoped to
its site and mapped to its patient (its own, or one named elsewhere by the site's linkage table, fabric/linkage.py)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('site_mrns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.String(length=64), nullable=False),
    sa.Column('mrn', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('site_id', 'mrn')
    )
    with op.batch_alter_table('site_mrns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_site_mrns_patient_id'), ['patient_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('site_mrns', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_site_mrns_patient_id'))
    op.drop_table('site_mrns')
