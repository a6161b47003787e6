"""site clinical dialect: the CSV dialect a csv-local site declares in site.yaml (file and column names, date
format, delimiter, decimal separator, encoding; fabric/clinical/dialect.py), kept as registered so every later read
of its clinical export (materialisation, the airlock's known identifiers) reads it the same way. NULL: the default
layout.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.add_column(sa.Column('clinical_dialect', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_column('clinical_dialect')
