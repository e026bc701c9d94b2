"""Kraken and any other ccxt venue: the broker port over a synchronous ccxt client.

:class:`CcxtBroker` implements :class:`~tradewarden.execution.base.Broker` with ccxt's
unified API (``create_order``, ``fetch_orders_by_ids`` / ``fetch_order``,
``fetch_open_orders``, ``fetch_closed_orders``, ``fetch_order_trades`` /
``fetch_my_trades``, ``cancel_order``, ``fetch_balance``, ``fetch_trading_fee``).
Kraken gets the few things only Kraken has (client order ids in ``cl_ord_id``, the
key's permissions, a validate-only order, the account's fee tier); every other ccxt
venue goes through the same code with ccxt's unified parameters and says so in
:attr:`CcxtBroker.notes`.

Brackets are emulated (``native_bracket=False``, ``native_oco=False``)
----------------------------------------------------------------------
The engine holds an entry's take-profit and stop-loss until the entry fills, then
submits them one by one, and cancels one when the other fills. This adapter places the
**stop-loss at the venue** (Kraken ``ordertype=stop-loss``; ccxt ``stopLossPrice``) and
**holds the take-profit itself**: it is reported ``working`` and, when a bar closes at
or above its price, the adapter cancels the resting stop-loss and sends a market sell
under the take-profit's client order id; its fill is the take-profit's. Why:

* Kraken holds a spot account's funds for every open order ("available balance =
  balance + credit - credit_used - hold_trade"; "held amounts only include spot non
  margin orders": Kraken, Get Extended Balance). A take-profit sell limit and a
  stop-loss sell for the whole position cannot both rest: the second is refused
  ``EOrder:Insufficient funds``, or, if the stop is accepted untriggered, it cannot
  execute when it triggers. Only one of the two can rest at the venue, and it must be
  the stop: it protects while tradewarden is down.
* Kraken's conditional close (``close[ordertype]=stop-loss``, ccxt ``params={'close':
  {...}}``) would arm the stop the moment the entry fills, but it is not used. It gives
  nothing the emulation lacks: Kraken allows one close order per entry, never a stop
  and a target together ("it is not possible to place combined or one cancels the
  other type orders using a conditional close": Kraken support, Conditional Close), so
  the take-profit would be held all the same; and a market entry fills within the
  submit call here, so the engine sends the stop in the same breath (a crash in
  between is repaired by reconciliation, which arms the journaled legs). Using it
  would need the port's native brackets, which promise a venue-side OCO Kraken does
  not have.
* The take-profit is checked on each bar's close (the price the adapter sees; no
  ticker request): a bar whose high touched it but closed below leaves it waiting, as a
  sell never goes below its level by this rule; a resting limit would have filled. The
  stop-loss, resting at the venue, fills intrabar. Between the stop's cancel and the
  market sell (two requests) a crash leaves the position without its stop: on restart
  :meth:`CcxtBroker.lookup` reports the stop ``cancelled`` with a reason saying so and
  :attr:`CcxtBroker.alerts` gets a line. A crash after the sale went out finds the sale
  under the take-profit's client order id: the stop's cancel is then the OCO's, without
  an alert.
* A venue without stop orders in ccxt's features gets its stop-loss held the same way
  (sold at market once a bar's low reaches it), said in :attr:`CcxtBroker.notes`: such
  a stop does not protect while tradewarden is down.

Never doubled, never lost
-------------------------
* Every order carries a client order id derived from the engine's (deterministic,
  ``tw-{deployment}-{n}-{role}``): a name-based UUID (RFC 4122 version 5). Kraken's
  ``cl_ord_id`` takes a UUID (long or short form) or at most 18 characters of free text,
  and is unique only among OPEN orders (Kraken, Spot Client Order Identifiers), so the
  id alone does not stop a second market order: the adapter never resends without
  looking first. Kraken gets the long form, other venues the 32 hex digits.
* ``create_order`` is never retried blindly. A timeout, dropped connection or 5xx makes
  the outcome unknown: the order is looked up by its client order id (Kraken
  ``OpenOrders`` / ``ClosedOrders`` with ``cl_ord_id``); found, its state is reported.
  Not found, a protective leg or an exit is looked up once more after
  ``resend_grace`` clock seconds and only then sent again; an entry is left ``submitted``
  (the submit returns no event) and settled at the next :meth:`process`: found, it is
  reported; still not found, it is reported ``rejected`` (a market entry decided on an
  earlier bar is not sent late).
* A rate limit (HTTP 429, Kraken ``EAPI:Rate limit exceeded``, ccxt
  ``RateLimitExceeded`` / ``DDoSProtection``) and a bad nonce mean the request was not
  processed: it is sent again after waiting ``Retry-After`` (or 1, 2, 4 ... s) through
  the clock, at most ``max_retries`` times. Reads and cancels are also retried after
  timeouts and 5xx. Any other venue error is a rejection carrying the venue's words
  (Kraken's error strings, e.g. ``EOrder:Insufficient funds``).
* :meth:`process` reads the venue's state of every order it tracks and their trades
  (Kraken: ``QueryOrders`` with ``trades=true``, then ``QueryTrades`` for the trade ids
  not reported yet; other venues: ``fetch_my_trades``); each trade is reported once,
  keyed by its trade id. A fill and the order's end are reported in that order. A
  symbol with no order open costs no request.

Money and rounding
------------------
Quantities and prices are ``Decimal``; ccxt's unified numbers (floats parsed from the
venue's decimal strings) are read through their shortest repr. Sizes are rounded DOWN
to the venue's amount increment; a take-profit DOWN and a stop UP to its price
increment (the exit never asks more than the strategy's level; the stop fires no later
than the level risk sizing counted), the increments of ccxt's market for the pair
(``precision``). Kraken orders carry ``oflags=fciq`` (fee in the quote currency), so an
entry's base quantity is exactly what was bought and its stop can sell all of it. Fees
on fills are what the venue charged; the rates (:meth:`CcxtBroker.fee_rates`) come from
the account's fee schedule (Kraken ``TradeVolume`` for the pair: the account's tier;
Kraken's lowest spot tier is 0.25 % maker / 0.40 % taker), else ccxt's market metadata.
Time comes only from the clock (``now()`` stamps acknowledgements and cancels,
``wait_until()`` waits); fills carry the venue's trade time.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from tradewarden.data.download import create_venue_client, retry_delay
from tradewarden.data.errors import DataError
from tradewarden.data.markets import instrument_from_market
from tradewarden.data.venues import resolve_symbol
from tradewarden.domain import (
    Bar,
    Fill,
    Instrument,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    Side,
    iso,
    to_decimal,
)
from tradewarden.execution.base import (
    STATUS_AFTER,
    TRANSITIONS,
    BrokerCapabilities,
    OrderEvent,
    OrderEventKind,
    VenueAccount,
    VenueOrder,
)
from tradewarden.execution.venue import (
    Preflight,
    VenueError,
    VenuePermissionError,
    VenueUnavailable,
)

K = OrderEventKind
_ZERO = Decimal(0)
#: Namespace of the name-based UUIDs sent as client order ids (``uuid5(NS, cid)``).
CLIENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "tradewarden:client-order-id")
#: Order ids per Kraken QueryOrders request (ccxt's note says 20, Kraken's docs 50).
_QUERY_BATCH = 20
_SERVER_ERROR_MARKERS = ("internal_server_error", "internal server error", "service unavailable",
                         "bad gateway", "gateway timeout", "temporarily unavailable")
_ENDED = {"canceled": K.CANCELLED, "cancelled": K.CANCELLED, "expired": K.EXPIRED,
          "rejected": K.REJECTED}
_HELD_TP = ("take-profit held by tradewarden (emulated): sent as a market sell when a bar "
            "closes at or above it; the stop-loss rests at the venue")
_HELD_SL = ("stop-loss held by tradewarden (emulated): this venue takes no stop orders through "
            "ccxt; sent as a market sell when a bar's low reaches it")


class Clock(Protocol):
    """The time source: ``now()`` UTC epoch seconds, ``wait_until(ts)`` blocks until then."""

    def now(self) -> int:
        """Return the current time, UTC epoch seconds."""

    def wait_until(self, ts: int) -> None:
        """Block until :meth:`now` is at least ``ts``."""


class _Refused(VenueError):
    """The venue answered no (a rejection, a permission, an unknown order): its words."""

    def __init__(self, venue: str, message: str, cause: BaseException | None = None) -> None:
        super().__init__(venue, message)
        self.cause = cause


class _Ambiguous(VenueUnavailable):
    """A request that may have been processed got no answer (timeout, dropped, 5xx)."""


def _ccxt() -> Any:
    import ccxt

    return ccxt


def _dec(value: Any) -> Decimal:
    """A ccxt number (float, str, None) as Decimal (None -> 0)."""
    if value is None or value == "":
        return _ZERO
    return to_decimal(value if isinstance(value, (str, Decimal, int)) else float(value))


def _bps(rate: Decimal) -> str:
    """A fraction of notional as plain basis points (0.0025 -> '25')."""
    return format((rate * 10000).normalize(), "f")


@dataclass(slots=True)
class _VOrder:
    """One venue order, normalised from ccxt's unified order."""

    id: str
    client_id: str | None
    symbol: str                  # ccxt unified symbol
    status: str                  # open, closed, canceled, expired, rejected
    filled: Decimal
    reason: str
    ts: int                      # open time, UTC epoch seconds
    side: str = "buy"
    amount: Decimal = _ZERO
    trade_ids: tuple[str, ...] = ()   # Kraken: the order's trades (``trades=true``)


@dataclass(slots=True)
class _VTrade:
    """One execution, normalised: ``amount`` in base units as booked, ``fee`` in quote."""

    id: str
    order_id: str
    amount: Decimal
    raw: Decimal                 # the venue's amount (before a base-currency fee)
    price: Decimal
    fee: Decimal
    maker: bool | None
    ts: int


@dataclass(eq=False)
class _Track:
    """What the adapter knows of one of the engine's orders."""

    order: Order
    vcid: str                                  # the venue's client order id
    txids: list[str] = field(default_factory=list)   # venue order ids, oldest first
    reported: OrderStatus = OrderStatus.SUBMITTED    # the last status told to the engine
    booked: Decimal = _ZERO                    # base units reported filled (engine quantity)
    raw: Decimal = _ZERO                       # the same, in the venue's trade amounts
    trade_ids: set[str] = field(default_factory=set)
    soft: bool = False                         # held by the adapter, nothing at the venue
    market: bool = False                       # sent as a market order (a held leg's exit)
    pending: bool = False                      # sent, outcome unknown: settle at next poll
    why: str = ""                              # why pending
    cancelled_by_us: bool = False              # a stop cancelled for its take-profit's sale
    resent: int = 0
    sent_ts: int = 0
    venue_filled: Decimal = _ZERO              # the venue's filled amount, all orders
    rebase: Decimal | None = None              # the engine's booked quantity to re-seed from
    unlinked: bool = False                     # adopted, its venue order not found yet


class CcxtBroker:
    """A ccxt venue (Kraken, or any ccxt exchange) behind the ``Broker`` port.

    Parameters
    ----------
    exchange : ccxt.Exchange
        A synchronous ccxt client with credentials
        (:func:`tradewarden.data.download.create_venue_client`).
    instruments : dict of str to Instrument
        The engine's specs per canonical symbol (``BTC-USD``).
    clock : Clock
        The only source of time (``now()``, ``wait_until()``).
    venue : str
        The venue's name (``kraken``, ``bitstamp``...): messages and the dialect.
    dialect : {"kraken", "generic"}, optional
        Kraken's specifics or ccxt's unified API only; default ``kraken`` for Kraken,
        ``generic`` otherwise.
    max_retries : int
        Retries of one call after a rate limit, a bad nonce, or (reads and cancels) a
        timeout or 5xx; waits ``Retry-After`` or 1, 2, 4 ... s through the clock.
    resend_grace : int
        Clock seconds between the two look-ups that must both miss before a protective
        leg or an exit whose submit got no answer is sent again.
    trade_margin : int
        Seconds before an order's submission from which its trades are read.
    rest_take_profit : bool
        Send the take-profit as a resting limit order (for a venue that does not hold
        funds for open orders); default False, see the module notes.

    Attributes
    ----------
    capabilities : BrokerCapabilities
        No native bracket or OCO; stop orders (at the venue, or held); client order ids;
        partial fills.
    notes : list of str
        What a person should know about this adapter on this venue (brackets, ids).
    alerts : list of str
        Problems met while trading (a poll that failed, a stop cancelled outside
        tradewarden); the caller drains it.

    Raises
    ------
    ValueError
        An unknown dialect, a negative ``max_retries`` / ``resend_grace``, or (Kraken) a
        secret that is not base64.
    """

    def __init__(self, exchange: Any, instruments: dict[str, Instrument], *, clock: Clock,
                 venue: str, dialect: str | None = None, max_retries: int = 4,
                 resend_grace: int = 2, trade_margin: int = 300,
                 rest_take_profit: bool = False) -> None:
        self.exchange = exchange
        self.instruments = dict(instruments)
        self.clock = clock
        self.venue = str(venue).strip().lower()
        self.dialect = dialect or ("kraken" if self.venue == "kraken" else "generic")
        if self.dialect not in ("kraken", "generic"):
            raise ValueError(f"dialect must be 'kraken' or 'generic', got {dialect!r}")
        if max_retries < 0 or resend_grace < 0:
            raise ValueError("max_retries and resend_grace must be >= 0")
        self.kraken = self.dialect == "kraken"
        if self.kraken and getattr(exchange, "secret", None):
            try:                  # ccxt would fail on the first private call, with no words
                base64.b64decode(exchange.secret, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("kraken: the API secret (TRADEWARDEN_VENUE__API_SECRET) is not "
                                 "base64 as Kraken issues it; paste the private key unchanged") from None
        self.max_retries = int(max_retries)
        self.resend_grace = int(resend_grace)
        self.trade_margin = int(trade_margin)
        self.rest_take_profit = bool(rest_take_profit)
        self.capabilities = BrokerCapabilities(native_bracket=False, native_oco=False,
                                               stop_orders=True, client_order_ids=True,
                                               partial_fills=True)
        self.alerts: list[str] = []
        self._tracks: dict[str, _Track] = {}
        self._by_vcid: dict[str, str] = {}
        self._adopted: dict[str, Order] = {}
        self._buckets: dict[str, list[OrderEvent]] = {}
        self._polled: tuple[int, int] | None = None
        self._specs: dict[str, Instrument] = {}
        self._fees: dict[str, tuple[Decimal, Decimal, str]] = {}
        self._stop_param = self._stop_parameter()
        self.notes = self._notes()

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def connect(cls, venue: str, *, api_key: str, api_secret: str, symbols: Iterable[str],
                clock: Clock, api_url: str | None = None, config: dict[str, Any] | None = None,
                **kwargs: Any) -> CcxtBroker:
        """Build the adapter for a venue from ``[venue] name`` / ``api_url`` and a key.

        Creates the ccxt client (:func:`tradewarden.data.download.create_venue_client`:
        rate limiter on, every API group at ``api_url`` when given, ``REQUESTS_CA_BUNDLE``
        honoured), loads the venue's markets, and takes the instruments of ``symbols``
        from them (:meth:`instruments_from_markets`).

        Parameters
        ----------
        venue : str
            ccxt id (``kraken``, ``bitstamp``...).
        api_key, api_secret : str
            The key (``TRADEWARDEN_VENUE__API_KEY`` / ``__API_SECRET``); never printed.
        symbols : iterable of str
            Canonical pairs to trade (``BTC-USD``).
        clock : Clock
        api_url : str, optional
            Another base URL for every API group (a loopback fake).
        config : dict, optional
            Extra ccxt options (``timeout`` ms, ``rateLimit`` ms).
        **kwargs
            Passed to the constructor (``max_retries``, ``resend_grace``...).

        Returns
        -------
        CcxtBroker
            With :attr:`instruments` from the venue's markets.

        Raises
        ------
        ValueError
            Not a ccxt venue, a bad ``api_url``, a missing key, a Kraken secret that is
            not base64, or a pair the venue lists no market for.
        VenueUnavailable, VenueError
            The markets could not be read.
        """
        if not api_key or not api_secret:
            raise ValueError(f"{venue}: live trading needs an API key and secret "
                             "(TRADEWARDEN_VENUE__API_KEY, TRADEWARDEN_VENUE__API_SECRET)")
        exchange = create_venue_client(venue, api_url=api_url,
                                       config={"apiKey": api_key, "secret": api_secret,
                                               **(config or {})})
        broker = cls(exchange, {}, clock=clock, venue=venue, **kwargs)
        broker.instruments = broker.instruments_from_markets(list(symbols))
        return broker

    def instruments_from_markets(self, symbols: list[str]) -> dict[str, Instrument]:
        """Return the venue's specs of ``symbols`` from ccxt's markets (increments, minimum
        size and notional; :func:`tradewarden.data.markets.instrument_from_market`).

        Raises
        ------
        ValueError
            A pair the venue lists no market for (the message names what it lists).
        VenueUnavailable, VenueError
            The markets could not be read.
        """
        self._load_markets()
        out = {}
        for s in symbols:
            try:
                unified = resolve_symbol(self.exchange.id, s, self.exchange.markets).unified
                out[s] = instrument_from_market(self.exchange.markets[unified], venue=self.exchange.id,
                                                read_on=iso(self.clock.now())[:10],
                                                precision_mode=self.exchange.precisionMode)
            except DataError as exc:
                raise ValueError(str(exc)) from None
        return out

    # -- identity, markets, rounding -------------------------------------------------------
    def venue_client_id(self, client_order_id: str) -> str:
        """Return the client order id sent to the venue for the engine's ``client_order_id``.

        ``uuid5(CLIENT_ID_NAMESPACE, client_order_id)``: the long UUID form for Kraken
        (its ``cl_ord_id`` takes a UUID or at most 18 characters of text), 32 hex digits
        for other venues. The same engine id always gives the same venue id.
        """
        u = uuid.uuid5(CLIENT_ID_NAMESPACE, client_order_id)
        vcid = str(u) if self.kraken else u.hex
        self._by_vcid[vcid] = client_order_id
        return vcid

    def _stop_parameter(self) -> str | None:
        if self.kraken:
            return "stopLossPrice"
        features = getattr(self.exchange, "features", None) or {}
        create = ((features.get("spot") or {}).get("createOrder") or {}) if isinstance(features, dict) else {}
        if create.get("stopLossPrice"):
            return "stopLossPrice"
        if create.get("triggerPrice"):
            return "triggerPrice"
        return None

    def _notes(self) -> list[str]:
        if self.kraken:
            return [
                ("kraken through ccxt: brackets are emulated. The stop-loss rests at Kraken as a "
                 "stop-loss order from the entry's fill; the take-profit is held by tradewarden and "
                 "sent as a market sell when a bar closes at or above it (Kraken holds the base "
                 "for every open sell order, so a resting take-profit would leave the stop "
                 "without funds). Kraken's conditional close is not used: it allows one close "
                 "order, never a stop and a target together."),
                ("kraken client order ids: the engine's ids as name-based UUIDs in cl_ord_id "
                 "(unique at Kraken among open orders only; a submit without an answer is looked "
                 "up before it is ever sent again)."),
            ]
        stop = ("rests at the venue as a stop order (ccxt " + self._stop_param + ")"
                if self._stop_param else
                "is held by tradewarden (this venue takes no stop orders through ccxt): it does "
                "not protect while tradewarden is down")
        return [(f"{self.venue} through the generic ccxt adapter: brackets are emulated (the "
                 f"engine sends the legs after the entry fills and cancels the other when one "
                 f"fills); the stop-loss {stop}; the take-profit is held by tradewarden and sent as "
                 f"a market sell when a bar closes at or above it. Client order ids, orders, trades "
                 f"and fees through ccxt's unified API; not tested against {self.venue} itself.")]

    def _load_markets(self) -> None:
        if not getattr(self.exchange, "markets", None):
            self._request(self.exchange.load_markets, "load markets", safe=True)

    def _unified(self, symbol: str) -> str:
        self._load_markets()
        return resolve_symbol(self.exchange.id, symbol, self.exchange.markets).unified

    def _canonical(self, unified: str) -> str | None:
        for s in self.instruments:
            try:
                if self._unified(s) == unified:
                    return s
            except (ValueError, DataError):      # a symbol the venue lists no market for
                continue
        return None

    def _spec(self, symbol: str) -> Instrument:
        """The venue's increments for ``symbol`` (ccxt market), else the engine's spec."""
        spec = self._specs.get(symbol)
        if spec is None:
            spec = self.instruments[symbol]
            try:
                market = self.exchange.market(self._unified(symbol))
                spec = instrument_from_market(market, venue=self.exchange.id,
                                              read_on=iso(self.clock.now())[:10],
                                              precision_mode=self.exchange.precisionMode)
            except Exception as exc:  # noqa: BLE001 - rounding falls back to the engine's spec
                self.alerts.append(f"{self.venue} {symbol}: market increments unavailable "
                                   f"({exc}); rounding to the engine's instrument")
            self._specs[symbol] = spec
        return spec

    # -- requests --------------------------------------------------------------------------
    def _words(self, exc: BaseException) -> str:
        """The venue's own words from a ccxt error (Kraken's error strings when present)."""
        text = str(exc)
        start = text.find("{")
        if start >= 0:
            try:
                body = json.loads(text[start:])
            except ValueError:
                body = None
            if isinstance(body, dict):
                errs = body.get("error")
                if isinstance(errs, list) and errs:
                    return "; ".join(str(e) for e in errs)
                for key in ("error", "message", "msg"):
                    if isinstance(body.get(key), str) and body[key]:
                        return body[key]
        prefix = f"{getattr(self.exchange, 'id', '')} "
        text = text.removeprefix(prefix)
        return (f"{type(exc).__name__}: {text}" if not text.startswith(("E", "{")) else text)[:300]

    def _retry_after(self) -> float | None:
        headers = getattr(self.exchange, "last_response_headers", None)
        if not headers:
            return None
        value = next((v for k, v in dict(headers).items() if str(k).lower() == "retry-after"), None)
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(str(value))
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - self.clock.now())

    def _wait(self, seconds: float) -> None:
        self.clock.wait_until(self.clock.now() + max(1, math.ceil(seconds)))

    def _request(self, fn: Callable[[], Any], what: str, *, safe: bool) -> Any:
        """Call ccxt: rate limits and bad nonces retried (not processed), timeouts and 5xx
        retried when ``safe`` (reads, cancels) else :class:`_Ambiguous`; other venue
        errors :class:`_Refused` with the venue's words."""
        ccxt = _ccxt()
        attempt = 0
        while True:
            self.exchange.last_response_headers = None
            try:
                return fn()
            except (ccxt.RateLimitExceeded, ccxt.DDoSProtection) as exc:
                words = self._words(exc)
                if attempt >= self.max_retries:
                    raise VenueUnavailable(self.venue, f"{what}: rate limited {attempt + 1} times "
                                           f"({words}); not sent") from None
                delay = retry_delay(attempt, self._retry_after())
            except ccxt.InvalidNonce as exc:
                if attempt >= self.max_retries:
                    raise VenueUnavailable(self.venue, f"{what}: {self._words(exc)}") from None
                delay = 0
            except ccxt.OnMaintenance as exc:        # cancel_only / post_only: a definite no
                raise _Refused(self.venue, self._words(exc), exc) from None
            except ccxt.NetworkError as exc:
                words = self._words(exc)
                if not safe:
                    raise _Ambiguous(self.venue, f"{what}: {words}") from None
                if attempt >= self.max_retries:
                    raise VenueUnavailable(self.venue, f"{what}: {words}") from None
                delay = retry_delay(attempt)
            except ccxt.ExchangeError as exc:
                words = self._words(exc)
                if not any(m in words.lower() for m in _SERVER_ERROR_MARKERS):
                    raise _Refused(self.venue, words, exc) from None
                if not safe:
                    raise _Ambiguous(self.venue, f"{what}: {words}") from None
                if attempt >= self.max_retries:
                    raise VenueUnavailable(self.venue, f"{what}: {words}") from None
                delay = retry_delay(attempt)
            if delay:
                self._wait(delay)
            attempt += 1

    # -- normalisation ---------------------------------------------------------------------
    def _norm_order(self, o: dict[str, Any]) -> _VOrder:
        info = o.get("info") or {}
        ts = o.get("timestamp")
        return _VOrder(str(o.get("id")), o.get("clientOrderId"), str(o.get("symbol") or ""),
                       str(o.get("status") or "open").lower(), _dec(o.get("filled")),
                       str(info.get("reason") or "") if isinstance(info, dict) else "",
                       int(ts // 1000) if ts else self.clock.now(), str(o.get("side") or "buy"),
                       _dec(o.get("amount")),
                       tuple(str(x.get("id")) for x in o.get("trades") or () if isinstance(x, dict)))

    def _norm_trade(self, tr: dict[str, Any]) -> _VTrade:
        amount, price = _dec(tr.get("amount")), _dec(tr.get("price"))
        fee = tr.get("fee") or {}
        cost, cur = _dec(fee.get("cost")), fee.get("currency")
        market = (getattr(self.exchange, "markets", None) or {}).get(tr.get("symbol")) or {}
        base, quote = market.get("base"), market.get("quote")
        booked, fee_q = amount, cost
        if cost and cur not in (None, quote):
            if cur == base:
                fee_q = cost * price                  # a base fee, priced at the fill
                if tr.get("side") == "buy":
                    booked = amount - cost            # what the account received
            else:
                fee_q = _ZERO
                self.alerts.append(f"{self.venue} trade {tr.get('id')}: fee {cost} {cur} is not "
                                   "in the pair's currencies; recorded as 0")
        ts = tr.get("timestamp")
        maker = tr.get("takerOrMaker")
        return _VTrade(str(tr.get("id")), str(tr.get("order")), booked, amount, price, fee_q,
                       None if maker is None else maker == "maker",
                       int(ts // 1000) if ts else self.clock.now())

    # -- venue reads -----------------------------------------------------------------------
    def _query(self, tracks: list[_Track]) -> dict[str, _VOrder]:
        ex, out = self.exchange, {}
        ids = [x for t in tracks for x in t.txids]
        if self.kraken:
            for i in range(0, len(ids), _QUERY_BATCH):
                chunk = ids[i:i + _QUERY_BATCH]
                for o in self._request(lambda c=chunk: ex.fetch_orders_by_ids(c), "query orders",
                                       safe=True):
                    v = self._norm_order(o)
                    out[v.id] = v
        else:
            for t in tracks:
                unified = self._unified(t.order.symbol)
                for x in t.txids:
                    v = self._norm_order(self._request(lambda x=x, u=unified: ex.fetch_order(x, u),
                                                       f"fetch order {x}", safe=True))
                    out[v.id] = v
        return out

    def _trades(self, vorders: list[_VOrder], since: int, symbols: set[str],
                known: set[str]) -> list[_VTrade]:
        """The trades of the venue orders ``vorders`` not in ``known``, oldest first.

        Kraken: the trade ids each order lists (``QueryOrders`` / ``ClosedOrders`` with
        ``trades=true``), read with ``QueryTrades`` (ccxt ``fetch_order_trades``), 20 at
        a time. Other venues: the account's trades of ``symbols`` since ``since`` (UTC
        seconds; ccxt ``fetch_my_trades``) that belong to these orders.
        """
        txids = {v.id for v in vorders}
        if not txids:
            return []
        ex, raw = self.exchange, []
        if self.kraken:
            ids = list(dict.fromkeys(x for v in vorders for x in v.trade_ids if x not in known))
            for i in range(0, len(ids), _QUERY_BATCH):
                batch = ids[i:i + _QUERY_BATCH]
                raw += self._request(lambda b=batch: ex.fetch_order_trades(b[0], None, None, None,
                                                                           {"trades": b}),
                                     "read trades", safe=True)
        else:
            since_ms = max(0, since) * 1000
            for s in sorted(symbols):
                unified = self._unified(s)
                raw += self._request(lambda u=unified: ex.fetch_my_trades(u, since_ms),
                                     f"read {s} trades", safe=True)
        seen, out = set(), []
        for tr in raw:
            tid = str(tr.get("id"))
            if str(tr.get("order")) in txids and tid not in seen and tid not in known:
                seen.add(tid)
                out.append(self._norm_trade(tr))
        out.sort(key=lambda v: (v.ts, v.id))
        return out

    def _find(self, vcid: str, symbol: str | None) -> list[_VOrder]:
        """Every venue order carrying the client order id ``vcid``, oldest first."""
        ex = self.exchange
        found: dict[str, _VOrder] = {}
        if self.kraken:
            params = {"clientOrderId": vcid, "trades": True}
            rows = (self._request(lambda: ex.fetch_open_orders(None, None, None, params),
                                  "look up open orders", safe=True)
                    + self._request(lambda: ex.fetch_closed_orders(None, None, None, params),
                                    "look up closed orders", safe=True))
        else:
            rows = []
            for s in ([symbol] if symbol else list(self.instruments)):
                unified = self._unified(s)
                rows += self._request(lambda u=unified: ex.fetch_open_orders(u), "look up open orders",
                                      safe=True)
                if ex.has.get("fetchClosedOrders"):
                    rows += self._request(lambda u=unified: ex.fetch_closed_orders(u),
                                          "look up closed orders", safe=True)
        for o in rows:
            if o.get("clientOrderId") == vcid:
                v = self._norm_order(o)
                found[v.id] = v
        return sorted(found.values(), key=lambda v: (v.ts, v.id))

    # -- events ----------------------------------------------------------------------------
    def _emit(self, t: _Track, kind: OrderEventKind, ts: int, reason: str = "",
              fill: Fill | None = None) -> list[OrderEvent]:
        new = STATUS_AFTER[kind]
        if new is not t.reported and new not in TRANSITIONS[t.reported]:
            self.alerts.append(f"{t.order.client_order_id}: {t.reported.value} -> {new.value} "
                               f"({kind.value}) is not a lifecycle step; not reported")
            return []
        t.reported = new
        return [OrderEvent(t.order, kind, ts, reason, fill)]

    def _fill_of(self, t: _Track, tr: _VTrade) -> Fill:
        o = t.order
        ref = o.price if o.type is OrderType.LIMIT else o.stop_price if o.type is OrderType.STOP else None
        maker = tr.maker if tr.maker is not None else (o.type is OrderType.LIMIT and not t.market)
        return Fill(o.client_order_id, o.symbol, o.side, tr.amount, tr.price, tr.fee,
                    "maker" if maker else "taker", tr.ts, ref if ref is not None else tr.price, o.role)

    def _attach(self, t: _Track, txid: str) -> None:
        if txid and txid not in t.txids:
            t.txids.append(txid)

    def _update(self, t: _Track, vorders: list[_VOrder], trades: list[_VTrade],
                *, end: bool = True) -> list[OrderEvent]:
        """The events that bring the engine's view of ``t`` to the venue's: the
        acknowledgement, ``working``, each new fill (by trade id), then the end."""
        now = self.clock.now()
        for v in vorders:
            self._attach(t, v.id)
        mine = {v.id: v for v in vorders if v.id in t.txids}
        cur = mine.get(t.txids[-1]) if t.txids else None
        out: list[OrderEvent] = []
        if cur is None:
            return out
        t.venue_filled = sum((v.filled for v in mine.values()), _ZERO)
        if t.reported is OrderStatus.SUBMITTED:
            out += self._emit(t, K.ACCEPTED, now)
        if t.rebase is not None:
            trades = self._reseed(t, [tr for tr in trades if tr.order_id in t.txids])
        new = [tr for tr in trades if tr.order_id in t.txids and tr.id not in t.trade_ids]
        if (cur.status == "open" and not new and t.order.type is not OrderType.MARKET
                and not t.market and t.reported is OrderStatus.ACCEPTED):
            out += self._emit(t, K.WORKING, now)
        for i, tr in enumerate(new):
            t.trade_ids.add(tr.id)
            t.booked += tr.amount
            t.raw += tr.raw
            if (t.order.type is OrderType.STOP and not t.market
                    and t.reported in (OrderStatus.ACCEPTED, OrderStatus.WORKING)):
                out += self._emit(t, K.TRIGGERED, tr.ts)
            last = t.booked >= t.order.quantity or (
                i == len(new) - 1 and cur.status == "closed" and t.raw >= t.venue_filled)
            out += self._emit(t, K.FILLED if last else K.PARTIALLY_FILLED, tr.ts,
                              fill=self._fill_of(t, tr))
        kind = _ENDED.get(cur.status)
        if (end and kind is not None and t.reported.is_open and not t.cancelled_by_us
                and t.raw >= t.venue_filled):
            why = cur.reason or ("cancelled at the venue" if kind is K.CANCELLED else kind.value)
            out += self._emit(t, kind, now, f"{self.venue}: {why}")
        return out

    @staticmethod
    def _reseed(t: _Track, trades: list[_VTrade]) -> list[_VTrade]:
        """Count ``t``'s earliest trades adding up to what the engine booked
        (``t.rebase``) as reported; a trade booked in part comes back as its rest (fee
        pro rata). Returns the trades to consider."""
        booked, cum, out = t.rebase or _ZERO, _ZERO, []
        t.trade_ids, t.booked, t.raw, t.rebase = set(), _ZERO, _ZERO, None
        for tr in trades:
            if cum + tr.amount <= booked:
                t.trade_ids.add(tr.id)
                t.booked += tr.amount
                t.raw += tr.raw
            elif cum < booked:
                rest = cum + tr.amount - booked
                share = rest / tr.amount
                t.booked += tr.amount - rest
                t.raw += tr.raw - tr.raw * share
                out.append(_VTrade(tr.id, tr.order_id, rest, tr.raw * share, tr.price,
                                   tr.fee * share, tr.maker, tr.ts))
            else:
                out.append(tr)
            cum += tr.amount
        return out

    def _sync(self, tracks: list[_Track], *, end: bool = True) -> list[OrderEvent]:
        """Read the venue's state of ``tracks`` (orders, then trades) and return their events."""
        tracks = [t for t in tracks if t.txids]
        if not tracks:
            return []
        vorders = self._query(tracks)
        since = min(t.sent_ts for t in tracks) - self.trade_margin
        known = set() if any(t.rebase is not None for t in tracks) else \
            {x for t in tracks for x in t.trade_ids}
        trades = self._trades(list(vorders.values()), since, {t.order.symbol for t in tracks}, known)
        out: list[OrderEvent] = []
        for t in tracks:
            out += self._update(t, [vorders[x] for x in t.txids if x in vorders], trades, end=end)
        return out

    # -- the port: commands ----------------------------------------------------------------
    def _check(self, order: Order, legs: tuple[Order, ...]) -> None:
        cid = order.client_order_id
        if legs:
            raise ValueError(f"order {cid}: {self.venue} has no native brackets here; the engine "
                             "submits the legs once the entry has filled")
        if cid in self._tracks:
            raise ValueError(f"duplicate client order id {cid!r}")
        if order.symbol not in self.instruments:
            raise ValueError(f"unknown symbol {order.symbol!r}")
        if order.quantity <= 0:
            raise ValueError(f"order {cid}: quantity must be positive")
        if order.type is OrderType.LIMIT and order.price is None:
            raise ValueError(f"order {cid}: limit order needs a price")
        if order.type is OrderType.STOP and order.stop_price is None:
            raise ValueError(f"order {cid}: stop order needs a stop price")

    def submit(self, order: Order, legs: tuple[Order, ...] = ()) -> list[OrderEvent]:
        """Send ``order`` to the venue (or hold it, for an emulated take-profit).

        Parameters
        ----------
        order : Order
            Market, limit or stop order; its ``client_order_id`` becomes the venue's
            client order id (:meth:`venue_client_id`).
        legs : tuple of Order
            Must be empty: the engine emulates brackets on this venue.

        Returns
        -------
        list of OrderEvent
            ``accepted``, then ``working`` for a resting order or the fills of one that
            filled at once (market orders usually: ``filled`` with the venue's trades);
            ``rejected`` with the venue's words; ``working`` alone for a held
            take-profit (or stop on a venue without stops); nothing when the venue did
            not answer and does not show the order yet (settled by :meth:`process`).

        Raises
        ------
        ValueError
            Legs given, a duplicate client order id, an unknown symbol, a non-positive
            quantity (or one below the venue's increment), a limit without price or a
            stop without stop price. Nothing is sent.
        VenueUnavailable
            The venue's markets could not be read (nothing is sent).
        """
        t = self._tracks.get(order.client_order_id)
        if t is not None and t.pending and not legs:   # the engine looked it up, found nothing
            t.order, t.pending = order, False
            return self._place(t)
        self._check(order, legs)
        spec = self._spec(order.symbol)
        if spec.round_quantity(order.quantity) <= 0:
            raise ValueError(f"order {order.client_order_id}: quantity {order.quantity} is below "
                             f"{self.venue}'s increment {spec.quantity_increment}")
        t = _Track(order, self.venue_client_id(order.client_order_id), sent_ts=self.clock.now())
        self._tracks[order.client_order_id] = t
        if self._held(order):
            t.soft = True
            return self._emit(t, K.WORKING, self.clock.now(),
                              _HELD_TP if order.role is OrderRole.TAKE_PROFIT else _HELD_SL)
        return self._place(t)

    def _held(self, order: Order) -> bool:
        if order.parent_id is None:
            return False
        if order.role is OrderRole.TAKE_PROFIT:
            return not self.rest_take_profit
        return order.role is OrderRole.STOP_LOSS and self._stop_param is None

    def _create_args(self, t: _Track) -> tuple[tuple[Any, ...], dict[str, Any]]:
        o, spec = t.order, self._spec(t.order.symbol)
        side = o.side.value
        qty = float(spec.round_quantity(o.quantity))
        params: dict[str, Any] = {"clientOrderId": t.vcid}
        if self.kraken:
            params["oflags"] = "fciq"
        unified = self._unified(o.symbol)
        if t.market or o.type is OrderType.MARKET:
            return (unified, "market", side, qty, None), params
        if o.type is OrderType.LIMIT:           # never asks or bids beyond the level
            return (unified, "limit", side, qty, float(spec.floor_price(o.price))), params
        px = spec.ceil_price(o.stop_price) if o.side is Side.SELL else spec.floor_price(o.stop_price)
        params[self._stop_param or "stopLossPrice"] = float(px)
        return (unified, "market", side, qty, None), params

    def _place(self, t: _Track) -> list[OrderEvent]:
        """Send ``t``'s order once; on no answer, look it up before anything else."""
        now = self.clock.now()
        t.sent_ts = now
        cid = t.order.client_order_id
        try:
            args, params = self._create_args(t)
            res = self._request(lambda: self.exchange.create_order(*args, params), f"submit {cid}",
                                safe=False)
        except _Refused as exc:
            return self._emit(t, K.REJECTED, now, str(exc))
        except VenueUnavailable as exc:          # no answer, or rate limited throughout
            return self._after_no_answer(t, str(exc))
        self._attach(t, str(res.get("id") or ""))
        out = self._emit(t, K.ACCEPTED, now) if t.reported is OrderStatus.SUBMITTED else []
        try:
            out += self._sync([t])
        except VenueError as exc:                 # reported by the next poll
            self.alerts.append(f"{cid}: placed, state not read yet ({exc})")
        return out

    def _after_no_answer(self, t: _Track, why: str) -> list[OrderEvent]:
        """Look the order up by its client order id; send again only what the venue
        does not have (protective legs and exits after a second look); else settle
        at the next poll."""
        cid = t.order.client_order_id
        self.alerts.append(f"{cid}: {why}; looked up by client order id before any resend")
        try:
            found = self._find(t.vcid, t.order.symbol)
            if not found and t.order.role is not OrderRole.ENTRY and t.resent == 0:
                self.clock.wait_until(self.clock.now() + self.resend_grace)
                found = self._find(t.vcid, t.order.symbol)
                if not found:
                    t.resent += 1
                    return self._place(t)
        except VenueError as exc:
            found = []
            why = f"{why}; look-up failed: {exc}"
        if not found:
            t.pending, t.why = True, why
            return []
        return self._settle(t, found)

    def _settle(self, t: _Track, found: list[_VOrder]) -> list[OrderEvent]:
        for v in found:
            self._attach(t, v.id)
        t.pending = False
        return self._sync([t])

    def _resolve_pending(self, t: _Track) -> list[OrderEvent]:
        found = self._find(t.vcid, t.order.symbol)
        if found:
            return self._settle(t, found)
        t.pending = False
        if t.market and t.order.role is not OrderRole.EXIT:     # a held leg's sale never arrived
            t.market, t.soft = False, True
            return self._restore_stop(t)
        if t.order.role is OrderRole.ENTRY:
            return self._emit(t, K.REJECTED, self.clock.now(),
                              f"never received by {self.venue} ({t.why}); a market entry decided "
                              "on an earlier bar is not sent late")
        return self._place(t)

    def cancel(self, client_order_id: str, ts: int, reason: str) -> list[OrderEvent]:
        """Cancel one open order at the venue (or drop a held leg).

        Returns
        -------
        list of OrderEvent
            ``cancelled`` (stamped ``ts``, with ``reason``); nothing for an unknown or
            finished order, or one that filled before the cancel (its fills come from
            :meth:`process`, followed by its end).
        """
        t = self._tracks.get(client_order_id)
        if t is None or not t.reported.is_open:
            return []
        if t.soft or t.cancelled_by_us:
            t.soft = False
            return self._emit(t, K.CANCELLED, ts, reason)
        if t.pending:
            try:
                found = self._find(t.vcid, t.order.symbol)
            except VenueError as exc:     # cannot tell: left to the next poll
                self.alerts.append(f"{client_order_id}: cancel not sent ({exc})")
                return []
            t.pending = False
            if not found:                 # never received: nothing to cancel, never resent
                return self._emit(t, K.CANCELLED, ts, reason)
            for v in found:
                self._attach(t, v.id)
        if not self._cancel_at_venue(t):
            return []
        try:
            events = self._sync([t], end=False)
        except VenueError as exc:
            self.alerts.append(f"{client_order_id}: cancelled, fills not read ({exc})")
            events = []
        if any(e.fill is not None for e in events):   # fills first, then the end: process()
            self._buckets.setdefault(t.order.symbol, []).extend(
                events + self._emit(t, K.CANCELLED, ts, reason))
            return []
        return events + self._emit(t, K.CANCELLED, ts, reason)

    def _cancel_at_venue(self, t: _Track) -> bool:
        """Cancel ``t``'s current venue order; ``False`` when the venue no longer has it open."""
        ex = self.exchange
        unified = self._unified(t.order.symbol)
        txid = t.txids[-1] if t.txids else None
        params = {} if txid else {"clientOrderId": t.vcid}
        try:
            self._request(lambda: ex.cancel_order(txid, unified, params),
                          f"cancel {t.order.client_order_id}", safe=True)
        except _Refused as exc:
            if not isinstance(exc.cause, _ccxt().OrderNotFound) and "Unknown order" not in str(exc):
                self.alerts.append(f"{t.order.client_order_id}: cancel refused: {exc}")
            return False
        except VenueUnavailable as exc:
            self.alerts.append(f"{t.order.client_order_id}: cancel not confirmed: {exc}")
            return False
        return True

    def cancel_all(self, symbol: str, ts: int, reason: str) -> list[OrderEvent]:
        """Cancel every open order of ``symbol`` sent through this adapter (held legs
        included); orders placed outside tradewarden are left alone."""
        out: list[OrderEvent] = []
        for cid, t in list(self._tracks.items()):
            if t.order.symbol == symbol and t.reported.is_open:
                out += self.cancel(cid, ts, reason)
        return out

    def close_position(self, order: Order, reference_price: Decimal, ts: int) -> list[OrderEvent]:
        """Sell (or buy) ``order``'s quantity at market now; the venue decides the price.

        ``reference_price`` (the engine's last close) is not sent: a real venue fills at
        its market. Returns the events of :meth:`submit` (the fills when the venue filled
        it at once).

        Raises
        ------
        ValueError
            ``order`` is not a market order, or as :meth:`submit`.
        """
        if order.type is not OrderType.MARKET:
            raise ValueError(f"order {order.client_order_id}: close_position takes a market order, "
                             f"got {order.type.value}")
        return self.submit(order)

    def open_orders(self, symbol: str) -> list[Order]:
        """Return the open orders of ``symbol`` sent through this adapter, in submission order."""
        return [t.order for t in self._tracks.values()
                if t.order.symbol == symbol and t.reported.is_open]

    # -- the port: what happened -----------------------------------------------------------
    def process(self, bar: Bar) -> list[OrderEvent]:
        """Return what happened to ``bar.symbol``'s orders since the last call.

        Reads the venue once per bar time (all symbols' tracked orders and trades;
        events of other symbols wait for their own bar), settles orders whose submit got
        no answer, then checks the held legs against ``bar`` (a take-profit: close at or
        above its price; a held stop: low at or below it) and sells at market those
        reached. A venue that cannot be read leaves the events for the next call and
        adds an alert.
        """
        key = (bar.ts, self.clock.now())
        if key != self._polled:
            self._polled = key
            self._poll()
        out = self._buckets.pop(bar.symbol, [])
        out += self._check_held(bar)
        return out

    def _poll(self) -> None:
        try:
            for t in [t for t in self._tracks.values() if t.pending]:
                self._bucket(t, self._resolve_pending(t))
            for t in [t for t in self._tracks.values() if t.unlinked]:
                found = self._find(t.vcid, t.order.symbol)
                if found:
                    t.unlinked = False
                    t.sent_ts = min(v.ts for v in found)
                    for v in found:
                        self._attach(t, v.id)
            live = [t for t in self._tracks.values()
                    if t.txids and not t.soft and not t.pending and t.reported.is_open]
            for e in self._sync(live):
                self._buckets.setdefault(e.order.symbol, []).append(e)
        except VenueError as exc:
            self.alerts.append(f"{self.venue}: poll failed ({exc}); retried at the next bar")

    def _bucket(self, t: _Track, events: list[OrderEvent]) -> None:
        if events:
            self._buckets.setdefault(t.order.symbol, []).extend(events)

    def _sibling(self, t: _Track) -> _Track | None:
        """The open other leg of ``t``'s bracket (same entry, other role), if any."""
        for u in self._tracks.values():
            if (u is not t and u.order.parent_id is not None
                    and u.order.parent_id == t.order.parent_id and u.reported.is_open
                    and u.order.role is not t.order.role):
                return u
        return None

    def _check_held(self, bar: Bar) -> list[OrderEvent]:
        out: list[OrderEvent] = []
        for t in list(self._tracks.values()):
            if not (t.soft and t.order.symbol == bar.symbol and t.reported.is_open):
                continue
            sib = self._sibling(t)
            if sib is not None and sib.reported not in (OrderStatus.ACCEPTED, OrderStatus.WORKING):
                continue              # the other leg is filling: the engine ends this one
            o = t.order
            if o.role is OrderRole.TAKE_PROFIT and Decimal(repr(bar.close)) >= o.price:
                out += self._sell_held(t, sib, f"close {bar.close} reached the take-profit {o.price}")
            elif o.role is OrderRole.STOP_LOSS and Decimal(repr(bar.low)) <= o.stop_price:
                out += self._sell_held(t, sib, f"low {bar.low} reached the stop {o.stop_price}")
        return out

    def _sell_held(self, t: _Track, sib: _Track | None, why: str) -> list[OrderEvent]:
        """Sell a held leg at market: first cancel the resting sibling (it holds the base)."""
        out: list[OrderEvent] = []
        if sib is not None and sib.txids and not sib.soft and sib.reported.is_open:
            if not self._cancel_at_venue(sib):
                return []             # the stop is gone (filled): its fill is coming
            sib.cancelled_by_us = True
            try:
                out += self._sync([sib], end=False)
            except VenueError as exc:
                self.alerts.append(f"{sib.order.client_order_id}: fills not read ({exc})")
        t.soft, t.market = False, True
        self.alerts.append(f"{t.order.client_order_id}: {why}; selling at market")
        placed = self._place(t)
        out += placed
        if t.reported is OrderStatus.REJECTED:           # the sale was refused: protect again
            out += self._restore_stop(t)
        return out

    def _restore_stop(self, t: _Track) -> list[OrderEvent]:
        """Send the stop cancelled for ``t``'s sale again (the same client order id: the
        venue's id is unique among open orders only)."""
        sib = self._sibling(t)
        if sib is None or not sib.cancelled_by_us:
            return []
        sib.cancelled_by_us = False
        self.alerts.append(f"{sib.order.client_order_id}: sent again (the take-profit's sale "
                           "did not happen)")
        return self._place(sib)

    def lookup(self, client_order_id: str) -> VenueOrder | None:
        """Return what the venue knows of an order, found by its client order id.

        Works before :meth:`adopt` (after a restart the engine looks its orders up
        first): every venue order under the id counts (a stop sent again after a
        take-profit's sale fell through has two): filled is their sum, fills are their
        trades, the status is the open one's, else the latest's. A leg the adapter holds,
        or a take-profit (the engine's naming ``...-take_profit`` of an entry) that is not
        at the venue, is ``working``: the adapter holds it again once adopted; unless its
        stop-loss filled at the venue (while no process was running, or before the fill
        was recorded): then it is ``cancelled``, the OCO's (reason ``oco: ...``). A stop
        this adapter cancelled for its take-profit's sale still in flight is reported as
        the engine knows it. A stop-loss the venue shows cancelled without a fill is
        the OCO's cancel (reason ``oco: ...``) when its take-profit was sold at the venue
        (a restart after the sale, before it was recorded); otherwise it was cancelled
        outside this process and :attr:`alerts` gets a line (the position has no stop).
        The answer is taken as applied by the engine: later :meth:`process` calls report
        only what changes after it.

        Returns
        -------
        VenueOrder or None
            ``None`` when the venue has no order under the id (never received).

        Raises
        ------
        VenueUnavailable
            The venue did not answer after retries.
        VenueError
            The venue refused the look-up (its words).
        """
        t = self._tracks.get(client_order_id)
        if t is not None and (t.soft or t.cancelled_by_us):
            return VenueOrder(client_order_id, t.reported if t.cancelled_by_us else OrderStatus.WORKING,
                              t.booked)
        order = t.order if t is not None else self._adopted.get(client_order_id)
        vcid = self.venue_client_id(client_order_id)
        found = self._find(vcid, order.symbol if order is not None else None)
        if not found:
            held = order.role is OrderRole.TAKE_PROFIT if order is not None else \
                client_order_id.endswith(f"-{OrderRole.TAKE_PROFIT.value}")
            if held and not self.rest_take_profit and (order is None or order.status in (
                    OrderStatus.ACCEPTED, OrderStatus.WORKING)):
                stop = self._stop_loss_filled(client_order_id,
                                              order.symbol if order is not None else None)
                if stop is not None:      # the position went while we were away: the OCO
                    return VenueOrder(client_order_id, OrderStatus.CANCELLED, _ZERO, (),
                                      f"oco: its stop-loss {stop} filled at {self.venue}; the "
                                      "take-profit held by tradewarden is dropped")
                return VenueOrder(client_order_id, OrderStatus.WORKING, _ZERO)
            return None
        if order is None:
            order = self._order_from(client_order_id, found[-1])
        t = self._tracks.get(client_order_id) or _Track(order, vcid)
        self._tracks[client_order_id] = t
        t.soft = t.pending = t.unlinked = False
        for v in found:
            self._attach(t, v.id)
        t.sent_ts = min(v.ts for v in found)
        trades = self._trades(found, t.sent_ts - self.trade_margin, {order.symbol}, set())
        fills = tuple(self._fill_of(t, tr) for tr in trades)
        t.trade_ids, t.rebase = {tr.id for tr in trades}, None
        t.booked = sum((f.quantity for f in fills), _ZERO)
        t.raw = sum((tr.raw for tr in trades), _ZERO)
        cur = next((v for v in reversed(found) if v.status == "open"), found[-1])
        filled = sum((v.filled for v in found), _ZERO)
        t.venue_filled = filled
        reason = ""
        if cur.status == "open":
            status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.WORKING
        elif cur.status == "closed":
            status = OrderStatus.FILLED
        else:
            status = STATUS_AFTER[_ENDED.get(cur.status, K.CANCELLED)]
            reason = f"{self.venue}: {cur.reason or cur.status}"
            sold = (self._take_profit_sold(client_order_id, order.symbol)
                    if order.role is OrderRole.STOP_LOSS and filled == 0 else None)
            if sold is not None:         # cancelled by this adapter for the sale: the OCO
                reason = (f"oco: cancelled at {self.venue} for the take-profit's sale ({sold}); "
                          f"{reason}")
            elif order.role is OrderRole.STOP_LOSS and filled == 0:
                reason += (" (cancelled outside this process: a take-profit's sale interrupted "
                           "by a restart, or by hand); the position has no stop-loss at "
                           f"{self.venue}")
                self.alerts.append(f"{client_order_id}: {reason}")
        t.reported = status if t.raw >= filled else OrderStatus.ACCEPTED
        return VenueOrder(client_order_id, status, filled, fills, reason)

    def _take_profit_sold(self, stop_id: str, symbol: str) -> str | None:
        """The client order id of the take-profit paired with the stop-loss ``stop_id``
        (the engine's naming: ``...-stop_loss`` -> ``...-take_profit``) when the venue
        shows it sold (an order under its id with a fill: this adapter's market sale of a
        held take-profit, or a resting one that filled), else ``None``."""
        if f"-{OrderRole.STOP_LOSS.value}" not in stop_id:
            return None
        tp = stop_id.replace(f"-{OrderRole.STOP_LOSS.value}", f"-{OrderRole.TAKE_PROFIT.value}")
        found = self._find(self.venue_client_id(tp), symbol)
        return tp if any(v.filled > 0 for v in found) else None

    def _stop_loss_filled(self, tp_id: str, symbol: str | None) -> str | None:
        """The client order id of the stop-loss paired with the take-profit ``tp_id``
        (the engine's naming) when the venue shows it filled and done, else ``None``."""
        if f"-{OrderRole.TAKE_PROFIT.value}" not in tp_id:
            return None
        stop = tp_id.replace(f"-{OrderRole.TAKE_PROFIT.value}", f"-{OrderRole.STOP_LOSS.value}")
        found = self._find(self.venue_client_id(stop), symbol)
        return stop if any(v.status == "closed" and v.filled > 0 for v in found) else None

    def _order_from(self, cid: str, v: _VOrder) -> Order:
        """A stand-in for an order the engine has not handed over yet (a look-up before
        :meth:`adopt`): its role from the engine's naming, the rest from the venue."""
        role = next((r for r in OrderRole if cid.endswith(f"-{r.value}")), OrderRole.ENTRY)
        symbol = self._canonical(v.symbol) or v.symbol
        side = Side.SELL if v.side == "sell" else Side.BUY
        return Order(cid, symbol, side, OrderType.MARKET, v.amount or v.filled, role, v.ts)

    def account(self, symbols: list[str]) -> VenueAccount:
        """Return the venue's balances, positions and open orders for ``symbols``.

        Positions are the base currency's total balance per symbol (a spot account holds
        coins, not positions); open orders are the engine's client order ids of the
        orders open at the venue (an order without a known id, made outside tradewarden,
        as ``<venue>:<order id>``), plus the legs this adapter holds (and a stop it
        cancelled for a take-profit's sale still in flight); balances are the venue's
        totals per currency (quote currency included).

        Raises
        ------
        VenueUnavailable, VenueError
            The venue did not answer, or refused (its words).
        """
        ex = self.exchange
        self._load_markets()
        bal = self._request(ex.fetch_balance, "read balances", safe=True)
        totals = {str(c): _dec(v) for c, v in (bal.get("total") or {}).items() if v is not None}
        unified = {s: self._unified(s) for s in symbols}
        positions = {s: totals.get(ex.markets[u]["base"], _ZERO) for s, u in unified.items()}
        if self.kraken:
            rows = self._request(lambda: ex.fetch_open_orders(), "read open orders", safe=True)
        else:
            rows = []
            for u in unified.values():
                rows += self._request(lambda u=u: ex.fetch_open_orders(u), "read open orders", safe=True)
        wanted = set(unified.values())
        ids: list[str] = []
        for o in rows:
            if o.get("symbol") not in wanted:
                continue
            vcid = o.get("clientOrderId")
            ids.append(self._by_vcid.get(vcid) or vcid or f"{self.venue}:{o.get('id')}")
        ids += [c for c, t in self._tracks.items() if (t.soft or t.cancelled_by_us)
                and t.order.symbol in symbols and t.reported.is_open and c not in ids]
        return VenueAccount(positions, tuple(ids), totals)

    def adopt(self, orders: dict[str, Order], filled: dict[str, Decimal] | None = None) -> None:
        """Follow exactly the engine's open orders, with what it booked on each.

        Called by the engine after every reconciliation (``Broker.account`` notes): its
        Order objects replace this adapter's (after a restart they are new objects), and
        the earliest fills of each order adding up to ``filled[id]`` base units count as
        reported (re-seeded at the next poll when they differ from what this adapter
        reported), so :meth:`process` reports only later ones. A take-profit not at the
        venue is held again; another order this adapter has not seen is found by its
        client order id at the next poll. Orders the engine no longer holds open are no
        longer followed.

        Parameters
        ----------
        orders : dict of str to Order
            The engine's open orders by client order id (legs it still holds excluded).
        filled : dict of str to Decimal, optional
            Base units booked per client order id (default 0).
        """
        booked = filled or {}
        self._adopted = dict(orders)
        for cid in [c for c in self._tracks if c not in orders]:
            del self._tracks[cid]
        for cid, o in orders.items():
            vcid = self.venue_client_id(cid)
            t = self._tracks.get(cid)
            if t is None:
                t = self._tracks[cid] = _Track(o, vcid, sent_ts=o.created_ts)
                if o.status is OrderStatus.SUBMITTED:
                    t.pending, t.why = True, "handed over unacknowledged after a restart"
                elif self._held(o):
                    t.soft = True
                else:
                    t.unlinked = True
            t.order, t.reported = o, o.status
            want = booked.get(cid, _ZERO)
            if want != t.booked:
                t.rebase = want

    # -- fees and pre-flight ---------------------------------------------------------------
    def fee_rates(self, symbol: str) -> tuple[Decimal, Decimal]:
        """Return ``(maker, taker)`` fee rates of ``symbol`` for this account, fractions of
        notional (``Decimal('0.0025')`` = 0.25 % = 25 bps).

        Kraken: ``TradeVolume`` with the pair (``fetch_trading_fee``): the account's tier.
        Other venues: ``fetch_trading_fee(s)`` when ccxt has it, else the market's
        published rates (:meth:`fee_source` says which).

        Raises
        ------
        VenueUnavailable, VenueError
            The venue did not answer, or refused.
        """
        if symbol not in self._fees:
            ex = self.exchange
            unified = self._unified(symbol)
            if ex.has.get("fetchTradingFee"):
                f = self._request(lambda: ex.fetch_trading_fee(unified), f"{symbol} fees", safe=True)
                source = ("Kraken TradeVolume: this account's tier" if self.kraken
                          else "ccxt fetch_trading_fee: this account's rates")
            elif ex.has.get("fetchTradingFees"):
                f = self._request(ex.fetch_trading_fees, "fees", safe=True)[unified]
                source = "ccxt fetch_trading_fees: this account's rates"
            else:
                f = ex.markets[unified]
                source = "the venue's published market rates (not necessarily this account's tier)"
            self._fees[symbol] = (_dec(f.get("maker")), _dec(f.get("taker")), source)
        maker, taker, _ = self._fees[symbol]
        return maker, taker

    def fee_source(self, symbol: str) -> str:
        """Where :meth:`fee_rates` of ``symbol`` came from (one phrase)."""
        self.fee_rates(symbol)
        return self._fees[symbol][2]

    def preflight(self) -> Preflight:
        """Check the account with calls that place nothing, before anything is traded.

        Balances (``fetch_balance``: the key can view). Kraken: the key's permissions
        (``GetApiKeyInfo``: ``modify-trades`` to trade, ``withdraw-funds`` must be
        absent) and a validate-only order (``AddOrder`` with ``validate=true``: Kraken
        checks it and places nothing) of the first symbol's minimum size. Other venues:
        ccxt has no unified call for a key's permissions; the notes say what was not
        checked. Fees of every symbol are in the notes.

        Returns
        -------
        Preflight
            ``problems()`` says why the key must not trade.

        Raises
        ------
        VenuePermissionError
            The balances cannot be read (the key lacks view permission).
        VenueUnavailable
            The venue did not answer.
        """
        ex = self.exchange
        notes = list(self.notes)
        self._load_markets()
        try:
            bal = self._request(ex.fetch_balance, "read balances", safe=True)
        except _Refused as exc:
            raise VenuePermissionError(self.venue, f"cannot read balances ({exc}): the key needs "
                                       "view permission (Kraken: Query Funds)") from None
        balances = {str(c): _dec(v) for c, v in (bal.get("total") or {}).items() if v}
        account, can_trade, can_withdraw = f"{self.venue} account", True, False
        if self.kraken:
            try:
                info = self._request(ex.privatePostGetApiKeyInfo, "GetApiKeyInfo", safe=True)
                info = info.get("result") or {}
                perms = sorted(str(p) for p in info.get("permissions") or [])
                account = f"kraken API key {info.get('apiKeyName')!r}"
                can_trade = "modify-trades" in perms
                can_withdraw = "withdraw-funds" in perms
                notes.append(f"kraken key permissions (GetApiKeyInfo): {', '.join(perms) or 'none'}")
                if not info.get("ipAllowlist"):
                    notes.append("kraken: this key has no IP allow-list; Kraken can restrict a key "
                                 "to the addresses tradewarden runs from")
            except _Refused as exc:
                notes.append(f"kraken did not report the key's permissions (GetApiKeyInfo: {exc}); "
                             "whether it can withdraw was not checked: give it no Withdraw Funds "
                             "permission")
            symbol = next(iter(self.instruments), None)
            if symbol is not None:
                spec = self._spec(symbol)
                qty = max(spec.min_quantity or spec.quantity_increment, spec.quantity_increment)
                try:
                    self._request(lambda: ex.create_order(self._unified(symbol), "market", "buy",
                                                          float(qty), None,
                                                          {"validate": True, "oflags": "fciq"}),
                                  "validate-only order", safe=True)
                    notes.append(f"kraken accepted a validate-only {symbol} market buy of {qty} "
                                 "(nothing placed): the key can create orders")
                except _Refused as exc:
                    if "Permission denied" in str(exc):
                        can_trade = False
                    notes.append(f"kraken refused a validate-only {symbol} order: {exc}")
        else:
            notes.append(f"{self.venue}: the key's trade and withdrawal permissions cannot be read "
                         "through ccxt's unified API (not checked): use a key with trade and view "
                         "permission only, never withdrawal")
        for s in self.instruments:
            try:
                maker, taker = self.fee_rates(s)
                notes.append(f"fees {s}: maker {_bps(maker)} bps, taker {_bps(taker)} bps "
                             f"({self._fees[s][2]})")
            except VenueError as exc:
                notes.append(f"fees {s}: not read ({exc})")
        return Preflight(self.venue, account, can_trade, can_withdraw, balances, notes)


__all__ = ["CLIENT_ID_NAMESPACE", "CcxtBroker", "Clock"]
