"""A scripted venue for engine tests: the broker port as a real exchange behaves, not as
``SimBroker`` does.

:class:`ScriptedVenue` implements :class:`tradewarden.execution.base.Broker`:

* ``submit`` answers ``accepted`` (nothing fills synchronously), records the order by its
  client order id (a duplicate id is a ``ValueError``), and refuses bracket legs unless
  ``native_bracket`` is on;
* ``process(bar)`` returns what the venue did up to the bar's close: the actions scripted
  for ``(symbol, bar open time)`` (partial fills, the last fill, a venue cancel, expiry or
  reject), then, if switched on, market orders filled at the bar's open in ``market_parts``
  parts and resting legs filled when the bar trades through their level;
* ``cancel`` / ``cancel_all`` answer ``cancelled`` for open orders; ``close_position``
  fills at the reference price (``accepted`` then ``filled``).

It keeps its OWN status of every order (a venue never sees the engine's ``Order.status``)
and checks every event it emits with :func:`~tradewarden.execution.base.check_transition`
before changing that status, so an illegal lifecycle step fails the test at once. The
engine is expected to set its orders' statuses from the events; :meth:`ScriptedVenue.out_of_sync`
lists the orders where the engine's status differs from the venue's.

Quantities are rounded down to the instrument's base increment; fees are given per fill
in quote currency (scripted) or ``notional * bps / 10_000`` rounded half-even to 1e-8
(automatic fills).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

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
from tradewarden.execution.base import (
    BrokerCapabilities,
    OrderEvent,
    OrderEventKind,
    VenueAccount,
    VenueOrder,
    check_transition,
)

K = OrderEventKind
_FEE_Q = Decimal("0.00000001")
_BPS = Decimal(10_000)


@dataclass(frozen=True)
class Part:
    """A scripted fill of ``target`` (a role name such as ``"entry"``, or a client order id).

    ``frac`` is a fraction of the order's quantity (rounded down to the base increment);
    ``None`` fills everything still open. ``price`` and ``fee`` are quote currency.
    """

    target: str
    price: Decimal
    fee: Decimal
    frac: Decimal | None = None
    liquidity: str = "taker"


@dataclass(frozen=True)
class End:
    """The venue ends ``target`` without (more) fills: ``kind`` is cancelled, expired or rejected."""

    target: str
    kind: OrderEventKind
    reason: str = ""


@dataclass
class Ticket:
    """The venue's record of one order: its own status and filled quantity."""

    client_order_id: str
    order: Order
    status: OrderStatus = OrderStatus.SUBMITTED
    filled: Decimal = Decimal(0)
    parent: str | None = None          # native bracket: the entry's id
    live: bool = True                  # native bracket leg: False until its entry fills
    fills: list[Fill] = field(default_factory=list)
    reason: str = ""

    @property
    def remaining(self) -> Decimal:
        return self.order.quantity - self.filled


@dataclass
class ScriptedVenue:
    """A broker-port fake with scripted fills (see the module notes).

    Parameters
    ----------
    instruments : dict of str to Instrument
    script : dict of (symbol, ts) or ts to list of Part or End
        Actions per bar (``ts`` alone means ``default_symbol``), applied in order.
    market_parts : int
        0: market orders fill only when scripted; N > 0: every open market order fills at
        the next bar's open (the first bar after its ``created_ts``) in N parts.
    trade_through : bool
        Fill working sell stop / sell limit orders when the bar trades through their level
        (stop first: at the stop, or the open if it gapped below; limit at its price, or
        the open if it gapped above).
    taker_bps, maker_bps : Decimal
        Fees of the automatic fills.
    native_bracket, native_oco, partial_fills, stop_orders : bool
        The capabilities reported.
    reject : dict of str to str
        Role name -> reason: ``submit`` answers ``rejected`` (synchronously) for orders
        of that role.
    """

    instruments: dict[str, Instrument]
    script: dict = field(default_factory=dict)
    market_parts: int = 0
    trade_through: bool = False
    taker_bps: Decimal = Decimal(10)
    maker_bps: Decimal = Decimal(5)
    native_bracket: bool = False
    native_oco: bool = False
    partial_fills: bool = True
    stop_orders: bool = True
    default_symbol: str = "BTC-USD"
    reject: dict[str, str] = field(default_factory=dict)
    tickets: dict[str, Ticket] = field(default_factory=dict, init=False)
    #: ``(client_order_id, role, quantity at submission)`` per submitted order, in order.
    submitted: list[tuple[str, OrderRole, Decimal]] = field(default_factory=list, init=False)
    #: Every event handed to the engine, in order.
    log: list[OrderEvent] = field(default_factory=list, init=False)
    cancels: list[tuple[str, str]] = field(default_factory=list, init=False)
    #: Base units held per symbol, from this venue's fills (a test may set others).
    positions: dict[str, Decimal] = field(default_factory=dict, init=False)
    #: Orders open at the venue that no engine sent (a test adds ids to see them reported).
    foreign: list[str] = field(default_factory=list, init=False)
    #: ``None``: no balances reported; else quote currency -> total.
    balances: dict[str, Decimal] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.capabilities = BrokerCapabilities(
            native_bracket=self.native_bracket, native_oco=self.native_oco,
            stop_orders=self.stop_orders, client_order_ids=True, partial_fills=self.partial_fills)
        self.script = {(k if isinstance(k, tuple) else (self.default_symbol, int(k))): list(v)
                       for k, v in self.script.items()}

    # -- helpers ---------------------------------------------------------------------------
    def _event(self, t: Ticket, kind: OrderEventKind, ts: int, reason: str = "",
               fill: Fill | None = None) -> OrderEvent:
        e = OrderEvent(t.order, kind, ts, reason, fill)
        check_transition(t, e.status)          # raises IllegalTransition: the test fails
        t.status = e.status
        if reason:
            t.reason = reason
        self.log.append(e)
        return e

    def _fill(self, t: Ticket, qty: Decimal, price: Decimal, fee: Decimal, ts: int,
              liquidity: str, ref: Decimal | None = None) -> list[OrderEvent]:
        inst = self.instruments[t.order.symbol]
        qty = inst.round_quantity(qty)
        if qty <= 0 or qty > t.remaining:
            raise AssertionError(f"scripted fill of {qty} for {t.client_order_id} with "
                                 f"{t.remaining} open")
        t.filled += qty
        o = t.order
        f = Fill(o.client_order_id, o.symbol, o.side, qty, price, fee, liquidity, ts,
                 price if ref is None else ref, o.role)
        t.fills.append(f)
        sign = 1 if o.side is Side.BUY else -1
        self.positions[o.symbol] = self.positions.get(o.symbol, Decimal(0)) + sign * qty
        out = [self._event(t, K.FILLED if t.remaining == 0 else K.PARTIALLY_FILLED, ts, fill=f)]
        if t.remaining == 0:
            out += self._after_fill(t, ts)
        return out

    def _after_fill(self, t: Ticket, ts: int) -> list[OrderEvent]:
        """Native brackets: arm an entry's legs; native OCO: cancel a filled leg's sibling."""
        out: list[OrderEvent] = []
        if self.native_bracket and t.parent is None:
            for leg in self._legs_of(t.client_order_id):
                leg.live = True
                out.append(self._event(leg, K.WORKING, ts, "bracket leg live"))
        if self.native_oco and t.parent is not None:
            for leg in self._legs_of(t.parent):
                if leg is not t and leg.status.is_open:
                    out.append(self._event(leg, K.CANCELLED, ts, "oco: other leg filled"))
        return out

    def _legs_of(self, entry_id: str) -> list[Ticket]:
        return [t for t in self.tickets.values() if t.parent == entry_id]

    def _open(self, symbol: str) -> list[Ticket]:
        return [t for t in self.tickets.values() if t.order.symbol == symbol and t.status.is_open]

    def _target(self, symbol: str, target: str) -> Ticket:
        t = self.tickets.get(target)
        if t is not None:
            return t
        found = [t for t in self._open(symbol) if t.order.role.value == target]
        if not found:
            raise AssertionError(f"script: no open {target!r} order of {symbol} at the venue")
        return found[-1]

    def _fee(self, notional: Decimal, bps: Decimal) -> Decimal:
        return (notional * bps / _BPS).quantize(_FEE_Q, ROUND_HALF_EVEN)

    # -- the port --------------------------------------------------------------------------
    def submit(self, order: Order, legs: tuple[Order, ...] = ()) -> list[OrderEvent]:
        """Accept ``order`` (and native bracket legs); raise ``ValueError`` on a bad one."""
        if legs and not self.native_bracket:
            raise ValueError(f"order {order.client_order_id}: legs sent to a venue without "
                             "native brackets")
        for o in (order, *legs):
            if o.client_order_id in self.tickets:
                raise ValueError(f"duplicate client order id {o.client_order_id!r}")
            if o.symbol not in self.instruments:
                raise ValueError(f"unknown symbol {o.symbol!r}")
            if o.quantity <= 0:
                raise ValueError(f"order {o.client_order_id}: quantity must be positive")
            if o.type is OrderType.STOP and not self.stop_orders:
                raise ValueError(f"order {o.client_order_id}: stop orders not supported")
        out = []
        for o in (order, *legs):
            t = Ticket(o.client_order_id, o, parent=None if o is order else order.client_order_id,
                       live=o is order)
            self.tickets[o.client_order_id] = t
            self.submitted.append((o.client_order_id, o.role, o.quantity))
            why = self.reject.get(o.role.value)
            out.append(self._event(t, K.ACCEPTED if why is None else K.REJECTED, o.created_ts,
                                   why or ""))
        return out

    def cancel(self, client_order_id: str, ts: int, reason: str) -> list[OrderEvent]:
        """Cancel one open order; unknown or finished ids give no event."""
        self.cancels.append((client_order_id, reason))
        t = self.tickets.get(client_order_id)
        if t is None or not t.status.is_open:
            return []
        return [self._event(t, K.CANCELLED, ts, reason)]

    def cancel_all(self, symbol: str, ts: int, reason: str) -> list[OrderEvent]:
        """Cancel every open order of ``symbol``."""
        return [self._event(t, K.CANCELLED, ts, reason) for t in self._open(symbol)]

    def close_position(self, order: Order, reference_price: Decimal, ts: int) -> list[OrderEvent]:
        """Fill the market ``order`` at once at ``reference_price`` (taker fee)."""
        out = self.submit(order)
        inst = self.instruments[order.symbol]
        price = (inst.floor_price if order.side is Side.SELL else inst.ceil_price)(reference_price)
        t = self.tickets[order.client_order_id]
        fee = self._fee(price * t.remaining, self.taker_bps)
        return out + self._fill(t, t.remaining, price, fee, ts, "taker", reference_price)

    def open_orders(self, symbol: str) -> list[Order]:
        """Open orders of ``symbol`` in submission order."""
        return [t.order for t in self._open(symbol)]

    def process(self, bar: Bar) -> list[OrderEvent]:
        """The events of ``bar``: scripted actions, then automatic market and leg fills."""
        out: list[OrderEvent] = []
        ts = bar.ts
        for act in self.script.get((bar.symbol, ts), ()):
            t = self._target(bar.symbol, act.target)
            if isinstance(act, End):
                out.append(self._event(t, act.kind, ts, act.reason))
            else:
                qty = t.remaining if act.frac is None else t.order.quantity * act.frac
                out += self._fill(t, qty, act.price, act.fee, ts, act.liquidity)
        inst = self.instruments[bar.symbol]
        if self.market_parts:
            for t in self._open(bar.symbol):
                if t.order.type is not OrderType.MARKET or t.order.created_ts >= ts:
                    continue
                ref = Decimal(repr(bar.open))
                price = (inst.ceil_price if t.order.side is Side.BUY else inst.floor_price)(ref)
                for j in range(self.market_parts):
                    last = j == self.market_parts - 1
                    qty = t.remaining if last else inst.round_quantity(t.order.quantity / self.market_parts)
                    if qty <= 0:
                        continue
                    out += self._fill(t, qty, price, self._fee(price * qty, self.taker_bps), ts,
                                      "taker", ref)
        if self.trade_through:
            # stops before limits (the pessimistic order within a bar); one exit per bar:
            # a bar-level fake cannot tell which of two levels traded first
            legs = sorted(self._open(bar.symbol), key=lambda t: t.order.type is not OrderType.STOP)
            for t in legs:
                o = t.order
                if not t.live or o.side is not Side.SELL or not t.status.is_open:
                    continue
                if o.type is OrderType.STOP and bar.low <= float(o.stop_price):
                    out.append(self._event(t, K.TRIGGERED, ts))
                    price = min(o.stop_price, inst.floor_price(bar.open))
                    out += self._fill(t, t.remaining, price,
                                      self._fee(price * t.remaining, self.taker_bps), ts, "taker",
                                      o.stop_price)
                elif o.type is OrderType.LIMIT and bar.high >= float(o.price):
                    price = max(o.price, inst.floor_price(bar.open))
                    out += self._fill(t, t.remaining, price,
                                      self._fee(price * t.remaining, self.maker_bps), ts, "maker",
                                      o.price)
                else:
                    continue
                break
        return out

    def lookup(self, client_order_id: str) -> VenueOrder | None:
        """The venue's record of an order, or ``None`` if it never received it."""
        t = self.tickets.get(client_order_id)
        if t is None:
            return None
        return VenueOrder(client_order_id, t.status, t.filled, tuple(t.fills), t.reason)

    def account(self, symbols: list[str]) -> VenueAccount:
        """Positions from this venue's fills, open order ids (foreign ones included)."""
        cids = [t.client_order_id for t in self.tickets.values()
                if t.order.symbol in symbols and t.status.is_open]
        return VenueAccount({s: q for s, q in self.positions.items() if s in symbols},
                            tuple(cids + self.foreign), self.balances)

    def adopt(self, orders: dict[str, Order], filled: dict[str, Decimal] | None = None) -> None:
        """Link this venue's tickets to a restarted engine's Order objects (by client id);
        this venue reports fills only as they happen, so ``filled`` needs no bookkeeping."""
        for cid, o in orders.items():
            t = self.tickets.get(cid)
            if t is not None:
                t.order = o

    # -- for the tests ---------------------------------------------------------------------
    def out_of_sync(self) -> list[tuple[str, str, str]]:
        """``(client_order_id, engine status, venue status)`` where the two differ."""
        return [(c, t.order.status.value, t.status.value) for c, t in self.tickets.items()
                if t.order.status is not t.status]

    def ticket(self, role: str) -> Ticket:
        """The latest ticket with ``role`` (any status)."""
        found = [t for t in self.tickets.values() if t.order.role.value == role]
        assert found, f"no {role} order reached the venue"
        return found[-1]
