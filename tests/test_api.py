"""`tradewarden.replay(...)`: the notebook API runs the CLI's replay and reads back the ledger."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

import tradewarden
from tradewarden.engine.config import RunConfig
from tradewarden.settings import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch, tmp_path):
    """Relative paths (warden-out/...) land in the test's directory."""
    monkeypatch.chdir(tmp_path)


def _python_block(title: str) -> str:
    text = README.read_text()
    section = text[text.index(title):]
    start = section.index("```python") + len("```python")
    return section[start:section.index("```", start)]


def test_the_readme_example_runs(tmp_path):
    scope: dict = {}
    exec(compile(_python_block("## From Python"), "README.md", "exec"), scope)
    run, report, same = scope["run"], scope["report"], scope["same"]
    assert (tmp_path / "warden-out" / "notebook.db").exists()
    assert len(run.trades) == report.trades.closed_trades == len(same) > 0
    assert run.config.params["entry_window"] == 55 and run.config.risk.max_drawdown_halt is None


def test_replay_run_frames_agree_with_the_ledger(tmp_path):
    run = tradewarden.replay(symbols="BTC-USD,ETH-USD", start="2025-02-01", end="2025-03-01",
                             db=str(tmp_path / "l.db"), gates={"min_closed_trades": 1})
    with sqlite3.connect(tmp_path / "l.db") as c:
        n_dec, = c.execute("select count(*) from decisions where run_id=?", (run.run_id,)).fetchone()
        n_tr, = c.execute("select count(*) from trades where run_id=?", (run.run_id,)).fetchone()
    assert len(run.decisions) == n_dec and len(run.trades) == n_tr
    assert {"upper", "lower", "atr", "time"} <= set(run.decisions.columns)
    assert "x1" not in run.decisions.columns
    assert isinstance(run.decisions["time"].dtype, pd.DatetimeTZDtype)
    assert list(run.equity.columns) == ["BTC-USD", "ETH-USD", "total"]
    assert run.equity["total"].iloc[-1] == pytest.approx(run.report["risk"]["final_equity"])
    assert run.report["gate_config"]["min_closed_trades"] == 1
    assert run.report["run"]["run_id"] == run.run_id
    assert run.ledger.startswith("sqlite:///")


def test_a_config_file_then_keywords(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('symbols = ["SOL-USD"]\nstart = "2025-01-01"\nend = "2025-02-01"\nfee_bps = 7\n')
    run = tradewarden.replay(cfg, fee_bps=3, db=str(tmp_path / "l.db"))
    assert run.config.symbols == ("SOL-USD",) and run.config.fee_bps == 3


def test_a_ready_runconfig_is_used_as_is(tmp_path):
    cfg = RunConfig(symbols=("BTC-USD",), start="2025-01-01", end="2025-01-15")
    run = tradewarden.replay(cfg, db=str(tmp_path / "l.db"))
    assert run.config.symbols == ("BTC-USD",) and run.config.timeframe == "1h"
    with pytest.raises(TypeError):
        tradewarden.replay(cfg, fee_bps=1)


def test_bad_settings_raise_before_any_ledger_exists(tmp_path):
    with pytest.raises(ConfigError, match=r"replay\(fee_bps=\.\.\.\) nan: input should be a finite"):
        tradewarden.replay(fee_bps=float("nan"), db=str(tmp_path / "l.db"))
    with pytest.raises(ConfigError, match="unknown setting 'risk.max_dd'"):
        tradewarden.replay(risk={"max_dd": 0.1}, db=str(tmp_path / "l.db"))
    assert not (tmp_path / "l.db").exists()
