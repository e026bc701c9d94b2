"""The ledger: SQLAlchemy Core schema, Alembic migrations, and the run writer."""

from tradewarden.ledger.store import (
    DEFAULT_DB,
    Ledger,
    LedgerError,
    dumps,
    open_engine,
    resolve_url,
)

__all__ = ["DEFAULT_DB", "Ledger", "LedgerError", "dumps", "open_engine", "resolve_url"]
