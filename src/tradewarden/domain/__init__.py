"""Plain typed values; imports nothing else of tradewarden."""

from tradewarden.domain.instrument import (COINBASE_SPECS, Instrument, infer_instrument,
                                           known_instrument, to_decimal)
from tradewarden.domain.values import (Action, Bar, BarSeries, Bracket, Decision, ExitReason, Fill,
                                       Order, OrderRole, OrderStatus, OrderType, Position,
                                       PositionState, Side, Signal, Trade, iso)

__all__ = [
    "Action", "Bar", "BarSeries", "Bracket", "COINBASE_SPECS", "Decision", "ExitReason", "Fill",
    "Instrument", "Order", "OrderRole", "OrderStatus", "OrderType", "Position", "PositionState",
    "Side", "Signal", "Trade", "infer_instrument", "iso", "known_instrument", "to_decimal",
]
