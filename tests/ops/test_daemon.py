"""The daemon's process: one per ledger (an OS file lock; a dead holder's lock is not a
running daemon), a heartbeat row at start, every minute of clock time and at shutdown,
``warden daemon start --foreground`` on a paper deployment against the loopback fake
venue (simulated time), SIGTERM stopping it gracefully, ``status`` and ``stop``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from paper_support import q
from typer.testing import CliRunner

from tradewarden.cli import app
from tradewarden.ops.daemon import DaemonLock, DaemonRunning, lock_path, read_holder, running_daemon

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, b'{"pid": %d, "host": "elsewhere", "since": "then"}' % os.getpid())
print("held", flush=True)
time.sleep(60)
"""


def test_one_daemon_per_ledger_and_a_dead_holder_does_not_count(tmp_path):
    lock = lock_path(f"sqlite:///{tmp_path / 'l.db'}")
    assert lock == tmp_path / "l.db.daemon.lock"
    first = DaemonLock(lock)
    first.acquire()
    holder = running_daemon(lock)
    assert holder["pid"] == os.getpid() and holder["lock"] == str(lock)
    with pytest.raises(DaemonRunning) as exc:
        DaemonLock(lock).acquire()
    assert f"pid {os.getpid()}" in str(exc.value) and "warden daemon stop" in str(exc.value)
    first.release()
    assert running_daemon(lock) is None
    # another process holds it, then dies by SIGKILL: its lock dies with it
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"held"
    assert running_daemon(lock)["pid"] == proc.pid
    with pytest.raises(DaemonRunning):
        DaemonLock(lock).acquire()
    proc.kill()
    proc.wait()
    assert read_holder(lock)["pid"] == proc.pid          # the file still names it ...
    assert running_daemon(lock) is None                   # ... but nobody holds the lock
    with DaemonLock(lock):
        assert running_daemon(lock)["pid"] == os.getpid()


def test_daemon_runs_a_paper_deployment_with_heartbeats_and_stops_on_sigterm(paper_venue):
    sim, server, cfg, db = paper_venue
    lock = lock_path(f"sqlite:///{db}")
    stop_at = sim.t + 6 * 3600
    seen = {}

    def hook(t):
        if "holder" not in seen and t > sim.t - 1 and running_daemon(lock) is not None:
            seen["holder"] = running_daemon(lock)
            r = CliRunner().invoke(app, ["daemon", "start", "--config", str(cfg), "--foreground"])
            seen["second"] = (r.exit_code, r.output)
        if t >= stop_at and sim.on_sleep is not None:
            sim.on_sleep = None
            os.kill(os.getpid(), signal.SIGTERM)

    sim.on_sleep = hook
    log = db.with_name("svc.log")
    r = CliRunner().invoke(app, ["daemon", "start", "--config", str(cfg), "--foreground",
                                 "--deployment", "svc", "--log", str(log), "--log-json"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    events = [x["event"] for x in lines if x["event"] in (
        "daemon_started", "deployment_opened", "bar_decided", "daemon_stopped")]
    assert events[:2] == ["daemon_started", "deployment_opened"] and events[-1] == "daemon_stopped"
    assert events[2:-1] == ["bar_decided"] * 6           # the candles of those 6 h, one line each
    assert not [x for x in lines if x.get("trigger") == "anomaly"]     # hourly data is not stale
    assert lines[0]["deployments"] == ["svc"] and lines[0]["modes"] == ["paper"]
    assert lines[1]["deployment"] == "svc" and lines[1]["recovered"] is False
    assert lines[-1]["status"] == "shutdown" and lines[0]["level"] == "info"
    assert lines[0]["timestamp"].endswith("Z") and lines[0]["pid"] == os.getpid()
    assert seen["holder"]["pid"] == os.getpid()
    code, output = seen["second"]
    assert code == 2 and "a daemon is already running for this ledger" in output
    beats = q(db, "select status, activity, deployments from daemon_heartbeats order by seq")
    assert beats[0][:2] == ("running", "started")
    assert beats[-1][:2] == ("shutdown", "stopped")
    assert json.loads(beats[-1][2]) == ["svc"]
    assert 355 <= len(beats) <= 365           # one a minute of clock time over the 6 h
    assert q(db, "select name, mode, status from deployments") == [("svc", "paper", "stopped")]
    assert running_daemon(lock) is None
    r = CliRunner().invoke(app, ["daemon", "status", "--config", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    status = json.loads(r.output)
    assert status["running"] is False and status["heartbeat"]["status"] == "shutdown"
    assert status["deployments"] == [{"name": "svc", "mode": "paper", "status": "stopped"}]
    assert q(db, "select count(*) from decisions")[0][0] == 6       # the candles of those 6 h
    # down now: the daemon commands reach its deployment through the ledger, and
    # emergency-stop with --config starts it just long enough to act
    r = CliRunner().invoke(app, ["daemon", "pause", "--config", str(cfg), "--reason", "FOMC",
                                 "--by", "ivy"])
    assert r.exit_code == 0 and "command 1 queued: pause (reason: FOMC) for deployment svc" in r.output
    r = CliRunner().invoke(app, ["daemon", "emergency-stop", "--config", str(cfg), "--yes",
                                 "--by", "ivy"])
    assert r.exit_code == 0, r.output
    assert q(db, "select kind, status, actor from commands order by id") == [
        ("pause", "done", "ivy"), ("kill", "done", "ivy"), ("flatten", "done", "ivy")]
    assert "command 3 flatten: done: " in r.output


def test_stop_without_a_daemon_and_a_background_start_that_fails(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'symbols = ["BTC-USD"]\n[ledger]\ndb = "{tmp_path / "l.db"}"\n')
    r = CliRunner().invoke(app, ["daemon", "stop", "--config", str(cfg)])
    assert r.exit_code == 0 and "no daemon is running for this ledger" in r.output
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWARDEN_")}
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "tradewarden.cli", "daemon", "start",
                          "--config", str(cfg)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 2
    assert "the daemon exited at start" in out.stderr
    assert "the daemon needs a venue: set [venue] name" in out.stderr
    assert time.monotonic() - started < 60
    assert "needs a venue" in (tmp_path / "daemon.out").read_text()


def test_a_live_config_needs_the_live_flag(tmp_path):
    cfg = tmp_path / "live.toml"
    cfg.write_text(f'mode = "live"\nsymbols = ["BTC-USD"]\n[ledger]\ndb = "{tmp_path / "l.db"}"\n'
                   '[venue]\nname = "kraken"\n')
    r = CliRunner().invoke(app, ["daemon", "start", "--config", str(cfg), "--foreground"])
    assert r.exit_code == 2
    assert "warden daemon refused: pass --live to trade real money" in r.output
