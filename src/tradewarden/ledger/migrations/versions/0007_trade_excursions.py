"""per-trade maximum adverse and favourable excursion (MAE / MFE)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 11:00:00.000000

Adds nullable columns to ``trades`` only: ``mae_price`` and ``mfe_price`` (exact
decimals, quote currency per base unit: the lowest and the highest price a long
position lived through between its entry and exit fills) and ``mae_pct`` /
``mfe_pct`` (the same as a percentage of the entry price). An older ledger is brought
up to date in place; its trades keep NULL there (their excursions were not tracked).
"""
import sqlalchemy as sa
from alembic import op

import tradewarden.ledger.schema

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mae_price', tradewarden.ledger.schema.DecimalText(),
                                      nullable=True))
        batch_op.add_column(sa.Column('mfe_price', tradewarden.ledger.schema.DecimalText(),
                                      nullable=True))
        batch_op.add_column(sa.Column('mae_pct', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('mfe_pct', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_column('mfe_pct')
        batch_op.drop_column('mae_pct')
        batch_op.drop_column('mfe_price')
        batch_op.drop_column('mae_price')
