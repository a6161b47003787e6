"""patient identifier schemes: a site declares its national identifier scheme; patients of non-NHS schemes are
linked through patient_identifiers, so a patient's NHS number may be absent

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 10:30:00.000000
"""

from collections.abc import Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


@contextmanager
def _foreign_keys_off():
    """SQLite rebuilds `patients` to change a column, and dropping the old table with rows that patient_records and
    consent_events reference fails while foreign keys are on. The pragma only takes effect outside a transaction
    (as here, upgrading a registry already at 0006; a fresh one has no rows to trip on); the connection is the
    migration's own and is closed afterwards."""
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:
        op.execute('PRAGMA foreign_keys=OFF')
    yield
    if sqlite:
        op.execute('PRAGMA foreign_keys=ON')


def upgrade() -> None:
    op.create_table('patient_identifiers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.String(length=32), nullable=False),
    sa.Column('scheme', sa.String(length=32), nullable=False),
    sa.Column('value', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('scheme', 'value')
    )
    with op.batch_alter_table('patient_identifiers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_identifiers_patient_id'), ['patient_id'], unique=False)
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.add_column(sa.Column('identifier_scheme', sa.String(length=32), server_default='nhs', nullable=False))
    with _foreign_keys_off(), op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.alter_column('nhs_number', existing_type=sa.String(length=10), nullable=True)


def downgrade() -> None:
    with _foreign_keys_off(), op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.alter_column('nhs_number', existing_type=sa.String(length=10), nullable=False)
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_column('identifier_scheme')
    with op.batch_alter_table('patient_identifiers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_identifiers_patient_id'))
    op.drop_table('patient_identifiers')
