"""Text formatting of report numbers, shared by the console and HTML renderers."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tradewarden.analytics.gates import GateResult
from tradewarden.analytics.metrics import PerformanceStats, RiskStats, TradeStats

if TYPE_CHECKING:
    from tradewarden.analytics.report import Report

__all__ = ["DASH", "MONTHS", "fmt_duration", "fmt_hours", "fmt_int", "fmt_money", "fmt_pct",
           "fmt_ratio", "gate_threshold", "gate_value", "header_rows", "monthly_rows",
           "performance_rows", "risk_rows", "short", "trade_rows"]

#: Column headers of the monthly returns table.
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

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


def fmt_duration(seconds: int | float | None) -> str:
    """A holding time as days, hours and minutes (``2d 03h``, ``5h 30m``, ``45m``).

    Parameters
    ----------
    seconds : int, float or None
        Duration in seconds (``—`` when missing or negative).
    """
    if seconds is None or (isinstance(seconds, float) and not math.isfinite(seconds)) \
            or seconds < 0:
        return DASH
    minutes = int(seconds) // 60
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {mins:02d}m"
    return f"{mins}m"


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
        ("avg MAE / MFE", f"{fmt_pct(t.avg_mae_pct)} / {fmt_pct(t.avg_mfe_pct)}"),
        ("worst MAE / best MFE", f"{fmt_pct(t.worst_mae_pct)} / {fmt_pct(t.best_mfe_pct)}"),
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
        ("ratio basis", f"{r.annualization}; {fmt_int(r.daily_returns)} "
                        f"{'sessions' if r.periods_per_year == 252 else 'days'}"),
        ("equity marks", fmt_int(r.equity_marks)),
        ("curve span", f"{r.first_time or DASH} → {r.last_time or DASH}"),
    ]


def performance_rows(p: PerformanceStats, r: RiskStats) -> list[tuple[str, str]]:
    """Label/value rows of a :class:`PerformanceStats` for display (``r`` for the run's
    own total return beside buy and hold)."""
    def month(m: object) -> str:
        return DASH if m is None else f"{m.period} ({fmt_pct(m.return_pct)})"

    basis = (f"{p.period_basis}, {p.periods_per_year} a year; {fmt_int(p.periods)} "
             f"{'sessions' if p.period_basis == 'sessions' else 'days'}")
    return [
        ("CAGR", fmt_pct(p.cagr_pct)),
        ("Calmar (CAGR / max DD)", fmt_ratio(p.calmar)),
        ("time in market", fmt_pct(p.exposure_pct)),
        ("return / buy and hold", f"{fmt_pct(r.total_return_pct)} / "
                                  f"{fmt_pct(p.buy_hold_return_pct)}"),
        ("excess over buy and hold", fmt_pct(p.excess_return_pct)),
        ("best month", month(p.best_month)),
        ("worst month", month(p.worst_month)),
        ("return basis", basis),
    ]


def monthly_rows(p: PerformanceStats) -> list[list[str]]:
    """Rows of the monthly returns table: the year, its twelve months (percent, two
    decimals, ``—`` outside the run) and the year's return."""
    by_year: dict[int, dict[int, float]] = {}
    for m in p.monthly_returns:
        by_year.setdefault(m.year, {})[m.month or 0] = m.return_pct
    yearly = {y.year: y.return_pct for y in p.yearly_returns}
    rows = []
    for year in sorted(set(by_year) | set(yearly)):
        months = by_year.get(year, {})
        rows.append([str(year), *[fmt_ratio(months[k]) if k in months else DASH
                                  for k in range(1, 13)], fmt_ratio(yearly.get(year))])
    return rows


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
