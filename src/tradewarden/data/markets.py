"""Instrument specs and maker/taker fees from a venue's market metadata (ccxt).

ccxt's ``load_markets()`` turns each venue's public market list into unified markets:
``precision`` (price and amount steps), ``limits`` (amount and cost = notional bounds)
and ``maker``/``taker`` fee rates. This module converts one market into an
:class:`~tradewarden.domain.instrument.Instrument` and fees in basis points, and caches
the venue's spot markets as JSON with the date and time they were read::

    <cache root>/markets/<venue>.json

Where the fees come from: ccxt fills ``maker``/``taker`` from the market metadata the
venue publishes. Without credentials that is the venue's published base tier (Kraken
``fees``/``fees_maker`` first tier, Binance's default 0.1 %, Coinbase's default tier);
with credentials ccxt's Coinbase ``load_markets`` reads the account's own tier
(``transaction_summary``). :attr:`MarketSpec.fee_basis` records which applied, because
published tiers often differ from what an account pays.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradewarden.data.cache import _atomic_write_json, default_cache_root
from tradewarden.data.errors import DataError
from tradewarden.data.venues import VenueSymbol, resolve_symbol
from tradewarden.domain.instrument import Instrument, to_decimal

__all__ = ["MarketSpec", "fees_from_market", "instrument_from_market", "load_market_specs",
           "markets_cache_path", "read_markets_cache"]

# ccxt.base.decimal_to_precision constants (stable across ccxt 1.x-4.x)
DECIMAL_PLACES = 2
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4
_MODE_NAMES = {DECIMAL_PLACES: "decimal_places", SIGNIFICANT_DIGITS: "significant_digits",
               TICK_SIZE: "tick_size"}
#: Market fields kept in the JSON cache (``info``, the raw venue record, is dropped).
_KEEP = ("id", "symbol", "base", "quote", "baseId", "quoteId", "type", "spot", "active",
         "precision", "limits", "maker", "taker", "percentage", "tierBased", "altname")
_TAG = "tradewarden"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class MarketSpec:
    """A pair's instrument spec and fees as one venue publishes them.

    Attributes
    ----------
    symbol : str
        The pair asked for, canonical (``BTC-USD``).
    venue : str
    venue_symbol : VenueSymbol
        Market actually used (``BTC/USDT`` on binance for ``BTC-USD``).
    instrument : Instrument
        Increments and notional limits; ``instrument.symbol`` is the pair actually
        traded; ``source`` is ``"ccxt <venue> markets <YYYY-MM-DD>"``.
    maker_bps, taker_bps : Decimal
        Fee rates in basis points of notional (0.006 -> 60).
    fee_basis : str
        ``"account"`` (read with credentials) or ``"published"`` (the venue's published
        default tier, which may differ from what an account pays).
    read_at : str
        UTC ISO time the market metadata was read from the venue.
    """

    symbol: str
    venue: str
    venue_symbol: VenueSymbol
    instrument: Instrument
    maker_bps: Decimal
    taker_bps: Decimal
    fee_basis: str
    read_at: str


def _tag(market: Mapping[str, Any]) -> Mapping[str, Any]:
    tag = market.get(_TAG)
    return tag if isinstance(tag, Mapping) else {}


def _step(value: Any, mode: int, what: str, name: str) -> Decimal:
    if value is None:
        raise DataError(f"market {name}", f"no {what} precision in the market metadata")
    if mode == TICK_SIZE:
        step = to_decimal(value)
    elif mode == DECIMAL_PLACES:
        places = int(value)
        step = Decimal(1).scaleb(-places)
    else:
        raise DataError(f"market {name}",
                        f"{what} precision is given in {_MODE_NAMES.get(mode, mode)} mode; "
                        "cannot derive a fixed increment")
    if step <= 0:
        raise DataError(f"market {name}", f"non-positive {what} increment {value!r}")
    return _plain(step)


def _opt_decimal(value: Any) -> Decimal | None:
    return None if value is None else _plain(to_decimal(value))


def instrument_from_market(market: Mapping[str, Any], *, venue: str | None = None,
                           read_on: str | None = None,
                           precision_mode: int | None = None) -> Instrument:
    """Build an :class:`Instrument` from a ccxt unified market.

    Parameters
    ----------
    market : mapping
        A ccxt market (``exchange.markets['BTC/USD']``) or one from the markets cache.
    venue, read_on : str, optional
        ccxt id and ``YYYY-MM-DD`` date the metadata was read; default: the
        ``tradewarden`` tag :func:`load_market_specs` attaches to each market.
    precision_mode : int, optional
        ccxt ``exchange.precisionMode`` (4 = tick size, the mode of coinbase, kraken and
        binance; 2 = decimal places); default from the tag, else tick size.

    Returns
    -------
    Instrument
        ``symbol`` ``BASE-QUOTE`` of the market; ``price_increment`` =
        ``precision.price``; ``quantity_increment`` = ``precision.amount`` (quote and
        base units); ``min_notional`` = ``limits.cost.min`` (0 when the venue states
        none); ``max_notional`` = ``limits.cost.max``; ``min_quantity`` =
        ``limits.amount.min`` (one increment when none); ``source`` =
        ``"ccxt <venue> markets <date>"``.

    Raises
    ------
    ValueError
        If the venue or date is neither given nor tagged on the market.
    DataError
        If a precision is missing, non-positive or in significant-digits mode.
    """
    tag = _tag(market)
    venue = venue or tag.get("venue")
    read_on = read_on or tag.get("read_on")
    if not venue or not read_on:
        raise ValueError("instrument_from_market needs the venue and the date the market was "
                         "read: pass venue= and read_on= or use load_market_specs()")
    mode = int(precision_mode if precision_mode is not None else tag.get("precision_mode",
                                                                         TICK_SIZE))
    name = f"{venue} {market.get('symbol')}"
    base, quote = market.get("base"), market.get("quote")
    if not base or not quote:
        raise DataError(f"market {name}", "market has no base or quote currency")
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    cost = limits.get("cost") or {}
    amount = limits.get("amount") or {}
    min_notional = _opt_decimal(cost.get("min"))
    return Instrument(
        symbol=f"{base}-{quote}", base=str(base), quote=str(quote),
        price_increment=_step(precision.get("price"), mode, "price", name),
        quantity_increment=_step(precision.get("amount"), mode, "amount", name),
        min_notional=min_notional if min_notional is not None else Decimal(0),
        max_notional=_opt_decimal(cost.get("max")),
        min_quantity=_opt_decimal(amount.get("min")),
        source=f"ccxt {venue} markets {read_on}",
    )


def fees_from_market(market: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
    """Return ``(maker_bps, taker_bps)``: the market's fee rates in basis points.

    Parameters
    ----------
    market : mapping
        A ccxt market; ``maker``/``taker`` are fractions of notional (0.004 = 0.4 %).

    Returns
    -------
    tuple of Decimal
        Basis points (0.004 -> ``Decimal('40')``).

    Raises
    ------
    DataError
        If either rate is missing, or a fee is given as a fixed amount
        (``percentage`` false), which has no basis-point form.
    """
    name = f"market {market.get('symbol')}"
    if market.get("percentage") is False:
        raise DataError(name, "fees are fixed amounts, not percentages")
    rates = []
    for key in ("maker", "taker"):
        value = market.get(key)
        if value is None:
            raise DataError(name, f"no {key} fee in the market metadata")
        rates.append(_plain(to_decimal(value) * 10000))
    return rates[0], rates[1]


def _plain(d: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent form (60.000 -> 60, 2.50 -> 2.5)."""
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()


# ---------------------------------------------------------------------------------------
# cache of market metadata


def markets_cache_path(venue: str, root: str | os.PathLike[str] | None = None) -> Path:
    """``<root>/markets/<venue>.json`` (root: :func:`~tradewarden.data.cache.default_cache_root`)."""
    base = Path(root).expanduser() if root is not None else default_cache_root()
    return base / "markets" / f"{venue.strip().lower()}.json"


def read_markets_cache(venue: str, root: str | os.PathLike[str] | None = None
                       ) -> dict[str, Any] | None:
    """Return the cached market metadata of a venue, or ``None`` if none is cached.

    Returns
    -------
    dict or None
        ``{"venue", "read_at", "read_on", "ccxt_version", "precision_mode",
        "fee_basis", "markets": {unified symbol: market}}``; every market carries a
        ``tradewarden`` tag (venue, read_on, precision_mode, fee_basis).

    Raises
    ------
    DataError
        If the file exists but cannot be parsed.
    """
    path = markets_cache_path(venue, root)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(path, f"unreadable markets cache ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
        raise DataError(path, "unsupported markets cache format")
    return data


def _trim(market: Mapping[str, Any], tag: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: market.get(k) for k in _KEEP if k in market}
    out[_TAG] = dict(tag)
    return out


def load_market_specs(exchange_id: str, symbols: Iterable[str] | str, *, exchange: Any = None,
                      root: str | os.PathLike[str] | None = None,
                      max_age_seconds: float | None = 86400.0, refresh: bool = False,
                      max_retries: int = 6, sleep: Callable[[float], Any] = time.sleep,
                      now: Callable[[], float] = time.time) -> dict[str, MarketSpec]:
    """Instrument specs and fees for pairs on a venue, from cache or ``load_markets()``.

    Parameters
    ----------
    exchange_id : str
        ccxt id.
    symbols : str or iterable of str
        Canonical pairs (``BTC-USD``; comma-separated text accepted).
    exchange : ccxt.Exchange, optional
        Instance to read markets with (default :func:`~tradewarden.data.download.create_exchange`).
    root : path, optional
        Cache root (default ``$TRADEWARDEN_CACHE`` or ``~/.cache/tradewarden``).
    max_age_seconds : float or None, default one day
        Use the cached metadata when younger than this; ``None`` = any age.
    refresh : bool, default False
        Always read from the venue.
    max_retries, sleep, now
        Retry policy for transient failures, as in :func:`~tradewarden.data.download_ohlcv`.

    Returns
    -------
    dict of str to MarketSpec
        Keyed by the requested canonical pair.

    Raises
    ------
    DataError
        A pair the venue does not list, unusable precision, or markets that could not
        be loaded (after retries).
    """
    from tradewarden.data.download import _call, create_exchange, prepare_exchange

    venue = exchange_id.strip().lower()
    if isinstance(symbols, str):
        symbols = [s for s in symbols.split(",") if s.strip()]
    wanted = list(dict.fromkeys(resolve_symbol(venue, s).canonical for s in symbols))
    cached = None if refresh else read_markets_cache(venue, root)
    if cached is not None and max_age_seconds is not None:
        read_at = datetime.fromisoformat(cached["read_at"].replace("Z", "+00:00"))
        if now() - read_at.timestamp() > max_age_seconds:
            cached = None
    if cached is not None and any(resolve_symbol(venue, s).unified not in cached["markets"]
                                  for s in wanted):
        cached = None

    if cached is None:
        if exchange is None:
            exchange = create_exchange(venue)
        else:
            prepare_exchange(exchange)
        try:
            _call(lambda: exchange.load_markets(True), exchange=exchange,
                  max_retries=max_retries, sleep=sleep, clock=now, on_retry=lambda: None)
        except Exception as exc:
            raise DataError(f"{venue} markets", f"could not load markets: "
                                                f"{type(exc).__name__}: {exc}") from exc
        moment = datetime.fromtimestamp(now(), tz=UTC)
        has_creds = bool(exchange.check_required_credentials(False))
        fee_basis = "account" if (has_creds and venue == "coinbase") else "published"
        tag = {"venue": venue, "read_on": moment.strftime("%Y-%m-%d"),
               "read_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
               "precision_mode": int(getattr(exchange, "precisionMode", TICK_SIZE)),
               "fee_basis": fee_basis}
        import ccxt

        cached = {
            "format": FORMAT_VERSION, "venue": venue, "read_at": tag["read_at"],
            "read_on": tag["read_on"], "ccxt_version": ccxt.__version__,
            "precision_mode": tag["precision_mode"], "fee_basis": fee_basis,
            "markets": {sym: _trim(m, tag) for sym, m in exchange.markets.items()
                        if m.get("spot")},
        }
        _atomic_write_json(markets_cache_path(venue, root), cached)

    markets = cached["markets"]
    out: dict[str, MarketSpec] = {}
    for sym in wanted:
        vs = resolve_symbol(venue, sym, markets)
        market = markets[vs.unified]
        maker, taker = fees_from_market(market)
        out[sym] = MarketSpec(sym, venue, vs, instrument_from_market(market), maker, taker,
                              _tag(market).get("fee_basis", cached.get("fee_basis", "published")),
                              cached["read_at"])
    return out
