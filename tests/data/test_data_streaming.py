"""Streamed loading: block-by-block validation agrees with the whole-frame validator, and
the checks added with it (epoch units, negative epochs, price range, own bar length)."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tradewarden.data.loaders as loaders
from tradewarden.data import (DataError, bundled_path, load_market_data, read_ohlcv_file,
                              validate_frame)
from tradewarden.data.quality import PRICE_MAX, PRICE_MIN, BlockValidator

H = 3600
FIRST_TS = 1713459600                            # 2024-04-18T17:00:00Z


@pytest.fixture
def small_blocks(monkeypatch) -> None:
    """Blocks of about ten CSV lines and Parquet batches of 7 rows, so that the 50-row
    fixtures cross many block boundaries."""
    monkeypatch.setattr(loaders, "_CSV_BLOCK_BYTES", 700)
    monkeypatch.setattr(loaders, "_PARQUET_BATCH_ROWS", 7)


def _whole_file(path: Path, skip: bool, symbol: str | None = None):
    """The reference: the whole file in one pandas frame, validated at once."""
    try:
        clean, q = validate_frame(read_ohlcv_file(path, symbol), str(path), None, skip,
                                  symbol=symbol or "BTC-USD")
        return ("ok", clean["ts"].tolist(), clean["close"].tolist(), clean["volume"].tolist(),
                q.rows_skipped, q.skipped_details, q.gaps)
    except DataError as exc:
        return ("error", str(exc))


def _streamed(path: Path, skip: bool, symbol: str = "BTC-USD"):
    try:
        data = load_market_data([symbol], path, timeframe=None, skip_bad_rows=skip)
        bars, q = data.series[symbol], data.quality[symbol]
        return ("ok", bars.ts.tolist(), bars.close.tolist(), bars.volume.tolist(),
                q.rows_skipped, q.skipped_details, q.gaps)
    except DataError as exc:
        return ("error", str(exc))


def test_streamed_csv_agrees_with_whole_frame_across_block_boundaries(
        small_blocks, first50_lines, write_lines) -> None:
    rng = random.Random(11)
    bad_values = ["NaN", "", "abc", "-3", "0", "inf", "1e13", " 7", "NAN"]
    compared = errors = 0
    for trial in range(40):
        lines = list(first50_lines)
        for _ in range(rng.randint(0, 3)):
            r, c = rng.randint(1, 50), rng.randint(0, 5)
            cells = lines[r].split(",")
            cells[c] = (rng.choice(["", "yesterday", "2024-04-19T00:00:00.250Z",
                                    lines[rng.randint(1, 50)].split(",")[0]])
                        if c == 0 else rng.choice(bad_values))
            lines[r] = ",".join(cells)
        for _ in range(rng.randint(0, 2)):               # blank lines inside the data
            lines.insert(rng.randint(2, len(lines)), "")
        lines += [""] * rng.randint(0, 3)                # and after it
        path = write_lines(lines, f"t{trial % 3}.csv")
        for skip in (False, True):
            expected, got = _whole_file(path, skip), _streamed(path, skip)
            if expected[0] == "ok" and len(expected[1]) < 2:
                continue                                  # the loader also needs two bars
            assert got == expected, (trial, skip)
            compared += 1
            errors += got[0] == "error"
    assert compared > 60 and 10 < errors < compared - 10  # both outcomes were exercised


def _long_frame() -> pd.DataFrame:
    btc = pd.read_csv(Path(__file__).parent / "fixtures" / "btc_usd_1h_first50.csv")
    eth = pd.read_csv(bundled_path("ETH-USD"), nrows=50)
    long = pd.concat([btc.assign(symbol="BTC-USD"), eth.assign(symbol="eth_usd")])
    return long.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_symbol_column_file_streamed_in_blocks(small_blocks, tmp_path, kind) -> None:
    long = _long_frame().astype({"close": object})
    eth_rows = np.flatnonzero(long["symbol"].to_numpy() == "eth_usd")
    long.loc[eth_rows[20], "close"] = "-1"                # one bad ETH row, file row 42
    path = tmp_path / f"long.{kind}"
    if kind == "csv":
        long.to_csv(path, index=False)
    else:
        long.astype({"close": str}).to_parquet(path, index=False)
    both = load_market_data(None, path, timeframe=None, skip_bad_rows=True)
    assert list(both.series) == ["BTC-USD", "ETH-USD"]
    assert len(both.series["BTC-USD"]) == 50 and len(both.series["ETH-USD"]) == 49
    assert both.quality["ETH-USD"].skipped_details == [
        f"row {eth_rows[20] + 1} field 'close': non-positive price -1.0"]
    expected = _whole_file(path, True, "ETH-USD")
    assert both.series["ETH-USD"].ts.tolist() == expected[1]
    # Raise mode: the error of the first requested symbol that has one, as if the
    # symbols were loaded one after another.
    with pytest.raises(DataError) as info:
        load_market_data(["BTC-USD", "ETH-USD"], path, timeframe=None)
    assert (info.value.row, info.value.field) == (eth_rows[20] + 1, "close")
    assert len(load_market_data(["btc_usd"], path, timeframe=None).series["BTC-USD"]) == 50
    with pytest.raises(DataError, match=r"no rows for symbol 'SOL-USD'; symbols in file: "
                                        r"BTC-USD, ETH-USD"):
        load_market_data(["BTC-USD", "SOL-USD"], path, timeframe=None)


def test_blank_symbol_is_reported_with_its_row(small_blocks, tmp_path) -> None:
    long = _long_frame()
    long.loc[37, "symbol"] = " "
    path = tmp_path / "long.csv"
    long.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"long.csv row 38 field 'symbol': missing symbol"):
        load_market_data(["BTC-USD"], path)


def test_parquet_batches_agree_with_one_frame(small_blocks, tmp_path, first50_path) -> None:
    df = pd.read_csv(first50_path)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    path = tmp_path / "BTC-USD.parquet"
    df.to_parquet(path, index=False)
    streamed = load_market_data(["BTC-USD"], path).series["BTC-USD"]
    csv = load_market_data(["BTC-USD"], first50_path).series["BTC-USD"]
    for name in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(csv, name))
    df.loc[33, "timestamp"] = df.loc[20, "timestamp"]      # out of order in a later batch
    df.to_parquet(path, index=False)
    with pytest.raises(DataError, match=r"row 34 field 'timestamp': timestamp "
                                        r"2024-04-19T13:00:00Z is earlier than row 33's"):
        load_market_data(["BTC-USD"], path)


def test_malformed_line_names_its_row(first50_lines, write_lines) -> None:
    lines = list(first50_lines)
    lines[23] += ",extra"
    path = write_lines(lines)
    with pytest.raises(DataError) as info:
        load_market_data(["BTC-USD"], path)
    assert str(info.value) == f"{path} row 23: 7 fields where the header has 6"


def test_streamed_columns_are_owned_and_contiguous(small_blocks, first50_path) -> None:
    bars = load_market_data(["BTC-USD"], first50_path).series["BTC-USD"]
    for name in ("ts", "open", "high", "low", "close", "volume"):
        arr = getattr(bars, name)
        assert arr.flags["C_CONTIGUOUS"] and arr.flags["OWNDATA"] and arr.shape == (50,)


def test_validator_grows_past_its_capacity_hint(first50_path) -> None:
    frame = read_ohlcv_file(first50_path)
    v = BlockValidator(str(first50_path), "BTC-USD", capacity=3)
    for lo in range(0, 50, 4):                      # 13 blocks of up to 4 rows
        part = frame.iloc[lo:lo + 4]
        v.feed({c: part[c] for c in part.columns}, part.index.to_numpy())
    cols, q = v.finish()
    clean, ref = validate_frame(frame, str(first50_path), None)
    np.testing.assert_array_equal(cols["ts"], clean["ts"].to_numpy())
    np.testing.assert_array_equal(cols["close"], clean["close"].to_numpy())
    assert q.rows == ref.rows == 50 and cols["ts"].shape == (50,)


# ---------------------------------------------------------------------------------------
# epoch numbers


def _epoch_file(tmp_path: Path, first50_path: Path, ts: np.ndarray) -> Path:
    df = pd.read_csv(first50_path)
    df["timestamp"] = ts
    path = tmp_path / "btc_epoch.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("streamed", [True, False], ids=["load_market_data", "validate_frame"])
def test_seconds_column_with_a_millisecond_value_is_named(tmp_path, first50_path, streamed) -> None:
    ts = FIRST_TS + np.arange(50, dtype=np.int64) * H
    ts[9] *= 1000
    path = _epoch_file(tmp_path, first50_path, ts)
    with pytest.raises(DataError) as info:
        if streamed:
            load_market_data(["BTC-USD"], path)
        else:
            validate_frame(read_ohlcv_file(path), str(path), H)
    assert str(info.value) == (f"{path} row 10 field 'timestamp': {ts[9]} looks like "
                               "milliseconds while the column is in seconds (median magnitude)")


def test_milliseconds_column_with_a_seconds_value_is_named_and_skippable(
        tmp_path, first50_path) -> None:
    ts = (FIRST_TS + np.arange(50, dtype=np.int64) * H) * 1000
    ts[29] //= 1000
    path = _epoch_file(tmp_path, first50_path, ts)
    with pytest.raises(DataError, match=r"row 30 field 'timestamp': 1713564000 looks like "
                                        r"seconds while the column is in milliseconds"):
        load_market_data(["BTC-USD"], path)
    data = load_market_data(["BTC-USD"], path, skip_bad_rows=True)
    bars, q = data.series["BTC-USD"], data.quality["BTC-USD"]
    assert q.rows_skipped == 1 and len(bars) == 49 and bars.ts[0] == FIRST_TS
    assert FIRST_TS + 29 * H not in bars.ts.tolist()


def test_negative_epochs_are_rejected_naming_row_and_field(tmp_path, first50_path) -> None:
    ts = FIRST_TS + np.arange(50, dtype=np.int64) * H
    ts[:3] = [-7200, -3600, -1]
    path = _epoch_file(tmp_path, first50_path, ts)
    with pytest.raises(DataError) as info:
        load_market_data(["BTC-USD"], path)
    assert (info.value.row, info.value.field) == (1, "timestamp")
    assert "negative epoch time -7200" in str(info.value)
    data = load_market_data(["BTC-USD"], path, skip_bad_rows=True)
    assert data.quality["BTC-USD"].rows_skipped == 3 and data.series["BTC-USD"].ts[0] == ts[3]


# ---------------------------------------------------------------------------------------
# price range


@pytest.mark.parametrize("text", ["1e308", "1e-300", "2e12", "5e-13"])
def test_prices_outside_the_supported_range_name_row_and_field(corrupt, text) -> None:
    field = "high" if float(text) > 1 else "low"
    path = corrupt({(7, field): text})
    with pytest.raises(DataError) as info:
        load_market_data(["BTC-USD"], path)
    assert (info.value.row, info.value.field) == (7, field)
    assert f"price {float(text)!r} is outside the supported range [1e-12, 1e+12]" in str(info.value)
    data = load_market_data(["BTC-USD"], path, skip_bad_rows=True)
    assert data.quality["BTC-USD"].rows_skipped == 1 and len(data.series["BTC-USD"]) == 49
    assert data.quality["BTC-USD"].status == "degraded"


def test_prices_at_the_range_edges_load_with_a_usable_instrument(tmp_path, first50_path) -> None:
    df = pd.read_csv(first50_path)
    prices = ["open", "high", "low", "close"]
    for name, scale in (("TINY-USD", PRICE_MIN / df["low"].min()),
                        ("HUGE-USD", PRICE_MAX / df["high"].max())):
        edge = df.assign(**{c: df[c] * scale for c in prices})
        edge.to_csv(tmp_path / f"{name}.csv", index=False)
        data = load_market_data([name], tmp_path)
        bars, inst = data.series[name], data.instruments[name]
        low, high = float(bars.low.min()), float(bars.high.max())
        assert PRICE_MIN * (1 - 1e-9) <= low and high <= PRICE_MAX * (1 + 1e-9)
        # Rounding a price and sizing a position worth 1e15 quote units stay exact.
        tick = inst.floor_price(low)
        assert tick > 0 and abs(float(tick) - low) / low < 1e-3
        qty = inst.round_quantity(Decimal("1e15") / Decimal(repr(low)))
        assert qty > 0 and inst.notional(qty, tick) <= Decimal("1e15") * Decimal("1.001")
    assert load_market_data(["TINY-USD"], tmp_path).instruments["TINY-USD"].price_increment \
        == Decimal("1e-15")


# ---------------------------------------------------------------------------------------
# the data's own bar length


def test_timeframe_none_keeps_the_data_bar_length(tmp_path, first50_path) -> None:
    df = pd.read_csv(first50_path)
    df["timestamp"] = FIRST_TS + np.arange(50, dtype=np.int64) * 60      # 1-minute bars
    path = tmp_path / "BTC-USD.csv"
    df.to_csv(path, index=False)
    own = load_market_data(["BTC-USD"], path, timeframe=None)
    assert own.timeframe == "1m" and own.series["BTC-USD"].timeframe == "1m"
    assert len(own.series["BTC-USD"]) == 50
    five = load_market_data(["BTC-USD"], path, timeframe="5m")
    assert five.timeframe == "5m" and len(five.series["BTC-USD"]) == 10
    assert load_market_data(["ETH-USD"], end="2024-04-19", timeframe=None).timeframe == "1h"
    assert load_market_data(["ETH-USD"], end="2024-04-19").timeframe == "1h"


def test_timeframe_none_with_different_bar_lengths_names_them(tmp_path, first50_path) -> None:
    df = pd.read_csv(first50_path)
    df.to_csv(tmp_path / "BTC-USD.csv", index=False)                     # 1h
    df.assign(timestamp=FIRST_TS + np.arange(50, dtype=np.int64) * 900).to_csv(
        tmp_path / "ETH-USD.csv", index=False)                            # 15m
    with pytest.raises(DataError) as info:
        load_market_data(["BTC-USD", "ETH-USD"], tmp_path, timeframe=None)
    assert str(info.value) == (f"{tmp_path}: the symbols' bars have different lengths "
                               "(BTC-USD 1h, ETH-USD 15m); pass a timeframe that is a whole "
                               "multiple of each")
    both = load_market_data(["BTC-USD", "ETH-USD"], tmp_path, timeframe="1h")
    assert both.timeframe == "1h" and len(both.series["ETH-USD"]) == 12
