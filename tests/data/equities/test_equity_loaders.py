"""Daily equities, SPY, the adjusted-close panel and VIX, on the bundled real samples."""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np
import pandas as pd
import pytest
from _equity_samples import shared_file

from tradewarden.data import DataError
from tradewarden.data.equities import (
    ADJUSTMENTS,
    BUNDLED_EQUITY_FILES,
    bundled_equity_names,
    bundled_equity_path,
    load_adj_close_panel,
    load_equity_panel,
    load_spy_daily,
    load_vix_daily,
)

DAY = 86_400
PANEL_SYMBOLS = ["AAPL", "JPM", "MSFT", "NVDA", "XOM"]
# PROVENANCE-equities.md: bytes and sha256 of each bundled file.
SHA256 = {
    "equities": "d2640a34962e0febc5392c190bc4dcae0af938b479f07fe56925c0e1555c7da0",
    "spy": "796329dcb076cc7d47f594d8493b3b24ffb8078cf0ce243bc845ddb0e5f528b8",
    "adj_close": "4923e786bfcceba14b02a7e7fa699c21c3851a4ffe6822c32493052a488dc8e5",
    "vix": "7ca2acc4ffb860d442618a7934f6eb97c46848eedc7447c6332149876d771f3a",
    "aapl_options": "3bc132ee7ddf2e7d6d80d4caa8c0f08467609028408d399c3575b366a1eee505",
    "spx_puts": "1a55245de046e4c81625c179e5aa32f4e310b6b63031740080e3a1ae100ae8b0",
}


def day(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").timestamp())


def at(bars, text: str) -> int:
    idx = np.flatnonzero(bars.series.ts == day(text))
    assert idx.shape[0] == 1, text
    return int(idx[0])


@pytest.fixture(scope="module")
def panel():
    return {adj: load_equity_panel(adjustment=adj) for adj in ADJUSTMENTS}


# --------------------------------------------------------------------------- bundled files


def test_bundled_files_match_provenance():
    assert bundled_equity_names() == sorted(SHA256)
    for name, digest in SHA256.items():
        path = bundled_equity_path(name)
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name
        assert len(data) < 300_000
        assert bundled_equity_path(BUNDLED_EQUITY_FILES[name]) == path   # file name works too
    provenance = (bundled_equity_path("spy").parent / "PROVENANCE-equities.md").read_text()
    for name, digest in SHA256.items():
        assert digest in provenance and BUNDLED_EQUITY_FILES[name] in provenance


def test_unknown_sample_lists_the_bundled_ones():
    with pytest.raises(DataError, match="no bundled equity sample 'nasdaq'.*adj_close"):
        bundled_equity_path("nasdaq")


# --------------------------------------------------------------------------- 56-stock panel


def test_panel_rows_and_ranges(panel):
    raw = panel["none"]
    assert list(raw) == PANEL_SYMBOLS
    for symbol, bars in raw.items():
        s = bars.series
        assert len(s) == 1006 and s.symbol == symbol and s.timeframe == "1d"
        assert s.ts[0] == day("2012-01-03") and s.ts[-1] == day("2015-12-31")
        assert s.ts.dtype == np.int64 and s.close.dtype == np.float64
        assert np.all(s.ts % DAY == 0) and np.all(np.diff(s.ts) > 0)
        assert s.source.startswith("bundled:us_equities_daily_alphavantage")
        assert bars.adjustment == "none"


def test_panel_quality_no_missing_sessions(panel):
    for symbol, bars in panel["none"].items():
        q = bars.quality
        assert q.missing_sessions == () and q.non_session_days == ()
        assert q.sessions.sessions == 1006 and q.sessions.rows == 1006
        assert q.data.gaps == 0 and q.data.missing_bars == 0 and q.data.timeframe_seconds == DAY
        assert q.data.zero_volume_bars == 0
        assert q.to_dict()["sessions"]["missing_sessions"] == []
        # raw AAPL holds its unadjusted 7:1 split of 2014-06-09; the others no split
        assert q.data.status == ("degraded" if symbol == "AAPL" else "ok")
        assert len(q.data.split_suspects) == (symbol == "AAPL")
    for adjusted in ("split", "split_dividend"):
        assert all(b.quality.data.status == "ok" and b.quality.data.split_suspects == []
                   for b in panel[adjusted].values())


def test_aapl_7_for_1_split_unadjusted(panel):
    aapl = panel["none"]["AAPL"]
    i = at(aapl, "2014-06-09")
    assert aapl.series.ts[i - 1] == day("2014-06-06")
    assert aapl.series.close[i - 1] == 645.57 and aapl.series.close[i] == 93.70
    assert aapl.series.close[i - 1] / aapl.series.close[i] == pytest.approx(6.89, abs=0.01)
    assert aapl.split_coefficient[i] == pytest.approx(7.0, rel=1e-5)
    assert np.count_nonzero(aapl.split_coefficient != 1.0) == 1
    assert aapl.series.volume[i - 1] == 12_497_800


def test_aapl_split_adjusted_is_continuous(panel):
    raw, split = panel["none"]["AAPL"], panel["split"]["AAPL"]
    i = at(split, "2014-06-09")
    coefficient = raw.split_coefficient[i]                       # 7.00000700001
    # Before the split: divided by the coefficient; from the split on: unchanged.
    assert split.series.close[i - 1] == pytest.approx(645.57 / coefficient, rel=1e-12)
    assert split.series.close[i - 1] == pytest.approx(92.224, abs=1e-3)
    for name in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(split.series, name)[i:],
                                      getattr(raw.series, name)[i:])
        np.testing.assert_allclose(getattr(split.series, name)[:i],
                                   getattr(raw.series, name)[:i] / coefficient, rtol=1e-12)
    assert split.series.volume[i - 1] == pytest.approx(12_497_800 * coefficient)
    jump = abs(np.log(split.series.close[i] / split.series.close[i - 1]))
    assert jump < 0.02                                           # 93.70 vs 92.22
    assert np.abs(np.diff(np.log(split.series.close))).max() < 0.15
    assert np.abs(np.diff(np.log(raw.series.close))).max() > 1.9   # ln 7 = 1.95


def test_split_dividend_close_is_the_vendor_adj_close(panel):
    for symbol in PANEL_SYMBOLS:
        raw, adj = panel["none"][symbol], panel["split_dividend"][symbol]
        np.testing.assert_array_equal(adj.series.close, raw.adj_close)
        ratio = raw.adj_close / raw.series.close
        for name in ("open", "high", "low"):
            np.testing.assert_allclose(getattr(adj.series, name),
                                       getattr(raw.series, name) * ratio, rtol=1e-12)
        assert np.all(adj.series.high >= np.maximum(adj.series.open, adj.series.close) - 1e-9)


def test_every_adjustment_keeps_dollar_volume(panel):
    raw = panel["none"]["AAPL"].series
    for adjustment in ("split", "split_dividend"):
        s = panel[adjustment]["AAPL"].series
        np.testing.assert_allclose(s.close * s.volume, raw.close * raw.volume, rtol=1e-9)


def test_vendor_adj_close_changes_only_on_ex_dividend_dates(panel):
    # adj_close / split-adjusted close is the vendor's dividend factor (and its later
    # 4:1 split of 2020): constant between ex-dates, stepping up on each one.
    split, raw = panel["split"]["AAPL"], panel["none"]["AAPL"]
    factor = raw.adj_close / split.series.close
    ex = np.flatnonzero(raw.dividend > 0)
    assert len(ex) == 14 and split.series.ts[ex[0]] == day("2012-08-09")
    assert raw.dividend[ex[0]] == 2.65
    steps = np.flatnonzero(np.abs(np.diff(factor)) / factor[1:] > 1e-6) + 1
    np.testing.assert_array_equal(steps, ex)
    assert np.all(np.diff(factor)[ex - 1] > 0)
    # The basis is 2021-04-21: the 4:1 split of 2020 (0.25) times 2016-2021 dividends.
    assert 0.2 < factor[-1] < 0.25


def test_date_range_does_not_change_the_adjustment(panel):
    before = load_equity_panel(symbols="aapl", adjustment="split", start="2014-06-02",
                               end="2014-06-06")["AAPL"]
    assert len(before) == 5
    assert before.series.ts[-1] == day("2014-06-06")
    full = panel["split"]["AAPL"]
    assert before.series.close[-1] == full.series.close[at(full, "2014-06-06")]
    assert before.series.close[-1] < 100          # adjusted for the split that follows
    assert before.quality.sessions.rows == 1006   # quality is on the file's rows


def test_panel_errors_on_bad_choices():
    with pytest.raises(ValueError, match="adjustment"):
        load_equity_panel(adjustment="dividend")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="after"):
        load_equity_panel(start="2015-01-01", end="2014-01-01")
    with pytest.raises(DataError, match="no rows for symbol 'TSLA'"):
        load_equity_panel(symbols=["AAPL", "TSLA"])


# --------------------------------------------------------------------------- bad rows


@pytest.mark.parametrize("edits, row, field, text", [
    ({(7, "close"): "-1.0"}, 7, "close", "non-positive"),
    ({(9, "adj_close"): "0"}, 9, "adj_close", "not above 0"),
    ({(4, "split_coefficient"): ""}, 4, "split_coefficient", "missing"),
    ({(6, "dividend"): "-0.5"}, 6, "dividend", "not at least 0"),
    ({(3, "timestamp"): "2012-01-03T14:30:00Z"}, 3, "timestamp", "not a daily date label"),
    ({(8, "volume"): "abc"}, 8, "volume", "not a number"),
    ({(5, "high"): "1.0"}, 5, "high", "below"),
])
def test_bad_panel_rows_name_file_row_and_field(edited, edits, row, field, text):
    path = edited("equities", 20, edits)
    with pytest.raises(DataError) as err:
        load_equity_panel(path)
    assert err.value.source == str(path)
    assert (err.value.row, err.value.field) == (row, field)
    assert text in err.value.problem
    assert str(err.value).startswith(f"{path} row {row} field '{field}'")


def test_lowest_bad_row_is_reported_first(edited):
    # An OHLC problem (validate_frame) on row 6 comes before an adj_close problem on row 11.
    path = edited("equities", 20, {(6, "low"): "-3", (11, "adj_close"): "nan"})
    with pytest.raises(DataError) as err:
        load_equity_panel(path)
    assert (err.value.row, err.value.field) == (6, "low")


def test_duplicate_date_is_always_an_error(edited):
    # Rows 1 and 6 are AAPL on 2012-01-03 and 2012-01-04 (5 symbols per date).
    path = edited("equities", 20, {(6, "timestamp"): "2012-01-03T00:00:00Z"})
    for mode in ("raise", "skip"):
        with pytest.raises(DataError, match="duplicate timestamp") as err:
            load_equity_panel(path, symbols="AAPL", bad_rows=mode)
        assert err.value.row == 6


def test_skip_mode_drops_and_reports_bad_rows(edited):
    path = edited("equities", 30, {(11, "close"): "-1", (16, "adj_close"): "0",
                                   (21, "split_coefficient"): "x"})
    aapl = load_equity_panel(path, symbols="AAPL", bad_rows="skip")["AAPL"]
    assert len(aapl) == 3                              # rows 1, 6, 26 kept
    q = aapl.quality
    assert q.data.rows_skipped == 3 and q.data.status == "degraded"
    assert [d.split(" field")[0] for d in q.data.skipped_details] == ["row 11", "row 16",
                                                                       "row 21"]
    assert q.skipped_dates == (date(2012, 1, 5), date(2012, 1, 6), date(2012, 1, 9))
    assert q.missing_sessions == q.skipped_dates       # dropped sessions show as missing
    assert q.data.gaps == 1 and q.data.missing_bars == 3


def test_missing_file_and_column(tmp_path, edited):
    with pytest.raises(DataError, match="file not found"):
        load_equity_panel(tmp_path / "nope.csv.gz")
    path = tmp_path / "cols.csv"
    path.write_text("timestamp,symbol,open,high,low,close,volume\n")
    with pytest.raises(DataError, match="adj_close, dividend, split_coefficient"):
        load_equity_panel(path)


# --------------------------------------------------------------------------- SPY


def test_spy_rows_range_and_holidays():
    spy = load_spy_daily()
    s = spy.series
    assert len(s) == 757 and s.symbol == "SPY"
    assert s.ts[0] == day("2008-01-02") and s.ts[-1] == day("2010-12-31")
    assert day("2008-12-25") not in s.ts and day("2008-12-24") in s.ts
    assert date(2008, 12, 25) not in spy.quality.missing_sessions
    assert spy.quality.missing_sessions == () and spy.quality.non_session_days == ()
    assert spy.quality.sessions.sessions == 757


def test_spy_adjustments():
    none = load_spy_daily(adjustment="none")
    split = load_spy_daily(adjustment="split")
    total = load_spy_daily(adjustment="split_dividend")
    i = at(none, "2008-12-26")
    assert none.series.close[i] == pytest.approx(87.160004)       # Yahoo's OHLC as given
    assert none.adj_close[i] == pytest.approx(73.825796)
    np.testing.assert_array_equal(split.series.close, none.series.close)   # Yahoo pre-split
    np.testing.assert_array_equal(total.series.close, none.adj_close)
    assert any("split-adjusted by Yahoo" in note for note in none.quality.notes)
    sd = total.series.close / none.series.close
    assert np.all(np.diff(sd) >= -1e-6)        # dividend factor only grows toward the present


def test_spy_date_range_is_inclusive():
    spy = load_spy_daily(start="2008-12-24", end="2008-12-29")
    assert [pd.Timestamp(t, unit="s").day for t in spy.series.ts] == [24, 26, 29]
    assert list(spy.dates.day) == [24, 26, 29]
    frame = spy.to_frame()
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "adj_close"]


# --------------------------------------------------------------------------- adj-close panel


def test_adj_close_panel_shape_and_quality():
    panel = load_adj_close_panel()
    assert panel.prices.shape == (756, 5)
    assert panel.symbols == ["AAPL", "AMZN", "GOOG", "META", "SPY"]
    assert panel.prices.index[0] == pd.Timestamp("2020-01-02")
    assert panel.prices.index[-1] == pd.Timestamp("2022-12-30")
    assert panel.prices.index.name == "date" and not panel.prices.isna().any().any()
    assert all(q.complete and q.sessions == 756 for q in panel.quality.values())
    assert panel.prices.loc["2020-01-02", "AAPL"] == pytest.approx(72.796028)


def test_adj_close_is_continuous_across_splits():
    prices = load_adj_close_panel(symbols=["amzn", "goog", "aapl"]).prices
    assert list(prices.columns) == ["AMZN", "GOOG", "AAPL"]
    for symbol, split_day in (("AMZN", "2022-06-06"), ("GOOG", "2022-07-18"),
                              ("AAPL", "2020-08-31")):
        col = prices[symbol]
        i = col.index.get_loc(pd.Timestamp(split_day))
        assert abs(np.log(col.iloc[i] / col.iloc[i - 1])) < 0.1, symbol


def test_adj_close_panel_range_and_bad_value(edited):
    part = load_adj_close_panel(symbols="SPY", start="2022-12-01", end="2022-12-31")
    assert part.prices.shape == (21, 1)
    path = edited("adj_close", 12, {(8, "adj_close"): "-5"})
    with pytest.raises(DataError) as err:
        load_adj_close_panel(path)
    assert (err.value.row, err.value.field) == (8, "adj_close")


# --------------------------------------------------------------------------- VIX


def test_vix_2004_oddities_are_reported():
    vix = load_vix_daily()
    q = vix.quality
    assert vix.series.symbol == "VIX" and len(vix) == 251        # 253 rows, 2 skipped
    assert q.non_session_days == (date(2004, 6, 11),)           # Reagan funeral closure
    assert day("2004-06-11") in vix.series.ts                   # kept, not silently dropped
    assert q.flat_bars == (date(2004, 6, 11),)
    assert q.skipped_dates == (date(2004, 10, 26), date(2004, 11, 8))
    assert q.data.rows_skipped == 2 and q.data.status == "degraded"
    assert q.data.skipped_details[1].startswith("row 216 field 'low'")
    assert q.missing_sessions == q.skipped_dates                # nothing else missing
    assert np.all(vix.series.volume == 0) and q.data.zero_volume_bars == 251
    assert any("volume set to 0.0" in note for note in q.notes)
    assert vix.adj_close is None and vix.dividend is None


def test_vix_non_session_rows_can_be_dropped_and_stay_reported():
    vix = load_vix_daily(non_session="drop")
    assert len(vix) == 250 and day("2004-06-11") not in vix.series.ts
    assert vix.quality.non_session_days == (date(2004, 6, 11),)
    assert vix.quality.non_session_rows_dropped


def test_vix_raise_mode_names_the_bad_row():
    with pytest.raises(DataError) as err:
        load_vix_daily(bad_rows="raise")
    assert (err.value.row, err.value.field) == (207, "high")
    assert "16.87" in err.value.problem


def test_vix_nan_volume_becomes_zero(edited, tmp_path):
    lines = (edited("vix", 10, {}).read_text().splitlines())
    lines = [lines[0] + ",volume"] + [line + ("," if k % 2 else ",0") for k, line in
                                      enumerate(lines[1:])]
    path = tmp_path / "vix_vol.csv"
    path.write_text("\n".join(lines) + "\n")
    vix = load_vix_daily(path)
    assert len(vix) == 10 and np.all(vix.series.volume == 0)
    assert any("5 missing volume" in note for note in vix.quality.notes)


# --------------------------------------------------------------------------- full staged files


def test_full_staged_vix_file_matches_its_provenance():
    vix = load_vix_daily(shared_file("vix/vix_daily_cboe_1990-2026.csv.gz"))
    q = vix.quality
    assert len(q.non_session_days) == 33
    assert len(q.flat_bars) == 506 - 0    # 1990-1991 plus 2004-06-11, none skipped
    assert q.data.rows_skipped == 47      # open outside [low, high]
    assert len(vix) == 9235 - 47
    assert {date(1991, 3, 1), date(1997, 1, 31), date(1997, 11, 26), date(1999, 12, 31)} \
        <= set(q.missing_sessions)


def test_full_staged_equity_panel_has_no_missing_sessions():
    bars = load_equity_panel(shared_file("equities/us_equities_daily_alphavantage_1999-2021.csv.gz"),
                             symbols=["AAPL", "TSLA", "NVDA"], adjustment="split")
    assert all(b.quality.sessions.complete for b in bars.values())
    tsla = bars["TSLA"]
    i = at(tsla, "2020-08-31")                                  # 5:1 split
    assert abs(np.log(tsla.series.close[i] / tsla.series.close[i - 1])) < 0.2
    assert len(bars["AAPL"]) == 5402
