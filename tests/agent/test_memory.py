"""Working memory (agent/memory.py) on SQLite and PostgreSQL: written through one
transaction per change, reloaded after a process is killed between updates, rebuilt
from the ledger's history when empty, and filled by the context builder."""

from __future__ import annotations

import multiprocessing
import os
import signal
from decimal import Decimal

import pytest

from tradewarden.agent import records
from tradewarden.agent.memory import (
    MEMORY_KEYS,
    WorkingMemory,
    build_context_extras,
    has_history,
    rebuild_values,
)
from tradewarden.agent.reasoning import ReasoningContext
from tradewarden.ledger import Ledger, LedgerError

T0 = 1_767_225_600          # 2026-01-01T00:00:00Z
DEP = "dep1"


def _decision(led, ts, symbol="BTC-USD", action="EXECUTE_TRADES", vix=None, seq=None):
    return records.record_decision(
        led, deployment_id=DEP, run_id="r1", ts=ts, event_kind="entry_signal", reasoner="rules",
        autonomy_level=2, context={"market": {} if vix is None else {"vix": vix}},
        output={"action": action, "target_symbols": [symbol], "confidence": 0.9,
                "reasoning": "The strategy signals an entry. Nothing else."},
        symbol=symbol, decision_seq=seq)


def _trade(led, trade_id, pnl, entry_ts, exit_ts, ret):
    with led.engine.begin() as conn:
        conn.exec_driver_sql(
            "insert into trades (run_id, trade_id, symbol, side, quantity, entry_ts, entry_time, "
            "entry_price, exit_ts, exit_time, exit_price, fees, pnl, return_pct, exit_reason, "
            "entry_order_id, exit_order_id, holding_seconds) values "
            f"('r1', '{trade_id}', 'BTC-USD', 'long', '1', {entry_ts}, 'x', '100', {exit_ts}, "
            f"'x', '110', '0', '{pnl}', {ret}, 'signal', 'e-{trade_id}', 'x-{trade_id}', "
            f"{exit_ts - entry_ts})")


def test_set_get_update_are_committed_and_reloaded(ledger_db, query):
    led = Ledger(ledger_db)
    mem = WorkingMemory.load(led, DEP, now=T0)
    assert mem.as_dict() == {} and not mem.rebuilt            # no rows, no history
    stored = mem.set("market_context", {"vix": 21.5, "cash": Decimal("10.50")}, ts=T0)
    assert stored == {"vix": 21.5, "cash": "10.50"}           # as read back: Decimal as text
    # committed before set returned: another connection sees it
    assert query(ledger_db, "select key, ts from agent_memory where scope = 'dep1'") == [
        ("market_context", T0)]
    mem.update("market_context", {"vix_open": 20.0}, ts=T0 + 1)
    mem.update("recent_decisions", lambda old: (old or []) + [{"id": 1}], ts=T0 + 2)
    mem.update("recent_decisions", lambda old: (old or []) + [{"id": 2}], ts=T0 + 3)
    again = WorkingMemory.load(led, DEP, now=T0 + 9)
    assert again.as_dict() == mem.as_dict() == {
        "market_context": {"vix": 21.5, "cash": "10.50", "vix_open": 20.0},
        "recent_decisions": [{"id": 1}, {"id": 2}]}
    assert again.updated_ts("recent_decisions") == T0 + 3
    assert WorkingMemory.load(led, "other", now=T0).as_dict() == {}     # scopes are apart
    with pytest.raises(LedgerError, match="memory key 'mood': use one of strategy_state"):
        mem.set("mood", 1, ts=T0)
    with pytest.raises(LedgerError, match="cannot merge a mapping into list"):
        mem.update("recent_decisions", {"x": 1}, ts=T0)
    with pytest.raises(LedgerError, match="not JSON-serialisable"):
        mem.set("anomalies", {"x": float("nan")}, ts=T0)
    with pytest.raises(LedgerError, match="memory ts nan"):
        mem.set("anomalies", [], ts=float("nan"))
    assert mem.get("anomalies") is None                        # nothing half-written
    led.close()


def _updater(db: str, conn) -> None:
    """The killed process: one committed update per step, acknowledged after each."""
    led = Ledger(db)
    mem = WorkingMemory.load(led, DEP, now=T0)
    i = 0
    while True:
        mem.update("recent_decisions", lambda old, i=i: (old or []) + [i], ts=T0 + i)
        conn.send(i)
        i += 1


def test_a_process_killed_between_updates_leaves_what_it_committed(ledger_db):
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_updater, args=(ledger_db, child), daemon=True)
    proc.start()
    acked = -1
    try:
        while acked < 7:
            assert parent.poll(60), "the updater stopped acknowledging"
            acked = parent.recv()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    while parent.poll(0):                     # acknowledgements sent before the kill
        acked = parent.recv()
    led = Ledger(ledger_db)
    value = WorkingMemory.load(led, DEP, now=T0).get("recent_decisions")
    # every acknowledged update is there, whole, in order; at most the one in flight more
    assert value == list(range(len(value))) and len(value) in (acked + 1, acked + 2)
    led.close()


def test_an_empty_memory_is_rebuilt_from_the_history(ledger_db, query):
    led = Ledger(ledger_db)
    assert not has_history(led, DEP)
    records.record_autonomy_change(led, deployment_id=DEP, ts=T0, from_level=None, to_level=2,
                                   kind="initial", reason="start", actor="governor")
    d1 = _decision(led, T0 + 60, vix=27.0, seq=1)
    records.record_verdict(led, agent_decision_id=d1, deployment_id=DEP, ts=T0 + 60,
                           autonomy_level=2, verdict="execute", reason="ok")
    d2 = _decision(led, T0 + 120, symbol="ETH-USD", action="MONITOR_ONLY", vix=14.0, seq=2)
    records.open_anomaly(led, deployment_id=DEP, kind="data_gap", ts=T0 + 100, symbol="ETH-USD")
    _trade(led, "t1", "10", T0 + 60, T0 + 3600, 10.0)
    _trade(led, "t2", "-4", T0 + 4000, T0 + 7200, -4.0)
    assert has_history(led, DEP) and not has_history(led, "stranger")
    mem = WorkingMemory.load(led, DEP, now=T0 + 9000)
    assert mem.rebuilt
    assert set(mem.as_dict()) == set(MEMORY_KEYS)
    assert [d["id"] for d in mem.get("recent_decisions")] == [d1, d2]
    assert mem.get("recent_decisions")[0]["verdict"] == "execute"
    assert mem.get("recent_decisions")[0]["reasoning"] == "The strategy signals an entry"
    assert mem.get("market_context") == {"vix": 14.0}           # the latest decision's
    assert [(a["kind"], a["symbol"]) for a in mem.get("anomalies")] == [("data_gap", "ETH-USD")]
    assert mem.get("autonomy_metrics")["level"] == 2
    perf = mem.get("performance_window")
    assert (perf["trades"], perf["wins"], perf["win_rate"], perf["pnl"]) == (2, 1, 0.5, "6")
    # written at once, every key: a process loading it next reads the same
    rows = query(ledger_db, "select count(*) from agent_memory where scope = 'dep1'")
    assert rows == [(len(MEMORY_KEYS),)]
    again = WorkingMemory.load(led, DEP, now=T0 + 9999)
    assert not again.rebuilt and again.as_dict() == mem.as_dict()
    assert again.as_dict() == {k: v for k, v in rebuild_values(led, DEP).items()}
    # the daemon-wide scope sees every deployment's decisions
    everyone = WorkingMemory.load(led, "*", now=T0 + 9000)
    assert everyone.rebuilt and len(everyone.get("recent_decisions")) == 2
    led.close()


def test_context_extras_fill_the_reasoning_context_and_the_memory(tmp_path):
    led = Ledger(tmp_path / "l.db")
    d1 = _decision(led, T0 + 60, vix=27.0, seq=1)
    _trade(led, "t1", "10", T0 + 60, T0 + 3600, 10.0)

    class Recall:                  # the recall's interface; test_recall.py tests the real one
        def __init__(self):
            self.asked = []

        def index(self, *, deployment_id=None):
            return 0

        def retrieve_similar_context(self, query, k, *, deployment_id=None, symbol=None):
            self.asked.append((query, k, deployment_id, symbol))
            return [{"summary": "s", "action": "EXECUTE_TRADES", "outcome": None,
                     "similarity": 0.5}]

    recall = Recall()
    extras = build_context_extras(
        led, DEP, query="entry in BTC-USD", k=3, now=T0 + 4000, symbol="BTC-USD", recall=recall,
        experiments=lambda ledger, dep, *, now, symbol: [{"id": 7, "arm": "variant"}],
        reflection=lambda ledger, dep, *, now: {"day": "2026-01-01", "summary": "calm"})
    assert recall.asked == [("entry in BTC-USD", 3, DEP, "BTC-USD")]
    ctx = ReasoningContext(**extras)                            # the model takes them as they are
    assert [d["id"] for d in ctx.recent_decisions] == [d1]
    assert ctx.performance["trades"] == 1 and ctx.performance["win_rate"] == 1.0
    assert ctx.experiments == [{"id": 7, "arm": "variant"}] and ctx.reflection["day"] == "2026-01-01"
    assert ctx.similar_past[0]["similarity"] == 0.5
    mem = WorkingMemory.load(led, DEP, now=T0 + 5000)
    assert mem.get("recent_decisions") == extras["recent_decisions"]
    assert mem.get("performance_window") == extras["performance"]
    no_query = build_context_extras(led, DEP, query=None, now=T0 + 4000, recall=recall)
    assert no_query["similar_past"] == [] and len(recall.asked) == 1
    with pytest.raises(LedgerError, match="recall k 0: give at least 1"):
        build_context_extras(led, DEP, query="x", k=0, now=T0, recall=recall)
    led.close()
