"""daemon heartbeats and the durable event queue

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 09:00:00.000000

Adds the ``daemon_heartbeats`` table (one row per heartbeat of ``warden daemon``: its
process, status, activity, queue depth, autonomy level, anomalies and deployments) and
the ``daemon_events`` table (the durable event queue: pending, processing under a
lease, done or failed; de-duplicated by ``dedupe_key``) only: an older ledger is
brought up to date in place, its rows untouched.
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'daemon_heartbeats',
        sa.Column('daemon_id', sa.String(length=32), nullable=False),
        sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('ts', sa.String(length=32), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('process_start', sa.String(length=64), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('activity', sa.Text(), nullable=True),
        sa.Column('queue_depth', sa.Integer(), nullable=False),
        sa.Column('autonomy_level', sa.Integer(), nullable=True),
        sa.Column('anomalies', sa.Text(), nullable=True),
        sa.Column('deployments', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('daemon_id', 'seq'),
    )
    op.create_index('ix_daemon_heartbeats_ts', 'daemon_heartbeats', ['ts'])
    op.create_table(
        'daemon_events',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('dedupe_key', sa.String(length=128), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('lease_owner', sa.String(length=64), nullable=True),
        sa.Column('lease_until', sa.Float(), nullable=True),
        sa.Column('due_at', sa.Float(), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.Column('finished_at', sa.String(length=32), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('dedupe_key', name='uq_daemon_events_dedupe_key'),
    )
    op.create_index('ix_daemon_events_status_due', 'daemon_events', ['status', 'due_at'])


def downgrade() -> None:
    op.drop_index('ix_daemon_events_status_due', table_name='daemon_events')
    op.drop_table('daemon_events')
    op.drop_index('ix_daemon_heartbeats_ts', table_name='daemon_heartbeats')
    op.drop_table('daemon_heartbeats')
