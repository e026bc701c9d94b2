"""initial ledger schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-21 05:59:07.994206
"""
import sqlalchemy as sa
from alembic import op

import tradewarden.ledger.schema

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('decisions',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('ts', sa.Integer(), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('close', sa.Float(), nullable=True),
    sa.Column('equity', sa.Float(), nullable=True),
    sa.Column('x1', sa.Float(), nullable=True),
    sa.Column('x2', sa.Float(), nullable=True),
    sa.Column('x3', sa.Float(), nullable=True),
    sa.Column('x4', sa.Float(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('run_id', 'seq'),
    sqlite_with_rowid=False
    )
    op.create_table('equity',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('account', sa.String(length=32), nullable=False),
    sa.Column('ts', sa.Integer(), nullable=False),
    sa.Column('cash', sa.Float(), nullable=False),
    sa.Column('equity', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'seq'),
    sqlite_with_rowid=False
    )
    op.create_table('events',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('ts', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'seq')
    )
    op.create_table('fills',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('fill_seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('client_order_id', sa.String(length=96), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('quantity', tradewarden.ledger.schema.DecimalText(), nullable=False),
    sa.Column('price', tradewarden.ledger.schema.DecimalText(), nullable=False),
    sa.Column('reference_price', tradewarden.ledger.schema.DecimalText(), nullable=False),
    sa.Column('fee', tradewarden.ledger.schema.DecimalText(), nullable=False),
    sa.Column('liquidity', sa.String(length=8), nullable=False),
    sa.Column('ts', sa.Integer(), nullable=False),
    sa.Column('time', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'fill_seq')
    )
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.create_index('ix_fills_run_order', ['run_id', 'client_order_id'], unique=False)

    op.create_table('orders',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('client_order_id', sa.String(length=96), nullable=False),
    sa.Column('decision_seq', sa.Integer(), nullable=True),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('type', sa.String(length=8), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('quantity', tradewarden.ledger.schema.DecimalText(), nullable=False),
    sa.Column('price', tradewarden.ledger.schema.DecimalText(), nullable=True),
    sa.Column('stop_price', tradewarden.ledger.schema.DecimalText(), nullable=True),
    sa.Column('parent_id', sa.String(length=96), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('created_ts', sa.Integer(), nullable=False),
    sa.Column('created_time', sa.String(length=32), nullable=False),
    sa.Column('updated_ts', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('run_id', 'client_order_id')
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_run_symbol', ['run_id', 'symbol'], unique=False)

    op.create_table('runs',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('capital_mode', sa.String(length=16), nullable=False),
    sa.Column('market_time_basis', sa.String(length=64), nullable=False),
    sa.Column('data_integrity', sa.String(length=16), nullable=False),
    sa.Column('data_quality', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('git_sha', sa.String(length=40), nullable=True),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('config', sa.Text(), nullable=False),
    sa.Column('strategy', sa.String(length=64), nullable=False),
    sa.Column('input_names', sa.Text(), nullable=True),
    sa.Column('symbols', sa.Text(), nullable=False),
    sa.Column('timeframe', sa.String(length=8), nullable=False),
    sa.Column('range_start', sa.String(length=32), nullable=True),
    sa.Column('range_end', sa.String(length=32), nullable=True),
    sa.Column('initial_capital', tradewarden.ledger.schema.DecimalText(), nullable=False),
    sa.Column('started_at', sa.String(length=32), nullable=False),
    sa.Column('completed_at', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('bars_processed', sa.Integer(), nullable=True),
    sa.Column('decisions', sa.Integer(), nullable=True),
    sa.Column('trades_opened', sa.Integer(), nullable=True),
    sa.Column('trades_closed', sa.Integer(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('run_id')
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_started_at', ['started_at'], unique=False)

    op.create_table('trades',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('trade_id', sa.String(length=96), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('quantity', tradewarden.ledger.schema.DecimalText(), nullable=False),
    sa.Column('entry_ts', sa.Integer(), nullable=False),
    sa.Column('entry_time', sa.String(length=32), nullable=False),
    sa.Column('entry_price', tradewarden.ledger.schema.DecimalText(), nullable=False),
    sa.Column('exit_ts', sa.Integer(), nullable=False),
    sa.Column('exit_time', sa.String(length=32), nullable=False),
    sa.Column('exit_price', tradewarden.ledger.schema.DecimalText(), nullable=False),
    sa.Column('fees', tradewarden.ledger.schema.DecimalText(), nullable=False),
    sa.Column('pnl', tradewarden.ledger.schema.DecimalText(), nullable=False),
    sa.Column('return_pct', sa.Float(), nullable=True),
    sa.Column('exit_reason', sa.String(length=16), nullable=False),
    sa.Column('entry_order_id', sa.String(length=96), nullable=False),
    sa.Column('exit_order_id', sa.String(length=96), nullable=False),
    sa.Column('holding_seconds', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'trade_id')
    )
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.create_index('ix_trades_run_symbol', ['run_id', 'symbol', 'exit_ts'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_index('ix_trades_run_symbol')

    op.drop_table('trades')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_started_at')

    op.drop_table('runs')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_run_symbol')

    op.drop_table('orders')
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.drop_index('ix_fills_run_order')

    op.drop_table('fills')
    op.drop_table('events')
    op.drop_table('equity')
    op.drop_table('decisions')
