"""The Python API for notebooks: ``tradewarden.replay(...)`` and what it returns.

::

    import tradewarden
    run = tradewarden.replay(symbols="BTC-USD", start="2025-01-01", end="2025-04-01",
                             params={"entry_window": 55}, risk={"max_drawdown_halt": "off"},
                             db="research.db")
    run.trades.head()            # round trips, one row each (DataFrame)
    run.report["trades"]["profit_factor"]
    tradewarden.analytics.build_report(run)      # the full Report model

The replay is the one ``warden replay`` runs: the same settings (a config file, the
environment, then these keyword arguments, highest last), the same engine, the same
ledger rows. The returned :class:`ReplayRun` reads everything it shows from the ledger.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from tradewarden.engine.config import RunConfig

__all__ = ["ReplayRun", "replay"]


@dataclass
class ReplayRun:
    """A finished replay, read back from its ledger.

    Attributes
    ----------
    run_id : str
    ledger : str
        The ledger's database URL with any password hidden (for display).
    config : RunConfig
        The resolved configuration recorded in ``runs.config``.
    warnings : list of str
        Data warnings of the run (inferred instrument specs, skipped rows).

    The DataFrames are read from the ledger the first time they are used and kept:
    ``decisions`` has one row per bar and symbol, so on a long run it is large.
    """

    run_id: str
    ledger: str
    config: RunConfig
    warnings: list[str] = field(default_factory=list)
    gates: Any = None
    _url: str = field(default="", repr=False)

    def engine(self):
        """Return a SQLAlchemy engine on the run's ledger (for your own SQL)."""
        from tradewarden.ledger import open_engine
        return open_engine(self._url)

    @cached_property
    def trades(self) -> pd.DataFrame:
        """Round trips: entry/exit time and price, quantity, fees, PnL (quote currency), exit reason."""
        from tradewarden.analytics import load_trades
        return load_trades(self.engine(), self.run_id)

    @cached_property
    def decisions(self) -> pd.DataFrame:
        """Every decision: ``seq, ts, time (UTC), symbol, action, reason, state, close, equity``,
        the strategy's inputs under their names, and ``detail`` (JSON text, non-holds)."""
        from sqlalchemy import select

        from tradewarden.ledger.schema import decisions
        d = decisions.c
        with self.engine().connect() as conn:
            rows = conn.execute(select(d.seq, d.ts, d.symbol, d.action, d.reason, d.state, d.close,
                                       d.equity, d.x1, d.x2, d.x3, d.x4, d.detail)
                                .where(d.run_id == self.run_id).order_by(d.seq)).all()
        cols = ["seq", "ts", "symbol", "action", "reason", "state", "close", "equity",
                "x1", "x2", "x3", "x4", "detail"]
        df = pd.DataFrame([tuple(r) for r in rows], columns=cols)
        names = self._input_names()
        df = df.rename(columns={f"x{i + 1}": n for i, n in enumerate(names)})
        df = df.drop(columns=[f"x{i + 1}" for i in range(len(names), 4)])
        df.insert(2, "time", pd.to_datetime(df["ts"], unit="s", utc=True))
        return df

    @cached_property
    def equity(self) -> pd.DataFrame:
        """Equity per account and in total, quote currency, indexed by UTC time (step curve)."""
        from tradewarden.analytics import load_equity_curve
        curve = load_equity_curve(self.engine(), self.run_id)
        df = curve.accounts.copy()
        df["total"] = curve.total
        df.index = pd.to_datetime(df.index, unit="s", utc=True)
        df.index.name = "time"
        return df

    @cached_property
    def report(self) -> dict[str, Any]:
        """The run's report as a JSON-safe dict (what ``warden report --report-format json`` prints)."""
        from tradewarden.analytics import build_report, report_to_dict
        return report_to_dict(build_report(self.engine(), self.run_id, self.gates))

    def _input_names(self) -> list[str]:
        import json

        from sqlalchemy import select

        from tradewarden.ledger.schema import runs
        with self.engine().connect() as conn:
            text = conn.execute(select(runs.c.input_names).where(runs.c.run_id == self.run_id)).scalar()
        return list(json.loads(text or "[]"))


def _overrides(kwargs: Mapping[str, Any], prefix: str = "") -> dict[str, tuple[Any, str]]:
    out: dict[str, tuple[Any, str]] = {}
    for key, value in kwargs.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and key in ("risk", "params", "gates", "ledger", "report"):
            out.update(_overrides(value, name + "."))
        else:
            out[name] = (value, f"replay({name}=...)")
    return out


def replay(config: str | os.PathLike[str] | RunConfig | None = None, *, db: str | None = None,
           progress: bool = False, reference_path: bool = False, **settings: Any) -> ReplayRun:
    """Replay bars through the engine into the ledger, as ``warden replay`` does.

    Parameters
    ----------
    config : path or RunConfig, optional
        A TOML config file (layered as on the command line: the file, then the
        environment, then ``settings``), or a ready :class:`RunConfig` (used as is).
    db : str, optional
        Ledger: SQLite path or SQLAlchemy URL (default ``warden-out/ledger.db``, or the
        config's ``[ledger] db``).
    progress : bool
        Show a Rich progress bar.
    reference_path : bool
        Run every bar through ``TradingEngine.on_bar`` (the per-bar reference path)
        instead of the batch path; the ledger rows are identical.
    **settings
        Any settings key (``symbols``, ``start``, ``end``, ``strategy``, ``capital``,
        ``fee_bps``, ...) or section as a dict (``params={...}``, ``risk={...}``,
        ``gates={...}``). ``symbols`` may be a list or a comma-separated string.

    Returns
    -------
    ReplayRun

    Raises
    ------
    tradewarden.settings.ConfigError
        An invalid setting (named, with where it came from).
    tradewarden.data.DataError, tradewarden.strategy.StrategyConfigError
        Bad data or strategy; no run is recorded.
    """
    from tradewarden.ops.replay import load_inputs, resolve_config
    from tradewarden.ledger import Ledger
    from tradewarden.ops.kernel import run_replay
    from tradewarden.settings import load_settings

    if isinstance(config, RunConfig):
        if settings:
            raise TypeError("pass settings either in the RunConfig or as keywords, not both")
        run_cfg, gates, url = config, None, db or "warden-out/ledger.db"
    else:
        cli = _overrides(settings)
        if "symbols" in cli and isinstance(cli["symbols"][0], (list, tuple)):
            cli["symbols"] = (",".join(cli["symbols"][0]), cli["symbols"][1])
        if db is not None:
            cli["ledger.db"] = (db, "replay(db=...)")
        cli["mode"] = ("replay", "tradewarden.replay")
        loaded = load_settings(config, cli)
        run_cfg, gates, url = loaded.run_config(), loaded.gates.gate_config(), loaded.ledger.url()
    run_cfg, strategy = resolve_config(run_cfg)   # the strategy and its parameters, before any ledger
    ledger = Ledger(url, background=True)
    try:
        inputs = load_inputs(run_cfg, strategy=strategy)
        if progress:
            from rich.progress import Progress
            with Progress(transient=True) as bar:
                task = bar.add_task("replay", total=inputs.total_bars)
                result = run_replay(run_cfg, ledger, inputs=inputs, reference=reference_path,
                                    progress=lambda done, total: bar.update(task, completed=done))
        else:
            result = run_replay(run_cfg, ledger, inputs=inputs, reference=reference_path)
    finally:
        ledger.close()
    from tradewarden.ledger import display_db, resolve_url
    real = resolve_url(url)
    return ReplayRun(result.run_id, display_db(real), inputs.config, list(result.warnings), gates,
                     real)
