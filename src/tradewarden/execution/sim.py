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

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Callable

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


@dataclass(slots=True)
class OrderUpdate:
    """A change of an order's status (fill, cancel, reject) produced by a bar."""

    order: Order
    status: OrderStatus
    ts: int
    reason: str = ""
    fill: Fill | None = None


@dataclass(slots=True)
class _Resting:
    order: Order
    level: float
    group: str | None  # OCO group (the entry's client order id)


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
        self._market: dict[str, list[Order]] = {}
        self._resting: dict[str, list[_Resting]] = {}
        self._legs: dict[str, list[Order]] = {}     # entry id -> bracket legs awaiting entry fill
        # Per symbol (down, up): a bar with low > down and high < up touches no resting
        # order, so it is skipped without looking at each order.
        self._band: dict[str, tuple[float, float]] = {}
        self._dirty: set[str] = set()
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
        seen: set[str] = set()
        for o in (order, *legs):
            if o.client_order_id in self._ids or o.client_order_id in seen:
                raise ValueError(f"duplicate client order id {o.client_order_id!r}")
            seen.add(o.client_order_id)
            if o.symbol not in self.instruments:
                raise ValueError(f"unknown symbol {o.symbol!r}")
            if o.quantity <= 0:
                raise ValueError(f"order {o.client_order_id}: quantity must be positive")
            if o.type is OrderType.LIMIT and o.price is None:
                raise ValueError(f"order {o.client_order_id}: limit order needs a price")
            if o.type is OrderType.STOP and o.stop_price is None:
                raise ValueError(f"order {o.client_order_id}: stop order needs a stop price")
        for o in (order, *legs):
            self._ids.add(o.client_order_id)
        order.status = OrderStatus.PENDING
        if order.type is OrderType.MARKET:
            self._market.setdefault(order.symbol, []).append(order)
        else:
            self._rest(order, None)
        if legs:
            self._legs[order.client_order_id] = list(legs)

    def cancel_all(self, symbol: str, ts: int, reason: str) -> list[OrderUpdate]:
        """Cancel every open order of ``symbol`` (resting legs included)."""
        out = [OrderUpdate(r.order, OrderStatus.CANCELLED, ts, reason)
               for r in self._resting.pop(symbol, [])]
        self._band.pop(symbol, None)
        self._dirty.discard(symbol)
        out += [OrderUpdate(o, OrderStatus.CANCELLED, ts, reason)
                for o in self._market.pop(symbol, [])]
        for u in out:
            u.order.status = OrderStatus.CANCELLED
            for leg in self._legs.pop(u.order.client_order_id, []):
                leg.status = OrderStatus.CANCELLED
                out.append(OrderUpdate(leg, OrderStatus.CANCELLED, ts, reason))
        return out

    def quiet_band(self, symbol: str) -> tuple[float, float]:
        """Return ``(down, up)``: a bar with ``low > down`` and ``high < up`` fills nothing.

        With a market order pending the band is empty (``(inf, -inf)``): the next bar
        always fills it. With no orders it is ``(-inf, inf)``.
        """
        if self._market.get(symbol):
            return (float("inf"), float("-inf"))
        return self._band_of(symbol)

    def has_orders(self, symbol: str) -> bool:
        """Whether ``symbol`` has pending or resting orders."""
        return bool(self._market.get(symbol) or self._resting.get(symbol))

    def open_orders(self, symbol: str) -> list[Order]:
        """Pending market orders then resting orders of ``symbol``."""
        return list(self._market.get(symbol, [])) + [r.order for r in self._resting.get(symbol, [])]

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
        market = self._market.pop(symbol, None)
        if market:
            for order in market:
                ref = to_decimal(o)
                self._execute(order, ref, ts, taker=True, out=out)
        if symbol in self._resting:
            down, up = self._band_of(symbol)
            if low <= down or h >= up:
                self._process_resting(symbol, ts, o, h, low, out)
        return out

    def _process_resting(self, symbol: str, ts: int, o: float, h: float, low: float,
                         out: list[OrderUpdate], only: list[_Resting] | None = None) -> None:
        """Fill resting orders the bar trades through.

        ``only``: bracket legs that went live mid-bar (their entry filled intrabar at
        its level). They were not live at the open, so they get no gap fill; they are
        checked against the rest of the bar's range, stop-loss first (pessimistic).
        """
        # Candidates: (priority, ref price, resting). Gap fills at the open come
        # first; among intrabar triggers, stops (adverse) before limits.
        hits: list[tuple[int, float, _Resting]] = []
        for r in (self._resting.get(symbol, []) if only is None else only):
            order = r.order
            sell = order.side is Side.SELL
            gap_ok = only is None
            if order.type is OrderType.STOP:
                if gap_ok and ((o <= r.level) if sell else (o >= r.level)):
                    hits.append((0, o, r))
                elif (low <= r.level) if sell else (h >= r.level):
                    hits.append((1, r.level, r))
            else:
                if gap_ok and ((o >= r.level) if sell else (o <= r.level)):
                    hits.append((0, o, r))
                elif (h >= r.level) if sell else (low <= r.level):
                    hits.append((2, r.level, r))
        if not hits:
            return
        hits.sort(key=lambda x: x[0])
        done_groups: set[str] = set()
        n_before = len(self._legs_live)
        for _, ref, r in hits:
            if r.order.status is not OrderStatus.WORKING:
                continue
            if r.group is not None and r.group in done_groups:
                continue
            taker = r.order.type is OrderType.STOP
            self._unrest(r)
            self._execute(r.order, to_decimal(ref), ts, taker=taker, out=out)
            if r.group is not None and r.order.status is OrderStatus.FILLED:
                done_groups.add(r.group)
                for other in list(self._resting.get(symbol, [])):
                    if other.group == r.group:
                        self._unrest(other)
                        other.order.status = OrderStatus.CANCELLED
                        out.append(OrderUpdate(other.order, OrderStatus.CANCELLED, ts,
                                               "oco: other leg filled"))
        if len(self._legs_live) > n_before:   # an entry filled mid-bar: its legs went live
            new_legs = self._legs_live[n_before:]
            del self._legs_live[n_before:]
            self._process_resting(symbol, ts, o, h, low, out, only=new_legs)

    def _rest(self, order: Order, group: str | None) -> _Resting:
        level = order.stop_price if order.type is OrderType.STOP else order.price
        order.status = OrderStatus.WORKING
        r = _Resting(order, float(level), group)
        self._resting.setdefault(order.symbol, []).append(r)
        self._dirty.add(order.symbol)
        return r

    def _unrest(self, r: _Resting) -> None:
        lst = self._resting.get(r.order.symbol, [])
        if r in lst:
            lst.remove(r)
        if not lst:
            self._resting.pop(r.order.symbol, None)
        self._dirty.add(r.order.symbol)

    def _band_of(self, symbol: str) -> tuple[float, float]:
        """The quiet band of the resting orders, rebuilt only after they changed."""
        if symbol in self._dirty:
            self._dirty.discard(symbol)
            self._rebuild_band(symbol)
        return self._band.get(symbol, (float("-inf"), float("inf")))

    def _rebuild_band(self, symbol: str) -> None:
        down, up = float("-inf"), float("inf")
        for r in self._resting.get(symbol, ()):
            sell = r.order.side is Side.SELL
            on_low = (r.order.type is OrderType.STOP) == sell  # sell stop / buy limit
            if on_low:
                down = max(down, r.level)
            else:
                up = min(up, r.level)
        if symbol in self._resting:
            self._band[symbol] = (down, up)
        else:
            self._band.pop(symbol, None)

    def _execute(self, order: Order, ref: Decimal, ts: int, *, taker: bool,
                 out: list[OrderUpdate]) -> None:
        inst = self.instruments[order.symbol]
        buy = order.side is Side.BUY
        if taker:
            raw = ref * (self._buy_mult if buy else self._sell_mult)
        else:
            raw = ref
        price = inst.ceil_price(raw) if buy else inst.floor_price(raw)
        notional = price * order.quantity
        fee = (notional * (self.taker if taker else self.maker)).quantize(_FEE_Q, ROUND_HALF_EVEN)
        if buy and self.funds is not None and float(notional + fee) > self.funds(order.symbol):
            order.status = OrderStatus.REJECTED
            order.status_reason = "insufficient_funds"
            out.append(OrderUpdate(order, OrderStatus.REJECTED, ts, "insufficient_funds"))
            for leg in self._legs.pop(order.client_order_id, []):
                leg.status = OrderStatus.CANCELLED
                out.append(OrderUpdate(leg, OrderStatus.CANCELLED, ts, "entry rejected"))
            return
        fill = Fill(order.client_order_id, order.symbol, order.side, order.quantity, price, fee,
                    "taker" if taker else "maker", ts, ref, order.role)
        order.status = OrderStatus.FILLED
        out.append(OrderUpdate(order, OrderStatus.FILLED, ts, "", fill))
        legs = self._legs.pop(order.client_order_id, None)
        if legs:
            for leg in legs:
                self._legs_live.append(self._rest(leg, order.client_order_id))
                out.append(OrderUpdate(leg, OrderStatus.WORKING, ts, "bracket leg live"))


def make_order_id(run_id: str, symbol: str, seq: int, role: OrderRole) -> str:
    """Deterministic client order id: ``tw-{run_id}-{symbol}-{seq}-{role}``.

    The same run, symbol, decision sequence and role always give the same id, so a
    retry after a crash is recognised by the venue instead of doubling a position.
    """
    return f"tw-{run_id}-{symbol}-{seq}-{role.value}"
