"""run liveness (pid, host, process start, heartbeat) and the report summary

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 03:00:00.000000

Adds nullable columns only: an older ledger is brought up to date in place, its rows
untouched (runs recorded before this revision have no pid and are never marked
``crashed``).
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pid', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('host', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('process_start', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('summary', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('summary')
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('process_start')
        batch_op.drop_column('host')
        batch_op.drop_column('pid')
