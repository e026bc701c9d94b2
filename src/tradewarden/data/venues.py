"""Venue facts for downloading candles: symbol mapping and per-request limits.

tradewarden names every spot pair in one canonical form, ``BASE-QUOTE`` (``BTC-USD``).
Each venue spells it differently:

========== ===================== ========================= ===================================
venue      ccxt unified symbol   venue-native id           note
========== ===================== ========================= ===================================
coinbase   ``BTC/USD``           ``BTC-USD`` (product id)  Advanced Trade API (ccxt ``coinbase``)
kraken     ``BTC/USD``           ``XBTUSD`` (altname);     Kraken calls bitcoin ``XBT``
                                 ccxt id ``XXBTZUSD``
binance    ``BTC/USDT``          ``BTCUSDT``               binance.com lists no USD spot pairs:
                                                           a ``-USD`` request uses **USDT**
========== ===================== ========================= ===================================

:func:`resolve_symbol` does the mapping and says, in :attr:`VenueSymbol.quote_used` and
:attr:`VenueSymbol.note`, when the quote currency actually used differs from the one asked
for. Downloaded candles are cached under the pair actually traded
(:attr:`VenueSymbol.pair`, e.g. ``BTC-USDT`` on binance), so a cache never claims that
USDT prices are USD prices.

``--exchange coinbase`` means ccxt's ``coinbase`` class: Coinbase's Advanced Trade API
(``https://api.coinbase.com/api/v3/brokerage``), whose public market endpoints need no
API key. It is also the venue and client the bundled sample data came from (a
freqtrade/ccxt ``coinbase`` download). The older Coinbase Exchange API is ccxt's
``coinbaseexchange`` and works through the generic path like any other ccxt id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from tradewarden.data._columns import canonical_symbol
from tradewarden.data.errors import DataError

__all__ = ["VENUES", "VenueSpec", "VenueSymbol", "max_candles_per_request", "resolve_symbol",
           "split_symbol", "venue_spec"]


@dataclass(frozen=True, slots=True)
class VenueSpec:
    """What the downloader needs to know about one venue's public candle endpoint.

    Parameters
    ----------
    id : str
        ccxt exchange id (``"coinbase"``, ``"kraken"``, ``"binance"``).
    max_candles : int
        Largest number of candles one ``fetch_ohlcv`` request returns.
    ohlcv_endpoint : str
        The HTTP endpoint ccxt's ``fetch_ohlcv`` calls (recorded as provenance).
    supports_until : bool
        ``True`` when ccxt forwards ``params={"until": ms}`` to the venue as the end of
        the requested window (Coinbase ``end``, Binance ``endTime``); Kraken's OHLC
        endpoint has no end parameter.
    history_limit : int or None
        When set, the endpoint serves only the latest this-many candles of any
        timeframe (the in-progress candle included), whatever ``since`` asks for.
    quote_aliases : dict of str to str
        Quote currencies the venue does not list, mapped to the one used instead.
    source : str
        Where ``max_candles`` and ``history_limit`` come from.
    """

    id: str
    max_candles: int
    ohlcv_endpoint: str
    supports_until: bool = False
    history_limit: int | None = None
    quote_aliases: Mapping[str, str] | None = None
    source: str = ""


VENUES: dict[str, VenueSpec] = {
    # Coinbase Advanced Trade "Get Public Product Candles" (GET /api/v3/brokerage/market/
    # products/{product_id}/candles, start/end in UNIX seconds; ccxt asks for
    # end = start + 300 bars, so the end bound must be exclusive for 300 to pass). ccxt 4.5
    # coinbase.fetch_ohlcv caps a request at 300 candles ("maxLimit = 300", features limit
    # 300; ccxt PR #25171: testing returned at most 300); Coinbase's Exchange API docs
    # state 300 and reject larger spans, Advanced Trade has been seen to allow 350.
    "coinbase": VenueSpec(
        "coinbase", 300, "GET /api/v3/brokerage/market/products/{product_id}/candles",
        supports_until=True,
        source="ccxt coinbase.fetch_ohlcv maxLimit 300 (ccxt PR #25171); Coinbase docs 300"),
    # Kraken REST "Get OHLC Data" (docs.kraken.com/api-reference/market-data/get-ohlc-data):
    # "Returns up to 720 of the most recent entries"; older data is not returned whatever
    # `since` says. ccxt 4.5 kraken features: fetchOHLCV limit 720.
    "kraken": VenueSpec(
        "kraken", 720, "GET /0/public/OHLC", supports_until=False, history_limit=720,
        source="Kraken docs get-ohlc-data: up to 720 most recent entries; ccxt kraken "
               "features fetchOHLCV limit 720"),
    # Binance Spot "Kline/Candlestick data" GET /api/v3/klines: limit default 500, max
    # 1000 (developers.binance.com, spot market-data endpoints); ccxt 4.5
    # binance.fetch_ohlcv maxLimit 1000. binance.com has no USD spot quote: USDT is used.
    "binance": VenueSpec(
        "binance", 1000, "GET /api/v3/klines", supports_until=True,
        quote_aliases={"USD": "USDT"},
        source="Binance docs GET /api/v3/klines: limit max 1000; ccxt binance maxLimit 1000"),
}

#: Kraken's names for a few currencies (Kraken asset pairs, "altname" column).
_KRAKEN_CODES = {"BTC": "XBT", "DOGE": "XDG"}
#: Used for ccxt ids without an entry in :data:`VENUES` and no ccxt ``features`` limit.
_FALLBACK_MAX_CANDLES = 500


def venue_spec(exchange_id: str, exchange: Any = None) -> VenueSpec:
    """Return the :class:`VenueSpec` for a ccxt id.

    Parameters
    ----------
    exchange_id : str
        ccxt exchange id, case-insensitive.
    exchange : ccxt.Exchange, optional
        An instance of that exchange; for ids without a built-in spec its
        ``features['spot']['fetchOHLCV']['limit']`` gives ``max_candles``.

    Returns
    -------
    VenueSpec
        The built-in spec, or a generic one (``supports_until=False``, no history
        limit, ``max_candles`` from ccxt's ``features`` or 500).
    """
    key = exchange_id.strip().lower()
    if key in VENUES:
        return VENUES[key]
    limit = None
    try:
        limit = int(exchange.features["spot"]["fetchOHLCV"]["limit"])  # type: ignore[index]
    except (AttributeError, KeyError, TypeError, ValueError):
        limit = None
    if limit is not None and limit > 0:
        return VenueSpec(key, limit, "fetch_ohlcv", source=f"ccxt {key} features fetchOHLCV limit")
    return VenueSpec(key, _FALLBACK_MAX_CANDLES, "fetch_ohlcv",
                     source="no documented limit known; conservative default")


def max_candles_per_request(exchange_id: str, exchange: Any = None) -> int:
    """Largest page of candles one request to the venue returns (see :func:`venue_spec`)."""
    return venue_spec(exchange_id, exchange).max_candles


def split_symbol(symbol: str) -> tuple[str, str]:
    """Split a symbol into ``(base, quote)`` after canonicalising it.

    Raises
    ------
    ValueError
        If the symbol is empty or not of the form ``BASE-QUOTE``.
    """
    canonical = canonical_symbol(symbol)
    base, sep, quote = canonical.partition("-")
    if not sep or not base or not quote or "-" in quote:
        raise ValueError(f"invalid pair {symbol!r}: expected BASE-QUOTE such as 'BTC-USD'")
    return base, quote


@dataclass(frozen=True, slots=True)
class VenueSymbol:
    """One canonical pair as a venue spells it.

    Parameters
    ----------
    canonical : str
        The pair asked for, canonical ``BASE-QUOTE`` (``BTC-USD``).
    unified : str
        ccxt unified symbol actually used (``BTC/USD``; ``BTC/USDT`` on binance).
    venue_id : str or None
        The venue's own id: Coinbase product id ``BTC-USD``, Kraken ``XBTUSD`` (or
        ccxt's market id ``XXBTZUSD`` once markets are loaded), Binance ``BTCUSDT``.
        ``None`` for generic venues before markets are loaded.
    quote_used : str
        Quote currency of the market actually used.
    note : str
        Empty, or one sentence on a substitution (quote currency, Kraken names).
    """

    canonical: str
    unified: str
    venue_id: str | None
    quote_used: str
    note: str = ""

    @property
    def base(self) -> str:
        """Base currency code (``BTC``)."""
        return self.unified.split("/", 1)[0]

    @property
    def quote_requested(self) -> str:
        """Quote currency of :attr:`canonical`."""
        return self.canonical.partition("-")[2]

    @property
    def quote_substituted(self) -> bool:
        """``True`` when the venue's market quotes in another currency than asked."""
        return self.quote_used != self.quote_requested

    @property
    def pair(self) -> str:
        """Canonical form of the market actually used (``BTC-USDT`` for binance BTC-USD).

        The cache stores a venue's candles under this name.
        """
        return f"{self.base}-{self.quote_used}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the fields plus ``pair``)."""
        out = asdict(self)
        out["pair"] = self.pair
        return out


def resolve_symbol(exchange_id: str, symbol: str,
                   markets: Mapping[str, Mapping[str, Any]] | None = None) -> VenueSymbol:
    """Map a canonical pair to a venue's symbol.

    Parameters
    ----------
    exchange_id : str
        ccxt exchange id.
    symbol : str
        Pair in any accepted spelling (``BTC-USD``, ``btc_usd``, ``BTC/USD``).
    markets : mapping, optional
        ccxt ``exchange.markets`` (unified symbol -> market). When given, the market
        must exist and the venue id is taken from it.

    Returns
    -------
    VenueSymbol
        On binance a ``-USD`` pair resolves to the ``USDT`` market and the note says so.

    Raises
    ------
    ValueError
        If ``symbol`` is not ``BASE-QUOTE``.
    DataError
        If ``markets`` is given and the venue lists no such market; the message names
        the venue, the pair and the unified symbol looked for, and lists markets with
        the same base currency.
    """
    venue = exchange_id.strip().lower()
    base, quote = split_symbol(symbol)
    canonical = f"{base}-{quote}"
    spec = VENUES.get(venue)
    aliases = dict(spec.quote_aliases or {}) if spec is not None else {}
    quote_used = aliases.get(quote, quote)
    unified = f"{base}/{quote_used}"
    notes: list[str] = []
    if quote_used != quote:
        notes.append(f"{venue} lists no {base}/{quote} spot market; {canonical} is mapped to "
                     f"{unified}: prices are in {quote_used}, not {quote}")

    venue_id: str | None
    if venue == "coinbase":
        venue_id = f"{base}-{quote_used}"
    elif venue == "kraken":
        venue_id = f"{_KRAKEN_CODES.get(base, base)}{_KRAKEN_CODES.get(quote_used, quote_used)}"
    elif venue == "binance":
        venue_id = f"{base}{quote_used}"
    else:
        venue_id = None

    if markets is not None:
        market = markets.get(unified)
        if market is None:
            same_base = sorted(s for s in markets if s.split("/", 1)[0] == base and ":" not in s)
            hint = ", ".join(same_base[:20]) or "none"
            raise DataError(f"{venue} markets",
                            f"no spot market {unified} for {canonical}; {venue} markets with "
                            f"base {base}: {hint}")
        market_id = market.get("id")
        if market_id:
            altname = market.get("altname")
            if venue == "kraken" and altname and altname != market_id:
                notes.append(f"Kraken pair {altname} (ccxt market id {market_id})")
            venue_id = str(market_id)
    elif venue == "kraken" and base in _KRAKEN_CODES:
        notes.append(f"Kraken calls {base} {_KRAKEN_CODES[base]}")
    return VenueSymbol(canonical, unified, venue_id, quote_used, "; ".join(notes))
