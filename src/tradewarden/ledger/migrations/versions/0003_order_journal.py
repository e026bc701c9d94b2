"""order journal (every venue event as it arrives), deployments, their engine state, approvals

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 05:30:00.000000

Adds the ``order_events``, ``engine_state``, ``deployments`` and ``approvals`` tables only: an older ledger is brought
up to date in place, its rows untouched (runs recorded before this revision have no
journal and no deployment).
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'order_events',
        sa.Column('run_id', sa.String(length=32), nullable=False),
        sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('client_order_id', sa.String(length=96), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('status', sa.String(length=24), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('fill_seq', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('run_id', 'seq'),
    )
    op.create_table(
        'engine_state',
        sa.Column('run_id', sa.String(length=32), nullable=False),
        sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('deployment_id', sa.String(length=32), nullable=False),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('state', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('run_id', 'seq'),
    )
    op.create_table(
        'deployments',
        sa.Column('deployment_id', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('mode', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.Column('config', sa.Text(), nullable=False),
        sa.Column('config_hash', sa.String(length=64), nullable=False),
        sa.Column('strategy_source', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('next_order_seq', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint('deployment_id'),
        sa.UniqueConstraint('name'),
    )
    op.create_table(
        'approvals',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('run_id', sa.String(length=32), nullable=False),
        sa.Column('deployment_id', sa.String(length=32), nullable=True),
        sa.Column('decision_seq', sa.Integer(), nullable=False),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('symbol', sa.String(length=32), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('intent', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('acted_by', sa.String(length=64), nullable=True),
        sa.Column('acted_at', sa.String(length=32), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('approvals')
    op.drop_table('deployments')
    op.drop_table('engine_state')
    op.drop_table('order_events')
