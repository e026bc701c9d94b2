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
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterator

import empyrical
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from tradewarden.domain import iso
from tradewarden.ledger.schema import decisions, equity, events, runs, trades

__all__ = [
    "ANNUALIZATION", "ANNUALIZATION_NOTE", "PORTFOLIO_ACCOUNT", "AccountStats", "DataQuality",
    "DecisionStats", "EquityCurve", "ReasonCount", "RiskStats", "RunInfo", "SymbolQuality",
    "TradeStats", "TradeStatsResult", "connect", "daily_returns", "data_quality",
    "consecutive_losses", "decision_stats", "drawdown", "event_counts", "ledger_url",
    "load_equity_curve",
    "load_run", "load_trades", "risk_stats", "summarize_data_quality", "summarize_risk",
    "summarize_trades", "trade_stats",
]

#: Periods per year for daily returns. Crypto trades 24/7, so 365 (not 252).
ANNUALIZATION = 365
#: How Sharpe and Sortino are computed; printed in every report.
ANNUALIZATION_NOTE = "daily returns, UTC, annualised x sqrt(365), risk-free 0"
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
                  "return_pct", "exit_reason", "holding_seconds")


def load_trades(bind: Bind, run_id: str) -> pd.DataFrame:
    """Read a run's closed round trips, ordered by ``exit_ts`` then ``trade_id``.

    Returns
    -------
    pandas.DataFrame
        The ``trades`` columns of ``_TRADE_COLUMNS``; decimal columns (``quantity``,
        prices, ``fees``, ``pnl``) hold exact :class:`~decimal.Decimal` objects, and
        ``pnl_f`` / ``fees_f`` hold the same values as float for statistics.
    """
    cols = [trades.c[name] for name in _TRADE_COLUMNS]
    stmt = (select(*cols).where(trades.c.run_id == run_id)
            .order_by(trades.c.exit_ts, trades.c.trade_id))
    with connect(bind) as conn:
        rows = conn.execute(stmt).all()
    df = pd.DataFrame([tuple(r) for r in rows], columns=list(_TRADE_COLUMNS))
    if df.empty:
        df = df.astype({"entry_ts": "int64", "exit_ts": "int64", "holding_seconds": "int64"})
    for name in ("quantity", "entry_price", "exit_price", "fees", "pnl"):
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
        ``accounts.sum(axis=1)``: total equity, quote currency.
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
    return EquityCurve(accounts=wide, total=wide.sum(axis=1), initial=dict(initial),
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


def daily_returns(total: pd.Series, initial: float) -> pd.Series:
    """Daily simple returns of total equity.

    ``total`` (indexed by UTC epoch seconds) is resampled to UTC calendar days, taking
    each day's last value as its close and forward filling days without a mark (the
    curve is a step function). The return of day *d* is ``C_d / C_{d-1} - 1``; the
    close before the first day is the starting capital ``initial``.
    """
    if total.empty:
        return pd.Series(dtype=float)
    s = pd.Series(total.to_numpy(dtype=float),
                  index=pd.to_datetime(total.index.to_numpy(dtype=np.int64), unit="s", utc=True))
    closes = s.resample("1D").last().ffill()
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
        ``empyrical.sharpe_ratio`` / ``sortino_ratio`` of :func:`daily_returns` with
        ``annualization=365`` and zero risk-free rate / required return:
        Sharpe = mean(r) / std(r, ddof=1) * sqrt(365); Sortino = mean(r) * 365 /
        (sqrt(mean(min(r, 0)^2)) * sqrt(365)). ``None`` when undefined (fewer than two
        daily returns, a flat curve, or no negative day for Sortino); see
        ``ratio_notes``.
    daily_returns : int
        Number of daily returns used.
    annualization : str
        :data:`ANNUALIZATION_NOTE`.
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
    if math.isnan(value):
        notes.append(f"{name} undefined: zero variance of daily returns (flat equity)")
        return None
    if math.isinf(value):
        notes.append(f"{name} undefined: no negative daily return (zero downside deviation)")
        return None
    return float(value)


def summarize_risk(curve: EquityCurve, trades_df: pd.DataFrame) -> RiskStats:
    """Compute :class:`RiskStats` from an :class:`EquityCurve` and the run's trades."""
    initial_total = curve.initial_total
    streak, streak_pnl = consecutive_losses(trades_df)
    marks = int(sum(len(m) for m in curve.marks.values()))
    accounts = {}
    for name, start in curve.initial.items():
        own = curve.marks.get(name, pd.Series(dtype=float))
        dd = drawdown(own, start, curve.start_ts)
        final = float(own.iloc[-1]) if len(own) else float(start)
        accounts[name] = AccountStats(
            account=name, initial_capital=float(start), final_equity=final,
            peak_equity=dd.peak_equity,
            return_pct=_pct(final, float(start)), max_drawdown=dd.max_drawdown,
            max_drawdown_pct=dd.max_drawdown_pct, marks=int(len(own)))
    total = curve.total
    if total.empty:
        return RiskStats(initial_capital=initial_total, final_equity=initial_total,
                         peak_equity=initial_total, total_return_pct=0.0 if initial_total else None,
                         max_drawdown=0.0, max_drawdown_pct=0.0,
                         max_consecutive_losses=streak, max_consecutive_loss_pnl=streak_pnl,
                         ratio_notes=["Sharpe/Sortino undefined: no equity curve"],
                         equity_marks=marks, accounts=accounts)
    dd = drawdown(total, initial_total, curve.start_ts)
    rets = daily_returns(total, initial_total)
    notes: list[str] = []
    n = int(len(rets))
    sharpe = _ratio("Sharpe", empyrical.sharpe_ratio(rets, annualization=ANNUALIZATION), n, notes)
    sortino = _ratio("Sortino", empyrical.sortino_ratio(rets, annualization=ANNUALIZATION), n,
                     notes)
    final = float(total.iloc[-1])
    first_ts, last_ts = int(total.index[0]), int(total.index[-1])
    return RiskStats(
        initial_capital=initial_total, final_equity=final, peak_equity=dd.peak_equity,
        total_return_pct=_pct(final, initial_total), max_drawdown=dd.max_drawdown,
        max_drawdown_pct=dd.max_drawdown_pct, drawdown_peak_ts=dd.peak_ts,
        drawdown_peak_time=_iso(dd.peak_ts), drawdown_trough_ts=dd.trough_ts,
        drawdown_trough_time=_iso(dd.trough_ts), max_consecutive_losses=streak,
        max_consecutive_loss_pnl=streak_pnl, sharpe=sharpe, sortino=sortino, ratio_notes=notes,
        daily_returns=n, equity_marks=marks, first_ts=first_ts, first_time=_iso(first_ts),
        last_ts=last_ts, last_time=_iso(last_ts), accounts=accounts)


def risk_stats(bind: Bind, run_id: str) -> RiskStats:
    """Read a run's ``equity`` and ``trades`` and compute :class:`RiskStats`."""
    with connect(bind) as conn:
        run = load_run(conn, run_id)
        curve = load_equity_curve(conn, run_id, run)
        df = load_trades(conn, run_id)
    return summarize_risk(curve, df)


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
    """Count a run's decisions by action, by symbol and action, and by reason."""
    d = decisions.c
    n = func.count().label("n")
    reasons = select(d.action, d.reason, n).where(d.run_id == run_id).group_by(
        d.action, d.reason).order_by(n.desc(), d.action, d.reason)
    with connect(bind) as conn:
        sym_rows = conn.execute(select(d.symbol, d.action, n).where(d.run_id == run_id)
                                .group_by(d.symbol, d.action).order_by(d.symbol, d.action)).all()
        top_rows = conn.execute(reasons.limit(top)).all()
        non_hold = conn.execute(reasons.where(d.action != "hold").limit(top)).all()
    by_action: dict[str, int] = {}
    by_symbol: dict[str, dict[str, int]] = {}
    for sym, action, count in sym_rows:
        by_action[action] = by_action.get(action, 0) + int(count)
        by_symbol.setdefault(sym, {})[action] = int(count)
    return DecisionStats(
        total=sum(by_action.values()), by_action=dict(sorted(by_action.items())),
        by_symbol=by_symbol,
        top_reasons=[ReasonCount(action=a, reason=r, count=int(c)) for a, r, c in top_rows],
        top_non_hold_reasons=[ReasonCount(action=a, reason=r, count=int(c))
                              for a, r, c in non_hold])


def event_counts(bind: Bind, run_id: str) -> dict[str, int]:
    """Count a run's ``events`` by kind (halt, data, error, info)."""
    e = events.c
    with connect(bind) as conn:
        rows = conn.execute(select(e.kind, func.count()).where(e.run_id == run_id)
                            .group_by(e.kind).order_by(e.kind)).all()
    return {k: int(c) for k, c in rows}
