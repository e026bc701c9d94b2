"""Run reports computed from the ledger only: trade, risk, data-quality and decision
metrics, promotion gates, and console / JSON / HTML / CSV output.

Typical use::

    from sqlalchemy import create_engine
    from tradewarden.analytics import build_report, render_console, write_html

    engine = create_engine("sqlite:///ledger.db")
    report = build_report(engine, "r-20240101-abc")
    render_console(report, rich.console.Console())
    write_html(report, engine, "report.html")
"""

from tradewarden.analytics.gates import (
                                           GateConfig,
                                           GateResult,
                                           all_passed,
                                           evaluate_gates,
)
from tradewarden.analytics.metrics import (
                                           ANNUALIZATION,
                                           ANNUALIZATION_NOTE,
                                           AccountStats,
                                           DataQuality,
                                           DecisionStats,
                                           EquityCurve,
                                           RiskStats,
                                           RunInfo,
                                           SymbolQuality,
                                           TradeStats,
                                           TradeStatsResult,
                                           consecutive_losses,
                                           daily_returns,
                                           data_quality,
                                           decision_stats,
                                           drawdown,
                                           event_counts,
                                           load_equity_curve,
                                           load_run,
                                           load_trades,
                                           risk_stats,
                                           summarize_risk,
                                           summarize_trades,
                                           trade_stats,
)
from tradewarden.analytics.report import (
                                           CSV_COLUMNS,
                                           Report,
                                           SymbolBreakdown,
                                           build_report,
                                           list_runs,
                                           render_console,
                                           report_to_dict,
                                           trades_to_csv,
                                           write_html,
                                           write_json,
)

__all__ = [
    "ANNUALIZATION", "ANNUALIZATION_NOTE", "AccountStats", "CSV_COLUMNS", "DataQuality",
    "DecisionStats", "EquityCurve", "GateConfig", "GateResult", "Report", "RiskStats", "RunInfo",
    "SymbolBreakdown", "SymbolQuality", "TradeStats", "TradeStatsResult", "all_passed",
    "build_report", "consecutive_losses", "daily_returns", "data_quality", "decision_stats",
    "drawdown", "evaluate_gates", "event_counts", "list_runs", "load_equity_curve", "load_run",
    "load_trades", "render_console", "report_to_dict", "risk_stats", "summarize_risk",
    "summarize_trades", "trade_stats", "trades_to_csv", "write_html", "write_json",
]
