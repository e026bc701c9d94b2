"""Drift of the production model, performance decay, and the rollback policy.

A drift report compares what the production version sees now with what it was trained
on, and how its matured predictions did, and says ``ok``, ``warning`` or ``drift``:

Feature drift
    Per feature of the version (``ModelVersion.features``): the population stability
    index (:func:`psi`) and a two-sample Kolmogorov-Smirnov test (:func:`ks_test`,
    :func:`scipy.stats.ks_2samp`, its p value calibrated as below) of the *recent
    window* (the feature rows of the :data:`RECENT_SESSIONS` sessions ending at the
    as-of session, every symbol of the universe) against the version's training sample
    (``ModelVersion.train_sample``).
Prediction drift
    The same two statistics for the model's scores: the version's scores of the recent
    window's rows against the scores it gives its own training sample. The training
    sample is the reference because it is what the registry keeps with every version
    (validation predictions are not stored); its scores are in-sample, so for a
    flexible model (LightGBM) they are somewhat more spread than out-of-sample scores,
    and prediction drift is read as a warning only (never ``drift`` by itself).
Performance decay
    Predictions recorded by the prediction job (``ml_predictions``, job ``predict``,
    this version) whose horizon has passed by the as-of session are scored against the
    realised forward returns (:func:`tradewarden.ml.features.forward_returns` of the
    panel cut at the as-of session: nothing after it is read): the mean daily
    information coefficient (Spearman rank correlation across symbols, per as-of date)
    and the hit rate (share of predictions whose sign is the realised return's sign),
    over the matured as-of dates of the last :data:`PERFORMANCE_SESSIONS` sessions, as
    :func:`tradewarden.ml.validation.split_metrics` computes them for validation. With
    fewer than :data:`MIN_MATURED_DATES` matured dates performance is not judged.

Statuses and thresholds (``[ml]``, :class:`~tradewarden.ml.settings.MlSettings`)
------------------------------------------------------------------------------------
- a feature with PSI >= ``psi_drift`` and KS p < ``ks_pvalue``: ``drift``;
- a feature with PSI >= ``psi_warning`` and KS p < ``ks_pvalue``: ``warning``;
- the scores, by the same cut-offs: ``warning`` at most (see "Prediction drift");
- rolling IC < ``ic_floor``: ``drift`` (decay of the ranking the rank strategy trades);
- rolling hit rate < ``hit_rate_floor``: ``warning`` (the sign, which only the
  ``threshold`` conversion uses).

A shift must be large (PSI, an effect size: Siddiqi's 0.1 / 0.25) *and* unusual (KS)
to count. The KS p value is calibrated on the training period itself
(:func:`window_null`, :func:`compare`): the features are overlapping-window statistics
of a few symbols (a month of 60-day volatility is nearly one value per symbol), so a
recent window is never an independent sample, and scipy's iid p value (reported as
``ks_pvalue_iid``) is below 0.01 for most months *inside* the training period. Measured
on the bundled equities (a ridge version trained to 2013-12-31, 20-session windows
every 10 sessions): with scipy's p value, all 36 windows inside the training period and
all 51 of 2014-2015 came out ``drift``; calibrated, none of the 36 inside and 30 of
the 51 after it (README, "Drift and rollback"). The report's status is its worst
breach's level.

The rollback policy
-------------------
When the newest :attr:`MlSettings.drift_persist_days` reports of the model (ordered
by as-of date) are all ``drift`` reports of the current production version, the
rollback is due: with ``auto_rollback = true`` the production alias moves back to the
previous version (:meth:`ModelRegistry.rollback`, recorded in ``ml_model_events``
with a reason naming the breaches and the report ids; ``warden ml promote VERSION``
undoes it); otherwise (the default) nothing changes and the report says what the
policy would do, for a person to decide. A report is recorded once per model, version
and as-of session: running the job again for the same as-of returns the recorded
report, and the policy (evaluated again, so a crash between the report and the
rollback is completed) finds the version no longer in production and does nothing:
one rollback, whatever the re-runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "MIN_MATURED_DATES", "PERFORMANCE_SESSIONS", "PSI_BINS", "PSI_EPSILON", "RECENT_SESSIONS",
    "STATUSES", "Breach", "DriftError", "DriftReport", "Performance", "PolicyOutcome",
    "Shift", "apply_policy", "compare", "drift_report", "drift_reports", "ks_statistic", "ks_test",
    "open_registry", "performance", "psi", "psi_edges", "recent_window", "window_null",
    "worst",
]

#: Report statuses, mildest first.
STATUSES = ("ok", "warning", "drift")
#: Bins of the population stability index: deciles of the reference distribution.
PSI_BINS = 10
#: Share given to an empty bin (of either distribution) before the logarithm, so a bin
#: empty on one side adds a large but finite term: ``(a - e) * ln(a / e)`` with 0
#: replaced by 1e-4 (one row in 10,000), the usual practice (Siddiqi 2006).
PSI_EPSILON = 1e-4
#: Sessions of feature rows in the recent window (about a month).
RECENT_SESSIONS = 20
#: Sessions of as-of dates whose matured predictions are scored (about a quarter).
PERFORMANCE_SESSIONS = 60
#: Fewest matured as-of dates for performance to be judged.
MIN_MATURED_DATES = 10


def worst(levels: Sequence[str]) -> str:
    """Return the most severe of ``levels`` (``"ok"`` for none).

    Parameters
    ----------
    levels : sequence of {"ok", "warning", "drift"}

    Returns
    -------
    str

    Raises
    ------
    ValueError
        A level that is not one of :data:`STATUSES`.
    """
    rank = 0
    for level in levels:
        if level not in STATUSES:
            raise ValueError(f"drift status {level!r}: use one of {', '.join(STATUSES)}")
        rank = max(rank, STATUSES.index(level))
    return STATUSES[rank]


def _finite(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        raise ValueError(f"{what}: no finite values")
    return arr


def psi_edges(reference: Any, bins: int = PSI_BINS) -> np.ndarray:
    """Return the interior bin edges of the population stability index.

    The edges are the reference distribution's quantiles at ``1/bins, ..., (bins-1)/bins``
    (:func:`numpy.quantile`, linear interpolation); repeated edges (a feature with ties)
    are merged, so a discrete feature gets fewer, wider bins. Bins are closed on the
    right: ``(-inf, e1], (e1, e2], ..., (e_last, inf)``.

    Parameters
    ----------
    reference : array-like of float, shape (n,)
        The training distribution; NaN and infinities are ignored.
    bins : int, default 10
        At least 2.

    Returns
    -------
    numpy.ndarray of float, shape (k,), k <= bins - 1
        Ascending interior edges.

    Raises
    ------
    ValueError
        Fewer than 2 bins, or no finite reference value.
    """
    if not isinstance(bins, int) or bins < 2:
        raise ValueError(f"PSI bins {bins!r}: give a whole number >= 2")
    ref = _finite(reference, "PSI reference")
    return np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def psi(reference: Any, recent: Any, *, bins: int = PSI_BINS,
        epsilon: float = PSI_EPSILON) -> float:
    """Return the population stability index of ``recent`` against ``reference``.

    ``PSI = sum_i (a_i - e_i) * ln(a_i / e_i)`` over the bins of :func:`psi_edges`,
    with ``e_i`` and ``a_i`` the shares of the reference and recent values in bin ``i``
    and a share of 0 replaced by ``epsilon`` (:data:`PSI_EPSILON`). It is the symmetric
    Kullback-Leibler divergence (Jeffreys divergence) of the binned distributions.
    Source: N. Siddiqi, *Credit Risk Scorecards* (Wiley, 2006), ch. 8 "system
    stability report", with its rule of thumb: below 0.1 no shift, 0.1-0.25 a shift to
    watch, above 0.25 a significant shift; B. Yurdakul, *Statistical Properties of
    Population Stability Index* (Western Michigan University, 2018) for its properties.

    Parameters
    ----------
    reference, recent : array-like of float
        The two samples (any lengths); NaN and infinities are ignored.
    bins : int, default 10
    epsilon : float, default 1e-4
        In (0, 1).

    Returns
    -------
    float
        >= 0; 0 when the binned shares agree.

    Raises
    ------
    ValueError
        Fewer than 2 bins, a bad ``epsilon``, or a sample without finite values.
    """
    if not 0 < epsilon < 1:
        raise ValueError(f"PSI epsilon {epsilon!r}: give a share in (0, 1)")
    edges = psi_edges(reference, bins)
    ref = _finite(reference, "PSI reference")
    cur = _finite(recent, "PSI recent sample")
    k = edges.size + 1
    e = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=k) / ref.size
    a = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=k) / cur.size
    e = np.where(e == 0, epsilon, e)
    a = np.where(a == 0, epsilon, a)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_test(reference: Any, recent: Any) -> tuple[float, float]:
    """Return the two-sample Kolmogorov-Smirnov statistic and p value.

    :func:`scipy.stats.ks_2samp` (two-sided, ``method="auto"``: exact for small
    samples, asymptotic otherwise): the largest distance between the two empirical
    distribution functions, and the probability of one at least as large if both
    samples came from one distribution.

    Parameters
    ----------
    reference, recent : array-like of float
        NaN and infinities are ignored.

    Returns
    -------
    tuple of (float, float)
        ``(statistic in [0, 1], p value in [0, 1])``.

    Raises
    ------
    ValueError
        A sample without finite values.
    """
    from scipy.stats import ks_2samp
    res = ks_2samp(_finite(reference, "KS reference"), _finite(recent, "KS recent sample"))
    return float(res.statistic), float(res.pvalue)


def ks_statistic(sorted_reference: np.ndarray, sample: Any) -> float:
    """Return the two-sample Kolmogorov-Smirnov statistic against a sorted reference.

    The same figure as :func:`scipy.stats.ks_2samp`'s ``statistic`` (``sup |F_ref -
    F_sample|``), computed in O(n log N) for a reference sorted once: between two
    consecutive sample values the sample's distribution function is constant and the
    reference's rises, so the supremum is at a sample value or just below one.
    Used for the many windows of :func:`window_null`, where calling ``ks_2samp`` each
    time would take seconds.

    Parameters
    ----------
    sorted_reference : numpy.ndarray of float, shape (N,)
        Finite, ascending.
    sample : array-like of float, shape (n,)
        Finite values (any order), n >= 1.

    Returns
    -------
    float
        In [0, 1].
    """
    x = np.sort(np.asarray(sample, dtype=float))
    n, big = x.size, sorted_reference.size
    f_right = np.searchsorted(sorted_reference, x, side="right") / big
    f_left = np.searchsorted(sorted_reference, x, side="left") / big
    g_right = np.searchsorted(x, x, side="right") / n
    g_left = np.searchsorted(x, x, side="left") / n
    return float(max(np.max(np.abs(f_right - g_right)), np.max(np.abs(f_left - g_left))))


def window_null(reference: pd.Series, sessions: int = RECENT_SESSIONS) -> np.ndarray:
    """Return the KS statistics of every ``sessions``-long window of the reference period.

    Each window of consecutive sessions of the reference (every session a window
    start, steps of one) is compared with the whole reference (:func:`ks_statistic`):
    the distribution of the statistic for a recent window *when nothing changed*,
    with the serial dependence of overlapping-window features (a 60-session
    volatility hardly moves within a month) built in. The iid formula of
    :func:`scipy.stats.ks_2samp` ignores that dependence and finds almost every month
    of the training period itself "significantly" different from the whole; this null
    is the moving-block idea (H. Kuensch, Ann. Statist. 17(3), 1989) applied to the
    training sample's own windows.

    Parameters
    ----------
    reference : pandas.Series
        Indexed by (``ts``, ``symbol``) (a level named ``ts``, UTC epoch seconds);
        NaN values are ignored.
    sessions : int, default :data:`RECENT_SESSIONS`

    Returns
    -------
    numpy.ndarray of float, shape (windows,)
        Empty when the reference has no ``ts`` level or fewer sessions than
        ``sessions``.
    """
    if "ts" not in (reference.index.names or []):
        return np.empty(0)
    ts = reference.index.get_level_values("ts").to_numpy(dtype=np.int64)
    order = np.argsort(ts, kind="stable")
    ts, values = ts[order], reference.to_numpy(dtype=float)[order]
    keep = np.isfinite(values)
    ts, values = ts[keep], values[keep]
    days = np.unique(ts)
    if values.size == 0 or days.size < sessions:
        return np.empty(0)
    whole = np.sort(values)
    # The reference's distribution function at every value, once (as ks_statistic).
    f_right = np.searchsorted(whole, values, side="right") / whole.size
    f_left = np.searchsorted(whole, values, side="left") / whole.size
    starts = np.searchsorted(ts, days, side="left")[: days.size - sessions + 1]
    ends = np.searchsorted(ts, days, side="right")[sessions - 1:]
    out = np.empty(starts.size)
    width = int(np.max(ends - starts))
    step = max(1, 2_000_000 // width)          # windows per block: bounded memory
    for lo in range(0, starts.size, step):
        out[lo:lo + step] = _window_stats(values, f_right, f_left, starts[lo:lo + step],
                                          ends[lo:lo + step], width)
    return out


def _window_stats(values: np.ndarray, f_right: np.ndarray, f_left: np.ndarray,
                  starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """:func:`ks_statistic` of the rows ``values[starts[i]:ends[i]]`` of many windows at
    once (a matrix of windows, padded with +inf), given the reference's distribution
    function at every value (``f_right`` = F(x), ``f_left`` = F(x-))."""
    cols = np.arange(width)
    idx = starts[:, None] + cols[None, :]
    valid = idx < ends[:, None]
    idx = np.where(valid, idx, 0)
    x = np.where(valid, values[idx], np.inf)
    order = np.argsort(x, axis=1, kind="stable")
    x = np.take_along_axis(x, order, axis=1)
    idx = np.take_along_axis(idx, order, axis=1)
    valid = np.take_along_axis(valid, order, axis=1)
    n = valid.sum(axis=1, keepdims=True).astype(float)
    # the window's own distribution function at its sorted values, ties counted: G(x)
    # = 1 + position of the last equal value, G(x-) = position of the first (over n)
    last = np.ones_like(valid)
    last[:, :-1] = x[:, 1:] != x[:, :-1]
    first = np.ones_like(valid)
    first[:, 1:] = x[:, 1:] != x[:, :-1]
    big = width + 1
    g_right = np.minimum.accumulate(np.where(last, cols + 1, big)[:, ::-1], axis=1)[:, ::-1]
    g_left = np.maximum.accumulate(np.where(first, cols, 0), axis=1)
    gap = np.maximum(np.abs(f_right[idx] - g_right / n), np.abs(f_left[idx] - g_left / n))
    return np.max(np.where(valid, gap, 0.0), axis=1)


@dataclass(frozen=True)
class Shift:
    """How one distribution (a feature's, or the scores') moved from its reference.

    Parameters
    ----------
    name : str
        The feature (or ``"score"``).
    psi : float
        Population stability index (:func:`psi`).
    ks_statistic : float
        Two-sample KS statistic (:func:`ks_test`).
    ks_pvalue : float
        The p value judged against ``ks_pvalue``: the window-calibrated one
        (:func:`compare`) when ``null_windows`` is enough, else ``ks_pvalue_iid``.
    ks_pvalue_iid : float
        :func:`scipy.stats.ks_2samp`'s p value (independent samples assumed).
    null_windows : int
        Windows of the reference period behind the calibrated p value (0: none).
    n_reference, n_recent : int
        Finite values compared.
    status : {"ok", "warning", "drift"}
    """

    name: str
    psi: float
    ks_statistic: float
    ks_pvalue: float
    ks_pvalue_iid: float
    null_windows: int
    n_reference: int
    n_recent: int
    status: str

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)


def _get(settings: Any, name: str) -> float:
    return float(getattr(settings, name))


def compare(name: str, reference: Any, recent: Any, settings: Any, *,
            null: np.ndarray | None = None, warning_only: bool = False) -> Shift:
    """Compare a recent sample with its reference and judge it by the thresholds.

    The status (see the module's table): ``drift`` when PSI >= ``psi_drift`` and the KS
    p value < ``ks_pvalue``; ``warning`` when PSI >= ``psi_warning`` and the p value <
    ``ks_pvalue``; else ``ok``. The p value is the Monte Carlo p value of the KS
    statistic among the reference period's own windows, ``(1 + #{null >= D}) / (1 +
    len(null))`` (A. C. Davison and D. V. Hinkley, *Bootstrap Methods and their
    Application*, 1997, eq. 4.11), when ``null`` has at least ``1 / ks_pvalue``
    windows (so the cut can be reached); otherwise scipy's iid p value.

    Parameters
    ----------
    name : str
    reference, recent : array-like of float
    settings : MlSettings
        ``psi_warning``, ``psi_drift``, ``ks_pvalue``.
    null : numpy.ndarray, optional
        :func:`window_null` of the reference.
    warning_only : bool, default False
        Cap the status at ``warning`` (prediction drift).

    Returns
    -------
    Shift

    Raises
    ------
    ValueError
        A sample without finite values.
    """
    value = psi(reference, recent)
    stat, p_iid = ks_test(reference, recent)
    cut = _get(settings, "ks_pvalue")
    windows = 0 if null is None else int(np.asarray(null).size)
    if windows and windows >= math.ceil(1.0 / cut):
        p = float((1 + np.sum(np.asarray(null) >= stat - 1e-12)) / (1 + windows))
    else:
        p, windows = p_iid, 0
    if p < cut and value >= _get(settings, "psi_drift"):
        status = "drift"
    elif p < cut and value >= _get(settings, "psi_warning"):
        status = "warning"
    else:
        status = "ok"
    if warning_only and status == "drift":
        status = "warning"
    n_ref = int(np.isfinite(np.asarray(reference, dtype=float)).sum())
    n_cur = int(np.isfinite(np.asarray(recent, dtype=float)).sum())
    return Shift(name, value, stat, p, p_iid, windows, n_ref, n_cur, status)


@dataclass(frozen=True)
class Performance:
    """Rolling performance of matured predictions against validation and the floors.

    Parameters
    ----------
    ic : float or None
        Mean daily information coefficient (Spearman, across symbols) of the matured
        as-of dates; ``None`` when none.
    hit_rate : float or None
        Share of matured predictions with the realised return's sign (0-1).
    dates : int
        Matured as-of dates scored.
    predictions : int
        Matured predictions scored.
    first_ts, last_ts : int or None
        First and last matured as-of session (date labels, 00:00 UTC, epoch seconds).
    validation_ic, validation_hit_rate : float or None
        The version's validation figures (``ModelVersion.validation``).
    ic_floor, hit_rate_floor : float
    status : {"ok", "warning", "drift"}
        ``ok`` also when too few dates matured to judge (``judged`` False).
    judged : bool
        At least :data:`MIN_MATURED_DATES` dates matured.
    """

    ic: float | None
    hit_rate: float | None
    dates: int
    predictions: int
    first_ts: int | None
    last_ts: int | None
    validation_ic: float | None
    validation_hit_rate: float | None
    ic_floor: float
    hit_rate_floor: float
    status: str
    judged: bool

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)


def _metric(values: Any) -> float | None:
    if values is None:
        return None
    try:
        out = float(values)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def performance(matured: pd.DataFrame, settings: Any,
                validation: dict[str, Any] | None = None) -> Performance:
    """Score matured predictions: mean daily information coefficient and hit rate.

    Parameters
    ----------
    matured : pandas.DataFrame
        One row per matured prediction with columns ``as_of_ts`` (int, the as-of
        session, UTC epoch seconds), ``score`` (float) and ``realised`` (the forward
        return over the horizon, a fraction); rows with a NaN are dropped.
    settings : MlSettings
        ``ic_floor``, ``hit_rate_floor``.
    validation : dict, optional
        The version's validation figures (``TrainResult.validation``): ``mean`` ``ic``
        and ``hit_rate`` (or top-level ``ic`` / ``hit_rate``) are reported beside the
        rolling ones.

    Returns
    -------
    Performance

    Notes
    -----
    The figures are :func:`tradewarden.ml.validation.split_metrics`'s, the definitions
    the validation figures use: the information coefficient is the mean over as-of
    dates of the Spearman rank correlation between scores and realised returns across
    that date's symbols (dates with fewer than 3 symbols or a constant side skipped;
    Grinold and Kahn, *Active Portfolio Management*), the hit rate the share of
    predictions with ``sign(score) == sign(realised)`` (zeros excluded).
    """
    from tradewarden.ml.validation import split_metrics
    val = validation or {}
    val = val.get("mean", val) if isinstance(val.get("mean"), dict) else val
    v_ic = _metric(val.get("ic"))
    v_hit = _metric(val.get("hit_rate"))
    frame = matured.dropna(subset=["score", "realised"])
    n = len(frame)
    m = split_metrics(frame["realised"].to_numpy(dtype=float),
                      frame["score"].to_numpy(dtype=float),
                      frame["as_of_ts"].to_numpy(dtype=np.int64)) if n else {}
    ic = _metric(m.get("ic"))
    hit = _metric(m.get("hit_rate"))
    dates = int(m.get("n_dates", 0))
    judged = dates >= MIN_MATURED_DATES and ic is not None
    levels = []
    if judged:
        if ic < _get(settings, "ic_floor"):
            levels.append("drift")
        if hit is not None and hit < _get(settings, "hit_rate_floor"):
            levels.append("warning")
    return Performance(ic=ic, hit_rate=hit, dates=dates, predictions=n,
                       first_ts=int(frame["as_of_ts"].min()) if n else None,
                       last_ts=int(frame["as_of_ts"].max()) if n else None,
                       validation_ic=v_ic, validation_hit_rate=v_hit,
                       ic_floor=_get(settings, "ic_floor"),
                       hit_rate_floor=_get(settings, "hit_rate_floor"),
                       status=worst(levels), judged=judged)


@dataclass(frozen=True)
class Breach:
    """One threshold a report crossed.

    Parameters
    ----------
    kind : {"feature", "prediction", "performance"}
    name : str
        The feature, ``score``, ``ic`` or ``hit_rate``.
    level : {"warning", "drift"}
    metric : {"psi", "ks_pvalue", "ic", "hit_rate"}
    value : float
    threshold : float
        The setting it crossed.
    """

    kind: str
    name: str
    level: str
    metric: str
    value: float
    threshold: float

    def text(self) -> str:
        """Return one line: ``feature ret_20: psi 0.31 >= 0.25 (drift)``."""
        op = "<" if self.metric in ("ks_pvalue", "ic", "hit_rate") else ">="
        return (f"{self.kind} {self.name}: {self.metric} {self.value:.4g} {op} "
                f"{self.threshold:g} ({self.level})")

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)


def _shift_breaches(kind: str, shift: Shift, settings: Any) -> list[Breach]:
    if shift.status == "ok":
        return []
    cut = "psi_drift" if shift.psi >= _get(settings, "psi_drift") else "psi_warning"
    return [Breach(kind, shift.name, shift.status, "psi", shift.psi, _get(settings, cut)),
            Breach(kind, shift.name, shift.status, "ks_pvalue", shift.ks_pvalue,
                   _get(settings, "ks_pvalue"))]


def _performance_breaches(perf: Performance) -> list[Breach]:
    if not perf.judged:
        return []
    out = []
    if perf.ic is not None and perf.ic < perf.ic_floor:
        out.append(Breach("performance", "ic", "drift", "ic", perf.ic, perf.ic_floor))
    if perf.hit_rate is not None and perf.hit_rate < perf.hit_rate_floor:
        out.append(Breach("performance", "hit_rate", "warning", "hit_rate", perf.hit_rate,
                          perf.hit_rate_floor))
    return out


@dataclass(frozen=True)
class PolicyOutcome:
    """What the rollback policy did after a report.

    Parameters
    ----------
    action : {"none", "watch", "would_roll_back", "rolled_back", "cannot_roll_back", "superseded"}
        ``none``: no drift; ``watch``: drift, not yet for ``persist_days`` reports;
        ``would_roll_back``: due, ``auto_rollback`` off (a person decides);
        ``rolled_back``: production moved to ``to_version``; ``cannot_roll_back``: due,
        but there is no earlier version; ``superseded``: the report's version is no
        longer in production (rolled back or replaced already), or a newer report
        exists: nothing to do.
    streak : int
        Consecutive ``drift`` reports of this version, newest first, this one included.
    persist_days : int
        ``drift_persist_days``.
    report_ids : tuple of int
        The reports of the streak (oldest first).
    from_version, to_version : str or None
        The rollback's versions (``to_version`` None unless rolled back).
    message : str
        One or two sentences for a person.
    """

    action: str
    streak: int
    persist_days: int
    report_ids: tuple[int, ...]
    from_version: str | None
    to_version: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict."""
        out = asdict(self)
        out["report_ids"] = list(self.report_ids)
        return out


@dataclass(frozen=True)
class DriftReport:
    """A drift report of one model version as of one session, as recorded.

    Parameters
    ----------
    id : int
        ``ml_drift_reports.id``.
    model_name, model_version : str
    as_of_ts : int
        The as-of session's close, UTC epoch seconds.
    status : {"ok", "warning", "drift"}
    features : tuple of Shift
        One per feature of the version, in its order.
    predictions : Shift or None
        The scores' shift (``None`` when the version could not score the window).
    performance : Performance
    breaches : tuple of Breach
    policy : PolicyOutcome
    recorded : bool
        ``True`` when this call wrote the report, ``False`` when it was recorded
        before (a re-run for the same as-of).
    window : dict
        ``first_ts``, ``last_ts`` (feature rows' session labels, UTC epoch seconds),
        ``sessions``, ``rows``.
    """

    id: int
    model_name: str
    model_version: str
    as_of_ts: int
    status: str
    features: tuple[Shift, ...]
    predictions: Shift | None
    performance: Performance
    breaches: tuple[Breach, ...]
    policy: PolicyOutcome
    recorded: bool
    window: dict[str, Any] = field(default_factory=dict)


def _loads(text: str | None, empty: Any) -> Any:
    return empty if text is None else json.loads(text)


class DriftError(ValueError):
    """A drift report cannot be made: no production version, or data that does not
    reach the as-of session (the message names the model, the data and the dates)."""


_DAY = 86_400


def _day(ts: int) -> str:
    return pd.Timestamp(int(ts) // _DAY * _DAY, unit="s").strftime("%Y-%m-%d")


def _source(settings: Any) -> str:
    from tradewarden.ml.predict import universe_source
    return universe_source(settings)


def recent_window(panel: pd.DataFrame, label: int, settings: Any, *,
                  sessions: int = RECENT_SESSIONS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cut a panel at an as-of session and return its features and the recent window.

    Parameters
    ----------
    panel : pandas.DataFrame
        Long OHLCV panel (:func:`tradewarden.ml.features.load_universe`).
    label : int
        The as-of session's date label (00:00 UTC, epoch seconds).
    settings : MlSettings
        ``data`` (named in errors).
    sessions : int, default :data:`RECENT_SESSIONS`

    Returns
    -------
    tuple of (pandas.DataFrame, pandas.DataFrame)
        ``(cut, recent)``: the panel's rows at or before ``label`` (nothing after the
        as-of session is read), and the feature rows (indexed (ts, symbol), columns
        :data:`~tradewarden.ml.features.FEATURES`) of the last ``sessions`` sessions
        ending at ``label``.

    Raises
    ------
    DriftError
        The data ends before ``label``, or has no row at ``label`` (not a session of
        the data); the message names the data and its last date.
    """
    from tradewarden.ml.features import compute_features
    if panel.empty:
        raise DriftError(f"{_source(settings)}: no bars")
    last = int(panel["ts"].max())
    if last < label:
        raise DriftError(f"{_source(settings)} ends on {_day(last)}, before the as-of "
                         f"session {_day(label)}")
    cut = panel[panel["ts"] <= label]
    if not (cut["ts"] == label).any():
        raise DriftError(f"as-of {_day(label)}: no bars on that date in {_source(settings)} "
                         "(not an NYSE session?)")
    feats = compute_features(cut)
    times = np.unique(feats.index.get_level_values("ts").to_numpy())
    keep = times[-sessions:]
    recent = feats[feats.index.get_level_values("ts").isin(keep)]
    return cut, recent


def _matured(ledger: Any, model: Any, cut: pd.DataFrame, label: int,
             horizon: int) -> pd.DataFrame:
    """The version's recorded predictions (job ``predict``) of the last
    :data:`PERFORMANCE_SESSIONS` sessions up to ``label`` whose realised forward return
    is in ``cut``."""
    from sqlalchemy import select

    from tradewarden.ledger import schema
    from tradewarden.ml.features import forward_returns
    times = np.unique(cut["ts"].to_numpy(dtype=np.int64))
    first = int(times[-PERFORMANCE_SESSIONS:][0])
    p = schema.ml_predictions
    rows = ledger.read("the recorded predictions", lambda conn: conn.execute(
        select(p.c.as_of_ts, p.c.symbol, p.c.score)
        .where(p.c.model_name == model.name, p.c.model_version == str(model.version),
               p.c.job == "predict", p.c.as_of_ts >= first,
               p.c.as_of_ts < label + _DAY)).all())
    frame = pd.DataFrame(rows, columns=["as_of_ts", "symbol", "score"])
    if frame.empty:
        return frame.assign(realised=pd.Series(dtype=float))
    frame["as_of_ts"] = frame["as_of_ts"].astype(np.int64) // _DAY * _DAY
    realised = forward_returns(cut, horizon)
    key = pd.MultiIndex.from_arrays([frame["as_of_ts"].to_numpy(), frame["symbol"].to_numpy()])
    frame["realised"] = realised.reindex(key).to_numpy()
    return frame.dropna(subset=["realised"]).reset_index(drop=True)


def _scores(model: Any, rows: pd.DataFrame) -> pd.Series:
    """The version's scores of feature rows, indexed like them (NaN rows dropped)."""
    out = pd.Series(np.asarray(model.predict(rows), dtype=float).ravel(), index=rows.index)
    return out[np.isfinite(out.to_numpy())]


def _row_report(row: Any, policy: PolicyOutcome, recorded: bool) -> DriftReport:
    feats = _loads(row["features"], {})
    shifts = tuple(Shift(**f) for f in feats.get("features", []))
    pred = _loads(row["predictions"], None)
    perf = _loads(row["performance"], {})
    return DriftReport(
        id=int(row["id"]), model_name=row["model_name"], model_version=row["model_version"],
        as_of_ts=int(row["as_of_ts"]), status=row["status"], features=shifts,
        predictions=None if not pred else Shift(**pred),
        performance=Performance(**perf), recorded=recorded, policy=policy,
        breaches=tuple(Breach(**b) for b in _loads(row["breaches"], [])),
        window=feats.get("window", {}))


def _recorded(ledger: Any, name: str, version: str, as_of_ts: int) -> Any:
    from sqlalchemy import select

    from tradewarden.ledger import schema
    r = schema.ml_drift_reports
    return ledger.read("drift reports", lambda conn: conn.execute(
        select(r).where(r.c.model_name == name, r.c.model_version == version,
                        r.c.as_of_ts == as_of_ts).order_by(r.c.id)).mappings().first())


def drift_reports(ledger: Any, model_name: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """Return a model's recorded drift reports, newest as-of first.

    Parameters
    ----------
    ledger : tradewarden.ledger.Ledger
    model_name : str
    limit : int, default 20

    Returns
    -------
    list of dict
        ``ml_drift_reports`` rows with the JSON columns parsed (``features`` is
        ``{"features": [...], "window": {...}}``).

    Raises
    ------
    LedgerError
        The table cannot be read.
    """
    from sqlalchemy import select

    from tradewarden.ledger import schema
    r = schema.ml_drift_reports
    rows = ledger.read("drift reports", lambda conn: conn.execute(
        select(r).where(r.c.model_name == model_name)
        .order_by(r.c.as_of_ts.desc(), r.c.id.desc()).limit(limit)).mappings().all())
    out = []
    for row in rows:
        d = dict(row)
        for col, empty in (("features", {}), ("predictions", None), ("performance", None),
                           ("breaches", [])):
            d[col] = _loads(d[col], empty)
        out.append(d)
    return out


def _streak(ledger: Any, name: str, version: str, as_of_ts: int,
            persist: int) -> tuple[int, tuple[int, ...], bool]:
    """(consecutive drift reports of ``version`` ending at ``as_of_ts``, their ids oldest
    first, whether a report of a later as-of exists)."""
    from sqlalchemy import select

    from tradewarden.ledger import schema
    r = schema.ml_drift_reports

    def work(conn: Any) -> tuple[Any, Any]:
        newer = conn.execute(select(r.c.id).where(r.c.model_name == name,
                                                  r.c.as_of_ts > as_of_ts).limit(1)).first()
        rows = conn.execute(select(r.c.id, r.c.model_version, r.c.status)
                            .where(r.c.model_name == name, r.c.as_of_ts <= as_of_ts)
                            .order_by(r.c.as_of_ts.desc(), r.c.id.desc())
                            .limit(max(persist, 1))).all()
        return newer, rows
    newer, rows = ledger.read("drift reports", work)
    ids = []
    for rid, ver, status in rows:
        if ver != version or status != "drift":
            break
        ids.append(int(rid))
    return len(ids), tuple(reversed(ids)), newer is not None


def _last_rollback(ledger: Any, name: str, version: str) -> Any:
    from sqlalchemy import select

    from tradewarden.ledger import schema
    e = schema.ml_model_events
    return ledger.read("model events", lambda conn: conn.execute(
        select(e).where(e.c.model_name == name, e.c.kind == "rollback",
                        e.c.from_version == version)
        .order_by(e.c.id.desc())).mappings().first())


def apply_policy(settings: Any, ledger: Any, registry: Any, report: DriftReport, *,
                 actor: str, now: int) -> PolicyOutcome:
    """Apply the rollback policy after a report (see the module docstring).

    Parameters
    ----------
    settings : MlSettings
        ``drift_persist_days``, ``auto_rollback``.
    ledger : tradewarden.ledger.Ledger
    registry : ModelRegistry
        ``production(name)`` and ``rollback(name, reason=, actor=, ledger=, ts=)``.
    report : DriftReport
        Recorded (its ``id`` is in ``ml_drift_reports``).
    actor : str
        Who a rollback is recorded as (``daemon``, ``cli``).
    now : int
        UTC epoch seconds of the rollback event.

    Returns
    -------
    PolicyOutcome

    Raises
    ------
    LedgerError
        The reports or the model events cannot be read or written.
    """
    persist = int(settings.drift_persist_days)
    name, version = report.model_name, report.model_version
    if report.status != "drift":
        return PolicyOutcome("none", 0, persist, (), version, None,
                             f"no drift: {name} v{version} stays in production")
    streak, ids, newer = _streak(ledger, name, version, report.as_of_ts, persist)
    if newer:
        return PolicyOutcome("superseded", streak, persist, ids, version, None,
                             "a report of a later session exists: the policy acts on that one")
    if streak < persist:
        return PolicyOutcome("watch", streak, persist, ids, version, None,
                             f"drift in {streak} consecutive report(s) of {name} v{version}; "
                             f"a rollback is due after {persist}")
    current = registry.production(name)
    if current is None or str(current.version) != version:
        ev = _last_rollback(ledger, name, version)
        how = (f"rolled back to v{ev['to_version']} (model event {ev['id']}, {ev['actor']})"
               if ev is not None else
               f"replaced (production is {'none' if current is None else 'v' + str(current.version)})")
        return PolicyOutcome("superseded", streak, persist, ids, version,
                             None if ev is None else ev["to_version"],
                             f"{name} v{version} was {how}: nothing more to do")
    breaches = "; ".join(b.text() for b in report.breaches if b.level == "drift")
    reason = (f"drift persisted {streak} reports (ml_drift_reports {', '.join(map(str, ids))}): "
              f"{breaches}")
    if not settings.auto_rollback:
        return PolicyOutcome("would_roll_back", streak, persist, ids, version, None,
                             f"{name} v{version} has drifted in {streak} consecutive reports; "
                             "auto_rollback is off: a person decides (`warden ml rollback` to "
                             "revert to the previous version, or retrain)")
    try:
        to = registry.rollback(name, reason=reason, actor=actor, ledger=ledger, ts=int(now))
    except ValueError as exc:
        return PolicyOutcome("cannot_roll_back", streak, persist, ids, version, None,
                             f"rollback due but not possible: {exc}")
    return PolicyOutcome("rolled_back", streak, persist, ids, version, str(to),
                         f"{name} rolled back from v{version} to v{to} ({reason}); undo with "
                         f"`warden ml promote {version}`")


def drift_report(settings: Any, ledger: Any, *, as_of: Any, now: int, registry: Any = None,
                 panel: pd.DataFrame | None = None, actor: str = "cli") -> DriftReport:
    """Measure the production version's drift as of a session, record it, apply the policy.

    Parameters
    ----------
    settings : MlSettings
        ``model_name``, the thresholds, ``horizon_days`` (when the version does not
        record its own), ``drift_persist_days``, ``auto_rollback``, ``data``.
    ledger : tradewarden.ledger.Ledger
        Where ``ml_predictions`` are read and ``ml_drift_reports`` written.
    as_of : date or str
        The NYSE session (``"2015-06-30"``); its bars must be in the data. The report's
        ``as_of_ts`` is the session's close, UTC epoch seconds, as in ``ml_predictions``
        (:func:`tradewarden.ml.predict.session_close_ts`).
    now : int
        UTC epoch seconds recorded as the report's ``ts`` (the caller's clock).
    registry : ModelRegistry, optional
        Default: the registry of ``settings`` beside ``ledger`` (:func:`open_registry`).
    panel : pandas.DataFrame, optional
        The universe (default :func:`~tradewarden.ml.features.load_universe`); rows
        after the as-of session are ignored.
    actor : str, default "cli"
        Who a rollback is recorded as.

    Returns
    -------
    DriftReport
        ``recorded`` False when a report of this model, version and as-of existed (it
        is returned as recorded; only the policy is evaluated again).

    Raises
    ------
    DriftError
        No production version, or the data does not reach the as-of session.
    ValueError
        A bad as-of date or one that is not an NYSE session
        (:class:`~tradewarden.ml.predict.PredictionRefused`).
    DataError
        The universe file cannot be read (file, row, field).
    LedgerError
        The ledger cannot be read or written.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from tradewarden.ledger import LedgerError, dumps, schema
    from tradewarden.ledger.store import utcnow_iso
    from tradewarden.ml.features import load_universe
    from tradewarden.ml.predict import session_close_ts
    close = session_close_ts(as_of)
    label = close // _DAY * _DAY
    reg = registry if registry is not None else open_registry(settings, ledger)
    name = settings.model_name
    model = reg.production(name)
    if model is None:
        raise DriftError(f"model {name}: no production version (train one with `warden ml "
                         "train` and promote it with `warden ml promote VERSION`)")
    version = str(model.version)
    earlier = _recorded(ledger, name, version, close)
    if earlier is not None:
        report = _row_report(earlier, PolicyOutcome("none", 0, settings.drift_persist_days,
                                                     (), version, None, ""), False)
        policy = apply_policy(settings, ledger, reg, report, actor=actor, now=now)
        return _row_report(earlier, policy, False)
    data = load_universe(settings) if panel is None else panel
    cut, recent = recent_window(data, label, settings)
    train = model.train_sample
    shifts = []
    for feat in model.features:
        if feat not in train.columns or feat not in recent.columns:
            raise DriftError(f"model {name} v{version}: feature {feat!r} is not in its "
                             "training sample or the computed features")
        try:
            shifts.append(compare(feat, train[feat], recent[feat], settings,
                                  null=window_null(train[feat])))
        except ValueError as exc:
            raise DriftError(f"model {name} v{version}, feature {feat}: {exc} (the recent "
                             f"window {_day(int(recent.index.get_level_values('ts').min()))}"
                             f"..{_day(label)} is inside the features' warm-up?)") from None
    ref_scores, cur_scores = _scores(model, train), _scores(model, recent)
    pred = (compare("score", ref_scores, cur_scores, settings, null=window_null(ref_scores),
                    warning_only=True)
            if ref_scores.size and cur_scores.size else None)
    horizon = int((getattr(model, "params", None) or {}).get("horizon_days",
                                                              settings.horizon_days))
    perf = performance(_matured(ledger, model, cut, label, horizon), settings,
                       getattr(model, "validation", None))
    breaches = [b for s in shifts for b in _shift_breaches("feature", s, settings)]
    if pred is not None:
        breaches += _shift_breaches("prediction", pred, settings)
    breaches += _performance_breaches(perf)
    status = worst([s.status for s in shifts] + ([pred.status] if pred else [])
                   + [perf.status])
    times = recent.index.get_level_values("ts")
    window = {"first_ts": int(times.min()), "last_ts": int(times.max()),
              "sessions": int(times.nunique()), "rows": len(recent)}
    r = schema.ml_drift_reports
    values = {"ts": int(now), "created_at": utcnow_iso(), "model_name": name,
              "model_version": version, "as_of_ts": close, "status": status,
              "features": dumps({"features": [s.as_dict() for s in shifts], "window": window}),
              "predictions": None if pred is None else dumps(pred.as_dict()),
              "performance": dumps(perf.as_dict()),
              "breaches": dumps([b.as_dict() for b in breaches])}
    ledger.drain()
    try:
        with ledger.engine.begin() as conn:
            rid = int(conn.execute(r.insert().values(**values)).inserted_primary_key[0])
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot record the drift report: {ledger.describe(exc)}") from None
    report = DriftReport(id=rid, model_name=name, model_version=version, as_of_ts=close,
                         status=status, features=tuple(shifts), predictions=pred,
                         performance=perf, breaches=tuple(breaches),
                         policy=PolicyOutcome("none", 0, settings.drift_persist_days, (),
                                              version, None, ""),
                         recorded=True, window=window)
    policy = apply_policy(settings, ledger, reg, report, actor=actor, now=now)
    return DriftReport(**{**report.__dict__, "policy": policy})


def open_registry(settings: Any, ledger: Any) -> Any:
    """Return the model registry of ``settings`` beside ``ledger``.

    Parameters
    ----------
    settings : MlSettings
        ``registry_uri`` (``None``: ``mlflow.db`` beside an SQLite ledger,
        :func:`tradewarden.ml.registry.default_registry_uri`).
    ledger : tradewarden.ledger.Ledger

    Returns
    -------
    tradewarden.ml.registry.ModelRegistry
    """
    from tradewarden.ml.registry import ModelRegistry, default_registry_uri
    return ModelRegistry(default_registry_uri(settings.registry_uri, ledger.db))
