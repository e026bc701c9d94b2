"""The governor can queue: a typed verdict, and a queued intent persisted in
``approvals`` with the risk figures it was checked against."""

from __future__ import annotations

import json
import sqlite3

from tradewarden.agent.governor import GOVERNORS, ApprovalGovernor, AutonomousGovernor, MonitorOnlyGovernor
from tradewarden.domain import Verdict
from tradewarden.engine import RunConfig
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import run_replay

SYM = "BTC-USD"


def test_verdicts_are_typed():
    assert AutonomousGovernor().authorize(SYM, "enter_long", {}).verdict is Verdict.EXECUTE
    assert MonitorOnlyGovernor().authorize(SYM, "enter_long", {}).verdict is Verdict.MONITOR
    assert ApprovalGovernor().authorize(SYM, "enter_long", {}).verdict is Verdict.QUEUE
    assert ApprovalGovernor().authorize(SYM, "exit", {}).verdict is Verdict.EXECUTE
    assert set(GOVERNORS) == {"autonomous", "monitor", "approval"}


def test_queued_entries_are_persisted_with_their_risk_snapshot(tmp_path):
    led = Ledger(tmp_path / "l.db")
    result = run_replay(RunConfig(symbols=(SYM,), end="2024-06-30", governor="approval"), led,
                        run_id="q1")
    pending = led.approvals(run_id="q1", status="pending")
    led.close()
    with sqlite3.connect(tmp_path / "l.db") as c:
        queued = c.execute("select seq, ts, detail from decisions where action='queued' "
                           "order by seq").fetchall()
        traded = c.execute("select count(*) from orders").fetchone()[0]
    assert result.counts.trades_closed == 0 and traded == 0      # nothing sent without a person
    assert len(queued) == len(pending) > 3
    for (seq, ts, detail), a in zip(queued, pending):
        assert (a["decision_seq"], a["ts"], a["symbol"], a["action"]) == (seq, ts, SYM, "enter_long")
        assert a["status"] == "pending" and a["acted_by"] is None and a["id"] >= 1
        intent = json.loads(a["intent"])
        assert intent["quantity"] == json.loads(detail)["quantity"]      # the sized order
        assert intent["account"]["name"] == SYM and intent["account"]["equity"] > 0
        assert set(intent["breakers"]) >= {"halts", "consecutive_losses", "day_realized"}
        assert intent["stop_loss"] < intent["price"] < intent["take_profit"]
    assert [a["id"] for a in pending] == sorted(a["id"] for a in pending)
