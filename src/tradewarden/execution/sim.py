"""Simulated broker: deterministic fills against OHLCV bars.

Fill rules (pinned by the candle-table tests in ``tests/execution``):

* **Market** orders fill at the *next* bar's open (an order decided on bar ``t``'s
  close is submitted after ``t`` and fills at ``t+1``'s open), taker fee, slippage
  against the trader.
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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from tradewarden.domain import (
    Fill,
    Instrument,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    Side,
    to_decimal,
)

_BPS = Decimal(10_000)
_FEE_Q = Decimal("0.00000001")
_INF = float("inf")
_NO_BAND = (-_INF, _INF)       # no resting orders: no bar fills anything
_EMPTY_BAND = (_INF, -_INF)    # a pending market order: every bar fills it

# Enum members bound once: ``OrderStatus.FILLED`` is a class attribute lookup through
# the enum metaclass (~80 ns on CPython 3.11), a module global is ~10 ns.
_BUY, _SELL = Side.BUY, Side.SELL
_LIMIT, _STOP, _MARKET = OrderType.LIMIT, OrderType.STOP, OrderType.MARKET
_PENDING, _WORKING, _FILLED = OrderStatus.PENDING, OrderStatus.WORKING, OrderStatus.FILLED
_CANCELLED, _REJECTED = OrderStatus.CANCELLED, OrderStatus.REJECTED


@dataclass(slots=True)
class OrderUpdate:
    """A change of an order's status (fill, cancel, reject) produced by a bar."""

    order: Order
    status: OrderStatus
    ts: int
    reason: str = ""
    fill: Fill | None = None


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

    market: list[Order] = field(default_factory=list)     # pending, in submission order
    resting: dict[str, _Resting] = field(default_factory=dict)  # by client order id, in arrival order
    band: tuple[float, float] | None = _NO_BAND           # quiet band of ``resting``; None: stale


class SimBroker:
    """Simulated venue for replay and paper trading.

    Parameters
    ----------
    instruments : dict of str to Instrument
    taker_fee_bps, maker_fee_bps : float
        Fees in basis points of notional.
    slippage_bps : float
        Adverse price move applied to market and stop fills, basis points.
    funds : callable, optional
        ``funds(symbol) -> float`` free cash (quote currency) of the account that
        trades ``symbol``; buys costing more are rejected. Defaults to unlimited.
    """

    def __init__(self, instruments: dict[str, Instrument], *, taker_fee_bps: float = 10.0,
                 maker_fee_bps: float = 5.0, slippage_bps: float = 2.0,
                 funds: Callable[[str], float] | None = None) -> None:
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
        self._books: dict[str, _Book] = {}
        self._legs: dict[str, tuple[Order, ...]] = {}  # entry id -> bracket legs awaiting entry fill
        self._legs_live: list[_Resting] = []   # legs made live during the current process()
        self._ids: set[str] = set()

    # -- commands ----------------------------------------------------------------------
    def submit(self, order: Order, legs: tuple[Order, ...] = ()) -> None:
        """Accept an order (and, for a bracket entry, its take-profit/stop-loss legs).

        Raises
        ------
        ValueError
            Duplicate client order id, unknown symbol, non-positive quantity, or a
            limit/stop order without its price.
        """
        ids, instruments = self._ids, self.instruments
        new_ids: list[str] = []
        for o in (order, *legs):      # everything is checked before anything is recorded
            cid = o.client_order_id
            if cid in ids or cid in new_ids:
                raise ValueError(f"duplicate client order id {cid!r}")
            new_ids.append(cid)
            if o.symbol not in instruments:
                raise ValueError(f"unknown symbol {o.symbol!r}")
            if o.quantity <= 0:
                raise ValueError(f"order {cid}: quantity must be positive")
            if o.type is _LIMIT and o.price is None:
                raise ValueError(f"order {cid}: limit order needs a price")
            if o.type is _STOP and o.stop_price is None:
                raise ValueError(f"order {cid}: stop order needs a stop price")
        ids.update(new_ids)
        order.status = _PENDING
        if order.type is _MARKET:
            self._book(order.symbol).market.append(order)
        else:
            self._rest(order, None)
        if legs:
            self._legs[order.client_order_id] = tuple(legs)

    def cancel_all(self, symbol: str, ts: int, reason: str) -> list[OrderUpdate]:
        """Cancel every open order of ``symbol`` (resting legs included).

        Returns
        -------
        list of OrderUpdate
            Resting orders, then pending market orders, then the not yet live
            bracket legs of any of them.
        """
        book = self._books.get(symbol)
        if book is None or not (book.resting or book.market):
            return []
        cancelled = [r.order for r in book.resting.values()] + book.market
        book.resting, book.market, book.band = {}, [], _NO_BAND
        out = []
        legs_out = []
        for order in cancelled:
            order.status = _CANCELLED
            out.append(OrderUpdate(order, _CANCELLED, ts, reason))
            legs = self._legs.pop(order.client_order_id, None)
            if legs:
                for leg in legs:
                    leg.status = _CANCELLED
                    legs_out.append(OrderUpdate(leg, _CANCELLED, ts, reason))
        out += legs_out
        return out

    def quiet_band(self, symbol: str) -> tuple[float, float]:
        """Return ``(down, up)``: a bar with ``low > down`` and ``high < up`` fills nothing.

        With a market order pending the band is empty (``(inf, -inf)``): the next bar
        always fills it. With no orders it is ``(-inf, inf)``.
        """
        book = self._books.get(symbol)
        if book is None:
            return _NO_BAND
        if book.market:
            return _EMPTY_BAND
        band = book.band
        return self._rebuild_band(book) if band is None else band

    def has_orders(self, symbol: str) -> bool:
        """Whether ``symbol`` has pending or resting orders."""
        book = self._books.get(symbol)
        return book is not None and bool(book.market or book.resting)

    def open_orders(self, symbol: str) -> list[Order]:
        """Pending market orders then resting orders of ``symbol``."""
        book = self._books.get(symbol)
        if book is None:
            return []
        return book.market + [r.order for r in book.resting.values()]

    # -- the bar -----------------------------------------------------------------------
    def process(self, symbol: str, ts: int, o: float, h: float, low: float,
                c: float) -> list[OrderUpdate]:
        """Fill what bar ``(o, h, low, c)`` of ``symbol`` at ``ts`` trades through.

        Returns
        -------
        list of OrderUpdate
            In execution order: market fills at the open, then resting orders
            (gap fills at the open before intrabar fills; stop-loss before
            take-profit when both are inside the bar).
        """
        out: list[OrderUpdate] = []
        self._legs_live.clear()
        book = self._books.get(symbol)
        if book is None:
            return out
        open_ref = None        # the open as a Decimal, converted once per bar
        market = book.market
        if market:
            book.market = []
            open_ref = to_decimal(o)
            for order in market:
                self._execute(order, open_ref, ts, True, out)
        if book.resting:
            band = book.band
            down, up = self._rebuild_band(book) if band is None else band
            if low <= down or h >= up:
                self._process_resting(book, ts, o, h, low, open_ref, out)
        return out

    def _process_resting(self, book: _Book, ts: int, o: float, h: float, low: float,
                         open_ref: Decimal | None, out: list[OrderUpdate],
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
            self._unrest(r)
            if i < n_gaps:
                if open_ref is None:
                    open_ref = to_decimal(o)
                ref = open_ref
            else:
                ref = to_decimal(r.level)
            self._execute(order, ref, ts, r.stop, out)
            if group is not None and order.status is _FILLED:
                done_groups.add(group)
                for other in [x for x in book.resting.values() if x.group == group]:
                    self._unrest(other)
                    other.order.status = _CANCELLED
                    out.append(OrderUpdate(other.order, _CANCELLED, ts, "oco: other leg filled"))
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
                 out: list[OrderUpdate]) -> None:
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
            out.append(OrderUpdate(order, _REJECTED, ts, "insufficient_funds"))
            for leg in self._legs.pop(cid, ()):
                leg.status = _CANCELLED
                out.append(OrderUpdate(leg, _CANCELLED, ts, "entry rejected"))
            return
        fill = Fill(cid, symbol, order.side, quantity, price, fee,
                    "taker" if taker else "maker", ts, ref, order.role)
        order.status = _FILLED
        out.append(OrderUpdate(order, _FILLED, ts, "", fill))
        legs = self._legs.pop(cid, None)
        if legs:
            for leg in legs:
                self._legs_live.append(self._rest(leg, cid))
                out.append(OrderUpdate(leg, _WORKING, ts, "bracket leg live"))


def make_order_id(run_id: str, symbol: str, seq: int, role: OrderRole) -> str:
    """Deterministic client order id: ``tw-{run_id}-{symbol}-{seq}-{role}``.

    The same run, symbol, decision sequence and role always give the same id, so a
    retry after a crash is recognised by the venue instead of doubling a position.
    """
    return f"tw-{run_id}-{symbol}-{seq}-{role.value}"
