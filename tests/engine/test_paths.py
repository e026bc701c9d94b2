"""The batch path and the per-bar reference path (``TradingEngine.on_bar``) write
identical ledger rows: every table, every column but the run row's wall-clock stamps.

Checked on the bundled real data through the kernel (``run_replay``) for each batch
shortcut switched off in turn, and by Hypothesis on scripted strategies over slices of
the real bars (random entries, exits, bracket levels, chunk sizes, capital modes).
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradewarden.domain import ExitReason
from tradewarden.engine import NO_SHORTCUTS, RunConfig, Shortcuts
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import run_replay
from tradewarden.risk import RiskConfig

TABLES = ("runs", "decisions", "orders", "fills", "trades", "equity", "events")
#: Wall-clock bookkeeping of the run row (when and where it ran), not outcomes.
WALL_CLOCK = {"started_at", "completed_at", "pid", "host", "process_start", "heartbeat_at",
              "git_sha"}     # the commit checked out: moves if one lands mid-test


def ledger_rows(db) -> dict[str, list[tuple]]:
    """Every row of every table, minus the run row's wall-clock columns, in key order."""
    out = {}
    with sqlite3.connect(db) as c:
        for t in TABLES:
            cols = [r[1] for r in c.execute(f"pragma table_info({t})") if r[1] not in WALL_CLOCK]
            out[t] = c.execute(f"select {', '.join(cols)} from {t} order by 1, 2").fetchall()
    return out


SHORTCUT_CASES = {
    "all shortcuts": Shortcuts(),
    "no flat skip": replace(Shortcuts(), skip_flat=False),
    "no quiet-band skip": replace(Shortcuts(), skip_quiet_band=False),
    "no quiet-open skip": replace(Shortcuts(), skip_quiet_open=False),
    "no shortcuts": NO_SHORTCUTS,
}


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory):
    """Reference-path replays of the bundled data, one per configuration."""
    cache = {}

    def get(key, cfg):
        if key not in cache:
            db = tmp_path_factory.mktemp("ref") / "ref.db"
            led = Ledger(db)
            run_replay(cfg, led, run_id="same", reference=True)
            led.close()
            cache[key] = ledger_rows(db)
        return cache[key]
    return get


CONFIGS = {
    # 2 symbols over 8 months, bracketed Donchian, a 10 % drawdown halt that fires
    "independent": RunConfig(symbols=("BTC-USD", "ETH-USD"), end="2024-12-31", chunk_bars=1500,
                             params={"use_bracket": True}, risk=RiskConfig(max_drawdown_halt=0.10)),
    "portfolio": RunConfig(symbols=("BTC-USD", "ETH-USD", "SOL-USD"), end="2024-10-31",
                           capital_mode="portfolio", chunk_bars=1000),
    # the monitor-only governor: entries recorded as 'monitored', nothing traded
    "monitor": RunConfig(symbols=("SOL-USD",), end="2024-09-30", governor="monitor", chunk_bars=700),
}


@pytest.mark.parametrize("shortcuts", list(SHORTCUT_CASES), ids=list(SHORTCUT_CASES))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_batch_path_writes_the_reference_paths_rows(tmp_path, monkeypatch, reference_runs, config, shortcuts):
    """Each shortcut of the batch path, on or off, leaves every ledger row as the
    reference path writes it (decisions with their equity and inputs, orders with
    their final status, fills, trades, equity marks, events, the run row)."""
    from tradewarden.engine import engine as engine_mod
    cfg = CONFIGS[config]
    expected = reference_runs(config, cfg)
    monkeypatch.setattr(engine_mod, "Shortcuts", lambda: SHORTCUT_CASES[shortcuts])
    db = tmp_path / "batch.db"
    led = Ledger(db)
    run_replay(cfg, led, run_id="same")
    led.close()
    got = ledger_rows(db)
    if config == "monitor":
        assert any(r[4] == "monitored" for r in got["decisions"]) and not got["trades"]
    else:
        assert len(got["decisions"]) > 10_000 and len(got["trades"]) > 20
    if config == "independent":
        assert any(r[4] == "blocked" for r in got["decisions"])     # the halt fired
    for t in TABLES:
        assert got[t] == expected[t], t


def test_reference_path_gives_the_golden_statistics(tmp_path, headline, golden):
    """``warden replay --reference-path`` on the default replay: the golden figures."""
    led = Ledger(tmp_path / "l.db")
    run_replay(RunConfig(), led, run_id="golden", reference=True)
    led.close()
    assert headline(tmp_path / "l.db", "golden") == golden


# ------------------------------------------------------------------- Hypothesis
@st.composite
def scripts(draw):
    """A scripted strategy over a slice of real bars, and how to run it."""
    symbols = draw(st.sampled_from([("BTC-USD",), ("BTC-USD", "SOL-USD"), ("ETH-USD", "SOL-USD", "BTC-USD")]))
    start = draw(st.integers(0, 15_000))
    n = draw(st.integers(50, 600))
    enters = draw(st.lists(st.integers(0, n - 1), max_size=40))
    exits = draw(st.lists(st.integers(0, n - 1), max_size=40))
    stop = draw(st.sampled_from([None, 0.005, 0.02, 0.08]))
    tp = draw(st.sampled_from([None, 0.005, 0.03, 0.1]))
    chunk = draw(st.integers(7, 400))
    mode = draw(st.sampled_from(["independent", "portfolio"]))
    halt = draw(st.sampled_from([None, 0.03, 0.2]))
    native = draw(st.booleans())
    return symbols, start, n, sorted(set(enters)), sorted(set(exits)), stop, tp, chunk, mode, halt, native


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=scripts())
def test_paths_agree_on_scripted_strategies(tmp_path_factory, real_bars, make_engine, scripted, case):
    """Random entries, exits and bracket levels on real bars: the reference path, the
    batch path with every shortcut and with none write the same rows; with the venue's
    brackets emulated by the engine (``native_brackets=False``) too."""
    from tradewarden.domain import COINBASE_SPECS
    from tradewarden.execution import SimBroker

    symbols, start, n, enters, exits, stop, tp, chunk, mode, halt, native = case
    bars = {s: real_bars[s].slice(start, start + n) for s in symbols}
    ts = bars[symbols[0]].ts
    risk = RiskConfig(max_drawdown_halt=halt)
    results = []
    for variant in ("reference", "batch", "bare"):
        strategy = scripted([ts[i] for i in enters], [ts[i] for i in exits], stop_frac=stop, tp_frac=tp)
        tmp = tmp_path_factory.mktemp("p")
        broker = SimBroker({s: COINBASE_SPECS[s] for s in symbols}, native_brackets=native)
        engine, ledger = make_engine(tmp, strategy, symbols, capital_mode=mode, risk=risk, run_id="r",
                                     broker=broker, reference=variant == "reference",
                                     shortcuts=NO_SHORTCUTS if variant == "bare" else None)
        for lo in range(0, n, chunk):
            engine.process_chunk({s: b.slice(lo, lo + chunk) for s, b in bars.items()})
        engine.close_all(ExitReason.END_OF_DATA)
        ledger.close()
        rows = ledger_rows(tmp / "ledger.db")
        results.append(rows)
    bar_rows = [r for r in results[0]["decisions"] if r[5] != "end_of_data"]
    assert len(bar_rows) == n * len(symbols)
    for t in TABLES:
        assert results[1][t] == results[0][t], ("batch", t)
        assert results[2][t] == results[0][t], ("no shortcuts", t)
