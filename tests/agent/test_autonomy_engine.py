"""A real paper engine through the autonomy governor at L1: every entry signal is recorded
as an agent decision and becomes a pending approval; nothing is sent to the broker."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

from tradewarden.agent import records
from tradewarden.agent.autonomy import AutonomyGovernor, AutonomySettings
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
    gov = AutonomyGovernor(ledger, dep_id, "k", clock, AutonomySettings())
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
    ledger.close()
