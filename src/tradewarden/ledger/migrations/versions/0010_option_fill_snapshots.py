"""option fill snapshots: greeks, implied volatility, bid/ask and the underlying's
price at the moment an option order filled

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 13:40:00.000000

Adds ``option_fill_snapshots`` (keyed like ``fills``: run id and fill sequence) only:
an older ledger is brought up to date in place, its rows untouched.
"""
import sqlalchemy as sa
from alembic import op

import tradewarden.ledger.schema

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('option_fill_snapshots',
        sa.Column('run_id', sa.String(length=32), nullable=False),
        sa.Column('fill_seq', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('occ_symbol', sa.String(length=32), nullable=False),
        sa.Column('captured_ts', sa.Integer(), nullable=False),
        sa.Column('bid', tradewarden.ledger.schema.DecimalText(), nullable=True),
        sa.Column('ask', tradewarden.ledger.schema.DecimalText(), nullable=True),
        sa.Column('underlying_price', tradewarden.ledger.schema.DecimalText(), nullable=True),
        sa.Column('iv', sa.Float(), nullable=True),
        sa.Column('delta', sa.Float(), nullable=True),
        sa.Column('gamma', sa.Float(), nullable=True),
        sa.Column('theta', sa.Float(), nullable=True),
        sa.Column('vega', sa.Float(), nullable=True),
        sa.Column('source', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('run_id', 'fill_seq')
    )


def downgrade() -> None:
    op.drop_table('option_fill_snapshots')
