"""Keep the engine's ledger batches in a local SQLite spool while the primary database
(PostgreSQL in production) is unreachable, and replay them, in order and exactly once,
when it answers again.

:class:`SpoolingLedger` stands in front of a :class:`~tradewarden.ledger.store.Ledger`.
It forwards every call. The write methods of a batch (everything the engine calls
between two ``commit()`` s, see :data:`BATCH_METHODS`) are also kept, encoded at the
moment of the call, until the primary has committed them. When a write or the commit
fails because the server cannot be reached (:func:`is_unreachable`: a refused or
closed connection, a server shutting down; never a constraint or data error, which
still raises), the kept batch goes into the spool file as one SQLite transaction
(WAL, ``synchronous=FULL``: on disk when the call returns) and the proxy is
*degraded*: later batches go to the spool directly, nothing raises to the engine.
:meth:`SpoolingLedger.try_recover` replays the spool into the primary when it answers
``SELECT 1``.

Exactly once. Each spooled batch is replayed as one primary transaction: its write
calls, then a marker row in ``daemon_events`` (kind :data:`MARKER_KIND`, status
``done``, ``dedupe_key`` ``ledger-spool:<the batch's uuid>``, unique in that table),
then the commit; only after that commit is the batch deleted from the spool. A crash
between the two leaves a batch whose marker is in the primary: the next replay finds
the marker and deletes the batch without writing it again. The marker is in the same
transaction as the rows, so it is there exactly when they are. The one outcome the
marker cannot settle is a live batch whose COMMIT was cut off (the server may have
committed it before the connection dropped): such a batch is spooled as *uncertain*,
and before replaying it the primary is searched for its first inserted row (the
primary key of a decision, order, fill, trade, event, order event, engine state or
reconciliation row); found, the batch committed and is dropped. An uncertain batch
with no inserted row (only updates, which set the same values again) is replayed.

Encoding. A call is stored as its method name and its arguments as JSON, with tags
for what JSON lacks (Decimal as exact text, tuples, the domain's enums, ``Order``,
``Fill`` and ``Trade``, non-finite floats); the columns of ``write_columns`` (NumPy
and Arrow arrays, dictionary-encoded text) as one Arrow IPC stream, which keeps every
type. Arguments are encoded when the call is made, so an order that changes later is
spooled as it was written. A call whose arguments cannot be encoded raises at once,
also while the primary is up, so that an outage never meets it first.

The spool is for one process at a time (the daemon's lock per ledger sees to that)
and one thread. An SQLite primary is never spooled: SQLite is local, and a failure
there is a disk problem, raised as before.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, fields
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy import and_, select, text
from sqlalchemy import exc as sa_exc

from tradewarden.domain import Fill, Order, Trade
from tradewarden.domain.values import (
    Action,
    ExitReason,
    OrderRole,
    OrderStatus,
    OrderType,
    PositionState,
    Side,
    Verdict,
)
from tradewarden.ledger import schema
from tradewarden.ledger.store import Ledger, LedgerError, display_db, utcnow_iso

#: The write methods of a batch: kept until the primary commits them, spooled otherwise.
BATCH_METHODS = ("write_columns", "write_rows", "write_orders", "update_orders", "write_fills",
                 "write_trades", "write_events", "write_order_events", "write_engine_state",
                 "write_approvals", "finish_commands", "update_approvals",
                 "write_reconciliations", "update_reconciliations")
#: Primary methods that touch no database: passed through without committing the batch.
_PURE = frozenset({"describe"})
#: ``daemon_events.kind`` of the marker row a replayed batch leaves in the primary.
MARKER_KIND = "ledger_spool_replay"
#: Prefix of the marker's ``dedupe_key`` (followed by the batch's uuid, 32 hex digits).
MARKER_PREFIX = "ledger-spool:"
#: Version of the spool file's layout and call encoding (``spool_meta.format``).
SPOOL_FORMAT = "1"
#: SQLSTATE values (PostgreSQL) that mean the server cannot serve this connection:
#: class 08 (connection exception), 57P01-57P03 (shutting down, crashed, starting up),
#: 53300 (too many connections).
UNREACHABLE_SQLSTATES = ("57P01", "57P02", "57P03", "53300")

_ENUMS: dict[str, type[Enum]] = {c.__name__: c for c in (
    Side, OrderType, OrderRole, OrderStatus, ExitReason, PositionState, Action, Verdict)}
_RECORDS: dict[str, type] = {"Order": Order, "Fill": Fill, "Trade": Trade}
# Insert calls whose first row identifies a batch in the primary (its primary key):
# method -> (table, function of the decoded arguments giving the key's values).
_WITNESSES: dict[str, tuple[str, Callable[[list[Any], pa.Table | None], tuple[Any, ...]]]] = {
    "write_columns": ("", lambda a, t: (t.column("run_id")[0].as_py(), t.column("seq")[0].as_py())),
    "write_orders": ("orders", lambda a, t: (a[0], a[1][0].client_order_id)),
    "write_fills": ("fills", lambda a, t: (a[0], a[1][0][0])),
    "write_trades": ("trades", lambda a, t: (a[0], a[1][0].trade_id)),
    "write_events": ("events", lambda a, t: (a[0], a[1][0][0])),
    "write_order_events": ("order_events", lambda a, t: (a[0], a[1][0][0])),
    "write_engine_state": ("engine_state", lambda a, t: (a[0], a[1])),
    "write_reconciliations": ("reconciliations", lambda a, t: (a[0], a[1][0]["seq"])),
}


# -- telling an unreachable server from bad data ------------------------------------
def is_unreachable(exc: BaseException) -> bool:
    """Return whether ``exc`` says the database server cannot be reached.

    The exception and its causes (``__cause__``, then ``__context__``: a
    :class:`~tradewarden.ledger.store.LedgerError` keeps the driver's error there) are
    searched for the first SQLAlchemy DBAPI error. It means "unreachable" when
    SQLAlchemy invalidated the connection (its dialect recognised a disconnect), or
    when it is an ``OperationalError`` or ``InterfaceError`` whose SQLSTATE is absent
    (a client-side failure: connection refused, closed, timed out), in class 08, or
    one of :data:`UNREACHABLE_SQLSTATES`. A Python ``ConnectionError`` or
    ``TimeoutError`` in the chain also counts. Anything else (a unique or foreign key
    violation, bad data, a deadlock, a cancelled statement) is not, nor is any error of
    an SQLite driver (a local file: its failures are disk problems).

    Parameters
    ----------
    exc : BaseException
        What a ledger call raised.

    Returns
    -------
    bool
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, sa_exc.DBAPIError):
            orig = cur.orig
            if type(orig).__module__.split(".")[0] in ("sqlite3", "adbc_driver_sqlite"):
                return False
            if cur.connection_invalidated:
                return True
            if isinstance(cur, (sa_exc.OperationalError, sa_exc.InterfaceError)):
                code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
                return code is None or str(code).startswith("08") \
                    or str(code) in UNREACHABLE_SQLSTATES
            return False
        if isinstance(cur, (ConnectionError, TimeoutError)):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _has_db_cause(exc: BaseException) -> bool:
    """Whether a database error is in ``exc``'s chain (the primary then rolled the batch
    back), rather than a check that refused the call before anything was executed."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, sa_exc.SQLAlchemyError):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


# -- encoding a call -----------------------------------------------------------------
def _enc(v: Any) -> Any:
    """A JSON-ready form of ``v``, tagged where JSON would lose the type."""
    if v is None or isinstance(v, (bool, str)) and not isinstance(v, Enum):
        return v
    if isinstance(v, Enum):
        name = type(v).__name__
        if _ENUMS.get(name) is not type(v):
            raise TypeError(f"enum {type(v).__qualname__} is not one the spool knows")
        return {"$e": [name, v.value]}
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else {"$f": repr(f)}
    if isinstance(v, Decimal):
        return {"$d": str(v)}
    if isinstance(v, Order):
        return {"$Order": {f.name: _enc(getattr(v, f.name)) for f in fields(Order)}}
    if isinstance(v, (Fill, Trade)):
        return {f"${type(v).__name__}": [_enc(x) for x in v]}
    if isinstance(v, tuple):
        return {"$t": [_enc(x) for x in v]}
    if isinstance(v, list):
        return [_enc(x) for x in v]
    if isinstance(v, (pa.Array, pa.ChunkedArray)):
        return [_enc(x) for x in v.to_pylist()]
    if isinstance(v, np.ndarray):
        return [_enc(x) for x in v.tolist()]
    if isinstance(v, Mapping):
        if not all(isinstance(k, str) for k in v):
            raise TypeError("a mapping with keys that are not text")
        return {"$m": {k: _enc(x) for k, x in v.items()}}
    raise TypeError(f"a value of type {type(v).__qualname__}")


def _dec(v: Any) -> Any:
    """Invert :func:`_enc`."""
    if isinstance(v, list):
        return [_dec(x) for x in v]
    if not isinstance(v, dict):
        return v
    (tag, body), = v.items()
    if tag == "$d":
        return Decimal(body)
    if tag == "$t":
        return tuple(_dec(x) for x in body)
    if tag == "$m":
        return {k: _dec(x) for k, x in body.items()}
    if tag == "$e":
        return _ENUMS[body[0]](body[1])
    if tag == "$f":
        return float(body)
    if tag == "$Order":
        return Order(**{k: _dec(x) for k, x in body.items()})
    return _RECORDS[tag[1:]](*(_dec(x) for x in body))


@dataclass(frozen=True)
class _Call:
    """One write call of a batch, encoded: ``args`` JSON text, ``columns`` an Arrow IPC
    stream (``write_columns`` only)."""

    method: str
    args: str
    columns: bytes | None = None

    def decode(self) -> tuple[list[Any], pa.Table | None]:
        args = _dec(json.loads(self.args))
        table = pa.ipc.open_stream(self.columns).read_all() if self.columns is not None else None
        return args, table

    def apply(self, ledger: Any) -> None:
        """Make the call on ``ledger``."""
        args, table = self.decode()
        if table is not None:
            args = [*args, {name: table.column(name) for name in table.column_names}]
        getattr(ledger, self.method)(*args)


def _encode(method: str, args: tuple[Any, ...]) -> _Call:
    """Encode a call; raise :class:`LedgerError` naming the method if it cannot be."""
    try:
        if method == "write_columns":
            table, columns = args
            tbl = pa.table(dict(columns))
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, tbl.schema) as writer:
                writer.write_table(tbl)
            return _Call(method, json.dumps([table]), sink.getvalue().to_pybytes())
        return _Call(method, json.dumps(_enc(list(args)), allow_nan=False))
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise LedgerError(f"ledger spool: cannot keep the arguments of {method} ({exc})") from None


def _rows(columns: Mapping[str, Any]) -> int:
    """Rows of a ``write_columns`` mapping (0: the primary writes nothing)."""
    if not columns:
        return 0
    return len(next(iter(columns.values())))


# -- the spool file ------------------------------------------------------------------
@dataclass(frozen=True)
class SpooledBatch:
    """A batch waiting in the spool.

    Attributes
    ----------
    id : int
        Its place in the spool (increasing, never reused): the replay order.
    uid : str
        32 hex digits, named by its marker in the primary once replayed.
    spooled_at : int
        When it was spooled, UTC epoch seconds (the proxy's clock).
    uncertain : bool
        The primary's COMMIT of it was cut off: it may already be in the primary.
    calls : tuple of _Call
        The write calls, in the order they were made.
    """

    id: int
    uid: str
    spooled_at: int
    uncertain: bool
    calls: tuple[_Call, ...]


class Spool:
    """The spool file: an SQLite database of batches, each written in one transaction.

    The file uses WAL with ``synchronous=FULL``, so a batch is on disk (fsync'd) when
    :meth:`append` returns. Its ``spool_meta`` table names the layout version and the
    primary database the batches are for.

    Parameters
    ----------
    path : str or path
        The spool file; created, with its directory, when missing.
    db : str
        The primary database as shown (password masked): recorded in a new spool, and
        checked against an existing one that holds batches.

    Raises
    ------
    LedgerError
        The file cannot be created or opened, is not a spool of this layout version,
        or holds batches for another database.
    """

    def __init__(self, path: str | os.PathLike[str], db: str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            self._conn = sqlite3.connect(self.path, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout=10000")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            with self._txn():
                self._conn.execute("CREATE TABLE IF NOT EXISTS spool_meta "
                                   "(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS spool_batches (id INTEGER PRIMARY KEY "
                    "AUTOINCREMENT, uid TEXT NOT NULL UNIQUE, spooled_at INTEGER NOT NULL, "
                    "uncertain INTEGER NOT NULL, calls INTEGER NOT NULL)")
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS spool_calls (batch_id INTEGER NOT NULL, "
                    "pos INTEGER NOT NULL, method TEXT NOT NULL, args TEXT NOT NULL, "
                    "columns BLOB, PRIMARY KEY (batch_id, pos))")
                meta = dict(self._conn.execute("SELECT key, value FROM spool_meta"))
                if not meta:
                    self._conn.executemany("INSERT INTO spool_meta VALUES (?, ?)",
                                           [("format", SPOOL_FORMAT), ("db", db)])
                    meta = {"format": SPOOL_FORMAT, "db": db}
            if new:
                _fsync_dir(self.path.parent)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"ledger spool {self.path}: cannot open ({exc})") from None
        if meta.get("format") != SPOOL_FORMAT:
            self.close()
            raise LedgerError(f"ledger spool {self.path}: layout {meta.get('format')!r}, this "
                              f"tradewarden reads {SPOOL_FORMAT!r}; replay it with the version "
                              "that wrote it")
        self.db = meta["db"]
        if self.db != db:
            waiting = len(self)
            if waiting:
                self.close()
                raise LedgerError(f"ledger spool {self.path} holds {waiting} batch(es) for "
                                  f"{self.db}, not {db}: open that ledger to replay them, or "
                                  "move the file away")
            with self._txn():
                self._conn.execute("UPDATE spool_meta SET value = ? WHERE key = 'db'", (db,))
            self.db = db

    @contextmanager
    def _txn(self) -> Iterator[None]:
        """One write transaction: committed (fsync'd) at the end, rolled back on an error
        (also when the COMMIT itself fails, so that the connection stays usable)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass            # SQLite rolled back by itself (a full disk, an I/O error)
            raise

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM spool_batches").fetchone()[0])

    def append(self, calls: list[_Call], *, spooled_at: int, uncertain: bool) -> int:
        """Write a batch in one transaction, on disk when this returns; return its id.

        Parameters
        ----------
        calls : list of _Call
            Its write calls, in order.
        spooled_at : int
            UTC epoch seconds.
        uncertain : bool
            See :class:`SpooledBatch`.

        Raises
        ------
        LedgerError
            The spool cannot be written (a full disk): the batch is then in neither
            database, and the message says so.
        """
        try:
            with self._txn():
                cur = self._conn.execute(
                    "INSERT INTO spool_batches (uid, spooled_at, uncertain, calls) "
                    "VALUES (?, ?, ?, ?)", (uuid.uuid4().hex, int(spooled_at), int(uncertain),
                                            len(calls)))
                bid = int(cur.lastrowid)
                self._conn.executemany(
                    "INSERT INTO spool_calls VALUES (?, ?, ?, ?, ?)",
                    [(bid, i, c.method, c.args, c.columns) for i, c in enumerate(calls)])
        except sqlite3.Error as exc:
            raise LedgerError(f"ledger spool {self.path}: cannot write a batch ({exc}); the "
                              "primary database is unreachable too, so this batch is lost "
                              "unless the engine writes it again") from None
        return bid

    def batches(self) -> Iterator[SpooledBatch]:
        """Yield the batches oldest first (by id), one at a time."""
        last = 0
        while True:
            row = self._conn.execute("SELECT id, uid, spooled_at, uncertain FROM spool_batches "
                                     "WHERE id > ? ORDER BY id LIMIT 1", (last,)).fetchone()
            if row is None:
                return
            last = row[0]
            calls = tuple(_Call(m, a, c) for m, a, c in self._conn.execute(
                "SELECT method, args, columns FROM spool_calls WHERE batch_id = ? ORDER BY pos",
                (last,)))
            yield SpooledBatch(row[0], row[1], row[2], bool(row[3]), calls)

    def delete(self, batch_id: int) -> None:
        """Remove a batch (after the primary committed it), in one transaction.

        Raises
        ------
        LedgerError
            The spool cannot be written; the batch stays, and its marker in the primary
            keeps the next replay from writing it again.
        """
        try:
            with self._txn():
                self._conn.execute("DELETE FROM spool_calls WHERE batch_id = ?", (batch_id,))
                self._conn.execute("DELETE FROM spool_batches WHERE id = ?", (batch_id,))
        except sqlite3.Error as exc:
            raise LedgerError(f"ledger spool {self.path}: cannot delete replayed batch "
                              f"{batch_id} ({exc})") from None

    def close(self) -> None:
        """Close the file (the batches stay in it)."""
        self._conn.close()


def _fsync_dir(path: Path) -> None:
    """Make a new file's directory entry durable (best effort: not every OS allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reset_primary(primary: Ledger) -> None:
    """Drop what the primary holds from before a failure: the rolled-back batch, a
    writer thread's kept error, its batch connection and the pooled connections (dead
    after a server restart). Never raises: it runs while the server is down."""
    with suppress(Exception):           # a dead connection's rollback
        primary._discard_uncommitted()
    conn = getattr(primary, "_batch_conn", None)
    if conn is not None:
        with suppress(Exception):
            conn.close()
        primary._batch_conn = None
    with suppress(Exception):
        primary.engine.dispose()


# -- the proxy -------------------------------------------------------------------------
class SpoolingLedger:
    """A ledger that keeps the engine's batches in a local spool while the primary
    database server is unreachable, and replays them when it returns.

    Every method and attribute of the primary is available; the batch write methods
    (:data:`BATCH_METHODS`), :meth:`commit`, :meth:`drain`, :meth:`heartbeat`,
    :meth:`finish_run` and :meth:`close` are the proxy's own. A commit is synchronous
    (the primary's writer thread, if any, is drained), so that the proxy knows each
    batch's fate. Other calls (reads, the run and deployment rows, the event queue)
    first commit the batch in progress, as the primary's own would, then go to the
    primary and raise what it raises; one that fails because the server is unreachable
    also makes the proxy degraded.

    On construction a spool left by an earlier process is replayed (see
    :meth:`try_recover`); if the primary is unreachable the proxy starts degraded.

    Parameters
    ----------
    primary : Ledger
        The ledger to write to. An SQLite one is passed through unchanged: nothing is
        kept or spooled (``spooling`` is ``False``).
    spool_path : str or path
        The spool file (SQLite), e.g. next to the daemon's lock file; created at once
        (with its directory) for a server primary, never for an SQLite one.
    clock : Clock
        Anything with ``now() -> int`` (UTC epoch seconds): the time a degraded state
        began and a batch was spooled.

    Attributes
    ----------
    primary : Ledger
    spool_path : pathlib.Path
    spooling : bool
        Whether batches are kept and spooled (a server primary).
    last_error : str or None
        While degraded: the one line (password masked) that made it so, for an alert.

    Raises
    ------
    LedgerError
        The spool cannot be opened or belongs to another database; a spooled batch the
        primary refuses (see :meth:`try_recover`); for an SQLite primary, a spool file
        at ``spool_path`` that still holds batches.
    """

    def __init__(self, primary: Ledger, spool_path: str | os.PathLike[str], *,
                 clock: Any) -> None:
        self.primary = primary
        self.spool_path = Path(spool_path)
        self.clock = clock
        self.spooling = primary.engine.dialect.name != "sqlite"
        self._batch: list[_Call] = []
        self._batch_cut = False        # a write of the batch in progress failed: rolled back
        self._degraded_since: int | None = None
        self.last_error: str | None = None
        self._spool: Spool | None = None
        shown = display_db(primary.engine.url)
        if not self.spooling:
            if self.spool_path.exists():
                left = Spool(self.spool_path, shown)      # raises if it holds batches
                left.close()
            return
        self._spool = Spool(self.spool_path, shown)
        if len(self._spool):
            self._degraded_since = int(clock.now())
            self.last_error = f"{len(self._spool)} batch(es) left in {self.spool_path}"
            try:
                self.try_recover()
            except BaseException:
                self._spool.close()
                raise

    # -- state ---------------------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        """Whether the primary is taken as unreachable: batches go to the spool, and the
        caller must not trade."""
        return self._degraded_since is not None

    @property
    def degraded_since(self) -> int | None:
        """When the degraded state began (UTC epoch seconds, the clock's), or ``None``."""
        return self._degraded_since

    @property
    def spooled_batches(self) -> int:
        """Batches waiting in the spool."""
        return 0 if self._spool is None else len(self._spool)

    def _enter_degraded(self, exc: BaseException) -> None:
        if self._degraded_since is None:
            self._degraded_since = int(self.clock.now())
        self.last_error = self.primary.describe(exc)
        _reset_primary(self.primary)

    def _spool_batch(self, batch: list[_Call], *, uncertain: bool) -> None:
        assert self._spool is not None
        if batch:
            self._spool.append(batch, spooled_at=int(self.clock.now()), uncertain=uncertain)

    # -- the batch -------------------------------------------------------------------------
    def _write(self, method: str, args: tuple[Any, ...]) -> None:
        if not self.spooling:
            getattr(self.primary, method)(*args)
            return
        call = _encode(method, args)
        self._batch.append(call)
        if self.degraded:
            return
        try:
            getattr(self.primary, method)(*args)
        except Exception as exc:
            if is_unreachable(exc):
                self._enter_degraded(exc)
                self._batch_cut = True
                return
            if _has_db_cause(exc):      # the primary rolled the whole batch back
                self._batch = []
                self._batch_cut = False
            else:                       # refused before anything ran: the rest stands
                self._batch.pop()
            raise

    def write_columns(self, table: str, columns: Mapping[str, Any]) -> None:
        """Append a columnar batch to ``decisions`` or ``equity`` (see
        :meth:`Ledger.write_columns`); kept until committed."""
        if self.spooling and _rows(columns) == 0:
            return
        self._write("write_columns", (table, columns))

    def write_rows(self, table: str, columns: Mapping[str, Any]) -> None:
        """Append rows given as ``{column: values}`` (see :meth:`Ledger.write_rows`)."""
        self._write("write_rows", (table, columns))

    def write_orders(self, run_id: str, orders: list[Order]) -> None:
        """Insert orders in their current state (see :meth:`Ledger.write_orders`)."""
        if orders or not self.spooling:
            self._write("write_orders", (run_id, orders))

    def update_orders(self, run_id: str, updates: list[tuple[str, str, str, int]]) -> None:
        """Apply ``(client_order_id, status, reason, ts)`` changes (see
        :meth:`Ledger.update_orders`)."""
        if updates or not self.spooling:
            self._write("update_orders", (run_id, updates))

    def write_fills(self, run_id: str, fills: list[tuple[int, Fill]]) -> None:
        """Insert ``(fill_seq, Fill)`` pairs (see :meth:`Ledger.write_fills`)."""
        if fills or not self.spooling:
            self._write("write_fills", (run_id, fills))

    def write_trades(self, run_id: str, trades: list[Trade]) -> None:
        """Insert closed round trips (see :meth:`Ledger.write_trades`)."""
        if trades or not self.spooling:
            self._write("write_trades", (run_id, trades))

    def write_events(self, run_id: str,
                     events: list[tuple[int, int | None, str, str | None, str]]) -> None:
        """Insert ``(seq, ts, kind, symbol, message)`` events (see
        :meth:`Ledger.write_events`)."""
        if events or not self.spooling:
            self._write("write_events", (run_id, events))

    def write_order_events(self, run_id: str, events: list[tuple[Any, ...]]) -> None:
        """Insert order journal rows (see :meth:`Ledger.write_order_events`)."""
        if events or not self.spooling:
            self._write("write_order_events", (run_id, events))

    def write_engine_state(self, run_id: str, seq: int, deployment_id: str, ts: int,
                           state: str) -> None:
        """Append a deployment's engine state (see :meth:`Ledger.write_engine_state`)."""
        self._write("write_engine_state", (run_id, seq, deployment_id, ts, state))

    def write_approvals(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Append queued intents as pending approvals (see :meth:`Ledger.write_approvals`)."""
        if rows or not self.spooling:
            self._write("write_approvals", (run_id, rows))

    def finish_commands(self, run_id: str, updates: list[tuple[int, str, str, str]]) -> None:
        """Record what the engine did with commands (see :meth:`Ledger.finish_commands`)."""
        if updates or not self.spooling:
            self._write("finish_commands", (run_id, updates))

    def update_approvals(self, updates: list[tuple[Any, ...]]) -> None:
        """Record approvals acted on (see :meth:`Ledger.update_approvals`)."""
        if updates or not self.spooling:
            self._write("update_approvals", (updates,))

    def write_reconciliations(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Append reconciliation differences (see :meth:`Ledger.write_reconciliations`)."""
        if rows or not self.spooling:
            self._write("write_reconciliations", (run_id, rows))

    def update_reconciliations(self, updates: list[tuple[str, int, str, str, str]]) -> None:
        """Resolve reconciliation differences (see :meth:`Ledger.update_reconciliations`)."""
        if updates or not self.spooling:
            self._write("update_reconciliations", (updates,))

    def commit(self) -> None:
        """Commit the batch written since the last commit, or spool it.

        Live: the primary commits it (its writer thread drained), and it is forgotten.
        When that fails because the server is unreachable, or while degraded, the
        batch is written to the spool (on disk when this returns) and nothing is
        raised; the batch is *uncertain* when its COMMIT itself was cut off.

        Raises
        ------
        LedgerError
            The primary refused the batch for another reason (bad data, a duplicate
            key: the batch is rolled back and not spooled, as without the proxy); or
            the spool cannot be written while the primary is unreachable.
        """
        if not self.spooling:
            self.primary.commit()
            return
        batch, cut = self._batch, self._batch_cut
        self._batch, self._batch_cut = [], False
        if self.degraded:
            self._spool_batch(batch, uncertain=False)
            return
        try:
            self.primary.drain()
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            self._enter_degraded(exc)
            # Its writes went through, so its COMMIT was cut off (or, with a writer
            # thread, one of them failed): the server may hold it. ``cut`` cannot be
            # set here: a failed write makes the proxy degraded at once.
            self._spool_batch(batch, uncertain=not cut)

    def drain(self) -> None:
        """Commit the batch in progress (see :meth:`commit`): on return it is durable in
        the primary, or, while degraded, in the spool.

        Raises
        ------
        LedgerError
            See :meth:`commit`.
        """
        if not self.spooling:
            self.primary.drain()
            return
        self.commit()

    def heartbeat(self, run_id: str, *, force: bool = False, **counts: int) -> bool:
        """Record that the run is alive (see :meth:`Ledger.heartbeat`); skipped while
        degraded.

        The batch in progress is committed first (as the primary's heartbeat does).

        Returns
        -------
        bool
            Whether a heartbeat was written; ``False`` while degraded, and when the
            server turns out to be unreachable (the proxy is then degraded).

        Raises
        ------
        LedgerError
            See :meth:`commit`; a heartbeat the primary refuses for another reason.
        """
        if not self.spooling:
            return self.primary.heartbeat(run_id, force=force, **counts)
        self.commit()
        if self.degraded:
            return False
        try:
            done = self.primary.heartbeat(run_id, force=force, **counts)
            if done:
                self.primary.drain()
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            self._enter_degraded(exc)
            return False
        return done

    def finish_run(self, run_id: str, **values: Any) -> dict[str, Any]:
        """Close a run (see :meth:`Ledger.finish_run`).

        ``status='completed'`` commits the batch in progress first (spooled while
        degraded); any other status discards it, as the primary does.

        Raises
        ------
        LedgerError
            What the primary raises (while degraded: the server is unreachable).
        """
        if self.spooling:
            if values.get("status") == "completed":
                self.commit()
            else:
                self._batch, self._batch_cut = [], False
        return self._forward("finish_run", run_id, **values)

    def close(self) -> None:
        """Commit the batch in progress (to the spool while degraded), close the primary
        and the spool file. Spooled batches stay in the file for the next start.

        Raises
        ------
        LedgerError
            See :meth:`commit` and :meth:`Ledger.close`.
        """
        try:
            if self.spooling:
                self.commit()
        finally:
            try:
                if self.degraded:
                    _reset_primary(self.primary)
                self.primary.close()
            finally:
                if self._spool is not None:
                    self._spool.close()
                    self._spool = None

    def _forward(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.spooling and self._batch:
            self.commit()
        try:
            return getattr(self.primary, name)(*args, **kwargs)
        except Exception as exc:
            if self.spooling and is_unreachable(exc):
                self._enter_degraded(exc)
            raise

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.primary, name)
        if not callable(value) or name.startswith("_") or name in _PURE:
            return value

        def forwarded(*args: Any, **kwargs: Any) -> Any:
            return self._forward(name, *args, **kwargs)
        forwarded.__name__ = name
        forwarded.__doc__ = value.__doc__
        return forwarded

    # -- recovery ----------------------------------------------------------------------
    def _ping(self) -> bool:
        """Whether the primary answers ``SELECT 1`` (a second try on a fresh pool: the
        first may meet a connection the restart killed)."""
        for _ in range(2):
            try:
                with self.primary.engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return True
            except Exception as exc:  # noqa: BLE001 - any failure: not back yet
                if not is_unreachable(exc):
                    return False
                _reset_primary(self.primary)
        return False

    def try_recover(self) -> bool:
        """Replay the spool into the primary if it answers; leave the degraded state.

        Each spooled batch, oldest first, becomes one primary transaction: its write
        calls, and a marker row (``daemon_events``: kind :data:`MARKER_KIND`, status
        ``done``, ``dedupe_key`` ``ledger-spool:<uid>``, ``payload`` the batch's spool
        id, call count and spool time); after the primary's commit the batch leaves the
        spool. A batch whose marker is already in the primary (a crash came between the
        commit and the delete), or an uncertain batch whose first inserted row is, is
        deleted without being written again. A batch in progress (calls made since the
        last commit while degraded) is then written to the primary's open transaction,
        for the next :meth:`commit`.

        Returns
        -------
        bool
            ``True`` when the spool is empty and the proxy is live (also when it was
            not degraded); ``False`` when the primary is still unreachable (the proxy
            stays degraded; what was replayed before the failure is out of the spool).

        Raises
        ------
        LedgerError
            The primary refuses a spooled batch for another reason than being
            unreachable (a duplicate key, bad data): the batch stays in the spool, the
            proxy stays degraded, and the message names the batch and the spool file.
        """
        if not self.spooling or (not self.degraded and not len(self._spool)):
            return True
        if not self._ping():
            return False
        try:
            self._replay()
            for call in self._batch:            # the batch in progress, now to the primary
                call.apply(self.primary)
        except Exception as exc:
            if is_unreachable(exc):
                self._enter_degraded(exc)
                return False
            raise
        self._degraded_since = None
        self._batch_cut = False
        self.last_error = None
        return True

    def _replay(self) -> None:
        assert self._spool is not None
        # Only the oldest batches can be in the primary already (replay deletes each
        # before it writes the next), so markers are looked for until the first batch
        # that is not there; after that, only an uncertain batch is looked for.
        settled = False
        for batch in self._spool.batches():
            try:
                if (settled and not batch.uncertain) or not self._applied(batch):
                    settled = True
                    for call in batch.calls:
                        call.apply(self.primary)
                    self.primary.write_rows("daemon_events", self._marker(batch))
                    self.primary.drain()
            except Exception as exc:
                if is_unreachable(exc):
                    raise
                _reset_primary(self.primary)
                raise LedgerError(
                    f"ledger spool {self.spool_path}: batch {batch.id} (spooled at "
                    f"{batch.spooled_at}) cannot be replayed into {self.primary.url}: "
                    f"{self.primary.describe(exc)}; it stays in the spool, with every later "
                    "batch") from exc
            self._spool.delete(batch.id)

    @staticmethod
    def _marker(batch: SpooledBatch) -> dict[str, list[Any]]:
        now = utcnow_iso()
        payload = json.dumps({"spool_batch": batch.id, "calls": len(batch.calls),
                              "spooled_at": batch.spooled_at, "uncertain": batch.uncertain},
                             sort_keys=True)
        return {"kind": [MARKER_KIND], "payload": [payload],
                "dedupe_key": [MARKER_PREFIX + batch.uid], "status": ["done"],
                "attempts": [0], "due_at": [float(batch.spooled_at)], "created_at": [now],
                "finished_at": [now]}

    def _applied(self, batch: SpooledBatch) -> bool:
        """Whether the primary already holds ``batch`` (its marker; for an uncertain
        batch, its first inserted row)."""
        e = schema.daemon_events
        with self.primary.engine.connect() as conn:
            if conn.execute(select(e.c.id).where(
                    e.c.dedupe_key == MARKER_PREFIX + batch.uid)).first() is not None:
                return True
            if not batch.uncertain:
                return False
            for call in batch.calls:
                if call.method not in _WITNESSES:
                    continue
                args, tbl = call.decode()
                name, key = _WITNESSES[call.method]
                table = schema.metadata.tables[name or args[0]]
                cols = [c for c in table.primary_key.columns]
                values = key(args, tbl)
                found = conn.execute(select(cols[0]).where(
                    and_(*(c == v for c, v in zip(cols, values))))).first()
                return found is not None
        return False
