"""The report's growth, exposure, benchmark and calendar figures, and the console at 80
columns.

CAGR, Calmar, monthly and yearly returns are checked against empyrical-reloaded itself
on the default replay's ledger and on generated returns; time in market and buy and
hold against SQL over the ledger; the session basis (252 a year, days with bars) on a
hand-built weekday ledger; the console report rendered by Rich at 80 columns.
"""

from __future__ import annotations

import io
import json
import math
import re
import sqlite3

import empyrical
import numpy as np
import pandas as pd
import pytest
from rich.cells import cell_len
from rich.console import Console

from tradewarden.analytics import build_report, render_console
from tradewarden.analytics.formatting import fmt_money, fmt_pct, monthly_rows
from tradewarden.analytics.metrics import (
    daily_returns,
    load_equity_curve,
    load_trades,
    return_basis,
    scan_run,
    summarize_risk,
)
from tradewarden.analytics.ratios import (
    aggregate_returns,
    annual_return,
    calmar_ratio,
    max_drawdown,
    sharpe_ratio,
)
from tradewarden.engine import RunConfig
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import run_replay

from _analytics_ledger import D, H, Ledger as HandLedger


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default replay (3 symbols, the whole bundled sample) in a fresh ledger, and its
    report."""
    db = tmp_path_factory.mktemp("default") / "l.db"
    led = Ledger(db)
    run_replay(RunConfig(), led, run_id="default")
    led.close()
    led = Ledger(db, create=False)
    yield db, led.engine, build_report(led.engine, "default")
    led.close()


def _q(db, sql, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


# --------------------------------------------------------------------------- ratios

def _returns(seed: int, n: int, start: str = "2023-11-20") -> pd.Series:
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=n, freq="D", tz="UTC")
    return pd.Series(rng.normal(0.0004, 0.02, n), index=idx)


@pytest.mark.parametrize("seed,n", [(1, 5), (2, 400), (3, 1100)])
def test_growth_functions_are_empyricals(seed, n):
    r = _returns(seed, n)
    for periods in (365, 252):
        assert annual_return(r, periods) == pytest.approx(
            empyrical.cagr(r, annualization=periods), rel=1e-12)
        assert calmar_ratio(r, periods) == pytest.approx(
            empyrical.calmar_ratio(r, annualization=periods), rel=1e-12)
    assert max_drawdown(r) == pytest.approx(empyrical.max_drawdown(r), rel=1e-12)
    for kind in ("monthly", "yearly"):
        ours, theirs = aggregate_returns(r, kind), empyrical.aggregate_returns(r, kind)
        assert list(ours.index) == list(theirs.index)
        np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-12, atol=1e-15)


def test_growth_functions_at_the_edges():
    assert math.isnan(annual_return([], 365)) and math.isnan(max_drawdown([]))
    assert math.isnan(annual_return([0.1, -1.0], 365))             # a total loss has no rate
    assert math.isnan(calmar_ratio([0.01, 0.02], 365))              # no drawdown
    # a given (deeper) drawdown replaces the returns' own
    r = [0.05, -0.02, 0.03]
    assert calmar_ratio(r, 365, drawdown=-0.1) == pytest.approx(annual_return(r, 365) / 0.1)
    with pytest.raises(ValueError, match="monthly"):
        aggregate_returns(_returns(0, 3), "weekly")


def test_return_basis_follows_the_data():
    monday = 19723                                      # 2024-01-01 (days since the epoch)
    weekdays = np.array([monday + w * 7 + d for w in range(3) for d in range(5)])
    assert return_basis(weekdays)[:2] == (252, True)
    assert return_basis(np.arange(monday, monday + 21))[:2] == (365, False)   # weekends
    assert return_basis(np.arange(monday, monday + 5))[:2] == (365, False)    # too short to tell


# --------------------------------------------------------------------------- the default replay

def test_default_replay_figures_match_empyrical(default_run):
    db, engine, rep = default_run
    perf, risk = rep.performance, rep.risk
    curve = load_equity_curve(engine, "default")
    rets = daily_returns(curve.total, curve.initial_total)
    assert perf.periods_per_year == 365 and perf.period_basis == "calendar days"
    assert perf.periods == len(rets) == risk.daily_returns > 700
    assert perf.cagr_pct == pytest.approx(100 * empyrical.cagr(rets, annualization=365), rel=1e-9)
    final = risk.final_equity / risk.initial_capital
    assert perf.cagr_pct == pytest.approx(100 * (final ** (365 / len(rets)) - 1), rel=1e-9)
    # Calmar divides by the drawdown per bar, never shallower than empyrical's daily one
    daily_dd = -100 * empyrical.max_drawdown(rets)
    assert 0 < daily_dd <= risk.max_drawdown_pct
    assert perf.calmar == pytest.approx(perf.cagr_pct / risk.max_drawdown_pct, rel=1e-9)
    assert abs(perf.calmar) <= abs(empyrical.calmar_ratio(rets, annualization=365)) + 1e-12
    monthly = empyrical.aggregate_returns(rets, "monthly")
    assert [(m.year, m.month) for m in perf.monthly_returns] == list(monthly.index)
    np.testing.assert_allclose([m.return_pct for m in perf.monthly_returns],
                               100 * monthly.to_numpy(), rtol=1e-9)
    yearly = empyrical.aggregate_returns(rets, "yearly")
    assert [y.year for y in perf.yearly_returns] == list(yearly.index) == [2024, 2025, 2026]
    np.testing.assert_allclose([y.return_pct for y in perf.yearly_returns],
                               100 * yearly.to_numpy(), rtol=1e-9)
    assert perf.best_month.return_pct == pytest.approx(100 * monthly.max())
    assert perf.worst_month.return_pct == pytest.approx(100 * monthly.min())
    # the months compound to the whole run's return
    assert np.prod([1 + m.return_pct / 100 for m in perf.monthly_returns]) == \
        pytest.approx(final, rel=1e-9)


def test_default_replay_exposure_and_buy_and_hold_match_sql(default_run):
    db, _, rep = default_run
    perf = rep.performance
    for sym in ("BTC-USD", "ETH-USD", "SOL-USD"):
        (bars, held), = _q(db, "select count(distinct ts), count(distinct case when state in "
                               "('open', 'exit_pending') then ts end) from decisions "
                               "where run_id = 'default' and symbol = ?", sym)
        assert perf.bars_by_symbol[sym] == bars == 17990
        assert perf.bars_held_by_symbol[sym] == held > 1000
        assert perf.exposure_by_symbol[sym] == pytest.approx(100 * held / bars)
        (first,), = _q(db, "select close from decisions where run_id = 'default' and symbol = ? "
                           "order by seq limit 1", sym)
        (last,), = _q(db, "select close from decisions where run_id = 'default' and symbol = ? "
                          "order by seq desc limit 1", sym)
        assert perf.buy_hold_by_symbol[sym] == pytest.approx(100 * (last / first - 1))
    (times, any_held), = _q(db, "select count(distinct ts), count(distinct case when state in "
                                "('open', 'exit_pending') then ts end) from decisions "
                                "where run_id = 'default'")
    assert perf.exposure_pct == pytest.approx(100 * any_held / times)
    assert max(perf.exposure_by_symbol.values()) < perf.exposure_pct < 100
    bh = np.mean(list(perf.buy_hold_by_symbol.values()))
    assert perf.buy_hold_return_pct == pytest.approx(bh)
    assert perf.buy_hold_final_equity == pytest.approx(30_000 * (1 + bh / 100))
    assert perf.excess_return_pct == pytest.approx(rep.risk.total_return_pct - bh)
    # MAE / MFE summaries of the trades the engine recorded
    t = rep.trades
    assert t.worst_mae_pct <= t.avg_mae_pct < 0 < t.avg_mfe_pct <= t.best_mfe_pct
    doc = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert doc["performance"]["monthly_returns"][0]["period"] == "2024-04"


def test_console_report_fits_80_columns_without_cutting_a_number(default_run):
    _, _, rep = default_run
    buf = io.StringIO()
    console = Console(file=buf, width=80, color_system=None, legacy_windows=False)
    render_console(rep, console)
    text = buf.getvalue()
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= 80
    assert "…" not in text and "..." not in text
    # every figure appears whole, as formatted, on one line
    figures = [fmt_pct(rep.performance.cagr_pct), fmt_pct(rep.performance.exposure_pct),
               fmt_pct(rep.performance.buy_hold_return_pct), fmt_pct(rep.trades.avg_mae_pct),
               fmt_money(rep.risk.final_equity)]
    for b in rep.per_symbol.values():
        figures += [fmt_money(b.trades.net_pnl), fmt_money(b.trades.fees),
                    fmt_money(b.account.final_equity),
                    fmt_pct(rep.performance.exposure_by_symbol[b.symbol]),
                    fmt_pct(rep.performance.buy_hold_by_symbol[b.symbol])]
    for row in monthly_rows(rep.performance):
        figures += row
    for f in figures:
        assert re.search(rf"(^|\s){re.escape(f)}(\s|$)", text, re.M), f
    assert "Monthly returns" in text and "Performance" in text


# --------------------------------------------------------------------------- sessions

@pytest.fixture
def weekday_run(ledger: HandLedger) -> HandLedger:
    """Run 'r-days': one symbol, daily bars on weekdays only (NYSE-like) for 6 weeks."""
    monday = 1704067200                                     # 2024-01-01, a Monday
    days = [monday + w * 7 * D + d * D for w in range(6) for d in range(5)]
    rng = np.random.default_rng(7)
    equity = 10_000 * np.cumprod(1 + rng.normal(0.001, 0.01, len(days)))
    ledger.add_run("r-days", symbols=["AAPL"], timeframe="1d",
                   data_quality={"AAPL": {"rows": len(days), "status": "ok"}})
    ledger.add_decisions("r-days", [(ts + 14 * H, "AAPL", "hold", "no_signal", 100.0 + i)
                                    for i, ts in enumerate(days)])
    ledger.add_equity("r-days", [("AAPL", ts + 14 * H, float(v)) for ts, v in zip(days, equity)])
    return ledger


def test_sessions_are_annualised_by_252_over_days_with_bars(weekday_run):
    rep = build_report(weekday_run.engine, "r-days")
    assert rep.risk.periods_per_year == rep.performance.periods_per_year == 252
    assert rep.performance.period_basis == "sessions" and "252" in rep.risk.annualization
    assert rep.risk.daily_returns == rep.performance.periods == 30      # no weekend returns
    curve = load_equity_curve(weekday_run.engine, "r-days")
    rets = daily_returns(curve.total, curve.initial_total, sessions=True)
    assert len(rets) == 30 and set(rets.index.day_of_week) == {0, 1, 2, 3, 4}
    assert rep.risk.sharpe == pytest.approx(empyrical.sharpe_ratio(rets, annualization=252))
    assert rep.risk.sharpe == pytest.approx(sharpe_ratio(rets, 252))
    assert rep.performance.cagr_pct == pytest.approx(100 * empyrical.cagr(rets, annualization=252))
    # the whole-curve computation agrees with the streamed one
    whole = summarize_risk(curve, load_trades(weekday_run.engine, "r-days"))
    streamed = scan_run(weekday_run.engine, "r-days").risk(load_trades(weekday_run.engine,
                                                                       "r-days"))
    assert whole.sharpe == pytest.approx(streamed.sharpe, rel=1e-12)
    assert whole.daily_returns == streamed.daily_returns == 30
    buf = io.StringIO()
    render_console(rep, Console(file=buf, width=80, color_system=None))
    text = " ".join(buf.getvalue().split())
    assert "sessions, 252 a year; 30 sessions" in text and "sqrt(252), risk-free 0; 30 sessions" \
        in text
