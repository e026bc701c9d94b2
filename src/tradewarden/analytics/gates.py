"""Promotion gates: the minimum a run must show before a strategy moves on.

A gate compares one report number with a threshold. A run passes when every gate
passes; a run whose ledger status is not ``completed`` never passes (its numbers
describe a partial history).

Gates
-----
``run_completed``
    ``runs.status == 'completed'``.
``min_closed_trades``
    closed round trips (rows in ``trades``) ``>= GateConfig.min_closed_trades``.
``min_profit_factor``
    profit factor ``>= GateConfig.min_profit_factor``. An infinite profit factor (winning
    trades, no losing trade) passes; an undefined one (no winning and no losing trade)
    fails.
``max_drawdown_pct``
    the deepest peak-to-trough drawdown of total equity, in percent of the peak,
    ``<= GateConfig.max_drawdown_pct``.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["GateConfig", "GateResult", "all_passed", "evaluate_gates"]


class GateConfig(BaseModel):
    """Thresholds for the promotion gates.

    Parameters
    ----------
    min_closed_trades : int
        Fewest closed round trips for the statistics to count (default 100).
    min_profit_factor : float
        Lowest acceptable profit factor, gross profit / |gross loss| (default 1.0).
    max_drawdown_pct : float
        Largest acceptable peak-to-trough drawdown of total equity, percent of the
        peak (default 35.0).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_closed_trades: int = Field(default=100, ge=0)
    min_profit_factor: float = Field(default=1.0, ge=0.0)
    max_drawdown_pct: float = Field(default=35.0, ge=0.0, le=100.0)


class GateResult(BaseModel):
    """The outcome of one gate.

    Parameters
    ----------
    name : str
        Gate name (see the module docstring).
    threshold : float | int | str
        The configured threshold (``'completed'`` for the run status gate).
    value : float | int | str | None
        The run's value; ``None`` when undefined. An infinite profit factor is kept
        as ``inf`` here and becomes ``None`` (with ``note``) in JSON.
    passed : bool
        Whether the gate passed.
    note : str
        Why, in words, when the value alone does not say it.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    threshold: float | int | str
    value: float | int | str | None
    passed: bool
    note: str = ""


def evaluate_gates(config: GateConfig, *, run_status: str, closed_trades: int,
                   profit_factor: float | None, max_drawdown_pct: float | None
                   ) -> list[GateResult]:
    """Evaluate every gate for one run.

    Parameters
    ----------
    config : GateConfig
        Thresholds.
    run_status : str
        ``runs.status`` (``running`` | ``completed`` | ``failed``).
    closed_trades : int
        Number of closed round trips.
    profit_factor : float | None
        Gross profit / |gross loss|; ``inf`` with no losing trades, ``None`` when
        undefined (no winning and no losing trade).
    max_drawdown_pct : float | None
        Deepest drawdown of total equity in percent of its peak (``None``: unknown).

    Returns
    -------
    list[GateResult]
        In the order run_completed, min_closed_trades, min_profit_factor,
        max_drawdown_pct.
    """
    results = [GateResult(name="run_completed", threshold="completed", value=run_status,
                          passed=run_status == "completed",
                          note="" if run_status == "completed"
                          else f"run status is '{run_status}': its numbers are partial")]
    results.append(GateResult(name="min_closed_trades", threshold=config.min_closed_trades,
                              value=int(closed_trades),
                              passed=closed_trades >= config.min_closed_trades))
    if profit_factor is None or (isinstance(profit_factor, float) and math.isnan(profit_factor)):
        results.append(GateResult(name="min_profit_factor", threshold=config.min_profit_factor,
                                  value=None, passed=False,
                                  note="undefined: no winning and no losing trades"))
    else:
        pf = float(profit_factor)
        results.append(GateResult(name="min_profit_factor", threshold=config.min_profit_factor,
                                  value=pf, passed=pf >= config.min_profit_factor,
                                  note="infinite: no losing trades" if math.isinf(pf) else ""))
    if max_drawdown_pct is None or math.isnan(max_drawdown_pct):
        results.append(GateResult(name="max_drawdown_pct", threshold=config.max_drawdown_pct,
                                  value=None, passed=False, note="no equity curve"))
    else:
        dd = float(max_drawdown_pct)
        results.append(GateResult(name="max_drawdown_pct", threshold=config.max_drawdown_pct,
                                  value=dd, passed=dd <= config.max_drawdown_pct))
    return results


def all_passed(results: list[GateResult]) -> bool:
    """Return True when every gate passed (False for an empty list)."""
    return bool(results) and all(r.passed for r in results)
