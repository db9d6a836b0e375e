"""experiments state their claim, test it against a control book, and carry their level

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 22:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('experiments') as batch:
        batch.add_column(sa.Column('metric', sa.String(length=20), nullable=True))
        batch.add_column(sa.Column('statistic', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('control_book', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('alpha', sa.Float(precision=53), nullable=True))
        batch.add_column(sa.Column('prior', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('experiments') as batch:
        for name in ('prior', 'alpha', 'control_book', 'statistic', 'metric'):
            batch.drop_column(name)
