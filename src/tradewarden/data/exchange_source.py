"""Replay input from an exchange's cached history: read the cache, fetch what is missing.

``warden replay --exchange coinbase ...`` comes through :func:`load_exchange_data`. The
cache is read first; missing ranges are downloaded through ccxt unless ``offline``,
in which case the error names every missing range. Instrument specs and fees come
from the venue's cached market metadata when present (read through ccxt with the
date they were read); otherwise the static spec, or one inferred from the prices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

import pandas as pd

from tradewarden.data.cache import OhlcvCache
from tradewarden.data.errors import DataError
from tradewarden.data.loaders import LoadedData, parse_bound
from tradewarden.data.quality import validate_frame
from tradewarden.data.resample import timeframe_label, timeframe_seconds
from tradewarden.data.venues import resolve_symbol
from tradewarden.domain import infer_instrument, iso, known_instrument


@dataclass(slots=True)
class ExchangeData:
    """What :func:`load_exchange_data` returns: the loaded bars plus venue fees.

    ``fees`` maps symbol to ``(maker_bps, taker_bps, basis)`` where basis is
    ``account`` or ``published`` (from the cached market metadata).
    """

    loaded: LoadedData
    fees: dict[str, tuple[Decimal, Decimal, str]] = field(default_factory=dict)
    downloaded: int = 0


def load_exchange_data(exchange_id: str, symbols: list[str], timeframe: str, start: str,
                       end: str, *, cache_dir: str | None = None, offline: bool = False,
                       progress: Callable[[int, int], Any] | None = None,
                       exchange: Any = None) -> ExchangeData:
    """Bars for ``symbols`` on ``exchange_id`` over ``[start, end)`` from the cache.

    Parameters
    ----------
    exchange_id : str
        ccxt id (``coinbase``, ``kraken``, ``binance``, ...).
    symbols : list of str
        Canonical pairs (``BTC-USD``).
    timeframe : str
        Bar label the venue serves (``1h``).
    start, end : str
        UTC dates or datetimes (``--start`` / ``--end``); both required.
    cache_dir : str, optional
        Cache root (default ``$TRADEWARDEN_CACHE`` or ``~/.cache/tradewarden``).
    offline : bool
        Never download: fail naming the missing ranges instead.
    progress : callable, optional
        ``progress(done, expected)`` during downloads.
    exchange : ccxt.Exchange, optional
        A configured client (tests point it at a loopback server).

    Raises
    ------
    DataError
        Missing ranges while offline, ranges the venue cannot serve, bad candles.
    ValueError
        Missing or malformed ``start``/``end``.
    """
    if not start or not end:
        raise ValueError("--exchange needs both --start and --end (UTC dates)")
    lo, hi = parse_bound(start, "--start"), parse_bound(end, "--end")
    cache = OhlcvCache(cache_dir)
    venue = exchange_id.strip().lower()
    pairs = {s: resolve_symbol(venue, s).pair for s in symbols}
    missing = {s: cache.missing_ranges(venue, pairs[s], timeframe, lo, hi) for s in symbols}
    downloaded = 0
    warnings: list[str] = []
    if any(missing.values()):
        text = "; ".join(f"{s}: " + ", ".join(f"[{iso(a)}, {iso(b)})" for a, b in rs)
                         for s, rs in missing.items() if rs)
        if offline:
            raise DataError(f"{venue} {timeframe} cache ({cache.root})",
                            f"offline and not cached: {text}")
        from tradewarden.data.download import download_ohlcv
        try:
            report = download_ohlcv(venue, [s for s, rs in missing.items() if rs], timeframe, lo, hi,
                                    cache=cache, progress=progress, exchange=exchange)
        except DataError as exc:
            raise DataError(f"{venue} {timeframe} cache ({cache.root})",
                            f"not cached: {text}; download failed: {exc}") from exc
        report.raise_for_unavailable()
        warnings.extend(report.warnings)
        downloaded = report.fetched_rows
    loaded = LoadedData(timeframe=timeframe_label(timeframe_seconds(timeframe)))
    loaded.warnings.extend(warnings)
    fees: dict[str, tuple[Decimal, Decimal, str]] = {}
    specs = _cached_specs(venue, symbols, cache_dir) if offline else _fresh_specs(
        venue, symbols, cache_dir, exchange, loaded.warnings)
    tf = timeframe_seconds(timeframe)
    for s in symbols:
        bars = cache.series(venue, pairs[s], timeframe, lo, hi)
        frame = pd.DataFrame({"timestamp": bars.ts, "open": bars.open, "high": bars.high,
                              "low": bars.low, "close": bars.close, "volume": bars.volume})
        _, quality = validate_frame(frame, bars.source, tf, symbol=s)
        if len(bars) == 0:
            raise DataError(bars.source, f"no {timeframe} candles for {s} in [{iso(lo)}, {iso(hi)})")
        bars.symbol = s
        loaded.series[s] = bars
        loaded.quality[s] = quality
        spec = specs.get(s)
        if spec is not None:
            loaded.instruments[s] = spec.instrument
            fees[s] = (spec.maker_bps, spec.taker_bps, spec.fee_basis)
        else:
            inst = known_instrument(s)
            if inst is None:
                inst = infer_instrument(s, bars.close[:5000])
                loaded.warnings.append(f"{s}: no market metadata cached for {venue}; increments "
                                       f"inferred from prices (tick {inst.price_increment})")
            loaded.instruments[s] = inst
    return ExchangeData(loaded, fees, downloaded)


def _fresh_specs(venue: str, symbols: list[str], root: str | None, exchange: Any,
                 warnings: list[str]) -> dict[str, Any]:
    """Market specs from the cache when younger than a day, else read through ccxt."""
    from tradewarden.data.markets import load_market_specs
    try:
        return load_market_specs(venue, symbols, root=root, exchange=exchange)
    except DataError as exc:
        warnings.append(f"market metadata unavailable ({exc}); using static or inferred specs")
        return _cached_specs(venue, symbols, root)


def _cached_specs(venue: str, symbols: list[str], root: str | None) -> dict[str, Any]:
    """Market specs from the venue's cached metadata only (no network)."""
    from tradewarden.data.markets import load_market_specs, read_markets_cache
    cached = read_markets_cache(venue, root)
    if cached is None:
        return {}
    known = [s for s in symbols if resolve_symbol(venue, s).unified in cached["markets"]]
    if not known:
        return {}
    try:
        return load_market_specs(venue, known, root=root, max_age_seconds=None)
    except DataError:
        return {}
