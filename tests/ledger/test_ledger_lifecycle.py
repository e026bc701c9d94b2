"""Run lifecycle: pid, host and heartbeat on the run row; runs whose process is gone
become `crashed`; SIGTERM / Ctrl-C stop a replay at a chunk boundary as `interrupted`."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from decimal import Decimal

import pytest

from tradewarden.engine.config import RunConfig
from tradewarden.ops.replay import load_inputs
from tradewarden.ops.kernel import run_replay
from tradewarden.ledger import Ledger, RunInterrupted, StopSignals, mark_lost_runs, open_engine
from tradewarden.ledger.lifecycle import process_alive, process_start_token, this_process

linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")


def _run_row(run_id: str, **over) -> dict:
    row = {"run_id": run_id, "mode": "replay", "capital_mode": "independent",
           "market_time_basis": "t", "data_integrity": "ok", "config_hash": "h", "config": "{}",
           "strategy": "donchian", "symbols": '["BTC-USD"]', "timeframe": "1h",
           "initial_capital": Decimal("10000")}
    row.update(over)
    return row


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@linux_only
def test_process_identity_tells_live_dead_and_reused_pids_apart():
    me = this_process()
    assert me.pid == os.getpid() and me.start == process_start_token(os.getpid())
    assert process_alive(me.pid, me.start)
    assert not process_alive(me.pid, "another-boot:12345")       # pid reused by someone else
    dead = _dead_pid()
    assert process_start_token(dead) is None and not process_alive(dead, None)


@linux_only
def test_runs_whose_process_is_gone_are_marked_crashed_with_last_seen(tmp_path):
    led = Ledger(tmp_path / "l.db")
    me = this_process()
    dead = _dead_pid()
    led.create_run(_run_row("killed", pid=dead, heartbeat_at="2026-01-02T03:04:05Z"))
    led.write_rows("decisions", {"run_id": ["killed"] * 3, "seq": [0, 1, 2], "ts": [1, 2, 3],
                                 "symbol": ["BTC-USD"] * 3, "action": ["hold"] * 3,
                                 "reason": ["warmup"] * 3, "state": ["flat"] * 3})
    led.commit()
    led.create_run(_run_row("reused", process_start="other-boot:1"))   # our pid, not our process
    led.create_run(_run_row("alive"))                                   # this very process
    led.create_run(_run_row("elsewhere", pid=dead, host=me.host + "-other"))
    led.create_run(_run_row("old", pid=None, process_start=None))      # before pids were recorded
    led.close()

    engine = open_engine(tmp_path / "l.db", create=False)          # any command that opens it
    with engine.connect() as conn:
        rows = {r.run_id: r for r in conn.exec_driver_sql(
            "select run_id, status, error, decisions, bars_processed from runs")}
    assert rows["killed"].status == "crashed" and rows["reused"].status == "crashed"
    assert f"process {dead} on {me.host}" in rows["killed"].error
    assert "last seen 2026-01-02T03:04:05Z" in rows["killed"].error
    assert rows["killed"].decisions == 3 and rows["killed"].bars_processed == 3
    assert {rows[r].status for r in ("alive", "elsewhere", "old")} == {"running"}
    assert mark_lost_runs(engine) == []                            # done once
    engine.dispose()


def test_heartbeat_is_throttled_and_carries_progress(tmp_path):
    led = Ledger(tmp_path / "l.db", background=True, heartbeat_seconds=3600)
    led.create_run(_run_row("r1"))
    assert led.heartbeat("r1", bars_processed=10) is False        # just created: too soon
    assert led.heartbeat("r1", force=True, bars_processed=500, decisions=500) is True
    led.drain()
    with sqlite3.connect(tmp_path / "l.db") as c:
        pid, host, beat, bars = c.execute(
            "select pid, host, heartbeat_at, bars_processed from runs").fetchone()
    assert pid == os.getpid() and host == this_process().host
    assert beat.endswith("Z") and bars == 500
    led.close()


def test_stop_signals_turn_the_first_signal_into_a_request(monkeypatch):
    calls = []
    previous = signal.signal(signal.SIGUSR1, lambda s, f: calls.append(s))
    try:
        with StopSignals("r1", signals=(signal.SIGUSR1,)) as stop:
            os.kill(os.getpid(), signal.SIGUSR1)
            assert stop.signum == signal.SIGUSR1                   # noted, nothing raised yet
            with pytest.raises(RunInterrupted) as err:
                stop.check()
        assert err.value.run_id == "r1" and err.value.exit_code == 128 + signal.SIGUSR1
        assert calls == []                                          # handled: not re-delivered
        with StopSignals("r2", signals=(signal.SIGUSR1,)):
            os.kill(os.getpid(), signal.SIGUSR1)                    # after the last check
        assert calls == [signal.SIGUSR1]                            # delivered to the old handler
        with pytest.raises(RunInterrupted), StopSignals("r3", signals=(signal.SIGUSR1,)):
            os.kill(os.getpid(), signal.SIGUSR1)
            os.kill(os.getpid(), signal.SIGUSR1)                    # a second signal: at once
    finally:
        signal.signal(signal.SIGUSR1, previous)
    with StopSignals("r4") as stop:
        os.kill(os.getpid(), signal.SIGINT)                         # Ctrl-C: no KeyboardInterrupt yet
        with pytest.raises(RunInterrupted) as err:
            stop.check()
    assert err.value.exit_code == 130 and err.value.signal_name == "SIGINT"


CHUNK = 500


class _SignalingLedger(Ledger):
    """Sends SIGTERM to this process while the engine writes chunk ``at`` (1-based)."""

    def __init__(self, *args, at: int, times: int, **kw) -> None:
        super().__init__(*args, **kw)
        self.at, self.times, self.chunks = at, times, 0

    def write_fills(self, run_id, fills):
        self.chunks += 1
        super().write_fills(run_id, fills)
        if self.chunks == self.at:            # the chunk's decisions are already submitted
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("times, chunks_kept", [(1, 3), (2, 2)])
@pytest.mark.parametrize("background", [True, False])
def test_sigterm_stops_at_a_chunk_boundary_and_marks_the_run_interrupted(tmp_path, times,
                                                                         chunks_kept, background):
    """One SIGTERM: the chunk in progress finishes and is committed, then the run stops.
    A second one: it stops at once and the half-written chunk is rolled back."""
    cfg = RunConfig(symbols=("BTC-USD",), start="2025-01-01", end="2025-04-01", chunk_bars=CHUNK)
    inputs = load_inputs(cfg)
    first_lost_ts = int(inputs.loaded.series["BTC-USD"].ts[chunks_kept * CHUNK])
    before = signal.getsignal(signal.SIGTERM)
    led = _SignalingLedger(tmp_path / "l.db", background=background, at=3, times=times,
                           heartbeat_seconds=0)
    with pytest.raises(RunInterrupted) as err:
        run_replay(inputs.config, led, inputs=inputs, run_id="term")
    led.close()
    assert signal.getsignal(signal.SIGTERM) is before                # handlers restored
    assert err.value.exit_code == 143 and err.value.signal_name == "SIGTERM"
    assert err.value.decisions == chunks_kept * CHUNK
    assert f"after {chunks_kept * CHUNK:,} bars" in str(err.value)
    with sqlite3.connect(tmp_path / "l.db") as c:
        status, decisions, bars, closed, error, beat = c.execute(
            "select status, decisions, bars_processed, trades_closed, error, heartbeat_at "
            "from runs").fetchone()
        held = c.execute("select count(*), max(seq) from decisions").fetchone()
        trades = c.execute("select count(*) from trades").fetchone()[0]
        later = [c.execute(f"select count(*) from {t} where {col} >= ?", (first_lost_ts,)).fetchone()[0]
                 for t, col in (("decisions", "ts"), ("orders", "created_ts"), ("fills", "ts"),
                                ("trades", "exit_ts"))]
        orders = c.execute("select count(*) from orders").fetchone()[0]
    assert status == "interrupted" and "SIGTERM" in error and beat
    assert held == (chunks_kept * CHUNK, chunks_kept * CHUNK - 1) == (decisions, bars - 1)
    assert closed == trades and orders > 0
    assert later == [0, 0, 0, 0]          # nothing of the chunk that was not committed whole
