"""The ccxt adapter (``CcxtBroker``) against the Kraken fake, through the real ccxt client.

Every client is made by ``create_venue_client("kraken", api_url=fake.base_url, ...)`` and
verifies the fake's TLS certificate; the adapter's clock and the fake's time are one
simulated time (a wait moves it at once). Orders are the engine's ``Order`` objects;
the last tests run the engine itself (``assemble("live", broker=CcxtBroker(...))``) on
real bundled BTC-USD hours while the fake's price walks the same hours.
"""

from __future__ import annotations

import sqlite3
import uuid
from decimal import Decimal as D

import numpy as np
import pytest
from conftest import KEY, SECRET

from tradewarden.data import load_market_data
from tradewarden.data.markets import instrument_from_market
from tradewarden.domain import (
    Bar,
    BarSeries,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    Side,
)
from tradewarden.engine.clock import WallClock
from tradewarden.execution.base import Broker, OrderEventKind
from tradewarden.execution.ccxt_broker import CLIENT_ID_NAMESPACE, CcxtBroker
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import assemble
from tradewarden.strategy.base import SignalFrame, Strategy, StrategyParams

K = OrderEventKind
SYM = "BTC-USD"


def venue_id(cid: str) -> str:
    return str(uuid.uuid5(CLIENT_ID_NAMESPACE, cid))


@pytest.fixture
def make_broker(client, sim):
    """``make_broker(fake=None, **kwargs)`` -> a CcxtBroker on a fresh real ccxt client."""

    def make(fake=None, **kwargs):
        ex = client(fake)
        ex.load_markets()
        inst = instrument_from_market(ex.markets["BTC/USD"], venue="kraken", read_on="2026-05-01",
                                      precision_mode=ex.precisionMode)
        kwargs.setdefault("venue", "kraken")
        return CcxtBroker(ex, {SYM: inst}, clock=WallClock(sim.time, sim.sleep), **kwargs)

    return make


def orders(n: int, qty: str = "0.05", tp: str = "61000", sl: str = "59000", t: int = 0):
    """An entry and its take-profit and stop-loss, as the engine builds them."""
    e = Order(f"tw-desk-{n}-entry", SYM, Side.BUY, OrderType.MARKET, D(qty), OrderRole.ENTRY, t)
    tp_ = Order(f"tw-desk-{n}-take_profit", SYM, Side.SELL, OrderType.LIMIT, D(qty),
                OrderRole.TAKE_PROFIT, t, price=D(tp), parent_id=e.client_order_id)
    sl_ = Order(f"tw-desk-{n}-stop_loss", SYM, Side.SELL, OrderType.STOP, D(qty),
                OrderRole.STOP_LOSS, t, stop_price=D(sl), parent_id=e.client_order_id)
    return e, tp_, sl_


def apply(events):
    """Set the orders' statuses from the events, as the engine does."""
    for e in events:
        e.order.status = e.status
    return [(e.order.role.value, e.kind) for e in events]


def bar(fake, sim, o, h, lo, c, t=None):
    """Walk the fake's price through one hour and return that hour as a closed Bar."""
    t = int(sim.t) if t is None else t
    fake.step(SYM, o, h, lo, c)
    sim.t = t + 3600
    return Bar(SYM, t, o, h, lo, c, 1.0, t + 3600)


def test_entry_then_emulated_legs_take_profit_sold_when_a_bar_closes_above_it(kraken, make_broker, sim):
    b = make_broker()
    assert isinstance(b, Broker)
    assert (b.capabilities.native_bracket, b.capabilities.native_oco) == (False, False)
    e, tp, sl = orders(1)
    ev = b.submit(e)
    assert apply(ev) == [("entry", K.ACCEPTED), ("entry", K.FILLED)]
    f = ev[-1].fill
    # filled at Kraken's price, fee from the trade (taker 0.40 % of 3000 USD)
    assert (f.quantity, f.price, f.fee, f.liquidity) == (D("0.05"), D(60000), D(12), "taker")
    venue_order = next(o for o in kraken.orders.values() if o.cl_ord_id == venue_id(e.client_order_id))
    assert venue_order.oflags == "fciq"
    # the engine arms the legs once the entry filled: the stop rests at Kraken, the TP is held
    assert apply(b.submit(tp)) == [("take_profit", K.WORKING)]
    assert kraken.submit_count(venue_id(tp.client_order_id)) == 0
    assert apply(b.submit(sl)) == [("stop_loss", K.ACCEPTED), ("stop_loss", K.WORKING)]
    stop = next(o for o in kraken.orders.values() if o.cl_ord_id == venue_id(sl.client_order_id))
    assert (stop.ordertype, stop.price, stop.status) == ("stop-loss", D(59000), "open")
    assert kraken.held("BTC") == D("0.05")
    # a bar that touches the TP but closes below it: nothing happens
    assert b.process(bar(kraken, sim, 60000, 61500, 59500, 60800)) == []
    # a bar that closes above it: the stop is cancelled, the TP sold at market
    ev = b.process(bar(kraken, sim, 60800, 61400, 60700, 61200))
    assert apply(ev) == [("take_profit", K.FILLED)]
    assert (ev[0].fill.price, ev[0].fill.reference_price) == (D(61200), D(61000))
    assert stop.status == "canceled"
    # the engine's OCO then cancels the stop: already done at Kraken, no request
    n = len(kraken.requests)
    assert apply(b.cancel(sl.client_order_id, int(sim.t), "oco: other leg filled")) == [
        ("stop_loss", K.CANCELLED)]
    assert len(kraken.requests) == n
    assert kraken.balance("BTC") == 0
    assert kraken.balance("USD") == D(10000) - D(3000) - D(12) + D(3060) - D("12.24")
    assert b.process(bar(kraken, sim, 61200, 61300, 61100, 61250)) == []


def test_the_stop_fills_at_kraken_and_the_held_take_profit_is_dropped(kraken, make_broker, sim):
    b = make_broker()
    e, tp, sl = orders(2)
    for o in (e, tp, sl):
        apply(b.submit(o))
    ev = b.process(bar(kraken, sim, 59800, 59900, 58500, 58800))
    assert apply(ev) == [("stop_loss", K.TRIGGERED), ("stop_loss", K.FILLED)]
    assert (ev[-1].fill.price, ev[-1].fill.fee) == (D(59000), D("11.8"))
    n = len(kraken.requests)
    assert apply(b.cancel(tp.client_order_id, int(sim.t), "oco: other leg filled")) == [
        ("take_profit", K.CANCELLED)]
    assert len(kraken.requests) == n                  # the TP was never at Kraken
    assert b.process(bar(kraken, sim, 58800, 62000, 58700, 61900)) == []
    assert kraken.balance("BTC") == 0


def test_a_rejection_carries_krakens_words(make_kraken, make_broker):
    b = make_broker(make_kraken(balances={"USD": 100}))
    e, _, _ = orders(3)
    ev = b.submit(e)
    assert apply(ev) == [("entry", K.REJECTED)]
    assert ev[0].reason == "kraken: EOrder:Insufficient funds"
    small = Order("tw-desk-4-entry", SYM, Side.BUY, OrderType.MARKET, D("0.00001"), OrderRole.ENTRY, 0)
    assert b.submit(small)[0].reason == "kraken: EOrder:Order minimum not met"
    with pytest.raises(ValueError, match="duplicate client order id"):
        b.submit(e)


def test_a_lost_answer_is_found_by_client_order_id_and_the_order_sent_once(kraken, make_broker):
    b = make_broker()
    e, _, sl = orders(5)
    kraken.fail_next("AddOrder", "lose_response")
    ev = b.submit(e)
    assert apply(ev) == [("entry", K.ACCEPTED), ("entry", K.FILLED)]
    assert kraken.submit_count(venue_id(e.client_order_id)) == 1
    assert any("looked up by client order id" in a for a in b.alerts)
    kraken.fail_next("AddOrder", "slow", delay=0.6)    # answered after the client's timeout
    b.exchange.timeout = 300
    ev = b.submit(sl)
    b.exchange.timeout = 5000
    assert apply(ev) == [("stop_loss", K.ACCEPTED), ("stop_loss", K.WORKING)]
    assert kraken.submit_count(venue_id(sl.client_order_id)) == 1


def test_no_answer_and_nothing_at_kraken(kraken, make_broker, sim):
    b = make_broker()
    e, _, sl = orders(6)
    kraken.fail_next("AddOrder", "5xx")               # not processed
    assert b.submit(e) == []                           # unknown: settled at the next process()
    assert e.status is OrderStatus.SUBMITTED
    ev = b.process(bar(kraken, sim, 60000, 60100, 59900, 60050))
    assert apply(ev) == [("entry", K.REJECTED)]
    assert "never received by kraken" in ev[0].reason and "not sent late" in ev[0].reason
    assert kraken.submit_count(venue_id(e.client_order_id)) == 0
    # a protective leg: looked up twice, resend_grace apart, then sent again
    apply(b.submit(orders(7)[0]))
    t0 = sim.t
    kraken.fail_next("AddOrder", "5xx")
    ev = b.submit(sl)
    assert apply(ev) == [("stop_loss", K.ACCEPTED), ("stop_loss", K.WORKING)]
    assert sim.t - t0 >= 2
    assert kraken.submit_count(venue_id(sl.client_order_id)) == 1


def test_rate_limits_are_waited_out_on_the_clock(kraken, make_broker, sim):
    b = make_broker()
    e, _, _ = orders(8)
    kraken.fail_next("AddOrder", "429", retry_after=7)
    kraken.fail_next("AddOrder", "rate_limit")          # Kraken's own: no Retry-After
    t0 = sim.t
    assert apply(b.submit(e)) == [("entry", K.ACCEPTED), ("entry", K.FILLED)]
    assert sim.t - t0 == 7 + 2                          # Retry-After, then the backoff (2 s)
    assert kraken.submit_count(venue_id(e.client_order_id)) == 1


def test_after_a_restart_lookup_account_and_adopt_pick_up_where_it_left(kraken, make_broker, sim):
    b1 = make_broker()
    e, tp, sl = orders(9)
    for o in (e, tp, sl):
        apply(b1.submit(o))
    kraken.step(SYM, 60000, 60200, 59800, 60100)
    # the process dies; the engine restores its orders (new objects) and a new adapter adopts them
    restored = {o.client_order_id: Order(**{f: getattr(o, f) for f in o.__dataclass_fields__})
                for o in (tp, sl)}
    b2 = make_broker()
    b2.adopt(restored)
    v = b2.lookup(e.client_order_id)
    assert (v.status, v.filled, [f.price for f in v.fills]) == (OrderStatus.FILLED, D("0.05"), [D(60000)])
    assert b2.lookup(sl.client_order_id)[:3] == (sl.client_order_id, OrderStatus.WORKING, D(0))
    assert b2.lookup(tp.client_order_id)[:2] == (tp.client_order_id, OrderStatus.WORKING)
    assert b2.lookup("tw-desk-99-entry") is None
    acct = b2.account([SYM])
    assert acct.positions == {SYM: D("0.05")}
    assert set(acct.open_orders) == {sl.client_order_id, tp.client_order_id}
    assert acct.balances["USD"] == D(10000) - D(3000) - D(12)
    # the held take-profit still works after the restart, on the adopted objects
    ev = b2.process(bar(kraken, sim, 60100, 61300, 60000, 61100))
    assert [(x.order is restored[tp.client_order_id], x.kind) for x in ev] == [(True, K.FILLED)]
    assert b2.cancel(sl.client_order_id, int(sim.t), "oco")[0].order is restored[sl.client_order_id]
    # an order made outside tradewarden is reported by its venue id
    b2.exchange.create_order("BTC/USD", "limit", "buy", 0.001, 50000)
    assert [x for x in b2.account([SYM]).open_orders if x.startswith("kraken:O")]


def test_adopt_counts_what_the_engine_booked_and_reports_only_the_rest(kraken, make_broker, sim):
    b1 = make_broker()
    e, _, _ = orders(12)
    apply(b1.submit(e))                                # one trade of 0.05 at Kraken
    b2 = make_broker()                                 # restarted; the engine booked 0.02 of it
    restored = Order(e.client_order_id, SYM, Side.BUY, OrderType.MARKET, D("0.05"),
                     OrderRole.ENTRY, 0, status=OrderStatus.PARTIALLY_FILLED)
    b2.adopt({e.client_order_id: restored}, {e.client_order_id: D("0.02")})
    ev = b2.process(bar(kraken, sim, 60000, 60100, 59900, 60050))
    assert [(x.kind, x.fill.quantity, x.fill.fee) for x in ev] == [(K.FILLED, D("0.03"), D("7.2"))]
    assert b2.process(bar(kraken, sim, 60050, 60100, 59900, 60000)) == []
    b2.adopt({}, {})                                   # the engine holds nothing open any more
    assert b2.open_orders(SYM) == []


def test_a_resting_take_profit_would_starve_the_stop_at_kraken(kraken, make_broker):
    b = make_broker(rest_take_profit=True)
    e, tp, sl = orders(13)
    apply(b.submit(e))
    assert apply(b.submit(tp)) == [("take_profit", K.ACCEPTED), ("take_profit", K.WORKING)]
    ev = b.submit(sl)
    assert apply(ev) == [("stop_loss", K.REJECTED)]
    assert ev[0].reason == "kraken: EOrder:Insufficient funds"      # the base is held by the TP


def test_a_stop_cancelled_outside_tradewarden_is_reported_as_unprotected(kraken, make_broker):
    b1 = make_broker()
    e, tp, sl = orders(14)
    for o in (e, tp, sl):
        apply(b1.submit(o))
    b1.exchange.cancel_order(None, "BTC/USD", {"clientOrderId": venue_id(sl.client_order_id)})
    b2 = make_broker()
    v = b2.lookup(sl.client_order_id)
    assert v.status is OrderStatus.CANCELLED and "no stop-loss at kraken" in v.reason
    assert any("no stop-loss" in a for a in b2.alerts)


def test_a_stop_cancelled_for_the_take_profits_sale_before_a_restart_is_the_ocos_cancel(
        kraken, make_broker, sim):
    b1 = make_broker()
    e, tp, sl = orders(15)
    for o in (e, tp, sl):
        apply(b1.submit(o))
    ev = b1.process(bar(kraken, sim, 60000, 61400, 59900, 61200))   # closes above the TP
    assert [x.kind for x in ev] == [K.FILLED] and kraken.balance("BTC") == 0
    # the process dies before it records the sale; the next one looks the stop up
    b2 = make_broker()
    v = b2.lookup(sl.client_order_id)
    assert v.status is OrderStatus.CANCELLED and v.filled == 0
    assert v.reason.startswith("oco: cancelled at kraken for the take-profit's sale "
                               f"({tp.client_order_id})"), v.reason
    assert "no stop-loss" not in v.reason and b2.alerts == []


def test_a_failed_poll_is_retried_at_the_next_bar(kraken, make_broker, sim):
    b = make_broker()
    e, tp, sl = orders(15)
    for o in (e, tp, sl):
        apply(b.submit(o))
    kraken.fail_next("QueryOrders", "5xx", times=5)   # more than the retries
    first = bar(kraken, sim, 59800, 59900, 58500, 58800)
    assert b.process(first) == []
    assert any("poll failed" in a for a in b.alerts)
    ev = b.process(bar(kraken, sim, 58800, 58900, 58700, 58750))
    assert apply(ev) == [("stop_loss", K.TRIGGERED), ("stop_loss", K.FILLED)]


def test_fees_come_from_the_accounts_tier_and_preflight_reads_the_key(make_kraken, make_broker):
    fake = make_kraken(fees={SYM: (D("0.20"), D("0.35"))})
    b = make_broker(fake)
    assert b.fee_rates(SYM) == (D("0.002"), D("0.0035"))
    assert "TradeVolume" in b.fee_source(SYM)
    ev = b.submit(orders(10)[0])
    assert ev[-1].fill.fee == D("10.5")                 # 0.35 % of 3000
    p = b.preflight()
    assert (p.can_trade, p.can_withdraw, p.problems()) == (True, False, [])
    assert p.account == "kraken API key 'tradewarden-test'"
    assert any("maker 20 bps, taker 35 bps" in n for n in p.notes)
    assert any("validate-only" in n and "accepted" in n for n in p.notes)
    assert fake.submits[-1]["validate"] == "True" and fake.submit_count(None) == 0
    risky = make_broker(make_kraken(permissions=["query-funds", "query-open-trades",
                                                 "withdraw-funds", "modify-trades"])).preflight()
    assert risky.can_withdraw and "withdraw" in risky.problems()[0]
    viewer = make_broker(make_kraken(permissions=["query-funds", "query-open-trades"])).preflight()
    assert not viewer.can_trade and "no trade permission" in viewer.problems()[0]
    assert any("EGeneral:Permission denied" in n for n in viewer.notes)


def test_the_generic_dialect_uses_only_cctxs_unified_api(kraken, make_broker, sim):
    b = make_broker(dialect="generic")
    assert "generic ccxt adapter" in b.notes[0]
    e, tp, sl = orders(11)
    for o in (e, tp, sl):
        apply(b.submit(o))
    assert e.status is OrderStatus.FILLED and sl.status is OrderStatus.WORKING
    short = uuid.uuid5(CLIENT_ID_NAMESPACE, sl.client_order_id).hex
    assert kraken.submit_count(short) == 1
    assert b.lookup(sl.client_order_id).status is OrderStatus.WORKING
    ev = b.process(bar(kraken, sim, 60000, 60100, 58000, 58500))
    assert apply(ev)[-1] == ("stop_loss", K.FILLED)


def test_connect_refuses_what_cannot_work_in_one_line(kraken, sim):
    clock = WallClock(sim.time, sim.sleep)
    with pytest.raises(ValueError, match="TRADEWARDEN_VENUE__API_KEY"):
        CcxtBroker.connect("kraken", api_key="", api_secret=SECRET, symbols=[SYM], clock=clock)
    with pytest.raises(ValueError, match="not base64") as err:
        CcxtBroker.connect("kraken", api_key=KEY, api_secret="not base64!", symbols=[SYM],
                           clock=clock, api_url=kraken.base_url)
    assert "not base64!" not in str(err.value)
    with pytest.raises(ValueError, match="no spot market SOL/USD"):
        CcxtBroker.connect("kraken", api_key=KEY, api_secret=SECRET, symbols=["SOL-USD"],
                           clock=clock, api_url=kraken.base_url, config={"rateLimit": 1})


# ------------------------------------------------------------- the engine, live, on real hours
class Scripted(Strategy):
    """Enter at given hours with a stop and a take-profit a fixed fraction away."""

    name = "scripted"
    Params = type("P", (StrategyParams,), {})
    input_names = ("flag",)

    def __init__(self, enter_ts, stop_frac, tp_frac):
        super().__init__(self.Params())
        self.enter_ts, self.stop_frac, self.tp_frac = set(enter_ts), stop_frac, tp_frac

    @property
    def warmup(self) -> int:
        return 1

    def prepare(self, bars: BarSeries) -> SignalFrame:
        enter = np.isin(bars.ts, list(self.enter_ts))
        return SignalFrame(enter, np.zeros(len(bars), bool), enter.astype(np.int8),
                           ("idle", "scripted_entry"), bars.close * (1 - self.stop_frac),
                           bars.close * (1 + self.tp_frac), {"flag": enter.astype(float)},
                           entry_reason="scripted_entry", exit_reason="scripted_exit")


def first_outcome(s: BarSeries, which: str, stop_frac: float, tp_frac: float, start: int = 30):
    """The first entry hour (index) whose bracket ends by ``which`` within 8 hours, and that hour."""
    for i in range(start, len(s) - 9):
        tp, sl = s.close[i] * (1 + tp_frac), s.close[i] * (1 - stop_frac)
        for j in range(i + 1, i + 9):
            if s.low[j] <= sl or s.close[j] >= tp:
                if ("sl" if s.low[j] <= sl else "tp") == which:
                    return i, j
                break
    raise AssertionError(f"no {which} outcome in the bundled data")


class Live:
    """A live deployment on the fake: the engine through the kernel, one bar at a time."""

    def __init__(self, tmp_path, sim, fake, strategy):
        self.sim, self.fake, self.strategy = sim, fake, strategy
        self.ledger = Ledger(tmp_path / "ledger.db")
        self.dep_id = self.ledger.open_deployment("kr", mode="live", config="{}",
                                                  config_hash="h")["deployment_id"]
        self.runs = 0
        self.start()

    def start(self):
        self.runs += 1
        run_id = f"live{self.runs}"
        self.ledger.create_run({"run_id": run_id, "mode": "live", "capital_mode": "independent",
                                "market_time_basis": "test", "data_integrity": "ok",
                                "config_hash": "h", "config": "{}", "strategy": "scripted",
                                "symbols": "[]", "timeframe": "1h", "initial_capital": D(10000)})
        clock = WallClock(self.sim.time, self.sim.sleep)
        # what `warden live` does with [venue] name / api_url and the key from the environment
        self.broker = CcxtBroker.connect("kraken", api_key=KEY, api_secret=SECRET, symbols=[SYM],
                                         clock=clock, api_url=self.fake.base_url,
                                         config={"rateLimit": 1, "timeout": 5000})
        inst = self.broker.instruments[SYM]
        assert (inst.price_increment, inst.min_quantity) == (D("0.1"), D("0.00005"))
        self.engine = assemble("live", run_id=run_id, strategy=self.strategy, instruments={SYM: inst},
                               ledger=self.ledger, capital=D(10000), clock=clock, broker=self.broker,
                               deployment_id=self.dep_id).engine

    def hour(self, s: BarSeries, i: int):
        b = s.bar(i)
        self.sim.t = max(self.sim.t, b.ts + 1800)
        self.fake.step(SYM, b.open, b.high, b.low, b.close)
        d = self.engine.on_bar(b)
        self.engine.flush()
        return d

    def differences(self):
        return self.ledger.reconciliations(deployment_id=self.dep_id, status="open")


@pytest.fixture(scope="module")
def btc() -> BarSeries:
    return load_market_data([SYM]).series[SYM]


@pytest.mark.parametrize("which", ["tp", "sl"])
def test_the_engine_trades_live_on_real_hours_and_survives_a_restart(tmp_path, sim, make_kraken,
                                                                     btc, which):
    e, end = first_outcome(btc, which, 0.02, 0.01)
    sim.t = float(btc.ts[e - 2])
    fake = make_kraken()
    fake.set_price(SYM, btc.open[e - 2])
    live = Live(tmp_path, sim, fake, Scripted({int(btc.ts[e])}, 0.02, 0.01))
    for i in range(e - 2, e + 1):
        d = live.hour(btc, i)
    assert d.action == "enter_long"
    s = live.engine.by_name[SYM]
    qty = s.holding.quantity
    assert qty > 0 and fake.balance("BTC") == qty
    held = [o for o in live.engine._open.values() if o.role is OrderRole.TAKE_PROFIT]
    assert held and held[0].status is OrderStatus.WORKING
    assert [o.ordertype for o in fake.orders.values() if o.status == "open"] == ["stop-loss"]
    # the process stops here and starts again: restored, looked up, reconciled, no difference
    live.start()
    assert material(live.differences()) == []
    assert live.engine.by_name[SYM].holding.quantity == qty
    for i in range(e + 1, end + 1):
        live.hour(btc, i)
    s = live.engine.by_name[SYM]
    assert s.holding.is_flat and fake.balance("BTC") == 0
    assert [o.status for o in fake.orders.values()].count("open") == 0
    exits = [o for o in fake.orders.values() if o.side == "sell" and o.status == "closed"]
    assert len(exits) == 1 and exits[0].ordertype == ("market" if which == "tp" else "stop-loss")
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = db.execute("select exit_reason, quantity from trades").fetchall()
    assert rows == [("take_profit" if which == "tp" else "stop_loss", str(qty))]
    # the ledger's cash is the venue's quote balance exactly (Kraken reports it to 4 decimals)
    assert live.engine.accounts[0].cash == fake.balance("USD")
    assert material(live.engine.reconcile(int(sim.t))) == []


def material(diffs):
    """Differences beyond Kraken's rounding of the USD balance to 4 decimals (``BalanceEx``
    shows ZUSD to 4 places; the ledger's cash is exact price x quantity)."""
    return [d for d in diffs if not (d["kind"] == "balance" and abs(
        D(d["ours"].split()[0]) - D(d["venue"].split()[0])) < D("0.0001"))]


def test_a_held_take_profit_whose_stop_filled_before_a_restart_is_the_ocos_cancel(
        kraken, make_broker, sim):
    b1 = make_broker()
    e, tp, sl = orders(16)
    for o in (e, tp, sl):
        apply(b1.submit(o))
    # the process dies; the price falls through the stop, which fills at Kraken
    kraken.step(SYM, 59800, 59900, 58500, 58800)
    b2 = make_broker()
    v = b2.lookup(tp.client_order_id)
    assert (v.status, v.filled) == (OrderStatus.CANCELLED, 0)
    assert v.reason.startswith(f"oco: its stop-loss {sl.client_order_id} filled at kraken"), v.reason
    assert b2.lookup(sl.client_order_id).status is OrderStatus.FILLED
    # while the stop rests, the take-profit is held (working), as before
    e, tp, sl = orders(17, tp="60000", sl="58000")         # the price is 58800 now
    for o in (e, tp, sl):
        apply(b1.submit(o))
    assert make_broker().lookup(tp.client_order_id)[:3] == (tp.client_order_id, OrderStatus.WORKING, 0)
