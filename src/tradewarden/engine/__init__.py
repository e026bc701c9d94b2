"""The engine: TradingEngine (the one tick path), clocks, runners."""

from tradewarden.engine.clock import Clock, ReplayClock
from tradewarden.engine.config import RunConfig
from tradewarden.engine.engine import TradingEngine

__all__ = ["Clock", "ReplayClock", "RunConfig", "TradingEngine"]
