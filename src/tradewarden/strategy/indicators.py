"""Causal, vectorised indicators over float64 arrays (pandas under the hood).

Every function returns an array the length of its input whose value at index ``t``
depends only on inputs at indices ``<= t`` (no look-ahead). Values before an
indicator has enough history are NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def highest(values: np.ndarray, window: int, *, exclude_current: bool = True) -> np.ndarray:
    """Rolling maximum over ``window`` bars.

    Parameters
    ----------
    values : ndarray, shape (n,)
    window : int
        Number of bars, >= 1.
    exclude_current : bool
        If True (Donchian convention) the value at ``t`` is ``max(values[t-window:t])``,
        the previous ``window`` bars, so a close can break it.
    """
    out = pd.Series(values).rolling(window, min_periods=window).max()
    if exclude_current:
        out = out.shift(1)
    return out.to_numpy(dtype=np.float64)


def lowest(values: np.ndarray, window: int, *, exclude_current: bool = True) -> np.ndarray:
    """Rolling minimum over ``window`` bars; see :func:`highest`."""
    out = pd.Series(values).rolling(window, min_periods=window).min()
    if exclude_current:
        out = out.shift(1)
    return out.to_numpy(dtype=np.float64)


def sma(values: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average over the last ``window`` bars, current bar included."""
    return pd.Series(values).rolling(window, min_periods=window).mean().to_numpy(dtype=np.float64, copy=True)


def ema(values: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average, ``alpha = 2 / (span + 1)``, seeded with the first value.

    NaN for the first ``span - 1`` bars so that warm-up values are not traded on.
    Source: the standard EMA recursion ``e_t = alpha * x_t + (1 - alpha) * e_{t-1}``
    (pandas ``ewm(span=..., adjust=False)``).
    """
    out = pd.Series(values).ewm(span=span, adjust=False).mean().to_numpy(dtype=np.float64, copy=True)
    out[: span - 1] = np.nan
    return out


def wilder(values: np.ndarray, period: int) -> np.ndarray:
    """Wilder's smoothing, ``alpha = 1 / period`` (J. W. Wilder, *New Concepts in
    Technical Trading Systems*, 1978), seeded with the first value."""
    return pd.Series(values).ewm(alpha=1.0 / period, adjust=False).mean().to_numpy(dtype=np.float64, copy=True)


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """True range: ``max(high - low, |high - prev_close|, |low - prev_close|)``; the
    first bar uses ``high - low``."""
    prev = np.full_like(close, np.nan)
    prev[1:] = close[:-1]
    tr = np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))
    return tr


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """Average true range (Wilder), quote currency. NaN for the first ``period`` bars."""
    out = wilder(true_range(high, low, close), period)
    out[:period] = np.nan
    return out


def rsi(close: np.ndarray, period: int = 14) -> np.ndarray:
    """Relative strength index (Wilder, 1978), 0..100. NaN for the first ``period`` bars."""
    delta = np.diff(close, prepend=np.nan)
    gain = np.where(delta > 0, delta, 0.0)
    loss = np.where(delta < 0, -delta, 0.0)
    gain[0] = loss[0] = 0.0
    avg_gain = wilder(gain, period)
    avg_loss = wilder(loss, period)
    with np.errstate(divide="ignore", invalid="ignore"):
        rs = avg_gain / avg_loss
        out = 100.0 - 100.0 / (1.0 + rs)
    out = np.where(avg_loss == 0.0, np.where(avg_gain == 0.0, 50.0, 100.0), out)
    out[:period] = np.nan
    return out.astype(np.float64)


def volume_ratio(volume: np.ndarray, window: int = 20) -> np.ndarray:
    """Current volume divided by the mean volume of the previous ``window`` bars."""
    mean_prev = pd.Series(volume).rolling(window, min_periods=window).mean().shift(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = volume / mean_prev.to_numpy(dtype=np.float64)
    out[~np.isfinite(out)] = np.nan
    return out
