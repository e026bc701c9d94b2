"""The daily prediction job: features as of a session's close, scores from the production
model, recorded in the ledger's ``ml_predictions``.

``predict(settings, ledger, as_of=DATE)``:

1. ``as_of`` must be an NYSE session (:mod:`tradewarden.data.calendars`); its close
   (16:00 America/New_York, 13:00 on an early close) in UTC epoch seconds is the
   prediction's ``as_of_ts``.
2. The universe (:func:`~tradewarden.ml.features.load_universe`) is cut at ``as_of``
   (nothing later is read) and must reach it: every symbol needs its bar of that
   session, or the job is refused naming the file and the last date it holds.
3. The features of that session (:func:`~tradewarden.ml.features.compute_features`)
   go to the production version of ``[ml] model_name``
   (:meth:`~tradewarden.ml.registry.ModelRegistry.production`); none is refused.
4. One row per symbol goes to ``ml_predictions``: the model's name and version,
   ``as_of_ts``, the score, its rank (1 = best; equal scores in alphabetical order),
   the SHA-256 of the feature row (:func:`~tradewarden.ml.features.feature_hash`)
   and the job (``predict``). Running the job again for the same session and version
   writes nothing and says so.

Convention: ``as_of_ts`` in ``ml_predictions`` is the session's **close** in UTC epoch
seconds, as the schema says; the bars and the features label the same session by its
date at 00:00 UTC (:func:`session_label` turns one into the other). The rank strategy's
scores file carries the date (:func:`predictions_frame`, then
:func:`~tradewarden.ml.targets.write_scores_file`), so a deployment decides on the
session's daily bar with that evening's scores and trades at the next open.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, select
from sqlalchemy.exc import SQLAlchemyError

from tradewarden.ledger import Ledger, LedgerError, schema
from tradewarden.ledger.store import utcnow_iso

__all__ = ["JOBS", "PredictionRefused", "predict", "predictions_frame", "record_predictions",
           "recorded_predictions", "score_rows", "session_close_ts", "session_label",
           "universe_source", "update_scores_file"]

#: ``ml_predictions.job`` values: the daily job and the walk-forward backtest.
JOBS = ("predict", "backtest")
_DAY = 86_400


class PredictionRefused(ValueError):
    """The prediction job cannot run for this as-of date; the message says why in one line."""


def session_close_ts(day: object) -> int:
    """Return the close of an NYSE session, UTC epoch seconds.

    Parameters
    ----------
    day : date, str or Timestamp
        The session's date (America/New_York).

    Returns
    -------
    int
        The close (16:00 America/New_York, 13:00 on an early close) as UTC epoch seconds,
        from :mod:`exchange_calendars`' ``XNYS`` calendar.

    Raises
    ------
    PredictionRefused
        ``day`` is not a date, or not an NYSE session (a weekend or a holiday).
    """
    from tradewarden.data.calendars import _calendar, as_date
    try:
        d = as_date(day, "as-of date")
    except ValueError as exc:
        raise PredictionRefused(str(exc)) from None
    cal = _calendar(d, d)
    stamp = pd.Timestamp(d)
    if not cal.is_session(stamp):
        raise PredictionRefused(f"as-of date {d.isoformat()} ({d:%A}) is not an NYSE session")
    return int(cal.session_close(stamp).timestamp())


def session_label(as_of_ts: int) -> int:
    """Return the date label (00:00 UTC, epoch seconds) of the session closing at ``as_of_ts``.

    Parameters
    ----------
    as_of_ts : int
        A session's close, UTC epoch seconds (``ml_predictions.as_of_ts``). NYSE closes
        (18:00-21:00 UTC) fall on the session's own UTC date.

    Returns
    -------
    int
        The label the bars and features of that session carry.
    """
    return int(as_of_ts) // _DAY * _DAY


def universe_source(settings: Any) -> str:
    """Return the name of the universe's file, for messages (``bundled:<file>`` or the path).

    Parameters
    ----------
    settings : MlSettings
    """
    if settings.data is not None:
        return str(settings.data)
    from tradewarden.data.equities import BUNDLED_EQUITY_FILES
    return f"bundled:{BUNDLED_EQUITY_FILES['equities']}"


def _production(settings: Any, ledger: Ledger) -> Any:
    from tradewarden.ml.registry import ModelRegistry, default_registry_uri
    registry = ModelRegistry(default_registry_uri(settings.registry_uri, ledger.db))
    model = registry.production(settings.model_name)
    if model is None:
        raise PredictionRefused(f"model {settings.model_name!r} has no production version in "
                                f"the registry: train one (`warden ml train`) and promote it "
                                f"(`warden ml promote VERSION`)")
    return model


def _cross_section(settings: Any, panel: pd.DataFrame, day: date) -> pd.DataFrame:
    """The feature rows of session ``day``, refusing data that does not reach it."""
    from tradewarden.ml.features import FEATURES, compute_features

    label = (day - date(1970, 1, 1)).days * _DAY
    source = universe_source(settings)
    symbols = sorted(panel["symbol"].unique())
    if not symbols:
        raise PredictionRefused(f"{source}: no bars for the universe")
    last = panel.groupby("symbol")["ts"].max()
    lacking = [s for s in symbols if label not in set(panel.loc[panel["symbol"] == s, "ts"])]
    if lacking:
        sym = lacking[0]
        had = pd.Timestamp(int(last[sym]), unit="s").date().isoformat()
        if int(last[sym]) < label:
            raise PredictionRefused(f"{source}: {sym} does not reach the as-of date "
                                    f"{day.isoformat()} (its last date is {had})")
        raise PredictionRefused(f"{source}: {sym} has no bar of the as-of date "
                                f"{day.isoformat()} (its rows skip that session)")
    cut = panel[panel["ts"] <= label]
    feats = compute_features(cut)
    rows = feats.xs(label, level="ts").reindex(symbols)
    incomplete = rows[list(FEATURES)].isna().any(axis=1)
    if incomplete.any():
        sym = str(rows.index[incomplete.to_numpy()][0])
        missing = [f for f in FEATURES if np.isnan(rows.loc[sym, f])]
        first = pd.Timestamp(int(panel.loc[panel["symbol"] == sym, "ts"].min()),
                             unit="s").date().isoformat()
        raise PredictionRefused(f"{source}: the features of {sym} as of {day.isoformat()} are "
                                f"not all defined ({', '.join(missing)}; its data starts "
                                f"{first}, and features need 120 sessions of history)")
    return rows


def _ranked(symbols: list[str], scores: np.ndarray) -> np.ndarray:
    """Rank 1 = highest score; equal scores in alphabetical order."""
    order = np.lexsort((np.asarray(symbols, dtype=str), -scores))
    ranks = np.empty(len(symbols), dtype=np.int64)
    ranks[order] = np.arange(1, len(symbols) + 1)
    return ranks


def score_rows(model_name: str, version: str, as_of_ts: int, features: pd.DataFrame,
               scores: np.ndarray, job: str) -> list[dict[str, Any]]:
    """Return the ``ml_predictions`` rows of one cross-section.

    Parameters
    ----------
    model_name, version : str
    as_of_ts : int
        The session's close, UTC epoch seconds.
    features : DataFrame, shape (k, len(FEATURES))
        The feature rows, indexed by symbol, columns FEATURES.
    scores : ndarray of float, shape (k,)
        The model's predictions for those rows (predicted forward returns, fractions).
    job : {"predict", "backtest"}

    Returns
    -------
    list of dict
        One row per symbol: ``model_name``, ``model_version``, ``as_of_ts``, ``symbol``,
        ``score``, ``rank`` (1 = best), ``feature_hash``, ``job``.

    Raises
    ------
    ValueError
        A score that is not finite (naming the symbol), or an unknown job.
    """
    from tradewarden.ml.features import FEATURES, feature_hash

    if job not in JOBS:
        raise ValueError(f"job {job!r}: use one of {', '.join(JOBS)}")
    scores = np.asarray(scores, dtype=np.float64)
    symbols = [str(s) for s in features.index]
    bad = ~np.isfinite(scores)
    if bad.any():
        raise ValueError(f"model {model_name} version {version}: score of "
                         f"{symbols[int(np.flatnonzero(bad)[0])]} is not finite")
    ranks = _ranked(symbols, scores)
    values = features.loc[:, list(FEATURES)].to_numpy(dtype=np.float64)
    return [{"model_name": model_name, "model_version": str(version), "as_of_ts": int(as_of_ts),
             "symbol": sym, "score": float(scores[i]), "rank": int(ranks[i]),
             "feature_hash": feature_hash(values[i]), "job": job}
            for i, sym in enumerate(symbols)]


def record_predictions(ledger: Ledger, rows: list[Mapping[str, Any]]) -> int:
    """Insert prediction rows that are not recorded yet; return how many were inserted.

    A row is already recorded when the ledger holds one with the same model name,
    version, ``as_of_ts``, symbol and job (the table's unique key); those are left as
    they are, so running a job twice writes nothing new.

    Parameters
    ----------
    ledger : Ledger
    rows : list of mapping
        :func:`score_rows` output.

    Returns
    -------
    int
        Rows inserted, in one transaction.

    Raises
    ------
    LedgerError
        The database refused the write (named, password masked).
    """
    if not rows:
        return 0
    t = schema.ml_predictions
    keys = {(r["model_name"], r["model_version"], r["job"]) for r in rows}
    stamp = utcnow_iso()
    ledger.drain()
    try:
        with ledger.engine.begin() as conn:
            have: set[tuple[str, str, int, str, str]] = set()
            for name, version, job in keys:
                times = sorted({int(r["as_of_ts"]) for r in rows if r["model_name"] == name
                                and r["model_version"] == version and r["job"] == job})
                q = select(t.c.as_of_ts, t.c.symbol).where(and_(
                    t.c.model_name == name, t.c.model_version == version, t.c.job == job,
                    t.c.as_of_ts >= times[0], t.c.as_of_ts <= times[-1]))
                have.update((name, version, int(a), s, job) for a, s in conn.execute(q))
            new = [{**r, "created_at": stamp} for r in rows
                   if (r["model_name"], r["model_version"], int(r["as_of_ts"]), r["symbol"],
                       r["job"]) not in have]
            if new:
                conn.execute(t.insert(), new)
            return len(new)
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot record predictions: {ledger.describe(exc)}") from None


def recorded_predictions(ledger: Ledger, model_name: str, *, job: str = "predict",
                         version_prefix: str | None = None, as_of_ts: int | None = None
                         ) -> pd.DataFrame:
    """Read recorded predictions back from the ledger.

    Parameters
    ----------
    ledger : Ledger
    model_name : str
    job : {"predict", "backtest"}
    version_prefix : str, optional
        Only versions starting with this text (a backtest's ``bt-<id>-``).
    as_of_ts : int, optional
        Only this session close (UTC epoch seconds).

    Returns
    -------
    DataFrame
        Columns ``model_name``, ``model_version``, ``as_of_ts``, ``symbol``, ``score``,
        ``rank``, ``feature_hash``, ``job``, ``created_at``, sorted by ``as_of_ts``,
        ``symbol`` and ``id``.

    Raises
    ------
    LedgerError
        The database cannot be read.
    """
    t = schema.ml_predictions
    cols = ["model_name", "model_version", "as_of_ts", "symbol", "score", "rank",
            "feature_hash", "job", "created_at"]
    q = select(*(t.c[c] for c in cols)).where(and_(t.c.model_name == model_name, t.c.job == job))
    if version_prefix is not None:
        q = q.where(t.c.model_version.startswith(version_prefix, autoescape=True))
    if as_of_ts is not None:
        q = q.where(t.c.as_of_ts == int(as_of_ts))
    ledger.drain()
    try:
        with ledger.engine.connect() as conn:
            rows = conn.execute(q.order_by(t.c.as_of_ts, t.c.symbol, t.c.id)).all()
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read predictions: {ledger.describe(exc)}") from None
    return pd.DataFrame([tuple(r) for r in rows], columns=cols)


def predictions_frame(recorded: pd.DataFrame) -> pd.DataFrame:
    """Return recorded predictions as the input of the scores file, one row per session and symbol.

    When a session was predicted by several versions (a promotion, then the job run
    again), the row recorded last wins.

    Parameters
    ----------
    recorded : DataFrame
        :func:`recorded_predictions` output.

    Returns
    -------
    DataFrame
        Columns ``as_of`` (the session date, ``datetime64``), ``symbol``, ``score``,
        ``model_version``, sorted by ``as_of`` then ``symbol``.
    """
    if recorded.empty:
        return pd.DataFrame({"as_of": pd.Series(dtype="datetime64[ns]"),
                             "symbol": pd.Series(dtype=object),
                             "score": pd.Series(dtype=float),
                             "model_version": pd.Series(dtype=object)})
    last = recorded.drop_duplicates(["as_of_ts", "symbol"], keep="last")
    day = pd.to_datetime(last["as_of_ts"].map(session_label), unit="s")
    out = pd.DataFrame({"as_of": day.to_numpy(), "symbol": last["symbol"].to_numpy(),
                        "score": last["score"].to_numpy(dtype=float),
                        "model_version": last["model_version"].to_numpy()})
    return out.sort_values(["as_of", "symbol"], kind="stable").reset_index(drop=True)


def update_scores_file(settings: Any, ledger: Ledger, path: str | os.PathLike[str]) -> Path:
    """Write the rank strategy's scores file from every prediction the daily job recorded.

    Call it after :func:`predict` (the daemon's daily job, a cron line after
    ``warden ml predict``) so that a deployment with ``strategy = "rank"`` and
    :func:`~tradewarden.ml.targets.rank_params` trades the new session's targets; the
    strategy reads the file again when it changes.

    Parameters
    ----------
    settings : MlSettings
        ``model_name`` and the conversion (see :mod:`tradewarden.ml.targets`).
    ledger : Ledger
    path : str or os.PathLike
        The scores file (replaced atomically).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    PredictionRefused
        The ledger holds no prediction of the model yet.
    LedgerError
        The ledger cannot be read.
    OSError
        The file cannot be written.
    """
    from tradewarden.ml.targets import write_scores_file

    frame = predictions_frame(recorded_predictions(ledger, settings.model_name))
    if frame.empty:
        raise PredictionRefused(f"no predictions of model {settings.model_name!r} in the "
                                f"ledger yet: run `warden ml predict --as-of DATE` first")
    return write_scores_file(frame, path, settings)


def predict(settings: Any, ledger: Ledger, *, as_of: object) -> pd.DataFrame:
    """Score the universe as of a session's close with the production model; record it.

    Parameters
    ----------
    settings : MlSettings
        ``model_name``, ``registry_uri``, ``universe``, ``data``.
    ledger : Ledger
        Where the predictions go (``ml_predictions``, job ``predict``); the registry
        defaults to ``mlflow.db`` beside it.
    as_of : date or str
        The session (its date, America/New_York).

    Returns
    -------
    DataFrame
        One row per symbol, best first: ``symbol``, ``score`` (the predicted
        ``horizon_days`` forward return, a fraction), ``rank`` (1 = best),
        ``feature_hash``, ``model_name``, ``model_version``, ``as_of_ts`` (the close,
        UTC epoch seconds), ``as_of`` (the session date). ``attrs["written"]`` is the
        number of rows inserted (0 when the session was already recorded for this
        version, then ``attrs["already_recorded"]`` is ``True``).

    Raises
    ------
    PredictionRefused
        Not a session, no production version, data that does not reach ``as_of``
        (naming the file, the symbol and its last date), or features not yet defined.
    tradewarden.data.DataError
        The universe's file is bad (file, row, field).
    LedgerError
        The ledger cannot be written.
    """
    from tradewarden.ml.features import load_universe

    close_ts = session_close_ts(as_of)
    day = pd.Timestamp(session_label(close_ts), unit="s").date()
    model = _production(settings, ledger)
    panel = load_universe(settings)
    rows = _cross_section(settings, panel, day)
    x = rows.loc[:, list(model.features)]
    scores = np.asarray(model.predict(x), dtype=np.float64)
    records = score_rows(settings.model_name, str(model.version), close_ts, rows, scores,
                         "predict")
    written = record_predictions(ledger, records)
    out = pd.DataFrame(records).drop(columns=["job"]).sort_values("rank", kind="stable")
    out.insert(len(out.columns), "as_of", day.isoformat())
    out = out.reset_index(drop=True)
    out.attrs["written"] = written
    out.attrs["already_recorded"] = written == 0
    return out
