"""``warden daemon status | context | audit | costs | set-autonomy | override`` on a real
paper deployment's ledger (``tests/ops/oversight_support.Desk``) with no daemon running:
what each prints, its --json, the rows the actions add (carried out by the engine), and
one ``error:`` line with status 2 for bad input."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradewarden.agent import records
from tradewarden.cli import app
from tradewarden.ops.oversight import DAY

sys.path.insert(0, str(Path(__file__).parents[1] / "ops"))
from oversight_support import Desk  # noqa: E402


@pytest.fixture
def desk(tmp_path):
    d = Desk(tmp_path).build()
    yield d
    d.ledger.close()


def warden(desk, *args):
    return CliRunner().invoke(app, ["daemon", *args, "--db", str(desk.db)])


def one_error(r, text):
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and text in r.output
    assert r.output.strip().count("\n") == 0, r.output
    assert "Traceback" not in r.output


def test_status_text_and_json_while_no_daemon_runs(desk, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'symbols = ["BTC-USD"]\n[ledger]\ndb = "{desk.db}"\n')
    r = CliRunner().invoke(app, ["daemon", "status", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "daemon NOT running" and "queued events: 0" in lines
    assert "desk (paper): running, L1 recommend only; last bar " in r.output
    assert "  BTC-USD 0.03150807 @ " in r.output
    assert f"approval {desk.eth_approval} pending: enter_long ETH-USD" in r.output
    assert (f"last decision {desk.decision_id} " in r.output
            and "EXECUTE_TRADES ETH-USD (0.70): ETH broke its 6-bar high" in r.output)
    r = warden(desk, "status", "--json")
    assert r.exit_code == 0, r.output
    st = json.loads(r.output)
    assert st["running"] is False and st["heartbeat"] is None and st["queued_events"] == 0
    assert st["deployments"] == [{"name": "desk", "mode": "paper", "status": "running"}]
    d = st["by_deployment"]["desk"]
    assert d["autonomy_level"] == 1
    assert Decimal(d["positions"][0]["quantity"]) == desk.engine.by_name["BTC-USD"].holding.quantity
    assert d["last_decision"]["reasoning"] == "ETH broke its 6-bar high"
    one_error(CliRunner().invoke(app, ["daemon", "status", "--db", str(tmp_path / "no.db")]),
              "no ledger at")
    # no level recorded yet: the config's [autonomy] initial_level
    cfg.write_text(cfg.read_text() + "[autonomy]\ninitial_level = 2\n")
    r = CliRunner().invoke(app, ["daemon", "status", "--config", str(cfg)])
    assert r.exit_code == 0 and "desk (paper): running, L2 supervised" in r.output, r.output


def test_context(desk):
    r = warden(desk, "context")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("deployment desk (paper, running): autonomy L1 recommend only; "
                               "strategy scripted 1h")
    assert "  ETH-USD: flat, last close " in r.output
    assert f"decision {desk.decision_id} " in r.output
    r = warden(desk, "context", "--deployment", "desk", "--json")
    (ctx,) = json.loads(r.output)["deployments"]
    assert ctx["strategy_state"]["symbols"][0]["state"] == "open"
    assert ctx["recent_decisions"][0]["outcome"] == f"queued as approval {desk.eth_approval}: pending"
    one_error(warden(desk, "context", "--deployment", "other"), "deployment other: not one of")


def test_audit_shows_the_full_reasoning(desk):
    r = warden(desk, "audit", "--decision-id", str(desk.decision_id))
    assert r.exit_code == 0, r.output
    out = r.output
    assert out.startswith(f"decision {desk.decision_id} at ")
    assert "entry_signal ETH-USD -> EXECUTE_TRADES, confidence 0.70" in out
    ctx, rest = out.split("context sent:\n")[1].split("output:\n")
    assert json.loads(ctx) == {"autonomy_level": 1, "positions": [{"symbol": "BTC-USD"}]}
    output, rest = rest.split("governor verdicts:\n")
    assert json.loads(output)["risks_considered"] == ["thin volume"]
    assert rest.splitlines()[0] == "  queue at L1: L1: every trade waits for a person"
    assert f"approval {desk.eth_approval}: enter_long ETH-USD, pending" in rest
    r = warden(desk, "audit", "--decision-id", str(desk.decision_id), "--json")
    full = json.loads(r.output)
    assert full["decision"]["output"]["key_factors"] == ["breakout"]
    assert [v["verdict"] for v in full["decision"]["verdicts"]] == ["queue"]
    r = warden(desk, "audit", "--days", "100000", "--json")
    assert [x["decision"]["id"] for x in json.loads(r.output)["decisions"]] == [desk.decision_id]
    r = warden(desk, "audit", "--days", "100000")
    assert r.exit_code == 0 and "1 decision(s) in the last 100000 day(s)" in r.output
    one_error(warden(desk, "audit"), "give --days N or --decision-id ID")
    one_error(warden(desk, "audit", "--days", "1", "--decision-id", "1"), "one of them")
    one_error(warden(desk, "audit", "--decision-id", "77"), "decision 77: no such agent decision")
    one_error(warden(desk, "audit", "--days", "0"), "--days 0: give a number of days above 0")


def test_costs_table_and_json(desk):
    import time
    now = int(time.time())
    for ts, model, cost in ((now - 3600, "m-large", 0.25), (now - 2 * DAY, "m-small", 0.5),
                            (now - 30 * DAY, "m-large", 7.0)):
        records.record_cost(desk.ledger, ts=ts, provider="p", model=model, call_type="decide",
                            input_tokens=1200, output_tokens=300, cost_usd=cost)
    r = warden(desk, "costs", "--days", "7", "--json")
    assert r.exit_code == 0, r.output
    c = json.loads(r.output)
    assert c["total"]["calls"] == 2 and Decimal(c["total"]["cost_usd"]) == Decimal("0.75")
    assert sorted((x["model"], x["calls"]) for x in c["rows"]) == [("m-large", 1), ("m-small", 1)]
    r = CliRunner().invoke(app, ["daemon", "costs", "--days", "7", "--db", str(desk.db)],
                           env={"COLUMNS": "160"})
    assert r.exit_code == 0, r.output
    assert "2 call(s), 0.7500 USD" in r.output
    (total,) = [line for line in r.output.splitlines() if "total" in line and "│" in line]
    assert "2,400" in total and "0.7500" in total
    one_error(warden(desk, "costs", "--days", "-1"), "--days -1: give a number of days above 0")


def test_set_autonomy(desk):
    r = warden(desk, "set-autonomy", "--level", "2", "--reason", "30 clean days", "--by", "ann")
    assert r.exit_code == 0, r.output
    assert r.output.strip() == "autonomy L2 (supervised) set by ann (30 clean days): desk L1 -> L2"
    (row,) = records.autonomy_changes(desk.ledger, desk.dep_id)
    assert (row["kind"], row["from_level"], row["to_level"], row["actor"]) == ("command", 1, 2, "ann")
    one_error(warden(desk, "set-autonomy", "--level", "4", "--reason", "x"), "pass --yes")
    assert records.autonomy_level(desk.ledger, desk.dep_id, 1) == 2      # not changed
    r = warden(desk, "set-autonomy", "--level", "4", "--reason", "trusted", "--yes", "--by", "ann")
    assert r.exit_code == 0 and "desk L2 -> L4" in r.output
    assert records.autonomy_level(desk.ledger, desk.dep_id, 1) == 4
    one_error(warden(desk, "set-autonomy", "--level", "5", "--reason", "x"), "--level 5: give 1, 2, 3 or 4")
    one_error(warden(desk, "set-autonomy", "--level", "1", "--reason", " "), "--reason: say why")


def test_override_rejects_through_the_inbox_and_the_engine_records_it(desk):
    one_error(warden(desk, "override", str(desk.decision_id)), "give --approve or --reject")
    one_error(warden(desk, "override", str(desk.decision_id), "--approve", "--reject"),
              "give --approve or --reject")
    one_error(warden(desk, "override", str(desk.decision_id), "--reject"), "--reject needs --reason")
    one_error(warden(desk, "override", "55", "--approve"), "decision 55: no such agent decision")
    r = warden(desk, "override", str(desk.decision_id), "--reject", "--reason", "no ETH",
               "--by", "ann")
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"reject approval {desk.eth_approval} (enter_long ETH-USD) "
                               f"queued by ann (override of agent decision {desk.decision_id}: "
                               "no ETH): desk command ")
    (cmd,) = desk.ledger.pending_commands(desk.dep_id)
    assert (cmd["kind"], cmd["target"], cmd["actor"]) == ("reject", str(desk.eth_approval), "ann")
    assert desk.act()[0][1] == "done"
    assert desk.ledger.approval(desk.eth_approval)["status"] == "rejected"
    one_error(warden(desk, "override", str(desk.decision_id), "--approve"),
              "nothing pending to override")


def test_clear_anomaly_records_who_and_why_and_refuses_twice(desk):
    aid = records.open_anomaly(desk.ledger, deployment_id=desk.dep_id, kind="vix_spike",
                               ts=1_777_777_777, detail={"vix": 31.0})
    r = warden(desk, "clear-anomaly", str(aid), "--reason", "VIX back to 18", "--by", "ana")
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"anomaly {aid} (vix_spike) cleared by ana: VIX back to 18"
    (row,) = [a for a in records.anomalies(desk.ledger, status=None) if a["id"] == aid]
    assert row["status"] == "cleared" and row["cleared_ts"] is not None
    assert row["detail"] == {"vix": 31.0, "cleared_by": "ana", "cleared_reason": "VIX back to 18"}
    one_error(warden(desk, "clear-anomaly", str(aid), "--reason", "again"), "already cleared")
    one_error(warden(desk, "clear-anomaly", "999", "--reason", "x"), "no anomaly 999")
