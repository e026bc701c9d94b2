"""Sharpe and Sortino agree with empyrical-reloaded, the library whose definitions they follow."""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tradewarden.analytics.metrics import ANNUALIZATION, daily_returns
from tradewarden.analytics.ratios import sharpe_ratio, sortino_ratio
from tradewarden.data import load_market_data


def same(ours: float, theirs: float) -> bool:
    if math.isnan(theirs) or math.isinf(theirs):
        return (math.isnan(ours) and math.isnan(theirs)) or ours == theirs
    return ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)


returns = st.lists(st.one_of(st.floats(-0.5, 0.5, allow_nan=False), st.just(0.0), st.just(0.01),
                             st.just(-0.02), st.just(float("nan"))), min_size=0, max_size=60)


@settings(max_examples=400)
@given(returns, st.sampled_from([365, 252, 12]))
@example([], 365)
@example([0.01], 365)
@example([0.01, 0.01, 0.01], 365)          # constant: zero dispersion
@example([0.0, 0.0], 365)
@example([0.01, 0.02, 0.03], 365)          # no losing day: Sortino +inf
@example([float("nan"), 0.01, -0.01], 365)
@example([float("nan"), float("nan"), 0.01], 252)
def test_sharpe_and_sortino_match_empyrical(values, annualization):
    series = pd.Series(values, dtype=float)
    assert same(sharpe_ratio(series, annualization),
                empyrical.sharpe_ratio(series, annualization=annualization))
    assert same(sortino_ratio(series, annualization),
                empyrical.sortino_ratio(series, annualization=annualization))


def test_on_real_daily_returns_of_the_bundled_btc_close():
    bars = load_market_data(["BTC-USD"]).series["BTC-USD"]
    total = pd.Series(bars.close * 0.1 + 10_000.0, index=bars.ts)      # an equity-like curve
    rets = daily_returns(total, 10_000.0)
    assert len(rets) > 700
    ours = (sharpe_ratio(rets, ANNUALIZATION), sortino_ratio(rets, ANNUALIZATION))
    theirs = (empyrical.sharpe_ratio(rets, annualization=ANNUALIZATION),
              empyrical.sortino_ratio(rets, annualization=ANNUALIZATION))
    assert ours == pytest.approx(theirs, rel=1e-12)
    assert all(np.isfinite(ours))
