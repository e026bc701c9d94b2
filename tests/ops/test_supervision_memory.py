"""The daemon's context building (ops/supervision.py ``Supervisor.context_extras``): the
record's parts of a reasoning context for a deployment, its working memory written, and
a failure of memory that leaves the decision without those parts instead of stopping it."""

from __future__ import annotations

from types import SimpleNamespace

from tradewarden.agent import records
from tradewarden.agent.memory import WorkingMemory
from tradewarden.agent.reasoning import ReasoningContext
from tradewarden.ledger import Ledger
from tradewarden.ops.supervision import Supervisor

T0 = 1_767_225_600


class _Host:
    """What ``context_extras`` uses of its Supervisor: the clock, the log, the market."""

    def __init__(self) -> None:
        self.clock = SimpleNamespace(now=lambda: T0 + 7200)
        self.warnings: list[tuple[str, dict]] = []
        self.log = SimpleNamespace(warning=lambda event, **kw: self.warnings.append((event, kw)))

    def market_context(self, slot):
        return {"vix": 27.5, "market_open": True}


def _slot(ledger):
    dep = SimpleNamespace(ledger=ledger, deployment_id="dep1", name="alpha",
                          kernel=SimpleNamespace(engine=SimpleNamespace(
                              syms=[SimpleNamespace(name="NVDA")])))
    return SimpleNamespace(opened=SimpleNamespace(dep=dep), extras={})


def test_context_extras_recall_and_remember(tmp_path):
    led = Ledger(tmp_path / "l.db")
    for i, vix in enumerate((14.0, 28.0)):
        records.record_decision(
            led, deployment_id="dep1", run_id="r1", ts=T0 + i * 60, event_kind="entry_signal",
            reasoner="rules", autonomy_level=2, symbol="NVDA", context={"market": {"vix": vix}},
            output={"action": "EXECUTE_TRADES", "target_symbols": ["NVDA"], "confidence": 1.0,
                    "reasoning": "The strategy signals an entry in NVDA"})
    with led.engine.begin() as conn:             # yesterday's reflection (L3's table)
        conn.exec_driver_sql(
            "insert into reflections (scope, day, ts, created_at, model, summary, content, "
            "proposals) values ('dep1', '2025-12-31', ?, 'x', 'rules', 'a calm day', "
            "'{\"lessons\": [\"wait for volume\"]}', '[]')", (T0 - 3600,))
    host, slot = _Host(), _slot(led)
    extras = Supervisor.context_extras(host, slot, kind="entry_signal", symbol="NVDA",
                                       payload={"signal": "sell_put"})
    ctx = ReasoningContext(**extras)
    assert [d["action"] for d in ctx.recent_decisions] == ["EXECUTE_TRADES"] * 2
    assert ctx.similar_past[0]["summary"].startswith("EXECUTE_TRADES NVDA on entry_signal. VIX "
                                                     "high (28)")       # the VIX now is high
    assert ctx.performance == {"trades": 0} and ctx.experiments == []
    assert (ctx.reflection["day"], ctx.reflection["lessons"]) == ("2025-12-31", ["wait for volume"])
    memory = slot.extras["memory"]                  # loaded once per opening, written through
    again = WorkingMemory.load(led, "dep1", now=T0)
    assert again.get("market_context") == {"vix": 27.5, "market_open": True}
    assert again.get("recent_decisions") == memory.get("recent_decisions") == ctx.recent_decisions
    # the governor's call has no event: the deployment's symbols make the query
    assert len(Supervisor.context_extras(host, slot)["similar_past"]) == 2
    assert host.warnings == []
    led.close()


def test_a_memory_failure_leaves_the_context_without_it(tmp_path):
    led = Ledger(tmp_path / "l.db")
    with led.engine.begin() as conn:
        conn.exec_driver_sql("drop table agent_memory")
    host = _Host()
    assert Supervisor.context_extras(host, _slot(led), kind="entry_signal", symbol="NVDA") == {}
    ((event, kw),) = host.warnings
    assert event == "context_memory_failed" and kw["deployment"] == "alpha"
    assert "agent_memory" in kw["error"]
    assert Supervisor.context_extras(host, SimpleNamespace(opened=None, extras={})) == {}
    led.close()
