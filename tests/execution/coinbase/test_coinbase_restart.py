"""CoinbaseBroker after a restart: an attached bracket the venue ends with the position
held is the protection lost, sold at market once, whether it ended while no process
watched (found by ``lookup``) or after the new process took the legs over (``process``).

A "restart" is a second adapter on the same fake with nothing but what the engine hands
it (lookups, then ``adopt``), as a new process has; the real SDK talks to the loopback
TLS fake.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from fake_coinbase import FakeCoinbase

from tradewarden.domain import Bar, Order, OrderRole, OrderStatus, OrderType, Side
from tradewarden.engine.clock import WallClock
from tradewarden.execution.base import OrderEventKind
from tradewarden.execution.coinbase import CoinbaseBroker

SYM = "BTC-USD"
K = OrderEventKind


@pytest.fixture
def wall(clock):
    return WallClock(clock, clock.advance)


def connect(fake: FakeCoinbase, key, wall) -> CoinbaseBroker:
    return CoinbaseBroker.connect(api_key=key.name, api_secret=key.private_pem,
                                  api_url=f"https://{fake.host}", symbols=[SYM], clock=wall,
                                  timeout=2)


def bracket(ts: int) -> tuple[Order, tuple[Order, Order]]:
    """An entry of 0.1 BTC with its legs at 55000 / 48000, as the engine names them."""
    q = Decimal("0.1")
    entry = Order("tw-dep-0-entry", SYM, Side.BUY, OrderType.MARKET, q, OrderRole.ENTRY, ts)
    take = Order("tw-dep-0-take_profit", SYM, Side.SELL, OrderType.LIMIT, q, OrderRole.TAKE_PROFIT,
                 ts, price=Decimal(55000), parent_id=entry.client_order_id)
    stop = Order("tw-dep-0-stop_loss", SYM, Side.SELL, OrderType.STOP, q, OrderRole.STOP_LOSS, ts,
                 stop_price=Decimal(48000), parent_id=entry.client_order_id)
    return entry, (take, stop)


def bar(clock) -> Bar:
    t = int(clock()) // 3600 * 3600
    return Bar(SYM, t - 3600, 50000.0, 50000.0, 50000.0, 50000.0, 1.0, t)


def held_with_bracket(coinbase, cdp_key, wall, clock):
    """A first process places the bracket entry and sees it filled, legs live; returns the
    legs (as the engine restores them, working) and the attached order."""
    first = connect(coinbase, cdp_key, wall)
    entry, legs = bracket(int(clock()))
    first.submit(entry, legs)
    clock.advance(3600)
    first.process(bar(clock))
    for leg in legs:
        leg.status = OrderStatus.WORKING
    (att,) = [o for o in coinbase.open_orders(SYM) if o.order_type == "BRACKET"]
    return legs, att


def flatten_orders(coinbase):
    return [o for o in coinbase.orders.values() if o.client_order_id.endswith("-flatten")]


def test_a_bracket_that_expired_while_no_process_watched_is_sold_at_the_lookup(
        coinbase, cdp_key, wall, clock):
    (tp, sl), att = held_with_bracket(coinbase, cdp_key, wall, clock)
    att.status = "EXPIRED"                                   # nobody watching
    clock.advance(600)
    second = connect(coinbase, cdp_key, wall)                # the restart
    v_tp = second.lookup(tp.client_order_id)
    v_sl = second.lookup(sl.client_order_id)
    (sale,) = flatten_orders(coinbase)
    assert sale.client_order_id == "tw-dep-0-entry-flatten" and sale.status == "FILLED"
    assert v_tp.status is OrderStatus.CANCELLED and v_tp.reason.startswith("protection lost: ")
    assert v_sl.status is OrderStatus.FILLED and v_sl.filled == Decimal("0.1")
    assert [(f.price, f.quantity, f.role) for f in v_sl.fills] == [
        (Decimal(50000), Decimal("0.1"), OrderRole.STOP_LOSS)]
    assert coinbase.balance("BTC") == (Decimal(0), Decimal(0))
    assert len(second.alerts) == 1 and "sold at market by the adapter" in second.alerts[0]
    # asked again (an engine killed before booking it, then started once more): one sale
    third = connect(coinbase, cdp_key, wall)
    assert third.lookup(sl.client_order_id).fills == v_sl.fills
    assert coinbase.submit_count(sale.client_order_id) == 1 and len(flatten_orders(coinbase)) == 1


def test_a_bracket_that_expires_after_the_restart_is_sold_at_the_next_poll(
        coinbase, cdp_key, wall, clock):
    (tp, sl), att = held_with_bracket(coinbase, cdp_key, wall, clock)
    second = connect(coinbase, cdp_key, wall)                # the restart: the legs are live
    assert second.lookup(tp.client_order_id).status is OrderStatus.WORKING
    assert second.lookup(sl.client_order_id).status is OrderStatus.WORKING
    second.adopt({tp.client_order_id: tp, sl.client_order_id: sl}, {})
    att.status = "EXPIRED"
    clock.advance(3600)
    events = second.process(bar(clock))
    assert [(e.order.role.value, e.kind.value) for e in events] == [
        ("stop_loss", "filled"), ("take_profit", "cancelled")]
    assert events[0].fill.quantity == Decimal("0.1") and len(flatten_orders(coinbase)) == 1
    assert coinbase.balance("BTC") == (Decimal(0), Decimal(0))
