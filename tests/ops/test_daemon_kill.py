"""The daemon proven by killing it, and by a whole simulated day.

Issue 12, "Tested as it will run":

* ``kill -9`` of the daemon in the middle of event processing, then a restart: each
  event takes effect once, no order is sent twice, the heartbeat resumes, approvals
  still pending. ``_daemon_worker.py`` runs ``warden daemon start --foreground`` (the
  CLI through ``CliRunner``) in a process of its own, on simulated time, against its own
  loopback TLS fake of Coinbase, with a paper deployment at autonomy L1 (entries wait
  for a person); it SIGKILLs itself at a chosen point: inside an event handler after its
  effects and before the dispatcher finishes the event, inside a bar's step after the
  journal's commit, or between two heartbeats. The next worker restarts on the same
  ledger (the dead process's OS lock died with it) a little later in simulated time.
* A 24-hour simulated run of two deployments (BTC-USD and ETH-USD) with a Slack webhook
  on a loopback receiver completes without a crash: 24 decisions per symbol, a heartbeat
  about every minute, the end of day once with its summary delivered, no failed event,
  no failed deployment, ``shutdown`` on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal

from alert_support import WebhookReceiver
from fake_exchange_server import HOUR, source_rows
from paper_support import q
from typer.testing import CliRunner

from tradewarden.cli import app


# -- a whole simulated day -----------------------------------------------------------

def test_a_24_hour_simulated_day_of_two_deployments_completes(paper_venue, monkeypatch):
    sim, server, cfg, db = paper_venue
    start = sim.t                                   # 2026-05-01 10:30 UTC
    hook = WebhookReceiver().start()
    try:
        monkeypatch.setenv("TRADEWARDEN_ALERTS__SLACK_WEBHOOK_URL", hook.url)
        base = cfg.read_text().replace('symbols = ["BTC-USD"]\n', "")
        cfg.write_text(base + """
[daemon]
inbox_seconds = 60
end_of_day_utc = "23:55"

[alerts]
slack_min_level = "info"

[[deployments]]
name = "btc"
symbols = ["BTC-USD"]

[[deployments]]
name = "eth"
symbols = ["ETH-USD"]
""")
        stop_at = start + 24 * 3600

        def at(t):
            if t >= stop_at and sim.on_sleep is not None:
                sim.on_sleep = None
                os.kill(os.getpid(), signal.SIGTERM)

        sim.on_sleep = at
        log = db.with_name("day.log")
        r = CliRunner().invoke(app, ["daemon", "start", "--config", str(cfg), "--foreground",
                                     "--log", str(log), "--log-json"])
        assert r.exit_code == 0, r.output
    finally:
        hook.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [x for x in lines if x["event"] == "deployment_failed"] == []
    assert [x for x in lines if x["level"] in ("error", "critical")] == []
    assert lines[-1]["event"] == "daemon_stopped" and lines[-1]["status"] == "shutdown"
    # every closed candle of the day decided once, per symbol
    for sym in ("BTC-USD", "ETH-USD"):
        want = [int(t) for t in source_rows(sym)["ts"] if start < t + HOUR <= stop_at]
        got = [t for (t,) in q(db, "select ts from decisions where symbol = ? order by ts", sym)]
        assert len(want) == 24 and got == want, sym
    # a heartbeat about every minute of clock time, the last one the shutdown
    beats = q(db, "select status, ts from daemon_heartbeats order by seq")
    assert 1430 <= len(beats) <= 1450
    assert {s for s, _ in beats[:-1]} == {"running"} and beats[-1][0] == "shutdown"
    assert q(db, "select name, status from deployments order by name") == [
        ("btc", "stopped"), ("eth", "stopped")]
    # the durable queue: nothing failed; the end of day once, done, at 23:55 UTC
    assert q(db, "select kind, error from daemon_events where status = 'failed'") == []
    eod = q(db, "select status, due_at from daemon_events where kind = 'end_of_day'")
    assert len(eod) == 1 and eod[0][0] == "done"
    assert eod[0][1] % 86400 == 23 * 3600 + 55 * 60 and start < eod[0][1] < stop_at
    # its summary alert recorded, sent to Slack, and received by the webhook
    rows = q(db, "select status, channels, subject from alerts where trigger = 'end_of_day'")
    assert len(rows) == 1 and json.loads(rows[0][1]) == {"slack": "sent"}, rows
    texts = [p.get("text", "") for p in hook.posts]
    assert sum("end of day" in t for t in texts) == 1, texts
