"""Ledger access: open (and migrate) the database, create and close runs, write rows.

High-volume tables (``decisions``, ``equity``) are written in columnar batches: on
SQLite through Arrow ADBC bulk ingest (one prepared INSERT bound from Arrow arrays in
C), elsewhere through DBAPI ``executemany``. Everything else goes through SQLAlchemy
Core. No statement is issued per bar: the engine hands over one batch per chunk, and
on SQLite a chunk's batches (decisions, equity, orders, fills, trades, events) are one
transaction, committed by :meth:`Ledger.commit`: a chunk is in the ledger whole or not
at all.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
from sqlalchemy import create_engine, event, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from tradewarden.domain import Fill, Order, Trade
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
            # Takes effect only on a new, empty file. Large pages make the append-only
            # decisions B-tree split less often (measured ~0.2 us less per row than 8 KiB).
            cur.execute("PRAGMA page_size=65536")
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


def _arrow_type(col) -> pa.DataType:
    from sqlalchemy import Float, Integer
    if isinstance(col.type, Integer):
        return pa.int64()
    if isinstance(col.type, Float):
        return pa.float64()
    return pa.string()


def _arrow_schema(table) -> pa.Schema:
    return pa.schema([pa.field(c.name, _arrow_type(c)) for c in table.columns])


_ORDER_FIELDS = ("client_order_id", "decision_seq", "symbol", "side", "type", "role", "quantity",
                 "price", "stop_price", "parent_id", "status", "status_reason", "created_ts")
_FILL_FIELDS = ("client_order_id", "symbol", "side", "role", "quantity", "price", "reference_price",
                "fee", "liquidity", "ts")


def iso_list(ts: list[int]) -> list[str]:
    """UTC epoch seconds to ``YYYY-MM-DDTHH:MM:SSZ`` strings, vectorised."""
    text = np.datetime_as_string(np.asarray(ts, dtype="datetime64[s]"), unit="s")
    return [t + "Z" for t in text.tolist()]


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


def _adbc_connect(path: str) -> Any:
    """Open the ADBC SQLite connection used for bulk ingest.

    It runs in autocommit mode so that its pragmas can be set; :class:`Ledger` opens
    and commits the transactions itself. ``synchronous=NORMAL`` matches the SQLAlchemy
    connections: in WAL mode a commit is durable against a crash of the process, and
    fsync happens at checkpoints rather than at every commit.
    """
    import adbc_driver_sqlite.dbapi as adbc

    conn = adbc.connect(path, autocommit=True)
    cur = conn.cursor()
    try:
        for pragma in ("PRAGMA synchronous=NORMAL", "PRAGMA busy_timeout=10000"):
            cur.execute(pragma)
            if cur.description:
                cur.fetchall()
    finally:
        cur.close()
    return conn


class _Writer:
    """One background thread that applies ledger writes in submission order.

    Bulk ingest runs in C with the GIL released, so the engine's Python loop keeps
    going on one core while SQLite works on another. The queue is bounded, so at
    most a few chunks (about seven jobs each) are in flight, so memory stays flat. The first failure is kept
    and re-raised by the next :meth:`submit` or :meth:`drain`.
    """

    def __init__(self, depth: int = 24) -> None:
        import queue
        import sys
        import threading
        # The writer thread wakes when SQLite finishes a batch; with the default 5 ms
        # switch interval it would wait that long for the GIL each time.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.0005))
        self._q: "queue.Queue" = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self._t = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while True:
            job = self._q.get()
            try:
                if job is None:
                    return
                if self.error is None:
                    job()
            except BaseException as exc:  # kept and re-raised in the submitting thread
                self.error = exc
            finally:
                self._q.task_done()

    def _check(self) -> None:
        if self.error is not None:
            err, self.error = self.error, None
            raise LedgerError(f"ledger write failed: {type(err).__name__}: {err}") from err

    def submit(self, job: Any) -> None:
        """Queue ``job`` (blocks while the queue is full); raise an earlier failure."""
        self._check()
        self._q.put(job)

    def drain(self) -> None:
        """Wait for every queued job; raise the first failure."""
        self._q.join()
        self._check()

    def stop(self) -> None:
        """End the thread after the queued jobs."""
        self._q.put(None)
        self._t.join()


class Ledger:
    """The audited record of runs.

    Parameters
    ----------
    db : str or path
        SQLite file path or SQLAlchemy URL (``postgresql+psycopg://...``).
    background : bool
        Apply batch writes on a background thread (in order). Run-level updates
        (:meth:`create_run`, :meth:`finish_run`) wait for every pending write first,
        so a run is only marked completed once all its rows are in.
    """

    def __init__(self, db: str | os.PathLike[str], *, background: bool = False) -> None:
        self.db = str(db)
        self.engine = open_engine(db)
        self.url = str(self.engine.url)
        self._adbc = None
        self._in_txn = False
        self._writer = _Writer() if background else None

    def _do(self, fn: Any, *args: Any) -> None:
        if self._writer is None:
            fn(*args)
        else:
            self._writer.submit(lambda: fn(*args))

    def drain(self) -> None:
        """Wait until every submitted write is applied and committed; raise the first failure.

        Raises
        ------
        LedgerError
            If a background write failed.
        """
        self.commit()
        if self._writer is not None:
            self._writer.drain()

    def commit(self) -> None:
        """Commit the batches written since the last commit as one transaction.

        The engine calls this once per chunk. With a writer thread the commit is queued
        behind the chunk's batches, so this does not wait.
        """
        self._do(self._commit)

    def _commit(self) -> None:
        if self._in_txn:
            cur = self._adbc.cursor()
            try:
                cur.execute("COMMIT")
            finally:
                cur.close()
            self._in_txn = False

    def _rollback(self) -> None:
        if self._in_txn:
            cur = self._adbc.cursor()
            try:
                cur.execute("ROLLBACK")
            finally:
                cur.close()
            self._in_txn = False

    # -- runs -------------------------------------------------------------------------
    def create_run(self, row: Mapping[str, Any]) -> None:
        """Insert a run row with ``status='running'``."""
        self.drain()
        values = dict(row)
        values.setdefault("status", "running")
        values.setdefault("started_at", utcnow_iso())
        with self.engine.begin() as conn:
            conn.execute(schema.runs.insert().values(**values))

    def finish_run(self, run_id: str, **values: Any) -> None:
        """Update a run row (status, counts, completion time, error), after every
        pending write has been applied."""
        try:
            self.drain()
        except LedgerError:
            if values.get("status") != "failed":
                raise
        with self.engine.begin() as conn:
            conn.execute(update(schema.runs).where(schema.runs.c.run_id == run_id).values(**values))

    def run_status(self, run_id: str) -> str | None:
        """Return the run's status, or ``None`` if the run does not exist."""
        with self.engine.connect() as conn:
            return conn.execute(select(schema.runs.c.status)
                                .where(schema.runs.c.run_id == run_id)).scalar_one_or_none()

    # -- rows --------------------------------------------------------------------------
    def write_columns(self, table: str, columns: Mapping[str, Any]) -> None:
        """Append a columnar batch to ``decisions`` or ``equity`` (visible after :meth:`commit`).

        Parameters
        ----------
        table : {"decisions", "equity"}
        columns : mapping of column name to array-like, all the same length
        """
        tbl = pa.table(dict(columns))
        if tbl.num_rows == 0:
            return
        self._do(self._write_table, table, tbl)

    def _write_table(self, table: str, tbl: pa.Table) -> None:
        path = _sqlite_path(self.url)
        if path is not None and path != ":memory:":
            self._ingest(path, table, tbl)
        else:
            rows = tbl.to_pylist()
            with self.engine.begin() as conn:
                conn.execute(schema.metadata.tables[table].insert(), rows)

    def _in_transaction(self, path: str, work: Any) -> None:
        """Run ``work(cursor)`` on the bulk connection inside the open transaction
        (begun here if none is open).

        A failure rolls the whole uncommitted transaction back, so a chunk is never
        half-written.
        """
        if self._adbc is None:
            self._adbc = _adbc_connect(path)
        cur = self._adbc.cursor()
        try:
            if not self._in_txn:
                cur.execute("BEGIN IMMEDIATE")
                self._in_txn = True
            work(cur)
        except BaseException:
            cur.close()
            self._rollback()
            raise
        cur.close()

    def _ingest(self, path: str, table: str, tbl: pa.Table) -> None:
        self._in_transaction(path, lambda cur: cur.adbc_ingest(table, tbl, mode="append"))

    def write_rows(self, table: str, columns: dict[str, list[Any]]) -> None:
        """Append a batch given as ``{column: list of values}`` (Decimals become exact text
        on SQLite). SQLite: one Arrow bulk ingest in the open transaction, visible after
        :meth:`commit`; other databases: executemany in its own transaction."""
        n = len(next(iter(columns.values()))) if columns else 0
        if n == 0:
            return
        tbl = schema.metadata.tables[table]
        path = _sqlite_path(self.url)
        if path is not None and path != ":memory:":
            arrays = {}
            for c in tbl.columns:
                values = columns.get(c.name)
                if values is None:
                    arrays[c.name] = pa.nulls(n, _arrow_type(c))
                elif isinstance(c.type, schema.DecimalText):
                    arrays[c.name] = pa.array([None if v is None else str(v) for v in values], pa.string())
                else:
                    arrays[c.name] = pa.array(values, _arrow_type(c))
            self._do(self._ingest, path, table, pa.table(arrays))
        else:
            names = list(columns)
            rows = [dict(zip(names, vals)) for vals in zip(*columns.values())]
            self._do(self._execute, tbl.insert(), rows)

    def _execute(self, stmt: Any, rows: list[dict[str, Any]]) -> None:
        self._commit()   # SQLite has one writer: the bulk transaction goes first
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)

    def write_orders(self, run_id: str, orders: list[Order]) -> None:
        """Insert orders in their current state (submitted, or already final).

        Enum members are ``str`` subclasses; they are written as their values."""
        if not orders:
            return
        cols: dict[str, list[Any]] = {name: [getattr(o, name) for o in orders] for name in _ORDER_FIELDS}
        cols["run_id"] = [run_id] * len(orders)
        cols["created_time"] = iso_list(cols["created_ts"])
        cols["updated_ts"] = [o.updated_ts or o.created_ts for o in orders]
        self.write_rows("orders", cols)

    def update_orders(self, run_id: str, updates: list[tuple[str, str, str, int]]) -> None:
        """Apply ``(client_order_id, status, reason, ts)`` status changes in order."""
        rows = [{"r": run_id, "c": c, "s": s, "why": why, "t": t} for c, s, why, t in updates]
        if not rows:
            return
        path = _sqlite_path(self.url)
        if path is not None and path != ":memory:":
            params = [(s, why, t, run_id, c) for c, s, why, t in updates]
            self._do(self._update_sqlite, path, params)
            return
        from sqlalchemy import bindparam
        o = schema.orders
        stmt = (update(o).where(o.c.run_id == bindparam("r"), o.c.client_order_id == bindparam("c"))
                .values(status=bindparam("s"), status_reason=bindparam("why"),
                        updated_ts=bindparam("t")))
        self._do(self._execute, stmt, rows)

    def _update_sqlite(self, path: str, params: list[tuple[Any, ...]]) -> None:
        """Apply order status changes in the open bulk transaction (one prepared UPDATE)."""
        self._in_transaction(path, lambda cur: cur.executemany(
            "UPDATE orders SET status = ?, status_reason = ?, updated_ts = ? "
            "WHERE run_id = ? AND client_order_id = ?", params))

    def write_fills(self, run_id: str, fills: list[tuple[int, Fill]]) -> None:
        """Insert ``(fill_seq, Fill)`` pairs."""
        if not fills:
            return
        fs = [f for _, f in fills]
        cols: dict[str, list[Any]] = {name: [getattr(f, name) for f in fs] for name in _FILL_FIELDS}
        cols["run_id"] = [run_id] * len(fs)
        cols["fill_seq"] = [q for q, _ in fills]
        cols["time"] = iso_list(cols["ts"])
        self.write_rows("fills", cols)

    def write_trades(self, run_id: str, trades: list[Trade]) -> None:
        """Insert closed round trips (``return_pct`` = pnl / entry notional * 100)."""
        if not trades:
            return
        entry_ts = [t.entry_ts for t in trades]
        exit_ts = [t.exit_ts for t in trades]
        self.write_rows("trades", {
            "run_id": [run_id] * len(trades), "trade_id": [t.trade_id for t in trades],
            "symbol": [t.symbol for t in trades], "side": [t.side for t in trades],
            "quantity": [t.quantity for t in trades], "entry_ts": entry_ts,
            "entry_time": iso_list(entry_ts), "entry_price": [t.entry_price for t in trades],
            "exit_ts": exit_ts, "exit_time": iso_list(exit_ts),
            "exit_price": [t.exit_price for t in trades], "fees": [t.fees for t in trades],
            "pnl": [t.pnl for t in trades],
            "return_pct": [float(t.pnl / (t.entry_price * t.quantity) * 100) for t in trades],
            "exit_reason": [t.exit_reason for t in trades],
            "entry_order_id": [t.entry_order_id for t in trades],
            "exit_order_id": [t.exit_order_id for t in trades],
            "holding_seconds": [b - a for a, b in zip(entry_ts, exit_ts)],
        })

    def write_events(self, run_id: str, events: list[tuple[int, int | None, str, str | None, str]]) -> None:
        """Insert ``(seq, ts, kind, symbol, message)`` events (halts, resets, data, errors)."""
        if not events:
            return
        self.write_rows("events", {"run_id": [run_id] * len(events),
                                   "seq": [e[0] for e in events], "ts": [e[1] for e in events],
                                   "kind": [e[2] for e in events], "symbol": [e[3] for e in events],
                                   "message": [e[4] for e in events]})

    def close(self) -> None:
        """Apply pending writes, stop the writer thread and release connections.

        Raises
        ------
        LedgerError
            If a pending background write failed.
        """
        try:
            self.drain()
        finally:
            if self._writer is not None:
                self._writer.stop()
                self._writer = None
            if self._adbc is not None:
                try:
                    self._rollback()     # only after a failure: drain committed the rest
                finally:
                    self._adbc.close()
                    self._adbc = None
            self.engine.dispose()
