"""Frozen, typed run configuration with a stable hash."""

from __future__ import annotations

import json
from decimal import Decimal
from hashlib import sha256
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tradewarden.risk import RiskConfig


class RunConfig(BaseModel):
    """Everything that determines a run's result.

    Parameters
    ----------
    symbols : tuple of str
        Canonical symbols (``BTC-USD``).
    data : str or None
        User CSV/Parquet file or directory; ``None`` uses the bundled samples.
    timeframe : str
        Bar length to trade on (``1h``, ``4h``, ``1d``); coarser than the source
        resamples.
    start, end : str or None
        UTC dates, start inclusive, end exclusive.
    strategy : str
        A built-in name (``donchian``), ``path/to/file.py:ClassName``,
        ``package.module:ClassName`` or an entry point of the
        ``tradewarden.strategies`` group.
    strategy_source : str or None
        Where the strategy's code came from, filled in when the strategy is
        resolved (``builtin:tradewarden==0.1.0``, ``file:PATH#sha256=...``,
        ``module:pkg.mod#pkg==1.2``), so the config hash changes when the code does.
    params : dict
        Validated strategy parameters (after defaults are applied).
    capital : Decimal
        Quote currency: per symbol in ``independent`` mode, in total in ``portfolio``.
    capital_mode : {"independent", "portfolio"}
    fee_bps, maker_fee_bps : float
        Taker and maker fees, basis points of notional.
    slippage_bps : float
        Adverse slippage on market and stop fills, basis points.
    risk : RiskConfig
    skip_bad_rows : bool
        Skip and count malformed rows instead of failing; the run is then degraded.
    governor : str
        Autonomy level: ``autonomous`` or ``monitor``.
    chunk_bars : int
        Bars per symbol per engine batch (memory bound; does not change results for
        series shorter than one chunk).
    exchange : str or None
        ccxt id: read bars from the exchange cache (downloading what is missing)
        instead of files; needs ``start`` and ``end``.
    cache_dir : str or None
        Exchange cache root (default ``$TRADEWARDEN_CACHE`` or ``~/.cache/tradewarden``).
    offline : bool
        With ``exchange``: never download; fail naming the missing ranges.
    venue_fees : bool
        With ``exchange``: use the maker/taker fees from the venue's cached market
        metadata when present, instead of ``fee_bps``/``maker_fee_bps``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["replay", "paper", "live"] = "replay"
    symbols: tuple[str, ...] = ("BTC-USD", "ETH-USD", "SOL-USD")
    data: str | None = None
    timeframe: str = "1h"
    start: str | None = None
    end: str | None = None
    strategy: str = "donchian"
    strategy_source: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    capital: Decimal = Decimal("10000")
    capital_mode: Literal["independent", "portfolio"] = "independent"
    fee_bps: float = Field(10.0, ge=0, lt=10_000)
    maker_fee_bps: float = Field(5.0, ge=0, lt=10_000)
    slippage_bps: float = Field(2.0, ge=0, lt=10_000)
    risk: RiskConfig = RiskConfig()
    skip_bad_rows: bool = False
    governor: Literal["autonomous", "monitor"] = "autonomous"
    chunk_bars: int = Field(100_000, ge=1)
    exchange: str | None = None
    cache_dir: str | None = None
    offline: bool = False
    venue_fees: bool = True

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = tuple(s.strip().upper() for s in v if s.strip())
        if not out:
            raise ValueError("at least one symbol is required")
        if len(set(out)) != len(out):
            raise ValueError(f"duplicate symbols in {','.join(out)}")
        return out

    @field_validator("capital")
    @classmethod
    def _capital(cls, v: Decimal) -> Decimal:
        if not v > 0:
            raise ValueError("capital must be positive")
        return v

    def canonical_json(self) -> str:
        """Sorted-key JSON of the whole config (the input of :meth:`config_hash`)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        """SHA-256 hex digest of :meth:`canonical_json`: equal configs, equal hashes."""
        return sha256(self.canonical_json().encode()).hexdigest()
