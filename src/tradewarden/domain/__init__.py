"""Plain typed values; imports nothing else of tradewarden."""

from tradewarden.domain.instrument import (
                                           COINBASE_SPECS,
                                           Instrument,
                                           infer_instrument,
                                           known_instrument,
                                           to_decimal,
)
from tradewarden.domain.options import (
                                           OptionContract,
                                           OptionQuote,
                                           format_occ_symbol,
                                           parse_occ_symbol,
)
from tradewarden.domain.timeframes import timeframe_label, timeframe_seconds
from tradewarden.domain.values import (
                                           Action,
                                           Bar,
                                           BarSeries,
                                           Bracket,
                                           Decision,
                                           ExitReason,
                                           Fill,
                                           Order,
                                           OrderRole,
                                           OrderStatus,
                                           OrderType,
                                           Position,
                                           PositionState,
                                           Side,
                                           Signal,
                                           Trade,
                                           Verdict,
                                           iso,
)

__all__ = [
    "Action", "Bar", "BarSeries", "Bracket", "COINBASE_SPECS", "Decision", "ExitReason", "Fill",
    "Instrument", "OptionContract", "OptionQuote", "Order", "OrderRole", "OrderStatus", "OrderType", "Position", "PositionState",
    "Side", "Signal", "Trade", "Verdict", "format_occ_symbol", "infer_instrument", "iso", "known_instrument", "parse_occ_symbol",
    "timeframe_label", "timeframe_seconds", "to_decimal",
]
