"""``warden paper`` end to end: the real ccxt client on live candles from a loopback
HTTPS fake venue (Coinbase's wire format, candles cut from the real bundled data),
simulated time shared by the fake and the deployment's ``WallClock``.

The CLI runs in this process (Typer's runner); only its clock is replaced, through
``cli_paper.clock_factory``, by one on the simulated time, so a day of hourly candles
takes a second. Every connection is to 127.0.0.1 (a guard refuses others).
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from typer.testing import CliRunner

from paper_support import START, SYM, q  # noqa: E402
from fake_exchange_server import HOUR, source_rows, ts_of  # noqa: E402

from tradewarden.cli import app  # noqa: E402
from tradewarden.domain import iso  # noqa: E402


@pytest.fixture
def venue(paper_venue):
    return paper_venue


def paper(cfg, *args):
    return CliRunner().invoke(app, ["paper", "--config", str(cfg), "--deployment", "desk",
                                    "--inbox-seconds", "60", *args])


def closed_candles(lo: int, hi: int) -> list[int]:
    """Open times of the bundled BTC-USD candles that closed after ``lo`` and by ``hi``."""
    ts = source_rows(SYM)["ts"]
    return [int(t) for t in ts if lo < t + HOUR <= hi]


def test_paper_trades_closed_candles_once_and_resumes_where_it_stopped(venue):
    sim, server, cfg, db = venue
    first_until = ts_of("2026-05-02T10:00:30")
    r = paper(cfg, "--until", iso(first_until))
    assert r.exit_code == 0, r.output
    assert "deployment desk (" in r.output and ": new, flat" in r.output
    assert "deployment desk stopped: " in r.output
    start = ts_of(START)
    got = [t for (t,) in q(db, "select ts from decisions order by seq")]
    assert got == closed_candles(start, first_until)                   # each once, none in progress
    closes = dict(q(db, "select ts, close from decisions"))
    src = source_rows(SYM)
    assert all(closes[t] == float(src["close"][src["ts"] == t][0]) for t in got)
    (dep,) = q(db, "select name, status, deployment_id from deployments")
    assert dep[:2] == ("desk", "stopped")
    (run,) = q(db, "select status, mode from runs")
    assert run == ("completed", "paper")

    # a person pauses it while it is down; started again, it acts on that first
    r = CliRunner().invoke(app, ["pause", "--deployment", "desk", "--db", str(db), "--by", "erin"])
    assert r.exit_code == 0, r.output
    second_until = ts_of("2026-05-03T06:00:30")
    r = paper(cfg, "--until", iso(second_until))
    assert r.exit_code == 0, r.output
    assert ": resumed" in r.output and "command 1: done: paused" in r.output
    got2 = [t for (t,) in q(db, "select ts from decisions order by run_id != (select run_id from "
                               "runs order by started_at limit 1), seq")]
    assert got2 == closed_candles(start, second_until)
    assert len(got2) == len(set(got2))                                 # no bar twice, none skipped
    later = q(db, "select action, reason from decisions where ts >= ? and action != 'hold'",
              first_until)
    assert all(a in ("blocked", "exit") for a, _ in later)
    assert ("blocked", "paused") in later or not later
    (cmd,) = q(db, "select kind, actor, status from commands")
    assert cmd == ("pause", "erin", "done")

    r = CliRunner().invoke(app, ["paper", "status", "--db", str(db), "--json"])
    assert r.exit_code == 0, r.output
    (status,) = json.loads(r.output)
    assert status["name"] == "desk" and status["status"] == "stopped" and status["paused"]
    assert status["last_bar"] == iso(got2[-1])


def test_a_stalled_feed_blocks_entries_and_the_missed_candles_come_after(venue, monkeypatch):
    sim, server, cfg, db = venue
    server.outage = (ts_of("2026-05-01T14:00:00"), ts_of("2026-05-01T18:30:00"))
    until = ts_of("2026-05-02T00:00:30")
    r = paper(cfg, "--until", iso(until))
    assert r.exit_code == 0, r.output
    got = [t for (t,) in q(db, "select ts from decisions order by seq")]
    start = ts_of(START)
    assert got == closed_candles(start, until)
    events = [m for (m,) in q(db, "select message from events where kind in ('block', 'unblock') "
                                 "order by seq")]
    assert events[0].startswith("feed_stalled: ") and "coinbase" in events[0]
    assert events[-1] == "feed_stalled: the feed delivers again"
    late = q(db, "select action, reason from decisions where ts between ? and ?",
             ts_of("2026-05-01T13:00:00"), ts_of("2026-05-01T17:00:00"))
    assert all(a != "enter_long" for a, _ in late)          # stale bars never open a position


def test_sigterm_finishes_the_bar_and_marks_the_deployment_stopped(venue):
    sim, server, cfg, db = venue
    stop_at = ts_of("2026-05-01T20:10:00")

    def maybe_term(t):
        if t >= stop_at and sim.on_sleep is not None:
            sim.on_sleep = None
            os.kill(os.getpid(), signal.SIGTERM)      # the real handler, the real signal

    sim.on_sleep = maybe_term
    r = paper(cfg)
    assert r.exit_code == 0, r.output
    assert "deployment desk stopped: " in r.output
    (dep,) = q(db, "select status from deployments")
    assert dep == ("stopped",)
    (run,) = q(db, "select status from runs")
    assert run == ("interrupted",)
    got = [t for (t,) in q(db, "select ts from decisions order by seq")]
    assert got[-1] + HOUR <= stop_at + 60 and got[-1] + 2 * HOUR > stop_at


def test_paper_refuses_a_config_without_a_venue(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('symbols = ["BTC-USD"]\n')
    r = CliRunner().invoke(app, ["paper", "--config", str(cfg), "--db", str(tmp_path / "l.db")])
    assert r.exit_code == 2
    assert "paper trading needs a venue: set [venue] name" in r.output
    assert not (tmp_path / "l.db").exists()
