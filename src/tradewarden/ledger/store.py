"""Ledger access: open (and migrate) the database, create and close runs, write rows.

High-volume tables (``decisions``, ``equity``) are written in columnar batches: on
SQLite through Arrow ADBC bulk ingest (one prepared INSERT bound from Arrow arrays in
C), elsewhere through DBAPI ``executemany``. Everything else goes through SQLAlchemy
Core. No statement is issued per bar: the engine hands over one batch per chunk.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pyarrow as pa
from sqlalchemy import create_engine, event, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from tradewarden.domain import Fill, Order, Trade, iso
from tradewarden.ledger import schema

DEFAULT_DB = "warden-out/ledger.db"


def utcnow_iso() -> str:
    """Wall-clock UTC time as ISO text: run bookkeeping only, never trading time."""
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class LedgerError(RuntimeError):
    """The ledger cannot be opened or written; the message names the database."""


def resolve_url(db: str | os.PathLike[str]) -> str:
    """Turn ``--db`` (a file path or an SQLAlchemy URL) into a URL.

    Raises
    ------
    LedgerError
        If the value is neither a path nor a valid URL.
    """
    text = str(db)
    if "://" in text:
        try:
            make_url(text)
        except ArgumentError as exc:
            raise LedgerError(f"--db {text!r}: not a valid SQLAlchemy URL ({exc})") from None
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _sqlite_path(url: str) -> str | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return None
    return u.database or ":memory:"


def open_engine(db: str | os.PathLike[str], *, migrate: bool = True) -> Engine:
    """Open the ledger database and bring its schema to the latest migration.

    SQLite files get ``journal_mode=WAL``, ``synchronous=NORMAL`` and a busy timeout.

    Raises
    ------
    LedgerError
        If the file's directory cannot be created or written, or the database
        cannot be opened or migrated; the message names the database.
    """
    url = resolve_url(db)
    path = _sqlite_path(url)
    if path and path != ":memory:":
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"--db {db}: cannot create directory {p.parent}: {exc.strerror}") from None
        if not os.access(p.parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
            raise LedgerError(f"--db {db}: {p if p.exists() else p.parent} is not writable")
    try:
        engine = create_engine(url, future=True)
    except Exception as exc:  # driver missing, bad options
        raise LedgerError(f"--db {db}: cannot open ({exc})") from None
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()
    if migrate:
        try:
            from tradewarden.ledger.migrate import upgrade
            upgrade(engine)
        except OperationalError as exc:
            raise LedgerError(f"--db {db}: cannot open or migrate: {exc.orig}") from None
    return engine


def _jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if np.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    return str(v)


def dumps(obj: Any) -> str:
    """JSON with Decimal as string and non-finite floats as null."""
    return json.dumps(obj, default=_jsonable, sort_keys=True, allow_nan=False)


class Ledger:
    """The audited record of runs.

    Parameters
    ----------
    db : str or path
        SQLite file path or SQLAlchemy URL (``postgresql+psycopg://...``).
    """

    def __init__(self, db: str | os.PathLike[str]) -> None:
        self.db = str(db)
        self.engine = open_engine(db)
        self.url = str(self.engine.url)
        self._adbc = None

    # -- runs -------------------------------------------------------------------------
    def create_run(self, row: Mapping[str, Any]) -> None:
        """Insert a run row with ``status='running'``."""
        values = dict(row)
        values.setdefault("status", "running")
        values.setdefault("started_at", utcnow_iso())
        with self.engine.begin() as conn:
            conn.execute(schema.runs.insert().values(**values))

    def finish_run(self, run_id: str, **values: Any) -> None:
        """Update a run row (status, counts, completion time, error)."""
        with self.engine.begin() as conn:
            conn.execute(update(schema.runs).where(schema.runs.c.run_id == run_id).values(**values))

    def run_status(self, run_id: str) -> str | None:
        """Return the run's status, or ``None`` if the run does not exist."""
        with self.engine.connect() as conn:
            return conn.execute(select(schema.runs.c.status)
                                .where(schema.runs.c.run_id == run_id)).scalar_one_or_none()

    # -- rows --------------------------------------------------------------------------
    def write_columns(self, table: str, columns: Mapping[str, Any]) -> None:
        """Append a columnar batch to ``decisions`` or ``equity``.

        Parameters
        ----------
        table : {"decisions", "equity"}
        columns : mapping of column name to array-like, all the same length
        """
        tbl = pa.table(dict(columns))
        if tbl.num_rows == 0:
            return
        path = _sqlite_path(self.url)
        if path is not None and path != ":memory:":
            self._ingest(path, table, tbl)
        else:
            rows = tbl.to_pylist()
            with self.engine.begin() as conn:
                conn.execute(schema.metadata.tables[table].insert(), rows)

    def _ingest(self, path: str, table: str, tbl: pa.Table) -> None:
        import adbc_driver_sqlite.dbapi as adbc

        if self._adbc is None:
            self._adbc = adbc.connect(path)
        cur = self._adbc.cursor()
        try:
            cur.adbc_ingest(table, tbl, mode="append")
        finally:
            cur.close()
        self._adbc.commit()

    def write_orders(self, run_id: str, orders: Iterable[Order]) -> None:
        """Insert submitted orders."""
        rows = [{
            "run_id": run_id, "client_order_id": o.client_order_id, "decision_seq": o.decision_seq,
            "symbol": o.symbol, "side": o.side.value, "type": o.type.value, "role": o.role.value,
            "quantity": o.quantity, "price": o.price, "stop_price": o.stop_price,
            "parent_id": o.parent_id, "status": o.status.value, "status_reason": o.status_reason,
            "created_ts": o.created_ts, "created_time": iso(o.created_ts), "updated_ts": o.created_ts,
        } for o in orders]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(schema.orders.insert(), rows)

    def update_orders(self, run_id: str, updates: Iterable[tuple[str, str, str, int]]) -> None:
        """Apply ``(client_order_id, status, reason, ts)`` status changes in order."""
        rows = [{"r": run_id, "c": c, "s": s, "why": why, "t": t} for c, s, why, t in updates]
        if not rows:
            return
        from sqlalchemy import bindparam
        o = schema.orders
        stmt = (update(o).where(o.c.run_id == bindparam("r"), o.c.client_order_id == bindparam("c"))
                .values(status=bindparam("s"), status_reason=bindparam("why"),
                        updated_ts=bindparam("t")))
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)

    def write_fills(self, run_id: str, fills: Iterable[tuple[int, Fill]]) -> None:
        """Insert ``(fill_seq, Fill)`` pairs."""
        rows = [{
            "run_id": run_id, "fill_seq": seq, "client_order_id": f.client_order_id,
            "symbol": f.symbol, "side": f.side.value, "role": f.role.value, "quantity": f.quantity,
            "price": f.price, "reference_price": f.reference_price, "fee": f.fee,
            "liquidity": f.liquidity, "ts": f.ts, "time": iso(f.ts),
        } for seq, f in fills]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(schema.fills.insert(), rows)

    def write_trades(self, run_id: str, trades: Iterable[Trade]) -> None:
        """Insert closed round trips."""
        rows = []
        for t in trades:
            cost = t.entry_price * t.quantity
            rows.append({
                "run_id": run_id, "trade_id": t.trade_id, "symbol": t.symbol, "side": t.side,
                "quantity": t.quantity, "entry_ts": t.entry_ts, "entry_time": iso(t.entry_ts),
                "entry_price": t.entry_price, "exit_ts": t.exit_ts, "exit_time": iso(t.exit_ts),
                "exit_price": t.exit_price, "fees": t.fees, "pnl": t.pnl,
                "return_pct": float(t.pnl / cost * 100) if cost else None,
                "exit_reason": t.exit_reason.value, "entry_order_id": t.entry_order_id,
                "exit_order_id": t.exit_order_id, "holding_seconds": t.exit_ts - t.entry_ts,
            })
        if rows:
            with self.engine.begin() as conn:
                conn.execute(schema.trades.insert(), rows)

    def write_events(self, run_id: str, events: Iterable[tuple[int, int | None, str, str | None, str]]) -> None:
        """Insert ``(seq, ts, kind, symbol, message)`` events (halts, resets, data, errors)."""
        rows = [{"run_id": run_id, "seq": s, "ts": ts, "kind": k, "symbol": sym, "message": m}
                for s, ts, k, sym, m in events]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(schema.events.insert(), rows)

    def close(self) -> None:
        """Release connections."""
        if self._adbc is not None:
            self._adbc.close()
            self._adbc = None
        self.engine.dispose()
