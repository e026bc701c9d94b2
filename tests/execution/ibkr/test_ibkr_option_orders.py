"""Option orders through IbkrBroker against the fake TWS with the real ib_async client:
an OCC symbol goes to IBKR as an Option contract (qualified once, market data subscribed
before the order), whole contracts, premiums on the option tick, IBKR's per-contract
commission, the fill snapshot taken in the execution handler, partial fills, a rejection,
and an assignment as IBKR reports it in the positions.

Uses from ``fake_tws.FakeTws``: ``add_option_chain``, ``set_option_quote``, ``set_quote``,
``partial_fill_next``, ``reject_next_order``, ``assign``, ``order_by_ref``, ``executions``,
``positions``, ``received``.
"""

from __future__ import annotations

import math
from decimal import Decimal as D
from typing import Any

import pytest
from fake_tws import BrokerClock

from tradewarden.domain import Bar, Order, OrderRole, OrderStatus, OrderType, Side
from tradewarden.execution.base import OrderEventKind
from tradewarden.execution.ibkr import IbkrBroker, IbkrOptionPosition, option_tick

K = OrderEventKind
PUT = "AAPL  260220P00180000"           # the 21-character OCC key
EXPIRY = "20260220"




@pytest.fixture
def desk(tws: Any, clock: Any):
    """An adapter trading AAPL, with AAPL puts listed at the fake."""
    tws.add_option_chain("AAPL", ["20260116", EXPIRY], [170, 180, 190], rights="P", iv=0.28)
    b = IbkrBroker.connect("127.0.0.1", tws.port, 7, None, ["AAPL"], BrokerClock(clock),
                           timeout=3)
    yield b
    b.disconnect()


def opt(cid: str, side: Side, qty: str = "1", typ: OrderType = OrderType.MARKET,
        price: str | None = None, symbol: str = PUT) -> Order:
    role = OrderRole.ENTRY if side is Side.SELL else OrderRole.EXIT
    return Order(cid, symbol, side, typ, D(qty), role, 1_767_367_800,
                 price=None if price is None else D(price))


def bar(symbol: str = PUT) -> Bar:
    return Bar(symbol, 0, 5.0, 5.0, 5.0, 5.0, 0.0, 86_400)


def until(broker: IbkrBroker, pred, seen: list | None = None, symbol: str = PUT) -> list:
    seen = list(seen or [])
    for _ in range(150):
        if pred(seen):
            return seen
        seen += broker.process(bar(symbol))
        if pred(seen):
            return seen
        broker.ib.sleep(0.02)
    pytest.fail(f"condition not met; events {[(e.order.client_order_id, e.kind.value) for e in seen]}")


def test_option_tick_follows_the_penny_interval_program() -> None:
    assert option_tick(D("2.99")) == D("0.01") and option_tick(D("3.00")) == D("0.05")
    assert option_tick(D("1.20"), D("0.05")) == D("0.05")          # contract details coarser


def test_sell_a_put_to_open_the_snapshot_keeps_the_fill_time_market_then_buy_it_back(
        desk: IbkrBroker, tws: Any, clock: Any) -> None:
    events = desk.submit(opt("tw-p-1-entry", Side.SELL, "2"))
    # the contract went to IBKR as an option, market data subscribed before the order
    placed = [i for i, (_c, f) in enumerate(tws.received) if f and f[0] == "3"]
    subscribed = [i for i, (_c, f) in enumerate(tws.received) if f and f[0] == "1"]
    assert subscribed and placed and subscribed[0] < placed[0]
    fake = tws.order_by_ref("tw-p-1-entry")
    inst = tws.instruments[fake.con_id]
    assert (inst.sec_type, inst.local_symbol, fake.action, fake.quantity, fake.order_type) == (
        "OPT", PUT, "SELL", 2, "MKT")
    events = until(desk, lambda ev: any(e.kind is K.FILLED for e in ev), events)
    fill = next(e.fill for e in events if e.kind is K.FILLED)
    (ex,) = tws.executions()
    assert fill.quantity == 2 and fill.price == ex.price and fill.side is Side.SELL
    assert fill.fee == ex.commission == D("1.30")                  # 0.65 per contract
    ticker = desk._tickers[PUT]
    at_fill = (ticker.modelGreeks.delta, ticker.modelGreeks.gamma, ticker.modelGreeks.theta,
               ticker.modelGreeks.vega, ticker.modelGreeks.impliedVol, ticker.bid, ticker.ask)
    fill_time = int(clock())
    # the market moves right after the fill: the underlying drops, the volatility jumps
    clock.advance(60)
    tws.set_option_quote("AAPL", EXPIRY, 180, "P", iv=0.55)
    tws.set_quote("AAPL", "179.99", "180.01", "180.00")
    until(desk, lambda ev: ticker.modelGreeks.undPrice == 180.0)
    assert ticker.modelGreeks.delta < at_fill[0]                    # the live values changed
    ((cid, eid, snap),) = desk.drain_option_snapshots()
    assert (cid, eid) == ("tw-p-1-entry", ex.exec_id)
    assert desk.execution_ids("tw-p-1-entry") == [ex.exec_id]
    assert snap.occ_symbol == PUT and snap.captured_ts == fill_time
    assert (snap.delta, snap.gamma, snap.theta, snap.vega, snap.iv) == pytest.approx(at_fill[:5])
    assert (snap.bid, snap.ask) == (D(str(at_fill[5])), D(str(at_fill[6])))
    assert snap.underlying_price == D(190) and snap.iv == pytest.approx(0.28)
    assert -1 < snap.delta < 0 and snap.gamma > 0 and snap.source == "ibkr:model_greeks"
    assert desk.drain_option_snapshots() == []                     # drained once
    credit = ex.price - ex.commission / 200               # per share, net of the commission
    assert desk.option_positions() == [IbkrOptionPosition(PUT, D(-2), credit)]
    assert desk.account(["AAPL", PUT]).positions == {"AAPL": 0, PUT: D(-2)}
    # buy it back with a limit: the price goes DOWN on the option tick (3.00 and above: 0.05)
    tws.set_option_quote("AAPL", EXPIRY, 180, "P", bid="9.00", ask="9.40")
    back = desk.submit(opt("tw-p-1-exit", Side.BUY, "2", OrderType.LIMIT, price="9.349"))
    assert tws.order_by_ref("tw-p-1-exit").lmt_price == D("9.30")
    assert [e.kind for e in back] == [K.ACCEPTED, K.WORKING]
    tws.set_option_quote("AAPL", EXPIRY, 180, "P", bid="9.10", ask="9.30")
    back = until(desk, lambda ev: any(e.kind is K.FILLED for e in ev), back)
    assert next(e.fill for e in back if e.kind is K.FILLED).price == D("9.30")
    assert desk.option_positions() == [] and tws.positions() == {}
    (_, eid2, snap2), = desk.drain_option_snapshots()
    assert eid2 == tws.executions()[-1].exec_id and snap2.underlying_price == D(180)
    assert snap2.iv == pytest.approx(0.55) and (snap2.bid, snap2.ask) == (D("9.10"), D("9.30"))
    # the contract was qualified once for both orders
    details = [f for _c, f in tws.received if f and f[0] == "9" and f[5] == "OPT"]
    assert len(details) == 1


def test_a_sell_limit_goes_up_on_the_tick_and_partial_fills_each_get_a_snapshot(
        desk: IbkrBroker, tws: Any) -> None:
    tws.set_option_quote("AAPL", EXPIRY, 170, "P", bid="1.00", ask="1.10")
    symbol = "AAPL260220P00170000"                 # unpadded: accepted as the desk spells it
    tws.partial_fill_next(0.5, "later")
    order = opt("tw-p-2-entry", Side.SELL, "4", OrderType.LIMIT, price="1.051", symbol=symbol)
    events = desk.submit(order)
    assert tws.order_by_ref("tw-p-2-entry").lmt_price == D("1.06")   # a sell UP (0.01 below 3)
    tws.set_option_quote("AAPL", EXPIRY, 170, "P", bid="1.06", ask="1.10")
    events = until(desk, lambda ev: any(e.kind is K.PARTIALLY_FILLED for e in ev), events,
                   symbol=symbol)
    tws.set_option_quote("AAPL", EXPIRY, 170, "P", bid="1.08", ask="1.12")
    events = until(desk, lambda ev: any(e.kind is K.FILLED for e in ev), events, symbol=symbol)
    parts = [e.fill for e in events if e.fill is not None]
    assert [f.quantity for f in parts] == [2, 2]
    assert sum(f.fee for f in parts) == D("2.60")                   # 4 contracts x 0.65
    snaps = desk.drain_option_snapshots()
    assert [s[1] for s in snaps] == [x.exec_id for x in tws.executions()]
    assert desk.execution_ids("tw-p-2-entry") == [s[1] for s in snaps]
    assert [s[2].bid for s in snaps] == [D("1.06"), D("1.08")]      # each at its own fill
    assert all(s[2].occ_symbol == "AAPL  260220P00170000" for s in snaps)
    assert desk.lookup("tw-p-2-entry").status is OrderStatus.FILLED


def test_a_rejected_option_order_and_orders_refused_before_sending(
        desk: IbkrBroker, tws: Any) -> None:
    tws.reject_next_order("Insufficient margin for the uncovered put")
    events = desk.submit(opt("tw-p-3-entry", Side.SELL, "50"))
    events = until(desk, lambda ev: any(e.kind is K.REJECTED for e in ev), events)
    rejected = next(e for e in events if e.kind is K.REJECTED)
    assert "Insufficient margin for the uncovered put" in rejected.reason
    assert desk.drain_option_snapshots() == [] and tws.executions() == []
    with pytest.raises(ValueError, match="whole contracts"):
        desk.submit(opt("tw-p-4-entry", Side.SELL, "1.5"))
    with pytest.raises(ValueError, match="market or limit"):
        desk.submit(Order("tw-p-5-entry", PUT, Side.SELL, OrderType.STOP, D(1), OrderRole.ENTRY,
                          0, stop_price=D(1)))
    with pytest.raises(ValueError, match="IBKR lists no matching contract"):
        desk.submit(opt("tw-p-6-entry", Side.SELL, symbol="AAPL  260220P00175000"))
    assert [o.order_ref for o in tws.orders()] == ["tw-p-3-entry"]


def test_an_assignment_shows_as_the_option_gone_and_the_shares_there(
        desk: IbkrBroker, tws: Any) -> None:
    events = desk.submit(opt("tw-p-7-entry", Side.SELL, "3"))
    until(desk, lambda ev: any(e.kind is K.FILLED for e in ev), events)
    assert [p.contracts for p in desk.option_positions()] == [-3]
    assert tws.assign("AAPL", EXPIRY, 180, "P", contracts=2) == 200
    until(desk, lambda ev: [p.contracts for p in desk.option_positions()] == [-1])
    held = {p.symbol: p.quantity for p in desk.positions()}
    assert held["AAPL"] == 200 and held[PUT] == -1
    assert desk.account(["AAPL", PUT]).positions == {"AAPL": 200, PUT: -1}
    tws.assign("AAPL", EXPIRY, 180, "P")
    until(desk, lambda ev: desk.option_positions() == [])
    assert {p.symbol: p.quantity for p in desk.positions()} == {"AAPL": 300}
    assert not math.isnan(float(desk.account_summary().net_liquidation))


def test_after_a_reconnect_the_market_is_streamed_again_for_the_snapshot(
        desk: IbkrBroker, tws: Any, clock: Any) -> None:
    tws.set_option_quote("AAPL", EXPIRY, 190, "P", bid="4.00", ask="4.20")
    put = "AAPL  260220P00190000"
    events = desk.submit(opt("tw-p-8-entry", Side.SELL, "1", OrderType.LIMIT, price="4.31",
                             symbol=put))
    assert tws.order_by_ref("tw-p-8-entry").lmt_price == D("4.35")   # a sell UP, 0.05 from 3
    assert [e.kind for e in events] == [K.ACCEPTED, K.WORKING]
    tws.drop_connections()
    assert desk.maintain(clock()) is False and not desk.connected
    clock.advance(60)
    assert desk.maintain(clock()) is True                           # reconnected
    tws.set_option_quote("AAPL", EXPIRY, 190, "P", bid="4.40", ask="4.60", iv=0.31)
    until(desk, lambda ev: any(e.kind is K.FILLED for e in ev), symbol=put)
    ((cid, _eid, snap),) = desk.drain_option_snapshots()
    assert cid == "tw-p-8-entry" and (snap.bid, snap.ask) == (D("4.40"), D("4.60"))
    assert snap.iv == pytest.approx(0.31) and snap.captured_ts == int(clock())
