"""Model calls recorded in full with their cost (agent/calls.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tradewarden.agent import calls as C
from tradewarden.agent import records
from tradewarden.agent.costs import UnknownModelPrice, Usage
from tradewarden.ledger import Ledger, LedgerError
from tradewarden.ops.reasoning_settings import DEFAULT_PRICES

T0 = 1_767_225_600          # 2026-01-01T00:00:00Z
REQ = {"model": "claude-sonnet-5-5", "system": "You reason.", "max_tokens": 2048,
       "messages": [{"role": "user", "content": "context"}],
       "context": {"equity": Decimal("10000.50")}}
RESP = {"content": [{"type": "thinking", "thinking": "Volume is thin."},
                    {"type": "text", "text": '{"action": "MONITOR_ONLY"}'}]}


def _call(led, **kw):
    args = {"ts": T0, "cycle": "event:7", "call_type": "decide", "attempt": 1,
            "provider": "anthropic", "model": "claude-sonnet-5-5", "status": "ok",
            "request": REQ, "response": RESP, "error": None, "latency_ms": 850,
            "parsed": {"action": "MONITOR_ONLY", "confidence": 0.4},
            "usage": Usage(1000, 500, 2000, 0), "prices": DEFAULT_PRICES,
            "deployment_id": "dep1", "event_id": 7, "autonomy_level": 2}
    args.update(kw)
    return C.record_call(led, **args)


def test_a_call_and_its_cost_are_committed_together_and_read_back(ledger_db, query):
    led = Ledger(ledger_db)
    cid = _call(led)
    price = DEFAULT_PRICES["claude-sonnet-5-5"]
    want = (1000 * price.input_per_mtok + 500 * price.output_per_mtok
            + 2000 * price.cache_read_per_mtok) / 1e6
    # another connection sees both rows, linked
    (row,) = query(ledger_db, "select status, cost_usd, cache_read_tokens, request from "
                              f"reasoning_calls where id = {cid}")
    assert row[:3] == ("ok", pytest.approx(want), 2000)
    assert json.loads(row[3])["context"]["equity"] == "10000.50"
    assert query(ledger_db, "select call_id, model, call_type, input_tokens, cost_usd from "
                            "reasoning_costs") == [(cid, "claude-sonnet-5-5", "decide", 1000,
                                                    pytest.approx(want))]
    (got,) = C.calls(led)
    assert got["response"]["content"][0]["thinking"] == "Volume is thin."
    assert got["parsed"] == {"action": "MONITOR_ONLY", "confidence": 0.4}
    assert got["outcome"] is None and got["agent_decision_id"] is None
    led.close()


def test_outcome_and_decision_are_linked_later_and_filters_select(ledger_db, query):
    led = Ledger(ledger_db)
    first = _call(led, status="invalid", parsed=None, error="confidence: not a number")
    second = _call(led, attempt=2, ts=T0 + 5)
    reflect = _call(led, cycle="reflection:dep1:2026-01-01", call_type="reflect",
                    model="claude-haiku-5-5", ts=T0 + 86_400, deployment_id="dep2")
    assert C.set_call_outcome(led, second, outcome="queued", agent_decision_id=42)
    assert not C.set_call_outcome(led, 999_999, outcome="queued")
    assert [c["id"] for c in C.calls(led, agent_decision_id=42)] == [second]
    assert query(ledger_db, f"select agent_decision_id from reasoning_costs where call_id = "
                            f"{second}") == [(42,)]
    assert [c["id"] for c in C.calls(led, cycle="event:7")] == [first, second]
    assert [c["id"] for c in C.calls(led, since_ts=T0 + 1, until_ts=T0 + 86_400)] == [second]
    assert [c["id"] for c in C.calls(led, deployment_id="dep2")] == [reflect]
    assert C.calls(led, cycle="event:7")[1]["outcome"] == "queued"
    led.close()


def test_a_capped_call_costs_nothing_and_has_no_response(tmp_path):
    led = Ledger(tmp_path / "l.db")
    cid = _call(led, status="capped", response=None, parsed=None, usage=None, latency_ms=None,
                model="not-priced")
    (row,) = C.calls(led)
    assert (row["id"], row["cost_usd"], row["input_tokens"], row["response"]) == (cid, 0.0, 0, None)
    assert records.costs(led)[0]["call_id"] == cid
    with pytest.raises(LedgerError, match="capped call was never sent"):
        _call(led, status="capped")
    led.close()


@pytest.mark.parametrize("kwargs, message", [
    ({"status": "done"}, "call status 'done': use one of ok, invalid"),
    ({"attempt": 0}, "call attempt 0"),
    ({"cycle": ""}, "call cycle ''"),
    ({"request": ["x"]}, "call request"),
    ({"autonomy_level": 5}, "call autonomy level 5"),
    ({"latency_ms": -1}, "latency_ms -1"),
    ({"usage": {"input_tokens": 1}}, "call usage"),
])
def test_bad_calls_are_refused_naming_the_field_and_nothing_is_written(tmp_path, kwargs, message):
    led = Ledger(tmp_path / "l.db")
    with pytest.raises(LedgerError, match=message):
        _call(led, **kwargs)
    assert C.calls(led) == [] and records.costs(led) == []
    led.close()


def test_an_unpriced_model_writes_nothing(tmp_path):
    led = Ledger(tmp_path / "l.db")
    with pytest.raises(UnknownModelPrice, match="'gpt-x' has no price"):
        _call(led, model="gpt-x")
    assert C.calls(led) == [] and records.costs(led) == []
    led.close()


def test_the_old_cost_record_still_works_without_a_call(tmp_path):
    led = Ledger(tmp_path / "l.db")
    records.record_cost(led, ts=T0, provider="anthropic", model="m", call_type="decide",
                        input_tokens=1, output_tokens=1, cost_usd=0.5)
    assert records.costs(led)[0]["call_id"] is None
    led.close()


def test_the_thought_log_groups_a_day_by_cycle_with_the_first_thought(ledger_db):
    led = Ledger(ledger_db)
    dep = led.open_deployment("desk", mode="paper", config="{}", config_hash="0" * 64)
    did = dep["deployment_id"]
    a1 = _call(led, ts=T0 + 10, cycle="event:7", status="invalid", parsed=None,
               response={"content": [{"type": "thinking", "thinking": "\n  Thin volume.\nMore."}]},
               error="bad", deployment_id=did)
    r1 = _call(led, ts=T0 + 20, cycle="reflection:desk:2026-01-01", call_type="reflect",
               parsed=None, response={"content": [{"type": "text", "text": "A quiet day."}]},
               deployment_id=did)
    a2 = _call(led, ts=T0 + 30, cycle="event:7", attempt=2, deployment_id=did,
               parsed={"action": "MONITOR_ONLY", "reasoning": "x" * 300})
    _call(led, ts=T0 - 1, cycle="event:6", deployment_id=did)           # the day before
    _call(led, ts=T0 + 40, cycle="event:8", deployment_id="other", status="error",
          response=None, parsed=None, error="HTTP 529 overloaded\ntraceback", usage=None)
    log = C.thought_log(led, day="2026-01-01")
    assert [(r["id"], r["cycle"], r["attempt"]) for r in log][:3] == [
        (a1, "event:7", 1), (a2, "event:7", 2), (r1, "reflection:desk:2026-01-01", 1)]
    assert [r["thought"] for r in log] == ["Thin volume.", "x" * 157 + "...", "A quiet day.",
                                           "HTTP 529 overloaded"]
    assert log[1]["action"] == "MONITOR_ONLY" and log[0]["deployment"] == "desk"
    assert log[3]["deployment"] is None and log[3]["cost_usd"] == 0.0
    assert log[0]["time"] == "2026-01-01T00:00:10Z"
    assert [r["id"] for r in C.thought_log(led, day="2026-01-01", deployment="desk")] == [
        a1, a2, r1]
    assert [r["id"] for r in C.thought_log(led, day="2026-01-01", deployment=did)] == [a1, a2, r1]
    with pytest.raises(LedgerError, match="deployment 'nope': no such deployment"):
        C.thought_log(led, day="2026-01-01", deployment="nope")
    with pytest.raises(LedgerError, match="day '1/1/2026': give a date as YYYY-MM-DD"):
        C.thought_log(led, day="1/1/2026")
    led.close()


def test_a_decisions_calls_include_its_cycles_unlinked_attempts(tmp_path):
    led = Ledger(tmp_path / "l.db")
    failed = _call(led, status="timeout", response=None, parsed=None, usage=None)
    linked = _call(led, attempt=2, agent_decision_id=5)
    _call(led, cycle="event:8", agent_decision_id=6)                   # another decision's
    _call(led, cycle="event:7", attempt=3, agent_decision_id=6)        # linked elsewhere
    assert [c["id"] for c in C.decision_calls(led, 5)] == [linked]
    assert [c["id"] for c in C.decision_calls(led, 5, event_id=7)] == [failed, linked]
    assert C.first_thought({"parsed": None, "response": None, "error": None}) == ""
    # the Anthropic reasoner keeps the message body beside its HTTP attempts
    wrapped = {"http_attempts": [{"status": 200}], "body": {"type": "message", "content": [
        {"type": "thinking", "thinking": "Spread is wide."}, {"type": "text", "text": "{}"}]}}
    assert C.first_thought({"parsed": None, "response": wrapped}) == "Spread is wide."
    assert [b["type"] for b in C.response_blocks(wrapped)] == ["thinking", "text"]
    assert C.response_blocks({"http_attempts": []}) == [] and C.response_blocks("x") == []
    led.close()
