"""Execution: the Broker protocol and the simulated broker (exchange adapters plug in here)."""

from typing import Protocol

from tradewarden.domain import Order
from tradewarden.execution.sim import OrderUpdate, SimBroker, make_order_id


class Broker(Protocol):
    """What the engine needs from a venue, simulated or real."""

    def submit(self, order: Order, legs: tuple[Order, ...] = ()) -> None:
        """Accept an order and optional bracket legs (OCO take-profit / stop-loss)."""

    def process(self, symbol: str, ts: int, o: float, h: float, low: float,
                c: float) -> list[OrderUpdate]:
        """Report fills and status changes that happened during a bar."""

    def cancel_all(self, symbol: str, ts: int, reason: str) -> list[OrderUpdate]:
        """Cancel every open order of a symbol."""

    def has_orders(self, symbol: str) -> bool:
        """Whether the symbol has open orders."""

    def quiet_band(self, symbol: str) -> tuple[float, float]:
        """``(down, up)`` such that a bar with ``low > down`` and ``high < up`` changes
        nothing; the engine skips ``process`` for such bars."""


__all__ = ["Broker", "OrderUpdate", "SimBroker", "make_order_id"]
