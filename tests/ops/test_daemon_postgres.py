"""``warden daemon start --foreground`` on a PostgreSQL ledger whose server goes away for
a few simulated hours and comes back (issue 12, "Degrading, not crashing": "Database
unreachable: spool decisions to a local SQLite file and replay them when the database
returns; never trade without the primary database").

The server is the module's own (:class:`pg_server.PgServer`, stopped and started with
``pg_ctl``); the venue is the loopback TLS fake of Coinbase on simulated time, as in
``test_daemon_service.py``; ``sim.on_sleep`` stops the server, starts it again and sends
SIGTERM at chosen simulated times. The deployment is paper Donchian on BTC-USD at
autonomy level 3: its entries before the outage are queued (``first_trade``).

One daemon run (module fixture ``outage``) serves the first checks: the daemon carries
on, every closed candle is decided exactly once, in order, nothing is traded while the
database is away, heartbeats resume, the spool is empty at the end; the outage's bars
are decided into the spool with entries blocked (``ledger_unreachable``) even when the
first ledger call to meet the outage is a read (it always is when the server goes away
between two steps), a ``block``/``unblock`` pair, the deployment never failing; one
``daemon_error`` alert for the outage in all, recorded in ``alerts`` once the database
is back.

A second run has a position open when the server goes away (the first entry approved
through the command inbox) and its channel exit signal comes during the outage: nothing
may be traded (the governor answers ``ledger_unreachable``), and the deployment does not
fail.

A third scenario runs the daemon in forked processes: the first stops the server and
is killed with SIGKILL during the outage; the server returns; the second daemon, on the
same state directory, replays the dead one's spool before it decides anything, exactly
once (one replay marker per spooled batch), and every candle is decided once.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_exchange_server import HOUR, FakeVenue, source_rows, ts_of
from paper_support import START, SYM, SimTime
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from tradewarden import cli_paper
from tradewarden.cli import app
from tradewarden.data.download import create_venue_client
from tradewarden.engine.clock import WallClock

sys.path.insert(0, str(Path(__file__).parents[1] / "ledger"))
from pg_server import PgServer

#: Simulated hours after the start: the server stops, starts again; SIGTERM.
DOWN_H, UP_H, STOP_H = 1, 4, 6


def pq(url: str, sql: str, **params: Any) -> list[tuple]:
    """Rows of ``sql`` on the PostgreSQL ledger ``url`` (a connection of its own)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def pg() -> Any:
    """The module's PostgreSQL server (stopped and started by the tests)."""
    server = PgServer()
    try:
        yield server
    finally:
        server.close()


def daemon_config(tmp: Path, url: str, venue_url: str) -> Path:
    """A daemon config: paper Donchian on BTC-USD at the fake venue, the ledger at
    ``url``, autonomy level 3; a turn (and a reconnection attempt) every 10 simulated
    minutes, which keeps the run short."""
    cfg = tmp / "daemon.toml"
    cfg.write_text(f"""
symbols = ["{SYM}"]
strategy = "donchian"
timeframe = "1h"
[params]
entry_window = 6
exit_window = 3
[ledger]
db = "{url}"
[venue]
name = "coinbase"
api_url = "{venue_url}"
[daemon]
inbox_seconds = 600
reconnect_seconds = 600
[autonomy]
initial_level = 3
""")
    return cfg


def at_times(sim: SimTime, actions: list[tuple[float, Any]]) -> None:
    """Run each ``action()`` once, at the first simulated sleep that reaches its time."""
    todo = sorted(actions, key=lambda a: a[0])

    def hook(t: float) -> None:
        while todo and t >= todo[0][0]:
            todo.pop(0)[1]()
        if not todo:
            sim.on_sleep = None
    sim.on_sleep = hook


def run_daemon(start: float, tmp: Path, url: str,
               actions: list[tuple[float, Callable[[SimTime], None]]]) -> Any:
    """Run ``warden daemon start --foreground`` on the ledger ``url`` from the simulated
    time ``start`` (a fresh fake venue on that time, its state directory and log in
    ``tmp``); call each ``action(sim)`` once when the simulated time reaches it (one
    of them ends the run). Return the CliRunner result."""
    mp = pytest.MonkeyPatch()
    sim = SimTime(start)
    venue = FakeVenue("coinbase", sim.time, tls=True).start()
    try:
        mp.setenv("REQUESTS_CA_BUNDLE", venue.ca_bundle)
        mp.setenv("TRADEWARDEN_STATE_DIR", str(tmp / "state"))
        mp.setattr(cli_paper, "clock_factory",
                   lambda stopped: WallClock(sim.time, sim.sleep, stop=stopped))
        mp.setattr(cli_paper, "client_factory", lambda name, api: create_venue_client(
            name, api_url=api, config={"rateLimit": 1, "timeout": 5000}))
        cfg = daemon_config(tmp, url, venue.base_url)
        at_times(sim, [(t, lambda f=f: f(sim)) for t, f in actions])
        return CliRunner().invoke(app, ["daemon", "start", "--config", str(cfg),
                                        "--foreground", "--log", str(tmp / "daemon.log"),
                                        "--log-json"])
    finally:
        sim.on_sleep = None
        venue.stop()
        mp.undo()


def log_of(tmp: Path) -> list[dict[str, Any]]:
    """The daemon's JSON log lines in ``tmp``."""
    return [json.loads(line) for line in (tmp / "daemon.log").read_text().splitlines()]


def sigterm(sim: SimTime) -> None:
    """Ask the daemon (this process) to stop."""
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture(scope="module")
def outage(pg, tmp_path_factory) -> dict[str, Any]:
    """Run the daemon once: the server stops ``DOWN_H`` simulated hours after the start
    and starts again at ``UP_H``; SIGTERM at ``STOP_H``. Return what the checks read."""
    tmp = tmp_path_factory.mktemp("pg-outage")
    if not pg.running:
        pg.start()
    url = pg.new_database() + "?connect_timeout=2"
    start = ts_of(START)
    seen: dict[str, Any] = {}

    def down(sim: SimTime) -> None:
        seen["beats_before"] = pq(url, "select max(seq) from daemon_heartbeats")[0][0]
        seen["orders_before"] = pq(url, "select count(*) from orders")[0][0]
        pg.stop()
        seen["down_at"] = sim.t

    def up(sim: SimTime) -> None:
        pg.start()
        seen["up_at"] = sim.t

    def stop(sim: SimTime) -> None:
        seen["stop_at"] = sim.t
        sigterm(sim)

    try:
        result = run_daemon(start, tmp, url, [(start + DOWN_H * HOUR, down),
                                              (start + UP_H * HOUR, up),
                                              (start + STOP_H * HOUR, stop)])
    finally:
        if not pg.running:
            pg.start()
    return {"result": result, "url": url, "start": start, "tmp": tmp, **seen,
            "log": log_of(tmp)}


def spooled(state: Path) -> tuple[int, int, int]:
    """The spool files in the daemon's state directory: how many, and the batches and
    calls they hold."""
    files, batches, calls = 0, 0, 0
    for path in state.glob("*.spool.db"):
        files += 1
        with sqlite3.connect(path) as c:
            batches += c.execute("select count(*) from spool_batches").fetchone()[0]
            calls += c.execute("select count(*) from spool_calls").fetchone()[0]
    return files, batches, calls


def closed_candles(start: float, stop: float) -> list[int]:
    """Open times of the bundled BTC-USD candles that closed after ``start`` and by ``stop``."""
    return [int(t) for t in source_rows(SYM)["ts"] if start < t + HOUR <= stop]


def test_database_away_and_back_the_daemon_carries_on_and_decides_every_candle_once(outage):
    o, url = outage, outage["url"]
    assert o["result"].exit_code == 0, o["result"].output
    assert o["down_at"] < o["up_at"] < o["stop_at"]
    assert o["up_at"] - o["down_at"] >= 3 * HOUR - 60
    events = [x["event"] for x in o["log"]]
    # the daemon ran through the outage: it stopped on the SIGTERM, not before
    assert events.count("daemon_started") == 1 and events[-1] == "daemon_stopped"
    assert o["log"][-1]["status"] == "shutdown"
    # every candle that closed while it ran is decided exactly once, in order (also
    # those that closed while the database was away)
    got = [t for (t,) in pq(url, "select ts from decisions where symbol = :s order by seq",
                             s=SYM)]
    want = closed_candles(o["start"], o["stop_at"])
    outage_bars = [t for t in want if o["down_at"] <= t + HOUR < o["up_at"]]
    assert len(outage_bars) >= 2
    assert got == want
    # nothing was traded without the primary database: no order while it was away (none
    # at all: the entries are queued for a person at the first trade)
    assert pq(url, "select count(*) from orders")[0][0] == o["orders_before"] == 0
    decided = dict(pq(url, "select ts, action from decisions where symbol = :s", s=SYM))
    assert not {decided[t] for t in outage_bars} & {"enter", "exit"}
    # heartbeats resume after the outage, and the last says shutdown
    beats = pq(url, "select seq, status from daemon_heartbeats order by seq")
    after = [s for q, s in beats if q > o["beats_before"]]
    assert len(after) >= 3 and after[-1] == "shutdown" and "running" in after
    # the spool beside the daemon's lock holds nothing at the end
    assert spooled(o["tmp"] / "state") == (1, 0, 0)
    # the daemon's own ledger failing is alerted once (logged with its ledger error)
    alerts = [x for x in o["log"] if x["event"] == "alert"
              and x["subject"].startswith("the ledger database fails")]
    assert len(alerts) == 1 and alerts[0]["level"] == "critical"
    assert alerts[0]["trigger"] == "daemon_error" and alerts[0]["ledger_error"]




def test_database_away_the_bars_are_decided_into_the_spool_with_entries_blocked(outage):
    o, url = outage, outage["url"]
    assert o["result"].exit_code == 0, o["result"].output
    # the deployment degraded instead of failing: one run, never reopened
    assert [x for x in o["log"] if x["event"] == "deployment_failed"] == []
    assert pq(url, "select status from runs") == [("interrupted",)]
    want = closed_candles(o["start"], o["stop_at"])
    outage_bars = [t for t in want if o["down_at"] <= t + HOUR < o["up_at"]]
    rows = pq(url, "select ts, action, reason from decisions where symbol = :s order by seq",
              s=SYM)
    assert [t for t, _, _ in rows] == want
    # the entry signals of the outage were blocked for want of the database
    during = {(a, r) for t, a, r in rows if t in outage_bars and a != "hold"}
    assert during == {("blocked", "ledger_unreachable")}
    # they reached PostgreSQL from the spool: one replay marker per spooled batch
    markers = pq(url, "select count(*) from daemon_events where kind = :k",
                 k="ledger_spool_replay")[0][0]
    assert markers >= len(outage_bars)
    # one block and one unblock naming the outage, the block within it, the unblock after
    blocks = pq(url, "select kind, ts, message from events where kind in ('block', 'unblock') "
                     "and message like 'ledger_unreachable:%' order by seq")
    assert [k for k, _, _ in blocks] == ["block", "unblock"]
    assert o["down_at"] <= blocks[0][1] < o["up_at"] <= blocks[1][1]
    assert spooled(o["tmp"] / "state") == (1, 0, 0)


def test_database_away_one_alert_for_the_outage(outage):
    sent = [x["subject"] for x in outage["log"] if x["event"] == "alert"
            and x["trigger"] == "daemon_error" and x["status"] != "suppressed"]
    assert len(sent) == 1 and sent[0].startswith("the ledger database fails")


def test_database_away_its_alert_is_recorded_in_the_alerts_table_once_it_returns(outage):
    rows = pq(outage["url"], "select trigger, level, subject from alerts "
                             "where trigger = 'daemon_error'")
    assert len(rows) == 1 and rows[0][1] == "critical"
    assert "ledger database fails" in rows[0][2]


# -- killed during the outage ------------------------------------------------------------

def in_child(start: float, tmp: Path, url: str,
             actions: list[tuple[float, Callable[[SimTime], None]]]) -> int | None:
    """Run :func:`run_daemon` in a forked process (its own fake venue and simulated
    time; the test's patches inherited); return its exit code (``-9``: killed)."""
    ctx = multiprocessing.get_context("fork")

    def child() -> None:
        code = 1
        try:
            result = run_daemon(start, tmp, url, actions)
            (tmp / "output.txt").write_text(result.output)
            code = result.exit_code
        finally:
            os._exit(code)

    proc = ctx.Process(target=child)
    proc.start()
    proc.join(120)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
    return proc.exitcode


def sigkill(sim: SimTime) -> None:
    """Die at once, as ``kill -9`` does."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_killed_during_the_outage_the_next_daemon_replays_its_spool_first_and_once(
        pg, tmp_path):
    if not pg.running:
        pg.start()
    url = pg.new_database() + "?connect_timeout=2"
    start = ts_of(START)
    down_at, killed_at = start + HOUR, start + 3 * HOUR

    def down(sim: SimTime) -> None:
        pg.stop()

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (second / "state").symlink_to(first / "state")      # the same daemon state directory
    try:
        code = in_child(start, first, url, [(down_at, down), (killed_at, sigkill)])
        assert code == -signal.SIGKILL
        assert not pg.refresh()                     # the worker stopped it
        files, batches, calls = spooled(first / "state")
        # the dead daemon left the bars of its outage in the spool
        assert files == 1 and batches >= 2 and calls > batches
    finally:
        if not pg.running:
            pg.start()
    before = pq(url, "select ts from decisions order by ts")
    restart = killed_at + HOUR
    code = in_child(restart, second, url, [(restart + 2 * HOUR, sigterm)])
    assert code == 0, (second / "output.txt").read_text()
    # every candle closed in either daemon's time decided exactly once: the spooled bars
    # by the dead daemon's run, in order, before those of the second daemon's run
    want = closed_candles(start, restart + 2 * HOUR)
    assert [t for (t,) in pq(url, "select ts from decisions order by ts")] == want
    runs = pq(url, "select r.run_id, r.status from runs r order by r.started_at")
    assert [s for _, s in runs] == ["crashed", "interrupted"]
    by_run = [[t for (t,) in pq(url, "select ts from decisions where run_id = :r order by seq",
                                 r=r)] for r, _ in runs]
    assert by_run[0] + by_run[1] == want
    spooled_bars = [t for t in want if down_at <= t + HOUR <= killed_at]
    assert len(spooled_bars) >= 2 and set(spooled_bars) <= set(by_run[0])
    assert not set(spooled_bars) & {t for (t,) in before}
    # each spooled batch replayed once (one marker each), the spool empty
    markers = pq(url, "select count(*) from daemon_events where kind = 'ledger_spool_replay'")
    assert markers[0][0] == batches
    assert spooled(first / "state") == (1, 0, 0)
    # no order at all (entries are blocked while the database is away, queued after)
    assert pq(url, "select count(*) from orders") == [(0,)]


# -- an open position when the database goes away -----------------------------------------

@pytest.fixture(scope="module")
def holding_outage(pg, tmp_path_factory) -> dict[str, Any]:
    """Run the daemon with a position open when the server goes away: the first entry
    (queued at the first trade) is approved through the command inbox, the server stops
    at 8 h and returns at 11 h; the bundled bars give the position its channel exit on
    the candle that closes at 10.5 h (a run without the outage exits there); SIGTERM at
    12.5 h."""
    tmp = tmp_path_factory.mktemp("pg-holding")
    if not pg.running:
        pg.start()
    url = pg.new_database() + "?connect_timeout=2"
    start = ts_of(START)
    seen: dict[str, Any] = {}

    def approve(sim: SimTime) -> None:
        from tradewarden.ledger import Ledger
        (dep,), (approval,) = pq(url, "select deployment_id from deployments"), pq(
            url, "select id from approvals where status = 'pending'")
        led = Ledger(url)
        try:
            led.enqueue_command(dep[0], "approve", actor="test", target=str(approval[0]))
        finally:
            led.close()

    def down(sim: SimTime) -> None:
        seen["positions_before"] = pq(url, "select count(*) from orders where role = 'entry' "
                                           "and status = 'filled'")[0][0]
        pg.stop()
        seen["down_at"] = sim.t

    def up(sim: SimTime) -> None:
        pg.start()
        seen["up_at"] = sim.t

    try:
        result = run_daemon(start, tmp, url, [(start + int(2.6 * HOUR), approve),
                                              (start + 8 * HOUR, down),
                                              (start + 11 * HOUR, up),
                                              (start + int(12.5 * HOUR), sigterm)])
    finally:
        if not pg.running:
            pg.start()
    return {"result": result, "url": url, "start": start, "log": log_of(tmp), **seen}


def test_database_away_with_a_position_its_exit_is_held_not_traded_and_nothing_fails(
        holding_outage):
    o, url = holding_outage, holding_outage["url"]
    assert o["result"].exit_code == 0, o["result"].output
    assert o["positions_before"] == 1                       # the approved entry filled
    # nothing traded while the database was away
    placed = pq(url, "select client_order_id from orders where created_ts >= :a and "
                     "created_ts < :b", a=o["down_at"], b=o["up_at"])
    assert placed == []
    # the deployment never failed: it decided the outage's bars, the exit signal's too,
    # and held it for want of the database
    assert [x for x in o["log"] if x["event"] == "deployment_failed"] == []
    assert len(pq(url, "select run_id from runs")) == 1
    exit_bar = o["start"] + int(9.5 * HOUR)                 # closes at 10.5 h
    (action, reason), = pq(url, "select action, reason from decisions where ts = :t",
                           t=exit_bar)
    assert action != "exit" and "ledger_unreachable" in reason
