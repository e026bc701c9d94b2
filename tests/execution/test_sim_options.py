"""The simulated options venue: which side of the quote an order fills at, and why not.

Table-driven like the candle tests of the bar venue: one row per case, the quote, the
order, and the event it must produce.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tradewarden.domain import Order, OrderRole, OrderType, Side
from tradewarden.execution.base import OrderEventKind
from tradewarden.execution.sim_options import OptionQuoteSnapshot, SimOptionsBroker

OCC = "SPXW  110107P01260000"

# quote (bid, ask) | side | type | limit | contracts -> kind, price, fee, reason
CASES = [
    # a sell (writing the put) at the bid; the minimum commission for one contract
    ((D("3.70"), D("4.20")), Side.SELL, OrderType.LIMIT, D("3.70"), 1,
     OrderEventKind.FILLED, D("3.70"), D("1.00"), ""),
    # a sell limit below the bid fills at the bid (the better price)
    ((D("3.70"), D("4.20")), Side.SELL, OrderType.LIMIT, D("3.50"), 2,
     OrderEventKind.FILLED, D("3.70"), D("1.30"), ""),
    # a buy (buying back) at the ask; 0.65 per contract above the minimum
    ((D("1.25"), D("1.50")), Side.BUY, OrderType.LIMIT, D("1.50"), 3,
     OrderEventKind.FILLED, D("1.50"), D("1.95"), ""),
    ((D("1.25"), D("1.50")), Side.BUY, OrderType.MARKET, None, 1,
     OrderEventKind.FILLED, D("1.50"), D("1.00"), ""),
    # a sell limit above the bid: end-of-day quotes cannot say it would have traded
    ((D("3.70"), D("4.20")), Side.SELL, OrderType.LIMIT, D("3.80"), 1,
     OrderEventKind.REJECTED, None, None, "limit_not_marketable"),
    ((D("1.25"), D("1.50")), Side.BUY, OrderType.LIMIT, D("1.45"), 1,
     OrderEventKind.REJECTED, None, None, "limit_not_marketable"),
    # a zero bid: nothing to sell into (the chain's 0.00 bids on far out-of-the-money puts)
    ((D("0"), D("0.05")), Side.SELL, OrderType.MARKET, None, 1,
     OrderEventKind.REJECTED, None, None, "no_quote"),
    # not in the snapshot at all
    (None, Side.BUY, OrderType.MARKET, None, 1, OrderEventKind.REJECTED, None, None, "no_quote"),
]


@pytest.mark.parametrize("quote,side,otype,limit,contracts,kind,price,fee,reason", CASES)
def test_an_order_fills_at_its_side_of_the_quote_or_is_rejected(quote, side, otype, limit,
                                                                 contracts, kind, price, fee,
                                                                 reason):
    venue = SimOptionsBroker()
    venue.set_quotes(100, {} if quote is None else {OCC: OptionQuoteSnapshot(*quote)})
    order = Order("c1", OCC, side, otype, D(contracts), OrderRole.ENTRY, 100, price=limit)
    events = venue.submit(order)
    assert events[-1].kind is kind
    assert events[-1].reason == reason
    if kind is OrderEventKind.FILLED:
        assert [e.kind for e in events] == [OrderEventKind.ACCEPTED, OrderEventKind.FILLED]
        f = events[-1].fill
        assert (f.price, f.fee, f.quantity, f.ts) == (price, fee, D(contracts), 100)
        assert f.reference_price == (quote[0] + quote[1]) / 2        # the mid
    assert venue.lookup("c1").status.value == ("filled" if price else "rejected")


def test_bad_orders_are_refused_before_anything_is_recorded():
    venue = SimOptionsBroker()
    venue.set_quotes(1, {OCC: OptionQuoteSnapshot(D("1"), D("1.1"))})
    for q in (D("0"), D("1.5"), D("-1")):
        with pytest.raises(ValueError, match="whole number of contracts"):
            venue.submit(Order(f"q{q}", OCC, Side.SELL, OrderType.MARKET, q, OrderRole.ENTRY, 1))
    with pytest.raises(ValueError, match="market and limit"):
        venue.submit(Order("s", OCC, Side.SELL, OrderType.STOP, D(1), OrderRole.ENTRY, 1,
                           stop_price=D(1)))
    venue.submit(Order("a", OCC, Side.SELL, OrderType.MARKET, D(1), OrderRole.ENTRY, 1))
    with pytest.raises(ValueError, match="duplicate client order id a"):
        venue.submit(Order("a", OCC, Side.SELL, OrderType.MARKET, D(1), OrderRole.ENTRY, 1))
    assert venue.lookup("q1.5") is None and venue.lookup("a").filled == D(1)
    restored = SimOptionsBroker()
    restored.restore(venue.snapshot())
    assert restored.lookup("a").filled == D(1)
