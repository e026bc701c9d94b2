"""command inbox and reconciliation differences

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:00:00.000000

Adds the ``commands`` table (what people asked a deployment to do: approve, reject,
pause, resume, kill, flatten, close, accept; processed by the engine between bars) and
the ``reconciliations`` table (differences between the ledger and the venue found when
a deployment reconciles) only: an older ledger is brought up to date in place, its
rows untouched.
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'commands',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('deployment_id', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('target', sa.String(length=64), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('result', sa.Text(), nullable=True),
        sa.Column('processed_at', sa.String(length=32), nullable=True),
        sa.Column('run_id', sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_commands_deployment_status', 'commands', ['deployment_id', 'status'])
    op.create_table(
        'reconciliations',
        sa.Column('run_id', sa.String(length=32), nullable=False),
        sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('deployment_id', sa.String(length=32), nullable=False),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('symbol', sa.String(length=32), nullable=True),
        sa.Column('ours', sa.Text(), nullable=True),
        sa.Column('venue', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('resolved_by', sa.String(length=64), nullable=True),
        sa.Column('resolved_at', sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint('run_id', 'seq'),
    )
    op.create_index('ix_reconciliations_deployment', 'reconciliations',
                    ['deployment_id', 'status'])


def downgrade() -> None:
    op.drop_index('ix_reconciliations_deployment', table_name='reconciliations')
    op.drop_table('reconciliations')
    op.drop_index('ix_commands_deployment_status', table_name='commands')
    op.drop_table('commands')
