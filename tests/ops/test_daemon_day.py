"""Two and a half simulated days of the daemon on a paper deployment (issue 12, "Tested
as it will run"): the real CLI, the real ccxt client against the loopback TLS fake of
Coinbase (candles from the bundled data), simulated time shared by both.

A person (the test's hook, acting through the real ``warden approvals`` commands)
approves whatever waits for them until the deployment is promoted, then rejects the
next one, and later an anomaly is reported. The ledger must show: at L1 every entry and
exit waits for the person and flows after the approval (order, fill, trade); every
decision recorded with its context and its verdict apart; events processed in order
(fills, a stop approaching, end of day); promotion L1 -> L2 at an end of day (the
config lowers the thresholds to a day and a trade); demotion L2 -> L1 at once on the
person's rejection; the first trade in a symbol, and every decision while the anomaly
is open, escalated to a person; alerts for each of those.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3

from fake_exchange_server import ts_of  # noqa: E402
from paper_support import q  # noqa: E402
from typer.testing import CliRunner

from tradewarden.cli import app
from tradewarden.ledger import Ledger
from tradewarden.ops.events import emit_anomaly_detected


def test_a_day_at_l1_approvals_promotion_demotion_and_escalation(paper_venue):
    sim, server, cfg, db = paper_venue
    start = sim.t
    cfg.write_text(cfg.read_text() + """
[daemon]
end_of_day_utc = "20:00"
inbox_seconds = 60
[autonomy]
promote_l2_days = 1
promote_min_trades = 1
promote_l2_win_rate = 0.0
""")
    stop_at = start + 60 * 3600
    anomaly_at = ts_of("2026-05-03T04:00:00")
    acted: dict = {}
    last = [0.0]

    def person(t):
        if t >= stop_at and sim.on_sleep is not None:
            sim.on_sleep = None
            os.kill(os.getpid(), signal.SIGTERM)
            return
        if t - last[0] < 300:           # a person looks every 5 minutes
            return
        last[0] = t
        if t >= anomaly_at and "anomaly" not in acted:
            led = Ledger(db)
            acted["anomaly"] = emit_anomaly_detected(led, t, anomaly="venue_outage_rumour",
                                                     severity="warning",
                                                     detail={"source": "the test"})
            led.close()
        with sqlite3.connect(db) as c:
            pending = [a for (a,) in c.execute("select id from approvals where status='pending'")]
            promoted = c.execute("select count(*) from autonomy_changes "
                                 "where kind='promotion'").fetchone()[0]
        for aid in pending:
            if aid in acted:
                continue
            if promoted and "reject" not in acted:
                acted["reject"] = aid
                args = ["reject", str(aid), "--reason", "not now"]
            else:
                args = ["approve", str(aid)]
            r = CliRunner().invoke(app, ["approvals", *args, "--deployment", "day", "--config",
                                         str(cfg), "--by", "ana"])
            assert r.exit_code == 0, r.output
            acted[aid] = t

    sim.on_sleep = person
    log = db.with_name("day.log")
    r = CliRunner().invoke(app, ["daemon", "start", "--config", str(cfg), "--foreground",
                                 "--deployment", "day", "--log", str(log), "--log-json"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert not [x for x in lines if x["event"] in ("deployment_failed", "event_failed")]

    # at L1 everything waits for a person, and flows once approved
    approvals = q(db, "select id, action, status, acted_by from approvals order by id")
    assert [(a, s) for _, a, s, _ in approvals] == [
        ("enter_long", "approved"), ("exit", "approved"), ("enter_long", "approved"),
        ("exit", "rejected")]
    assert {by for *_, by in approvals} == {"ana"}
    fills = q(db, "select side, role, ts from fills order by ts")
    assert [(s, r_) for s, r_, _ in fills] == [("buy", "entry"), ("sell", "exit"), ("buy", "entry")]
    # an approved entry fills at the next bar's open after the approval; an approved exit
    # closes at the last close seen (the bar that closed before the approval)
    assert fills[0][2] > acted[1] and fills[2][2] > acted[3]
    assert fills[1][2] + 3600 <= acted[2] < fills[1][2] + 2 * 3600
    assert len(q(db, "select pnl from trades")) == 1

    # every decision recorded with the context it saw; the verdicts apart
    decisions = q(db, "select id, event_kind, autonomy_level, action, context from agent_decisions "
                      "order by id")
    verdicts = dict(q(db, "select agent_decision_id, verdict || ': ' || reason from "
                          "governor_verdicts"))
    assert set(verdicts) == {d[0] for d in decisions}
    for _, kind, level, _, context in decisions:
        ctx = json.loads(context)
        assert ctx["autonomy_level"] == level and ctx["event"]["kind"] == kind
    signals = [(k, lvl, verdicts[i]) for i, k, lvl, _, _ in decisions if k.endswith("_signal")]
    assert signals[0] == (
        "entry_signal", 1, "queue: a person must decide: first_trade")    # mandatory at any level
    assert signals[1] == ("exit_signal", 1, "queue: L1 recommend only: a person decides")
    assert signals[3] == ("exit_signal", 2, "queue: L2 supervised: exits need a person")
    kinds = [k for (k,) in q(db, "select kind from daemon_events order by id")]
    assert kinds.count("end_of_day") == 3 and "stop_approaching" in kinds
    assert kinds.count("order_filled") == 3 and "anomaly_detected" in kinds
    assert q(db, "select count(*) from daemon_events where status != 'done'") == [(0,)]
    done = [k for (k,) in q(db, "select event_kind from agent_decisions where event_kind in "
                                "('order_filled', 'stop_approaching') order by id")]
    assert done[:2] == ["order_filled", "stop_approaching"]

    # promotion at an end of day; demotion at once on the rejection and on the anomaly
    changes = q(db, "select from_level, to_level, kind, reason, ts from autonomy_changes "
                    "order by id")
    assert [(f, t, k) for f, t, k, _, _ in changes] == [
        (None, 1, "initial"), (1, 2, "promotion"), (2, 1, "demotion")]
    assert changes[1][4] == ts_of("2026-05-02T20:00:00")
    assert "manual override" in changes[2][3] and "reject by ana" in changes[2][3]
    reject_done = q(db, "select processed_at from commands where kind = 'reject'")
    assert len(reject_done) == 1
    assert changes[2][4] - acted[acted["reject"]] < 3600   # before the next bar, not at day's end

    # the anomaly: open, and every decision after it went to a person
    assert q(db, "select kind, status from anomalies") == [("venue_outage_rumour", "open")]
    flagged = dict(q(db, "select agent_decision_id, triggers from governor_verdicts"))
    later = [(k, verdicts[i], json.loads(flagged[i])) for i, k, _, _, c in decisions
             if json.loads(c)["event"]["ts"] > anomaly_at]
    assert [k for k, _, _ in later] == ["anomaly_detected"]
    for _, verdict, triggers in later:
        assert verdict.startswith("queue: ") and "anomaly_flag" in {t["trigger"] for t in triggers}

    # the person was told
    alerts = q(db, "select trigger, subject from alerts order by id")
    triggers = [t for t, _ in alerts]
    assert triggers.count("end_of_day") == 3
    assert "autonomy_promoted" in triggers and "autonomy_demoted" in triggers
    assert "anomaly" in triggers
    waits = [s for t, s in alerts if t == "human_review"]
    assert any("waits for a person (a person must decide: first_trade)" in s for s in waits)
    assert any("stop_approaching needs a person" in s for s in waits)
    beats = q(db, "select status, autonomy_level from daemon_heartbeats order by seq")
    assert beats[-1][0] == "shutdown" and {lvl for _, lvl in beats if lvl} == {1, 2}
