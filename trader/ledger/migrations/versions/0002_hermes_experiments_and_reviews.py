"""hermes experiments and reviews

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:40:14.207925
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('time', sa.DateTime(), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('strategy_version', sa.String(length=16), nullable=False),
    sa.Column('verdict', sa.String(length=12), nullable=False),
    sa.Column('weakest', sa.String(length=40), nullable=True),
    sa.Column('decision', sa.String(length=12), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('report_markdown', sa.Text(), nullable=True),
    sa.Column('report_path', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('experiments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('book', sa.String(length=40), nullable=False),
    sa.Column('baseline_version', sa.String(length=16), nullable=False),
    sa.Column('challenger_version', sa.String(length=16), nullable=False),
    sa.Column('variable', sa.String(length=40), nullable=False),
    sa.Column('baseline_value', sa.Float(precision=53), nullable=True),
    sa.Column('value', sa.Float(precision=53), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('variants_tried', sa.Integer(), nullable=False),
    sa.Column('cycles', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('evidence', sa.JSON(), nullable=True),
    sa.Column('rationale', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['challenger_version'], ['strategy_versions.version'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.create_index('ix_experiments_status', ['status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.drop_index('ix_experiments_status')

    op.drop_table('experiments')
    op.drop_table('reviews')
