"""The fault-injection suite's venue (``file_venue.FileVenue``): the broker port, the
simulator's fill rules, and a state that outlives the object (and the process).

Bars are the bundled Coinbase BTC-USD 1 h candles; the figures worked out by hand use
bar 1 (2024-04-18T18:00Z: open 62835.28, high 63259.15, low 62358.0, close 63149.42),
slippage 2 bps, taker 10 bps, maker 5 bps.
"""

from __future__ import annotations

import json
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from file_venue import FileVenue
from hypothesis import given, settings
from hypothesis import strategies as st

from tradewarden.data import load_market_data
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
    TRANSITIONS,
    Broker,
    BrokerCapabilities,
    OrderEventKind,
    SimBroker,
)

K = OrderEventKind
SYM = "BTC-USD"
BTC = COINBASE_SPECS[SYM]
INSTRUMENTS = {SYM: BTC}
TS = 1713459600
SERIES = load_market_data([SYM]).series[SYM]
BAR = SERIES.bar(1)          # opens at 62835.28 (high 63259.15, low 62358.0, close 63149.42)
NEXT = SERIES.bar(2)


def venue(path: Path, **kw) -> FileVenue:
    return FileVenue(path, INSTRUMENTS, taker_bps=10.0, maker_bps=5.0, slippage_bps=2.0, **kw)


def order(oid: str, side: Side = Side.BUY, type_: OrderType = OrderType.MARKET, qty: str = "0.01",
          role: OrderRole = OrderRole.ENTRY, price: str | None = None, stop: str | None = None,
          parent: str | None = None, ts: int = TS) -> Order:
    return Order(oid, SYM, side, type_, Decimal(qty), role, ts,
                 price=Decimal(price) if price else None, stop_price=Decimal(stop) if stop else None,
                 parent_id=parent)


def legs(eid: str, tp: str = "64000.00", sl: str = "62000.00") -> tuple[Order, Order]:
    return (order(f"{eid}-tp", Side.SELL, OrderType.LIMIT, role=OrderRole.TAKE_PROFIT, price=tp,
                  parent=eid),
            order(f"{eid}-sl", Side.SELL, OrderType.STOP, role=OrderRole.STOP_LOSS, stop=sl,
                  parent=eid))


def view(events) -> list[tuple[str, str, int, str]]:
    return [(e.order.client_order_id, e.kind.value, e.ts, e.reason) for e in events]


# -- the port --------------------------------------------------------------------------------
def test_it_is_a_broker_with_the_capabilities_asked(tmp_path) -> None:
    native, emulated = venue(tmp_path / "a.json"), venue(tmp_path / "b.json", native_brackets=False)
    assert isinstance(native, Broker) and isinstance(emulated, Broker)
    assert native.capabilities == BrokerCapabilities(True, True, True, True, False)
    assert emulated.capabilities == BrokerCapabilities(False, False, True, True, False)
    with pytest.raises(ValueError, match="does not take bracket legs"):
        emulated.submit(order("e"), legs("e"))


def test_a_bracket_fills_at_the_open_with_slippage_and_the_take_profit_cancels_the_stop(tmp_path) -> None:
    v = venue(tmp_path / "v.json", cash=Decimal(10000))
    entry, (tp, sl) = order("e"), legs("e", tp="63200.00")
    assert view(v.submit(entry, (tp, sl))) == [("e", "accepted", TS, ""), ("e-tp", "accepted", TS, ""),
                                               ("e-sl", "accepted", TS, "")]
    assert [o.client_order_id for o in v.open_orders(SYM)] == ["e"]      # legs not live yet
    events = v.process(BAR)
    assert view(events) == [("e", "filled", BAR.ts, ""), ("e-tp", "working", BAR.ts, "bracket leg live"),
                            ("e-sl", "working", BAR.ts, "bracket leg live"), ("e-tp", "filled", BAR.ts, ""),
                            ("e-sl", "cancelled", BAR.ts, "oco: other leg filled")]
    assert events[0].order is entry and events[3].order is tp           # the engine's own objects
    # entry: 62835.28 * 1.0002 = 62847.84706 -> ceil to the cent 62847.85; fee 0.6284785 * 0.001
    # take-profit: its level 63200.00, maker: fee 632.0 * 0.0005 = 0.316
    fills = v.fills()
    assert [(f.price, f.fee, f.liquidity) for f in fills] == [
        (Decimal("62847.85"), Decimal("0.62847850"), "taker"), (Decimal("63200.00"), Decimal("0.31600000"), "maker")]
    assert fills[0].reference_price == Decimal("62835.28")
    # 10000 - 628.4785 - 0.6284785 + 632.00 - 0.316 = 10002.5770215
    assert v.balance("USD") == Decimal("10002.5770215") and v.position(SYM) == 0
    assert entry.status is OrderStatus.SUBMITTED      # the venue never writes the engine's status
    assert v.status("e-sl") is OrderStatus.CANCELLED and v.account([SYM]).open_orders == ()


def test_a_stop_reports_triggered_before_its_fill_and_fills_first_when_both_levels_are_inside(tmp_path) -> None:
    v = venue(tmp_path / "v.json")
    v.submit(order("e"), legs("e", tp="63200.00", sl="62500.00"))   # both inside BAR's range
    events = v.process(BAR)
    assert view(events)[3:] == [("e-sl", "triggered", BAR.ts, ""), ("e-sl", "filled", BAR.ts, ""),
                                ("e-tp", "cancelled", BAR.ts, "oco: other leg filled")]
    # 62500.00 * 0.9998 = 62487.5 -> floor 62487.50, taker
    assert events[4].fill.price == Decimal("62487.50") and events[4].fill.liquidity == "taker"


@pytest.mark.parametrize("native", [True, False])
@settings(max_examples=25, deadline=None)
@given(start=st.integers(20, 17_000), stop_bps=st.integers(5, 400),
       tp_bps=st.one_of(st.none(), st.integers(5, 400)), hold=st.integers(1, 10))
def test_it_fills_like_the_simulator(native, start, stop_bps, tp_bps, hold) -> None:
    """Same orders, same bars: the same events and fills as ``SimBroker`` (native brackets,
    or legs sent by the caller once the entry filled and the sibling cancelled by it)."""
    def drive(broker) -> list:
        close = Decimal(repr(float(SERIES.close[start])))
        ts = int(SERIES.ts[start])
        entry = order("e", qty="0.05", ts=ts)
        leg_list = [order("e-sl", Side.SELL, OrderType.STOP, role=OrderRole.STOP_LOSS,
                          stop=str(BTC.floor_price(close * (1 - Decimal(stop_bps) / 10_000))),
                          parent="e", ts=ts)]
        if tp_bps is not None:
            leg_list.insert(0, order("e-tp", Side.SELL, OrderType.LIMIT, role=OrderRole.TAKE_PROFIT,
                                     price=str(BTC.ceil_price(close * (1 + Decimal(tp_bps) / 10_000))),
                                     parent="e", ts=ts))
        log = broker.submit(entry, tuple(leg_list)) if native else broker.submit(entry)
        for j in range(start + 1, start + 1 + hold):
            events = broker.process(SERIES.bar(j))
            log += events
            for e in events if not native else ():
                if e.kind is K.FILLED and e.order.client_order_id == "e":
                    for leg in leg_list:
                        log += broker.submit(leg)
                elif e.kind is K.FILLED and len(leg_list) == 2:
                    other = next(x for x in leg_list if x.client_order_id != e.order.client_order_id)
                    log += broker.cancel(other.client_order_id, e.ts, "oco")
        log += broker.cancel_all(SYM, int(SERIES.ts[start + hold]), "end")
        return [(e.order.client_order_id, e.kind, e.ts, e.reason, e.fill) for e in log]

    with tempfile.TemporaryDirectory() as d:
        fv = venue(Path(d) / "v.json", native_brackets=native)
        sim = SimBroker(INSTRUMENTS, taker_fee_bps=10.0, maker_fee_bps=5.0, slippage_bps=2.0,
                        native_brackets=native)
        ours, theirs = drive(fv), drive(sim)
        assert ours == theirs
        held = sum((f.quantity if f.side is Side.BUY else -f.quantity) for f in fv.fills())
        assert fv.position(SYM) == held


def test_the_funds_and_balance_rules(tmp_path) -> None:
    v = venue(tmp_path / "v.json", cash=Decimal(600))
    v.submit(order("big"), legs("big"))                            # 628.48 + fee > 600
    assert view(v.process(BAR)) == [("big", "rejected", BAR.ts, "insufficient_funds"),
                                   ("big-tp", "cancelled", BAR.ts, "entry rejected"),
                                   ("big-sl", "cancelled", BAR.ts, "entry rejected")]
    v.submit(order("x", Side.SELL, role=OrderRole.EXIT, ts=BAR.ts))  # holds nothing
    nxt = NEXT
    assert view(v.process(nxt)) == [("x", "rejected", nxt.ts, "insufficient_balance")]
    # close_position is never refused; its fill: 63149.42 * 0.9998 = 63136.790116 -> 63136.79
    (ev,) = v.close_position(order("c", Side.SELL, role=OrderRole.EXIT), Decimal("63149.42"), nxt.ts)
    assert (ev.kind, ev.fill.price, ev.fill.fee) == (K.FILLED, Decimal("63136.79"), Decimal("0.63136790"))
    assert v.position(SYM) == Decimal("-0.01") and v.balance("USD") == Decimal(600) + Decimal("631.3679") - Decimal("0.6313679")
    assert [e["kind"] for e in v.submit_log()] == ["submit", "leg", "leg", "submit", "close"]


def test_a_market_order_waits_for_a_bar_that_opens_after_its_decision(tmp_path) -> None:
    v = venue(tmp_path / "v.json")
    v.submit(order("e", ts=BAR.ts))          # decided on BAR's close
    assert v.process(BAR) == []              # BAR opened before it was decided
    nxt = NEXT
    assert view(v.process(nxt))[0] == ("e", "filled", nxt.ts, "")


def test_cancel_and_cancel_all_follow_the_lifecycle(tmp_path) -> None:
    v = venue(tmp_path / "v.json")
    v.submit(order("a"), legs("a"))
    assert view(v.cancel("a", TS, "signal")) == [("a", "cancelled", TS, "signal"),
                                                 ("a-tp", "cancelled", TS, "signal"),
                                                 ("a-sl", "cancelled", TS, "signal")]
    assert v.cancel("a", TS, "again") == [] and v.cancel("nope", TS, "x") == []
    v.submit(order("b"), legs("b", tp="70000.00", sl="50000.00"))
    v.process(BAR)                                            # b filled, its legs live
    assert view(v.cancel_all(SYM, BAR.ts, "exit")) == [("b-tp", "cancelled", BAR.ts, "exit"),
                                                      ("b-sl", "cancelled", BAR.ts, "exit")]
    assert v.cancel_all(SYM, BAR.ts, "exit") == []
    for cid in ("a", "a-tp", "a-sl", "b", "b-tp", "b-sl"):  # every status a lifecycle end
        assert TRANSITIONS[v.status(cid)] == frozenset()


# -- the state outlives the object -----------------------------------------------------------
def test_a_new_instance_sees_what_the_last_one_did_and_reports_it(tmp_path) -> None:
    path = tmp_path / "v.json"
    first = venue(path, cash=Decimal(10000))
    first.submit(order("e"), legs("e", tp="70000.00", sl="50000.00"))
    first.process(BAR)
    second = venue(path, cash=Decimal(1))                    # the file's balance wins
    got = second.lookup("e")
    assert (got.status, got.filled, got.reason) == (OrderStatus.FILLED, Decimal("0.01"), "")
    assert got.fills == tuple(first.fills()) and got.fills[0].price == Decimal("62847.85")
    assert second.lookup("e-sl")[:3] == ("e-sl", OrderStatus.WORKING, Decimal(0))
    assert second.lookup("never") is None
    acct = second.account([SYM, "ETH-USD"])
    assert acct.positions == {SYM: Decimal("0.01"), "ETH-USD": Decimal(0)}
    assert acct.open_orders == ("e-tp", "e-sl")
    assert acct.balances == {"USD": Decimal(10000) - Decimal("628.4785") - Decimal("0.6284785")}
    # a bar already processed reports nothing again; the next one fills the stop-loss
    assert second.process(BAR) == []
    crash = Bar(SYM, BAR.ts + 3600, 50500.0, 50600.0, 49000.0, 49500.0, 1.0, BAR.ts + 7200)
    events = second.process(crash)
    assert view(events) == [("e-sl", "triggered", crash.ts, ""), ("e-sl", "filled", crash.ts, ""),
                            ("e-tp", "cancelled", crash.ts, "oco: other leg filled")]
    # never adopted: stand-ins with the venue's record; adopted: the engine's own objects
    assert events[1].order.client_order_id == "e-sl" and events[1].order.stop_price == Decimal("50000.00")
    third = venue(path)
    mine = order("e-tp", Side.SELL, OrderType.LIMIT, role=OrderRole.TAKE_PROFIT, price="70000.00", parent="e")
    assert third.adopt({"e-tp": mine, "unknown": order("unknown")}) == 1
    assert third.open_orders(SYM) == []


def test_adopt_refuses_an_order_that_is_not_the_venues(tmp_path) -> None:
    v = venue(tmp_path / "v.json")
    v.submit(order("e"))
    with pytest.raises(ValueError, match="order e: the engine's buy 0.02 BTC-USD market is not the venue's"):
        venue(tmp_path / "v.json").adopt({"e": order("e", qty="0.02")})
    again = venue(tmp_path / "v.json")
    mine = order("e")
    again.adopt({"e": mine})
    assert again.process(BAR)[0].order is mine


def test_every_attempt_is_logged_and_a_duplicate_id_is_refused_across_instances(tmp_path) -> None:
    path = tmp_path / "v.json"
    venue(path).submit(order("e"), legs("e"))
    v = venue(path)
    with pytest.raises(ValueError, match="duplicate client order id 'e'"):
        v.submit(order("e"))
    with pytest.raises(ValueError, match="duplicate client order id 'e-sl'"):
        v.close_position(order("e-sl", Side.SELL, role=OrderRole.EXIT), Decimal(63000), TS)
    with pytest.raises(ValueError, match="limit order needs a price"):
        v.submit(order("l", Side.SELL, OrderType.LIMIT, role=OrderRole.EXIT))
    reread = venue(path)
    assert reread.submit_counts() == {"e": 2, "e-tp": 1, "e-sl": 2, "l": 1}
    assert [e["result"] for e in reread.submit_log()][3:] == [
        "refused: duplicate client order id 'e'", "refused: duplicate client order id 'e-sl'",
        "refused: order l: limit order needs a price"]
    assert reread.lookup("e").status is OrderStatus.ACCEPTED and reread.lookup("l") is None


def test_an_operation_interrupted_while_saving_is_not_in_the_file_nor_in_memory(tmp_path) -> None:
    path = tmp_path / "v.json"
    v = venue(path)
    v.submit(order("a"))
    before = path.read_text()

    def killed() -> None:
        raise KeyboardInterrupt           # where the kill tests SIGKILL the process

    v.before_replace = killed
    with pytest.raises(KeyboardInterrupt):
        v.submit(order("b"))
    assert path.read_text() == before                       # the old state, whole
    assert "b" in json.loads(path.with_name("v.json.tmp").read_text())["orders"]
    assert v.lookup("b") is None and venue(path).lookup("b") is None
    v.before_replace = None
    assert view(v.submit(order("b"))) == [("b", "accepted", TS, "")]   # the stale .tmp is overwritten
    assert venue(path).submit_counts() == {"a": 1, "b": 1}


def test_a_file_that_is_not_its_state_or_other_fees_are_refused(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not a FileVenue state"):
        venue(bad)
    bad.write_text('{"version": 9}')
    with pytest.raises(ValueError, match="FileVenue state version 9"):
        venue(bad)
    venue(tmp_path / "v.json")
    with pytest.raises(ValueError, match="written with"):
        FileVenue(tmp_path / "v.json", INSTRUMENTS, taker_bps=20.0)
    with pytest.raises(ValueError, match="slippage_bps must be in"):
        FileVenue(tmp_path / "y.json", INSTRUMENTS, slippage_bps=10_000)
    assert not (tmp_path / "y.json").exists()
