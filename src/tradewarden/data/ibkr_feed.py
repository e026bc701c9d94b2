"""Daily US equity bars from Interactive Brokers (``reqHistoricalData``), on the NYSE calendar.

:class:`IbkrBarFeed` is the market-data side of a paper or live deployment trading US
stocks through IBKR: the same interface as :class:`~tradewarden.data.live_feed.LiveCandleFeed`
(``warmup(bars, after=)``, ``next_due()``, ``poll() -> FeedPoll``), so the deployment loop
(:class:`~tradewarden.ops.paper.DeploymentLoop`) runs it unchanged.

Conventions
-----------
* A daily bar is one NYSE session (:mod:`tradewarden.data.calendars`, ``XNYS``): its
  ``ts`` is the session date at 00:00 UTC, the convention of the bundled equity files
  (``../shared/data/PROVENANCE.md``: "a trading-date label at T00:00:00Z"), and its
  ``close_ts`` the next midnight UTC (``ts + 86400``). The session has closed by then
  (16:00 New York is 20:00 or 21:00 UTC; 13:00 on an early close), so a bar is *closed*,
  and delivered, once ``ts + 86400 <= clock.now()``: the strategy decides after the close
  and its order works at the next open. TWS also serves the session in progress (and a
  finished session before midnight UTC); it is not a bar until then.
* Holidays and unscheduled closures are not sessions, so they are neither gaps nor
  stalls; early closes (half days) are ordinary sessions. A session TWS does not serve
  although it serves a later one is a venue-side gap: skipped, not waited for, and named
  in :attr:`~tradewarden.data.live_feed.FeedPoll.gaps`.
* Prices: ``whatToShow="TRADES"`` (traded prices, which IBKR adjusts for splits but not
  dividends) by default; ``adjusted=True`` asks
  for ``ADJUSTED_LAST`` (split and dividend adjusted, TWS API "Historical Bar Data":
  "ADJUSTED_LAST ... cannot be used with an end date", so every request here is for the
  bars up to now, ``endDateTime=""``). Regular trading hours only (``useRTH=True``).
  Volume is in shares (TWS reports US stock volume in lots of 100 shares for some
  subscriptions; it is passed through as TWS sends it).
* Across symbols, time never goes backwards: a session is delivered only when every
  symbol has it (or a later one, which makes it a gap).

Time comes only from the ``clock`` (``now()``); the only wait is ib_async's own for a
request's answer (at most ``request_timeout`` seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np

from tradewarden.data.calendars import sessions
from tradewarden.data.errors import DataError
from tradewarden.data.live_feed import FeedPoll, Row, series_of_rows
from tradewarden.domain import BarSeries
from tradewarden.domain.values import iso

__all__ = ["DAY", "IbkrBarFeed"]

#: Seconds per daily bar (a session label to the next midnight UTC).
DAY = 86_400
_EPOCH = date(1970, 1, 1)
#: One bar: session label (UTC epoch s), open, high, low, close (USD per share), volume.
#: TWS's own warnings and notices (farm status 2100-2199): not a failed request.
_NOTICE_CODES = range(2100, 2200)


def _label(d: date) -> int:
    return (d - _EPOCH).days * DAY


def _session_labels(first: int, last: int) -> np.ndarray:
    """NYSE session labels (UTC epoch s) from ``first`` to ``last``, both inclusive."""
    if last < first:
        return np.zeros(0, np.int64)
    idx = sessions(iso(first)[:10], iso(last)[:10])
    return (idx.asi8 // 1_000_000_000).astype(np.int64)


@dataclass
class _Symbol:
    """Per-symbol delivery state (session labels, UTC epoch s)."""

    symbol: str
    contract: Any
    last: int = 0                    # newest session delivered (or the warm-up's end)
    fetched: int = 0                 # newest closed session received
    seen: int = 0                    # newest session TWS served, the one in progress included
    pending: list[Row] = field(default_factory=list)


class IbkrBarFeed:
    """Closed daily bars of a few US stocks from TWS / IB Gateway.

    Parameters
    ----------
    ib : ib_async.IB
        A connected client (the broker's: :meth:`from_broker`).
    symbols : list of str
        Stock symbols (``AAPL``).
    clock : Clock
        ``now()`` (UTC epoch s); the only source of time.
    contracts : dict of str to ib_async.Contract, optional
        Qualified contracts per symbol; default ``Stock(symbol, exchange, currency)``.
    adjusted : bool, default False
        ``ADJUSTED_LAST`` (split and dividend adjusted) instead of ``TRADES`` (split
        adjusted only).
    exchange, currency : str
        For the default contracts (``SMART``, ``USD``).
    poll_delay : float, default 60.0
        Seconds after a bar's close (the next midnight UTC) at which it is polled for.
    stall_after : float, default 3600.0
        Seconds after a bar's close after which its absence is a stall.
    retry_every : float, default 300.0
        Seconds between polls while a due bar is missing or TWS fails.
    request_timeout : float, default 30.0
        Longest wait for one ``reqHistoricalData`` answer, seconds (ib_async's timeout).

    Raises
    ------
    ValueError
        No symbols, or a negative delay.
    """

    timeframe = "1d"

    def __init__(self, ib: Any, symbols: list[str], clock: Any, *,
                 contracts: dict[str, Any] | None = None, adjusted: bool = False,
                 exchange: str = "SMART", currency: str = "USD", poll_delay: float = 60.0,
                 stall_after: float = 3600.0, retry_every: float = 300.0,
                 request_timeout: float = 30.0) -> None:
        if isinstance(symbols, str):
            symbols = [s for s in symbols.split(",") if s.strip()]
        syms = list(dict.fromkeys(s.strip().upper() for s in symbols if s.strip()))
        if not syms:
            raise ValueError("the IBKR bar feed needs at least one symbol")
        for name, value in (("poll_delay", poll_delay), ("stall_after", stall_after),
                            ("request_timeout", request_timeout)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if not retry_every > 0:
            raise ValueError(f"retry_every must be > 0 seconds, got {retry_every!r}")
        self.ib = ib
        self.clock = clock
        self.symbols = syms
        self.adjusted = bool(adjusted)
        self.what_to_show = "ADJUSTED_LAST" if adjusted else "TRADES"
        self.poll_delay = float(poll_delay)
        self.stall_after = float(stall_after)
        self.retry_every = float(retry_every)
        self.request_timeout = float(request_timeout)
        contracts = dict(contracts or {})
        if any(s not in contracts for s in syms):
            from ib_async import Stock
            for s in syms:
                contracts.setdefault(s, Stock(s.partition("-")[0], exchange, currency))
        self._state = {s: _Symbol(s, contracts[s]) for s in syms}
        self._horizon: int | None = None
        self._behind = False
        self._polled_at: int | None = None
        #: Requests answered since creation.
        self.requests = 0

    @classmethod
    def from_broker(cls, broker: Any, *, adjusted: bool = False, **kwargs: Any) -> IbkrBarFeed:
        """Return a feed on an :class:`~tradewarden.execution.ibkr.IbkrBroker`'s session and
        contracts (its symbols, its clock)."""
        return cls(broker.ib, list(broker.contracts), broker.clock, contracts=broker.contracts,
                   adjusted=adjusted, **kwargs)

    # -- calendar ----------------------------------------------------------------------
    def _last_closed(self, now: int) -> int:
        """The newest session label whose bar has closed at ``now`` (label + 1 day <= now)."""
        labels = _session_labels(now - 20 * DAY, now - DAY)
        if labels.size == 0:          # never: no 20-day span without a session
            raise DataError("NYSE calendar", f"no session in the 20 days before {iso(now)}")
        return int(labels[-1])

    def _next_session(self, label: int) -> int:
        labels = _session_labels(label + DAY, label + 20 * DAY)
        return int(labels[0]) if labels.size else label + DAY

    def _resolved(self, st: _Symbol, last_closed: int) -> int:
        """Newest session up to which every session is known: received, or a gap before
        a later session TWS serves."""
        known = st.fetched
        if st.seen > st.fetched:
            before = _session_labels(st.fetched + DAY, st.seen - DAY)
            if before.size:
                known = max(known, int(before[-1]))
        return min(last_closed, known)

    # -- public ------------------------------------------------------------------------
    def warmup(self, bars: int, *, after: int | None = None) -> dict[str, BarSeries]:
        """Fetch the history a deployment starts from and set where delivery begins.

        Parameters
        ----------
        bars : int
            Closed sessions wanted per symbol (>= 0); fewer when TWS serves fewer.
        after : int, optional
            Session label (UTC epoch s, 00:00) of the deployment's last processed bar: the
            history ends with it (included) and the next :meth:`poll` returns every
            closed session after it. Default: the newest closed session at
            ``clock.now()``.

        Returns
        -------
        dict of str to BarSeries
            Per symbol, ascending session labels, at most ``bars`` bars.

        Raises
        ------
        ValueError
            ``bars`` negative; ``after`` not a session label or not closed yet.
        DataError
            TWS could not be asked or refused (one line naming the symbol and TWS's words).
        """
        if bars < 0:
            raise ValueError(f"warm-up bars must be >= 0, got {bars!r}")
        now = int(self.clock.now())
        last_closed = self._last_closed(now)
        if after is not None:
            after = int(after)
            if after % DAY or _session_labels(after, after).size == 0:
                raise ValueError(f"after={after} ({iso(after)}) is not an NYSE session label "
                                 "(a session date at 00:00 UTC)")
            if after > last_closed:
                raise ValueError(f"after={after} ({iso(after)}): that session's bar is not "
                                 f"closed at {iso(now)} (it closes at {iso(after + DAY)})")
        end = last_closed if after is None else after
        span = _session_labels(end - (bars * 3 // 2 + 10) * DAY, end)
        lo = int(span[-bars]) if bars and span.size >= bars else (int(span[0]) if span.size else end)
        out: dict[str, BarSeries] = {}
        for st in self._state.values():
            rows, served = self._fetch(st, lo, now, fail=True)
            closed = [r for r in rows if r[0] + DAY <= now]
            history = [r for r in closed if r[0] <= end]
            history = history[-bars:] if bars else []
            st.last = after if after is not None else (history[-1][0] if history else end)
            st.pending = [r for r in closed if r[0] > st.last]
            st.fetched = max([st.last] + [r[0] for r in closed])
            st.seen = max([st.fetched, served])
            out[st.symbol] = self._series(st.symbol, history)
        self._horizon = after if after is not None else min(
            self._resolved(st, last_closed) for st in self._state.values())
        self._behind = False
        self._polled_at = None
        return out

    def next_due(self) -> float:
        """Return the clock time at which :meth:`poll` should next be called.

        Returns
        -------
        float
            UTC epoch seconds: the close (next midnight UTC) of the next session to
            deliver plus ``poll_delay`` (a weekend or holiday is skipped); while the last
            poll left a due bar missing or TWS failing, ``retry_every`` seconds after it.

        Raises
        ------
        RuntimeError
            Before :meth:`warmup`.
        """
        if self._horizon is None:
            raise RuntimeError("IbkrBarFeed.next_due: call warmup() first")
        due = float(self._next_session(self._horizon) + DAY) + self.poll_delay
        if self._behind and self._polled_at is not None:
            due = max(due, self._polled_at + self.retry_every)
        return due

    def poll(self) -> FeedPoll:
        """Fetch the sessions closed since the last delivery and return them.

        Returns
        -------
        FeedPoll
            New closed bars (all symbols consistent in time), the stall reason if any
            (a bar missing ``stall_after`` seconds after its close, or TWS failing), and
            the venue-side gaps skipped.

        Raises
        ------
        RuntimeError
            Before :meth:`warmup`.
        """
        if self._horizon is None:
            raise RuntimeError("IbkrBarFeed.poll: call warmup() first")
        now = int(self.clock.now())
        last_closed = self._last_closed(now)
        failures: list[str] = []
        for st in self._state.values():
            if self._resolved(st, last_closed) >= last_closed:
                continue
            try:
                rows, served = self._fetch(st, self._next_session(st.fetched), now, fail=False)
            except _Failed as exc:
                failures.append(str(exc))
                continue
            for r in rows:
                if r[0] + DAY <= now and r[0] > st.fetched:
                    st.pending.append(r)
            st.fetched = max([st.fetched] + [r[0] for r in st.pending])
            st.seen = max(st.seen, served)
        horizon = max(self._horizon, min(self._resolved(st, last_closed)
                                         for st in self._state.values()))
        out: dict[str, BarSeries] = {}
        gaps: list[str] = []
        for st in self._state.values():
            ready = [r for r in st.pending if r[0] <= horizon]
            if not ready:
                continue
            st.pending = st.pending[len(ready):]
            prev = st.last
            for r in ready:
                missing = _session_labels(prev + DAY, r[0] - DAY) if prev else np.zeros(0, np.int64)
                if missing.size:
                    gaps.append(f"{st.symbol}: ibkr served no {self.what_to_show} bar for "
                                f"{missing.size} NYSE session(s) {iso(int(missing[0]))[:10]} .. "
                                f"{iso(int(missing[-1]))[:10]} although it serves later ones; "
                                "skipped, not waited for")
                prev = r[0]
            st.last = ready[-1][0]
            out[st.symbol] = self._series(st.symbol, ready)
        self._horizon = horizon
        stalls: list[str] = []
        for st in self._state.values():
            resolved = self._resolved(st, last_closed)
            if resolved >= last_closed:
                continue
            first_due = self._next_session(resolved) + DAY
            overdue = now - first_due
            if overdue > self.stall_after:
                stalls.append(f"{st.symbol}: no closed daily bar since {iso(st.fetched)[:10]}, "
                              f"{overdue} s past due")
        self._behind = bool(failures) or horizon < last_closed
        self._polled_at = int(self.clock.now())
        return FeedPoll(out, "; ".join(failures + stalls) or None, tuple(gaps))

    # -- TWS access --------------------------------------------------------------------
    def _fetch(self, st: _Symbol, lo: int, now: int, *, fail: bool) -> tuple[list[Row], int]:
        """Daily bars of ``st`` from session ``lo`` to now (the one in progress included):
        the NYSE sessions among them, ascending, and the newest label TWS served.

        Raises ``DataError`` (``fail``) or :class:`_Failed` when TWS cannot be asked or
        refuses."""
        today = now // DAY * DAY
        days = max(1, (today - lo) // DAY + 1)
        duration = f"{days} D" if days <= 365 else f"{math.ceil(days / 365)} Y"
        where = f"ibkr {st.symbol} 1 day {self.what_to_show}"
        errors: list[tuple[int, int, str]] = []

        def on_error(req_id: int, code: int, text: str, _contract: Any = None) -> None:
            errors.append((int(req_id), int(code), str(text)))

        self.ib.errorEvent += on_error
        try:
            if not self.ib.isConnected():
                raise ConnectionError("not connected to TWS / IB Gateway")
            got = self.ib.reqHistoricalData(st.contract, "", duration, "1 day", self.what_to_show,
                                            True, 1, False, [], self.request_timeout)
        except (ConnectionError, TimeoutError) as exc:
            words = str(exc) or f"{type(exc).__name__}: no answer"
            if fail:
                raise DataError(where, words) from None
            raise _Failed(f"ibkr unreachable: {where}: {words}") from None
        finally:
            self.ib.errorEvent -= on_error
        req = getattr(got, "reqId", None)
        bad = [(c, t) for r, c, t in errors if (req is None or r == req) and c not in _NOTICE_CODES]
        if bad and not got:
            words = "; ".join(f"error {c}: {t}" for c, t in bad[-2:])
            if fail:
                raise DataError(where, words)
            raise _Failed(f"ibkr error: {where}: {words}")
        self.requests += 1
        rows: dict[int, Row] = {}
        served = 0
        for b in got or ():
            d = b.date.date() if isinstance(b.date, datetime) else b.date
            if not isinstance(d, date):
                continue
            label = _label(d)
            served = max(served, label)
            if label < lo:
                continue
            rows[label] = (label, float(b.open), float(b.high), float(b.low), float(b.close),
                           float(b.volume))
        labels = sorted(rows)
        if labels:
            keep = set(_session_labels(labels[0], labels[-1]).tolist())
            labels = [x for x in labels if x in keep]     # a row on a non-session day is dropped
        return [rows[x] for x in labels], served

    def _series(self, symbol: str, rows: list[Row]) -> BarSeries:
        return series_of_rows(symbol, "1d", rows, f"live:ibkr/{symbol}/1d/{self.what_to_show}")


class _Failed(Exception):
    """A poll's request that TWS did not answer or refused (becomes the stall reason)."""
