"""CoinbaseBroker against the loopback TLS fake of Coinbase Advanced Trade.

The real SDK (``coinbase.rest.RESTClient``) signs every request with a fresh CDP key
and talks HTTPS to ``fake_coinbase.FakeCoinbase`` on 127.0.0.1; the adapter's clock is
the engine's :class:`~tradewarden.engine.clock.WallClock` on the fake's simulated time
(``clock`` fixture), so a 429's ``Retry-After`` or a 30 s close wait costs no real time.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from decimal import Decimal

import numpy as np
import pytest
from fake_coinbase import FakeCoinbase, make_cdp_key

from tradewarden.data import load_market_data
from tradewarden.domain import Bar, Order, OrderRole, OrderStatus, OrderType, Side
from tradewarden.engine.clock import WallClock
from tradewarden.execution.base import Broker, OrderEventKind
from tradewarden.execution.coinbase import CoinbaseBroker, base_url_of
from tradewarden.execution.venue import VenueError
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import assemble
from tradewarden.strategy.base import SignalFrame, Strategy, StrategyParams

SYM = "BTC-USD"
ORDERS = "POST /api/v3/brokerage/orders"
K = OrderEventKind


@pytest.fixture
def wall(clock):
    """The adapter's clock: the engine's WallClock on the fake's simulated time."""
    return WallClock(clock, clock.advance)


def connect(fake: FakeCoinbase, key, wall, **kwargs) -> CoinbaseBroker:
    kwargs.setdefault("timeout", 2)
    return CoinbaseBroker.connect(api_key=key.name, api_secret=key.private_pem,
                                  api_url=f"https://{fake.host}", symbols=[SYM], clock=wall,
                                  **kwargs)


@pytest.fixture
def broker(coinbase, cdp_key, wall) -> CoinbaseBroker:
    return connect(coinbase, cdp_key, wall)


def bracket(n: int, ts: int, qty: str = "0.1", tp: str = "55000", sl: str = "48000",
            entry_type: OrderType = OrderType.MARKET, price: str | None = None
            ) -> tuple[Order, tuple[Order, Order]]:
    """An entry and its two legs, shaped as the engine builds them."""
    cid = f"tw-desk-{SYM}-{n}"
    q = Decimal(qty)
    entry = Order(f"{cid}-entry", SYM, Side.BUY, entry_type, q, OrderRole.ENTRY, ts,
                  price=Decimal(price) if price else None, decision_seq=n)
    take = Order(f"{cid}-take_profit", SYM, Side.SELL, OrderType.LIMIT, q, OrderRole.TAKE_PROFIT,
                 ts, price=Decimal(tp), parent_id=entry.client_order_id, decision_seq=n)
    stop = Order(f"{cid}-stop_loss", SYM, Side.SELL, OrderType.STOP, q, OrderRole.STOP_LOSS, ts,
                 stop_price=Decimal(sl), parent_id=entry.client_order_id, decision_seq=n)
    return entry, (take, stop)


def bar(clock) -> Bar:
    t = int(clock()) // 3600 * 3600
    return Bar(SYM, t - 3600, 50000.0, 50000.0, 50000.0, 50000.0, 1.0, t)


def kinds(events) -> list[tuple[str, str]]:
    return [(e.order.role.value, e.kind.value) for e in events]


def venue_fills(fake: FakeCoinbase, order_id: str) -> list[tuple[Decimal, Decimal, Decimal, str]]:
    return [(Decimal(f["price"]), Decimal(f["size"]), Decimal(f["commission"]), f["liquidity_indicator"])
            for f in fake.fills if f["order_id"] == order_id]


def our_fills(events) -> list[tuple[Decimal, Decimal, Decimal, str]]:
    return [(e.fill.price, e.fill.quantity, e.fill.fee, e.fill.liquidity.upper())
            for e in events if e.fill is not None]


# -- products, pre-flight, connection -------------------------------------------------------

def test_products_give_the_instrument_and_flags_block_entries(coinbase, cdp_key, wall):
    b = connect(coinbase, cdp_key, wall)
    assert isinstance(b, Broker)
    inst = b.instruments[SYM]
    assert (inst.price_increment, inst.quantity_increment, inst.min_quantity) == (
        Decimal("0.01"), Decimal("0.00000001"), Decimal("0.00000001"))
    assert (inst.min_notional, inst.max_notional, inst.base, inst.quote) == (
        Decimal(1), Decimal(150000000), "BTC", "USD")
    assert b.entry_blocks() == {}
    coinbase.set_product(SYM, limit_only=True)
    b.instruments = b.instruments_from_products([SYM])
    assert b.entry_blocks() == {SYM: "coinbase product BTC-USD: limit_only"}
    entry, legs = bracket(1, int(wall.now()))
    sent = len(coinbase.submits)
    events = b.submit(entry, legs)
    assert kinds(events) == [("entry", "rejected"), ("take_profit", "rejected"),
                             ("stop_loss", "rejected")]
    assert events[0].reason == "not sent: coinbase product BTC-USD: limit_only"
    assert len(coinbase.submits) == sent                        # nothing reached the venue
    with pytest.raises(VenueError, match="HTTP 404.*ProductID DOGE-USD could not be found"):
        b.instruments_from_products(["DOGE-USD"])


def test_preflight_reads_permissions_and_balances(make_coinbase, cdp_key, wall, clock):
    fake = make_coinbase(permissions={"can_trade": True, "can_transfer": True},
                         balances={"USD": Decimal(2500), "BTC": Decimal("0.5")})
    pre = connect(fake, cdp_key, wall).preflight()
    assert (pre.venue, pre.can_trade, pre.can_withdraw) == ("coinbase", True, True)
    assert pre.account == "portfolio DEFAULT fake-portfolio-0000-0000-000000000000"
    assert pre.balances == {"USD": Decimal(2500), "BTC": Decimal("0.5")}
    assert any("can withdraw or transfer" in p for p in pre.problems())
    assert any("5.00% below its trigger" in n for n in pre.notes)
    view_only = make_coinbase(permissions={"can_trade": False})
    pre = connect(view_only, cdp_key, wall).preflight()
    assert not pre.can_trade and pre.problems()[0].startswith("coinbase: the API key has no trade")


def test_key_file_and_bad_credentials(coinbase, cdp_key, wall, tmp_path):
    b = CoinbaseBroker.connect(key_file=str(cdp_key.file_path(tmp_path)),
                               api_url=coinbase.host, symbols=[SYM], clock=wall, timeout=2)
    assert SYM in b.instruments
    stranger = make_cdp_key()          # a key the fake does not know: 401 Unauthorized
    with pytest.raises(VenueError, match="HTTP 401.*Unauthorized"):
        CoinbaseBroker.connect(api_key=stranger.name, api_secret=stranger.private_pem,
                               api_url=coinbase.host, symbols=[SYM], clock=wall, timeout=2)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"^\[venue\] key_file .*bad.json: Error parsing key file"):
        CoinbaseBroker.connect(key_file=str(bad), symbols=[SYM], clock=wall)
    with pytest.raises(ValueError, match="either key_file or api_key"):
        CoinbaseBroker.connect(key_file=str(bad), api_key="k", api_secret="s", symbols=[SYM],
                               clock=wall)


def test_base_url_of_an_api_url():
    assert base_url_of("https://127.0.0.1:8443") == "127.0.0.1:8443"
    assert base_url_of("127.0.0.1:8443") == "127.0.0.1:8443"
    assert base_url_of("https://api.coinbase.com/") == "api.coinbase.com"
    with pytest.raises(ValueError, match="https only"):
        base_url_of("http://127.0.0.1:8080")


# -- a bracket entry ------------------------------------------------------------------------

def test_bracket_entry_is_one_request_and_the_take_profit_ends_it(coinbase, broker, clock):
    entry, (tp, sl) = bracket(1, int(clock()))
    events = broker.submit(entry, (tp, sl))
    assert kinds(events) == [("entry", "accepted"), ("take_profit", "accepted"),
                             ("stop_loss", "accepted")]
    assert coinbase.submit_count(entry.client_order_id) == 1 and len(coinbase.submits) == 1
    body = coinbase.submits[0]
    assert body["order_configuration"] == {"market_market_ioc": {"base_size": "0.10000000"}}
    assert body["attached_order_configuration"] == {
        "trigger_bracket_gtc": {"limit_price": "55000.00", "stop_trigger_price": "48000.00"}}
    parent = coinbase.order_by_client_id(entry.client_order_id)
    assert parent.attached_order_id
    assert {cid for cid, _ in [(o.client_order_id, 0) for o in broker.open_orders(SYM)]} == {
        entry.client_order_id, tp.client_order_id, sl.client_order_id}

    clock.advance(3600)
    events = broker.process(bar(clock))
    assert kinds(events) == [("entry", "filled"), ("take_profit", "working"),
                             ("stop_loss", "working")]
    assert our_fills(events) == venue_fills(coinbase, parent.order_id)
    assert events[0].fill.ts == int(parent.created) and events[0].fill.fee == Decimal(30)
    assert broker.process(bar(clock)) == []                      # nothing new: nothing twice

    clock.advance(1800)
    coinbase.step(SYM, 50000, 56000, 49500, 55500, clock())      # up through the take-profit
    events = broker.process(bar(clock))
    assert kinds(events) == [("take_profit", "filled"), ("stop_loss", "cancelled")]
    assert events[1].reason == "oco: other leg filled"
    assert our_fills(events) == venue_fills(coinbase, parent.attached_order_id)
    assert our_fills(events) == [(Decimal(55000), Decimal("0.1"), Decimal(22), "MAKER")]
    assert events[0].fill.ts == int(clock()) and events[0].fill.role is OrderRole.TAKE_PROFIT
    assert broker.open_orders(SYM) == [] and broker.alerts == []
    assert coinbase.balance("BTC") == (Decimal(0), Decimal(0))


def test_the_stop_loss_fills_as_a_stop_limit_at_the_buffer(coinbase, broker, clock):
    entry, legs = bracket(2, int(clock()))
    broker.submit(entry, legs)
    att = coinbase.order_by_client_id(entry.client_order_id).attached_order_id
    assert broker.worst_stop_fill(Decimal(48000), SYM) == Decimal("45600.00") == (
        coinbase.stop_limit_for(SYM, "SELL", Decimal(48000)))
    clock.advance(3600)
    broker.process(bar(clock))
    coinbase.set_price(SYM, Decimal(45000), clock(), gap=True)  # a gap through both levels
    events = broker.process(bar(clock))
    assert kinds(events) == [("stop_loss", "triggered")]        # the stop-limit rests unfilled
    assert [o.role for o in broker.open_orders(SYM)] == [OrderRole.TAKE_PROFIT, OrderRole.STOP_LOSS]
    clock.advance(60)
    coinbase.set_price(SYM, Decimal(46000), clock())           # back up through its limit
    events = broker.process(bar(clock))
    assert kinds(events) == [("stop_loss", "filled"), ("take_profit", "cancelled")]
    assert our_fills(events) == venue_fills(coinbase, att) == [
        (Decimal("45600.00"), Decimal("0.1"), Decimal("18.24"), "MAKER")]


def test_a_stop_traded_through_fills_at_its_trigger(coinbase, broker, clock):
    entry, legs = bracket(3, int(clock()))
    broker.submit(entry, legs)
    clock.advance(3600)
    coinbase.step(SYM, 50000, 50500, 47000, 47500, clock())      # entry fills, then the stop
    events = broker.process(bar(clock))
    assert kinds(events) == [("entry", "filled"), ("take_profit", "working"),
                             ("stop_loss", "working"), ("stop_loss", "triggered"),
                             ("stop_loss", "filled"), ("take_profit", "cancelled")]
    assert events[4].fill.price == Decimal(48000) and events[4].fill.liquidity == "taker"


# -- rejections -----------------------------------------------------------------------------

def test_a_rejection_carries_the_venues_words(coinbase, broker, clock):
    entry, legs = bracket(4, int(clock()), qty="1")              # 50000 USD with 10000
    events = broker.submit(entry, legs)
    assert kinds(events) == [("entry", "rejected"), ("take_profit", "rejected"),
                             ("stop_loss", "rejected")]
    assert events[0].reason == ("coinbase: INSUFFICIENT_FUND: Insufficient balance in source "
                                "account: preview_failure_reason=PREVIEW_INSUFFICIENT_FUND")
    assert events[1].reason.startswith("entry rejected: coinbase: INSUFFICIENT_FUND")
    assert coinbase.orders == {} and broker.open_orders(SYM) == []
    # a take-profit below the market: Coinbase's bracket price check, in its words
    entry, legs = bracket(5, int(clock()), tp="49000", sl="48000")
    events = broker.submit(entry, legs)
    assert events[0].kind is K.REJECTED
    assert "ATTACHED_TAKE_PROFIT_PRICE_TOO_LOW: take-profit price must be above the entry price" in events[0].reason


def test_sizes_and_prices_are_rounded_in_the_traders_disfavour(coinbase, broker, clock):
    entry, legs = bracket(6, int(clock()), qty="0.123456789", tp="55000.019", sl="48000.001")
    events = broker.submit(entry, legs)
    assert events[0].kind is K.ACCEPTED
    body = coinbase.submits[-1]
    assert body["order_configuration"]["market_market_ioc"]["base_size"] == "0.12345678"
    assert body["attached_order_configuration"]["trigger_bracket_gtc"] == {
        "limit_price": "55000.01", "stop_trigger_price": "48000.01"}
    tiny = Order("tw-desk-BTC-USD-7-entry", SYM, Side.BUY, OrderType.MARKET,
                 Decimal("0.000000001"), OrderRole.ENTRY, int(clock()))
    events = broker.submit(tiny)
    assert events[0].kind is K.REJECTED and "below base_min_size" in events[0].reason


def test_orders_coinbase_cannot_take_are_refused_before_sending(broker, clock):
    entry, (tp, sl) = bracket(8, int(clock()))
    with pytest.raises(ValueError, match="exactly one take-profit and one stop-loss"):
        broker.submit(entry, (sl,))
    with pytest.raises(ValueError, match="no stop-market order"):
        broker.submit(sl)
    broker.submit(entry, (tp, sl))
    with pytest.raises(ValueError, match="duplicate client order id"):
        broker.submit(entry, (tp, sl))


# -- faults ---------------------------------------------------------------------------------

def test_a_lost_response_is_looked_up_not_sent_again(coinbase, broker, clock):
    coinbase.fail_next(ORDERS, "lose_response")
    entry, legs = bracket(9, int(clock()))
    events = broker.submit(entry, legs)
    assert kinds(events) == [("entry", "accepted"), ("take_profit", "accepted"),
                             ("stop_loss", "accepted")]
    assert coinbase.submit_count(entry.client_order_id) == 1
    looked = [r for r in coinbase.requests if r["path"].endswith("/orders/historical/batch")]
    assert looked and looked[0]["query"]["product_ids"] == [SYM]
    clock.advance(3600)
    assert kinds(broker.process(bar(clock)))[0] == ("entry", "filled")


def test_a_429_waits_retry_after_on_the_clock_then_sends(coinbase, broker, clock):
    coinbase.fail_next(ORDERS, status=429, headers={"Retry-After": "7"})
    t0 = clock()
    entry, legs = bracket(10, int(clock()))
    events = broker.submit(entry, legs)
    assert events[0].kind is K.ACCEPTED
    assert clock() - t0 >= 7                                      # simulated, not slept
    posts = [r["status"] for r in coinbase.requests if r["method"] == "POST"]
    assert posts == [429, 200] and len(coinbase.orders) == 2       # the entry and its bracket


def test_a_503_is_looked_up_then_sent_again(coinbase, broker, clock):
    coinbase.fail_next(ORDERS, status=503)
    entry, legs = bracket(11, int(clock()))
    events = broker.submit(entry, legs)
    assert events[0].kind is K.ACCEPTED
    trail = [(r["method"], r["path"].rsplit("/", 1)[-1], r["status"]) for r in coinbase.requests
             if r["method"] == "POST" or r["path"].endswith("batch")]
    assert trail[:3] == [("POST", "orders", 503), ("GET", "batch", 200), ("POST", "orders", 200)]
    assert len([o for o in coinbase.orders.values() if o.client_order_id == entry.client_order_id]) == 1


def test_a_slow_answer_never_doubles_the_order(make_coinbase, cdp_key, wall, clock):
    fake = make_coinbase()
    fake.set_price(SYM, Decimal(50000), clock())
    b = connect(fake, cdp_key, wall, timeout=0.3)
    fake.fail_next(ORDERS, "slow", seconds=0.6)
    entry, legs = bracket(12, int(clock()))
    events = b.submit(entry, legs)
    assert events[0].kind is K.ACCEPTED
    for _ in range(300):                  # until the slow request has been answered too
        if [r["status"] for r in fake.requests if r["method"] == "POST"] == [200, 200]:
            break
        time.sleep(0.01)
    # the lookup after the timeout found nothing yet, so it was sent again; Coinbase keeps
    # one order per client order id ("the order corresponding with that ID will be returned")
    assert fake.submit_count(entry.client_order_id) == 2
    ours = [o for o in fake.orders.values() if o.client_order_id == entry.client_order_id]
    assert len(ours) == 1 and fake.balance("BTC")[0] == Decimal("0.1")


def test_when_coinbase_cannot_say_the_order_stays_submitted_until_the_next_poll(coinbase, broker, clock):
    coinbase.fail_next(ORDERS, "lose_response")
    coinbase.fail_next("GET /api/v3/brokerage/orders/historical/batch", status=503, times=4)
    entry, legs = bracket(13, int(clock()))
    assert broker.submit(entry, legs) == []
    assert "lookup failed" in broker.alerts[-1]
    clock.advance(3600)
    events = broker.process(bar(clock))
    assert kinds(events) == [("entry", "accepted"), ("entry", "filled"),
                             ("take_profit", "working"), ("stop_loss", "working")]
    assert coinbase.submit_count(entry.client_order_id) == 1
    # never received at all: the next poll says so, and it is not sent again
    coinbase.fail_next(ORDERS, "drop")
    coinbase.fail_next("GET /api/v3/brokerage/orders/historical/batch", status=503, times=4)
    lone = Order("tw-desk-BTC-USD-14-exit", SYM, Side.SELL, OrderType.MARKET, Decimal("0.05"),
                 OrderRole.EXIT, int(clock()))
    assert broker.submit(lone) == []
    events = broker.process(bar(clock))
    assert kinds(events) == [("exit", "rejected")] and "never received it" in events[0].reason
    assert coinbase.submit_count(lone.client_order_id) == 0


# -- protection -----------------------------------------------------------------------------

class _DropsAttachment:
    """A client that loses the attached bracket (as if the venue ignored the field)."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def create_order(self, **kwargs):
        kwargs.pop("attached_order_configuration", None)
        return self.inner.create_order(**kwargs)


def test_an_entry_without_its_bracket_is_cancelled_and_flattened(coinbase, broker, clock):
    broker.client = _DropsAttachment(broker.client)
    entry, legs = bracket(15, int(clock()))
    events = broker.submit(entry, legs)
    assert kinds(events) == [("entry", "accepted"), ("take_profit", "accepted"),
                             ("stop_loss", "accepted"), ("entry", "cancelled"),
                             ("take_profit", "cancelled"), ("stop_loss", "cancelled")]
    reason = events[3].reason
    assert reason.startswith("protection not in place: coinbase names no attached_order_id")
    assert "0.1 BTC bought, 0.1 sold at market" in reason and reason in broker.alerts[-1]
    flat = coinbase.order_by_client_id(f"{entry.client_order_id}-flatten")
    assert (flat.side, flat.status, flat.filled) == ("SELL", "FILLED", Decimal("0.1"))
    assert coinbase.balance("BTC")[0] == 0 and broker.open_orders(SYM) == []


def test_a_bracket_that_fails_before_its_entry_fills_is_caught_at_the_fill(coinbase, broker, clock):
    entry, legs = bracket(16, int(clock()), entry_type=OrderType.LIMIT, price="49000")
    events = broker.submit(entry, legs)
    assert kinds(events) == [("entry", "accepted"), ("take_profit", "accepted"),
                             ("stop_loss", "accepted")]
    clock.advance(3600)
    assert kinds(broker.process(bar(clock))) == [("entry", "working")]
    parent = coinbase.order_by_client_id(entry.client_order_id)
    coinbase.orders[parent.attached_order_id].status = "FAILED"  # the venue drops the bracket
    coinbase.set_price(SYM, Decimal(48900), clock())           # the entry fills
    events = broker.process(bar(clock))
    assert kinds(events) == [("entry", "cancelled"), ("take_profit", "cancelled"),
                             ("stop_loss", "cancelled")]
    assert "attached order" in events[0].reason and "is FAILED" in events[0].reason
    assert coinbase.balance("BTC")[0] == 0


# -- cancels, close -------------------------------------------------------------------------

def test_cancel_and_cancel_all_use_batch_cancel(coinbase, broker, clock):
    entry, legs = bracket(17, int(clock()), entry_type=OrderType.LIMIT, price="49000")
    broker.submit(entry, legs)
    events = broker.cancel(entry.client_order_id, int(clock()), "signal gone")
    assert kinds(events) == [("entry", "cancelled"), ("take_profit", "cancelled"),
                             ("stop_loss", "cancelled")]
    assert {o.status for o in coinbase.orders.values()} == {"CANCELLED"}
    assert broker.cancel(entry.client_order_id, int(clock()), "again") == []
    entry, legs = bracket(18, int(clock()))
    broker.submit(entry, legs)
    clock.advance(3600)
    broker.process(bar(clock))
    events = broker.cancel_all(SYM, int(clock()), "signal exit")
    assert kinds(events) == [("take_profit", "cancelled"), ("stop_loss", "cancelled")]
    att = coinbase.order_by_client_id(entry.client_order_id).attached_order_id
    assert coinbase.orders[att].status == "CANCELLED"
    assert [r for r in coinbase.requests if r["path"].endswith("batch_cancel")]


def test_close_position_sells_at_market_and_waits_for_the_fill(coinbase, broker, clock):
    coinbase.balances["BTC"] = Decimal("0.2")
    order = Order("tw-desk-BTC-USD-19-exit", SYM, Side.SELL, OrderType.MARKET, Decimal("0.2"),
                  OrderRole.EXIT, int(clock()))
    events = broker.close_position(order, Decimal(50000), int(clock()))
    assert kinds(events) == [("exit", "accepted"), ("exit", "filled")]
    assert events[1].fill.quantity == Decimal("0.2") and events[1].fill.price == Decimal(50000)


# -- restart --------------------------------------------------------------------------------

def test_after_a_restart_lookup_adopt_and_account_bring_the_bracket_back(coinbase, cdp_key, wall, clock):
    first = connect(coinbase, cdp_key, wall)
    entry, (tp, sl) = bracket(20, int(clock()))
    first.submit(entry, (tp, sl))
    clock.advance(3600)
    first.process(bar(clock))
    # a new process: the engine looks up the orders it holds open (the legs: the entry has
    # filled), then hands them over (new Order objects) with what it booked on each
    restored = {o.client_order_id: Order(o.client_order_id, o.symbol, o.side, o.type, o.quantity,
                                         o.role, o.created_ts, price=o.price,
                                         stop_price=o.stop_price, parent_id=o.parent_id,
                                         status=OrderStatus.WORKING) for o in (tp, sl)}
    second = connect(coinbase, cdp_key, wall)
    v = second.lookup(tp.client_order_id)
    assert (v.status, v.filled, v.fills) == (OrderStatus.WORKING, Decimal(0), ())
    assert second.lookup(sl.client_order_id).status is OrderStatus.WORKING
    v = second.lookup(entry.client_order_id)
    assert v.status is OrderStatus.FILLED and v.filled == Decimal("0.1")
    parent = coinbase.order_by_client_id(entry.client_order_id)
    assert [(f.price, f.quantity, f.fee) for f in v.fills] == [
        (p, s, c) for p, s, c, _ in venue_fills(coinbase, parent.order_id)]
    assert second.lookup("tw-desk-BTC-USD-99-entry") is None
    assert second.lookup("tw-desk-BTC-USD-99-stop_loss") is None
    second.adopt(restored, {})
    acct = second.account([SYM])
    assert acct.positions == {SYM: Decimal("0.1")}
    assert set(acct.open_orders) == {tp.client_order_id, sl.client_order_id}
    assert acct.balances["USD"] == Decimal(4970)
    assert second.process(bar(clock)) == []                      # nothing new since the lookup
    coinbase.step(SYM, 50000, 50100, 47000, 47200, clock())
    events = second.process(bar(clock))
    assert [e.order for e in events][:1] == [restored[sl.client_order_id]]
    assert kinds(events) == [("stop_loss", "triggered"), ("stop_loss", "filled"),
                             ("take_profit", "cancelled")]


def test_adopted_fills_already_booked_are_not_reported_again(coinbase, cdp_key, wall, clock):
    first = connect(coinbase, cdp_key, wall)
    entry, legs = bracket(21, int(clock()), entry_type=OrderType.LIMIT, price="49000", qty="0.1")
    first.submit(entry, legs)
    parent = coinbase.order_by_client_id(entry.client_order_id)
    coinbase.fill_partially(parent.order_id, "0.04", ts=clock())
    assert kinds(first.process(bar(clock))) == [("entry", "partially_filled")]
    coinbase.fill_partially(parent.order_id, "0.01", ts=clock())
    # restart: the engine booked the first 0.04 and hands the orders over without a lookup
    second = connect(coinbase, cdp_key, wall)
    e2, legs2 = bracket(21, entry.created_ts, entry_type=OrderType.LIMIT, price="49000")
    e2.status = OrderStatus.PARTIALLY_FILLED
    for leg in legs2:
        leg.status = OrderStatus.ACCEPTED
    second.adopt({o.client_order_id: o for o in (e2, *legs2)}, {e2.client_order_id: Decimal("0.04")})
    events = second.process(bar(clock))
    assert kinds(events) == [("entry", "partially_filled")]
    assert events[0].fill.quantity == Decimal("0.01") and events[0].order is e2
    coinbase.set_price(SYM, Decimal(48990), clock())              # the rest fills
    events = second.process(bar(clock))
    assert kinds(events) == [("entry", "filled"), ("take_profit", "working"),
                             ("stop_loss", "working")]
    assert events[0].fill.quantity == Decimal("0.05")
    second.adopt({o.client_order_id: o for o in legs2}, {})         # the entry is not open now
    assert [o.client_order_id for o in second.open_orders(SYM)] == [x.client_order_id for x in legs2]


def test_an_order_placed_outside_tradewarden_is_reported_by_its_own_id(coinbase, broker, rest_client):
    rest_client().limit_order_gtc_buy(client_order_id="by-hand", product_id=SYM,
                                      base_size="0.01", limit_price="40000.00")
    assert broker.account([SYM]).open_orders == ("by-hand",)


# -- the engine, end to end -----------------------------------------------------------------

class _EnterAt(Strategy):
    """Enter at given bar times with a bracket ``frac`` above and below the close."""

    name = "enter_at"
    Params = StrategyParams
    input_names = ("flag",)

    def __init__(self, enter_ts, frac=0.015):
        super().__init__(StrategyParams())
        self.enter_ts, self.frac = {int(t) for t in enter_ts}, frac

    @property
    def warmup(self) -> int:
        return 1

    def prepare(self, bars):
        enter = np.isin(bars.ts, list(self.enter_ts))
        n = len(bars)
        return SignalFrame(enter, np.zeros(n, bool), enter.astype(np.int8), ("idle", "scripted"),
                           bars.close * (1 - self.frac), bars.close * (1 + self.frac),
                           {"flag": enter.astype(float)}, entry_reason="scripted",
                           exit_reason="scripted_exit")


def q(db, sql, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


@pytest.mark.parametrize(("k", "leg"), [(114, "take_profit"), (138, "stop_loss")])
def test_the_engine_trades_real_bars_through_the_adapter(make_coinbase, cdp_key, wall, clock,
                                                          tmp_path, k, leg):
    """A live deployment on real bundled BTC-USD 1 h bars while the fake's price walks the
    same bars: the entry goes out with its bracket in one request, the bracket ends it at
    the venue, and the ledger's orders and fills are the venue's."""
    bars = load_market_data(None).series[SYM]
    first, last = k - 4, k + 4
    fake = make_coinbase()
    fake.set_price(SYM, Decimal(repr(float(bars.close[first - 1]))), clock())
    clock.t = float(bars.ts[first])
    broker = connect(fake, cdp_key, wall)
    ledger = Ledger(tmp_path / "ledger.db")
    dep = ledger.open_deployment("desk", mode="live", config="{}", config_hash="h")
    ledger.create_run({"run_id": "live1", "mode": "live", "capital_mode": "independent",
                       "market_time_basis": "test", "data_integrity": "ok", "config_hash": "h",
                       "config": "{}", "strategy": "enter_at", "symbols": "[]", "timeframe": "1h",
                       "initial_capital": Decimal(10000)})
    engine = assemble("live", run_id="live1", strategy=_EnterAt([bars.ts[k]]),
                      instruments=broker.instruments, ledger=ledger, capital=Decimal(10000),
                      clock=wall, broker=broker, deployment_id=dep["deployment_id"]).engine
    engine.warm_up({SYM: bars.slice(first - 5, first)})
    for i in range(first, last + 1):
        b = bars.bar(i)
        fake.step(SYM, *(Decimal(repr(x)) for x in (b.open, b.high, b.low, b.close)), ts=b.ts + 1800)
        engine.on_bar(b)
        engine.flush()
    ledger.drain()
    db = tmp_path / "ledger.db"
    assert len(fake.submits) == 1 and "attached_order_configuration" in fake.submits[0]
    rows = dict(q(db, "select role, status from orders"))
    other = "stop_loss" if leg == "take_profit" else "take_profit"
    assert rows == {"entry": "filled", leg: "filled", other: "cancelled"}
    ours = q(db, "select price, quantity, fee, liquidity, ts from fills order by fill_seq")
    venue = [(f["price"], f["size"], f["commission"], f["liquidity_indicator"].lower(),
              int(datetime.fromisoformat(f["trade_time"]).timestamp())) for f in fake.fills]
    assert [(Decimal(p), Decimal(s), Decimal(c), li, t) for p, s, c, li, t in ours] == [
        (Decimal(p), Decimal(s), Decimal(c), li, t) for p, s, c, li, t in venue]
    assert len(venue) == 2
    (reason,), = q(db, "select exit_reason from trades")
    assert reason == leg
    assert fake.balance("BTC") == (Decimal(0), Decimal(0)) and broker.alerts == []
    assert len(q(db, "select seq from decisions")) == last - first + 1


def test_an_order_coinbase_never_received_can_be_sent_again_after_a_lookup(coinbase, broker, clock):
    coinbase.fail_next(ORDERS, "drop")
    coinbase.fail_next("GET /api/v3/brokerage/orders/historical/batch", status=503, times=4)
    entry, legs = bracket(22, int(clock()))
    assert broker.submit(entry, legs) == []                     # outcome unknown
    assert broker.lookup(entry.client_order_id) is None         # reconciliation: not there
    events = broker.submit(entry, legs)                         # so the engine sends it again
    assert kinds(events)[0] == ("entry", "accepted")
    assert coinbase.submit_count(entry.client_order_id) == 1    # the dropped one never arrived
