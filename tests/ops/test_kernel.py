"""The kernel assembles each mode from its parts (clock, broker, path, staleness,
governor) and runs a feed: one decision per bar, the ledger written after every chunk;
a replay's run row is the same on the batch and the reference path."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tradewarden.agent.governor import AutonomousGovernor, MonitorOnlyGovernor
from tradewarden.data import load_market_data
from tradewarden.domain import COINBASE_SPECS
from tradewarden.engine import NO_SHORTCUTS, ReplayClock, RunConfig, WallClock
from tradewarden.execution import SimBroker
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import (
    DEFAULT_STALE_AFTER,
    MODES,
    Kernel,
    assemble,
    run_replay,
)
from tradewarden.strategy import build_strategy


def _fake_venue():
    """tests/engine/fake_venue.py (tests are not a package), loaded once under its name."""
    mod = sys.modules.get("fake_venue")
    if mod is None:
        spec = importlib.util.spec_from_file_location(
            "fake_venue", Path(__file__).resolve().parents[1] / "engine" / "fake_venue.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["fake_venue"] = mod
        spec.loader.exec_module(mod)
    return mod


ScriptedVenue = _fake_venue().ScriptedVenue
SYM = "BTC-USD"
INSTRUMENTS = {SYM: COINBASE_SPECS[SYM]}
WALL_CLOCK = {"started_at", "completed_at", "pid", "host", "process_start", "heartbeat_at"}


@pytest.fixture(scope="module")
def btc():
    return load_market_data(None).series[SYM]


def ledger_with_run(tmp_path, run_id="k"):
    ledger = Ledger(tmp_path / "k.db")
    ledger.create_run({"run_id": run_id, "mode": "paper", "capital_mode": "independent",
                       "market_time_basis": "test", "data_integrity": "ok", "config_hash": "x",
                       "config": "{}", "strategy": "donchian", "symbols": "[]", "timeframe": "1h",
                       "initial_capital": Decimal(10000)})
    return ledger


def build(tmp_path, mode, **kw):
    if "ledger" not in kw:
        kw["ledger"] = ledger_with_run(tmp_path)
    return assemble(mode, run_id="k", strategy=build_strategy("donchian"), instruments=INSTRUMENTS,
                    capital=Decimal(10000), **kw)


# ---------------------------------------------------------------- assemble
def test_replay_mode_is_replay_clock_sim_broker_batch_path(tmp_path):
    k = build(tmp_path, "replay", start=1_713_459_600)
    e = k.engine
    assert k.handlers.mode == "replay"
    assert isinstance(k.handlers.clock, ReplayClock) and k.handlers.clock.now() == 1_713_459_600
    assert isinstance(k.handlers.broker, SimBroker) and e.broker is k.handlers.broker
    assert e.clock is k.handlers.clock and e.risk is k.handlers.risk and e.ledger is k.handlers.ledger
    assert e.reference is False and e.simulated and e.stale_after is None
    assert build(tmp_path, "replay", reference=True, ledger=k.handlers.ledger).engine.reference is True
    assert build(tmp_path, "replay", shortcuts=NO_SHORTCUTS,
                 ledger=k.handlers.ledger).engine.shortcuts == NO_SHORTCUTS


def test_replay_never_checks_staleness(tmp_path):
    assert build(tmp_path, "replay", stale_after=5).engine.stale_after is None


def test_paper_mode_is_wall_clock_sim_broker_reference_path(tmp_path):
    k = build(tmp_path, "paper")
    assert isinstance(k.handlers.clock, WallClock) and k.engine.clock is k.handlers.clock
    assert isinstance(k.handlers.broker, SimBroker)
    assert k.engine.reference is True and k.engine.stale_after == DEFAULT_STALE_AFTER == 120
    assert build(tmp_path, "paper", stale_after=30, ledger=k.handlers.ledger).engine.stale_after == 30


def test_paper_fees_reach_the_simulated_broker(tmp_path):
    b = build(tmp_path, "paper", fee_bps=25, maker_fee_bps=7, slippage_bps=3).handlers.broker
    assert (b.taker, b.maker, b.slip) == (Decimal("0.0025"), Decimal("0.0007"), Decimal("0.0003"))


def test_live_without_a_broker_names_the_missing_adapter(tmp_path):
    with pytest.raises(ValueError, match="live mode needs a venue adapter"):
        build(tmp_path, "live")


def test_live_with_a_venue_adapter(tmp_path):
    venue = ScriptedVenue(INSTRUMENTS)
    k = build(tmp_path, "live", broker=venue)
    assert k.handlers.broker is venue and k.engine.broker is venue
    assert isinstance(k.handlers.clock, WallClock)
    assert k.engine.reference is True and not k.engine.simulated
    assert k.engine.stale_after == DEFAULT_STALE_AFTER
    assert k.engine.native_bracket is False


@pytest.mark.parametrize("mode", ["backtest", "Paper", ""])
def test_unknown_mode(tmp_path, mode):
    with pytest.raises(ValueError, match=f"mode must be one of {', '.join(MODES)}, got {mode!r}"):
        build(tmp_path, mode)


def test_unknown_governor(tmp_path):
    with pytest.raises(ValueError, match="unknown governor 'yolo'; known: autonomous, monitor"):
        build(tmp_path, "replay", governor="yolo")


def test_governor_by_name_or_object(tmp_path):
    led = ledger_with_run(tmp_path)
    assert isinstance(build(tmp_path, "replay", ledger=led).engine.governor, AutonomousGovernor)
    assert isinstance(build(tmp_path, "replay", governor="monitor", ledger=led).engine.governor,
                      MonitorOnlyGovernor)
    mine = MonitorOnlyGovernor()
    k = build(tmp_path, "paper", governor=mine, ledger=led)
    assert k.engine.governor is mine and k.handlers.governor is mine


# ---------------------------------------------------------------- Kernel.run
class FakeTime:
    def __init__(self) -> None:
        self.t = 0.0

    def time(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_paper_run_records_each_bar_as_it_arrives(tmp_path, btc):
    """One-bar chunks, each delivered 5 s after its bar's close: the ledger holds every
    earlier bar's decision when the next bar arrives (written per chunk, not at the end)."""
    bars = btc.slice(0, 120)
    ft = FakeTime()
    k = build(tmp_path, "paper", clock=WallClock(ft.time, ft.sleep))
    assert isinstance(k, Kernel)
    db = tmp_path / "k.db"
    seen = []

    def feed():
        for i in range(len(bars)):
            with sqlite3.connect(db) as c:
                seen.append(c.execute("select count(*) from decisions").fetchone()[0])
            ft.t = float(bars.close_ts[i]) + 5
            yield {SYM: bars.slice(i, i + 1)}

    counts = k.run(feed(), close=None)
    assert seen == list(range(len(bars)))
    with sqlite3.connect(db) as c:
        rows = c.execute("select ts, symbol from decisions order by seq").fetchall()
    assert rows == [(int(t), SYM) for t in bars.ts]        # one decision per bar, in order
    assert counts.bars == counts.decisions == len(bars)
    assert ft.t == float(bars.close_ts[-1]) + 5            # nothing waited: every bar had closed


def test_run_closes_out_at_the_end_unless_told_not_to(tmp_path, btc):
    venue = ScriptedVenue(INSTRUMENTS, market_parts=2)
    ft = FakeTime()
    k = build(tmp_path, "live", broker=venue, clock=WallClock(ft.time, ft.sleep))
    bars = btc.slice(0, 400)

    def feed():
        for i in range(len(bars)):
            ft.t = float(bars.close_ts[i]) + 1
            yield {SYM: bars.slice(i, i + 1)}

    counts = k.run(feed())
    assert counts.trades_opened >= 1 and counts.trades_closed == counts.trades_opened
    assert k.engine.open_positions() == 0
    assert all(not t.status.is_open for t in venue.tickets.values())


# ---------------------------------------------------------------- run_replay
def test_run_replay_run_row_is_the_same_on_both_paths(tmp_path):
    cfg = RunConfig(symbols=(SYM,), end="2024-07-31", chunk_bars=700)
    rows = []
    for reference in (False, True):
        db = tmp_path / f"{reference}.db"
        led = Ledger(db)
        result = run_replay(cfg, led, run_id="same", reference=reference, created_by="test")
        led.close()
        with sqlite3.connect(db) as c:
            cols = [r[1] for r in c.execute("pragma table_info(runs)") if r[1] not in WALL_CLOCK]
            rows.append(dict(zip(cols, c.execute(f"select {', '.join(cols)} from runs").fetchone())))
        assert result.counts.trades_closed > 0
    batch, ref = rows
    assert batch["status"] == "completed" and batch["bars_processed"] > 2000
    assert batch == ref
