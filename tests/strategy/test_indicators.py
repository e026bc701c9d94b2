"""Indicators on real BTC-USD bars: reference values, warm-up NaNs, ranges, no look-ahead."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tradewarden.strategy import indicators as ind

N_REF = 200   # bars for the loop reference implementations


# ---------------------------------------------------------------------- references (plain loops)
def ref_highest(x, w, exclude_current=True):
    out = [math.nan] * len(x)
    for t in range(len(x)):
        lo, hi = (t - w, t) if exclude_current else (t - w + 1, t + 1)
        if lo >= 0:
            out[t] = max(x[lo:hi])
    return np.array(out)


def ref_lowest(x, w, exclude_current=True):
    return -ref_highest([-v for v in x], w, exclude_current)


def ref_sma(x, w):
    return np.array([math.nan if t < w - 1 else sum(x[t - w + 1:t + 1]) / w for t in range(len(x))])


def ref_ema(x, span):
    a = 2.0 / (span + 1)
    out, e = [], None
    for t, v in enumerate(x):
        e = v if e is None else a * v + (1 - a) * e
        out.append(e if t >= span - 1 else math.nan)
    return np.array(out)


def ref_wilder(x, n):
    out, s = [], None
    for v in x:
        s = v if s is None else s + (v - s) / n
        out.append(s)
    return np.array(out)


def ref_true_range(h, lo, c):
    out = []
    for t in range(len(h)):
        if t == 0:
            out.append(h[0] - lo[0])
        else:
            out.append(max(h[t] - lo[t], abs(h[t] - c[t - 1]), abs(lo[t] - c[t - 1])))
    return np.array(out)


def ref_atr(h, lo, c, n):
    out = ref_wilder(list(ref_true_range(h, lo, c)), n)
    out[:n] = math.nan
    return out


def ref_rsi(c, n):
    gains, losses = [0.0], [0.0]
    for t in range(1, len(c)):
        d = c[t] - c[t - 1]
        gains.append(d if d > 0 else 0.0)
        losses.append(-d if d < 0 else 0.0)
    ag, al = ref_wilder(gains, n), ref_wilder(losses, n)
    out = []
    for t in range(len(c)):
        if t < n:
            out.append(math.nan)
        elif al[t] == 0:
            out.append(50.0 if ag[t] == 0 else 100.0)
        else:
            out.append(100.0 - 100.0 / (1.0 + ag[t] / al[t]))
    return np.array(out)


def ref_volume_ratio(v, w):
    return np.array([math.nan if t < w else v[t] / (sum(v[t - w:t]) / w) for t in range(len(v))])


@pytest.fixture(scope="module")
def head(btc):
    sl = slice(0, N_REF)
    return {k: getattr(btc, k)[sl].tolist() for k in ("open", "high", "low", "close", "volume")}


# ---------------------------------------------------------------------- reference checks
@pytest.mark.parametrize("w", [2, 10, 20, 55])
@pytest.mark.parametrize("exclude", [True, False])
def test_highest_lowest_match_reference(btc, head, w, exclude) -> None:
    np.testing.assert_array_equal(ind.highest(btc.high[:N_REF], w, exclude_current=exclude),
                                  ref_highest(head["high"], w, exclude))
    np.testing.assert_array_equal(ind.lowest(btc.low[:N_REF], w, exclude_current=exclude),
                                  ref_lowest(head["low"], w, exclude))


def test_donchian_channel_on_real_rows(btc) -> None:
    upper, lower = ind.highest(btc.high, 20), ind.lowest(btc.low, 10)
    # Row 21 (index 20) of the file: the previous 20 highs, rows 1..20.
    assert upper[20] == max(btc.high[0:20].tolist())
    assert lower[10] == min(btc.low[0:10].tolist())
    # The 59573.32 low of 2024-04-19T02:00Z (index 9) is the 10-bar channel floor for
    # the next 10 bars, then drops out of the window.
    assert btc.low[9] == 59573.32
    for t in range(10, 20):
        assert lower[t] == 59573.32
    assert lower[20] == min(btc.low[10:20].tolist()) > 59573.32
    for t in (20, 21, 500, 7_777, 12_345, len(btc) - 1):
        assert upper[t] == btc.high[t - 20:t].max()
        assert lower[t] == btc.low[t - 10:t].min()
    assert np.isnan(upper[:20]).all() and np.isnan(lower[:10]).all()


@pytest.mark.parametrize("w", [3, 20])
def test_sma_matches_reference(btc, head, w) -> None:
    np.testing.assert_allclose(ind.sma(btc.close[:N_REF], w), ref_sma(head["close"], w),
                               rtol=1e-12, equal_nan=True)
    assert np.isnan(ind.sma(btc.close[:N_REF], w)[: w - 1]).all()


@pytest.mark.parametrize("span", [2, 9, 21])
def test_ema_matches_reference(btc, head, span) -> None:
    got = ind.ema(btc.close[:N_REF], span)
    np.testing.assert_allclose(got, ref_ema(head["close"], span), rtol=1e-12, equal_nan=True)
    assert np.isnan(got[: span - 1]).all() and not np.isnan(got[span - 1:]).any()


def test_wilder_and_true_range_match_reference(btc, head) -> None:
    np.testing.assert_allclose(ind.wilder(btc.close[:N_REF], 14), ref_wilder(head["close"], 14),
                               rtol=1e-12)
    tr = ind.true_range(btc.high[:N_REF], btc.low[:N_REF], btc.close[:N_REF])
    np.testing.assert_allclose(tr, ref_true_range(head["high"], head["low"], head["close"]),
                               rtol=1e-12)
    # Row 3 of the file (index 2): high - low = 505.47 vs |high - prev close| = 494.80
    assert tr[2] == pytest.approx(63644.22 - 63138.75, abs=1e-9)
    # The first bar has no previous close: high - low.
    assert tr[0] == pytest.approx(63680.24 - 62673.99, abs=1e-9)
    assert (tr >= btc.high[:N_REF] - btc.low[:N_REF] - 1e-9).all()


@pytest.mark.parametrize("n", [5, 14])
def test_atr_matches_reference(btc, head, n) -> None:
    got = ind.atr(btc.high[:N_REF], btc.low[:N_REF], btc.close[:N_REF], n)
    np.testing.assert_allclose(got, ref_atr(head["high"], head["low"], head["close"], n),
                               rtol=1e-12, equal_nan=True)
    assert np.isnan(got[:n]).all() and (got[n:] > 0).all()


@pytest.mark.parametrize("n", [2, 14])
def test_rsi_matches_reference(btc, head, n) -> None:
    got = ind.rsi(btc.close[:N_REF], n)
    np.testing.assert_allclose(got, ref_rsi(head["close"], n), rtol=1e-12, equal_nan=True)
    assert np.isnan(got[:n]).all() and not np.isnan(got[n:]).any()


def test_rsi_is_within_0_100_on_the_whole_series(btc) -> None:
    r = ind.rsi(btc.close, 14)
    valid = r[14:]
    assert not np.isnan(valid).any()
    assert (valid >= 0).all() and (valid <= 100).all()
    assert valid.min() < 25 and valid.max() > 75          # it does move on real data


def test_rsi_flat_and_monotonic_edge_cases() -> None:
    flat = np.full(30, 63000.0)
    assert (ind.rsi(flat, 14)[14:] == 50.0).all()
    up = 63000.0 + np.arange(30.0)
    assert (ind.rsi(up, 14)[14:] == 100.0).all()
    down = 63000.0 - np.arange(30.0)
    assert (ind.rsi(down, 14)[14:] == 0.0).all()


@pytest.mark.parametrize("w", [5, 20])
def test_volume_ratio_matches_reference(btc, head, w) -> None:
    got = ind.volume_ratio(btc.volume[:N_REF], w)
    np.testing.assert_allclose(got, ref_volume_ratio(head["volume"], w), rtol=1e-12, equal_nan=True)
    assert np.isnan(got[:w]).all() and not np.isnan(got[w:]).any()


def test_volume_ratio_zero_mean_is_nan_not_inf() -> None:
    v = np.array([0.0] * 5 + [3.0])
    out = ind.volume_ratio(v, 5)
    assert np.isnan(out).all()


# ---------------------------------------------------------------------- no look-ahead
WINDOW = {   # exact equality: each value is a function of a fixed window
    "highest20": lambda b: ind.highest(b.high, 20),
    "lowest10": lambda b: ind.lowest(b.low, 10),
    "highest20_incl": lambda b: ind.highest(b.high, 20, exclude_current=False),
    "sma20": lambda b: ind.sma(b.close, 20),
    "true_range": lambda b: ind.true_range(b.high, b.low, b.close),
    "volume_ratio20": lambda b: ind.volume_ratio(b.volume, 20),
}
RECURSIVE = {   # recursions: equal to rtol 1e-12
    "ema9": lambda b: ind.ema(b.close, 9),
    "ema21": lambda b: ind.ema(b.close, 21),
    "wilder14": lambda b: ind.wilder(b.close, 14),
    "atr14": lambda b: ind.atr(b.high, b.low, b.close, 14),
    "rsi14": lambda b: ind.rsi(b.close, 14),
}


@pytest.mark.parametrize("name", list(WINDOW) + list(RECURSIVE))
def test_no_look_ahead(btc, sample_t, name) -> None:
    """The value at t on the full history equals the value on bars [0..t] only."""
    fn = WINDOW.get(name) or RECURSIVE[name]
    full = fn(btc)
    assert full.shape == (len(btc),) and full.dtype == np.float64
    for t in sample_t.tolist():
        part = fn(btc.slice(0, t + 1))
        assert part.shape == (t + 1,)
        if name in WINDOW:
            np.testing.assert_array_equal(part[t], full[t], err_msg=f"{name} at t={t}")
        else:
            np.testing.assert_allclose(part[t], full[t], rtol=1e-12, equal_nan=True,
                                       err_msg=f"{name} at t={t}")


def test_sample_covers_the_series(btc, sample_t) -> None:
    assert 280 <= len(sample_t) <= 320
    assert sample_t[0] == 0 and sample_t[-1] == len(btc) - 1
    assert np.histogram(sample_t, bins=10, range=(0, len(btc)))[0].min() > 5


def test_indicators_do_not_mutate_inputs(btc) -> None:
    h, lo, c, v = (btc.high[:300].copy(), btc.low[:300].copy(), btc.close[:300].copy(),
                   btc.volume[:300].copy())
    for fn in list(WINDOW.values()) + list(RECURSIVE.values()):
        fn(btc.slice(0, 300))
    assert (h == btc.high[:300]).all() and (lo == btc.low[:300]).all()
    assert (c == btc.close[:300]).all() and (v == btc.volume[:300]).all()
    # ema/sma/wilder return fresh arrays: writing into them does not touch a cache
    e = ind.ema(c, 9)
    e[:] = 0
    assert not (ind.ema(c, 9) == 0).any()
