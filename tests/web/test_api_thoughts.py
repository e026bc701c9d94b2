"""``GET /api/thoughts`` (the thought log) and the model calls in ``GET
/api/decisions/{id}``, over the API tests' paper desk with model calls recorded as the
Anthropic reasoner records them (agent/calls.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradewarden.agent.calls import record_call
from tradewarden.agent.costs import Usage, price_call
from tradewarden.ledger import Ledger
from tradewarden.ops.reasoning_settings import DEFAULT_PRICES


@pytest.fixture(scope="module")
def thoughts(built):
    """Two calls of the desk's decision and one reflection, a minute before its clock."""
    now = built.clock.now()
    led = Ledger(built.db)
    common = {"provider": "anthropic", "prices": DEFAULT_PRICES, "deployment_id": built.dep_id,
              "request": {"context": {"positions": []}}, "latency_ms": 800}
    ids = [record_call(led, ts=now - 60, cycle="event:5", call_type="decide", attempt=1,
                       model="claude-sonnet-5-5", status="timeout", response=None, parsed=None,
                       error="no answer in 30 s", usage=None,
                       agent_decision_id=built.decision_id, **common),
           record_call(led, ts=now - 50, cycle="event:5", call_type="decide", attempt=2,
                       model="claude-sonnet-5-5", status="ok",
                       response={"content": [{"type": "thinking", "thinking": "Breakout."}]},
                       parsed={"action": "EXECUTE_TRADES", "reasoning": "ETH broke out"},
                       error=None, usage=Usage(2000, 300), agent_decision_id=built.decision_id,
                       outcome="queued", **common),
           record_call(led, ts=now - 40, cycle="reflection:desk:x", call_type="reflect",
                       attempt=1, model="claude-haiku-5-5", status="ok",
                       response={"content": [{"type": "text", "text": "Quiet day."}]},
                       parsed=None, error=None, usage=Usage(900, 100), **common)]
    led.close()
    return now, ids


def test_the_thought_log_of_the_clock_day_by_cycle(reader, built, thoughts):
    now, ids = thoughts
    day = datetime.fromtimestamp(now, UTC).date().isoformat()
    got = reader.get("/api/thoughts")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["day"] == day
    assert [(c["id"], c["cycle"], c["status"], c["deployment"]) for c in body["calls"]] == [
        (ids[0], "event:5", "timeout", "desk"), (ids[1], "event:5", "ok", "desk"),
        (ids[2], "reflection:desk:x", "ok", "desk")]
    assert [c["thought"] for c in body["calls"]] == ["no answer in 30 s", "ETH broke out",
                                                     "Quiet day."]
    want = (Decimal(repr(price_call(DEFAULT_PRICES, "claude-sonnet-5-5", Usage(2000, 300))))
            + Decimal(repr(price_call(DEFAULT_PRICES, "claude-haiku-5-5", Usage(900, 100)))))
    assert Decimal(body["cost_usd"]) == want
    assert reader.get(f"/api/thoughts?day={day}&deployment=desk").json()["calls"] == body["calls"]
    assert reader.get("/api/thoughts?day=2001-01-01").json()["calls"] == []
    bad = reader.get("/api/thoughts?day=29-11-2026")
    assert bad.status_code == 400 and "give a date as YYYY-MM-DD" in bad.json()["error"]
    assert reader.get("/api/thoughts?deployment=nope").status_code == 404


def test_a_decisions_audit_carries_its_model_calls(reader, built, thoughts):
    _, ids = thoughts
    audit = reader.get(f"/api/decisions/{built.decision_id}").json()
    assert [c["id"] for c in audit["calls"]] == ids[:2]
    assert audit["calls"][1]["response"]["content"][0]["thinking"] == "Breakout."
    assert audit["calls"][0]["error"] == "no answer in 30 s"
