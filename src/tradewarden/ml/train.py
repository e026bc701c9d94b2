"""Training: fit a model on features and labels, validate it walk-forward, fingerprint the data.

:func:`fit` builds one estimator (scikit-learn ``Ridge`` on standardised features, or
LightGBM's ``LGBMRegressor``), deterministically: fixed seeds, one thread.
:func:`train` runs the whole training of a model version as of a date: the panel cut
at that date (nothing later is read), the training window, the walk-forward
validation with a purge and an embargo (:mod:`tradewarden.ml.validation`), the final
fit on the whole window and the data hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tradewarden.ml.features import FEATURES, compute_features, data_hash, forward_returns
from tradewarden.ml.validation import split_metrics, walk_forward_splits

__all__ = ["SEED", "TrainResult", "fit", "model_params", "train", "training_rows"]

#: Random seed of every stochastic estimator.
SEED = 20_240_611
_YEAR = 365.25 * 86_400
#: LightGBM settings besides ``n_estimators``: shallow trees, shrinkage and large leaves
#: for few, noisy rows; ``deterministic`` with one thread gives bit-identical models.
_LGBM = {"learning_rate": 0.03, "num_leaves": 8, "max_depth": 3, "min_child_samples": 50,
         "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8,
         "reg_lambda": 1.0, "random_state": SEED, "n_jobs": 1, "deterministic": True,
         "force_row_wise": True, "verbose": -1}


def model_params(settings: Any) -> dict[str, Any]:
    """Return the estimator's parameters as recorded with a version.

    Parameters
    ----------
    settings : MlSettings

    Returns
    -------
    dict
        ``algorithm`` and the estimator's hyper-parameters (``alpha`` for ridge; the
        LightGBM arguments with ``n_estimators``), plus ``horizon_days``.
    """
    if settings.algorithm == "ridge":
        est = {"alpha": float(settings.ridge_alpha)}
    else:
        est = {**_LGBM, "n_estimators": int(settings.n_estimators)}
    return {"algorithm": settings.algorithm, "horizon_days": int(settings.horizon_days), **est}


def fit(features: pd.DataFrame, labels: pd.Series, settings: Any) -> Any:
    """Fit the configured estimator on feature rows and their labels.

    Parameters
    ----------
    features : pandas.DataFrame
        Shape (n, len(FEATURES)), columns :data:`~tradewarden.ml.features.FEATURES`
        (extra columns are ignored; the order used is FEATURES').
    labels : pandas.Series
        Shape (n,), forward returns (fractions), aligned with ``features`` by
        position. Rows where a feature or the label is NaN are dropped.
    settings : MlSettings
        ``algorithm`` (``ridge``: ``StandardScaler`` then ``Ridge(alpha=ridge_alpha)``
        in a scikit-learn ``Pipeline``; ``lightgbm``: ``LGBMRegressor`` with the
        parameters of :func:`model_params`, seed :data:`SEED`, ``n_jobs=1``).

    Returns
    -------
    estimator
        A fitted scikit-learn-compatible regressor; ``predict`` takes an array of
        shape (m, len(FEATURES)) and returns predicted forward returns, shape (m,).

    Raises
    ------
    ValueError
        A missing feature column, lengths that differ, or fewer than 10 complete rows.
    """
    missing = [f for f in FEATURES if f not in features.columns]
    if missing:
        raise ValueError(f"features lack column(s) {', '.join(missing)}")
    if len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    x = features.loc[:, list(FEATURES)].to_numpy(dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    keep = np.isfinite(x).all(axis=1) & np.isfinite(y)
    if int(keep.sum()) < 10:
        raise ValueError(f"only {int(keep.sum())} complete rows (features and label) to "
                         "train on; need at least 10: give more history")
    x, y = np.ascontiguousarray(x[keep]), y[keep]
    params = model_params(settings)
    if settings.algorithm == "ridge":
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
        model = Pipeline([("scale", StandardScaler()), ("ridge", Ridge(alpha=params["alpha"]))])
        return model.fit(x, y)
    from lightgbm import LGBMRegressor
    est = {k: v for k, v in params.items() if k not in ("algorithm", "horizon_days")}
    return LGBMRegressor(**est).fit(x, y)


def training_rows(panel: pd.DataFrame, horizon_days: int, *, end_ts: int | None = None,
                  train_years: float | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """Return the complete (features, label) rows of a panel cut at ``end_ts``.

    Parameters
    ----------
    panel : pandas.DataFrame
        Long OHLCV panel (:data:`~tradewarden.ml.features.PANEL_COLUMNS`).
    horizon_days : int
        Label horizon, sessions.
    end_ts : int, optional
        Last session to read (date label, UTC epoch seconds); bars after it are
        dropped *before* anything is computed, so a label needing a later close is
        NaN and its row left out. Default: the panel's last session.
    train_years : float, optional
        Keep rows with ``ts > end_ts - train_years * 365.25 days`` (default: all).

    Returns
    -------
    features : pandas.DataFrame
        Shape (n, len(FEATURES)), indexed by (``ts``, ``symbol``), no NaN.
    labels : pandas.Series
        Shape (n,), the forward returns of the same rows.
    """
    cut = panel if end_ts is None else panel[panel["ts"] <= int(end_ts)]
    feats = compute_features(cut)
    labels = forward_returns(cut, horizon_days).reindex(feats.index)
    keep = feats.notna().all(axis=1).to_numpy() & labels.notna().to_numpy()
    if train_years is not None and len(feats):
        last = int(cut["ts"].max()) if end_ts is None else int(end_ts)
        ts = feats.index.get_level_values("ts").to_numpy()
        keep &= ts > last - train_years * _YEAR
    return feats[keep], labels[keep]


@dataclass
class TrainResult:
    """One training run: the final model, its lineage and its validation.

    Attributes
    ----------
    estimator : object
        Fitted on every row of the training window (see :func:`fit`).
    features : tuple of str
        Feature names in the order ``estimator.predict`` expects.
    params : dict
        :func:`model_params`.
    training_window : tuple of int
        First and last session whose *features* were trained on (date labels, UTC
        epoch seconds); the last label reaches ``horizon_days`` sessions further,
        at most ``end_ts``.
    end_ts : int
        The as-of session: no bar after it was read.
    validation : dict
        ``splits``: per split ``{"test_start", "test_end", "train_end", "n_train",
        "n_test", "ic", "ic_std", "ic_ir", "hit_rate", "spread", "n_dates", "n"}``;
        ``mean``: the mean of ``ic``, ``hit_rate`` and ``spread`` over splits with a
        value; ``n_splits``, ``purge_days``, ``embargo_days``, ``horizon_days``.
    data_hash : str
        :func:`~tradewarden.ml.features.data_hash` of the panel cut at ``end_ts``.
    train_sample : pandas.DataFrame
        The training feature rows (shape (n, len(FEATURES)), indexed by (``ts``,
        ``symbol``)): the reference distribution for drift.
    n_rows : int
        Training rows of the final fit.
    labels : pandas.Series
        The labels of those rows (forward returns, fractions), aligned with
        ``train_sample``.
    """

    estimator: Any
    features: tuple[str, ...]
    params: dict[str, Any]
    training_window: tuple[int, int]
    end_ts: int
    validation: dict[str, Any]
    data_hash: str
    train_sample: pd.DataFrame
    n_rows: int
    labels: pd.Series = field(repr=False, default_factory=lambda: pd.Series(dtype=float))


def train(panel: pd.DataFrame, settings: Any, *, end_ts: int | None = None) -> TrainResult:
    """Train a model version as of ``end_ts``: validate walk-forward, then fit on the window.

    Parameters
    ----------
    panel : pandas.DataFrame
        Long OHLCV panel (:func:`~tradewarden.ml.features.load_universe`).
    settings : MlSettings
        ``algorithm``, ``horizon_days``, ``train_years``, ``n_splits``, ``purge_days``,
        ``embargo_days`` (and the estimator's parameters).
    end_ts : int, optional
        As-of session (date label, UTC epoch seconds); default the panel's last.
        Bars after it are never read.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        No rows at or before ``end_ts``, too few complete rows to train on, or too few
        sessions for ``n_splits`` splits.
    """
    if end_ts is not None:
        panel = panel[panel["ts"] <= int(end_ts)]
    if panel.empty:
        raise ValueError(f"no bars at or before end_ts {end_ts}")
    last = int(panel["ts"].max())
    x, y = training_rows(panel, settings.horizon_days, train_years=settings.train_years)
    if len(x) < 10:
        raise ValueError(f"only {len(x)} complete training rows up to ts {last}: give more "
                         "history (features need 120 sessions of warm-up)")
    times = x.index.get_level_values("ts").to_numpy(dtype=np.int64)
    splits = walk_forward_splits(times, n_splits=settings.n_splits,
                                 purge_days=settings.purge_days,
                                 embargo_days=settings.embargo_days,
                                 horizon_days=settings.horizon_days)
    per_split = []
    for sp in splits:
        row: dict[str, Any] = {"test_start": sp.test_start, "test_end": sp.test_end,
                               "train_end": sp.train_end, "n_train": int(sp.train.shape[0]),
                               "n_test": int(sp.test.shape[0])}
        if sp.train.shape[0] >= 10:
            est = fit(x.iloc[sp.train], y.iloc[sp.train], settings)
            pred = est.predict(np.ascontiguousarray(x.iloc[sp.test].to_numpy(dtype=np.float64)))
            row.update(split_metrics(y.iloc[sp.test].to_numpy(), pred, times[sp.test]))
        per_split.append(row)

    def mean_of(key: str) -> float:
        vals = [r[key] for r in per_split if key in r and np.isfinite(r[key])]
        return float(np.mean(vals)) if vals else float("nan")

    validation = {"splits": per_split,
                  "mean": {k: mean_of(k) for k in ("ic", "hit_rate", "spread")},
                  "n_splits": settings.n_splits, "purge_days": settings.purge_days,
                  "embargo_days": settings.embargo_days, "horizon_days": settings.horizon_days}
    estimator = fit(x, y, settings)
    return TrainResult(estimator=estimator, features=FEATURES, params=model_params(settings),
                       training_window=(int(times.min()), int(times.max())), end_ts=last,
                       validation=validation, data_hash=data_hash(panel),
                       train_sample=x.copy(), n_rows=int(len(x)), labels=y.copy())
