"""the daemon's oversight record: reasoning decisions, governor verdicts, autonomy,
anomalies, alerts and reasoning costs

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 09:00:00.000000

Adds ``agent_decisions`` (what a reasoning engine decided about an event, with the
full context it saw), ``governor_verdicts`` (what the autonomy governor let happen,
recorded apart from the reasoning), ``autonomy_changes`` (every level a deployment
had: initial, promotion, demotion, command), ``anomalies`` (flags that force a person
into the loop while open), ``alerts`` (every alert and what each channel did with it)
and ``reasoning_costs`` (tokens and price of every model call) only: an older ledger
is brought up to date in place, its rows untouched.
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'agent_decisions',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('deployment_id', sa.String(length=32), nullable=True),
        sa.Column('run_id', sa.String(length=32), nullable=True),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=True),
        sa.Column('event_kind', sa.String(length=32), nullable=False),
        sa.Column('symbol', sa.String(length=32), nullable=True),
        sa.Column('decision_seq', sa.Integer(), nullable=True),
        sa.Column('reasoner', sa.String(length=32), nullable=False),
        sa.Column('autonomy_level', sa.Integer(), nullable=False),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('confidence', sa.Float(), nullable=True),
        sa.Column('context', sa.Text(), nullable=False),
        sa.Column('output', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_agent_decisions_deployment_ts', 'agent_decisions',
                    ['deployment_id', 'ts'])
    op.create_table(
        'governor_verdicts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('agent_decision_id', sa.Integer(), nullable=True),
        sa.Column('deployment_id', sa.String(length=32), nullable=True),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.Column('autonomy_level', sa.Integer(), nullable=False),
        sa.Column('verdict', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('triggers', sa.Text(), nullable=True),
        sa.Column('approval_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_governor_verdicts_decision', 'governor_verdicts', ['agent_decision_id'])
    op.create_table(
        'autonomy_changes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('deployment_id', sa.String(length=32), nullable=False),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.Column('from_level', sa.Integer(), nullable=True),
        sa.Column('to_level', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_autonomy_changes_deployment', 'autonomy_changes', ['deployment_id', 'id'])
    op.create_table(
        'anomalies',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('deployment_id', sa.String(length=32), nullable=True),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('symbol', sa.String(length=32), nullable=True),
        sa.Column('opened_ts', sa.Integer(), nullable=False),
        sa.Column('cleared_ts', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_anomalies_deployment_status', 'anomalies', ['deployment_id', 'status'])
    op.create_table(
        'alerts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.Column('level', sa.String(length=16), nullable=False),
        sa.Column('trigger', sa.String(length=32), nullable=False),
        sa.Column('dedupe_key', sa.String(length=128), nullable=True),
        sa.Column('deployment_id', sa.String(length=32), nullable=True),
        sa.Column('subject', sa.Text(), nullable=False),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('channels', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_alerts_ts', 'alerts', ['ts'])
    op.create_table(
        'reasoning_costs',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.Column('deployment_id', sa.String(length=32), nullable=True),
        sa.Column('agent_decision_id', sa.Integer(), nullable=True),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('model', sa.String(length=64), nullable=False),
        sa.Column('call_type', sa.String(length=32), nullable=False),
        sa.Column('input_tokens', sa.Integer(), nullable=False),
        sa.Column('output_tokens', sa.Integer(), nullable=False),
        sa.Column('cache_read_tokens', sa.Integer(), nullable=False),
        sa.Column('cache_write_tokens', sa.Integer(), nullable=False),
        sa.Column('cost_usd', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_reasoning_costs_ts', 'reasoning_costs', ['ts'])


def downgrade() -> None:
    op.drop_index('ix_reasoning_costs_ts', table_name='reasoning_costs')
    op.drop_table('reasoning_costs')
    op.drop_index('ix_alerts_ts', table_name='alerts')
    op.drop_table('alerts')
    op.drop_index('ix_anomalies_deployment_status', table_name='anomalies')
    op.drop_table('anomalies')
    op.drop_index('ix_autonomy_changes_deployment', table_name='autonomy_changes')
    op.drop_table('autonomy_changes')
    op.drop_index('ix_governor_verdicts_decision', table_name='governor_verdicts')
    op.drop_table('governor_verdicts')
    op.drop_index('ix_agent_decisions_deployment_ts', table_name='agent_decisions')
    op.drop_table('agent_decisions')
