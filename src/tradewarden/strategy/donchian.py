"""Donchian channel breakout (the Turtle-style rule).

Enter long when the close breaks above the highest high of the previous ``entry_window``
bars; exit when it breaks below the lowest low of the previous ``exit_window`` bars.
With ``use_bracket`` a stop-loss at ``close - stop_atr * ATR`` and a take-profit at
``close + take_profit_atr * ATR`` (ATR: Wilder, ``atr_period``) travel with the entry
as an exchange-native bracket. With the bracket off and fixed sizing this is the
textbook rule (channels from TA-Lib MAX/MIN over the previous bars, exactly
``close > max(high[t-20..t-1])`` to enter and ``close < min(low[t-10..t-1])`` to exit) (R. Donchian; popularised by the Turtle traders, C. Faith, *Way of the
Turtle*, 2007).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from tradewarden.domain import BarSeries
from tradewarden.strategy import indicators as ind
from tradewarden.strategy.base import (
    WARMUP,
    SignalFrame,
    Strategy,
    StrategyParams,
    reason_codes,
)


class DonchianParams(StrategyParams):
    """Parameters of :class:`DonchianBreakout` (bar counts, ATR multiples)."""

    entry_window: int = Field(20, ge=2, le=1000, description="enter when the close breaks the highest high of this many previous bars")
    exit_window: int = Field(10, ge=2, le=1000, description="exit when the close breaks the lowest low of this many previous bars")
    use_bracket: bool = Field(True, description="send an ATR stop-loss and take-profit with each entry")
    atr_period: int = Field(14, ge=2, le=500, description="ATR period in bars (Wilder)")
    stop_atr: float = Field(2.0, gt=0, description="stop-loss distance below the entry close, in ATRs")
    take_profit_atr: float = Field(4.0, gt=0, description="take-profit distance above the entry close, in ATRs")


class DonchianBreakout(Strategy):
    """Donchian channel breakout with an optional ATR bracket; records upper, lower, atr."""

    name = "donchian"
    Params = DonchianParams
    input_names = ("upper", "lower", "atr")
    params: DonchianParams

    @property
    def warmup(self) -> int:
        """Bars of history the indicators need (see :attr:`Strategy.warmup`)."""
        p = self.params
        # Window indicators need exactly their window; ATR (Wilder recursion, recorded
        # with every decision even without a bracket) is given 40 periods so a chunk
        # boundary changes it by less than (13/14)**560 ~ 1e-18.
        return max(p.entry_window, p.exit_window) + 1 + 40 * p.atr_period

    def prepare(self, bars: BarSeries) -> SignalFrame:
        """Indicators and per-bar intent over ``bars`` (causal, vectorised)."""
        p = self.params
        n = len(bars)
        upper = ind.highest(bars.high, p.entry_window)
        lower = ind.lowest(bars.low, p.exit_window)
        atr = ind.atr(bars.high, bars.low, bars.close, p.atr_period)
        close = bars.close
        with np.errstate(invalid="ignore"):
            ready = ~np.isnan(upper) & ~np.isnan(lower)
            if p.use_bracket:
                ready &= ~np.isnan(atr)
            enter = ready & (close > upper)
            exit_ = ~np.isnan(lower) & (close < lower)
        reasons = (WARMUP, "no_breakout", "breakout")
        flat = reason_codes(reasons, n, no_breakout=ready, breakout=enter)
        if p.use_bracket:
            sl = close - p.stop_atr * atr
            tp = close + p.take_profit_atr * atr
        else:
            sl = np.full(n, np.nan)
            tp = np.full(n, np.nan)
        return SignalFrame(enter, exit_, flat, reasons, sl, tp,
                           {"upper": upper, "lower": lower, "atr": atr},
                           entry_reason="breakout", exit_reason="channel_exit",
                           hold_reason="holding")
