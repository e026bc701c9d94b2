"""SimBroker commands and bookkeeping: validation, duplicate ids, cancel_all, quiet_band
(the fill rules themselves are pinned in test_sim_candles.py; the port in
test_sim_port.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradewarden.domain import (
    COINBASE_SPECS,
    Instrument,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    Side,
)
from tradewarden.execution import OrderEventKind, SimBroker

BTC = COINBASE_SPECS["BTC-USD"]
SYM = "BTC-USD"
TS = 1713459600
# Real bar 2 of the bundled BTC-USD file: 2024-04-18T18:00Z.
B2 = (1713463200, 62835.28, 63259.15, 62358.0, 63149.42)
INF = float("inf")


def order(oid: str, side: Side = Side.BUY, type_: OrderType = OrderType.MARKET, qty: str = "0.01",
          role: OrderRole = OrderRole.ENTRY, price: str | None = None, stop: str | None = None,
          symbol: str = SYM) -> Order:
    return Order(oid, symbol, side, type_, Decimal(qty), role, TS,
                 price=Decimal(price) if price else None, stop_price=Decimal(stop) if stop else None)


def bracket(eid: str, tp: str, sl: str) -> tuple[Order, tuple[Order, Order]]:
    return (order(eid),
            (order(f"{eid}-tp", Side.SELL, OrderType.LIMIT, role=OrderRole.TAKE_PROFIT, price=tp),
             order(f"{eid}-sl", Side.SELL, OrderType.STOP, role=OrderRole.STOP_LOSS, stop=sl)))


def broker(**kw) -> SimBroker:
    return SimBroker({SYM: BTC, "ETH-USD": COINBASE_SPECS["ETH-USD"]}, **kw)


# ---------------------------------------------------------------------- validation
def test_duplicate_client_order_id_raises() -> None:
    b = broker()
    b.submit(order("a"))
    with pytest.raises(ValueError, match="duplicate client order id 'a'"):
        b.submit(order("a"))


def test_duplicate_id_is_refused_even_after_the_first_order_filled() -> None:
    b = broker()
    b.submit(order("a"))
    (u,) = b.fill_bar(SYM, *B2)
    assert u.kind is OrderEventKind.FILLED
    with pytest.raises(ValueError, match="duplicate"):
        b.submit(order("a"))          # a retry after a crash must not double the position
    assert b.fill_bar(SYM, *B2) == []


def test_duplicate_id_among_legs_raises_and_registers_nothing() -> None:
    b = broker()
    b.submit(order("a"))
    entry, (tp, _) = bracket("e", "64000", "62000")
    clash = order("a", Side.SELL, OrderType.STOP, role=OrderRole.STOP_LOSS, stop="62000")
    with pytest.raises(ValueError, match="duplicate client order id 'a'"):
        b.submit(entry, (tp, clash))
    assert [o.client_order_id for o in b.open_orders(SYM)] == ["a"]
    # Validation happens before anything is recorded: the entry id is still free.
    entry2, legs2 = bracket("e", "64000", "62000")
    b.submit(entry2, legs2)
    assert [o.client_order_id for o in b.open_orders(SYM)] == ["a", "e"]


def test_leg_duplicating_its_own_entry_id_raises() -> None:
    b = broker()
    e = order("e")
    with pytest.raises(ValueError, match="duplicate client order id 'e'"):
        b.submit(e, (order("e", Side.SELL, OrderType.LIMIT, price="64000"),
                     order("e", Side.SELL, OrderType.STOP, stop="62000")))


@pytest.mark.parametrize("bad, match", [
    (order("x", symbol="DOGE-USD"), "unknown symbol 'DOGE-USD'"),
    (order("x", qty="0"), "quantity must be positive"),
    (order("x", qty="-0.01"), "quantity must be positive"),
    (order("x", type_=OrderType.LIMIT), "limit order needs a price"),
    (order("x", type_=OrderType.STOP), "stop order needs a stop price"),
], ids=["unknown-symbol", "zero-qty", "negative-qty", "limit-no-price", "stop-no-stop"])
def test_submit_rejects_malformed_orders(bad: Order, match: str) -> None:
    b = broker()
    with pytest.raises(ValueError, match=match):
        b.submit(bad)
    assert not b.has_orders(SYM)
    b.submit(order("x"))   # nothing was registered under the id
    assert [o.client_order_id for o in b.open_orders(SYM)] == ["x"]


@pytest.mark.parametrize("kw", [{"taker_fee_bps": -1}, {"maker_fee_bps": 10_000},
                                {"slippage_bps": -0.5}, {"slippage_bps": 1e9}])
def test_constructor_rejects_out_of_range_bps(kw: dict) -> None:
    name = next(iter(kw))
    with pytest.raises(ValueError, match=name):
        broker(**kw)


def test_fractional_bps_are_exact() -> None:
    # 0.5 bps slippage: 62835.28 * 1.00005 = 62838.421764 -> ceil 62838.43;
    # 7.5 bps fee: 628.3843 * 0.00075 = 0.471288225 -> 0.47128822 (1e-8)
    b = broker(slippage_bps=0.5, taker_fee_bps=7.5)
    b.submit(order("a"))
    (u,) = b.fill_bar(SYM, *B2)
    assert u.fill.price == Decimal("62838.43")
    assert u.fill.fee == Decimal("0.47128822")


# ---------------------------------------------------------------------- cancel_all
def test_cancel_all_pending_bracket_cancels_entry_and_legs() -> None:
    b = broker()
    entry, legs = bracket("e", "64000", "62000")
    b.submit(entry, legs)
    ups = b.cancel_all(SYM, 1713463200, "kill switch")
    assert [(u.order.client_order_id, u.kind, u.reason, u.ts) for u in ups] == [
        ("e", OrderEventKind.CANCELLED, "kill switch", 1713463200),
        ("e-tp", OrderEventKind.CANCELLED, "kill switch", 1713463200),
        ("e-sl", OrderEventKind.CANCELLED, "kill switch", 1713463200)]
    assert all(o.status is OrderStatus.CANCELLED for o in (entry, *legs))
    assert not b.has_orders(SYM)
    assert b.quiet_band(SYM) == (-INF, INF)
    assert b.fill_bar(SYM, *B2) == []   # nothing fills afterwards, legs never go live


def test_cancel_all_live_legs_and_resting_orders() -> None:
    b = broker()
    entry, legs = bracket("e", "64000", "62000")
    b.submit(entry, legs)
    b.fill_bar(SYM, *B2)                                     # entry fills, legs live
    assert [o.client_order_id for o in b.open_orders(SYM)] == ["e-tp", "e-sl"]
    b.submit(order("m", Side.SELL, role=OrderRole.EXIT))    # pending market exit
    ups = b.cancel_all(SYM, 1713466800, "emergency")
    # Resting orders first, then pending market orders.
    assert [(u.order.client_order_id, u.kind) for u in ups] == [
        ("e-tp", OrderEventKind.CANCELLED), ("e-sl", OrderEventKind.CANCELLED),
        ("m", OrderEventKind.CANCELLED)]
    assert entry.status is OrderStatus.FILLED              # a fill is never undone
    assert not b.has_orders(SYM) and b.open_orders(SYM) == []
    assert b.quiet_band(SYM) == (-INF, INF)
    # A crash through both old levels produces nothing.
    assert b.fill_bar(SYM, 1713466800, 64100.0, 64300.0, 61000.0, 61500.0) == []


def test_cancel_all_is_per_symbol_and_idempotent() -> None:
    b = broker()
    b.submit(order("btc", Side.BUY, OrderType.LIMIT, price="60000"))
    b.submit(order("eth", Side.BUY, OrderType.LIMIT, price="3000", symbol="ETH-USD"))
    assert [u.order.client_order_id for u in b.cancel_all(SYM, TS, "x")] == ["btc"]
    assert b.cancel_all(SYM, TS, "x") == []
    assert b.has_orders("ETH-USD")
    assert b.quiet_band("ETH-USD") == (3000.0, INF)


# ---------------------------------------------------------------------- quiet band
def test_quiet_band_without_orders_is_everything() -> None:
    assert broker().quiet_band(SYM) == (-INF, INF)


def test_quiet_band_with_pending_market_order_is_empty() -> None:
    b = broker()
    b.submit(order("r", Side.SELL, OrderType.STOP, role=OrderRole.EXIT, stop="60000"))
    assert b.quiet_band(SYM) == (60000.0, INF)
    b.submit(order("m"))
    down, up = b.quiet_band(SYM)
    assert (down, up) == (INF, -INF)
    # No bar can lie strictly inside an empty band, so a quiet-band skip never drops it.
    assert not (B2[3] > down and B2[2] < up)
    assert b.fill_bar(SYM, *B2)[0].order.client_order_id == "m"
    assert b.quiet_band(SYM) == (60000.0, INF)


def test_quiet_band_of_bracket_legs_and_mixed_orders() -> None:
    b = broker()
    entry, legs = bracket("e", "64000.00", "62000.00")
    b.submit(entry, legs)
    b.fill_bar(SYM, *B2)
    assert b.quiet_band(SYM) == (62000.0, 64000.0)
    b.submit(order("bl", Side.BUY, OrderType.LIMIT, price="62500.00"))   # raises the floor
    b.submit(order("bs", Side.BUY, OrderType.STOP, stop="63700.00"))     # lowers the ceiling
    b.submit(order("sl2", Side.SELL, OrderType.STOP, stop="61000.00", role=OrderRole.EXIT))
    b.submit(order("tp2", Side.SELL, OrderType.LIMIT, price="65000.00", role=OrderRole.EXIT))
    assert b.quiet_band(SYM) == (62500.0, 63700.0)


def test_bar_strictly_inside_band_changes_nothing_but_touching_an_edge_fills() -> None:
    b = broker()
    entry, (tp, sl) = bracket("e", "64000.00", "62000.00")
    b.submit(entry, (tp, sl))
    b.fill_bar(SYM, *B2)
    assert b.fill_bar(SYM, 1713466800, 63149.44, 63999.99, 62000.01, 63550.01) == []
    assert (tp.status, sl.status) == (OrderStatus.WORKING, OrderStatus.WORKING)
    ups = b.fill_bar(SYM, 1713470400, 63552.66, 63686.62, 62000.00, 62100.00)
    assert [(u.order.client_order_id, u.kind) for u in ups] == [
        ("e-sl", OrderEventKind.TRIGGERED), ("e-sl", OrderEventKind.FILLED),
        ("e-tp", OrderEventKind.CANCELLED)]
    assert b.quiet_band(SYM) == (-INF, INF) and not b.has_orders(SYM)


_LEVEL = st.integers(min_value=6_000_000, max_value=6_600_000).map(lambda c: Decimal(c) / 100)
_RESTING = st.lists(st.tuples(st.sampled_from([(Side.BUY, OrderType.LIMIT), (Side.BUY, OrderType.STOP),
                                               (Side.SELL, OrderType.LIMIT), (Side.SELL, OrderType.STOP)]),
                              _LEVEL), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(_RESTING, st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))
def test_quiet_band_never_hides_a_fill(resting, a, b_, c, d) -> None:
    """For any resting set and any bar: inside the band -> no updates (so skipping is safe);
    outside -> processing agrees with an order-by-order check of the trigger rules."""
    b = broker()
    for i, ((side, typ), level) in enumerate(resting):
        b.submit(order(f"o{i}", side, typ, price=str(level) if typ is OrderType.LIMIT else None,
                       stop=str(level) if typ is OrderType.STOP else None))
    down, up = b.quiet_band(SYM)
    # A bar with low/high drawn in [59000, 67000]; open/close inside [low, high].
    x, y = sorted((59_000 + 8_000 * a, 59_000 + 8_000 * b_))
    low, high = round(x, 2), round(y, 2)
    o = round(low + (high - low) * c, 2)
    cl = round(low + (high - low) * d, 2)
    would_touch = any(
        (low <= float(lv) if (side is Side.BUY) == (typ is OrderType.LIMIT) else high >= float(lv))
        for (side, typ), lv in resting)
    ups = b.fill_bar(SYM, TS + 3600, o, high, low, cl)
    inside = low > down and high < up
    if inside:
        assert ups == [] and not would_touch
    assert bool(ups) == would_touch


# ---------------------------------------------------------------------- known problems
def test_legs_of_intrabar_limit_entry_are_checked_on_the_entry_bar() -> None:
    b = broker()
    entry = order("e", Side.BUY, OrderType.LIMIT, price="62500.00")
    tp = order("e-tp", Side.SELL, OrderType.LIMIT, role=OrderRole.TAKE_PROFIT, price="64000.00")
    sl = order("e-sl", Side.SELL, OrderType.STOP, role=OrderRole.STOP_LOSS, stop="62400.00")
    b.submit(entry, (tp, sl))
    ups = b.fill_bar(SYM, *B2)
    assert entry.status is OrderStatus.FILLED
    fills = {u.order.client_order_id: u.fill for u in ups if u.fill is not None}
    assert fills["e"].price == Decimal("62500.00")
    assert sl.status is OrderStatus.FILLED and tp.status is OrderStatus.CANCELLED
    assert fills["e-sl"].price == Decimal("62387.52")


# ---------------------------------------------------------------------- book internals
@pytest.mark.parametrize("increment", ["1", "0.01", "0.00000001", "0.05", "0.25", "5", "0.010"])
def test_fill_prices_round_like_the_instrument(increment: str) -> None:
    """The broker's inlined rounding (power-of-ten increments) agrees with the Instrument's."""
    inst = Instrument("X-USD", "X", "USD", Decimal(increment), Decimal("0.00000001"))
    b = SimBroker({"X-USD": inst})
    slip = Decimal(2) / Decimal(10_000)
    for i, o in enumerate((1.0, 3.33, 62835.28, 0.123456789, 99.975, 7.77777)):
        b.submit(order(f"b{i}", Side.BUY, symbol="X-USD"))
        b.submit(order(f"s{i}", Side.SELL, role=OrderRole.EXIT, symbol="X-USD"))
        buy, sell = (u.fill for u in b.fill_bar("X-USD", TS + i, o, o, o, o))
        ref = Decimal(repr(o))
        assert buy.price == inst.ceil_price(ref * (1 + slip))
        assert sell.price == inst.floor_price(ref * (1 - slip))
        assert str(buy.price) == str(inst.ceil_price(ref * (1 + slip)))     # same exponent too
        assert str(sell.price) == str(inst.floor_price(ref * (1 - slip)))


def test_replaced_instrument_spec_is_used_for_later_fills() -> None:
    specs = {SYM: BTC}
    b = SimBroker(specs)
    b.submit(order("a"))
    assert b.fill_bar(SYM, *B2)[0].fill.price == Decimal("62847.85")
    specs[SYM] = Instrument(SYM, "BTC", "USD", Decimal("0.05"), Decimal("0.00000001"))
    b.submit(order("b"))
    assert b.fill_bar(SYM, *B2)[0].fill.price == Decimal("62847.85")   # 62847.847056 -> 0.05 grid
    specs[SYM] = Instrument(SYM, "BTC", "USD", Decimal(1), Decimal("0.00000001"))
    b.submit(order("c"))
    assert b.fill_bar(SYM, *B2)[0].fill.price == Decimal(62848)


def test_cancel_all_orders_resting_then_market_then_pending_legs() -> None:
    b = broker()
    b.submit(order("l", Side.BUY, OrderType.LIMIT, price="60000"),
             (order("l-tp", Side.SELL, OrderType.LIMIT, role=OrderRole.TAKE_PROFIT, price="64000"),
              order("l-sl", Side.SELL, OrderType.STOP, role=OrderRole.STOP_LOSS, stop="59000")))
    entry, legs = bracket("m", "64000", "62000")
    b.submit(entry, legs)
    b.submit(order("s", Side.SELL, OrderType.STOP, role=OrderRole.EXIT, stop="50000"))
    ups = b.cancel_all(SYM, TS, "x")
    assert [u.order.client_order_id for u in ups] == ["l", "s", "m", "l-tp", "l-sl", "m-tp", "m-sl"]
    assert all(u.kind is OrderEventKind.CANCELLED and u.order.status is OrderStatus.CANCELLED
               for u in ups)
    # Nothing is left: later bars fill nothing, even through every old level.
    assert b.fill_bar(SYM, TS + 3600, 70000.0, 70000.0, 40000.0, 50000.0) == []


def test_market_fill_and_gap_fill_share_the_open_as_reference() -> None:
    b = broker()
    b.submit(order("x", Side.SELL, OrderType.LIMIT, role=OrderRole.EXIT, price="62700.00"))
    b.submit(order("m"))
    m, x = b.fill_bar(SYM, *B2)
    assert (m.order.client_order_id, x.order.client_order_id) == ("m", "x")
    assert m.fill.reference_price == x.fill.reference_price == Decimal("62835.28")
    assert (m.fill.price, x.fill.price) == (Decimal("62847.85"), Decimal("62835.28"))


def test_oco_cancels_only_its_own_group_in_arrival_order() -> None:
    b = broker()
    for eid, tp, sl in (("a", "63300.00", "62300.00"), ("b", "64000.00", "61000.00"),
                        ("c", "63400.00", "62200.00")):
        entry, legs = bracket(eid, tp, sl)
        b.submit(entry, legs)
    b.fill_bar(SYM, *B2)       # B2's range touches no take-profit and no stop-loss
    assert b.quiet_band(SYM) == (62300.0, 63300.0)
    ups = b.fill_bar(SYM, 1713466800, 62900.00, 63050.00, 62150.00, 62900.00)
    assert [(u.order.client_order_id, u.kind.value, u.reason) for u in ups] == [
        ("a-sl", "triggered", ""), ("a-sl", "filled", ""),
        ("a-tp", "cancelled", "oco: other leg filled"),
        ("c-sl", "triggered", ""), ("c-sl", "filled", ""),
        ("c-tp", "cancelled", "oco: other leg filled")]
    assert [o.client_order_id for o in b.open_orders(SYM)] == ["b-tp", "b-sl"]
    assert b.quiet_band(SYM) == (61000.0, 64000.0)
