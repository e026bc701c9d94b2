"""order journal: every venue acknowledgement and order event as it arrives

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 05:30:00.000000

Adds the ``order_events`` table only: an older ledger is brought up to date in place,
its rows untouched (runs recorded before this revision have no journal).
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


def downgrade() -> None:
    op.drop_table('order_events')
