"""Frozen, typed run configuration with a stable hash."""

from __future__ import annotations

import json
from decimal import Decimal
from hashlib import sha256
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tradewarden.risk import RiskConfig

#: Largest starting capital accepted, quote currency. Larger amounts are typos (``1e400``)
#: and would overflow the float mirrors the engine keeps for speed.
MAX_CAPITAL = Decimal("1e15")


class RunConfig(BaseModel):
    """Everything that determines a run's result.

    Parameters
    ----------
    symbols : tuple of str
        Symbols in any accepted spelling (``btc_usd``, ``BTC/USD``), stored in the
        canonical ``BASE-QUOTE`` form; two spellings of one symbol are an error.
    data : str or None
        User CSV/Parquet file or directory; ``None`` uses the bundled samples.
    timeframe : str or None
        Bar length to trade on (``1m``, ``5m``, ``15m``, ``30m``, ``1h``, ``2h``,
        ``4h``, ``6h``, ``12h``, ``1d``); coarser than the source resamples. ``None``:
        the data's own bar length with ``data`` (no resampling), else ``1h``. The run
        records the resolved value.
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
        Quote currency: per symbol in ``independent`` mode, in total in ``portfolio``;
        positive and at most 1e15 (:data:`MAX_CAPITAL`).
    capital_mode : {"independent", "portfolio"}
    fee_bps, maker_fee_bps : float
        Taker and maker fees, basis points of notional, in [0, 10000).
    slippage_bps : float
        Adverse slippage on market and stop fills, basis points.
    risk : RiskConfig
    skip_bad_rows : bool
        Skip and count malformed rows instead of failing; the run is then degraded.
    governor : str
        Autonomy level: ``autonomous``, ``monitor`` (record entries only) or
        ``approval`` (queue entries for a person's approval in ``approvals``).
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
        metadata when present, instead of ``fee_bps``/``maker_fee_bps``. With US
        equities (replay): use the equity fee default
        (:data:`tradewarden.ops.replay.EQUITY_FEE_BPS`) instead of the crypto one.
        Off when a fee was set explicitly.
    adjust : {"raw", "split", "split_dividend"} or None
        Price basis of equities (bundled, or a file with a split column): raw traded
        prices, back-adjusted for splits, or scaled to the vendor's split- and
        dividend-adjusted close. ``None``: ``split`` for equities; a run records the
        resolved value. Left out of :meth:`canonical_json` while ``None``, so the
        hash of a configuration without equities is what it was before the key existed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    mode: Literal["replay", "paper", "live"] = "replay"
    symbols: tuple[str, ...] = ("BTC-USD", "ETH-USD", "SOL-USD")
    data: str | None = None
    timeframe: str | None = None
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
    governor: Literal["autonomous", "monitor", "approval"] = "autonomous"
    chunk_bars: int = Field(100_000, ge=1)
    exchange: str | None = None
    cache_dir: str | None = None
    offline: bool = False
    venue_fees: bool = True
    adjust: Literal["raw", "split", "split_dividend"] | None = None

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, v: Any) -> Any:
        return tuple(v.split(",")) if isinstance(v, str) else v

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from tradewarden.data import canonical_symbol
        given = [s.strip() for s in v if s.strip()]
        if not given:
            raise ValueError("at least one symbol is required")
        seen: dict[str, str] = {}
        for s in given:
            c = canonical_symbol(s)
            if c in seen:
                same = f"{seen[c]!r} and {s!r} are both {c}" if seen[c] != s else f"{s!r} twice"
                raise ValueError(f"duplicate symbol: {same}")
            seen[c] = s
        return tuple(seen)

    @field_validator("capital")
    @classmethod
    def _capital(cls, v: Decimal) -> Decimal:
        if not v > 0:
            raise ValueError("capital must be positive")
        if v > MAX_CAPITAL:
            raise ValueError(f"capital {v} is above the largest supported amount, {MAX_CAPITAL:.0E}")
        return v

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, v: str | None) -> str | None:
        if v is None:
            return None
        from tradewarden.domain.timeframes import timeframe_label, timeframe_seconds
        return timeframe_label(timeframe_seconds(v))

    def canonical_json(self) -> str:
        """Sorted-key JSON of the whole config (the input of :meth:`config_hash`)."""
        data = self.model_dump(mode="json", exclude={"adjust"} if self.adjust is None else None)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        """SHA-256 hex digest of :meth:`canonical_json`: equal configs, equal hashes."""
        return sha256(self.canonical_json().encode()).hexdigest()
