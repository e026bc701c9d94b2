"""Interactive Brokers: the broker port over the real ``ib_async`` client (TWS / IB Gateway).

:class:`IbkrBroker` implements :class:`~tradewarden.execution.base.Broker` for US
equities with ``ib_async.IB`` in its synchronous mode: every call runs ib_async's event
loop until its answer is in, and :meth:`IbkrBroker.process` pumps the loop once
(``IB.sleep(0)``) and turns what arrived (order status, open orders, executions,
commission reports, errors) into the port's order events.

Venue rules and their sources
-----------------------------
* **Wire and client behaviour**: ``ib_async`` 2.1.0 (``ib.py``: ``connectAsync``,
  ``placeOrder``, ``bracketOrder``, ``oneCancelsAll``, ``cancelOrder``,
  ``reqAllOpenOrders``, ``reqCompletedOrders``, ``reqExecutions``; ``wrapper.py``:
  ``orderStatus``, ``execDetails``, ``commissionReport``, ``error``), the TWS API
  documentation (interactivebrokers.github.io/tws-api: "Bracket Orders", "OCA Groups",
  "Order Management", "Message Codes") and ``/work/shared/CLIENT-FACTS.md``.
* **Ports**: TWS 7497 (paper) / 7496 (live); IB Gateway 4002 (paper) / 4001 (live) (TWS
  API docs, "Initial Setup").
* **Brackets** ("Bracket Orders"; ib_async ``bracketOrder``): the parent with
  ``transmit=False``, the take-profit ``LimitOrder`` with ``parentId`` and
  ``transmit=False``, the stop-loss ``StopOrder`` with ``parentId`` and
  ``transmit=True``: TWS holds the first two until the last arrives and activates the
  children when the parent fills. The two legs are also one OCA group
  (``ocaGroup = "<entry id>-oca"``, ``ocaType = 1``: "cancel all remaining orders with
  block", "OCA Groups"): a filled leg cancels its sibling at IBKR.
* **Client order ids** travel in ``Order.orderRef`` (TWS keeps it on the order, its
  executions and completed orders); each engine order is one IBKR order, so a bracket
  leg has its own id. The adapter keeps ``orderRef -> (orderId, permId)``.
* **Sizes**: whole shares (the instrument's quantity increment is 1), rounded down;
  an order that rounds to 0 shares is refused (``ValueError``) before anything is sent.
* **Prices** are rounded to the contract's ``minTick`` (``reqContractDetails``) against
  the trader: a buy limit DOWN (never pays more than asked), a sell limit (the
  take-profit) DOWN (the plan's gain is not overstated), a sell stop trigger UP (the
  stop fires no later than the strategy's level), a buy stop trigger DOWN.
* **Time in force**: entries and exits ``DAY`` (an order sent after the close works in
  the next session: "decide after the close, order for the next open"); bracket legs
  ``GTC`` (the protection outlives the day). :meth:`IbkrBroker.close_position` sends a
  ``DAY`` market order.
* **Statuses** (TWS "Order Management"; ib_async ``OrderStatus``): ``PendingSubmit`` /
  ``ApiPending`` -> not yet acknowledged; ``PreSubmitted`` (held: a bracket child, an
  order waiting for the open, a simulated stop) -> ``accepted``; ``Submitted`` ->
  ``working`` for limit and stop orders (a market order stays ``accepted`` until its
  fill); a bracket leg is ``working`` (``bracket leg live``) once its entry filled;
  ``Filled`` -> ``filled`` once every execution is reported; ``Cancelled`` /
  ``ApiCancelled`` -> ``cancelled`` (an OCA sibling's reason ``oco: other leg filled``);
  an error TWS sent for the order (201 "Order rejected - reason: ...", 203, 110 on a new
  order, ...) before it ended -> ``rejected`` with TWS's words; ``Inactive`` ("the order
  was received by the system but is no longer active because it was rejected or
  canceled", TWS "Order Management") -> ``rejected`` (``cancelled`` after a partial
  fill). TWS reports the end of a ``DAY`` order as ``Cancelled``: it is ``cancelled``
  here, not ``expired``. Warnings (codes 2100-2199, 399, 404, ...; ib_async's list) are
  not ends.
* **Fills**: one per execution (``execId``), quantity in shares, price in USD, fee =
  the execution's ``commissionReport.commission`` (USD); ``ts`` = the execution's time
  at the venue (UTC epoch seconds). An execution is reported when its commission report
  has arrived (TWS sends it right after the execution); one still without it after
  ``commission_wait`` clock seconds is reported with fee 0 and an alert. Orders are
  reported in the order their news arrived, an entry before its legs and a leg's fill
  before its sibling's OCA cancel, whatever order TWS's messages came in.

Equity options
--------------
* An order whose ``symbol`` is an OCC option symbol
  (:func:`~tradewarden.domain.options.parse_occ_symbol`: ``"AAPL  260220P00180000"``, the
  padding optional) goes to IBKR as an ``ib_async.Option`` (root as the symbol, expiry
  ``YYYYMMDD``, strike, right, ``SMART``, multiplier 100, ``USD``), qualified once by
  ``reqContractDetails`` and cached. ``quantity`` is in **contracts** (whole numbers: a
  fraction is refused, nothing rounded), prices in USD **per share** (the premium).
  Market and limit orders only (``SELL`` to open a short put, ``BUY`` to close), no
  bracket legs; ``tif`` DAY.
* Limit prices go on the option tick, against the trader: a sell UP (never less credit
  than asked), a buy DOWN (never pays more). The tick is :func:`option_tick`: 0.01 USD
  below 3.00 and 0.05 USD from 3.00 (the Penny Interval Program's increments, Cboe
  Options Rules 5.4 and "Penny Interval Program"; Nasdaq PHLX Options 3 Section 3), never
  finer than the contract details' ``minTick``.
* The fill snapshot: the adapter subscribes to the contract's streaming market data
  (``reqMktData``: bid, ask and IBKR's model greeks, tick type 13) when it first
  qualifies the contract, before any order is sent, and waits up to ``ack_timeout`` for
  the first model greeks. In the execution handler (ib_async's ``execDetailsEvent``, as
  the execution arrives, not at the next poll) it reads that ticker
  (:meth:`~tradewarden.execution.ibkr_options.IbkrOptions.fill_snapshot`: delta, gamma,
  theta, vega, implied volatility, the underlying's price, bid and ask) and keeps it
  with the execution's client order id and ``execId`` until
  :meth:`IbkrBroker.drain_option_snapshots`. ib_async decodes TWS's messages in order,
  so the ticker holds the market TWS had sent before the execution. An execution first
  seen in a lookup after a reconnect has no snapshot (the moment is gone).
* Positions: :meth:`IbkrBroker.option_positions` (OCC key, signed contracts, average
  cost per share); an assignment shows as the option position gone and 100 shares per
  contract in the stock position, as IBKR reports them.
* Fills of an option order are reported by :meth:`IbkrBroker.process` for a bar whose
  ``symbol`` is the order's OCC symbol; the commission is IBKR's report (Fixed pricing,
  US options: USD 0.65 per contract, minimum USD 1.00 per order; ibkr.com "Commissions -
  Options").

Never doubled
-------------
A disconnect or no acknowledgement within ``ack_timeout`` seconds after ``placeOrder``
leaves the outcome unknown: :meth:`IbkrBroker.submit` returns nothing (the order stays
``submitted``) and notes it in :attr:`IbkrBroker.alerts`. Nothing is sent again before
the order is looked up by its ``orderRef`` (:meth:`IbkrBroker.lookup`: the session's
trades, ``reqAllOpenOrders``, ``reqCompletedOrders``, ``reqExecutions``): after the
reconnect the deployment reconciles, and the engine sends an order again only when the
lookup says IBKR never received it. :meth:`IbkrBroker.submit` itself looks an id up
again before sending it a second time. A bracket cut off after its entry (sent with
``transmit=False``) reached TWS leaves that entry held, never transmitted: it is not an
order IBKR works or reports, and the bracket is sent again whole under the same ids.

Connection
----------
A lost session (ib_async's ``disconnectedEvent``) blocks entries
(:meth:`IbkrBroker.entry_blocks`: ``broker_disconnected: <why>`` for every symbol) and
exits (:meth:`IbkrBroker.exit_blocks`, the same), and appends an alert. Meanwhile
nothing is sent: :meth:`IbkrBroker.submit` answers a new order ``rejected`` (``not sent:
broker_disconnected: <why>``) and raises
:class:`~tradewarden.execution.venue.VenueUnavailable` for an order whose earlier placing
had an unknown outcome (the reconnect's lookup settles it); :meth:`IbkrBroker.cancel` and
:meth:`IbkrBroker.cancel_all` cancel nothing: the orders at IBKR, the protective
stop-loss and take-profit legs first of all, stay there and keep working while the
adapter is away (TWS holds them, not the API session). :meth:`IbkrBroker.maintain`
tries to reconnect every ``reconnect_every`` (60) seconds of the deployment's clock
and returns ``True`` once after a reconnect: the deployment then reconciles before
anything else trades. TWS's own loss of its link to IBKR (error 1100) blocks entries
the same way until 1101/1102 ("connectivity restored"), which also asks for a
reconciliation.

Time: the clock (``now()``, ``wait_until()``) stamps events and paces the reconnects
and the connect backoff. The only waits on the network are ib_async's own: a request's
answer (at most ``request_timeout`` seconds), and at most ``ack_timeout`` seconds for
TWS's acknowledgement of an order or a cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any, NamedTuple, Protocol

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from tradewarden.domain import (
    Bar,
    Fill,
    Instrument,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    Side,
)
from tradewarden.domain.instrument import to_decimal
from tradewarden.domain.options import (
    OptionFieldError,
    OptionFillSnapshot,
    format_occ_symbol,
    option_tick,
    parse_occ_symbol,
)
from tradewarden.execution.base import (
    BrokerCapabilities,
    OrderEvent,
    OrderEventKind,
    VenueAccount,
    VenueOrder,
    report_step,
)
from tradewarden.execution.venue import Preflight, VenueError, VenueUnavailable

__all__ = ["BROKER_DISCONNECTED", "LIVE_PORT", "PAPER_PORT", "RECONNECT_EVERY", "IbkrAccountSummary",
           "IbkrBroker", "IbkrOptionPosition", "IbkrPosition", "connect_hint", "option_tick"]


class Clock(Protocol):
    """The time this adapter needs (``tradewarden.engine.clock.Clock``'s shape; the engine
    is a higher layer than execution, so it is not imported)."""

    def now(self) -> int:
        """Return the current time, UTC epoch seconds."""

    def wait_until(self, ts: int) -> None:
        """Return once :meth:`now` is at least ``ts`` (UTC epoch seconds)."""


VENUE = "ibkr"
# ib_async logs every TWS error and notice itself; the adapter turns those into events,
# alerts and rejections. Without a handler of ours Python's last-resort handler would
# print them on the terminal of `warden paper` / `warden live`; the daemon's logging
# configuration (a root handler) still receives them.
logging.getLogger("ib_async").addHandler(logging.NullHandler())

#: TWS's default API ports (TWS API docs, "Initial Setup"); IB Gateway uses 4002 / 4001.
PAPER_PORT = 7497
LIVE_PORT = 7496
#: Clock seconds between reconnect attempts while the session is down.
RECONNECT_EVERY = 60
#: The reason prefix of the entry block while the session is down.
BROKER_DISCONNECTED = "broker_disconnected"
K = OrderEventKind
_ZERO = Decimal(0)
_LEG_LIVE = "bracket leg live"
_OCO = "oco: other leg filled"
_DONE = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
_CANCELLED = frozenset({"Cancelled", "ApiCancelled"})
_HELD = frozenset({"PreSubmitted"})
_ACKED = frozenset({"PreSubmitted", "Submitted", "Filled", "Cancelled", "ApiCancelled",
                    "Inactive", "ValidationError", "ApiUpdate", "PendingCancel"})
#: TWS codes ib_async treats as warnings on an order (``wrapper.error``): not an end.
_WARNINGS = frozenset({105, 110, 165, 321, 329, 399, 404, 434, 492, 10167})
#: Connectivity between TWS and IBKR's servers lost / restored (TWS "Message Codes").
_TWS_LOST = 1100
_TWS_BACK = frozenset({1101, 1102})
#: Order-cancel confirmation ("Order Canceled - reason:").
_CANCEL_CONFIRM = 202
#: A cancel TWS could not carry out (unknown order; already filled or cancelled): the
#: order's own status says how it ended.
_CANCEL_REFUSED = frozenset({10147, 10148, 10149})
#: Pump interval while waiting for an acknowledgement, seconds (network time).
_TICK = 0.02


@dataclass(frozen=True)
class IbkrAccountSummary:
    """The account values ``warden ibkr check`` prints (``reqAccountUpdates`` tags).

    Parameters
    ----------
    account : str
        The IBKR account id (``DU1234567`` for paper).
    currency : str
        The currency of the values (the account's base currency, ``USD``).
    net_liquidation, buying_power, available_funds, excess_liquidity : Decimal or None
        ``NetLiquidation``, ``BuyingPower``, ``AvailableFunds``, ``ExcessLiquidity``;
        ``None`` when TWS did not send the tag.
    init_margin_req, maint_margin_req : Decimal or None
        ``InitMarginReq``, ``MaintMarginReq``: the margin the positions require.
    cash : Decimal or None
        ``TotalCashValue``.
    """

    account: str
    currency: str
    net_liquidation: Decimal | None
    buying_power: Decimal | None
    available_funds: Decimal | None
    excess_liquidity: Decimal | None
    init_margin_req: Decimal | None
    maint_margin_req: Decimal | None
    cash: Decimal | None


@dataclass(frozen=True)
class IbkrPosition:
    """One position of the account as TWS reports it (``reqPositions``).

    Parameters
    ----------
    account : str
    symbol : str
        The contract's symbol (``AAPL``); options have their ``localSymbol``.
    sec_type : str
        ``STK``, ``OPT``, ...
    quantity : Decimal
        Shares (or contracts), negative when short.
    avg_cost : Decimal
        Average cost per share (per contract, multiplier included, for options), in
        ``currency``.
    currency : str
    """

    account: str
    symbol: str
    sec_type: str
    quantity: Decimal
    avg_cost: Decimal
    currency: str


class IbkrOptionPosition(NamedTuple):
    """One option position of the account, as IBKR reports it.

    Attributes
    ----------
    occ_symbol : str
        The 21-character OCC key (``"AAPL  260220P00180000"``).
    contracts : Decimal
        Signed: negative when short.
    avg_cost : Decimal
        Average cost per share, USD (IBKR's per-contract ``avgCost`` divided by the
        multiplier); for a short position, the average credit received.
    """

    occ_symbol: str
    contracts: Decimal
    avg_cost: Decimal


@dataclass(eq=False)
class _Track:
    """One engine order sent (or adopted) as one IBKR order."""

    order: Order
    quantity: Decimal                 # shares sent
    order_id: int = 0                 # ib orderId (this client's)
    perm_id: int = 0                  # TWS's permanent id
    parent: str | None = None         # a bracket leg: its entry's client order id
    uncertain: str | None = None      # why the placing's outcome is unknown
    seen: set[str] = field(default_factory=set)                # execIds reported whole
    skip: dict[str, Decimal] = field(default_factory=dict)     # execId -> shares booked of it
    waiting: dict[str, int] = field(default_factory=dict)      # execId -> clock time first seen
    filled: Decimal = _ZERO           # shares reported to the engine
    booked: Decimal | None = None     # adopted: booked shares, seeded at the next look
    error: tuple[int, str] | None = None    # the last non-warning TWS error for the order
    cancel_reason: str | None = None  # we asked for the cancel, and why
    short_noted: bool = False         # alerted: filled at IBKR, executions missing


def connect_hint(host: str, port: int, client_id: int, exc: BaseException | None,
                 errors: list[tuple[int, str]]) -> str:
    """Return one line saying what is wrong when a connection to TWS / IB Gateway fails.

    Parameters
    ----------
    host, port, client_id
        What was tried.
    exc : BaseException or None
        What ``IB.connect`` raised.
    errors : list of (int, str)
        TWS error codes and texts received while connecting.

    Returns
    -------
    str
        Refused connection -> nothing listens there (wrong port, TWS / IB Gateway not
        running, or its API not enabled); error 326 or a connection closed during the
        handshake -> the client id is in use by another session; a timeout after the
        socket opened -> the API is not enabled, or this host is not in Trusted IPs
        (TWS: Configure -> API -> Settings); anything else with TWS's words.
    """
    where = f"{host}:{port}"
    codes = {c for c, _ in errors}
    words = "; ".join(f"error {c}: {t}" for c, t in errors[-3:])
    text = f"{type(exc).__name__}: {exc}" if exc is not None else ""
    if 326 in codes or "already in use" in text:
        return (f"client id {client_id} is already in use at {where} (error 326): another "
                "session (TWS, a script, another deployment) is connected with it; choose "
                "another [venue] client_id or close that session")
    if isinstance(exc, ConnectionRefusedError) or "Connect call failed" in text or "refused" in text.lower():
        return (f"connection refused at {where}: nothing accepts API connections there. Is TWS "
                f"or IB Gateway running, on this port (TWS {PAPER_PORT} paper / {LIVE_PORT} live, "
                "IB Gateway 4002 paper / 4001 live), with 'Enable ActiveX and Socket Clients' on?")
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return (f"{where} accepted the connection but the API handshake timed out: enable "
                "'Enable ActiveX and Socket Clients' (TWS: Configure -> API -> Settings), add "
                "this machine's address to 'Trusted IPs' (or accept the connection prompt in "
                f"TWS), and check that client id {client_id} is not in use by another session"
                + (f" ({words})" if words else ""))
    return f"cannot connect to {where}: {text or 'failed'}" + (f" ({words})" if words else "")


def _dec(value: Any) -> Decimal | None:
    """A number from ib_async (float, str, ``UNSET_DOUBLE``) as a Decimal, or None."""
    if value is None or value == "":
        return None
    try:
        d = to_decimal(value if not isinstance(value, str) else value.strip())
    except (ValueError, ArithmeticError):
        return None
    if abs(d) >= Decimal("1e300"):     # ib_async's UNSET_DOUBLE (sys.float_info.max)
        return None
    return d


def _qty(value: Any) -> Decimal:
    """Shares (or contracts) from ib_async's float: whole numbers as ``Decimal('10')``."""
    d = _dec(value) or _ZERO
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()


def _epoch(t: Any, default: int) -> int:
    """An ib_async time (aware or naive ``datetime``) as UTC epoch seconds."""
    if isinstance(t, datetime):
        if t.year <= 1970:
            return default
        return int(t.timestamp())
    return default


def _round(value: Decimal, step: Decimal, mode: str) -> Decimal:
    steps = (value / step).to_integral_value(rounding=mode)
    return (steps * step).quantize(step) if step.as_tuple().exponent < 0 else steps * step


_PENNY = Decimal("0.01")


def _occ_of(contract: Any) -> str | None:
    """The 21-character OCC key of an ib_async option contract, or None."""
    local = (getattr(contract, "localSymbol", "") or "").strip()
    if local:
        with contextlib.suppress(OptionFieldError):
            o = parse_occ_symbol(local)
            return format_occ_symbol(o.root, o.expiration, o.right, o.strike)
    try:
        exp = datetime.strptime(str(contract.lastTradeDateOrContractMonth)[:8], "%Y%m%d").date()
        return format_occ_symbol(contract.tradingClass or contract.symbol, exp,
                                 str(contract.right)[:1], to_decimal(float(contract.strike)))
    except (ValueError, OptionFieldError, ArithmeticError):
        return None


def _occ_key(symbol: str) -> str | None:
    """``symbol`` as a 21-character OCC key when it is an OCC option symbol, else None."""
    try:
        o = parse_occ_symbol(symbol)
    except OptionFieldError:
        return None
    return format_occ_symbol(o.root, o.expiration, o.right, o.strike)


class IbkrBroker:
    """Interactive Brokers (US equities and equity options) through ``ib_async``; implements
    the ``Broker`` port.

    Build it with :meth:`connect`. Module notes give the venue rules, the never-doubled
    discipline and the connection handling. Use it from the thread that connected it:
    ib_async's synchronous client reads the socket in that thread's event loop (any other
    thread gets ``RuntimeError``).

    Parameters
    ----------
    ib : ib_async.IB
        A connected client.
    instruments : dict of str to Instrument
        Per symbol (``AAPL``): ``minTick`` as the price increment (USD), 1 share as the
        quantity increment.
    contracts : dict of str to ib_async.Contract
        The qualified contract per symbol (``conId`` set).
    account : str
        The IBKR account the orders go to and the positions are read from.
    clock : Clock
    host, port, client_id
        Where :meth:`maintain` reconnects.
    timeout : float
        Seconds ib_async waits for the API handshake and each start-up request.
    ack_timeout : float
        Longest network wait, in seconds, for TWS's acknowledgement of an order or a
        cancel before the command returns (the rest arrives through :meth:`process`).
    reconnect_every : float
        Clock seconds between reconnect attempts while disconnected.
    commission_wait : float
        Clock seconds an execution waits for its commission report before it is
        reported with fee 0 (and an alert).
    request_timeout : float
        Longest network wait for one blocking request (lookups, open orders), seconds
        (ib_async's ``IB.RequestTimeout``); past it the call raises ``VenueUnavailable``.
    Attributes
    ----------
    capabilities : BrokerCapabilities
        Native bracket and OCO, stop orders, client order ids (``orderRef``), partial fills.
    alerts : list of str
        What a person must read: the session lost or back, a placing whose outcome is
        unknown, a commission report that never came, two IBKR orders under one id. The
        caller drains it.

    Raises
    ------
    ValueError
        A negative timeout or wait.
    """

    capabilities = BrokerCapabilities(native_bracket=True, native_oco=True, stop_orders=True,
                                      client_order_ids=True, partial_fills=True)

    def __init__(self, ib: Any, instruments: dict[str, Instrument], contracts: dict[str, Any], *,
                 account: str, clock: Clock, host: str = "127.0.0.1", port: int = PAPER_PORT,
                 client_id: int = 1, timeout: float = 10.0, ack_timeout: float = 2.0,
                 reconnect_every: float = RECONNECT_EVERY, commission_wait: float = 30.0,
                 request_timeout: float = 60.0) -> None:
        for name, value in (("timeout", timeout), ("ack_timeout", ack_timeout),
                            ("request_timeout", request_timeout),
                            ("reconnect_every", reconnect_every), ("commission_wait", commission_wait)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        self.ib = ib
        self.instruments = dict(instruments)
        self.contracts = dict(contracts)
        self.account_id = account
        self.clock = clock
        self.host, self.port, self.client_id = host, int(port), int(client_id)
        self.timeout = float(timeout)
        self.ack_timeout = float(ack_timeout)
        self.reconnect_every = float(reconnect_every)
        self.commission_wait = float(commission_wait)
        self.request_timeout = float(request_timeout)
        ib.RequestTimeout = self.request_timeout     # every blocking request: never hang on TWS
        self.alerts: list[str] = []
        self._tracks: dict[str, _Track] = {}          # client order id -> track (entries, legs, exits)
        self._by_oid: dict[int, str] = {}              # ib orderId -> client order id
        self._reported: dict[str, OrderStatus] = {}    # client order id -> status told to the engine
        self._touched: dict[str, int] = {}             # client order id -> arrival rank since last look
        self._rank = 0
        self._down: str | None = None                  # why the session is down
        self._tws_down: str | None = None              # TWS's own link to IBKR is down (1100)
        self._last_attempt: float | None = None
        self._reconnected = False
        self._last_api_error = ""
        self._conn_errors: list[tuple[int, str]] = []
        self._thread = threading.get_ident()
        # equity options: per order symbol (as the desk spells it) its instrument (the
        # option tick), qualified contract and streaming ticker; snapshots taken at fills
        self._opt_instruments: dict[str, Instrument] = {}
        self._opt_contracts: dict[str, Any] = {}
        self._tickers: dict[str, Any] = {}
        self._snapshots: list[tuple[str, str, OptionFillSnapshot]] = []
        self._snapped: set[str] = set()
        self._options: Any = None
        self._wire(ib)

    # -- construction --------------------------------------------------------------------
    @classmethod
    def connect(cls, host: str, port: int, client_id: int, account: str | None,
                symbols: Iterable[str], clock: Clock, *, timeout: float = 10.0,
                attempts: int = 3, ack_timeout: float = 2.0,
                reconnect_every: float = RECONNECT_EVERY, commission_wait: float = 30.0,
                request_timeout: float = 60.0, exchange: str = "SMART", currency: str = "USD",
                ib_factory: Callable[[], Any] | None = None) -> IbkrBroker:
        """Connect to TWS / IB Gateway, check the account and read each symbol's contract.

        Parameters
        ----------
        host, port : str, int
            TWS 7497 paper / 7496 live; IB Gateway 4002 / 4001.
        client_id : int
            The API client id (unique per connected session).
        account : str or None
            The account to trade; ``None`` or ``""`` takes the login's only account.
        symbols : iterable of str
            US stock symbols (``AAPL``; ``AAPL-USD`` is read as ``AAPL``).
        clock : Clock
            Paces the backoff between attempts (1, 2, 4 ... s through ``wait_until``).
        timeout : float
            Seconds ib_async waits for the handshake and each start-up request.
        attempts : int
            Connection attempts (>= 1) for a refused connection or a timeout; a client
            id in use is not retried.
        ack_timeout, reconnect_every, commission_wait, request_timeout
            As the constructor.
        exchange, currency : str
            The contracts' routing and currency (``SMART``, ``USD``).
        ib_factory : callable, optional
            Builds the ``ib_async.IB`` client (a test may wrap it).

        Returns
        -------
        IbkrBroker
            Connected, with :attr:`instruments` and :attr:`contracts` in ``symbols`` order.

        Raises
        ------
        VenueUnavailable
            No connection after ``attempts``: the message says what is wrong
            (:func:`connect_hint`).
        VenueError
            The account is not one of the login's (or several and none chosen), or a
            symbol has no US stock contract at IBKR.
        ValueError
            ``attempts`` below 1 or no symbols.
        """
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts!r}")
        syms = [s.strip().upper() for s in symbols if s.strip()]
        if not syms:
            raise ValueError("ibkr: no symbols to trade")
        if ib_factory is None:
            from ib_async import IB
            ib_factory = IB
        ib = ib_factory()
        errors: list[tuple[int, str]] = []
        api_errors: list[str] = []

        def on_error(req_id: int, code: int, text: str, _contract: Any = None) -> None:
            errors.append((int(code), str(text)))

        def on_api_error(msg: str) -> None:
            api_errors.append(str(msg))

        ib.errorEvent += on_error
        ib.client.apiError += on_api_error
        def refused_id() -> bool:
            if api_errors and any("already in use" in m for m in api_errors):
                errors.append((326, api_errors[-1]))
            return any(c == 326 for c, _ in errors)

        def attempt() -> None:
            errors.clear()
            ib.connect(host, int(port), clientId=int(client_id), timeout=timeout)

        # 1, 2, 4 ... s between attempts, waited on the deployment's clock; a client id
        # in use (326) is not retried: another session holds it until it logs out
        retrying = Retrying(
            stop=stop_after_attempt(attempts), wait=wait_exponential(multiplier=1, min=1),
            sleep=lambda seconds: clock.wait_until(int(clock.now() + seconds)),
            retry=retry_if_exception(lambda exc: isinstance(exc, (OSError, TimeoutError,
                                                                  ConnectionError))
                                     and not refused_id()),
            reraise=True)
        try:
            try:
                retrying(attempt)
            except (OSError, TimeoutError, ConnectionError) as exc:
                refused_id()
                raise VenueUnavailable(VENUE, connect_hint(host, int(port), int(client_id),
                                                           exc, errors)) from None
            managed = list(ib.managedAccounts())
            if account:
                if managed and account not in managed:
                    ib.disconnect()
                    raise VenueError(VENUE, f"account {account} is not one of this login's "
                                     f"accounts ({', '.join(managed)}); set [venue] account")
                chosen = account
                if len(managed) != 1:       # ib_async subscribed to a sole account only
                    ib.reqAccountUpdates(chosen)
            elif len(managed) == 1:
                chosen = managed[0]
            else:
                ib.disconnect()
                raise VenueError(VENUE, "this login manages several accounts ("
                                 f"{', '.join(managed) or 'none listed'}); set [venue] account")
        finally:
            ib.errorEvent -= on_error
            ib.client.apiError -= on_api_error
        instruments, contracts = cls._read_contracts(ib, syms, exchange, currency)
        return cls(ib, instruments, contracts, account=chosen, clock=clock, host=host,
                   port=int(port), client_id=int(client_id), timeout=timeout,
                   ack_timeout=ack_timeout, reconnect_every=reconnect_every,
                   commission_wait=commission_wait, request_timeout=request_timeout)

    @staticmethod
    def _read_contracts(ib: Any, symbols: list[str], exchange: str,
                        currency: str) -> tuple[dict[str, Instrument], dict[str, Any]]:
        """Each symbol's stock contract (``reqContractDetails``) and its instrument."""
        from ib_async import Stock
        instruments: dict[str, Instrument] = {}
        contracts: dict[str, Any] = {}
        for sym in symbols:
            ticker = sym.partition("-")[0]
            details = [d for d in ib.reqContractDetails(Stock(ticker, exchange, currency))
                       if d.contract is not None and d.contract.secType == "STK"
                       and (not d.contract.currency or d.contract.currency == currency)]
            if not details:
                raise VenueError(VENUE, f"no {currency} stock {ticker!r} at IBKR ({exchange}; "
                                 "reqContractDetails found none): check the symbol")
            if len(details) > 1:
                raise VenueError(VENUE, f"stock {ticker!r} is ambiguous at IBKR ("
                                 + ", ".join(f"{d.contract.primaryExchange or d.contract.exchange} "
                                             f"conId {d.contract.conId}" for d in details) + ")")
            d = details[0]
            c = d.contract
            c.exchange = exchange         # route through SMART, as asked
            tick = _dec(d.minTick)
            if tick is None or tick <= 0:
                raise VenueError(VENUE, f"stock {ticker}: contract details carry no minTick")
            instruments[sym] = Instrument(
                sym, ticker, currency, tick, Decimal(1), min_notional=_ZERO,
                source=f"ibkr reqContractDetails conId {c.conId} (minTick {tick})")
            contracts[sym] = c
        return instruments, contracts

    def _wire(self, ib: Any) -> None:
        ib.disconnectedEvent += self._on_disconnected
        ib.errorEvent += self._on_error
        ib.orderStatusEvent += self._on_trade
        ib.openOrderEvent += self._on_trade
        ib.execDetailsEvent += self._on_exec
        ib.commissionReportEvent += self._on_commission
        ib.client.apiError += self._on_api_error

    # -- event handlers (ib_async calls them while its loop runs) -----------------------
    def _touch(self, cid: str | None) -> None:
        if cid and cid in self._tracks and cid not in self._touched:
            self._rank += 1
            self._touched[cid] = self._rank

    def _cid_of(self, trade: Any) -> str | None:
        ref = getattr(trade.order, "orderRef", "") or ""
        if ref in self._tracks:
            return ref
        return self._by_oid.get(int(trade.order.orderId or 0))

    def _on_trade(self, trade: Any) -> None:
        self._touch(self._cid_of(trade))

    def _on_exec(self, trade: Any, fill: Any) -> None:
        cid = (fill.execution.orderRef if fill.execution.orderRef in self._tracks
               else self._cid_of(trade))
        self._touch(cid)
        if cid is not None and cid in self._tracks:
            self._snapshot(self._tracks[cid], fill)

    def _on_commission(self, trade: Any, fill: Any, _report: Any) -> None:
        cid = (fill.execution.orderRef if fill.execution.orderRef in self._tracks
               else self._cid_of(trade))
        self._touch(cid)

    def _snapshot(self, t: _Track, fill: Any) -> None:
        """Keep the option's market at this execution (module notes, "Equity options")."""
        eid = fill.execution.execId
        ticker = self._tickers.get(t.order.symbol)
        if ticker is None or eid in self._snapped:
            return
        self._snapped.add(eid)
        self._snapshots.append((t.order.client_order_id, eid, self._opts().fill_snapshot(ticker)))

    def _opts(self) -> Any:
        if self._options is None:
            from tradewarden.execution.ibkr_options import IbkrOptions
            self._options = IbkrOptions(self.ib, lambda: float(self.clock.now()))
        return self._options

    def drain_option_snapshots(self) -> list[tuple[str, str, OptionFillSnapshot]]:
        """Return the fill snapshots taken since the last call, oldest first, and forget them.

        Each is taken in the execution handler, as the execution arrives (module notes,
        "Equity options"); the options desk drains them after each step and writes them
        to ``option_fill_snapshots`` keyed by the fill's sequence number.

        Returns
        -------
        list of (str, str, OptionFillSnapshot)
            The client order id, IBKR's ``execId`` (the port's fill carries the same
            execution), and the snapshot (prices USD per share; ``captured_ts`` UTC epoch
            seconds of the adapter's clock).
        """
        self._pump()
        out, self._snapshots = self._snapshots, []
        return out

    def _on_api_error(self, msg: str) -> None:
        self._last_api_error = str(msg)

    def _on_error(self, req_id: int, code: int, text: str, _contract: Any = None) -> None:
        code = int(code)
        if code == _TWS_LOST:
            self._tws_down = f"TWS lost its connection to IBKR (error {code}: {text})"
            self.alerts.append(f"ibkr: {self._tws_down}; entries blocked")
            return
        if code in _TWS_BACK:
            if self._tws_down is not None:
                self._tws_down = None
                self._reconnected = True
                self.alerts.append(f"ibkr: TWS connectivity restored (error {code}: {text}); "
                                   "reconciling")
            return
        cid = self._by_oid.get(int(req_id)) if req_id and int(req_id) > 0 else None
        if cid is None:
            if code in (326, 502, 504) or 1000 <= code < 2000:
                self._conn_errors.append((code, str(text)))
            return
        t = self._tracks[cid]
        if code in _CANCEL_REFUSED:         # a cancel that came too late: the order ended anyway
            return
        warning = code in _WARNINGS or 2100 <= code < 2200
        if warning and not (code == 110 and self._reported.get(cid) is OrderStatus.SUBMITTED):
            return        # still live (110 on a new order ends it: ib_async's rule)
        t.error = (code, str(text))
        self._touch(cid)

    def _on_disconnected(self) -> None:
        if self._down is not None:
            return
        why = self._last_api_error or "the connection to TWS / IB Gateway closed"
        self._down = f"disconnected from {self.host}:{self.port} ({why})"
        self._last_attempt = float(self.clock.now())
        self.alerts.append(f"ibkr: {self._down}; entries blocked, reconnecting every "
                           f"{self.reconnect_every:g} s")

    # -- connection --------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Whether the API session is up (as last seen; :meth:`maintain` looks again)."""
        return self._down is None and bool(self.ib.isConnected())

    def _require_session(self, what: str = "") -> None:
        """Raise :class:`VenueUnavailable` while the socket is down (``what``: what is
        therefore not done, for the message)."""
        if not self.connected:
            raise VenueUnavailable(VENUE, f"not connected ({self._down or 'no session'})"
                                   + (f": {what}" if what else ""))

    def _same_thread(self) -> None:
        """Refuse a call from another thread than the one that connected: ib_async's sync
        client reads its socket only in the event loop of the thread that connected."""
        if threading.get_ident() != self._thread:
            raise RuntimeError("IbkrBroker: called from another thread than the one that "
                               "connected; ib_async's event loop (and the socket) belong to that "
                               "thread: connect and trade from the same thread")

    def _pump(self) -> None:
        """Let ib_async read what TWS sent (one turn of its event loop)."""
        self._same_thread()
        if self._down is None:
            try:
                self.ib.sleep(0)
            except ConnectionError:
                pass
            if self._down is None and not self.ib.isConnected():
                self._on_disconnected()

    def _wait_for(self, done: Callable[[], bool], seconds: float) -> bool:
        """Pump until ``done()`` or the session drops, at most ``seconds`` of network time."""
        for _ in range(max(1, math.ceil(seconds / _TICK))):
            if done():
                return True
            if self._down is not None:
                return False
            try:
                self.ib.sleep(_TICK)
            except ConnectionError:
                pass
            if self._down is None and not self.ib.isConnected():
                self._on_disconnected()
        return done()

    def entry_blocks(self) -> dict[str, str]:
        """Return ``symbol -> reason`` for every symbol while entries must wait.

        While the API session is down (``broker_disconnected: <why>``) or TWS has lost
        its own link to IBKR (error 1100), every symbol is blocked; empty otherwise.
        """
        self._pump()
        why = self._down or self._tws_down
        if why is None:
            return {}
        return {s: f"{BROKER_DISCONNECTED}: {why}" for s in self.instruments}

    def exit_blocks(self) -> dict[str, str]:
        """Return ``symbol -> reason`` for every symbol whose exit cannot be sent now.

        While the API session is down or TWS has lost IBKR (error 1100): every stock
        and every option symbol this adapter has traded, ``broker_disconnected: <why>``
        (as :meth:`entry_blocks`); empty otherwise. The position and its protective
        orders stay at IBKR meanwhile (module notes, "Connection").
        """
        blocks = self.entry_blocks()
        if not blocks:
            return {}
        why = next(iter(blocks.values()))
        return {**blocks, **{s: why for s in self._opt_instruments}}

    def maintain(self, now: float) -> bool:
        """Keep the session up; return ``True`` exactly once after it came back.

        While connected this reads what TWS sent (one turn of ib_async's loop). While
        disconnected it tries to reconnect (one attempt, ``timeout`` seconds) when
        ``reconnect_every`` clock seconds have passed since the disconnect or the last
        attempt; never waits otherwise. After a successful reconnect (or TWS's
        "connectivity restored", 1101/1102) it returns ``True`` once: the caller
        reconciles before anything trades, then takes :meth:`entry_blocks` again.

        Parameters
        ----------
        now : float
            The deployment clock's time, UTC epoch seconds.

        Returns
        -------
        bool
        """
        self._pump()
        if self._down is not None:
            if self._last_attempt is not None and now - self._last_attempt < self.reconnect_every:
                return False
            self._last_attempt = float(now)
            if not self._reconnect():
                return False
        if self._reconnected:
            self._reconnected = False
            return True
        return False

    def _reconnect(self) -> bool:
        self._conn_errors.clear()
        self._last_api_error = ""
        try:
            with contextlib.suppress(Exception):      # a half-closed client: start clean
                self.ib.disconnect()
            self.ib.connect(self.host, self.port, clientId=self.client_id, timeout=self.timeout,
                            account=self.account_id)
        except (OSError, TimeoutError, ConnectionError) as exc:
            errors = list(self._conn_errors)
            if "already in use" in self._last_api_error:
                errors.append((326, self._last_api_error))
            self.alerts.append(f"ibkr: reconnect failed: {connect_hint(self.host, self.port, self.client_id, exc, errors)}")
            self._last_api_error = ""
            return False
        self._down = None
        self._reconnected = True
        for sym, c in self._opt_contracts.items():    # a new session streams nothing yet
            self._tickers[sym] = self.ib.reqMktData(c, "", False, False)
        self.alerts.append(f"ibkr: reconnected to {self.host}:{self.port}; reconciling before "
                           "entries resume")
        return True

    def disconnect(self) -> None:
        """Close the API session (the deployment's end); orders stay at IBKR."""
        self._down = self._down or "closed by tradewarden"
        with contextlib.suppress(Exception):          # closing anyway
            self.ib.disconnect()

    # -- event bookkeeping ---------------------------------------------------------------
    def _emit(self, out: list[OrderEvent], order: Order, kind: OrderEventKind, ts: int,
              reason: str = "", fill: Fill | None = None) -> bool:
        """Append an event if it is a lifecycle step from what the engine was told."""
        if not report_step(self._reported, order, kind, fill):
            return False
        out.append(OrderEvent(order, kind, ts, reason, fill))
        return True

    def _is_open(self, cid: str) -> bool:
        return self._reported.get(cid, OrderStatus.SUBMITTED).is_open

    # -- finding orders at IBKR ----------------------------------------------------------
    def _trades_for(self, cid: str) -> list[Any]:
        """The session's IBKR trades carrying ``orderRef == cid``, oldest first."""
        return [tr for tr in self.ib.trades() if (tr.order.orderRef or "") == cid]

    def _trade(self, t: _Track) -> Any | None:
        """The IBKR trade of a track: by orderId, permId, then orderRef."""
        w = self.ib.wrapper
        tr = None
        if t.order_id:
            tr = w.trades.get((self.ib.wrapper.clientId, t.order_id))
            if tr is not None and (tr.order.orderRef or t.order.client_order_id) != t.order.client_order_id:
                tr = None
        if tr is None and t.perm_id:
            tr = w.permId2Trade.get(t.perm_id)
        if tr is None:
            found = self._trades_for(t.order.client_order_id)
            if found:
                live = [x for x in found if x.orderStatus.status not in _DONE or x.fills]
                tr = (live or found)[-1]
        if tr is not None:
            if tr.order.orderId and tr.order.clientId == self.client_id:
                t.order_id = int(tr.order.orderId)
                self._by_oid[t.order_id] = t.order.client_order_id
            if tr.order.permId:
                t.perm_id = int(tr.order.permId)
        return tr

    def _fills(self, t: _Track) -> list[Any]:
        """Every execution of a track's order (``IB.fills()``), in arrival order."""
        cid = t.order.client_order_id
        out, ids = [], set()
        for f in self.ib.fills():
            ex = f.execution
            mine = (ex.orderRef or "") == cid or (t.perm_id and ex.permId == t.perm_id)
            if mine and ex.execId not in ids:
                ids.add(ex.execId)
                out.append(f)
        return out

    def _refresh(self) -> None:
        """Ask TWS again for every open and completed order and the day's executions
        (``reqAllOpenOrders``, ``reqCompletedOrders``, ``reqExecutions``)."""
        self._require_session()
        try:
            self.ib.reqAllOpenOrders()
            self.ib.reqCompletedOrders(apiOnly=True)
            self.ib.reqExecutions()
        except (ConnectionError, TimeoutError) as exc:
            self._pump()
            raise VenueUnavailable(VENUE, f"lookup interrupted: {type(exc).__name__}: {exc} "
                                   f"(no answer within {self.request_timeout:g} s?)") from None

    # -- commands ------------------------------------------------------------------------
    def _check(self, order: Order, legs: tuple[Order, ...]) -> Decimal:
        cid = order.client_order_id
        ids = [cid, *(x.client_order_id for x in legs)]
        if len(set(ids)) != len(ids):
            raise ValueError(f"order {cid}: duplicate client order id among the order and its legs")
        for i in ids:
            t = self._tracks.get(i)
            if t is not None and t.uncertain is None:
                raise ValueError(f"duplicate client order id {i!r}")
        inst = self.instruments.get(order.symbol)
        if inst is None and _occ_key(order.symbol) is not None:
            return self._check_option(order, legs)
        if inst is None:
            raise ValueError(f"unknown symbol {order.symbol!r} (ibkr contracts read: "
                             f"{', '.join(self.instruments) or 'none'})")
        qty = inst.round_quantity(order.quantity)
        if order.quantity <= 0 or qty <= 0:
            raise ValueError(f"order {cid}: {order.quantity} shares round down to {qty}: IBKR "
                             "stock orders are whole shares; nothing sent")
        for o in (order, *legs):
            if o.type is OrderType.LIMIT and o.price is None:
                raise ValueError(f"order {o.client_order_id}: limit order needs a price")
            if o.type is OrderType.STOP and o.stop_price is None:
                raise ValueError(f"order {o.client_order_id}: stop order needs a stop price")
        if not legs:
            return qty
        roles = [x.role for x in legs]
        if len(set(roles)) != len(roles) or not set(roles) <= {OrderRole.TAKE_PROFIT, OrderRole.STOP_LOSS}:
            raise ValueError(f"order {cid}: bracket legs must be at most one take-profit and one "
                             f"stop-loss, got {[r.value for r in roles]}")
        for leg in legs:
            if leg.symbol != order.symbol or leg.side is order.side:
                raise ValueError(f"order {leg.client_order_id}: a bracket leg must "
                                 f"{'sell' if order.side is Side.BUY else 'buy'} the entry's "
                                 f"symbol {order.symbol}")
            if leg.role is OrderRole.TAKE_PROFIT and leg.type is not OrderType.LIMIT:
                raise ValueError(f"order {leg.client_order_id}: take-profit must be a limit order")
            if leg.role is OrderRole.STOP_LOSS and leg.type is not OrderType.STOP:
                raise ValueError(f"order {leg.client_order_id}: stop-loss must be a stop order")
        return qty

    def _check_option(self, order: Order, legs: tuple[Order, ...]) -> Decimal:
        """Validate an option order (module notes, "Equity options"), qualify its
        contract and subscribe to its market; return the contracts to send."""
        cid = order.client_order_id
        if legs:
            raise ValueError(f"order {cid}: option orders take no bracket legs at IBKR here")
        if order.type not in (OrderType.MARKET, OrderType.LIMIT):
            raise ValueError(f"order {cid}: option orders are market or limit, got "
                             f"{order.type.value}")
        if order.type is OrderType.LIMIT and (order.price is None or order.price <= 0):
            raise ValueError(f"order {cid}: limit order needs a positive price (USD per share)")
        qty = order.quantity
        if qty <= 0 or qty != qty.to_integral_value():
            raise ValueError(f"order {cid}: {qty} contracts: option orders are whole "
                             "contracts; nothing sent")
        self._option_spec(order.symbol)
        return qty.quantize(Decimal(1))

    def _option_spec(self, symbol: str) -> tuple[Instrument, Any]:
        """The option instrument and qualified contract of an OCC ``symbol``, read once
        (``reqContractDetails``) with its market data subscribed (module notes).

        Raises
        ------
        ValueError
            IBKR lists no such option (nothing sent).
        VenueUnavailable
            The session is down.
        """
        inst = self._opt_instruments.get(symbol)
        if inst is not None:
            return inst, self._opt_contracts[symbol]
        from ib_async import Option
        occ = parse_occ_symbol(symbol)
        self._same_thread()
        self._require_session(f"option {symbol.strip()} not qualified")
        try:
            details = self.ib.reqContractDetails(Option(
                occ.root, f"{occ.expiration:%Y%m%d}", float(occ.strike), occ.right, "SMART",
                multiplier="100", currency="USD"))
        except (ConnectionError, TimeoutError) as exc:
            self._pump()
            raise VenueUnavailable(VENUE, f"option {symbol.strip()}: {type(exc).__name__}: "
                                   f"{exc}") from None
        details = [d for d in details if d.contract is not None and d.contract.secType == "OPT"
                   and str(d.contract.multiplier or "100") == "100"]
        if len(details) != 1:
            raise ValueError(f"option {symbol.strip()}: IBKR lists {len(details) or 'no'} "
                             f"matching contract(s) (reqContractDetails {occ.root} "
                             f"{occ.expiration:%Y%m%d} {occ.strike} {occ.right} SMART x100)")
        d = details[0]
        c = d.contract
        c.exchange = "SMART"
        tick = _dec(d.minTick)
        inst = Instrument(symbol, occ.root, "USD", tick if tick and tick > 0 else _PENNY,
                          Decimal(1), min_notional=_ZERO,
                          source=f"ibkr reqContractDetails conId {c.conId} (minTick {tick})")
        self._opt_instruments[symbol], self._opt_contracts[symbol] = inst, c
        self._opts()            # built now, not in the first fill's handler
        ticker = self.ib.reqMktData(c, "", False, False)
        self._tickers[symbol] = ticker
        if not self._wait_for(lambda: ticker.modelGreeks is not None, self.ack_timeout):
            self.alerts.append(f"{symbol.strip()}: no model greeks from IBKR within "
                               f"{self.ack_timeout:g} s of subscribing; a fill before they come "
                               "has NaN greeks in its snapshot")
        return inst, c

    def _spec(self, symbol: str) -> tuple[Instrument, Any]:
        """The instrument and contract an order of ``symbol`` is sent with."""
        if symbol in self.instruments:
            return self.instruments[symbol], self.contracts[symbol]
        return self._option_spec(symbol)

    def _limit(self, o: Order, inst: Instrument) -> Decimal:
        """Limit price on the tick: a buy DOWN, a sell DOWN (take-profit; module notes);
        an option's on the option tick, a sell UP ("Equity options")."""
        if o.symbol in self._opt_instruments:
            tick = option_tick(o.price, inst.price_increment)
            return _round(o.price, tick, ROUND_CEILING if o.side is Side.SELL else ROUND_FLOOR)
        return _round(o.price, inst.price_increment, ROUND_FLOOR)

    def _trigger(self, o: Order, inst: Instrument) -> Decimal:
        """Stop trigger on the tick: a sell UP, a buy DOWN (module notes)."""
        mode = ROUND_CEILING if o.side is Side.SELL else ROUND_FLOOR
        return _round(o.stop_price, inst.price_increment, mode)

    def _ib_order(self, o: Order, qty: Decimal, inst: Instrument, *, tif: str, **kw: Any) -> Any:
        from ib_async import LimitOrder, MarketOrder, StopOrder
        action = "BUY" if o.side is Side.BUY else "SELL"
        common = dict(orderRef=o.client_order_id, tif=tif, account=self.account_id, **kw)
        if o.type is OrderType.LIMIT:
            return LimitOrder(action, float(qty), float(self._limit(o, inst)), **common)
        if o.type is OrderType.STOP:
            return StopOrder(action, float(qty), float(self._trigger(o, inst)), **common)
        return MarketOrder(action, float(qty), **common)

    def worst_stop_fill(self, stop_trigger: Decimal, symbol: str) -> Decimal:
        """Return the sell stop-loss trigger as sent: ``stop_trigger`` rounded UP to ``minTick``.

        An IBKR stop becomes a market order when triggered; its fill in a gap through the
        trigger has no bound, so risk sizing counts the trigger as sent (USD per share).

        Raises
        ------
        KeyError
            An unknown symbol.
        """
        inst = self.instruments[symbol]
        return _round(stop_trigger, inst.price_increment, ROUND_CEILING)

    def submit(self, order: Order, legs: tuple[Order, ...] = ()) -> list[OrderEvent]:
        """Send ``order`` (with ``legs``: one bracket group) and return TWS's acknowledgement.

        A market, limit or stop order in whole shares (``order.quantity`` rounded down),
        ``orderRef`` = its client order id, ``tif`` DAY. With legs: the entry
        (``transmit=False``), the take-profit ``LimitOrder`` (``parentId``,
        ``transmit=False``) and the stop-loss ``StopOrder`` (``parentId``,
        ``transmit=True``), both legs GTC and in the OCA group ``<entry id>-oca``
        (ocaType 1). Waits at most ``ack_timeout`` seconds (network) for TWS's answer.

        An id placed before whose outcome was unknown is looked up by ``orderRef`` first
        and sent again only when IBKR has no order under it.

        An order of an OCC option symbol is an option order (module notes, "Equity
        options"): whole contracts, a market or limit order with the premium in USD per
        share, its contract qualified and its market subscribed before it is sent.

        Parameters
        ----------
        order : Order
        legs : tuple of Order
            At most one take-profit (sell limit) and one stop-loss (sell stop) of the
            same symbol, opposite side to the entry; none for an option order.

        Returns
        -------
        list of OrderEvent
            ``accepted`` (``working`` for a resting limit or stop) for each order TWS
            acknowledged, fills TWS reported at once, ``rejected`` with TWS's words;
            ``rejected`` (``not sent: broker_disconnected: <why>``) for a new order and
            its legs while the session is down (nothing is sent); or nothing when the
            outcome is unknown (a disconnect or no answer in time: :attr:`alerts` says
            so; :meth:`lookup` and :meth:`process` settle it).

        Raises
        ------
        ValueError
            A duplicate client order id, an unknown symbol, a quantity below one share,
            a limit order without a price, a stop order without a stop price, or
            malformed legs; for an option: a fraction of a contract, a stop order, legs,
            or an OCC symbol IBKR does not list. Nothing is sent.
        VenueUnavailable
            The session is down and the order was placed before with an unknown outcome:
            nothing is sent until the reconnect's lookup says IBKR never received it.
        """
        self._pump()                # a disconnect TWS already told us of is known first
        if not self.connected and not any(x.client_order_id in self._tracks
                                          for x in (order, *legs)):
            return self._not_sent(order, legs)
        qty = self._check(order, legs)
        self._require_session(f"{order.client_order_id} not sent")
        cid = order.client_order_id
        earlier = [self._tracks[x.client_order_id] for x in (order, *legs)
                   if x.client_order_id in self._tracks]
        if earlier:             # placed before with an unknown outcome: look before sending again
            self._refresh()
            if self._trades_for(cid) or any(self._trades_for(t.order.client_order_id) for t in earlier):
                for t in earlier:
                    t.uncertain = None
                    t.order = next(x for x in (order, *legs) if x.client_order_id == t.order.client_order_id)
                self.alerts.append(f"{cid}: already at IBKR (found by orderRef); not sent again")
                return self._settle([t for t in earlier], self.clock.now())
            for t in earlier:
                self._forget(t)
        inst, contract = self._spec(order.symbol)
        entry = _Track(order, qty)
        self._tracks[cid] = entry
        tracks = [entry]
        if not legs:
            ib_orders = [self._ib_order(order, qty, inst, tif="DAY")]
        else:
            parent_id = self.ib.client.getReqId()
            ib_orders = [self._ib_order(order, qty, inst, tif="DAY", orderId=parent_id, transmit=False)]
            ordered = sorted(legs, key=lambda x: x.role is OrderRole.STOP_LOSS)   # TP, then SL
            for i, leg in enumerate(ordered):
                t = _Track(leg, qty, parent=cid)
                self._tracks[leg.client_order_id] = t
                tracks.append(t)
                ib_orders.append(self._ib_order(
                    leg, qty, inst, tif="GTC", orderId=self.ib.client.getReqId(), parentId=parent_id,
                    transmit=i == len(ordered) - 1, ocaGroup=f"{cid}-oca", ocaType=1))
        ts = self.clock.now()
        try:
            for t, ib_order in zip(tracks, ib_orders):
                trade = self.ib.placeOrder(contract, ib_order)
                t.order_id = int(trade.order.orderId)
                self._by_oid[t.order_id] = t.order.client_order_id
        except ConnectionError as exc:
            self._pump()
            return self._unknown(tracks, f"the session dropped while placing ({exc})")
        acked = self._wait_for(lambda: all(self._acked(t) for t in tracks), self.ack_timeout)
        if not acked:
            why = ("the session dropped before TWS acknowledged it" if self._down is not None
                   else f"no acknowledgement from TWS within {self.ack_timeout:g} s")
            if self._down is not None:
                return self._unknown(tracks, why)
            for t in tracks:
                if not self._acked(t):
                    self.alerts.append(f"{t.order.client_order_id}: {why}; followed at the next poll")
        return self._settle(tracks, ts)

    def _not_sent(self, order: Order, legs: tuple[Order, ...]) -> list[OrderEvent]:
        """``rejected`` for a new order (and its legs) while the session is down."""
        why = f"not sent: {BROKER_DISCONNECTED}: {self._down or 'no session'}"
        self.alerts.append(f"{order.client_order_id}: {why}")
        ts = self.clock.now()
        return [OrderEvent(o, K.REJECTED, ts, why) for o in (order, *legs)]

    def _acked(self, t: _Track) -> bool:
        tr = self._trade(t)
        if tr is None:
            return False
        return tr.orderStatus.status in _ACKED or t.error is not None

    def _unknown(self, tracks: list[_Track], why: str) -> list[OrderEvent]:
        for t in tracks:
            t.uncertain = why
        cid = tracks[0].order.client_order_id
        self.alerts.append(f"{cid}: outcome unknown: {why}; looked up by orderRef after the "
                           "reconnect before anything is sent again")
        return []

    def _forget(self, t: _Track) -> None:
        self._tracks.pop(t.order.client_order_id, None)
        self._reported.pop(t.order.client_order_id, None)
        if t.order_id:
            self._by_oid.pop(t.order_id, None)

    def _settle(self, tracks: list[_Track], ts: int) -> list[OrderEvent]:
        out: list[OrderEvent] = []
        for t in tracks:
            self._sync(t, out, ts)
        return out

    def cancel(self, client_order_id: str, ts: int, reason: str) -> list[OrderEvent]:
        """Cancel one open order (``cancelOrder``); cancelling an entry cancels its legs.

        Parameters
        ----------
        client_order_id : str
        ts : int
            UTC epoch seconds stamped on the events.
        reason : str

        Returns
        -------
        list of OrderEvent
            ``cancelled`` for each order TWS confirmed within ``ack_timeout`` seconds;
            nothing for an unknown or finished id (a later confirmation, or a fill that
            beat the cancel, arrives through :meth:`process`); nothing while the session
            is down: the order stays at IBKR and keeps working (an alert says so).
        """
        t = self._tracks.get(client_order_id)
        if t is None or not self._is_open(client_order_id):
            return []
        return self._cancel_tracks([t], ts, reason)

    def cancel_all(self, symbol: str, ts: int, reason: str) -> list[OrderEvent]:
        """Cancel every open order this adapter placed for ``symbol`` (legs included);
        orders placed outside tradewarden are left alone.

        Returns
        -------
        list of OrderEvent
            ``cancelled`` for each confirmed order, in submission order; nothing while
            the session is down: the orders stay at IBKR and keep working (an alert says
            so), the protective legs of a held position first of all.
        """
        tracks = [t for t in self._tracks.values()
                  if t.order.symbol == symbol and self._is_open(t.order.client_order_id)]
        return self._cancel_tracks(tracks, ts, reason) if tracks else []

    def _cancel_tracks(self, tracks: list[_Track], ts: int, reason: str) -> list[OrderEvent]:
        self._pump()
        if not self.connected:
            self.alerts.append(f"ibkr: not connected ({self._down or 'no session'}): "
                               f"{', '.join(t.order.client_order_id for t in tracks)} not "
                               f"cancelled ({reason}); they stay at IBKR and keep working")
            return []
        family = list(tracks)
        for t in tracks:        # an entry's cancel ends its legs at IBKR too
            family += [x for x in self._tracks.values() if x.parent == t.order.client_order_id
                       and x not in family and self._is_open(x.order.client_order_id)]
        sent: list[_Track] = []
        asked = {t.order.client_order_id for t in tracks}
        for t in tracks:
            if t.parent in asked:
                continue            # cancelling its entry cancels it (TWS "Bracket Orders")
            tr = self._trade(t)
            if tr is None or tr.orderStatus.status in _DONE:
                continue
            t.cancel_reason = reason
            try:
                self.ib.cancelOrder(tr.order)
            except ConnectionError as exc:
                self._pump()
                raise VenueUnavailable(VENUE, f"cancel {t.order.client_order_id}: {exc}") from None
            sent.append(t)
        for x in family:
            if x.cancel_reason is None and x.parent is not None:
                x.cancel_reason = f"entry cancelled: {reason}"
        if sent:
            self._wait_for(lambda: all(self._ended(t) for t in family), self.ack_timeout)
        out: list[OrderEvent] = []
        for t in family:
            self._sync(t, out, ts)
        return out

    def _ended(self, t: _Track) -> bool:
        tr = self._trade(t)
        return tr is not None and tr.orderStatus.status in _DONE

    def close_position(self, order: Order, reference_price: Decimal, ts: int) -> list[OrderEvent]:
        """Flatten now with the market ``order`` (``tif`` DAY: outside the session it
        executes at the next open); ``reference_price`` is not sent.

        Returns
        -------
        list of OrderEvent
            As :meth:`submit`; the fill arrives through :meth:`process` unless TWS
            reported it within ``ack_timeout``.

        Raises
        ------
        ValueError, VenueUnavailable
            As :meth:`submit`.
        """
        return self.submit(order)

    # -- polling -------------------------------------------------------------------------
    def process(self, bar: Bar) -> list[OrderEvent]:
        """Read what TWS sent and return the events of ``bar.symbol``'s orders since the last call.

        Orders are taken in the order their news arrived (an entry before its legs); for
        each: the acknowledgement, ``working``, every new execution (once, by
        ``execId``, with its commission; ``partially_filled`` until the shares sent are
        filled, then ``filled``), then its end (module notes). While the session is
        down nothing is read and nothing returned (entries are blocked meanwhile).

        Returns
        -------
        list of OrderEvent
            Fills stamped with the execution's time, other events with the clock's.
        """
        self._pump()
        if self._down is not None:
            return []
        mine = [t for t in self._tracks.values() if t.order.symbol == bar.symbol]
        for t in mine:      # placed with an unknown outcome: the session's record settles it
            if t.uncertain is not None and self._trades_for(t.order.client_order_id):
                t.uncertain = None
        order = {id(t): (self._touched.get(t.order.client_order_id, 1 << 60), n)
                 for n, t in enumerate(mine)}
        mine.sort(key=lambda t: order[id(t)])
        out: list[OrderEvent] = []
        ts = self.clock.now()
        done: set[str] = set()

        def visit(t: _Track) -> None:
            cid = t.order.client_order_id
            if cid in done:
                return
            done.add(cid)
            if t.parent is not None:
                parent = self._tracks.get(t.parent)
                if parent is not None:
                    visit(parent)                  # the entry's fill before its legs' news
                sib = self._sibling(t)
                if sib is not None and self._fills(sib):
                    visit(sib)                     # a leg's fill before its sibling's OCA cancel
            self._sync(t, out, ts)
            self._touched.pop(cid, None)

        for t in mine:
            visit(t)
        return out

    def _sibling(self, t: _Track) -> _Track | None:
        """The other leg of a bracket leg's entry, or None."""
        return next((x for x in self._tracks.values()
                     if x.parent == t.parent and x is not t), None) if t.parent else None

    def _seed(self, t: _Track) -> None:
        """Take an adopted order's earliest executions adding up to what the engine booked
        as reported (``Broker.account`` notes)."""
        booked, cum = t.booked or _ZERO, _ZERO
        t.seen, t.skip = set(), {}
        for f in self._fills(t) if booked > 0 else ():
            if cum >= booked:
                break
            size = _qty(f.execution.shares)
            if cum + size <= booked:
                t.seen.add(f.execution.execId)
            else:
                t.skip[f.execution.execId] = booked - cum
            cum += size
        t.filled, t.booked = booked, None

    def _fill_of(self, f: Any, t: _Track) -> Fill:
        ex = f.execution
        price = _dec(ex.price) or _ZERO
        report = f.commissionReport
        fee = _dec(report.commission) if report.execId == ex.execId else None
        order = t.order
        return Fill(order.client_order_id, order.symbol, order.side,
                    _qty(ex.shares), price, abs(fee) if fee is not None else _ZERO,
                    {1: "maker", 2: "taker"}.get(int(ex.lastLiquidity or 0), "unknown"),
                    _epoch(ex.time, self.clock.now()), price, order.role)

    def _sync(self, t: _Track, out: list[OrderEvent], ts: int) -> None:
        """Report what the IBKR trade of ``t`` shows beyond what the engine was told."""
        cid = t.order.client_order_id
        if not self._is_open(cid) or t.uncertain is not None:
            return
        tr = self._trade(t)
        if tr is None:
            if t.error is not None:     # refused before TWS made a trade of it
                self._emit(out, t.order, K.REJECTED, ts, f"ibkr error {t.error[0]}: {t.error[1]}")
            return
        if t.booked is not None:
            self._seed(t)
        st = tr.orderStatus.status
        fills = self._fills(t)
        if st in _ACKED and not (st in _DONE and st != "Filled" and t.error is not None
                                 and not fills and t.cancel_reason is None):
            self._emit(out, t.order, K.ACCEPTED, ts)
        if self._live(t, st):
            self._emit(out, t.order, K.WORKING, ts, _LEG_LIVE if t.parent else "")
        pending = False
        for f in fills:
            eid = f.execution.execId
            if eid in t.seen:
                continue
            if f.commissionReport.execId != eid:
                first = t.waiting.setdefault(eid, ts)
                if ts - first < self.commission_wait:
                    pending = True
                    break
                self.alerts.append(f"{cid}: execution {eid} has no commission report after "
                                   f"{self.commission_wait:g} s; booked with fee 0")
            fill = self._fill_of(f, t)
            t.seen.add(eid)
            t.waiting.pop(eid, None)
            done_before = t.skip.pop(eid, None)
            if done_before:
                rest = fill.quantity - done_before
                if rest <= 0:
                    continue
                fee = (fill.fee * rest / fill.quantity).quantize(Decimal("0.00000001"), ROUND_HALF_EVEN)
                fill = fill._replace(quantity=rest, fee=fee)
            t.filled += fill.quantity
            kind = K.FILLED if t.filled >= t.quantity else K.PARTIALLY_FILLED
            self._emit(out, t.order, K.ACCEPTED, fill.ts)
            self._emit(out, t.order, kind, fill.ts, "", fill)
        if pending or st not in _DONE:
            return
        if st == "Filled":
            if t.filled < t.quantity and not t.short_noted:
                t.short_noted = True    # reqExecutions serves the day's executions only
                self.alerts.append(f"{cid}: IBKR says filled, but executions for only "
                                   f"{t.filled} of {t.quantity} shares are known; the rest is "
                                   "not booked (reconciliation compares the position)")
            return
        kind, why = self._ending(t, st)
        if kind is K.REJECTED and self._reported.get(cid) is OrderStatus.PARTIALLY_FILLED:
            kind = K.CANCELLED
        self._emit(out, t.order, kind, ts, why)

    def _live(self, t: _Track, st: str) -> bool:
        if t.order.type is OrderType.MARKET:
            return False
        if t.parent is not None:
            entry_filled = self._reported.get(t.parent) is OrderStatus.FILLED
            return st == "Submitted" or (entry_filled and st in _HELD)
        return st == "Submitted" or (t.order.type is OrderType.STOP and st in _HELD)

    def _ending(self, t: _Track, st: str) -> tuple[OrderEventKind, str]:
        """The port's end of an order TWS ended (module notes, "Statuses")."""
        err = t.error
        words = f"ibkr error {err[0]}: {err[1]}" if err is not None else ""
        if t.cancel_reason is not None and (err is None or err[0] == _CANCEL_CONFIRM
                                            or st in _CANCELLED):
            return K.CANCELLED, t.cancel_reason
        if st == "Inactive":
            return K.REJECTED, (words or "inactive at ibkr (rejected or cancelled by the system)")
        if err is not None and err[0] != _CANCEL_CONFIRM:
            return K.REJECTED, words
        if t.parent is not None:
            sibling = self._sibling(t)
            if sibling is not None and (self._reported.get(sibling.order.client_order_id) in (
                    OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED) or self._fills(sibling)):
                return K.CANCELLED, _OCO
            if self._reported.get(t.parent) in (OrderStatus.CANCELLED, OrderStatus.REJECTED,
                                                OrderStatus.EXPIRED):
                return K.CANCELLED, "entry ended"
        return K.CANCELLED, words or "cancelled at ibkr"

    def open_orders(self, symbol: str) -> list[Order]:
        """Return this adapter's open orders of ``symbol`` in submission order."""
        return [t.order for t in self._tracks.values()
                if t.order.symbol == symbol and self._is_open(t.order.client_order_id)]

    # -- reconciliation ------------------------------------------------------------------
    def lookup(self, client_order_id: str) -> VenueOrder | None:
        """Return what IBKR knows of the order with ``orderRef == client_order_id``.

        Looks in the session's trades and executions, and when absent asks TWS again
        (``reqAllOpenOrders``, ``reqCompletedOrders``, ``reqExecutions``). An order from
        before a restart is rebuilt from IBKR's record and followed from then on.

        Returns
        -------
        VenueOrder or None
            Status (module notes), shares filled, every execution as a
            :class:`~tradewarden.domain.Fill` (commission as fee), the end's reason;
            ``None`` when IBKR has no order under that id (never received).

        Raises
        ------
        VenueUnavailable
            The session is down.
        """
        cid = client_order_id
        self._same_thread()
        self._require_session(f"cannot look up {cid}")
        self._pump()
        trades = self._trades_for(cid)
        execs = [f for f in self.ib.fills() if (f.execution.orderRef or "") == cid]
        if not trades and not execs:
            self._refresh()
            trades = self._trades_for(cid)
            execs = [f for f in self.ib.fills() if (f.execution.orderRef or "") == cid]
        if not trades and not execs:
            t = self._tracks.get(cid)
            if t is not None and t.uncertain is not None:
                t.uncertain = f"{t.uncertain}; not at IBKR"     # may be sent again
            return None
        if len({tr.order.permId for tr in trades if tr.order.permId}) > 1:
            self.alerts.append(f"{cid}: {len(trades)} IBKR orders carry this orderRef; "
                               "CHECK THE ACCOUNT")
        t = self._tracks.get(cid)
        if t is None:
            t = self._rebuild(cid, trades, execs)
            if t is None:
                return None
        t.uncertain = None
        tr = self._trade(t)
        fills_raw = self._fills(t)
        fills = tuple(self._fill_of(f, t) for f in fills_raw)
        filled = sum((f.quantity for f in fills), _ZERO)
        t.seen = {f.execution.execId for f in fills_raw}
        t.skip, t.booked, t.waiting = {}, None, {}
        t.filled = filled
        st = tr.orderStatus.status if tr is not None else "Filled"
        status, reason = self._status_of(t, st, filled)
        self._reported[cid] = status
        return VenueOrder(cid, status, filled, fills, reason)

    def _status_of(self, t: _Track, st: str, filled: Decimal) -> tuple[OrderStatus, str]:
        if st == "Filled" or filled >= t.quantity > 0:
            return OrderStatus.FILLED, ""
        if st in _DONE:
            kind, why = self._ending(t, st)
            if kind is K.REJECTED and filled > 0:
                kind = K.CANCELLED
            return {K.CANCELLED: OrderStatus.CANCELLED, K.REJECTED: OrderStatus.REJECTED}[kind], why
        if filled > 0:
            return OrderStatus.PARTIALLY_FILLED, ""
        if self._live(t, st) or (t.parent is not None and st in _HELD
                                  and self._parent_filled_at_venue(t)):
            return OrderStatus.WORKING, ""
        if st in _ACKED:
            return OrderStatus.ACCEPTED, ""
        return OrderStatus.UNKNOWN, ""

    def _parent_filled_at_venue(self, t: _Track) -> bool:
        p = self._tracks.get(t.parent or "")
        if p is None:
            return False
        tr = self._trade(p)
        return tr is not None and tr.orderStatus.status == "Filled"

    def _rebuild(self, cid: str, trades: list[Any], execs: list[Any]) -> _Track | None:
        """A track for an order placed by an earlier process, from IBKR's record."""
        tr = trades[-1] if trades else None
        contract = tr.contract if tr is not None else execs[0].contract
        if contract.secType == "OPT":
            sym = next((s for s, c in self._opt_contracts.items() if c.conId == contract.conId),
                       None) or _occ_of(contract)
            if sym is not None and sym not in self._opt_instruments:
                self._option_spec(sym)
        else:
            sym = next((s for s, c in self.contracts.items() if c.conId == contract.conId
                        or c.symbol == contract.symbol), None)
        if sym is None:
            return None
        if tr is not None:
            o = tr.order
            side = Side.BUY if o.action == "BUY" else Side.SELL
            typ = {"LMT": OrderType.LIMIT, "STP": OrderType.STOP}.get(o.orderType, OrderType.MARKET)
            qty = _qty(o.totalQuantity)
            price = _dec(o.lmtPrice) if typ is OrderType.LIMIT else None
            stop = _dec(o.auxPrice) if typ is OrderType.STOP else None
        else:
            ex = execs[0].execution
            side = Side.BUY if ex.side in ("BOT", "BUY") else Side.SELL
            typ, price, stop = OrderType.MARKET, None, None
            qty = sum((_qty(f.execution.shares) for f in execs), _ZERO)
        role = {"-take_profit": OrderRole.TAKE_PROFIT, "-stop_loss": OrderRole.STOP_LOSS,
                "-entry": OrderRole.ENTRY}
        r = next((v for k, v in role.items() if cid.endswith(k)),
                 OrderRole.ENTRY if side is Side.BUY else OrderRole.EXIT)
        parent = None
        if tr is not None and tr.order.parentId:
            up = next((x for x in self.ib.trades() if x.order.orderId == tr.order.parentId
                       and x.order.clientId == tr.order.clientId and x.order.orderRef), None)
            parent = up.order.orderRef if up is not None else None
        for suffix in ("-take_profit", "-stop_loss"):
            if parent is None and cid.endswith(suffix):
                parent = cid[: -len(suffix)] + "-entry"
        order = Order(cid, sym, side, typ, qty, r, int(self.clock.now()), price=price,
                      stop_price=stop, parent_id=parent)
        t = _Track(order, qty, parent=parent)
        self._tracks[cid] = t
        self._trade(t)
        return t

    def account(self, symbols: list[str]) -> VenueAccount:
        """Return the account's positions, open orders and USD cash for ``symbols``.

        Positions: ``IB.positions(account)`` in shares per stock symbol and in signed
        contracts per OCC option symbol among ``symbols``.
        Open orders: every open IBKR order of these symbols (``reqAllOpenOrders``),
        named by its ``orderRef`` (``ibkr:<permId>`` without one). Balances:
        ``{"USD": TotalCashValue}`` (``reqAccountUpdates``).

        Raises
        ------
        VenueUnavailable
            The session is down.
        """
        self._same_thread()
        self._require_session("account not read")
        try:
            open_now = self.ib.reqAllOpenOrders()      # every client's, as TWS has them now
        except (ConnectionError, TimeoutError) as exc:
            self._pump()
            raise VenueUnavailable(VENUE, f"account: {type(exc).__name__}: {exc} (no answer "
                                   f"within {self.request_timeout:g} s?)") from None
        conids = {c.conId: s for s, c in self.contracts.items() if s in symbols}
        conids.update({c.conId: s for s, c in self._opt_contracts.items() if s in symbols})
        occs = {k: s for s in symbols if s not in self.instruments
                and (k := _occ_key(s)) is not None}
        positions: dict[str, Decimal] = {s: _ZERO for s in symbols}
        for p in self.ib.positions(self.account_id):
            c = p.contract
            if c.secType == "STK":
                sym = conids.get(c.conId)
            elif c.secType == "OPT":
                sym = conids.get(c.conId) or occs.get(_occ_of(c) or "")
            else:
                sym = None
            if sym is not None:
                positions[sym] += _qty(p.position)
        ids: list[str] = []
        for tr in open_now:
            if tr.orderStatus.status in _DONE or (
                    tr.contract.conId not in conids
                    and (tr.contract.secType != "OPT" or _occ_of(tr.contract) not in occs)):
                continue
            if tr.order.account and self.account_id and tr.order.account != self.account_id:
                continue
            ids.append(tr.order.orderRef or f"ibkr:{tr.order.permId}")
        cash = self._value("TotalCashValue")
        balances = {"USD": cash} if cash is not None else {}
        return VenueAccount(positions, tuple(dict.fromkeys(ids)), balances)

    def _value(self, tag: str, currency: str = "USD") -> Decimal | None:
        for v in self.ib.accountValues(self.account_id):
            if v.tag == tag and v.currency in (currency, "BASE", ""):
                d = _dec(v.value)
                if d is not None and v.currency == currency:
                    return d
        for v in self.ib.accountValues(self.account_id):
            if v.tag == tag and v.currency in ("BASE", ""):
                return _dec(v.value)
        return None

    def adopt(self, orders: dict[str, Order], filled: dict[str, Decimal] | None = None) -> None:
        """Follow exactly the engine's open orders, with what it booked on each.

        Called by the engine after every reconciliation (``Broker.account`` notes): the
        Order objects replace this adapter's (after a restart they are new objects);
        ``filled[id]`` shares (default 0) of each order's earliest executions count as
        reported, so :meth:`process` reports only later ones. Legs join their entry
        through ``parent_id``. Orders this adapter followed that the engine does not
        hold open any more are no longer followed.

        Parameters
        ----------
        orders : dict of str to Order
            The engine's open orders by client order id.
        filled : dict of str to Decimal, optional
            Shares booked per client order id.
        """
        booked = dict(filled or {})
        keep: set[str] = set()
        for cid, o in orders.items():
            t = self._tracks.get(cid)
            want = booked.get(cid, _ZERO)
            if t is None:
                t = self._tracks[cid] = _Track(o, o.quantity, parent=o.parent_id, booked=want)
            else:
                t.order = o
                if t.filled != want:
                    t.booked = want
            t.parent = o.parent_id or t.parent
            self._reported[cid] = o.status
            keep.add(cid)
        parents = {t.parent for c, t in self._tracks.items() if c in keep and t.parent}
        for pid in parents:
            if pid not in keep and pid in self._tracks:
                self._reported[pid] = OrderStatus.FILLED      # its legs are open: it filled
                keep.add(pid)
            elif pid not in self._tracks:
                self._reported[pid] = OrderStatus.FILLED
        for cid in [c for c in self._tracks if c not in keep]:
            self._forget(self._tracks[cid])

    # -- account views for `warden ibkr check` -----------------------------------------
    def account_summary(self) -> IbkrAccountSummary:
        """Return the account's net liquidation, buying power, funds, margin and cash (USD).

        From the account values TWS streams after ``reqAccountUpdates`` (started on
        connect): ``NetLiquidation``, ``BuyingPower``, ``AvailableFunds``,
        ``ExcessLiquidity``, ``InitMarginReq``, ``MaintMarginReq``, ``TotalCashValue``.

        Raises
        ------
        VenueUnavailable
            The session is down.
        """
        self._require_session()
        self._pump()
        cur = next((v.currency for v in self.ib.accountValues(self.account_id)
                    if v.tag == "NetLiquidation" and v.currency not in ("", "BASE")), "USD")
        get = lambda tag: self._value(tag, cur)
        return IbkrAccountSummary(self.account_id, cur, get("NetLiquidation"), get("BuyingPower"),
                                  get("AvailableFunds"), get("ExcessLiquidity"),
                                  get("InitMarginReq"), get("MaintMarginReq"),
                                  get("TotalCashValue"))

    def positions(self) -> list[IbkrPosition]:
        """Return every position of the account (all symbols and security types).

        Raises
        ------
        VenueUnavailable
            The session is down.
        """
        self._require_session()
        self._pump()
        out = []
        for p in self.ib.positions(self.account_id):
            c = p.contract
            out.append(IbkrPosition(p.account, c.localSymbol if c.secType == "OPT" and c.localSymbol
                                    else c.symbol, c.secType, _qty(p.position),
                                    _dec(p.avgCost) or _ZERO, c.currency))
        return out

    def option_positions(self) -> list[IbkrOptionPosition]:
        """Return the account's option positions as IBKR reports them.

        An assignment shows as the option position gone (or smaller) and 100 shares per
        contract more (a put) or fewer (a call) in :meth:`positions`; what that means is
        the options desk's to decide.

        Returns
        -------
        list of IbkrOptionPosition
            Per option: the OCC key, signed contracts (negative short) and the average
            cost per share in USD (IBKR's ``avgCost`` per contract / multiplier), by
            OCC key.

        Raises
        ------
        VenueUnavailable
            The session is down.
        """
        self._require_session("option positions not read")
        self._pump()
        out = []
        for p in self.ib.positions(self.account_id):
            c = p.contract
            occ = _occ_of(c) if c.secType == "OPT" else None
            if occ is None or not _qty(p.position):
                continue
            mult = _dec(c.multiplier) or Decimal(100)
            per_share = (_dec(p.avgCost) or _ZERO) / mult
            out.append(IbkrOptionPosition(occ, _qty(p.position), _qty(per_share)))
        return sorted(out)

    def execution_ids(self, client_order_id: str) -> list[str]:
        """Return the ``execId`` of each execution of an order reported as a fill, in the
        order :meth:`process` reported them (to key a fill snapshot,
        :meth:`drain_option_snapshots`, to its fill).

        Returns
        -------
        list of str
            Empty for an unknown order.
        """
        t = self._tracks.get(client_order_id)
        if t is None:
            return []
        return [f.execution.execId for f in self._fills(t) if f.execution.execId in t.seen]

    def preflight(self) -> Preflight:
        """Return what a person checks before live trading: the account and its cash.

        The TWS API cannot withdraw or transfer funds, so ``can_withdraw`` is False;
        ``can_trade`` is True for a session that is not read-only (a read-only API
        setting makes TWS refuse each order, which is then ``rejected`` with its words).

        Raises
        ------
        VenueUnavailable
            The session is down.
        """
        s = self.account_summary()
        balances = {s.currency: s.cash} if s.cash is not None else {}
        notes = [(f"net liquidation {s.net_liquidation} {s.currency}, buying power "
                  f"{s.buying_power} {s.currency}, maintenance margin {s.maint_margin_req}")]
        notes.append("stop-loss legs are stop-market orders: a gap through the trigger fills "
                     "at the market, below it")
        return Preflight(VENUE, s.account, True, False, balances, notes)
