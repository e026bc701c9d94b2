"""pgvector on a PostgreSQL ledger: the ``memory_embeddings.embedding`` column.

Semantic recall (:mod:`tradewarden.agent.recall`) searches exactly with pgvector's
``<=>`` (cosine distance) where the column exists, and with numpy over the stored
float32 bytes everywhere else; both give the same order. The column is added by
migration 0011 on an existing ledger and by :func:`tradewarden.ledger.migrate.create_at_head`
on a new one, in both cases only on PostgreSQL where the ``vector`` extension is
available and this role may create it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["PGVECTOR_COLUMN", "Vector", "add_embedding_column"]


class Vector(sa.types.UserDefinedType):
    """pgvector's ``vector`` type, known to SQLAlchemy so that reflecting a ledger that
    has the column reads it (instead of warning about an unknown type)."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:  # noqa: D102
        return "vector"


def _register() -> None:
    from sqlalchemy.dialects.postgresql.base import ischema_names
    ischema_names.setdefault("vector", Vector)


_register()

#: The pgvector column of ``memory_embeddings``: type ``vector`` with no fixed
#: dimension (embedding models differ; a search filters by model first).
PGVECTOR_COLUMN = "embedding"


def add_embedding_column(conn: Connection) -> bool:
    """Create the ``vector`` extension and the ``embedding`` column where possible.

    Parameters
    ----------
    conn : sqlalchemy.engine.Connection
        In a transaction; a refused ``CREATE EXTENSION`` is rolled back to a savepoint
        and leaves the transaction usable.

    Returns
    -------
    bool
        Whether the column exists now (``False`` on SQLite, without the extension, or
        without the right to create it).
    """
    if conn.dialect.name != "postgresql":
        return False
    available = conn.execute(sa.text(
        "select 1 from pg_available_extensions where name = 'vector'")).first()
    if available is None:
        return False
    savepoint = conn.begin_nested()
    try:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError:
        savepoint.rollback()
        return False
    savepoint.commit()
    conn.execute(sa.text(f"ALTER TABLE memory_embeddings ADD COLUMN IF NOT EXISTS "
                         f"{PGVECTOR_COLUMN} vector"))
    return True
