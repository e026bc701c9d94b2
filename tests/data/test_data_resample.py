"""Resampling: hand-checked buckets from real rows, alignment, partial buckets, properties."""

from __future__ import annotations

import csv
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradewarden.data import (bundled_path, read_ohlcv_file, resample, timeframe_label,
                              timeframe_seconds, validate_frame)
from tradewarden.domain import BarSeries

H, D = 3600, 86400


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())


def _series(path, symbol: str = "BTC-USD") -> BarSeries:
    clean, _ = validate_frame(read_ohlcv_file(path), str(path), H)
    return BarSeries(symbol, "1h", clean["ts"].to_numpy().copy(),
                     *(clean[k].to_numpy().copy() for k in ("open", "high", "low", "close", "volume")),
                     source=str(path))


@pytest.mark.parametrize("label, seconds", [("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3600),
                                            ("4h", 14400), ("1d", 86400), ("30s", 30),
                                            ("90min", 5400), (" 2h ", 7200)])
def test_timeframe_seconds_parses_labels(label, seconds) -> None:
    assert timeframe_seconds(label) == seconds


@pytest.mark.parametrize("label", ["", "h", "0h", "1H", "1M", "1w", "-1h", "1.5h", "4 hours", None, 3600])
def test_timeframe_seconds_rejects_bad_labels(label) -> None:
    with pytest.raises(ValueError, match="invalid timeframe"):
        timeframe_seconds(label)


def test_timeframe_label_is_canonical() -> None:
    assert [timeframe_label(s) for s in (60, 900, 3600, 14400, 86400, 5400, 90)] == \
        ["1m", "15m", "1h", "4h", "1d", "90m", "90s"]
    with pytest.raises(ValueError):
        timeframe_label(0)


def test_4h_bucket_matches_hand_computed_values(first50_path) -> None:
    bars = resample(_series(first50_path), "4h")
    i = int(np.flatnonzero(bars.ts == _epoch("2024-04-18T20:00:00"))[0])
    # Source rows 4-7 (2024-04-18T20:00..23:00Z) of coinbase_spot_BTC-USD_1h:
    # open 63552.66 | highs 63686.62 63863.6 63692.96 63707.15 | lows 63300.01 63340.51 63200.0
    # 63415.29 | last close 63513.85 | volumes 558.14347755 426.48337221 348.53911953 221.55145912
    assert bars.open[i] == 63552.66
    assert bars.high[i] == 63863.6
    assert bars.low[i] == 63200.0
    assert bars.close[i] == 63513.85
    assert bars.volume[i] == pytest.approx(1554.71742841, abs=1e-9)
    assert bars.timeframe == "4h" and bars.symbol == "BTC-USD"


def test_4h_buckets_are_epoch_aligned_and_partial_last_dropped(first50_path) -> None:
    src = _series(first50_path)                      # 2024-04-18T17:00 .. 2024-04-20T18:00
    bars = resample(src, "4h")
    assert np.all(bars.ts % (4 * H) == 0)
    # The first bucket (16:00) starts before the data and keeps the 3 bars it has.
    assert bars.ts[0] == _epoch("2024-04-18T16:00:00") and bars.open[0] == src.open[0]
    assert bars.volume[0] == pytest.approx(src.volume[:3].sum())
    # 2024-04-20T16:00 bucket would need 16:00-19:00 but the data ends with the 18:00 bar.
    assert bars.ts[-1] == _epoch("2024-04-20T12:00:00") and len(bars) == 12

    kept = resample(src, "4h", drop_partial_last=False)
    assert len(kept) == 13 and kept.ts[-1] == _epoch("2024-04-20T16:00:00")
    assert kept.open[-1] == src.open[-3] and kept.close[-1] == src.close[-1]
    np.testing.assert_array_equal(kept.ts[:-1], bars.ts)


def test_complete_last_bucket_is_kept(first50_path) -> None:
    src = _series(first50_path).slice(0, 47)         # ends with the 15:00 bar: 12:00 bucket full
    bars = resample(src, "4h")
    assert bars.ts[-1] == _epoch("2024-04-20T12:00:00")
    assert bars.close[-1] == src.close[-1]


def test_1d_bucket_matches_rows_read_with_csv_module(first50_path) -> None:
    with open(first50_path, newline="") as fh:
        day = [r for r in csv.DictReader(fh) if r["timestamp"].startswith("2024-04-19")]
    assert len(day) == 24
    bars = resample(_series(first50_path), "1d")
    # 04-18 (data from 17:00) kept, 04-19 complete, 04-20 incomplete and dropped.
    assert bars.ts.tolist() == [_epoch("2024-04-18T00:00:00"), _epoch("2024-04-19T00:00:00")]
    assert bars.open[1] == float(day[0]["open"])
    assert bars.high[1] == max(float(r["high"]) for r in day)
    assert bars.low[1] == min(float(r["low"]) for r in day)
    assert bars.close[1] == float(day[-1]["close"])
    assert bars.volume[1] == pytest.approx(sum(float(r["volume"]) for r in day), rel=1e-12)


def test_gap_inside_bucket_aggregates_existing_bars(gap_path) -> None:
    src = _series(gap_path)                          # no bars 2025-10-25T16:00..20:00
    bars = resample(src, "4h")
    assert _epoch("2025-10-25T16:00:00") not in bars.ts   # an empty bucket yields no bar
    i = int(np.flatnonzero(bars.ts == _epoch("2025-10-25T20:00:00"))[0])
    members = (src.ts >= _epoch("2025-10-25T20:00:00")) & (src.ts < _epoch("2025-10-26T00:00:00"))
    assert members.sum() == 3                        # 21:00, 22:00, 23:00
    assert bars.open[i] == 111460.39                 # the 21:00 open (20:00 is missing)
    assert bars.high[i] == src.high[members].max() and bars.low[i] == src.low[members].min()
    assert bars.volume[i] == pytest.approx(src.volume[members].sum())


@pytest.mark.parametrize("target, rule", [("4h", "4h"), ("1d", "24h")])
def test_full_bundled_series_matches_pandas_resample(target, rule) -> None:
    src = _series(bundled_path("BTC-USD"))
    ours = resample(src, target)
    frame = pd.DataFrame({"open": src.open, "high": src.high, "low": src.low, "close": src.close,
                          "volume": src.volume},
                         index=pd.to_datetime(src.ts, unit="s", utc=True))
    ref = frame.resample(rule, origin="epoch", label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    ref = ref[frame["open"].resample(rule, origin="epoch").count() > 0]   # no empty buckets
    ref = ref.iloc[:-1]                             # the data ends 16:00 UTC: last bucket partial
    np.testing.assert_array_equal(ours.ts, ref.index.as_unit("s").asi8)
    for name in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(ours, name), ref[name].to_numpy())
    np.testing.assert_allclose(ours.volume, ref["volume"].to_numpy(), rtol=1e-12)


def test_same_timeframe_returns_an_equal_copy(first50_path) -> None:
    src = _series(first50_path)
    same = resample(src, "60m")
    assert same.timeframe == "1h" and len(same) == len(src)
    np.testing.assert_array_equal(same.close, src.close)
    assert not np.shares_memory(same.close, src.close)


@pytest.mark.parametrize("target, why", [("15m", "finer"), ("90m", "multiple"), ("150m", "multiple")])
def test_refuses_finer_or_non_multiple_timeframes(first50_path, target, why) -> None:
    with pytest.raises(ValueError, match=why):
        resample(_series(first50_path), target)


def test_refuses_unsorted_or_misaligned_source(first50_path) -> None:
    src = _series(first50_path)
    shuffled = BarSeries("X", "1h", src.ts[::-1].copy(), src.open, src.high, src.low, src.close,
                         src.volume)
    with pytest.raises(ValueError, match="strictly increasing"):
        resample(shuffled, "4h")
    shifted = BarSeries("X", "1h", src.ts + 1800, src.open, src.high, src.low, src.close, src.volume)
    with pytest.raises(ValueError, match="not aligned"):
        resample(shifted, "4h")


def test_output_arrays_are_contiguous_typed_and_owned(first50_path) -> None:
    src = _series(first50_path)
    bars = resample(src, "4h")
    for name in ("ts", "open", "high", "low", "close", "volume"):
        arr = getattr(bars, name)
        assert arr.flags["C_CONTIGUOUS"] and arr.flags["OWNDATA"]
        assert arr.dtype == (np.int64 if name == "ts" else np.float64)
    assert bars.source == src.source


def test_empty_series_resamples_to_empty() -> None:
    empty = BarSeries("X", "1h", np.zeros(0, np.int64), *(np.zeros(0) for _ in range(5)))
    out = resample(empty, "1d")
    assert len(out) == 0 and out.timeframe == "1d"


# ---------------------------------------------------------------------------------------
# property: any gappy hourly series, any multiple target


@st.composite
def hourly_series(draw):
    day0 = draw(st.integers(19_000, 20_000)) * D     # some UTC midnight in 2022-2024
    offsets = sorted(draw(st.sets(st.integers(0, 24 * 6), min_size=1, max_size=120)))
    n = len(offsets)
    ts = day0 + np.array(offsets, dtype=np.int64) * H
    floats = st.floats(1.0, 1000.0, allow_nan=False, allow_infinity=False)
    a = np.array(draw(st.lists(floats, min_size=n, max_size=n)))
    b = np.array(draw(st.lists(floats, min_size=n, max_size=n)))
    spread = np.array(draw(st.lists(st.floats(0.0, 50.0), min_size=n, max_size=n)))
    volume = np.array(draw(st.lists(st.floats(0.0, 1e6), min_size=n, max_size=n)))
    high = np.maximum(a, b) + spread
    low = np.minimum(a, b) - np.minimum(spread, np.minimum(a, b) / 2)
    return BarSeries("P-USD", "1h", ts, a, high, low, b, volume)


@settings(max_examples=150, deadline=None)
@given(src=hourly_series(), target=st.sampled_from(["2h", "3h", "4h", "6h", "12h", "1d"]),
       drop=st.booleans())
def test_resample_properties(src, target, drop) -> None:
    size = timeframe_seconds(target)
    out = resample(src, target, drop_partial_last=drop)
    assert np.all(out.ts % size == 0) and np.all(np.diff(out.ts) > 0)
    bucket_of_source = src.ts - src.ts % size
    for i, start in enumerate(out.ts):
        members = bucket_of_source == start
        assert members.any()
        assert out.open[i] == src.open[members][0] and out.close[i] == src.close[members][-1]
        assert np.all(out.high[i] >= src.high[members]) and out.high[i] == src.high[members].max()
        assert np.all(out.low[i] <= src.low[members]) and out.low[i] == src.low[members].min()
        assert out.high[i] >= max(out.open[i], out.close[i]) >= min(out.open[i], out.close[i]) >= out.low[i]
    # Volume is conserved over the buckets that were emitted.
    emitted = np.isin(bucket_of_source, out.ts)
    assert out.volume.sum() == pytest.approx(src.volume[emitted].sum(), rel=1e-9, abs=1e-6)
    # Every source bar is in an emitted bucket, except those of a dropped incomplete last bucket.
    last_end = src.ts[-1] + H
    if drop:
        assert len(out) == 0 or out.ts[-1] + size <= last_end
        assert np.all(emitted | (bucket_of_source == bucket_of_source[-1]))
        if bucket_of_source[-1] + size > last_end:
            assert not emitted[-1]
    else:
        assert emitted.all()
