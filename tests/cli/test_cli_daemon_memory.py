"""``warden daemon context`` shows the record's parts of the context (agent/memory.py,
recall.py, outcomes.py) on a real paper deployment's ledger
(``tests/ops/oversight_support.Desk``): each decision's result, the performance window,
patterns and the closest past decisions; it writes nothing."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

from typer.testing import CliRunner

from tradewarden.agent import records
from tradewarden.agent.outcomes import record_outcomes
from tradewarden.agent.recall import SemanticRecall
from tradewarden.cli import app

sys.path.insert(0, str(Path(__file__).parents[1] / "ops"))
from oversight_support import Desk


def test_context_shows_results_patterns_performance_and_similar_decisions(tmp_path):
    desk = Desk(tmp_path).build()
    led = desk.ledger
    with sqlite3.connect(desk.db) as c:
        (entry_seq, entry_ts), = c.execute(
            "select o.decision_seq, t.entry_ts from trades t join orders o on o.run_id = "
            "t.run_id and o.client_order_id = t.entry_order_id").fetchall()
    # the agent decision of the BTC entry that closed (bar 1), as the governor records it
    btc = records.record_decision(
        led, deployment_id=desk.dep_id, run_id=desk.run_id, ts=int(entry_ts) - 3600,
        event_kind="entry_signal", reasoner="rules", autonomy_level=1, symbol="BTC-USD",
        decision_seq=int(entry_seq), context={"market": {"vix": 26.0}},
        output={"action": "EXECUTE_TRADES", "target_symbols": ["BTC-USD"], "confidence": 1.0,
                "reasoning": "BTC broke its 6-bar high. Volume confirms."})
    records.record_verdict(led, agent_decision_id=btc, deployment_id=desk.dep_id,
                           ts=int(entry_ts), autonomy_level=1, verdict="queue", reason="L1")
    assert SemanticRecall(led).index() == 2
    assert record_outcomes(led, desk.dep_id, now=int(entry_ts) + 86_400)["taken"] == 1
    with sqlite3.connect(desk.db) as c:
        before = c.execute("select count(*) from agent_memory").fetchone()[0]
        (pnl,) = c.execute("select pnl from trades").fetchone()
    r = CliRunner().invoke(app, ["daemon", "context", "--db", str(desk.db), "--query",
                                 "BTC-USD breakout with VIX above 25", "--k", "1"])
    assert r.exit_code == 0, r.output
    out = r.output
    assert f"decision {btc} " in out and f"-> taken pnl {float(pnl):,.2f} (" in out
    assert "  performance: 1 trades, win rate " in out
    assert "  pattern taken EXECUTE_TRADES vix_high: 1, hit rate " in out
    (similar,) = [line for line in out.splitlines() if line.startswith("  similar ")]
    assert f"decision {btc} " in similar and "VIX high (26)" in similar
    r = CliRunner().invoke(app, ["daemon", "context", "--db", str(desk.db), "--json"])
    (d,) = json.loads(r.output)["deployments"]
    assert d["performance"]["trades"] == 1 and d["patterns"][0]["n"] == 1
    assert len(d["similar_past"]) == 2            # default query: the latest decision's
    results = {x["id"]: x["result"] for x in d["recent_decisions"]}
    assert results[btc]["kind"] == "taken" and results[desk.decision_id] is None
    with sqlite3.connect(desk.db) as c:            # a reading command: nothing written
        assert c.execute("select count(*) from agent_memory").fetchone()[0] == before
    r = CliRunner().invoke(app, ["daemon", "context", "--db", str(desk.db), "--k", "0"])
    assert r.exit_code == 2 and "--k" in r.output
    led.close()
