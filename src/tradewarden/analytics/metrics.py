"""Trade, risk, data-quality and decision metrics, read from the ledger only.

Every function here takes a SQLAlchemy :class:`~sqlalchemy.engine.Engine` or
:class:`~sqlalchemy.engine.Connection` and a ``run_id`` and reads the ledger tables of
:mod:`tradewarden.ledger.schema` (never in-memory engine state), so every number can
be re-derived by anyone with SQL. The ``summarize_*`` functions are the pure parts,
for callers that already hold the rows.

Units and conventions
---------------------
* Money is in the run's quote currency (e.g. USD). Exact sums of the ledger's decimal
  columns are also given as decimal strings (``*_exact``); statistics are float.
* Times are UTC epoch seconds (``*_ts``) with an ISO 8601 twin (``*_time``).
* Percentages are in percent (``12.5`` means 12.5 %).
* A trade is a *win* when ``pnl > 0``, a *loss* when ``pnl < 0`` and *breakeven* when
  ``pnl == 0`` (exactly, on the ledger's decimal). Breakeven trades count in
  ``closed_trades`` (so in the win-rate denominator) and break a losing streak, but
  are neither wins nor losses.
* Total equity is the sum over accounts of each account's step-function equity, from
  the per-bar ``decisions.equity`` marks and the ``equity`` snapshots (see
  :func:`load_equity_curve`).
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine

from tradewarden.analytics.ratios import (
    aggregate_returns,
    annual_return,
    calmar_ratio,
    sharpe_ratio,
    sortino_ratio,
)
from tradewarden.domain import iso
from tradewarden.ledger.schema import decisions, equity, events, runs, trades

__all__ = [
    "ANNUALIZATION", "ANNUALIZATION_NOTE", "PORTFOLIO_ACCOUNT", "SESSION_ANNUALIZATION",
    "SESSION_NOTE", "STREAM_BATCH_ROWS",
    "AccountStats", "DataQuality", "DecisionStats", "EquityChart", "EquityCurve",
    "PerformanceStats", "PeriodReturn", "ReasonCount",
    "RiskStats", "RunInfo", "RunScan", "SymbolQuality", "TradeStats", "TradeStatsResult",
    "connect", "consecutive_losses", "daily_returns", "data_quality", "decision_stats",
    "chart_series", "drawdown", "equity_chart", "event_counts", "ledger_url", "load_equity_curve", "load_run",
    "load_trades", "price_series", "return_basis", "risk_stats", "run_source", "scan_run",
    "summarize_data_quality", "summarize_performance", "summarize_risk", "summarize_trades",
    "trade_stats",
]

#: Periods per year for daily returns. Crypto trades 24/7, so 365 (not 252).
ANNUALIZATION = 365
#: How Sharpe and Sortino are computed; printed in every report.
ANNUALIZATION_NOTE = "daily returns, UTC, annualised x sqrt(365), risk-free 0"
#: Periods per year of session returns: a market with sessions (NYSE: about 252
#: trading days a year) has no bar on a weekend.
SESSION_ANNUALIZATION = 252
#: How Sharpe and Sortino are computed on a market with sessions.
SESSION_NOTE = ("session returns (UTC days with bars), annualised x sqrt(252), "
                "risk-free 0")


def return_basis(days: np.ndarray) -> tuple[int, bool, str]:
    """Tell from the UTC days a run's bars fall on how its daily returns are counted.

    A market that trades around the clock (crypto) has bars on Saturdays and Sundays:
    its returns are per calendar day (a day without a bar carries the last close
    forward) and a year is 365 of them. A market with sessions (NYSE equities) has
    none: its returns are per day with bars (a session) and a year is 252 of them,
    the usual count of NYSE sessions. The data decides: sessions when no bar day is a
    Saturday or a Sunday over a span of at least a week (a shorter span is too short
    to tell, and counts as calendar days).

    Parameters
    ----------
    days : numpy.ndarray of int, shape (n,)
        UTC days of the bars (epoch seconds // 86400), any order.

    Returns
    -------
    tuple of (int, bool, str)
        Periods per year (365 or 252), whether returns are per session, and the
        note the report prints (:data:`ANNUALIZATION_NOTE` or :data:`SESSION_NOTE`).
    """
    days = np.asarray(days, dtype=np.int64)
    if len(days) and int(days.max()) - int(days.min()) >= 6:
        weekday = (days + 3) % 7            # 1970-01-01 was a Thursday; Monday is 0
        if not (weekday >= 5).any():
            return SESSION_ANNUALIZATION, True, SESSION_NOTE
    return ANNUALIZATION, False, ANNUALIZATION_NOTE
#: The one account of a run in ``portfolio`` capital mode.
PORTFOLIO_ACCOUNT = "portfolio"

Bind = Engine | Connection


# --------------------------------------------------------------------------- plumbing

@contextmanager
def connect(bind: Bind) -> Iterator[Connection]:
    """Yield a connection for ``bind``: a new one for an Engine, ``bind`` itself otherwise."""
    if isinstance(bind, Connection):
        yield bind
    elif isinstance(bind, Engine):
        with bind.connect() as conn:
            yield conn
    else:
        raise TypeError(f"expected a SQLAlchemy Engine or Connection, got {type(bind).__name__}")


def run_source(source: Bind | Any, run_id: str | None = None) -> tuple[Bind, str]:
    """Return (ledger, run id) from a database and a run id, or from what
    :func:`tradewarden.replay` returns (anything with ``engine()`` and ``run_id``).

    Raises
    ------
    TypeError
        For a database without a run id, or neither a database nor a replay result.
    """
    if isinstance(source, (Engine, Connection)):
        if run_id is None:
            raise TypeError("run_id is required with a database (or pass what "
                            "tradewarden.replay() returned)")
        return source, run_id
    engine = getattr(source, "engine", None)
    own = getattr(source, "run_id", None)
    if callable(engine) and isinstance(own, str):
        return engine(), run_id or own
    raise TypeError(f"expected a SQLAlchemy Engine or Connection and a run id, or a replay "
                    f"result, got {type(source).__name__}")


def ledger_url(bind: Bind) -> str:
    """The ledger's database URL with any password hidden."""
    engine = bind.engine if isinstance(bind, Connection) else bind
    return engine.url.render_as_string(hide_password=True)


def _finite(x: Any) -> float | None:
    """``float(x)`` when finite, else ``None``."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _iso(ts: int | None) -> str | None:
    return None if ts is None else iso(int(ts))


def _json_list(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return [text]
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _dec_str(d: Decimal) -> str:
    """A decimal as plain text (never scientific notation)."""
    return format(d, "f")


# --------------------------------------------------------------------------- run

class RunInfo(BaseModel):
    """One ``runs`` row, with JSON text columns decoded.

    ``initial_capital`` is the exact ledger decimal as text; ``initial_capital_value``
    is the same number as float. It is per symbol in ``independent`` capital mode and
    the total in ``portfolio`` mode.
    """

    model_config = ConfigDict(frozen=True)

    run_id: str
    status: str
    error: str | None = None
    mode: str
    capital_mode: str
    market_time_basis: str
    data_integrity: str
    data_quality_json: str | None = None
    created_by: str | None = None
    git_sha: str | None = None
    config_hash: str
    strategy: str
    input_names: list[str] = []
    symbols: list[str]
    timeframe: str
    range_start: str | None = None
    range_end: str | None = None
    initial_capital: str
    initial_capital_value: float
    started_at: str
    completed_at: str | None = None
    bars_processed: int = 0
    decisions: int = 0
    trades_opened: int = 0
    trades_closed: int = 0
    notes: str | None = None


def load_run(bind: Bind, run_id: str) -> RunInfo:
    """Read one run's ``runs`` row.

    Raises
    ------
    LookupError
        ``no run '<run_id>' in ledger <url>`` when the ledger has no such run.
    """
    with connect(bind) as conn:
        row = conn.execute(select(runs).where(runs.c.run_id == run_id)).mappings().first()
    if row is None:
        raise LookupError(f"no run '{run_id}' in ledger {ledger_url(bind)}")
    capital = row["initial_capital"] if row["initial_capital"] is not None else Decimal(0)
    return RunInfo(
        run_id=row["run_id"], status=row["status"], error=row["error"], mode=row["mode"],
        capital_mode=row["capital_mode"], market_time_basis=row["market_time_basis"],
        data_integrity=row["data_integrity"] or "unknown", data_quality_json=row["data_quality"],
        created_by=row["created_by"], git_sha=row["git_sha"], config_hash=row["config_hash"],
        strategy=row["strategy"], input_names=_json_list(row["input_names"]),
        symbols=_json_list(row["symbols"]), timeframe=row["timeframe"],
        range_start=row["range_start"], range_end=row["range_end"],
        initial_capital=_dec_str(capital), initial_capital_value=float(capital),
        started_at=row["started_at"], completed_at=row["completed_at"],
        bars_processed=row["bars_processed"] or 0, decisions=row["decisions"] or 0,
        trades_opened=row["trades_opened"] or 0, trades_closed=row["trades_closed"] or 0,
        notes=row["notes"],
    )


# --------------------------------------------------------------------------- trades

_TRADE_COLUMNS = ("trade_id", "symbol", "side", "quantity", "entry_ts", "entry_time",
                  "entry_price", "exit_ts", "exit_time", "exit_price", "fees", "pnl",
                  "return_pct", "exit_reason", "holding_seconds", "mae_price", "mfe_price",
                  "mae_pct", "mfe_pct")


_TRADE_DECIMALS = ("quantity", "entry_price", "exit_price", "fees", "pnl", "mae_price",
                   "mfe_price")
_TRADE_TYPES = {"trade_id": pa.string(), "symbol": pa.string(), "side": pa.string(),
                "quantity": pa.string(), "entry_ts": pa.int64(), "entry_time": pa.string(),
                "entry_price": pa.string(), "exit_ts": pa.int64(), "exit_time": pa.string(),
                "exit_price": pa.string(), "fees": pa.string(), "pnl": pa.string(),
                "return_pct": pa.float64(), "exit_reason": pa.string(),
                "holding_seconds": pa.int64(), "mae_price": pa.string(),
                "mfe_price": pa.string(), "mae_pct": pa.float64(), "mfe_pct": pa.float64()}


def _read_table(path: str, sql: str, run_id: str) -> pa.Table:
    """A whole (small) query result through ADBC, typed by :data:`_TRADE_TYPES`."""
    with _adbc_reader(path) as ac:
        cur = ac.cursor()
        try:
            # One batch: the driver infers each column's type from the rows of the first
            # batch, so a column NULL there and REAL later must not be split.
            cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(1 << 30)})
            cur.execute(sql, parameters=(run_id,))
            table = cur.fetch_arrow_table()
        finally:
            cur.close()
    return pa.table({name: table.column(name).cast(_TRADE_TYPES[name])
                     for name in table.column_names})


def load_trades(bind: Bind | Any, run_id: str | None = None) -> pd.DataFrame:
    """Read a run's closed round trips, ordered by ``exit_ts`` then ``trade_id``.

    Parameters
    ----------
    bind : Engine | Connection | ReplayRun
        The ledger, or what :func:`tradewarden.replay` returns (see :func:`run_source`).
    run_id : str, optional
        Required with a database.

    Returns
    -------
    pandas.DataFrame
        The ``trades`` columns of ``_TRADE_COLUMNS``; decimal columns (``quantity``,
        prices, ``fees``, ``pnl``, ``mae_price``, ``mfe_price``) hold exact
        :class:`~decimal.Decimal` objects (``None`` for excursions not recorded:
        trades of a ledger older than revision 0007), and ``pnl_f`` / ``fees_f`` hold
        the same values as float for statistics. ``mae_pct`` / ``mfe_pct`` are the
        excursions in percent of the entry price (NaN when not recorded).
    """
    bind, run_id = run_source(bind, run_id)
    cols = [trades.c[name] for name in _TRADE_COLUMNS]
    stmt = (select(*cols).where(trades.c.run_id == run_id)
            .order_by(trades.c.exit_ts, trades.c.trade_id))
    with connect(bind) as conn:
        path = _sqlite_file(conn)
        if path is not None:       # Arrow columns through ADBC: no per-row Python objects
            table = _read_table(path, f"SELECT {', '.join(_TRADE_COLUMNS)} FROM trades "
                                      "WHERE run_id = ? ORDER BY exit_ts, trade_id", run_id)
            df = pd.DataFrame({name: table.column(name).to_pandas()
                               for name in _TRADE_COLUMNS if name not in _TRADE_DECIMALS})
            for name in _TRADE_DECIMALS:
                df[name] = pd.Series([None if x is None else Decimal(x)
                                      for x in table.column(name).to_pylist()], dtype=object)
            df = df[list(_TRADE_COLUMNS)]
        else:
            rows = conn.execute(stmt).all()
            df = pd.DataFrame([tuple(r) for r in rows], columns=list(_TRADE_COLUMNS))
    df = df.astype({"entry_ts": "int64", "exit_ts": "int64", "holding_seconds": "int64",
                    "return_pct": "float64", "mae_pct": "float64", "mfe_pct": "float64"})
    for name in _TRADE_DECIMALS:
        df[name] = df[name].astype(object)
    df["pnl_f"] = np.array([float(x) for x in df["pnl"]], dtype=float)
    df["fees_f"] = np.array([float(x) for x in df["fees"]], dtype=float)
    return df


class TradeStats(BaseModel):
    """Round-trip statistics (overall or for one symbol).

    Attributes
    ----------
    closed_trades : int
        Rows in ``trades``.
    wins, losses, breakevens : int
        ``pnl > 0``, ``pnl < 0``, ``pnl == 0``.
    win_rate_pct : float | None
        ``100 * wins / closed_trades`` (breakevens in the denominator).
    gross_profit, gross_loss : float
        Sum of winning pnl (>= 0) and of losing pnl (<= 0), quote currency.
    avg_win, avg_loss : float | None
        ``gross_profit / wins`` and ``gross_loss / losses`` (the latter negative).
    payoff_ratio : float | None
        ``avg_win / |avg_loss|`` (None without both wins and losses).
    expectancy : float | None
        Mean net pnl per closed trade, quote currency: ``net_pnl / closed_trades``.
    profit_factor : float | None
        ``gross_profit / |gross_loss|`` (Tharp; Pardo, *The Evaluation and Optimization
        of Trading Strategies*). ``inf`` when there are wins and no losses, ``None``
        when there are neither; ``profit_factor_note`` says which. JSON shows ``inf``
        as ``null``.
    net_pnl, fees : float
        Sum of ``trades.pnl`` (net of fees) and of ``trades.fees``; exact sums in
        ``net_pnl_exact`` and ``fees_exact``.
    avg_return_pct : float | None
        Mean of ``trades.return_pct`` (percent), where recorded.
    best_trade, worst_trade : float | None
        Largest and smallest pnl.
    avg_holding_hours : float | None
        Mean ``holding_seconds / 3600``.
    exit_reasons : dict[str, int]
        Count of trades by ``exit_reason``.
    avg_mae_pct, avg_mfe_pct : float | None
        Mean maximum adverse / favourable excursion of the trades that recorded one, in
        percent of the entry price (``trades.mae_pct`` <= 0, ``trades.mfe_pct`` >= 0;
        J. Sweeney, *Maximum Adverse Excursion*, 1997).
    worst_mae_pct, best_mfe_pct : float | None
        The deepest excursion against and the largest in favour of a trade, percent.
    """

    model_config = ConfigDict(frozen=True)

    closed_trades: int = 0
    wins: int = 0
    losses: int = 0
    breakevens: int = 0
    win_rate_pct: float | None = None
    gross_profit: float = 0.0
    gross_loss: float = 0.0
    avg_win: float | None = None
    avg_loss: float | None = None
    payoff_ratio: float | None = None
    expectancy: float | None = None
    profit_factor: float | None = None
    profit_factor_note: str | None = "no trades"
    net_pnl: float = 0.0
    net_pnl_exact: str = "0"
    fees: float = 0.0
    fees_exact: str = "0"
    avg_return_pct: float | None = None
    best_trade: float | None = None
    worst_trade: float | None = None
    avg_holding_hours: float | None = None
    exit_reasons: dict[str, int] = {}
    avg_mae_pct: float | None = None
    avg_mfe_pct: float | None = None
    worst_mae_pct: float | None = None
    best_mfe_pct: float | None = None


def _mean_min_max(df: pd.DataFrame, column: str) -> tuple[float | None, float | None,
                                                           float | None]:
    """Mean, minimum and maximum of a float column's recorded (non-NaN) values."""
    if column not in df:
        return None, None, None
    v = pd.to_numeric(df[column], errors="coerce").dropna().to_numpy(dtype=float)
    if not len(v):
        return None, None, None
    return float(v.mean()), float(v.min()), float(v.max())


def summarize_trades(df: pd.DataFrame) -> TradeStats:
    """Compute :class:`TradeStats` from rows shaped like :func:`load_trades` output."""
    n = int(len(df))
    if n == 0:
        return TradeStats()
    pnl_exact = list(df["pnl"])
    fees_exact = list(df["fees"])
    net_exact = sum(pnl_exact, Decimal(0))
    fee_sum = sum(fees_exact, Decimal(0))
    win_mask = np.array([p > 0 for p in pnl_exact])
    loss_mask = np.array([p < 0 for p in pnl_exact])
    pnl = df["pnl_f"].to_numpy(dtype=float)
    wins, losses = int(win_mask.sum()), int(loss_mask.sum())
    gross_profit = float(sum((p for p in pnl_exact if p > 0), Decimal(0)))
    gross_loss = float(sum((p for p in pnl_exact if p < 0), Decimal(0)))
    avg_win = gross_profit / wins if wins else None
    avg_loss = gross_loss / losses if losses else None
    payoff = avg_win / abs(avg_loss) if avg_win is not None and avg_loss else None
    if losses:
        pf, pf_note = gross_profit / abs(gross_loss), None
    elif wins:
        pf, pf_note = math.inf, "infinite: no losing trades"
    else:
        pf, pf_note = None, "undefined: no winning and no losing trades"
    ret = pd.to_numeric(df["return_pct"], errors="coerce").dropna()
    reasons = df["exit_reason"].astype(str).value_counts()
    mae_mean, mae_min, _ = _mean_min_max(df, "mae_pct")
    mfe_mean, _, mfe_max = _mean_min_max(df, "mfe_pct")
    return TradeStats(
        closed_trades=n, wins=wins, losses=losses, breakevens=n - wins - losses,
        win_rate_pct=100.0 * wins / n, gross_profit=gross_profit, gross_loss=gross_loss,
        avg_win=avg_win, avg_loss=avg_loss, payoff_ratio=payoff,
        expectancy=float(net_exact) / n, profit_factor=pf, profit_factor_note=pf_note,
        net_pnl=float(net_exact), net_pnl_exact=_dec_str(net_exact),
        fees=float(fee_sum), fees_exact=_dec_str(fee_sum),
        avg_return_pct=float(ret.mean()) if len(ret) else None,
        best_trade=float(pnl.max()), worst_trade=float(pnl.min()),
        avg_holding_hours=float(df["holding_seconds"].astype(float).mean()) / 3600.0,
        exit_reasons={str(k): int(v) for k, v in sorted(reasons.items())},
        avg_mae_pct=mae_mean, avg_mfe_pct=mfe_mean, worst_mae_pct=mae_min,
        best_mfe_pct=mfe_max,
    )


@dataclass(frozen=True)
class TradeStatsResult:
    """Overall and per-symbol :class:`TradeStats` of one run."""

    overall: TradeStats
    by_symbol: dict[str, TradeStats]


def trade_stats(bind: Bind, run_id: str, symbols: list[str] | None = None) -> TradeStatsResult:
    """Read a run's ``trades`` and compute overall and per-symbol statistics.

    Parameters
    ----------
    bind : Engine | Connection
        The ledger.
    run_id : str
        The run.
    symbols : list[str] | None
        Symbols to report even when they have no trades (default: the run's symbols).
    """
    with connect(bind) as conn:
        if symbols is None:
            symbols = load_run(conn, run_id).symbols
        df = load_trades(conn, run_id)
    return _trade_stats_from_frame(df, symbols)


def _trade_stats_from_frame(df: pd.DataFrame, symbols: list[str]) -> TradeStatsResult:
    names = list(dict.fromkeys([*symbols, *sorted(df["symbol"].astype(str).unique())]))
    by_symbol = {s: summarize_trades(df[df["symbol"] == s]) for s in names}
    return TradeStatsResult(overall=summarize_trades(df), by_symbol=by_symbol)


def consecutive_losses(df: pd.DataFrame) -> tuple[int, float]:
    """Longest run of consecutive losing trades and its pnl sum.

    Trades are taken in ``exit_ts`` then ``trade_id`` order (as :func:`load_trades`
    returns them); a loss is ``pnl < 0`` and any other trade (win or breakeven) ends
    the streak. Among streaks of equal length the one with the most negative sum is
    reported.

    Returns
    -------
    tuple[int, float]
        (streak length, sum of its pnl in quote currency; 0.0 when no loss).
    """
    if df.empty:
        return 0, 0.0
    ordered = df.sort_values(["exit_ts", "trade_id"], kind="stable")
    pnl = ordered["pnl_f"].to_numpy(dtype=float)
    is_loss = np.array([p < 0 for p in ordered["pnl"]])
    if not is_loss.any():
        return 0, 0.0
    streak_id = np.cumsum(~is_loss)       # constant within a streak of losses
    s = pd.DataFrame({"id": streak_id[is_loss], "pnl": pnl[is_loss]})
    g = s.groupby("id")["pnl"].agg(["size", "sum"])
    longest = int(g["size"].max())
    return longest, float(g.loc[g["size"] == longest, "sum"].min())


# --------------------------------------------------------------------------- equity

@dataclass(frozen=True)
class EquityCurve:
    """A run's equity, forward filled onto the union of all mark timestamps.

    Attributes
    ----------
    accounts : pandas.DataFrame
        Index: UTC epoch seconds (int64, ascending, unique). One float column per
        account: that account's equity at the timestamp (its last mark at or before it,
        or its initial capital before its first mark).
    total : pandas.Series
        Total equity, quote currency: the accounts' columns added in account order.
    initial : dict[str, float]
        Starting equity per account.
    marks : dict[str, pandas.Series]
        Each account's own marks (ts -> equity, last mark per ts), unfilled.
    start_ts, end_ts : int | None
        First and last bar of the run (from ``decisions`` and ``equity``). The curve
        starts with a synthetic point at ``start_ts`` (every account at its initial
        capital) when that precedes the first mark, and ends with a flat point at
        ``end_ts`` when that follows the last one.
    warnings : tuple[str, ...]
        Problems found while assembling the accounts (unexpected account names).
    """

    accounts: pd.DataFrame
    total: pd.Series
    initial: dict[str, float]
    marks: dict[str, pd.Series] = field(default_factory=dict)
    start_ts: int | None = None
    end_ts: int | None = None
    warnings: tuple[str, ...] = ()

    @property
    def initial_total(self) -> float:
        """Sum of the accounts' starting equity."""
        return float(sum(self.initial.values()))


def _accounts_for(run: RunInfo, seen: list[str]) -> tuple[dict[str, float], list[str]]:
    """Accounts and their starting capital, plus warnings."""
    capital = run.initial_capital_value
    warnings: list[str] = []
    if run.capital_mode == "portfolio":
        extra = [a for a in seen if a != PORTFOLIO_ACCOUNT]
        if extra:
            warnings.append(f"portfolio run has equity rows for unexpected accounts {extra}; "
                            "they are ignored")
        return {PORTFOLIO_ACCOUNT: capital}, warnings
    if run.capital_mode != "independent":
        warnings.append(f"unknown capital_mode '{run.capital_mode}': every account is "
                        "treated as independent, each starting at initial_capital")
    names = list(dict.fromkeys([*run.symbols, *sorted(seen)]))
    return {name: capital for name in names}, warnings


def load_equity_curve(bind: Bind, run_id: str, run: RunInfo | None = None) -> EquityCurve:
    """Build the total-equity step curve of a run from its equity marks.

    Marks come from two tables: ``decisions.equity`` (every bar: the account's
    mark-to-market equity at that bar's close) and the ``equity`` snapshots (start of
    run, after every fill). Each account's equity is a step function of its marks. In
    ``independent`` capital mode every symbol is its own account starting at
    ``runs.initial_capital``; in ``portfolio`` mode the single account ``portfolio``
    starts at ``runs.initial_capital``. Total equity at time *t* is

        E(t) = sum_a e_a(t),   e_a(t) = equity of a's last mark with ts <= t,
                               or a's initial capital when it has none yet,

    evaluated on the union of all mark timestamps (several marks of one account at one
    ``ts``: a decision mark wins over a snapshot, then the highest ``seq``).
    Vectorised (pivot + forward fill), so a million-row run is fast.
    """
    with connect(bind) as conn:
        if run is None:
            run = load_run(conn, run_id)
        snap = conn.execute(
            select(equity.c.seq, equity.c.account, equity.c.ts, equity.c.equity)
            .where(equity.c.run_id == run_id)).all()
        marks = conn.execute(
            select(decisions.c.seq, decisions.c.symbol, decisions.c.ts, decisions.c.equity)
            .where(decisions.c.run_id == run_id, decisions.c.equity.is_not(None))).all()
        span = conn.execute(select(func.min(decisions.c.ts), func.max(decisions.c.ts))
                            .where(decisions.c.run_id == run_id)).one()
    frames = []
    for source, rows in ((0, snap), (1, marks)):
        if rows:
            seq, account, ts, value = zip(*rows)
            if source == 1 and run.capital_mode == "portfolio":
                account = ("portfolio",) * len(seq)
            frames.append(pd.DataFrame({"src": source, "seq": np.asarray(seq, dtype=np.int64),
                                        "account": np.asarray(account, dtype=object),
                                        "ts": np.asarray(ts, dtype=np.int64),
                                        "equity": np.asarray(value, dtype=float)}))
    if frames:
        df = pd.concat(frames, ignore_index=True).sort_values(["ts", "src", "seq"], kind="stable")
        df["seq"] = np.arange(len(df), dtype=np.int64)
        df = df.drop(columns="src")
    else:
        df = pd.DataFrame({"seq": np.array([], dtype=np.int64), "account": np.array([], object),
                           "ts": np.array([], dtype=np.int64), "equity": np.array([], float)})
    initial, warnings = _accounts_for(run, sorted(df["account"].unique()))
    return _curve_from_frame(df, initial, span[0], span[1], warnings)


def _curve_from_frame(df: pd.DataFrame, initial: dict[str, float],
                      first_bar: int | None, last_bar: int | None,
                      warnings: list[str] | None = None) -> EquityCurve:
    names = list(initial)
    df = df[df["account"].isin(names)]
    df = df.sort_values(["ts", "seq"], kind="stable").drop_duplicates(["ts", "account"],
                                                                      keep="last")
    wide = df.pivot(index="ts", columns="account", values="equity").reindex(columns=names)
    wide = wide.ffill().fillna(value=initial)
    wide.index = wide.index.astype(np.int64)
    wide.columns.name = None
    starts = [int(t) for t in (first_bar, wide.index.min() if len(wide) else None)
              if t is not None]
    ends = [int(t) for t in (last_bar, wide.index.max() if len(wide) else None)
            if t is not None]
    start_ts = min(starts) if starts else None
    end_ts = max(ends) if ends else None
    if start_ts is not None and (wide.empty or start_ts < wide.index[0]):
        head = pd.DataFrame([initial], index=pd.Index([start_ts], dtype=np.int64))
        wide = pd.concat([head, wide])
    if end_ts is not None and end_ts > wide.index[-1]:
        tail = pd.DataFrame([wide.iloc[-1].to_dict()], index=pd.Index([end_ts], dtype=np.int64))
        wide = pd.concat([wide, tail])
    wide = wide.astype(float)
    marks = {a: g.set_index("ts")["equity"].astype(float) for a, g in df.groupby("account")}
    # Summed account by account, in account order: the same float result on every
    # machine (a row reduction's order depends on numpy's SIMD loops and the frame's
    # memory layout), and the one scan_run gives.
    total = pd.Series(0.0, index=wide.index) if not names else wide[names[0]].copy()
    for name in names[1:]:
        total = total + wide[name]
    total.name = None
    return EquityCurve(accounts=wide, total=total, initial=dict(initial),
                       marks=marks, start_ts=start_ts, end_ts=end_ts,
                       warnings=tuple(warnings or ()))


@dataclass(frozen=True)
class Drawdown:
    """Deepest peak-to-trough decline of an equity series (see :func:`drawdown`)."""

    max_drawdown: float = 0.0
    max_drawdown_pct: float = 0.0
    peak_equity: float = 0.0
    peak_ts: int | None = None
    trough_ts: int | None = None
    series_pct: pd.Series | None = None


def drawdown(values: pd.Series, initial: float, start_ts: int | None = None) -> Drawdown:
    """Deepest drawdown of an equity series, seeded with the starting capital.

    With ``E_0 = initial`` at ``start_ts`` and ``E_i`` the series values, the running
    peak is ``P_i = max(E_0..E_i)``, drawdown ``D_i = P_i - E_i`` (quote currency) and
    ``D%_i = 100 * D_i / P_i``. The reported episode is the one with the largest
    ``D%`` (first occurrence); ``max_drawdown`` is that episode's ``P - E`` in quote
    currency. ``peak_ts`` is the last time equity stood at that peak before the
    trough (the start of the decline), ``trough_ts`` the time of the trough. This is
    the usual maximum-drawdown definition (e.g. Magdon-Ismail & Atiya, 2004).

    Parameters
    ----------
    values : pandas.Series
        Equity, indexed by ascending UTC epoch seconds.
    initial : float
        Starting equity (quote currency).
    start_ts : int | None
        When the starting equity applies (default: the first index value).
    """
    v = values.to_numpy(dtype=float)
    t = values.index.to_numpy(dtype=np.int64)
    seed_ts = start_ts if start_ts is not None else (int(t[0]) if len(t) else None)
    arr = np.concatenate(([float(initial)], v))
    ts = np.concatenate(([seed_ts if seed_ts is not None else 0], t)).astype(np.int64)
    peak = np.maximum.accumulate(arr)
    dd = peak - arr
    with np.errstate(divide="ignore", invalid="ignore"):
        dd_pct = np.where(peak > 0, 100.0 * dd / peak, 0.0)
    series = pd.Series(-dd_pct[1:], index=values.index, dtype=float)
    peak_equity = float(arr.max())
    if not len(v) or dd_pct.max() <= 0:
        return Drawdown(peak_equity=peak_equity, series_pct=series)
    i = int(np.argmax(dd_pct))
    idx = np.arange(len(arr))
    peak_idx = np.maximum.accumulate(np.where(arr >= peak, idx, 0))[i]
    return Drawdown(max_drawdown=float(dd[i]), max_drawdown_pct=float(dd_pct[i]),
                    peak_equity=peak_equity, peak_ts=int(ts[peak_idx]), trough_ts=int(ts[i]),
                    series_pct=series)


def daily_returns(total: pd.Series, initial: float, sessions: bool = False) -> pd.Series:
    """Daily simple returns of total equity.

    ``total`` (indexed by UTC epoch seconds) is resampled to UTC calendar days, taking
    each day's last value as its close and forward filling days without a mark (the
    curve is a step function). The return of day *d* is ``C_d / C_{d-1} - 1``; the
    close before the first day is the starting capital ``initial``. With
    ``sessions`` (a market with sessions, see :func:`return_basis`) only the days with
    a mark are days: a weekend or holiday is no return of 0.
    """
    if total.empty:
        return pd.Series(dtype=float)
    s = pd.Series(total.to_numpy(dtype=float),
                  index=pd.to_datetime(total.index.to_numpy(dtype=np.int64), unit="s", utc=True))
    closes = s.resample("1D").last()
    closes = closes.dropna() if sessions else closes.ffill()
    prev = closes.shift(1)
    prev.iloc[0] = float(initial)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = closes / prev - 1.0
    return out.replace([np.inf, -np.inf], np.nan).dropna()


class AccountStats(BaseModel):
    """One account's equity summary (quote currency; percentages in percent)."""

    model_config = ConfigDict(frozen=True)

    account: str
    initial_capital: float
    final_equity: float
    peak_equity: float
    return_pct: float | None
    max_drawdown: float
    max_drawdown_pct: float
    marks: int


class RiskStats(BaseModel):
    """Risk statistics of a run's total equity.

    Attributes
    ----------
    initial_capital : float
        Total starting equity: ``initial_capital * n_accounts`` (independent) or
        ``initial_capital`` (portfolio).
    final_equity, peak_equity : float
        Last and highest total equity (the peak includes the starting capital).
    total_return_pct : float | None
        ``100 * (final_equity / initial_capital - 1)``.
    max_drawdown, max_drawdown_pct : float
        See :func:`drawdown` (quote currency, >= 0; percent of peak, >= 0).
    drawdown_peak_ts, drawdown_trough_ts : int | None
        When that drawdown's peak and trough were (``*_time``: ISO 8601).
    max_consecutive_losses : int
        Longest streak of ``pnl < 0`` trades by exit time (see
        :func:`consecutive_losses`); ``max_consecutive_loss_pnl`` is its pnl sum.
    sharpe, sortino : float | None
        empyrical-reloaded's Sharpe and Sortino ratios (computed by
        :mod:`tradewarden.analytics.ratios`, tested against empyrical) of
        :func:`daily_returns` with ``annualization=365`` and zero risk-free rate /
        required return:
        Sharpe = mean(r) / std(r, ddof=1) * sqrt(365); Sortino = mean(r) * 365 /
        (sqrt(mean(min(r, 0)^2)) * sqrt(365)). ``None`` when undefined (fewer than two
        daily returns, a flat curve, or no negative day for Sortino); see
        ``ratio_notes``.
    daily_returns : int
        Number of daily returns used.
    annualization : str
        :data:`ANNUALIZATION_NOTE`, or :data:`SESSION_NOTE` for a market with
        sessions (see :func:`return_basis`; the ratios then use 252, not 365).
    periods_per_year : int
        365 (calendar days) or 252 (sessions).
    equity_marks : int
        ``equity`` rows of the run.
    first_ts, last_ts : int | None
        The curve's first and last timestamps.
    accounts : dict[str, AccountStats]
        Per account (symbol in independent mode; ``portfolio`` otherwise).
    """

    model_config = ConfigDict(frozen=True)

    initial_capital: float
    final_equity: float
    peak_equity: float
    total_return_pct: float | None
    max_drawdown: float
    max_drawdown_pct: float
    drawdown_peak_ts: int | None = None
    drawdown_peak_time: str | None = None
    drawdown_trough_ts: int | None = None
    drawdown_trough_time: str | None = None
    max_consecutive_losses: int = 0
    max_consecutive_loss_pnl: float = 0.0
    sharpe: float | None = None
    sortino: float | None = None
    ratio_notes: list[str] = []
    daily_returns: int = 0
    annualization: str = ANNUALIZATION_NOTE
    periods_per_year: int = ANNUALIZATION
    equity_marks: int = 0
    first_ts: int | None = None
    first_time: str | None = None
    last_ts: int | None = None
    last_time: str | None = None
    accounts: dict[str, AccountStats] = {}


def _pct(final: float, initial: float) -> float | None:
    return 100.0 * (final / initial - 1.0) if initial else None


def _ratio(name: str, value: float, n: int, notes: list[str]) -> float | None:
    if n < 2:
        notes.append(f"{name} undefined: fewer than 2 daily returns")
        return None
    if math.isnan(value) or (math.isinf(value) and name == "Sharpe"):
        notes.append(f"{name} undefined: zero variance of daily returns (flat equity)")
        return None
    if math.isinf(value):
        notes.append(f"{name} undefined: no negative daily return (zero downside deviation)")
        return None
    return float(value)


def summarize_risk(curve: EquityCurve, trades_df: pd.DataFrame) -> RiskStats:
    """Compute :class:`RiskStats` from an :class:`EquityCurve` and the run's trades.

    This is the straightforward computation on the whole curve in memory;
    :func:`risk_stats` and :func:`build_report <tradewarden.analytics.build_report>`
    get the same figures from the ledger in chunks (:func:`scan_run`).
    """
    accounts = {}
    for name, start in curve.initial.items():
        own = curve.marks.get(name, pd.Series(dtype=float))
        dd = drawdown(own, start, curve.start_ts)
        final = float(own.iloc[-1]) if len(own) else float(start)
        accounts[name] = _account_stats(name, float(start), final, dd, int(len(own)))
    total = curve.total
    marks = int(sum(len(m) for m in curve.marks.values()))
    if total.empty:
        return _risk_from_parts(curve.initial_total, trades_df, marks, accounts, None)
    dd = drawdown(total, curve.initial_total, curve.start_ts)
    basis = return_basis(np.unique(total.index.to_numpy(dtype=np.int64) // 86400))
    rets = daily_returns(total, curve.initial_total, sessions=basis[1])
    return _risk_from_parts(curve.initial_total, trades_df, marks, accounts,
                            (dd, rets, float(total.iloc[-1]), int(total.index[0]),
                             int(total.index[-1])), basis)


def _account_stats(name: str, start: float, final: float, dd: Drawdown, marks: int
                   ) -> AccountStats:
    return AccountStats(account=name, initial_capital=start, final_equity=final,
                        peak_equity=dd.peak_equity, return_pct=_pct(final, start),
                        max_drawdown=dd.max_drawdown, max_drawdown_pct=dd.max_drawdown_pct,
                        marks=marks)


def _risk_from_parts(initial_total: float, trades_df: pd.DataFrame, marks: int,
                     accounts: dict[str, AccountStats],
                     curve: tuple[Drawdown, pd.Series, float, int, int] | None,
                     basis: tuple[int, bool, str] = (ANNUALIZATION, False, ANNUALIZATION_NOTE)
                     ) -> RiskStats:
    """Assemble :class:`RiskStats`; ``curve`` is (drawdown, daily returns, final equity,
    first ts, last ts) of the total curve, ``None`` when there is no curve; ``basis``
    is :func:`return_basis` of its days."""
    streak, streak_pnl = consecutive_losses(trades_df)
    if curve is None:
        return RiskStats(initial_capital=initial_total, final_equity=initial_total,
                         peak_equity=initial_total, total_return_pct=0.0 if initial_total else None,
                         max_drawdown=0.0, max_drawdown_pct=0.0,
                         max_consecutive_losses=streak, max_consecutive_loss_pnl=streak_pnl,
                         ratio_notes=["Sharpe/Sortino undefined: no equity curve"],
                         equity_marks=marks, accounts=accounts)
    dd, rets, final, first_ts, last_ts = curve
    notes: list[str] = []
    n = int(len(rets))
    periods = basis[0]
    sharpe = _ratio("Sharpe", sharpe_ratio(rets, periods), n, notes)
    sortino = _ratio("Sortino", sortino_ratio(rets, periods), n, notes)
    return RiskStats(
        initial_capital=initial_total, final_equity=final, peak_equity=dd.peak_equity,
        total_return_pct=_pct(final, initial_total), max_drawdown=dd.max_drawdown,
        max_drawdown_pct=dd.max_drawdown_pct, drawdown_peak_ts=dd.peak_ts,
        drawdown_peak_time=_iso(dd.peak_ts), drawdown_trough_ts=dd.trough_ts,
        drawdown_trough_time=_iso(dd.trough_ts), max_consecutive_losses=streak,
        max_consecutive_loss_pnl=streak_pnl, sharpe=sharpe, sortino=sortino, ratio_notes=notes,
        daily_returns=n, annualization=basis[2], periods_per_year=periods,
        equity_marks=marks, first_ts=first_ts, first_time=_iso(first_ts),
        last_ts=last_ts, last_time=_iso(last_ts), accounts=accounts)


def risk_stats(bind: Bind, run_id: str) -> RiskStats:
    """Read a run's ``equity``, ``decisions`` and ``trades`` and compute :class:`RiskStats`.

    The equity curve is folded in chunks (see :func:`scan_run`), never held whole.
    """
    with connect(bind) as conn:
        run = load_run(conn, run_id)
        df = load_trades(conn, run_id)
        scan = scan_run(conn, run_id, run)
    return scan.risk(df)


# --------------------------------------------------------------------------- streamed equity

#: Rows per batch when a run's decisions and equity rows are streamed from the ledger.
STREAM_BATCH_ROWS = 16384

_DECISION_SCAN = ("SELECT ts, symbol, action, reason, COALESCE(equity, 0.0) AS equity, "
                  "CASE WHEN equity IS NULL THEN 1 ELSE 0 END AS no_equity, "
                  "COALESCE(close, 0.0) AS close, CASE WHEN close IS NULL THEN 1 ELSE 0 END "
                  "AS no_close, CASE WHEN state IN ('open', 'exit_pending') THEN 1 ELSE 0 END "
                  "AS held FROM decisions WHERE run_id = {p} ORDER BY {order}")
_NO_REASONS = ("action, reason,", "'' AS action, '' AS reason,")
_NO_CLOSES = ("COALESCE(close, 0.0) AS close, CASE WHEN close IS NULL THEN 1 ELSE 0 END "
              "AS no_close", "0.0 AS close, 1 AS no_close")
_NO_HELD = ("CASE WHEN state IN ('open', 'exit_pending') THEN 1 ELSE 0 END AS held",
            "0 AS held")
_DECISION_SCHEMA = pa.schema([("ts", pa.int64()), ("symbol", pa.string()),
                              ("action", pa.string()), ("reason", pa.string()),
                              ("equity", pa.float64()), ("no_equity", pa.int64()),
                              ("close", pa.float64()), ("no_close", pa.int64()),
                              ("held", pa.int64())])
_SNAPSHOT_SCAN = ("SELECT ts, account, equity FROM equity WHERE run_id = {p} "
                  "ORDER BY ts, seq")
_SNAPSHOT_SCHEMA = pa.schema([("ts", pa.int64()), ("account", pa.string()),
                              ("equity", pa.float64())])


class _Unsorted(Exception):
    """Decisions in ``seq`` order are not in time order: read them sorted by time."""


class _NewAccount(Exception):
    """A decision names an account the run's symbols and equity rows did not."""


def _sqlite_file(conn: Connection) -> str | None:
    """The ledger's SQLite file when it is one on disk (read through ADBC), else ``None``."""
    url = conn.engine.url
    if url.get_backend_name() != "sqlite" or url.query.get("uri"):
        return None
    path = url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return path if os.path.isfile(path) else None


@contextmanager
def _adbc_reader(path: str) -> Iterator[Any]:
    """Open a read-only ADBC connection to a SQLite ledger file for one read; close it after.

    The ADBC driver carries its own copy of SQLite, which does not see the POSIX locks
    of Python's ``sqlite3`` connections to the same file in this process (the hazard of
    two SQLite libraries in one process, sqlite.org/howtocorrupt.html section 2.2.1).
    Read-only (``mode=ro``), it can never checkpoint or delete the WAL under them; it
    is not kept open either, since a connection outliving the others' last close
    would read a WAL index they have deleted. It waits up to 10 s, as the ledger's own
    connections do, rather than failing while another connection holds a lock.
    """
    conn = _open_reader(os.path.abspath(path))
    try:
        yield conn
    finally:
        conn.close()


def _open_reader(path: str) -> Any:
    import adbc_driver_sqlite.dbapi as adbc

    # autocommit: each query is its own read transaction (the DB-API default would open
    # one at the first query and hold that snapshot until the connection closes).
    conn = adbc.connect(f"file:{urllib.parse.quote(path)}?mode=ro", autocommit=True)
    cur = conn.cursor()
    try:
        cur.execute("PRAGMA busy_timeout=10000")
        if cur.description:
            cur.fetchall()
    finally:
        cur.close()
    return conn


def _batches(conn: Connection, sql: str, run_id: str, schema: pa.Schema
             ) -> Iterator[pa.RecordBatch]:
    """Stream a query's rows as Arrow batches of :data:`STREAM_BATCH_ROWS` rows.

    A SQLite file is read through ADBC (rows decoded to Arrow in C, about 4x faster than
    Python rows); any other database through SQLAlchemy, a partition at a time. Either
    way only one batch is in memory.
    """
    path = _sqlite_file(conn)
    if path is not None:
        with _adbc_reader(path) as ac:
            cur = ac.cursor()
            try:
                cur.adbc_statement.set_options(
                    **{"adbc.sqlite.query.batch_rows": str(STREAM_BATCH_ROWS)})
                cur.execute(sql.format(p="?"), parameters=(run_id,))
                for batch in cur.fetch_record_batch():
                    if batch.num_rows:
                        yield pa.RecordBatch.from_arrays(
                            [batch.column(i).cast(f.type) for i, f in enumerate(schema)],
                            schema=schema)
            finally:
                cur.close()
        return
    result = conn.execute(text(sql.format(p=":run_id")).execution_options(
        yield_per=STREAM_BATCH_ROWS), {"run_id": run_id})
    for rows in result.partitions():
        cols = list(zip(*rows)) if rows else [[] for _ in schema]
        yield pa.RecordBatch.from_arrays(
            [pa.array(col, type=f.type) for col, f in zip(cols, schema)], schema=schema)


def _decision_batches(conn: Connection, run_id: str, order: str, reasons: bool = True,
                      closes: bool = False, held: bool = False) -> Iterator[pa.RecordBatch]:
    """The decisions scan (:data:`_DECISION_SCAN`), in ``order``; without ``reasons``
    the action and reason columns are left empty (not read: text is most of the cost),
    without ``closes`` the close column is, without ``held`` the held flag (1 when the
    decision's state is ``open`` or ``exit_pending``: a position is held) is 0.

    On a SQLite file in ``seq`` order the rows are read as consecutive ``seq`` ranges
    of :data:`STREAM_BATCH_ROWS` by reader threads, each on its own ADBC connection
    (SQLite and ADBC work without the GIL), at most two ranges ahead per reader, and
    handed over in order: the scan runs on both cores while the caller folds what it
    has, and memory stays a few batches.
    """
    scan = _DECISION_SCAN
    if not reasons:
        scan = scan.replace(*_NO_REASONS)
    if not closes:
        scan = scan.replace(*_NO_CLOSES)
    if not held:
        scan = scan.replace(*_NO_HELD)
    path = _sqlite_file(conn)
    if path is None or order != "seq":
        yield from _batches(conn, scan.format(p="{p}", order=order), run_id, _DECISION_SCHEMA)
        return
    # Two index lookups: SQLite answers min() and max() in one query with a full scan.
    seq = select(decisions.c.seq).where(decisions.c.run_id == run_id).limit(1)
    lo = conn.execute(seq.order_by(decisions.c.seq)).scalar()
    hi = conn.execute(seq.order_by(decisions.c.seq.desc())).scalar()
    if lo is None:
        return
    step = STREAM_BATCH_ROWS
    ranges = [(a, min(a + step, hi + 1)) for a in range(int(lo), int(hi) + 1, step)]
    workers = max(1, min(2, os.cpu_count() or 1, len(ranges)))
    sql = scan.format(p="?", order="seq").replace(
        "WHERE run_id = ?", "WHERE run_id = ? AND seq >= ? AND seq < ?")
    queues = [queue.Queue(maxsize=2) for _ in range(workers)]
    stop = threading.Event()

    def read(w: int) -> None:
        q = queues[w]
        try:
            with _adbc_reader(path) as ac:
                cur = ac.cursor()
                try:
                    cur.adbc_statement.set_options(
                        **{"adbc.sqlite.query.batch_rows": str(step)})
                    for a, b in ranges[w::workers]:
                        cur.execute(sql, parameters=(run_id, a, b))
                        table = cur.fetch_arrow_table()
                        while not stop.is_set():
                            try:
                                q.put(table, timeout=0.1)
                                break
                            except queue.Full:
                                continue
                        if stop.is_set():
                            return
                finally:
                    cur.close()
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            try:
                q.put(exc, timeout=1.0)
            except queue.Full:            # the reading thread has stopped
                pass

    threads = [threading.Thread(target=read, args=(w,), daemon=True,
                                name=f"tradewarden-scan-{w}") for w in range(workers)]
    for t in threads:
        t.start()
    try:
        for i in range(len(ranges)):
            got = queues[i % workers].get()
            if isinstance(got, BaseException):
                raise got
            for batch in got.to_batches():
                if batch.num_rows:
                    yield pa.RecordBatch.from_arrays(
                        [batch.column(j).cast(f.type) for j, f in enumerate(_DECISION_SCHEMA)],
                        schema=_DECISION_SCHEMA)
    finally:
        stop.set()
        for q in queues:                   # unblock a reader waiting to put
            while not q.empty():
                q.get_nowait()
        for t in threads:
            t.join()


def _codes(names: pa.Array, index: dict[str, int]) -> np.ndarray:
    """Account code of each name (-1 for names not in ``index``)."""
    enc = pc.dictionary_encode(names)
    lookup = np.array([index.get(n, -1) for n in enc.dictionary.to_pylist()] or [-1],
                      dtype=np.int64)
    return lookup[enc.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)]


def _merge_by_time(sources: list[Iterator[tuple[np.ndarray, ...]]]
                   ) -> Iterator[tuple[np.ndarray, ...]]:
    """Merge time-sorted chunk streams into chunks of whole timestamps.

    Each source yields ``(ts, *columns)`` arrays sorted by ``ts``. The merged chunks are
    sorted by (ts, source, position in source): at one ``ts`` every row of the first
    source comes before those of the second. A chunk never splits the rows of one
    ``ts``.
    """
    bufs: list[tuple[np.ndarray, ...] | None] = [None] * len(sources)
    done = [False] * len(sources)

    def refill(k: int) -> None:
        chunk = next(sources[k], None)
        if chunk is None:
            done[k] = True
        elif bufs[k] is None or not len(bufs[k][0]):
            bufs[k] = chunk
        else:
            bufs[k] = tuple(np.concatenate((a, b)) for a, b in zip(bufs[k], chunk))

    def take(limit: int | None) -> list[tuple[np.ndarray, ...]]:
        parts = []
        for k, buf in enumerate(bufs):
            if buf is None or not len(buf[0]):
                continue
            cut = len(buf[0]) if limit is None else int(np.searchsorted(buf[0], limit, "left"))
            if cut:
                parts.append(tuple(a[:cut] for a in buf))
                bufs[k] = tuple(a[cut:] for a in buf)
        return parts

    while True:
        for k in range(len(sources)):
            while not done[k] and (bufs[k] is None or not len(bufs[k][0])):
                refill(k)
        live = [k for k in range(len(sources)) if not done[k]]
        limit = min(int(bufs[k][0][-1]) for k in live) if live else None
        parts = take(limit)
        if parts:
            merged = tuple(np.concatenate(cols) for cols in zip(*parts))
            order = np.argsort(merged[0], kind="stable")
            yield tuple(a[order] for a in merged)
        if not live:
            return
        for k in live:
            if int(bufs[k][0][-1]) == limit:
                refill(k)


class _Peak:
    """Running peak and deepest drawdown of one equity series (see :func:`drawdown`),
    fed in time-ordered chunks; the same arithmetic, so the same figures."""

    def __init__(self, initial: float) -> None:
        self.peak = float(initial)
        self.peak_ts: int | None = None        # None: the seed (initial capital)
        self.best_pct = 0.0
        self.best: tuple[float, float, int | None, int] | None = None
        self.count = 0
        self.last: float | None = None

    def update(self, ts: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Fold one chunk; return its drawdown in percent of the running peak (>= 0)."""
        if not len(v):
            return np.zeros(0)
        run = np.maximum.accumulate(np.concatenate(([self.peak], v)))[1:]
        dd = run - v
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = np.where(run > 0, 100.0 * dd / run, 0.0)
        at_peak = v >= run
        last_at_peak = np.maximum.accumulate(np.where(at_peak, np.arange(len(v)), -1))
        j = int(np.argmax(pct))
        if pct[j] > self.best_pct:
            peak_ts = self.peak_ts if last_at_peak[j] < 0 else int(ts[last_at_peak[j]])
            self.best_pct = float(pct[j])
            self.best = (float(dd[j]), float(pct[j]), peak_ts, int(ts[j]))
        if at_peak.any():
            self.peak_ts = int(ts[np.flatnonzero(at_peak)[-1]])
        self.peak = float(run[-1])
        self.count += len(v)
        self.last = float(v[-1])
        return pct

    def result(self, seed_ts: int | None) -> Drawdown:
        if self.best is None:
            return Drawdown(peak_equity=self.peak)
        dd, pct, peak_ts, trough_ts = self.best
        return Drawdown(max_drawdown=dd, max_drawdown_pct=pct, peak_equity=self.peak,
                        peak_ts=seed_ts if peak_ts is None else peak_ts, trough_ts=trough_ts)


class _DailyCloses:
    """Last total equity of each UTC day, fed in time-ordered chunks."""

    def __init__(self) -> None:
        self.days: list[np.ndarray] = []
        self.closes: list[np.ndarray] = []

    def update(self, ts: np.ndarray, v: np.ndarray) -> None:
        if not len(v):
            return
        day = ts // 86400
        last = np.flatnonzero(np.r_[day[1:] != day[:-1], True])
        d, c = day[last], v[last]
        if self.days and self.days[-1][-1] == d[0]:     # the day continues: later wins
            self.days[-1], self.closes[-1] = self.days[-1][:-1], self.closes[-1][:-1]
        self.days.append(d)
        self.closes.append(c)

    def all_days(self) -> np.ndarray:
        """The UTC days with a point (epoch seconds // 86400), ascending."""
        return np.concatenate(self.days) if self.days else np.zeros(0, dtype=np.int64)

    def returns(self, initial: float, sessions: bool = False) -> pd.Series:
        """As :func:`daily_returns` of the whole curve."""
        if not self.days:
            return pd.Series(dtype=float)
        days = np.concatenate(self.days)
        closes = np.concatenate(self.closes)
        if sessions:                     # only the days with a point
            prev = np.concatenate(([float(initial)], closes[:-1]))
            with np.errstate(divide="ignore", invalid="ignore"):
                out = closes / prev - 1.0
            keep = np.isfinite(out)
            index = pd.to_datetime(days[keep] * 86400, unit="s", utc=True)
            return pd.Series(out[keep], index=index, dtype=float)
        first = int(days[0])
        dense = np.full(int(days[-1]) - first + 1, np.nan)
        dense[days - first] = closes
        filled = np.maximum.accumulate(np.where(np.isnan(dense), -1, np.arange(len(dense))))
        dense = dense[filled]
        prev = np.concatenate(([float(initial)], dense[:-1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            out = dense / prev - 1.0
        keep = np.isfinite(out)
        index = pd.to_datetime((first + np.arange(len(dense)))[keep] * 86400, unit="s", utc=True)
        return pd.Series(out[keep], index=index, dtype=float)


class _Thin:
    """Per-bucket minimum and maximum of a series of known length, fed in chunks: the
    points :func:`tradewarden.analytics.charts.downsample` keeps, without the series."""

    def __init__(self, n: int, max_points: int) -> None:
        self.n = n
        self.full = n <= max_points
        self.buckets = max(1, (max_points - 2) // 2)
        self.lo = np.full(self.buckets, np.inf)
        self.hi = np.full(self.buckets, -np.inf)
        self.lo_at = np.full(self.buckets, -1, dtype=np.int64)
        self.hi_at = np.full(self.buckets, -1, dtype=np.int64)
        self.kept_ts: list[np.ndarray] = []
        self.kept_v: list[np.ndarray] = []
        self.at: dict[int, tuple[int, float]] = {}
        self.seen = 0

    def update(self, ts: np.ndarray, v: np.ndarray) -> None:
        m = len(v)
        if not m:
            return
        g = np.arange(self.seen, self.seen + m, dtype=np.int64)
        self.seen += m
        if self.full:
            self.kept_ts.append(np.asarray(ts, dtype=np.int64))
            self.kept_v.append(np.asarray(v, dtype=float))
            return
        for i in (0, self.n - 1):
            if g[0] <= i <= g[-1]:
                self.at[i] = (int(ts[i - g[0]]), float(v[i - g[0]]))
        bucket = (g * self.buckets) // self.n
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        ends = np.r_[starts[1:], m]
        for s, e in zip(starts.tolist(), ends.tolist()):
            b = int(bucket[s])
            seg = v[s:e]
            j, k = int(np.argmin(seg)), int(np.argmax(seg))
            if seg[j] < self.lo[b]:
                self.lo[b], self.lo_at[b] = seg[j], g[s + j]
                self.at[int(g[s + j])] = (int(ts[s + j]), float(seg[j]))
            if seg[k] > self.hi[b]:
                self.hi[b], self.hi_at[b] = seg[k], g[s + k]
                self.at[int(g[s + k])] = (int(ts[s + k]), float(seg[k]))

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """The kept points in time order: (UTC epoch seconds, values)."""
        if self.full:
            if not self.kept_ts:
                return np.zeros(0, dtype=np.int64), np.zeros(0)
            return np.concatenate(self.kept_ts), np.concatenate(self.kept_v)
        keep = np.unique(np.concatenate([self.lo_at[self.lo_at >= 0], self.hi_at[self.hi_at >= 0],
                                         [0, self.n - 1]]))
        pts = [self.at[int(i)] for i in keep]
        return (np.array([p[0] for p in pts], dtype=np.int64),
                np.array([p[1] for p in pts], dtype=float))


class PeriodReturn(BaseModel):
    """The return of one calendar month or year of total equity (UTC).

    ``period`` is ``"2024-05"`` for a month, ``"2024"`` for a year; ``month`` is
    ``None`` for a year. ``return_pct`` is in percent.
    """

    model_config = ConfigDict(frozen=True)

    period: str
    year: int
    month: int | None = None
    return_pct: float


class PerformanceStats(BaseModel):
    """Growth, time in market, benchmark and calendar figures of a run's total equity.

    Every figure is computed from the ledger (``decisions``, ``equity``); the
    definitions follow empyrical-reloaded 0.7 where the ledger allows (see
    :mod:`tradewarden.analytics.ratios`, tested against empyrical).

    Attributes
    ----------
    periods_per_year : int
        365 (the data has weekend bars: calendar days) or 252 (NYSE-like sessions:
        days with bars), from :func:`return_basis`.
    period_basis : str
        ``"calendar days"`` or ``"sessions"``.
    periods : int
        Daily returns used (days, or sessions).
    years : float | None
        ``periods / periods_per_year``.
    cagr_pct : float | None
        Compound annual growth rate, percent: ``prod(1 + r) ** (A / n) - 1`` of the
        daily returns ``r`` (empyrical's ``cagr``); equal to
        ``(final / initial) ** (1 / years) - 1``. ``None`` without returns or after a
        total loss.
    calmar : float | None
        ``CAGR / max drawdown`` with the report's max drawdown (total equity per bar,
        peak seeded with the initial capital). empyrical's ``calmar_ratio`` divides by
        the drawdown of daily closes instead, which is never deeper, so this ratio is
        never larger in magnitude; on daily bars the two are equal. ``None`` without
        a drawdown (T. W. Young, *Futures*, 1991).
    exposure_pct : float | None
        Time in market of the whole run: percent of its bar times (distinct decision
        timestamps) at which at least one position was held (a decision state
        ``open`` or ``exit_pending``: the position was open at the bar's close).
    exposure_by_symbol : dict[str, float | None]
        The same per symbol: percent of the symbol's bars with its position held.
    bars_by_symbol, bars_held_by_symbol : dict[str, int]
        The counts behind ``exposure_by_symbol``.
    buy_hold_return_pct : float | None
        Buy and hold of the same symbols over the same bars, percent: the total
        starting capital split equally, each part bought at the symbol's first
        recorded close and valued at its last (``decisions.close``), no fees or
        slippage: ``mean_s(last_s / first_s) - 1``.
    buy_hold_final_equity : float | None
        ``initial_capital * (1 + buy_hold_return_pct / 100)``, quote currency.
    buy_hold_by_symbol : dict[str, float | None]
        Each symbol's ``last / first - 1``, percent.
    excess_return_pct : float | None
        The run's total return minus the buy-and-hold return, percentage points.
    monthly_returns, yearly_returns : list[PeriodReturn]
        ``prod(1 + r) - 1`` of the daily returns in each UTC calendar month / year
        (empyrical's ``aggregate_returns``); the first and last may be partial.
    best_month, worst_month : PeriodReturn | None
        The months with the highest and the lowest return (first one on a tie).
    notes : list[str]
        Why a figure is missing.
    """

    model_config = ConfigDict(frozen=True)

    periods_per_year: int = ANNUALIZATION
    period_basis: str = "calendar days"
    periods: int = 0
    years: float | None = None
    cagr_pct: float | None = None
    calmar: float | None = None
    exposure_pct: float | None = None
    exposure_by_symbol: dict[str, float | None] = {}
    bars_by_symbol: dict[str, int] = {}
    bars_held_by_symbol: dict[str, int] = {}
    buy_hold_return_pct: float | None = None
    buy_hold_final_equity: float | None = None
    buy_hold_by_symbol: dict[str, float | None] = {}
    excess_return_pct: float | None = None
    monthly_returns: list[PeriodReturn] = []
    yearly_returns: list[PeriodReturn] = []
    best_month: PeriodReturn | None = None
    worst_month: PeriodReturn | None = None
    notes: list[str] = []


class _Exposure:
    """Bars held and first / last close per symbol, and the run's distinct bar times
    with any position held, fed decision batches (``held`` and ``close`` read) in time
    order. A symbol's rows at one timestamp (a bar and an end-of-data liquidation)
    count as one bar, the first of them."""

    def __init__(self) -> None:
        self.bars: dict[str, int] = {}
        self.held: dict[str, int] = {}
        self.first_close: dict[str, float] = {}
        self.last_close: dict[str, float] = {}
        self.last_ts: dict[str, int] = {}
        self.times = 0
        self.times_held = 0
        self.pending: tuple[int, bool] | None = None    # the last time, still open

    def feed(self, batch: pa.RecordBatch) -> None:
        ts = batch.column(0).to_numpy(zero_copy_only=False)
        if not len(ts):
            return
        held = batch.column(8).to_numpy(zero_copy_only=False) != 0
        has_close = batch.column(7).to_numpy(zero_copy_only=False) == 0
        close = batch.column(6).to_numpy(zero_copy_only=False)
        enc = pc.dictionary_encode(batch.column(1))
        codes = enc.indices.to_numpy(zero_copy_only=False)
        for c, name in enumerate(enc.dictionary.to_pylist()):
            mine = np.flatnonzero(codes == c)
            if not len(mine):
                continue
            t = ts[mine]
            keep = np.empty(len(t), dtype=bool)
            keep[0] = t[0] != self.last_ts.get(name)
            keep[1:] = t[1:] != t[:-1]
            self.bars[name] = self.bars.get(name, 0) + int(keep.sum())
            self.held[name] = self.held.get(name, 0) + int((held[mine] & keep).sum())
            self.last_ts[name] = int(t[-1])
            priced = mine[has_close[mine]]
            if len(priced):
                self.first_close.setdefault(name, float(close[priced[0]]))
                self.last_close[name] = float(close[priced[-1]])
        starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
        times = ts[starts]
        any_held = np.maximum.reduceat(held.astype(np.int8), starts) > 0
        if self.pending is not None:
            if times[0] == self.pending[0]:
                any_held[0] |= self.pending[1]
            else:
                self.times += 1
                self.times_held += int(self.pending[1])
        self.times += len(times) - 1
        self.times_held += int(any_held[:-1].sum())
        self.pending = (int(times[-1]), bool(any_held[-1]))

    def finish(self) -> _Exposure:
        """Count the last timestamp; return self."""
        if self.pending is not None:
            self.times += 1
            self.times_held += int(self.pending[1])
            self.pending = None
        return self


def summarize_performance(returns: pd.Series, periods_per_year: int, sessions: bool,
                          risk: RiskStats, initial_total: float, exposure: _Exposure,
                          symbols: list[str]) -> PerformanceStats:
    """Compute :class:`PerformanceStats` from a run's daily returns and what its
    decisions held (the pure part of :meth:`RunScan.performance`).

    Parameters
    ----------
    returns : pandas.Series
        Daily (or session) returns of total equity, UTC ``DatetimeIndex``.
    periods_per_year : int
        365 or 252 (:func:`return_basis`).
    sessions : bool
        Whether the returns are per session.
    risk : RiskStats
        For the total return and the max drawdown (Calmar).
    initial_total : float
        Total starting capital, quote currency.
    exposure : _Exposure
        Bars held and closes per symbol, filled by the decisions scan.
    symbols : list of str
        Symbols to report (the run's), in order.
    """
    notes: list[str] = []
    r = returns.to_numpy(dtype=float)
    n = len(r)
    cagr = annual_return(r, periods_per_year) if n else math.nan
    if n and not math.isfinite(cagr):
        notes.append("CAGR undefined: equity fell to zero or below")
    calmar = (calmar_ratio(r, periods_per_year, risk.max_drawdown_pct / 100.0)
              if n and risk.max_drawdown_pct > 0 else math.nan)
    if n and not risk.max_drawdown_pct > 0:
        notes.append("Calmar undefined: no drawdown")
    monthly = [PeriodReturn(period=f"{int(y):04d}-{int(m):02d}", year=int(y), month=int(m),
                            return_pct=100.0 * float(v))
               for (y, m), v in aggregate_returns(returns, "monthly").items()] if n else []
    yearly = [PeriodReturn(period=f"{int(y):04d}", year=int(y), return_pct=100.0 * float(v))
              for y, v in aggregate_returns(returns, "yearly").items()] if n else []
    best = max(monthly, key=lambda p: p.return_pct) if monthly else None
    worst = min(monthly, key=lambda p: p.return_pct) if monthly else None

    names = list(dict.fromkeys([*symbols, *exposure.bars]))
    by_symbol = {s: (100.0 * exposure.held.get(s, 0) / exposure.bars[s]
                     if exposure.bars.get(s) else None) for s in names}
    bh = {s: (100.0 * (exposure.last_close[s] / exposure.first_close[s] - 1.0)
              if exposure.first_close.get(s) else None) for s in names}
    priced = [v for v in bh.values() if v is not None]
    if len(priced) < len(names):
        notes.append("buy and hold: no recorded close for "
                     + ", ".join(s for s, v in bh.items() if v is None))
    bh_total = sum(priced) / len(priced) if priced else None
    total_ret = risk.total_return_pct
    return PerformanceStats(
        periods_per_year=periods_per_year, period_basis="sessions" if sessions else "calendar days",
        periods=n, years=n / periods_per_year if n else None,
        cagr_pct=100.0 * cagr if math.isfinite(cagr) else None,
        calmar=calmar if math.isfinite(calmar) else None,
        exposure_pct=(100.0 * exposure.times_held / exposure.times if exposure.times else None),
        exposure_by_symbol=by_symbol,
        bars_by_symbol={s: exposure.bars.get(s, 0) for s in names},
        bars_held_by_symbol={s: exposure.held.get(s, 0) for s in names},
        buy_hold_return_pct=bh_total,
        buy_hold_final_equity=(initial_total * (1.0 + bh_total / 100.0)
                               if bh_total is not None else None),
        buy_hold_by_symbol=bh,
        excess_return_pct=(total_ret - bh_total if total_ret is not None and bh_total is not None
                           else None),
        monthly_returns=monthly, yearly_returns=yearly, best_month=best, worst_month=worst,
        notes=notes)


@dataclass
class RunScan:
    """What one pass over a run's ``decisions`` and ``equity`` rows found.

    Built by :func:`scan_run`. Holds the total-equity curve's summary (drawdown,
    daily closes, first/last point), per-account summaries and the decision counts,
    never the curve itself.

    Attributes
    ----------
    initial : dict[str, float]
        Starting equity per account (quote currency), in the curve's account order.
    points : int
        Points of the total-equity step curve (see :func:`load_equity_curve`).
    start_ts, end_ts : int | None
        The curve's synthetic first and last points (UTC epoch seconds).
    decisions : DecisionStats
    warnings : tuple[str, ...]
    """

    initial: dict[str, float]
    points: int
    start_ts: int | None
    end_ts: int | None
    decisions: DecisionStats
    warnings: tuple[str, ...]
    _total: _Peak
    _accounts: dict[str, _Peak]
    _daily: _DailyCloses
    _first_ts: int | None
    _last_ts: int | None
    _exposure: _Exposure | None = None

    @property
    def empty(self) -> bool:
        """``True`` when the run has no equity curve at all (no decisions, no marks)."""
        return self.points == 0

    @property
    def initial_total(self) -> float:
        """Sum of the accounts' starting equity."""
        return float(sum(self.initial.values()))

    def risk(self, trades_df: pd.DataFrame) -> RiskStats:
        """The run's :class:`RiskStats` (the same figures as :func:`summarize_risk` on
        the whole curve), given its trades (for the losing streak)."""
        accounts = {}
        for name, start in self.initial.items():
            peak = self._accounts[name]
            final = peak.last if peak.last is not None else float(start)
            accounts[name] = _account_stats(name, float(start), final,
                                            peak.result(self.start_ts), peak.count)
        marks = int(sum(p.count for p in self._accounts.values()))
        if self.empty:
            return _risk_from_parts(self.initial_total, trades_df, marks, accounts, None)
        basis = self.basis()
        rets = self._daily.returns(self.initial_total, sessions=basis[1])
        return _risk_from_parts(self.initial_total, trades_df, marks, accounts,
                                (self._total.result(self.start_ts), rets,
                                 float(self._total.last), int(self._first_ts),
                                 int(self._last_ts)), basis)

    def basis(self) -> tuple[int, bool, str]:
        """:func:`return_basis` of the days the run's equity curve has points on."""
        return return_basis(self._daily.all_days())

    def performance(self, risk: RiskStats, symbols: list[str]) -> PerformanceStats:
        """The run's growth, exposure, buy-and-hold and calendar figures
        (:class:`PerformanceStats`), given its :class:`RiskStats` (from :meth:`risk`)
        and the symbols to list (the run's)."""
        if self.empty:
            return PerformanceStats(notes=["no equity curve: no growth figures"])
        periods, sessions, _ = self.basis()
        rets = self._daily.returns(self.initial_total, sessions=sessions)
        return summarize_performance(rets, periods, sessions, risk, self.initial_total,
                                     self._exposure or _Exposure(), symbols)


def _account_names(conn: Connection, run_id: str, run: RunInfo, extra: list[str]
                   ) -> tuple[dict[str, float], list[str]]:
    snap_accounts = [a for (a,) in conn.execute(
        select(equity.c.account).where(equity.c.run_id == run_id).distinct())]
    return _accounts_for(run, sorted(set(snap_accounts) | set(extra)))


def _equity_points(conn: Connection, run_id: str, run: RunInfo, initial: dict[str, float],
                   order: str, counts: dict[tuple[str, str, str], int] | None,
                   closes: _Closes | None = None, exposure: _Exposure | None = None
                   ) -> Iterator[tuple[str, Any]]:
    """Stream a run's total-equity step curve and each account's own marks.

    Yields ``("span", (first bar, last bar))`` once the first decisions are read,
    ``("account", (code, ts, values))`` for each account's deduplicated marks,
    ``("total", (ts, totals))`` for the curve's points (with the synthetic first and
    last points of :func:`load_equity_curve`), in time order. Decisions are counted
    into ``counts`` and fed to ``closes`` and ``exposure`` on the way. Raises
    :class:`_Unsorted` / :class:`_NewAccount` for the caller to start again.
    """
    names = list(initial)
    index = {n: i for i, n in enumerate(names)}
    portfolio = run.capital_mode == "portfolio"
    span: list[int | None] = [None, None]

    def decisions_marks() -> Iterator[tuple[np.ndarray, ...]]:
        last = None
        for batch in _decision_batches(conn, run_id, order, reasons=counts is not None,
                                       closes=closes is not None or exposure is not None,
                                       held=exposure is not None):
            ts = batch.column(0).to_numpy(zero_copy_only=False)
            if (last is not None and ts[0] < last) or (len(ts) > 1 and (np.diff(ts) < 0).any()):
                raise _Unsorted()
            last = int(ts[-1])
            if closes is not None:
                closes.feed(batch)
            if exposure is not None:
                exposure.feed(batch)
            if span[0] is None:
                span[0] = int(ts[0])
            span[1] = last
            if counts is not None:
                _count_reasons(batch, counts)
            marked = np.flatnonzero(batch.column(5).to_numpy(zero_copy_only=False) == 0)
            if not len(marked):
                continue
            values = batch.column(4).to_numpy(zero_copy_only=False)[marked]
            if portfolio:
                codes = np.zeros(len(marked), dtype=np.int64)
            else:
                codes = _codes(batch.column(1).take(pa.array(marked)), index)
                if (codes < 0).any():
                    raise _NewAccount()
            yield ts[marked], codes, values

    def snapshot_marks() -> Iterator[tuple[np.ndarray, ...]]:
        for batch in _batches(conn, _SNAPSHOT_SCAN, run_id, _SNAPSHOT_SCHEMA):
            codes = _codes(batch.column(1), index)
            ok = codes >= 0                   # portfolio runs: other accounts are ignored
            yield (batch.column(0).to_numpy(zero_copy_only=False)[ok], codes[ok],
                   batch.column(2).to_numpy(zero_copy_only=False)[ok])

    k = len(names)
    current = np.array([initial[n] for n in names], dtype=float)
    initial_total = float(sum(initial.values()))
    first_point: int | None = None
    last_point: int | None = None
    last_total = initial_total
    decisions_iter = decisions_marks()
    # Read the first decisions before the first equity rows: the curve's first point
    # needs the run's first bar.
    first = next(decisions_iter, None)

    def with_first() -> Iterator[tuple[np.ndarray, ...]]:
        if first is not None:
            yield first
        yield from decisions_iter

    for ts, acc, val in _merge_by_time([snapshot_marks(), with_first()]):
        if first_point is None:
            yield "span", tuple(span)
        n = len(ts)
        if k == 1:
            keep = np.r_[ts[1:] != ts[:-1], True]
            ts_d, acc_d, val_d = ts[keep], acc[keep], val[keep]
        else:
            order_idx = np.lexsort((np.arange(n), acc, ts))
            ts_s, acc_s = ts[order_idx], acc[order_idx]
            keep = np.r_[(ts_s[1:] != ts_s[:-1]) | (acc_s[1:] != acc_s[:-1]), True]
            ts_d, acc_d, val_d = ts_s[keep], acc_s[keep], val[order_idx][keep]
        starts = np.r_[True, ts_d[1:] != ts_d[:-1]]
        u = ts_d[starts]
        group = np.cumsum(starts) - 1
        total = None
        for a in range(k):
            mine = np.flatnonzero(acc_d == a)
            if len(mine):
                yield "account", (a, ts_d[mine], val_d[mine])
                idx = np.full(len(u), -1, dtype=np.int64)
                idx[group[mine]] = np.arange(len(mine))
                idx = np.maximum.accumulate(idx)
                col = np.where(idx >= 0, val_d[mine][np.maximum(idx, 0)], current[a])
                current[a] = col[-1]
            else:
                col = np.full(len(u), current[a])
            total = col if total is None else total + col
        if first_point is None:
            start = min(t for t in (span[0], int(u[0])) if t is not None)
            if start < u[0]:
                yield "total", (np.array([start], dtype=np.int64), np.array([initial_total]))
                first_point = start
            else:
                first_point = int(u[0])
        yield "total", (u, total)
        last_point = int(u[-1])
        last_total = float(total[-1])
    if first_point is None:                  # no marks at all: the bars' span, flat
        if span[0] is None:
            return
        yield "span", tuple(span)
        first_point = last_point = span[0]
        yield "total", (np.array([span[0]], dtype=np.int64), np.array([initial_total]))
    if span[1] is not None and span[1] > last_point:
        yield "total", (np.array([span[1]], dtype=np.int64), np.array([last_total]))


def _with_restarts(conn: Connection, run_id: str, run: RunInfo, consume: Any) -> Any:
    """Run ``consume(initial, warnings, order)`` until the stream needs no restart: in
    ``seq`` order first (decisions are written in time order), by time if they are not;
    with every account named by the decisions if one was missing."""
    extra: list[str] = []
    order = "seq"
    while True:
        initial, warnings = _account_names(conn, run_id, run, extra)
        try:
            return consume(initial, warnings, order)
        except _Unsorted:
            order = "ts, seq"
        except _NewAccount:
            extra = [s for (s,) in conn.execute(
                select(decisions.c.symbol).where(decisions.c.run_id == run_id,
                                                 decisions.c.equity.is_not(None)).distinct())]


def scan_run(bind: Bind, run_id: str, run: RunInfo | None = None) -> RunScan:
    """Read a run's equity marks and decisions once, in chunks, and summarise them.

    The total-equity curve is the step function of :func:`load_equity_curve` (each
    account's last mark at or before *t*, its initial capital before its first mark,
    summed over accounts; a decision mark beats a snapshot at the same ``ts``, then
    the higher ``seq``), with its synthetic first and last points. It is folded chunk
    by chunk (:data:`STREAM_BATCH_ROWS` rows) into the running peak and deepest
    drawdown (:func:`drawdown`), the last value of each UTC day
    (:func:`daily_returns`) and each account's own peak and drawdown; decisions are
    counted by symbol, action and reason on the way (:class:`DecisionStats`). Memory
    is a few chunks, whatever the run's length; the figures are those of
    :func:`summarize_risk` on the whole curve (same arithmetic, same order).

    Parameters
    ----------
    bind : Engine | Connection
        The ledger. A SQLite file is read through ADBC (Arrow batches); other
        databases through SQLAlchemy, a partition at a time.
    run_id : str
    run : RunInfo, optional
        The run's row, when already read.

    Returns
    -------
    RunScan

    Raises
    ------
    LookupError
        For an unknown run.
    """
    with connect(bind) as conn:
        if run is None:
            run = load_run(conn, run_id)

        def consume(initial: dict[str, float], warnings: list[str], order: str) -> RunScan:
            counts: dict[tuple[str, str, str], int] = {}
            names = list(initial)
            total = _Peak(float(sum(initial.values())))
            accounts = {n: _Peak(initial[n]) for n in names}
            daily = _DailyCloses()
            exposure = _Exposure()
            span: tuple[int | None, int | None] = (None, None)
            points = 0
            first_ts = last_ts = None
            for kind, item in _equity_points(conn, run_id, run, initial, order, counts,
                                             exposure=exposure):
                if kind == "total":
                    ts, v = item
                    total.update(ts, v)
                    daily.update(ts, v)
                    points += len(ts)
                    first_ts = int(ts[0]) if first_ts is None else first_ts
                    last_ts = int(ts[-1])
                elif kind == "account":
                    a, ts, v = item
                    accounts[names[a]].update(ts, v)
                else:
                    span = item
            start_ts = first_ts
            end_ts = None if last_ts is None else max(last_ts, span[1] or last_ts)
            return RunScan(initial=dict(initial), points=points, start_ts=start_ts,
                           end_ts=end_ts, decisions=_decision_stats_from(counts),
                           warnings=tuple(warnings), _total=total, _accounts=accounts,
                           _daily=daily, _first_ts=first_ts, _last_ts=last_ts,
                           _exposure=exposure.finish())

        return _with_restarts(conn, run_id, run, consume)


@dataclass(frozen=True)
class EquityChart:
    """The total-equity and drawdown series of a run, thinned for a chart.

    Each series keeps the points :func:`tradewarden.analytics.charts.downsample` keeps
    (per-bucket minimum and maximum, first and last point) of the full curve, found in
    chunks by :func:`equity_chart`.

    Attributes
    ----------
    ts, total : numpy.ndarray
        Kept points of total equity: UTC epoch seconds (int64), quote currency.
    drawdown_ts, drawdown_pct : numpy.ndarray
        Kept points of the drawdown from the running peak, in percent (<= 0).
    initial_total : float
        Total starting equity (quote currency).
    start_ts : int | None
        The curve's first point.
    """

    ts: np.ndarray
    total: np.ndarray
    drawdown_ts: np.ndarray
    drawdown_pct: np.ndarray
    initial_total: float
    start_ts: int | None = None

    @property
    def empty(self) -> bool:
        """``True`` without any point."""
        return len(self.ts) == 0


def equity_chart(bind: Bind, run_id: str, run: RunInfo | None = None,
                 max_points: int = 2000) -> EquityChart:
    """Thin a run's total-equity curve and its drawdown for a chart, reading in chunks.

    See :func:`chart_series`, of which this is the equity part.

    Raises
    ------
    LookupError
        For an unknown run.
    """
    return chart_series(bind, run_id, [], run, max_points)[0]


def price_series(bind: Bind, run_id: str, symbols: list[str], max_points: int = 2000
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each symbol's close (``decisions.close``, the last decision's per bar) thinned
    for a chart as :func:`tradewarden.analytics.charts.downsample` would, read in chunks.

    Returns
    -------
    dict of str to (numpy.ndarray, numpy.ndarray)
        Symbol -> (UTC epoch seconds, close in quote currency), at most ``max_points``
        points each; empty arrays for a symbol without closes.
    """
    with connect(bind) as conn:
        order = "seq"
        while True:
            try:
                first = _Closes(symbols, None)
                for batch in _decision_batches(conn, run_id, order, reasons=False, closes=True):
                    first.feed(batch)
                first.finish()
                closes = _Closes(symbols, {s: _Thin(n, max_points) for s, n in first.counts.items()})
                for batch in _decision_batches(conn, run_id, order, reasons=False, closes=True):
                    closes.feed(batch)
                return closes.finish()
            except _Unsorted:
                order = "ts, seq"


def chart_series(bind: Bind, run_id: str, symbols: list[str], run: RunInfo | None = None,
                 max_points: int = 2000
                 ) -> tuple[EquityChart, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The HTML report's series, thinned, from two passes over the run's decisions.

    The first pass counts the points of the total-equity curve and of each symbol's
    close; the second keeps each bucket's extremes (the buckets of
    :func:`tradewarden.analytics.charts.downsample`, so each chart is the one the
    whole series would give). Memory is a few chunks whatever the run's length.

    Parameters
    ----------
    bind : Engine | Connection
    run_id : str
    symbols : list of str
        Symbols whose closes to thin (see :func:`price_series`).
    run : RunInfo, optional
    max_points : int, default 2000

    Returns
    -------
    tuple of (EquityChart, dict of str to (numpy.ndarray, numpy.ndarray))

    Raises
    ------
    LookupError
        For an unknown run.
    """
    with connect(bind) as conn:
        if run is None:
            run = load_run(conn, run_id)

        def consume(initial: dict[str, float], warnings: list[str], order: str
                    ) -> tuple[EquityChart, dict[str, tuple[np.ndarray, np.ndarray]]]:
            counter = _Closes(symbols, None) if symbols else None
            n = sum(len(item[0]) for kind, item in
                    _equity_points(conn, run_id, run, initial, order, None, counter)
                    if kind == "total")
            closes = None
            if counter is not None:
                counter.finish()
                closes = _Closes(symbols, {s: _Thin(c, max_points)
                                           for s, c in counter.counts.items()})
            initial_total = float(sum(initial.values()))
            eq, dd = _Thin(n, max_points), _Thin(n, max_points)
            peak = _Peak(initial_total)
            start = None
            for kind, item in _equity_points(conn, run_id, run, initial, order, None, closes):
                if kind == "total":
                    ts, v = item
                    start = int(ts[0]) if start is None else start
                    eq.update(ts, v)
                    dd.update(ts, -peak.update(ts, v))
            (t, v), (dt, dv) = eq.points(), dd.points()
            prices = closes.finish() if closes is not None else {}
            return EquityChart(t, v, dt, dv, initial_total, start), prices

        return _with_restarts(conn, run_id, run, consume)


class _Closes:
    """Each symbol's close per bar (the last decision's when a bar has several), fed
    decision batches in time order: counted, or thinned by ``thins``."""

    def __init__(self, symbols: list[str], thins: dict[str, _Thin] | None) -> None:
        self.symbols = list(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.thins = thins
        self.counts = dict.fromkeys(self.symbols, 0)
        self.held: dict[int, tuple[np.ndarray, np.ndarray]] = {}   # last ts group per symbol
        self.last_ts: dict[int, int] = {}

    def _emit(self, code: int, ts: np.ndarray, v: np.ndarray) -> None:
        keep = np.r_[ts[1:] != ts[:-1], True]                      # one price per bar
        ts, v = ts[keep], v[keep]
        self.counts[self.symbols[code]] += len(ts)
        if self.thins is not None:
            self.thins[self.symbols[code]].update(ts, v)

    def feed(self, batch: pa.RecordBatch) -> None:
        if not self.symbols:
            return
        has = batch.column(7).to_numpy(zero_copy_only=False) == 0
        if not has.any():
            return
        rows = np.flatnonzero(has)
        codes = _codes(batch.column(1).take(pa.array(rows)), self.index)
        ts_all = batch.column(0).to_numpy(zero_copy_only=False)[rows]
        v_all = batch.column(6).to_numpy(zero_copy_only=False)[rows]
        for code in np.unique(codes[codes >= 0]).tolist():
            mine = codes == code
            ts, v = ts_all[mine], v_all[mine]
            if code in self.held:
                ts = np.concatenate((self.held[code][0], ts))
                v = np.concatenate((self.held[code][1], v))
            if (code in self.last_ts and ts[0] < self.last_ts[code]) or (np.diff(ts) < 0).any():
                raise _Unsorted()
            self.last_ts[code] = int(ts[-1])
            cut = int(np.searchsorted(ts, ts[-1], "left"))          # the last ts may continue
            self.held[code] = (ts[cut:], v[cut:])
            if cut:
                self._emit(code, ts[:cut], v[:cut])

    def finish(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        for code, (ts, v) in self.held.items():
            self._emit(code, ts, v)
        self.held = {}
        if self.thins is None:
            return {}
        return {s: self.thins[s].points() for s in self.symbols}


# --------------------------------------------------------------------------- data quality

class SymbolQuality(BaseModel):
    """Data-quality counts of one symbol's input bars (from ``runs.data_quality``)."""

    model_config = ConfigDict(frozen=True)

    rows: int | None = None
    gaps: int | None = None
    missing_bars: int | None = None
    zero_volume_bars: int | None = None
    rows_skipped: int | None = None
    status: str | None = None
    extra: dict[str, Any] = {}


class DataQuality(BaseModel):
    """A run's input-data quality: ``runs.data_integrity``, ``bars_processed`` and the
    per-symbol ``runs.data_quality`` JSON; ``issues`` lists anything that needs a look."""

    model_config = ConfigDict(frozen=True)

    integrity: str
    bars_processed: int
    symbols: dict[str, SymbolQuality] = {}
    issues: list[str] = []


_DQ_INT_KEYS = ("rows", "gaps", "missing_bars", "zero_volume_bars", "rows_skipped")


def _as_int(x: Any) -> int | None:
    try:
        return None if x is None else int(x)
    except (TypeError, ValueError):
        return None


def summarize_data_quality(run: RunInfo) -> DataQuality:
    """Decode ``runs.data_quality`` (JSON object: symbol -> counts) of a run."""
    issues: list[str] = []
    symbols: dict[str, SymbolQuality] = {}
    raw: Any = None
    if run.data_quality_json:
        try:
            raw = json.loads(run.data_quality_json)
        except ValueError:
            issues.append("runs.data_quality is not valid JSON")
    if raw is not None and not isinstance(raw, dict):
        issues.append("runs.data_quality is not a JSON object keyed by symbol")
        raw = None
    for sym, info in (raw or {}).items():
        if not isinstance(info, dict):
            issues.append(f"{sym}: data_quality entry is not an object")
            continue
        q = SymbolQuality(**{k: _as_int(info.get(k)) for k in _DQ_INT_KEYS},
                          status=None if info.get("status") is None else str(info["status"]),
                          extra={k: v for k, v in info.items()
                                 if k not in _DQ_INT_KEYS and k != "status"})
        symbols[str(sym)] = q
        problems = [f"{k}={getattr(q, k)}" for k in ("gaps", "missing_bars", "zero_volume_bars",
                                                     "rows_skipped") if getattr(q, k)]
        if problems:
            issues.append(f"{sym}: " + ", ".join(problems))
        if q.status not in (None, "ok"):
            issues.append(f"{sym}: status {q.status}")
    missing = [s for s in run.symbols if s not in symbols]
    if missing and raw is not None:
        issues.append(f"no data-quality entry for {missing}")
    if run.data_integrity != "ok":
        issues.insert(0, f"data integrity is '{run.data_integrity}'")
    return DataQuality(integrity=run.data_integrity, bars_processed=run.bars_processed,
                       symbols=symbols, issues=issues)


def data_quality(bind: Bind, run_id: str) -> DataQuality:
    """Read a run's data-quality record (see :func:`summarize_data_quality`)."""
    return summarize_data_quality(load_run(bind, run_id))


# --------------------------------------------------------------------------- decisions

class ReasonCount(BaseModel):
    """How often one (action, reason) pair was decided."""

    model_config = ConfigDict(frozen=True)

    action: str
    reason: str
    count: int


class DecisionStats(BaseModel):
    """Decision counts (SQL ``GROUP BY`` over ``decisions``).

    ``top_reasons`` are the most frequent (action, reason) pairs, count descending
    then action and reason ascending; ``top_non_hold_reasons`` the same without holds.
    """

    model_config = ConfigDict(frozen=True)

    total: int = 0
    by_action: dict[str, int] = {}
    by_symbol: dict[str, dict[str, int]] = {}
    top_reasons: list[ReasonCount] = []
    top_non_hold_reasons: list[ReasonCount] = []


def decision_stats(bind: Bind, run_id: str, top: int = 10) -> DecisionStats:
    """Count a run's decisions by action, by symbol and action, and by reason.

    The counts are those of ``GROUP BY symbol, action, reason`` over ``decisions``,
    taken on the rows streamed in Arrow batches (one pass, a batch in memory).
    """
    counts: dict[tuple[str, str, str], int] = {}
    with connect(bind) as conn:
        for batch in _batches(conn, "SELECT symbol, action, reason FROM decisions "
                                    "WHERE run_id = {p}", run_id, _REASON_SCHEMA):
            _count_reasons(batch, counts)
    return _decision_stats_from(counts, top)


_REASON_SCHEMA = pa.schema([("symbol", pa.string()), ("action", pa.string()),
                            ("reason", pa.string())])


def _count_reasons(batch: pa.RecordBatch, counts: dict[tuple[str, str, str], int]) -> None:
    """Add one batch's (symbol, action, reason) counts."""
    grouped = pa.Table.from_batches([batch.select(["symbol", "action", "reason"])]).group_by(
        ["symbol", "action", "reason"], use_threads=False).aggregate([([], "count_all")])
    cols = [grouped.column(c).to_pylist() for c in ("symbol", "action", "reason",
                                                     "count_all")]
    for sym, act, why, n in zip(*cols):
        counts[(sym, act, why)] = counts.get((sym, act, why), 0) + int(n)


def _decision_stats_from(counts: dict[tuple[str, str, str], int], top: int = 10
                         ) -> DecisionStats:
    """:class:`DecisionStats` from (symbol, action, reason) counts, ordered as the SQL
    ``ORDER BY`` would: by symbol and action; reasons by count descending, then action
    and reason."""
    by_symbol: dict[str, dict[str, int]] = {}
    by_action: dict[str, int] = {}
    reasons: dict[tuple[str, str], int] = {}
    for (sym, act, why), n in sorted(counts.items()):
        by_symbol.setdefault(sym, {})
        by_symbol[sym][act] = by_symbol[sym].get(act, 0) + n
        by_action[act] = by_action.get(act, 0) + n
        reasons[(act, why)] = reasons.get((act, why), 0) + n
    ranked = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))
    return DecisionStats(
        total=sum(by_action.values()), by_action=dict(sorted(by_action.items())),
        by_symbol=by_symbol,
        top_reasons=[ReasonCount(action=a, reason=r, count=c) for (a, r), c in ranked[:top]],
        top_non_hold_reasons=[ReasonCount(action=a, reason=r, count=c)
                              for (a, r), c in [x for x in ranked if x[0][0] != "hold"][:top]])


def event_counts(bind: Bind, run_id: str) -> dict[str, int]:
    """Count a run's ``events`` by kind (halt, data, error, info)."""
    e = events.c
    with connect(bind) as conn:
        rows = conn.execute(select(e.kind, func.count()).where(e.run_id == run_id)
                            .group_by(e.kind).order_by(e.kind)).all()
    return {k: int(c) for k, c in rows}
