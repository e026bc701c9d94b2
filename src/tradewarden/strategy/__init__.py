"""Strategy contracts, built-in strategies, loading, and the TA-Lib indicator library.

* :class:`Strategy` (NumPy contract) and :class:`DataFrameStrategy` (one pandas
  ``populate`` method) both produce a :class:`SignalFrame`.
* :func:`build_strategy` takes a built-in name, ``file.py:Class``,
  ``package.module:Class`` or a ``tradewarden.strategies`` entry point.
* :mod:`tradewarden.strategy.indicators`: causal indicators computed by TA-Lib.
* :mod:`tradewarden.strategy.lookahead`: the look-ahead check behind
  ``warden check-lookahead``.
"""

from tradewarden.strategy.base import SignalFrame, Strategy, StrategyParams
from tradewarden.strategy.dataframe import DataFrameStrategy
from tradewarden.strategy.donchian import DonchianBreakout, DonchianParams
from tradewarden.strategy.ema_rsi import EmaRsiParams, EmaRsiVolume
from tradewarden.strategy.errors import (
    StrategyConfigError,
    StrategyLoadError,
    StrategyOutputError,
)
from tradewarden.strategy.loader import (
    ENTRY_POINT_GROUP,
    discover_entry_points,
    load_strategy_class,
)
from tradewarden.strategy.registry import (
    STRATEGIES,
    ParamInfo,
    build_strategy,
    describe_params,
    parse_params,
    resolve_strategy,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "STRATEGIES",
    "DataFrameStrategy",
    "DonchianBreakout",
    "DonchianParams",
    "EmaRsiParams",
    "EmaRsiVolume",
    "ParamInfo",
    "SignalFrame",
    "Strategy",
    "StrategyConfigError",
    "StrategyLoadError",
    "StrategyOutputError",
    "StrategyParams",
    "build_strategy",
    "describe_params",
    "discover_entry_points",
    "load_strategy_class",
    "parse_params",
    "resolve_strategy",
]
