"""IbkrBroker against the loopback fake TWS with the real ib_async client.

Each test drives the adapter through the broker port the way the engine does (submit,
process, cancel, lookup, account, adopt) and checks what the fake TWS holds afterwards:
one IBKR order per engine order (``orderRef`` = client order id), brackets sent as one
group and held until the stop-loss transmits them, fills with IBKR's commissions, TWS's
own words on a rejection, nothing sent twice across a dropped connection, and the
session's loss blocking entries until ``maintain`` reconnects on the deployment's clock.

Uses from ``fake_tws.FakeTws`` (H1): ``set_quote``, ``drop_on_next_order``,
``drop_connections``, ``reject_next_order``, ``partial_fill_next``, ``refuse_client_id``,
``handshake``, ``orders``, ``order_by_ref``, ``executions``, ``positions``, ``cash``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from fake_tws import BrokerClock

from tradewarden.domain import Bar, Order, OrderRole, OrderStatus, OrderType, Side
from tradewarden.execution.base import Broker, OrderEventKind
from tradewarden.execution.ibkr import BROKER_DISCONNECTED, IbkrBroker
from tradewarden.execution.venue import VenueError, VenueUnavailable

K = OrderEventKind
BAR = Bar("AAPL", 0, 190.0, 191.0, 189.0, 190.0, 1000.0, 86_400)




@pytest.fixture
def bclock(clock: Any) -> BrokerClock:
    return BrokerClock(clock)


@pytest.fixture
def make_broker(tws: Any, bclock: BrokerClock):
    made: list[IbkrBroker] = []

    def make(client_id: int = 7, symbols: tuple[str, ...] = ("AAPL",), **kw: Any) -> IbkrBroker:
        kw.setdefault("timeout", 3)
        b = IbkrBroker.connect("127.0.0.1", tws.port, client_id, None, list(symbols), bclock, **kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.disconnect()


@pytest.fixture
def broker(make_broker) -> IbkrBroker:
    return make_broker()


def _order(cid: str, side: Side = Side.BUY, typ: OrderType = OrderType.MARKET, qty: str = "10",
           role: OrderRole = OrderRole.ENTRY, price: str | None = None, stop: str | None = None,
           parent: str | None = None, symbol: str = "AAPL") -> Order:
    return Order(cid, symbol, side, typ, Decimal(qty), role, 1_767_367_800,
                 price=None if price is None else Decimal(price),
                 stop_price=None if stop is None else Decimal(stop), parent_id=parent)


def _bracket(prefix: str, tp: str = "200.004", sl: str = "180.006",
             entry_type: OrderType = OrderType.MARKET, price: str | None = None):
    entry = _order(f"{prefix}-entry", typ=entry_type, price=price)
    take = _order(f"{prefix}-take_profit", Side.SELL, OrderType.LIMIT, role=OrderRole.TAKE_PROFIT,
                  price=tp, parent=entry.client_order_id)
    stop = _order(f"{prefix}-stop_loss", Side.SELL, OrderType.STOP, role=OrderRole.STOP_LOSS,
                  stop=sl, parent=entry.client_order_id)
    return entry, take, stop


def _until(broker: IbkrBroker, bar: Bar, pred, seen: list | None = None, rounds: int = 150) -> list:
    """process() until ``pred(events so far)``, ``seen`` included; returns them all."""
    seen = list(seen or [])
    for _ in range(rounds):
        if pred(seen):
            return seen
        seen += broker.process(bar)
        if pred(seen):
            return seen
        broker.ib.sleep(0.02)
    pytest.fail(f"condition not met; events {[(e.order.client_order_id, e.kind.value) for e in seen]}")


def test_connect_reads_contracts_and_the_account(broker: IbkrBroker, tws: Any) -> None:
    assert isinstance(broker, Broker)
    inst = broker.instruments["AAPL"]
    assert (inst.price_increment, inst.quantity_increment, inst.quote) == (Decimal("0.01"), 1, "USD")
    assert broker.contracts["AAPL"].conId == 265598
    assert broker.account_id == "DU1234567"
    caps = broker.capabilities
    assert caps.native_bracket and caps.native_oco and caps.stop_orders and caps.partial_fills
    assert broker.entry_blocks() == {}
    summary = broker.account_summary()
    assert summary.net_liquidation == Decimal(100000) and summary.cash == tws.cash()
    assert summary.currency == "USD" and summary.maint_margin_req == 0


def test_connect_says_what_is_wrong(tws: Any, make_tws, bclock: BrokerClock) -> None:
    with pytest.raises(VenueError, match="account DU999 is not one of this login's accounts"):
        IbkrBroker.connect("127.0.0.1", tws.port, 3, "DU999", ["AAPL"], bclock, timeout=3)
    with pytest.raises(VenueError, match="no USD stock 'NOPE'"):
        IbkrBroker.connect("127.0.0.1", tws.port, 4, None, ["NOPE"], bclock, timeout=3)
    tws.refuse_client_id(5)
    with pytest.raises(VenueUnavailable, match="client id 5 is already in use"):
        IbkrBroker.connect("127.0.0.1", tws.port, 5, None, ["AAPL"], bclock, timeout=0.5)
    silent = make_tws(handshake="silent")
    start = bclock.now()
    with pytest.raises(VenueUnavailable, match="Trusted IPs"):
        IbkrBroker.connect("127.0.0.1", silent.port, 1, None, ["AAPL"], bclock, timeout=0.5,
                           attempts=2)
    assert bclock.now() == start + 1           # the backoff waited on the clock
    port = silent.port
    silent.stop()
    with pytest.raises(VenueUnavailable, match=f"connection refused at 127.0.0.1:{port}"):
        IbkrBroker.connect("127.0.0.1", port, 1, None, ["AAPL"], bclock, timeout=1, attempts=1)


def test_market_entry_fills_with_ibkr_commission(broker: IbkrBroker, tws: Any) -> None:
    order = _order("tw-d-1-entry", qty="10.7")          # whole shares, rounded down
    events = broker.submit(order)
    events = _until(broker, BAR, lambda ev: any(e.kind is K.FILLED for e in ev), events)
    assert [e.kind for e in events] == [K.ACCEPTED, K.FILLED]
    fill = events[-1].fill
    ex = tws.executions()
    assert len(ex) == 1 and fill.quantity == ex[0].shares == 10
    assert fill.price == Decimal("190.01") and fill.fee == ex[0].commission == Decimal("1.00")
    assert fill.ts == int(ex[0].time) and fill.side is Side.BUY
    fake = tws.order_by_ref("tw-d-1-entry")
    assert (fake.order_type, fake.tif, fake.account) == ("MKT", "DAY", "DU1234567")
    assert broker.process(BAR) == []                    # each execution once
    with pytest.raises(ValueError, match="round down to 0"):
        broker.submit(_order("tw-d-2-entry", qty="0.5"))
    assert tws.order_by_ref("tw-d-2-entry") is None


def test_bracket_is_one_group_held_until_transmitted_and_tp_fill_cancels_sl(
        broker: IbkrBroker, tws: Any) -> None:
    entry, take, stop = _bracket("tw-d-3")
    events = broker.submit(entry, (take, stop))
    events = _until(broker, BAR, lambda ev: sum(e.kind is K.WORKING for e in ev) == 2, events)
    by = {(e.order.client_order_id, e.kind) for e in events}
    assert {(c.client_order_id, K.ACCEPTED) for c in (entry, take, stop)} <= by
    assert (entry.client_order_id, K.FILLED) in by
    parent, tp, sl = (tws.order_by_ref(c.client_order_id) for c in (entry, take, stop))
    assert (parent.transmit, tp.transmit, sl.transmit) == (False, False, True)
    assert tp.parent_id == sl.parent_id == parent.order_id
    assert tp.oca_group == sl.oca_group == "tw-d-3-entry-oca" and tp.oca_type == 1
    assert (tp.order_type, tp.lmt_price, tp.tif) == ("LMT", Decimal("200.00"), "GTC")   # TP down
    assert (sl.order_type, sl.aux_price, sl.tif) == ("STP", Decimal("180.01"), "GTC")   # stop up
    # the three placeOrder messages, in order; nothing was live before the stop-loss
    placed = [fields for _cid, fields in tws.received if fields and fields[0] == "3"]
    assert [int(f[1]) for f in placed] == [parent.order_id, tp.order_id, sl.order_id]
    tws.set_quote("AAPL", "200.50", "200.52", "200.51")
    done = _until(broker, BAR, lambda ev: any(e.kind is K.CANCELLED for e in ev))
    kinds = [(e.order.client_order_id, e.kind, e.reason) for e in done]
    assert (take.client_order_id, K.FILLED, "") in kinds
    assert (stop.client_order_id, K.CANCELLED, "oco: other leg filled") in kinds
    assert kinds.index((take.client_order_id, K.FILLED, "")) < kinds.index(
        (stop.client_order_id, K.CANCELLED, "oco: other leg filled"))
    assert tws.positions() == {}
    assert broker.worst_stop_fill(Decimal("180.006"), "AAPL") == Decimal("180.01")


def test_partial_fills_then_filled(broker: IbkrBroker, tws: Any) -> None:
    tws.partial_fill_next(0.5, "later")
    order = _order("tw-d-4-entry", typ=OrderType.LIMIT, price="190.05")
    events = broker.submit(order)
    events = _until(broker, BAR, lambda ev: any(e.kind is K.PARTIALLY_FILLED for e in ev), events)
    tws.set_quote("AAPL", "189.98", "190.00", "189.99")
    events = _until(broker, BAR, lambda ev: any(e.kind is K.FILLED for e in ev), events)
    parts = [e for e in events if e.fill is not None]
    assert [e.kind for e in parts] == [K.PARTIALLY_FILLED, K.FILLED]
    assert [e.fill.quantity for e in parts] == [5, 5]
    ex = tws.executions()
    assert [e.fill.fee for e in parts] == [x.commission for x in ex]
    assert sum(e.fill.fee for e in parts) == Decimal("1.00")       # minimum per order, split
    assert broker.lookup(order.client_order_id).status is OrderStatus.FILLED


def test_rejection_is_recorded_in_tws_words(broker: IbkrBroker, tws: Any) -> None:
    tws.reject_next_order("Insufficient margin")
    order = _order("tw-d-5-entry")
    events = broker.submit(order)
    events = _until(broker, BAR, lambda ev: any(e.kind is K.REJECTED for e in ev), events)
    rej = [e for e in events if e.kind is K.REJECTED]
    assert len(rej) == 1 and "201" in rej[0].reason and "Insufficient margin" in rej[0].reason
    v = broker.lookup(order.client_order_id)
    assert v.status is OrderStatus.REJECTED and "Insufficient margin" in v.reason


def test_disconnect_mid_submit_then_lookup_finds_it_and_nothing_is_sent_twice(
        broker: IbkrBroker, tws: Any, bclock: BrokerClock) -> None:
    tws.drop_on_next_order(after_accept=True)
    order = _order("tw-d-6-entry")
    assert broker.submit(order) == []                           # outcome unknown
    assert any("outcome unknown" in a for a in broker.alerts)
    blocks = broker.entry_blocks()
    assert blocks["AAPL"].startswith(f"{BROKER_DISCONNECTED}: disconnected from")
    fresh = broker.submit(_order("tw-d-7-entry"))               # a new order: not sent
    assert [(e.kind, e.reason.split(":")[0]) for e in fresh] == [(K.REJECTED, "not sent")]
    assert f"{BROKER_DISCONNECTED}: disconnected from" in fresh[0].reason
    with pytest.raises(VenueUnavailable):
        broker.submit(order)                    # its outcome is unknown: not while down
    assert broker.process(BAR) == []
    assert broker.maintain(bclock.now() + 59) is False         # 60 clock seconds not passed
    bclock.c.t += 60
    assert broker.maintain(bclock.now()) is True
    assert broker.maintain(bclock.now()) is False              # once
    assert broker.entry_blocks() == {}
    again = broker.submit(order)                # sent again blindly? no: found by orderRef first
    assert any("already at IBKR" in a for a in broker.alerts)
    assert [e.kind for e in again] == [K.ACCEPTED, K.FILLED] and again[-1].fill.quantity == 10
    v = broker.lookup(order.client_order_id)
    assert v is not None and v.status is OrderStatus.FILLED and v.filled == 10
    assert len(v.fills) == 1 and v.fills[0].fee == Decimal("1.00")
    with pytest.raises(ValueError, match="duplicate"):
        broker.submit(order)
    assert [o.order_ref for o in tws.orders()].count(order.client_order_id) == 1
    assert tws.positions() == {"AAPL": Decimal(10)}


def test_order_lost_before_tws_read_it_is_sent_again_once(
        broker: IbkrBroker, tws: Any, bclock: BrokerClock) -> None:
    tws.drop_on_next_order(after_accept=False)
    order = _order("tw-d-8-entry")
    assert broker.submit(order) == []
    bclock.c.t += 60
    assert broker.maintain(bclock.now()) is True
    assert broker.lookup(order.client_order_id) is None          # never received
    events = broker.submit(order)
    events = _until(broker, BAR, lambda ev: any(e.kind is K.FILLED for e in ev), events)
    assert [o.order_ref for o in tws.orders()].count(order.client_order_id) == 1
    assert tws.positions() == {"AAPL": Decimal(10)}


def test_a_bracket_cut_off_after_its_untransmitted_entry_is_sent_again_whole_once(
        broker: IbkrBroker, tws: Any, bclock: BrokerClock) -> None:
    tws.drop_on_next_order(after_accept=True)      # the entry (transmit=False) arrives, then the drop
    entry, take, stop = _bracket("tw-d-14")
    assert broker.submit(entry, (take, stop)) == []
    bclock.c.t += 60
    assert broker.maintain(bclock.now()) is True
    assert [broker.lookup(o.client_order_id) for o in (entry, take, stop)] == [None, None, None]
    held = tws.order_by_ref(entry.client_order_id)
    assert held.status == "Held" and held.filled == 0      # never transmitted: nothing live
    events = broker.submit(entry, (take, stop))            # the engine sends it again
    assert {(e.order.client_order_id, e.kind) for e in events} >= {
        (entry.client_order_id, K.FILLED), (take.client_order_id, K.WORKING),
        (stop.client_order_id, K.WORKING)}
    live = [o for o in tws.orders() if o.order_ref.startswith("tw-d-14") and o.status != "Held"]
    assert sorted(o.order_ref for o in live) == sorted(c.client_order_id for c in (entry, take, stop))
    assert tws.positions() == {"AAPL": Decimal(10)}


def test_lost_session_blocks_entries_and_reconnects_on_the_clock(
        make_broker, tws: Any, bclock: BrokerClock) -> None:
    broker = make_broker(timeout=0.5)
    t0 = bclock.now()
    tws.drop_connections()
    assert broker.maintain(t0) is False
    blocks = broker.entry_blocks()
    assert set(blocks) == {"AAPL"} and blocks["AAPL"].startswith(BROKER_DISCONNECTED)
    assert any("entries blocked" in a for a in broker.alerts)
    tws.handshake = "close"                                     # the gateway refuses for now
    bclock.c.t = t0 + 60
    assert broker.maintain(bclock.now()) is False
    assert any("reconnect failed" in a for a in broker.alerts)
    tws.handshake = "ok"
    bclock.c.t = t0 + 90                                        # 30 s after the last attempt
    assert broker.maintain(bclock.now()) is False
    bclock.c.t = t0 + 120
    assert broker.maintain(bclock.now()) is True
    assert broker.entry_blocks() == {}
    assert broker.maintain(bclock.now() + 600) is False


def test_account_positions_open_orders_and_cash(broker: IbkrBroker, tws: Any) -> None:
    _until(broker, BAR, lambda ev: any(e.kind is K.FILLED for e in ev),
           broker.submit(_order("tw-d-9-entry", qty="3")))
    resting = _order("tw-d-10-entry", typ=OrderType.LIMIT, price="150.00")
    events = broker.submit(resting)
    assert [e.kind for e in events] == [K.ACCEPTED, K.WORKING]
    view = broker.account(["AAPL"])
    assert view.positions == {"AAPL": Decimal(3)}
    assert view.open_orders == ("tw-d-10-entry",)
    assert view.balances == {"USD": tws.cash()}
    assert [e.kind for e in broker.cancel("tw-d-10-entry", 5, "test")] == [K.CANCELLED]
    assert broker.account(["AAPL"]).open_orders == ()
    assert [p.symbol for p in broker.positions()] == ["AAPL"]


def test_cancel_confirms_and_cancel_all_ends_a_bracket(broker: IbkrBroker, tws: Any) -> None:
    resting = _order("tw-d-11-entry", typ=OrderType.LIMIT, price="150.00")
    broker.submit(resting)
    out = broker.cancel(resting.client_order_id, 7, "signal gone")
    assert [(e.kind, e.reason, e.ts) for e in out] == [(K.CANCELLED, "signal gone", 7)]
    assert tws.order_by_ref(resting.client_order_id).status == "Cancelled"
    assert broker.cancel(resting.client_order_id, 8, "again") == []
    entry, take, stop = _bracket("tw-d-12", entry_type=OrderType.LIMIT, price="150.00")
    broker.submit(entry, (take, stop))
    out = broker.cancel_all("AAPL", 9, "flatten")
    assert {(e.order.client_order_id, e.kind) for e in out} == {
        (c.client_order_id, K.CANCELLED) for c in (entry, take, stop)}
    assert all(o.status == "Cancelled" for o in tws.orders() if o.order_ref.startswith("tw-d-12"))


def test_a_new_adapter_after_a_restart_reports_earlier_fills_only_once(
        make_broker, tws: Any) -> None:
    first = make_broker(client_id=9)
    tws.partial_fill_next(0.5, "later")
    order = _order("tw-d-13-entry", typ=OrderType.LIMIT, price="190.05")
    events = first.submit(order)
    events = _until(first, BAR, lambda ev: any(e.kind is K.PARTIALLY_FILLED for e in ev), events)
    booked = sum(e.fill.quantity for e in events if e.fill is not None)
    assert booked == 5
    first.disconnect()                                          # the process dies
    second = make_broker(client_id=9)
    v = second.lookup(order.client_order_id)
    assert v.status is OrderStatus.PARTIALLY_FILLED and v.filled == 5 and len(v.fills) == 1
    fresh = _order("tw-d-13-entry", typ=OrderType.LIMIT, price="190.05")
    fresh.status = OrderStatus.PARTIALLY_FILLED
    second.adopt({fresh.client_order_id: fresh}, {fresh.client_order_id: Decimal(5)})
    assert second.process(BAR) == []                            # the booked fill is not again
    tws.set_quote("AAPL", "189.98", "190.00", "189.99")         # the rest fills now
    out = _until(second, BAR, lambda ev: any(e.kind is K.FILLED for e in ev))
    assert [(e.kind, e.fill.quantity) for e in out if e.fill] == [(K.FILLED, 5)]
    assert len(tws.executions()) == 2 and second.process(BAR) == []


def test_another_thread_is_refused(broker: IbkrBroker) -> None:
    import threading

    caught: list[BaseException] = []

    def other() -> None:
        try:
            broker.process(BAR)
        except RuntimeError as exc:
            caught.append(exc)

    worker = threading.Thread(target=other)
    worker.start()
    worker.join()
    assert len(caught) == 1 and "same thread" in str(caught[0])
    assert broker.process(BAR) == []                    # the connecting thread still may


class _Scripted:
    """Enter at given session labels with a bracket ``frac`` either side of the close;
    leave by signal at others (the shape of ``tests/ops/_live_worker.Scripted``)."""

    @staticmethod
    def make(enter_ts: list[int], exit_ts: list[int], frac: float) -> Any:
        import numpy as np

        from tradewarden.strategy.base import SignalFrame, Strategy, StrategyParams

        class Scripted(Strategy):
            name = "scripted_brackets"
            Params = StrategyParams
            input_names = ("flag",)

            def __init__(self) -> None:
                super().__init__(StrategyParams())

            @property
            def warmup(self) -> int:
                return 1

            def prepare(self, bars: Any) -> SignalFrame:
                enter = np.isin(bars.ts, enter_ts)
                leave = np.isin(bars.ts, exit_ts)
                return SignalFrame(enter, leave, enter.astype(np.int8), ("idle", "scripted"),
                                   bars.close * (1 - frac), bars.close * (1 + frac),
                                   {"flag": enter.astype(float)}, entry_reason="scripted",
                                   exit_reason="scripted_exit")

        return Scripted()


def test_engine_live_on_spy_daily_bars_through_brackets_a_signal_exit_and_a_restart(
        make_tws, clock: Any, tmp_path) -> None:
    """The engine (order journal, native brackets) on the bundled SPY 2008 daily bars:
    a take-profit, a stop-loss, a signal exit (legs cancelled, market sell), and a
    restart with a bracket open (lookup, adopt); the ledger ends as the fake TWS does."""
    import sqlite3

    from tradewarden.data.equities import bundled_equity_path, load_yahoo_daily
    from tradewarden.domain import ExitReason
    from tradewarden.ledger import Ledger
    from tradewarden.ops.kernel import assemble

    full = load_yahoo_daily(bundled_equity_path("spy"), start="2008-10-01", end="2009-01-31").series
    bars = full.slice(21, 45)
    clock.t = float(full.ts[20] + 15 * 3600)
    wall = BrokerClock(clock)                      # jumps: a WallClock would loop second by second
    tws = make_tws(stocks=[("SPY", "ARCA", 756733)])
    tws.set_quote("SPY", f"{full.close[20]:.2f}", f"{full.close[20]:.2f}", f"{full.close[20]:.2f}")
    ts = [int(t) for t in bars.ts]
    legs_tight = _Scripted.make([ts[2], ts[10]], [], 0.03)       # TP at 7, SL at 12
    wide = _Scripted.make([ts[14]], [ts[20]], 0.3)               # held across the restart
    db = tmp_path / "ledger.db"

    def start(run_id: str, strategy: Any) -> tuple[IbkrBroker, Ledger, Any, int]:
        broker = IbkrBroker.connect("127.0.0.1", tws.port, 1, None, ["SPY"], wall, timeout=3)
        ledger = Ledger(f"sqlite:///{db}", background=True)
        dep = ledger.open_deployment("ib", mode="live", config="{}", config_hash="x")
        ledger.create_run({"run_id": run_id, "mode": "live", "capital_mode": "independent",
                           "market_time_basis": "test", "data_integrity": "ok",
                           "config_hash": "x", "config": "{}", "strategy": strategy.name,
                           "symbols": '["SPY"]', "timeframe": "1d",
                           "initial_capital": Decimal(10000)})
        state = ledger.latest_engine_state(dep["deployment_id"])
        engine = assemble("live", run_id=run_id, strategy=strategy,
                          instruments=broker.instruments, ledger=ledger, capital=Decimal(10000),
                          deployment_id=dep["deployment_id"], clock=wall, broker=broker).engine
        s0 = 0 if state is None or state.get("ts") is None else int((bars.ts <= state["ts"]).sum())
        engine.warm_up({"SPY": full.slice(19 + s0, 21 + s0)})
        return broker, ledger, engine, s0

    def run(broker: IbkrBroker, engine: Any, first: int, stop: int) -> None:
        for i in range(first, stop):
            b = bars.bar(i)
            wall.wait_until(b.ts + 15 * 3600)             # the session trades the bar
            tws.step("SPY", *(f"{getattr(b, k):.2f}" for k in ("open", "high", "low", "close")),
                     ts=b.ts + 15 * 3600)
            engine.on_bar(b)                              # at its close, midnight UTC
            while broker.alerts:
                engine.event(wall.now(), "alert", None, broker.alerts.pop(0))
            engine.flush()

    broker, ledger, engine, s0 = start("r1", legs_tight)
    run(broker, engine, s0, 14)
    engine.strategy = wide                     # the next entry holds until its signal exit
    run(broker, engine, 14, 17)
    ledger.drain()
    ledger.close()
    broker.disconnect()                        # the process ends with a bracket resting
    broker, ledger, engine, s0 = start("r2", wide)
    assert s0 == 17 and {o.role for o in broker.open_orders("SPY")} == {
        OrderRole.TAKE_PROFIT, OrderRole.STOP_LOSS}
    run(broker, engine, s0, len(bars))
    engine.close_all(ExitReason.END_OF_DATA)
    engine.flush()
    ledger.drain()
    ledger.close()
    con = sqlite3.connect(db)
    trades = con.execute("select exit_reason from trades order by entry_ts").fetchall()
    assert [r[0] for r in trades] == ["take_profit", "stop_loss", "signal"]
    fills = con.execute("select client_order_id, quantity, price, fee from fills").fetchall()
    ex = tws.executions()
    assert len(fills) == len(ex) == 6                        # each execution booked once
    assert sorted((f[0], Decimal(f[1]), Decimal(f[2]), Decimal(f[3])) for f in fills) == sorted(
        (e.order.order_ref, e.shares, e.price, e.commission) for e in ex)
    assert con.execute("select count(*) from reconciliations").fetchone()[0] == 0
    assert tws.positions() == {} and all(not o.is_open for o in tws.orders())


def test_while_down_the_legs_stay_at_ibkr_and_keep_protecting(
        make_broker, tws: Any, bclock: BrokerClock) -> None:
    broker = make_broker(timeout=0.5)
    entry, take, stop = _bracket("tw-d-20", tp="230.00", sl="185.00")
    events = broker.submit(entry, (take, stop))
    _until(broker, BAR, lambda ev: sum(e.kind is K.WORKING for e in ev) == 2, events)
    assert broker.exit_blocks() == {}
    tws.drop_connections()
    assert broker.maintain(bclock.now()) is False
    assert set(broker.exit_blocks()) == {"AAPL"}
    assert broker.exit_blocks()["AAPL"].startswith(f"{BROKER_DISCONNECTED}: disconnected from")
    # the engine's exit: cancel the legs, then sell; neither reaches IBKR while away
    assert broker.cancel_all("AAPL", bclock.now(), "signal exit") == []
    assert any("not cancelled (signal exit); they stay at IBKR" in a for a in broker.alerts)
    exit_ = _order("tw-d-21-exit", Side.SELL, role=OrderRole.EXIT)
    assert [e.kind for e in broker.submit(exit_)] == [K.REJECTED]
    assert tws.order_by_ref("tw-d-21-exit") is None
    legs = [tws.order_by_ref(c.client_order_id) for c in (take, stop)]
    assert [o.status for o in legs] == ["Submitted", "Submitted"]
    tws.set_quote("AAPL", "184.00", "184.02", "184.00")          # the stop fires at IBKR
    assert tws.order_by_ref(stop.client_order_id).status == "Filled"
    assert tws.order_by_ref(take.client_order_id).status == "Cancelled"
    assert tws.positions() == {}
    bclock.c.t += 60
    assert broker.maintain(bclock.now()) is True
    assert broker.exit_blocks() == {}
    back = _until(broker, BAR, lambda ev: any(e.kind is K.CANCELLED for e in ev))
    kinds = {(e.order.client_order_id, e.kind) for e in back}
    assert (stop.client_order_id, K.FILLED) in kinds and (take.client_order_id, K.CANCELLED) in kinds
