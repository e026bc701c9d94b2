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
* A deployment that fails inside the daemon after a fill is reopened as a new run and
  trades on.
* What this suite found, and the daemon now does: an event run again after a kill
  reuses the decision it recorded (decided once in the audit); a close the daemon
  queued is not queued again by the re-run; an alert of a re-run event is not sent
  again even after a restart later than ``[alerts] dedupe_seconds``; fills committed by
  a killed or failed run are announced as ``order_filled`` when the deployment opens.
* A 24-hour simulated run of two deployments (BTC-USD and ETH-USD) with a Slack webhook
  on a loopback receiver completes without a crash: 24 decisions per symbol, a heartbeat
  about every minute, the end of day once with its summary delivered, no failed event,
  no failed deployment, ``shutdown`` on SIGTERM.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _daemon_worker as worker
import pytest
from _preload import FORKSERVER_PRELOAD
from alert_support import WebhookReceiver
from fake_exchange_server import HOUR, source_rows, ts_of
from paper_support import START, q
from typer.testing import CliRunner

from tradewarden.cli import app
from tradewarden.ops.daemon import lock_path, read_holder, running_daemon

KILLED = -signal.SIGKILL
RESTART_SECONDS = 30            # simulated seconds between the kill and the restart

_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(FORKSERVER_PRELOAD)

TEMPLATE = """
symbols = ["BTC-USD"]
strategy = "donchian"
timeframe = "1h"
governor = "autonomous"
[params]
entry_window = 6
exit_window = 3
[ledger]
db = "{db}"
[venue]
name = "coinbase"
api_url = "{api_url}"
[daemon]
inbox_seconds = 60
"""


def start_daemon(d: Path, start: float, stop_at: float, **plan) -> tuple[int | None, dict, str]:
    """Run one daemon start (``_daemon_worker.child``) in a process of its own from
    simulated time ``start`` until SIGTERM at ``stop_at`` or the plan's kill; return its
    exit code (``-9``: killed), what it left in its state file, and its traceback."""
    n = len(list(d.glob("start-*.log")))
    full = {"db": str(d / "ledger.db"), "config": str(d / "daemon.toml"),
            "template": TEMPLATE.replace("{db}", str(d / "ledger.db")) + plan.pop("extra", ""),
            "state": str(d / "state.json"), "log": str(d / f"start-{n}.log"),
            "start": start, "stop_at": stop_at, **plan}
    err = d / "err.txt"
    err.unlink(missing_ok=True)
    p = _CTX.Process(target=worker.child, args=(full, str(err)))
    p.start()
    p.join(120)
    if p.exitcode is None:
        p.kill()
        p.join()
    state = json.loads((d / "state.json").read_text()) if (d / "state.json").exists() else {}
    return p.exitcode, state, err.read_text() if err.exists() else ""


SCENARIOS: dict = {}


def scenario(name: str):
    """Register a kill scenario (a function of its directory) and return the module
    fixture that gives its result; every scenario is started by :func:`scenarios`."""
    def register(fn):
        SCENARIOS[name] = fn

        @pytest.fixture(scope="module", name=fn.__name__)
        def result(scenarios):
            return scenarios[name].result()
        result.__doc__ = fn.__doc__
        return result
    return register


@pytest.fixture(scope="module", autouse=True)
def scenarios(request, tmp_path_factory):
    """Start every scenario a selected test needs when the module starts, two at a time,
    each a chain of worker processes on its own ledger and simulated time: they share
    nothing, so the module waits for the longest chain rather than their sum (the 24 h
    day runs meanwhile)."""
    wanted = {n for item in request.session.items for n in getattr(item, "fixturenames", ())}
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {name: pool.submit(fn, tmp_path_factory.mktemp(name))
               for name, fn in SCENARIOS.items() if fn.__name__ in wanted}


def log_lines(d: Path, n: int) -> list[dict]:
    return [json.loads(x) for x in (d / f"start-{n}.log").read_text().splitlines()]


def decided_once(db: Path, sym: str, start: float, stop_at: float) -> None:
    """Every candle that closed in ``(start, stop_at]`` decided exactly once."""
    want = [int(t) for t in source_rows(sym)["ts"] if start < t + HOUR <= stop_at]
    got = [t for (t,) in q(db, "select ts from decisions where symbol = ? order by ts", sym)]
    assert got == want and want, sym


def no_duplicate_effects(db: Path, *, alerts: bool = True) -> None:
    """No client order id twice, no fill twice, no daemon command twice, and (``alerts``)
    each event effect key alerted (not suppressed) once."""
    assert q(db, "select client_order_id from orders group by client_order_id "
                 "having count(*) > 1") == []
    assert q(db, "select client_order_id, ts from fills group by client_order_id, ts, role "
                 "having count(*) > 1") == []
    assert q(db, "select kind, target, reason from commands group by deployment_id, kind, "
                 "target, reason having count(*) > 1") == []
    if alerts:
        assert alerted_twice(db) == []


def alerted_twice(db: Path) -> list[tuple]:
    """Event effect keys (``ev<id>...``) with more than one alert not suppressed."""
    return q(db, "select dedupe_key, count(*) from alerts where dedupe_key like 'ev%' and "
                 "status != 'suppressed' group by dedupe_key having count(*) > 1")


# -- kill -9 inside an event handler, then inside a bar --------------------------------

@scenario("kill-event")
def killed_in_event_and_bar(d: Path):
    """Three starts of the daemon on one ledger.

    1. Runs until the first entry waits for approval (L1), then a ``stop_approaching``
       event is enqueued; SIGKILL inside its handler after its effects.
    2. Restarts 30 s later; ``warden approvals approve`` the pending entry; the order
       fills on the next bar: SIGKILL after that bar's journal commit, before the daemon
       saw the fill.
    3. Restarts 30 s later and runs 3 h more; SIGTERM.
    """
    start = float(ts_of(START))
    out = {"dir": d, "db": d / "ledger.db", "start": start, "after": []}
    code, st1, err = start_daemon(
        d, start, start + 48 * HOUR, when="approval",
        inject=[("stop_approaching", {"symbol": "BTC-USD", "price": "100", "stop_price": "99",
                                      "distance": "0.0101"})],
        kill=("handler", "stop_approaching"))
    assert code == KILLED and st1["where"] == "handler", (code, st1, err[-3000:])
    out["after"].append(snapshot(out["db"]))
    code, st2, err = start_daemon(d, st1["killed_at"] + RESTART_SECONDS,
                                  st1["killed_at"] + 48 * HOUR, approve=True, kill=("fill_bar",))
    assert code == KILLED and st2["where"] == "fill_bar", (code, st2, err[-3000:])
    out["after"].append(snapshot(out["db"]))
    out["approved"] = json.loads((d / "state.approved").read_text())
    stop_at = st2["killed_at"] + RESTART_SECONDS + 3 * HOUR
    code, st3, err = start_daemon(d, st2["killed_at"] + RESTART_SECONDS, stop_at)
    assert code == 0 and st3["exit_code"] == 0, (code, st3, err[-3000:])
    out.update(kills=[st1, st2], last=st3, stop_at=stop_at)
    return out


def snapshot(db: Path) -> dict:
    """What the ledger holds right after a kill, and the daemon lock's state."""
    lock = lock_path(f"sqlite:///{db}")
    return {
        "lock": ((read_holder(lock) or {}).get("pid"), running_daemon(lock)),
        "events": q(db, "select id, kind, status, attempts from daemon_events order by id"),
        "approvals": q(db, "select id, status from approvals order by id"),
        "runs": q(db, "select run_id, status from runs order by started_at"),
        "beats": q(db, "select daemon_id, status from daemon_heartbeats order by ts, seq"),
        "alerts": q(db, "select dedupe_key, status from alerts order by id"),
        "fills": q(db, "select client_order_id, run_id from fills"),
    }


def test_killed_in_an_event_handler_the_restart_runs_it_again_and_its_effects_are_there_once(
        killed_in_event_and_bar):
    k = killed_in_event_and_bar
    db, st1 = k["db"], k["kills"][0]
    eid = st1["event_id"]
    first = k["after"][0]
    # the kill landed inside the handler: its effects committed, the event not finished
    assert (eid, "stop_approaching", "processing", 1) in first["events"]
    review = [key for key, _ in first["alerts"] if key and key.startswith(f"ev{eid}-")]
    assert review and review[0].endswith("-review")
    assert first["approvals"] == [(1, "pending")]
    assert [s for _, s in first["runs"]] == ["running"]       # left as the kill found it
    # the lock file still names the dead daemon, but its OS lock died with it
    assert first["lock"] == (st1["pid"], None)
    # the restart took the event over once its lease ran out and finished it
    events = q(db, "select status, attempts from daemon_events where id = ?", eid)
    assert events == [("done", 2)]
    assert q(db, "select count(*) from daemon_events where status = 'failed'") == [(0,)]
    # its alert delivered once (the re-run's is recorded suppressed, not sent again)
    rows = q(db, "select status from alerts where dedupe_key = ?", review[0])
    assert len([s for (s,) in rows if s != "suppressed"]) == 1
    no_duplicate_effects(db)
    # still pending after the restart, and approved through the CLI after it
    second = k["after"][1]
    assert k["approved"]["approval_id"] == 1
    assert "queued: approve approval 1" in k["approved"]["output"]
    assert q(db, "select status, acted_by from approvals where id = 1") == [("approved", "ivy")]
    assert q(db, "select kind, status, actor from commands") == [("approve", "done", "ivy")]
    entry = q(db, "select client_order_id, status from orders where role = 'entry'")
    assert len(entry) == 1 and entry[0][1] == "filled"
    assert [c for c, _ in second["fills"]].count(entry[0][0]) == 1   # filled before kill 2
    assert q(db, "select count(*) from fills where client_order_id = ?", entry[0][0]) == [(1,)]


def test_after_two_kills_heartbeats_resume_runs_continue_and_each_candle_is_decided_once(
        killed_in_event_and_bar):
    k = killed_in_event_and_bar
    db, d = k["db"], k["dir"]
    # three daemons beat in turn; only the last one shut down
    ids = [json.loads(x)["daemon_id"] for x in
           [(d / f"start-{n}.log").read_text().splitlines()[0] for n in range(3)]]
    assert len(set(ids)) == 3
    for n, daemon in enumerate(ids):
        beats = q(db, "select status, activity from daemon_heartbeats where daemon_id = ? "
                      "order by seq", daemon)
        assert beats[0] == ("running", "started")
        assert {s for s, _ in beats[:-1]} == {"running"}
        assert beats[-1][0] == ("shutdown" if n == 2 else "running")
    # a killed run is left running until the next start finds its process gone
    assert [s for _, s in k["after"][0]["runs"]] == ["running"]
    assert [s for _, s in k["after"][1]["runs"]] == ["crashed", "running"]
    assert [s for (s,) in q(db, "select status from runs order by started_at")] == [
        "crashed", "crashed", "interrupted"]
    decided_once(db, "BTC-USD", k["start"], k["stop_at"])
    assert q(db, "select status from deployments") == [("stopped",)]


def test_an_event_re_run_after_a_kill_is_decided_once_in_the_audit(killed_in_event_and_bar):
    k = killed_in_event_and_bar
    eid = k["kills"][0]["event_id"]
    assert q(k["db"], "select count(*) from agent_decisions where event_id = ?", eid) == [(1,)]


def test_a_fill_committed_before_the_kill_is_announced_after_the_restart(killed_in_event_and_bar):
    k = killed_in_event_and_bar
    cid = q(k["db"], "select client_order_id from fills")[0][0]
    events = [json.loads(p) for (p,) in q(k["db"], "select payload from daemon_events "
                                                   "where kind = 'order_filled'")]
    assert [e["client_order_id"] for e in events].count(cid) == 1


# -- a whole simulated day -----------------------------------------------------------

def test_a_24_hour_simulated_day_of_two_deployments_completes(paper_venue, monkeypatch):
    sim, _server, cfg, db = paper_venue
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


# -- kill -9 inside the anomaly handler, then between two heartbeats --------------------

@scenario("kill-anomaly")
def killed_in_anomaly_and_idle(d: Path):
    """Three starts of the daemon on one ledger, autonomy starting at L2.

    1. An ``anomaly_detected`` event is enqueued at the first turn; SIGKILL inside its
       handler after its effects (anomaly opened, L2 -> L1, alerts).
    2. Restarts 20 min later (beyond the alerts' 15 min de-duplication window, as after a
       reboot) and runs 3 h; SIGKILL while it waits between two heartbeats.
    3. Restarts 2.5 h later (candles closed meanwhile: caught up) and runs 1 h; SIGTERM.
    """
    start = float(ts_of(START))
    extra = "[autonomy]\ninitial_level = 2\n"
    out = {"dir": d, "db": d / "ledger.db", "start": start, "after": []}
    code, st1, err = start_daemon(
        d, start, start + 24 * HOUR, extra=extra,
        inject=[("anomaly_detected", {"anomaly": "vix_spike", "severity": "warning",
                                      "detail": {"vix": 41}})],
        kill=("handler", "anomaly_detected"))
    assert code == KILLED and st1["where"] == "handler", (code, st1, err[-3000:])
    out["after"].append(snapshot(d / "ledger.db"))
    t2 = st1["killed_at"] + 20 * 60
    code, st2, err = start_daemon(d, t2, t2 + 24 * HOUR, extra=extra,
                                  kill=("at", t2 + 3 * HOUR + 30))
    assert code == KILLED and st2["where"] == "at", (code, st2, err[-3000:])
    out["after"].append(snapshot(d / "ledger.db"))
    t3 = st2["killed_at"] + 2.5 * HOUR
    code, st3, err = start_daemon(d, t3, t3 + HOUR, extra=extra)
    assert code == 0 and st3["exit_code"] == 0, (code, st3, err[-3000:])
    out.update(kills=[st1, st2], last=st3, restarts=[t2, t3], stop_at=t3 + HOUR)
    return out


def test_killed_in_the_anomaly_handler_its_anomaly_and_demotion_happen_once(
        killed_in_anomaly_and_idle):
    k = killed_in_anomaly_and_idle
    db, eid = k["db"], k["kills"][0]["event_id"]
    first = k["after"][0]
    assert (eid, "anomaly_detected", "processing", 1) in first["events"]
    assert q(db, "select status, attempts from daemon_events where id = ?", eid) == [("done", 2)]
    assert q(db, "select count(*) from daemon_events where status = 'failed'") == [(0,)]
    # one anomaly, one demotion L2 -> L1, kept by both restarts
    assert q(db, "select kind, status from anomalies") == [("vix_spike", "open")]
    assert q(db, "select from_level, to_level, kind from autonomy_changes "
                 "where kind != 'initial' order by id") == [(2, 1, "demotion")]
    levels = {lv for (lv,) in q(db, "select autonomy_level from daemon_heartbeats where "
                                    "autonomy_level is not null")}
    assert levels == {1}
    no_duplicate_effects(db, alerts=False)


def test_killed_between_heartbeats_the_restart_catches_up_every_closed_candle(
        killed_in_anomaly_and_idle):
    k = killed_in_anomaly_and_idle
    db, d = k["db"], k["dir"]
    decided_once(db, "BTC-USD", k["start"], k["stop_at"])
    # the candles that closed while it was down were decided by the third start
    t3 = k["restarts"][1]
    lines = log_lines(d, 2)
    caught = [x["ts"] for x in lines if x["event"] == "bar_decided" and x["ts"] + HOUR <= t3]
    assert len(caught) >= 2
    ids = [log_lines(d, n)[0]["daemon_id"] for n in range(3)]
    beats = [q(db, "select status from daemon_heartbeats where daemon_id = ? order by seq", i)
             for i in ids]
    assert [b[-1][0] for b in beats] == ["running", "running", "shutdown"]
    assert 178 <= len(beats[1]) <= 184                  # one a minute for its 3 h
    assert {s for (s,) in beats[2][:-1]} == {"running"}
    assert [s for (s,) in q(db, "select status from runs order by started_at")] == [
        "crashed", "crashed", "interrupted"]


def test_an_event_re_run_after_a_late_restart_alerts_once(killed_in_anomaly_and_idle):
    assert alerted_twice(killed_in_anomaly_and_idle["db"]) == []


# -- kill -9 after the daemon queued a command of its own ------------------------------

@scenario("kill-command")
def killed_after_a_daemon_command(d: Path):
    """Two starts at L3, where the daemon acts on its own decisions: a ``stop_approaching``
    event its reasoner answers with ``CLOSE_POSITION`` (executed: a ``close`` command
    queued as actor ``daemon``); SIGKILL inside the handler after that; restart 30 s
    later, 1 h, SIGTERM."""
    start = float(ts_of(START))
    extra = "[autonomy]\ninitial_level = 3\n"
    code, st1, err = start_daemon(
        d, start, start + 24 * HOUR, extra=extra, close_on="stop_approaching",
        inject=[("stop_approaching", {"symbol": "BTC-USD", "price": "100", "stop_price": "99",
                                      "distance": "0.0101"})],
        kill=("handler", "stop_approaching"))
    assert code == KILLED and st1["where"] == "handler", (code, st1, err[-3000:])
    after = snapshot(d / "ledger.db")
    after["commands"] = q(d / "ledger.db", "select kind, target, actor, reason from commands")
    t2 = st1["killed_at"] + RESTART_SECONDS
    code, st2, err = start_daemon(d, t2, t2 + HOUR, extra=extra, close_on="stop_approaching")
    assert code == 0 and st2["exit_code"] == 0, (code, st2, err[-3000:])
    return {"db": d / "ledger.db", "event_id": st1["event_id"], "after": after}


def daemon_closes(db: Path, eid: int) -> list[tuple]:
    return q(db, "select kind, target, status from commands where actor = 'daemon' and "
                 "reason like ?", f"%(ev{eid}-%")


def test_killed_after_the_daemon_queued_a_close_the_event_is_finished_on_restart(
        killed_after_a_daemon_command):
    k = killed_after_a_daemon_command
    db, eid = k["db"], k["event_id"]
    # the kill landed after the close was queued, before the event was finished
    assert (eid, "stop_approaching", "processing", 1) in k["after"]["events"]
    assert [(c[0], c[1], c[2]) for c in k["after"]["commands"]] == [
        ("close", "BTC-USD", "daemon")]
    assert q(db, "select status, attempts from daemon_events where id = ?", eid) == [("done", 2)]
    assert daemon_closes(db, eid)[0][:2] == ("close", "BTC-USD")
    assert all(s != "pending" for _, _, s in daemon_closes(db, eid))    # carried out


def test_killed_after_the_daemon_queued_a_close_it_is_queued_once(killed_after_a_daemon_command):
    k = killed_after_a_daemon_command
    assert len(daemon_closes(k["db"], k["event_id"])) == 1


# -- not a kill: a deployment reopened inside the daemon after a fill --------------------

@scenario("reopen")
def reopened_after_a_fill(d: Path):
    """One start at L3: the first entry (a first trade: a person decides) approved, its
    fill announced, then that bar's step raises; the deployment is reopened 60 s later
    as a new run, which trades on its own (L3): its exit fills in the 12th hour."""
    start = float(ts_of(START))
    code, st, err = start_daemon(
        d, start, start + 12 * HOUR, approve=True, fail_after_fill=True,
        extra="reconnect_seconds = 60\n[autonomy]\ninitial_level = 3\n")
    assert code == 0 and st["exit_code"] == 0, (code, st, err[-3000:])
    return d / "ledger.db"


def announced(db: Path) -> tuple[list, list]:
    fills = q(db, "select r.status, f.client_order_id from fills f join runs r "
                  "on r.run_id = f.run_id order by r.started_at, f.fill_seq")
    events = [json.loads(p)["client_order_id"] for (p,) in
              q(db, "select payload from daemon_events where kind = 'order_filled'")]
    return fills, events


def test_a_deployment_reopened_after_a_fill_trades_on_in_a_new_run(reopened_after_a_fill):
    db = reopened_after_a_fill
    fills, events = announced(db)
    assert [s for (s,) in q(db, "select status from runs order by started_at")] == [
        "failed", "interrupted"]
    first = [c for s, c in fills if s == "failed"]
    assert first and all(events.count(c) == 1 for c in first)     # announced once
    assert [c for s, c in fills if s == "interrupted"]            # the new run filled too
    no_duplicate_effects(db)


def test_a_deployment_reopened_after_a_fill_announces_the_new_runs_fills(reopened_after_a_fill):
    fills, events = announced(reopened_after_a_fill)
    assert [c for _, c in fills if events.count(c) != 1] == []
