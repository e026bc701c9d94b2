"""People act between bars (the command inbox) and a deployment agrees with its venue
(reconciliation), on real bundled BTC-USD 1 h bars.

Each test builds a paper deployment through the kernel (journal on, state saved with
every commit), feeds it bars one at a time with a clock at each bar's close, queues
commands through the ledger as the CLI does, and reads the ledger back. A "restart" is a
new engine assembled for the same deployment over the same ledger (and, for the
reconciliation tests, the same ``ScriptedVenue``: a venue outlives the process).
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

import pytest
from fake_venue import Part, ScriptedVenue

from tradewarden.domain import COINBASE_SPECS
from tradewarden.engine import ReplayClock
from tradewarden.engine.engine import ENTRY_PENDING, FLAT, OPEN
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import assemble
from tradewarden.risk import RiskConfig

SYM = "BTC-USD"
D = Decimal


def q(db, sql, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


class Deploy:
    """A paper deployment fed bar by bar; :meth:`restart` builds a new engine for it."""

    def __init__(self, tmp_path, strategy, bars, *, broker_factory=None, governor="autonomous",
                 risk=None):
        self.db = tmp_path / "ledger.db"
        self.ledger = Ledger(self.db)
        self.strategy, self.bars = strategy, bars
        self.broker_factory, self.governor, self.risk = broker_factory, governor, risk
        dep = self.ledger.open_deployment("desk", mode="paper", config="{}", config_hash="h")
        self.dep_id = dep["deployment_id"]
        self.i = 0
        self.runs = 0
        self.restart()

    def restart(self) -> None:
        self.runs += 1
        self.run_id = f"run{self.runs}"
        self.ledger.create_run({"run_id": self.run_id, "mode": "paper", "capital_mode": "independent",
                                "market_time_basis": "test", "data_integrity": "ok",
                                "config_hash": "h", "config": "{}", "strategy": "scripted",
                                "symbols": "[]", "timeframe": "1h", "initial_capital": D(10000)})
        t = int(self.bars.ts[self.i]) if self.i else int(self.bars.ts[0])
        self.clock = ReplayClock(t)
        broker = self.broker_factory() if self.broker_factory else None
        self.engine = assemble("paper", run_id=self.run_id, strategy=self.strategy,
                               instruments={SYM: COINBASE_SPECS[SYM]}, ledger=self.ledger,
                               capital=D(10000), governor=self.governor, risk=self.risk,
                               clock=self.clock, broker=broker, deployment_id=self.dep_id).engine
        if self.i:
            self.engine.warm_up({SYM: self.bars.slice(max(0, self.i - 5), self.i)})
        self.s = self.engine.by_name[SYM]

    def to(self, last: int):
        """Deliver bars up to and including ``last``; return the last decision."""
        d = None
        while self.i <= last:
            d = self.engine.on_bar(self.bars.bar(self.i))
            self.engine.flush()
            self.i += 1
        return d

    def command(self, kind: str, target=None, reason=None, actor="alice"):
        """Queue a command as the CLI does and carry it out between bars."""
        cid = self.ledger.enqueue_command(self.dep_id, kind, actor=actor, target=target, reason=reason)
        pending = self.ledger.pending_commands(self.dep_id)
        assert [c["id"] for c in pending] == [cid]
        approvals = {a["id"]: a for a in self.ledger.approvals(deployment_id=self.dep_id)}
        diffs = self.ledger.reconciliations(deployment_id=self.dep_id, status="open")
        (out,) = self.engine.handle_commands(pending, self.clock.now(), approvals=approvals,
                                             differences=diffs)
        assert out[0] == cid
        row = {c["id"]: c for c in self.ledger.commands(deployment_id=self.dep_id)}[cid]
        assert (row["status"], row["result"], row["run_id"]) == (out[1], out[2], self.run_id)
        return out[1], out[2]


@pytest.fixture
def bars(real_bars):
    return real_bars[SYM].slice(0, 40)


def test_pause_blocks_entries_until_resume_and_survives_a_restart(tmp_path, scripted, bars):
    ts = bars.ts
    dep = Deploy(tmp_path, scripted(enter_ts=[ts[3], ts[8]], exit_ts=[ts[6]]), bars)
    dep.to(1)
    assert dep.command("pause", reason="news at 14:00") == (
        "done", "paused: no new entries until resume (news at 14:00)")
    assert dep.command("pause")[1] == "already paused"
    dep.restart()                                       # the pause is in the saved state
    assert dep.engine.paused
    d = dep.to(3)
    assert (d.action, d.reason) == ("blocked", "paused")
    assert dep.command("resume") == ("done", "resumed")
    d = dep.to(8)
    assert d.action == "enter_long"
    events = [m for (m,) in q(dep.db, "select message from events where kind='command' order by seq")]
    assert events[0] == ("command 1 pause by alice: done: paused: no new entries until resume "
                         "(news at 14:00)")


def test_kill_switch_blocks_entries_keeps_the_position_and_resume_lifts_it(tmp_path, scripted, bars):
    ts = bars.ts
    dep = Deploy(tmp_path, scripted(enter_ts=[ts[2], ts[9]], exit_ts=[ts[6]], stop_frac=0.2), bars)
    dep.to(4)
    assert dep.s.state == OPEN
    status, result = dep.command("kill", reason="venue outage")
    assert status == "done" and result.startswith("kill switch engaged")
    assert dep.s.state == OPEN and not dep.s.holding.is_flat         # positions kept
    dep.restart()
    d = dep.to(9)
    assert (d.action, d.reason) == ("blocked", "halted:kill_switch")
    assert q(dep.db, "select count(*) from trades")[0][0] == 1       # the exit at bar 6 went through
    assert dep.command("resume") == ("done", "resumed (kill switch lifted)")
    assert dep.command("resume")[1] == "nothing to resume: not paused, no kill switch engaged"
    assert dep.engine.risk.halted(SYM, int(ts[10])) is None


def test_flatten_closes_through_the_broker_as_a_recorded_manual_exit(tmp_path, scripted, bars):
    ts = bars.ts
    dep = Deploy(tmp_path, scripted(enter_ts=[ts[2]], stop_frac=0.05, tp_frac=0.05), bars)
    dep.to(4)
    assert dep.s.state == OPEN
    qty = dep.s.holding.quantity
    status, result = dep.command("close", target=SYM, actor="bob")
    assert (status, result) == ("done", "1 position(s) closed (BTC-USD)")
    assert dep.s.state == FLAT and dep.s.holding.is_flat
    (row,) = q(dep.db, "select action, reason, detail from decisions where reason='manual'")
    detail = json.loads(row[2])
    assert row[:2] == ("exit", "manual") and detail["by"] == "bob" and detail["command"] == 1
    (trade,) = q(dep.db, "select exit_reason, quantity from trades")
    assert trade == ("manual", str(qty))
    legs = q(dep.db, "select role, status from orders where role in ('take_profit','stop_loss')")
    assert sorted(legs) == [("stop_loss", "cancelled"), ("take_profit", "cancelled")]
    assert dep.command("close", target="DOGE-USD")[0] == "refused"
    assert dep.command("flatten") == ("done", "0 position(s) closed")


def _queued(dep, last):
    d = dep.to(last)
    assert d.action == "queued"
    (a,) = dep.ledger.approvals(deployment_id=dep.dep_id, status="pending")
    return a


def test_an_approved_entry_is_risk_checked_journaled_then_sent(tmp_path, scripted, bars):
    ts = bars.ts
    dep = Deploy(tmp_path, scripted(enter_ts=[ts[3]], stop_frac=0.05), bars, governor="approval")
    a = _queued(dep, 3)
    assert q(dep.db, "select count(*) from orders")[0][0] == 0
    dep.clock.advance(int(ts[4]) + 600)                 # ten minutes into the next bar
    status, result = dep.command("approve", target=str(a["id"]), actor="carol")
    assert status == "done" and result.startswith(f"approval {a['id']} approved: ")
    row = dep.ledger.approvals(deployment_id=dep.dep_id)[0]
    assert (row["status"], row["acted_by"]) == ("approved", "carol")
    orders = q(dep.db, "select role, status, decision_seq, quantity from orders order by role")
    assert [o[:3] for o in orders] == [("entry", "accepted", a["decision_seq"]),
                                       ("stop_loss", "accepted", a["decision_seq"])]
    assert D(orders[0][3]) > 0
    assert dep.s.state == ENTRY_PENDING
    dep.to(5)                                           # the next bars fill it at their open
    assert dep.s.state == OPEN
    fill_ts = q(dep.db, "select ts from fills where role='entry'")[0][0]
    assert fill_ts == int(ts[5])                        # not the bar that opened before the approval
    assert dep.command("approve", target=str(a["id"]))[1] == f"approval {a['id']} is approved (by carol)"


def test_approval_rejected_expired_and_risk_rechecked(tmp_path, scripted, bars):
    ts = bars.ts
    dep = Deploy(tmp_path, scripted(enter_ts=[ts[3], ts[6], ts[9]], stop_frac=0.05), bars,
                 governor="approval")
    a = _queued(dep, 3)
    assert dep.command("reject", target=str(a["id"]), reason="too late in the day") == (
        "done", f"approval {a['id']} rejected")
    row = dep.ledger.approvals(deployment_id=dep.dep_id)[0]
    assert (row["status"], row["reason"], row["acted_by"]) == ("rejected", "too late in the day", "alice")
    b = _queued(dep, 6)
    assert dep.engine.expire_approvals([b], int(ts[7]), SYM) == 1
    dep.engine.flush()
    assert dep.ledger.approvals(deployment_id=dep.dep_id)[1]["status"] == "expired"
    c = _queued(dep, 9)
    dep.command("kill")                               # blocked: the approval stays pending
    status, result = dep.command("approve", target=str(c["id"]))
    assert status == "refused" and "stays pending" in result
    assert dep.ledger.approvals(deployment_id=dep.dep_id)[2]["status"] == "pending"
    dep.command("resume")
    dep.engine.accounts[0].cash = D(1)                 # the account cannot pay for it any more
    dep.engine.accounts[0].cash_f = 1.0
    status, result = dep.command("approve", target=str(c["id"]))
    assert status == "refused" and "risk re-check at approval" in result
    row = dep.ledger.approvals(deployment_id=dep.dep_id)[2]
    assert row["status"] == "rejected" and row["reason"].startswith("risk re-check at approval: ")
    assert q(dep.db, "select count(*) from orders")[0][0] == 0


# -- reconciliation ---------------------------------------------------------------------

def _venue():
    return ScriptedVenue({SYM: COINBASE_SPECS[SYM]}, market_parts=1)


def test_fills_made_while_away_are_caught_up_once(tmp_path, scripted, bars):
    ts = bars.ts
    venue = _venue()
    venue.market_parts = 0                              # fills only as scripted below
    dep = Deploy(tmp_path, scripted(enter_ts=[ts[3]]), bars, broker_factory=lambda: venue)
    dep.to(4)
    t = venue.ticket("entry")
    assert dep.s.state == ENTRY_PENDING
    # the process is gone; meanwhile the venue fills the entry in two parts
    venue._fill(t, t.order.quantity / 2, D("60000.00"), D("3.00"), int(ts[5]), "taker")
    dep.restart()                                       # sees the first part
    assert dep.s.holding.quantity == venue.positions[SYM] > 0
    venue._fill(t, t.remaining, D("60010.00"), D("3.00"), int(ts[5]), "taker")
    dep.restart()                                       # only the second part is new
    dep.restart()                                       # nothing new
    fills = q(dep.db, "select price, quantity from fills order by fill_seq")
    assert [f[0] for f in fills] == ["60000.00", "60010.00"]
    assert sum(D(f[1]) for f in fills) == t.order.quantity == dep.s.holding.quantity
    assert dep.s.state == OPEN
    assert venue.submitted == [(t.client_order_id, t.order.role, t.order.quantity)]
    assert q(dep.db, "select count(*) from reconciliations")[0][0] == 0


def test_an_order_journaled_but_never_received_is_sent_once(tmp_path, scripted, bars):
    ts = bars.ts
    venue = _venue()
    dep = Deploy(tmp_path, scripted(enter_ts=[ts[3]]), bars, broker_factory=lambda: venue)

    def lost(order, legs=()):
        raise SystemExit("killed inside submit")        # the order never reached the venue
    real = venue.submit
    venue.submit = lost
    with pytest.raises(SystemExit):
        dep.to(3)
    venue.submit = real
    assert q(dep.db, "select status from orders") == [("submitted",)]
    dep.i = 4
    dep.restart()
    assert [c for c, _, _ in venue.submitted] == [q(dep.db, "select client_order_id from orders")[0][0]]
    dep.to(5)
    assert dep.s.state == OPEN
    dep.restart()
    assert len(venue.submitted) == 1


def test_differences_block_entries_until_accepted(tmp_path, scripted, bars):
    ts = bars.ts
    venue = _venue()
    dep = Deploy(tmp_path, scripted(enter_ts=[ts[3], ts[12]], exit_ts=[ts[8]]), bars,
                 broker_factory=lambda: venue)
    dep.to(10)
    assert dep.s.holding.is_flat
    venue.positions[SYM] = D("0.25")                   # someone bought on the venue by hand
    venue.foreign.append("manual-order-1")              # placed outside tradewarden
    lost = f"tw-{dep.dep_id}-999-entry"                 # one of ours the ledger never saw
    venue.foreign.append(lost)
    dep.restart()
    diffs = dep.ledger.reconciliations(deployment_id=dep.dep_id, status="open")
    assert sorted((d["kind"], d["symbol"], d["ours"], d["venue"]) for d in diffs) == [
        ("order_unknown", None, "none", lost), ("position", SYM, "0", "0.25")]
    (ext,) = q(dep.db, "select message from events where kind = 'external'")
    assert ext[0].startswith("order manual-order-1 at the venue was not placed by this deployment")
    d = dep.to(12)
    assert (d.action, d.reason) == ("blocked", "reconcile_mismatch")
    dep.restart()                                       # still different: new rows, old resolved
    assert len(dep.ledger.reconciliations(deployment_id=dep.dep_id, status="resolved")) == 2
    status, result = dep.command("accept", actor="dana")
    assert status == "done"
    assert "BTC-USD position 0 -> 0.25" in result and f"{lost} left to the venue" in result
    assert dep.s.holding.quantity == D("0.25") and dep.s.state == OPEN
    accepted = dep.ledger.reconciliations(deployment_id=dep.dep_id, status="accepted")
    assert {r["resolved_by"] for r in accepted} == {"dana"} and len(accepted) == 2
    (fill,) = q(dep.db, "select liquidity, quantity, fee from fills where liquidity='adopted'")
    assert fill == ("adopted", "0.25", "0")
    assert not dep.engine.blocks
    dep.restart()                                       # agrees now: nothing open, nothing new
    assert dep.ledger.reconciliations(deployment_id=dep.dep_id, status="open") == []
    assert dep.command("accept")[0] == "refused"


def test_a_halt_and_its_loss_streak_survive_a_restart(tmp_path, scripted, bars):
    ts = bars.ts
    dep = Deploy(tmp_path, scripted(enter_ts=[ts[2]], exit_ts=[ts[4]]), bars,
                 risk=RiskConfig(max_consecutive_losses=1))
    dep.to(6)
    halted = dep.engine.risk.halted(SYM, int(ts[6]))
    pnl = D(q(dep.db, "select pnl from trades")[0][0])
    dep.restart()
    assert dep.engine.risk.halted(SYM, int(ts[6])) == halted
    assert (halted is not None) == (pnl < 0)


def test_flatten_at_a_venue_checks_what_the_venue_holds_afterwards(tmp_path, scripted, bars):
    ts = bars.ts
    venue = _venue()
    dep = Deploy(tmp_path, scripted(enter_ts=[ts[2], ts[9]], exit_ts=[ts[6]]), bars,
                 broker_factory=lambda: venue)
    dep.to(4)
    assert dep.s.state == OPEN
    status, result = dep.command("flatten", actor="frank")
    assert status == "done" and result == "1 position(s) closed (BTC-USD); the venue agrees"
    assert venue.positions[SYM] == 0 and dep.s.holding.is_flat
    dep.to(11)
    assert dep.s.state == OPEN
    venue.positions[SYM] += D("0.1")                   # the close leaves something at the venue
    status, result = dep.command("flatten")
    assert status == "done"
    assert result.endswith("; the venue still shows position BTC-USD: ledger 0, venue 0.10000000")
    assert "reconcile_mismatch" in dep.engine.blocks


class BufferedStopVenue(ScriptedVenue):
    """A venue whose stop-loss becomes a stop-limit 5 % below its trigger (Coinbase's
    attached bracket) and that takes no entries for symbols it lists."""

    blocked: dict = {}

    def worst_stop_fill(self, trigger, symbol):
        return (trigger * D("0.95")).quantize(D("0.01"))

    def entry_blocks(self):
        return dict(self.blocked)


def test_risk_sizes_by_the_worst_fill_the_venue_stop_allows(tmp_path, scripted, bars):
    ts = bars.ts
    strategy = scripted(enter_ts=[ts[3]], stop_frac=0.02)
    plain = Deploy(tmp_path / "a", strategy, bars, broker_factory=_venue)
    buffered = Deploy(tmp_path / "b", strategy, bars, broker_factory=lambda: BufferedStopVenue(
        {SYM: COINBASE_SPECS[SYM]}, market_parts=1))
    for dep in (plain, buffered):
        dep.to(3)
    (qa,), (qb,) = (q(d.db, "select quantity from orders where role = 'entry'")[0] for d in (plain, buffered))
    close, stop = float(bars.close[3]), float(bars.close[3]) * 0.98
    worst = float((D(repr(stop)) * D("0.95")).quantize(D("0.01")))
    # 1 % of equity at risk: the distance to the worst fill, not to the trigger
    assert float(qb) == pytest.approx(float(qa) * (close - stop) / (close - worst), rel=1e-3)
    (legs,) = q(buffered.db, "select stop_price from orders where role = 'stop_loss'")
    assert D(legs[0]) == COINBASE_SPECS[SYM].floor_price(stop)    # the trigger itself is unchanged


def test_a_venue_status_blocks_entries_in_that_symbol(tmp_path, scripted, bars):
    ts = bars.ts
    venue = BufferedStopVenue({SYM: COINBASE_SPECS[SYM]}, market_parts=1)
    dep = Deploy(tmp_path, scripted(enter_ts=[ts[3], ts[6]]), bars, broker_factory=lambda: venue)
    dep.engine.set_venue_blocks({SYM: "coinbase product BTC-USD: cancel_only"}, int(ts[2]))
    d = dep.to(3)
    assert (d.action, d.reason) == ("blocked", "venue_status")
    (detail,) = q(dep.db, "select detail from decisions where action = 'blocked'")[0]
    assert json.loads(detail)["why"] == "coinbase product BTC-USD: cancel_only"
    dep.engine.set_venue_blocks({}, int(ts[4]))
    assert dep.to(6).action == "enter_long"
    events = [m for (m,) in q(dep.db, "select message from events where kind in ('block','unblock') order by seq")]
    assert events == ["venue_status: coinbase product BTC-USD: cancel_only",
                      "venue_status: the venue takes entries again"]


class BothLegsVenue(ScriptedVenue):
    """Like Coinbase: a native bracket needs both a take-profit and a stop-loss."""

    def submit(self, order, legs=()):
        if len(legs) == 1:
            raise ValueError(f"order {order.client_order_id}: an attached bracket needs both legs")
        return super().submit(order, legs)


def test_an_order_the_adapter_refuses_before_sending_is_rejected_not_fatal(tmp_path, scripted, bars):
    ts = bars.ts
    venue = BothLegsVenue({SYM: COINBASE_SPECS[SYM]}, market_parts=1, native_bracket=True,
                          native_oco=True)
    dep = Deploy(tmp_path, scripted(enter_ts=[ts[3], ts[6]], stop_frac=0.05), bars,
                 broker_factory=lambda: venue)
    assert dep.to(3).action == "enter_long"
    rows = q(dep.db, "select role, status, status_reason from orders order by role")
    assert [r[:2] for r in rows] == [("entry", "rejected"), ("stop_loss", "rejected")]
    assert rows[0][2] == ("refused before sending: order " + rows[0][2].split("order ")[1])
    assert "needs both legs" in rows[0][2]
    assert dep.s.state == FLAT and venue.submitted == []
    dep.restart()                                      # nothing left to resend
    assert dep.to(6).action == "enter_long" and dep.s.state == FLAT


def test_a_stop_loss_the_venue_ends_while_the_position_is_held_is_an_alert(tmp_path, scripted, bars):
    from fake_venue import End

    from tradewarden.execution.base import OrderEventKind
    ts = bars.ts
    venue = ScriptedVenue({SYM: COINBASE_SPECS[SYM]}, market_parts=1, native_bracket=True,
                          native_oco=True,
                          script={(SYM, int(ts[6])): [End("stop_loss", OrderEventKind.CANCELLED,
                                                          "cancelled by the exchange")]})
    dep = Deploy(tmp_path, scripted(enter_ts=[ts[3]], stop_frac=0.05, tp_frac=0.5), bars,
                 broker_factory=lambda: venue)
    dep.to(7)
    assert dep.s.state == OPEN
    (alert,) = q(dep.db, "select symbol, message from events where kind = 'alert'")
    assert alert[0] == SYM and "stop-loss was cancelled by the venue (cancelled by the exchange)" in alert[1]


def test_a_venue_balance_rounded_below_the_ledger_by_less_than_a_cent_is_no_difference(
        tmp_path, scripted, bars):
    venue = _venue()
    dep = Deploy(tmp_path, scripted(), bars, broker_factory=lambda: venue)
    cash = dep.engine.accounts[0].cash
    venue.balances = {"USD": cash - D("0.0049")}
    dep.restart()
    assert dep.ledger.reconciliations(deployment_id=dep.dep_id, status="open") == []
    venue.balances = {"USD": cash - D("0.02")}
    dep.restart()
    (diff,) = dep.ledger.reconciliations(deployment_id=dep.dep_id, status="open")
    assert diff["kind"] == "balance"
