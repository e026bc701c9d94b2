"""Text formatting of report numbers, shared by the console and HTML renderers."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tradewarden.analytics.gates import GateResult
from tradewarden.analytics.metrics import RiskStats, TradeStats

if TYPE_CHECKING:
    from tradewarden.analytics.report import Report

__all__ = ["DASH", "fmt_hours", "fmt_int", "fmt_money", "fmt_pct", "fmt_ratio", "gate_threshold",
           "gate_value", "header_rows", "risk_rows", "short", "trade_rows"]

DASH = "—"


def _bad(x: float | int | None) -> str | None:
    if x is None:
        return DASH
    if isinstance(x, float) and math.isnan(x):
        return DASH
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return None


def fmt_money(x: float | None, decimals: int = 2) -> str:
    """Quote-currency amount with thousands separators (``12,345.67``)."""
    return _bad(x) or f"{x:,.{decimals}f}"


def fmt_pct(x: float | None, decimals: int = 2) -> str:
    """A number already in percent (``12.5`` -> ``12.50%``)."""
    return _bad(x) or f"{x:,.{decimals}f}%"


def fmt_ratio(x: float | None, decimals: int = 2) -> str:
    """A dimensionless ratio (profit factor, Sharpe)."""
    return _bad(x) or f"{x:,.{decimals}f}"


def fmt_int(x: int | None) -> str:
    """An integer count with thousands separators."""
    return _bad(x) or f"{int(x):,}"


def fmt_hours(x: float | None) -> str:
    """A duration in hours."""
    return _bad(x) or f"{x:,.1f} h"


def short(text: str | None, n: int = 12) -> str:
    """First ``n`` characters of a hash (``—`` when missing)."""
    return text[:n] if text else DASH


def gate_value(g: GateResult) -> str:
    """A gate's value for display."""
    if g.name == "max_drawdown_pct":
        return fmt_pct(g.value) if isinstance(g.value, float) else DASH
    if g.name == "min_profit_factor":
        return fmt_ratio(g.value) if isinstance(g.value, float) else DASH
    if isinstance(g.value, int) and not isinstance(g.value, bool):
        return fmt_int(g.value)
    return DASH if g.value is None else str(g.value)


def gate_threshold(g: GateResult) -> str:
    """A gate's threshold with its comparison (``>= 100``)."""
    op = {"run_completed": "==", "min_closed_trades": ">=", "min_profit_factor": ">=",
          "max_drawdown_pct": "<="}.get(g.name, "")
    t = g.threshold
    shown = fmt_pct(t) if g.name == "max_drawdown_pct" else (
        fmt_ratio(t) if isinstance(t, float) else str(t))
    return f"{op} {shown}".strip()


def trade_rows(t: TradeStats) -> list[tuple[str, str]]:
    """Label/value rows of a :class:`TradeStats` for display."""
    pf = fmt_ratio(t.profit_factor)
    if t.profit_factor_note and (t.profit_factor is None or math.isinf(t.profit_factor)):
        pf = f"{pf} ({t.profit_factor_note})"
    reasons = ", ".join(f"{k} {v}" for k, v in t.exit_reasons.items()) or DASH
    return [
        ("closed trades", fmt_int(t.closed_trades)),
        ("wins / losses / breakeven", f"{t.wins} / {t.losses} / {t.breakevens}"),
        ("win rate", fmt_pct(t.win_rate_pct)),
        ("profit factor", pf),
        ("expectancy / trade", fmt_money(t.expectancy)),
        ("average win", fmt_money(t.avg_win)),
        ("average loss", fmt_money(t.avg_loss)),
        ("payoff ratio", fmt_ratio(t.payoff_ratio)),
        ("gross profit / loss", f"{fmt_money(t.gross_profit)} / {fmt_money(t.gross_loss)}"),
        ("net pnl (after fees)", fmt_money(t.net_pnl)),
        ("fees paid", fmt_money(t.fees)),
        ("best / worst trade", f"{fmt_money(t.best_trade)} / {fmt_money(t.worst_trade)}"),
        ("avg return / trade", fmt_pct(t.avg_return_pct)),
        ("avg holding time", fmt_hours(t.avg_holding_hours)),
        ("exit reasons", reasons),
    ]


def risk_rows(r: RiskStats) -> list[tuple[str, str]]:
    """Label/value rows of a :class:`RiskStats` for display."""
    when = DASH
    if r.drawdown_peak_time or r.drawdown_trough_time:
        when = f"{r.drawdown_peak_time or DASH} → {r.drawdown_trough_time or DASH}"
    return [
        ("initial capital", fmt_money(r.initial_capital)),
        ("final equity", fmt_money(r.final_equity)),
        ("total return", fmt_pct(r.total_return_pct)),
        ("peak equity", fmt_money(r.peak_equity)),
        ("max drawdown", f"{fmt_money(r.max_drawdown)} ({fmt_pct(r.max_drawdown_pct)})"),
        ("drawdown peak → trough", when),
        ("max consecutive losses", f"{r.max_consecutive_losses} "
                                   f"(pnl {fmt_money(r.max_consecutive_loss_pnl)})"),
        ("Sharpe", fmt_ratio(r.sharpe)),
        ("Sortino", fmt_ratio(r.sortino)),
        ("ratio basis", f"{r.annualization}; {r.daily_returns} days"),
        ("equity marks", fmt_int(r.equity_marks)),
        ("curve span", f"{r.first_time or DASH} → {r.last_time or DASH}"),
    ]


def header_rows(report: Report) -> list[tuple[str, str]]:
    """Label/value rows of the run metadata for display."""
    run = report.run
    return [
        ("run id", run.run_id),
        ("status", run.status + (f" — {run.error}" if run.error else "")),
        ("mode / capital", f"{run.mode} / {run.capital_mode} "
                           f"(initial capital {run.initial_capital}"
                           f"{' per symbol' if run.capital_mode == 'independent' else ''})"),
        ("strategy", run.strategy),
        ("symbols", ", ".join(run.symbols) or DASH),
        ("timeframe", run.timeframe),
        ("range", f"{run.range_start or DASH} → {run.range_end or DASH}"),
        ("started / completed", f"{run.started_at} / {run.completed_at or DASH}"),
        ("config hash", short(run.config_hash, 16)),
        ("git sha", short(run.git_sha, 12)),
        ("data integrity", run.data_integrity),
        ("bars / decisions", f"{fmt_int(run.bars_processed)} / {fmt_int(report.decisions.total)}"),
        ("ledger", report.ledger_url),
    ]
