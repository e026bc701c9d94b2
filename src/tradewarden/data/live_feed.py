"""Live closed candles from a venue through ccxt, polled at each candle's close.

:class:`LiveCandleFeed` is the market-data side of ``warden paper``: it warms a
deployment up from the venue's recent history, then hands out each candle once it has
closed. The REST candle endpoints it polls (ccxt ``fetch_ohlcv``) also return the candle
still in progress (Coinbase's "Get Public Product Candles" does, Kraken's OHLC endpoint
documents its last entry as "the current, not-yet-committed" one); deciding on that
candle would use prices from after the decision, so a candle is a bar only when it has
closed: ``open time + bar length <= clock.now()``.

Delivery guarantees, for every poll:

* every closed candle after the last one delivered is returned, in time order, none
  twice: missed candles (after an outage, a stall, a late poll) are fetched with
  ``since`` and paginated within the venue's per-request limit
  (:func:`~tradewarden.data.venues.venue_spec`);
* across symbols, time never goes backwards: a candle is delivered only when, for every
  symbol, every slot up to its open time is known (a candle was received, or the venue
  already serves a later candle, so the slot is a venue-side gap, e.g. an hour without
  trades on Coinbase). A poll therefore never returns a 10:00 candle of one symbol after
  an 11:00 candle of another;
* a venue-side gap is not waited for; it is named in :attr:`FeedPoll.gaps` when the
  candle after it is delivered.

Time comes only from the ``clock`` (:class:`~tradewarden.engine.clock.Clock`): the
closed test, the stall test and the retry backoff (``clock.wait_until``); nothing here
reads the wall clock or calls ``time.sleep`` (ccxt's own rate limiter sleeps between
requests inside ccxt, ``enableRateLimit``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from tradewarden.data.download import _call, _page_frame, prepare_exchange
from tradewarden.data.errors import DataError
from tradewarden.data.quality import validate_frame
from tradewarden.data.resample import timeframe_label, timeframe_seconds
from tradewarden.data.venues import VenueSymbol, resolve_symbol, venue_spec
from tradewarden.domain import BarSeries
from tradewarden.domain.values import iso

__all__ = ["FeedPoll", "LiveCandleFeed", "series_of_rows"]

#: One candle: open time (UTC epoch s), open, high, low, close (quote currency), volume (base).
Row = tuple[int, float, float, float, float, float]
_VALUES = ("open", "high", "low", "close", "volume")
#: Longest error text kept in a stall reason (characters).
_REASON_CHARS = 400


def series_of_rows(symbol: str, timeframe: str, rows: list[Row], source: str) -> BarSeries:
    """Return closed candles as a :class:`~tradewarden.domain.BarSeries`.

    Parameters
    ----------
    symbol, timeframe, source : str
    rows : list of Row
        ``(open time UTC epoch s, open, high, low, close, volume)``, in time order.
    """
    if not rows:
        return BarSeries(symbol, timeframe, np.zeros(0, np.int64),
                         *(np.zeros(0, np.float64) for _ in _VALUES), source=source)
    arr = np.asarray(rows, dtype=np.float64)
    return BarSeries(symbol, timeframe, np.asarray([r[0] for r in rows], dtype=np.int64),
                     *(np.ascontiguousarray(arr[:, i + 1]) for i in range(len(_VALUES))),
                     source=source)


class FeedPoll(NamedTuple):
    """What one :meth:`LiveCandleFeed.poll` returns.

    Attributes
    ----------
    bars : dict of str to BarSeries
        Newly closed candles per canonical symbol (``BTC-USD``), open times strictly
        increasing and all after the symbol's previously delivered candle. Symbols with
        nothing new are absent; an empty dict means nothing new.
    stalled : str or None
        ``None`` when the feed is current or only briefly behind; otherwise one line
        saying why it is stalled: a closed candle missing more than ``stall_after``
        seconds after its close (``BTC-USD: no closed 1h candle since
        2026-05-01T10:00:00Z, 130 s past due``), or the venue failing after the retries
        (``kraken unreachable: ExchangeNotAvailable: ...``).
    gaps : tuple of str
        One line per venue-side gap skipped by the candles in :attr:`bars` (slots the
        venue has no candle for although it serves later ones).
    """

    bars: dict[str, BarSeries]
    stalled: str | None
    gaps: tuple[str, ...] = ()


@dataclass
class _Symbol:
    """Per-symbol delivery state (all times are candle open times, UTC epoch s)."""

    symbol: str
    venue_symbol: VenueSymbol
    last: int | None = None          # newest candle delivered (or the warm-up's end)
    fetched: int | None = None       # newest closed candle received (delivered or pending)
    seen: int | None = None          # newest candle observed, the one in progress included
    pending: list[Row] = field(default_factory=list)   # received, not delivered yet

    def resolved(self, last_closed: int, tf: int) -> int:
        """Newest slot up to which every slot is known: received, or a gap before a later candle."""
        known = max(self.fetched, self.seen - tf)
        return min(last_closed, known)


class LiveCandleFeed:
    """Closed candles of a few symbols on one venue, polled through a ccxt client.

    Parameters
    ----------
    exchange : ccxt.Exchange
        A synchronous ccxt client, e.g. from
        :func:`~tradewarden.data.download.create_venue_client`; its rate limiter is
        switched on (:func:`~tradewarden.data.download.prepare_exchange`).
    symbols : list of str
        Canonical pairs (``BTC-USD``; ``btc_usd`` and ``BTC/USD`` accepted), mapped to
        the venue's pairs by :func:`~tradewarden.data.venues.resolve_symbol`.
    timeframe : str
        Bar label the venue offers (``1h``).
    clock : Clock
        ``now()`` (UTC epoch s) and ``wait_until(ts)``; the only source of time.
    venue : str
        The ccxt id of ``exchange`` (``coinbase``, ``kraken``): the symbol mapping, the
        per-request candle limit and the messages use it.
    poll_delay : float, default 2.0
        Seconds after a candle's close at which it is polled for (venues publish a
        closed candle a moment after the close).
    stall_after : float, default 120.0
        Seconds after a candle's close after which its absence is a stall.
    max_retries : int, default 3
        Retries of a failing request (transient errors: network, 5xx, 429), with backoff
        of 1, 2, 4 ... s through ``clock.wait_until`` (``Retry-After`` honoured), before
        the poll reports the venue unreachable.
    retry_every : float, default 10.0
        Seconds between polls while a candle that should exist is missing or the venue
        fails (see :meth:`next_due`).

    Raises
    ------
    ValueError
        No symbols, a malformed symbol, an unknown timeframe or one the venue does not
        offer (``exchange.timeframes``), or a negative delay or retry count.
    """

    def __init__(self, exchange: Any, symbols: list[str], timeframe: str, clock: Any, *,
                 venue: str, poll_delay: float = 2.0, stall_after: float = 120.0,
                 max_retries: int = 3, retry_every: float = 10.0) -> None:
        self.venue = venue.strip().lower()
        self.tf = timeframe_seconds(timeframe)
        self.label = timeframe_label(self.tf)
        offered = getattr(exchange, "timeframes", None)
        if offered and self.label not in offered:
            raise ValueError(f"{self.venue} does not offer {self.label} candles; it offers "
                             f"{', '.join(offered)}")
        if isinstance(symbols, str):
            symbols = [s for s in symbols.split(",") if s.strip()]
        canonical = list(dict.fromkeys(resolve_symbol(self.venue, s).canonical for s in symbols))
        if not canonical:
            raise ValueError("the live feed needs at least one symbol")
        for name, value in (("poll_delay", poll_delay), ("stall_after", stall_after),
                            ("max_retries", max_retries)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if not retry_every > 0:
            raise ValueError(f"retry_every must be > 0 seconds, got {retry_every!r}")
        self.exchange = prepare_exchange(exchange)
        self.clock = clock
        self.symbols = canonical
        self.poll_delay = float(poll_delay)
        self.stall_after = float(stall_after)
        self.max_retries = int(max_retries)
        self.retry_every = float(retry_every)
        self.spec = venue_spec(self.venue, exchange)
        self._state = {s: _Symbol(s, resolve_symbol(self.venue, s)) for s in canonical}
        self._markets_loaded = False
        self._horizon: int | None = None        # newest slot delivered for every symbol
        self._behind = False                    # last poll left a due candle unknown or failed
        self._polled_at: int | None = None
        #: Candle requests answered, and failed attempts retried, since creation.
        self.requests = 0
        self.retries = 0

    # -- public --------------------------------------------------------------------------

    def warmup(self, bars: int, *, after: int | None = None) -> dict[str, BarSeries]:
        """Fetch the history a deployment starts from and set where delivery begins.

        Parameters
        ----------
        bars : int
            Closed candles wanted per symbol (>= 0); fewer are returned when the venue
            serves fewer (a young pair, Kraken's latest-720 limit). Venue-side gaps are
            skipped over: the last ``bars`` candles that exist are returned.
        after : int, optional
            Open time (UTC epoch s, on the timeframe's grid) of the deployment's last
            processed bar: the history ends with it (included), and the next
            :meth:`poll` returns every closed candle after it. Default: the history
            ends with the newest closed candle at ``clock.now()`` and the next poll
            returns the candles that close after the warm-up.

        Returns
        -------
        dict of str to BarSeries
            Per symbol, ascending open times, at most ``bars`` candles (possibly none).

        Raises
        ------
        ValueError
            ``bars`` negative, ``after`` not on the grid or not closed at ``clock.now()``.
        DataError
            The venue could not be reached after the retries, does not list a pair, or
            sent malformed candles (one line naming the venue, pair and timeframe).
        """
        tf = self.tf
        if bars < 0:
            raise ValueError(f"warm-up bars must be >= 0, got {bars!r}")
        now = int(self.clock.now())
        open_bar = now // tf * tf
        last_closed = open_bar - tf
        if after is not None:
            after = int(after)
            if after % tf:
                raise ValueError(f"after={after} ({iso(after)}) is not a {self.label} bar "
                                 "open time")
            if after > last_closed:
                raise ValueError(f"after={after} ({iso(after)}): that {self.label} bar is not "
                                 f"closed at {iso(now)}")
        end = last_closed if after is None else after
        out: dict[str, BarSeries] = {}
        try:
            self._load_markets()
            for st in self._state.values():
                lo = end - (bars - 1) * tf if bars else end + tf
                rows = self._fetch(st, lo, open_bar + tf)
                closed = [r for r in rows if r[0] + tf <= now]
                history = [r for r in closed if r[0] <= end]
                step = max(1, int(self.spec.max_candles))
                while len(history) < bars:          # gaps: reach further back
                    lo_more = lo - max(bars - len(history), step) * tf
                    older = self._fetch(st, lo_more, lo)
                    if not older:
                        break
                    history = older + history
                    lo = lo_more
                history = history[-bars:] if bars else []
                st.last = after if after is not None else (history[-1][0] if history else end)
                st.pending = [r for r in closed if r[0] > st.last]
                st.fetched = max([st.last] + [r[0] for r in closed])
                st.seen = max([st.fetched] + [r[0] for r in rows])
                out[st.symbol] = self._series(st.symbol, history)
        except Exception as exc:
            if not self._is_venue_failure(exc):
                raise
            raise DataError(f"{self.venue} {self.label} warm-up", self._reason(exc)) from exc
        # Delivered through: `after` (slots up to it are the deployment's past), or the
        # newest slot known for every symbol.
        self._horizon = after if after is not None else min(
            st.resolved(last_closed, tf) for st in self._state.values())
        self._behind = False
        self._polled_at = None
        return out

    def next_due(self) -> float:
        """Return the clock time at which :meth:`poll` should next be called.

        Returns
        -------
        float
            UTC epoch seconds: the close of the next candle to deliver plus
            ``poll_delay``. While the last poll left a due candle missing or the venue
            failing, ``retry_every`` seconds after that poll. A time already past means
            "poll now" (e.g. after a warm-up with ``after`` behind the venue).

        Raises
        ------
        RuntimeError
            Before :meth:`warmup`.
        """
        if self._horizon is None:
            raise RuntimeError("LiveCandleFeed.next_due: call warmup() first")
        due = float(self._horizon + 2 * self.tf) + self.poll_delay
        if self._behind and self._polled_at is not None:
            due = max(due, self._polled_at + self.retry_every)
        return due

    def poll(self) -> FeedPoll:
        """Fetch what has closed since the last delivery and return it.

        Returns
        -------
        FeedPoll
            New closed candles (all symbols consistent in time, see the module notes),
            the stall reason if any, and the venue-side gaps skipped.

        Raises
        ------
        RuntimeError
            Before :meth:`warmup`.
        """
        if self._horizon is None:
            raise RuntimeError("LiveCandleFeed.poll: call warmup() first")
        tf = self.tf
        now = int(self.clock.now())
        open_bar = now // tf * tf
        last_closed = open_bar - tf
        failure: str | None = None
        try:
            self._load_markets()
            for st in self._state.values():
                if st.resolved(last_closed, tf) >= last_closed:
                    continue                       # nothing due for this symbol
                rows = self._fetch(st, st.fetched + tf, open_bar + tf)
                for r in rows:
                    if r[0] + tf <= now and r[0] > st.fetched:
                        st.pending.append(r)
                st.fetched = max([st.fetched] + [r[0] for r in st.pending])
                st.seen = max([st.seen] + [r[0] for r in rows])
        except Exception as exc:
            if not self._is_venue_failure(exc):
                raise
            failure = self._reason(exc)

        horizon = min(st.resolved(last_closed, tf) for st in self._state.values())
        horizon = max(horizon, self._horizon)
        out: dict[str, BarSeries] = {}
        gaps: list[str] = []
        for st in self._state.values():
            ready = [r for r in st.pending if r[0] <= horizon]
            if not ready:
                continue
            st.pending = st.pending[len(ready):]
            prev = st.last
            for r in ready:
                if prev is not None and r[0] - prev > tf:
                    gaps.append(self._gap_line(st, prev + tf, r[0] - tf, now))
                prev = r[0]
            st.last = ready[-1][0]
            out[st.symbol] = self._series(st.symbol, ready)
        self._horizon = horizon

        stalls: list[str] = []
        for st in self._state.values():
            resolved = st.resolved(last_closed, tf)
            if resolved >= last_closed:
                continue
            overdue = now - (resolved + 2 * tf)     # since the first unknown slot closed
            if overdue > self.stall_after:
                stalls.append(f"{st.symbol}: no closed {self.label} candle since "
                              f"{iso(st.fetched)}, {overdue} s past due")
        self._behind = failure is not None or horizon < last_closed
        self._polled_at = int(self.clock.now())       # after any retry backoff
        if failure is not None:
            stalls.insert(0, failure)
        return FeedPoll(out, "; ".join(stalls) if stalls else None, tuple(gaps))

    # -- venue access --------------------------------------------------------------------

    def _backoff(self, seconds: float) -> None:
        self.clock.wait_until(int(math.ceil(self.clock.now() + seconds)))

    def _count_retry(self) -> None:
        self.retries += 1

    def _request(self, fn: Callable[[], Any]) -> Any:
        return _call(fn, exchange=self.exchange, max_retries=self.max_retries,
                     sleep=self._backoff, clock=self.clock.now, on_retry=self._count_retry)

    def _load_markets(self) -> None:
        if self._markets_loaded:
            return
        self._request(lambda: self.exchange.load_markets())
        for st in self._state.values():
            st.venue_symbol = resolve_symbol(self.venue, st.symbol, self.exchange.markets)
        self._markets_loaded = True

    def _fetch(self, st: _Symbol, lo: int, hi: int) -> list[Row]:
        """Candles with ``lo <= open time < hi`` (the one in progress included), ascending.

        Walks forward in windows of at most the venue's per-request limit: with an end
        parameter (Coinbase ``end``, Binance ``endTime``) an empty window is skipped and
        a short one asked again from its last candle; without one (Kraken) each answer
        runs from ``since`` to the newest candle, so the walk stops at a short answer.
        """
        tf, vs = self.tf, st.venue_symbol
        where = f"{self.venue} {vs.unified} {self.label}"
        page = max(1, int(self.spec.max_candles))
        until = self.spec.supports_until
        got: dict[int, Row] = {}
        cursor = lo
        while cursor < hi:
            window_end = min(cursor + page * tf, hi) if until else hi
            limit = (window_end - cursor) // tf if until else page
            params: dict[str, Any] = {"until": window_end * 1000 - 1} if until else {}
            candles = self._request(functools.partial(
                self.exchange.fetch_ohlcv, vs.unified, self.label, cursor * 1000, limit, params))
            self.requests += 1
            frame = _page_frame(candles or [], cursor, window_end, tf, where)
            if frame.empty:
                if until:
                    cursor = window_end
                    continue
                break
            frame = frame.drop_duplicates("ts", keep="last").sort_values("ts", kind="stable")
            clean, _ = validate_frame(frame.rename(columns={"ts": "timestamp"}), where, tf,
                                      symbol=st.symbol)
            for row in zip(*(clean[c].to_numpy().tolist() for c in ("ts",) + _VALUES)):
                got[int(row[0])] = (int(row[0]), *row[1:])
            newest = int(clean["ts"].iloc[-1])
            if newest + tf >= hi or (not until and len(candles) < limit):
                break
            cursor = newest + tf
        return [got[t] for t in sorted(got)]

    def _series(self, symbol: str, rows: list[Row]) -> BarSeries:
        source = f"live:{self.venue}/{self._state[symbol].venue_symbol.pair}/{self.label}"
        return series_of_rows(symbol, self.label, rows, source)

    # -- messages ------------------------------------------------------------------------

    def _gap_line(self, st: _Symbol, first: int, last: int, now: int) -> str:
        n = (last - first) // self.tf + 1
        line = (f"{st.symbol}: {self.venue} has no {self.label} candle from {iso(first)} to "
                f"{iso(last)} ({n} slot{'s' if n > 1 else ''}) although it serves later ones; "
                "skipped, not waited for")
        limit = self.spec.history_limit
        if limit and first < now // self.tf * self.tf - (limit - 1) * self.tf:
            line += f" (older than the venue's latest {limit} candles)"
        return line

    @staticmethod
    def _is_venue_failure(exc: BaseException) -> bool:
        if isinstance(exc, DataError):
            return True
        try:
            import ccxt
        except ImportError:  # pragma: no cover - ccxt is a dependency
            return False
        return isinstance(exc, ccxt.BaseError)

    def _reason(self, exc: BaseException) -> str:
        """One line: ``<venue> unreachable: <class>: <text>`` (network) or ``<venue> error: ...``."""
        import ccxt

        text = str(exc)
        cause = exc.__cause__
        if cause is not None and isinstance(exc, ccxt.BaseError):
            # ccxt's message is only "<venue> GET <url>" for transport failures (an
            # untrusted certificate is an ExchangeError): the cause says what happened
            text += f" ({type(cause).__name__}: {cause})"
        text = " ".join(text.split())
        if len(text) > _REASON_CHARS:
            text = text[:_REASON_CHARS - 3] + "..."
        if isinstance(exc, DataError):
            return f"{self.venue} data error: {text}"
        kind = "unreachable" if isinstance(exc, ccxt.NetworkError) else "error"
        return f"{self.venue} {kind}: {type(exc).__name__}: {text}"
