"""Loaders: bundled samples, files (CSV, gzip, Parquet, epoch, symbol column), directories."""

from __future__ import annotations

import gzip
import shutil
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradewarden.data import (DataError, LoadedData, bundled_path, bundled_symbols,
                              load_market_data, read_ohlcv_file)
from tradewarden.domain import BarSeries, Instrument

H, D = 3600, 86400
BUNDLED = ["BTC-USD", "ETH-USD", "SOL-USD"]
FIRST_TS = 1713459600                            # 2024-04-18T17:00:00Z
LAST_TS = 1778256000                             # 2026-05-08T16:00:00Z


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())


@pytest.fixture(scope="module")
def bundled() -> LoadedData:
    return load_market_data()


# ---------------------------------------------------------------------------------------
# bundled


def test_bundled_symbols_and_paths() -> None:
    assert bundled_symbols() == BUNDLED
    path = bundled_path("btc_usd")
    assert isinstance(path, Path) and path.is_file()
    assert path.name == "coinbase_spot_BTC-USD_1h.csv.gz"
    assert (path.parent / "PROVENANCE.md").is_file()


@pytest.mark.parametrize("symbol", BUNDLED)
def test_bundled_data_matches_provenance(bundled, symbol) -> None:
    bars, q = bundled.series[symbol], bundled.quality[symbol]
    assert len(bars) == 17990 and bars.timeframe == "1h" and bars.symbol == symbol
    assert bars.ts[0] == FIRST_TS and bars.ts[-1] == LAST_TS
    assert (q.rows, q.first_ts, q.last_ts) == (17990, FIRST_TS, LAST_TS)
    assert (q.gaps, q.missing_bars, q.largest_gap_seconds) == (2, 10, 6 * H)
    assert (q.zero_volume_bars, q.rows_skipped, q.status) == (0, 0, "ok")
    assert q.to_dict()["last_time"] == "2026-05-08T16:00:00Z"
    assert bars.source == q.source == f"bundled:coinbase_spot_{symbol}_1h.csv.gz"
    inst = bundled.instruments[symbol]
    assert isinstance(inst, Instrument) and inst.source == "coinbase product metadata"
    for name in ("ts", "open", "high", "low", "close", "volume"):
        arr = getattr(bars, name)
        assert arr.flags["C_CONTIGUOUS"] and arr.dtype == (np.int64 if name == "ts" else np.float64)
    assert np.all(bars.high >= np.maximum(bars.open, bars.close))


def test_bundled_load_has_no_warnings_and_keeps_order(bundled) -> None:
    assert bundled.warnings == []
    assert list(bundled.series) == BUNDLED == list(bundled.quality) == list(bundled.instruments)


def test_unknown_bundled_symbol_lists_available() -> None:
    with pytest.raises(DataError) as info:
        load_market_data(["DOGE-USD"])
    message = str(info.value)
    assert message.startswith("bundled data (") and "'DOGE-USD'" in message
    assert all(s in message for s in BUNDLED)
    with pytest.raises(DataError, match="no bundled 15m file for symbol 'BTC-USD'"):
        bundled_path("BTC-USD", "15m")


def test_symbols_are_canonicalised_and_deduplicated() -> None:
    data = load_market_data(["btc_usd", "BTC/USD", "BTC-USD"], end="2024-04-19")
    assert list(data.series) == ["BTC-USD"] and len(data.series["BTC-USD"]) == 7
    with pytest.raises(ValueError, match="no symbols"):
        load_market_data([])


def test_bundled_resampled_to_4h_and_1d() -> None:
    data = load_market_data(["BTC-USD"], timeframe="1d")
    days = data.series["BTC-USD"]
    assert days.timeframe == "1d" and np.all(days.ts % D == 0)
    assert days.ts[0] == _epoch("2024-04-18T00:00:00")          # leading bucket kept
    assert days.ts[-1] == _epoch("2026-05-07T00:00:00")         # 05-08 ends 17:00: dropped
    assert len(days) == (days.ts[-1] - days.ts[0]) // D + 1     # no whole day missing
    assert data.quality["BTC-USD"].rows == 17990                # quality is about the source
    four = load_market_data(["BTC-USD"], timeframe="4h").series["BTC-USD"]
    assert four.ts[-1] == _epoch("2026-05-08T12:00:00") and np.all(four.ts % (4 * H) == 0)
    assert four.volume.sum() < days.volume.sum() + 1e6           # sanity: same data scale


def test_start_inclusive_end_exclusive() -> None:
    bars = load_market_data(["ETH-USD"], start="2025-01-01", end="2025-01-02").series["ETH-USD"]
    assert len(bars) == 24
    assert bars.ts[0] == _epoch("2025-01-01T00:00:00") and bars.ts[-1] == _epoch("2025-01-01T23:00:00")
    bars = load_market_data(["ETH-USD"], start="2025-01-01T05:00:00Z",
                            end="2025-01-01T07:00:00+00:00").series["ETH-USD"]
    assert bars.ts.tolist() == [_epoch("2025-01-01T05:00:00"), _epoch("2025-01-01T06:00:00")]


def test_range_applies_after_resampling_so_buckets_stay_aligned() -> None:
    bars = load_market_data(["SOL-USD"], timeframe="4h", start="2025-03-01T02:00:00",
                            end="2025-03-02").series["SOL-USD"]
    # The 00:00 bucket opens before start and is left out whole; the rest are complete.
    assert bars.ts[0] == _epoch("2025-03-01T04:00:00") and len(bars) == 5
    assert np.all(bars.ts % (4 * H) == 0)


@pytest.mark.parametrize("flag, value", [("start", "yesterday"), ("end", "2025-13-01"),
                                         ("start", "01/02/2025")])
def test_bad_date_strings_raise_value_error_quoting_the_value(flag, value) -> None:
    with pytest.raises(ValueError) as info:
        load_market_data(["BTC-USD"], **{flag: value})
    assert repr(value) in str(info.value) and flag in str(info.value)


def test_start_after_end_is_refused() -> None:
    with pytest.raises(ValueError, match="must be before"):
        load_market_data(["BTC-USD"], start="2025-02-01", end="2025-01-01")


def test_range_without_bars_names_symbol_and_range() -> None:
    with pytest.raises(DataError) as info:
        load_market_data(["BTC-USD"], start="2030-01-01", end="2030-02-01")
    message = str(info.value)
    assert message.startswith("bundled:coinbase_spot_BTC-USD_1h.csv.gz: ")
    assert "BTC-USD" in message and "2030-01-01T00:00:00Z" in message and "2030-02-01T00:00:00Z" in message
    assert "2024-04-18T17:00:00Z to 2026-05-08T16:00:00Z" in message


def test_requested_timeframe_finer_or_not_multiple_is_a_data_error() -> None:
    with pytest.raises(DataError, match="15m is finer than the data's 1h"):
        load_market_data(["BTC-USD"], timeframe="15m")
    with pytest.raises(DataError, match="not a whole multiple"):
        load_market_data(["BTC-USD"], timeframe="90m")
    with pytest.raises(ValueError, match="invalid timeframe"):
        load_market_data(["BTC-USD"], timeframe="hourly")


# ---------------------------------------------------------------------------------------
# single files


FIRST50 = Path(__file__).parent / "fixtures" / "btc_usd_1h_first50.csv"


def _first50() -> pd.DataFrame:
    return pd.read_csv(FIRST50)


def test_read_ohlcv_file_numbers_rows_from_one(first50_path) -> None:
    frame = read_ohlcv_file(first50_path)
    assert list(frame.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert frame.index.name == "row" and frame.index[0] == 1 and frame.index[-1] == 50
    assert frame.loc[1, "timestamp"] == "2024-04-18T17:00:00Z"


def test_single_file_without_symbol_column(first50_path) -> None:
    data = load_market_data(["BTC-USD"], first50_path)
    bars = data.series["BTC-USD"]
    assert len(bars) == 50 and bars.ts[0] == FIRST_TS and bars.close[0] == 62834.64
    assert bars.source == str(first50_path) and data.quality["BTC-USD"].rows == 50
    with pytest.raises(DataError, match="no 'symbol' column.*no symbol requested"):
        load_market_data(None, first50_path)
    with pytest.raises(DataError, match="2 symbols"):
        load_market_data(["BTC-USD", "ETH-USD"], first50_path)


def test_case_insensitive_columns_and_time_alias(tmp_path) -> None:
    df = _first50().rename(columns={"timestamp": "Time", "open": "OPEN", "close": " Close "})
    df["extra"] = 1
    path = tmp_path / "BTC-USD.csv"
    df.to_csv(path, index=False)
    bars = load_market_data(["BTC-USD"], path).series["BTC-USD"]
    assert len(bars) == 50 and bars.ts[0] == FIRST_TS and bars.close[0] == 62834.64


@pytest.mark.parametrize("scale", [1, 1000], ids=["epoch_seconds", "epoch_milliseconds"])
def test_epoch_timestamps_are_detected_by_magnitude(tmp_path, first50_path, scale) -> None:
    df = _first50()
    df["timestamp"] = (FIRST_TS + np.arange(50, dtype=np.int64) * H) * scale   # 50 hourly bars
    assert int(df["timestamp"].iloc[0]) == FIRST_TS * scale
    path = tmp_path / "btc_epoch.csv"
    df.to_csv(path, index=False)
    ours = load_market_data(["BTC-USD"], path).series["BTC-USD"]
    ref = load_market_data(["BTC-USD"], first50_path).series["BTC-USD"]
    np.testing.assert_array_equal(ours.ts, ref.ts)
    np.testing.assert_array_equal(ours.close, ref.close)


def _long_file(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    btc = _first50().assign(symbol="BTC-USD")
    eth = pd.read_csv(bundled_path("ETH-USD"), nrows=50).assign(symbol="ETH-USD")
    long = pd.concat([btc, eth]).sort_values(["timestamp", "symbol"], kind="stable")
    path = tmp_path / "crypto_long.csv"
    long.to_csv(path, index=False)
    return path, long.reset_index(drop=True)


def test_symbol_column_file_selects_symbols(tmp_path) -> None:
    path, long = _long_file(tmp_path)
    everything = load_market_data(None, path)
    assert list(everything.series) == ["BTC-USD", "ETH-USD"]
    assert all(len(s) == 50 for s in everything.series.values())
    eth = load_market_data(["eth_usd"], path).series["ETH-USD"]
    expected = long[long["symbol"] == "ETH-USD"]["close"].to_numpy()
    np.testing.assert_array_equal(eth.close, expected)
    assert eth.close[0] != everything.series["BTC-USD"].close[0]
    with pytest.raises(DataError, match=r"no rows for symbol 'SOL-USD'; symbols in file: BTC-USD, ETH-USD"):
        load_market_data(["SOL-USD"], path)


def test_symbol_column_errors_use_whole_file_row_numbers(tmp_path) -> None:
    path, long = _long_file(tmp_path)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    row = int(np.flatnonzero(long["symbol"].to_numpy() == "ETH-USD")[7]) + 1   # 8th ETH row
    cells = lines[row].split(",")
    cells[header.index("close")] = "NaN"
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        load_market_data(["ETH-USD"], path)
    assert info.value.row == row == 16 and info.value.field == "close"
    load_market_data(["BTC-USD"], path)                # the BTC rows are untouched


def test_read_ohlcv_file_filters_by_symbol(tmp_path) -> None:
    path, _ = _long_file(tmp_path)
    frame = read_ohlcv_file(path, "ETH-USD")
    assert len(frame) == 50 and set(frame["symbol"]) == {"ETH-USD"}
    assert frame.index[0] == 2 and frame.index[-1] == 100      # file rows, not positions


def test_parquet_round_trip(tmp_path, first50_path) -> None:
    df = _first50()
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    path = tmp_path / "BTC-USD.parquet"
    df.to_parquet(path, index=False)
    ours = load_market_data(["BTC-USD"], path).series["BTC-USD"]
    ref = load_market_data(["BTC-USD"], first50_path).series["BTC-USD"]
    for name in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(ref, name))
    assert read_ohlcv_file(path).index[-1] == 50


def test_gzip_csv_reads_like_plain(tmp_path, first50_path) -> None:
    path = tmp_path / "BTC-USD.csv.gz"
    with open(first50_path, "rb") as src, gzip.open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    bars = load_market_data(["BTC-USD"], path).series["BTC-USD"]
    assert len(bars) == 50 and bars.volume[0] == 962.02068903


def test_daily_file_with_date_column_needs_daily_timeframe(tmp_path) -> None:
    dates = pd.date_range("2024-01-01", periods=10, freq="D").strftime("%Y-%m-%d")
    df = pd.DataFrame({"Date": dates, "Open": 10.0, "High": 11.0, "Low": 9.0, "Close": 10.5,
                       "Volume": 100.0})
    path = tmp_path / "SPY.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="1h is finer than the data's 1d"):
        load_market_data(["SPY"], path)
    data = load_market_data(["SPY"], path, timeframe="1d")
    assert len(data.series["SPY"]) == 10 and data.series["SPY"].ts[0] == _epoch("2024-01-01T00:00:00")


# ---------------------------------------------------------------------------------------
# file errors


def test_missing_columns_name_file_and_columns(tmp_path) -> None:
    path = tmp_path / "thin.csv"
    _first50().drop(columns=["close", "volume"]).to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        read_ohlcv_file(path)
    assert str(info.value).startswith(f"{path}: missing required column(s): close, volume")


@pytest.mark.parametrize("name, payload", [
    ("BTC-USD.csv.gz", b"this is not gzip data at all"),
    ("BTC-USD.parquet", b"PAR1 not really parquet"),
    ("BTC-USD.csv", b""),
])
def test_unreadable_files_raise_data_error_naming_file(tmp_path, name, payload) -> None:
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(DataError) as info:
        load_market_data(["BTC-USD"], path)
    assert str(info.value).startswith(f"{path}: cannot read file (")
    assert "\n" not in str(info.value)


def test_truncated_gzip_is_reported(tmp_path) -> None:
    whole = bundled_path("BTC-USD").read_bytes()
    path = tmp_path / "BTC-USD.csv.gz"
    path.write_bytes(whole[:20000])                  # cut mid-stream
    assert len(whole) > 20000
    with pytest.raises(DataError, match=r"cannot read file"):
        read_ohlcv_file(path)


def test_missing_file_and_unsupported_type(tmp_path) -> None:
    with pytest.raises(DataError, match="no such file or directory"):
        load_market_data(["BTC-USD"], tmp_path / "nope.csv")
    with pytest.raises(DataError, match="file not found"):
        read_ohlcv_file(tmp_path / "nope.csv")
    odd = tmp_path / "BTC-USD.xlsx"
    odd.write_bytes(b"x")
    with pytest.raises(DataError, match="unsupported file type"):
        read_ohlcv_file(odd)


def test_blank_lines(first50_lines, write_lines) -> None:
    trailing = write_lines(first50_lines + ["", ""], "trailing.csv")
    assert len(read_ohlcv_file(trailing)) == 50
    middle = write_lines(first50_lines[:11] + [""] + first50_lines[11:], "middle.csv")
    with pytest.raises(DataError, match=r"middle.csv row 11 field 'timestamp': missing timestamp"):
        load_market_data(["BTC-USD"], middle)


def test_skip_bad_rows_in_loader_degrades_and_warns(corrupt) -> None:
    path = corrupt({(12, "high"): "1.0", (30, "volume"): "-2"})
    with pytest.raises(DataError, match="row 12 field 'high'"):
        load_market_data(["BTC-USD"], path)
    data = load_market_data(["BTC-USD"], path, skip_bad_rows=True)
    q = data.quality["BTC-USD"]
    assert q.status == "degraded" and q.rows_skipped == 2 and q.rows == 48
    assert len(data.series["BTC-USD"]) == 48
    assert any(w.startswith("BTC-USD: skipped 2 bad row(s)") and "row 12 field 'high'" in w
               for w in data.warnings)


def test_single_bar_cannot_infer_timeframe(first50_lines, write_lines) -> None:
    path = write_lines(first50_lines[:2], "BTC-USD.csv")
    with pytest.raises(DataError, match="only one bar"):
        load_market_data(["BTC-USD"], path)


# ---------------------------------------------------------------------------------------
# directories


@pytest.mark.parametrize("name", ["BTC-USD.csv", "BTC-USD.csv.gz", "BTC-USD.parquet",
                                  "BTC_USD_hourly.csv", "btc_usd.csv",
                                  "coinbase_spot_BTC-USD_1h.csv.gz"])
def test_directory_lookup_by_name(tmp_path, name) -> None:
    df = _first50()
    target = tmp_path / name
    if name.endswith(".parquet"):
        df.to_parquet(target, index=False)
    else:
        df.to_csv(target, index=False)               # pandas gzips by extension
    (tmp_path / "BTC-USDT.csv").write_text("not even read")   # longer symbol: not a match
    (tmp_path / "notes.txt.bak").write_text("ignored")
    data = load_market_data(["BTC-USD"], tmp_path)
    assert len(data.series["BTC-USD"]) == 50
    assert data.series["BTC-USD"].source == str(target)


def test_directory_missing_symbol_says_what_was_looked_for(tmp_path) -> None:
    (tmp_path / "BTC-USDT.csv").write_text("x")
    (tmp_path / "XBTC-USD.csv").write_text("x")
    with pytest.raises(DataError) as info:
        load_market_data(["BTC-USD"], tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path}: no data file for BTC-USD")
    assert "BTC-USD or BTC_USD" in message


def test_directory_ambiguous_files_are_listed(tmp_path) -> None:
    _first50().to_csv(tmp_path / "BTC-USD.csv", index=False)
    _first50().to_csv(tmp_path / "BTC_USD_old.csv", index=False)
    with pytest.raises(DataError) as info:
        load_market_data(["BTC-USD"], tmp_path)
    assert "ambiguous" in str(info.value)
    assert "BTC-USD.csv" in str(info.value) and "BTC_USD_old.csv" in str(info.value)


def test_directory_ambiguity_resolved_by_timeframe_in_name(tmp_path, first50_path) -> None:
    shutil.copy(first50_path, tmp_path / "coinbase_spot_BTC-USD_1h.csv")
    (tmp_path / "coinbase_spot_BTC-USD_15m.csv").write_text("never read")
    data = load_market_data(["BTC-USD"], tmp_path, timeframe="1h")
    assert data.series["BTC-USD"].source.endswith("coinbase_spot_BTC-USD_1h.csv")


def test_directory_default_symbols_are_the_bundled_ones(tmp_path) -> None:
    for symbol in BUNDLED:
        shutil.copy(bundled_path(symbol), tmp_path / f"{symbol}.csv.gz")
    data = load_market_data(None, tmp_path, timeframe="1d", start="2025-06-01", end="2025-06-08")
    assert list(data.series) == BUNDLED
    assert all(len(s) == 7 and s.timeframe == "1d" for s in data.series.values())


# ---------------------------------------------------------------------------------------
# instruments


def test_unknown_symbol_gets_inferred_instrument_and_warning(tmp_path) -> None:
    df = _first50()
    for col in ("open", "high", "low", "close"):
        df[col] = (df[col] / 400_000).round(5)          # a DOGE-like price with 5 decimals
    df.to_csv(tmp_path / "DOGE-USD.csv", index=False)
    data = load_market_data(["DOGE-USD"], tmp_path)
    inst = data.instruments["DOGE-USD"]
    assert inst.source == "inferred from data"
    assert inst.price_increment == Decimal("0.00001") and inst.quantity_increment == Decimal("1E-8")
    assert (inst.base, inst.quote) == ("DOGE", "USD")
    assert len(data.warnings) == 1
    warning = data.warnings[0]
    assert warning.startswith("DOGE-USD: no known instrument spec")
    assert "price increment 0.00001" in warning and "quantity increment 0.00000001" in warning
    assert isinstance(data.series["DOGE-USD"], BarSeries)
