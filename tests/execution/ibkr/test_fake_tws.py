"""The fake TWS against the real ``ib_async`` client (sync ``IB`` API).

Every test drives the unmodified client over a loopback socket, so the fake's field lists
are checked by ib_async's own decoder; the ``make_tws`` fixture also fails a test when the
fake met a message it could not parse exactly.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from ib_async import (
    IB,
    ExecutionFilter,
    LimitOrder,
    MarketOrder,
    Option,
    Order,
    Stock,
    StopOrder,
)

AAPL = Stock("AAPL", "SMART", "USD")


def _settled(trade) -> bool:
    """Done, and every fill has its commission report."""
    return trade.isDone() and all(f.commissionReport.execId for f in trade.fills)


# -- connection ------------------------------------------------------------------------


def test_connect_accounts_values_and_farm_notices(tws, wait_until):
    ib = IB()
    notices = []
    ib.errorEvent += lambda req_id, code, text, contract: notices.append((req_id, code, text))
    ib.connect("127.0.0.1", tws.port, clientId=7, timeout=3)
    try:
        assert ib.managedAccounts() == ["DU1234567"]
        values = {(v.tag, v.currency): v.value for v in ib.accountValues()}
        for tag in ("NetLiquidation", "TotalCashValue", "BuyingPower", "AvailableFunds",
                    "ExcessLiquidity", "InitMarginReq", "MaintMarginReq",
                    "GrossPositionValue"):
            assert (tag, "USD") in values, tag
        assert values["NetLiquidation", "USD"] == "100000.00"
        assert values["BuyingPower", "USD"] == "400000.00"
        assert ib.positions() == []
        assert {code for _, code, _ in notices} == {2104, 2106, 2158}
        assert all(req_id == -1 for req_id, _, _ in notices)
        summary = {v.tag: v.value for v in ib.accountSummary()}
        assert summary["NetLiquidation"] == "100000.00"
        assert summary["AccountType"] == "INDIVIDUAL"
        assert tws.client_ids() == [7]
        assert ib.reqCurrentTime().timestamp() == int(tws.now())
    finally:
        ib.disconnect()


def test_duplicate_client_id_is_refused_with_326(tws, connect_ib):
    connect_ib(client_id=3)
    second = IB()
    codes = []
    second.errorEvent += lambda req_id, code, text, contract: codes.append(code)
    with pytest.raises((TimeoutError, asyncio.TimeoutError, ConnectionError)):
        second.connect("127.0.0.1", tws.port, clientId=3, timeout=0.25)
    assert 326 in codes
    assert tws.client_ids() == [3]
    other = connect_ib(client_id=4)         # another id is fine, at the same time
    assert other.isConnected()
    assert tws.client_ids() == [3, 4]


def test_refused_client_id_and_handshake_faults(make_tws, tws):
    tws.refuse_client_id(9)
    ib = IB()
    codes = []
    ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
    with pytest.raises((TimeoutError, asyncio.TimeoutError, ConnectionError)):
        ib.connect("127.0.0.1", tws.port, clientId=9, timeout=0.25)
    assert codes == [326]
    for mode in ("silent", "close"):
        fake = make_tws(handshake=mode)
        with pytest.raises((TimeoutError, asyncio.TimeoutError, ConnectionError)):
            IB().connect("127.0.0.1", fake.port, clientId=1, timeout=0.25)
        assert fake.client_ids() == []
        assert fake.received and fake.received[0][1][0].startswith("v157..")


# -- orders ------------------------------------------------------------------------------


def test_market_order_fills_with_execution_commission_and_order_ref(tws, ib, wait_until):
    trade = ib.placeOrder(AAPL, MarketOrder("BUY", 100, orderRef="tw-0001"))
    wait_until(ib, lambda: _settled(trade))
    assert trade.orderStatus.status == "Filled"
    assert trade.orderStatus.avgFillPrice == pytest.approx(190.01)      # bought at the ask
    (fill,) = trade.fills
    assert fill.execution.orderRef == "tw-0001"
    assert fill.execution.shares == 100
    assert fill.execution.side == "BOT"
    assert fill.execution.time.timestamp() == tws.now()                 # venue clock
    assert fill.commissionReport.commission == pytest.approx(1.00)      # 0.5 -> minimum 1.00
    assert fill.commissionReport.currency == "USD"
    wait_until(ib, lambda: ib.positions())
    (pos,) = ib.positions()
    assert (pos.contract.symbol, pos.position) == ("AAPL", 100)
    assert pos.avgCost == pytest.approx(190.02)                         # commission included
    assert tws.positions() == {"AAPL": Decimal(100)}
    assert tws.cash() == Decimal(100000) - Decimal(19001) - Decimal("1.00")
    assert tws.order_by_ref("tw-0001").status == "Filled"


def test_commission_follows_fixed_pricing_split_over_partial_fills(tws, ib, wait_until):
    tws.set_quote("IBM", "149.99", "150.01", "150.00")
    tws.partial_fill_next(0.25, rest="later")
    trade = ib.placeOrder(Stock("IBM", "SMART", "USD"), LimitOrder("BUY", 1000, "150.05"))
    wait_until(ib, lambda: trade.fills and trade.fills[0].commissionReport.execId)
    assert trade.orderStatus.status == "Submitted"
    assert trade.orderStatus.filled == 250
    assert trade.fills[0].commissionReport.commission == pytest.approx(1.25)   # 250 x 0.005
    tws.set_quote("IBM", "149.98", "150.00", "150.00")                 # the rest, later
    wait_until(ib, lambda: _settled(trade))
    assert [f.execution.shares for f in trade.fills] == [250, 750]
    assert [f.execution.cumQty for f in trade.fills] == [250, 1000]
    assert sum(f.commissionReport.commission for f in trade.fills) == pytest.approx(5.00)
    assert trade.fills[1].execution.price == pytest.approx(150.00)


def test_partial_fill_rest_never_stays_open_until_cancelled(tws, ib, wait_until):
    tws.partial_fill_next(0.5, rest="never")
    trade = ib.placeOrder(AAPL, MarketOrder("BUY", 10))
    wait_until(ib, lambda: trade.orderStatus.filled == 5)
    tws.set_quote("AAPL", "189.00", "189.02", "189.01")
    ib.sleep(0.05)
    assert trade.orderStatus.filled == 5 and trade.orderStatus.remaining == 5
    ib.cancelOrder(trade.order)
    wait_until(ib, lambda: trade.orderStatus.status == "Cancelled")
    assert tws.positions() == {"AAPL": Decimal(5)}


def test_limit_and_stop_orders_fill_through_step(tws, ib, wait_until):
    buy = ib.placeOrder(AAPL, LimitOrder("BUY", 10, 185.00, tif="GTC"))
    wait_until(ib, lambda: buy.orderStatus.status == "Submitted")
    tws.step("AAPL", 188, 189, 184, 186, 1_000_000, ts=tws.now() + 86400)
    wait_until(ib, lambda: _settled(buy))
    assert buy.fills[0].execution.price == 185.00                        # at the limit
    stop = ib.placeOrder(AAPL, StopOrder("SELL", 10, 180.00))
    wait_until(ib, lambda: stop.orderStatus.status == "Submitted")
    tws.step("AAPL", 176, 178, 175, 177, 1_000_000)                      # gaps through
    wait_until(ib, lambda: _settled(stop))
    assert stop.fills[0].execution.price == 176.00                       # worse: the open
    assert tws.positions() == {}
    realized = stop.fills[0].commissionReport.realizedPNL
    assert realized == pytest.approx((176 - 185) * 10 - 2.00, abs=0.01)


def test_bracket_is_held_until_the_stop_leg_then_arms_and_oca_cancels(tws, ib, wait_until):
    parent, take_profit, stop_loss = ib.bracketOrder("BUY", 10, 189.00, 195.00, 185.00)
    parent.orderRef = "br-1"
    p_trade = ib.placeOrder(AAPL, parent)
    tp_trade = ib.placeOrder(AAPL, take_profit)
    tws.wait_for(lambda f: len(f.orders()) == 2)
    ib.sleep(0.05)
    assert [o.status for o in tws.orders()] == ["Held", "Held"]         # not transmitted
    assert p_trade.orderStatus.status == "PendingSubmit"
    sl_trade = ib.placeOrder(AAPL, stop_loss)
    wait_until(ib, lambda: sl_trade.orderStatus.status == "PreSubmitted")
    assert p_trade.orderStatus.status == "Submitted"
    assert tp_trade.orderStatus.status == "PreSubmitted"                # waits for the parent
    tws.step("AAPL", 190, 190.5, 188.5, 189.5, 500_000)                 # parent fills at 189
    wait_until(ib, lambda: _settled(p_trade) and tp_trade.orderStatus.status == "Submitted")
    assert p_trade.fills[0].execution.price == 189.00
    assert p_trade.fills[0].execution.orderRef == "br-1"
    assert sl_trade.orderStatus.status == "Submitted"                   # armed
    tws.step("AAPL", 190, 196, 189, 195.5, 500_000)                     # take-profit
    wait_until(ib, lambda: _settled(tp_trade) and sl_trade.orderStatus.status == "Cancelled")
    assert tp_trade.fills[0].execution.price == 195.00
    assert tws.positions() == {}
    assert sl_trade.fills == []


def test_bracket_stop_fills_first_when_a_bar_spans_both_legs(tws, ib, wait_until):
    trades = [ib.placeOrder(AAPL, o) for o in ib.bracketOrder("BUY", 5, 190.01, 195, 185)]
    wait_until(ib, lambda: _settled(trades[0]))                         # marketable parent
    tws.step("AAPL", 190, 196, 184, 190, 1_000)                         # covers both legs
    wait_until(ib, lambda: _settled(trades[2]) and trades[1].isDone())
    assert trades[2].fills[0].execution.price == 185.00                 # pessimistic: stop
    assert trades[1].orderStatus.status == "Cancelled"


def test_oca_group_fill_cancels_the_others(tws, ib, wait_until):
    orders = IB.oneCancelsAll([LimitOrder("BUY", 5, 185.00), LimitOrder("BUY", 5, 180.00)],
                              "oca-1", 1)
    trades = [ib.placeOrder(AAPL, o) for o in orders]
    wait_until(ib, lambda: all(t.orderStatus.status == "Submitted" for t in trades))
    tws.step("AAPL", 189, 189, 184, 186)
    wait_until(ib, lambda: _settled(trades[0]) and trades[1].isDone())
    assert trades[1].orderStatus.status == "Cancelled"
    assert tws.positions() == {"AAPL": Decimal(5)}


def test_cancel_modify_and_global_cancel(tws, ib, wait_until):
    trade = ib.placeOrder(AAPL, LimitOrder("BUY", 10, 180.00))
    wait_until(ib, lambda: trade.orderStatus.status == "Submitted")
    trade.order.lmtPrice = 181.00
    ib.placeOrder(AAPL, trade.order)                                    # modify
    tws.wait_for(lambda f: f.orders()[0].lmt_price == Decimal(181))
    ib.cancelOrder(trade.order)
    wait_until(ib, lambda: trade.orderStatus.status == "Cancelled")
    assert tws.orders()[0].status == "Cancelled"
    others = [ib.placeOrder(AAPL, LimitOrder("BUY", 1, p)) for p in (170.0, 171.0)]
    wait_until(ib, lambda: all(t.orderStatus.status == "Submitted" for t in others))
    ib.reqGlobalCancel()
    wait_until(ib, lambda: all(t.orderStatus.status == "Cancelled" for t in others))
    assert not [o for o in tws.orders() if o.is_open]


def test_reject_gives_error_201_and_inactive(tws, ib, wait_until):
    errors = []
    ib.errorEvent += lambda req_id, code, text, contract: errors.append((req_id, code, text))
    tws.reject_next_order("Insufficient margin")
    trade = ib.placeOrder(AAPL, MarketOrder("BUY", 100_000, orderRef="rej-1"))
    wait_until(ib, lambda: trade.orderStatus.status == "Inactive")
    assert (trade.order.orderId, 201, "Order rejected - reason:Insufficient margin") in errors
    assert [e.errorCode for e in trade.log if e.errorCode] == [201]
    assert tws.positions() == {}
    completed = ib.reqCompletedOrders(apiOnly=True)
    assert [(t.order.orderRef, t.orderStatus.status) for t in completed] == [
        ("rej-1", "Inactive")]
    tws.reject_next_order("Order size too large", error_first=False)    # the other order
    late = ib.placeOrder(AAPL, MarketOrder("BUY", 100_000))
    wait_until(ib, lambda: any(e[:2] == (late.order.orderId, 201) for e in errors))
    assert late.orderStatus.status == "Inactive"
    assert [e.errorCode for e in late.log if e.errorCode] == []          # done before it


def test_notices_reach_every_client(tws, connect_ib, wait_until):
    clients = [connect_ib(client_id=i) for i in (1, 2)]
    seen: list[tuple[int, int]] = []
    for i, c in enumerate(clients):
        c.errorEvent += lambda req_id, code, text, contract, i=i: seen.append((i, code))
    tws.notify(1100, "Connectivity between IB and Trader Workstation has been lost.")
    wait_until(clients[0], lambda: (0, 1100) in seen)
    wait_until(clients[1], lambda: (1, 1100) in seen)


def test_unknown_contract_is_error_200_and_a_price_off_the_tick_110(tws, ib, wait_until):
    trade = ib.placeOrder(Stock("NOPE", "SMART", "USD"), MarketOrder("BUY", 1))
    wait_until(ib, lambda: trade.orderStatus.status == "Cancelled")
    assert trade.log[-1].errorCode == 200
    assert ib.reqContractDetails(Stock("NOPE", "SMART", "USD")) == []
    off_tick = ib.placeOrder(AAPL, LimitOrder("BUY", 1, 189.995))
    wait_until(ib, lambda: off_tick.orderStatus.status == "Cancelled")
    assert off_tick.log[-1].errorCode == 110
    assert tws.orders() == []


# -- disconnects ---------------------------------------------------------------------------


def test_disconnect_mid_order_then_reconnect_finds_it(tws, connect_ib, wait_until):
    ib = connect_ib(client_id=5)
    tws.drop_on_next_order(after_accept=True)
    ib.placeOrder(AAPL, MarketOrder("BUY", 10, orderRef="lost-1"))
    wait_until(ib, lambda: not ib.isConnected())
    assert tws.order_by_ref("lost-1").status == "Filled"                # the venue has it
    again = connect_ib(client_id=5)
    fills = again.reqExecutions(ExecutionFilter(clientId=5))
    assert [(f.execution.orderRef, f.execution.shares) for f in fills] == [("lost-1", 10)]
    # ib_async keeps the commission on the Fill it stored at connect (its own startup
    # reqExecutions); a later reqExecutions returns fresh Fill objects without it
    (stored,) = again.fills()
    assert stored.commissionReport.commission == pytest.approx(1.00)
    completed = again.reqCompletedOrders(apiOnly=True)
    assert [t.order.orderRef for t in completed] == ["lost-1"]
    assert [(p.contract.symbol, p.position) for p in again.positions()] == [("AAPL", 10)]


def test_disconnect_mid_resting_order_is_open_after_reconnect(tws, connect_ib, wait_until):
    ib = connect_ib(client_id=5)
    tws.drop_on_next_order(after_accept=True)
    ib.placeOrder(AAPL, LimitOrder("BUY", 10, 150.00, orderRef="rest-1"))
    wait_until(ib, lambda: not ib.isConnected())
    again = connect_ib(client_id=5)
    refs = [t.order.orderRef for t in again.reqOpenOrders()]
    assert refs == ["rest-1"]
    assert [t.order.orderRef for t in again.openTrades()] == ["rest-1"]
    tws.drop_on_next_order(after_accept=False)                          # never reaches it
    again.placeOrder(AAPL, LimitOrder("BUY", 10, 150.00, orderRef="gone-1"))
    wait_until(again, lambda: not again.isConnected())
    assert tws.order_by_ref("gone-1") is None


def test_drop_connections_keeps_state_and_other_clients_see_all_orders(tws, connect_ib,
                                                                      wait_until):
    one = connect_ib(client_id=1)
    two = connect_ib(client_id=2)
    t1 = one.placeOrder(AAPL, LimitOrder("BUY", 1, 150.00, orderRef="c1"))
    t2 = two.placeOrder(AAPL, LimitOrder("BUY", 1, 151.00, orderRef="c2"))
    wait_until(one, lambda: t1.orderStatus.status == "Submitted")
    wait_until(two, lambda: t2.orderStatus.status == "Submitted")
    assert sorted(t.order.orderRef for t in one.reqAllOpenOrders()) == ["c1", "c2"]
    tws.drop_connections()
    wait_until(one, lambda: not one.isConnected())
    wait_until(two, lambda: not two.isConnected())
    assert tws.client_ids() == []
    back = connect_ib(client_id=2)
    assert [t.order.orderRef for t in back.reqOpenOrders()] == ["c2"]


# -- contracts, market data, history ---------------------------------------------------------


def test_contract_details_for_stocks_and_options(tws, ib):
    (cd,) = ib.reqContractDetails(Stock("IBM", "SMART", "USD"))
    assert cd.minTick == 0.01
    assert (cd.contract.conId, cd.contract.primaryExchange) == (8314, "NYSE")
    tws.add_option_chain("AAPL", ["20260116", "20260220"], [180, 185, 190], rights="P")
    details = ib.reqContractDetails(Option("AAPL", "20260116", 0, "P", "SMART"))
    assert [d.contract.strike for d in details] == [180.0, 185.0, 190.0]
    assert details[0].contract.multiplier == "100"
    assert details[0].underConId == 265598
    (opt,) = ib.qualifyContracts(Option("AAPL", "20260220", 185, "P", "SMART"))
    assert opt.localSymbol == "AAPL  260220P00185000"
    (chain, _cboe) = ib.reqSecDefOptParams("AAPL", "", "STK", 265598)
    assert chain.exchange == "SMART"
    assert chain.expirations == ["20260116", "20260220"]
    assert chain.strikes == [180.0, 185.0, 190.0]


def test_option_model_greeks_snapshot_and_streaming(tws, ib, wait_until):
    tws.add_option("AAPL", "20260220", 180, "P", iv=0.25)
    (opt,) = ib.qualifyContracts(Option("AAPL", "20260220", 180, "P", "SMART"))
    (ticker,) = ib.reqTickers(opt)
    g = ticker.modelGreeks
    assert g is not None
    assert g.impliedVol == pytest.approx(0.25)
    assert -0.5 < g.delta < 0
    assert g.gamma > 0 and g.vega > 0 and g.theta < 0
    assert g.undPrice == pytest.approx(190.0)
    assert ticker.bid == pytest.approx(round(g.optPrice, 2) - 0.05, abs=0.011)
    assert ticker.bidGreeks is not None and ticker.askGreeks is not None
    stream = ib.reqMktData(opt)
    wait_until(ib, lambda: stream.modelGreeks is not None)
    before = stream.modelGreeks.delta
    tws.set_quote("AAPL", "179.99", "180.01", "180.00")                 # underlying falls
    wait_until(ib, lambda: stream.modelGreeks.delta < before - 0.1)
    assert stream.modelGreeks.undPrice == pytest.approx(180.0)
    ib.cancelMktData(opt)
    (stock,) = ib.reqTickers(*ib.qualifyContracts(Stock("AAPL", "SMART", "USD")))
    assert (stock.bid, stock.ask, stock.last) == (179.99, 180.01, 180.0)


def test_historical_daily_bars_and_head_timestamp(tws, ib):
    rows = [("20251229", 250, 252, 249, 251, 1_000_000), ("20251230", 251, 253, 250, 252, 900_000),
            ("20251231", 252, 254, 251, 253, 800_000), ("20260102", 253, 256, 252, 255, 700_000)]
    tws.set_bars("AAPL", rows)
    tws.set_bars("AAPL", [r[:4] + (r[4] - 1,) + r[5:] for r in rows], what_to_show="ADJUSTED_LAST")
    bars = ib.reqHistoricalData(AAPL, "", "3 D", "1 day", "TRADES", useRTH=True)
    assert [b.date.isoformat() for b in bars] == ["2025-12-30", "2025-12-31", "2026-01-02"]
    assert (bars[-1].open, bars[-1].close, bars[-1].volume) == (253, 255, 700_000)
    adjusted = ib.reqHistoricalData(AAPL, "", "1 M", "1 day", "ADJUSTED_LAST", useRTH=True)
    assert [b.close for b in adjusted] == [250, 251, 252, 254]
    ended = ib.reqHistoricalData(AAPL, "20251230 23:59:59 UTC", "1 W", "1 day", "TRADES", True)
    assert [b.date.isoformat() for b in ended] == ["2025-12-29", "2025-12-30"]
    head = ib.reqHeadTimeStamp(AAPL, "TRADES", useRTH=True)
    assert head.date().isoformat() == "2025-12-29"
    assert len(ib.reqHistoricalData(AAPL, "", "1 D", "1 min", "TRADES", True)) == 0


# -- options: selling puts -------------------------------------------------------------


def test_short_put_credit_margin_expiry_and_assignment(tws, ib, wait_until):
    tws.add_option_chain("AAPL", ["20260116"], [170, 180], rights="P")
    (p170, p180) = ib.qualifyContracts(Option("AAPL", "20260116", 170, "P", "SMART"),
                                       Option("AAPL", "20260116", 180, "P", "SMART"))
    tws.set_option_quote("AAPL", "20260116", 170, "P", "1.00", "1.10", iv=0.3)
    tws.set_option_quote("AAPL", "20260116", 180, "P", "2.00", "2.10")
    t1 = ib.placeOrder(p170, LimitOrder("SELL", 2, 1.00, orderRef="put-1"))
    t2 = ib.placeOrder(p180, MarketOrder("SELL", 1, orderRef="put-2"))
    wait_until(ib, lambda: _settled(t1) and _settled(t2))
    assert t1.fills[0].commissionReport.commission == pytest.approx(1.30)    # 2 x 0.65
    assert t2.fills[0].commissionReport.commission == pytest.approx(1.00)    # minimum
    assert tws.cash() == Decimal(100000) + 200 + 200 - Decimal("2.30")       # premium x 100
    assert tws.positions() == {"AAPL  260116P00170000": -2, "AAPL  260116P00180000": -1}
    values = tws.account_values()
    # (max(20 % x 190 - OTM 20, 10 % x 170) + 1.05 mid) x 100 x 2, and for 180: OTM 10
    expected = (Decimal(18) + Decimal("1.05")) * 200 + (Decimal(28) + Decimal("2.05")) * 100
    assert values["InitMarginReq"] == values["MaintMarginReq"] == expected
    wait_until(ib, lambda: {v.tag: v.value for v in ib.accountValues()}.get(
        "InitMarginReq") == str(expected))
    positions = {p.contract.localSymbol: (p.position, p.avgCost) for p in ib.positions()}
    assert positions["AAPL  260116P00180000"] == (-1, pytest.approx(199.0))  # per contract
    assert tws.expire("AAPL", "20260116", 170, "P") == -2
    assert tws.assign("AAPL", "20260116", 180, "P") == 100
    assert tws.positions() == {"AAPL": Decimal(100)}
    wait_until(ib, lambda: [(p.contract.symbol, p.position) for p in ib.positions()]
               == [("AAPL", 100.0)])
    assert tws.cash() == Decimal(100000) + 400 - Decimal("2.30") - 18000
    assert [e["event"] for e in tws.events] == ["expired", "assigned"]


def test_what_if_order_reports_margin_without_placing(tws, ib):
    state = ib.whatIfOrder(AAPL, MarketOrder("BUY", 100))
    assert float(state.initMarginAfter) == pytest.approx(190.01 * 100 / 2, abs=1)
    assert float(state.initMarginBefore) == 0
    assert tws.orders() == [] and tws.positions() == {}


def test_delay_and_state_survive_a_fake_restart(tws, connect_ib, wait_until):
    ib = connect_ib(client_id=1)
    trade = ib.placeOrder(AAPL, MarketOrder("BUY", 3))
    wait_until(ib, lambda: _settled(trade))
    port = tws.port
    tws.stop()
    wait_until(ib, lambda: not ib.isConnected())
    assert tws.start(port) == port
    tws.set_delay(0.02)
    again = connect_ib(client_id=1)
    assert [(p.contract.symbol, p.position) for p in again.positions()] == [("AAPL", 3.0)]
    assert isinstance(tws.orders()[0].perm_id, int)
    assert any(fields[0] == "61" for _, fields in tws.received)       # reqPositions seen


def test_order_fields_parse_exactly(tws, ib, wait_until):
    order = Order(action="SELL", totalQuantity=2, orderType="STP LMT", lmtPrice=170.0,
                  auxPrice=171.0, tif="GTC", orderRef="stplmt", outsideRth=True)
    trade = ib.placeOrder(AAPL, order)
    wait_until(ib, lambda: trade.orderStatus.status == "Submitted")
    (o,) = tws.orders()
    assert (o.order_type, o.lmt_price, o.aux_price, o.tif, o.outside_rth) == (
        "STP LMT", Decimal(170), Decimal(171), "GTC", True)
    assert tws.protocol_errors == []
    (open_trade,) = ib.reqAllOpenOrders()
    assert (open_trade.order.orderType, open_trade.order.auxPrice, open_trade.order.orderRef,
            open_trade.order.tif) == ("STP LMT", 171.0, "stplmt", "GTC")


def test_day_orders_end_with_the_session_and_market_orders_wait_for_a_quote(
        make_tws, connect_ib, clock, wait_until):
    fake = make_tws()                                   # no quotes yet
    ib = connect_ib(fake)
    day = ib.placeOrder(AAPL, LimitOrder("BUY", 1, 100.00, tif="DAY"))
    gtc = ib.placeOrder(AAPL, LimitOrder("BUY", 1, 100.00, tif="GTC"))
    market = ib.placeOrder(AAPL, MarketOrder("BUY", 2))
    wait_until(ib, lambda: market.orderStatus.status == "Submitted")
    assert market.fills == []                           # nothing to trade against
    bar_time = clock() + 3600
    fake.step("AAPL", 120, 121, 119, 120.5, 1_000, ts=bar_time)
    wait_until(ib, lambda: _settled(market))
    assert market.fills[0].execution.price == 120.00    # at the open
    assert market.fills[0].execution.time.timestamp() == bar_time
    assert fake.end_of_day() == [day.order.orderId]
    wait_until(ib, lambda: day.orderStatus.status == "Cancelled")
    assert gtc.orderStatus.status == "Submitted"


def test_partial_take_profit_shrinks_the_bracket_stop(tws, ib, wait_until):
    parent, take_profit, stop_loss = ib.bracketOrder("BUY", 10, 190.01, 195, 185)
    trades = [ib.placeOrder(AAPL, parent)]
    tws.wait_for(lambda f: f.orders())                  # the fake has read the parent
    tws.partial_fill_next(0.4, rest="never")            # the next order: the take-profit
    trades += [ib.placeOrder(AAPL, take_profit), ib.placeOrder(AAPL, stop_loss)]
    wait_until(ib, lambda: _settled(trades[0]) and trades[2].orderStatus.status == "Submitted")
    tws.set_quote("AAPL", "195.00", "195.02", "195.01")
    wait_until(ib, lambda: trades[1].orderStatus.filled == 4
               and trades[2].order.totalQuantity == 6)
    assert trades[2].orderStatus.status == "Submitted"                  # shrunk, still armed
    assert [(o.quantity, o.status) for o in tws.orders()][1:] == [
        (10, "Submitted"), (6, "Submitted")]
    realized = tws.account_values()["RealizedPnL"]
    state = ib.whatIfOrder(AAPL, MarketOrder("SELL", 6))
    assert float(state.initMarginAfter) == 0                            # flat after it
    assert tws.account_values()["RealizedPnL"] == realized              # what-if left no trace
    assert tws.positions() == {"AAPL": Decimal(6)}


def test_order_messages_line_up_with_the_decoder(tws):
    """openOrder and completedOrder end in a catch-all in ib_async's decoder, so a missing or
    extra field would shift values silently: mark each message's last field and check that it
    lands in the last attribute the decoder reads at server version 176."""
    from ib_async.decoder import Decoder

    got: dict[str, tuple] = {}

    class Recorder:
        def openOrder(self, *args):
            got["open"] = args

        def completedOrder(self, *args):
            got["completed"] = args

    decoder = Decoder(Recorder(), 176)
    from fake_tws import FakeOrder

    o = FakeOrder(client_id=3, order_id=42, perm_id=777, con_id=265598, account="DU1234567",
                  action="SELL", quantity=Decimal(5), order_type="STP LMT",
                  lmt_price=Decimal("180.5"), aux_price=Decimal(181), tif="GTC",
                  oca_group="g1", oca_type=1, order_ref="ref-42", transmit=True, parent_id=41,
                  outside_rth=True, exchange="SMART", placed_at=tws.now(), status="Submitted")
    fields = [str(f) if not isinstance(f, bool) else str(int(f))
              for f in tws._open_order_fields(o)]
    fields[-1] = "0.125"                                   # midOffsetAtHalf
    decoder.interpret(fields)
    _, contract, order, state = got["open"]
    assert (order.orderId, order.permId, order.clientId, order.parentId) == (42, 777, 3, 41)
    assert (order.orderRef, order.ocaGroup, order.ocaType, order.tif) == ("ref-42", "g1", 1, "GTC")
    assert (order.lmtPrice, order.auxPrice, order.outsideRth) == (180.5, 181.0, True)
    assert state.status == "Submitted" and contract.conId == 265598
    assert order.midOffsetAtHalf == 0.125
    o.status, o.filled, o.completed_at = "Filled", Decimal(5), tws.now()
    fields = [str(f) if not isinstance(f, bool) else str(int(f))
              for f in tws._completed_order_fields(o)]
    fields[-1] = "0.125"
    decoder.interpret(fields)
    contract, order, state = got["completed"]
    assert (order.permId, order.orderRef, order.filledQuantity) == (777, "ref-42", 5.0)
    assert state.status == "Filled" and state.completedStatus == "Filled"
    assert order.midOffsetAtHalf == 0.125


def test_asyncio_api_places_and_fills(tws):
    async def session() -> tuple:
        ib = IB()
        await ib.connectAsync("127.0.0.1", tws.port, clientId=21, timeout=3)
        try:
            (contract,) = await ib.qualifyContractsAsync(Stock("MSFT", "SMART", "USD"))
            trade = ib.placeOrder(contract, MarketOrder("SELL", 3, orderRef="async-1"))
            while not _settled(trade):
                await asyncio.sleep(0.01)
            fills = await ib.reqExecutionsAsync()
            return trade.orderStatus.avgFillPrice, [f.execution.orderRef for f in fills]
        finally:
            ib.disconnect()

    price, refs = asyncio.run(asyncio.wait_for(session(), 5))
    assert price == 399.99                                              # sold at the bid
    assert refs == ["async-1"]
    assert tws.positions() == {"MSFT": Decimal(-3)}


def test_a_fill_comes_after_the_quote_that_made_it(tws, ib, wait_until):
    tws.add_option("AAPL", "20260220", 180, "P")
    (opt,) = ib.qualifyContracts(Option("AAPL", "20260220", 180, "P", "SMART"))
    ticker = ib.reqMktData(opt)
    seen: list[float] = []
    ib.execDetailsEvent += lambda trade, fill: seen.append(ticker.bid)
    trade = ib.placeOrder(opt, LimitOrder("SELL", 1, 9.00))        # above the model's bid
    wait_until(ib, lambda: trade.orderStatus.status == "Submitted")
    tws.set_option_quote("AAPL", "20260220", 180, "P", "9.05", "9.15")
    wait_until(ib, lambda: _settled(trade))
    assert seen == [9.05]                                # the ticker had the new bid
    assert trade.fills[0].execution.price == 9.05


def test_a_gap_trades_only_at_the_open(tws, ib, wait_until):
    tws.partial_fill_next(0.5, rest="later")
    market = ib.placeOrder(AAPL, MarketOrder("BUY", 4))
    wait_until(ib, lambda: market.orderStatus.filled == 2)
    tws.step("AAPL", 200, 201, 199, 200.5)               # the rest, at the gapped open
    wait_until(ib, lambda: _settled(market))
    assert [f.execution.price for f in market.fills] == [190.01, 200.00]
    tws.set_quote("AAPL", "189.99", "190.01", "190.00")
    tws.partial_fill_next(0.5, rest="later")
    limit = ib.placeOrder(AAPL, LimitOrder("BUY", 4, 190.05))
    wait_until(ib, lambda: limit.orderStatus.filled == 2)
    tws.step("AAPL", 195, 196, 192, 193)                 # gaps above the limit: nothing
    ib.sleep(0.05)
    assert limit.orderStatus.filled == 2
    tws.step("AAPL", 193, 194, 189, 190)                 # trades down through it
    wait_until(ib, lambda: _settled(limit))
    assert [f.execution.price for f in limit.fills] == [190.01, 190.05]
