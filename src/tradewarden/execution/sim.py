"""Simulated broker: deterministic fills against OHLCV bars.

Fill rules (pinned by the candle-table tests in ``tests/execution``):

* **Market** orders fill at the *next* bar's open (an order decided on bar ``t``'s
  close is submitted after ``t`` and fills at ``t+1``'s open), taker fee, slippage
  against the trader. One sent after a bar opened (``created_ts`` later than the
  bar's open: an entry approved between bars) is not filled at that earlier open but
  at the following bar's.
* **Limit** orders fill when the bar trades through the level: a buy limit when
  ``low <= price`` at ``price`` (at the open if the bar opens below it), a sell limit
  when ``high >= price`` (at the open if it opens above). Maker fee, no slippage.
* **Stop** orders trigger when the bar trades through the trigger: a sell stop when
  ``low <= stop`` at ``stop`` (at the open if it gaps below), a buy stop when
  ``high >= stop``. Taker fee, slippage against the trader.
* **Brackets**: the take-profit (sell limit) and stop-loss (sell stop) go live when
  the entry fills, are checked on the same bar from its open on, and cancel each
  other (OCO). If both levels lie inside one bar, the stop-loss fills (pessimistic
  intrabar ordering: the path through the bar is unknown, so assume the worst).
* Fill prices are rounded against the trader to the instrument's price increment
  (buys up, sells down); fees are ``notional * bps / 10_000`` in quote currency.
* A buy whose cost (notional + fee) exceeds the account's free cash is rejected
  (``insufficient_funds``), as a venue would.
* Without native OCO (``native_brackets=False``) both legs of a bracket can trade in
  one bar; the second then sells more than the account holds (base units bought minus
  sold through this broker) and is rejected (``insufficient_balance``), as a spot
  venue would.
* :meth:`SimBroker.close_position` fills a market order at once at the reference
  price the engine gives (the last close), taker fee and slippage against the trader,
  never refused for funds (end of data, emergency stop).

Events (:class:`~tradewarden.execution.base.OrderEvent`): a market order is
``accepted`` on submit, a limit or stop order ``working``, a bracket leg ``accepted``
until its entry fills, then ``working`` (reason ``bracket leg live``). A stop that
triggers reports ``triggered`` immediately before its ``filled`` (or ``rejected``).
Every fill is whole (no partial fills).

The quiet band (:meth:`SimBroker.quiet_band`, with :meth:`SimBroker.has_orders` and
the bar-level :meth:`SimBroker.fill_bar`) is a ``SimBroker`` detail that the replay
accelerator uses to skip bars that cannot fill anything; it is not part of the
:class:`~tradewarden.execution.base.Broker` port, which real venues implement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from tradewarden.domain import (
    Bar,
    Fill,
    Instrument,
    Order,
    OrderStatus,
    OrderType,
    Side,
    to_decimal,
)
from tradewarden.execution.base import (
    BrokerCapabilities,
    OrderEvent,
    OrderEventKind,
    VenueAccount,
    VenueOrder,
)

_BPS = Decimal(10_000)
_ZERO = Decimal(0)
_FEE_Q = Decimal("0.00000001")
_INF = float("inf")
_NO_BAND = (-_INF, _INF)       # no resting orders: no bar fills anything
_EMPTY_BAND = (_INF, -_INF)    # a pending market order: every bar fills it

# Enum members bound once: ``OrderStatus.FILLED`` is a class attribute lookup through
# the enum metaclass (~80 ns on CPython 3.11), a module global is ~10 ns.
_BUY, _SELL = Side.BUY, Side.SELL
_LIMIT, _STOP, _MARKET = OrderType.LIMIT, OrderType.STOP, OrderType.MARKET
_ACCEPTED, _WORKING, _FILLED = OrderStatus.ACCEPTED, OrderStatus.WORKING, OrderStatus.FILLED
_CANCELLED, _REJECTED = OrderStatus.CANCELLED, OrderStatus.REJECTED
_E_ACCEPTED, _E_WORKING, _E_TRIGGERED = (OrderEventKind.ACCEPTED, OrderEventKind.WORKING,
                                         OrderEventKind.TRIGGERED)
_E_FILLED, _E_CANCELLED, _E_REJECTED = (OrderEventKind.FILLED, OrderEventKind.CANCELLED,
                                        OrderEventKind.REJECTED)

_LEG_LIVE = "bracket leg live"
_OCO = "oco: other leg filled"


@dataclass(slots=True, eq=False)
class _Resting:
    """A working limit or stop order, with what the bar checks need precomputed."""

    order: Order
    level: float        # limit price or stop trigger
    group: str | None   # OCO group (the entry's client order id)
    on_low: bool        # sell stop / buy limit: triggered by ``low <= level`` (else ``high >= level``)
    stop: bool          # stop order: taker fill, checked before limits within the bar


@dataclass(slots=True, eq=False)
class _Book:
    """Open orders of one symbol."""

    market: list[Order] = field(default_factory=list)     # accepted, in submission order
    resting: dict[str, _Resting] = field(default_factory=dict)  # by client order id, in arrival order
    band: tuple[float, float] | None = _NO_BAND           # quiet band of ``resting``; None: stale


class SimBroker:
    """Simulated venue for replay and paper trading; implements the ``Broker`` port.

    Parameters
    ----------
    instruments : dict of str to Instrument
        Specs by symbol (price increment for rounding fills); read at every fill, so a
        replaced spec applies to later fills.
    taker_fee_bps, maker_fee_bps : float
        Fees in basis points of notional, each in ``[0, 10000)``.
    slippage_bps : float
        Adverse price move applied to market and stop fills, basis points, in ``[0, 10000)``.
    funds : callable, optional
        ``funds(symbol) -> float`` free cash (quote currency) of the account that
        trades ``symbol``; buys costing more are rejected. Defaults to unlimited.
    native_brackets : bool
        Take bracket legs with the entry (arm them when it fills, OCO between them), as
        a venue with native brackets does. With False, :attr:`capabilities` say
        ``native_bracket=False, native_oco=False`` and :meth:`submit` refuses legs, so
        the engine's bracket emulation can be tested against the simulator.

    Attributes
    ----------
    capabilities : BrokerCapabilities
        Stop orders and client order ids always, partial fills never; native brackets
        and OCO as ``native_brackets`` says.

    Raises
    ------
    ValueError
        A fee or slippage outside ``[0, 10000)`` bps.
    """

    capabilities: BrokerCapabilities

    def __init__(self, instruments: dict[str, Instrument], *, taker_fee_bps: float = 10.0,
                 maker_fee_bps: float = 5.0, slippage_bps: float = 2.0,
                 funds: Callable[[str], float] | None = None,
                 native_brackets: bool = True) -> None:
        for name, v in (("taker_fee_bps", taker_fee_bps), ("maker_fee_bps", maker_fee_bps),
                        ("slippage_bps", slippage_bps)):
            if not 0 <= v < 10_000:
                raise ValueError(f"{name} must be in [0, 10000) bps, got {v}")
        self.instruments = instruments
        self.taker = to_decimal(taker_fee_bps) / _BPS
        self.maker = to_decimal(maker_fee_bps) / _BPS
        self.slip = to_decimal(slippage_bps) / _BPS
        self._buy_mult, self._sell_mult = 1 + self.slip, 1 - self.slip
        self.funds = funds
        native = bool(native_brackets)
        self.capabilities = BrokerCapabilities(native_bracket=native, native_oco=native,
                                               stop_orders=True, client_order_ids=True,
                                               partial_fills=False)
        self._books: dict[str, _Book] = {}
        self._legs: dict[str, tuple[Order, ...]] = {}  # entry id -> bracket legs awaiting entry fill
        self._legs_live: list[_Resting] = []   # legs made live during the current fill_bar()
        self._ids: set[str] = set()
        # Base units bought minus sold per symbol, from this venue's own fills: a spot
        # venue refuses a sell of more than the account holds. Only kept without native
        # OCO (with it, a bracket's legs never both trade).
        self._base: dict[str, Decimal] = {}
        self._spot_check = not self.capabilities.native_oco

    # -- commands ----------------------------------------------------------------------
    def submit(self, order: Order, legs: tuple[Order, ...] = ()) -> list[OrderEvent]:
        """Accept an order (and, for a bracket entry, its take-profit/stop-loss legs).

        Everything is checked before anything is recorded: after a ``ValueError`` no
        id is taken and no order is open.

        Parameters
        ----------
        order : Order
            Market, limit (``price`` set) or stop (``stop_price`` set) order.
        legs : tuple of Order
            Bracket legs (a sell limit take-profit and/or a sell stop stop-loss); they
            go live, as one OCO group, when ``order`` fills.

        Returns
        -------
        list of OrderEvent
            ``accepted`` for a market order (status ``accepted``: it fills at the next
            bar's open), ``working`` for a limit or stop order (status ``working``),
            then ``accepted`` for each leg (status ``accepted``: awaiting the entry's
            fill). Each event's ``ts`` is its order's ``created_ts``.

        Raises
        ------
        ValueError
            Duplicate client order id, unknown symbol, non-positive quantity, a
            limit/stop order without its price, a leg for another symbol than its
            entry's, or legs with ``native_brackets=False``.
        """
        ids, instruments = self._ids, self.instruments
        if legs and not self.capabilities.native_bracket:
            raise ValueError(f"order {order.client_order_id}: SimBroker(native_brackets=False) "
                             "does not take bracket legs; submit them once the entry has filled")
        new_ids: list[str] = []
        for o in (order, *legs):      # everything is checked before anything is recorded
            cid = o.client_order_id
            if cid in ids or cid in new_ids:
                raise ValueError(f"duplicate client order id {cid!r}")
            new_ids.append(cid)
            if o.symbol not in instruments:
                raise ValueError(f"unknown symbol {o.symbol!r}")
            if o.symbol != order.symbol:
                raise ValueError(f"order {cid}: bracket leg for {o.symbol!r} on an entry for "
                                 f"{order.symbol!r}")
            if o.quantity <= 0:
                raise ValueError(f"order {cid}: quantity must be positive")
            if o.type is _LIMIT and o.price is None:
                raise ValueError(f"order {cid}: limit order needs a price")
            if o.type is _STOP and o.stop_price is None:
                raise ValueError(f"order {cid}: stop order needs a stop price")
        ids.update(new_ids)
        if order.type is _MARKET:
            order.status = _ACCEPTED
            self._book(order.symbol).market.append(order)
            out = [OrderEvent(order, _E_ACCEPTED, order.created_ts)]
        else:
            self._rest(order, None)
            out = [OrderEvent(order, _E_WORKING, order.created_ts)]
        if legs:
            self._legs[order.client_order_id] = tuple(legs)
            for leg in legs:
                leg.status = _ACCEPTED
                out.append(OrderEvent(leg, _E_ACCEPTED, leg.created_ts))
        return out

    def cancel(self, client_order_id: str, ts: int, reason: str) -> list[OrderEvent]:
        """Cancel one open order: resting, accepted market, or a bracket leg not yet live.

        Cancelling an entry that has not filled also cancels its legs (they would
        never go live). Cancelling one live bracket leg leaves its sibling working.

        Parameters
        ----------
        client_order_id : str
        ts : int
            Time of the cancel, UTC epoch seconds (stamped on the events).
        reason : str
            Recorded on the events.

        Returns
        -------
        list of OrderEvent
            ``cancelled`` for the order, then for its not yet live legs; empty for an
            unknown id or an order already filled, cancelled or rejected.
        """
        for book in self._books.values():
            r = book.resting.get(client_order_id)
            if r is not None:
                self._unrest(r)
                return self._cancelled([r.order], ts, reason)
            for i, order in enumerate(book.market):
                if order.client_order_id == client_order_id:
                    del book.market[i]
                    return self._cancelled([order], ts, reason)
        for entry_id, legs in self._legs.items():      # a leg waiting for its entry's fill
            for leg in legs:
                if leg.client_order_id == client_order_id:
                    rest = tuple(x for x in legs if x is not leg)
                    if rest:
                        self._legs[entry_id] = rest
                    else:
                        del self._legs[entry_id]
                    leg.status = _CANCELLED
                    return [OrderEvent(leg, _E_CANCELLED, ts, reason)]
        return []

    def cancel_all(self, symbol: str, ts: int, reason: str) -> list[OrderEvent]:
        """Cancel every open order of ``symbol`` (bracket legs included).

        Parameters
        ----------
        symbol : str
        ts : int
            Time of the cancel, UTC epoch seconds.
        reason : str

        Returns
        -------
        list of OrderEvent
            ``cancelled`` for the resting orders, then the accepted market orders,
            then the not yet live bracket legs of any of them; empty if none is open.
        """
        book = self._books.get(symbol)
        if book is None or not (book.resting or book.market):
            return []
        cancelled = [r.order for r in book.resting.values()] + book.market
        book.resting, book.market, book.band = {}, [], _NO_BAND
        return self._cancelled(cancelled, ts, reason)

    def close_position(self, order: Order, reference_price: Decimal, ts: int) -> list[OrderEvent]:
        """Fill the market ``order`` now at ``reference_price`` (end of data, emergency stop).

        The price is ``reference_price`` moved by the slippage against the trader and
        rounded against the trader to the instrument's increment (a sell
        ``floor_price(ref * (1 - slip))``, a buy ``ceil_price(ref * (1 + slip))``); the
        fee is ``price * quantity * taker`` rounded half-even to 1e-8 quote currency,
        liquidity ``taker``: the same rules as a market fill at a bar's open. Never
        refused for funds. Other open orders of the symbol are left alone (cancel them
        first).

        Parameters
        ----------
        order : Order
            A market order (``client_order_id`` not used before), the position's size
            in base units.
        reference_price : Decimal
            The last price the engine saw, quote currency per base unit (the last close).
        ts : int
            Fill time, UTC epoch seconds.

        Returns
        -------
        list of OrderEvent
            One ``filled`` event with the fill (``reference_price`` and the order's role
            on it); the order's status is ``filled``.

        Raises
        ------
        ValueError
            Duplicate client order id, unknown symbol, non-positive quantity, an order
            that is not a market order, or a reference price that is not a positive
            finite Decimal.
        """
        cid = order.client_order_id
        if cid in self._ids:
            raise ValueError(f"duplicate client order id {cid!r}")
        inst = self.instruments.get(order.symbol)
        if inst is None:
            raise ValueError(f"unknown symbol {order.symbol!r}")
        if order.quantity <= 0:
            raise ValueError(f"order {cid}: quantity must be positive")
        if order.type is not _MARKET:
            raise ValueError(f"order {cid}: close_position takes a market order, "
                             f"got {order.type.value}")
        ref = reference_price
        if not (isinstance(ref, Decimal) and ref.is_finite() and ref > 0):
            raise ValueError(f"order {cid}: reference price must be a positive finite Decimal, "
                             f"got {ref!r}")
        self._ids.add(cid)
        if order.side is _BUY:
            price = inst.ceil_price(ref * self._buy_mult)
        else:
            price = inst.floor_price(ref * self._sell_mult)
        quantity = order.quantity
        fee = (price * quantity * self.taker).quantize(_FEE_Q, ROUND_HALF_EVEN)
        if self._spot_check:
            held = self._base.get(order.symbol, _ZERO)
            self._base[order.symbol] = held + quantity if order.side is _BUY else held - quantity
        fill = Fill(cid, order.symbol, order.side, quantity, price, fee, "taker", ts, ref,
                    order.role)
        order.status = _FILLED
        return [OrderEvent(order, _E_FILLED, ts, "", fill)]

    def open_orders(self, symbol: str) -> list[Order]:
        """Return the open orders of ``symbol``: accepted market orders, then resting ones.

        Bracket legs appear once live (after their entry filled).
        """
        book = self._books.get(symbol)
        if book is None:
            return []
        return book.market + [r.order for r in book.resting.values()]

    def lookup(self, client_order_id: str) -> VenueOrder | None:
        """Return an order this venue holds open (``accepted`` market orders and bracket
        legs awaiting their entry, ``working`` resting orders), or ``None``.

        A simulated venue fills within :meth:`process` and keeps no history: an order
        it finished was reported then; an id it never held was never received.
        """
        if client_order_id not in self._ids:
            return None
        for book in self._books.values():
            if client_order_id in book.resting:
                return VenueOrder(client_order_id, OrderStatus.WORKING, Decimal(0))
            if any(o.client_order_id == client_order_id for o in book.market):
                return VenueOrder(client_order_id, OrderStatus.ACCEPTED, Decimal(0))
        for legs in self._legs.values():
            if any(leg.client_order_id == client_order_id for leg in legs):
                return VenueOrder(client_order_id, OrderStatus.ACCEPTED, Decimal(0))
        return None

    def account(self, symbols: list[str]) -> VenueAccount:
        """Return the open orders of ``symbols``; positions and balances are ``None``:
        a simulated venue's account is the engine's own book (cash and holdings are
        persisted with the deployment's engine state, this venue's orders with them)."""
        cids = [o.client_order_id for sym in symbols for o in self.open_orders(sym)]
        cids += [leg.client_order_id for legs in self._legs.values() for leg in legs
                 if leg.symbol in symbols]
        return VenueAccount(None, tuple(cids), None)

    # -- SimBroker details for the replay accelerator (not part of the port) -----------
    def quiet_band(self, symbol: str) -> tuple[float, float]:
        """Return ``(down, up)``: a bar with ``low > down`` and ``high < up`` fills nothing.

        With a market order pending the band is empty (``(inf, -inf)``): the next bar
        always fills it. With no orders it is ``(-inf, inf)``. Prices in quote currency.
        """
        book = self._books.get(symbol)
        if book is None:
            return _NO_BAND
        if book.market:
            return _EMPTY_BAND
        band = book.band
        return self._rebuild_band(book) if band is None else band

    def active_band(self, symbol: str) -> tuple[float, float] | None:
        """Return :meth:`quiet_band` when ``symbol`` has orders, else ``None`` (one call
        for what the replay accelerator asks after every order change)."""
        book = self._books.get(symbol)
        if book is None:
            return None
        if book.market:
            return _EMPTY_BAND
        if not book.resting:
            return None
        band = book.band
        return self._rebuild_band(book) if band is None else band

    def has_orders(self, symbol: str) -> bool:
        """Return whether ``symbol`` has accepted market or resting orders."""
        book = self._books.get(symbol)
        return book is not None and bool(book.market or book.resting)

    # -- persistence (paper trading: the simulated venue's state lives in the ledger) ---
    def snapshot(self) -> dict[str, Any]:
        """Return the open orders' places, by client order id: pending market orders,
        resting orders with their OCO group, bracket legs awaiting their entry, and the
        base balances (units as text). Orders themselves are the engine's to persist."""
        return {
            "market": {sym: [o.client_order_id for o in b.market] for sym, b in self._books.items()
                       if b.market},
            "resting": {sym: [[cid, r.group] for cid, r in b.resting.items()]
                        for sym, b in self._books.items() if b.resting},
            "legs": {entry: [leg.client_order_id for leg in legs] for entry, legs in self._legs.items()},
            "base": {sym: str(q) for sym, q in self._base.items()},
        }

    def restore(self, state: dict[str, Any], orders: dict[str, Order]) -> None:
        """Rebuild the books of a :meth:`snapshot` around the engine's ``orders`` (by
        client order id), into a broker with no orders yet.

        Raises
        ------
        ValueError
            The broker already has orders, or the snapshot names an order not in ``orders``.
        """
        if self._books and any(b.market or b.resting for b in self._books.values()) or self._legs:
            raise ValueError("restore into a SimBroker that already has orders")
        try:
            for sym, cids in state["market"].items():
                self._book(sym).market.extend(orders[c] for c in cids)
            for cids in state["resting"].values():
                for cid, group in cids:
                    self._rest(orders[cid], group)
            for entry, cids in state["legs"].items():
                self._legs[entry] = tuple(orders[c] for c in cids)
        except KeyError as exc:
            raise ValueError(f"broker snapshot names order {exc.args[0]!r}, which is not open") from None
        self._base = {sym: Decimal(q) for sym, q in state["base"].items()}
        for b in self._books.values():      # the ids it holds; others it never received
            self._ids.update(o.client_order_id for o in b.market)
            self._ids.update(b.resting)
        self._ids.update(leg.client_order_id for legs in self._legs.values() for leg in legs)

    # -- the bar -----------------------------------------------------------------------
    def process(self, bar: Bar) -> list[OrderEvent]:
        """Return the events of ``bar``: :meth:`fill_bar` with its symbol, open time and prices."""
        return self.fill_bar(bar.symbol, bar.ts, bar.open, bar.high, bar.low, bar.close)

    def fill_bar(self, symbol: str, ts: int, o: float, h: float, low: float,
                 c: float) -> list[OrderEvent]:
        """Fill what bar ``(o, h, low, c)`` of ``symbol`` at ``ts`` trades through.

        The replay hot path (no :class:`~tradewarden.domain.Bar` built per bar).

        Parameters
        ----------
        symbol : str
        ts : int
            Bar open time, UTC epoch seconds (stamped on events and fills).
        o, h, low, c : float
            Open, high, low, close, quote currency per base unit.

        Returns
        -------
        list of OrderEvent
            In execution order: market fills at the open, then resting orders (gap
            fills at the open before intrabar fills; stops before limits; stop-loss
            before take-profit when both are inside the bar). A stop's ``triggered``
            comes right before its ``filled``; a filled bracket leg's sibling is
            ``cancelled`` (``oco: other leg filled``) right after it; a filled entry's
            legs go ``working`` (``bracket leg live``) right after it.
        """
        out: list[OrderEvent] = []
        self._legs_live.clear()
        book = self._books.get(symbol)
        if book is None:
            return out
        open_ref = None        # the open as a Decimal, converted once per bar
        market = book.market
        if market:
            book.market = []
            for order in market:
                if order.created_ts > ts:       # sent after this bar opened (an approval
                    book.market.append(order)   # between bars): it fills at the next open
                    continue
                if open_ref is None:
                    open_ref = to_decimal(o)
                self._execute(order, open_ref, ts, True, out)
        if book.resting:
            band = book.band
            down, up = self._rebuild_band(book) if band is None else band
            if low <= down or h >= up:
                self._process_resting(book, ts, o, h, low, open_ref, out)
        return out

    def _process_resting(self, book: _Book, ts: int, o: float, h: float, low: float,
                         open_ref: Decimal | None, out: list[OrderEvent],
                         only: list[_Resting] | None = None) -> None:
        """Fill resting orders of ``book`` the bar trades through.

        ``open_ref``: the open as a Decimal if already converted, else None.
        ``only``: bracket legs that went live mid-bar (their entry filled intrabar at
        its level). They were not live at the open, so they get no gap fill; they are
        checked against the rest of the bar's range, stop-loss first (pessimistic).
        """
        # Execution order: gap fills at the open first; among intrabar triggers,
        # stops (adverse) before limits; arrival order within each.
        gaps: list[_Resting] = []
        stops: list[_Resting] = []
        limits: list[_Resting] = []
        for r in (book.resting.values() if only is None else only):
            level = r.level
            if r.on_low:
                if only is None and o <= level:
                    gaps.append(r)
                elif low <= level:
                    (stops if r.stop else limits).append(r)
            else:
                if only is None and o >= level:
                    gaps.append(r)
                elif h >= level:
                    (stops if r.stop else limits).append(r)
        if not (gaps or stops or limits):
            return
        done_groups: set[str] = set()
        resting = book.resting
        legs_live = self._legs_live
        n_before = len(legs_live)
        n_gaps = len(gaps)
        for i, r in enumerate(gaps + stops + limits):
            order = r.order
            if order.status is not _WORKING:      # the other leg of a filled OCO pair
                continue
            group = r.group
            if group is not None and group in done_groups:
                continue
            del resting[order.client_order_id]   # legs share their entry's book (submit checks)
            book.band = None
            if i < n_gaps:
                if open_ref is None:
                    open_ref = to_decimal(o)
                ref = open_ref
            else:
                ref = to_decimal(r.level)
            if r.stop:
                out.append(OrderEvent(order, _E_TRIGGERED, ts))
            self._execute(order, ref, ts, r.stop, out)
            if group is not None and order.status is _FILLED:
                done_groups.add(group)
                for other in [x for x in resting.values() if x.group == group]:
                    del resting[other.order.client_order_id]
                    other.order.status = _CANCELLED
                    out.append(OrderEvent(other.order, _E_CANCELLED, ts, _OCO))
        if len(legs_live) > n_before:   # an entry filled mid-bar: its legs went live
            new_legs = legs_live[n_before:]
            del legs_live[n_before:]
            self._process_resting(book, ts, o, h, low, open_ref, out, only=new_legs)

    # -- order book --------------------------------------------------------------------
    def _book(self, symbol: str) -> _Book:
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = _Book()
        return book

    def _rest(self, order: Order, group: str | None) -> _Resting:
        stop = order.type is _STOP
        level = order.stop_price if stop else order.price
        order.status = _WORKING
        r = _Resting(order, float(level), group, stop == (order.side is _SELL), stop)
        book = self._book(order.symbol)
        book.resting[order.client_order_id] = r
        book.band = None
        return r

    def _unrest(self, r: _Resting) -> None:
        book = self._books[r.order.symbol]
        if book.resting.pop(r.order.client_order_id, None) is not None:
            book.band = None

    def _cancelled(self, orders: list[Order], ts: int, reason: str) -> list[OrderEvent]:
        """Mark ``orders`` (already out of the book) and their pending legs cancelled."""
        out = []
        legs_out = []
        for order in orders:
            order.status = _CANCELLED
            out.append(OrderEvent(order, _E_CANCELLED, ts, reason))
            legs = self._legs.pop(order.client_order_id, None)
            if legs:
                for leg in legs:
                    leg.status = _CANCELLED
                    legs_out.append(OrderEvent(leg, _E_CANCELLED, ts, reason))
        out += legs_out
        return out

    def _rebuild_band(self, book: _Book) -> tuple[float, float]:
        """Compute, store and return the quiet band of ``book``'s resting orders."""
        down, up = _NO_BAND
        for r in book.resting.values():
            if r.on_low:
                down = max(down, r.level)
            else:
                up = min(up, r.level)
        book.band = (down, up)
        return book.band

    # -- fills -------------------------------------------------------------------------
    def _execute(self, order: Order, ref: Decimal, ts: int, taker: bool,
                 out: list[OrderEvent]) -> None:
        """Fill ``order`` at reference price ``ref`` (or reject it for lack of funds)."""
        symbol = order.symbol
        inst = self.instruments[symbol]
        buy = order.side is _BUY
        raw = ref * (self._buy_mult if buy else self._sell_mult) if taker else ref
        price = inst.ceil_price(raw) if buy else inst.floor_price(raw)
        quantity = order.quantity
        notional = price * quantity
        fee = (notional * (self.taker if taker else self.maker)).quantize(_FEE_Q, ROUND_HALF_EVEN)
        cid = order.client_order_id
        if buy and self.funds is not None and float(notional + fee) > self.funds(symbol):
            order.status = _REJECTED
            order.status_reason = "insufficient_funds"
            out.append(OrderEvent(order, _E_REJECTED, ts, "insufficient_funds"))
            for leg in self._legs.pop(cid, ()):
                leg.status = _CANCELLED
                out.append(OrderEvent(leg, _E_CANCELLED, ts, "entry rejected"))
            return
        if self._spot_check:      # no native OCO: two legs can trade in one bar
            held = self._base.get(symbol, _ZERO)
            if not buy and order.parent_id is not None and quantity > held:
                # the other leg of the pair already sold the position in this bar
                order.status = _REJECTED
                order.status_reason = "insufficient_balance"
                out.append(OrderEvent(order, _E_REJECTED, ts, "insufficient_balance"))
                return
            self._base[symbol] = held + quantity if buy else held - quantity
        fill = Fill(cid, symbol, order.side, quantity, price, fee,
                    "taker" if taker else "maker", ts, ref, order.role)
        order.status = _FILLED
        out.append(OrderEvent(order, _E_FILLED, ts, "", fill))
        legs = self._legs.pop(cid, None)
        if legs:
            for leg in legs:
                self._legs_live.append(self._rest(leg, cid))
                out.append(OrderEvent(leg, _E_WORKING, ts, _LEG_LIVE))
