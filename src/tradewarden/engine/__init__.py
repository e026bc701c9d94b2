"""The engine: TradingEngine (the one tick path), clocks, runners."""

from tradewarden.engine.clock import Clock, ReplayClock, WallClock
from tradewarden.engine.config import RunConfig
from tradewarden.engine.engine import (
           NO_SHORTCUTS,
           EngineCounts,
           Shortcuts,
           TradingEngine,
)
from tradewarden.engine.portfolio import Holding

__all__ = ["NO_SHORTCUTS", "Clock", "EngineCounts", "Holding", "ReplayClock", "RunConfig", "Shortcuts",
           "TradingEngine", "WallClock"]
