"""Strategy contract, built-in strategies and causal indicators."""

from tradewarden.strategy.base import SignalFrame, Strategy, StrategyParams
from tradewarden.strategy.donchian import DonchianBreakout, DonchianParams
from tradewarden.strategy.ema_rsi import EmaRsiParams, EmaRsiVolume
from tradewarden.strategy.registry import (
                                           STRATEGIES,
                                           StrategyConfigError,
                                           build_strategy,
                                           parse_params,
)

__all__ = ["DonchianBreakout", "DonchianParams", "EmaRsiParams", "EmaRsiVolume", "STRATEGIES",
           "SignalFrame", "Strategy", "StrategyConfigError", "StrategyParams", "build_strategy",
           "parse_params"]
