"""Rank a universe by a column of scores; hold the top N at target weights.

The scores come from outside the bars: a long-format file (CSV or Parquet) with one
row per symbol and time,

=============  ================================================================
``timestamp``  when the score is known, UTC (a date means that session's date at
               00:00 UTC, the label of the daily bar it goes with)
``symbol``     ticker, as the deployment names it (``AAPL``)
``score``      higher is better (the column name is the ``score_column`` param)
=============  ================================================================

A model's predictions, a factor, an analyst list: anything written as of each bar.
The score of bar ``t`` is used when bar ``t`` closes, so it must be computable from
data up to that close; the file is the user's statement of that (``warden
check-lookahead`` cannot see inside it).

Per bar ``t`` and symbol the strategy ranks every symbol with a score at ``t`` (rank 1
is the highest score; ties share the lower rank of the group, "min" ranking). A flat
symbol enters when its rank is at most ``top_n``; an open position is sold when its
rank passes ``exit_rank`` (default ``top_n``; a larger value keeps a holding that
slipped a little, saving turnover). A bar without a score for the symbol is a hold
whatever the position: when in doubt, do nothing.

Each entry carries its target weight (:attr:`~tradewarden.domain.Signal.weight`, a
fraction of the account's equity): ``1 / top_n`` (``equal``) or the symbol's share of
the positive scores in the top N (``score``), capped at ``max_fraction``. The risk
manager sizes the entry to that notional (still capped by ``[risk]
max_position_fraction``, free cash and ``max_open_positions``). Rebalancing is the
difference between the target set and the positions held: entries for symbols that
joined the top N, sales for those that left it, and a holding whose weight is off its
target (the target changed, or the price moved) by more than ``rebalance_tolerance``
of the target is resized to it (:meth:`RankStrategy.rebalance`; the risk manager sizes
the difference, :meth:`~tradewarden.risk.RiskManager.evaluate_rebalance`; the engine
sends one ``rebalance`` order, ``TradingEngine._rebalance``), never sold and bought
again.

In paper and live trading the file is read again whenever it changes (its modification
time), so a nightly job that appends the next day's scores feeds the deployment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from tradewarden.domain import Action, BarSeries, Signal
from tradewarden.strategy.base import (
    SignalFrame,
    Strategy,
    StrategyParams,
    reason_codes,
)
from tradewarden.strategy.errors import StrategyConfigError

__all__ = ["RankParams", "RankStrategy", "ScoreTable", "load_scores"]

#: Hold reasons while flat (index 0 is the default) and the entry / exit reasons.
_REASONS = ("no_score", "not_in_top_n", "top_n", "non_positive_score", "left_top_n")


class RankParams(StrategyParams):
    """Parameters of :class:`RankStrategy`."""

    scores: str = Field(..., min_length=1, description="scores file (CSV or Parquet): timestamp, symbol, score")
    score_column: str = Field("score", min_length=1, description="the column of the scores file to rank by")
    top_n: int = Field(5, ge=1, le=10_000, description="hold the symbols ranked 1..top_n")
    exit_rank: int | None = Field(None, ge=1, le=10_000, description="sell a holding once its rank is above this (default top_n)")
    weighting: Literal["equal", "score"] = Field("equal", description="target weight: 1/top_n (equal) or the share of the top scores (score)")
    max_fraction: float = Field(0.25, gt=0, le=1, description="largest target weight of one position, fraction of equity")
    stop_loss_fraction: float | None = Field(None, gt=0, lt=1, description="protective stop this fraction below the entry close (none: no bracket)")
    rebalance_tolerance: float = Field(0.2, ge=0, le=1, description="resize a holding whose weight is off its target by more than this fraction of the target")


class ScoreTable:
    """Scores as a dense time × symbol matrix.

    Parameters
    ----------
    ts : ndarray of int64, shape (m,)
        Distinct score times, UTC epoch seconds, increasing.
    symbols : tuple of str, shape (k,)
    values : ndarray of float64, shape (m, k)
        NaN where a symbol has no score at a time.
    """

    def __init__(self, ts: np.ndarray, symbols: tuple[str, ...], values: np.ndarray) -> None:
        self.ts, self.symbols, self.values = ts, symbols, values
        self._col = {s: j for j, s in enumerate(symbols)}

    def ranks(self) -> np.ndarray:
        """Return the rank of each score within its row (1 = highest; ties "min";
        NaN where there is no score), float64 of shape (m, k)."""
        return pd.DataFrame(self.values).rank(axis=1, ascending=False, method="min").to_numpy()

    def column(self, symbol: str) -> int | None:
        """Return the column of ``symbol``, or ``None`` when the file never scores it."""
        return self._col.get(symbol)


def load_scores(path: str | os.PathLike[str], column: str = "score") -> ScoreTable:
    """Read a long-format scores file into a :class:`ScoreTable`.

    Parameters
    ----------
    path : str or os.PathLike
        CSV (optionally gzip) or Parquet with ``timestamp``, ``symbol`` and ``column``.
    column : str
        The score column.

    Returns
    -------
    ScoreTable

    Raises
    ------
    StrategyConfigError
        The file is missing or unreadable, a column is missing, a timestamp or score
        does not parse (the message names the file, the 1-based data row and the
        column), or a (timestamp, symbol) pair appears twice.
    """
    p = Path(path).expanduser()
    where = f"scores file {p}"
    if not p.is_file():
        raise StrategyConfigError(f"{where}: no such file")
    try:
        frame = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p, dtype={"symbol": str})
    except (OSError, ValueError, ImportError) as exc:   # the parser's message says what
        raise StrategyConfigError(f"{where}: cannot be read: {exc}") from None
    missing = [c for c in ("timestamp", "symbol", column) if c not in frame.columns]
    if missing:
        raise StrategyConfigError(f"{where}: missing column(s) {', '.join(missing)} "
                                  f"(columns: {', '.join(map(str, frame.columns))})")
    ts = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce")
    bad = ts.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise StrategyConfigError(f"{where}: row {row + 1}, column timestamp: "
                                  f"{frame['timestamp'].iloc[row]!r} is not a date or time")
    score = pd.to_numeric(frame[column], errors="coerce")
    bad = (score.isna() & frame[column].notna()).to_numpy() | np.isinf(score.to_numpy(dtype=float))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise StrategyConfigError(f"{where}: row {row + 1}, column {column}: "
                                  f"{frame[column].iloc[row]!r} is not a finite number")
    symbols = frame["symbol"].astype(str).str.strip()
    seconds = (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)    # any datetime unit
    long = pd.DataFrame({"ts": seconds.astype(np.int64), "symbol": symbols,
                         "score": score.astype(float)})
    dup = long.duplicated(["ts", "symbol"]).to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise StrategyConfigError(f"{where}: row {row + 1}: a second score for "
                                  f"{long['symbol'].iloc[row]} at {ts.iloc[row].isoformat()}")
    wide = long.pivot(index="ts", columns="symbol", values="score").sort_index()
    return ScoreTable(wide.index.to_numpy(np.int64), tuple(map(str, wide.columns)),
                      wide.to_numpy(np.float64))


class RankStrategy(Strategy):
    """Top-N of a universe by score, at equal or score weights; records score, rank, weight."""

    name = "rank"
    Params = RankParams
    input_names = ("score", "rank", "weight")
    params: RankParams

    def __init__(self, params: RankParams | None = None) -> None:
        super().__init__(params)
        self._table: ScoreTable | None = None
        self._ranks: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._stamp: tuple[int, int] | None = None
        self._load()            # a bad file fails when the strategy is built, not mid-run

    @property
    def warmup(self) -> int:
        """No bar history: the scores carry their own (see :attr:`Strategy.warmup`)."""
        return 0

    def _load(self) -> None:
        p = Path(self.params.scores).expanduser()
        try:
            st = p.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if self._table is not None and stamp == self._stamp:
            return
        table = load_scores(p, self.params.score_column)
        ranks = table.ranks()
        self._table, self._ranks, self._stamp = table, ranks, stamp
        self._weights = self._target_weights(table.values, ranks)

    def _target_weights(self, values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
        """Target weight per (time, symbol): zero outside the top N (fraction of equity)."""
        p = self.params
        top = ranks <= p.top_n                      # NaN ranks compare False
        if p.weighting == "equal":
            w = np.where(top, 1.0 / p.top_n, 0.0)
        else:
            pos = np.where(top & (values > 0), values, 0.0)
            total = pos.sum(axis=1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                w = np.where(total > 0, pos / total, 0.0)
        return np.minimum(w, p.max_fraction)

    def prepare(self, bars: BarSeries) -> SignalFrame:
        """Look up each bar's score, rank and target weight; enter in the top N.

        Raises
        ------
        StrategyConfigError
            The scores file became unreadable (paper and live read it again when it
            changes).
        """
        self._load()
        table, p = self._table, self.params
        n = len(bars)
        score = np.full(n, np.nan)
        rank = np.full(n, np.nan)
        weight = np.zeros(n)
        j = table.column(bars.symbol)
        if j is not None and len(table.ts):
            at = np.searchsorted(table.ts, bars.ts)
            hit = at < len(table.ts)
            hit[hit] = table.ts[at[hit]] == bars.ts[hit]
            rows = at[hit]
            score[hit] = table.values[rows, j]
            rank[hit] = self._ranks[rows, j]
            weight[hit] = self._weights[rows, j]
        exit_rank = p.exit_rank if p.exit_rank is not None else p.top_n
        scored = ~np.isnan(score)
        with np.errstate(invalid="ignore"):
            in_top = scored & (rank <= p.top_n)
            enter = in_top & (weight > 0)
            exit_ = scored & (rank > exit_rank)
        flat = reason_codes(_REASONS, n, not_in_top_n=scored,
                            non_positive_score=in_top & ~enter, top_n=enter)
        if p.stop_loss_fraction is not None:
            sl = bars.close * (1.0 - p.stop_loss_fraction)
        else:
            sl = np.full(n, np.nan)
        return SignalFrame(enter, exit_, flat, _REASONS, sl, np.full(n, np.nan),
                           {"score": score, "rank": rank, "weight": weight},
                           entry_reason="top_n", exit_reason="left_top_n",
                           hold_reason="holding")

    def decide(self, frame: SignalFrame, t: int, in_position: bool) -> Signal:
        """Return the frame's decision for bar ``t``, an entry carrying its target weight."""
        sig = super().decide(frame, t, in_position)
        if sig.action is Action.ENTER_LONG:
            return sig._replace(weight=float(frame.inputs["weight"].item(t)))
        return sig

    def rebalance(self, frame: SignalFrame, t: int, weight_now: float) -> float | None:
        """Return the weight to resize an open position to at bar ``t``, or ``None``.

        A holding is resized when its weight is off the bar's target by more than
        ``rebalance_tolerance`` of the target: ``|weight_now - target| > tolerance *
        target``. Nothing is resized on a bar without a score (when in doubt, do
        nothing), on an exit bar (the exit sells it all), or while the holding ranks
        between ``top_n`` and ``exit_rank`` (target 0: it is kept as it is, which is
        what ``exit_rank`` is for).

        Parameters
        ----------
        frame : SignalFrame
            From :meth:`prepare`.
        t : int
            Bar index into ``frame``.
        weight_now : float
            The holding's weight at the bar's close: its market value over the
            account's equity (a fraction, >= 0).

        Returns
        -------
        float or None
            The target weight (a fraction of equity in (0, ``max_fraction``]), or
            ``None`` when the holding stays as it is.

        Raises
        ------
        ValueError
            ``weight_now`` is negative, NaN or infinite.
        """
        if not (weight_now >= 0 and np.isfinite(weight_now)):
            raise ValueError(f"weight_now must be a finite fraction >= 0, got {weight_now!r}")
        if frame.exit[t] or np.isnan(frame.inputs["score"].item(t)):
            return None
        target = float(frame.inputs["weight"].item(t))
        if not target > 0:
            return None
        if abs(weight_now - target) <= self.params.rebalance_tolerance * target:
            return None
        return target
