"""EMA crossover with RSI and volume-ratio filters.

Enter long on the bar where EMA(fast) crosses above EMA(slow) while RSI(rsi_period)
is between ``rsi_min`` and ``rsi_max`` and volume is at least ``min_volume_ratio``
times the mean of the previous ``volume_window`` bars. Exit when EMA(fast) crosses
back below EMA(slow) or RSI rises above ``rsi_exit``. Optional ATR bracket as in
:mod:`tradewarden.strategy.donchian`. Indicators from
:mod:`tradewarden.strategy.indicators` (TA-Lib: EMAs and RSI seeded with the simple
average of their first ``period`` values).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from tradewarden.domain import BarSeries
from tradewarden.strategy import indicators as ind
from tradewarden.strategy.base import (
    WARMUP,
    SignalFrame,
    Strategy,
    StrategyParams,
    reason_codes,
)


class EmaRsiParams(StrategyParams):
    """Parameters of :class:`EmaRsiVolume` (bar counts, RSI levels 0..100)."""

    fast: int = Field(9, ge=2, le=500, description="fast EMA span in bars")
    slow: int = Field(21, ge=3, le=1000, description="slow EMA span in bars (longer than fast)")
    rsi_period: int = Field(14, ge=2, le=200, description="RSI period in bars (Wilder)")
    rsi_min: float = Field(50.0, ge=0, le=100, description="lowest RSI at which a cross is entered")
    rsi_max: float = Field(70.0, ge=0, le=100, description="highest RSI at which a cross is entered")
    rsi_exit: float = Field(80.0, ge=0, le=100, description="exit when RSI rises above this")
    volume_window: int = Field(20, ge=2, le=1000, description="bars in the volume baseline")
    min_volume_ratio: float = Field(1.0, ge=0, description="minimum volume over the mean of the previous volume_window bars")
    use_bracket: bool = Field(True, description="send an ATR stop-loss and take-profit with each entry")
    atr_period: int = Field(14, ge=2, le=500, description="ATR period in bars (Wilder)")
    stop_atr: float = Field(2.0, gt=0, description="stop-loss distance below the entry close, in ATRs")
    take_profit_atr: float = Field(3.0, gt=0, description="take-profit distance above the entry close, in ATRs")

    @model_validator(mode="after")
    def _check(self) -> EmaRsiParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        if self.rsi_min > self.rsi_max:
            raise ValueError(f"rsi_min ({self.rsi_min}) must not exceed rsi_max ({self.rsi_max})")
        return self


class EmaRsiVolume(Strategy):
    """EMA 9/21 cross filtered by RSI 14 and volume; records ema_fast, ema_slow, rsi, volume_ratio."""

    name = "ema_rsi"
    Params = EmaRsiParams
    input_names = ("ema_fast", "ema_slow", "rsi", "volume_ratio")
    params: EmaRsiParams

    @property
    def warmup(self) -> int:
        """Bars of history the indicators need (see :attr:`Strategy.warmup`)."""
        p = self.params
        # EMA/RSI/ATR are recursions; 40 time constants make a chunk boundary's effect
        # smaller than float64 resolution.
        return 40 * max(p.slow, p.rsi_period, p.atr_period) + p.volume_window + 1

    def prepare(self, bars: BarSeries) -> SignalFrame:
        """Indicators and per-bar intent over ``bars`` (causal, vectorised)."""
        p = self.params
        n = len(bars)
        fast = ind.ema(bars.close, p.fast)
        slow = ind.ema(bars.close, p.slow)
        rsi = ind.rsi(bars.close, p.rsi_period)
        vr = ind.volume_ratio(bars.volume, p.volume_window)
        atr = ind.atr(bars.high, bars.low, bars.close, p.atr_period)
        prev_fast = np.concatenate(([np.nan], fast[:-1]))
        prev_slow = np.concatenate(([np.nan], slow[:-1]))
        with np.errstate(invalid="ignore"):
            ready = ~(np.isnan(prev_fast) | np.isnan(prev_slow) | np.isnan(rsi) | np.isnan(vr))
            if p.use_bracket:
                ready &= ~np.isnan(atr)
            cross_up = ready & (fast > slow) & (prev_fast <= prev_slow)
            cross_down = (fast < slow) & (prev_fast >= prev_slow)
            rsi_ok = (rsi >= p.rsi_min) & (rsi <= p.rsi_max)
            vol_ok = vr >= p.min_volume_ratio
            enter = cross_up & rsi_ok & vol_ok
            exit_ = cross_down | (rsi > p.rsi_exit)
        reasons = (WARMUP, "no_cross", "rsi_filter", "volume_filter", "ema_cross_up")
        flat = reason_codes(reasons, n, no_cross=ready, volume_filter=cross_up & ~vol_ok,
                            rsi_filter=cross_up & ~rsi_ok, ema_cross_up=enter)
        if p.use_bracket:
            sl = bars.close - p.stop_atr * atr
            tp = bars.close + p.take_profit_atr * atr
        else:
            sl = np.full(n, np.nan)
            tp = np.full(n, np.nan)
        return SignalFrame(enter, exit_, flat, reasons, sl, tp,
                           {"ema_fast": fast, "ema_slow": slow, "rsi": rsi, "volume_ratio": vr},
                           entry_reason="ema_cross_up", exit_reason="ema_cross_down_or_rsi",
                           hold_reason="holding")
