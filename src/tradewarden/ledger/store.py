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
import math
import os
import re
import time
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import and_, case, create_engine, event, func, inspect, or_, select, update
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from tradewarden.domain import Fill, Order, Trade
from tradewarden.ledger import schema
from tradewarden.ledger.lifecycle import process_alive, this_process

DEFAULT_DB = "warden-out/ledger.db"
#: Environment variable: seconds to wait for a database locked by another process.
BUSY_TIMEOUT_ENV = "TRADEWARDEN_BUSY_TIMEOUT"
DEFAULT_BUSY_TIMEOUT = 10.0
#: Seconds between two heartbeats of a running run (at most one per chunk).
HEARTBEAT_SECONDS = 2.0
#: What the command inbox accepts (``commands.kind``): approve or reject an approval,
#: pause and resume entries, the kill switch, close every position (flatten) or one
#: (close, target = the symbol), adopt the venue's view after reconciliation (accept).
COMMAND_KINDS = ("approve", "reject", "pause", "resume", "kill", "flatten", "close", "accept")
#: Kinds whose ``target`` is required: the approval id (approve, reject), a symbol (close).
COMMAND_TARGETS = {"approve": "an approval id", "reject": "an approval id", "close": "a symbol"}
#: ``commands.status``: pending until the engine processes it, then done or refused.
COMMAND_STATUSES = ("pending", "done", "refused")
#: ``deployments.status``.
DEPLOYMENT_STATUSES = ("created", "running", "stopped", "failed")
#: ``approvals.status``.
APPROVAL_STATUSES = ("pending", "approved", "rejected", "expired")
#: ``reconciliations.status``: open (entries stay blocked) or accepted (venue's view adopted).
RECONCILIATION_STATUSES = ("open", "accepted", "resolved")
#: ``daemon_heartbeats.status``: what the daemon reports about itself.
DAEMON_STATUSES = ("starting", "running", "paused", "error", "shutdown")
#: ``daemon_events.status``: pending until claimed, processing under a lease, then done
#: or failed.
EVENT_STATUSES = ("pending", "processing", "done", "failed")
#: What :meth:`Ledger.finish_event` may set.
EVENT_END_STATUSES = ("done", "failed")
#: The autonomy levels a heartbeat may report (L1 recommend only ... L4 autonomous).
AUTONOMY_LEVELS = (1, 2, 3, 4)
_NAME = re.compile(r"[A-Za-z0-9_.:-]+")


def utcnow_iso() -> str:
    """Wall-clock UTC time as ISO text: run bookkeeping only, never trading time."""
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class LedgerError(RuntimeError):
    """The ledger cannot be opened or written; the message names the database."""


_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def _check_choice(what: str, value: str | None, allowed: tuple[str, ...], *,
                  optional: bool = False) -> None:
    """Raise :class:`LedgerError` naming ``what`` when ``value`` is not one of ``allowed``
    (``None`` passes when ``optional``: a filter left out)."""
    if not (optional and value is None) and value not in allowed:
        raise LedgerError(f"{what} {value!r}: use one of {', '.join(allowed)}")


def _check_name(what: str, value: Any, longest: int) -> str:
    """Return ``value`` if it is 1-``longest`` letters, digits, ``_ . : -``; else raise
    :class:`LedgerError` naming ``what``."""
    if not isinstance(value, str) or len(value) > longest or not _NAME.fullmatch(value):
        raise LedgerError(f"{what} {value!r}: use 1-{longest} letters, digits, '_', '.', ':' "
                          "or '-'")
    return value


def _check_epoch(what: str, value: Any) -> float:
    """Return ``value`` as float if it is a finite number (UTC epoch seconds or a
    duration); else raise :class:`LedgerError` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, np.number)) \
            or not math.isfinite(float(value)):
        raise LedgerError(f"{what} {value!r}: give a finite number of seconds")
    return float(value)


def _json_list(what: str, values: Any) -> str:
    """Return ``values`` (a list, tuple or set, not a string) as a JSON list."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, (list, tuple,
                                                                          set, frozenset)):
        raise LedgerError(f"{what} {values!r}: give a list")
    return dumps(list(values))


def display_db(db: str | os.PathLike[str] | URL) -> str:
    """Return ``--db`` as it may be shown: a path as given, a URL with its password masked.

    Parameters
    ----------
    db : str, path or sqlalchemy.engine.URL

    Returns
    -------
    str
        The path unchanged, or the URL rendered by SQLAlchemy with
        ``hide_password=True`` (``postgresql://user:***@host/db``). Text that is not a
        valid URL still has anything between ``user:`` and ``@`` masked.
    """
    if isinstance(db, URL):
        return db.render_as_string(hide_password=True)
    text = str(db)
    if "://" not in text:
        return text
    try:
        return make_url(text).render_as_string(hide_password=True)
    except ArgumentError:
        return _PASSWORD_IN_URL.sub(r"\1***@", text)


def _scrub(message: str, db: str | os.PathLike[str] | URL | None) -> str:
    """Remove the database password from an error message, wherever it appears."""
    from urllib.parse import quote

    url = None
    if isinstance(db, URL):
        url = db
    elif db is not None and "://" in str(db):
        try:
            url = make_url(str(db))
        except ArgumentError:
            url = None
    if url is not None and url.password:
        secret = str(url.password)
        for form in {secret, quote(secret, safe="")}:
            message = message.replace(form, "***")
    return _PASSWORD_IN_URL.sub(r"\1***@", message)


def busy_timeout_seconds(value: float | None = None) -> float:
    """Return how long to wait for a locked database, in seconds.

    Parameters
    ----------
    value : float, optional
        Explicit value; otherwise ``$TRADEWARDEN_BUSY_TIMEOUT``, otherwise 10.

    Raises
    ------
    LedgerError
        If the environment variable is not a finite, non-negative number.
    """
    if value is None:
        env = os.environ.get(BUSY_TIMEOUT_ENV, "").strip()
        if not env:
            return DEFAULT_BUSY_TIMEOUT
        try:
            value = float(env)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0):
            raise LedgerError(f"{BUSY_TIMEOUT_ENV}={env!r}: not a number of seconds >= 0")
    return float(value)


def describe_db_error(exc: BaseException, db: str | os.PathLike[str] | URL,
                      busy_timeout: float | None = None) -> str:
    """Return one line saying what went wrong with the database, without its password.

    Recognises SQLite's messages (from ``sqlite3`` or the ADBC driver): a locked
    database, a full disk, a file that is not a database, a corrupted file, a missing
    table or column, a read-only file; anything else is the driver's first line.

    Parameters
    ----------
    exc : BaseException
        A DBAPI error, possibly wrapped by SQLAlchemy (its ``orig`` is used).
    db : str, path or URL
        The ``--db`` value, shown with its password masked.
    busy_timeout : float, optional
        Seconds waited for a lock (named in the "locked" message).
    """
    shown = display_db(db)
    orig = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(orig).strip().splitlines() if ln.strip()]
    text = lines[0] if lines else type(orig).__name__
    text = re.sub(r"^(?:[A-Z_]+: )+(?:failed to execute: |Failed to step query: )?", "", text)
    text = _scrub(text, db)
    low = text.lower()
    if "database is locked" in low or "database table is locked" in low or "sqlite_busy" in low:
        waited = busy_timeout_seconds(busy_timeout)
        return (f"--db {shown}: the database is locked by another process (waited {waited:g} s; "
                f"set {BUSY_TIMEOUT_ENV}=SECONDS to wait longer)")
    if "disk is full" in low or "no space left" in low or "disk full" in low:
        return (f"--db {shown}: disk full ({text}); what was committed before is intact, "
                "the uncommitted chunk was rolled back")
    if "file is not a database" in low or "not a database" in low:
        return f"--db {shown}: not an SQLite database ({text})"
    if "malformed" in low or "corrupt" in low:
        return f"--db {shown}: the database file is corrupted ({text})"
    if "no such table" in low or "no such column" in low or "has no column" in low:
        return f"--db {shown}: not a complete tradewarden ledger ({text})"
    if "readonly" in low or "read-only" in low:
        return f"--db {shown}: the database is read-only ({text})"
    return f"--db {shown}: {text}"


def _url(db: str | os.PathLike[str]) -> URL:
    text = str(db)
    if "://" in text:
        try:
            return make_url(text)
        except ArgumentError as exc:
            raise LedgerError(f"--db {display_db(text)!r}: not a valid SQLAlchemy URL "
                              f"({_scrub(str(exc), None)})") from None
    return URL.create("sqlite", database=str(Path(text).expanduser().resolve()))


def resolve_url(db: str | os.PathLike[str]) -> str:
    """Turn ``--db`` (a file path or an SQLAlchemy URL) into a URL string.

    A path becomes ``sqlite:///<absolute path>``, with characters that mean something
    in a URL (``%``, ``?``, ``#``) escaped so that the URL parses back to the path.

    Raises
    ------
    LedgerError
        If the value is neither a path nor a valid URL.
    """
    return _url(db).render_as_string(hide_password=False)


def _sqlite_path(url: str | URL) -> str | None:
    u = url if isinstance(url, URL) else make_url(url)
    if u.get_backend_name() != "sqlite":
        return None
    return u.database or ":memory:"


def open_engine(db: str | os.PathLike[str], *, migrate: bool = True, create: bool = True,
                busy_timeout: float | None = None) -> Engine:
    """Open the ledger database, check it is a tradewarden ledger, and bring its schema
    to the latest migration.

    SQLite files get a busy timeout (``busy_timeout`` or ``$TRADEWARDEN_BUSY_TIMEOUT``,
    default 10 s) and ``synchronous=NORMAL``; a new file gets 64 KiB pages and
    ``journal_mode=WAL``. After opening, runs left ``running`` by a process that is
    gone are marked ``crashed`` (:func:`mark_lost_runs`).

    Parameters
    ----------
    db : str or path
        SQLite file path or SQLAlchemy URL.
    migrate : bool
        Apply pending migrations (a ledger written by an older tradewarden). The
        migrations only add tables and nullable columns, so this is done for reading
        commands too.
    create : bool
        Create the file, its directory and the schema when missing. Reading commands
        pass ``False``: a missing or empty database is ``no ledger at PATH``.
    busy_timeout : float, optional
        Seconds to wait for a lock held by another process.

    Raises
    ------
    LedgerError
        ``no ledger at PATH`` (``create=False``); a directory that cannot be created
        or written; a file that is not an SQLite database, is corrupted, is locked past
        the timeout, holds another application's tables, lacks ledger tables or
        columns, or has a schema revision newer than this tradewarden. The message
        names the database, with any password masked.
    """
    url = _url(db)
    shown = display_db(db)
    timeout = busy_timeout_seconds(busy_timeout)
    path = _sqlite_path(url)
    if path and path != ":memory:":
        p = Path(path)
        if not p.exists():
            if not create:
                raise LedgerError(f"no ledger at {shown}")
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerError(f"--db {shown}: cannot create directory {p.parent}: "
                                  f"{exc.strerror}") from None
            if not os.access(p.parent, os.W_OK):
                raise LedgerError(f"--db {shown}: {p.parent} is not writable")
        elif p.is_dir():
            raise LedgerError(f"--db {shown}: is a directory, not a database file")
        elif create and not os.access(p, os.W_OK):
            raise LedgerError(f"--db {shown}: {p} is not writable")
    try:
        engine = create_engine(url, future=True)
    except Exception as exc:  # driver missing, bad options
        raise LedgerError(f"--db {shown}: cannot open ({_scrub(str(exc), url)})") from None
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
    try:
        _prepare(engine, shown, create=create, migrate=migrate)
    except LedgerError:
        engine.dispose()
        raise
    except Exception as exc:    # DBAPI errors, and what a driver raises on connect
        engine.dispose()
        raise LedgerError(describe_db_error(exc, db, timeout)) from None
    mark_lost_runs(engine)
    return engine


def _prepare(engine: Engine, shown: str, *, create: bool, migrate: bool) -> None:
    """Check what the database holds; initialise or migrate it; check its tables."""
    from tradewarden.ledger.migrate import (
        VERSION_TABLE,
        create_at_head,
        current_revision,
        head_revision,
        known_revisions,
        upgrade,
    )

    with engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
        revision = current_revision(conn) if VERSION_TABLE in names else None
    head = head_revision()
    if revision is None:
        others = sorted(names - {VERSION_TABLE})
        if others:
            more = f", ... ({len(others)} tables)" if len(others) > 5 else ""
            raise LedgerError(f"--db {shown}: not a tradewarden ledger (it holds "
                              f"{', '.join(others[:5])}{more} and no {VERSION_TABLE} table)")
        if not create:
            raise LedgerError(f"no ledger at {shown} (the database is empty)")
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                # Before the first table: large pages make the append-only decisions
                # B-tree split less often (measured ~0.2 us less per row than 8 KiB).
                conn.exec_driver_sql("PRAGMA page_size=65536")
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    elif revision not in known_revisions():
        raise LedgerError(f"--db {shown}: ledger schema revision {revision!r} is unknown to "
                          f"this tradewarden (its latest is {head!r}); was it written by a "
                          "newer version?")
    if migrate and revision is None:
        create_at_head(engine)
    elif migrate and revision != head:
        upgrade(engine)
    if migrate or revision == head:
        check_structure(engine, shown)


def check_structure(engine: Engine, shown: str | None = None) -> None:
    """Check that every ledger table and column exists.

    Raises
    ------
    LedgerError
        ``--db X: malformed ledger: missing table(s) ...`` or ``table T lacks
        column(s) ...``.
    """
    shown = shown or display_db(engine.url)
    with engine.connect() as conn:
        insp = inspect(conn)
        present = set(insp.get_table_names())
        missing = [t.name for t in schema.ALL_TABLES if t.name not in present]
        if missing:
            raise LedgerError(f"--db {shown}: malformed ledger: missing table(s) "
                              f"{', '.join(missing)}")
        for table in schema.ALL_TABLES:
            have = {c["name"] for c in insp.get_columns(table.name)}
            lacking = [c.name for c in table.columns if c.name not in have]
            if lacking:
                raise LedgerError(f"--db {shown}: malformed ledger: table {table.name} lacks "
                                  f"column(s) {', '.join(lacking)}")


def recorded_counts(conn: Any, run_id: str) -> dict[str, int]:
    """Count what the ledger holds for a run (what a stopped run's row should say).

    Returns
    -------
    dict
        ``bars_processed`` (decision rows less end-of-data liquidations),
        ``decisions``, ``trades_opened`` (entry fills) and ``trades_closed``.
    """
    d, t, f = schema.decisions.c, schema.trades.c, schema.fills.c
    n, eod = conn.execute(select(func.count(), func.coalesce(func.sum(
        case((d.reason == "end_of_data", 1), else_=0)), 0)).where(d.run_id == run_id)).one()
    closed = conn.execute(select(func.count()).where(t.run_id == run_id)).scalar_one()
    opened = conn.execute(select(func.count()).where(f.run_id == run_id, f.role == "entry")
                          ).scalar_one()
    return {"bars_processed": int(n) - int(eod), "decisions": int(n),
            "trades_opened": int(opened), "trades_closed": int(closed)}


def mark_lost_runs(engine: Engine) -> list[str]:
    """Mark ``running`` runs whose process is gone as ``crashed``; return their ids.

    A run is lost when it was started on this host and its process no longer exists,
    is a zombie, or its pid now belongs to another process (the recorded start time
    differs; see :mod:`tradewarden.ledger.lifecycle`). Runs started on another host,
    or recorded before the ledger kept pids, are left alone. A crashed run's ``error``
    says when it was last seen (its heartbeat), and its counts are what the ledger
    holds. Best effort: a database that cannot be written now is left as it is.
    """
    r = schema.runs.c
    me = this_process()
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(r.run_id, r.pid, r.host, r.process_start, r.heartbeat_at,
                                       r.started_at).where(r.status == "running")).all()
        lost = [row for row in rows if row.pid is not None and row.host == me.host
                and not process_alive(int(row.pid), row.process_start)]
        for row in lost:
            seen = row.heartbeat_at or row.started_at
            with engine.begin() as conn:
                counts = recorded_counts(conn, row.run_id)
                conn.execute(update(schema.runs).where(r.run_id == row.run_id,
                                                       r.status == "running").values(
                    status="crashed", **counts,
                    error=f"process {row.pid} on {row.host} ended without finishing the run "
                          f"(killed or crashed); last seen {seen}"))
    except SQLAlchemyError:
        return []
    return [row.run_id for row in lost]


def save_summary(engine: Engine, run_id: str, summary: Mapping[str, Any]) -> bool:
    """Store a run's headline figures (JSON) in ``runs.summary``.

    Returns
    -------
    bool
        ``False`` when the database could not be written (a read-only copy, a lock);
        the summary is a cache, so reading commands carry on.
    """
    try:
        with engine.begin() as conn:
            conn.execute(update(schema.runs).where(schema.runs.c.run_id == run_id)
                         .values(summary=dumps(summary)))
    except SQLAlchemyError:
        return False
    return True


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


def _excursion_pct(prices: list[Decimal | None], entry: list[Decimal]) -> list[float | None]:
    """Each excursion price as a percentage of its entry price, ``(p / e - 1) * 100``
    (``None`` where the price is)."""
    return [None if p is None else float((p / e - 1) * 100) for p, e in zip(prices, entry)]


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


def _adbc_connect(path: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Any:
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
        for pragma in ("PRAGMA synchronous=NORMAL",
                       f"PRAGMA busy_timeout={int(busy_timeout * 1000)}"):
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
    most a few chunks (about seven jobs each) are in flight, so memory stays flat.

    The first failure is kept: every later job is skipped (the rest of a failed chunk
    must not be written), and :meth:`submit` and :meth:`drain` raise it, until
    :meth:`settle` has run the clean-up jobs and cleared it.
    """

    def __init__(self, describe: Callable[[BaseException], str], depth: int = 24) -> None:
        import queue
        import sys
        import threading
        # The writer thread wakes when SQLite finishes a batch; with the default 5 ms
        # switch interval it would wait that long for the GIL each time.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.0005))
        self._describe = describe
        self._q: "queue.Queue" = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.reported = False     # the failure was raised to the submitting thread
        self._t = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            try:
                if item is None:
                    return
                job, always = item
                if self.error is None or always:
                    job()
            except BaseException as exc:  # kept and re-raised in the submitting thread
                if self.error is None:
                    self.error = exc
            finally:
                self._q.task_done()

    def _check(self) -> None:
        err = self.error
        if err is not None:
            self.reported = True
            raise LedgerError(f"ledger write failed: {self._describe(err)}") from err

    def submit(self, job: Any, *, always: bool = False) -> None:
        """Queue ``job`` (blocks while the queue is full); raise an earlier failure.

        ``always=True`` queues a clean-up job that runs even after a failure.
        """
        if not always:
            self._check()
        self._q.put((job, always))

    def drain(self) -> None:
        """Wait for every queued job; raise the first failure."""
        self._q.join()
        self._check()

    def settle(self, cleanup: Any) -> BaseException | None:
        """Run ``cleanup`` after the queued jobs, wait, and clear and return the failure."""
        self._q.put((cleanup, True))
        self._q.join()
        err, self.error, self.reported = self.error, None, False
        return err

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
    create : bool
        Create the database when missing (reading commands pass ``False``).
    busy_timeout : float, optional
        Seconds to wait for a lock held by another process (default
        ``$TRADEWARDEN_BUSY_TIMEOUT`` or 10).
    heartbeat_seconds : float
        Least wall-clock time between two :meth:`heartbeat` writes.
    bulk : bool
        SQLite file: write batches by Arrow bulk ingest through the ADBC driver (the
        default; replay). ``False`` writes them by executemany on one Python sqlite3
        connection whose transaction :meth:`commit` ends. The daemon passes ``False``:
        the ADBC driver links its own copy of SQLite, and two copies of SQLite writing
        one file from one process do not see each other's locks (POSIX locks do not
        conflict within a process, and each copy keeps its own table of them; see
        sqlite.org/howtocorrupt.html, "multiple copies of SQLite linked into the same
        application"), so several deployments and the daemon's own writes in one
        process must all go through the same copy.

    Raises
    ------
    LedgerError
        See :func:`open_engine`.
    """

    def __init__(self, db: str | os.PathLike[str], *, background: bool = False,
                 create: bool = True, busy_timeout: float | None = None,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS, bulk: bool = True) -> None:
        self.db = str(db)
        self.busy_timeout = busy_timeout_seconds(busy_timeout)
        self.engine = open_engine(db, create=create, busy_timeout=self.busy_timeout)
        #: The database URL with its password masked (safe to print).
        self.url = display_db(self.engine.url)
        path = _sqlite_path(self.engine.url)
        # SQLite file: batches go through Arrow bulk ingest; otherwise executemany.
        self._bulk_path = path if path is not None and path != ":memory:" and bulk else None
        self._adbc = None
        self._in_txn = False
        # Other servers (PostgreSQL), and an SQLite file without bulk ingest: the batches
        # go through executemany on one connection whose transaction :meth:`commit`
        # ends, as the bulk one does on an SQLite file. ``sqlite://`` shares one
        # connection per thread: autocommit there.
        self._batch_conn: Any = None
        self._batched = ((path is None and self.engine.dialect.name != "sqlite")
                         or (not bulk and path is not None and path != ":memory:"))
        self._writer = _Writer(self.describe) if background else None
        self.heartbeat_seconds = heartbeat_seconds
        self._last_beat = -math.inf

    def read(self, what: str, work: Callable[[Any], Any]) -> Any:
        """Drain the queued batches, run ``work(conn)`` on a connection and return its
        result.

        Raises
        ------
        LedgerError
            ``cannot read <what>: <cause>`` for a database error.
        """
        self.drain()
        try:
            with self.engine.connect() as conn:
                return work(conn)
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot read {what}: {self.describe(exc)}") from None

    def write(self, what: str, work: Callable[[Any], Any]) -> Any:
        """Drain the queued batches, run ``work(conn)`` in a transaction of its own,
        commit, and return its result.

        Raises
        ------
        LedgerError
            ``cannot record <what>: <cause>`` for a database error (nothing of
            ``work`` is kept).
        """
        self.drain()
        try:
            with self.engine.begin() as conn:
                return work(conn)
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot record {what}: {self.describe(exc)}") from None

    def describe(self, exc: BaseException) -> str:
        """One line for a database error (see :func:`describe_db_error`)."""
        if isinstance(exc, LedgerError):
            return str(exc)
        return describe_db_error(exc, self.db, self.busy_timeout)

    def _error(self, exc: BaseException) -> LedgerError:
        return exc if isinstance(exc, LedgerError) else LedgerError(self.describe(exc))

    def _do(self, fn: Any, *args: Any) -> None:
        if self._writer is None:
            try:
                fn(*args)
            except LedgerError:
                raise
            except Exception as exc:     # DBAPI errors from SQLite / ADBC / SQLAlchemy
                raise LedgerError(f"ledger write failed: {self.describe(exc)}") from exc
        else:
            self._writer.submit(lambda: fn(*args))

    def drain(self) -> None:
        """Wait until every submitted write is applied and committed; raise the first failure.

        Raises
        ------
        LedgerError
            If a write failed (the message gives the cause, e.g. a full disk).
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

    def _end_transaction(self, verb: str) -> None:
        """COMMIT or ROLLBACK the open bulk transaction.

        A failed COMMIT (a full disk, an I/O error) is followed by a ROLLBACK, and the
        COMMIT's error is the one raised. SQLite may already have rolled the
        transaction back by itself (it does on SQLITE_FULL and SQLITE_IOERR), so the
        ROLLBACK's own "no transaction is active" is ignored rather than reported in
        place of the real cause.
        """
        conn = self._batch_conn
        if conn is not None and conn.in_transaction():
            if verb == "COMMIT":
                try:
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
            else:
                conn.rollback()
        if not self._in_txn:
            return
        cur = self._adbc.cursor()
        try:
            cur.execute(verb)
        except BaseException:
            if verb != "ROLLBACK":
                self._quiet_rollback(cur)
            raise
        finally:
            self._in_txn = False
            cur.close()

    @staticmethod
    def _quiet_rollback(cur: Any) -> None:
        try:
            cur.execute("ROLLBACK")
        except Exception:   # noqa: BLE001 - already rolled back by SQLite
            pass

    def _discard_uncommitted(self) -> BaseException | None:
        """Wait for the queued writes, then roll back whatever no commit covered.

        Complete chunks end with a commit and stay; the batches of a chunk that was
        cut short (an exception, a signal) or that failed are rolled back, so a chunk
        is in the ledger whole or not at all. Returns the write failure, if any, and
        clears it so that the ledger can be used (and closed) again.
        """
        def rollback() -> None:
            if self._batch_conn is not None:
                self._batch_conn.rollback()
            # Unconditional: a signal may have landed between BEGIN and ``_in_txn``.
            if self._adbc is not None:
                cur = self._adbc.cursor()
                try:
                    self._quiet_rollback(cur)
                finally:
                    self._in_txn = False
                    cur.close()

        if self._writer is not None:
            return self._writer.settle(rollback)
        rollback()
        return None

    # -- runs -------------------------------------------------------------------------
    def create_run(self, row: Mapping[str, Any]) -> None:
        """Insert a run row with ``status='running'``, this process's pid, host and start
        token, and a first heartbeat.

        Raises
        ------
        LedgerError
            If the row cannot be written (locked, full disk, ...).
        """
        self.drain()
        me = this_process()
        values = dict(row)
        values.setdefault("status", "running")
        values.setdefault("started_at", utcnow_iso())
        values.setdefault("pid", me.pid)
        values.setdefault("host", me.host)
        values.setdefault("process_start", me.start)
        values.setdefault("heartbeat_at", values["started_at"])
        try:
            with self.engine.begin() as conn:
                conn.execute(schema.runs.insert().values(**values))
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        self._last_beat = time.monotonic()

    def open_deployment(self, name: str, *, mode: str, config: str, config_hash: str,
                        strategy_source: str | None = None) -> dict[str, Any]:
        """Return the deployment called ``name``, creating it on first use.

        Parameters
        ----------
        name : str
            1-64 characters: letters, digits, ``-``, ``_``, ``.``.
        mode : {"paper", "live"}
        config, config_hash : str
            The run configuration (canonical JSON) and its SHA-256.
        strategy_source : str, optional

        Returns
        -------
        dict
            The ``deployments`` row.

        Raises
        ------
        LedgerError
            A bad name; a deployment of that name with another mode or configuration
            (a deployment keeps one configuration: start a new name to change it); or
            the row cannot be read or written.
        """
        import re
        import uuid

        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name or ""):
            raise LedgerError(f"deployment name {name!r}: use 1-64 letters, digits, '-', '_' or '.'")
        self.drain()
        d = schema.deployments
        try:
            with self.engine.begin() as conn:
                row = self._deployment_row(conn, name)
                if row is None:
                    values = {"deployment_id": uuid.uuid4().hex[:12], "name": name, "mode": mode,
                              "created_at": utcnow_iso(), "config": config,
                              "config_hash": config_hash, "strategy_source": strategy_source,
                              "status": "created", "next_order_seq": 0}
                    conn.execute(d.insert().values(**values))
                    return values
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        row = dict(row)
        if row["mode"] != mode:
            raise LedgerError(f"deployment {name!r} is a {row['mode']} deployment, not {mode}")
        if row["config_hash"] != config_hash:
            raise LedgerError(f"deployment {name!r} was created with configuration "
                              f"{row['config_hash'][:12]}, this one is {config_hash[:12]}: a "
                              "deployment keeps its configuration; start a new deployment name "
                              "to trade another")
        return row

    def deployment(self, name: str) -> dict[str, Any] | None:
        """Return the ``deployments`` row called ``name``, or ``None``.

        Raises
        ------
        LedgerError
            If the ledger cannot be read.
        """
        self.drain()
        try:
            with self.engine.connect() as conn:
                row = self._deployment_row(conn, name)
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        return None if row is None else dict(row)

    @staticmethod
    def _deployment_row(conn: Any, name: str) -> Any:
        d = schema.deployments
        return conn.execute(select(d).where(d.c.name == name)).mappings().first()

    def reserve_order_seq(self, deployment_id: str, n: int) -> int:
        """Reserve ``n`` client order sequence numbers of a deployment; return the first.

        The reservation is committed before this returns, so a number is never handed out
        twice, not even after a crash (unused numbers of a block are skipped).

        Raises
        ------
        LedgerError
            Unknown deployment, ``n < 1``, or the row cannot be updated.
        """
        if n < 1:
            raise LedgerError(f"reserve at least one order sequence number, not {n}")
        self.drain()
        d = schema.deployments
        try:
            with self.engine.begin() as conn:
                first = conn.execute(select(d.c.next_order_seq)
                                     .where(d.c.deployment_id == deployment_id)).scalar()
                if first is None:
                    raise LedgerError(f"no deployment {deployment_id!r} in this ledger")
                conn.execute(d.update().where(d.c.deployment_id == deployment_id)
                             .values(next_order_seq=first + n))
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        return int(first)

    def write_engine_state(self, run_id: str, seq: int, deployment_id: str, ts: int,
                           state: str) -> None:
        """Append a deployment's engine state (JSON) to the current batch: it is committed
        with the rows it describes."""
        self.write_rows("engine_state", {"run_id": [run_id], "seq": [seq],
                                         "deployment_id": [deployment_id], "ts": [ts],
                                         "state": [state]})

    def write_approvals(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Append intents the governor queued (``decision_seq``, ``ts``, ``symbol``,
        ``action``, ``intent`` JSON, ``deployment_id``) as ``pending`` approvals, in the
        current batch; the ledger numbers them (``approvals.id``)."""
        if not rows:
            return
        n = len(rows)
        self.write_rows("approvals", {
            "run_id": _repeat(run_id, n), "deployment_id": [r.get("deployment_id") for r in rows],
            "decision_seq": [r["decision_seq"] for r in rows], "ts": [r["ts"] for r in rows],
            "symbol": [r["symbol"] for r in rows], "action": [r["action"] for r in rows],
            "intent": [r["intent"] for r in rows], "status": _repeat("pending", n),
            "acted_by": [None] * n, "acted_at": [None] * n, "reason": [None] * n})

    def approvals(self, *, run_id: str | None = None, deployment_id: str | None = None,
                  status: str | None = None) -> list[dict[str, Any]]:
        """Return approvals (oldest first), filtered by run, deployment and status.

        Raises
        ------
        LedgerError
            If the ledger cannot be read.
        """
        self.drain()
        t = schema.approvals
        q = select(t).order_by(t.c.id)
        if run_id is not None:
            q = q.where(t.c.run_id == run_id)
        if deployment_id is not None:
            q = q.where(t.c.deployment_id == deployment_id)
        if status is not None:
            q = q.where(t.c.status == status)
        try:
            with self.engine.connect() as conn:
                return [dict(r) for r in conn.execute(q).mappings()]
        except SQLAlchemyError as exc:
            raise self._error(exc) from None

    # -- the command inbox, approvals acted on, reconciliation ------------------------
    def _newest(self, table: Any, what: str, status: str | None, statuses: Any,
                limit: int | None, where: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Rows of a table numbered by ``id`` (commands, daemon events), oldest first,
        optionally of one ``status`` and only the newest ``limit``.

        Raises
        ------
        LedgerError
            An unknown status, a ``limit`` below 1 (naming ``what``), or a ledger that
            cannot be read.
        """
        _check_choice(f"{what} status", status, statuses, optional=True)
        if limit is not None and limit < 1:
            raise LedgerError(f"{what} limit {limit}: give at least 1")
        q = select(table).where(*where).order_by(table.c.id.desc())
        if status is not None:
            q = q.where(table.c.status == status)
        if limit is not None:
            q = q.limit(limit)
        return self._read(q)[::-1]

    def _read(self, query: Any) -> list[dict[str, Any]]:
        """Run a SELECT after the pending writes; return its rows as dicts."""
        self.drain()
        try:
            with self.engine.connect() as conn:
                return [dict(r) for r in conn.execute(query).mappings()]
        except SQLAlchemyError as exc:
            raise self._error(exc) from None

    def _buffered_update(self, sql: str, params: list[tuple[Any, ...]], stmt: Any,
                         rows: list[dict[str, Any]]) -> None:
        """Apply an UPDATE to many rows as part of the current batch.

        SQLite file: one prepared statement (``sql`` with ``params``) in the open bulk
        transaction, committed by :meth:`commit` with the rows written since the last
        commit (or rolled back with them). Elsewhere: ``stmt`` with ``rows`` through
        executemany, as :meth:`write_rows` does.
        """
        path = self._bulk_path
        if path is not None:
            self._do(self._in_transaction, path, lambda cur: cur.executemany(sql, params))
        else:
            self._do(self._execute, stmt, rows)

    def enqueue_command(self, deployment_id: str, kind: str, *, actor: str,
                        target: str | None = None, reason: str | None = None) -> int:
        """Queue a command for a deployment; the engine processes it between bars.

        The row (``status='pending'``, ``created_at`` the wall clock, UTC ISO) is
        inserted in its own transaction, committed before this returns.

        Parameters
        ----------
        deployment_id : str
            The deployment's id (``deployments.deployment_id``, not its name).
        kind : str
            One of :data:`COMMAND_KINDS`.
        actor : str
            Who gives it (1-64 characters), recorded with it.
        target : str, optional
            The approval id as text (``approve``, ``reject``) or the symbol (``close``);
            required for those kinds. At most 64 characters.
        reason : str, optional
            Free text (required by the CLI for ``reject``).

        Returns
        -------
        int
            The command's id (``commands.id``), increasing with each command.

        Raises
        ------
        LedgerError
            An unknown kind, a missing or too long target, an empty or too long actor,
            an unknown deployment, or a row that cannot be written (locked, full disk).
        """
        _check_choice("command kind", kind, COMMAND_KINDS)
        if kind in COMMAND_TARGETS and not target:
            article = "an" if kind[0] in "aeiou" else "a"
            raise LedgerError(f"{article} {kind} command needs a target ({COMMAND_TARGETS[kind]})")
        if target is not None and len(target) > 64:
            raise LedgerError(f"command target {target[:20]!r}...: longer than 64 characters")
        if not actor or len(actor) > 64:
            raise LedgerError(f"command actor {actor!r}: give 1-64 characters")
        self.drain()
        c, d = schema.commands, schema.deployments
        try:
            with self.engine.begin() as conn:
                known = conn.execute(select(d.c.deployment_id)
                                     .where(d.c.deployment_id == deployment_id)).scalar()
                if known is None:
                    raise LedgerError(f"no deployment {deployment_id!r} in this ledger")
                res = conn.execute(c.insert().values(
                    deployment_id=deployment_id, kind=kind, target=target, reason=reason,
                    actor=actor, created_at=utcnow_iso(), status="pending"))
                return int(res.inserted_primary_key[0])
        except SQLAlchemyError as exc:
            raise self._error(exc) from None

    def claim_approval(self, deployment_id: str, approval_id: int, kind: str, *, actor: str,
                       reason: str | None = None) -> int | None:
        """Queue ``approve`` or ``reject`` of a pending approval unless one is already queued.

        The check and the insert are one statement, ``INSERT INTO commands ... SELECT
        ... WHERE`` the approval is the deployment's and ``pending`` ``AND NOT EXISTS``
        a pending ``approve`` / ``reject`` command targeting it, so of several callers
        at once exactly one gets a command (no check-then-act in Python). SQLite takes
        its write lock before the statement reads; on other servers the approval's row
        is first locked (``SELECT ... FOR UPDATE``), so a second caller's statement
        runs after the first committed and sees its command.

        Parameters
        ----------
        deployment_id : str
        approval_id : int
            ``approvals.id`` (stored as the command's ``target`` text).
        kind : str
            ``approve`` or ``reject``.
        actor : str
            Who (1-64 characters).
        reason : str, optional

        Returns
        -------
        int or None
            The new command's id; ``None`` when the approval is not this deployment's,
            is no longer pending, or already has an approve / reject pending.

        Raises
        ------
        LedgerError
            A kind other than approve / reject, an empty or too long actor, or a row
            that cannot be written.
        """
        from sqlalchemy import exists, literal

        _check_choice("approval command kind", kind, ("approve", "reject"))
        if not actor or len(actor) > 64:
            raise LedgerError(f"command actor {actor!r}: give 1-64 characters")
        aid = int(approval_id)
        self.drain()
        c, a = schema.commands, schema.approvals
        approval_pending = exists().where(a.c.id == aid, a.c.deployment_id == deployment_id,
                                          a.c.status == "pending")
        decision_pending = exists().where(c.c.deployment_id == deployment_id,
                                          c.c.kind.in_(("approve", "reject")),
                                          c.c.target == str(aid), c.c.status == "pending")
        cols = ("deployment_id", "kind", "target", "reason", "actor", "created_at", "status")
        values = (deployment_id, kind, str(aid), reason, actor, utcnow_iso(), "pending")
        rows = select(*[literal(v, c.c[k].type).label(k) for k, v in zip(cols, values)]) \
            .where(approval_pending, ~decision_pending)
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name != "sqlite":
                    conn.execute(select(a.c.id).where(a.c.id == aid).with_for_update())
                got = conn.execute(c.insert().from_select(list(cols), rows)
                                   .returning(c.c.id)).scalar()
                return None if got is None else int(got)
        except SQLAlchemyError as exc:
            raise self._error(exc) from None

    def pending_commands(self, deployment_id: str) -> list[dict[str, Any]]:
        """Return the deployment's pending commands, oldest first (by id).

        Returns
        -------
        list of dict
            ``commands`` rows: ``id``, ``deployment_id``, ``kind``, ``target``,
            ``reason``, ``actor``, ``created_at``, ``status`` (``pending``), ...

        Raises
        ------
        LedgerError
            If the ledger cannot be read.
        """
        c = schema.commands
        return self._read(select(c).where(c.c.deployment_id == deployment_id,
                                          c.c.status == "pending").order_by(c.c.id))

    def commands(self, *, deployment_id: str | None = None, status: str | None = None,
                 limit: int | None = None) -> list[dict[str, Any]]:
        """Return commands, oldest first, filtered by deployment and status.

        Parameters
        ----------
        deployment_id : str, optional
        status : str, optional
            One of :data:`COMMAND_STATUSES`.
        limit : int, optional
            Only the newest ``limit`` commands (still returned oldest first).

        Raises
        ------
        LedgerError
            An unknown status, a ``limit`` below 1, or a ledger that cannot be read.
        """
        c = schema.commands
        return self._newest(c, "command", status, COMMAND_STATUSES, limit,
                            () if deployment_id is None else (c.c.deployment_id == deployment_id,))

    def finish_commands(self, run_id: str, updates: list[tuple[int, str, str, str]]) -> None:
        """Record what the engine did with commands, in the current batch.

        The updates are committed by :meth:`commit` together with the engine rows
        written since the last commit (SQLite: the same transaction), so a command is
        marked done exactly when its effects are in the ledger.

        Parameters
        ----------
        run_id : str
            The run that processed them (stored in ``commands.run_id``).
        updates : list of (int, str, str, str)
            ``(id, status, result, processed_at)``: ``status`` ``done`` or ``refused``,
            ``result`` what was done or why not, ``processed_at`` UTC ISO text.

        Raises
        ------
        LedgerError
            A status other than done or refused; an earlier write failed.
        """
        if not updates:
            return
        for cid, st, _, _ in updates:
            if st not in ("done", "refused"):
                raise LedgerError(f"command {cid}: status {st!r}: use done or refused")
        from sqlalchemy import bindparam
        c = schema.commands
        stmt = (update(c).where(c.c.id == bindparam("i"))
                .values(status=bindparam("s"), result=bindparam("res"),
                        processed_at=bindparam("at"), run_id=bindparam("r")))
        self._buffered_update(
            "UPDATE commands SET status = ?, result = ?, processed_at = ?, run_id = ? WHERE id = ?",
            [(st, res, at, run_id, int(cid)) for cid, st, res, at in updates], stmt,
            [{"i": int(cid), "s": st, "res": res, "at": at, "r": run_id}
             for cid, st, res, at in updates])

    def update_approvals(self, updates: list[tuple[int, str, str | None, str | None, str | None]]
                         ) -> None:
        """Record approvals acted on (approved, rejected, expired), in the current batch.

        Committed by :meth:`commit` with the engine rows of the same batch (see
        :meth:`finish_commands`).

        Parameters
        ----------
        updates : list of (int, str, str or None, str or None, str or None)
            ``(id, status, acted_by, acted_at, reason)``; ``status`` one of
            :data:`APPROVAL_STATUSES`, ``acted_at`` UTC ISO text.

        Raises
        ------
        LedgerError
            An unknown status; an earlier write failed.
        """
        if not updates:
            return
        for aid, st, *_ in updates:
            _check_choice(f"approval {aid}: status", st, APPROVAL_STATUSES)
        from sqlalchemy import bindparam
        a = schema.approvals
        stmt = (update(a).where(a.c.id == bindparam("i"))
                .values(status=bindparam("s"), acted_by=bindparam("by"),
                        acted_at=bindparam("at"), reason=bindparam("why")))
        self._buffered_update(
            "UPDATE approvals SET status = ?, acted_by = ?, acted_at = ?, reason = ? WHERE id = ?",
            [(st, by, at, why, int(aid)) for aid, st, by, at, why in updates], stmt,
            [{"i": int(aid), "s": st, "by": by, "at": at, "why": why}
             for aid, st, by, at, why in updates])

    def approval(self, approval_id: int) -> dict[str, Any] | None:
        """Return the ``approvals`` row with this id, or ``None``.

        Raises
        ------
        LedgerError
            If the ledger cannot be read.
        """
        a = schema.approvals
        rows = self._read(select(a).where(a.c.id == int(approval_id)))
        return rows[0] if rows else None

    def write_reconciliations(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Append differences between the ledger and the venue, in the current batch.

        Parameters
        ----------
        run_id : str
        rows : list of dict
            Each with ``seq`` (unique in the run), ``deployment_id``, ``ts`` (clock
            time, UTC epoch seconds), ``kind`` (``position``, ``order_unknown``,
            ``order_missing``, ``balance``), ``symbol``, ``ours`` and ``venue`` (short
            texts: a quantity such as ``0.0123``, an order id), ``status``
            (``open`` or ``accepted``); optionally ``resolved_by`` and ``resolved_at``.

        Raises
        ------
        LedgerError
            A missing key, an unknown status; an earlier write failed.
        """
        if not rows:
            return
        for r in rows:
            if r["status"] not in RECONCILIATION_STATUSES:
                raise LedgerError(f"reconciliation {r['seq']}: status {r['status']!r}: use "
                                  f"one of {', '.join(RECONCILIATION_STATUSES)}")
        n = len(rows)
        self.write_rows("reconciliations", {
            "run_id": _repeat(run_id, n), "seq": [r["seq"] for r in rows],
            "deployment_id": [r["deployment_id"] for r in rows], "ts": [r["ts"] for r in rows],
            "kind": [r["kind"] for r in rows], "symbol": [r.get("symbol") for r in rows],
            "ours": [r.get("ours") for r in rows], "venue": [r.get("venue") for r in rows],
            "status": [r["status"] for r in rows],
            "resolved_by": [r.get("resolved_by") for r in rows],
            "resolved_at": [r.get("resolved_at") for r in rows]})

    def reconciliations(self, *, deployment_id: str, status: str | None = None
                        ) -> list[dict[str, Any]]:
        """Return a deployment's reconciliation differences, by ``ts``, run and seq.

        Parameters
        ----------
        deployment_id : str
        status : {"open", "accepted"}, optional

        Raises
        ------
        LedgerError
            An unknown status, or a ledger that cannot be read.
        """
        _check_choice("reconciliation status", status, RECONCILIATION_STATUSES, optional=True)
        t = schema.reconciliations
        q = (select(t).where(t.c.deployment_id == deployment_id)
             .order_by(t.c.ts, t.c.run_id, t.c.seq))
        if status is not None:
            q = q.where(t.c.status == status)
        return self._read(q)

    def update_reconciliations(self, updates: list[tuple[str, int, str, str, str]]) -> None:
        """Resolve reconciliation differences, in the current batch.

        Committed by :meth:`commit` with the engine rows of the same batch (see
        :meth:`finish_commands`).

        Parameters
        ----------
        updates : list of (str, int, str, str, str)
            ``(run_id, seq, status, resolved_by, resolved_at)``; ``resolved_at`` UTC ISO.

        Raises
        ------
        LedgerError
            An unknown status; an earlier write failed.
        """
        if not updates:
            return
        for run, seq, st, *_ in updates:
            _check_choice(f"reconciliation {run}/{seq}: status", st, RECONCILIATION_STATUSES)
        from sqlalchemy import bindparam
        t = schema.reconciliations
        stmt = (update(t).where(t.c.run_id == bindparam("r"), t.c.seq == bindparam("q"))
                .values(status=bindparam("s"), resolved_by=bindparam("by"),
                        resolved_at=bindparam("at")))
        self._buffered_update(
            "UPDATE reconciliations SET status = ?, resolved_by = ?, resolved_at = ? "
            "WHERE run_id = ? AND seq = ?",
            [(st, by, at, run, int(seq)) for run, seq, st, by, at in updates], stmt,
            [{"r": run, "q": int(seq), "s": st, "by": by, "at": at}
             for run, seq, st, by, at in updates])

    def set_deployment_status(self, deployment_id: str, status: str, *,
                              run_id: str | None = None) -> None:
        """Set a deployment's status (and its current run), committed before returning.

        Parameters
        ----------
        deployment_id : str
        status : str
            One of :data:`DEPLOYMENT_STATUSES`.
        run_id : str, optional
            Its current run (``deployments.run_id``); left as it is when omitted.

        Raises
        ------
        LedgerError
            An unknown status or deployment, or a row that cannot be written.
        """
        _check_choice("deployment status", status, DEPLOYMENT_STATUSES)
        self.drain()
        d = schema.deployments
        values: dict[str, Any] = {"status": status}
        if run_id is not None:
            values["run_id"] = run_id
        try:
            with self.engine.begin() as conn:
                n = conn.execute(update(d).where(d.c.deployment_id == deployment_id)
                                 .values(**values)).rowcount
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        if n == 0:
            raise LedgerError(f"no deployment {deployment_id!r} in this ledger")

    def deployments(self, *, status: str | None = None) -> list[dict[str, Any]]:
        """Return the ``deployments`` rows by name, optionally with one status.

        Raises
        ------
        LedgerError
            An unknown status, or a ledger that cannot be read.
        """
        _check_choice("deployment status", status, DEPLOYMENT_STATUSES, optional=True)
        d = schema.deployments
        q = select(d).order_by(d.c.name)
        if status is not None:
            q = q.where(d.c.status == status)
        return self._read(q)

    def latest_engine_state(self, deployment_id: str) -> dict[str, Any] | None:
        """Return the newest committed engine state of a deployment (parsed JSON), or
        ``None`` if it never ran.

        Raises
        ------
        LedgerError
            If the ledger cannot be read or the state is not valid JSON.
        """
        self.drain()
        t = schema.engine_state
        try:
            with self.engine.connect() as conn:
                text = conn.execute(select(t.c.state).where(t.c.deployment_id == deployment_id)
                                    .order_by(t.c.ts.desc(), t.c.seq.desc()).limit(1)).scalar()
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise LedgerError(f"deployment {deployment_id}: its saved engine state is not JSON "
                              f"({exc})") from None

    # -- the daemon: heartbeats and the durable event queue ---------------------------
    def daemon_heartbeat(self, daemon_id: str, *, status: str, activity: str | None = None,
                         queue_depth: int = 0, autonomy_level: int | None = None,
                         anomalies: Any = (), deployments: Any = ()) -> int:
        """Append a heartbeat of a daemon, committed before this returns.

        The row carries this process's ``pid``, ``host`` and ``process_start`` token
        (:func:`tradewarden.ledger.lifecycle.this_process`) and ``ts``, the wall clock
        (UTC ISO, bookkeeping only). One process writes a daemon's heartbeats (the
        daemon's file lock sees to that); a concurrent writer of the same ``daemon_id``
        may be refused with a duplicate-key error.

        Parameters
        ----------
        daemon_id : str
            1-32 letters, digits, ``_ . : -``.
        status : str
            One of :data:`DAEMON_STATUSES`.
        activity : str, optional
            What the daemon is doing now (free text).
        queue_depth : int
            Events due or being processed (:meth:`event_queue_depth`), at least 0.
        autonomy_level : int, optional
            One of :data:`AUTONOMY_LEVELS`.
        anomalies : list, tuple or set
            Active anomaly flags (JSON-serialisable items), stored as a JSON list.
        deployments : list, tuple or set of str
            Names of the deployments the daemon runs, stored as a JSON list.

        Returns
        -------
        int
            The heartbeat's sequence number: 1 for the daemon's first, then one more each.

        Raises
        ------
        LedgerError
            A bad value (the message names it), or a row that cannot be written.
        """
        _check_name("daemon id", daemon_id, 32)
        _check_choice("daemon status", status, DAEMON_STATUSES)
        if activity is not None and not isinstance(activity, str):
            raise LedgerError(f"daemon activity {activity!r}: give text")
        if isinstance(queue_depth, bool) or not isinstance(queue_depth, (int, np.integer)) \
                or queue_depth < 0:
            raise LedgerError(f"daemon queue depth {queue_depth!r}: give a whole number >= 0")
        if autonomy_level is not None and (isinstance(autonomy_level, bool)
                                           or autonomy_level not in AUTONOMY_LEVELS):
            raise LedgerError(f"autonomy level {autonomy_level!r}: use one of 1, 2, 3, 4")
        anomaly_text = _json_list("daemon anomalies", anomalies)
        if isinstance(deployments, (list, tuple, set, frozenset)) \
                and not all(isinstance(d, str) for d in deployments):
            raise LedgerError(f"daemon deployments {deployments!r}: give a list of names")
        deployment_text = _json_list("daemon deployments", sorted(deployments)
                                     if isinstance(deployments, (set, frozenset)) else deployments)
        me = this_process()
        self.drain()
        h = schema.daemon_heartbeats
        values = {"daemon_id": daemon_id, "pid": me.pid, "host": me.host,
                  "process_start": me.start, "status": status, "activity": activity,
                  "queue_depth": int(queue_depth), "autonomy_level": autonomy_level,
                  "anomalies": anomaly_text, "deployments": deployment_text}
        try:
            with self.engine.begin() as conn:
                last = conn.execute(select(func.max(h.c.seq))
                                    .where(h.c.daemon_id == daemon_id)).scalar()
                seq = 1 if last is None else int(last) + 1
                conn.execute(h.insert().values(seq=seq, ts=utcnow_iso(), **values))
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        return seq

    def latest_daemon_heartbeat(self, daemon_id: str | None = None) -> dict[str, Any] | None:
        """Return the newest heartbeat of one daemon (highest ``seq``), or of any daemon
        (latest ``ts``, then highest ``seq``); ``None`` if there is none.

        Returns
        -------
        dict or None
            The ``daemon_heartbeats`` row, with ``anomalies`` and ``deployments``
            parsed into lists (empty when not recorded).

        Raises
        ------
        LedgerError
            A bad daemon id, a ledger that cannot be read, or stored lists that are not
            JSON.
        """
        h = schema.daemon_heartbeats
        q = select(h)
        if daemon_id is not None:
            _check_name("daemon id", daemon_id, 32)
            q = q.where(h.c.daemon_id == daemon_id).order_by(h.c.seq.desc())
        else:
            q = q.order_by(h.c.ts.desc(), h.c.seq.desc())
        rows = self._read(q.limit(1))
        if not rows:
            return None
        row = rows[0]
        for key in ("anomalies", "deployments"):
            row[key] = self._parse_json(row[key], [], f"daemon {row['daemon_id']} heartbeat "
                                        f"{row['seq']}: {key}")
        return row

    @staticmethod
    def _parse_json(text: str | None, empty: Any, where: str) -> Any:
        if text is None:
            return empty
        try:
            return json.loads(text)
        except ValueError as exc:
            raise LedgerError(f"{where} is not JSON ({exc})") from None

    def _event_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(row)
        out["payload"] = self._parse_json(out["payload"], {}, f"daemon event {out['id']}: payload")
        return out

    def enqueue_event(self, kind: str, payload: Mapping[str, Any], *, due_at: float,
                      dedupe_key: str | None = None) -> int | None:
        """Add an event to the daemon's durable queue, committed before this returns.

        Parameters
        ----------
        kind : str
            The event type (``market_open``, ``order_filled``, ...): 1-32 letters,
            digits, ``_ . : -``.
        payload : mapping
            The event's data, stored as JSON (Decimal as text).
        due_at : float
            When it may be processed, UTC epoch seconds.
        dedupe_key : str, optional
            1-128 characters; an event with a key already in the queue (whatever its
            status) is not added again.

        Returns
        -------
        int or None
            The new event's id (``daemon_events.id``), or ``None`` when ``dedupe_key``
            is already present.

        Raises
        ------
        LedgerError
            A bad kind, payload, time or key (the message names it), or a row that
            cannot be written.
        """
        _check_name("event kind", kind, 32)
        if not isinstance(payload, Mapping):
            raise LedgerError(f"event payload {payload!r}: give a mapping (a JSON object)")
        try:
            payload_text = dumps(dict(payload))
        except (TypeError, ValueError) as exc:
            raise LedgerError(f"event payload of {kind}: not JSON-serialisable ({exc})") from None
        due = _check_epoch("event due_at", due_at)
        if dedupe_key is not None and (not isinstance(dedupe_key, str)
                                       or not 1 <= len(dedupe_key) <= 128):
            raise LedgerError(f"event dedupe key {dedupe_key!r}: give 1-128 characters")
        self.drain()
        e = schema.daemon_events
        try:
            with self.engine.begin() as conn:
                if dedupe_key is not None and conn.execute(
                        select(e.c.id).where(e.c.dedupe_key == dedupe_key)).first() is not None:
                    return None
                res = conn.execute(e.insert().values(
                    kind=kind, payload=payload_text, dedupe_key=dedupe_key, status="pending",
                    attempts=0, due_at=due, created_at=utcnow_iso()))
                return int(res.inserted_primary_key[0])
        except IntegrityError as exc:
            # Another process added the same key between the check and the insert.
            if dedupe_key is not None and self._read(
                    select(e.c.id).where(e.c.dedupe_key == dedupe_key)):
                return None
            raise self._error(exc) from None
        except SQLAlchemyError as exc:
            raise self._error(exc) from None

    def claim_event(self, owner: str, now: float, lease_seconds: float) -> dict[str, Any] | None:
        """Take the oldest due event that is pending, or processing under an expired lease.

        The event (``due_at <= now``; the earliest ``due_at``, then the lowest id) gets
        ``status='processing'``, ``lease_owner=owner``, ``lease_until = now +
        lease_seconds`` and one more ``attempts``, committed before this returns. An
        event whose worker died is taken over once its lease has expired
        (``lease_until < now``). Each candidate is taken by a conditional UPDATE (its
        WHERE repeats the claimable test) whose row count says whether this caller won:
        SQLite serialises writers, and PostgreSQL (READ COMMITTED) re-checks the WHERE
        against a row another transaction just updated, so two processes claiming at once
        never get the same event; the loser moves on to the next candidate.

        Parameters
        ----------
        owner : str
            Who claims it, unique per worker process (e.g. ``"<daemon id>:<pid>"``):
            1-64 letters, digits, ``_ . : -``.
        now : float
            The caller's clock, UTC epoch seconds.
        lease_seconds : float
            How long the claim holds, seconds (> 0).

        Returns
        -------
        dict or None
            The claimed ``daemon_events`` row after the update (``payload`` parsed into
            a dict), or ``None`` when no event is due.

        Raises
        ------
        LedgerError
            A bad owner, time or lease (the message names it), or a ledger that cannot be
            read or written.
        """
        _check_name("event lease owner", owner, 64)
        now = _check_epoch("claim time", now)
        lease = _check_epoch("lease seconds", lease_seconds)
        if lease <= 0:
            raise LedgerError(f"lease seconds {lease_seconds!r}: give more than 0")
        self.drain()
        e = schema.daemon_events
        claimable = and_(e.c.due_at <= now,
                         or_(e.c.status == "pending",
                             and_(e.c.status == "processing", e.c.lease_until < now)))
        candidates = select(e.c.id).where(claimable).order_by(e.c.due_at, e.c.id).limit(16)
        try:
            while True:
                with self.engine.connect() as conn:
                    ids = conn.execute(candidates).scalars().all()
                if not ids:
                    return None
                for event_id in ids:
                    with self.engine.begin() as conn:
                        won = conn.execute(
                            update(e).where(e.c.id == event_id, claimable)
                            .values(status="processing", lease_owner=owner,
                                    lease_until=now + lease, attempts=e.c.attempts + 1)).rowcount
                        if won == 1:
                            row = conn.execute(select(e).where(e.c.id == event_id)).mappings().one()
                            return self._event_row(row)
        except SQLAlchemyError as exc:
            raise self._error(exc) from None

    def finish_event(self, event_id: int, owner: str, *, status: str,
                     error: str | None = None, retry_at: float | None = None) -> bool:
        """Mark a claimed event done or failed, or put it back for a retry, if ``owner``
        still holds its lease.

        ``finished_at`` is the wall clock (UTC ISO); the lease fields are kept as a
        record of who finished it. Committed before this returns.

        Parameters
        ----------
        event_id : int
        owner : str
            The ``owner`` that claimed it (:meth:`claim_event`).
        status : {"done", "failed", "pending"}
            ``"pending"`` (with ``retry_at``) returns the event to the queue, due again at
            ``retry_at``; its ``attempts`` count is kept.
        error : str, optional
            Why it failed (a traceback's last line, ...).
        retry_at : float, optional
            With ``status="pending"`` only, and required then: when the event is due
            again, UTC epoch seconds.

        Returns
        -------
        bool
            ``True`` when recorded; ``False`` when the event is not ``processing`` under
            this owner's lease (it expired and another worker took the event over, or it
            is already finished).

        Raises
        ------
        LedgerError
            A bad status or owner, an event id not in the ledger, or a row that cannot be
            written.
        """
        if isinstance(event_id, bool) or not isinstance(event_id, (int, np.integer)):
            raise LedgerError(f"daemon event id {event_id!r}: give a whole number")
        _check_choice("event status", status, (*EVENT_END_STATUSES, "pending"))
        _check_name("event lease owner", owner, 64)
        if error is not None and not isinstance(error, str):
            raise LedgerError(f"event error {error!r}: give text")
        if (status == "pending") != (retry_at is not None):
            raise LedgerError(f"event retry_at {retry_at!r} with status {status!r}: give "
                              "retry_at with status 'pending' only, and always with it")
        values: dict[str, Any] = {"status": status, "error": error}
        if retry_at is not None:
            values["due_at"] = _check_epoch("event retry_at", retry_at)
        else:
            values["finished_at"] = utcnow_iso()
        self.drain()
        e = schema.daemon_events
        try:
            with self.engine.begin() as conn:
                n = conn.execute(update(e).where(e.c.id == int(event_id),
                                                 e.c.status == "processing",
                                                 e.c.lease_owner == owner)
                                 .values(**values)).rowcount
                if n == 0 and conn.execute(select(e.c.id).where(e.c.id == int(event_id))).first() \
                        is None:
                    raise LedgerError(f"no daemon event {event_id!r} in this ledger")
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        return n == 1

    def renew_event(self, event_id: int, owner: str, now: float, lease_seconds: float) -> bool:
        """Extend ``owner``'s lease on a claimed event to ``now + lease_seconds``.

        A handler that runs longer than its lease calls this (through the dispatcher)
        so that no other worker takes the event over meanwhile. Committed before this
        returns.

        Parameters
        ----------
        event_id : int
        owner : str
            The ``owner`` that claimed it (:meth:`claim_event`).
        now : float
            The caller's clock, UTC epoch seconds.
        lease_seconds : float
            The new lease from ``now``, seconds (> 0).

        Returns
        -------
        bool
            ``True`` when renewed; ``False`` when the event is no longer ``processing``
            under this owner (another worker took it over, or it is finished).

        Raises
        ------
        LedgerError
            A bad id, owner, time or lease (the message names it), or a ledger that
            cannot be written.
        """
        if isinstance(event_id, bool) or not isinstance(event_id, (int, np.integer)):
            raise LedgerError(f"daemon event id {event_id!r}: give a whole number")
        _check_name("event lease owner", owner, 64)
        now = _check_epoch("renew time", now)
        lease = _check_epoch("lease seconds", lease_seconds)
        if lease <= 0:
            raise LedgerError(f"lease seconds {lease_seconds!r}: give more than 0")
        self.drain()
        e = schema.daemon_events
        try:
            with self.engine.begin() as conn:
                n = conn.execute(update(e).where(e.c.id == int(event_id),
                                                 e.c.status == "processing",
                                                 e.c.lease_owner == owner)
                                 .values(lease_until=now + lease)).rowcount
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        return n == 1

    def events(self, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Return daemon events, oldest first (by id), optionally of one status.

        Parameters
        ----------
        status : str, optional
            One of :data:`EVENT_STATUSES`.
        limit : int, optional
            Only the newest ``limit`` events (still returned oldest first).

        Returns
        -------
        list of dict
            ``daemon_events`` rows, ``payload`` parsed into a dict.

        Raises
        ------
        LedgerError
            An unknown status, a ``limit`` below 1, or a ledger that cannot be read.
        """
        rows = self._newest(schema.daemon_events, "event", status, EVENT_STATUSES, limit, ())
        return [self._event_row(r) for r in rows]

    def event_queue_depth(self, now: float) -> int:
        """Count the events waiting or in hand: pending and due by ``now`` (UTC epoch
        seconds), plus every one processing (events scheduled later are not counted).

        Raises
        ------
        LedgerError
            A bad time, or a ledger that cannot be read.
        """
        now = _check_epoch("queue time", now)
        e = schema.daemon_events
        rows = self._read(select(func.count().label("n")).where(
            or_(and_(e.c.status == "pending", e.c.due_at <= now), e.c.status == "processing")))
        return int(rows[0]["n"])

    def heartbeat(self, run_id: str, *, force: bool = False, **counts: int) -> bool:
        """Record that the run is alive, with its progress, at most every
        :attr:`heartbeat_seconds` (wall clock; bookkeeping only).

        The update is queued behind the writes already submitted, so the counts it
        stores (``bars_processed``, ``decisions``, ...) never run ahead of what is
        committed.

        Parameters
        ----------
        run_id : str
        force : bool
            Write even if the last heartbeat is recent.
        **counts : int
            Columns of ``runs`` to update with it.

        Returns
        -------
        bool
            Whether a heartbeat was queued.

        Raises
        ------
        LedgerError
            If an earlier write failed.
        """
        now = time.monotonic()
        if not force and now - self._last_beat < self.heartbeat_seconds:
            return False
        self._last_beat = now
        r = schema.runs.c

        def beat() -> None:
            self._commit()
            with self.engine.begin() as conn:
                conn.execute(update(schema.runs).where(r.run_id == run_id)
                             .values(heartbeat_at=utcnow_iso(), **counts))

        self._do(beat)
        return True

    def finish_run(self, run_id: str, **values: Any) -> dict[str, Any]:
        """Close a run: update its row (status, counts, completion time, error).

        ``status='completed'`` first waits for every pending write and raises if one
        failed (the run is then not marked completed). Any other status (``failed``,
        ``interrupted``) first rolls back the batches that no chunk commit covered and
        fills in the counts (``bars_processed``, ``decisions``, ``trades_opened``,
        ``trades_closed``) from what the ledger holds, unless given.

        Returns
        -------
        dict
            The values written.

        Raises
        ------
        LedgerError
            If a pending write failed (``completed``), or the row cannot be updated;
            the message gives the cause (a full disk, a lock).
        """
        if values.get("status") == "completed":
            self.drain()
        else:
            self._discard_uncommitted()
        try:
            with self.engine.begin() as conn:
                if values.get("status") != "completed":
                    values = {**recorded_counts(conn, run_id), **values}
                conn.execute(update(schema.runs).where(schema.runs.c.run_id == run_id)
                             .values(**values))
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        return values

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
            self._execute(schema.metadata.tables[table].insert(), tbl.to_pylist())

    def _in_transaction(self, path: str, work: Any) -> None:
        """Run ``work(cursor)`` on the bulk connection inside the open transaction
        (begun here if none is open).

        A failure rolls the whole uncommitted transaction back, so a chunk is never
        half-written.
        """
        if self._adbc is None:
            self._adbc = _adbc_connect(path, self.busy_timeout)
        cur = self._adbc.cursor()
        try:
            if not self._in_txn:
                cur.execute("BEGIN IMMEDIATE")
                self._in_txn = True
            work(cur)
        except BaseException:
            # SQLite may have rolled back already (SQLITE_FULL, SQLITE_IOERR): the
            # ROLLBACK is quiet, and ``work``'s error is the one raised.
            if self._in_txn:
                self._quiet_rollback(cur)
                self._in_txn = False
            cur.close()
            raise
        cur.close()

    def _ingest(self, path: str, table: str, tbl: pa.Table) -> None:
        self._in_transaction(path, lambda cur: cur.adbc_ingest(table, tbl, mode="append"))

    def write_rows(self, table: str, columns: Mapping[str, Any]) -> None:
        """Append a batch given as ``{column: values}``.

        SQLite file: one Arrow bulk ingest in the open transaction, visible after
        :meth:`commit`; other servers: executemany in the open transaction, visible
        after :meth:`commit`; ``sqlite://``: executemany in its own transaction.

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
        """Run ``stmt`` over ``rows``: in the open batch transaction (begun here if none
        is open) on a server, where a failure rolls the whole batch back; in its own
        transaction on ``sqlite://``."""
        if not self._batched:
            self._commit()   # SQLite has one writer: the bulk transaction goes first
            with self.engine.begin() as conn:
                conn.execute(stmt, rows)
            return
        if self._batch_conn is None:
            self._batch_conn = self.engine.connect()
        try:
            self._batch_conn.execute(stmt, rows)     # autobegins the batch transaction
        except BaseException:
            self._batch_conn.rollback()
            raise

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
        """Insert closed round trips (``return_pct`` = pnl / entry notional * 100).

        ``mae_price`` / ``mfe_price`` are the trade's excursion prices (NULL when not
        tracked); ``mae_pct`` / ``mfe_pct`` = (price / entry_price - 1) * 100.
        """
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
            "mae_price": [t.mae_price for t in trades],
            "mfe_price": [t.mfe_price for t in trades],
            "mae_pct": _excursion_pct([t.mae_price for t in trades], entry_price),
            "mfe_pct": _excursion_pct([t.mfe_price for t in trades], entry_price),
        })

    def write_events(self, run_id: str, events: list[tuple[int, int | None, str, str | None, str]]) -> None:
        """Insert ``(seq, ts, kind, symbol, message)`` events (halts, resets, data, errors)."""
        if not events:
            return
        self.write_rows("events", {"run_id": _repeat(run_id, len(events)),
                                   "seq": [e[0] for e in events], "ts": [e[1] for e in events],
                                   "kind": [e[2] for e in events], "symbol": [e[3] for e in events],
                                   "message": [e[4] for e in events]})

    def write_order_events(self, run_id: str,
                           events: list[tuple[int, int, str, str, str, str, int | None]]) -> None:
        """Insert ``(seq, ts, client_order_id, kind, status, reason, fill_seq)`` rows of
        the order journal (venue acknowledgements and order events, as received)."""
        if not events:
            return
        self.write_rows("order_events", {
            "run_id": _repeat(run_id, len(events)), "seq": [e[0] for e in events],
            "ts": [e[1] for e in events], "client_order_id": [e[2] for e in events],
            "kind": [e[3] for e in events], "status": [e[4] for e in events],
            "reason": [e[5] for e in events], "fill_seq": [e[6] for e in events]})

    def close(self) -> None:
        """Apply pending writes, stop the writer thread and release connections.

        Raises
        ------
        LedgerError
            If a pending background write failed and that was not reported before (the
            uncommitted batches are rolled back either way).
        """
        try:
            writer = self._writer
            if writer is not None and writer.error is not None:
                reported = writer.reported
                err = self._discard_uncommitted()
                if err is not None and not reported:
                    raise LedgerError(f"ledger write failed: {self.describe(err)}") from err
            else:
                self.drain()
        finally:
            if self._writer is not None:
                self._writer.stop()
                self._writer = None
            if self._adbc is not None:
                try:
                    if self._in_txn:     # only after a failure: drain committed the rest
                        cur = self._adbc.cursor()
                        self._quiet_rollback(cur)
                        cur.close()
                        self._in_txn = False
                finally:
                    self._adbc.close()
                    self._adbc = None
            if self._batch_conn is not None:
                self._batch_conn.close()        # rolls back what no commit covered
                self._batch_conn = None
            self.engine.dispose()
