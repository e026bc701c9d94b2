"""DataFrameStrategy on real BTC-USD bars: the frame populate() receives, conversion to a
SignalFrame, per-bar reasons through decide(), chunk independence through the engine,
and one clear error per contract breach (naming the strategy and the column)."""

from __future__ import annotations

import sqlite3
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from tradewarden.domain import Action
from tradewarden.strategy import (
    DataFrameStrategy,
    StrategyConfigError,
    StrategyOutputError,
)

SMA_SOURCE = """
import numpy as np
from pydantic import Field

from tradewarden.strategy import DataFrameStrategy, StrategyParams
from tradewarden.strategy import indicators as ind


class SmaParams(StrategyParams):
    fast: int = Field(10, ge=2, description="fast SMA")
    slow: int = Field(30, ge=3, description="slow SMA")


class SmaCross(DataFrameStrategy):
    \"\"\"SMA cross with an ATR stop and per-bar reasons.\"\"\"

    Params = SmaParams
    record = ("sma_fast", "sma_slow", "atr")
    warmup_bars = 600

    def populate(self, df):
        p = self.params
        df["sma_fast"] = ind.sma(df["close"], p.fast)
        df["sma_slow"] = ind.sma(df["close"], p.slow)
        df["atr"] = ind.atr(df["high"], df["low"], df["close"], 14)
        df["enter_long"] = ind.cross_above(df["sma_fast"], df["sma_slow"])
        down = ind.cross_below(df["sma_fast"], df["sma_slow"])
        df["exit_long"] = down | (df["close"] < df["sma_slow"] * 0.97)
        df["stop_loss"] = df["close"] - 2 * df["atr"]
        df["take_profit"] = np.nan
        calm = df["atr"] <= df["atr"].rolling(50).mean()
        df["enter_reason"] = np.where(calm, "cross_calm", "cross_volatile")
        df["exit_reason"] = np.where(down, "cross_down", "drawdown_3pct")
        return df
"""


@pytest.fixture(scope="module")
def sma_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("strat") / "sma_strat.py"
    path.write_text(SMA_SOURCE)
    return path


@pytest.fixture(scope="module")
def sma_frame(btc, sma_file):
    from tradewarden.strategy import build_strategy

    s = build_strategy(f"{sma_file}:SmaCross")
    return s, s.populated(btc), s.prepare(btc)


def test_populate_receives_utc_indexed_ohlcv_and_cannot_touch_the_bars(btc) -> None:
    seen = {}

    class Probe(DataFrameStrategy):
        def populate(self, df):
            seen["df"] = df.copy()
            seen["attrs"] = dict(df.attrs)
            df["close"] = 0.0                                   # must not reach the bars
            df["enter_long"] = False
            df["exit_long"] = False
            return df

    bars = btc.slice(0, 100)
    before = bars.close.copy()
    Probe().prepare(bars)
    df = seen["df"]
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert all(df[c].dtype == np.float64 for c in df.columns)
    assert isinstance(df.index, pd.DatetimeIndex) and str(df.index.tz) == "UTC" and df.index.name == "time"
    assert df.index[0] == pd.Timestamp(int(bars.ts[0]), unit="s", tz="UTC")
    np.testing.assert_array_equal(df["close"].to_numpy(), bars.close)
    assert seen["attrs"] == {"symbol": "BTC-USD", "timeframe": bars.timeframe}
    np.testing.assert_array_equal(bars.close, before)


def test_conversion_to_signal_frame(btc, sma_frame) -> None:
    strat, out, f = sma_frame
    assert strat.name == "SmaCross" and strat.input_names == ("sma_fast", "sma_slow", "atr")
    assert strat.warmup == 600
    np.testing.assert_array_equal(f.enter, out["enter_long"].to_numpy())
    np.testing.assert_array_equal(f.exit, out["exit_long"].to_numpy())
    np.testing.assert_array_equal(f.stop_loss, out["stop_loss"].to_numpy())
    assert np.isnan(f.take_profit).all()
    for k in strat.record:
        np.testing.assert_array_equal(f.inputs[k], out[k].to_numpy())
    assert 50 < f.enter.sum() < 1000
    labels = np.array(f.reasons, dtype=object)[f.flat_reason]
    warm = np.isnan(out[list(strat.record)].to_numpy()).any(axis=1)
    assert (labels[warm & ~f.enter] == "warmup").all() and warm[:29].all() and not warm[40:].any()
    assert (labels[~warm & ~f.enter] == "no_entry").all()
    assert set(labels[f.enter]) == {"cross_volatile", "cross_calm"}


def test_decide_returns_the_per_bar_reasons_and_levels(btc, sma_frame) -> None:
    strat, out, f = sma_frame
    enters = np.flatnonzero(f.enter)
    exits = np.flatnonzero(f.exit)
    for t in enters[:40].tolist():
        sig = strat.decide(f, t, False)
        assert sig.action is Action.ENTER_LONG
        assert sig.reason == out["enter_reason"].iloc[t]
        assert sig.stop_loss == pytest.approx(out["stop_loss"].iloc[t]) and sig.take_profit is None
        assert sig.inputs == {k: float(out[k].iloc[t]) for k in strat.record}
    for t in exits[:40].tolist():
        sig = strat.decide(f, t, True)
        assert sig.action is Action.EXIT and sig.reason == out["exit_reason"].iloc[t]
    assert {strat.decide(f, t, True).reason for t in exits.tolist()} == {"cross_down", "drawdown_3pct"}
    quiet = int(np.flatnonzero(~f.enter & ~f.exit)[-1])
    assert strat.decide(f, quiet, False).reason == "no_entry"
    assert strat.decide(f, quiet, True).reason == "holding"


def test_missing_reason_columns_default_to_enter_and_exit_long(btc) -> None:
    class Plain(DataFrameStrategy):
        def populate(self, df):
            df["enter_long"] = df["close"] > df["open"]
            df["exit_long"] = df["close"] < df["open"]
            return df

    f = Plain().prepare(btc.slice(0, 300))
    t = int(np.argmax(f.enter))
    u = int(np.argmax(f.exit))
    assert Plain().decide(f, t, False).reason == "enter_long"
    assert Plain().decide(f, u, True).reason == "exit_long"
    assert np.isnan(f.stop_loss).all() and f.inputs == {}


def test_limited_history_gives_the_same_frame(btc, sma_frame) -> None:
    """What the engine relies on: populate over [t - warmup, ...] agrees with the whole
    history from t on."""
    strat, _, full = sma_frame
    w = strat.warmup
    for t in (w, 5_000, 12_345, len(btc) - 300):
        part = strat.prepare(btc.slice(t - w, t + 200))
        np.testing.assert_array_equal(part.enter[w:], full.enter[t:t + 200])
        np.testing.assert_array_equal(part.exit[w:], full.exit[t:t + 200])
        for k in strat.record:
            np.testing.assert_allclose(part.inputs[k][w:], full.inputs[k][t:t + 200], rtol=1e-12)


def test_replay_chunked_equals_whole(tmp_path, sma_file) -> None:
    """A file strategy through run_replay: the ledger does not depend on the chunk size."""
    from tradewarden.engine.config import RunConfig
    from tradewarden.ops.kernel import run_replay
    from tradewarden.ledger import Ledger

    src = sma_file
    rows = []
    for k, chunk in enumerate((100_000, 700)):
        db = tmp_path / f"l{k}.db"
        ledger = Ledger(db)
        cfg = RunConfig(symbols=("BTC-USD",), start="2025-01-01", end="2025-07-01",
                        strategy=f"{src}:SmaCross", chunk_bars=chunk, timeframe="1h")
        run_replay(cfg, ledger, run_id="r")
        ledger.close()
        with sqlite3.connect(db) as c:
            rows.append((c.execute("select seq, ts, action, reason, x1, x2, x3 from decisions order by seq").fetchall(),
                         c.execute("select entry_ts, exit_ts, quantity, pnl, exit_reason from trades order by 1").fetchall(),
                         c.execute("select strategy, input_names, config from runs").fetchone()))
    # decisions and trades are identical; the recorded SMA (TA-Lib running sums) and ATR
    # (recursion) values may differ in the last bits with the first bar of the window
    (d0, t0, _), (d1, t1, _) = rows
    assert [r[:4] for r in d0] == [r[:4] for r in d1] and t0 == t1
    np.testing.assert_allclose(np.array([r[4:] for r in d0], dtype=float),
                               np.array([r[4:] for r in d1], dtype=float), rtol=1e-13)
    assert len(rows[0][1]) > 10
    reasons = {r[3] for r in rows[0][0]}
    assert {"cross_volatile", "cross_calm", "no_entry", "holding"} <= reasons
    strategy, names, config = rows[0][2]
    assert strategy == "SmaCross" and names == '["sma_fast", "sma_slow", "atr"]'
    assert f'"strategy":"{src}:SmaCross"' in config and '"strategy_source":"file:' in config


# ---------------------------------------------------------------------- errors
def _strategy(body, **attrs):
    """A DataFrameStrategy named Bad whose populate() is ``body(df)``."""
    ns = {"populate": lambda self, df: body(df), **attrs}
    return type("Bad", (DataFrameStrategy,), ns)


def _signals(df):
    df["enter_long"] = df["close"] > df["open"]
    df["exit_long"] = df["close"] < df["open"]
    return df


def _with(**cols):
    def body(df):
        df = _signals(df)
        for k, v in cols.items():
            if v is None:
                del df[k]
            else:
                df[k] = v(df) if callable(v) else v
        return df
    return body


BAD = {
    "missing enter_long": (_with(enter_long=None), "no 'enter_long' column"),
    "float flags (loc habit)": (_with(exit_long=lambda d: np.where(d["close"] > 0, 1.0, np.nan)),
                                "column 'exit_long' has dtype float64, expected bool"),
    "nullable with NA": (_with(enter_long=lambda d: pd.array([True, None] + [False] * (len(d) - 2), dtype="boolean")),
                         "column 'enter_long' has missing values at bar 1"),
    "not a frame": (lambda df: None, "populate() returned NoneType, expected the DataFrame"),
    "rows dropped": (lambda df: _signals(df).iloc[5:], "populate() returned 195 rows for 200 bars"),
    "index reset": (lambda df: _signals(df).reset_index(), "populate() changed the index"),
    "duplicate column": (lambda df: pd.concat([_signals(df), df[["close"]]], axis=1),
                         "populate() returned column 'close' twice"),
    "text stop": (_with(stop_loss="low"), "column 'stop_loss' has dtype"),
    "infinite take-profit": (_with(take_profit=np.inf), "column 'take_profit' is infinite at bar 0"),
    "numeric reason": (_with(enter_reason=7), "column 'enter_reason' holds int 7"),
    "too many reasons": (_with(enter_reason=lambda d: [f"r{i}" for i in range(len(d))], enter_long=True),
                         "column 'enter_reason' has 200 distinct labels"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_output_errors_name_the_strategy_and_the_column(btc, case) -> None:
    body, message = BAD[case]
    strat = _strategy(body)()
    with pytest.raises(StrategyOutputError) as exc:
        strat.prepare(btc.slice(0, 200))
    msg = str(exc.value)
    assert msg.startswith("strategy 'Bad': ") and message in msg, msg
    assert "\n" not in msg
    assert isinstance(exc.value, StrategyConfigError)         # the CLI's one-line exit 2


def test_record_column_errors(btc) -> None:
    missing = _strategy(_signals, record=("rsi",))()
    with pytest.raises(StrategyOutputError, match="strategy 'Bad': populate\\(\\) returned no 'rsi' column"):
        missing.prepare(btc.slice(0, 50))
    text = _strategy(_with(tag="x"), record=("tag",))()
    with pytest.raises(StrategyOutputError, match="recorded column 'tag' has dtype"):
        text.prepare(btc.slice(0, 50))
    flags = _strategy(_signals, record=("enter_long",))
    with pytest.raises(StrategyConfigError, match="record column 'enter_long' is a signal"):
        flags()


def test_more_than_four_recorded_columns_is_refused() -> None:
    five = _strategy(_signals, record=("a", "b", "c", "d", "e"))
    with pytest.raises(StrategyConfigError) as exc:
        five()
    assert str(exc.value) == ("strategy 'Bad': record names 5 columns (a, b, c, d, e); at most 4 "
                              "are recorded with each decision (the ledger's x1..x4)")
    with pytest.raises(StrategyConfigError, match="names a column twice"):
        _strategy(_signals, record=("a", "a"))()
    with pytest.raises(StrategyConfigError, match="warmup must be a whole number of bars"):
        _strategy(_signals, warmup_bars=-1)()
    assert _strategy(_signals, record="rsi").input_names == ("rsi",)      # one name as a string


def test_an_exception_in_populate_names_it_and_the_line(btc, tmp_path) -> None:
    from tradewarden.strategy import build_strategy

    f = tmp_path / "typo.py"
    f.write_text("from tradewarden.strategy import DataFrameStrategy\n"
                 "class Typo(DataFrameStrategy):\n"
                 "    def populate(self, df):\n"
                 "        df['enter_long'] = df['clsoe'] > 0\n"
                 "        return df\n")
    strat = build_strategy(f"{f}:Typo")
    with pytest.raises(StrategyOutputError) as exc:
        strat.prepare(btc.slice(0, 50))
    assert str(exc.value) == f"strategy 'Typo': populate() raised KeyError: 'clsoe' ({f} line 4)"


class _Levels(DataFrameStrategy):
    record: ClassVar[tuple[str, ...]] = ("x",)

    def populate(self, df):
        df = _signals(df)
        df["x"] = df["close"].astype("float32")            # any numeric dtype is accepted
        df["stop_loss"] = (df["low"] * 0.99).astype("int64")
        return df


def test_numeric_columns_of_any_dtype_are_converted(btc) -> None:
    f = _Levels().prepare(btc.slice(0, 20))
    assert f.inputs["x"].dtype == np.float64 and f.stop_loss.dtype == np.float64
    np.testing.assert_allclose(f.inputs["x"], btc.close[:20], rtol=1e-6)
