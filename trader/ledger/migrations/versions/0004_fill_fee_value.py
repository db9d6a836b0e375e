"""fills carry the quote value of a fee charged in a third currency (BNB)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 01:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('fills') as batch:
        batch.add_column(sa.Column('fee_quote', sa.Float(precision=53), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('fills') as batch:
        batch.drop_column('fee_quote')
