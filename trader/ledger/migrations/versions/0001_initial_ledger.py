"""initial ledger

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 12:15:52.780627
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('approvals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('strategy_version', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('balances',
    sa.Column('book', sa.String(length=40), nullable=False),
    sa.Column('currency', sa.String(length=16), nullable=False),
    sa.Column('free', sa.Float(precision=53), nullable=False),
    sa.Column('used', sa.Float(precision=53), nullable=False),
    sa.Column('total', sa.Float(precision=53), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('book', 'currency')
    )
    op.create_table('daemon_state',
    sa.Column('book', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('strategy_version', sa.String(length=16), nullable=True),
    sa.Column('peak_equity', sa.Float(precision=53), nullable=False),
    sa.Column('last_tick_at', sa.DateTime(), nullable=True),
    sa.Column('last_bar_time', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('book')
    )
    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('time', sa.DateTime(), nullable=False),
    sa.Column('book', sa.String(length=40), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_kind_time', ['kind', 'time'], unique=False)

    op.create_table('strategy_versions',
    sa.Column('version', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('strategy', sa.String(length=40), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('yaml_text', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('version')
    )
    op.create_table('equity_points',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('book', sa.String(length=40), nullable=False),
    sa.Column('time', sa.DateTime(), nullable=False),
    sa.Column('equity', sa.Float(precision=53), nullable=False),
    sa.Column('cash', sa.Float(precision=53), nullable=False),
    sa.Column('position_qty', sa.Float(precision=53), nullable=False),
    sa.Column('price', sa.Float(precision=53), nullable=False),
    sa.Column('target', sa.Float(precision=53), nullable=False),
    sa.Column('strategy_version', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['strategy_version'], ['strategy_versions.version'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('book', 'time', name='uq_equity_book_time')
    )
    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_order_id', sa.String(length=36), nullable=False),
    sa.Column('book', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('symbol', sa.String(length=40), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('type', sa.String(length=12), nullable=False),
    sa.Column('amount', sa.Float(precision=53), nullable=False),
    sa.Column('price', sa.Float(precision=53), nullable=True),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('filled', sa.Float(precision=53), nullable=False),
    sa.Column('exchange_order_id', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('strategy_version', sa.String(length=16), nullable=False),
    sa.Column('bar_time', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['strategy_version'], ['strategy_versions.version'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('client_order_id')
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_book_status', ['book', 'status'], unique=False)

    op.create_table('positions',
    sa.Column('book', sa.String(length=40), nullable=False),
    sa.Column('symbol', sa.String(length=40), nullable=False),
    sa.Column('qty', sa.Float(precision=53), nullable=False),
    sa.Column('entry_price', sa.Float(precision=53), nullable=False),
    sa.Column('acted_target', sa.Float(precision=53), nullable=False),
    sa.Column('trade_cash', sa.Float(precision=53), nullable=False),
    sa.Column('strategy_version', sa.String(length=16), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['strategy_version'], ['strategy_versions.version'], ),
    sa.PrimaryKeyConstraint('book')
    )
    op.create_table('fills',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('book', sa.String(length=40), nullable=False),
    sa.Column('client_order_id', sa.String(length=36), nullable=False),
    sa.Column('trade_id', sa.String(length=64), nullable=False),
    sa.Column('exchange_order_id', sa.String(length=64), nullable=True),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('amount', sa.Float(precision=53), nullable=False),
    sa.Column('price', sa.Float(precision=53), nullable=False),
    sa.Column('fee', sa.Float(precision=53), nullable=False),
    sa.Column('fee_currency', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('time', sa.DateTime(), nullable=False),
    sa.Column('strategy_version', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.ForeignKeyConstraint(['strategy_version'], ['strategy_versions.version'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('book', 'trade_id', name='uq_fills_book_trade')
    )


def downgrade() -> None:
    op.drop_table('fills')
    op.drop_table('positions')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_book_status')

    op.drop_table('orders')
    op.drop_table('equity_points')
    op.drop_table('strategy_versions')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_kind_time')

    op.drop_table('events')
    op.drop_table('daemon_state')
    op.drop_table('balances')
    op.drop_table('approvals')
