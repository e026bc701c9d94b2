"""``warden daemon audit --decision-id`` with the model calls, ``warden daemon thoughts``
and ``warden daemon costs`` with the cap, on a real paper deployment's ledger
(``tests/ops/oversight_support.Desk``) with model calls recorded as the Anthropic
reasoner records them (agent/calls.py)."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradewarden.agent.calls import calls, record_call
from tradewarden.agent.costs import Usage
from tradewarden.cli import app
from tradewarden.ops.reasoning_settings import DEFAULT_PRICES

sys.path.insert(0, str(Path(__file__).parents[1] / "ops"))
from oversight_support import Desk  # noqa: E402

SONNET, HAIKU = "claude-sonnet-5-5", "claude-haiku-5-5"
THINKING = "\n".join(f"step {i}: volume and breadth check" for i in range(1, 31))


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    d = Desk(tmp_path_factory.mktemp("desk")).build()
    now = int(time.time())
    d.now = now
    d.day = datetime.fromtimestamp(now, UTC).date().isoformat()
    common = {"provider": "anthropic", "prices": DEFAULT_PRICES, "deployment_id": d.dep_id,
              "autonomy_level": 1, "request": {"model": SONNET, "system": "You reason.",
                                               "context": {"equity": "10000.00"}}}
    d.calls = [
        record_call(d.ledger, ts=now - 60, cycle="event:9", call_type="decide", attempt=1,
                    model=SONNET, status="invalid", response={"content": [
                        {"type": "text", "text": "{\"action\": \"BUY\"}"}]},
                    parsed=None, error="action: 'BUY' is not a valid action", latency_ms=900,
                    usage=Usage(3000, 200), agent_decision_id=d.decision_id, **common),
        record_call(d.ledger, ts=now - 55, cycle="event:9", call_type="decide", attempt=2,
                    model=SONNET, status="ok", response={"content": [
                        {"type": "thinking", "thinking": THINKING},
                        {"type": "text", "text": "{\"action\": \"EXECUTE_TRADES\"}"}]},
                    parsed={"action": "EXECUTE_TRADES", "confidence": 0.7,
                            "reasoning": "ETH broke its 6-bar high\nsecond line"},
                    error=None, latency_ms=1200, usage=Usage(3100, 400, 1000, 0),
                    agent_decision_id=d.decision_id, outcome="queued", **common),
        record_call(d.ledger, ts=now - 30, cycle=f"reflection:desk:{d.day}", call_type="reflect",
                    attempt=1, model=HAIKU, status="ok", response={"content": [
                        {"type": "text", "text": "Entries on thin volume lost twice."}]},
                    parsed=None, error=None, latency_ms=400, usage=Usage(5000, 300), **common),
    ]
    yield d
    d.ledger.close()


def warden(desk, *args, env=None):
    return CliRunner().invoke(app, ["daemon", *args, "--db", str(desk.db)],
                              env={"COLUMNS": "200", **(env or {})})


def one_error(r, text):
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and text in r.output, r.output
    assert r.output.strip().count("\n") == 0 and "Traceback" not in r.output


def test_audit_shows_every_model_call_of_the_decision_folded(desk):
    r = warden(desk, "audit", "--decision-id", str(desk.decision_id))
    assert r.exit_code == 0, r.output
    out = r.output.split("\nmodel calls: ")[1]
    head, *calls = out.split("\ncall ")
    assert head.startswith("2, ") and head.endswith(" USD")
    first, second = calls
    assert first.startswith(f"{desk.calls[0]} (decide, attempt 1) at ")
    assert "anthropic claude-sonnet-5-5, status invalid, 900 ms, autonomy L1" in first
    assert "  parsed: no; action -; outcome -" in first
    assert "  error: action: 'BUY' is not a valid action" in first
    assert "  parsed: yes; action EXECUTE_TRADES; outcome queued" in second
    assert "tokens: input 3,100, output 400, cache read 1,000, cache write 0" in second
    # the reasoning as returned, folded after 12 lines; the context sent as JSON
    thinking = second.split("  thinking (as returned):\n")[1].split("\n  text (as returned)")[0]
    assert thinking.splitlines()[0] == "    step 1: volume and breadth check"
    assert thinking.splitlines()[-1] == "    ... 18 more line(s); --full shows everything"
    sent = second.split("  context sent:\n")[1].split("\n  response:")[0]
    assert json.loads(sent)["context"] == {"equity": "10000.00"}
    # long texts in the JSON are cut (the reasoning is shown above, line by line)
    assert f"... ({len(THINKING):,} characters; --full shows all)" in second
    full = warden(desk, "audit", "--decision-id", str(desk.decision_id), "--full").output
    assert "step 30: volume and breadth check" in full and "more line(s)" not in full
    found = json.loads(warden(desk, "audit", "--decision-id", str(desk.decision_id),
                              "--json").output)
    assert [c["id"] for c in found["calls"]] == desk.calls[:2]
    assert found["calls"][1]["response"]["content"][0]["thinking"] == THINKING


def test_the_thought_log_lists_every_call_by_cycle(desk):
    r = warden(desk, "thoughts", "--day", desk.day, "--json")
    assert r.exit_code == 0, r.output
    log = json.loads(r.output)
    assert log["day"] == desk.day
    rows = log["calls"]
    assert [(c["cycle"], c["attempt"], c["deployment"]) for c in rows] == [
        ("event:9", 1, "desk"), ("event:9", 2, "desk"), (f"reflection:desk:{desk.day}", 1, "desk")]
    assert [c["thought"] for c in rows] == ["{\"action\": \"BUY\"}", "ETH broke its 6-bar high",
                                            "Entries on thin volume lost twice."]
    assert rows[1]["action"] == "EXECUTE_TRADES" and rows[1]["outcome"] == "queued"
    r = warden(desk, "thoughts", "--day", desk.day, "--deployment", "desk")
    assert r.exit_code == 0, r.output
    assert f"thought log {desk.day} UTC: 3 call(s) in 2 cycle(s)" in r.output
    assert "ETH broke its 6-bar high" in r.output and "claude-haiku-5-5" in r.output
    assert "second line" not in r.output
    assert warden(desk, "thoughts", "--day", "2001-01-01", "--json").output.count('"id"') == 0
    one_error(warden(desk, "thoughts", "--day", "yesterday"), "--day yesterday: give a date")
    one_error(warden(desk, "thoughts", "--deployment", "nope"), "deployment 'nope': no such")


def test_costs_show_the_cap_and_today_share_and_write_csv(desk, tmp_path):
    spent = sum(c["cost_usd"] for c in calls(desk.ledger))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[ledger]\ndb = "{desk.db}"\n[reasoning]\ndaily_cost_cap_usd = 0.5\n')
    r = CliRunner().invoke(app, ["daemon", "costs", "--config", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    c = json.loads(r.output)
    assert c["cap_usd"] == 0.5 and c["today_usd"] == pytest.approx(spent)
    assert c["today_share"] == pytest.approx(spent / 0.5)
    r = CliRunner().invoke(app, ["daemon", "costs", "--config", str(cfg)],
                           env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert f"daily cap 0.50 USD; today ({desk.day} UTC) {Decimal(repr(spent)):.4f} USD = " \
           f"{spent / 0.5:.1%} of the cap" in r.output
    r = warden(desk, "costs", "--csv", "-")
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert [(x["model"], x["call_type"], x["calls"]) for x in rows] == [
        (HAIKU, "reflect", "1"), (SONNET, "decide", "2"), ("", "", "3")]
    assert rows[-1]["day"] == "total" and float(rows[-1]["cost_usd"]) == pytest.approx(spent)
    out = tmp_path / "costs.csv"
    assert f"2 row(s) written to {out}" in warden(desk, "costs", "--csv", str(out)).output
    assert out.read_text().startswith("day,provider,model,call_type,calls,")
    one_error(warden(desk, "costs", "--csv", str(tmp_path / "no" / "x.csv")), "cannot write")
