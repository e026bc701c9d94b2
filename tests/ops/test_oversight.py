"""The oversight read model and its actions (ops/oversight.py) on a real paper deployment's
ledger (``oversight_support.Desk``: bundled BTC-USD / ETH-USD bars through the kernel and
the approval governor), with no daemon running unless a test takes the lock: every
figure checked against the ledger's own rows, every action's inbox row carried out by
the engine's ``handle_commands``."""

from __future__ import annotations

import importlib.util
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from oversight_support import SYMS, Desk

from tradewarden.agent import records
from tradewarden.domain import iso
from tradewarden.engine.engine import FLAT, OPEN
from tradewarden.ledger import Ledger, LedgerError, schema
from tradewarden.ops.daemon import DaemonLock
from tradewarden.ops.oversight import DAY, Oversight, OversightError

D = Decimal

# the session's PostgreSQL server of the ledger tests (tests/ledger/conftest.py, by path)
_spec = importlib.util.spec_from_file_location(
    "_tw_ledger_conftest_oversight", Path(__file__).resolve().parents[1] / "ledger" / "conftest.py")
_ledger_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ledger_conftest)
postgres_url = _ledger_conftest.postgres_url


def q(db, sql, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The desk played to bar 8 (read-only tests share it)."""
    desk = Desk(tmp_path_factory.mktemp("desk")).build()
    yield desk
    desk.ledger.close()


@pytest.fixture
def desk(tmp_path):
    """A fresh desk for the tests that act on it."""
    d = Desk(tmp_path).build()
    yield d
    d.ledger.close()


def _clock(desk):
    return lambda: desk.clock.now()


def test_status_reads_the_ledger_while_no_daemon_runs(built):
    o = Oversight(str(built.db), clock=_clock(built))
    st = o.status()
    assert st["running"] is False and st["pid"] is None and st["heartbeat"] is None
    assert st["queued_events"] == 0
    assert st["deployments"] == [{"name": "desk", "mode": "paper", "status": "running"}]
    d = st["by_deployment"]["desk"]
    assert d["autonomy_level"] == 1 and d["autonomy"] == "recommend only"
    assert d["paused"] is False and d["kill_switch"] is False
    (pos,) = d["positions"]
    btc = built.engine.by_name["BTC-USD"]
    assert pos["symbol"] == "BTC-USD" and pos["quantity"] == btc.holding.quantity
    assert pos["stop_loss"] == btc.levels[0] and pos["state"] == "open"
    assert [a["id"] for a in d["pending_approvals"]] == [built.eth_approval]
    assert d["pending_approvals"][0]["intent"]["quantity"]            # parsed
    last = d["last_decision"]
    assert last["id"] == built.decision_id and last["action"] == "EXECUTE_TRADES"
    assert last["reasoning"] == "ETH broke its 6-bar high"
    assert last["outcome"] == f"queued as approval {built.eth_approval}: pending"
    assert d["open_anomalies"] == [] and st["recent_alerts"] == []
    text = o.text_status()
    assert text.splitlines()[0] == "daemon NOT running"
    assert "desk (paper): running, L1 recommend only" in text
    assert f"approval {built.eth_approval} pending: enter_long ETH-USD" in text
    assert "ETH broke its 6-bar high" in text
    o.close()


def test_positions_pnl_and_risk_match_the_ledger_and_the_engine(built):
    o = Oversight(str(built.db), clock=_clock(built))
    btc = built.engine.by_name["BTC-USD"]
    h = btc.holding
    mark = D(repr(btc.last_close))
    (pos,) = o.positions()["desk"]
    assert pos["mark"] == mark and pos["entry_price"] == h.entry_price
    assert pos["market_value"] == mark * h.quantity
    assert pos["unrealized_pnl"] == mark * h.quantity + h.proceeds - h.cost - h.fees
    assert pos["stop_distance_pct"] == pytest.approx(float((mark - btc.levels[0]) / mark * 100))
    pnl = o.pnl()["desk"]
    trades = [D(p) for (p,) in q(built.db, "select pnl from trades")]
    assert len(trades) == 1 and pnl["realized"] == trades[0] and pnl["trades"] == 1
    assert pnl["unrealized"] == pos["unrealized_pnl"] and pnl["quote"] == "USD"
    assert pnl["total"] == pnl["realized"] + pnl["unrealized"]
    cash = sum((a.cash for a in built.engine.accounts), D(0))
    assert pnl["cash"] == cash and pnl["equity"] == cash + pos["market_value"]
    exit_ts = q(built.db, "select exit_ts from trades")[0][0]
    assert pnl["trades_today"] == (1 if exit_ts >= built.clock.now() // DAY * DAY else 0)
    risk = o.risk()["desk"]
    assert risk["exposure"] == pos["market_value"]
    assert risk["exposure_pct"] == pytest.approx(float(pos["market_value"] / pnl["equity"] * 100))
    daily = {x["account"]: x for x in risk["daily_loss"]}
    snap = built.engine.risk.snapshot()["BTC-USD"]
    start = D(repr(snap["day_start_equity"]))
    assert daily["BTC-USD"]["limit_fraction"] == 0.05
    assert daily["BTC-USD"]["limit_amount"] == start * D("0.05")
    assert daily["BTC-USD"]["change"] == (cash - sum((a.cash for a in built.engine.accounts
                                                      if a.name != "BTC-USD"), D(0))
                                          + pos["market_value"] - start)
    texts = (o.text_positions(), o.text_pnl(), o.text_risk())
    assert texts[0].startswith("desk: 1 position(s)\n  BTC-USD ")
    assert f"realised {trades[0]:+,.2f} USD (1 trade(s), " in texts[1]
    assert "daily loss limit" in texts[2] and "BTC-USD" in texts[2]
    o.close()


def test_context_audit_and_the_days_report(built):
    o = Oversight(str(built.db), clock=_clock(built))
    (ctx,) = o.context()["deployments"]
    assert ctx["deployment"] == "desk" and ctx["autonomy_level"] == 1
    assert [p["symbol"] for p in ctx["positions"]] == ["BTC-USD"]
    assert [a["name"] for a in ctx["account"]["accounts"]] == list(SYMS)
    assert [s["state"] for s in ctx["strategy_state"]["symbols"]] == ["open", "flat"]
    assert ctx["strategy_state"]["strategy"] == "scripted"
    (dec,) = ctx["recent_decisions"]
    assert dec["verdicts"][0]["verdict"] == "queue"
    assert o.context("desk")["deployments"][0]["deployment"] == "desk"
    with pytest.raises(OversightError, match="deployment nope: not one of the daemon's"):
        o.context("nope")
    one = o.audit(decision_id=built.decision_id)
    assert one["decision"]["context"] == {"positions": [{"symbol": "BTC-USD"}], "autonomy_level": 1}
    assert one["decision"]["output"]["risks_considered"] == ["thin volume"]
    assert [v["verdict"] for v in one["decision"]["verdicts"]] == ["queue"]
    assert [a["id"] for a in one["approvals"]] == [built.eth_approval]
    assert one["commands"] == []
    assert [r["decision"]["id"] for r in o.audit(days=1)["decisions"]] == [built.decision_id]
    with pytest.raises(OversightError, match="decision 99: no such agent decision"):
        o.audit(decision_id=99)
    with pytest.raises(OversightError, match="not both"):
        o.audit(days=1, decision_id=1)
    report = o.text_report()
    day = iso(built.clock.now())[:10]
    assert report.splitlines()[0].startswith(f"report {day} (UTC")
    assert "1 decision(s): EXECUTE_TRADES 1; verdicts queue 1" in report
    assert "  approvals: pending 1" in report.splitlines()       # the ETH intent, queued today
    o.close()


def test_costs_by_day_model_and_call_type(built, tmp_path):
    now = built.clock.now()
    led = Ledger(built.db)
    for ts, model, call, tin, cost in ((now - 2 * DAY, "m-large", "decide", 1000, 0.02),
                                       (now - 3600, "m-large", "decide", 500, 0.01),
                                       (now - 60, "m-large", "decide", 500, 0.015),
                                       (now - 60, "m-small", "summarise", 200, 0.001),
                                       (now - 9 * DAY, "m-large", "decide", 9, 9.0)):
        records.record_cost(led, ts=ts, provider="p", model=model, call_type=call,
                            input_tokens=tin, output_tokens=10, cost_usd=cost)
    o = Oversight(str(built.db), clock=lambda: now)
    c = o.costs(days=7)
    assert c["total"]["calls"] == 4 and c["total"]["cost_usd"] == D("0.046")
    assert c["total"]["input_tokens"] == 2200 and c["total"]["output_tokens"] == 40
    days = [(r["day"], r["model"], r["call_type"], r["calls"]) for r in c["rows"]]
    today, two_ago = iso(now - 60)[:10], iso(now - 2 * DAY)[:10]
    assert (two_ago, "m-large", "decide", 1) in days
    assert sum(r["calls"] for r in c["rows"] if r["day"] != two_ago) == 3
    assert {r["day"] for r in c["rows"]} >= {today, two_ago}
    assert c["by_model"]["m-small"] == {"calls": 1, "cost_usd": D("0.001")}
    assert o.costs(days=30)["total"]["calls"] == 5
    with pytest.raises(OversightError, match="days 0"):
        o.costs(days=0)
    o.close()
    led.close()


def test_the_daemons_heartbeat_lock_anomalies_and_alerts_are_shown(built):
    led = Ledger(built.db)
    led.daemon_heartbeat("d1", status="running", activity="waiting for the next bar",
                         deployments=["desk"])
    aid = records.open_anomaly(led, deployment_id=built.dep_id, kind="data_gap",
                               ts=built.clock.now(), symbol="ETH-USD", detail={"minutes": 31})
    with led.engine.begin() as conn:
        conn.execute(schema.alerts.insert().values(
            ts=built.clock.now(), created_at="2026-01-01T00:00:00Z", level="warning",
            trigger="anomaly", subject="data gap ETH-USD", status="logged"))
    o = Oversight(str(built.db), clock=_clock(built))
    with DaemonLock(o.lock):
        st = o.status()
        assert st["running"] is True and st["heartbeat"]["activity"] == "waiting for the next bar"
        text = o.text_status()
    assert text.startswith("daemon running (pid ")
    assert "ANOMALY data_gap ETH-USD" in text and "[warning] data gap ETH-USD" in text
    assert [a["id"] for a in st["by_deployment"]["desk"]["open_anomalies"]] == [aid]
    assert o.risk()["desk"]["open_anomalies"][0]["detail"] == {"minutes": 31}
    report = o.text_report()
    assert "alerts today: 1 (warning 1)" in report and "  anomaly data_gap ETH-USD: open" in report
    assert o.status()["running"] is False                   # the lock released: not running
    records.clear_anomaly(led, aid, ts=built.clock.now())
    with led.engine.begin() as conn:
        conn.execute(schema.alerts.delete())
    led.close()
    o.close()


def test_which_deployments_and_a_missing_ledger(built, tmp_path):
    with pytest.raises(LedgerError, match="no ledger at"):
        Oversight(str(tmp_path / "none.db"))
    with pytest.raises(OversightError, match="deployment ghost: no such deployment"):
        Oversight(str(built.db), deployments=["ghost"])
    assert [d["name"] for d in Oversight(str(built.db)).deployments()] == ["desk"]
    empty = Ledger(tmp_path / "empty.db")
    empty.close()
    o = Oversight(str(tmp_path / "empty.db"))
    assert o.status()["deployments"] == [] and "no deployments" in o.text_status()
    with pytest.raises(OversightError, match="no paper or live deployment in"):
        o.pause("news", "ann")
    o.close()


def _row(desk, cid):
    return {c["id"]: c for c in desk.ledger.commands(deployment_id=desk.dep_id)}[cid]


def test_pause_and_resume_are_carried_out_by_the_engine(desk):
    o = Oversight(str(desk.db), clock=_clock(desk))
    line = o.pause("FOMC at 14:00", by="telegram:ann")
    assert line.startswith("pause queued by telegram:ann (FOMC at 14:00): desk (command ")
    assert line.endswith("acts before its next bar)")
    (cmd,) = desk.ledger.pending_commands(desk.dep_id)
    assert (cmd["kind"], cmd["actor"], cmd["reason"], cmd["target"]) == (
        "pause", "telegram:ann", "FOMC at 14:00", None)
    assert desk.act() == [(cmd["id"], "done", "paused: no new entries until resume (FOMC at 14:00)")]
    assert desk.engine.paused and o.status()["by_deployment"]["desk"]["paused"] is True
    assert "PAUSED" in o.text_status()
    o.resume(by="bob")
    (res,) = desk.act()
    assert res[1:] == ("done", "resumed") and not desk.engine.paused
    with pytest.raises(OversightError, match="pause: say why"):
        o.pause("  ", by="ann")
    with pytest.raises(OversightError, match="say who gives the order"):
        o.resume(by="")
    desk.stop()
    assert o.pause("later", by="ann").endswith("acts when it next starts)")
    o.close()


def test_emergency_stop_queues_what_kill_flatten_does_and_the_engine_flattens(desk):
    o = Oversight(str(desk.db), clock=_clock(desk))
    line = o.emergency_stop(by="telegram:ann")
    assert line.startswith("EMERGENCY STOP queued by telegram:ann: desk (kill switch: command ")
    rows = desk.ledger.pending_commands(desk.dep_id)
    assert [(r["kind"], r["actor"], r["reason"], r["target"]) for r in rows] == [
        ("kill", "telegram:ann", "emergency stop", None),
        ("flatten", "telegram:ann", "emergency stop", None)]
    out = desk.act()
    assert [r[1] for r in out] == ["done", "done"]
    assert out[0][2].startswith("kill switch engaged") and out[1][2].startswith("1 position(s) closed")
    assert all(desk.engine.by_name[s].state == FLAT for s in SYMS)
    st = o.status()["by_deployment"]["desk"]
    assert st["kill_switch"] is True and st["positions"] == []
    assert "KILL SWITCH" in o.text_status()
    assert q(desk.db, "select exit_reason from trades order by exit_ts")[-1] == ("manual",)
    o.close()


def test_approve_and_reject_through_the_inbox(desk):
    o = Oversight(str(desk.db), clock=_clock(desk))
    aid = desk.eth_approval
    line = o.approve(aid, by="telegram:ann")
    assert line.startswith(f"approve approval {aid} (enter_long ETH-USD) queued by telegram:ann: "
                           "desk command ")
    with pytest.raises(OversightError, match=f"approval {aid} already has command .* pending"):
        o.reject(aid, "too late", by="bob")
    (cmd,) = desk.ledger.pending_commands(desk.dep_id)
    assert (cmd["kind"], cmd["target"], cmd["actor"]) == ("approve", str(aid), "telegram:ann")
    (res,) = desk.act()
    assert res[1] == "done" and res[2].startswith(f"approval {aid} approved: ")
    assert desk.ledger.approval(aid)["acted_by"] == "telegram:ann"
    assert desk.engine.by_name["ETH-USD"].state != FLAT
    with pytest.raises(OversightError, match=f"approval {aid} is approved by telegram:ann"):
        o.approve(aid, by="ann")
    with pytest.raises(OversightError, match="approval 999: no such approval"):
        o.approve(999, by="ann")
    with pytest.raises(OversightError, match="approval id 'x': give a number"):
        o.approve("x", by="ann")
    with pytest.raises(OversightError, match="say why"):
        o.reject(aid, "", by="ann")
    o.close()


def test_reject_is_recorded_with_its_reason(desk):
    o = Oversight(str(desk.db), clock=_clock(desk))
    o.reject(desk.eth_approval, "earnings tomorrow", by="ann")
    (res,) = desk.act()
    assert res[1:] == ("done", f"approval {desk.eth_approval} rejected")
    row = desk.ledger.approval(desk.eth_approval)
    assert (row["status"], row["acted_by"], row["reason"]) == ("rejected", "ann", "earnings tomorrow")
    o.close()


def test_override_finds_the_decisions_pending_approval(desk):
    o = Oversight(str(desk.db), clock=_clock(desk))
    with pytest.raises(OversightError, match="--reject: say why"):
        o.override(desk.decision_id, approve=False, reason=None, by="ann")
    line = o.override(desk.decision_id, approve=False, reason="no ETH this week", by="ann")
    assert f"reject approval {desk.eth_approval} (enter_long ETH-USD) queued by ann" in line
    (cmd,) = desk.ledger.pending_commands(desk.dep_id)
    assert (cmd["kind"], cmd["target"], cmd["reason"]) == (
        "reject", str(desk.eth_approval),
        f"override of agent decision {desk.decision_id}: no ETH this week")
    (res,) = desk.act()
    assert res[1] == "done"
    assert desk.ledger.approval(desk.eth_approval)["status"] == "rejected"
    with pytest.raises(OversightError, match=f"decision {desk.decision_id}: nothing pending to "
                       f"override \\(its approval {desk.eth_approval} is rejected by ann\\)"):
        o.override(desk.decision_id, approve=True, reason=None, by="ann")
    audit = o.audit(decision_id=desk.decision_id)
    assert [c["kind"] for c in audit["commands"]] == ["reject"]
    assert audit["outcome"] == f"queued as approval {desk.eth_approval}: rejected by ann"
    # a decision linked only through its verdict's approval id, and one with nothing queued
    lone = records.record_decision(desk.ledger, deployment_id=desk.dep_id, run_id=None,
                                   ts=desk.clock.now(), event_kind="review", reasoner="default",
                                   autonomy_level=1, context={}, output={"action": "MONITOR_ONLY"})
    records.record_verdict(desk.ledger, agent_decision_id=lone, deployment_id=desk.dep_id,
                           ts=desk.clock.now(), autonomy_level=1, verdict="monitor",
                           reason="monitor only")
    with pytest.raises(OversightError, match=f"decision {lone}: nothing pending to override "
                       "\\(monitor: monitor only\\)"):
        o.override(lone, approve=True, reason=None, by="ann")
    with pytest.raises(OversightError, match="decision 404: no such agent decision"):
        o.override(404, approve=True, reason=None, by="ann")
    o.close()


def test_override_approve_through_a_verdicts_approval_id(desk):
    eth = desk.eth_approval
    other = records.record_decision(desk.ledger, deployment_id=desk.dep_id, run_id=None,
                                    ts=desk.clock.now(), event_kind="entry_signal",
                                    reasoner="default", autonomy_level=1, context={},
                                    output={"action": "EXECUTE_TRADES"})
    records.record_verdict(desk.ledger, agent_decision_id=other, deployment_id=desk.dep_id,
                           ts=desk.clock.now(), autonomy_level=1, verdict="queue",
                           reason="L1", approval_id=eth)
    o = Oversight(str(desk.db), clock=_clock(desk))
    o.override(other, approve=True, reason=None, by="ann")
    (cmd,) = desk.ledger.pending_commands(desk.dep_id)
    assert (cmd["kind"], cmd["target"], cmd["reason"]) == (
        "approve", str(eth), f"override of agent decision {other}")
    (res,) = desk.act()
    assert res[1] == "done" and desk.engine.by_name["ETH-USD"].state != FLAT
    o.close()


def test_set_autonomy_records_a_command_change(desk):
    o = Oversight(str(desk.db), clock=_clock(desk))
    line = o.set_autonomy(3, by="ann", reason="60 clean days")
    assert line == "autonomy L3 (semi-autonomous) set by ann (60 clean days): desk L1 -> L3"
    (row,) = records.autonomy_changes(desk.ledger, desk.dep_id)
    assert (row["from_level"], row["to_level"], row["kind"], row["actor"], row["reason"],
            row["ts"]) == (1, 3, "command", "ann", "60 clean days", desk.clock.now())
    assert o.status()["by_deployment"]["desk"]["autonomy_level"] == 3
    assert o.set_autonomy(3, by="ann", reason="again").endswith("desk already L3")
    assert len(records.autonomy_changes(desk.ledger, desk.dep_id)) == 1
    for bad in (0, 5, True, "2"):
        with pytest.raises(OversightError, match="autonomy level .*: give 1, 2, 3 or 4"):
            o.set_autonomy(bad, by="ann", reason="x")
    with pytest.raises(OversightError, match="say why"):
        o.set_autonomy(2, by="ann", reason="")
    assert desk.engine.by_name["BTC-USD"].state == OPEN        # nothing else changed
    o.close()


def test_on_postgresql_status_figures_and_an_override(tmp_path, postgres_url):
    url = _ledger_conftest._new_database(postgres_url)
    desk = Desk(tmp_path, db=url).build()
    try:
        o = Oversight(url, clock=_clock(desk))
        d = o.status()["by_deployment"]["desk"]
        btc = desk.engine.by_name["BTC-USD"]
        (pos,) = d["positions"]
        assert pos["quantity"] == btc.holding.quantity
        assert pos["unrealized_pnl"] == (D(repr(btc.last_close)) * btc.holding.quantity
                                         + btc.holding.proceeds - btc.holding.cost
                                         - btc.holding.fees)
        assert d["last_decision"]["outcome"] == f"queued as approval {desk.eth_approval}: pending"
        with desk.ledger.engine.connect() as conn:
            (pnl,) = conn.exec_driver_sql("select pnl from trades").scalars().all()
        assert o.pnl()["desk"]["realized"] == D(pnl)
        o.override(desk.decision_id, approve=False, reason="not now", by="ann")
        (res,) = desk.act()
        assert res[1] == "done" and desk.ledger.approval(desk.eth_approval)["status"] == "rejected"
        assert f"[queued as approval {desk.eth_approval}: rejected by ann]" in o.text_status()
        o.close()
    finally:
        desk.ledger.close()
