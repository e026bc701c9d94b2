"""The ledger: SQLAlchemy Core schema, Alembic migrations, and the run writer."""

from tradewarden.ledger.lifecycle import RunInterrupted, StopSignals
from tradewarden.ledger.store import (
    DEFAULT_DB,
    Ledger,
    LedgerError,
    display_db,
    dumps,
    mark_lost_runs,
    open_engine,
    resolve_url,
    save_summary,
)

__all__ = ["DEFAULT_DB", "Ledger", "LedgerError", "RunInterrupted", "StopSignals", "display_db",
           "dumps", "mark_lost_runs", "open_engine", "resolve_url", "save_summary"]
