"""The look-ahead check: built-ins pass; leaks through shift(-1), whole-column statistics
and a NumPy strategy reading the next bar are caught with the first bar and both values;
a warm-up too short for a recursive indicator is reported as such."""

from __future__ import annotations

import numpy as np
import pytest

from tradewarden.domain import iso
from tradewarden.strategy import (
    DataFrameStrategy,
    DonchianBreakout,
    DonchianParams,
    EmaRsiVolume,
    SignalFrame,
    Strategy,
    StrategyParams,
)
from tradewarden.strategy import indicators as ind
from tradewarden.strategy.lookahead import check_lookahead, cut_points


@pytest.fixture(scope="module")
def series(btc):
    return {"BTC-USD": btc}


@pytest.mark.parametrize("make", [DonchianBreakout, EmaRsiVolume,
                                  lambda: DonchianBreakout(DonchianParams(use_bracket=False))])
def test_builtins_are_clean(series, make) -> None:
    strat = make()
    report = check_lookahead(strat, series, samples=12)
    assert report.clean, report.findings
    assert report.bars == {"BTC-USD": 17_990}
    assert {"enter", "exit", "flat_reason", "stop_loss", "take_profit"} <= set(report.columns)
    assert {f"input:{k}" for k in strat.input_names} <= set(report.columns)


class Leaky(DataFrameStrategy):
    record = ("next_close",)
    warmup_bars = 300

    def populate(self, df):
        df["next_close"] = df["close"].shift(-1)                        # tomorrow's close
        df["zscore"] = (df["close"] - df["close"].mean()) / df["close"].std()   # whole column
        df["sma"] = ind.sma(df["close"], 20)                            # fine
        df["enter_long"] = df["next_close"] > df["close"]
        df["exit_long"] = df["zscore"] > 1
        return df


def test_shift_minus_one_and_whole_column_statistics_are_caught(btc, series) -> None:
    report = check_lookahead(Leaky(), series, samples=8)
    assert not report.clean
    by_col = {f.column: f for f in report.findings}
    assert set(by_col) == {"next_close", "zscore", "enter_long", "exit_long"}
    assert all(f.kind == "lookahead" for f in report.findings)
    nc = by_col["next_close"]
    # first cut: the value at the cut bar is NaN without the next bar, its close with it
    cuts = cut_points(len(btc), 300, 8)
    assert nc.cut == nc.bar == int(cuts[0]) and nc.partial == "NaN"
    assert nc.full == f"{btc.close[nc.bar + 1]:.10g}" and nc.ts == int(btc.ts[nc.bar])
    z = by_col["zscore"]
    assert z.bar == 0 and z.partial != z.full                 # the mean moves every bar back to 0
    # unaffected columns are not reported
    assert "sma" in report.columns and "sma" not in by_col and "close" not in by_col


class LeakyReason(DataFrameStrategy):
    def populate(self, df):
        up = df["close"].shift(-3) > df["close"]                        # three bars ahead
        df["enter_long"] = df["close"] > df["open"]
        df["exit_long"] = df["close"] < df["open"]
        df["enter_reason"] = np.where(up, "will_rise", "green_bar")
        return df


def test_a_leak_in_a_text_column_is_caught(btc) -> None:
    report = check_lookahead(LeakyReason(), {"BTC-USD": btc.slice(0, 3_000)}, samples=5)
    assert {f.column for f in report.findings} == {"enter_reason"}
    f = report.findings[0]
    assert {f.partial, f.full} == {"'will_rise'", "'green_bar'"} and f.cut - 3 < f.bar <= f.cut


class ShortWarmup(DataFrameStrategy):
    record = ("ema",)
    warmup_bars = 30

    def populate(self, df):
        df["ema"] = ind.ema(df["close"], 50)
        df["enter_long"] = df["close"] > df["ema"]
        df["exit_long"] = df["close"] < df["ema"]
        return df


def test_a_warmup_too_short_for_a_recursion_is_reported(series) -> None:
    report = check_lookahead(ShortWarmup(), series, samples=6)
    kinds = {(f.column, f.kind) for f in report.findings}
    assert ("ema", "warmup") in kinds
    assert all(k == "warmup" for _, k in kinds)                # no look-ahead
    ok = type("LongWarmup", (ShortWarmup,), {"warmup_bars": 2_000})
    assert check_lookahead(ok(), series, samples=6).clean
    assert check_lookahead(ShortWarmup(), series, samples=6, check_warmup=False).clean


class NextBar(Strategy):
    """A NumPy strategy whose entry reads the next bar's close."""

    Params = StrategyParams
    input_names = ("next",)

    @property
    def warmup(self) -> int:
        return 1

    def prepare(self, bars):
        n = len(bars)
        nxt = np.r_[bars.close[1:], np.nan]
        enter = np.nan_to_num(nxt) > bars.close
        return SignalFrame(enter, np.zeros(n, bool), enter.astype(np.int8), ("idle", "peek"),
                           np.full(n, np.nan), np.full(n, np.nan), {"next": nxt})


def test_a_numpy_strategy_leak_is_caught_in_its_frame(btc) -> None:
    report = check_lookahead(NextBar(), {"BTC-USD": btc.slice(0, 2_000)}, samples=5)
    cols = {f.column for f in report.findings}
    assert "input:next" in cols and cols <= {"input:next", "enter", "flat_reason"}
    f = next(f for f in report.findings if f.column == "input:next")
    assert f.partial == "NaN" and iso(f.ts) == iso(int(btc.ts[f.bar]))


def test_cut_points() -> None:
    c = cut_points(17_990, 581, 20)
    assert len(c) == 20 and c[0] == 581 and c[-1] == 17_988 and (np.diff(c) > 0).all()
    assert cut_points(100, 5_000, 10)[0] == 50                # warm-up longer than the data
    assert cut_points(1, 0, 10).size == 0
    with pytest.raises(ValueError, match="--samples must be at least 1"):
        check_lookahead(DonchianBreakout(), {}, samples=0)
