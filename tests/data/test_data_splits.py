"""Stock splits: the unadjusted-split detector, a user's daily file adjusted by its split
column, and equities through ``load_market_data`` (bundled tickers, NYSE sessions, errors).

Everything runs on the real bundled AlphaVantage panel (AAPL's 7:1 split of 2014-06-09)
or on files cut from it.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from tradewarden.data import DataError, load_market_data
from tradewarden.data.equities import (
    BUNDLED_EQUITY_TICKERS,
    EQUITY_SPEC_SOURCE,
    bundled_equity_path,
    daily_file_columns,
    equity_instrument,
    load_daily_file,
    load_equity_panel,
)
from tradewarden.data.loaders import check_file
from tradewarden.data.quality import SPLIT_RATIOS, find_unadjusted_splits

DAY = 86_400
SPLIT_DAY = int(pd.Timestamp("2014-06-09").timestamp())


@pytest.fixture(scope="module")
def panel_rows() -> pd.DataFrame:
    """The bundled panel as text, exactly as the file holds it."""
    return pd.read_csv(bundled_equity_path("equities"), dtype=str, keep_default_na=False)


def _write(frame: pd.DataFrame, path):
    frame.to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------- the detector


def test_the_raw_aapl_series_has_one_suspect_the_7_for_1_split():
    raw = load_equity_panel(symbols=["AAPL"])["AAPL"].series
    found = find_unadjusted_splits(raw.ts, raw.open, raw.close)
    assert [(s.ts, s.ratio) for s in found] == [(SPLIT_DAY, "7:1")]
    assert (found[0].prev_close, found[0].open) == (645.57, 92.7)
    text = found[0].describe()
    assert text.startswith("2014-06-09: close 645.57 then open 92.7") and "7:1 split" in text


def test_adjusted_series_and_the_other_tickers_have_none():
    for adjustment in ("split", "split_dividend"):
        for bars in load_equity_panel(adjustment=adjustment).values():
            s = bars.series
            assert find_unadjusted_splits(s.ts, s.open, s.close) == []
    for symbol, bars in load_equity_panel().items():
        if symbol != "AAPL":
            s = bars.series
            assert find_unadjusted_splits(s.ts, s.open, s.close) == [], symbol
    # (the bundled crypto: tests/engine/test_replay.py's default replay has integrity ok)


@pytest.mark.parametrize(("new", "old"), [(2, 1), (3, 2), (3, 1), (4, 1), (10, 1), (20, 1),
                                          (1, 2), (1, 10)])
def test_each_ratio_is_found_within_the_tolerance_and_not_beyond(new, old):
    ts = np.arange(4, dtype=np.int64) * DAY
    close = np.array([100.0, 100.0, 100.0, 100.0])
    for drift, expected in ((1.0, True), (1.02, True), (0.98, True), (1.06, False)):
        o = close.copy()
        o[2] = 100.0 * old / new * drift            # the split day opens at price / factor
        got = find_unadjusted_splits(ts, o, close)
        assert [(g.new, g.old) for g in got] == ([(new, old)] if expected else []), drift
    assert (new, old) in SPLIT_RATIOS


def test_ordinary_moves_are_not_splits_and_bad_arguments_are_refused():
    ts = np.arange(3, dtype=np.int64) * DAY
    assert find_unadjusted_splits(ts, np.array([10.0, 8.0, 12.0]), np.array([10.0, 9.0, 12.0])) == []
    assert find_unadjusted_splits(ts[:1], np.array([1.0]), np.array([1.0])) == []
    with pytest.raises(ValueError, match="tolerance"):
        find_unadjusted_splits(ts, ts * 1.0, ts * 1.0, tolerance=0.5)
    with pytest.raises(ValueError, match="differ in length"):
        find_unadjusted_splits(ts, np.ones(2), np.ones(3))


# --------------------------------------------------------------------------- user files


def test_a_user_csv_with_split_coefficients_gives_the_bundled_split_adjusted_bars(tmp_path,
                                                                                 panel_rows):
    aapl = panel_rows[panel_rows["symbol"] == "AAPL"].drop(columns=["symbol"])
    path = _write(aapl, tmp_path / "AAPL.csv")
    assert daily_file_columns(path) == {"split": "split_coefficient", "adj_close": "adj_close"}
    bundled = load_market_data(["AAPL"], timeframe="1d")
    user = load_market_data(["AAPL"], path, timeframe="1d", adjust="split")
    b, u = bundled.series["AAPL"], user.series["AAPL"]
    for name in ("ts", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(b, name), getattr(u, name)), name
    assert user.adjust == bundled.adjust == "split"
    assert user.quality["AAPL"].gaps == 0 and user.quality["AAPL"].status == "ok"
    assert user.instruments["AAPL"].source == EQUITY_SPEC_SOURCE
    # 2014-06-06 closed at 645.57 before the split: 92.22 on the post-split basis
    i = int(np.searchsorted(u.ts, SPLIT_DAY))
    assert u.close[i - 1] == pytest.approx(645.57 / 7.00000700001)
    assert abs(u.open[i] / u.close[i - 1] - 1) < 0.01
    # the default is split; raw keeps the jump and says so
    assert np.array_equal(load_market_data(["AAPL"], path, timeframe="1d").series["AAPL"].close,
                          u.close)
    raw = load_market_data(["AAPL"], path, timeframe="1d", adjust="raw")
    assert raw.quality["AAPL"].status == "degraded" and raw.adjust == "raw"
    assert "2014-06-09" in raw.warnings[0] and "7:1" in raw.warnings[0] and str(path) in raw.warnings[0]


def test_a_yfinance_stock_splits_column_and_a_panel_file_work_too(tmp_path, panel_rows):
    aapl = panel_rows[panel_rows["symbol"] == "AAPL"]
    splits = aapl["split_coefficient"].astype(float)
    yf = pd.DataFrame({"Date": aapl["timestamp"].str[:10], "Open": aapl["open"],
                       "High": aapl["high"], "Low": aapl["low"], "Close": aapl["close"],
                       "Adj Close": aapl["adj_close"], "Volume": aapl["volume"],
                       "Stock Splits": np.where(splits == 1.0, 0.0, splits)})
    path = _write(yf, tmp_path / "aapl_yf.csv")
    got = load_daily_file(path, "AAPL", adjustment="split")["AAPL"]
    bundled = load_equity_panel(symbols=["AAPL"], adjustment="split")["AAPL"]
    assert np.allclose(got.series.close, bundled.series.close, rtol=1e-12)
    assert got.split_coefficient is not None and got.split_coefficient.min() == 1.0
    # a whole panel file (symbol column), gzip as bundled: every symbol, adjusted alike
    gz = tmp_path / "panel.csv.gz"
    gz.write_bytes(bundled_equity_path("equities").read_bytes())
    loaded = load_market_data(["MSFT", "AAPL"], gz, timeframe="1d")
    assert list(loaded.series) == ["MSFT", "AAPL"] and loaded.adjust == "split"
    assert np.array_equal(loaded.series["AAPL"].close, bundled.series.close)


def test_adjust_needs_the_columns_it_adjusts_with(tmp_path, panel_rows):
    plain = panel_rows[panel_rows["symbol"] == "MSFT"][["timestamp", "open", "high", "low",
                                                        "close", "volume"]]
    path = _write(plain, tmp_path / "MSFT.csv")
    with pytest.raises(DataError, match=r"MSFT\.csv: --adjust split needs a split column"):
        load_market_data(["MSFT"], path, timeframe="1d", adjust="split")
    no_adj = panel_rows[panel_rows["symbol"] == "MSFT"].drop(columns=["adj_close"])
    path2 = _write(no_adj, tmp_path / "MSFT2.csv")
    with pytest.raises(DataError, match="split_dividend needs an adjusted close"):
        load_market_data(["MSFT"], path2, timeframe="1d", adjust="split_dividend")
    with pytest.raises(ValueError, match="invalid --adjust 'bogus'"):
        load_market_data(["MSFT"], path, timeframe="1d", adjust="bogus")
    bad = panel_rows[panel_rows["symbol"] == "MSFT"].copy()
    bad.iloc[9, bad.columns.get_loc("split_coefficient")] = "0"
    path3 = _write(bad, tmp_path / "MSFT3.csv")
    with pytest.raises(DataError, match=r"row 10 field 'split_coefficient'"):
        load_market_data(["MSFT"], path3, timeframe="1d")


def test_a_plain_daily_equity_csv_counts_gaps_in_nyse_sessions(tmp_path, panel_rows):
    """Holidays and weekends are not gaps; a missing session is; crypto keeps the plain count."""
    rows = panel_rows[panel_rows["symbol"] == "MSFT"][["timestamp", "open", "high", "low",
                                                       "close", "volume"]]
    path = _write(rows, tmp_path / "MSFT.csv")
    got = load_market_data(["MSFT"], path, timeframe=None)
    q = got.quality["MSFT"]
    assert (q.gaps, q.missing_bars, q.largest_gap_seconds, q.status) == (0, 0, 0, "ok")
    assert got.instruments["MSFT"].source == EQUITY_SPEC_SOURCE and got.timeframe == "1d"
    dropped = rows[rows["timestamp"] != "2014-07-03T00:00:00Z"]      # the day before the 4th
    path2 = _write(dropped, tmp_path / "MSFT-gap.csv")
    q2 = load_market_data(["MSFT"], path2, timeframe=None).quality["MSFT"]
    assert (q2.gaps, q2.missing_bars) == (1, 1)
    assert q2.largest_gap_seconds == 5 * DAY          # 2014-07-02 to 07-07, in calendar days
    ((_, _, listed),) = check_file(path2)
    assert (listed.gaps, listed.missing_bars) == (1, 1)
    btc = load_market_data(["BTC-USD"], timeframe="1d").quality["BTC-USD"]
    assert (btc.gaps, btc.missing_bars) == (2, 10)                    # hourly rows: unchanged


def test_check_file_flags_a_raw_equity_csv(tmp_path, panel_rows):
    raw = panel_rows[panel_rows["symbol"] == "AAPL"][["timestamp", "open", "high", "low",
                                                      "close", "volume"]]
    ((sym, _, q),) = check_file(_write(raw, tmp_path / "AAPL.csv"))
    assert sym == "AAPL" and q.status == "degraded"
    assert len(q.split_suspects) == 1 and q.split_suspects[0].startswith("2014-06-09")


# --------------------------------------------------------------------------- bundled tickers


def test_bundled_tickers_load_as_daily_equities():
    got = load_market_data(["aapl", "SPY"], timeframe="1d")
    assert list(got.series) == ["AAPL", "SPY"] and got.timeframe == "1d"
    for sym, series in got.series.items():
        assert series.timeframe == "1d" and got.quality[sym].gaps == 0
        inst = got.instruments[sym]
        assert (inst.quote, inst.price_increment, inst.quantity_increment) == \
            ("USD", Decimal("0.01"), Decimal(1))
    assert got.warnings == []
    held = set(pd.read_csv(bundled_equity_path("equities"), usecols=["symbol"])["symbol"])
    assert held | {"SPY"} == set(BUNDLED_EQUITY_TICKERS)
    one_year = load_market_data(["AAPL"], timeframe="1d", start="2014-01-01", end="2015-01-01")
    days = set(pd.to_datetime(one_year.series["AAPL"].ts, unit="s").strftime("%Y-%m-%d"))
    assert len(days) == 252 and one_year.quality["AAPL"].gaps == 0
    # early closes are sessions, holidays are not (and neither is a gap)
    assert {"2014-07-03", "2014-11-28", "2014-12-24"} <= days
    assert not {"2014-07-04", "2014-11-27", "2014-12-25"} & days


def test_unknown_tickers_vix_and_a_finer_timeframe_are_one_clear_error():
    with pytest.raises(DataError, match="no bundled 1h file for symbol 'TSLA'.*AAPL, JPM, MSFT, "
                                        "NVDA, XOM, SPY"):
        load_market_data(["TSLA"])
    with pytest.raises(DataError, match="VIX is the CBOE volatility index.*not tradable"):
        load_market_data(["VIX"], timeframe="1d")
    with pytest.raises(DataError, match="requested timeframe 1h is finer than the data's 1d bars "
                                        "for AAPL"):
        load_market_data(["AAPL"], timeframe="1h")


def test_equity_instrument_spec():
    spec = equity_instrument("msft")
    assert (spec.symbol, spec.base, spec.quote) == ("MSFT", "MSFT", "USD")
    assert spec.round_quantity(Decimal("12.9")) == Decimal(12)
    assert spec.floor_price(Decimal("101.239")) == Decimal("101.23")
    assert equity_instrument("PENNY", 0.35).price_increment == Decimal("0.0001")
    assert spec.check_order_size(Decimal(0), Decimal(100)) is not None
    with pytest.raises(ValueError):
        equity_instrument("  ")
