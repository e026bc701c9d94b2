"""pgvector for semantic recall on PostgreSQL: memory_embeddings.embedding

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 13:45:00.000000

On PostgreSQL where the ``vector`` extension is available and can be created, adds
``memory_embeddings.embedding`` (type ``vector`` without a fixed dimension: rows of
different embedding models differ; searches filter by ``model`` first, and pgvector
compares equal dimensions only), searched exactly with ``<=>`` (cosine distance). The
little-endian float32 ``vector`` column stays the record on every backend; existing
rows get their ``embedding`` filled from it by :meth:`SemanticRecall.index`.

Elsewhere (SQLite, a server without the extension or without the right to create it)
nothing changes and recall searches the stored vectors with numpy, exactly as well.
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from tradewarden.ledger.pgvector import add_embedding_column

    add_embedding_column(op.get_bind())


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("ALTER TABLE memory_embeddings DROP COLUMN IF EXISTS embedding"))
