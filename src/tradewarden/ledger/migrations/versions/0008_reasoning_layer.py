"""the reasoning layer's record: model calls, working memory, semantic recall,
decision outcomes, reflections and experiments

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 13:40:00.000000

Adds ``reasoning_calls`` (every model call in full: request, response, parse, status,
tokens and cost), ``agent_memory`` (working memory that survives a crash),
``memory_embeddings`` (decision summaries with their embedding and outcome),
``decision_outcomes`` (what became of a decision: a closed position or a skipped
candidate scored), ``reflections`` (end-of-day reviews), ``experiments`` and
``experiment_observations`` (A/B tests), and the nullable ``reasoning_costs.call_id``.
An older ledger is brought up to date in place, its rows untouched.
"""
import sqlalchemy as sa
from alembic import op

import tradewarden.ledger.schema

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agent_memory',
        sa.Column('scope', sa.String(length=32), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('scope', 'key')
    )
    op.create_table('decision_outcomes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('agent_decision_id', sa.Integer(), nullable=False),
        sa.Column('deployment_id', sa.String(length=32), nullable=True),
        sa.Column('run_id', sa.String(length=32), nullable=True),
        sa.Column('symbol', sa.String(length=32), nullable=True),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('trade_id', sa.String(length=96), nullable=True),
        sa.Column('opened_ts', sa.Integer(), nullable=True),
        sa.Column('closed_ts', sa.Integer(), nullable=True),
        sa.Column('horizon_s', sa.Integer(), nullable=True),
        sa.Column('pnl', tradewarden.ledger.schema.DecimalText(), nullable=True),
        sa.Column('return_pct', sa.Float(), nullable=True),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('agent_decision_id', 'kind', 'symbol', name='uq_decision_outcomes_decision')
    )
    op.create_table('experiment_observations',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('experiment_id', sa.Integer(), nullable=False),
        sa.Column('arm', sa.String(length=16), nullable=False),
        sa.Column('agent_decision_id', sa.Integer(), nullable=True),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('value', sa.Float(), nullable=True),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_experiment_observations_exp', 'experiment_observations', ['experiment_id'], unique=False)
    op.create_table('experiments',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('scope', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=96), nullable=False),
        sa.Column('parameter', sa.String(length=64), nullable=False),
        sa.Column('control', sa.Text(), nullable=False),
        sa.Column('variant', sa.Text(), nullable=False),
        sa.Column('mode', sa.String(length=16), nullable=False),
        sa.Column('allocation', sa.Float(), nullable=False),
        sa.Column('metric', sa.String(length=32), nullable=False),
        sa.Column('test', sa.String(length=32), nullable=False),
        sa.Column('alpha', sa.Float(), nullable=False),
        sa.Column('min_effect', sa.Float(), nullable=False),
        sa.Column('min_samples', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('proposed_by', sa.String(length=64), nullable=False),
        sa.Column('rationale', sa.Text(), nullable=True),
        sa.Column('created_ts', sa.Integer(), nullable=False),
        sa.Column('started_ts', sa.Integer(), nullable=True),
        sa.Column('ended_ts', sa.Integer(), nullable=True),
        sa.Column('result', sa.Text(), nullable=True),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_experiments_scope_status', 'experiments', ['scope', 'status'], unique=False)
    op.create_table('memory_embeddings',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('agent_decision_id', sa.Integer(), nullable=True),
        sa.Column('deployment_id', sa.String(length=32), nullable=True),
        sa.Column('symbol', sa.String(length=32), nullable=True),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('summary', sa.Text(), nullable=False),
        sa.Column('model', sa.String(length=64), nullable=False),
        sa.Column('dim', sa.Integer(), nullable=False),
        sa.Column('vector', sa.LargeBinary(), nullable=False),
        sa.Column('outcome', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_memory_embeddings_model', 'memory_embeddings', ['model', 'deployment_id'], unique=False)
    op.create_table('reasoning_calls',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.Column('deployment_id', sa.String(length=32), nullable=True),
        sa.Column('agent_decision_id', sa.Integer(), nullable=True),
        sa.Column('event_id', sa.Integer(), nullable=True),
        sa.Column('cycle', sa.String(length=96), nullable=False),
        sa.Column('call_type', sa.String(length=32), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('model', sa.String(length=64), nullable=False),
        sa.Column('autonomy_level', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('request', sa.Text(), nullable=False),
        sa.Column('response', sa.Text(), nullable=True),
        sa.Column('parsed', sa.Text(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('outcome', sa.String(length=32), nullable=True),
        sa.Column('latency_ms', sa.Integer(), nullable=True),
        sa.Column('input_tokens', sa.Integer(), nullable=False),
        sa.Column('output_tokens', sa.Integer(), nullable=False),
        sa.Column('cache_read_tokens', sa.Integer(), nullable=False),
        sa.Column('cache_write_tokens', sa.Integer(), nullable=False),
        sa.Column('cost_usd', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_reasoning_calls_decision', 'reasoning_calls', ['agent_decision_id'], unique=False)
    op.create_index('ix_reasoning_calls_ts', 'reasoning_calls', ['ts'], unique=False)
    op.create_table('reflections',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('scope', sa.String(length=32), nullable=False),
        sa.Column('day', sa.String(length=10), nullable=False),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.Column('model', sa.String(length=64), nullable=False),
        sa.Column('summary', sa.Text(), nullable=False),
        sa.Column('content', sa.Text(), nullable=False),
        sa.Column('proposals', sa.Text(), nullable=True),
        sa.Column('call_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('scope', 'day', name='uq_reflections_scope_day')
    )
    op.add_column('reasoning_costs', sa.Column('call_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('reasoning_costs', schema=None) as batch_op:
        batch_op.drop_column('call_id')
    op.drop_table('reflections')
    op.drop_index('ix_reasoning_calls_ts', table_name='reasoning_calls')
    op.drop_index('ix_reasoning_calls_decision', table_name='reasoning_calls')
    op.drop_table('reasoning_calls')
    op.drop_index('ix_memory_embeddings_model', table_name='memory_embeddings')
    op.drop_table('memory_embeddings')
    op.drop_index('ix_experiments_scope_status', table_name='experiments')
    op.drop_table('experiments')
    op.drop_index('ix_experiment_observations_exp', table_name='experiment_observations')
    op.drop_table('experiment_observations')
    op.drop_table('decision_outcomes')
    op.drop_table('agent_memory')
