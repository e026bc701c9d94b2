"""build_report, gates and the console / JSON / HTML / CSV outputs."""

from __future__ import annotations

import csv
import json

import pytest
from pydantic import ValidationError
from rich.console import Console

from tradewarden.analytics import (CSV_COLUMNS, GateConfig, build_report, evaluate_gates,
                                   list_runs, render_console, report_to_dict, trades_to_csv,
                                   write_json)

from _analytics_ledger import D, H, T0, Ledger

LOOSE = GateConfig(min_closed_trades=6, min_profit_factor=1.5, max_drawdown_pct=35.0)


def _strict_json(text: str):
    def bad(token: str):
        raise AssertionError(f"non-standard JSON constant {token}")
    return json.loads(text, parse_constant=bad)


# --------------------------------------------------------------------------- build / gates

def test_build_report_contents(hand_run: Ledger) -> None:
    rep = build_report(hand_run.engine, "r-hand", LOOSE)
    assert rep.run.run_id == "r-hand" and rep.run.symbols == ["BTC-USD", "ETH-USD"]
    assert rep.run.initial_capital == "10000" and rep.completed
    assert rep.trades.closed_trades == 6
    assert rep.risk.max_drawdown_pct == pytest.approx(252.08 / 20107.88 * 100)
    assert rep.per_symbol["BTC-USD"].account.final_equity == pytest.approx(9911.95)
    assert rep.per_symbol["ETH-USD"].decisions == {"blocked": 1, "hold": 119}
    assert rep.per_symbol["ETH-USD"].data_quality.gaps == 1
    assert rep.warnings == []
    assert any("sqrt(365)" in n for n in rep.notes)
    assert rep.ledger_url.startswith("sqlite:///")


def test_gates_pass_and_fail(hand_run: Ledger) -> None:
    ok = build_report(hand_run.engine, "r-hand", LOOSE)
    assert ok.passed and ok.verdict == "PASS"
    assert [g.name for g in ok.gates] == ["run_completed", "min_closed_trades",
                                          "min_profit_factor", "max_drawdown_pct"]
    assert all(g.passed for g in ok.gates)

    strict = build_report(hand_run.engine, "r-hand")          # defaults: 100 trades needed
    assert not strict.passed and strict.verdict == "FAIL"
    failed = [g.name for g in strict.gates if not g.passed]
    assert failed == ["min_closed_trades"]

    tight = build_report(hand_run.engine, "r-hand",
                         GateConfig(min_closed_trades=1, min_profit_factor=1.6,
                                    max_drawdown_pct=1.0))
    assert {g.name for g in tight.gates if not g.passed} == {"min_profit_factor",
                                                             "max_drawdown_pct"}


def test_evaluate_gates_edge_cases() -> None:
    cfg = GateConfig(min_closed_trades=10, min_profit_factor=1.0, max_drawdown_pct=20.0)
    res = {g.name: g for g in evaluate_gates(cfg, run_status="completed", closed_trades=10,
                                             profit_factor=float("inf"), max_drawdown_pct=20.0)}
    assert all(g.passed for g in res.values())                  # boundaries are inclusive
    assert "no losing trades" in res["min_profit_factor"].note
    res = {g.name: g for g in evaluate_gates(cfg, run_status="completed", closed_trades=0,
                                             profit_factor=None, max_drawdown_pct=None)}
    assert not res["min_profit_factor"].passed and not res["max_drawdown_pct"].passed
    with pytest.raises(ValidationError):
        cfg.min_closed_trades = 5                                # frozen
    assert GateConfig() == GateConfig(min_closed_trades=100, min_profit_factor=1.0,
                                      max_drawdown_pct=35.0)


def test_unknown_run_raises_lookup_error(hand_run: Ledger) -> None:
    with pytest.raises(LookupError, match=r"^no run 'nope' in ledger sqlite:///.*ledger\.db$"):
        build_report(hand_run.engine, "nope")
    with pytest.raises(LookupError, match="no run 'nope'"):
        trades_to_csv(hand_run.engine, "nope", hand_run.path.parent / "x.csv")


def test_failed_run_is_flagged_and_fails_gates(ledger: Ledger) -> None:
    ledger.add_run("r-failed", status="failed", error="exchange timeout", completed_at=None,
                   trades_closed=1)
    ledger.add_trades("r-failed", [dict(symbol="BTC-USD", quantity="0.05", entry_ts=T0,
                                        exit_ts=T0 + H, entry_price="60000",
                                        exit_price="61000", fees="6.05", pnl="43.95",
                                        exit_reason="signal")])
    ledger.add_equity("r-failed", [("BTC-USD", T0 + H, 10043.95)])
    ledger.add_event("r-failed", 0, "error", "exchange timeout")
    zero = GateConfig(min_closed_trades=0, min_profit_factor=0.0, max_drawdown_pct=100.0)
    rep = build_report(ledger.engine, "r-failed", zero)
    assert not rep.completed and rep.run.status == "failed"
    assert rep.warnings[0].startswith("RUN NOT COMPLETED: status is 'failed'")
    assert "exchange timeout" in rep.warnings[0]
    assert any("'error' event" in w for w in rep.warnings)
    assert rep.verdict == "FAIL"
    assert [g.name for g in rep.gates if not g.passed] == ["run_completed"]
    assert rep.trades.net_pnl_exact == "43.95"                   # still reported

    console = Console(record=True, width=140, color_system=None)
    render_console(rep, console)
    text = console.export_text()
    assert "RUN NOT COMPLETED" in text and "FAIL" in text and "failed" in text


def test_trades_closed_mismatch_is_warned(ledger: Ledger) -> None:
    ledger.add_run("r-mis", trades_closed=3)
    rep = build_report(ledger.engine, "r-mis")
    assert any("runs.trades_closed is 3 but the trades table holds 0" in w for w in rep.warnings)
    assert any("no equity marks" in w for w in rep.warnings)


# --------------------------------------------------------------------------- console

def test_render_console_sections(hand_run: Ledger) -> None:
    rep = build_report(hand_run.engine, "r-hand", LOOSE)
    console = Console(record=True, width=160, color_system=None)
    render_console(rep, console)
    text = console.export_text()
    for needle in ("r-hand", "PASS", "Trades", "Risk", "Per symbol", "Data quality", "Gates",
                   "1.59", "33.33%", "252.08", "sqrt(365)", "ETH-USD"):
        assert needle in text, needle


# --------------------------------------------------------------------------- JSON

def test_json_is_strict_and_round_trips(hand_run: Ledger, tmp_path) -> None:
    rep = build_report(hand_run.engine, "r-hand", LOOSE)
    path = write_json(rep, tmp_path / "out" / "report.json")
    data = _strict_json(path.read_text())
    assert data["run"]["run_id"] == "r-hand" and data["verdict"] == "PASS"
    assert "data_quality_json" not in data["run"]
    assert data["trades"]["profit_factor"] == pytest.approx(401.58 / 252.08)
    assert data["risk"]["annualization"] == "daily returns, UTC, annualised x sqrt(365), risk-free 0"
    assert data["per_symbol"]["BTC-USD"]["trades"]["net_pnl_exact"] == "-88.05"
    assert data == rep.to_dict()


def test_json_has_no_nan_or_inf_for_degenerate_run(ledger: Ledger, tmp_path) -> None:
    ledger.add_run("r-deg", trades_closed=1)
    ledger.add_trades("r-deg", [dict(symbol="BTC-USD", quantity="0.01", entry_ts=T0,
                                     exit_ts=T0 + H, entry_price="60000", exit_price="60600",
                                     fees="1.21", pnl="4.79", exit_reason="take_profit")])
    ledger.add_equity("r-deg", [("BTC-USD", T0 + k * D, 10004.79) for k in range(4)])
    rep = build_report(ledger.engine, "r-deg")
    assert rep.trades.profit_factor == float("inf")
    data = report_to_dict(rep)
    text = json.dumps(data, allow_nan=False)                   # raises on NaN / inf
    assert "NaN" not in text and "Infinity" not in text
    assert data["trades"]["profit_factor"] is None
    assert data["trades"]["profit_factor_note"] == "infinite: no losing trades"
    pf_gate = next(g for g in data["gates"] if g["name"] == "min_profit_factor")
    assert pf_gate["value"] is None and pf_gate["passed"] is True
    assert data["risk"]["sortino"] is None        # flat after day 1: no negative day
    _strict_json(write_json(rep, tmp_path / "deg.json").read_text())


# --------------------------------------------------------------------------- CSV / list

def test_trades_csv_columns_and_consistent_decimals(hand_run: Ledger, tmp_path) -> None:
    """Prices and quote amounts on the symbol's price grid (here its trades' digits: the
    hand ledger has no fills), quantities on its quantity grid, percentages with two
    decimals; excursions not recorded (a ledger before revision 0007) are empty."""
    n = trades_to_csv(hand_run.engine, "r-hand", tmp_path / "trades.csv")
    assert n == 6
    with open(tmp_path / "trades.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS == (
        "entry_time", "exit_time", "symbol", "side", "quantity", "entry_price", "exit_price",
        "fees", "pnl", "return_pct", "exit_reason", "entry_reason", "duration",
        "holding_seconds", "mae_price", "mfe_price", "mae_pct", "mfe_pct")
    first = dict(zip(rows[0], rows[1]))
    assert first == {"entry_time": "2024-01-01T00:00:00Z", "exit_time": "2024-01-01T06:00:00Z",
                     "symbol": "BTC-USD", "side": "long", "quantity": "0.10000000",
                     "entry_price": "60000.00", "exit_price": "61200.00", "fees": "12.12",
                     "pnl": "107.88", "return_pct": "0.18", "exit_reason": "take_profit",
                     "entry_reason": "", "duration": "6h 00m", "holding_seconds": "21600",
                     "mae_price": "", "mfe_price": "", "mae_pct": "", "mfe_pct": ""}
    assert [r[8] for r in rows[1:]] == ["107.88", "-134.08", "-61.85", "0.00", "-56.15", "293.70"]
    assert [r[9] for r in rows[1:]] == ["0.18", "-2.20", "-1.04", "0.00", "-1.81", "9.79"]
    assert [r[4] for r in rows[1:]] == ["0.10000000"] * 3 + ["1.0000"] * 3


def test_list_runs_newest_first(hand_run: Ledger) -> None:
    hand_run.add_run("r-later", started_at="2024-07-01T00:00:00Z", status="failed",
                     symbols=["SOL-USD"], bars_processed=17)
    runs = list_runs(hand_run.engine)
    assert [r["run_id"] for r in runs] == ["r-later", "r-hand"]
    assert set(runs[0]) == {"run_id", "started_at", "status", "mode", "strategy", "symbols",
                            "timeframe", "trades_closed", "bars_processed"}
    assert runs[0]["symbols"] == ["SOL-USD"] and runs[0]["status"] == "failed"
    assert runs[1]["trades_closed"] == 6 and runs[1]["bars_processed"] == 240


def test_empty_run_reports_undefined_values_and_renders(ledger: Ledger, tmp_path) -> None:
    ledger.add_run("r-empty", capital_mode="portfolio", symbols=["BTC-USD", "ETH-USD"],
                   initial_capital="25000.00", data_quality=None)
    rep = build_report(ledger.engine, "r-empty")
    assert rep.trades.closed_trades == 0 and rep.risk.final_equity == 25000.0
    assert rep.risk.sharpe is None and rep.risk.equity_marks == 0
    gates = {g.name: g for g in rep.gates}
    assert not gates["min_profit_factor"].passed and not gates["max_drawdown_pct"].passed
    assert gates["max_drawdown_pct"].note == "no equity curve"
    assert rep.per_symbol["ETH-USD"].account is None          # portfolio: no per-symbol account
    _strict_json(write_json(rep, tmp_path / "e.json").read_text())


def test_portfolio_report_sums_the_portfolio_account(ledger: Ledger) -> None:
    ledger.add_run("r-pf", capital_mode="portfolio", symbols=["BTC-USD", "ETH-USD"],
                   initial_capital="20000", trades_closed=1)
    ledger.add_decisions("r-pf", [(T0 + i * H, s, "hold", "no_signal", p + i)
                                  for i in range(48) for s, p in (("BTC-USD", 60000.0),
                                                                  ("ETH-USD", 3000.0))])
    ledger.add_trades("r-pf", [dict(symbol="ETH-USD", quantity="2.0", entry_ts=T0 + 5 * H,
                                    exit_ts=T0 + 30 * H, entry_price="3005.00",
                                    exit_price="3030.00", fees="12.07", pnl="37.93",
                                    exit_reason="signal")])
    ledger.add_equity("r-pf", [("portfolio", T0 + 5 * H, 19994.0),
                               ("portfolio", T0 + 30 * H, 20037.93)])
    rep = build_report(ledger.engine, "r-pf")
    assert rep.risk.final_equity == pytest.approx(20037.93)
