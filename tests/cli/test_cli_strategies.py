"""`warden strategies list` and `warden check-lookahead`, and README's "Write a strategy"
examples run for real: the DataFrameStrategy through `warden replay --strategy file.py:Class`."""

from __future__ import annotations

import importlib
import re
import sqlite3
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradewarden.cli import app

runner = CliRunner()
README = Path(__file__).resolve().parents[2] / "README.md"
ENV = {"COLUMNS": "80", "TERM": "dumb"}


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False, env=ENV)


def readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def python_blocks(section: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def assert_readable(output: str) -> None:
    assert "…" not in output and "..." not in output
    too_long = [line for line in output.splitlines() if len(line.rstrip()) > 80]
    assert not too_long, too_long


# ---------------------------------------------------------------------- strategies list
def test_strategies_list_shows_builtins_with_parameters(monkeypatch) -> None:
    res = invoke("strategies", "list")
    assert res.exit_code == 0, res.output
    out = res.output
    assert_readable(out)
    assert "donchian  (built-in)" in out and "ema_rsi  (built-in)" in out
    assert "Donchian channel breakout with an optional ATR bracket" in out
    for name in ("entry_window", "exit_window", "use_bracket", "atr_period", "stop_atr",
                 "take_profit_atr", "fast", "slow", "rsi_period", "min_volume_ratio"):
        assert re.search(rf"^{name}\s", out, flags=re.M), name
    assert re.search(r"^entry_window\s+int\s+20\s+2\.\.1000\s+enter when the close", out, flags=re.M)
    assert re.search(r"^use_bracket\s+bool\s+true\s+send an ATR", out, flags=re.M)
    assert re.search(r"^stop_atr\s+float\s+2\.0\s+> 0\s+stop-loss distance", out, flags=re.M)
    assert "No installed strategies" in out


def test_strategies_list_includes_entry_points_and_broken_ones(tmp_path, monkeypatch) -> None:
    name = f"twcli_{uuid.uuid4().hex[:8]}"
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{name}.py").write_text(
        "from pydantic import Field\n"
        "from tradewarden.strategy import DataFrameStrategy, StrategyParams\n"
        "class P(StrategyParams):\n"
        "    lookback_window_for_the_channel: int = Field(40, ge=2, le=5000, "
        "description='a deliberately long parameter name and a long description that must wrap, "
        "not be cut, at eighty columns')\n"
        "class Wide(DataFrameStrategy):\n"
        "    '''A strategy with a long parameter name.'''\n"
        "    Params = P\n"
        "    def populate(self, df):\n"
        "        df['enter_long'] = df['close'] > df['open']\n"
        "        df['exit_long'] = df['close'] < df['open']\n"
        "        return df\n")
    info = site / "wide_strats-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wide-strats\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text(
        f"[tradewarden.strategies]\nwide = {name}:Wide\nghost = twcli_ghost_xyz:Nothing\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    try:
        res = invoke("strategies", "list")
        wide = runner.invoke(app, ["strategies", "list"], env={"COLUMNS": "200", "TERM": "dumb"})
    finally:
        sys.modules.pop(name, None)
    assert res.exit_code == 0, res.output
    out = res.output
    assert_readable(out)
    flat = " ".join(out.split())
    assert f"wide (entry point {name}:Wide from wide-strats==0.3.0)" in flat
    assert "A strategy with a long parameter name." in flat
    # at 80 columns a long name may be folded over two lines, never cut; wider, it is whole
    assert "lookback_window_for_the" in out
    assert re.search(r"^lookback_window_for_the_channel\s+int\s+40\s+2\.\.5000\s+a deliberately",
                     wide.output, flags=re.M), wide.output
    assert "must wrap, not be cut, at eighty columns" in flat
    assert "ghost (entry point twcli_ghost_xyz:Nothing from wide-strats==0.3.0)" in flat
    assert "cannot load: entry point 'ghost'" in flat and "module 'twcli_ghost_xyz' not found" in flat
    assert "No installed strategies" not in out


# ---------------------------------------------------------------------- check-lookahead
LEAKY = '''
from tradewarden.strategy import DataFrameStrategy


class Peek(DataFrameStrategy):
    """Buys when tomorrow closes higher: look-ahead through shift(-1)."""
    record = ("next_close",)
    warmup_bars = 10

    def populate(self, df):
        df["next_close"] = df["close"].shift(-1)
        df["enter_long"] = df["next_close"] > df["close"]
        df["exit_long"] = df["next_close"] < df["close"]
        return df
'''


def test_check_lookahead_passes_the_builtins() -> None:
    for spec in ("donchian", "ema_rsi"):
        res = invoke("check-lookahead", "--strategy", spec, "--symbols", "BTC-USD", "--samples", "8")
        assert res.exit_code == 0, res.output
        assert_readable(res.output)
        assert "clean: no value at any bar changed" in " ".join(res.output.split())


def test_check_lookahead_reports_a_leaky_strategy(tmp_path) -> None:
    f = tmp_path / "peek.py"
    f.write_text(LEAKY)
    res = invoke("check-lookahead", "--strategy", f"{f}:Peek", "--symbols", "BTC-USD,ETH-USD",
                 "--samples", "5")
    assert res.exit_code == 1, res.output
    assert_readable(res.output)
    flat = " ".join(res.output.split())
    for sym in ("BTC-USD", "ETH-USD"):
        m = re.search(rf"look-ahead: {sym} column 'next_close' at bar (\d+) \((\S+)\) is NaN with "
                      rf"history up to bar (\d+), ([\d.]+) with the full history", flat)
        assert m, flat
        assert m.group(1) == m.group(3)                     # the cut bar itself lost its next close
    assert "column 'enter_long'" in flat or "column 'exit_long'" in flat
    assert "FAILED: look-ahead in" in flat and "next_close" in flat.split("FAILED")[1]
    assert "'close'" not in flat                            # untouched columns are not reported


@pytest.mark.parametrize("args, message", [
    (["--strategy", "nope_xyz"], "unknown strategy 'nope_xyz'; available: donchian, ema_rsi, rank"),
    (["--strategy", "missing_file.py:X"], "strategy file 'missing_file.py' not found"),
    (["--strategy", "donchian", "-p", "entry_window=inf"], "param 'entry_window'"),
    (["--strategy", "donchian", "--symbols", "DOGE-USD"], "no bundled 1h file for symbol 'DOGE-USD'"),
])
def test_check_lookahead_bad_input_is_one_line_exit_2(args, message) -> None:
    res = invoke("check-lookahead", *args)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.output


def test_check_lookahead_reads_user_data(tmp_path) -> None:
    from tradewarden.data import load_market_data

    b = load_market_data(["SOL-USD"]).series["SOL-USD"]
    rows = ["timestamp,open,high,low,close,volume"] + [
        f"{int(t)},{o},{h},{lo},{c},{v}" for t, o, h, lo, c, v in
        zip(b.ts[:3000], b.open[:3000], b.high[:3000], b.low[:3000], b.close[:3000], b.volume[:3000])]
    (tmp_path / "SOL-USD.csv").write_text("\n".join(rows) + "\n")
    res = invoke("check-lookahead", "--strategy", "donchian", "--data", str(tmp_path),
                 "--symbols", "SOL-USD", "--samples", "4")
    assert res.exit_code == 0, res.output
    assert "SOL-USD 3,000 bars" in " ".join(res.output.split())       # the data's own 1h bars
    res = invoke("check-lookahead", "--strategy", "donchian", "--data", str(tmp_path / "SOL-USD.csv"),
                 "--symbols", "SOL-USD", "--timeframe", "4h", "--samples", "4")
    assert res.exit_code == 0, res.output
    assert "SOL-USD 750 bars" in " ".join(res.output.split())         # resampled to 4h


# ---------------------------------------------------------------------- README examples
def test_readme_dataframe_example_replays_and_records_trades(tmp_path) -> None:
    section = readme_section("Write a strategy")
    blocks = python_blocks(section)
    assert len(blocks) == 2
    assert "class SmaCross(DataFrameStrategy)" in blocks[0]
    f = tmp_path / "sma_cross.py"
    f.write_text(blocks[0])
    assert "warden replay --strategy sma_cross.py:SmaCross" in section
    db = tmp_path / "l.db"
    res = invoke("replay", "--strategy", f"{f}:SmaCross", "--symbols", "BTC-USD",
                 "--start", "2025-01-01", "--end", "2026-01-01", "--db", str(db),
                 "--out", str(tmp_path / "r"), "--report-format", "console")
    assert res.exit_code == 0, res.output
    with sqlite3.connect(db) as c:
        (strategy, names, config), = c.execute("select strategy, input_names, config from runs").fetchall()
        n_trades = c.execute("select count(*) from trades").fetchone()[0]
        reasons = {r for (r,) in c.execute("select distinct reason from decisions where action='enter_long'")}
        x = c.execute("select count(*) from decisions where x1 is not null and x4 in (0, 1)").fetchone()[0]
    assert n_trades >= 10
    assert strategy == "SmaCross" and names == '["sma_fast", "sma_slow", "atr", "regime"]'
    assert reasons == {"sma_cross_in_trend"}
    assert x > 8_000                      # x1..x4 recorded on most of the year's 8,760 bars
    assert f'"strategy_source":"file:{f.resolve()}#sha256=' in config
    # and it passes the check the README shows
    res = invoke("check-lookahead", "--strategy", f"{f}:SmaCross", "--symbols", "BTC-USD",
                 "--samples", "5")
    assert res.exit_code == 0, res.output


def test_readme_numpy_example_is_a_clean_strategy(tmp_path) -> None:
    from tradewarden.data import load_market_data
    from tradewarden.strategy import build_strategy
    from tradewarden.strategy.lookahead import check_lookahead

    f = tmp_path / "channel.py"
    f.write_text(python_blocks(readme_section("Write a strategy"))[1])
    strat = build_strategy(f"{f}:Channel", {"window": "30"})
    assert strat.name == "Channel" and strat.warmup == 31
    btc = load_market_data(["BTC-USD"]).series["BTC-USD"]
    frame = strat.prepare(btc)
    assert 100 < frame.enter.sum() < 5000
    labels = {frame.reasons[i] for i in frame.flat_reason.tolist()}
    assert labels == {"warmup", "no_breakout", "breakout"}
    assert check_lookahead(strat, {"BTC-USD": btc}, samples=5).clean
