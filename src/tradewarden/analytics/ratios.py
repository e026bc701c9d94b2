"""Sharpe and Sortino ratios of daily returns, as empyrical-reloaded defines them.

The definitions are empyrical-reloaded's (``empyrical.sharpe_ratio`` and
``empyrical.sortino_ratio`` with ``risk_free = required_return = 0``), computed here
with NumPy because importing empyrical pulls in ``scipy.stats`` and ``scipy.optimize``:
about 0.55 s of start-up, an eighth of a whole ``warden replay`` of a million bars, for
two one-line formulas. ``tests/analytics/test_analytics_ratios.py`` checks these
functions against empyrical itself on generated and real return series.

With ``r`` the daily simple returns (NaN ignored) and ``A`` the periods per year:

* Sharpe = mean(r) / std(r, ddof=1) * sqrt(A) (W. F. Sharpe, "The Sharpe Ratio",
  *Journal of Portfolio Management*, 1994); a constant series has a standard deviation
  of exactly 0 (empyrical's ``_zero_dispersion_std``), so its ratio is +/-inf, or NaN
  when the constant is 0.
* Sortino = mean(r) * A / (sqrt(mean(min(r, 0)^2)) * sqrt(A)) (F. A. Sortino and
  L. N. Price, "Performance Measurement in a Downside Risk Framework", *Journal of
  Investing*, 1994); +inf when no day lost money and the mean is positive.

Both are NaN for fewer than two returns.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["sharpe_ratio", "sortino_ratio"]


def _clean(returns: object) -> np.ndarray:
    return np.asarray(returns, dtype=np.float64).ravel()


def sharpe_ratio(returns: object, annualization: int) -> float:
    """Return the annualised Sharpe ratio of periodic returns (risk-free rate 0).

    Parameters
    ----------
    returns : array-like of float, shape (n,)
        Simple (non-cumulative) returns per period; NaN values are ignored.
    annualization : int
        Periods per year (365 for daily crypto returns, 252 for trading days).

    Returns
    -------
    float
        NaN for fewer than two returns or a constant zero series; +/-inf for any
        other constant series.
    """
    r = _clean(returns)
    if r.shape[0] < 2:
        return math.nan
    present = r[~np.isnan(r)]
    if present.shape[0] < 2:
        return math.nan
    mean = float(present.mean())
    std = 0.0 if present.max() == present.min() else float(present.std(ddof=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(mean, std) * math.sqrt(annualization))


def sortino_ratio(returns: object, annualization: int) -> float:
    """Return the annualised Sortino ratio of periodic returns (required return 0).

    Parameters
    ----------
    returns : array-like of float, shape (n,)
        Simple returns per period; NaN values are ignored.
    annualization : int
        Periods per year.

    Returns
    -------
    float
        NaN for fewer than two returns; +inf when no period lost money and the mean
        is positive (zero downside deviation).
    """
    r = _clean(returns)
    if r.shape[0] < 2:
        return math.nan
    present = r[~np.isnan(r)]
    if present.shape[0] == 0:
        return math.nan
    downside = np.minimum(present, 0.0)
    risk = math.sqrt(float(np.mean(downside * downside))) * math.sqrt(annualization)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(float(present.mean()) * annualization, risk))
