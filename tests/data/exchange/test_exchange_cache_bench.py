"""Benchmark (run with --benchmark-only): load a cached year of 1m candles for replay."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tradewarden.data import load_market_data
from tradewarden.data.cache import OhlcvCache

YEAR_1M = 525_600


def test_bench_load_a_cached_year_of_1m_candles(benchmark, tmp_path):
    src = load_market_data(["BTC-USD"]).series["BTC-USD"]
    reps = -(-YEAR_1M // len(src))
    t0 = 1_704_067_200                                   # 2024-01-01T00:00:00Z
    # the real 1h bars, laid end to end on a 1-minute grid (each copy continues the last)
    scale = np.cumprod([1.0] + [src.close[-1] / src.open[0]] * (reps - 1))
    frame = pd.DataFrame({
        "ts": t0 + 60 * np.arange(YEAR_1M, dtype=np.int64),
        **{k: np.concatenate([getattr(src, k) * s for s in scale])[:YEAR_1M]
           for k in ("open", "high", "low", "close")},
        "volume": np.tile(src.volume, reps)[:YEAR_1M],
    })
    cache = OhlcvCache(tmp_path)
    cache.write("coinbase", "BTC-USD", "1m", frame, covered=[(t0, t0 + 60 * YEAR_1M)])
    bars = benchmark.pedantic(cache.series, args=("coinbase", "BTC-USD", "1m", t0, t0 + 60 * YEAR_1M),
                              rounds=5, iterations=1)
    assert len(bars) == YEAR_1M
    assert np.array_equal(bars.close, frame["close"].to_numpy())
