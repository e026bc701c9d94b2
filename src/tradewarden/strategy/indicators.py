"""Causal, vectorised technical indicators for strategies, computed by TA-Lib.

Every function takes one-dimensional price or volume arrays (NumPy arrays, pandas
Series or anything :func:`numpy.asarray` accepts; converted to float64) and returns
float64 NumPy arrays of the same length. Prices are in quote currency, volume in base
units. The value at index ``t`` depends only on inputs at indices ``<= t`` (no
look-ahead; ``tests/strategy/test_indicators.py`` checks every function on real bars).
Values before an indicator has enough history are NaN (the *warm-up*; the table
below gives its length). Leading NaNs in an input are skipped (TA-Lib starts at the
first non-NaN value), so an indicator of an indicator works; a NaN later in an input
propagates.

The arithmetic is TA-Lib's C library (``ta-lib`` wheel, https://ta-lib.org), with its
default seeding convention: an exponential or Wilder recursion starts from the
simple average of its first ``period`` inputs, not from the first input. Values
therefore differ from pandas ``ewm(adjust=False)`` near the start and agree once the
seed has decayed (a factor ``(1 - alpha)`` per bar).

=====================  ================================  ===================
function               warm-up (leading NaN bars)        kind
=====================  ================================  ===================
highest / lowest       ``window`` (``window - 1`` incl.)  window
sma                    ``period - 1``                     window
bollinger              ``period - 1``                     window
volume_ratio           ``window``                         window
true_range             1                                  window
ema                    ``period - 1``                     recursive
rsi                    ``period``                         recursive
atr                    ``period``                         recursive
macd                   ``slow + signal - 2``              recursive
adx, regime            ``2 * period - 1``                 recursive
=====================  ================================  ===================

Window indicators are exact functions of their last bars (highest/lowest bit for bit;
sma, bollinger and volume_ratio use TA-Lib's running sums, so they agree to about
1e-15 relative whatever the first bar). Recursive ones depend, ever more weakly, on
all history: a strategy gives them about 40 time constants of warm-up (``40 *
period`` bars; ``2 * 40 * period`` for ADX) so that the engine's chunk boundaries
change them by less than float64 resolution (see :attr:`Strategy.warmup`).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import talib

#: :func:`regime` label of a trending bar.
TREND = 1.0
#: :func:`regime` label of a range-bound bar.
RANGE = 0.0


def _f64(values: Any, name: str = "values") -> np.ndarray:
    """Return ``values`` as a C-contiguous 1-D float64 array (a copy when needed)."""
    arr = np.ascontiguousarray(np.asarray(values, dtype=np.float64))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _period(value: int, name: str, minimum: int = 2) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _same_length(*arrays: np.ndarray) -> None:
    if len({a.shape[0] for a in arrays}) != 1:
        raise ValueError(f"inputs differ in length: {[a.shape[0] for a in arrays]}")


def highest(values: Any, window: int, *, exclude_current: bool = True) -> np.ndarray:
    """Return the rolling maximum over ``window`` bars (the upper Donchian channel).

    Parameters
    ----------
    values : array_like of float, shape (n,)
        Usually highs, quote currency.
    window : int
        Number of bars, >= 1.
    exclude_current : bool, default True
        True (Donchian's convention): the value at ``t`` is ``max(values[t-window:t])``,
        the previous ``window`` bars, so a close can break above it; NaN for the
        first ``window`` bars. False: ``max(values[t-window+1:t+1])``; NaN for the
        first ``window - 1``.

    Returns
    -------
    ndarray of float64, shape (n,)

    Raises
    ------
    ValueError
        ``window`` below 1 or input not one-dimensional.

    Notes
    -----
    TA-Lib ``MAX`` shifted by one bar. Source: R. Donchian's channel; C. Faith,
    *Way of the Turtle* (2007), entry on a break of the previous 20 bars' high.
    """
    return _extreme(values, window, exclude_current, talib.MAX)


def lowest(values: Any, window: int, *, exclude_current: bool = True) -> np.ndarray:
    """Return the rolling minimum over ``window`` bars (the lower Donchian channel).

    Parameters
    ----------
    values : array_like of float, shape (n,)
        Usually lows, quote currency.
    window : int
        Number of bars, >= 1.
    exclude_current : bool, default True
        As in :func:`highest`: by default the previous ``window`` bars, not bar ``t``.

    Returns
    -------
    ndarray of float64, shape (n,)

    Raises
    ------
    ValueError
        ``window`` below 1 or input not one-dimensional.

    Notes
    -----
    TA-Lib ``MIN`` shifted by one bar; source as :func:`highest`.
    """
    return _extreme(values, window, exclude_current, talib.MIN)


def _extreme(values: Any, window: int, exclude_current: bool, fn: Any) -> np.ndarray:
    x = _f64(values)
    w = _period(window, "window", 1)
    out = x.copy() if w == 1 else fn(x, w)
    if w == 1:
        out[np.isnan(x)] = np.nan
    if exclude_current:
        out = np.concatenate(([np.nan], out[:-1])) if out.shape[0] else out
    return out


def sma(values: Any, period: int) -> np.ndarray:
    """Return the simple moving average of the last ``period`` bars, bar ``t`` included.

    Parameters
    ----------
    values : array_like of float, shape (n,)
    period : int
        Number of bars, >= 1.

    Returns
    -------
    ndarray of float64, shape (n,)
        In the unit of ``values``; NaN for the first ``period - 1`` bars.

    Raises
    ------
    ValueError
        ``period`` below 1 or input not one-dimensional.

    Notes
    -----
    TA-Lib ``SMA`` (a running sum): ``sum(values[t-period+1 .. t]) / period``.
    """
    return talib.SMA(_f64(values), _period(period, "period", 1))


def ema(values: Any, period: int) -> np.ndarray:
    """Return the exponential moving average with ``alpha = 2 / (period + 1)``.

    Parameters
    ----------
    values : array_like of float, shape (n,)
    period : int
        Span in bars, >= 2.

    Returns
    -------
    ndarray of float64, shape (n,)
        In the unit of ``values``; NaN for the first ``period - 1`` bars.

    Raises
    ------
    ValueError
        ``period`` below 2 or input not one-dimensional.

    Notes
    -----
    ``e_t = alpha * x_t + (1 - alpha) * e_{t-1}``, seeded at ``t = period - 1``
    with the simple average of the first ``period`` values (TA-Lib ``EMA``, default
    compatibility mode).
    """
    return talib.EMA(_f64(values), _period(period, "period"))


def rsi(close: Any, period: int = 14) -> np.ndarray:
    """Return the relative strength index (0..100).

    Parameters
    ----------
    close : array_like of float, shape (n,)
        Closes, quote currency.
    period : int, default 14
        Bars, >= 2.

    Returns
    -------
    ndarray of float64, shape (n,)
        NaN for the first ``period`` bars.

    Raises
    ------
    ValueError
        ``period`` below 2 or input not one-dimensional.

    Notes
    -----
    J. W. Wilder, *New Concepts in Technical Trading Systems* (1978):
    ``RSI = 100 - 100 / (1 + G / L)`` with ``G`` and ``L`` Wilder averages
    (``alpha = 1 / period``) of the bar-to-bar gains and losses, seeded with their
    simple average over the first ``period`` changes (TA-Lib ``RSI``). Where the
    close has not moved since the first bar, ``G = L = 0`` and the ratio is
    undefined: TA-Lib returns 0 there, this function returns the neutral 50 so a
    flat, untraded series does not read as oversold.
    """
    x = _f64(close, "close")
    out = talib.RSI(x, _period(period, "period"))
    valid = ~np.isnan(x)
    if valid.any():
        first = int(np.argmax(valid))
        with np.errstate(invalid="ignore"):
            moved = np.fmax.accumulate(np.abs(x[first:] - x[first])) > 0
        flat = np.zeros(x.shape[0], dtype=bool)
        flat[first:] = ~moved
        out[flat & ~np.isnan(out)] = 50.0
    return out


def true_range(high: Any, low: Any, close: Any) -> np.ndarray:
    """Return the true range ``max(high - low, |high - prev close|, |low - prev close|)``.

    Parameters
    ----------
    high, low, close : array_like of float, shape (n,)
        Quote currency.

    Returns
    -------
    ndarray of float64, shape (n,)
        Quote currency; NaN for the first bar (it has no previous close).

    Raises
    ------
    ValueError
        Inputs of different lengths or not one-dimensional.

    Notes
    -----
    Wilder (1978); TA-Lib ``TRANGE``.
    """
    h, lo, c = _f64(high, "high"), _f64(low, "low"), _f64(close, "close")
    _same_length(h, lo, c)
    return talib.TRANGE(h, lo, c)


def atr(high: Any, low: Any, close: Any, period: int = 14) -> np.ndarray:
    """Return the average true range (quote currency).

    Parameters
    ----------
    high, low, close : array_like of float, shape (n,)
        Quote currency.
    period : int, default 14
        Bars, >= 1.

    Returns
    -------
    ndarray of float64, shape (n,)
        NaN for the first ``period`` bars.

    Raises
    ------
    ValueError
        ``period`` below 1, inputs of different lengths or not one-dimensional.

    Notes
    -----
    Wilder (1978): Wilder's average (``alpha = 1 / period``) of :func:`true_range`,
    seeded at bar ``period`` with the simple average of the true ranges of bars
    ``1 .. period`` (TA-Lib ``ATR``).
    """
    h, lo, c = _f64(high, "high"), _f64(low, "low"), _f64(close, "close")
    _same_length(h, lo, c)
    return talib.ATR(h, lo, c, _period(period, "period", 1))


def bollinger(close: Any, period: int = 20, stdevs: float = 2.0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return Bollinger Bands ``(upper, middle, lower)``.

    Parameters
    ----------
    close : array_like of float, shape (n,)
        Quote currency.
    period : int, default 20
        Bars, >= 2.
    stdevs : float, default 2.0
        Band width in standard deviations, > 0.

    Returns
    -------
    upper, middle, lower : ndarray of float64, shape (n,)
        Quote currency; NaN for the first ``period - 1`` bars.

    Raises
    ------
    ValueError
        Bad ``period`` or ``stdevs``, or input not one-dimensional.

    Notes
    -----
    J. Bollinger, *Bollinger on Bollinger Bands* (2001): middle band the simple
    moving average, bands at ``middle +/- stdevs * sigma`` with ``sigma`` the
    population standard deviation (divisor ``period``) of the same ``period`` closes
    (TA-Lib ``BBANDS`` with ``matype=SMA``).
    """
    if not (isinstance(stdevs, numbers.Real) and np.isfinite(stdevs) and stdevs > 0):
        raise ValueError(f"stdevs must be a positive number, got {stdevs!r}")
    upper, middle, lower = talib.BBANDS(_f64(close, "close"), _period(period, "period"),
                                        float(stdevs), float(stdevs), 0)
    return upper, middle, lower


def macd(close: Any, fast: int = 12, slow: int = 26, signal: int = 9
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return MACD ``(macd, signal, histogram)``.

    Parameters
    ----------
    close : array_like of float, shape (n,)
        Quote currency.
    fast, slow, signal : int, default 12, 26, 9
        EMA spans in bars, each >= 2, ``fast < slow``.

    Returns
    -------
    macd, signal, histogram : ndarray of float64, shape (n,)
        Quote currency; NaN for the first ``slow + signal - 2`` bars.

    Raises
    ------
    ValueError
        Bad periods or input not one-dimensional.

    Notes
    -----
    G. Appel, *The Moving Average Convergence-Divergence Trading Method* (1979):
    ``macd = EMA_fast - EMA_slow``, ``signal = EMA_signal(macd)``,
    ``histogram = macd - signal``. As in TA-Lib ``MACD``, both EMAs start at bar
    ``slow - 1``: the fast EMA is seeded with the average of the ``fast`` closes
    ending there, so early values differ from ``ema(close, fast) - ema(close, slow)``
    until the seeds have decayed.
    """
    f, s, g = _period(fast, "fast"), _period(slow, "slow"), _period(signal, "signal")
    if f >= s:
        raise ValueError(f"fast ({f}) must be shorter than slow ({s})")
    m, sig, hist = talib.MACD(_f64(close, "close"), f, s, g)
    return m, sig, hist


def adx(high: Any, low: Any, close: Any, period: int = 14) -> np.ndarray:
    """Return the average directional index (0..100), a trend-strength measure.

    Parameters
    ----------
    high, low, close : array_like of float, shape (n,)
        Quote currency.
    period : int, default 14
        Bars, >= 2.

    Returns
    -------
    ndarray of float64, shape (n,)
        NaN for the first ``2 * period - 1`` bars.

    Raises
    ------
    ValueError
        Bad ``period``, inputs of different lengths or not one-dimensional.

    Notes
    -----
    Wilder (1978): +DM/-DM and true range smoothed with Wilder's sums,
    ``DX = 100 * |+DI - -DI| / (+DI + -DI)``, ADX the Wilder average of DX
    (TA-Lib ``ADX``; seeds as in :func:`atr`).
    """
    h, lo, c = _f64(high, "high"), _f64(low, "low"), _f64(close, "close")
    _same_length(h, lo, c)
    return talib.ADX(h, lo, c, _period(period, "period"))


def volume_ratio(volume: Any, window: int = 20) -> np.ndarray:
    """Return the bar's volume divided by the mean volume of the previous ``window`` bars.

    Parameters
    ----------
    volume : array_like of float, shape (n,)
        Base units.
    window : int, default 20
        Bars, >= 1.

    Returns
    -------
    ndarray of float64, shape (n,)
        Dimensionless; NaN for the first ``window`` bars and where the previous
        bars' mean volume is zero.

    Raises
    ------
    ValueError
        ``window`` below 1 or input not one-dimensional.

    Notes
    -----
    ``volume_t / SMA_window(volume)_{t-1}`` with TA-Lib ``SMA``; the current bar
    is left out of its own baseline.
    """
    v = _f64(volume, "volume")
    mean = sma(v, window)
    prev = np.concatenate(([np.nan], mean[:-1])) if v.shape[0] else mean
    with np.errstate(divide="ignore", invalid="ignore"):
        out = v / prev
    out[~np.isfinite(out)] = np.nan
    return out


def regime(high: Any, low: Any, close: Any, period: int = 14,
           threshold: float = 25.0) -> np.ndarray:
    """Return a trend/range label per bar: :data:`TREND` (1.0) or :data:`RANGE` (0.0).

    Parameters
    ----------
    high, low, close : array_like of float, shape (n,)
        Quote currency.
    period : int, default 14
        ADX period in bars, >= 2.
    threshold : float, default 25.0
        ADX level (0..100) at or above which a bar is trending.

    Returns
    -------
    ndarray of float64, shape (n,)
        1.0 where ``adx(high, low, close, period) >= threshold``, 0.0 below it, NaN
        during the ADX warm-up (``2 * period - 1`` bars).

    Raises
    ------
    ValueError
        Bad ``period`` or ``threshold``, inputs of different lengths.

    Notes
    -----
    ADX measures trend strength, not direction (Wilder, 1978). Reading ADX above
    25 as "trending" and below as "ranging" is the practitioners' convention (for
    example StockCharts ChartSchool, "Average Directional Index"), not a rule from
    Wilder's book; some use 20, hence the parameter.
    """
    if not (isinstance(threshold, numbers.Real) and 0 <= threshold <= 100):
        raise ValueError(f"threshold must be within 0..100, got {threshold!r}")
    a = adx(high, low, close, period)
    with np.errstate(invalid="ignore"):
        out = np.where(a >= threshold, TREND, RANGE)
    out[np.isnan(a)] = np.nan
    return out


def cross_above(a: Any, b: Any) -> np.ndarray:
    """Return True where ``a`` crosses above ``b``: ``a[t] > b[t]`` and ``a[t-1] <= b[t-1]``.

    Parameters
    ----------
    a, b : array_like of float, shape (n,), or a scalar for ``b``
        Same unit.

    Returns
    -------
    ndarray of bool, shape (n,)
        False at bar 0 and wherever a compared value is NaN.
    """
    return _cross(a, b, up=True)


def cross_below(a: Any, b: Any) -> np.ndarray:
    """Return True where ``a`` crosses below ``b``: ``a[t] < b[t]`` and ``a[t-1] >= b[t-1]``.

    Parameters
    ----------
    a, b : array_like of float, shape (n,), or a scalar for ``b``
        Same unit.

    Returns
    -------
    ndarray of bool, shape (n,)
        False at bar 0 and wherever a compared value is NaN.
    """
    return _cross(a, b, up=False)


def _cross(a: Any, b: Any, *, up: bool) -> np.ndarray:
    x = _f64(a, "a")
    y = np.broadcast_to(np.asarray(b, dtype=np.float64), x.shape)
    out = np.zeros(x.shape[0], dtype=bool)
    if x.shape[0] < 2:
        return out
    with np.errstate(invalid="ignore"):
        if up:
            out[1:] = (x[1:] > y[1:]) & (x[:-1] <= y[:-1])
        else:
            out[1:] = (x[1:] < y[1:]) & (x[:-1] >= y[:-1])
    return out
