"""What the HTML report draws, read from the ledger (and, for candles, the run's bars).

The report's figures come from :mod:`tradewarden.analytics.report`; this module reads
the series the page plots: each symbol's close and recorded strategy inputs per bar
(``decisions``), the halt periods (``events``), the entry reason of each trade
(``trades`` -> ``orders`` -> ``decisions``), and checks OHLCV bars read again from the
run's data source against the ledger's closes before they are drawn as candles.

Long series are shown aggregated into display buckets (:func:`display_bucket`): OHLC
per bucket (first open, highest high, lowest low, last close, summed volume), the
strategy inputs and the close at each bucket's last bar. Trade markers are never
aggregated: they sit at each fill's exact time and price.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select

from tradewarden.analytics.metrics import Bind, _batches, connect
from tradewarden.domain.values import BarSeries
from tradewarden.ledger.schema import decisions, events, orders, trades

__all__ = ["BUCKETS", "MAX_CANDLES", "Candles", "HaltPeriod", "SymbolSeries", "aggregate",
           "bucket_name", "candles_for", "display_bucket", "entry_reasons", "halt_label",
           "halt_periods", "read_symbol_series", "utc_text"]

#: More bars than this are drawn aggregated into coarser display buckets.
MAX_CANDLES = 1200

#: Display bucket lengths (seconds) tried in order, each aligned to the UTC epoch:
#: 1, 5, 15, 30 min, 1, 2, 4, 6, 12 h, 1, 2 days, 1, 2 weeks, 30 days.
BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400, 2 * 86400,
           7 * 86400, 14 * 86400, 30 * 86400)

_NAMES = {60: "1-minute", 300: "5-minute", 900: "15-minute", 1800: "30-minute",
          3600: "hourly", 7200: "2-hour", 14400: "4-hour", 21600: "6-hour",
          43200: "12-hour", 86400: "daily", 2 * 86400: "2-day", 7 * 86400: "weekly",
          14 * 86400: "2-week", 30 * 86400: "30-day"}

_X = ("x1", "x2", "x3", "x4")


def utc_text(ts: int) -> str:
    """Format UTC epoch seconds as ``YYYY-MM-DD HH:MM`` (UTC)."""
    return datetime.fromtimestamp(int(ts), tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def bucket_name(seconds: int) -> str:
    """Name a display bucket length (``86400`` -> ``'daily'``)."""
    return _NAMES.get(int(seconds), f"{int(seconds)} s")


@dataclass
class SymbolSeries:
    """One symbol's bars as the ledger recorded them (the last decision per bar).

    Attributes
    ----------
    symbol : str
    ts : numpy.ndarray of int64, shape (n,)
        Bar open times, UTC epoch seconds, ascending and unique.
    close : numpy.ndarray of float64, shape (n,)
        ``decisions.close``, quote currency.
    inputs : dict of str to numpy.ndarray of float64, shape (n,)
        The strategy's recorded inputs (``decisions.x1..x4`` named by
        ``runs.input_names``), NaN where a bar recorded none.
    """

    symbol: str
    ts: np.ndarray
    close: np.ndarray
    inputs: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def read_symbol_series(bind: Bind, run_id: str, symbols: list[str], input_names: list[str]
                       ) -> dict[str, SymbolSeries]:
    """Read each symbol's close and strategy inputs per bar from ``decisions``.

    Rows without a close are skipped; when a bar has several decisions (e.g. an exit
    and a re-entry), the one with the highest ``seq`` is kept. The rows are read in
    Arrow batches (through ADBC for a SQLite file, as the report's other scans).

    Parameters
    ----------
    bind : Engine | Connection
    run_id : str
    symbols : list of str
        Symbols to read; a symbol without rows gets empty arrays.
    input_names : list of str
        ``runs.input_names`` (at most four): the names of ``x1..x4``.

    Returns
    -------
    dict of str to SymbolSeries
    """
    names = list(input_names)[:4]
    xs = _X[:len(names)]
    sql = (f"SELECT seq, ts, symbol, close{''.join(', ' + x for x in xs)} FROM decisions "
           "WHERE run_id = {p} AND close IS NOT NULL ORDER BY seq")
    schema = pa.schema([("seq", pa.int64()), ("ts", pa.int64()), ("symbol", pa.string()),
                        ("close", pa.float64()), *[(x, pa.float64()) for x in xs]])
    parts: dict[str, list[list[np.ndarray]]] = {s: [] for s in symbols}
    with connect(bind) as conn:
        for batch in _batches(conn, sql, run_id, schema):
            names_col = batch.column(2)
            for sym in symbols:
                mask = pc.equal(names_col, sym)
                if not pc.any(mask).as_py():
                    continue
                part = batch.filter(mask)
                # copies, not views: a view would keep the whole batch's buffers alive
                parts[sym].append([np.array(part.column(k).to_numpy(zero_copy_only=False))
                                   for k in range(batch.num_columns) if k != 2])
    out: dict[str, SymbolSeries] = {}
    for sym in symbols:
        if not parts[sym]:
            out[sym] = SymbolSeries(sym, np.zeros(0, np.int64), np.zeros(0),
                                    {n: np.zeros(0) for n in names})
            continue
        chunks, parts[sym] = parts[sym], []
        columns = []
        for k in range(len(chunks[0])):                  # one column at a time: less peak
            columns.append(np.concatenate([c[k] for c in chunks]))
            for c in chunks:
                c[k] = None
        seq, ts, close, *xcols = columns
        if len(ts) > 1 and not (np.diff(ts) > 0).all():      # unsorted or several per bar
            order = np.lexsort((seq, ts))
            ts, close, xcols = ts[order], close[order], [x[order] for x in xcols]
            last = np.r_[ts[1:] != ts[:-1], True]               # the highest seq of a bar
            ts, close, xcols = ts[last], close[last], [x[last] for x in xcols]
        out[sym] = SymbolSeries(sym, ts.astype(np.int64, copy=False),
                                close.astype(float, copy=False),
                                {n: x.astype(float, copy=False) for n, x in zip(names, xcols)})
    pa.default_memory_pool().release_unused()   # the batches' Arrow memory, back to the OS
    return out


def display_bucket(bar_seconds: int, first_ts: int, last_ts: int, n_bars: int,
                   max_candles: int = MAX_CANDLES) -> int:
    """Choose the display bucket (seconds) of a series.

    The bars' own length when there are at most ``max_candles`` bars; otherwise the
    first of :data:`BUCKETS` longer than a bar whose UTC-aligned buckets over
    ``[first_ts, last_ts]`` number at most ``max_candles``.
    """
    if n_bars <= max_candles:
        return int(bar_seconds)
    span = max(int(last_ts) - int(first_ts), 1)
    for b in BUCKETS:
        if b > bar_seconds and span // b + 1 <= max_candles:
            return b
    return BUCKETS[-1]


def aggregate(ts: np.ndarray, bucket: int, *, first: Mapping[str, np.ndarray] = {},
              high: Mapping[str, np.ndarray] = {}, low: Mapping[str, np.ndarray] = {},
              last: Mapping[str, np.ndarray] = {}, total: Mapping[str, np.ndarray] = {}
              ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Aggregate bar columns into UTC-aligned buckets of ``bucket`` seconds.

    Parameters
    ----------
    ts : numpy.ndarray of int64, shape (n,)
        Ascending bar open times, UTC epoch seconds.
    bucket : int
        Bucket length in seconds; bucket ``k`` holds ``k * bucket <= ts < (k+1) * bucket``.
    first, high, low, last, total : mapping of str to numpy.ndarray, shape (n,)
        Columns aggregated by the first value, the maximum, the minimum, the last value
        (NaN ignored: the last non-NaN) and the sum.

    Returns
    -------
    (numpy.ndarray, dict of str to numpy.ndarray)
        The buckets' start times (UTC epoch seconds) and each column, shape (buckets,).
    """
    key = (np.asarray(ts, dtype=np.int64) // bucket) * bucket
    frame = pd.DataFrame({"k": key})
    spec: dict[str, tuple[str, str]] = {}
    for how, cols in (("first", first), ("max", high), ("min", low), ("last", last),
                      ("sum", total)):
        for name, values in cols.items():
            frame[name] = np.asarray(values, dtype=float)
            spec[name] = (name, how)
    g = frame.groupby("k", sort=True).agg(**spec) if spec else frame.groupby("k").size()
    starts = g.index.to_numpy(dtype=np.int64)
    cols = {name: g[name].to_numpy(dtype=float) for name in spec} if spec else {}
    return starts, cols


@dataclass
class Candles:
    """A symbol's OHLCV bars read again from the run's data source, checked against the
    ledger.

    Attributes
    ----------
    bars : BarSeries | None
        The bars within the ledger's first and last bar, or ``None`` when they could
        not be used.
    note : str
        Why there are no candles (empty when there are).
    """

    bars: BarSeries | None
    note: str = ""


def candles_for(series: SymbolSeries, bars: BarSeries | None, unavailable: str = ""
                ) -> Candles:
    """Check bars read again from the run's data source against the ledger's closes.

    Every bar the ledger recorded must be in ``bars`` at the same open time with the
    same close (relative difference at most 1e-9); the bars are then cut to the
    ledger's first and last bar.

    Parameters
    ----------
    series : SymbolSeries
        The ledger's closes.
    bars : BarSeries | None
        The source's bars (``None``: not available).
    unavailable : str
        Why ``bars`` is ``None`` (shown in the page).

    Returns
    -------
    Candles
        With ``bars`` when they match, else a note saying what differs.
    """
    if not len(series):
        return Candles(None, "the ledger holds no close for this symbol")
    if bars is None:
        return Candles(None, unavailable or "the run's bars could not be read again")
    src = bars.source or "the data source"
    idx = np.searchsorted(bars.ts, series.ts)
    inside = idx < len(bars.ts)
    found = np.zeros(len(series), dtype=bool)
    found[inside] = bars.ts[idx[inside]] == series.ts[inside]
    if not found.all():
        k = int(np.flatnonzero(~found)[0])
        return Candles(None, f"{src} no longer holds {int((~found).sum()):,} of the "
                             f"{len(series):,} bars the ledger recorded (first: "
                             f"{utc_text(series.ts[k])} UTC)")
    got = bars.close[idx]
    bad = ~np.isclose(got, series.close, rtol=1e-9, atol=0.0)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        return Candles(None, f"{src} differs from the ledger's closes at {int(bad.sum()):,} "
                             f"of {len(series):,} bars (first: {utc_text(series.ts[k])} UTC, "
                             f"ledger {series.close[k]:g}, source {got[k]:g})")
    lo, hi = int(idx[0]), int(idx[-1]) + 1
    return Candles(bars.slice(lo, hi))


@dataclass(frozen=True)
class HaltPeriod:
    """A stretch of time during which an account's new entries were halted.

    Attributes
    ----------
    account : str
        The symbol (independent capital) or ``'portfolio'``.
    kind : str
        ``max_drawdown``, ``daily_loss``, ``consecutive_losses``, ``kill_switch``, ...
    reason : str
        The ``events`` message that started it (``max_drawdown:0.3079``).
    start : int
        UTC epoch seconds of the halt event.
    end : int | None
        UTC epoch seconds of the reset that lifted it; ``None``: still in force at the
        end of the run.
    """

    account: str
    kind: str
    reason: str
    start: int
    end: int | None


_WAS = re.compile(r"\(was: ([^)]*)\)\s*$")


def halt_periods(bind: Bind, run_id: str) -> list[HaltPeriod]:
    """Pair each ``halt`` event with the ``reset`` that lifted it (by account and kind).

    The risk manager records ``halt`` with the reason (``kind:detail``) and ``reset``
    with ``'<why> (was: <reason>)'``; halts of different kinds overlap. A halt without
    a reset lasts to the end of the run (``end`` is ``None``).
    """
    e = events.c
    with connect(bind) as conn:
        rows = conn.execute(select(e.ts, e.kind, e.symbol, e.message)
                            .where(e.run_id == run_id, e.kind.in_(("halt", "reset")))
                            .order_by(e.seq)).all()
    open_: dict[tuple[str, str], tuple[int, str]] = {}
    out: list[HaltPeriod] = []
    for ts, kind, account, message in rows:
        if ts is None:
            continue
        account = account or "portfolio"
        if kind == "halt":
            key = (account, str(message).split(":", 1)[0])
            open_.setdefault(key, (int(ts), str(message)))
            continue
        m = _WAS.search(str(message))
        if m is None:
            continue
        key = (account, m.group(1).split(":", 1)[0])
        if key in open_:
            start, reason = open_.pop(key)
            out.append(HaltPeriod(account, key[1], reason, start, int(ts)))
    out.extend(HaltPeriod(a, k, r, s, None) for (a, k), (s, r) in open_.items())
    return sorted(out, key=lambda h: (h.start, h.account, h.kind))


def halt_label(h: HaltPeriod) -> str:
    """Say why entries were halted, in words (``drawdown halt (30.8% below peak)``)."""
    detail = h.reason.split(":", 1)[1] if ":" in h.reason else ""
    try:
        if h.kind == "max_drawdown" and detail:
            return f"drawdown halt ({float(detail) * 100:.1f}% below peak)"
        if h.kind == "daily_loss" and detail:
            return f"daily loss halt (lost {float(detail):,.2f} today)"
        if h.kind == "consecutive_losses" and detail:
            return f"loss-streak halt ({int(float(detail))} losses in a row)"
    except ValueError:
        pass
    if h.kind == "kill_switch":
        return f"kill switch{f' ({detail})' if detail else ''}"
    return f"halt: {h.reason}"


def entry_reasons(bind: Bind, run_id: str) -> dict[str, str]:
    """Map each trade id to the reason of the decision that opened it.

    Follows ``trades.entry_order_id`` to ``orders.decision_seq`` and that decision's
    ``reason`` (e.g. ``breakout``); trades whose entry order has no decision are left
    out.
    """
    t, o, d = trades.c, orders.c, decisions.c
    stmt = (select(t.trade_id, d.reason)
            .join(orders, (o.run_id == t.run_id) & (o.client_order_id == t.entry_order_id))
            .join(decisions, (d.run_id == o.run_id) & (d.seq == o.decision_seq))
            .where(t.run_id == run_id))
    with connect(bind) as conn:
        return {str(tid): str(reason) for tid, reason in conn.execute(stmt)}

