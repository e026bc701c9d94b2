"""Replay the put writer on option-chain data through the options desk.

``warden replay --strategy put_writer [--data CHAIN]`` comes here: each quote date of
the chain is one snapshot, stepped through :class:`~tradewarden.engine.options_desk.OptionsDesk`
with the simulated options venue (:class:`~tradewarden.execution.sim_options.SimOptionsBroker`),
and every decision, order, fill (with its greeks), trade and equity mark lands in the
ledger as in paper and live. What is still open after the last snapshot is closed
there (buy-backs at the ask, shares at the underlying's price), as the bar engine
closes at the end of data.

The default chain is the bundled SPX puts sample (five sessions, 2011-01-03 to
2011-01-07; see ``data/bundled/PROVENANCE-equities.md``); a user's chain file in the
same format (iVolatility's columns, one row per contract and quote date) is read by
:func:`tradewarden.data.options.load_option_chain`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Callable

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tradewarden.engine.options_desk import DeskCounts, OptionsDesk
from tradewarden.risk.options import OptionRiskConfig
from tradewarden.strategy.put_writer import PutWriterParams

__all__ = ["OptionsRunConfig", "OptionsReplayResult", "create_options_run",
           "run_options_replay", "DEFAULT_OPTIONS_CAPITAL", "DEFAULT_CHAIN"]

#: Starting cash of an options replay when none is given (USD): one SPX put needs
#: about USD 25,000 of margin, which a 40 % utilisation cap allows from about 63,000.
DEFAULT_OPTIONS_CAPITAL = Decimal("100000")
#: The bundled chain the put writer replays by default.
DEFAULT_CHAIN = "bundled:spx_puts"


class OptionsRunConfig(BaseModel):
    """What an options replay was run with (frozen; recorded with the run, hashed).

    Parameters
    ----------
    chain : str
        The chain file (a path, or ``bundled:<file>``).
    params : PutWriterParams
    risk : OptionRiskConfig
    capital : Decimal
        Starting cash, USD.
    commission_per_contract, min_commission : Decimal
        The simulated venue's commission (USD per contract, USD per order at least).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain: str
    params: PutWriterParams
    risk: OptionRiskConfig = Field(default_factory=OptionRiskConfig)
    capital: Decimal = DEFAULT_OPTIONS_CAPITAL
    commission_per_contract: Decimal = Decimal("0.65")
    min_commission: Decimal = Decimal("1.00")
    mode: str = "replay"

    def canonical_json(self) -> str:
        """Return the config as JSON with sorted keys (what the hash covers)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        """Return the SHA-256 of :meth:`canonical_json` (hex)."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


@dataclass(frozen=True)
class OptionsReplayResult:
    """The outcome of :func:`run_options_replay`.

    Attributes
    ----------
    run_id : str
    counts : DeskCounts
    final_equity : Decimal
        Net liquidation after the last snapshot, USD.
    snapshots : int
        Quote dates stepped.
    """

    run_id: str
    counts: DeskCounts
    final_equity: Decimal
    snapshots: int


def _epoch(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp())


def create_options_run(ledger: Any, config: OptionsRunConfig, *, run_id: str, mode: str,
                       range_start: int, range_end: int | None = None,
                       created_by: str | None = None, quality: dict[str, Any] | None = None,
                       notes: str | None = None) -> None:
    """Write the ``runs`` row of an options run (replay, paper or live).

    Parameters
    ----------
    ledger : Ledger
    config : OptionsRunConfig
    run_id : str
    mode : {"replay", "paper", "live"}
    range_start, range_end : int
        First and last snapshot, UTC epoch seconds (``range_end`` unknown while live).
    created_by : str, optional
    quality : dict, optional
        What the data was (per underlying), recorded as ``data_quality``.
    notes : str, optional
    """
    from tradewarden.ops.kernel import _user
    from tradewarden.ops.replay import git_sha

    def iso(ts: int) -> str:
        return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    under = config.params.underlying
    ledger.create_run({
        "run_id": run_id, "mode": mode, "capital_mode": "portfolio",
        "market_time_basis": ("option chain snapshot: end of day, labelled with the quote date "
                              "(00:00 UTC)" if mode == "replay" else
                              "option chain snapshot: read from the venue at the decision time"),
        "data_integrity": "ok", "data_quality": json.dumps(quality or {}),
        "created_by": created_by or _user(), "git_sha": git_sha(),
        "config_hash": config.config_hash(), "config": config.canonical_json(),
        "strategy": "put_writer", "input_names": json.dumps([]),
        "symbols": json.dumps([under]), "timeframe": "1d",
        "range_start": iso(range_start),
        "range_end": None if range_end is None else iso(range_end),
        "initial_capital": config.capital, "notes": notes,
    })


def run_options_replay(config: OptionsRunConfig, ledger: Any, *, chain: Any = None,
                       run_id: str | None = None, created_by: str | None = None,
                       progress: Callable[[int, int], None] | None = None) -> OptionsReplayResult:
    """Replay the put writer over every quote date of a chain and record it all.

    Parameters
    ----------
    config : OptionsRunConfig
    ledger : Ledger
    chain : OptionChain, optional
        Already loaded (default: :func:`~tradewarden.data.options.load_option_chain`
        of ``config.chain``).
    run_id, created_by : str, optional
    progress : callable, optional
        ``progress(done, total)`` after every snapshot.

    Returns
    -------
    OptionsReplayResult

    Raises
    ------
    tradewarden.data.DataError
        The chain cannot be read, or holds no option of ``params.underlying`` (the
        message names the file and the underlyings it has). No run row is written.
    Exception
        Anything failing once the run has started: the run is marked ``failed``.
    """
    from tradewarden.data import DataError
    from tradewarden.data.options import load_option_chain
    from tradewarden.execution.sim_options import SimOptionsBroker
    from tradewarden.ops.kernel import _utcnow

    if chain is None:
        from tradewarden.data.equities import bundled_equity_path
        path = (bundled_equity_path(config.chain.split(":", 1)[1])
                if config.chain.startswith("bundled:") else config.chain)
        chain = load_option_chain(path)
    frame = chain.frame
    under = config.params.underlying
    mine = frame[frame["underlying"] == under]
    if mine.empty:
        have = ", ".join(sorted(map(str, frame["underlying"].unique()))) or "none"
        raise DataError(chain.source, f"no option of underlying {under!r} (the file has: "
                                      f"{have}); set -p underlying=...", field="underlying")
    days = sorted(d.date() for d in mine["quote_date"].unique())
    run_id = run_id or uuid.uuid4().hex[:12]
    create_options_run(ledger, config, run_id=run_id, mode="replay",
                       range_start=_epoch(days[0]), range_end=_epoch(days[-1]),
                       created_by=created_by,
                       quality={under: {"rows": int(len(mine)), "quote_dates": len(days)}})
    broker = SimOptionsBroker(commission_per_contract=config.commission_per_contract,
                              min_commission=config.min_commission)
    desk = OptionsDesk(run_id=run_id, params=config.params, risk=config.risk, broker=broker,
                       ledger=ledger, capital=config.capital, source=chain.source,
                       fee_per_contract=config.commission_per_contract)
    try:
        last_day = days[-1]
        for i, day in enumerate(days):
            und = Decimal(str(mine.loc[mine["quote_date"] == pd.Timestamp(day),
                                       "underlying_price"].iloc[0]))
            desk.step(_epoch(day), mine, quote_date=day, underlying_price=und)
            if day == last_day:
                desk.close_all(_epoch(day), mine, quote_date=day, underlying_price=und)
            if progress is not None:
                progress(i + 1, len(days))
        c = desk.counts
        ledger.finish_run(run_id, status="completed", completed_at=_utcnow(),
                          bars_processed=len(days), decisions=c.decisions,
                          trades_opened=c.trades_opened, trades_closed=c.trades_closed)
    except BaseException as exc:
        ledger.finish_run(run_id, status="failed", completed_at=_utcnow(),
                          error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    return OptionsReplayResult(run_id, desk.counts, desk.last_equity, len(days))
