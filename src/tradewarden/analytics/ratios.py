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

The growth figures follow empyrical-reloaded 0.7 the same way (``empyrical.cagr``,
``empyrical.max_drawdown``, ``empyrical.calmar_ratio``, ``empyrical.aggregate_returns``):

* CAGR = prod(1 + r) ** (A / n) - 1 for ``n`` periodic returns (``n / A`` years).
* Max drawdown of returns = min over t of (V_t - max(V_0..V_t)) / max(V_0..V_t), with
  V the compounded value and V_0 = 1 (the peak seeded with the start).
* Calmar = CAGR / |max drawdown| (T. W. Young, "Calmar Ratio: A Smoother Tool",
  *Futures*, 1991); NaN without a drawdown. The report passes its own drawdown (equity
  per bar, deeper than or equal to the drawdown of daily closes) instead.
* Monthly / yearly returns = prod(1 + r) - 1 over the returns of each calendar month /
  year (UTC).
"""

from __future__ import annotations

import math

import numpy as np

import pandas as pd

__all__ = ["aggregate_returns", "annual_return", "calmar_ratio", "max_drawdown",
           "sharpe_ratio", "sortino_ratio"]


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


def annual_return(returns: object, annualization: int) -> float:
    """Return the compound annual growth rate (CAGR) of periodic returns, as a fraction.

    ``prod(1 + r) ** (A / n) - 1``: the ending value of 1 compounded by the ``n``
    returns, annualised over ``n / A`` years (empyrical's ``cagr`` / ``annual_return``).

    Parameters
    ----------
    returns : array-like of float, shape (n,)
        Simple returns per period (NaN counts as 0 in the product, as in empyrical).
    annualization : int
        Periods per year (365 calendar days, 252 sessions).

    Returns
    -------
    float
        NaN without returns; NaN when the ending value is not positive (a loss of
        100 % or more has no annual rate).
    """
    r = _clean(returns)
    n = r.shape[0]
    if n < 1:
        return math.nan
    ending = float(np.nanprod(r + 1.0))
    if not ending > 0:
        return math.nan
    return ending ** (annualization / n) - 1.0


def max_drawdown(returns: object) -> float:
    """Return the maximum drawdown of compounded periodic returns, as a fraction (<= 0).

    The value ``V_t`` of 1 compounded by the returns up to ``t`` against its running
    peak, ``V_0 = 1`` included (empyrical-reloaded 0.7's ``max_drawdown``).

    Parameters
    ----------
    returns : array-like of float, shape (n,)

    Returns
    -------
    float
        ``min_t (V_t - P_t) / P_t``; NaN without returns.
    """
    r = _clean(returns)
    if r.shape[0] < 1:
        return math.nan
    value = np.concatenate(([1.0], np.cumprod(np.where(np.isnan(r), 0.0, r) + 1.0)))
    peak = np.fmax.accumulate(value)
    return float(np.min((value - peak) / peak))


def calmar_ratio(returns: object, annualization: int, drawdown: float | None = None) -> float:
    """Return the Calmar ratio: CAGR over the magnitude of the maximum drawdown.

    Parameters
    ----------
    returns : array-like of float, shape (n,)
        Simple returns per period.
    annualization : int
        Periods per year.
    drawdown : float, optional
        The maximum drawdown to divide by, a fraction (its sign is ignored). Default:
        :func:`max_drawdown` of ``returns``, which makes this empyrical's
        ``calmar_ratio``.

    Returns
    -------
    float
        NaN when there is no drawdown, the CAGR is undefined, or the ratio is infinite.
    """
    dd = max_drawdown(returns) if drawdown is None else -abs(float(drawdown))
    if not dd < 0:
        return math.nan
    value = annual_return(returns, annualization) / abs(dd)
    return value if math.isfinite(value) else math.nan


def aggregate_returns(returns: pd.Series, convert_to: str) -> pd.Series:
    """Compound periodic returns into calendar months or years (UTC).

    Parameters
    ----------
    returns : pandas.Series
        Simple returns indexed by a ``DatetimeIndex`` (UTC days).
    convert_to : {"monthly", "yearly"}

    Returns
    -------
    pandas.Series
        ``prod(1 + r) - 1`` per group, indexed by ``(year, month)`` (monthly) or
        ``year`` (yearly), as empyrical's ``aggregate_returns`` returns them.

    Raises
    ------
    ValueError
        For another ``convert_to``.
    """
    if convert_to not in ("monthly", "yearly"):
        raise ValueError(f"convert_to must be 'monthly' or 'yearly', got {convert_to!r}")
    if returns.empty:
        return pd.Series(dtype=float)
    idx = returns.index
    keys = [idx.year, idx.month] if convert_to == "monthly" else [idx.year]
    out = (returns.fillna(0.0) + 1.0).groupby(keys).prod() - 1.0
    return out.astype(float)
