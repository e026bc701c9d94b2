"""From a model's scores to target weights, orders, and the rank strategy's scores file.

One as-of close gives one cross-section of scores (higher is better). The conversion
(``[ml] conversion``) picks the symbols to hold, at most ``N`` of them, where ``N``
(the *slots*) is ``min(top_n, max_positions)`` for ``rank`` and ``max_positions``
otherwise:

``rank``
    The ``N`` best scores.
``threshold``
    The scores strictly above ``threshold``, the best ``N`` of them.
``zscore``
    The cross-sectional z-scores ``(s - mean(s)) / std(s)`` (population standard
    deviation, ``ddof=0``: :func:`scipy.stats.zscore`) strictly above ``zscore``, the
    best ``N`` of them; none when every score is equal.

Ties between equal scores go to the symbol first in alphabetical order, so a selection
is reproducible. Weights (fractions of the account's equity): ``equal`` gives each
selected symbol ``1 / N`` (a slot's share, so a holding's target does not move when
another symbol joins or leaves), ``score`` gives each its share of the selected
positive scores (a selected symbol with a score at or below zero gets no weight and is
not held). Each weight is then capped at ``max_fraction``; what the caps leave over
stays in cash.

Orders (:func:`orders_from_targets`) are the difference between the target quantities
and the positions held. In the engine the same targets travel as the rank strategy's
scores file (:func:`write_scores_file`, :func:`rank_params`): every entry and exit then
goes through the same risk manager, governor and ledger as any other decision.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from tradewarden.domain import Instrument, Side

if TYPE_CHECKING:
    from tradewarden.ml.settings import MlSettings

__all__ = ["EMPTY_SLOT", "NOT_SELECTED", "TargetOrder", "orders_from_targets", "rank_params",
           "select", "slots", "target_weights", "write_scores_file"]

#: Symbol prefix of the rows that fill the slots a conversion leaves empty in the scores
#: file (``_empty_slot_1``, ...): they keep a holding that was not selected ranked past
#: ``N``, so the rank strategy sells it. They are never traded (no bars carry them).
EMPTY_SLOT = "_empty_slot_"
#: ``target`` of a scored symbol that is not to be held, in the scores file.
NOT_SELECTED = -1.0


class TargetOrder(NamedTuple):
    """One order that moves a position to its target.

    Parameters
    ----------
    symbol : str
    side : Side
        ``BUY`` to add, ``SELL`` to reduce or close.
    quantity : Decimal
        Base units (shares for US equities), positive, a multiple of the instrument's
        ``quantity_increment``.
    """

    symbol: str
    side: Side
    quantity: Decimal


def slots(settings: MlSettings) -> int:
    """Return ``N``, the most symbols a conversion selects.

    Parameters
    ----------
    settings : MlSettings
        ``conversion``, ``top_n``, ``max_positions``.

    Returns
    -------
    int
        ``min(top_n, max_positions)`` for ``rank``, ``max_positions`` otherwise.
    """
    if settings.conversion == "rank":
        return min(settings.top_n, settings.max_positions)
    return settings.max_positions


def _scores(scores: Mapping[str, float] | pd.Series) -> pd.Series:
    """Return the scores as a float Series ordered best first (ties alphabetical)."""
    if isinstance(scores, pd.Series):
        symbols = np.asarray([str(k) for k in scores.index], dtype=object)
        values = scores.to_numpy(dtype=np.float64)
    else:
        symbols = np.asarray([str(k) for k in scores], dtype=object)
        values = np.asarray([float(v) for v in scores.values()], dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"score of {symbols[i]}: {values[i]!r} is not a finite number")
    if len(set(symbols.tolist())) != len(symbols):
        seen: set[str] = set()
        dup = next(s for s in symbols.tolist() if s in seen or seen.add(s))
        raise ValueError(f"score of {dup}: given twice")
    order = np.lexsort((symbols.astype(str), -values)) if len(symbols) else np.arange(0)
    return pd.Series(values[order], index=symbols[order], name="score")


def select(scores: Mapping[str, float] | pd.Series, settings: MlSettings) -> list[str]:
    """Return the symbols a conversion picks from one cross-section, best first.

    Parameters
    ----------
    scores : mapping or Series of str to float, shape (k,)
        One score per symbol (higher is better), all as of the same close.
    settings : MlSettings
        ``conversion`` (rank, threshold, zscore), ``top_n``, ``threshold``, ``zscore``,
        ``max_positions``.

    Returns
    -------
    list of str
        At most :func:`slots` symbols.

    Raises
    ------
    ValueError
        A score that is NaN or infinite, or a symbol given twice (named).
    """
    return _select(_scores(scores), settings)


def _select(s: pd.Series, settings: MlSettings) -> list[str]:
    """:func:`select` on scores already ordered by :func:`_scores`."""
    n = slots(settings)
    if settings.conversion == "rank":
        return list(s.index[:n])
    if settings.conversion == "threshold":
        return list(s.index[s.to_numpy() > settings.threshold][:n])
    if settings.conversion == "zscore":
        if len(s) < 2 or float(s.max()) == float(s.min()):
            return []
        from scipy.stats import zscore
        z = zscore(s.to_numpy(), ddof=0)
        return list(s.index[z > settings.zscore][:n])
    raise ValueError(f"conversion {settings.conversion!r}: use rank, threshold or zscore")


def _raw_weights(scores: pd.Series, chosen: list[str], settings: MlSettings) -> dict[str, float]:
    """Weights before the cap: 1/N each, or the share of the positive scores."""
    if settings.weighting == "equal":
        return {sym: 1.0 / slots(settings) for sym in chosen}
    if settings.weighting == "score":
        pos = {sym: float(scores[sym]) for sym in chosen if scores[sym] > 0}
        total = math.fsum(pos.values())
        return {sym: v / total for sym, v in pos.items()} if total > 0 else {}
    raise ValueError(f"weighting {settings.weighting!r}: use equal or score")


def target_weights(scores: Mapping[str, float] | pd.Series, settings: MlSettings
                   ) -> dict[str, float]:
    """Convert one cross-section of scores to target weights.

    Parameters
    ----------
    scores : mapping or Series of str to float, shape (k,)
        One score per symbol, all as of the same close.
    settings : MlSettings
        ``conversion``, ``top_n``, ``threshold``, ``zscore``, ``weighting``,
        ``max_positions``, ``max_fraction`` (see the module docstring for the rules).

    Returns
    -------
    dict of str to float
        Symbol to target weight, a fraction of equity in ``(0, max_fraction]``, best
        score first; symbols not to be held are absent. The weights sum to at most 1.

    Raises
    ------
    ValueError
        A score that is NaN or infinite, or a symbol given twice (named).
    """
    s = _scores(scores)
    raw = _raw_weights(s, _select(s, settings), settings)
    return {sym: min(w, settings.max_fraction) for sym, w in raw.items() if w > 0}


def _decimal(what: str, value: Any) -> Decimal:
    d = value if isinstance(value, Decimal) else Decimal(repr(float(value))) \
        if isinstance(value, float) else Decimal(value)
    if not d.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return d


def orders_from_targets(targets: Mapping[str, float], positions: Mapping[str, Decimal],
                        prices: Mapping[str, Decimal], equity: Decimal,
                        instruments: Mapping[str, Instrument], settings: MlSettings
                        ) -> list[TargetOrder]:
    """Return the orders that move the positions held to the target weights.

    The target quantity of a symbol is ``weight * equity / price`` rounded down to the
    instrument's ``quantity_increment``; a symbol held but absent from ``targets`` has a
    target of zero. The order is the difference, rounded down to the increment. An
    order worth less than ``min_order_value`` (quantity times price) or smaller than
    the instrument's ``min_quantity`` is not sent, except a sale that closes a position
    (a target of zero): that one always sells everything held.

    Parameters
    ----------
    targets : mapping of str to float
        Target weights, fractions of equity in ``[0, 1]`` (:func:`target_weights`).
    positions : mapping of str to Decimal
        Base units held per symbol (long positions; zero or absent when flat).
    prices : mapping of str to Decimal
        Reference price per symbol, quote currency per base unit (e.g. the as-of close),
        for every symbol of ``targets`` and ``positions``.
    equity : Decimal
        The account's equity, quote currency.
    instruments : mapping of str to Instrument
        Increments and minimums per symbol.
    settings : MlSettings
        ``min_order_value`` (quote currency).

    Returns
    -------
    list of TargetOrder
        Sales first, then purchases, each group in symbol order.

    Raises
    ------
    ValueError
        A weight outside ``[0, 1]``, a negative position, a missing or non-positive
        price, a missing instrument, or a non-positive equity (each naming the symbol or
        the argument).
    """
    equity = _decimal("equity", equity)
    if equity <= 0:
        raise ValueError(f"equity: {equity} is not positive")
    minimum = _decimal("min_order_value", settings.min_order_value)
    sells: list[TargetOrder] = []
    buys: list[TargetOrder] = []
    for sym in sorted(set(targets) | {s for s, q in positions.items() if q}):
        weight = float(targets.get(sym, 0.0))
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"target weight of {sym}: {weight!r} is outside [0, 1]")
        held = _decimal(f"position of {sym}", positions.get(sym, Decimal(0)))
        if held < 0:
            raise ValueError(f"position of {sym}: {held} is short; targets are long only")
        if sym not in prices:
            raise ValueError(f"price of {sym}: missing")
        price = _decimal(f"price of {sym}", prices[sym])
        if price <= 0:
            raise ValueError(f"price of {sym}: {price} is not positive")
        inst = instruments.get(sym)
        if inst is None:
            raise ValueError(f"instrument of {sym}: missing")
        target = inst.round_quantity(_decimal("weight", weight) * equity / price)
        if target == 0 and held > 0:
            sells.append(TargetOrder(sym, Side.SELL, held))
            continue
        diff = target - held
        qty = inst.round_quantity(abs(diff))
        if qty == 0 or qty < (inst.min_quantity or inst.quantity_increment) \
                or qty * price < minimum:
            continue
        (buys if diff > 0 else sells).append(TargetOrder(sym, Side.BUY if diff > 0 else Side.SELL,
                                                         qty))
    return sells + buys


def scores_frame(predictions: pd.DataFrame, settings: MlSettings) -> pd.DataFrame:
    """Return the rows of the rank strategy's scores file for some predictions.

    Parameters
    ----------
    predictions : DataFrame, shape (m, >=3)
        Columns ``as_of`` (the session date, ``datetime64`` or ISO text), ``symbol`` and
        ``score``; one row per symbol and session.
    settings : MlSettings

    Returns
    -------
    DataFrame
        Columns ``timestamp`` (``YYYY-MM-DD``: the session's daily bar), ``symbol``,
        ``score`` (the model's), ``target`` (the weight before the cap for a symbol to
        hold, :data:`NOT_SELECTED` for the others, 0 for an empty slot's row), sorted
        by timestamp then symbol.

    Raises
    ------
    ValueError
        A missing column, or a score that is not finite (named with its session).
    """
    missing = [c for c in ("as_of", "symbol", "score") if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions: missing column(s) {', '.join(missing)}")
    rows: list[tuple[str, str, float, float]] = []
    days = pd.to_datetime(predictions["as_of"]).dt.strftime("%Y-%m-%d")
    for day, group in predictions.assign(_day=days.to_numpy()).groupby("_day", sort=True):
        s = _scores(pd.Series(group["score"].to_numpy(), index=group["symbol"].to_numpy()))
        raw = {k: w for k, w in _raw_weights(s, _select(s, settings), settings).items() if w > 0}
        for sym, score in sorted(s.items()):
            rows.append((day, sym, float(score), raw.get(sym, NOT_SELECTED)))
        rows.extend((day, f"{EMPTY_SLOT}{i}", math.nan, 0.0)
                    for i in range(1, slots(settings) - len(raw) + 1))
    return pd.DataFrame(rows, columns=["timestamp", "symbol", "score", "target"])


def write_scores_file(predictions: pd.DataFrame, path: str | os.PathLike[str],
                      settings: MlSettings) -> Path:
    """Write predictions as the rank strategy's scores file (CSV), atomically.

    The rank strategy run with :func:`rank_params` then holds exactly the targets of
    :func:`target_weights` for each session: ``target`` is the ranked column, every
    symbol to hold ranks within the ``N`` slots (the rows of :data:`EMPTY_SLOT`
    symbols fill the ones left empty) and every other symbol ranks past them, so a
    holding that was not selected is sold. Its entry weight is the rank strategy's
    (``1 / N`` for ``equal``, the ``target`` share for ``score``, capped at
    ``max_fraction``), which equals :func:`target_weights`.

    Parameters
    ----------
    predictions : DataFrame
        Columns ``as_of`` (session date), ``symbol``, ``score``.
    path : str or os.PathLike
        The CSV to write (replaced; written to a temporary file beside it first).
    settings : MlSettings

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        Bad predictions (see :func:`scores_frame`).
    OSError
        The file cannot be written.
    """
    out = Path(path).expanduser()
    frame = scores_frame(predictions, settings)
    tmp = out.with_name(f".{out.name}.tmp")
    frame.to_csv(tmp, index=False, float_format="%.17g")
    os.replace(tmp, out)
    return out


def rank_params(settings: MlSettings, scores_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the rank strategy's parameters that trade a scores file of these settings.

    Parameters
    ----------
    settings : MlSettings
        ``weighting`` and ``max_fraction`` map to the rank strategy's parameters of the
        same names; its ``top_n`` and ``exit_rank`` are the slots ``N`` (:func:`slots`).
    scores_path : str or os.PathLike
        The file :func:`write_scores_file` wrote.

    Returns
    -------
    dict
        ``scores``, ``score_column`` (``target``), ``top_n``, ``exit_rank``,
        ``weighting``, ``max_fraction``: the ``[params]`` of a ``strategy = "rank"``
        run or deployment.
    """
    n = slots(settings)
    return {"scores": str(Path(scores_path).expanduser()), "score_column": "target",
            "top_n": n, "exit_rank": n, "weighting": settings.weighting,
            "max_fraction": settings.max_fraction}
