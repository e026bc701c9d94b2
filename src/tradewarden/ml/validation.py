"""Validation that respects time: purged, embargoed walk-forward splits and their metrics.

Source: M. López de Prado, *Advances in Financial Machine Learning* (Wiley, 2018),
ch. 7 "Cross-Validation in Finance": section 7.4.1 (purging: drop every training
observation whose label interval overlaps the test set's) and 7.4.2 (embargo: drop
training observations that immediately follow a test set, because features and
labels are serially correlated). Here a label at session ``t`` spans ``[t, t+h]``
(``h`` the horizon, sessions), and splits walk forward: each test window is tested by
a model trained only on sessions before it.

Times are counted in *sessions*: the distinct values of ``times`` (date labels, UTC
epoch seconds) in ascending order, so a weekend or a holiday is not a day.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["Split", "split_metrics", "walk_forward_splits"]


class Split(tuple):
    """One split: ``(train, test)`` row positions (int64 arrays), with the test window.

    Attributes
    ----------
    train, test : numpy.ndarray of int64
        Positions into the ``times`` given to :func:`walk_forward_splits`, ascending.
    test_start, test_end : int
        First and last session of the test window (UTC epoch seconds, inclusive).
    train_end : int or None
        Last training session (UTC epoch seconds); ``None`` when ``train`` is empty.
    """

    test_start: int
    test_end: int
    train_end: int | None

    def __new__(cls, train: np.ndarray, test: np.ndarray, test_start: int, test_end: int,
                train_end: int | None) -> "Split":
        self = super().__new__(cls, (train, test))
        self.test_start, self.test_end, self.train_end = test_start, test_end, train_end
        return self

    @property
    def train(self) -> np.ndarray:
        """Training row positions."""
        return self[0]

    @property
    def test(self) -> np.ndarray:
        """Test row positions."""
        return self[1]


def _whole(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} {value!r}: give a whole number >= {minimum}")
    return int(value)


def walk_forward_splits(times: Sequence[int] | np.ndarray, *, n_splits: int, purge_days: int,
                        embargo_days: int, horizon_days: int,
                        train_days: int | None = None) -> list[Split]:
    """Split rows into walk-forward train/test sets with a purge and an embargo.

    The distinct sessions of ``times`` are cut into ``n_splits + 1`` consecutive
    blocks of (nearly) equal length; block ``k`` (``k = 1..n_splits``) is the test
    window of split ``k``. Its training rows are the sessions ``i`` with

    - ``i < s - purge_days`` (``s`` the test window's first session): with
      ``purge_days >= horizon_days`` no training label window ``[i, i+h]`` reaches
      the test window (López de Prado 7.4.1);
    - ``i`` not within ``embargo_days`` sessions after the end of *any* test window
      (López de Prado 7.4.2): the sessions right after a test window, whose features
      overlap the test labels' period, never train a later split;
    - with ``train_days``, ``i >= s - purge_days - train_days`` (a rolling window).

    Parameters
    ----------
    times : array_like of int, shape (n,)
        Each row's session (date label, UTC epoch seconds); rows may repeat a session
        (one per symbol) and need not be sorted.
    n_splits : int
        Test windows, >= 1.
    purge_days : int
        Sessions dropped before each test window, >= ``horizon_days``.
    embargo_days : int
        Sessions after each test window kept out of all training, >= 0.
    horizon_days : int
        Label horizon ``h``, sessions, >= 1.
    train_days : int, optional
        Most sessions a training set spans (default: all earlier sessions).

    Returns
    -------
    list of Split
        ``n_splits`` splits in time order; a split whose training set is empty (too
        little history before it) is still returned, with an empty ``train``.

    Raises
    ------
    ValueError
        A bad count, ``purge_days < horizon_days``, or fewer than ``n_splits + 1``
        distinct sessions.
    """
    n_splits = _whole("n_splits", n_splits, 1)
    horizon = _whole("horizon_days", horizon_days, 1)
    purge = _whole("purge_days", purge_days, 0)
    embargo = _whole("embargo_days", embargo_days, 0)
    if purge < horizon:
        raise ValueError(f"purge_days ({purge}) must be at least horizon_days ({horizon}), "
                         "or training labels overlap the test window")
    if train_days is not None:
        train_days = _whole("train_days", train_days, 1)
    t = np.asarray(times, dtype=np.int64)
    if t.ndim != 1:
        raise ValueError(f"times must be one-dimensional, got shape {t.shape}")
    sessions, pos = np.unique(t, return_inverse=True)
    m = sessions.shape[0]
    if m < n_splits + 1:
        raise ValueError(f"{m} distinct sessions cannot make {n_splits} walk-forward splits "
                         f"(need at least {n_splits + 1})")
    bounds = np.linspace(0, m, n_splits + 2).round().astype(np.int64)
    embargoed = np.zeros(m, dtype=bool)
    for k in range(1, n_splits + 1):
        end = int(bounds[k + 1])
        embargoed[end:min(m, end + embargo)] = True
    out: list[Split] = []
    for k in range(1, n_splits + 1):
        s, e = int(bounds[k]), int(bounds[k + 1])   # test sessions s .. e-1
        ok = np.zeros(m, dtype=bool)
        hi = max(0, s - purge)
        lo = 0 if train_days is None else max(0, hi - train_days)
        ok[lo:hi] = True
        ok &= ~embargoed
        train = np.flatnonzero(ok[pos]).astype(np.int64)
        test = np.flatnonzero((pos >= s) & (pos < e)).astype(np.int64)
        train_end = int(sessions[np.flatnonzero(ok)[-1]]) if ok.any() else None
        out.append(Split(train, test, int(sessions[s]), int(sessions[e - 1]), train_end))
    return out


def split_metrics(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray,
                  times: Sequence[int] | np.ndarray, *, quantile: float = 0.2
                  ) -> dict[str, float | int]:
    """Measure predictions against realised labels, date by date.

    Parameters
    ----------
    y_true : array_like of float, shape (n,)
        Realised forward returns (fractions over the horizon).
    y_pred : array_like of float, shape (n,)
        Scores (any scale; only their order within a date and their sign are used).
    times : array_like of int, shape (n,)
        Each row's session (UTC epoch seconds); the cross-section is the rows of one
        session.
    quantile : float, default 0.2
        Share of each cross-section in the top and in the bottom bucket (at least one
        name each).

    Returns
    -------
    dict
        ``ic``: mean over sessions of the Spearman rank correlation of ``y_pred`` and
        ``y_true`` within the session (the Pearson correlation of their average ranks,
        :func:`scipy.stats.rankdata`, which is :func:`scipy.stats.spearmanr`'s value,
        computed for all sessions of one size at once; the
        information coefficient of Grinold and Kahn, *Active Portfolio Management*,
        1999), over sessions with at least 3 names and neither side constant;
        ``ic_std``: its standard deviation across sessions (ddof 1; NaN below 2);
        ``ic_ir``: ``ic / ic_std``; ``hit_rate``: share of rows where
        ``sign(y_pred) == sign(y_true)`` (zeros excluded); ``spread``: mean over
        sessions of the mean ``y_true`` of the top bucket minus the bottom bucket
        (a fraction over the horizon, overlapping windows, not annualised);
        ``n_dates`` sessions with an IC, ``n`` rows. NaN rows are dropped first; a
        metric without data is NaN.

    Raises
    ------
    ValueError
        Arrays of different lengths, or ``quantile`` outside (0, 0.5].
    """
    from scipy.stats import rankdata

    yt = np.asarray(y_true, dtype=np.float64)
    yp = np.asarray(y_pred, dtype=np.float64)
    tt = np.asarray(times, dtype=np.int64)
    if not (yt.shape == yp.shape == tt.shape) or yt.ndim != 1:
        raise ValueError(f"y_true, y_pred and times must be 1-D of one length, got "
                         f"{yt.shape}, {yp.shape}, {tt.shape}")
    if not 0 < quantile <= 0.5:
        raise ValueError(f"quantile {quantile!r}: give a share in (0, 0.5]")
    keep = np.isfinite(yt) & np.isfinite(yp)
    yt, yp, tt = yt[keep], yp[keep], tt[keep]
    order = np.lexsort((yp, tt))            # by session, then by prediction (ascending)
    yt, yp, tt = yt[order], yp[order], tt[order]
    cuts = np.flatnonzero(np.diff(tt)) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, tt.shape[0]]
    ics: list[float] = []
    spreads: list[float] = []
    # sessions grouped by cross-section size: one vectorised pass per size
    sizes = ends - starts
    for n in np.unique(sizes):
        first = starts[sizes == n]
        take = first[:, None] + np.arange(n)[None, :]
        t_, p_ = yt[take], yp[take]                     # shape (sessions, n)
        varied = (np.ptp(p_, axis=1) > 0)
        if n >= 2:
            k = max(1, int(np.floor(n * quantile)))
            # rows are sorted by prediction: the top bucket is the last k
            spread = t_[:, -k:].mean(axis=1) - t_[:, :k].mean(axis=1)
            spreads.extend(spread[varied].tolist())
        if n >= 3:
            ok = varied & (np.ptp(t_, axis=1) > 0)
            if ok.any():
                # Spearman's rho = Pearson correlation of the average ranks (ties share
                # the mean rank), as scipy.stats.spearmanr computes it
                rp = rankdata(p_[ok], axis=1)
                rt = rankdata(t_[ok], axis=1)
                rp -= rp.mean(axis=1, keepdims=True)
                rt -= rt.mean(axis=1, keepdims=True)
                rho = (rp * rt).sum(axis=1) / np.sqrt((rp ** 2).sum(axis=1)
                                                      * (rt ** 2).sum(axis=1))
                ics.extend(rho.tolist())
    nz = (np.sign(yt) != 0) & (np.sign(yp) != 0)
    ic = float(np.mean(ics)) if ics else float("nan")
    ic_std = float(np.std(ics, ddof=1)) if len(ics) > 1 else float("nan")
    return {
        "ic": ic,
        "ic_std": ic_std,
        "ic_ir": ic / ic_std if ic_std and np.isfinite(ic_std) and ic_std > 0 else float("nan"),
        "hit_rate": float(np.mean(np.sign(yt[nz]) == np.sign(yp[nz]))) if nz.any()
        else float("nan"),
        "spread": float(np.mean(spreads)) if spreads else float("nan"),
        "n_dates": len(ics),
        "n": int(yt.shape[0]),
    }
