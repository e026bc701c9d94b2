"""A loopback fake of TWS / IB Gateway that the real ``ib_async`` client talks to unmodified.

The fake speaks the TWS API socket protocol at one pinned server version
(:data:`SERVER_VERSION`, 176): the ``API\\0`` handshake, 4-byte big-endian length-prefixed
messages whose fields are NUL-terminated strings, and for every message the exact field
list that ``ib_async`` 2.1.0's ``decoder.py`` expects at that version (a message with the
wrong number of fields is dropped by the client, which then times out). Incoming
``placeOrder`` messages are parsed field by field the way ``ib_async``'s ``client.py``
writes them at that version; a message that does not parse exactly is recorded in
:attr:`FakeTws.protocol_errors` (tests assert it stays empty).

It runs an asyncio server in a background thread with its own event loop, so a test
process can drive it while the client runs in the test thread or in a worker process.
Accounts, orders, executions and positions live in the fake, not in a connection: they
survive client disconnects and reconnects, like a real gateway.

Behaviour, as TWS does it (facts from the TWS API documentation and ``ib_async``):

- On connect: ``managedAccounts`` (15), ``nextValidId`` (9), and the farm notices 2104,
  2106, 2158 as error messages with reqId -1. A second connection with a client id in use
  gets error 326 and is closed.
- Orders: MKT, LMT, STP, STP LMT; TIF DAY or GTC. An order with ``transmit=False`` is held
  (nothing is reported) until an order of its group (its parent or a child of it) arrives
  with ``transmit=True``; then the whole group goes live. Children stay ``PreSubmitted``
  until their parent is completely filled, then become ``Submitted``. A fill of one child
  reduces its siblings by the filled quantity (so a bracket's filled take-profit cancels
  its stop, a partial one shrinks it); orders sharing an ``ocaGroup`` are one OCA group
  (ocaType 1: a fill cancels the others; 2 and 3: reduce them by the filled quantity).
  Cancelling a parent cancels its children. Every change sends ``openOrder`` and
  ``orderStatus`` to the owning client; every fill sends ``execDetails`` (reqId -1) and a
  ``commissionReport``; positions, portfolio and account values are pushed to subscribers.
- Fills against a scripted price path: :meth:`FakeTws.set_quote` (buys at the ask, sells at
  the bid, stops triggered by the last price) and :meth:`FakeTws.step` (a daily or intraday
  bar walked open -> the extreme towards resting stops -> the other extreme -> close; the
  move to the open is a gap). Limits fill at their limit or better, stops at their trigger
  or worse through a gap, market orders at the current price.
- Commissions, IBKR fixed pricing (ibkr.com "Commissions - Stocks, ETFs, Warrants - Fixed"
  and "Options - Fixed", US): stocks USD 0.005 per share, minimum USD 1.00, maximum 1 % of
  trade value, per order; options USD 0.65 per contract (0.50 when the premium is
  0.05-0.10, 0.25 below 0.05), minimum USD 1.00 per order. Charged per order and split over
  its executions (each execution is charged the order's cumulative fee minus what earlier
  executions were charged).
- Margin (a simple documented rule, not IBKR's exact one): long stock initial 50 % and
  maintenance 25 % of market value, short stock 50 % / 30 %; a short option (CBOE / Reg T
  style) per contract ``max(20 % x underlying - out-of-the-money amount, 10 % x strike for a
  put or x underlying for a call) x 100 + option price x 100``, initial = maintenance; long
  options need none. AvailableFunds = NetLiquidation - InitMarginReq, ExcessLiquidity =
  NetLiquidation - MaintMarginReq, BuyingPower = 4 x AvailableFunds (a margin account's
  intraday buying power), GrossPositionValue = sum of absolute market values.
- Option greeks: Black-Scholes (no dividends, rate :attr:`FakeTws.rate`, year of 365 days,
  expiry at 21:00 UTC of the expiry date) on the underlying's last price with the option's
  implied volatility; vega per volatility point (1 %), theta per calendar day, as TWS
  reports them. Without a scripted quote, an option's bid/ask are the model price -/+ 0.05.

The "next order" faults (:meth:`~FakeTws.drop_on_next_order`, :meth:`~FakeTws.reject_next_order`,
:meth:`~FakeTws.partial_fill_next`) apply to the next placeOrder the fake *reads*: after
placing orders, wait until the fake has them (``fake.wait_for(lambda f: len(f.orders())
== n)``) before arming one for a later order.

Every timestamp comes from ``clock()`` (UTC epoch seconds); the fake never sleeps on wall
time except for socket I/O and the optional answer delay (:meth:`FakeTws.set_delay`).

Test-control API (stable; other tests use it): :meth:`~FakeTws.start`, :meth:`~FakeTws.stop`,
``with FakeTws(...) as tws``; instruments :meth:`~FakeTws.add_stock`,
:meth:`~FakeTws.add_option`, :meth:`~FakeTws.add_option_chain`, :meth:`~FakeTws.set_bars`;
prices :meth:`~FakeTws.set_quote`, :meth:`~FakeTws.set_option_quote`, :meth:`~FakeTws.step`;
lifecycle :meth:`~FakeTws.end_of_day`, :meth:`~FakeTws.expire`, :meth:`~FakeTws.assign`;
faults :meth:`~FakeTws.drop_connections`, :meth:`~FakeTws.drop_on_next_order`,
:meth:`~FakeTws.drop_after_next_history`,
:meth:`~FakeTws.reject_next_order`, :meth:`~FakeTws.partial_fill_next`,
:meth:`~FakeTws.refuse_client_id`, :meth:`~FakeTws.set_delay`, :meth:`~FakeTws.notify`,
:attr:`~FakeTws.handshake`;
inspection :meth:`~FakeTws.orders`, :meth:`~FakeTws.order_by_ref`, :meth:`~FakeTws.executions`,
:meth:`~FakeTws.positions`, :meth:`~FakeTws.cash`, :meth:`~FakeTws.account_values`,
:meth:`~FakeTws.client_ids`, :meth:`~FakeTws.wait_for`, :attr:`~FakeTws.received`,
:attr:`~FakeTws.protocol_errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import itertools
import math
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

SERVER_VERSION = 176
"""The one server version the fake speaks (ib_async 2.1.0 accepts 157..178)."""

UNSET_DOUBLE = "1.7976931348623157E308"
"""TWS's 'no value' double on the wire (DBL_MAX)."""

START = 1_767_367_800.0
"""Default clock start: 2026-01-02T15:30:00Z (a NYSE session, 10:30 New York)."""

ZERO = Decimal(0)
CENT = Decimal("0.01")

FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
"""The notices a real gateway sends after a client connects (error messages, reqId -1)."""

ORDER_TYPES = frozenset({"MKT", "LMT", "STP", "STP LMT"})
OPEN_STATES = frozenset({"PreSubmitted", "Submitted"})
DONE_STATES = frozenset({"Filled", "Cancelled", "Inactive"})


def _d(value: Any) -> Decimal:
    """Convert a number (or its string) to Decimal without float noise."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _wire(value: Any) -> str:
    """Format one field as TWS writes it (bool as 1/0, None as empty, Decimal plain)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def _tws_time(ts: float) -> str:
    """Format a time the way TWS does in executions (``YYYYMMDD HH:MM:SS UTC``)."""
    return _utc(ts).strftime("%Y%m%d %H:%M:%S") + " UTC"


def _norm_right(right: str) -> str:
    r = (right or "").upper()
    return {"PUT": "P", "CALL": "C"}.get(r, r)


def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _npdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def black_scholes(right: str, spot: float, strike: float, years: float, vol: float,
                  rate: float) -> dict[str, float]:
    """Price a European option and its greeks with Black-Scholes (no dividends).

    Parameters
    ----------
    right : str
        ``"P"`` or ``"C"``.
    spot, strike : float
        Underlying price and strike, quote currency (USD) per share.
    years : float
        Time to expiry in years (365-day year); at or below 0 the intrinsic value is used.
    vol : float
        Implied volatility as a fraction (0.25 for 25 %).
    rate : float
        Continuously compounded risk-free rate as a fraction.

    Returns
    -------
    dict
        ``price`` (USD per share), ``delta``, ``gamma`` (per USD), ``vega`` (USD per
        volatility point, i.e. per 1 %), ``theta`` (USD per calendar day), as TWS reports
        them. Source: Hull, *Options, Futures and Other Derivatives*, ch. 15 and 19.
    """
    put = right == "P"
    if years <= 0 or vol <= 0 or spot <= 0:
        intrinsic = max(strike - spot, 0.0) if put else max(spot - strike, 0.0)
        itm = intrinsic > 0
        return {"price": intrinsic, "delta": (-1.0 if put else 1.0) if itm else 0.0,
                "gamma": 0.0, "vega": 0.0, "theta": 0.0}
    sq = vol * math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * years) / sq
    d2 = d1 - sq
    disc = math.exp(-rate * years)
    if put:
        price = strike * disc * _ncdf(-d2) - spot * _ncdf(-d1)
        delta = _ncdf(d1) - 1.0
        theta = -spot * _npdf(d1) * vol / (2 * math.sqrt(years)) + rate * strike * disc * _ncdf(-d2)
    else:
        price = spot * _ncdf(d1) - strike * disc * _ncdf(d2)
        delta = _ncdf(d1)
        theta = -spot * _npdf(d1) * vol / (2 * math.sqrt(years)) - rate * strike * disc * _ncdf(d2)
    return {"price": price, "delta": delta, "gamma": _npdf(d1) / (spot * sq),
            "vega": spot * _npdf(d1) * math.sqrt(years) / 100.0, "theta": theta / 365.0}


def implied_vol(right: str, price: float, spot: float, strike: float, years: float,
                rate: float) -> float | None:
    """Solve Black-Scholes for the volatility that gives ``price`` (bisection, 1e-6).

    Returns
    -------
    float or None
        The implied volatility as a fraction, or None when the price is outside the
        model's range (below intrinsic value or above the no-arbitrage bound).
    """
    lo, hi = 1e-4, 5.0
    if years <= 0 or not (black_scholes(right, spot, strike, years, lo, rate)["price"] <= price
                          <= black_scholes(right, spot, strike, years, hi, rate)["price"]):
        return None
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if black_scholes(right, spot, strike, years, mid, rate)["price"] < price:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


class SharedClock:
    """One settable clock (UTC epoch seconds) for the fake, the adapter and the options
    reader: ``clock()`` as the fake and ``IbkrOptions`` call it, ``now()`` and
    ``wait_until()`` as the broker port's ``Clock``."""

    def __init__(self, t: float) -> None:
        self.t = float(t)

    def __call__(self) -> float:
        return self.t

    def now(self) -> int:
        return int(self.t)

    def wait_until(self, ts: int) -> None:
        self.t = max(self.t, float(ts))


class BrokerClock:
    """The port's clock (``now``, ``wait_until``) over a settable clock with ``t``."""

    def __init__(self, clock: Any) -> None:
        self.c = clock

    def now(self) -> int:
        return int(self.c.t)

    def wait_until(self, ts: int) -> None:
        self.c.t = max(self.c.t, float(ts))


@dataclass
class Instrument:
    """One contract the fake knows: a stock (STK) or an equity option (OPT).

    Prices are Decimal USD per share; ``multiplier`` is shares per contract (1 or 100).
    """

    con_id: int
    symbol: str
    sec_type: str
    primary_exchange: str
    currency: str = "USD"
    expiry: str = ""
    strike: Decimal = ZERO
    right: str = ""
    multiplier: int = 1
    min_tick: Decimal = CENT
    long_name: str = ""
    under_con_id: int = 0
    iv: float = 0.30
    bid: Decimal | None = None
    ask: Decimal | None = None
    last: Decimal | None = None
    close: Decimal | None = None
    bid_size: Decimal = Decimal(100)
    ask_size: Decimal = Decimal(100)
    last_size: Decimal = Decimal(100)
    volume: Decimal = ZERO
    quoted: bool = False

    @property
    def local_symbol(self) -> str:
        """The OCC symbol for an option (``AAPL  260116P00150000``), the ticker for a stock."""
        if self.sec_type != "OPT":
            return self.symbol
        return (f"{self.symbol:<6}{self.expiry[2:]}{self.right}"
                f"{int((self.strike * 1000).to_integral_value()):08d}")

    def contract_fields(self, exchange: str | None = None) -> list[Any]:
        """The 11 contract fields of execDetails / openOrder / position (no primaryExchange)."""
        return [self.con_id, self.symbol, self.sec_type, self.expiry,
                self.strike if self.sec_type == "OPT" else "0",
                self.right, self.multiplier if self.sec_type == "OPT" else "",
                exchange if exchange is not None else self.primary_exchange,
                self.currency, self.local_symbol, self.symbol]


@dataclass
class FakeOrder:
    """An order as the fake holds it. Quantities and prices Decimal (shares or contracts, USD).

    ``status`` is TWS's: ``Held`` (not transmitted yet; never reported), ``PreSubmitted``
    (a child waiting for its parent), ``Submitted``, ``Filled``, ``Cancelled``,
    ``Inactive`` (rejected).
    """

    client_id: int
    order_id: int
    perm_id: int
    con_id: int
    account: str
    action: str
    quantity: Decimal
    order_type: str
    lmt_price: Decimal | None
    aux_price: Decimal | None
    tif: str
    oca_group: str
    oca_type: int
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool
    exchange: str
    placed_at: float
    status: str = "Held"
    filled: Decimal = ZERO
    avg_fill_price: Decimal = ZERO
    last_fill_price: Decimal = ZERO
    commission: Decimal = ZERO
    triggered: bool = False
    fill_cap: Decimal | None = None
    partial: tuple[float, str] | None = None
    wait_event: int = -1
    completed_at: float | None = None
    completed_status: str = ""
    reject_reason: str = ""

    @property
    def remaining(self) -> Decimal:
        """Quantity still to fill (0 once the order is done)."""
        return ZERO if self.status in ("Cancelled", "Inactive") else self.quantity - self.filled

    @property
    def is_open(self) -> bool:
        """True while the order is live at the fake (PreSubmitted or Submitted)."""
        return self.status in OPEN_STATES


@dataclass
class Execution:
    """One fill: shares or contracts at a price (USD), the venue time and its commission."""

    exec_id: str
    order: FakeOrder
    shares: Decimal
    price: Decimal
    cum_qty: Decimal
    avg_price: Decimal
    time: float
    commission: Decimal = ZERO
    realized_pnl: Decimal | None = None


@dataclass
class _Position:
    qty: Decimal = ZERO
    avg_cost: Decimal = ZERO        # USD per share/contract unit (per share for options)


class _Conn:
    """One client socket."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.client_id: int | None = None
        self.ready = False
        self.muted = False
        self.closed = False
        self.acct_sub: str | None = None
        self.pos_sub = False
        self.multi_subs: dict[int, str] = {}
        self.summary_subs: dict[int, list[str]] = {}
        self.mkt_subs: dict[int, int] = {}
        self.auto_bind = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):    # the socket may already be gone
                self.writer.close()


class _Cursor:
    """Read a message's fields in order; raise ValueError when they run out."""

    def __init__(self, fields: list[str], pos: int = 1) -> None:
        self.fields = fields
        self.pos = pos

    def __call__(self) -> str:
        if self.pos >= len(self.fields):
            raise ValueError(f"message {self.fields[0]} ends after {len(self.fields)} fields")
        v = self.fields[self.pos]
        self.pos += 1
        return v

    def skip(self, n: int) -> list[str]:
        return [self() for _ in range(n)]

    @property
    def left(self) -> int:
        return len(self.fields) - self.pos


def _num(text: str) -> Decimal | None:
    """Parse a wire number; empty or TWS's unset double gives None."""
    if text in ("", UNSET_DOUBLE) or text.upper() == "1.7976931348623157E+308":
        return None
    v = Decimal(text)
    return None if v >= Decimal("1e300") else v


class FakeTws:
    """A loopback TWS / IB Gateway for the real ``ib_async`` client (see the module docstring).

    Parameters
    ----------
    clock : callable, optional
        Returns the venue time as UTC epoch seconds; default an internal clock starting at
        :data:`START` that :meth:`step` and :meth:`set_time` move.
    accounts : tuple of str
        Managed account codes (the first is the default for orders without one).
    cash : Decimal
        Starting cash per account, USD.
    stocks : iterable of tuple, optional
        ``(symbol, primary_exchange, con_id)`` for the stocks known at start; default AAPL,
        MSFT (NASDAQ), IBM (NYSE), SPY (ARCA).
    handshake : str
        ``"ok"``; ``"silent"``: accept the socket and never answer (an untrusted IP waiting
        for the gateway's confirmation dialog); ``"close"``: close the socket at once (API
        connection refused by the gateway). Settable later as the attribute.
    rate : float
        Risk-free rate for the option model, fraction per year.
    """

    def __init__(self, clock: Callable[[], float] | None = None,
                 accounts: tuple[str, ...] = ("DU1234567",), cash: Decimal | str | int = 100_000,
                 stocks: Iterable[tuple[str, str, int]] | None = None, handshake: str = "ok",
                 rate: float = 0.04) -> None:
        if not accounts:
            raise ValueError("FakeTws needs at least one account")
        self._t = START
        self._clock = clock
        self.accounts = tuple(accounts)
        self.handshake = handshake
        self.rate = rate
        self.port: int | None = None
        self.instruments: dict[int, Instrument] = {}
        self.bars: dict[tuple[str, str], list[tuple[str, Decimal, Decimal, Decimal, Decimal,
                                                     Decimal]]] = {}
        self.cash_balances: dict[str, Decimal] = {a: _d(cash) for a in self.accounts}
        self.realized: dict[str, Decimal] = {a: ZERO for a in self.accounts}
        self._positions: dict[tuple[str, int], _Position] = {}
        self._orders: dict[tuple[int, int], FakeOrder] = {}
        self._execs: list[Execution] = []
        self.events: list[dict[str, Any]] = []
        self.received: list[tuple[int | None, list[str]]] = []
        self.protocol_errors: list[str] = []
        self._conns: list[_Conn] = []
        self._next_order_id = 1
        self._perm = itertools.count(1_700_000_001)
        self._exec_seq = itertools.count(1)
        self._con_seq = itertools.count(900_000_001)
        self._event_id = 0
        self._refused: set[int] = set()
        self._drop_next_order: str | None = None
        self._drop_after_history = False
        self._reject_next: tuple[str, bool] | None = None
        self._partial_next: tuple[float, str] | None = None
        self._delay = 0.0
        self._fill_ts: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        for sym, exch, con in (stocks if stocks is not None else (
                ("AAPL", "NASDAQ", 265598), ("MSFT", "NASDAQ", 272093),
                ("IBM", "NYSE", 8314), ("SPY", "ARCA", 756733))):
            self.add_stock(sym, exch, con)

    # -- lifecycle ---------------------------------------------------------------------

    def now(self) -> float:
        """Return the venue time, UTC epoch seconds (``clock()`` or the internal clock)."""
        return float(self._clock()) if self._clock is not None else self._t

    def set_time(self, ts: float) -> None:
        """Set the internal clock (UTC epoch seconds); ignored when a ``clock`` was given."""
        self._t = float(ts)

    def start(self, port: int = 0) -> int:
        """Start serving on 127.0.0.1 in a background thread; return the port.

        Parameters
        ----------
        port : int
            0 for an ephemeral port, or a fixed one (to restart a stopped fake where the
            clients expect it).

        Raises
        ------
        RuntimeError
            When the server does not come up within 5 s.
        """
        if self._thread is not None:
            return self.port or 0
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, "127.0.0.1", port))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as e:   # noqa: BLE001 - reported to start()
                failure.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            for conn in list(self._conns):
                conn.close()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-tws", daemon=True)
        self._thread.start()
        if not ready.wait(5) or failure:
            self._thread = None
            raise RuntimeError(f"fake TWS did not start: {failure[0] if failure else 'timeout'}")
        return self.port or 0

    def stop(self) -> None:
        """Close every connection and the server; the state (orders, positions) is kept,
        so :meth:`start` with the same port brings the same gateway back."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop = None
        self._conns = []

    def __enter__(self) -> FakeTws:  # noqa: PYI034 - a plain class, not subclassed
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the fake's loop (where all state lives) and return its result."""
        loop = self._loop
        if loop is None or threading.current_thread() is self._thread:
            return fn(*args, **kwargs)

        async def call() -> Any:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(call(), loop).result(10)

    def wait_for(self, predicate: Callable[[FakeTws], Any], timeout: float = 3.0) -> Any:
        """Poll ``predicate(fake)`` on the fake's loop until it is truthy; return its value.

        Raises
        ------
        TimeoutError
            When it stays falsy for ``timeout`` seconds of socket wait.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = self._call(predicate, self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError("fake TWS: condition not met")
            time.sleep(0.005)

    # -- instruments -------------------------------------------------------------------

    def add_stock(self, symbol: str, exchange: str = "NASDAQ", con_id: int | None = None,
                  long_name: str = "") -> int:
        """Add a US stock (SMART-routed, listed on ``exchange``, min tick 0.01); return its conId."""
        def do() -> int:
            cid = con_id or next(self._con_seq)
            self.instruments[cid] = Instrument(cid, symbol.upper(), "STK", exchange,
                                               long_name=long_name or symbol.upper())
            return cid
        return self._call(do)

    def add_option(self, symbol: str, expiry: str, strike: Decimal | str | float, right: str,
                   con_id: int | None = None, iv: float = 0.30) -> int:
        """Add an equity option on a known stock; return its conId.

        Parameters
        ----------
        symbol : str
            The underlying's symbol (must be added first).
        expiry : str
            ``YYYYMMDD``.
        strike : Decimal
            USD per share.
        right : str
            ``P``/``PUT`` or ``C``/``CALL``.
        iv : float
            Implied volatility for the model (fraction).

        Raises
        ------
        KeyError
            For an unknown underlying.
        """
        def do() -> int:
            under = self._stock(symbol)
            k = _d(strike)
            r = _norm_right(right)
            for inst in self.instruments.values():
                if (inst.sec_type == "OPT" and inst.symbol == under.symbol and inst.expiry == expiry
                        and inst.strike == k and inst.right == r):
                    return inst.con_id
            cid = con_id or next(self._con_seq)
            self.instruments[cid] = Instrument(
                cid, under.symbol, "OPT", "SMART", expiry=expiry, strike=k, right=r,
                multiplier=100, long_name=under.long_name, under_con_id=under.con_id, iv=iv)
            return cid
        return self._call(do)

    def add_option_chain(self, symbol: str, expiries: Iterable[str],
                         strikes: Iterable[Decimal | str | float], rights: str = "PC",
                         iv: float = 0.30) -> list[int]:
        """Add every (expiry, strike, right) option on ``symbol``; return their conIds."""
        return [self.add_option(symbol, e, k, r, iv=iv)
                for e in expiries for k in strikes for r in rights]

    def option_con_id(self, symbol: str, expiry: str, strike: Decimal | str | float,
                      right: str) -> int:
        """Return the conId of a known option.

        Raises
        ------
        KeyError
            When the fake does not have that option.
        """
        k, r = _d(strike), _norm_right(right)
        for inst in self.instruments.values():
            if (inst.sec_type == "OPT" and inst.symbol == symbol.upper() and inst.expiry == expiry
                    and inst.strike == k and inst.right == r):
                return inst.con_id
        raise KeyError(f"no option {symbol} {expiry} {strike} {right}")

    def _stock(self, symbol: str) -> Instrument:
        for inst in self.instruments.values():
            if inst.sec_type == "STK" and inst.symbol == symbol.upper():
                return inst
        raise KeyError(f"unknown stock {symbol}")

    def _inst(self, key: str | int) -> Instrument:
        if isinstance(key, int):
            return self.instruments[key]
        return self._stock(key)

    def set_bars(self, symbol: str, bars: Iterable[Any], what_to_show: str = "TRADES") -> None:
        """Script the daily bars ``reqHistoricalData`` answers with.

        Parameters
        ----------
        symbol : str
            A known stock.
        bars : iterable
            ``(date, open, high, low, close, volume)`` rows; date as ``YYYYMMDD`` or a
            ``datetime.date``; prices USD per share, volume shares.
        what_to_show : str
            ``TRADES`` or ``ADJUSTED_LAST`` (requests for ADJUSTED_LAST fall back to TRADES
            when none are scripted).
        """
        rows = []
        for date, o, h, lo, c, v in bars:
            ds = date.strftime("%Y%m%d") if isinstance(date, dt.date) else str(date)
            rows.append((ds, _d(o), _d(h), _d(lo), _d(c), _d(v)))
        rows.sort()
        self._call(self.bars.__setitem__, (symbol.upper(), what_to_show.upper()), rows)

    # -- prices ------------------------------------------------------------------------

    def set_quote(self, symbol: str | int, bid: Any = None, ask: Any = None, last: Any = None,
                  *, bid_size: Any = 100, ask_size: Any = 100, last_size: Any = 100,
                  volume: Any = None, close: Any = None) -> list[Execution]:
        """Set a contract's quote (USD per share); resting orders it reaches fill.

        Buys fill at the ask, sells at the bid, stops trigger on the last price (or the
        side's price without one). Streaming market-data subscribers get the ticks.

        Parameters
        ----------
        symbol : str or int
            A stock's symbol or any contract's conId.
        bid, ask, last, close : Decimal, optional
            Prices; None leaves the previous value.
        bid_size, ask_size, last_size, volume : Decimal
            Sizes in shares (contracts for options).

        Returns
        -------
        list of Execution
            The fills the quote made.

        Raises
        ------
        KeyError
            For an unknown symbol or conId.
        """
        def do() -> list[Execution]:
            inst = self._inst(symbol)
            self._event_id += 1
            before = len(self._execs)
            if bid is not None:
                inst.bid = _d(bid)
            if ask is not None:
                inst.ask = _d(ask)
            if last is not None:
                inst.last = _d(last)
            if close is not None:
                inst.close = _d(close)
            if volume is not None:
                inst.volume = _d(volume)
            inst.bid_size, inst.ask_size, inst.last_size = _d(bid_size), _d(ask_size), _d(last_size)
            inst.quoted = True
            self._push_ticks(inst)
            self._match_static(inst)
            self._after_price(inst)
            return self._execs[before:]
        return self._call(do)

    def set_option_quote(self, symbol: str, expiry: str, strike: Any, right: str,
                         bid: Any = None, ask: Any = None, last: Any = None,
                         iv: float | None = None) -> list[Execution]:
        """Set an option's quote (USD per share) and/or its implied volatility (fraction).

        Returns
        -------
        list of Execution
            The fills the quote made.
        """
        cid = self._call(self.option_con_id, symbol, expiry, strike, right)
        if iv is not None:
            self._call(setattr, self.instruments[cid], "iv", float(iv))
        return self.set_quote(cid, bid, ask, last)

    def step(self, symbol: str | int, open: Any, high: Any, low: Any, close: Any,
             volume: Any = 0, ts: float | None = None) -> list[Execution]:
        """Walk a bar: gap to the open, the extreme towards resting stops, the other, close.

        Pessimistic like the Coinbase fake: with sell stops resting (protecting a long) the
        low comes first, with buy stops the high; with neither, the extreme nearer the
        open. Limits fill at their limit (or the open, if it gapped through), stops at their
        trigger (or the open, through a gap), market orders at the open. Afterwards bid =
        ask = last = close.

        Parameters
        ----------
        symbol : str or int
            A stock's symbol or a conId.
        open, high, low, close : Decimal
            USD per share.
        volume : Decimal
            Shares; added to the day's volume tick.
        ts : float, optional
            UTC epoch seconds of the bar's fills; it also sets the internal clock.

        Returns
        -------
        list of Execution
            The fills the bar made.

        Raises
        ------
        ValueError
            When high/low do not bound open and close.
        """
        o, h, lo, c = (_d(x) for x in (open, high, low, close))
        if not (lo <= min(o, c) and h >= max(o, c)):
            raise ValueError(f"bar high {h} / low {lo} do not bound open {o} and close {c}")

        def do() -> list[Execution]:
            if ts is not None and self._clock is None:
                self._t = float(ts)
            self._fill_ts = float(ts) if ts is not None else None
            try:
                return walk()
            finally:
                self._fill_ts = None

        def walk() -> list[Execution]:
            inst = self._inst(symbol)
            self._event_id += 1
            before = len(self._execs)
            resting = [x for x in self._orders.values() if x.con_id == inst.con_id and x.is_open]
            sell_stops = any(x.action == "SELL" and x.order_type.startswith("STP")
                             and not x.triggered for x in resting)
            buy_stops = any(x.action == "BUY" and x.order_type.startswith("STP")
                            and not x.triggered for x in resting)
            low_first = sell_stops if sell_stops != buy_stops else (o - lo) <= (h - o)
            start = inst.last if inst.last is not None else o
            self._walk(inst, start, o, gap=True)
            prev = o
            for p in ((lo, h) if low_first else (h, lo)) + (c,):
                self._walk(inst, prev, p, gap=False)
                prev = p
            inst.bid = inst.ask = inst.last = c
            inst.volume += _d(volume)
            inst.quoted = True
            self._push_ticks(inst)
            self._after_price(inst)
            return self._execs[before:]
        return self._call(do)

    # -- quotes and the option model -----------------------------------------------------

    def _years(self, inst: Instrument) -> float:
        exp = dt.datetime.strptime(inst.expiry, "%Y%m%d").replace(hour=21, tzinfo=dt.UTC)
        return (exp.timestamp() - self.now()) / (365.0 * 86400.0)

    def _model(self, inst: Instrument) -> dict[str, float] | None:
        under = self.instruments.get(inst.under_con_id)
        spot = self._mark(under) if under is not None else None
        if spot is None:
            return None
        m = black_scholes(inst.right, float(spot), float(inst.strike), self._years(inst),
                          inst.iv, self.rate)
        m["und"] = float(spot)
        return m

    def _quote(self, inst: Instrument) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
        """(bid, ask, last) in USD; options without a scripted quote use the model -/+ 0.05."""
        if inst.sec_type == "OPT" and not inst.quoted:
            m = self._model(inst)
            if m is None:
                return None, None, None
            mid = _d(round(m["price"], 2))
            return max(mid - Decimal("0.05"), CENT), mid + Decimal("0.05"), None
        return inst.bid, inst.ask, inst.last

    def _mark(self, inst: Instrument) -> Decimal | None:
        bid, ask, last = self._quote(inst)
        if last is not None:
            return last
        if bid is not None and ask is not None:
            return (bid + ask) / 2
        return bid if bid is not None else ask

    # -- connections ---------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        self._conns.append(conn)
        try:
            head = await reader.readexactly(4)
            if head != b"API\0":
                self.protocol_errors.append(f"handshake starts with {head!r}")
                return
            n = struct.unpack(">I", await reader.readexactly(4))[0]
            versions = (await reader.readexactly(n)).decode()
            self.received.append((None, [versions]))
            if self.handshake == "close":
                return
            if self.handshake == "silent":
                while await reader.read(4096):
                    pass
                return
            lo, _, hi = versions[1:].split(" ")[0].partition("..")
            if not int(lo) <= SERVER_VERSION <= int(hi or lo):
                self.protocol_errors.append(f"client versions {versions} exclude {SERVER_VERSION}")
                return
            self._raw(conn, [str(SERVER_VERSION), _tws_time(self.now())])
            while True:
                n = struct.unpack(">I", await reader.readexactly(4))[0]
                payload = await reader.readexactly(n)
                fields = payload.decode(errors="backslashreplace").split("\0")
                if fields and fields[-1] == "":
                    fields.pop()
                if self._delay:
                    await asyncio.sleep(self._delay)
                if conn.closed:
                    return
                self.received.append((conn.client_id, fields))
                try:
                    self._dispatch(conn, fields)
                except Exception as e:  # noqa: BLE001 - a fake bug must show in tests
                    self.protocol_errors.append(f"handling {fields[:3]}: {e!r}")
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            conn.close()
            if conn in self._conns:
                self._conns.remove(conn)

    def _raw(self, conn: _Conn, fields: list[str]) -> None:
        if conn.closed or conn.muted:
            return
        payload = "".join(f + "\0" for f in fields).encode()
        conn.writer.write(struct.pack(">I", len(payload)) + payload)

    def _send(self, conn: _Conn, *fields: Any) -> None:
        self._raw(conn, [_wire(f) for f in fields])

    def _error(self, conn: _Conn, req_id: int, code: int, text: str) -> None:
        # version 2; advancedOrderRejectJson since server version 166
        self._send(conn, 4, 2, req_id, code, text, "")

    def _owner(self, client_id: int) -> list[_Conn]:
        return [c for c in self._conns if c.ready and not c.closed and c.client_id == client_id]

    def client_ids(self) -> list[int]:
        """Return the client ids of the connected (started) API clients."""
        return self._call(lambda: sorted(c.client_id for c in self._conns
                                         if c.ready and not c.closed and c.client_id is not None))

    # -- fault injection -------------------------------------------------------------------

    def drop_connections(self) -> None:
        """Close every client socket now (the clients see a disconnect); state is kept."""
        def do() -> None:
            for conn in list(self._conns):
                conn.close()
        self._call(do)

    def drop_on_next_order(self, after_accept: bool = True) -> None:
        """Close the connection in the middle of the next placeOrder.

        Parameters
        ----------
        after_accept : bool
            True: the order is accepted (and fills if it can) but the client hears nothing
            of it before the socket closes. False: the socket closes before the order is
            read, so the fake never has it.
        """
        self._call(setattr, self, "_drop_next_order", "after" if after_accept else "before")

    def drop_after_next_history(self) -> None:
        """Close the connection right after answering the next ``reqHistoricalData``: the
        client has its bars, then finds the socket gone (a gateway's nightly restart
        between a deployment's poll and its orders)."""
        self._call(setattr, self, "_drop_after_history", True)

    def reject_next_order(self, reason: str = "Insufficient margin",
                          error_first: bool = True) -> None:
        """Reject the next new order: error 201 ``Order rejected - reason:<reason>`` and
        orderStatus ``Inactive``; it is listed among completed orders.

        Parameters
        ----------
        reason : str
            The text after ``reason:``.
        error_first : bool
            TWS sends the two in either order. Error first: ib_async marks the trade
            Cancelled (with the 201 in its log), then Inactive. Status first: the trade is
            Inactive and done, and the error only reaches ``errorEvent``.
        """
        self._call(setattr, self, "_reject_next", (reason, error_first))

    def notify(self, code: int, text: str, req_id: int = -1) -> None:
        """Send an error/notice message to every connected client, e.g. 1100
        ("Connectivity between IB and Trader Workstation has been lost.") and 1102
        ("... has been restored - data maintained.")."""
        def do() -> None:
            for conn in self._conns:
                if conn.ready:
                    self._error(conn, req_id, code, text)
        self._call(do)

    def partial_fill_next(self, fraction: float = 0.5, rest: str = "later") -> None:
        """Fill only part of the next order's first match.

        Parameters
        ----------
        fraction : float
            Share of the quantity filled at once (rounded down, at least 1).
        rest : str
            ``later``: the remainder fills at the next price event that reaches the order;
            ``never``: the remainder stays open until cancelled.
        """
        if not 0 < fraction < 1 or rest not in ("later", "never"):
            raise ValueError("partial_fill_next: 0 < fraction < 1 and rest in later/never")
        self._call(setattr, self, "_partial_next", (float(fraction), rest))

    def refuse_client_id(self, client_id: int, refuse: bool = True) -> None:
        """Answer a connect with this client id with error 326 (as if it were in use)."""
        self._call(self._refused.add if refuse else self._refused.discard, int(client_id))

    def set_delay(self, seconds: float) -> None:
        """Delay the handling of every incoming message by ``seconds`` (wall time)."""
        self._call(setattr, self, "_delay", float(seconds))

    # -- inspection ------------------------------------------------------------------------

    def orders(self, client_id: int | None = None) -> list[FakeOrder]:
        """Return copies of the fake's orders (optionally one client's), in order-id order."""
        return self._call(lambda: [copy.copy(o) for o in sorted(
            self._orders.values(), key=lambda o: (o.perm_id))
            if client_id is None or o.client_id == client_id])

    def order_by_ref(self, order_ref: str) -> FakeOrder | None:
        """Return a copy of the last order with this ``orderRef``, or None."""
        found = [o for o in self.orders() if o.order_ref == order_ref]
        return found[-1] if found else None

    def executions(self) -> list[Execution]:
        """Return copies of every execution so far, oldest first."""
        return self._call(lambda: [copy.copy(e) for e in self._execs])

    def positions(self, account: str | None = None) -> dict[str, Decimal]:
        """Return non-zero positions by local symbol (shares, or contracts; short negative)."""
        acct = account or self.accounts[0]
        return self._call(lambda: {self.instruments[c].local_symbol: p.qty
                                   for (a, c), p in self._positions.items()
                                   if a == acct and p.qty != 0})

    def cash(self, account: str | None = None) -> Decimal:
        """Return an account's cash, USD."""
        return self._call(lambda: self.cash_balances[account or self.accounts[0]])

    def account_values(self, account: str | None = None) -> dict[str, Decimal]:
        """Return the account values the fake reports (NetLiquidation, ...), USD."""
        return self._call(self._values, account or self.accounts[0])

    # -- account arithmetic --------------------------------------------------------------

    def _values(self, account: str) -> dict[str, Decimal]:
        cash = self.cash_balances[account]
        mv_total = gross = init = maint = ZERO
        for (a, cid), pos in self._positions.items():
            if a != account or pos.qty == 0:
                continue
            inst = self.instruments[cid]
            mark = self._mark(inst)
            mark = pos.avg_cost if mark is None else mark
            mv = pos.qty * mark * inst.multiplier
            mv_total += mv
            gross += abs(mv)
            if inst.sec_type == "STK":
                init += abs(mv) / 2
                maint += abs(mv) * (Decimal("0.25") if pos.qty > 0 else Decimal("0.30"))
            elif pos.qty < 0:
                req = self._short_option_margin(inst, mark) * -pos.qty
                init += req
                maint += req
        net = cash + mv_total
        q = lambda v: v.quantize(CENT)
        return {"NetLiquidation": q(net), "TotalCashValue": q(cash), "SettledCash": q(cash),
                "EquityWithLoanValue": q(net), "GrossPositionValue": q(gross),
                "InitMarginReq": q(init), "MaintMarginReq": q(maint),
                "FullInitMarginReq": q(init), "FullMaintMarginReq": q(maint),
                "AvailableFunds": q(net - init), "ExcessLiquidity": q(net - maint),
                "FullAvailableFunds": q(net - init), "FullExcessLiquidity": q(net - maint),
                "BuyingPower": q(4 * (net - init)),
                "Cushion": ((net - maint) / net).quantize(Decimal("0.000001")) if net else ZERO,
                "RealizedPnL": q(self.realized[account])}

    def _short_option_margin(self, inst: Instrument, mark: Decimal) -> Decimal:
        """Margin per short contract, USD: max(20 % underlying - OTM, 10 % strike|underlying)
        x 100 + premium x 100 (CBOE / Reg T style; see the module docstring)."""
        under = self.instruments.get(inst.under_con_id)
        spot = self._mark(under) if under is not None else None
        spot = inst.strike if spot is None else spot
        if inst.right == "P":
            otm = max(spot - inst.strike, ZERO)
            floor = inst.strike / 10
        else:
            otm = max(inst.strike - spot, ZERO)
            floor = spot / 10
        return (max(spot / 5 - otm, floor) + mark) * inst.multiplier

    # -- dispatch ------------------------------------------------------------------------

    def _dispatch(self, conn: _Conn, fields: list[str]) -> None:
        msg = int(fields[0])
        if msg == 71:
            self._start_api(conn, fields)
            return
        if not conn.ready:
            self.protocol_errors.append(f"message {msg} before startApi")
            return
        handler = {
            1: self._req_mkt_data, 2: self._cancel_mkt_data, 3: self._place_order,
            4: self._cancel_order, 5: self._req_open_orders, 6: self._req_account_updates,
            7: self._req_executions, 8: self._req_ids, 9: self._req_contract_details,
            15: self._req_auto_open_orders, 16: self._req_all_open_orders,
            17: self._req_managed_accts, 20: self._req_historical_data,
            25: lambda c, f: None, 49: self._req_current_time, 58: self._req_global_cancel,
            59: lambda c, f: None, 61: self._req_positions, 62: self._req_account_summary,
            63: self._cancel_account_summary, 64: self._cancel_positions,
            76: self._req_account_updates_multi, 77: self._cancel_account_updates_multi,
            78: self._req_sec_def_opt_params, 87: self._req_head_timestamp,
            90: lambda c, f: None, 99: self._req_completed_orders,
        }.get(msg)
        if handler is None:
            self.protocol_errors.append(f"unhandled message {msg}: {fields[:4]}")
            return
        handler(conn, fields)

    def _start_api(self, conn: _Conn, fields: list[str]) -> None:
        _, _version, client_id, *_ = fields
        cid = int(client_id)
        in_use = any(c is not conn and c.ready and not c.closed and c.client_id == cid
                     for c in self._conns)
        if in_use or cid in self._refused:
            self._error(conn, -1, 326, "Unable to connect as the client id is already in use. "
                        "Retry with a unique client id.")
            conn.close()
            return
        conn.client_id = cid
        conn.ready = True
        self._send(conn, 15, 1, ",".join(self.accounts))
        self._send(conn, 9, 1, self._next_order_id)
        for code, text in FARM_NOTICES:
            self._error(conn, -1, code, text)

    def _req_ids(self, conn: _Conn, fields: list[str]) -> None:
        self._send(conn, 9, 1, self._next_order_id)

    def _req_managed_accts(self, conn: _Conn, fields: list[str]) -> None:
        self._send(conn, 15, 1, ",".join(self.accounts))

    def _req_current_time(self, conn: _Conn, fields: list[str]) -> None:
        self._send(conn, 49, 1, int(self.now()))

    # -- contracts -------------------------------------------------------------------------

    def _match_contracts(self, f: list[str]) -> list[Instrument]:
        """Instruments matching the 12 wire contract fields (conId, symbol, secType, expiry,
        strike, right, multiplier, exchange, primaryExchange, currency, localSymbol,
        tradingClass)."""
        con_id, symbol, sec_type, expiry, strike, right, _mult, _exch, _prim, currency, \
            local, _tc = f
        if con_id and int(con_id):
            inst = self.instruments.get(int(con_id))
            return [inst] if inst is not None else []
        out = []
        for inst in self.instruments.values():
            if symbol and inst.symbol != symbol.upper():
                continue
            if local and inst.local_symbol.replace(" ", "") != local.replace(" ", ""):
                continue
            if not symbol and not local:
                continue
            if sec_type and inst.sec_type != sec_type.upper():
                continue
            if currency and inst.currency != currency.upper():
                continue
            if expiry and not inst.expiry.startswith(expiry):
                continue
            if strike and float(strike) and inst.strike != _d(strike):
                continue
            if right and right != "?" and inst.right != _norm_right(right):
                continue
            out.append(inst)
        return out

    def _req_contract_details(self, conn: _Conn, fields: list[str]) -> None:
        cur = _Cursor(fields, 2)
        req_id = int(cur())
        matches = self._match_contracts(cur.skip(12))
        exchange = fields[10] or "SMART"
        if not matches:
            self._error(conn, req_id, 200, "No security definition has been found for the request")
            return
        for inst in sorted(matches, key=lambda i: (i.expiry, i.strike, i.right)):
            opt = inst.sec_type == "OPT"
            under = self.instruments.get(inst.under_con_id)
            self._send(
                conn, 10, req_id, inst.symbol, inst.sec_type, inst.expiry,
                inst.strike if opt else "0", inst.right,
                exchange if exchange != "" else "SMART", inst.currency, inst.local_symbol,
                inst.symbol, inst.symbol, inst.con_id, inst.min_tick,
                inst.multiplier if opt else "",
                "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,COND,DAY,DEACT,GAT,GTC,GTD,LMT,"
                "MKT,NONALGO,OCA,STP,STPLMT,TRAIL,WHATIF",
                f"SMART,{inst.primary_exchange}" if not opt else "SMART,CBOE,ISE,PHLX",
                1, inst.under_con_id if opt else 0, inst.long_name,
                inst.primary_exchange if not opt else "", inst.expiry[:6] if opt else "",
                "Technology", "Computers", "Computers", "US/Eastern",
                "20260102:0930-20260102:1600", "20260102:0930-20260102:1600", "", "", 0,
                "1", under.symbol if (opt and under) else "", "STK" if opt else "",
                "26" if opt else "26,26", inst.expiry, "" if opt else "COMMON",
                "1", "1", "1")
        self._send(conn, 52, 1, req_id)

    def _req_sec_def_opt_params(self, conn: _Conn, fields: list[str]) -> None:
        _, req_id, symbol, _fut_fop_exchange, _sec_type, _under_con_id = fields
        opts = [i for i in self.instruments.values()
                if i.sec_type == "OPT" and i.symbol == symbol.upper()]
        if opts:
            under = opts[0].under_con_id
            expiries = sorted({i.expiry for i in opts})
            strikes = sorted({i.strike for i in opts})
            for exchange in ("SMART", "CBOE"):
                self._send(conn, 75, req_id, exchange, under, symbol.upper(), 100,
                           len(expiries), *expiries, len(strikes), *strikes)
        self._send(conn, 76, req_id)

    # -- market data -------------------------------------------------------------------

    def _req_mkt_data(self, conn: _Conn, fields: list[str]) -> None:
        cur = _Cursor(fields, 2)
        req_id = int(cur())
        contract = cur.skip(12)
        if contract[2] == "BAG":
            n = int(cur())
            cur.skip(4 * n)
        if cur() == "1":
            cur.skip(3)
        _generic, snapshot, _regulatory, _options = cur.skip(4)
        if cur.left:
            self.protocol_errors.append(f"reqMktData: {cur.left} extra fields")
        matches = self._match_contracts(contract)
        if len(matches) != 1:
            self._error(conn, req_id, 200, "No security definition has been found for the request")
            return
        inst = matches[0]
        self._send(conn, 58, 1, req_id, 1)
        self._send(conn, 81, req_id, inst.min_tick, "9c0001", 3)
        self._ticks(conn, req_id, inst)
        if snapshot == "1":
            self._send(conn, 57, 1, req_id)
        else:
            conn.mkt_subs[req_id] = inst.con_id

    def _cancel_mkt_data(self, conn: _Conn, fields: list[str]) -> None:
        conn.mkt_subs.pop(int(fields[2]), None)

    def _ticks(self, conn: _Conn, req_id: int, inst: Instrument) -> None:
        bid, ask, last = self._quote(inst)
        # tickPrice: version 6? ib_async reads (msgId, version, reqId, tickType, price, size, mask)
        if bid is not None:
            self._send(conn, 1, 6, req_id, 1, bid, inst.bid_size, 0)
        if ask is not None:
            self._send(conn, 1, 6, req_id, 2, ask, inst.ask_size, 0)
        if last is not None:
            self._send(conn, 1, 6, req_id, 4, last, inst.last_size, 0)
        if inst.close is not None:
            self._send(conn, 1, 6, req_id, 9, inst.close, 0, 0)
        if inst.volume:
            self._send(conn, 2, 6, req_id, 8, inst.volume)
        if inst.sec_type != "OPT":
            return
        m = self._model(inst)
        if m is None:
            return
        years = self._years(inst)
        und = m["und"]
        for tick, price in ((10, bid), (11, ask), (12, last)):
            if price is None:
                continue
            iv = implied_vol(inst.right, float(price), und, float(inst.strike), years, self.rate)
            if iv is None:
                continue
            g = black_scholes(inst.right, und, float(inst.strike), years, iv, self.rate)
            self._send(conn, 21, req_id, tick, 0, iv, g["delta"], float(price), 0.0,
                       g["gamma"], g["vega"], g["theta"], und)
        self._send(conn, 21, req_id, 13, 0, inst.iv, m["delta"], m["price"], 0.0, m["gamma"],
                   m["vega"], m["theta"], und)

    def _touched(self, inst: Instrument) -> set[int]:
        return {inst.con_id} | {i.con_id for i in self.instruments.values()
                                if i.under_con_id == inst.con_id}

    def _push_ticks(self, inst: Instrument) -> None:
        """Send the current ticks to streaming subscribers of ``inst`` and of its options
        (sent before the fills a price makes, so a fill's snapshot sees the market it
        filled in)."""
        touched = self._touched(inst)
        for conn in self._conns:
            for req_id, cid in list(conn.mkt_subs.items()):
                if cid in touched:
                    self._ticks(conn, req_id, self.instruments[cid])

    def _after_price(self, inst: Instrument) -> None:
        """Push portfolio rows and account values of positions the price moved."""
        touched = self._touched(inst)
        accounts = {a for (a, cid) in self._positions if cid in touched}
        for account in accounts:
            self._push_account(account, [cid for (a, cid) in self._positions
                                         if a == account and cid in touched])

    # -- historical data ---------------------------------------------------------------

    def _req_historical_data(self, conn: _Conn, fields: list[str]) -> None:
        cur = _Cursor(fields, 1)
        req_id = int(cur())
        contract = cur.skip(12)
        _include_expired, end, bar_size, duration, _rth, what, _fmt = cur.skip(7)
        if contract[2] == "BAG":
            cur.skip(4 * int(cur()))
        cur.skip(2)
        if cur.left:
            self.protocol_errors.append(f"reqHistoricalData: {cur.left} extra fields")
        matches = self._match_contracts(contract)
        if len(matches) != 1:
            self._error(conn, req_id, 200, "No security definition has been found for the request")
            return
        if bar_size.strip().lower() not in ("1 day", "1 d", "1day"):
            self._error(conn, req_id, 162, "Historical Market Data Service error message:"
                        f"the fake TWS serves daily bars only, not {bar_size!r}")
            return
        inst = matches[0]
        rows = (self.bars.get((inst.symbol, what.upper()))
                or self.bars.get((inst.symbol, "TRADES"), []))
        end_day = (end.replace("-", " ").split(" ")[0] if end.strip()
                   else _utc(self.now()).strftime("%Y%m%d"))
        end_date = dt.datetime.strptime(end_day, "%Y%m%d").date()
        n, unit = duration.split()
        unit = unit.upper()
        if unit == "D":                 # N D of daily bars: the last N sessions
            sel = [r for r in rows if r[0] <= end_day][-int(n):]
            start_date = (dt.datetime.strptime(sel[0][0], "%Y%m%d").date() if sel else end_date)
        else:                           # W, M, Y: a calendar window ending at end
            days = int(n) * {"S": 1 / 86400, "W": 7, "M": 31, "Y": 366}[unit]
            start_date = end_date - dt.timedelta(days=math.ceil(days))
            sel = [r for r in rows if start_date.strftime("%Y%m%d") < r[0] <= end_day]
        if not sel:
            self._error(conn, req_id, 162, "Historical Market Data Service error message:"
                        "HMDS query returned no data: " + inst.symbol)
            return
        out: list[Any] = [17, req_id, start_date.strftime("%Y%m%d") + " 00:00:00",
                          end_date.strftime("%Y%m%d") + " 23:59:59", len(sel)]
        for date, o, h, lo, c, v in sel:
            wap = ((h + lo + c) / 3).quantize(Decimal("0.0001"))
            out += [date, o, h, lo, c, v, wap, max(int(v // 100), 1)]
        self._send(conn, *out)
        if self._drop_after_history:
            self._drop_after_history = False
            conn.close()

    def _req_head_timestamp(self, conn: _Conn, fields: list[str]) -> None:
        cur = _Cursor(fields, 1)
        req_id = int(cur())
        contract = cur.skip(12)
        _inc, _rth, what, fmt = cur.skip(4)
        matches = self._match_contracts(contract)
        rows = ((self.bars.get((matches[0].symbol, what.upper()))
                 or self.bars.get((matches[0].symbol, "TRADES"), [])) if len(matches) == 1 else [])
        if not rows:
            self._error(conn, req_id, 162, "Historical Market Data Service error message:"
                        "HMDS query returned no data")
            return
        first = rows[0][0]
        if fmt == "2":
            stamp = str(int(dt.datetime.strptime(first, "%Y%m%d")
                            .replace(tzinfo=dt.UTC).timestamp()))
        else:
            stamp = first + "-14:30:00"
        self._send(conn, 88, req_id, stamp)

    # -- orders: placement -------------------------------------------------------------

    def _parse_place_order(self, fields: list[str]) -> dict[str, Any]:
        """Read every field ``ib_async`` 2.1.0's ``Client.placeOrder`` writes at version 176.

        Raises
        ------
        ValueError
            When the message has fewer or more fields than that layout.
        """
        cur = _Cursor(fields, 1)
        p: dict[str, Any] = {"order_id": int(cur()), "contract": cur.skip(12)}
        cur.skip(2)                                   # secIdType, secId
        (p["action"], p["qty"], p["type"], p["lmt"], p["aux"], p["tif"], p["oca_group"],
         p["account"], _open_close, _origin, p["ref"], p["transmit"], p["parent_id"],
         _block, _sweep, _display, _trigger, p["outside_rth"], _hidden) = cur.skip(19)
        if p["contract"][2] == "BAG":
            cur.skip(8 * int(cur()))
            cur.skip(int(cur()))
            cur.skip(2 * int(cur()))
        cur.skip(7)                                   # "", discretionaryAmt .. faPercentage
        if SERVER_VERSION < 177:
            cur()                                     # faProfile
        rest = cur.skip(24)                           # modelCode .. deltaNeutralAuxPrice
        p["oca_type"] = rest[4]
        if rest[22]:                                  # deltaNeutralOrderType
            cur.skip(8)
        scale = cur.skip(7)                           # continuousUpdate .. scalePriceIncrement
        inc = _num(scale[6])
        if inc is not None and inc > 0:
            cur.skip(7)
        hedge = cur.skip(4)[3]                        # scaleTable .. hedgeType
        if hedge:
            cur()
        cur.skip(4)                                   # optOutSmartRouting .. notHeld
        if cur() == "1":                              # deltaNeutralContract
            cur.skip(3)
        if cur():                                     # algoStrategy
            cur.skip(2 * int(cur()))
        misc = cur.skip(6)                            # algoId, whatIf, ...
        p["what_if"] = misc[1] == "1"
        if p["type"] in ("PEG BENCH", "PEGBENCH"):
            cur.skip(5)
        p["conditions"] = int(cur())
        if p["conditions"]:
            return p                                  # layout depends on the classes
        cur.skip(19)                                  # adjustedOrderType .. usePriceMgmtAlgo
        cur.skip(5)                                   # duration, postToAts, autoCancelParent,
        #                                               advancedErrorOverride, manualOrderTime
        if p["contract"][7] == "IBKRATS":
            cur()
        if p["type"] in ("PEG BEST", "PEGBEST"):
            cur.skip(2)
            if fields[cur.pos - 1] == "Infinite":
                cur.skip(2)
        elif p["type"] in ("PEG MID", "PEGMID"):
            cur.skip(2)
        if cur.left:
            raise ValueError(f"placeOrder: {cur.left} fields beyond the version-{SERVER_VERSION} "
                             "layout")
        return p

    def _place_order(self, conn: _Conn, fields: list[str]) -> None:
        if self._drop_next_order == "before":
            self._drop_next_order = None
            conn.close()
            return
        drop_after = self._drop_next_order == "after"
        if drop_after:
            self._drop_next_order = None
            conn.muted = True
        try:
            self._place_order_inner(conn, fields)
        finally:
            if drop_after:
                conn.close()

    def _place_order_inner(self, conn: _Conn, fields: list[str]) -> None:
        try:
            p = self._parse_place_order(fields)
        except (ValueError, IndexError) as e:
            self.protocol_errors.append(str(e))
            self._error(conn, int(fields[1]), 320, f"Error reading request: {e}")
            return
        oid = p["order_id"]
        cid = conn.client_id or 0
        self._next_order_id = max(self._next_order_id, oid + 1)
        if p["conditions"]:
            self._error(conn, oid, 387, "Unsupported order type: the fake TWS has no conditions")
            return
        matches = self._match_contracts(p["contract"])
        if len(matches) != 1:
            self._error(conn, oid, 200, "No security definition has been found for the request")
            return
        inst = matches[0]
        if p["type"] not in ORDER_TYPES:
            self._error(conn, oid, 387, f"Unsupported order type {p['type']} (the fake TWS: "
                        "MKT, LMT, STP, STP LMT)")
            return
        qty = _d(p["qty"] or "0")
        if qty <= 0:
            self._error(conn, oid, 434, "The order size cannot be zero.")
            return
        lmt, aux = _num(p["lmt"]), _num(p["aux"])
        if p["type"] in ("LMT", "STP LMT") and lmt is None or p["type"].startswith("STP") \
                and aux is None:
            self._error(conn, oid, 321, "Error validating request.-'bP' : cause - "
                        "Missing price for order type " + p["type"])
            return
        if any(px is not None and px % inst.min_tick for px in (lmt, aux)):
            self._error(conn, oid, 110, "The price does not conform to the minimum price "
                        "variation for this contract.")
            return
        account = p["account"] or self.accounts[0]
        if account not in self.accounts:
            self._error(conn, oid, 321, f"Error validating request.-'bN' : cause - "
                        f"Invalid account {account}")
            return
        if p["what_if"]:
            self._what_if(conn, oid, inst, p, qty, account)
            return
        existing = self._orders.get((cid, oid))
        if existing is not None:
            self._modify(conn, existing, p, qty, lmt, aux)
            return
        o = FakeOrder(
            client_id=cid, order_id=oid, perm_id=next(self._perm), con_id=inst.con_id,
            account=account, action=p["action"], quantity=qty, order_type=p["type"],
            lmt_price=lmt, aux_price=aux, tif=p["tif"] or "DAY", oca_group=p["oca_group"],
            oca_type=int(p["oca_type"] or 0), order_ref=p["ref"], transmit=p["transmit"] == "1",
            parent_id=int(p["parent_id"] or 0), outside_rth=p["outside_rth"] == "1",
            exchange=p["contract"][7] or "SMART", placed_at=self.now())
        self._orders[(cid, oid)] = o
        if self._reject_next is not None:
            (reason, error_first), self._reject_next = self._reject_next, None
            o.status, o.reject_reason = "Inactive", reason
            o.completed_at, o.completed_status = self.now(), f"Order rejected - reason:{reason}"
            for c in self._owner(cid):
                if error_first:
                    self._error(c, oid, 201, f"Order rejected - reason:{reason}")
                self._order_status(c, o)
                if not error_first:
                    self._error(c, oid, 201, f"Order rejected - reason:{reason}")
            return
        if self._partial_next is not None:
            o.partial, self._partial_next = self._partial_next, None
        if o.transmit:
            self._transmit(o)

    def _group(self, o: FakeOrder) -> list[FakeOrder]:
        root = o.parent_id or o.order_id
        return sorted((x for x in self._orders.values() if x.client_id == o.client_id
                       and (x.order_id == root or x.parent_id == root)),
                      key=lambda x: x.order_id)

    def _transmit(self, o: FakeOrder) -> None:
        """Make the held orders of ``o``'s group live (the parent first), then match them."""
        self._event_id += 1
        group = [x for x in self._group(o) if x.status == "Held"]
        for x in group:
            parent = self._orders.get((x.client_id, x.parent_id)) if x.parent_id else None
            x.status = ("PreSubmitted" if parent is not None and parent.status != "Filled"
                        else "Submitted")
            self._report(x)
        for x in group:
            if x.status == "Submitted":
                self._match_static(self.instruments[x.con_id])
                break

    def _modify(self, conn: _Conn, o: FakeOrder, p: dict[str, Any], qty: Decimal,
                lmt: Decimal | None, aux: Decimal | None) -> None:
        if o.status in DONE_STATES:
            self._error(conn, o.order_id, 103, "Duplicate order id")
            return
        o.quantity, o.lmt_price, o.aux_price = qty, lmt, aux
        o.order_ref = p["ref"] or o.order_ref
        o.tif = p["tif"] or o.tif
        if o.status == "Held":
            if p["transmit"] == "1":
                o.transmit = True
                self._transmit(o)
            return
        self._event_id += 1
        self._report(o)
        self._match_static(self.instruments[o.con_id])

    def _what_if(self, conn: _Conn, oid: int, inst: Instrument, p: dict[str, Any],
                 qty: Decimal, account: str) -> None:
        """Answer a whatIf order with the margin before/after (nothing is placed)."""
        before = self._values(account)
        bid, ask, last = self._quote(inst)
        price = (ask if p["action"] == "BUY" else bid) or last or inst.strike
        key = (account, inst.con_id)
        saved_pos = copy.copy(self._positions.get(key))
        saved_cash, saved_realized = self.cash_balances[account], self.realized[account]
        self._apply_fill(account, inst, p["action"], qty, price, ZERO)
        after = self._values(account)
        if saved_pos is None:
            self._positions.pop(key, None)
        else:
            self._positions[key] = saved_pos
        self.cash_balances[account] = saved_cash
        self.realized[account] = saved_realized
        fake = FakeOrder(conn.client_id or 0, oid, 0, inst.con_id, account, p["action"], qty,
                         p["type"], _num(p["lmt"]), _num(p["aux"]), p["tif"] or "DAY",
                         p["oca_group"], 0, p["ref"], True, 0, False, "SMART", self.now(),
                         status="PreSubmitted")
        margin = [before["InitMarginReq"], before["MaintMarginReq"],
                  before["EquityWithLoanValue"],
                  after["InitMarginReq"] - before["InitMarginReq"],
                  after["MaintMarginReq"] - before["MaintMarginReq"],
                  after["EquityWithLoanValue"] - before["EquityWithLoanValue"],
                  after["InitMarginReq"], after["MaintMarginReq"], after["EquityWithLoanValue"]]
        self._send(conn, *self._open_order_fields(fake, what_if=True, margin=margin))

    # -- orders: reporting ---------------------------------------------------------------

    def _open_order_fields(self, o: FakeOrder, what_if: bool = False,
                           margin: list[Decimal] | None = None) -> list[Any]:
        """The openOrder (5) message at server version 176, as ib_async's decoder reads it."""
        inst = self.instruments[o.con_id]
        m: list[Any] = margin if margin is not None else [""] * 9
        commission = o.commission if (o.status == "Filled" and not what_if) else UNSET_DOUBLE
        return [
            5, o.order_id, *inst.contract_fields(o.exchange),
            o.action, o.quantity, o.order_type, o.lmt_price if o.lmt_price is not None else "0",
            o.aux_price if o.aux_price is not None else "0", o.tif, o.oca_group, o.account,
            "O", 0, o.order_ref, o.client_id, o.perm_id, o.outside_rth, False, "0", "", "",
            "", "", "",
            "",                                                         # faProfile (< 177)
            "", "", "", "", "", 0, "", "", 0, "", "", "", "", "", 0, False, False, False, "",
            o.oca_type or 3, False, False, "", o.parent_id, 0, "", 0, "", "",
            False, 0, "", "", "", "", "",                               # .. comboLegsDescrip
            0, 0, 0,                                                    # legs, order legs, params
            "", "", "",                                                 # scale
            "",                                                         # hedgeType
            False, "", "IB", False, False,                              # .. dncPresent
            "",                                                         # algoStrategy
            False, what_if, "PreSubmitted" if what_if else o.status, *m,
            commission, UNSET_DOUBLE, UNSET_DOUBLE, "USD", "", False, False,
            0,                                                          # conditions
            "None", "", "", "", "", "", "", 0, "", "", "", "", False, False, False, "",
            "", "", "",                                                 # duration .. autoCancelParent
            "", "", "", "", "",                                         # minTradeQty ..
        ]

    def _order_status(self, conn: _Conn, o: FakeOrder) -> None:
        status = "PreSubmitted" if o.status == "Held" else o.status
        self._send(conn, 3, o.order_id, status, o.filled, o.quantity - o.filled,
                   o.avg_fill_price, o.perm_id, o.parent_id, o.last_fill_price, o.client_id,
                   "", 0)

    def _report(self, o: FakeOrder) -> None:
        """Send openOrder and orderStatus for ``o`` to its client's connections."""
        for conn in self._owner(o.client_id):
            self._send(conn, *self._open_order_fields(o))
            self._order_status(conn, o)

    def _completed_order_fields(self, o: FakeOrder) -> list[Any]:
        """The completedOrder (101) message at server version 176 (it carries no orderId)."""
        inst = self.instruments[o.con_id]
        return [
            101, *inst.contract_fields(o.exchange),
            o.action, o.quantity, o.order_type, o.lmt_price if o.lmt_price is not None else "0",
            o.aux_price if o.aux_price is not None else "0", o.tif, o.oca_group, o.account,
            "O", 0, o.order_ref, o.perm_id, o.outside_rth, False, "0", "", "", "", "",
            "",                                                         # faProfile (< 177)
            "", "", "", "", "", 0, "", "", "", "", "", "", "", 0, False, False, "",
            o.oca_type or 3, 0, "", 0, "", "",                          # .. deltaNeutralAuxPrice
            False, 0, "", "", "",                                       # .. comboLegsDescrip
            0, 0, 0, "", "", "", "",                                    # legs .. hedgeType
            "", "IB", False, False, "",                                 # .. algoStrategy
            False, o.status, False, False, 0,                           # .. conditions
            "", "", "", False, False, "", o.filled, 0, False, "", False, False,
            self._parent_perm(o), _tws_time(o.completed_at or self.now()),
            o.completed_status or o.status,
            "", "", "", "", "",
        ]

    def _parent_perm(self, o: FakeOrder) -> Any:
        parent = self._orders.get((o.client_id, o.parent_id)) if o.parent_id else None
        return parent.perm_id if parent is not None else ""

    def _req_open_orders(self, conn: _Conn, fields: list[str]) -> None:
        self._send_open_orders(conn, only_client=True)

    def _req_all_open_orders(self, conn: _Conn, fields: list[str]) -> None:
        self._send_open_orders(conn, only_client=False)

    def _req_auto_open_orders(self, conn: _Conn, fields: list[str]) -> None:
        conn.auto_bind = fields[2] == "1"

    def _send_open_orders(self, conn: _Conn, only_client: bool) -> None:
        for o in sorted(self._orders.values(), key=lambda x: x.perm_id):
            if not o.is_open or only_client and o.client_id != conn.client_id:
                continue
            self._send(conn, *self._open_order_fields(o))
            self._order_status(conn, o)
        self._send(conn, 53, 1)

    def _req_completed_orders(self, conn: _Conn, fields: list[str]) -> None:
        for o in sorted(self._orders.values(), key=lambda x: x.completed_at or 0):
            if o.status in DONE_STATES:
                self._send(conn, *self._completed_order_fields(o))
        self._send(conn, 102)

    # -- orders: cancel ------------------------------------------------------------------

    def _cancel_order(self, conn: _Conn, fields: list[str]) -> None:
        oid = int(fields[2])
        o = self._orders.get((conn.client_id or 0, oid))
        if o is None:
            self._error(conn, oid, 135, f"Can't find order with id ={oid}")
            return
        if o.status in DONE_STATES:
            self._error(conn, oid, 10148, f"OrderId {oid} that needs to be cancelled cannot be "
                        f"cancelled, state: {o.status}.")
            return
        self._cancel(o, "Cancelled")

    def _cancel(self, o: FakeOrder, why: str) -> None:
        """Cancel ``o`` and its open children; report each (orderStatus + error 202)."""
        for x in [o] + [c for c in self._orders.values() if c.client_id == o.client_id
                        and c.parent_id == o.order_id and c.status not in DONE_STATES]:
            if x.status in DONE_STATES:
                continue
            was_held = x.status == "Held"
            x.status = "Cancelled"
            x.completed_at, x.completed_status = self.now(), why
            if was_held:
                continue
            for conn in self._owner(x.client_id):
                self._order_status(conn, x)
                self._error(conn, x.order_id, 202, "Order Canceled - reason:" + (
                    "" if why == "Cancelled" else why))

    def _req_global_cancel(self, conn: _Conn, fields: list[str]) -> None:
        for o in sorted(self._orders.values(), key=lambda x: x.perm_id):
            if o.status not in DONE_STATES:
                self._cancel(o, "Cancelled")

    def end_of_day(self) -> list[int]:
        """Cancel every open DAY order (TWS does at the session's close); return their ids."""
        def do() -> list[int]:
            done = []
            for o in sorted(self._orders.values(), key=lambda x: x.perm_id):
                if o.tif == "DAY" and o.status not in DONE_STATES:
                    self._cancel(o, "Cancelled")
                    done.append(o.order_id)
            return done
        return self._call(do)

    # -- orders: matching ----------------------------------------------------------------

    def _active(self, inst: Instrument) -> list[FakeOrder]:
        return sorted((o for o in self._orders.values() if o.con_id == inst.con_id
                       and o.status == "Submitted" and o.wait_event != self._event_id
                       and (o.fill_cap is None or o.filled < o.fill_cap)),
                      key=lambda o: o.perm_id)

    def _match_static(self, inst: Instrument) -> None:
        """Fill what the current quote reaches: buys at the ask, sells at the bid."""
        for _ in range(1000):
            bid, ask, last = self._quote(inst)
            done = False
            for o in self._active(inst):
                buy = o.action == "BUY"
                px = ask if buy else bid
                px = px if px is not None else last
                if px is None:
                    continue
                trig = last if last is not None else px
                if o.order_type.startswith("STP") and not o.triggered:
                    if (trig >= o.aux_price) if buy else (trig <= o.aux_price):
                        o.triggered = True
                    else:
                        continue
                if o.order_type in ("LMT", "STP LMT") and not (
                        (px <= o.lmt_price) if buy else (px >= o.lmt_price)):
                    continue
                self._fill(o, o.remaining, px)
                done = True
                break
            if not done:
                return

    def _walk(self, inst: Instrument, a: Decimal, b: Decimal, gap: bool) -> None:
        """Move the price from ``a`` to ``b`` (through every level, or jumping when ``gap``),
        filling the orders it reaches, nearest first."""
        for _ in range(1000):
            best: tuple[Decimal, int, FakeOrder, Decimal] | None = None
            for o in self._active(inst):
                hit = self._hit(o, a, b, gap)
                if hit is None:
                    continue
                point, price = hit
                key = (abs(point - a), o.perm_id, o, price)
                if best is None or key[:2] < best[:2]:
                    best = key
            if best is None:
                break
            _, _, o, price = best
            point = price if not gap else b
            inst.bid = inst.ask = inst.last = point
            self._push_ticks(inst)
            if o.order_type == "STP LMT" and not o.triggered:
                o.triggered = True
                if not ((price <= o.lmt_price) if o.action == "BUY" else (price >= o.lmt_price)):
                    a = point
                    continue
            self._fill(o, o.remaining, price)
            a = point
        inst.bid = inst.ask = inst.last = b

    @staticmethod
    def _hit(o: FakeOrder, a: Decimal, b: Decimal, gap: bool) -> tuple[Decimal, Decimal] | None:
        """Where on the move a -> b the order acts: (point, fill price) or None.

        A gap trades only at ``b``: market orders and triggered stops fill there, a stop
        triggers when ``b`` is through it, a limit fills when ``b`` satisfies it. A
        continuous move acts at the first price that satisfies the order: ``a`` itself, or
        the order's level on the way (limits at their limit, stops at their trigger).
        """
        buy = o.action == "BUY"
        market = o.order_type == "MKT" or (o.order_type == "STP" and o.triggered)
        stop = o.order_type.startswith("STP") and not o.triggered
        level = o.aux_price if stop else o.lmt_price

        def satisfied(p: Decimal) -> bool:
            if market:
                return True
            if stop:
                return p >= level if buy else p <= level
            return p <= level if buy else p >= level

        if gap:
            return (b, b) if satisfied(b) else None
        if satisfied(a):
            return a, a
        if not market and min(a, b) <= level <= max(a, b):
            return level, level
        return None

    # -- fills -----------------------------------------------------------------------------

    @staticmethod
    def _fee(inst: Instrument, qty: Decimal, value: Decimal, price: Decimal) -> Decimal:
        """IBKR fixed pricing for one order's cumulative quantity and value, USD."""
        if inst.sec_type == "OPT":
            per = (Decimal("0.65") if price >= Decimal("0.10") else
                   Decimal("0.50") if price >= Decimal("0.05") else Decimal("0.25"))
            return max(per * qty, Decimal("1.00")).quantize(CENT)
        return min(max(Decimal("0.005") * qty, Decimal("1.00")), value / 100).quantize(
            Decimal("0.0001"))

    def _fill(self, o: FakeOrder, qty: Decimal, price: Decimal) -> None:
        inst = self.instruments[o.con_id]
        if o.partial is not None:
            fraction, rest = o.partial
            o.partial = None
            part = (qty * _d(fraction)).to_integral_value(ROUND_DOWN)
            qty = max(part, Decimal(1)) if part < qty else qty
            o.wait_event = self._event_id
            if rest == "never":
                o.fill_cap = o.filled + qty
        if qty <= 0:
            return
        ts = self._fill_ts if self._fill_ts is not None else self.now()
        prev_value = o.avg_fill_price * o.filled
        o.filled += qty
        o.avg_fill_price = (prev_value + price * qty) / o.filled
        o.last_fill_price = price
        total_fee = self._fee(inst, o.filled, (prev_value + price * qty) * inst.multiplier, price)
        commission = total_fee - o.commission
        o.commission = total_fee
        realized = self._apply_fill(o.account, inst, o.action, qty, price, commission)
        if o.filled >= o.quantity:
            o.status = "Filled"
            o.completed_at, o.completed_status = ts, "Filled"
        e = Execution(
            exec_id=f"0000{o.perm_id:x}.{next(self._exec_seq):08x}.01.01", order=o, shares=qty,
            price=price, cum_qty=o.filled, avg_price=o.avg_fill_price, time=ts,
            commission=commission, realized_pnl=realized)
        self._execs.append(e)
        for conn in self._owner(o.client_id):
            self._send(conn, *self._exec_fields(-1, e))
            self._send(conn, *self._open_order_fields(o))
            self._order_status(conn, o)
            self._send(conn, *self._commission_fields(e))
        self._push_account(o.account, [o.con_id])
        self._after_fill(o, qty)

    def _after_fill(self, o: FakeOrder, qty: Decimal) -> None:
        """Activate children of a filled parent; reduce the other children of its parent (a
        bracket's legs) and the members of an ocaType 2/3 group by the filled quantity
        (cancelled at zero); cancel the members of an ocaType 1 group."""
        if o.status == "Filled":
            for c in sorted(self._orders.values(), key=lambda x: x.order_id):
                if c.client_id == o.client_id and c.parent_id == o.order_id \
                        and c.status == "PreSubmitted":
                    c.status = "Submitted"
                    self._report(c)
        siblings: list[FakeOrder] = []
        if o.parent_id:
            siblings += [x for x in self._orders.values() if x is not o
                         and x.client_id == o.client_id and x.parent_id == o.parent_id
                         and x.status not in DONE_STATES]
        if o.oca_group:
            siblings += [x for x in self._orders.values() if x is not o and x not in siblings
                         and x.account == o.account and x.oca_group == o.oca_group
                         and x.status not in DONE_STATES]
        for x in sorted(siblings, key=lambda x: x.perm_id):
            bracket = bool(o.parent_id) and x.parent_id == o.parent_id
            if bracket or o.oca_type in (2, 3):          # reduce by the filled quantity
                x.quantity = max(x.quantity - qty, x.filled)
                if x.quantity <= x.filled:
                    self._cancel(x, "OCA group")
                else:
                    self._report(x)
            else:
                self._cancel(x, "OCA group")

    def _apply_fill(self, account: str, inst: Instrument, action: str, qty: Decimal,
                    price: Decimal, commission: Decimal) -> Decimal | None:
        """Move cash and the position; return the realized P&L (USD) of a closing fill."""
        sign = 1 if action == "BUY" else -1
        mult = inst.multiplier
        self.cash_balances[account] -= sign * qty * price * mult + commission
        pos = self._positions.setdefault((account, inst.con_id), _Position())
        realized = None
        signed = sign * qty
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            cost = pos.avg_cost * abs(pos.qty) + price * qty + sign * commission / mult
            pos.qty += signed
            pos.avg_cost = cost / abs(pos.qty)
        else:
            closing = min(qty, abs(pos.qty))
            realized = (price - pos.avg_cost) * closing * mult * (1 if pos.qty > 0 else -1) \
                - commission
            pos.qty += signed
            if pos.qty == 0:
                pos.avg_cost = ZERO
            elif (pos.qty > 0) == (signed > 0):           # flipped through zero
                pos.avg_cost = price
            self.realized[account] += realized
        return realized

    def _exec_fields(self, req_id: int, e: Execution) -> list[Any]:
        o = e.order
        inst = self.instruments[o.con_id]
        exch = inst.primary_exchange if inst.sec_type == "STK" else "CBOE"
        return [11, req_id, o.order_id, *inst.contract_fields(exch), e.exec_id,
                _tws_time(e.time), o.account, exch, "BOT" if o.action == "BUY" else "SLD",
                e.shares, e.price, o.perm_id, o.client_id, 0, e.cum_qty, e.avg_price,
                o.order_ref, "", "", "", 2 if o.order_type in ("MKT", "STP") else 1]

    def _commission_fields(self, e: Execution) -> list[Any]:
        return [59, 1, e.exec_id, e.commission, "USD",
                e.realized_pnl if e.realized_pnl is not None else UNSET_DOUBLE,
                UNSET_DOUBLE, ""]

    def _req_executions(self, conn: _Conn, fields: list[str]) -> None:
        _, _v, req_id, client_id, acct, since, symbol, sec_type, exchange, side = fields
        for e in self._execs:
            o, inst = e.order, self.instruments[e.order.con_id]
            if client_id and int(client_id) and o.client_id != int(client_id):
                continue
            if acct and o.account != acct:
                continue
            if since:
                day, _, clock_ = since.replace("-", " ").partition(" ")
                t0 = dt.datetime.strptime(day + " " + (clock_.split(" ")[0] or "00:00:00"),
                                          "%Y%m%d %H:%M:%S").replace(tzinfo=dt.UTC)
                if e.time < t0.timestamp():
                    continue
            if symbol and inst.symbol != symbol.upper():
                continue
            if sec_type and inst.sec_type != sec_type.upper():
                continue
            if side and side.upper() not in (o.action, "BOT" if o.action == "BUY" else "SLD"):
                continue
            _ = exchange
            self._send(conn, *self._exec_fields(int(req_id), e))
            self._send(conn, *self._commission_fields(e))
        self._send(conn, 55, 1, req_id)

    # -- positions and account updates ---------------------------------------------------

    def _position_fields(self, account: str, cid: int) -> list[Any]:
        inst = self.instruments[cid]
        pos = self._positions.get((account, cid), _Position())
        return [61, 3, account, *inst.contract_fields(), pos.qty, pos.avg_cost * inst.multiplier]

    def _portfolio_fields(self, account: str, cid: int) -> list[Any]:
        inst = self.instruments[cid]
        pos = self._positions.get((account, cid), _Position())
        mark = self._mark(inst)
        mark = pos.avg_cost if mark is None else mark
        mv = pos.qty * mark * inst.multiplier
        unreal = mv - pos.qty * pos.avg_cost * inst.multiplier
        f = inst.contract_fields()
        return [7, 8, f[0], f[1], f[2], f[3], f[4], f[5], f[6], inst.primary_exchange
                if inst.sec_type == "STK" else "", f[8], f[9], f[10], pos.qty, mark,
                mv.quantize(CENT), pos.avg_cost * inst.multiplier, unreal.quantize(CENT),
                ZERO, account]

    def _account_rows(self, account: str) -> list[tuple[str, str, str]]:
        rows = [(k, str(v), "USD") for k, v in self._values(account).items()]
        rows += [("AccountCode", account, ""), ("AccountType", "INDIVIDUAL", ""),
                 ("Currency", "USD", "USD"),
                 ("TotalCashBalance", str(self.cash_balances[account].quantize(CENT)), "BASE"),
                 ("CashBalance", str(self.cash_balances[account].quantize(CENT)), "USD")]
        return rows

    def _req_positions(self, conn: _Conn, fields: list[str]) -> None:
        conn.pos_sub = True
        for (account, cid), pos in sorted(self._positions.items()):
            if pos.qty != 0:
                self._send(conn, *self._position_fields(account, cid))
        self._send(conn, 62, 1)

    def _cancel_positions(self, conn: _Conn, fields: list[str]) -> None:
        conn.pos_sub = False

    def _req_account_updates(self, conn: _Conn, fields: list[str]) -> None:
        _, _v, subscribe, account = fields
        account = account or self.accounts[0]
        if subscribe != "1":
            conn.acct_sub = None
            return
        conn.acct_sub = account
        for tag, value, cur in self._account_rows(account):
            self._send(conn, 6, 2, tag, value, cur, account)
        for (a, cid), pos in sorted(self._positions.items()):
            if a == account and pos.qty != 0:
                self._send(conn, *self._portfolio_fields(account, cid))
        self._send(conn, 8, 1, _utc(self.now()).strftime("%H:%M"))
        self._send(conn, 54, 1, account)

    def _req_account_updates_multi(self, conn: _Conn, fields: list[str]) -> None:
        _, _v, req_id, account, model, _ledger = fields
        conn.multi_subs[int(req_id)] = account
        for acct in ([account] if account and account != "All" else list(self.accounts)):
            for tag, value, cur in self._account_rows(acct):
                self._send(conn, 73, 1, req_id, acct, model, tag, value, cur)
        self._send(conn, 74, 1, req_id)

    def _cancel_account_updates_multi(self, conn: _Conn, fields: list[str]) -> None:
        conn.multi_subs.pop(int(fields[2]), None)

    def _req_account_summary(self, conn: _Conn, fields: list[str]) -> None:
        _, _v, req_id, _group, tags = fields
        wanted = [t for t in tags.split(",") if t]
        conn.summary_subs[int(req_id)] = wanted
        self._send_summary(conn, int(req_id), wanted)

    def _send_summary(self, conn: _Conn, req_id: int, wanted: list[str]) -> None:
        for account in self.accounts:
            rows = {t: (v, c) for t, v, c in self._account_rows(account)}
            for tag in wanted:
                if tag in rows:
                    value, cur = rows[tag]
                    self._send(conn, 63, 1, req_id, account, tag, value, cur)
        self._send(conn, 64, 1, req_id)

    def _cancel_account_summary(self, conn: _Conn, fields: list[str]) -> None:
        conn.summary_subs.pop(int(fields[2]), None)

    def _push_account(self, account: str, con_ids: list[int]) -> None:
        """Send changed positions, portfolio rows and account values to subscribers."""
        for conn in self._conns:
            if not conn.ready:
                continue
            if conn.pos_sub:
                for cid in con_ids:
                    self._send(conn, *self._position_fields(account, cid))
            if conn.acct_sub == account:
                for cid in con_ids:
                    self._send(conn, *self._portfolio_fields(account, cid))
                for tag, value, cur in self._account_rows(account):
                    self._send(conn, 6, 2, tag, value, cur, account)
                self._send(conn, 8, 1, _utc(self.now()).strftime("%H:%M"))
            for req_id, acct in conn.multi_subs.items():
                if acct in (account, "", "All"):
                    for tag, value, cur in self._account_rows(account):
                        self._send(conn, 73, 1, req_id, account, "", tag, value, cur)
            for req_id, wanted in conn.summary_subs.items():
                self._send_summary(conn, req_id, wanted)
        for key in [k for k, p in self._positions.items() if p.qty == 0]:
            del self._positions[key]

    # -- option lifecycle ----------------------------------------------------------------

    def expire(self, symbol: str, expiry: str, strike: Any, right: str,
               account: str | None = None) -> Decimal:
        """Expire an option worthless: its position is removed at zero; return the contracts
        removed (negative for a short position). Open orders on it are cancelled."""
        def do() -> Decimal:
            acct = account or self.accounts[0]
            cid = self.option_con_id(symbol, expiry, strike, right)
            pos = self._positions.get((acct, cid))
            qty = pos.qty if pos is not None else ZERO
            if pos is not None and qty:
                inst = self.instruments[cid]
                pnl = -pos.avg_cost * qty * inst.multiplier
                self.realized[acct] += pnl
                pos.qty = ZERO
                self.events.append({"event": "expired", "con_id": cid, "qty": qty,
                                    "time": self.now()})
            for o in list(self._orders.values()):
                if o.con_id == cid and o.status not in DONE_STATES:
                    self._cancel(o, "Expired")
            self._push_account(acct, [cid])
            return qty
        return self._call(do)

    def assign(self, symbol: str, expiry: str, strike: Any, right: str,
               contracts: int | None = None, account: str | None = None) -> Decimal:
        """Assign a short option: the option position shrinks by ``contracts`` (default all)
        and 100 shares per contract are bought (put) or sold (call) at the strike; return
        the shares delivered (positive bought).

        Raises
        ------
        ValueError
            When the account holds no short position in that option.
        """
        def do() -> Decimal:
            acct = account or self.accounts[0]
            cid = self.option_con_id(symbol, expiry, strike, right)
            inst = self.instruments[cid]
            pos = self._positions.get((acct, cid))
            if pos is None or pos.qty >= 0:
                raise ValueError(f"no short position in {inst.local_symbol} to assign")
            n = _d(contracts) if contracts is not None else -pos.qty
            n = min(n, -pos.qty)
            # the premium stays as credit: realized on the option = avg credit x contracts
            self.realized[acct] += pos.avg_cost * n * inst.multiplier
            pos.qty += n
            under = self.instruments[inst.under_con_id]
            shares = n * inst.multiplier
            action = "BUY" if inst.right == "P" else "SELL"
            self._apply_fill(acct, under, action, shares, inst.strike, ZERO)
            self.events.append({"event": "assigned", "con_id": cid, "contracts": n,
                                "shares": shares if action == "BUY" else -shares,
                                "price": inst.strike, "time": self.now()})
            self._push_account(acct, [cid, under.con_id])
            return shares if action == "BUY" else -shares
        return self._call(do)
