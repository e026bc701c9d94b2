"""The walk-forward backtest: what the pipeline would have done, through the engine.

``backtest(ml, db, ...)``:

1. The prediction sessions are the universe's sessions from ``start`` (default: the
   first session ``train_years`` after the data's first) to ``end`` (default: the last).
2. Every ``retrain_every_days`` sessions, starting with the first, a model is fitted
   (:func:`~tradewarden.ml.train.fit`) on the rows
   :func:`~tradewarden.ml.train.training_rows` returns for the panel cut at the last
   session **strictly before** that retraining day: no bar of the retraining day or
   later is read, and a label that needs a later close is NaN and left out (the purge
   of the label horizon). The window is ``train_years``.
3. That model scores each session until the next retraining, at the session's close
   (the features of :func:`~tradewarden.ml.features.compute_features`, which read bars
   at or before the session only). The scores go to ``ml_predictions`` with job
   ``backtest`` and version ``bt-<backtest id>-<retraining date YYYYMMDD>``.
4. The predictions become the rank strategy's scores file
   (:func:`~tradewarden.ml.targets.write_scores_file`), and the universe is replayed
   through the engine with ``strategy = "rank"`` and :func:`~tradewarden.ml.targets.rank_params`
   (:func:`~tradewarden.ops.kernel.run_replay`, as ``warden replay`` does): the same risk manager, governor
   and ledger as every other run, in one portfolio account.
5. The result: the out-of-sample information coefficient, hit rate and top-minus-bottom
   spread of the predictions against the realised ``horizon_days`` returns
   (:func:`~tradewarden.ml.validation.split_metrics`), and the run's return against the
   equal-weight universe (every symbol bought at the first session's close in equal
   amounts and held to the last, on the bars the run traded).

The backtest id is a digest of the ``[ml]`` settings, the data (its
:func:`~tradewarden.ml.features.data_hash`) and the session range, so running the same
backtest again writes no second set of predictions (the replay is a new run).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from tradewarden.engine.config import RunConfig

__all__ = ["BacktestRefused", "BacktestResult", "backtest", "backtest_id",
           "equal_weight_return"]

_DAY = 86_400
_YEAR = 365.25 * _DAY


class BacktestRefused(ValueError):
    """The backtest cannot run with these settings or data; the message says why in one line."""


@dataclass
class BacktestResult:
    """A finished walk-forward backtest.

    Attributes
    ----------
    backtest_id : str
        10 hex digits (see the module notes); the versions are ``bt-<id>-<YYYYMMDD>``.
    run_id : str
        The replay's run in the ledger (``warden report RUN_ID``, ``warden trades``).
    ledger : str
        The ledger's URL, password masked.
    scores_path : Path
        The scores file the replay traded.
    start, end : date
        First and last prediction session.
    sessions : int
        Sessions predicted.
    retrains : int
        Models fitted.
    predictions : DataFrame
        ``as_of`` (session date), ``as_of_ts`` (close, UTC epoch seconds), ``symbol``,
        ``score``, ``rank``, ``model_version``, ``realised`` (the ``horizon_days``
        forward return, NaN where it is not in the data yet).
    metrics : dict
        :func:`~tradewarden.ml.validation.split_metrics` of the predictions against
        ``realised``: ``ic``, ``ic_std``, ``ic_ir``, ``hit_rate``, ``spread``,
        ``n_dates``, ``n``.
    run_return : float
        The run's total return, a fraction: equity marked at the last session's close
        / capital - 1.
    equal_weight_return : float
        The equal-weight buy and hold of the universe over the same sessions, a fraction.
    written : int
        Prediction rows inserted (0 when this backtest was recorded before).
    skipped : int
        (session, symbol) rows not scored because a feature was not defined yet.
    warnings : list of str
        The replay's data warnings.
    """

    backtest_id: str
    run_id: str
    ledger: str
    scores_path: Path
    start: date
    end: date
    sessions: int
    retrains: int
    predictions: pd.DataFrame
    metrics: dict[str, Any]
    run_return: float
    equal_weight_return: float
    written: int
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)


def backtest_id(ml: Any, panel_hash: str, start: date, end: date) -> str:
    """Return the backtest's id: 10 hex digits of SHA-256 over its inputs.

    Parameters
    ----------
    ml : MlSettings
    panel_hash : str
        :func:`~tradewarden.ml.features.data_hash` of the universe.
    start, end : date
        First and last prediction session.

    Returns
    -------
    str
        The first 10 hex digits of SHA-256 of the JSON (sorted keys) of the ``[ml]``
        settings, the data hash and the two dates.
    """
    text = json.dumps({"ml": ml.model_dump(mode="json"), "data": panel_hash,
                       "start": start.isoformat(), "end": end.isoformat()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def equal_weight_return(closes: pd.DataFrame) -> float:
    """Return the equal-weight buy and hold of a universe, a fraction.

    Parameters
    ----------
    closes : DataFrame, shape (sessions, symbols)
        Closes per session (rows, ascending) and symbol (columns), quote currency per
        share; NaN where a symbol has no bar.

    Returns
    -------
    float
        ``mean over symbols of last close / first close - 1``: equal amounts of every
        symbol bought at its first close and held, no rebalancing; NaN when no symbol
        has two closes.
    """
    ratios = []
    for sym in closes.columns:
        col = closes[sym].dropna()
        if len(col) >= 2:
            ratios.append(float(col.iloc[-1]) / float(col.iloc[0]))
    return float(np.mean(ratios)) - 1.0 if ratios else float("nan")


def _session_range(panel: pd.DataFrame, ml: Any, start: object, end: object, source: str
                   ) -> np.ndarray:
    """The prediction sessions (date labels), refusing a range outside the data."""
    from tradewarden.data.calendars import as_date

    sessions = np.unique(panel["ts"].to_numpy(dtype=np.int64))
    if sessions.size == 0:
        raise BacktestRefused(f"{source}: no bars for the universe")
    first, last = (pd.Timestamp(int(s), unit="s").date() for s in (sessions[0], sessions[-1]))
    try:
        lo = as_date(start, "--start") if start is not None else None
        hi = as_date(end, "--end") if end is not None else None
    except ValueError as exc:
        raise BacktestRefused(str(exc)) from None
    if lo is None:
        lo_ts = int(sessions[0] + ml.train_years * _YEAR)
    else:
        lo_ts = (lo - date(1970, 1, 1)).days * _DAY
    hi_ts = int(sessions[-1]) if hi is None else (hi - date(1970, 1, 1)).days * _DAY
    chosen = sessions[(sessions >= lo_ts) & (sessions <= hi_ts)]
    if chosen.size < 2:
        what = f"{lo.isoformat() if lo else 'train_years after the start'} .. " \
               f"{hi.isoformat() if hi else last.isoformat()}"
        raise BacktestRefused(f"{source}: fewer than two sessions to predict in {what} "
                              f"(the data runs {first.isoformat()} .. {last.isoformat()})")
    return chosen


def _closes_by_session(days: np.ndarray) -> dict[int, int]:
    """Session date label -> its close, UTC epoch seconds (XNYS)."""
    from tradewarden.data.calendars import _calendar

    first = pd.Timestamp(int(days[0]), unit="s").date()
    last = pd.Timestamp(int(days[-1]), unit="s").date()
    cal = _calendar(first, last)
    closes = cal.schedule.loc[pd.Timestamp(first):pd.Timestamp(last), "close"]
    table = {int(pd.Timestamp(d).value // 10**9): int(c.timestamp()) for d, c in closes.items()}
    out = {}
    for d in days:
        d = int(d)
        if d not in table:
            raise BacktestRefused(f"{pd.Timestamp(d, unit='s').date().isoformat()} is a bar of "
                                  "the universe but not an NYSE session")
        out[d] = table[d]
    return out


def backtest(ml: Any, db: str, *, run_config: RunConfig | None = None, start: object = None,
             end: object = None, out_dir: str | Path = "warden-out/ml",
             progress: Callable[[int, int], None] | None = None) -> BacktestResult:
    """Walk forward over history: retrain, predict each close, convert, replay.

    Parameters
    ----------
    ml : MlSettings
        The ``[ml]`` settings: universe and data, model, horizon, windows,
        ``retrain_every_days`` and the conversion (``conversion``, ``top_n``,
        ``weighting``, ``max_positions``, ``max_fraction``).
    db : str
        The ledger: SQLite path or SQLAlchemy URL (predictions and the replay's run).
    run_config : RunConfig, optional
        The run settings the replay starts from (capital, fees, slippage, ``[risk]``,
        governor, ``adjust``); symbols, data, strategy, params, capital mode and the
        range are set by the backtest. Default :class:`RunConfig` ().
    start, end : date or str, optional
        First and last prediction session (inclusive). Default: ``train_years`` after
        the data's first session, and its last session.
    out_dir : str or Path
        Where the scores file ``backtest-<id>.csv`` is written (created).
    progress : callable, optional
        ``progress(done, total)`` after each retraining.

    Returns
    -------
    BacktestResult

    Raises
    ------
    BacktestRefused
        A range outside the data, or too little history to train on at the first
        retraining (naming the date).
    tradewarden.data.DataError
        A bad universe file (file, row, field).
    tradewarden.ledger.LedgerError
        The ledger cannot be written.
    tradewarden.strategy.StrategyConfigError, tradewarden.settings.ConfigError
        The replay's settings are refused (named).
    """
    from tradewarden.analytics import load_equity_curve
    from tradewarden.ledger import Ledger, schema
    from tradewarden.ml.features import (
        FEATURES,
        compute_features,
        data_hash,
        forward_returns,
        load_universe,
    )
    from tradewarden.ml.predict import record_predictions, score_rows, universe_source
    from tradewarden.ml.targets import rank_params, write_scores_file
    from tradewarden.ml.train import fit, training_rows
    from tradewarden.ml.validation import split_metrics
    from tradewarden.ops.kernel import run_replay
    from tradewarden.ops.replay import load_inputs, resolve_config

    source = universe_source(ml)
    panel = load_universe(ml)
    days = _session_range(panel, ml, start, end, source)
    all_sessions = np.unique(panel["ts"].to_numpy(dtype=np.int64))
    first_day, last_day = (pd.Timestamp(int(d), unit="s").date() for d in (days[0], days[-1]))
    bt = backtest_id(ml, data_hash(panel), first_day, last_day)
    closes = _closes_by_session(days)
    feats = compute_features(panel)
    block_starts = days[::ml.retrain_every_days]
    records: list[dict[str, Any]] = []
    skipped = 0
    for i, r in enumerate(block_starts):
        before = all_sessions[all_sessions < r]
        when = pd.Timestamp(int(r), unit="s").date()
        if before.size == 0:
            raise BacktestRefused(f"{source}: no bars before {when.isoformat()} to train on")
        x, y = training_rows(panel, ml.horizon_days, end_ts=int(before[-1]),
                             train_years=ml.train_years)
        try:
            model = fit(x, y, ml)
        except ValueError as exc:
            raise BacktestRefused(f"{source}: cannot train for {when.isoformat()}: {exc}") from None
        version = f"bt-{bt}-{when:%Y%m%d}"
        nxt = block_starts[i + 1] if i + 1 < len(block_starts) else days[-1] + 1
        for d in days[(days >= r) & (days < nxt)]:
            rows = feats.xs(int(d), level="ts")
            ok = rows[list(FEATURES)].notna().all(axis=1).to_numpy()
            skipped += int((~ok).sum())
            rows = rows[ok]
            if rows.empty:
                continue
            scores = model.predict(rows.loc[:, list(FEATURES)].to_numpy(dtype=np.float64))
            records.extend(score_rows(ml.model_name, version, closes[int(d)], rows, scores,
                                      "backtest"))
        if progress is not None:
            progress(i + 1, len(block_starts))
    if not records:
        raise BacktestRefused(f"{source}: no session from {first_day} to {last_day} has "
                              "every feature defined (features need 120 sessions of history)")

    ledger = Ledger(db)
    try:
        written = record_predictions(ledger, records)
        shown = ledger.url
    finally:
        ledger.close()

    preds = pd.DataFrame(records)
    labels = pd.to_datetime(preds["as_of_ts"] // _DAY * _DAY, unit="s")
    preds.insert(0, "as_of", labels.to_numpy())
    realised = forward_returns(panel, ml.horizon_days)
    key = pd.MultiIndex.from_arrays([(preds["as_of_ts"] // _DAY * _DAY).to_numpy(np.int64),
                                     preds["symbol"].to_numpy()])
    preds["realised"] = realised.reindex(key).to_numpy()
    preds = preds.drop(columns=["model_name", "job"])
    metrics = split_metrics(preds["realised"].to_numpy(), preds["score"].to_numpy(),
                            preds["as_of_ts"].to_numpy())

    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    scores_path = write_scores_file(preds, out / f"backtest-{bt}.csv", ml)
    base = run_config or RunConfig()
    symbols = tuple(sorted(panel["symbol"].unique()))
    cfg = base.model_copy(update={
        "mode": "replay", "symbols": symbols, "data": ml.data, "timeframe": "1d",
        "start": first_day.isoformat(), "end": (last_day + timedelta(days=1)).isoformat(),
        "strategy": "rank", "strategy_source": None, "params": rank_params(ml, scores_path),
        "capital_mode": "portfolio", "exchange": None,
        "adjust": base.adjust or ("split_dividend" if ml.data is None else None)})
    cfg, strategy = resolve_config(RunConfig.model_validate(cfg.model_dump()))
    led = Ledger(db, background=True)            # the replay `warden replay` runs
    try:
        inputs = load_inputs(cfg, strategy=strategy)
        run = run_replay(inputs.config, led, inputs=inputs)
    finally:
        led.close()
    reader = Ledger(db)
    try:
        curve = load_equity_curve(reader.engine, run.run_id)
        d = schema.decisions.c
        with reader.engine.connect() as conn:
            rows = conn.execute(select(d.ts, d.symbol, d.close).where(
                d.run_id == run.run_id, d.ts >= int(days[0])).order_by(d.seq)).all()
    finally:
        reader.close()
    equity = curve.total[curve.total.index >= int(days[0])]   # the sessions' marks
    capital = float(inputs.config.capital)
    run_return = float(equity.iloc[-1]) / capital - 1.0 if len(equity) else float("nan")
    decided = pd.DataFrame([tuple(r) for r in rows], columns=["ts", "symbol", "close"])
    wide = decided.pivot_table(index="ts", columns="symbol", values="close", aggfunc="last")
    return BacktestResult(backtest_id=bt, run_id=run.run_id, ledger=shown,
                          scores_path=scores_path, start=first_day, end=last_day,
                          sessions=int(days.size), retrains=len(block_starts),
                          predictions=preds, metrics=metrics, run_return=run_return,
                          equal_weight_return=equal_weight_return(wide.sort_index()),
                          written=written, skipped=skipped, warnings=list(run.warnings))
