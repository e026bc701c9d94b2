"""The agent's ledger records (agent/records.py) on SQLite and on a real PostgreSQL server:
committed before returning (another connection sees them), read back parsed, checked."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tradewarden.agent import records
from tradewarden.ledger import Ledger, LedgerError

T0 = 1_767_225_600          # 2026-01-01T00:00:00Z
CTX = {"positions": [{"symbol": "BTC-USD", "quantity": Decimal("0.5")}],
       "account": {"equity": 10_000.0}, "anomalies": []}


def _output(action="EXECUTE_TRADES", confidence=0.9):
    return {"action": action, "target_symbols": ["BTC-USD"], "confidence": confidence,
            "reasoning": "entry signal"}


def test_decisions_and_verdicts_are_committed_at_once_and_read_back(ledger_db, query):
    led = Ledger(ledger_db)
    d1 = records.record_decision(led, deployment_id="dep1", run_id="run1", ts=T0,
                                 event_kind="entry_signal", reasoner="rules", autonomy_level=2,
                                 context=CTX, output=_output(), symbol="BTC-USD", decision_seq=7)
    # another connection (another process) sees it before any further call
    rows = query(ledger_db, "select id, deployment_id, action, confidence, autonomy_level, "
                            "decision_seq, context from agent_decisions")
    assert rows[0][:6] == (d1, "dep1", "EXECUTE_TRADES", 0.9, 2, 7)
    assert json.loads(rows[0][6])["positions"][0]["quantity"] == "0.5"   # Decimal as text
    v1 = records.record_verdict(led, agent_decision_id=d1, deployment_id="dep1", ts=T0,
                                autonomy_level=2, verdict="queue", reason="new symbol",
                                triggers=["first_trade_in_symbol"])
    assert query(ledger_db, "select verdict, triggers from governor_verdicts where id = "
                            f"{v1}") == [("queue", '["first_trade_in_symbol"]')]
    d2 = records.record_decision(led, deployment_id="dep1", run_id="run1", ts=T0 + 60,
                                 event_kind="exit_signal", reasoner="rules", autonomy_level=2,
                                 context={}, output=_output("CLOSE_POSITION", None))
    records.record_decision(led, deployment_id="dep2", run_id="run9", ts=T0 + 30,
                            event_kind="entry_signal", reasoner="rules", autonomy_level=1,
                            context={}, output=_output())
    mine = records.agent_decisions(led, deployment_id="dep1")
    assert [r["id"] for r in mine] == [d1, d2]                           # newest last
    assert mine[0]["context"]["account"] == {"equity": 10000.0}
    assert mine[0]["output"]["action"] == "EXECUTE_TRADES"
    assert [(v["verdict"], v["triggers"]) for v in mine[0]["verdicts"]] == [
        ("queue", ["first_trade_in_symbol"])]
    assert mine[1]["verdicts"] == [] and mine[1]["confidence"] is None
    assert [r["id"] for r in records.agent_decisions(led, limit=2)] == [d1 + 2, d2]
    assert [r["id"] for r in records.agent_decisions(led, since_ts=T0 + 30)] == [d1 + 2, d2]
    one = records.agent_decision(led, d1)
    assert one["symbol"] == "BTC-USD" and len(one["verdicts"]) == 1
    assert records.agent_decision(led, 999) is None
    led.close()


def test_a_decision_output_model_is_stored_as_json(tmp_path):
    from tradewarden.agent.reasoning import Action, DecisionOutput
    led = Ledger(tmp_path / "l.db")
    out = DecisionOutput(action=Action.CLOSE_POSITION, target_symbols=("ETH-USD",),
                         confidence=1.0, reasoning="exit signal")
    did = records.record_decision(led, deployment_id=None, run_id=None, ts=T0,
                                  event_kind="exit_signal", reasoner="rules", autonomy_level=1,
                                  context={}, output=out)
    row = records.agent_decision(led, did)
    assert row["action"] == "CLOSE_POSITION" and row["output"]["target_symbols"] == ["ETH-USD"]
    led.close()


@pytest.mark.parametrize("kwargs, message", [
    ({"autonomy_level": 5}, "decision autonomy level 5: give an autonomy level 1-4"),
    ({"ts": float("nan")}, "decision ts nan"),
    ({"context": ["x"]}, "decision context ['x']: give a mapping"),
    ({"output": {"confidence": 0.5}}, "decision action None"),
    ({"output": _output(confidence=1.5)}, "decision confidence 1.5: give a number from 0 to 1"),
    ({"event_kind": ""}, "event kind '': give 1-32 characters"),
])
def test_bad_decisions_are_refused_naming_the_field(tmp_path, kwargs, message):
    led = Ledger(tmp_path / "l.db")
    args = {"deployment_id": "d", "run_id": "r", "ts": T0, "event_kind": "entry_signal",
            "reasoner": "rules", "autonomy_level": 1, "context": {}, "output": _output()}
    with pytest.raises(LedgerError, match=message.replace("[", r"\[").replace("]", r"\]")):
        records.record_decision(led, **{**args, **kwargs})
    assert records.agent_decisions(led) == []
    with pytest.raises(LedgerError, match="verdict 'maybe': use one of execute, queue"):
        records.record_verdict(led, agent_decision_id=1, deployment_id="d", ts=T0,
                               autonomy_level=1, verdict="maybe", reason="x")
    led.close()


def test_autonomy_level_is_the_latest_change_else_the_default(ledger_db, query):
    led = Ledger(ledger_db)
    assert records.autonomy_level(led, "dep1", 1) == 1
    records.record_autonomy_change(led, deployment_id="dep1", ts=T0, from_level=None, to_level=1,
                                   kind="initial", reason="new deployment", actor="governor")
    records.record_autonomy_change(led, deployment_id="dep1", ts=T0 + 1, from_level=1,
                                   to_level=2, kind="promotion", reason="30 days", actor="governor")
    records.record_autonomy_change(led, deployment_id="dep2", ts=T0 + 2, from_level=None,
                                   to_level=4, kind="command", reason="trusted", actor="alice")
    assert query(ledger_db, "select count(*) from autonomy_changes") == [(3,)]
    assert records.autonomy_level(led, "dep1", 1) == 2
    assert records.autonomy_level(led, "dep2", 1) == 4
    assert [c["kind"] for c in records.autonomy_changes(led, "dep1")] == ["initial", "promotion"]
    for bad, message in [({"to_level": 0}, "to level 0"), ({"kind": "bump"}, "kind 'bump'"),
                         ({"actor": ""}, "actor ''"), ({"from_level": 7}, "from level 7")]:
        with pytest.raises(LedgerError, match=message):
            records.record_autonomy_change(led, **{"deployment_id": "dep1", "ts": T0,
                                                   "from_level": 2, "to_level": 1,
                                                   "kind": "demotion", "reason": "r",
                                                   "actor": "governor", **bad})
    assert len(records.autonomy_changes(led, "dep1")) == 2
    led.close()


def test_anomalies_open_once_per_kind_and_symbol_and_clear(ledger_db, query):
    led = Ledger(ledger_db)
    a1 = records.open_anomaly(led, deployment_id="dep1", kind="data_gap", ts=T0, symbol="SPY",
                              detail={"minutes": 31})
    assert a1 is not None
    assert records.open_anomaly(led, deployment_id="dep1", kind="data_gap", ts=T0 + 5,
                                symbol="SPY") is None                    # already open
    a2 = records.open_anomaly(led, deployment_id="dep1", kind="data_gap", ts=T0, symbol="QQQ")
    a3 = records.open_anomaly(led, deployment_id="dep1", kind="vix_spike", ts=T0)
    a4 = records.open_anomaly(led, deployment_id="dep2", kind="vix_spike", ts=T0)
    assert len({a1, a2, a3, a4}) == 4
    assert query(ledger_db, "select count(*) from anomalies where status = 'open'") == [(4,)]
    opened = records.anomalies(led, deployment_id="dep1")
    assert [(r["kind"], r["symbol"]) for r in opened] == [
        ("data_gap", "SPY"), ("data_gap", "QQQ"), ("vix_spike", None)]
    assert opened[0]["detail"] == {"minutes": 31} and opened[2]["detail"] is None
    assert records.clear_anomaly(led, a3, ts=T0 + 60) is True
    assert records.clear_anomaly(led, a3, ts=T0 + 61) is False           # already cleared
    assert records.clear_anomalies(led, deployment_id="dep1", kind="data_gap", symbol="QQQ",
                                   ts=T0 + 70) == 1
    assert records.clear_anomalies(led, deployment_id="dep1", kind="data_gap", ts=T0 + 80) == 1
    assert records.anomalies(led, deployment_id="dep1") == []
    cleared = records.anomalies(led, deployment_id="dep1", status="cleared")
    assert sorted(r["cleared_ts"] for r in cleared) == [T0 + 60, T0 + 70, T0 + 80]
    assert len(records.anomalies(led, status=None)) == 4
    # cleared: the same flag may be raised again
    assert records.open_anomaly(led, deployment_id="dep1", kind="data_gap", ts=T0 + 90,
                                symbol="SPY") is not None
    with pytest.raises(LedgerError, match="anomaly status 'closed'"):
        records.anomalies(led, status="closed")
    led.close()


def test_costs_are_recorded_and_read_from_a_time(ledger_db, query):
    led = Ledger(ledger_db)
    c1 = records.record_cost(led, ts=T0, provider="anthropic", model="claude-x", call_type="decide",
                             input_tokens=1200, output_tokens=300, cost_usd=Decimal("0.0123"),
                             cache_read_tokens=800, deployment_id="dep1", agent_decision_id=3)
    records.record_cost(led, ts=T0 + 86_400, provider="anthropic", model="claude-x",
                        call_type="reflect", input_tokens=10, output_tokens=5, cost_usd=0.001)
    assert query(ledger_db, f"select input_tokens, cache_write_tokens, cost_usd from "
                            f"reasoning_costs where id = {c1}") == [(1200, 0, 0.0123)]
    assert [c["call_type"] for c in records.costs(led)] == ["decide", "reflect"]
    assert [c["call_type"] for c in records.costs(led, since_ts=T0 + 1)] == ["reflect"]
    with pytest.raises(LedgerError, match="input tokens -1"):
        records.record_cost(led, ts=T0, provider="p", model="m", call_type="c", input_tokens=-1,
                            output_tokens=0, cost_usd=0)
    with pytest.raises(LedgerError, match="cost_usd inf"):
        records.record_cost(led, ts=T0, provider="p", model="m", call_type="c", input_tokens=1,
                            output_tokens=0, cost_usd=float("inf"))
    assert len(records.costs(led)) == 2
    led.close()


def test_a_database_error_names_the_record(tmp_path):
    led = Ledger(tmp_path / "l.db")
    with led.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE anomalies")
    with pytest.raises(LedgerError, match="cannot record anomaly data_gap: .*anomalies"):
        records.open_anomaly(led, deployment_id="d", kind="data_gap", ts=T0)
    led.close()
