"""The engine against a venue that behaves like a real one (``fake_venue.ScriptedVenue``):
partial fills over several bars, venue cancels, expiries and rejects, emulated and native
brackets, every event a lifecycle transition, the ledger's cash adding up; staleness
measured from the bar's close with a wall clock on a fake time source; no wall clock read
in a replay.

Bars are the bundled real BTC-USD 1 h bars; each bar is delivered as a one-bar chunk (as
paper and live deliver them), so the ledger is written after every bar and can be read
between bars.
"""

from __future__ import annotations

import sqlite3
import time
from decimal import ROUND_HALF_EVEN, Context, Decimal

import pytest
from fake_venue import End, Part, ScriptedVenue

from tradewarden.domain import COINBASE_SPECS, ExitReason
from tradewarden.engine import WallClock
from tradewarden.engine.engine import ENTRY_PENDING, EXIT_PENDING, FLAT, OPEN
from tradewarden.engine.portfolio import Holding
from tradewarden.execution.base import Broker, IllegalTransition, OrderEventKind
from tradewarden.ops.kernel import DEFAULT_STALE_AFTER

D = Decimal
K = OrderEventKind
SYM = "BTC-USD"
BTC = COINBASE_SPECS[SYM]
AVG = Context(prec=28, rounding=ROUND_HALF_EVEN)
EMULATED = "held by the engine until the entry fills (emulated bracket)"


def q(db, sql, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


@pytest.fixture
def bars(real_bars):
    """The first 60 real BTC-USD hourly bars."""
    return real_bars[SYM].slice(0, 60)


class Run:
    """An engine on a ScriptedVenue, fed one bar at a time, with a snapshot after each bar."""

    def __init__(self, tmp_path, make_engine, strategy, venue, bars, **kernel):
        self.venue, self.bars = venue, bars
        self.engine, self.ledger = make_engine(tmp_path, strategy, broker=venue, reference=True,
                                               **kernel)
        self.db = tmp_path / "ledger.db"
        self.sym = self.engine.by_name[SYM]
        self.i = 0

    def to(self, last: int) -> None:
        """Deliver bars up to and including ``last``."""
        while self.i <= last:
            self.engine.process_chunk({SYM: self.bars.slice(self.i, self.i + 1)})
            self.i += 1

    @property
    def holding(self) -> Holding:
        return self.sym.holding

    @property
    def cash(self) -> Decimal:
        return self.engine.accounts[self.sym.acct].cash

    def order(self, cid):
        cols = ("client_order_id", "role", "quantity", "status", "status_reason")
        row = q(self.db, f"select {', '.join(cols)} from orders where client_order_id=?", cid)
        return dict(zip(cols, row[0])) if row else None

    def decision(self, i):
        (a, r, s), = q(self.db, "select action, reason, state from decisions where ts=?",
                       int(self.bars.ts[i]))
        return a, r, s

    def trades(self):
        cols = ("quantity", "entry_price", "exit_price", "fees", "pnl", "exit_reason",
                "entry_order_id", "exit_order_id")
        return [dict(zip(cols, r)) for r in q(self.db, f"select {', '.join(cols)} from trades")]


def parts(qty: Decimal, *fracs: str) -> list[Decimal]:
    """The fill quantities the venue makes of ``qty``: each fraction rounded down to the
    base increment, the last part the rest."""
    out = [BTC.round_quantity(qty * D(f)) for f in fracs]
    return out + [qty - sum(out)]


@pytest.fixture
def holding_spy(monkeypatch):
    """Record (quantity, entry price) of every Holding after each fill it applies."""
    seen = []
    apply = Holding.apply

    def spy(self, fill, reason=None):
        trade = apply(self, fill, reason)
        seen.append((fill.side.value, self.quantity, self.entry_price, trade))
        return trade
    monkeypatch.setattr(Holding, "apply", spy)
    return seen


# ---------------------------------------------------------------- partial fills, one round trip
P1, P2, P3 = D("61790.55"), D("62460.10"), D("62461.37")     # entry parts (bars 11, 12, 12)
F1, F2, F3 = D("3.81000000"), D("2.01500000"), D("1.77000000")
X1, X2 = D("64960.02"), D("64470.89")                        # exit parts (bars 21, 22)
G1, G2 = D("3.25000000"), D("3.22350000")


def partial_round_trip(tmp_path, make_engine, scripted, bars):
    ts = bars.ts
    venue = ScriptedVenue({SYM: BTC}, script={
        ts[11]: [Part("entry", P1, F1, D("0.4"))],
        ts[12]: [Part("entry", P2, F2, D("0.35")), Part("entry", P3, F3)],
        ts[21]: [Part("exit", X1, G1, D("0.5"))],
        ts[22]: [Part("exit", X2, G2)],
    })
    return Run(tmp_path, make_engine, scripted(enter_ts=[ts[10]], exit_ts=[ts[20]]), venue, bars)


def test_entry_filled_in_three_parts_over_two_bars(tmp_path, make_engine, scripted, bars, holding_spy):
    r = partial_round_trip(tmp_path, make_engine, scripted, bars)
    r.to(10)
    entry_id, _, qty = r.venue.submitted[0]
    assert r.sym.state == ENTRY_PENDING and r.holding.is_flat and r.cash == D(10000)
    q1, q2, q3 = parts(qty, "0.4", "0.35")

    r.to(11)       # part 1 of 3: the position is open with what has filled
    assert r.holding.quantity == q1 and r.holding.entry_price == P1
    assert r.sym.state == OPEN and r.decision(11)[2] == "open"
    assert r.cash == D(10000) - (P1 * q1 + F1)
    assert r.engine.counts.trades_opened == 1
    assert r.order(entry_id)["status"] == "partially_filled"

    r.to(12)       # parts 2 and 3 arrive on one bar
    cost = P1 * q1 + P2 * q2 + P3 * q3
    assert r.holding.quantity == qty
    assert r.holding.entry_price == AVG.divide(cost, qty)
    assert r.cash == D(10000) - cost - (F1 + F2 + F3)
    assert r.engine.counts.trades_opened == 1            # one round trip, not three
    assert r.order(entry_id)["status"] == "filled"
    # after each part: quantity and average entry price
    assert [(s, qn, p) for s, qn, p, _ in holding_spy] == [
        ("buy", q1, P1),
        ("buy", q1 + q2, AVG.divide(P1 * q1 + P2 * q2, q1 + q2)),
        ("buy", qty, AVG.divide(cost, qty))]
    # cash debited per fill with its fee: one equity mark per fill
    cash = [D(10000) - P1 * q1 - F1]
    cash.append(cash[-1] - P2 * q2 - F2)
    cash.append(cash[-1] - P3 * q3 - F3)
    marks = q(r.db, "select cash from equity where account=? order by seq", SYM)
    assert [m for (m,) in marks] == [10000.0] + [float(c) for c in cash]
    fills = q(r.db, "select quantity, price, fee, role from fills order by fill_seq")
    assert fills == [(str(q1), str(P1), str(F1), "entry"), (str(q2), str(P2), str(F2), "entry"),
                     (str(q3), str(P3), str(F3), "entry")]


def test_exit_filled_in_two_parts_closes_one_exact_trade(tmp_path, make_engine, scripted, bars):
    r = partial_round_trip(tmp_path, make_engine, scripted, bars)
    r.to(20)
    entry_id, _, qty = r.venue.submitted[0]
    exit_id, role, exit_qty = r.venue.submitted[1]
    assert role.value == "exit" and exit_qty == qty and r.sym.state == EXIT_PENDING
    x1, x2 = parts(qty, "0.5")

    r.to(21)       # half sold: still exit_pending, no trade row
    assert r.holding.quantity == qty - x1 and r.sym.state == EXIT_PENDING
    assert r.decision(21)[2] == "exit_pending"
    assert r.trades() == [] and r.engine.counts.trades_closed == 0
    assert r.order(exit_id)["status"] == "partially_filled"

    r.to(22)       # the rest: flat, one trade
    q1, q2, q3 = parts(qty, "0.4", "0.35")
    cost = P1 * q1 + P2 * q2 + P3 * q3
    proceeds = X1 * x1 + X2 * x2
    fees = F1 + F2 + F3 + G1 + G2
    (t,) = r.trades()
    assert D(t["quantity"]) == qty
    assert D(t["entry_price"]) == AVG.divide(cost, qty)
    assert D(t["exit_price"]) == AVG.divide(proceeds, qty)
    assert D(t["fees"]) == fees
    assert D(t["pnl"]) == proceeds - cost - fees
    assert (t["exit_reason"], t["entry_order_id"], t["exit_order_id"]) == ("signal", entry_id, exit_id)
    assert r.sym.state == FLAT and r.holding.is_flat and r.decision(22)[2] == "flat"
    assert r.cash == D(10000) + proceeds - cost - fees
    assert (r.engine.counts.trades_opened, r.engine.counts.trades_closed) == (1, 1)


# ---------------------------------------------------------------- the venue ends an order
def bracket_strategy(scripted, bars, **kw):
    return scripted(enter_ts=[bars.ts[10]], stop_frac=0.02, tp_frac=0.03, **kw)


def expired_entry(tmp_path, make_engine, scripted, bars, later=()):
    ts = bars.ts
    script = {ts[11]: [Part("entry", P1, F1, D("0.4"))],
              ts[12]: [End("entry", K.EXPIRED, "time_in_force")]}
    script.update(later)
    venue = ScriptedVenue({SYM: BTC}, script=script)
    r = Run(tmp_path, make_engine, bracket_strategy(scripted, bars), venue, bars)
    r.to(12)
    return r


def test_entry_partly_filled_then_expired_keeps_the_filled_part(tmp_path, make_engine, scripted, bars):
    r = expired_entry(tmp_path, make_engine, scripted, bars)
    entry_id, _, qty = r.venue.submitted[0]
    q1 = BTC.round_quantity(qty * D("0.4"))
    assert r.holding.quantity == q1 and r.sym.state == OPEN
    assert r.order(entry_id)["status"] == "expired"
    assert r.order(entry_id)["status_reason"] == "time_in_force"
    # the emulated legs went to the venue for the filled quantity only
    sent = {role.value: qn for _, role, qn in r.venue.submitted[1:]}
    assert sent == {"take_profit": q1, "stop_loss": q1}
    assert {r.venue.ticket(x).status.value for x in sent} == {"accepted"}


def test_legs_armed_after_an_expiry_are_recorded_as_live(tmp_path, make_engine, scripted, bars):
    """The engine and the ledger show the legs it sent after the expiry as open."""
    r = expired_entry(tmp_path, make_engine, scripted, bars)
    tp, sl = r.venue.ticket("take_profit"), r.venue.ticket("stop_loss")
    assert [(t.order.status.value, t.status.value) for t in (tp, sl)] == [("accepted", "accepted")] * 2
    assert [r.order(t.client_order_id)["status"] for t in (tp, sl)] == ["accepted"] * 2


def test_legs_armed_after_an_expiry_are_recorded_with_the_quantity_sent(tmp_path, make_engine,
                                                                         scripted, bars):
    """The legs' rows were written (held, full size) bars before the expiry resized them:
    the ledger must end up with the quantity the venue was sent."""
    r = expired_entry(tmp_path, make_engine, scripted, bars)
    q1 = r.holding.quantity
    for role in ("take_profit", "stop_loss"):
        t = r.venue.ticket(role)
        assert D(r.order(t.client_order_id)["quantity"]) == q1 == t.order.quantity, role


def test_stop_after_an_expired_entry_cancels_the_take_profit(tmp_path, make_engine, scripted, bars):
    ts = bars.ts
    r = expired_entry(tmp_path, make_engine, scripted, bars)
    stop = r.venue.ticket("stop_loss").order.stop_price
    r.venue.script[(SYM, int(ts[14]))] = [Part("stop_loss", stop, D("1.50"))]
    r.to(15)
    (t,) = r.trades()
    assert t["exit_reason"] == "stop_loss" and D(t["quantity"]) == r.venue.ticket("stop_loss").order.quantity
    tp = r.venue.ticket("take_profit")
    assert tp.status.value == "cancelled", "the take-profit still works at the venue with nothing held"
    assert r.order(tp.client_order_id)["status_reason"] == "oco: other leg filled"


@pytest.mark.parametrize("sync", [False, True], ids=["rejected later", "rejected on submit"])
def test_entry_rejected_by_the_venue(tmp_path, make_engine, scripted, bars, sync):
    ts = bars.ts
    venue = ScriptedVenue({SYM: BTC},
                          script={} if sync else {ts[11]: [End("entry", K.REJECTED, "insufficient_funds")]},
                          reject={"entry": "insufficient_funds"} if sync else {})
    r = Run(tmp_path, make_engine, bracket_strategy(scripted, bars), venue, bars)
    r.to(11)
    entry_id = venue.submitted[0][0]
    assert r.sym.state == FLAT and r.holding.is_flat
    assert r.decision(11)[2] == "flat"
    assert q(r.db, "select count(*) from fills")[0][0] == 0
    assert r.engine.counts.trades_opened == 0 and r.cash == D(10000)
    assert (r.order(entry_id)["status"], r.order(entry_id)["status_reason"]) == ("rejected", "insufficient_funds")
    (kind, sym, msg), = q(r.db, "select kind, symbol, message from events where kind like 'order_%'")
    assert (kind, sym) == ("order_rejected", SYM) and entry_id in msg and "insufficient_funds" in msg
    # the held legs never reached the venue and are recorded cancelled
    assert [role.value for _, role, _ in venue.submitted] == ["entry"]
    legs = q(r.db, "select status, status_reason from orders where role != 'entry'")
    assert legs == [("cancelled", "entry rejected")] * 2
    assert r.engine.held_legs == {}


def test_exit_cancelled_by_the_venue_reopens_and_next_exit_sells_the_rest(tmp_path, make_engine,
                                                                        scripted, bars):
    ts = bars.ts
    venue = ScriptedVenue({SYM: BTC}, script={
        ts[11]: [Part("entry", P1, F1)],
        ts[21]: [Part("exit", X1, G1, D("0.3")), End("exit", K.CANCELLED, "venue maintenance")],
        ts[26]: [Part("exit", X2, G2)],
    })
    r = Run(tmp_path, make_engine, scripted(enter_ts=[ts[10]], exit_ts=[ts[20], ts[25]]), venue, bars)
    r.to(21)
    _, _, qty = venue.submitted[0]
    first_exit = venue.submitted[1][0]
    x1 = BTC.round_quantity(qty * D("0.3"))
    assert r.sym.state == OPEN and r.holding.quantity == qty - x1
    assert r.decision(21)[2] == "open"
    assert r.order(first_exit)["status"] == "cancelled"
    (kind, msg), = q(r.db, "select kind, message from events where kind like 'order_%'")
    assert kind == "order_cancelled" and first_exit in msg and "venue maintenance" in msg
    r.to(25)
    second_exit, role, exit_qty = venue.submitted[2]
    assert role.value == "exit" and exit_qty == qty - x1 and r.sym.state == EXIT_PENDING
    r.to(26)
    (t,) = r.trades()
    assert D(t["quantity"]) == qty and t["exit_order_id"] == second_exit
    assert D(t["pnl"]) == X1 * x1 + X2 * (qty - x1) - P1 * qty - (F1 + G1 + G2)
    assert r.sym.state == FLAT


def test_exit_signal_while_the_entry_is_partly_filled_cancels_its_rest(tmp_path, make_engine,
                                                                       scripted, bars):
    ts = bars.ts
    venue = ScriptedVenue({SYM: BTC}, script={ts[11]: [Part("entry", P1, F1, D("0.25"))],
                                              ts[14]: [Part("exit", X1, G1)]})
    r = Run(tmp_path, make_engine, bracket_strategy(scripted, bars, exit_ts=[ts[13]]), venue, bars)
    r.to(13)
    entry = venue.ticket("entry")
    held = r.holding.quantity
    assert entry.status.value == "cancelled" and entry.filled == held
    assert (r.order(entry.client_order_id)["status"], r.order(entry.client_order_id)["status_reason"]) == (
        "cancelled", "signal exit")
    assert [(role.value, qn) for _, role, qn in venue.submitted] == [("entry", entry.order.quantity),
                                                                     ("exit", held)]
    legs = q(r.db, "select status, status_reason from orders where parent_id=?", entry.client_order_id)
    assert legs == [("cancelled", "signal exit")] * 2 and r.engine.held_legs == {}
    r.to(14)
    (t,) = r.trades()
    assert D(t["quantity"]) == held and D(t["pnl"]) == (X1 - P1) * held - F1 - G1
    assert r.engine.counts.trades_opened == r.engine.counts.trades_closed == 1


# ---------------------------------------------------------------- brackets
@pytest.mark.parametrize("leg,reason", [("stop_loss", "stop_loss"), ("take_profit", "take_profit")])
def test_emulated_bracket_legs_held_then_armed_then_oco(tmp_path, make_engine, scripted, bars, leg, reason):
    ts = bars.ts
    venue = ScriptedVenue({SYM: BTC}, script={ts[11]: [Part("entry", P1, F1)]})
    r = Run(tmp_path, make_engine, bracket_strategy(scripted, bars), venue, bars)
    r.to(10)
    entry_id = venue.submitted[0][0]
    held = q(r.db, "select client_order_id, role, status, status_reason from orders "
                   "where parent_id=? order by role", entry_id)
    assert [(ro, st, why) for _, ro, st, why in held] == [
        ("stop_loss", "submitted", EMULATED), ("take_profit", "submitted", EMULATED)]
    assert [role.value for _, role, _ in venue.submitted] == ["entry"]    # not sent yet
    assert len(r.engine.held_legs[entry_id]) == 2

    r.to(11)       # the entry filled: both legs sent, for the filled quantity
    qty = r.holding.quantity
    assert sorted((role.value, qn) for _, role, qn in venue.submitted[1:]) == [
        ("stop_loss", qty), ("take_profit", qty)]
    assert r.engine.held_legs == {}
    armed = q(r.db, "select role, status, status_reason from orders where parent_id=? order by role",
              entry_id)
    assert armed == [("stop_loss", "accepted", ""), ("take_profit", "accepted", "")]

    t = venue.ticket(leg)
    price = t.order.stop_price if leg == "stop_loss" else t.order.price
    venue.script[(SYM, int(ts[15]))] = [Part(leg, price, D("1.25"))]
    r.to(15)
    (trade,) = r.trades()
    assert trade["exit_reason"] == reason and D(trade["quantity"]) == qty
    other = venue.ticket("take_profit" if leg == "stop_loss" else "stop_loss")
    assert venue.cancels[-1] == (other.client_order_id, "oco: other leg filled")
    assert other.status.value == "cancelled"
    assert (r.order(other.client_order_id)["status"], r.order(other.client_order_id)["status_reason"]) == (
        "cancelled", "oco: other leg filled")
    assert r.order(t.client_order_id)["status"] == "filled" and r.sym.state == FLAT


def test_emulated_leg_filled_in_parts_cancels_its_sibling_when_done(tmp_path, make_engine, scripted, bars):
    ts = bars.ts
    venue = ScriptedVenue({SYM: BTC}, script={ts[11]: [Part("entry", P1, F1)]})
    r = Run(tmp_path, make_engine, bracket_strategy(scripted, bars), venue, bars)
    r.to(11)
    tp = venue.ticket("take_profit")
    venue.script[(SYM, int(ts[15]))] = [Part("take_profit", tp.order.price, D("0.5"), D("0.5"), "maker")]
    venue.script[(SYM, int(ts[16]))] = [Part("take_profit", tp.order.price, D("0.5"), None, "maker")]
    r.to(16)
    (trade,) = r.trades()
    assert trade["exit_reason"] == "take_profit"
    sl = venue.ticket("stop_loss")
    assert sl.status.value == "cancelled", (
        "after the take-profit's last part the stop-loss still works at the venue "
        f"for {sl.order.quantity} with nothing held")


def test_partial_leg_fill_replaces_the_sibling_for_what_is_still_held(tmp_path, make_engine, scripted,
                                                                     bars):
    """Half the take-profit fills: the stop-loss is cancelled and sent again (``-r1``) for
    the half still held, so when the market turns and it fills the position is flat,
    never oversold; the round trip ends with the stop-loss's fill."""
    ts = bars.ts
    venue = ScriptedVenue({SYM: BTC}, script={ts[11]: [Part("entry", P1, F1)]})
    r = Run(tmp_path, make_engine, bracket_strategy(scripted, bars), venue, bars)
    r.to(11)
    tp, sl = venue.ticket("take_profit"), venue.ticket("stop_loss")
    full = sl.order.quantity
    venue.script[(SYM, int(ts[15]))] = [Part("take_profit", tp.order.price, D("0.5"), D("0.5"), "maker")]
    r.to(15)
    held = r.holding.quantity
    assert 0 < held < full
    new_sl = venue.ticket("stop_loss")
    assert new_sl.client_order_id == sl.client_order_id + "-r1" and new_sl.order.quantity == held
    assert sl.status.value == "cancelled" and new_sl.status.is_open
    assert r.order(sl.client_order_id)["status_reason"] == "oco: other leg partly filled; replaced"
    assert D(r.order(new_sl.client_order_id)["quantity"]) == held
    venue.script[(SYM, int(ts[17]))] = [Part(new_sl.client_order_id, new_sl.order.stop_price, D("0.4"))]
    r.to(17)
    (trade,) = r.trades()
    assert trade["exit_reason"] == "stop_loss" and trade["exit_order_id"] == new_sl.client_order_id
    assert D(trade["quantity"]) == full and r.holding.is_flat
    assert venue.ticket("take_profit").status.value == "cancelled"       # its rest, by the engine
    assert venue.out_of_sync() == []


def test_native_bracket_is_sent_with_the_entry_and_the_venue_does_the_oco(tmp_path, make_engine,
                                                                        scripted, bars):
    ts = bars.ts
    venue = ScriptedVenue({SYM: BTC}, native_bracket=True, native_oco=True,
                          script={ts[11]: [Part("entry", P1, F1)]})
    r = Run(tmp_path, make_engine, bracket_strategy(scripted, bars), venue, bars)
    r.to(10)
    assert sorted(role.value for _, role, _ in venue.submitted) == ["entry", "stop_loss", "take_profit"]
    assert r.engine.held_legs == {}
    r.to(11)
    assert {venue.ticket(x).status.value for x in ("stop_loss", "take_profit")} == {"working"}
    sl = venue.ticket("stop_loss")
    venue.script[(SYM, int(ts[15]))] = [Part("stop_loss", sl.order.stop_price, D("1.25"))]
    r.to(15)
    (trade,) = r.trades()
    assert trade["exit_reason"] == "stop_loss"
    assert venue.cancels == []               # the venue cancelled the take-profit, not the engine
    tp = venue.ticket("take_profit")
    assert (r.order(tp.client_order_id)["status"], r.order(tp.client_order_id)["status_reason"]) == (
        "cancelled", "oco: other leg filled")


def test_close_all_flattens_through_close_position(tmp_path, make_engine, scripted, bars):
    ts = bars.ts
    venue = ScriptedVenue({SYM: BTC}, script={ts[11]: [Part("entry", P1, F1, D("0.6"))]})
    r = Run(tmp_path, make_engine, bracket_strategy(scripted, bars), venue, bars)
    r.to(13)
    held = r.holding.quantity
    assert r.engine.close_all(ExitReason.END_OF_DATA) == 1
    entry = venue.ticket("entry")
    assert entry.status.value == "cancelled"           # the unfilled rest, cancelled first
    _, role, qn = venue.submitted[-1]
    assert (role.value, qn) == ("exit", held)
    (t,) = r.trades()
    close = BTC.floor_price(D(repr(float(bars.close[13]))))
    assert t["exit_reason"] == "end_of_data" and D(t["exit_price"]) == close
    assert r.sym.state == FLAT and r.holding.is_flat


# ---------------------------------------------------------------- lifecycle and accounting
def busy_run(tmp_path, make_engine, scripted, real_bars, check_sync=False):
    """400 real bars: entries every 40 bars with a bracket, some exits by signal, market
    orders filled at the next open in 3 parts, legs filled when a bar trades through,
    everything left closed at the end through ``close_position``."""
    bars = real_bars[SYM].slice(0, 400)
    ts = bars.ts
    strat = scripted(enter_ts=ts[5::40], exit_ts=ts[25::80], stop_frac=0.01, tp_frac=0.015)
    venue = ScriptedVenue({SYM: BTC}, market_parts=3, trade_through=True)
    r = Run(tmp_path, make_engine, strat, venue, bars)
    drift = []
    for i in range(len(bars)):
        r.to(i)
        if check_sync and venue.out_of_sync():
            drift.append((i, venue.out_of_sync()))
    r.engine.close_all(ExitReason.END_OF_DATA)
    return r, drift


def test_every_venue_event_is_a_lifecycle_transition(tmp_path, make_engine, scripted, real_bars):
    r, _ = busy_run(tmp_path, make_engine, scripted, real_bars)
    kinds = {e.kind for e in r.venue.log}
    assert kinds >= {K.ACCEPTED, K.PARTIALLY_FILLED, K.FILLED, K.TRIGGERED, K.CANCELLED}
    assert r.engine.counts.trades_closed >= 5
    # the check itself can fail: a filled order cannot be cancelled or filled again
    filled = next(t for t in r.venue.tickets.values() if t.status.value == "filled")
    with pytest.raises(IllegalTransition, match="filled -> cancelled"):
        r.venue._event(filled, K.CANCELLED, 0, "late")
    with pytest.raises(IllegalTransition, match="filled -> partially_filled"):
        r.venue._event(filled, K.PARTIALLY_FILLED, 0)


def test_engine_order_status_follows_every_venue_event(tmp_path, make_engine, scripted, real_bars):
    """After each bar every order's status in the engine is the venue's (the engine sets
    statuses from the events, acknowledgements included)."""
    r, drift = busy_run(tmp_path, make_engine, scripted, real_bars, check_sync=True)
    assert drift == [], f"{len(drift)} bars out of sync, first: {drift[0]}"
    statuses = dict(q(r.db, "select client_order_id, status from orders"))
    venue = {c: t.status.value for c, t in r.venue.tickets.items()}
    assert {c: statuses[c] for c in venue} == venue


def test_ledger_cash_adds_up_from_the_fills(tmp_path, make_engine, scripted, real_bars):
    r, _ = busy_run(tmp_path, make_engine, scripted, real_bars)
    cash = D(10000)
    fills = q(r.db, "select side, quantity, price, fee from fills order by fill_seq")
    assert len(fills) > 20
    for side, qty, price, fee in fills:
        notional = D(qty) * D(price)
        cash += notional - D(fee) if side == "sell" else -(notional + D(fee))
    (last,), = q(r.db, "select cash from equity where account=? order by seq desc limit 1", SYM)
    assert last == float(cash) and r.cash == cash
    # flat at the end: the trades' pnl is all the cash made
    pnl = sum(D(p) for (p,) in q(r.db, "select pnl from trades"))
    assert r.holding.is_flat and cash == D(10000) + pnl
    assert q(r.db, "select count(*) from trades")[0][0] == r.engine.counts.trades_closed


def test_scripted_venue_is_a_broker():
    v = ScriptedVenue({SYM: BTC})
    assert isinstance(v, Broker) and not v.capabilities.native_bracket and v.capabilities.partial_fills


# ---------------------------------------------------------------- staleness and clocks
class FakeTime:
    """A settable time source; sleeping moves it forward (nothing real sleeps)."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept = 0.0

    def time(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept += s
        self.t += s


def paper_entry(tmp_path, make_engine, scripted, bars, delay: float, i: int = 30):
    """Paper mode on a wall clock: every bar arrives 10 s after its close, bar ``i`` (the
    entry signal) ``delay`` seconds after its close. Returns the engine and the decision."""
    ft = FakeTime()
    engine, _ = make_engine(tmp_path, scripted(enter_ts=[bars.ts[i]]), mode="paper",
                            clock=WallClock(ft.time, ft.sleep))
    assert engine.stale_after == DEFAULT_STALE_AFTER
    close_ts = bars.close_ts
    for j in range(i + 1):
        ft.t = float(close_ts[j]) + (delay if j == i else 10)
        engine.prepare({SYM: bars.slice(j, j + 1)})
        d = engine.on_bar(bars.bar(j))
    engine.flush()
    return engine, d, ft


def test_closed_bar_delivered_soon_after_its_close_is_not_stale(tmp_path, make_engine, scripted, bars):
    _, d, ft = paper_entry(tmp_path, make_engine, scripted, bars, delay=10)
    bar = bars.bar(30)
    assert ft.t - bar.ts > DEFAULT_STALE_AFTER      # its OPEN is an hour and 10 s ago ...
    assert d.action == "enter_long"                 # ... but it closed 10 s ago: entered
    assert ft.slept == 0


def test_bar_older_than_stale_after_is_blocked(tmp_path, make_engine, scripted, bars):
    engine, d, _ = paper_entry(tmp_path, make_engine, scripted, bars, delay=DEFAULT_STALE_AFTER + 1)
    assert (d.action, d.reason) == ("blocked", "stale_data")
    (action, reason), = q(tmp_path / "ledger.db", "select action, reason from decisions where ts=?",
                          int(bars.ts[30]))
    assert (action, reason) == ("blocked", "stale_data") and engine.counts.orders == 0


def test_bar_exactly_stale_after_old_is_entered(tmp_path, make_engine, scripted, bars):
    _, d, _ = paper_entry(tmp_path, make_engine, scripted, bars, delay=DEFAULT_STALE_AFTER)
    assert d.action == "enter_long"


def test_bar_delivered_before_its_close_waits_for_it(tmp_path, make_engine, scripted, bars):
    _, d, ft = paper_entry(tmp_path, make_engine, scripted, bars, delay=-30)
    assert d.action == "enter_long" and ft.slept == pytest.approx(30)
    assert ft.t >= bars.close_ts[30]


@pytest.mark.parametrize("reference", [False, True], ids=["batch", "reference"])
def test_replay_never_reads_the_wall_clock(tmp_path, make_engine, scripted, real_bars, monkeypatch,
                                           reference):
    btc = real_bars[SYM].slice(0, 600)
    strat = scripted(enter_ts=btc.ts[10::50], exit_ts=btc.ts[30::50], stop_frac=0.01, tp_frac=0.02)
    engine, _ = make_engine(tmp_path, strat, reference=reference)

    def refuse(*_a):
        raise AssertionError("the wall clock was read during a replay")
    for name in ("time", "time_ns", "sleep", "monotonic", "perf_counter"):
        monkeypatch.setattr(time, name, refuse)
    engine.process_chunk({SYM: btc.slice(0, 300)})
    engine.process_chunk({SYM: btc.slice(300, 600)})
    engine.close_all(ExitReason.END_OF_DATA)
    monkeypatch.undo()
    assert engine.counts.trades_closed >= 5 and engine.counts.bars == 600
    assert engine.clock.now() >= int(btc.close_ts[-1])


def test_emulated_bracket_state_is_in_the_ledger_after_every_bar(tmp_path, make_engine, scripted, bars):
    """What the engine holds for emulated brackets (legs waiting for their entry, OCO
    pairs) can be rebuilt from the ``orders`` rows after every bar: held legs, the
    armed pair, the pair after a partial fill replaced the stop-loss, nothing once flat."""
    import sqlite3

    from tradewarden.engine.engine import bracket_state_from_orders

    ts = bars.ts
    venue = ScriptedVenue({SYM: BTC}, script={ts[11]: [Part("entry", P1, F1)]})
    r = Run(tmp_path, make_engine, bracket_strategy(scripted, bars), venue, bars)
    seen = []
    for i in range(25):
        if i == 15:
            tp = venue.ticket("take_profit")
            venue.script[(SYM, int(ts[15]))] = [Part("take_profit", tp.order.price, D("0.5"), D("0.5"),
                                                     "maker")]
        if i == 18:
            sl = venue.ticket("stop_loss")
            venue.script[(SYM, int(ts[18]))] = [Part(sl.client_order_id, sl.order.stop_price, D("0.4"))]
        r.to(i)
        with sqlite3.connect(r.db) as c:
            c.row_factory = sqlite3.Row
            rows = [dict(x) for x in c.execute("select client_order_id, parent_id, status from orders "
                                               "order by rowid")]
        state = r.engine.bracket_state()
        assert bracket_state_from_orders(rows) == state, i
        seen.append((len(state[0]), len(state[1])))
    assert seen[10] == (1, 0)              # bar 10: entry sent, its two legs held
    assert seen[11] == (0, 2) and seen[15] == (0, 2)   # armed; after the replacement
    assert seen[18] == (0, 0) and r.holding.is_flat
