"""SimBroker as an implementation of the broker port (execution/base.py): the events its
commands return, cancel, close_position, capabilities and native_brackets=False.

Prices are real Coinbase closes from the bundled files (BTC-USD bar 2, 2024-04-18T18:00Z;
SOL-USD's last bar, 2026-05-08T16:00Z); expected figures are worked out by hand in the
comments (slippage 2 bps, taker 10 bps unless a test says otherwise).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradewarden.domain import (
    COINBASE_SPECS,
    Bar,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    Side,
)
from tradewarden.execution import (
    Broker,
    BrokerCapabilities,
    OrderEvent,
    OrderEventKind,
    SimBroker,
)

K = OrderEventKind
BTC, SOL = COINBASE_SPECS["BTC-USD"], COINBASE_SPECS["SOL-USD"]
SYM = "BTC-USD"
TS = 1713459600
B2 = (1713463200, 62835.28, 63259.15, 62358.0, 63149.42)       # BTC-USD bar 2
SOL_LAST = (1778256000, Decimal("89.58"))                       # SOL-USD last close
INF = float("inf")


def order(oid: str, side: Side = Side.BUY, type_: OrderType = OrderType.MARKET, qty: str = "0.01",
          role: OrderRole = OrderRole.ENTRY, price: str | None = None, stop: str | None = None,
          symbol: str = SYM, ts: int = TS) -> Order:
    return Order(oid, symbol, side, type_, Decimal(qty), role, ts,
                 price=Decimal(price) if price else None, stop_price=Decimal(stop) if stop else None)


def legs(eid: str, tp: str = "64000.00", sl: str = "62000.00") -> tuple[Order, Order]:
    return (order(f"{eid}-tp", Side.SELL, OrderType.LIMIT, role=OrderRole.TAKE_PROFIT, price=tp),
            order(f"{eid}-sl", Side.SELL, OrderType.STOP, role=OrderRole.STOP_LOSS, stop=sl))


def broker(**kw) -> SimBroker:
    return SimBroker({SYM: BTC, "ETH-USD": COINBASE_SPECS["ETH-USD"], "SOL-USD": SOL}, **kw)


def view(events: list[OrderEvent]) -> list[tuple[str, str, int, str]]:
    return [(e.order.client_order_id, e.kind.value, e.ts, e.reason) for e in events]


# ---------------------------------------------------------------------- the port
def test_sim_broker_is_a_broker_with_its_capabilities() -> None:
    b = broker()
    assert isinstance(b, Broker)
    assert b.capabilities == BrokerCapabilities(native_bracket=True, native_oco=True,
                                                stop_orders=True, client_order_ids=True,
                                                partial_fills=False)
    emulated = broker(native_brackets=False)
    assert isinstance(emulated, Broker)
    assert emulated.capabilities == BrokerCapabilities(native_bracket=False, native_oco=False,
                                                       stop_orders=True, client_order_ids=True,
                                                       partial_fills=False)


def test_an_object_missing_a_command_is_not_a_broker() -> None:
    class NoClose:
        capabilities = BrokerCapabilities()

        def submit(self, order, legs=()): return []
        def cancel(self, client_order_id, ts, reason): return []
        def cancel_all(self, symbol, ts, reason): return []
        def process(self, bar): return []
        def open_orders(self, symbol): return []

    assert not isinstance(NoClose(), Broker)


def test_process_takes_a_bar_and_equals_fill_bar() -> None:
    ts, o, h, low, c = B2
    a, b = broker(), broker()
    for x in (a, b):
        x.submit(order("e"), legs("e", tp="63200.00"))
    via_bar = a.process(Bar(SYM, ts, o, h, low, c, 1.0, ts + 3600))
    via_floats = b.fill_bar(SYM, ts, o, h, low, c)
    assert view(via_bar) == view(via_floats) == [
        ("e", "filled", ts, ""), ("e-tp", "working", ts, "bracket leg live"),
        ("e-sl", "working", ts, "bracket leg live"), ("e-tp", "filled", ts, ""),
        ("e-sl", "cancelled", ts, "oco: other leg filled")]
    assert [e.fill for e in via_bar] == [e.fill for e in via_floats]


# ---------------------------------------------------------------------- submit
@pytest.mark.parametrize("make, kind, status", [
    (lambda: order("x"), K.ACCEPTED, OrderStatus.ACCEPTED),
    (lambda: order("x", Side.SELL, role=OrderRole.EXIT), K.ACCEPTED, OrderStatus.ACCEPTED),
    (lambda: order("x", type_=OrderType.LIMIT, price="62000.00"), K.WORKING, OrderStatus.WORKING),
    (lambda: order("x", Side.SELL, OrderType.STOP, role=OrderRole.EXIT, stop="61000.00"),
     K.WORKING, OrderStatus.WORKING),
    (lambda: order("x", Side.BUY, OrderType.STOP, stop="64000.00"), K.WORKING, OrderStatus.WORKING),
], ids=["market-buy", "market-sell", "limit", "sell-stop", "buy-stop"])
def test_submit_returns_one_event_per_order_type(make, kind, status) -> None:
    o = make()
    assert o.status is OrderStatus.SUBMITTED
    (ev,) = broker().submit(o)
    assert (ev.order, ev.kind, ev.ts, ev.reason, ev.fill) == (o, kind, TS, "", None)
    assert o.status is status is ev.status


@pytest.mark.parametrize("entry_type", ["market", "limit"])
def test_submit_bracket_accepts_the_legs_awaiting_the_entry(entry_type: str) -> None:
    entry = (order("e") if entry_type == "market"
             else order("e", type_=OrderType.LIMIT, price="62500.00"))
    tp, sl = legs("e")
    tp.created_ts = sl.created_ts = TS + 1            # each event carries its own order's time
    b = broker()
    events = b.submit(entry, (tp, sl))
    first = "accepted" if entry_type == "market" else "working"
    assert view(events) == [("e", first, TS, ""), ("e-tp", "accepted", TS + 1, ""),
                            ("e-sl", "accepted", TS + 1, "")]
    assert tp.status is sl.status is OrderStatus.ACCEPTED
    assert [o.client_order_id for o in b.open_orders(SYM)] == ["e"]   # legs not live yet


def test_submit_leg_for_another_symbol_is_refused_and_nothing_recorded() -> None:
    b = broker()
    tp, _ = legs("e")
    eth_sl = order("e-sl", Side.SELL, OrderType.STOP, role=OrderRole.STOP_LOSS, stop="3000",
                   symbol="ETH-USD")
    with pytest.raises(ValueError, match="bracket leg for 'ETH-USD' on an entry for 'BTC-USD'"):
        b.submit(order("e"), (tp, eth_sl))
    assert not b.has_orders(SYM) and not b.has_orders("ETH-USD")
    assert len(b.submit(order("e"), legs("e"))) == 3     # ids still free


# ---------------------------------------------------------------------- native_brackets=False
def test_without_native_brackets_legs_are_refused_and_nothing_recorded() -> None:
    b = broker(native_brackets=False)
    entry = order("e")
    with pytest.raises(ValueError, match="does not take bracket legs"):
        b.submit(entry, legs("e"))
    assert entry.status is OrderStatus.SUBMITTED and not b.has_orders(SYM)
    # The engine's emulation: entry alone, then the legs as plain orders once it filled.
    assert view(b.submit(entry)) == [("e", "accepted", TS, "")]
    b.fill_bar(SYM, *B2)
    tp, sl = legs("e")
    assert [e.kind for e in b.submit(tp)] == [K.WORKING]
    assert [e.kind for e in b.submit(sl)] == [K.WORKING]
    # No native OCO: both legs fill when a bar crosses both levels; the engine cancels.
    ups = b.fill_bar(SYM, B2[0] + 3600, 63000.0, 64100.0, 61900.0, 62000.0)
    assert [(e.order.client_order_id, e.kind.value) for e in ups] == [
        ("e-sl", "triggered"), ("e-sl", "filled"), ("e-tp", "filled")]


# ---------------------------------------------------------------------- stops
@pytest.mark.parametrize("side, stop, bar", [
    (Side.SELL, "62500.00", B2),                                        # intrabar
    (Side.SELL, "63000.00", B2),                                        # gap below: at the open
    (Side.BUY, "63200.00", B2),                                         # intrabar
    (Side.BUY, "62800.00", B2),                                         # gap above: at the open
], ids=["sell-intrabar", "sell-gap", "buy-intrabar", "buy-gap"])
def test_a_stop_reports_triggered_immediately_before_filled(side, stop, bar) -> None:
    b = broker()
    b.submit(order("l", Side.BUY, OrderType.LIMIT, price="62400.00"))   # fills too, no trigger
    s = order("s", side, OrderType.STOP, role=OrderRole.EXIT, stop=stop)
    b.submit(s)
    ups = b.fill_bar(SYM, *bar)
    kinds = [(e.order.client_order_id, e.kind) for e in ups]
    i = kinds.index(("s", K.TRIGGERED))
    assert kinds[i + 1] == ("s", K.FILLED)
    assert ups[i].fill is None and ups[i].ts == ups[i + 1].ts == bar[0]
    assert ups[i].status is OrderStatus.WORKING
    assert ("l", K.TRIGGERED) not in kinds and ("l", K.FILLED) in kinds


# ---------------------------------------------------------------------- cancel
def test_cancel_one_resting_order_updates_the_band() -> None:
    b = broker()
    b.submit(order("lo", Side.BUY, OrderType.LIMIT, price="62500.00"))
    b.submit(order("hi", Side.BUY, OrderType.STOP, stop="63700.00"))
    assert b.quiet_band(SYM) == (62500.0, 63700.0)
    assert view(b.cancel("lo", TS + 5, "strategy")) == [("lo", "cancelled", TS + 5, "strategy")]
    assert b.quiet_band(SYM) == (-INF, 63700.0)
    assert [o.client_order_id for o in b.open_orders(SYM)] == ["hi"]
    # The band is right, not stale: a bar through the old limit fills nothing.
    assert b.fill_bar(SYM, TS + 3600, 62600.0, 62700.0, 62000.0, 62650.0) == []
    assert view(b.cancel("hi", TS + 6, "x")) == [("hi", "cancelled", TS + 6, "x")]
    assert b.quiet_band(SYM) == (-INF, INF) and not b.has_orders(SYM)


def test_cancel_pending_market_order() -> None:
    b = broker()
    m = order("m")
    b.submit(order("r", Side.SELL, OrderType.STOP, role=OrderRole.EXIT, stop="60000.00"))
    b.submit(m)
    assert b.quiet_band(SYM) == (INF, -INF)
    assert view(b.cancel("m", TS, "risk")) == [("m", "cancelled", TS, "risk")]
    assert m.status is OrderStatus.CANCELLED
    assert b.quiet_band(SYM) == (60000.0, INF)
    assert b.fill_bar(SYM, *B2) == []


def test_cancel_unfilled_entry_cancels_its_legs_too() -> None:
    b = broker()
    entry = order("e", type_=OrderType.LIMIT, price="62500.00")
    tp, sl = legs("e")
    b.submit(entry, (tp, sl))
    assert view(b.cancel("e", TS, "stale")) == [
        ("e", "cancelled", TS, "stale"), ("e-tp", "cancelled", TS, "stale"),
        ("e-sl", "cancelled", TS, "stale")]
    assert {o.status for o in (entry, tp, sl)} == {OrderStatus.CANCELLED}
    assert b.quiet_band(SYM) == (-INF, INF)
    assert b.fill_bar(SYM, *B2) == []                  # the entry's level is crossed: nothing
    assert b.cancel("e-tp", TS, "again") == []         # legs finished too


def test_cancel_a_leg_awaiting_its_entry_keeps_the_other_leg() -> None:
    b = broker()
    tp, sl = legs("e", tp="63200.00")
    b.submit(order("e"), (tp, sl))
    assert view(b.cancel("e-sl", TS, "no stop")) == [("e-sl", "cancelled", TS, "no stop")]
    ups = b.fill_bar(SYM, *B2)
    assert [(e.order.client_order_id, e.kind.value) for e in ups] == [
        ("e", "filled"), ("e-tp", "working"), ("e-tp", "filled")]
    assert sl.status is OrderStatus.CANCELLED
    assert view(b.cancel("e-tp", TS, "x")) == []       # the other leg: finished


def test_cancel_one_live_leg_leaves_its_sibling_working() -> None:
    b = broker()
    tp, sl = legs("e")
    b.submit(order("e"), (tp, sl))
    b.fill_bar(SYM, *B2)
    assert b.quiet_band(SYM) == (62000.0, 64000.0)
    assert view(b.cancel("e-tp", TS, "trail")) == [("e-tp", "cancelled", TS, "trail")]
    assert b.quiet_band(SYM) == (62000.0, INF)
    assert sl.status is OrderStatus.WORKING
    ups = b.fill_bar(SYM, B2[0] + 3600, 63000.0, 64500.0, 61900.0, 62000.0)
    assert [(e.order.client_order_id, e.kind.value) for e in ups] == [
        ("e-sl", "triggered"), ("e-sl", "filled")]


def test_cancel_unknown_or_finished_id_yields_nothing() -> None:
    b = broker()
    assert b.cancel("nope", TS, "x") == []
    m = order("m")
    b.submit(m)
    b.fill_bar(SYM, *B2)
    assert m.status is OrderStatus.FILLED
    assert b.cancel("m", TS, "x") == [] and m.status is OrderStatus.FILLED
    b.submit(order("c", type_=OrderType.LIMIT, price="60000.00"))
    assert len(b.cancel("c", TS, "x")) == 1
    assert b.cancel("c", TS, "x") == []                # second cancel: nothing
    assert b.cancel_all(SYM, TS, "x") == []


def test_cancel_is_per_order_across_symbols() -> None:
    b = broker()
    b.submit(order("btc", type_=OrderType.LIMIT, price="60000.00"))
    b.submit(order("eth", type_=OrderType.LIMIT, price="3000.00", symbol="ETH-USD"))
    assert view(b.cancel("eth", TS, "x")) == [("eth", "cancelled", TS, "x")]
    assert b.quiet_band("ETH-USD") == (-INF, INF) and not b.has_orders("ETH-USD")
    assert b.quiet_band(SYM) == (60000.0, INF)


# ---------------------------------------------------------------------- close_position
def test_close_position_sell_on_a_real_instrument() -> None:
    # SOL-USD, increment 0.01: 89.58 * 0.9998 = 89.562084 -> floor 89.56;
    # fee 89.56 * 3.5 * 0.0010 = 0.31346
    b = broker()
    ts, ref = SOL_LAST
    o = order("x", Side.SELL, qty="3.5", role=OrderRole.EXIT, symbol="SOL-USD", ts=ts)
    (ev,) = b.close_position(o, ref, ts)
    assert (ev.order, ev.kind, ev.ts, ev.reason) == (o, K.FILLED, ts, "")
    f = ev.fill
    assert (f.client_order_id, f.symbol, f.side, f.quantity) == ("x", "SOL-USD", Side.SELL,
                                                                 Decimal("3.5"))
    assert f.price == Decimal("89.56") and str(f.price) == "89.56"
    assert f.fee == Decimal("0.31346") and f.fee.as_tuple().exponent == -8
    assert (f.liquidity, f.ts, f.reference_price, f.role) == ("taker", ts, ref, OrderRole.EXIT)
    assert o.status is OrderStatus.FILLED
    assert not b.has_orders("SOL-USD")                 # nothing left resting or pending


def test_close_position_buy_rounds_up() -> None:
    # 89.58 * 1.0002 = 89.597916 -> ceil 89.60; fee 89.60 * 3.5 * 0.0010 = 0.3136
    ts, ref = SOL_LAST
    o = order("x", Side.BUY, qty="3.5", role=OrderRole.EXIT, symbol="SOL-USD", ts=ts)
    (ev,) = broker().close_position(o, ref, ts)
    assert (ev.fill.side, ev.fill.price, ev.fill.fee) == (Side.BUY, Decimal("89.60"),
                                                          Decimal("0.31360000"))


def test_close_position_fee_rounds_half_even_to_1e_8() -> None:
    # BTC-USD close 63149.42 * 0.9998 = 63136.790116 -> 63136.79;
    # 63136.79 * 0.12345678 * 0.001 = 7.7946647929362 -> 7.79466479
    (ev,) = broker().close_position(order("x", Side.SELL, qty="0.12345678", role=OrderRole.EXIT),
                                    Decimal("63149.42"), TS)
    assert (ev.fill.price, ev.fill.fee) == (Decimal("63136.79"), Decimal("7.79466479"))
    # No slippage, 62500 * 1e-8 * 0.001 = 0.000000625 -> 0.00000062 (half-even: 2 is even);
    # 62500 * 3e-8 * 0.001 = 0.000001875 -> 0.00000188 (7 is odd: up).
    b = broker(slippage_bps=0)
    (one,) = b.close_position(order("a", Side.SELL, qty="0.00000001", role=OrderRole.EXIT),
                              Decimal("62500.00"), TS)
    (three,) = b.close_position(order("b", Side.SELL, qty="0.00000003", role=OrderRole.EXIT),
                                Decimal("62500.00"), TS)
    assert (one.fill.price, one.fill.fee) == (Decimal("62500.00"), Decimal("0.00000062"))
    assert three.fill.fee == Decimal("0.00000188")


def test_close_position_ignores_funds_and_keeps_the_orders_role() -> None:
    b = broker(funds=lambda symbol: 0.0)
    (ev,) = b.close_position(order("x", Side.BUY, role=OrderRole.ENTRY), Decimal("63149.42"), TS)
    assert ev.kind is K.FILLED and ev.fill.role is OrderRole.ENTRY
    assert ev.fill.price == Decimal("63162.05")        # 63149.42 * 1.0002 = 63162.049884


def test_close_position_refuses_a_used_id_and_registers_its_own() -> None:
    b = broker()
    b.submit(order("a"))
    with pytest.raises(ValueError, match="duplicate client order id 'a'"):
        b.close_position(order("a", Side.SELL, role=OrderRole.EXIT), Decimal("63149.42"), TS)
    b.close_position(order("x", Side.SELL, role=OrderRole.EXIT), Decimal("63149.42"), TS)
    with pytest.raises(ValueError, match="duplicate client order id 'x'"):
        b.close_position(order("x", Side.SELL, role=OrderRole.EXIT), Decimal("63149.42"), TS)
    with pytest.raises(ValueError, match="duplicate client order id 'x'"):
        b.submit(order("x"))


@pytest.mark.parametrize("make, ref, match", [
    (lambda: order("x", symbol="DOGE-USD"), Decimal(1), "unknown symbol 'DOGE-USD'"),
    (lambda: order("x", qty="0"), Decimal(1), "quantity must be positive"),
    (lambda: order("x", type_=OrderType.LIMIT, price="1"), Decimal(1), "takes a market order"),
    (lambda: order("x"), Decimal(0), "reference price must be a positive finite Decimal"),
    (lambda: order("x"), Decimal("NaN"), "reference price must be a positive finite Decimal"),
    (lambda: order("x"), 63149.42, "reference price must be a positive finite Decimal"),
], ids=["unknown-symbol", "zero-qty", "limit", "zero-ref", "nan-ref", "float-ref"])
def test_close_position_rejects_bad_input_and_registers_nothing(make, ref, match) -> None:
    b = broker()
    o = make()
    with pytest.raises(ValueError, match=match):
        b.close_position(o, ref, TS)
    assert o.status is OrderStatus.SUBMITTED
    assert [e.kind for e in b.submit(order("x"))] == [K.ACCEPTED]   # the id is still free


def test_without_native_oco_a_second_leg_finds_nothing_to_sell() -> None:
    """Emulated bracket legs rest as separate orders; a bar through both levels fills the
    stop-loss (pessimistic order) and the take-profit, now selling more than the account
    holds, is rejected ``insufficient_balance`` as a spot venue would."""
    b = broker(native_brackets=False)
    b.submit(order("e"))
    (fill,) = b.fill_bar(SYM, *B2)                       # bought 0.01 at the open
    assert fill.kind is K.FILLED
    tp, sl = legs("e", tp="63200.00", sl="62400.00")     # both inside the next bar
    for leg in (tp, sl):
        leg.parent_id = "e"
        b.submit(leg)
    got = view(b.fill_bar(SYM, B2[0] + 3600, 62835.28, 63259.15, 62358.0, 63149.42))
    assert got == [("e-sl", "triggered", B2[0] + 3600, ""), ("e-sl", "filled", B2[0] + 3600, ""),
                   ("e-tp", "rejected", B2[0] + 3600, "insufficient_balance")]
    assert tp.status is OrderStatus.REJECTED and not b.has_orders(SYM)
