"""Risk manager: sizing, pre-trade checks, circuit breakers, kill switch."""

from tradewarden.risk.manager import RiskConfig, RiskManager, RiskVerdict, Sizing

__all__ = ["RiskConfig", "RiskManager", "RiskVerdict", "Sizing"]
