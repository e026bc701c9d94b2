"""A real paper engine through the autonomy governor at L1: every entry signal is recorded
as an agent decision and becomes a pending approval; nothing is sent to the broker."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

from tradewarden.agent import records
from tradewarden.agent.autonomy import (
    AutonomyGovernor,
    AutonomySettings,
    engine_context,
)
from tradewarden.data import load_market_data
from tradewarden.domain import COINBASE_SPECS
from tradewarden.engine import WallClock
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import assemble
from tradewarden.strategy import build_strategy

SYM = "BTC-USD"


class FakeTime:
    def __init__(self) -> None:
        self.t = 0.0

    def time(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_entries_become_pending_approvals_with_an_agent_decision_each(tmp_path):
    bars = load_market_data(None).series[SYM].slice(0, 400)
    db = tmp_path / "k.db"
    ledger = Ledger(db)
    dep = ledger.open_deployment("alpha", mode="paper", config="{}", config_hash="h")
    dep_id = dep["deployment_id"]
    ledger.create_run({"run_id": "k", "mode": "paper", "capital_mode": "independent",
                       "market_time_basis": "test", "data_integrity": "ok", "config_hash": "h",
                       "config": "{}", "strategy": "donchian", "symbols": "[]", "timeframe": "1h",
                       "initial_capital": Decimal(10000)})
    ft = FakeTime()
    ft.t = float(bars.close_ts[0])
    clock = WallClock(ft.time, ft.sleep)
    kernel = None
    gov = AutonomyGovernor(ledger, dep_id, "k", clock, AutonomySettings(),
                           context=lambda: engine_context(kernel.engine))
    assert gov.level() == 1
    kernel = assemble("paper", run_id="k", strategy=build_strategy("donchian"),
                      instruments={SYM: COINBASE_SPECS[SYM]}, ledger=ledger,
                      capital=Decimal(10000), governor=gov, clock=clock, deployment_id=dep_id)

    def feed():
        for i in range(len(bars)):
            ft.t = float(bars.close_ts[i]) + 5
            yield {SYM: bars.slice(i, i + 1)}

    counts = kernel.run(feed(), close=None)
    with sqlite3.connect(db) as c:
        queued = c.execute("select seq, ts, detail from decisions where action = 'queued' "
                           "order by seq").fetchall()
        assert c.execute("select count(*) from orders").fetchone()[0] == 0     # nothing sent
        approvals = c.execute("select decision_seq, action, status, deployment_id, intent "
                              "from approvals order by id").fetchall()
    assert counts.trades_opened == 0 and len(queued) >= 2           # donchian entered several times
    assert [(a[0], a[1], a[2], a[3]) for a in approvals] == [
        (seq, "enter_long", "pending", dep_id) for seq, _ts, _d in queued]
    decisions = records.agent_decisions(ledger, deployment_id=dep_id)
    assert len(decisions) == len(queued)                              # one per entry signal
    for (_seq, ts, detail), row, appr in zip(queued, decisions, approvals):
        detail = json.loads(detail)
        assert detail["agent_decision_id"] == row["id"] and detail["governor"] == "queue"
        assert json.loads(appr[4])["sizing"]["agent_decision_id"] == row["id"]
        assert (row["event_kind"], row["action"], row["symbol"], row["autonomy_level"]) == (
            "entry_signal", "EXECUTE_TRADES", SYM, 1)
        assert row["context"]["event"]["payload"]["quantity"] == detail["quantity"]
        (verdict,) = row["verdicts"]                  # never traded: a person decides
        assert verdict["verdict"] == "queue" and verdict["reason"].startswith(
            "a person must decide: first_trade")
        assert verdict["triggers"][0] == {"trigger": "first_trade", "symbol": SYM}
        assert row["run_id"] == "k" and row["ts"] >= ts
        assert row["context"]["positions"] == []                       # nothing was approved
        account = row["context"]["account"]
        assert account["accounts"] == {SYM: {"cash": "10000", "equity": 10000.0}}
        assert (account["open_positions"], account["paused"]) == (0, False)
    ledger.close()


def test_at_l4_a_known_symbol_trades_and_the_exit_sees_the_position(tmp_path):
    bars = load_market_data(None).series[SYM].slice(0, 400)
    db = tmp_path / "k.db"
    ledger = Ledger(db)
    dep_id = ledger.open_deployment("alpha", mode="paper", config="{}",
                                    config_hash="h")["deployment_id"]
    for run_id in ("old", "k"):
        ledger.create_run({"run_id": run_id, "mode": "paper", "capital_mode": "independent",
                           "market_time_basis": "test", "data_integrity": "ok",
                           "config_hash": "h", "config": "{}", "strategy": "donchian",
                           "symbols": "[]", "timeframe": "1h",
                           "initial_capital": Decimal(10000)})
    # an earlier run of the deployment bought BTC-USD once, for 20000 (the recent average)
    records.record_decision(ledger, deployment_id=dep_id, run_id="old", ts=int(bars.ts[0]) - 3600,
                            event_kind="entry_signal", reasoner="rules", autonomy_level=4,
                            context={}, output={"action": "EXECUTE_TRADES", "confidence": 1.0})
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql(
            "insert into fills values ('old', 1, 'o-entry', 'BTC-USD', 'buy', 'entry', '0.4', "
            "'50000', '50000', '0', 'taker', 0, 'x')")
    ft = FakeTime()
    ft.t = float(bars.close_ts[0])
    clock = WallClock(ft.time, ft.sleep)
    kernel = None
    gov = AutonomyGovernor(ledger, dep_id, "k", clock,
                           AutonomySettings(regime_min_windows=10**6),   # regime not judged
                           context=lambda: engine_context(kernel.engine))
    gov.set_level(4, "alice", "trusted", int(ft.t))
    kernel = assemble("paper", run_id="k", strategy=build_strategy("donchian"),
                      instruments={SYM: COINBASE_SPECS[SYM]}, ledger=ledger,
                      capital=Decimal(10000), governor=gov, clock=clock, deployment_id=dep_id)

    def feed():
        for i in range(len(bars)):
            ft.t = float(bars.close_ts[i]) + 5
            yield {SYM: bars.slice(i, i + 1)}

    counts = kernel.run(feed(), close=None)
    assert counts.trades_closed >= 1
    mine = [d for d in records.agent_decisions(ledger, deployment_id=dep_id) if d["run_id"] == "k"]
    exits = [d for d in mine if d["event_kind"] == "exit_signal"]
    assert exits and all(d["verdicts"][0]["verdict"] == "execute" for d in mine)
    (pos,) = exits[0]["context"]["positions"]
    assert pos["symbol"] == SYM and Decimal(pos["quantity"]) > 0
    assert exits[0]["output"]["target_position_ids"] == [SYM]
    with sqlite3.connect(db) as c:
        assert c.execute("select count(*) from approvals").fetchone()[0] == 0
    ledger.close()
