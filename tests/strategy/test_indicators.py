"""Indicators on real BTC-USD bars: plain-loop references of the TA-Lib definitions,
hand-computed cases, warm-up NaNs, ranges, input handling, and no look-ahead."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tradewarden.strategy import indicators as ind

N_REF = 200   # bars for the loop reference implementations
NAN = math.nan


# ---------------------------------------------------------------------- references (plain loops)
# Each follows the published definition with TA-Lib's seeding: a recursion starts from
# the simple average of its first `period` inputs.
def ref_highest(x, w, exclude_current=True):
    out = [NAN] * len(x)
    for t in range(len(x)):
        lo, hi = (t - w, t) if exclude_current else (t - w + 1, t + 1)
        if lo >= 0:
            out[t] = max(x[lo:hi])
    return np.array(out)


def ref_lowest(x, w, exclude_current=True):
    return -ref_highest([-v for v in x], w, exclude_current)


def ref_sma(x, w):
    return np.array([NAN if t < w - 1 else sum(x[t - w + 1:t + 1]) / w for t in range(len(x))])


def ref_ema_from(x, n, start):
    """EMA of x seeded at index start + n - 1 with mean(x[start:start+n])."""
    a = 2.0 / (n + 1)
    out = [NAN] * len(x)
    e = sum(x[start:start + n]) / n
    out[start + n - 1] = e
    for t in range(start + n, len(x)):
        e = a * x[t] + (1 - a) * e
        out[t] = e
    return out


def ref_ema(x, n):
    return np.array(ref_ema_from(x, n, 0))


def ref_true_range(h, lo, c):
    return np.array([NAN] + [max(h[t] - lo[t], abs(h[t] - c[t - 1]), abs(lo[t] - c[t - 1]))
                             for t in range(1, len(h))])


def ref_wilder_seeded(x, n, first):
    """Wilder average of x (alpha 1/n) seeded at first + n - 1 with mean(x[first:first+n])."""
    out = [NAN] * len(x)
    s = sum(x[first:first + n]) / n
    out[first + n - 1] = s
    for t in range(first + n, len(x)):
        s = (s * (n - 1) + x[t]) / n
        out[t] = s
    return out


def ref_atr(h, lo, c, n):
    return np.array(ref_wilder_seeded(list(ref_true_range(h, lo, c)), n, 1))


def ref_rsi(c, n):
    gains = [NAN] + [max(c[t] - c[t - 1], 0.0) for t in range(1, len(c))]
    losses = [NAN] + [max(c[t - 1] - c[t], 0.0) for t in range(1, len(c))]
    g, lo = ref_wilder_seeded(gains, n, 1), ref_wilder_seeded(losses, n, 1)
    return np.array([NAN if math.isnan(g[t]) else 100.0 * g[t] / (g[t] + lo[t])
                     for t in range(len(c))])


def ref_bollinger(c, n, k):
    up, mid, low = [NAN] * len(c), [NAN] * len(c), [NAN] * len(c)
    for t in range(n - 1, len(c)):
        w = c[t - n + 1:t + 1]
        m = sum(w) / n
        sd = math.sqrt(sum((v - m) ** 2 for v in w) / n)          # population sigma
        up[t], mid[t], low[t] = m + k * sd, m, m - k * sd
    return np.array(up), np.array(mid), np.array(low)


def ref_macd(c, fast, slow, signal):
    slow_e = ref_ema_from(c, slow, 0)
    fast_e = ref_ema_from(c, fast, slow - fast)            # both start at bar slow - 1
    m = [NAN if math.isnan(a) else a - b for a, b in zip(fast_e, slow_e)]
    sig = ref_ema_from(m, signal, slow - 1)
    out_m = [NAN if math.isnan(s) else v for v, s in zip(m, sig)]
    hist = [NAN if math.isnan(s) else v - s for v, s in zip(m, sig)]
    return np.array(out_m), np.array(sig), np.array(hist)


def ref_adx(h, lo, c, n):
    """Wilder's ADX: +DM/-DM and TR Wilder sums (seeded with plain sums of the first n-1),
    DX = 100|+DI - -DI|/(+DI + -DI), ADX the mean of the first n DX then Wilder-smoothed."""
    out = [NAN] * len(c)

    def moves(t):
        up, down = h[t] - h[t - 1], lo[t - 1] - lo[t]
        plus = up if up > down and up > 0 else 0.0
        minus = down if down > up and down > 0 else 0.0
        return plus, minus, max(h[t] - lo[t], abs(h[t] - c[t - 1]), abs(lo[t] - c[t - 1]))

    sp = sm = st = 0.0
    for t in range(1, n):
        p, m, tr = moves(t)
        sp, sm, st = sp + p, sm + m, st + tr
    dxs, adx = [], None
    for t in range(n, len(c)):
        p, m, tr = moves(t)
        sp, sm, st = sp - sp / n + p, sm - sm / n + m, st - st / n + tr
        pdi, mdi = 100 * sp / st, 100 * sm / st
        dx = 100 * abs(pdi - mdi) / (pdi + mdi) if pdi + mdi else 0.0
        if adx is None:
            dxs.append(dx)
            if len(dxs) == n:
                adx = sum(dxs) / n
                out[t] = adx
        else:
            adx = (adx * (n - 1) + dx) / n
            out[t] = adx
    return np.array(out)


def ref_volume_ratio(v, w):
    return np.array([NAN if t < w else v[t] / (sum(v[t - w:t]) / w) for t in range(len(v))])


@pytest.fixture(scope="module")
def head(btc):
    sl = slice(0, N_REF)
    return {k: getattr(btc, k)[sl].tolist() for k in ("open", "high", "low", "close", "volume")}


def close_to(got, want, rtol=1e-10):
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=rtol, equal_nan=True)


# ---------------------------------------------------------------------- reference checks
@pytest.mark.parametrize("w", [1, 2, 10, 20, 55])
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


@pytest.mark.parametrize("w", [1, 3, 20])
def test_sma_matches_reference(btc, head, w) -> None:
    close_to(ind.sma(btc.close[:N_REF], w), ref_sma(head["close"], w), rtol=1e-12)


@pytest.mark.parametrize("n", [2, 9, 21])
def test_ema_matches_reference(btc, head, n) -> None:
    got = ind.ema(btc.close[:N_REF], n)
    close_to(got, ref_ema(head["close"], n), rtol=1e-12)
    assert np.isnan(got[: n - 1]).all() and not np.isnan(got[n - 1:]).any()
    assert got[n - 1] == pytest.approx(btc.close[:n].mean(), rel=1e-15)    # SMA seed


def test_true_range_matches_reference(btc, head) -> None:
    tr = ind.true_range(btc.high[:N_REF], btc.low[:N_REF], btc.close[:N_REF])
    close_to(tr, ref_true_range(head["high"], head["low"], head["close"]), rtol=1e-12)
    # Row 3 of the file (index 2): high - low = 505.47 vs |high - prev close| = 494.80
    assert tr[2] == pytest.approx(63644.22 - 63138.75, abs=1e-9)
    assert np.isnan(tr[0])                   # no previous close
    assert (tr[1:] >= btc.high[1:N_REF] - btc.low[1:N_REF] - 1e-9).all()


@pytest.mark.parametrize("n", [5, 14])
def test_atr_matches_reference(btc, head, n) -> None:
    got = ind.atr(btc.high[:N_REF], btc.low[:N_REF], btc.close[:N_REF], n)
    close_to(got, ref_atr(head["high"], head["low"], head["close"], n))
    assert np.isnan(got[:n]).all() and (got[n:] > 0).all()


@pytest.mark.parametrize("n", [2, 14])
def test_rsi_matches_reference(btc, head, n) -> None:
    got = ind.rsi(btc.close[:N_REF], n)
    close_to(got, ref_rsi(head["close"], n))
    assert np.isnan(got[:n]).all() and not np.isnan(got[n:]).any()


@pytest.mark.parametrize("n, k", [(20, 2.0), (5, 1.5)])
def test_bollinger_matches_reference(btc, head, n, k) -> None:
    for got, want in zip(ind.bollinger(btc.close[:N_REF], n, k), ref_bollinger(head["close"], n, k)):
        close_to(got, want, rtol=1e-9)


@pytest.mark.parametrize("fast, slow, signal", [(12, 26, 9), (5, 13, 4)])
def test_macd_matches_reference(btc, head, fast, slow, signal) -> None:
    got = ind.macd(btc.close[:N_REF], fast, slow, signal)
    want = ref_macd(head["close"], fast, slow, signal)
    for g, w in zip(got, want):
        close_to(g, w, rtol=1e-9)
    assert np.isnan(got[0][: slow + signal - 2]).all() and not np.isnan(got[0][slow + signal - 2:]).any()
    # once the seeds have decayed, macd is the difference of the two plain EMAs
    full = ind.macd(btc.close, fast, slow, signal)[0]
    np.testing.assert_allclose(full[-100:], (ind.ema(btc.close, fast) - ind.ema(btc.close, slow))[-100:],
                               rtol=1e-9)


@pytest.mark.parametrize("n", [5, 14])
def test_adx_matches_reference(btc, head, n) -> None:
    got = ind.adx(btc.high[:N_REF], btc.low[:N_REF], btc.close[:N_REF], n)
    close_to(got, ref_adx(head["high"], head["low"], head["close"], n))
    assert np.isnan(got[: 2 * n - 1]).all() and not np.isnan(got[2 * n - 1:]).any()


@pytest.mark.parametrize("w", [1, 5, 20])
def test_volume_ratio_matches_reference(btc, head, w) -> None:
    got = ind.volume_ratio(btc.volume[:N_REF], w)
    close_to(got, ref_volume_ratio(head["volume"], w), rtol=1e-12)


# ---------------------------------------------------------------------- hand-computed cases
def test_hand_computed_values() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    # SMA 3: (1+2+3)/3, (2+3+4)/3, (3+4+5)/3
    np.testing.assert_allclose(ind.sma(x, 3), [NAN, NAN, 2.0, 3.0, 4.0], equal_nan=True)
    # EMA 3 (alpha 0.5): seed mean(1,2,3) = 2; 0.5*4 + 0.5*2 = 3; 0.5*5 + 0.5*3 = 4
    np.testing.assert_allclose(ind.ema(x, 3), [NAN, NAN, 2.0, 3.0, 4.0], equal_nan=True)
    # RSI 2 on closes 10, 11, 10, 12, 13: changes +1, -1, +2, +1.
    # t=2: G = (1+0)/2 = 0.5, L = (0+1)/2 = 0.5 -> 50
    # t=3: G = (0.5+2)/2 = 1.25, L = (0.5+0)/2 = 0.25 -> 100 - 100/(1+5) = 83.33
    # t=4: G = (1.25+1)/2 = 1.125, L = 0.125 -> 100 - 100/(1+9) = 90
    np.testing.assert_allclose(ind.rsi([10.0, 11.0, 10.0, 12.0, 13.0], 2),
                               [NAN, NAN, 50.0, 100 - 100 / 6, 90.0], rtol=1e-12, equal_nan=True)
    # ATR 2 on (h, l, c) = (10, 8, 9), (11, 9, 10), (12, 9, 11), (11, 10, 10.5):
    # TR1 = max(2, |11-9|, |9-9|) = 2, TR2 = max(3, 2, 1) = 3, TR3 = max(1, 0, 1) = 1;
    # ATR[2] = (2+3)/2 = 2.5, ATR[3] = (2.5*1 + 1)/2 = 1.75
    h, lo, c = [10.0, 11.0, 12.0, 11.0], [8.0, 9.0, 9.0, 10.0], [9.0, 10.0, 11.0, 10.5]
    np.testing.assert_allclose(ind.true_range(h, lo, c), [NAN, 2.0, 3.0, 1.0], equal_nan=True)
    np.testing.assert_allclose(ind.atr(h, lo, c, 2), [NAN, NAN, 2.5, 1.75], equal_nan=True)
    # Bollinger 3, 2 sigma on 1, 2, 3, 4: at t=2 mean 2, population sigma sqrt(2/3)
    up, mid, low = ind.bollinger([1.0, 2.0, 3.0, 4.0], 3, 2.0)
    sd = math.sqrt(2 / 3)
    np.testing.assert_allclose(up, [NAN, NAN, 2 + 2 * sd, 3 + 2 * sd], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(mid, [NAN, NAN, 2.0, 3.0], equal_nan=True)
    np.testing.assert_allclose(low, [NAN, NAN, 2 - 2 * sd, 3 - 2 * sd], rtol=1e-12, equal_nan=True)
    # volume ratio 2: 30 / mean(10, 20) = 2; 0 / mean(20, 30) = 0
    np.testing.assert_allclose(ind.volume_ratio([10.0, 20.0, 30.0, 0.0], 2), [NAN, NAN, 2.0, 0.0],
                               equal_nan=True)
    # crosses
    a = np.array([1.0, 2.0, 3.0, 1.0, 3.0, NAN, 3.0])
    assert ind.cross_above(a, 2.0).tolist() == [False, False, True, False, True, False, False]
    assert ind.cross_below(a, 2.0).tolist() == [False, False, False, True, False, False, False]
    assert ind.cross_above(a, np.full(7, 0.5)).tolist() == [False] * 7


def test_macd_hand_case() -> None:
    # fast 2 (alpha 2/3), slow 3 (alpha 1/2), signal 2 on 1..6: the slow EMA starts at
    # t=2 with mean(1,2,3) = 2, the fast one at t=2 with mean(2,3) = 2.5; both then
    # move by the same recursion: at t=3 slow = 3, fast = 2/3*4 + 1/3*2.5 = 3.5.
    # macd: t=2 0.5, t=3 0.5, ...; a linear series keeps macd at 0.5.
    m, sig, hist = ind.macd(np.arange(1.0, 7.0), 2, 3, 2)
    np.testing.assert_allclose(m, [NAN, NAN, NAN, 0.5, 0.5, 0.5], equal_nan=True, rtol=1e-12)
    np.testing.assert_allclose(sig, [NAN, NAN, NAN, 0.5, 0.5, 0.5], equal_nan=True, rtol=1e-12)
    np.testing.assert_allclose(hist, [NAN, NAN, NAN, 0, 0, 0], equal_nan=True, atol=1e-12)


def test_rsi_is_within_0_100_on_the_whole_series(btc) -> None:
    r = ind.rsi(btc.close, 14)
    valid = r[14:]
    assert not np.isnan(valid).any()
    assert (valid >= 0).all() and (valid <= 100).all()
    assert valid.min() < 25 and valid.max() > 75          # it does move on real data


def test_rsi_flat_and_monotonic_edge_cases() -> None:
    flat = np.full(30, 63000.0)
    assert (ind.rsi(flat, 14)[14:] == 50.0).all()           # 0/0: neutral, not TA-Lib's 0
    up = 63000.0 + np.arange(30.0)
    assert (ind.rsi(up, 14)[14:] == 100.0).all()
    down = 63000.0 - np.arange(30.0)
    assert (ind.rsi(down, 14)[14:] == 0.0).all()
    # flat first, then a drop: the neutral value holds only while nothing has moved
    mixed = np.r_[np.full(20, 100.0), np.full(10, 99.0)]
    r = ind.rsi(mixed, 14)
    assert (r[14:20] == 50.0).all() and (r[20:] == 0.0).all()


def test_rsi_and_adx_work_at_tiny_prices(btc) -> None:
    """Scale-free indicators give the same values on a 1e-8 quote price (no zero threshold)."""
    k = 1e-12
    np.testing.assert_allclose(ind.rsi(btc.close[:N_REF] * k, 14), ind.rsi(btc.close[:N_REF], 14),
                               rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(ind.adx(btc.high[:N_REF] * k, btc.low[:N_REF] * k, btc.close[:N_REF] * k),
                               ind.adx(btc.high[:N_REF], btc.low[:N_REF], btc.close[:N_REF]),
                               rtol=1e-9, equal_nan=True)


def test_regime_labels_follow_adx(btc) -> None:
    a = ind.adx(btc.high, btc.low, btc.close, 14)
    r = ind.regime(btc.high, btc.low, btc.close, 14, 25.0)
    assert np.isnan(r[:27]).all() and not np.isnan(r[27:]).any()
    np.testing.assert_array_equal(r[27:], np.where(a[27:] >= 25.0, ind.TREND, ind.RANGE))
    share = float(np.mean(r[27:] == ind.TREND))
    assert 0.2 < share < 0.8                                  # both regimes occur on real data
    assert np.mean(ind.regime(btc.high, btc.low, btc.close, 14, 20.0)[27:] == ind.TREND) > share


def test_volume_ratio_zero_mean_is_nan_not_inf() -> None:
    v = np.array([0.0] * 5 + [3.0])
    out = ind.volume_ratio(v, 5)
    assert np.isnan(out).all()


def test_inputs_may_be_series_lists_or_strided_and_are_not_mutated(btc) -> None:
    c = btc.close[:300].copy()
    s = pd.Series(c, index=pd.date_range("2024-01-01", periods=300, freq="h", tz="UTC"))
    for got in (ind.ema(s, 9), ind.ema(c.tolist(), 9), ind.ema(np.repeat(c, 2)[::2], 9)):
        assert type(got) is np.ndarray and got.dtype == np.float64
        np.testing.assert_array_equal(got, ind.ema(c, 9))
    assert (c == btc.close[:300]).all()
    e = ind.ema(c, 9)
    e[:] = 0
    assert not (ind.ema(c, 9) == 0).any()           # a fresh array each call


@pytest.mark.parametrize("call, message", [
    (lambda x: ind.sma(x, 0), "period must be an integer >= 1, got 0"),
    (lambda x: ind.ema(x, 1), "period must be an integer >= 2, got 1"),
    (lambda x: ind.rsi(x, 2.5), "period must be an integer >= 2, got 2.5"),
    (lambda x: ind.highest(x, True), "window must be an integer >= 1, got True"),
    (lambda x: ind.macd(x, 26, 12, 9), r"fast \(26\) must be shorter than slow \(12\)"),
    (lambda x: ind.bollinger(x, 20, float("nan")), "stdevs must be a positive number"),
    (lambda x: ind.regime(x, x, x, 14, 120), "threshold must be within 0..100"),
    (lambda x: ind.atr(x, x[:-1], x), "inputs differ in length"),
    (lambda x: ind.sma(np.ones((3, 3)), 2), "must be one-dimensional"),
])
def test_bad_arguments_raise_one_clear_error(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call(np.arange(1.0, 50.0))


# ---------------------------------------------------------------------- no look-ahead
INDICATORS = {
    "highest20": lambda b: ind.highest(b.high, 20),
    "lowest10": lambda b: ind.lowest(b.low, 10),
    "highest20_incl": lambda b: ind.highest(b.high, 20, exclude_current=False),
    "sma20": lambda b: ind.sma(b.close, 20),
    "ema9": lambda b: ind.ema(b.close, 9),
    "rsi14": lambda b: ind.rsi(b.close, 14),
    "true_range": lambda b: ind.true_range(b.high, b.low, b.close),
    "atr14": lambda b: ind.atr(b.high, b.low, b.close, 14),
    "bb_upper": lambda b: ind.bollinger(b.close)[0],
    "bb_lower": lambda b: ind.bollinger(b.close)[2],
    "macd": lambda b: ind.macd(b.close)[0],
    "macd_signal": lambda b: ind.macd(b.close)[1],
    "macd_hist": lambda b: ind.macd(b.close)[2],
    "adx14": lambda b: ind.adx(b.high, b.low, b.close, 14),
    "volume_ratio20": lambda b: ind.volume_ratio(b.volume, 20),
    "regime": lambda b: ind.regime(b.high, b.low, b.close),
    "cross_above": lambda b: ind.cross_above(ind.ema(b.close, 9), ind.ema(b.close, 21)).astype(float),
}


@pytest.mark.parametrize("name", list(INDICATORS))
def test_no_look_ahead(btc, sample_t, name) -> None:
    """Every value up to t on the full history equals the value on bars [0..t] only
    (bit for bit: TA-Lib computes forward from the first bar)."""
    fn = INDICATORS[name]
    full = fn(btc)
    assert full.shape == (len(btc),) and full.dtype == np.float64
    assert not np.isnan(full[-1])
    for t in sample_t[::3].tolist():
        part = fn(btc.slice(0, t + 1))
        assert part.shape == (t + 1,)
        np.testing.assert_array_equal(part, full[: t + 1], err_msg=f"{name} at t={t}")


@pytest.mark.parametrize("name", list(INDICATORS))
def test_changing_the_future_leaves_the_past_alone(btc, name) -> None:
    """Scramble every bar after t: values at bars <= t do not move."""
    from tradewarden.domain import BarSeries

    fn = INDICATORS[name]
    n, t = 3000, 2000
    b = btc.slice(0, n)
    rng = np.random.default_rng(7)
    scale = np.r_[np.ones(t + 1), rng.uniform(0.5, 2.0, n - t - 1)]
    shuffled = BarSeries(b.symbol, b.timeframe, b.ts, b.open * scale, b.high * scale,
                         b.low * scale, b.close * scale, b.volume * scale)
    a, z = fn(b), fn(shuffled)
    np.testing.assert_array_equal(a[: t + 1], z[: t + 1])
    assert not np.array_equal(a[t + 1:], z[t + 1:], equal_nan=True)      # the change is visible


def test_sample_covers_the_series(btc, sample_t) -> None:
    assert 280 <= len(sample_t) <= 320
    assert sample_t[0] == 0 and sample_t[-1] == len(btc) - 1
    assert np.histogram(sample_t, bins=10, range=(0, len(btc)))[0].min() > 5
