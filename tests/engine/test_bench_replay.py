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
