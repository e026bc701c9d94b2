"""Ledger access: open (and migrate) the database, create and close runs, write rows.

Rows are written in columnar batches: on SQLite through Arrow ADBC bulk ingest (one
prepared INSERT bound from Arrow arrays in C), elsewhere through SQLAlchemy Core
``executemany``. Run rows and reads go through SQLAlchemy Core. No statement is issued
per bar: the engine hands over one batch per chunk, and on SQLite a chunk's batches
(decisions, equity, orders, fills, trades, events) are one transaction, committed by
:meth:`Ledger.commit`: a chunk is in the ledger whole or not at all.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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


# Epoch seconds whose ISO text is ``YYYY-MM-DDTHH:MM:SSZ`` with a four-digit year
# (1970-01-01T00:00:00Z .. 9999-12-31T23:59:59Z): the range the Arrow path formats.
_ISO_MIN_TS, _ISO_MAX_TS = 0, 253_402_300_799


def iso_list(ts: list[int]) -> list[str]:
    """UTC epoch seconds to ``YYYY-MM-DDTHH:MM:SSZ`` strings, vectorised."""
    text = np.datetime_as_string(np.asarray(ts, dtype="datetime64[s]"), unit="s")
    return [t + "Z" for t in text.tolist()]


def iso_array(ts: pa.Array) -> pa.Array:
    """UTC epoch seconds to ``YYYY-MM-DDTHH:MM:SSZ`` text, as an Arrow string array.

    The same text as :func:`iso_list`, without a Python string per value: Arrow formats
    the timestamps in C and the separator and ``Z`` are patched into the bytes.

    Parameters
    ----------
    ts : pyarrow.Array of int64
        Epoch seconds.

    Returns
    -------
    pyarrow.StringArray
        One 20-character string per value. Values outside 1970..9999, and nulls, go
        through :func:`iso_list` instead, so the result is always that function's text.
    """
    n = len(ts)
    if n == 0 or ts.null_count:
        return pa.array(iso_list(ts.to_pylist()), pa.string())
    bounds = pc.min_max(ts)
    if bounds["min"].as_py() < _ISO_MIN_TS or bounds["max"].as_py() > _ISO_MAX_TS:
        return pa.array(iso_list(ts.to_pylist()), pa.string())
    text = ts.cast(pa.timestamp("s")).cast(pa.string())     # "YYYY-MM-DD HH:MM:SS"
    offsets, data = text.buffers()[1:]
    if text.offset or np.frombuffer(offsets, np.int32, n + 1)[-1] != 19 * n:  # not fixed width
        return pa.array(iso_list(ts.to_pylist()), pa.string())
    out = np.empty((n, 20), np.uint8)
    out[:, :19] = np.frombuffer(data, np.uint8, 19 * n).reshape(n, 19)
    out[:, 10] = 84     # "T"
    out[:, 19] = 90     # "Z"
    return pa.StringArray.from_buffers(n, pa.py_buffer(np.arange(0, 20 * n + 1, 20, dtype=np.int32)),
                                       pa.py_buffer(out), null_count=0)


def _int_array(values: list[Any]) -> pa.Array:
    return pa.array(values, pa.int64())


def _repeat(text: str, n: int) -> pa.Array:
    """A string column holding ``text`` ``n`` times (no Python list of ``n`` items)."""
    return pa.repeat(pa.scalar(text, pa.string()), n)


def _decimal_text(values: Any, nullable: bool) -> list[str | None]:
    """Decimals (or other values) to ``str``, ``None`` kept as ``None``."""
    if not nullable:
        text = list(map(str, values))
        if "None" not in text:     # no None (the common case: a NOT NULL column)
            return text
    return [None if v is None else str(v) for v in values]


@cache
def _columns(table: str) -> tuple[tuple[str, pa.DataType, bool, bool], ...]:
    """``(name, Arrow type, is exact decimal, nullable)`` for each column of ``table``."""
    return tuple((c.name, _arrow_type(c), isinstance(c.type, schema.DecimalText), bool(c.nullable))
                 for c in schema.metadata.tables[table].columns)


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
        path = _sqlite_path(self.url)
        # SQLite file: batches go through Arrow bulk ingest; otherwise executemany.
        self._bulk_path = path if path is not None and path != ":memory:" else None
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
        self._end_transaction("COMMIT")

    def _rollback(self) -> None:
        self._end_transaction("ROLLBACK")

    def _end_transaction(self, verb: str) -> None:
        if self._in_txn:
            cur = self._adbc.cursor()
            try:
                cur.execute(verb)
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
        if self._bulk_path is not None:
            self._ingest(self._bulk_path, table, tbl)
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

    def write_rows(self, table: str, columns: Mapping[str, Any]) -> None:
        """Append a batch given as ``{column: values}``.

        SQLite: one Arrow bulk ingest in the open transaction, visible after
        :meth:`commit`; other databases: executemany in its own transaction.

        Parameters
        ----------
        table : str
            Name of a ledger table.
        columns : mapping of column name to list or pyarrow.Array
            All the same length; missing columns are NULL. Decimals become exact text
            on SQLite. An Arrow array is used as is on SQLite (cast to the column's
            type if needed) and turned into Python values elsewhere.
        """
        n = len(next(iter(columns.values()))) if columns else 0
        if n == 0:
            return
        path = self._bulk_path
        if path is not None:
            arrays = []
            for name, typ, exact, nullable in _columns(table):
                values = columns.get(name)
                if values is None:
                    arrays.append(pa.nulls(n, typ))
                elif isinstance(values, pa.Array):
                    arrays.append(values if values.type == typ else values.cast(typ))
                elif exact:
                    arrays.append(pa.array(_decimal_text(values, nullable), pa.string()))
                else:
                    arrays.append(pa.array(values, typ))
            names = [c[0] for c in _columns(table)]
            self._do(self._ingest, path, table, pa.Table.from_arrays(arrays, names=names))
        else:
            names = list(columns)
            lists = [v.to_pylist() if isinstance(v, pa.Array) else v for v in columns.values()]
            rows = [dict(zip(names, vals)) for vals in zip(*lists)]
            self._do(self._execute, schema.metadata.tables[table].insert(), rows)

    def _execute(self, stmt: Any, rows: list[dict[str, Any]]) -> None:
        self._commit()   # SQLite has one writer: the bulk transaction goes first
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)

    def write_orders(self, run_id: str, orders: list[Order]) -> None:
        """Insert orders in their current state (submitted, or already final).

        Enum members are ``str`` subclasses; they are written as their values."""
        if not orders:
            return
        created_ts = _int_array([o.created_ts for o in orders])
        self.write_rows("orders", {
            "run_id": _repeat(run_id, len(orders)),
            "client_order_id": [o.client_order_id for o in orders],
            "decision_seq": [o.decision_seq for o in orders],
            "symbol": [o.symbol for o in orders],
            "side": [o.side for o in orders],
            "type": [o.type for o in orders],
            "role": [o.role for o in orders],
            "quantity": [o.quantity for o in orders],
            "price": [o.price for o in orders],
            "stop_price": [o.stop_price for o in orders],
            "parent_id": [o.parent_id for o in orders],
            "status": [o.status for o in orders],
            "status_reason": [o.status_reason for o in orders],
            "created_ts": created_ts,
            "created_time": iso_array(created_ts),
            "updated_ts": [o.updated_ts or o.created_ts for o in orders],
        })

    def update_orders(self, run_id: str, updates: list[tuple[str, str, str, int]]) -> None:
        """Apply ``(client_order_id, status, reason, ts)`` status changes in order."""
        if not updates:
            return
        path = self._bulk_path
        if path is not None:
            params = [(s, why, t, run_id, c) for c, s, why, t in updates]
            self._do(self._update_sqlite, path, params)
            return
        from sqlalchemy import bindparam
        rows = [{"r": run_id, "c": c, "s": s, "why": why, "t": t} for c, s, why, t in updates]
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
        ts = _int_array([f.ts for f in fs])
        self.write_rows("fills", {
            "run_id": _repeat(run_id, len(fs)),
            "fill_seq": [q for q, _ in fills],
            "client_order_id": [f.client_order_id for f in fs],
            "symbol": [f.symbol for f in fs],
            "side": [f.side for f in fs],
            "role": [f.role for f in fs],
            "quantity": [f.quantity for f in fs],
            "price": [f.price for f in fs],
            "reference_price": [f.reference_price for f in fs],
            "fee": [f.fee for f in fs],
            "liquidity": [f.liquidity for f in fs],
            "ts": ts,
            "time": iso_array(ts),
        })

    def write_trades(self, run_id: str, trades: list[Trade]) -> None:
        """Insert closed round trips (``return_pct`` = pnl / entry notional * 100)."""
        if not trades:
            return
        quantity = [t.quantity for t in trades]
        entry_price = [t.entry_price for t in trades]
        pnl = [t.pnl for t in trades]
        entry_ts = _int_array([t.entry_ts for t in trades])
        exit_ts = _int_array([t.exit_ts for t in trades])
        self.write_rows("trades", {
            "run_id": _repeat(run_id, len(trades)), "trade_id": [t.trade_id for t in trades],
            "symbol": [t.symbol for t in trades], "side": [t.side for t in trades],
            "quantity": quantity, "entry_ts": entry_ts,
            "entry_time": iso_array(entry_ts), "entry_price": entry_price,
            "exit_ts": exit_ts, "exit_time": iso_array(exit_ts),
            "exit_price": [t.exit_price for t in trades], "fees": [t.fees for t in trades],
            "pnl": pnl,
            "return_pct": [float(p / (e * q) * 100) for p, e, q in zip(pnl, entry_price, quantity)],
            "exit_reason": [t.exit_reason for t in trades],
            "entry_order_id": [t.entry_order_id for t in trades],
            "exit_order_id": [t.exit_order_id for t in trades],
            "holding_seconds": pc.subtract_checked(exit_ts, entry_ts),
        })

    def write_events(self, run_id: str, events: list[tuple[int, int | None, str, str | None, str]]) -> None:
        """Insert ``(seq, ts, kind, symbol, message)`` events (halts, resets, data, errors)."""
        if not events:
            return
        self.write_rows("events", {"run_id": _repeat(run_id, len(events)),
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
