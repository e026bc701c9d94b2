"""Fixtures for engine tests: real bundled bars and a scripted strategy."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import numpy as np
import pytest

from tradewarden.data import load_market_data
from tradewarden.domain import COINBASE_SPECS, BarSeries
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import assemble
from tradewarden.strategy.base import SignalFrame, Strategy, StrategyParams


class ScriptParams(StrategyParams):
    """No parameters: the script is given to the constructor."""


class ScriptedStrategy(Strategy):
    """Enter/exit on given bar timestamps; optional fixed stop/take-profit offsets (fraction of close)."""

    name = "scripted"
    Params = ScriptParams
    input_names = ("flag",)

    def __init__(self, enter_ts=(), exit_ts=(), stop_frac=None, tp_frac=None):
        super().__init__(ScriptParams())
        self.enter_ts = set(int(t) for t in enter_ts)
        self.exit_ts = set(int(t) for t in exit_ts)
        self.stop_frac = stop_frac
        self.tp_frac = tp_frac

    @property
    def warmup(self) -> int:
        return 1

    def prepare(self, bars: BarSeries) -> SignalFrame:
        n = len(bars)
        enter = np.isin(bars.ts, list(self.enter_ts)) if self.enter_ts else np.zeros(n, bool)
        exit_ = np.isin(bars.ts, list(self.exit_ts)) if self.exit_ts else np.zeros(n, bool)
        sl = bars.close * (1 - self.stop_frac) if self.stop_frac else np.full(n, np.nan)
        tp = bars.close * (1 + self.tp_frac) if self.tp_frac else np.full(n, np.nan)
        return SignalFrame(enter, exit_, enter.astype(np.int8), ("idle", "scripted_entry"), sl, tp,
                           {"flag": enter.astype(float)}, entry_reason="scripted_entry",
                           exit_reason="scripted_exit")


@pytest.fixture(scope="session")
def real_bars() -> dict[str, BarSeries]:
    """The bundled real Coinbase 1h series."""
    return load_market_data(None).series


def make_engine(tmp_path, strategy, symbols=("BTC-USD",), *, capital="10000", capital_mode="independent",
                risk=None, fee_bps=10.0, maker_bps=5.0, slip_bps=2.0, run_id="testrun", db=None,
                **kernel):
    """Build a replay engine through the kernel over a fresh SQLite ledger; return
    (engine, ledger). ``kernel`` passes on to :func:`tradewarden.ops.kernel.assemble`
    (``reference``, ``shortcuts``, ``broker``, ``clock``, ``mode``...)."""
    ledger = Ledger(db or tmp_path / "ledger.db")
    instruments = {s: COINBASE_SPECS[s] for s in symbols}
    ledger.create_run({"run_id": run_id, "mode": "replay", "capital_mode": capital_mode,
                       "market_time_basis": "test", "data_integrity": "ok", "config_hash": "x",
                       "config": "{}", "strategy": strategy.name, "symbols": "[]", "timeframe": "1h",
                       "initial_capital": Decimal(capital)})
    mode = kernel.pop("mode", "replay")
    engine = assemble(mode, run_id=run_id, strategy=strategy, instruments=instruments, ledger=ledger,
                      capital=Decimal(capital), capital_mode=capital_mode, risk=risk,
                      fee_bps=fee_bps, maker_fee_bps=maker_bps, slippage_bps=slip_bps,
                      **kernel).engine
    return engine, ledger


@pytest.fixture
def scripted():
    """The :class:`ScriptedStrategy` class."""
    return ScriptedStrategy


@pytest.fixture(name="make_engine")
def make_engine_fixture():
    """The :func:`make_engine` builder."""
    return make_engine


def _q(db, sql, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


def _headline(db, run_id: str) -> dict:
    """Closed trades, win rate, profit factor and final equity per symbol, from the ledger."""
    out = {}
    for (sym,) in _q(db, "select distinct symbol from decisions where run_id=? order by symbol", run_id):
        pnl = [Decimal(p) for (p,) in _q(db, "select pnl from trades where run_id=? and symbol=?", run_id, sym)]
        wins = [p for p in pnl if p > 0]
        losses = [p for p in pnl if p < 0]
        final = _q(db, "select equity from decisions where run_id=? and symbol=? order by seq desc limit 1",
                  run_id, sym)[0][0]
        out[sym] = {"closed_trades": len(pnl), "win_rate": round(len(wins) / len(pnl), 6),
                    "profit_factor": round(float(sum(wins) / -sum(losses)), 6),
                    "net_pnl": str(sum(pnl)), "final_equity": round(final, 6)}
    return out


@pytest.fixture(name="headline")
def headline_fixture():
    """``headline(db, run_id)``: the golden statistics' figures of a run, from its ledger."""
    return _headline


@pytest.fixture(name="golden")
def golden_fixture():
    """The golden statistics of the default replay (``golden_default_replay.json``)."""
    import json
    from pathlib import Path
    return json.loads((Path(__file__).with_name("golden_default_replay.json")).read_text())
