"""Download exchange candles through ccxt into the Parquet cache, incrementally.

:func:`download_ohlcv` fetches only what the cache lacks (its *missing ranges*), page by
page within the venue's per-request limit, writes every page to the cache as soon as it
arrives (an interrupt keeps what was fetched and the next call resumes), and reports per
symbol what was fetched, how many requests and retries it took, and which ranges cannot
be had and why.

Request pacing is ccxt's own rate limiter (``enableRateLimit=True``, always switched on
here): ccxt sleeps ``rateLimit x cost`` ms between requests, the venue's documented rate.
Transient failures (ccxt ``RateLimitExceeded``/``DDoSProtection`` for HTTP 429/418,
``ExchangeNotAvailable`` for 5xx, ``RequestTimeout``, any ``NetworkError``, and a few
venue "internal error" bodies ccxt reports as plain ``ExchangeError``) are retried with
exponential backoff, waiting at least the ``Retry-After`` header when the venue sent one
(read from ``exchange.last_response_headers``).

Pagination: a missing range ``[a, b)`` is walked forward in windows of at most
``max_candles`` bars. Each request asks for ``since`` = window start (and, where the
venue supports it, ``until`` = window end). Candles outside the window are ignored,
repeats are deduplicated and order does not matter. What the answer proves is recorded
as covered:

* an empty answer covers the whole window (the venue has nothing there: a real gap);
* otherwise the window is covered up to the last candle returned; if that falls short of
  the window end the rest is asked for again (a short page may be a gap or a venue that
  returns fewer candles than asked; the follow-up request tells which).

Bars still open at ``now`` (``ts + bar > now``) are never fetched or covered.
"""

from __future__ import annotations

import email.utils
import functools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from tradewarden.data.cache import OhlcvCache, merge_ranges
from tradewarden.data.errors import DataError
from tradewarden.data.resample import timeframe_label, timeframe_seconds
from tradewarden.data.venues import VenueSymbol, resolve_symbol, venue_spec
from tradewarden.domain.values import iso

__all__ = ["DownloadInterrupted", "DownloadReport", "SymbolReport", "UnavailableRange",
           "create_exchange", "create_venue_client", "download_ohlcv", "point_api_url",
           "prepare_exchange", "retry_delay"]

#: First backoff delay (seconds); doubled on every further retry of the same request.
BACKOFF_BASE = 1.0
#: Cap on one computed backoff delay (seconds). A longer ``Retry-After`` is still honoured.
BACKOFF_MAX = 60.0
#: ``ExchangeError`` messages that mean a server-side failure worth retrying (ccxt maps
#: some venues' 5xx JSON bodies, e.g. Coinbase ``internal_server_error``, to ExchangeError).
_SERVER_ERROR_MARKERS = ("internal_server_error", "internal server error", "service unavailable",
                         "bad gateway", "gateway timeout", "temporarily unavailable")


# ---------------------------------------------------------------------------------------
# report


@dataclass(frozen=True)
class UnavailableRange:
    """A requested range the venue cannot serve.

    Attributes
    ----------
    start, end : int
        UTC epoch seconds, half-open ``[start, end)`` over bar open times.
    reason : str
        Why, in one sentence naming the venue, the pair and the limit.
    """

    start: int
    end: int
    reason: str

    def describe(self) -> str:
        """``[2024-01-01T00:00:00Z, 2024-02-01T00:00:00Z): <reason>``."""
        return f"[{iso(self.start)}, {iso(self.end)}): {self.reason}"


@dataclass
class SymbolReport:
    """What a download did for one requested pair.

    Attributes
    ----------
    symbol : str
        The pair asked for, canonical (``BTC-USD``).
    venue_symbol : VenueSymbol
        How the venue spells it; ``quote_used`` says which quote currency was used.
    cache_symbol : str
        Name the candles are cached under (the pair actually traded, ``BTC-USDT`` on
        binance).
    fetched_rows : int
        Candles received in the requested range and newly added to the cache.
    requests : int
        Candle requests that got an answer (retried attempts not included).
    retries : int
        Failed attempts that were retried (market-metadata retries included).
    missing_before : list of (int, int)
        Ranges the cache lacked when the call started.
    ranges_fetched : list of (int, int)
        Ranges answered by the venue in this call, merged (gaps included).
    unavailable : list of UnavailableRange
        Ranges that cannot be had, with reasons.
    """

    symbol: str
    venue_symbol: VenueSymbol
    cache_symbol: str
    fetched_rows: int = 0
    requests: int = 0
    retries: int = 0
    missing_before: list[tuple[int, int]] = field(default_factory=list)
    ranges_fetched: list[tuple[int, int]] = field(default_factory=list)
    unavailable: list[UnavailableRange] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (ranges as ``[start, end]`` pairs plus ISO text)."""
        return {
            "symbol": self.symbol, "venue_symbol": self.venue_symbol.to_dict(),
            "cache_symbol": self.cache_symbol, "fetched_rows": self.fetched_rows,
            "requests": self.requests, "retries": self.retries,
            "missing_before": [list(r) for r in self.missing_before],
            "ranges_fetched": [list(r) for r in self.ranges_fetched],
            "unavailable": [{"start": u.start, "end": u.end, "start_time": iso(u.start),
                             "end_time": iso(u.end), "reason": u.reason}
                            for u in self.unavailable],
        }


@dataclass
class DownloadReport:
    """Result of :func:`download_ohlcv`.

    Attributes
    ----------
    venue : str
        ccxt exchange id.
    timeframe : str
        Canonical bar label (``1h``).
    start, end : int
        Requested range, UTC epoch seconds, aligned to the bar grid.
    symbols : dict of str to SymbolReport
        Keyed by the requested canonical pair, in request order.
    warnings : list of str
        One line each: quote substitutions, ranges that cannot be had.
    market_loads : int
        ``load_markets`` attempts (retries included; each is a few HTTP requests); 0
        when everything was already cached.
    ccxt_version : str
    """

    venue: str
    timeframe: str
    start: int
    end: int
    symbols: dict[str, SymbolReport] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    market_loads: int = 0
    ccxt_version: str = ""

    @property
    def requests(self) -> int:
        """Candle requests over all symbols."""
        return sum(r.requests for r in self.symbols.values())

    @property
    def fetched_rows(self) -> int:
        """Candles added over all symbols."""
        return sum(r.fetched_rows for r in self.symbols.values())

    @property
    def unavailable(self) -> list[tuple[str, UnavailableRange]]:
        """``(symbol, range)`` for every range that cannot be had."""
        return [(s, u) for s, r in self.symbols.items() for u in r.unavailable]

    def raise_for_unavailable(self) -> None:
        """Raise :class:`DataError` if any requested range cannot be had.

        Raises
        ------
        DataError
            Source ``"<venue> <timeframe> download"``; the message lists every
            unavailable range with its symbol and reason.
        """
        if self.unavailable:
            text = "; ".join(f"{s} {u.describe()}" for s, u in self.unavailable)
            raise DataError(f"{self.venue} {self.timeframe} download", f"unavailable: {text}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"venue": self.venue, "timeframe": self.timeframe, "start": self.start,
                "end": self.end, "start_time": iso(self.start), "end_time": iso(self.end),
                "symbols": {k: v.to_dict() for k, v in self.symbols.items()},
                "warnings": list(self.warnings), "market_loads": self.market_loads,
                "requests": self.requests, "fetched_rows": self.fetched_rows,
                "ccxt_version": self.ccxt_version}


class DownloadInterrupted(DataError):
    """A download stopped on an error it could not retry away.

    Everything fetched before the failure is in the cache; calling
    :func:`download_ohlcv` again resumes from the first missing range.

    Attributes
    ----------
    report : DownloadReport
        What was done before the failure.
    cause : BaseException
        The ccxt (or other) exception that stopped it.
    """

    def __init__(self, source: str, problem: str, report: DownloadReport,
                 cause: BaseException) -> None:
        super().__init__(source, problem)
        self.report = report
        self.cause = cause

    def __reduce__(self):  # pickling keeps the DataError part only
        return (DataError, (self.source, self.problem))


# ---------------------------------------------------------------------------------------
# exchange set-up


def _ccxt():
    import ccxt  # imported lazily: the data layer works without network code loaded

    return ccxt


def prepare_exchange(exchange: Any) -> Any:
    """Configure a ccxt instance for spot candle downloads and return it.

    Switches ccxt's rate limiter on (``enableRateLimit = True``), keeps response headers
    (``enableLastResponseHeaders``) so ``Retry-After`` can be read, and restricts market
    loading to spot markets where the exchange supports that option (binance
    ``options['fetchMarkets']['types'] = ['spot']``) so no derivatives endpoints are
    called. Nothing else (URLs, credentials) is touched.
    """
    exchange.enableRateLimit = True
    exchange.enableLastResponseHeaders = True
    options = getattr(exchange, "options", None)
    if isinstance(options, dict):
        fetch_markets = options.get("fetchMarkets")
        if isinstance(fetch_markets, dict) and "types" in fetch_markets:
            options["fetchMarkets"] = {**fetch_markets, "types": ["spot"]}
        options.setdefault("defaultType", "spot")
    return exchange


def create_exchange(exchange_id: str, config: dict[str, Any] | None = None) -> Any:
    """Create a ccxt exchange for downloading spot candles.

    Parameters
    ----------
    exchange_id : str
        ccxt id (``coinbase`` = Coinbase Advanced Trade, ``kraken``, ``binance``, or any
        id in ``ccxt.exchanges``).
    config : dict, optional
        Extra ccxt constructor options (timeouts, credentials); ``enableRateLimit`` is
        always forced on.

    Returns
    -------
    ccxt.Exchange
        Configured by :func:`prepare_exchange`.

    Raises
    ------
    ValueError
        If ccxt has no exchange of that id.
    """
    ccxt = _ccxt()
    key = exchange_id.strip().lower()
    if key not in ccxt.exchanges:
        raise ValueError(f"unknown exchange {exchange_id!r}: not a ccxt exchange id "
                         "(e.g. coinbase, kraken, binance)")
    exchange = getattr(ccxt, key)({**(config or {}), "enableRateLimit": True})
    return prepare_exchange(exchange)


def point_api_url(exchange: Any, api_url: str) -> Any:
    """Point every entry of ``exchange.urls['api']`` at ``api_url``, keeping each path.

    ccxt builds a request URL from the ``urls['api']`` entry of the endpoint's API group
    plus the endpoint path: Coinbase reads only ``urls['api']['rest']``, Kraken
    ``public``/``private``, Binance one entry per group (``public`` =
    ``https://api.binance.com/api/v3``, ``sapi`` = ``.../sapi/v1``, ...). Each entry
    (nested dicts included) becomes ``api_url`` + that entry's own path, so
    ``https://api.binance.com/api/v3`` with ``api_url="https://127.0.0.1:8443"`` becomes
    ``https://127.0.0.1:8443/api/v3``; a path in ``api_url`` is kept in front.

    Parameters
    ----------
    exchange : ccxt.Exchange
    api_url : str
        ``http://`` or ``https://`` base URL (host, optional port, optional path).

    Returns
    -------
    ccxt.Exchange
        The same instance.

    Raises
    ------
    ValueError
        If ``api_url`` is not an http(s) URL with a host.
    """
    parsed = urlparse(api_url.strip()) if isinstance(api_url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"invalid api_url {api_url!r}: expected an http:// or https:// base "
                         "URL such as https://127.0.0.1:8443")
    base = api_url.strip().rstrip("/")

    def repoint(value: Any) -> Any:
        if isinstance(value, str):
            return base + urlparse(value).path
        if isinstance(value, dict):
            return {k: repoint(v) for k, v in value.items()}
        return value

    exchange.urls["api"] = repoint(exchange.urls.get("api"))
    return exchange


def create_venue_client(name: str, *, api_url: str | None = None,
                        config: dict[str, Any] | None = None) -> Any:
    """Create the synchronous ccxt client of a venue, optionally at another base URL.

    Parameters
    ----------
    name : str
        ccxt exchange id (``coinbase`` = Coinbase Advanced Trade, ``kraken``, or any
        other id in ``ccxt.exchanges``), case-insensitive: the ``[venue] name`` setting.
    api_url : str, optional
        Base URL used instead of the venue's own for every API group (a sandbox, a
        proxy, a loopback fake ``https://127.0.0.1:PORT``), see :func:`point_api_url`.
    config : dict, optional
        Extra ccxt constructor options (``timeout`` in ms, ``rateLimit`` in ms,
        credentials). ``enableRateLimit`` is always on.

    Returns
    -------
    ccxt.Exchange
        Rate limiter on, configured by :func:`prepare_exchange`, created with
        ``requests_trust_env=True`` (unless ``config`` says otherwise) so its
        ``requests`` session honours ``REQUESTS_CA_BUNDLE`` (and the proxy variables):
        ccxt's synchronous client otherwise sets ``session.trust_env = False`` and
        ignores them (ccxt ``base/exchange.py``, ``Exchange.__init__``).

    Raises
    ------
    ValueError
        If ``name`` is not a ccxt exchange id, or ``api_url`` is not an http(s) URL.
    """
    ccxt = _ccxt()
    key = name.strip().lower() if isinstance(name, str) else ""
    if key not in ccxt.exchanges:
        raise ValueError(f"unknown venue {name!r}: not a ccxt exchange id (ccxt ids are "
                         "lower-case names such as coinbase, kraken, binance, bitstamp)")
    exchange = create_exchange(key, {"requests_trust_env": True, **(config or {})})
    if api_url is not None:
        point_api_url(exchange, api_url)
    return exchange


# ---------------------------------------------------------------------------------------
# retries


def _retry_after_seconds(exchange: Any, now: float) -> float | None:
    """Parse ``Retry-After`` (delta seconds or HTTP date) from the last response headers."""
    headers = getattr(exchange, "last_response_headers", None)
    if not headers:
        return None
    value = None
    try:
        value = headers.get("Retry-After")
        if value is None:
            value = next((v for k, v in dict(headers).items() if k.lower() == "retry-after"),
                         None)
    except AttributeError:
        return None
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def retry_delay(attempt: int, retry_after: float | None = None, *,
                base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> float:
    """Seconds to wait before retry number ``attempt`` (0 = first retry).

    ``min(base * 2**attempt, cap)``, raised to ``retry_after`` when the venue sent a
    longer ``Retry-After``.
    """
    delay = min(base * (2 ** attempt), cap)
    return max(delay, retry_after) if retry_after is not None else delay


def _retryable(exc: BaseException) -> bool:
    ccxt = _ccxt()
    if isinstance(exc, ccxt.NetworkError):   # RateLimitExceeded, DDoSProtection,
        return True                          # ExchangeNotAvailable, RequestTimeout, ...
    if isinstance(exc, ccxt.ExchangeError):
        text = str(exc).lower()
        return any(marker in text for marker in _SERVER_ERROR_MARKERS)
    return False


def _call(fn: Callable[[], Any], *, exchange: Any, max_retries: int,
          sleep: Callable[[float], Any], clock: Callable[[], float],
          on_retry: Callable[[], None]) -> Any:
    attempt = 0
    while True:
        # ccxt stores the headers of every response it gets (enableLastResponseHeaders);
        # cleared first, they can only be this attempt's (none if no response came back).
        exchange.last_response_headers = None
        try:
            return fn()
        except Exception as exc:
            if not _retryable(exc) or attempt >= max_retries:
                raise
            retry_after = _retry_after_seconds(exchange, clock())
            on_retry()
            sleep(retry_delay(attempt, retry_after))
            attempt += 1


# ---------------------------------------------------------------------------------------
# the download


def _epoch(value: float | str | datetime | date, name: str) -> int:
    """UTC epoch seconds from an int/float (seconds), ISO text or date/datetime."""
    if isinstance(value, bool):
        raise ValueError(f"invalid {name} {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"invalid {name} {value!r}: expected an ISO 8601 UTC date or "
                             "datetime, e.g. 2024-01-01 or 2024-01-01T12:00:00Z") from None
    else:
        raise ValueError(f"invalid {name} {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _page_frame(candles: Sequence[Sequence[Any]], lo: int, hi: int, tf: int,
                where: str) -> pd.DataFrame:
    """ccxt ``[[ms, o, h, l, c, v], ...]`` -> frame of candles with ``lo <= ts < hi``."""
    rows = []
    for c in candles:
        if c is None or len(c) < 6 or c[0] is None:
            raise DataError(where, f"malformed candle from the venue: {c!r}")
        ms = int(c[0])
        if ms % 1000:
            raise DataError(where, f"candle time {ms} ms is not a whole second")
        ts = ms // 1000
        if lo <= ts < hi:
            rows.append((ts, c[1], c[2], c[3], c[4], c[5]))
    frame = pd.DataFrame(rows, columns=["ts", "open", "high", "low", "close", "volume"])
    if frame.empty:
        return frame.astype({"ts": "int64", "open": "float64", "high": "float64",
                             "low": "float64", "close": "float64", "volume": "float64"})
    for col in ("open", "high", "low", "close", "volume"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame


def download_ohlcv(exchange_id: str, symbols: Iterable[str] | str, timeframe: str,
                   start: int | str | datetime | date, end: int | str | datetime | date, *,
                   cache: OhlcvCache, progress: Callable[[int, int], Any] | None = None,
                   exchange: Any = None, max_retries: int = 6,
                   sleep: Callable[[float], Any] = time.sleep,
                   now: Callable[[], float] = time.time) -> DownloadReport:
    """Download the candles the cache lacks for ``[start, end)`` and cache them.

    Parameters
    ----------
    exchange_id : str
        ccxt id: ``coinbase`` (Advanced Trade API), ``kraken``, ``binance`` or any other.
    symbols : str or iterable of str
        Canonical pairs (``BTC-USD``; ``btc_usd`` and ``BTC/USD`` are accepted).
    timeframe : str
        Bar label (``1m``, ``1h``, ``1d``) that ccxt's ``timeframes`` for the venue
        knows.
    start, end : int, str, datetime or date
        UTC epoch seconds, or ISO 8601 text/datetimes (UTC when naive). Bars with open
        time in ``[start, end)``; ``start`` is floored and ``end`` ceiled to the grid.
    cache : OhlcvCache
        Where candles are read from and written to (after every page).
    progress : callable, optional
        ``progress(done, expected)`` after every page: bar slots of the missing ranges
        answered so far (candles received plus slots the venue answered empty) and the
        total slots to fetch, over all symbols.
    exchange : ccxt.Exchange, optional
        A ready instance (tests point its ``urls['api']`` at a local server); default
        :func:`create_exchange`. It is configured by :func:`prepare_exchange` (rate
        limiter on, spot markets only).
    max_retries : int, default 6
        Retries per request for transient failures before giving up.
    sleep : callable, default time.sleep
        Used for backoff waits (seconds). ccxt's rate limiter sleeps on its own.
    now : callable, default time.time
        Wall clock (epoch seconds): bars not yet closed are not fetched, and Kraken's
        720-candle window is measured from it.

    Returns
    -------
    DownloadReport
        Per symbol: rows fetched, requests, retries, ranges fetched, ranges unavailable
        with reasons, venue symbol used. Market metadata is only loaded when something
        is missing: a fully cached call makes no request at all.

    Raises
    ------
    ValueError
        Bad timeframe, bounds, symbols, unknown ccxt id, or a timeframe the venue does
        not offer.
    DataError
        A pair the venue does not list (from its markets), or malformed candles.
    DownloadInterrupted
        A request failed with a non-transient error or after ``max_retries`` retries;
        pages fetched before it are cached and ``.report`` says what was done.

    Notes
    -----
    Ranges that cannot be had are reported, not raised: bars after ``now`` (not yet
    closed) and, on Kraken, bars older than the OHLC endpoint's latest 720 candles.
    Call :meth:`DownloadReport.raise_for_unavailable` to fail on them.
    """
    venue = exchange_id.strip().lower()
    tf = timeframe_seconds(timeframe)
    label = timeframe_label(tf)
    if isinstance(symbols, str):
        symbols = [s for s in symbols.split(",") if s.strip()]
    wanted = list(dict.fromkeys(resolve_symbol(venue, s).canonical for s in symbols))
    if not wanted:
        raise ValueError("no symbols requested")
    lo = _epoch(start, "start") // tf * tf
    hi = -(-_epoch(end, "end") // tf) * tf
    if lo >= hi:
        raise ValueError(f"start {start!r} must be before end {end!r}")
    if max_retries < 0:
        raise ValueError("max_retries must be >= 0")
    wall = float(now())
    open_bar = int(wall) // tf * tf           # the bar in progress at `now`
    ccxt_version = getattr(_ccxt(), "__version__", "")
    report = DownloadReport(venue, label, lo, hi, ccxt_version=ccxt_version)

    # 1. what is missing (static symbol mapping: no network needed when all is cached)
    plans: list[tuple[str, VenueSymbol, list[tuple[int, int]]]] = []
    for sym in wanted:
        vs = resolve_symbol(venue, sym)
        missing = cache.missing_ranges(venue, vs.pair, label, lo, hi)
        plans.append((sym, vs, missing))
        report.symbols[sym] = SymbolReport(sym, vs, vs.pair, missing_before=list(missing))
        if vs.note and vs.quote_substituted:
            report.warnings.append(f"{sym} on {venue}: {vs.note}")
    if not any(m for _, _, m in plans):
        if progress is not None:
            progress(0, 0)
        return report

    # 2. the exchange and its markets
    if exchange is None:
        exchange = create_exchange(venue)
    else:
        prepare_exchange(exchange)
    spec = venue_spec(venue, exchange)
    if getattr(exchange, "timeframes", None) and label not in exchange.timeframes:
        raise ValueError(f"{venue} does not offer {label} candles; it offers "
                         f"{', '.join(exchange.timeframes)}")

    def count_market_retry() -> None:
        report.market_loads += 1

    try:
        _call(lambda: exchange.load_markets(), exchange=exchange, max_retries=max_retries,
              sleep=sleep, clock=now, on_retry=count_market_retry)
    except Exception as exc:
        raise DownloadInterrupted(f"{venue} markets",
                                  f"could not load markets: {type(exc).__name__}: {exc}",
                                  report, exc) from exc
    report.market_loads += 1

    # 3. what can be had, per symbol
    work: list[tuple[str, VenueSymbol, list[tuple[int, int]]]] = []
    for sym, _vs, missing in plans:
        vs = resolve_symbol(venue, sym, exchange.markets)
        rep = report.symbols[sym]
        rep.venue_symbol = vs
        fetchable: list[tuple[int, int]] = []
        for a, b in missing:
            if b > open_bar:
                cut = max(a, open_bar)
                rep.unavailable.append(UnavailableRange(
                    cut, b, f"{venue} {vs.unified} {label} bars from {iso(cut)} are not closed "
                            f"yet at {iso(int(wall))} (now)"))
                b = cut
            if spec.history_limit and a < b:
                earliest = open_bar - (spec.history_limit - 1) * tf
                if a < earliest:
                    cut = min(b, earliest)
                    rep.unavailable.append(UnavailableRange(
                        a, cut,
                        f"{venue} OHLC endpoint ({spec.ohlcv_endpoint}) serves only the latest "
                        f"{spec.history_limit} candles of a timeframe, so {vs.unified} {label} "
                        f"bars before {iso(earliest)} cannot be downloaded from it "
                        f"(measured at {iso(int(wall))})"))
                    a = cut
            if a < b:
                fetchable.append((a, b))
        for u in rep.unavailable:
            report.warnings.append(f"{sym} on {venue}: cannot download {u.describe()}")
        work.append((sym, vs, fetchable))

    expected = sum((b - a) // tf for _, _, f in work for a, b in f)
    done = 0
    if progress is not None:
        progress(done, expected)

    # 4. pages
    source = {"venue": venue, "ccxt_version": ccxt_version, "endpoint": spec.ohlcv_endpoint,
              "api": _api_description(exchange)}
    page_bars = max(1, int(spec.max_candles))
    for sym, vs, fetchable in work:
        rep = report.symbols[sym]
        where = f"{venue} {vs.unified} {label}"

        def count_retry(rep: SymbolReport = rep) -> None:
            rep.retries += 1

        for a, b in fetchable:
            cursor = a
            while cursor < b:
                window_end = min(cursor + page_bars * tf, b)
                n = (window_end - cursor) // tf
                params: dict[str, Any] = {}
                if spec.supports_until:
                    params["until"] = window_end * 1000 - 1
                try:
                    candles = _call(
                        functools.partial(exchange.fetch_ohlcv, vs.unified, label,
                                          cursor * 1000, n, params),
                        exchange=exchange, max_retries=max_retries, sleep=sleep, clock=now,
                        on_retry=count_retry)
                except Exception as exc:
                    rep.ranges_fetched = merge_ranges(rep.ranges_fetched)
                    raise DownloadInterrupted(
                        where, f"download stopped at {iso(cursor)} after {rep.requests} "
                               f"request(s) ({type(exc).__name__}: {exc}); fetched pages are "
                               "cached and the next call resumes there", report, exc) from exc
                rep.requests += 1
                page = _page_frame(candles or [], cursor, window_end, tf, where)
                if page.empty:
                    covered_to = window_end
                else:
                    first, last = int(page["ts"].min()), int(page["ts"].max())
                    covered_to = min(window_end, last + tf)
                    if spec.history_limit and first > cursor:
                        # A history-limited venue that skips the start of a window inside
                        # its served span: a gap, or its window moved on since it was
                        # measured. Either way it is not claimed as fetched.
                        rep.unavailable.append(UnavailableRange(
                            cursor, first,
                            f"{venue} returned no {vs.unified} {label} candles here although "
                            f"the range is inside its latest {spec.history_limit} candles: a "
                            "gap in its history or its window moved during the download; not "
                            "recorded as fetched"))
                        report.warnings.append(f"{sym} on {venue}: cannot download "
                                               f"{rep.unavailable[-1].describe()}")
                        done += (first - cursor) // tf
                        cursor = first
                result = cache.write(venue, vs.pair, label, page, covered=[(cursor, covered_to)],
                                     source=source, venue_symbol=vs)
                rep.fetched_rows += result.new_rows
                rep.ranges_fetched.append((cursor, covered_to))
                done += (covered_to - cursor) // tf
                if progress is not None:
                    progress(done, expected)
                cursor = covered_to
        rep.ranges_fetched = merge_ranges(rep.ranges_fetched)
        cache.compact(venue, vs.pair, label)
    return report


def _api_description(exchange: Any) -> str:
    """The API base URLs the instance talks to (recorded as provenance)."""
    api = getattr(exchange, "urls", {}).get("api")
    if isinstance(api, dict):
        for key in ("rest", "public"):
            if isinstance(api.get(key), str):
                return api[key]
        return next((v for v in api.values() if isinstance(v, str)), "")
    return api if isinstance(api, str) else ""
