"""Real BTC-USD 1h bars (the bundled Coinbase sample) and a fixed sample of bar indices."""

from __future__ import annotations

import numpy as np
import pytest

from tradewarden.data import load_market_data
from tradewarden.domain import BarSeries


@pytest.fixture(scope="session")
def btc() -> BarSeries:
    return load_market_data(["BTC-USD"]).series["BTC-USD"]


def sample_indices(n: int, size: int = 300, seed: int = 20240418) -> np.ndarray:
    """~``size`` bar indices: the first 45 (warm-up edges), four 25-bar windows spread over
    the series, and the rest drawn at random (fixed seed), sorted and unique."""
    rng = np.random.default_rng(seed)
    parts = [np.arange(45)]
    for frac in (0.2, 0.45, 0.7, 0.95):
        start = int(n * frac)
        parts.append(np.arange(start, start + 25))
    fixed = np.unique(np.concatenate(parts))
    rest = rng.choice(np.setdiff1d(np.arange(n), fixed), size=size - len(fixed), replace=False)
    return np.unique(np.concatenate([fixed, rest, [n - 1]]))


@pytest.fixture(scope="session")
def sample_t(btc: BarSeries) -> np.ndarray:
    return sample_indices(len(btc))
