"""Outcome feedback (agent/outcomes.py) on a real paper engine over the bundled BTC-USD
candles: each closed trade is linked to the agent decision that opened it, each skipped
candidate is scored against the price a day later, once (idempotent), and the outcome
reaches the decision's embedding; the performance window and patterns follow from it."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from tradewarden.agent import records
from tradewarden.agent.autonomy import (
    AutonomyGovernor,
    AutonomySettings,
    engine_context,
)
from tradewarden.agent.outcomes import (
    market_state,
    patterns,
    performance,
    recent_decisions,
    record_outcomes,
    vix_band,
)
from tradewarden.agent.reasoning import Action, DecisionOutput, RulesReasoner
from tradewarden.agent.recall import SemanticRecall
from tradewarden.data import load_market_data
from tradewarden.domain import COINBASE_SPECS
from tradewarden.engine import WallClock
from tradewarden.ledger import Ledger, LedgerError
from tradewarden.ops.kernel import assemble
from tradewarden.strategy import build_strategy

SYM = "BTC-USD"
DAY = 86_400


class FakeTime:
    def __init__(self, t: float) -> None:
        self.t = t

    def time(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class EveryThirdSkipped:
    """The rules, except that every third entry signal is only monitored."""

    name = "every-third"

    def __init__(self) -> None:
        self.entries = 0

    def decide(self, event, context):
        if event.kind == "entry_signal":
            self.entries += 1
            if self.entries % 3 == 0:
                return DecisionOutput(action=Action.MONITOR_ONLY, target_symbols=(event.symbol,),
                                      confidence=0.9, reasoning="Skip this one. Testing.")
        return RulesReasoner().decide(event, context)


@pytest.fixture(scope="module")
def traded(tmp_path_factory):
    """A deployment at L4 that traded 400 hourly bars of BTC-USD (about 17 days)."""
    bars = load_market_data(None).series[SYM].slice(0, 400)
    db = tmp_path_factory.mktemp("outcomes") / "k.db"
    ledger = Ledger(db)
    dep_id = ledger.open_deployment("alpha", mode="paper", config="{}",
                                    config_hash="h")["deployment_id"]
    for run_id in ("old", "k"):
        ledger.create_run({"run_id": run_id, "mode": "paper", "capital_mode": "independent",
                           "market_time_basis": "test", "data_integrity": "ok",
                           "config_hash": "h", "config": "{}", "strategy": "donchian",
                           "symbols": "[]", "timeframe": "1h",
                           "initial_capital": Decimal(10000)})
    # an earlier run of the deployment bought the symbol once: it is not new
    records.record_decision(ledger, deployment_id=dep_id, run_id="old", ts=int(bars.ts[0]) - 3600,
                            event_kind="exit_signal", reasoner="rules", autonomy_level=4,
                            context={}, output={"action": "CLOSE_POSITION", "confidence": 1.0})
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql(
            "insert into fills values ('old', 1, 'o-entry', 'BTC-USD', 'buy', 'entry', '0.4', "
            "'50000', '50000', '0', 'taker', 0, 'x')")
    ft = FakeTime(float(bars.close_ts[0]))
    clock = WallClock(ft.time, ft.sleep)
    kernel = None
    vix = {"level": 15.0}
    gov = AutonomyGovernor(ledger, dep_id, "k", clock,
                           AutonomySettings(regime_min_windows=10**6, demote_losses=1000, demote_loss_window=1000,
                                            min_confidence=0.0),
                           reasoner=EveryThirdSkipped(),
                           context=lambda: engine_context(kernel.engine),
                           market=lambda: {"vix": vix["level"], "vix_open": vix["level"]})
    gov.set_level(4, "alice", "trusted", int(ft.t))
    kernel = assemble("paper", run_id="k", strategy=build_strategy("donchian"),
                      instruments={SYM: COINBASE_SPECS[SYM]}, ledger=ledger,
                      capital=Decimal(10000), governor=gov, clock=clock, deployment_id=dep_id)

    def feed():
        for i in range(len(bars)):
            ft.t = float(bars.close_ts[i]) + 5
            vix["level"] = 14.0 + (i // 100) * 4.0        # 14, 18, 22, 26, 30, 34
            yield {SYM: bars.slice(i, i + 1)}

    kernel.run(feed(), close=None)
    yield ledger, dep_id, db, bars, int(ft.t)
    ledger.close()


def test_closed_trades_and_skipped_candidates_get_their_outcome_once(traded):
    ledger, dep_id, db, bars, now = traded
    recall = SemanticRecall(ledger)
    assert recall.index(deployment_id=dep_id) > 0
    counts = record_outcomes(ledger, dep_id, now=now)
    with sqlite3.connect(db) as c:
        trades = c.execute("select t.trade_id, t.pnl, t.return_pct, t.entry_ts, o.decision_seq "
                           "from trades t join orders o on o.run_id = t.run_id and "
                           "o.client_order_id = t.entry_order_id where t.run_id = 'k' "
                           "order by t.exit_ts").fetchall()
        taken = c.execute("select agent_decision_id, trade_id, pnl, return_pct from "
                          "decision_outcomes where kind = 'taken' order by closed_ts").fetchall()
        skipped = c.execute("select agent_decision_id, opened_ts, closed_ts, return_pct, "
                            "horizon_s from decision_outcomes where kind = 'skipped' "
                            "order by agent_decision_id").fetchall()
    assert len(trades) >= 2 and counts == {"taken": len(trades), "skipped": len(skipped)}
    decisions = {d["id"]: d for d in records.agent_decisions(ledger, deployment_id=dep_id)}
    for (trade_id, pnl, ret, _entry_ts, seq), (dec_id, t_id, o_pnl, o_ret) in zip(trades, taken):
        dec = decisions[dec_id]
        # the decision of the entry order's bar, in the same run
        assert (t_id, dec["run_id"], dec["decision_seq"]) == (trade_id, "k", seq)
        assert (dec["event_kind"], dec["action"]) == ("entry_signal", "EXECUTE_TRADES")
        assert Decimal(o_pnl) == Decimal(pnl) and o_ret == pytest.approx(ret)
    # every monitored entry signal that has a close a day later is scored by that close
    monitored = [d for d in decisions.values()
                 if d["event_kind"] == "entry_signal" and d["action"] == "MONITOR_ONLY"]
    assert monitored and all(d["verdicts"][-1]["verdict"] == "monitor" for d in monitored)
    index = {int(t): i for i, t in enumerate(bars.ts)}
    scored = {row[0]: row for row in skipped}
    for d in monitored:
        with sqlite3.connect(db) as c:
            (bar_ts,) = c.execute("select ts from decisions where run_id = 'k' and seq = ?",
                                  (d["decision_seq"],)).fetchone()
        i = index[bar_ts]
        if i + 24 >= len(bars):
            assert d["id"] not in scored             # the day has not passed yet: later
            continue
        _id, opened, closed, ret, horizon = scored[d["id"]]
        assert (opened, closed, horizon) == (bar_ts, int(bars.ts[i + 24]), DAY)
        assert ret == pytest.approx((bars.close[i + 24] / bars.close[i] - 1) * 100)
    assert set(scored) <= {d["id"] for d in monitored}
    # idempotent: nothing more, nothing changed
    assert record_outcomes(ledger, dep_id, now=now + 60) == {"taken": 0, "skipped": 0}
    with sqlite3.connect(db) as c:
        assert c.execute("select count(*) from decision_outcomes").fetchone()[0] == len(
            taken) + len(skipped)
        # the outcome reached the decision's embedding
        emb = dict(c.execute("select agent_decision_id, outcome from memory_embeddings "
                             "where outcome is not null").fetchall())
    assert set(emb) == {t[0] for t in taken} | set(scored)
    recent = recent_decisions(ledger, dep_id, limit=500)
    by_id = {r["id"]: r for r in recent}
    assert by_id[taken[0][0]]["outcome"]["trade_id"] == taken[0][1]
    assert by_id[taken[0][0]]["verdict"] == "execute"
    with pytest.raises(LedgerError, match="outcome horizon 0"):
        record_outcomes(ledger, dep_id, now=now, horizon_s=0)


def test_performance_and_patterns_follow_the_record(traded):
    ledger, dep_id, db, _bars, now = traded
    record_outcomes(ledger, dep_id, now=now)
    with sqlite3.connect(db) as c:
        pnls = [Decimal(p) for (p,) in c.execute(
            "select pnl from trades where run_id = 'k' order by exit_ts desc limit 3")]
        equity = [e for (e,) in c.execute(
            "select equity from decisions where run_id = 'k' and ts >= (select min(entry_ts) "
            "from (select entry_ts from trades where run_id = 'k' order by exit_ts desc "
            "limit 3)) order by seq")]
        outcomes = c.execute("select kind, return_pct from decision_outcomes").fetchall()
    perf = performance(ledger, dep_id, last_n=3)
    assert perf["trades"] == 3 and perf["wins"] == sum(p > 0 for p in pnls)
    assert Decimal(perf["pnl"]) == sum(pnls)
    assert perf["return_pct"] == pytest.approx((equity[-1] / equity[0] - 1) * 100)
    peak = max(equity[:equity.index(min(equity)) + 1])
    assert perf["max_drawdown_pct"] <= (min(equity) / peak - 1) * 100 + 1e-9
    assert performance(ledger, "nobody") == {"trades": 0}
    pats = patterns(ledger, dep_id)
    assert sum(p["n"] for p in pats) == len(outcomes)
    taken = [r for k, r in outcomes if k == "taken"]
    assert sum(p["n"] for p in pats if p["kind"] == "taken") == len(taken)
    for p in pats:
        assert p["market_state"].startswith("vix_") and 0 <= p["hit_rate"] <= 1
    states = {p["market_state"] for p in pats}
    assert len(states) >= 2                     # VIX moved through its bands during the run


def test_vix_bands():
    assert [vix_band(v) for v in (12, 19.99, 20, 24.9, 25, 29.9, 30, 80)] == [
        "calm", "calm", "elevated", "elevated", "high", "high", "very high", "very high"]
    assert vix_band(None) is None and vix_band("nan") is None
    assert market_state({"vix": 31}) == "vix_very_high" and market_state({}) == "unknown"


def test_a_rejected_approval_is_skipped_and_a_pending_one_waits(tmp_path):
    led = Ledger(tmp_path / "l.db")
    t0 = 1_767_225_600
    with led.engine.begin() as conn:            # the symbol's closes, one an hour for 2 days
        for i in range(48):
            conn.exec_driver_sql(
                "insert into decisions (run_id, seq, ts, symbol, action, reason, state, close) "
                "values ('r1', ?, ?, 'ETH-USD', 'hold', 'x', 'flat', ?)",
                (i, t0 + i * 3600, 100.0 + i))
    ids = {}
    for seq, status in ((2, "rejected"), (3, "pending"), (4, "expired")):
        ids[status] = records.record_decision(
            led, deployment_id="dep1", run_id="r1", ts=t0 + seq * 3600,
            event_kind="entry_signal", reasoner="rules", autonomy_level=1, symbol="ETH-USD",
            decision_seq=seq, context={"market": {"vix": 21.0}},
            output={"action": "EXECUTE_TRADES", "confidence": 1.0})
        records.record_verdict(led, agent_decision_id=ids[status], deployment_id="dep1",
                               ts=t0 + seq * 3600, autonomy_level=1, verdict="queue",
                               reason="L1")
        with led.engine.begin() as conn:
            conn.exec_driver_sql(
                "insert into approvals (run_id, deployment_id, decision_seq, ts, symbol, action, "
                "intent, status) values ('r1', 'dep1', ?, ?, 'ETH-USD', 'enter_long', '{}', ?)",
                (seq, t0 + seq * 3600, status))
    # before the day has passed nothing is scored; after it, the final ones are
    assert record_outcomes(led, "dep1", now=t0 + 10 * 3600) == {"taken": 0, "skipped": 0}
    assert record_outcomes(led, "dep1", now=t0 + 40 * 3600) == {"taken": 0, "skipped": 2}
    found = {r["id"]: r["outcome"] for r in recent_decisions(led, "dep1")}
    assert found[ids["pending"]] is None
    assert found[ids["rejected"]]["return_pct"] == pytest.approx((126 / 102 - 1) * 100)
    assert found[ids["expired"]]["horizon_s"] == DAY
    assert [(p["kind"], p["market_state"], p["n"], p["hit_rate"]) for p in patterns(led, "dep1")
            ] == [("skipped", "vix_elevated", 2, 1.0)]
    led.close()
