"""A simulated options venue that fills against the quote snapshot of an option chain.

End-of-day option data has no trades to match, only each contract's bid and ask at the
snapshot. This venue fills an order at once against the snapshot the decision saw: a
sell at the bid, a buy at the ask (the side of the spread a marketable order pays),
the whole quantity, or rejects it. It is the options counterpart of
:class:`~tradewarden.execution.sim.SimBroker` behind the same
:class:`~tradewarden.execution.base.Broker` port, so the options desk
(:mod:`tradewarden.engine.options_desk`) does not know whether it trades here or at
Interactive Brokers.

Units: order and fill quantities in contracts (whole numbers), prices in USD per share
of the deliverable, fees in USD per order.

Commission
----------
IBKR Pro Fixed, US equity and index options: USD 0.65 per contract, at least USD 1.00
per order (https://www.interactivebrokers.com/en/pricing/commissions-options.php, the
rate for premiums of USD 0.10 and more); both are parameters.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping, NamedTuple

from tradewarden.domain import Bar, Fill, Order, OrderStatus, OrderType, Side
from tradewarden.execution.base import (
    BrokerCapabilities,
    OrderEvent,
    OrderEventKind,
    VenueAccount,
    VenueOrder,
)

__all__ = ["OptionQuoteSnapshot", "SimOptionsBroker"]


class OptionQuoteSnapshot(NamedTuple):
    """One contract's quote at a snapshot (USD per share; ``None``: no quote that side)."""

    bid: Decimal | None
    ask: Decimal | None


class SimOptionsBroker:
    """Fill option orders against the current chain snapshot (see the module notes).

    Parameters
    ----------
    commission_per_contract : Decimal
        USD per contract (default 0.65).
    min_commission : Decimal
        USD per order at least (default 1.00).
    """

    capabilities = BrokerCapabilities(native_bracket=False, native_oco=False, stop_orders=False,
                                      client_order_ids=True, partial_fills=False)

    def __init__(self, *, commission_per_contract: Decimal = Decimal("0.65"),
                 min_commission: Decimal = Decimal("1.00")) -> None:
        if commission_per_contract < 0 or min_commission < 0:
            raise ValueError("commissions must be >= 0")
        self.commission_per_contract = commission_per_contract
        self.min_commission = min_commission
        self._quotes: dict[str, OptionQuoteSnapshot] = {}
        self._ts = 0
        self._orders: dict[str, VenueOrder] = {}

    def set_quotes(self, ts: int, quotes: Mapping[str, OptionQuoteSnapshot]) -> None:
        """Make ``quotes`` (OCC symbol → bid/ask) the snapshot orders fill against.

        Parameters
        ----------
        ts : int
            The snapshot's time, UTC epoch seconds (the fills' time).
        quotes : mapping of str to OptionQuoteSnapshot
        """
        self._ts = int(ts)
        self._quotes = dict(quotes)

    def commission(self, contracts: Decimal) -> Decimal:
        """Return the commission of one order of ``contracts`` (USD)."""
        return max(self.min_commission, self.commission_per_contract * contracts)

    def submit(self, order: Order, legs: tuple[Order, ...] = ()) -> list[OrderEvent]:
        """Fill ``order`` against the snapshot now, or reject it.

        Returns
        -------
        list of OrderEvent
            ``accepted`` then ``filled`` (the whole quantity at the bid for a sell, the
            ask for a buy), or one ``rejected`` with the reason: ``no_quote`` (the
            contract is not in the snapshot or has no price on that side),
            ``limit_not_marketable`` (a sell limit above the bid, a buy limit below the
            ask: end-of-day quotes cannot tell whether it would have traded later).

        Raises
        ------
        ValueError
            A duplicate client order id, bracket legs, a stop order, or a quantity that is
            not a positive whole number of contracts.
        """
        cid = order.client_order_id
        if cid in self._orders:
            raise ValueError(f"duplicate client order id {cid}")
        if legs:
            raise ValueError("the simulated options venue takes no bracket legs")
        if order.type is OrderType.STOP:
            raise ValueError("the simulated options venue takes market and limit orders only")
        q = order.quantity
        if q <= 0 or q != q.to_integral_value():
            raise ValueError(f"{cid}: {q} is not a positive whole number of contracts")
        quote = self._quotes.get(order.symbol)
        price = None if quote is None else (quote.bid if order.side is Side.SELL else quote.ask)
        ts = self._ts
        if price is None or price <= 0:
            return self._end(order, OrderEventKind.REJECTED, ts, "no_quote")
        if order.type is OrderType.LIMIT and order.price is not None and (
                (order.side is Side.SELL and order.price > price)
                or (order.side is Side.BUY and order.price < price)):
            return self._end(order, OrderEventKind.REJECTED, ts, "limit_not_marketable")
        mid = price if quote.bid is None or quote.ask is None else (quote.bid + quote.ask) / 2
        fill = Fill(cid, order.symbol, order.side, q, price, self.commission(q), "taker", ts,
                    mid, order.role)
        self._orders[cid] = VenueOrder(cid, OrderStatus.FILLED, q, (fill,))
        return [OrderEvent(order, OrderEventKind.ACCEPTED, ts),
                OrderEvent(order, OrderEventKind.FILLED, ts, fill=fill)]

    def _end(self, order: Order, kind: OrderEventKind, ts: int, reason: str) -> list[OrderEvent]:
        self._orders[order.client_order_id] = VenueOrder(order.client_order_id,
                                                         OrderStatus.REJECTED, Decimal(0),
                                                         reason=reason)
        return [OrderEvent(order, kind, ts, reason)]

    def cancel(self, client_order_id: str, ts: int, reason: str) -> list[OrderEvent]:
        """Return no event: nothing rests at this venue."""
        return []

    def cancel_all(self, symbol: str, ts: int, reason: str) -> list[OrderEvent]:
        """Return no event: nothing rests at this venue."""
        return []

    def close_position(self, order: Order, reference_price: Decimal, ts: int) -> list[OrderEvent]:
        """Close at the snapshot like :meth:`submit` (a market order)."""
        return self.submit(order)

    def process(self, bar: Bar) -> list[OrderEvent]:
        """Return no event: every order ended when it was submitted."""
        return []

    def open_orders(self, symbol: str) -> list[Order]:
        """Return no order: nothing rests at this venue."""
        return []

    def lookup(self, client_order_id: str) -> VenueOrder | None:
        """Return how an order ended, or ``None`` for one never received."""
        return self._orders.get(client_order_id)

    def account(self, symbols: list[str]) -> VenueAccount:
        """Return no positions or balances of its own (the desk's book is the record)."""
        return VenueAccount(None)

    def snapshot(self) -> dict[str, Any]:
        """Return the ids of the orders received and how they ended (JSON-ready)."""
        return {"orders": {c: [v.status.value, str(v.filled), v.reason]
                           for c, v in self._orders.items()}}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Reload :meth:`snapshot`'s order record (fills are the ledger's; not kept here)."""
        self._orders = {c: VenueOrder(c, OrderStatus(s), Decimal(f), (), r)
                        for c, (s, f, r) in state.get("orders", {}).items()}
