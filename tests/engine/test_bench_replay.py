"""Benchmarks (skipped in the normal run; `pytest --benchmark-only` runs them).

Throughput of the full path over real bars tiled forward; correctness is asserted,
speed is reported by pytest-benchmark, never asserted.
"""

from __future__ import annotations

from tradewarden.bench import measure, tiled_chunks


def test_bench_full_path_200k_bars(benchmark):
    result = benchmark.pedantic(measure, args=(200_000, 3), kwargs={"background": True},
                                rounds=3, iterations=1)
    # one decision per bar, plus one per position liquidated at the end of the data
    assert result["bars"] == 200_001
    assert 0 <= result["decisions_in_ledger"] - result["bars"] <= 3
    assert result["trades"] > 100


def test_tiled_feed_continues_prices_and_time():
    chunks = list(tiled_chunks(60_000, n_symbols=1, chunk=7_000))
    ts = [c["BTC-USD"].ts for c in chunks]
    closes = [c["BTC-USD"].close for c in chunks]
    import numpy as np
    allts = np.concatenate(ts)
    assert len(allts) == 60_000 and (np.diff(allts) == 3600).all()
    allc = np.concatenate(closes)
    opens = np.concatenate([c["BTC-USD"].open for c in chunks])
    # at the tile seam (bar 17,990) the next open continues from the previous close
    assert opens[17_990] == allc[17_989]
    assert (allc > 0).all()


def test_minute_csv_is_valid_ohlcv_the_loader_reads_at_its_own_bar_length(tmp_path):
    from tradewarden.bench import write_minute_csv
    from tradewarden.data import load_market_data
    path = tmp_path / "bars.csv"
    write_minute_csv(path, 2_500, block=1_000)                # blocks join seamlessly
    loaded = load_market_data(["BTC-USD"], path, timeframe=None)
    bars, q = loaded.series["BTC-USD"], loaded.quality["BTC-USD"]
    assert loaded.timeframe == "1m" and len(bars) == 2_500 and q.gaps == 0
    assert bars.ts[0] == 1_577_836_800                       # 2020-01-01T00:00:00Z
    assert abs(bars.open[1_000] / bars.close[999] - 1) < 0.01


def test_file_measurement_reports_each_process_peak_memory(tmp_path):
    from tradewarden.bench import FILE_TARGETS_MB, measure_file
    rows = measure_file(5_000)
    assert [r["step"] for r in rows] == ["replay + JSON report", "report (json)", "report (html)"]
    assert rows[0]["target_mb"] == FILE_TARGETS_MB["replay"] and rows[2]["target_mb"] is None
    assert rows[0]["trades"] > 10
    for r in rows:
        # each process's own peak: more than a bare interpreter, less than the targets
        assert 40 < r["peak_rss_mb"] < 400 and r["seconds"] > 0
