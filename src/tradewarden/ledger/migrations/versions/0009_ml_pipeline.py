"""the ML pipeline's record: predictions, model promotions and rollbacks, drift reports

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 13:40:00.000000

Adds ``ml_predictions`` (scores per symbol and as-of close, with the model version and
the feature values' hash), ``ml_model_events`` (every registration, promotion and
rollback with its reason) and ``ml_drift_reports`` only: an older ledger is brought up
to date in place, its rows untouched.
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ml_drift_reports',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.Column('model_name', sa.String(length=64), nullable=False),
        sa.Column('model_version', sa.String(length=32), nullable=False),
        sa.Column('as_of_ts', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('features', sa.Text(), nullable=False),
        sa.Column('predictions', sa.Text(), nullable=True),
        sa.Column('performance', sa.Text(), nullable=True),
        sa.Column('breaches', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_ml_drift_reports_model', 'ml_drift_reports', ['model_name', 'as_of_ts'], unique=False)
    op.create_table('ml_model_events',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('ts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.Column('model_name', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('from_version', sa.String(length=32), nullable=True),
        sa.Column('to_version', sa.String(length=32), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_ml_model_events_model', 'ml_model_events', ['model_name', 'id'], unique=False)
    op.create_table('ml_predictions',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('model_name', sa.String(length=64), nullable=False),
        sa.Column('model_version', sa.String(length=32), nullable=False),
        sa.Column('as_of_ts', sa.Integer(), nullable=False),
        sa.Column('symbol', sa.String(length=32), nullable=False),
        sa.Column('score', sa.Float(), nullable=False),
        sa.Column('rank', sa.Integer(), nullable=True),
        sa.Column('feature_hash', sa.String(length=64), nullable=False),
        sa.Column('job', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('model_name', 'model_version', 'as_of_ts', 'symbol', 'job', name='uq_ml_predictions_row')
    )
    op.create_index('ix_ml_predictions_asof', 'ml_predictions', ['model_name', 'as_of_ts'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_ml_predictions_asof', table_name='ml_predictions')
    op.drop_table('ml_predictions')
    op.drop_index('ix_ml_model_events_model', table_name='ml_model_events')
    op.drop_table('ml_model_events')
    op.drop_index('ix_ml_drift_reports_model', table_name='ml_drift_reports')
    op.drop_table('ml_drift_reports')
