"""OhlcvCache: merge, conflicts, covered ranges, atomic writes, catalogue."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from fake_exchange_server import HOUR, ts_of

from tradewarden.data import cache as cache_mod
from tradewarden.data.cache import (
    OhlcvCache,
    default_cache_root,
    merge_ranges,
    subtract_ranges,
)
from tradewarden.data.errors import DataError
from tradewarden.data.venues import resolve_symbol

COLS = ["ts", "open", "high", "low", "close", "volume"]
T0 = ts_of("2024-05-01T00:00:00")


def frame(src: dict, i: int, j: int) -> pd.DataFrame:
    """Rows i..j-1 of the real bundled candles."""
    return pd.DataFrame({c: src[c][i:j] for c in COLS})


@pytest.fixture
def rows(btc) -> dict:
    return btc


def start_index(src: dict) -> int:
    return int(np.searchsorted(src["ts"], T0))


def test_write_then_read_round_trips_exactly(cache, rows):
    i = start_index(rows)
    f = frame(rows, i, i + 100)
    result = cache.write("coinbase", "BTC-USD", "1h", f, covered=[(T0, T0 + 100 * HOUR)])
    assert (result.new_rows, result.conflicts, result.duplicates) == (100, 0, 0)
    got = cache.read("coinbase", "BTC-USD", "1h")
    assert list(got.columns) == COLS
    assert got["ts"].dtype == np.int64 and got["close"].dtype == np.float64
    for c in COLS:
        np.testing.assert_array_equal(got[c].to_numpy(), f[c].to_numpy())
    part = cache.read("coinbase", "BTC-USD", "1h", T0 + 10 * HOUR, T0 + 20 * HOUR)
    assert part["ts"].tolist() == [T0 + k * HOUR for k in range(10, 20)]


def test_overlapping_writes_merge_and_identical_rows_are_dropped(cache, rows):
    i = start_index(rows)
    cache.write("coinbase", "BTC-USD", "1h", frame(rows, i, i + 60), covered=[(T0, T0 + 60 * HOUR)])
    r = cache.write("coinbase", "BTC-USD", "1h", frame(rows, i + 40, i + 100)[::-1],
                    covered=[(T0 + 40 * HOUR, T0 + 100 * HOUR)])
    assert (r.new_rows, r.duplicates, r.conflicts) == (40, 20, 0)
    got = cache.read("coinbase", "BTC-USD", "1h")
    np.testing.assert_array_equal(got["ts"].to_numpy(), rows["ts"][i:i + 100])
    assert cache.metadata("coinbase", "BTC-USD", "1h")["rows"] == 100
    assert cache.covered("coinbase", "BTC-USD", "1h") == [(T0, T0 + 100 * HOUR)]


def test_conflicting_duplicate_keeps_newest_and_is_counted(cache, rows):
    i = start_index(rows)
    cache.write("kraken", "BTC-USD", "1h", frame(rows, i, i + 10), covered=[(T0, T0 + 10 * HOUR)])
    newer = frame(rows, i + 5, i + 7)
    newer.loc[:, "close"] = newer["close"] + 1.5
    newer.loc[:, "high"] = np.maximum(newer["high"], newer["close"])
    r = cache.write("kraken", "BTC-USD", "1h", newer)
    assert (r.conflicts, r.new_rows) == (2, 0)
    got = cache.read("kraken", "BTC-USD", "1h")
    assert len(got) == 10
    np.testing.assert_array_equal(got["close"].to_numpy()[5:7], newer["close"].to_numpy())
    np.testing.assert_array_equal(got["close"].to_numpy()[:5], rows["close"][i:i + 5])
    meta = cache.metadata("kraken", "BTC-USD", "1h")
    assert meta["conflicts"] == 2 and meta["rows"] == 10
    cache.compact("kraken", "BTC-USD", "1h")                   # survives compaction
    np.testing.assert_array_equal(cache.read("kraken", "BTC-USD", "1h")["close"].to_numpy()[5:7],
                                  newer["close"].to_numpy())


def test_empty_answer_is_a_covered_gap_not_a_missing_range(cache):
    cache.write("coinbase", "BTC-USD", "1h", pd.DataFrame(columns=COLS),
                covered=[(T0, T0 + 50 * HOUR)])
    assert cache.missing_ranges("coinbase", "BTC-USD", "1h", T0, T0 + 80 * HOUR) == [
        (T0 + 50 * HOUR, T0 + 80 * HOUR)]
    assert cache.read("coinbase", "BTC-USD", "1h", T0, T0 + 50 * HOUR).empty
    (entry,) = cache.list()
    assert entry.rows == 0 and entry.covered == [(T0, T0 + 50 * HOUR)]


def test_missing_ranges_align_to_the_bar_grid(cache, rows):
    i = start_index(rows)
    cache.write("coinbase", "BTC-USD", "1h", frame(rows, i + 10, i + 20),
                covered=[(T0 + 10 * HOUR, T0 + 20 * HOUR)])
    got = cache.missing_ranges("coinbase", "BTC-USD", "1h", T0 + 1800, T0 + 30 * HOUR - 1)
    assert got == [(T0, T0 + 10 * HOUR), (T0 + 20 * HOUR, T0 + 30 * HOUR)]
    assert cache.missing_ranges("coinbase", "BTC-USD", "1h", T0 + 10 * HOUR, T0 + 20 * HOUR) == []
    with pytest.raises(ValueError):
        cache.missing_ranges("coinbase", "BTC-USD", "1h", T0, T0)


def test_range_helpers():
    assert merge_ranges([(5, 7), (0, 2), (2, 3), (6, 9), (4, 4)]) == [(0, 3), (5, 9)]
    assert subtract_ranges(0, 10, [(2, 3), (5, 12)]) == [(0, 2), (3, 5)]
    assert subtract_ranges(0, 10, []) == [(0, 10)]
    assert subtract_ranges(0, 10, [(-5, 20)]) == []


def test_series_is_a_validated_barseries_and_names_missing_ranges(cache, rows):
    i = start_index(rows)
    cache.write("coinbase", "BTC-USD", "1h", frame(rows, i, i + 48), covered=[(T0, T0 + 48 * HOUR)])
    s = cache.series("coinbase", "BTC-USD", "1h", T0, T0 + 48 * HOUR)
    assert len(s) == 48 and s.timeframe == "1h" and s.source == "cache:coinbase/BTC-USD/1h"
    np.testing.assert_array_equal(s.ts, rows["ts"][i:i + 48])
    np.testing.assert_array_equal(s.volume, rows["volume"][i:i + 48])
    with pytest.raises(DataError, match=r"not cached: \[2024-05-03T00:00:00Z, "
                                        r"2024-05-04T00:00:00Z\)"):
        cache.series("coinbase", "BTC-USD", "1h", T0, T0 + 72 * HOUR)
    partial = cache.series("coinbase", "BTC-USD", "1h", T0, T0 + 72 * HOUR,
                           require_complete=False)
    assert len(partial) == 48
    with pytest.raises(DataError, match="no cached candles"):
        cache.series("coinbase", "ETH-USD", "1h", require_complete=False)


def test_bad_rows_are_refused_and_nothing_is_written(cache, rows):
    i = start_index(rows)
    off_grid = frame(rows, i, i + 3)
    off_grid.loc[1, "ts"] += 60
    with pytest.raises(DataError, match="not aligned to the 1h grid"):
        cache.write("coinbase", "BTC-USD", "1h", off_grid, covered=[(T0, T0 + 3 * HOUR)])
    nan = frame(rows, i, i + 3)
    nan.loc[2, "close"] = np.nan
    with pytest.raises(DataError, match="close"):
        cache.write("coinbase", "BTC-USD", "1h", nan, covered=[(T0, T0 + 3 * HOUR)])
    assert cache.metadata("coinbase", "BTC-USD", "1h") is None
    assert cache.missing_ranges("coinbase", "BTC-USD", "1h", T0, T0 + 3 * HOUR) == [
        (T0, T0 + 3 * HOUR)]


def test_interrupted_data_write_leaves_the_previous_state(cache, rows, monkeypatch):
    i = start_index(rows)
    cache.write("coinbase", "BTC-USD", "1h", frame(rows, i, i + 20), covered=[(T0, T0 + 20 * HOUR)])
    before_meta = cache.metadata("coinbase", "BTC-USD", "1h")
    directory = cache.series_dir("coinbase", "BTC-USD", "1h")
    before_files = sorted(p.name for p in directory.iterdir())

    def boom(src, dst):
        raise KeyboardInterrupt("interrupted during os.replace")

    monkeypatch.setattr(cache_mod.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        cache.write("coinbase", "BTC-USD", "1h", frame(rows, i + 20, i + 40),
                    covered=[(T0 + 20 * HOUR, T0 + 40 * HOUR)])
    monkeypatch.undo()
    assert cache.metadata("coinbase", "BTC-USD", "1h") == before_meta
    assert sorted(p.name for p in directory.iterdir()) == before_files   # temp file removed
    assert len(cache.read("coinbase", "BTC-USD", "1h")) == 20


def test_crash_between_data_and_metadata_never_claims_rows(cache, rows, monkeypatch):
    i = start_index(rows)
    cache.write("coinbase", "BTC-USD", "1h", frame(rows, i, i + 20), covered=[(T0, T0 + 20 * HOUR)])

    def crash(path, data):
        raise OSError("disk full while writing metadata")

    monkeypatch.setattr(cache_mod, "_atomic_write_json", crash)
    with pytest.raises(OSError):
        cache.write("coinbase", "BTC-USD", "1h", frame(rows, i + 20, i + 40),
                    covered=[(T0 + 20 * HOUR, T0 + 40 * HOUR)])
    monkeypatch.undo()
    directory = cache.series_dir("coinbase", "BTC-USD", "1h")
    assert len(list(directory.glob("part-*.parquet"))) == 2          # an orphan part on disk
    assert len(cache.read("coinbase", "BTC-USD", "1h")) == 20        # ...which is not read
    assert cache.missing_ranges("coinbase", "BTC-USD", "1h", T0, T0 + 40 * HOUR) == [
        (T0 + 20 * HOUR, T0 + 40 * HOUR)]
    cache.compact("coinbase", "BTC-USD", "1h")
    assert len(list(directory.glob("part-*.parquet"))) == 1


def test_many_parts_are_compacted_automatically(cache, rows, monkeypatch):
    monkeypatch.setattr(cache_mod, "AUTO_COMPACT_PARTS", 3)
    i = start_index(rows)
    for k in range(5):
        cache.write("binance", "BTC-USDT", "1h", frame(rows, i + 10 * k, i + 10 * k + 10),
                    covered=[(T0 + 10 * k * HOUR, T0 + (10 * k + 10) * HOUR)])
    meta = cache.metadata("binance", "BTC-USDT", "1h")
    assert len(meta["parts"]) <= 3
    directory = cache.series_dir("binance", "BTC-USDT", "1h")
    assert {p.name for p in directory.glob("part-*")} == {p["file"] for p in meta["parts"]}
    np.testing.assert_array_equal(cache.read("binance", "BTC-USDT", "1h")["ts"].to_numpy(),
                                  rows["ts"][i:i + 50])


def test_list_reports_range_rows_gaps_and_zero_volume(cache, rows):
    # the bundled data's real gap: 2025-10-25 15:00 -> 21:00
    lo = ts_of("2025-10-25T00:00:00")
    i = int(np.searchsorted(rows["ts"], lo))
    f = frame(rows, i, i + 30)
    f.loc[3, "volume"] = 0.0
    cache.write("coinbase", "BTC-USD", "1h", f, covered=[(lo, lo + 35 * HOUR)],
                venue_symbol=resolve_symbol("coinbase", "BTC-USD"),
                source={"venue": "coinbase", "ccxt_version": "x", "endpoint": "e", "api": "a"})
    cache.write("kraken", "ETH-USD", "4h", pd.DataFrame(columns=COLS), covered=[(0, 4 * HOUR)])
    entries = cache.list()
    assert [(e.venue, e.symbol, e.timeframe) for e in entries] == [
        ("coinbase", "BTC-USD", "1h"), ("kraken", "ETH-USD", "4h")]
    e = entries[0]
    assert (e.rows, e.gaps, e.missing_bars, e.zero_volume_bars) == (30, 1, 5, 1)
    assert (e.first_ts, e.last_ts) == (int(f["ts"].iloc[0]), int(f["ts"].iloc[-1]))
    assert e.venue_symbol["unified"] == "BTC/USD" and e.source["venue"] == "coinbase"
    d = e.to_dict()
    assert d["first_time"] == "2025-10-25T00:00:00Z" and json.dumps(d)


def test_root_from_argument_environment_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEWARDEN_CACHE", str(tmp_path / "env-root"))
    assert OhlcvCache().root == tmp_path / "env-root"
    assert OhlcvCache(tmp_path / "arg").root == tmp_path / "arg"
    monkeypatch.delenv("TRADEWARDEN_CACHE")
    assert default_cache_root() == __import__("pathlib").Path.home() / ".cache" / "tradewarden"


def test_layout_is_partitioned_by_venue_symbol_timeframe(cache, rows):
    i = start_index(rows)
    cache.write("coinbase", "btc_usd", "60m", frame(rows, i, i + 2), covered=[(T0, T0 + 2 * HOUR)])
    directory = cache.root / "ohlcv" / "coinbase" / "BTC-USD" / "1h"
    assert (directory / "meta.json").is_file()
    assert len(list(directory.glob("part-*.parquet"))) == 1
    assert len(cache.read("coinbase", "BTC-USD", "1h")) == 2


def test_unsafe_names_are_refused(cache):
    with pytest.raises(ValueError):
        cache.series_dir("coinbase", "../../etc", "1h")
    with pytest.raises(ValueError):
        cache.series_dir("..", "BTC-USD", "1h")


def test_corrupt_metadata_is_a_data_error(cache, rows):
    i = start_index(rows)
    cache.write("coinbase", "BTC-USD", "1h", frame(rows, i, i + 2), covered=[(T0, T0 + 2 * HOUR)])
    path = cache.series_dir("coinbase", "BTC-USD", "1h") / "meta.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="unreadable cache metadata"):
        cache.read("coinbase", "BTC-USD", "1h")
    assert os.path.exists(path)
