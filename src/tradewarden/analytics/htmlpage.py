"""The self-contained HTML page of a run report (inline CSS + SVG, no script, no links)."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tradewarden.analytics.charts import Legend, Marker, Segment, line_chart
from tradewarden.analytics.formatting import (
    DASH,
    fmt_int,
    fmt_money,
    fmt_pct,
    fmt_ratio,
    gate_threshold,
    gate_value,
    header_rows,
    risk_rows,
    trade_rows,
)
from tradewarden.analytics.metrics import EquityChart, EquityCurve, drawdown

if TYPE_CHECKING:
    from tradewarden.analytics.report import Report

__all__ = ["EXIT_COLORS", "render_html"]

ENTRY_COLOR = "#2f9e44"
#: Exit marker colour by ``trades.exit_reason``: losses-side exits red, others grey/blue.
EXIT_COLORS = {
    "stop_loss": "#e03131",
    "emergency": "#862e2e",
    "take_profit": "#1c7ed6",
    "signal": "#5c5f66",
    "manual": "#343a40",
    "end_of_data": "#adb5bd",
}
OTHER_EXIT_COLOR = "#868e96"

_CSS = """
:root{--fg:#1d2125;--muted:#6b7280;--line:#e5e7eb;--bg:#fff;--pass:#2f9e44;--fail:#e03131}
*{box-sizing:border-box}
body{margin:0;background:#f6f7f9;color:var(--fg);
 font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:1040px;margin:0 auto;padding:24px 20px 48px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 10px}
h3{font-size:14px;margin:18px 0 6px}
.card{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:14px 16px;
 margin-bottom:14px}
.verdict{display:inline-block;padding:2px 12px;border-radius:4px;color:#fff;font-weight:700}
.PASS{background:var(--pass)}.FAIL{background:var(--fail)}
.ok{color:var(--pass);font-weight:600}.bad{color:var(--fail);font-weight:600}
.warn{background:#fff4e6;border:1px solid #ffa94d;border-radius:6px;padding:8px 12px;margin:6px 0}
.warn.critical{background:#fff5f5;border-color:var(--fail);color:#a61e1e;font-weight:600}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.n,th.n{text-align:right}
.kv td:first-child{color:var(--muted);width:38%}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:14px}
@media (max-width:800px){.grid2{grid-template-columns:1fr}}
.muted,.notes{color:var(--muted)}.notes{font-size:12px}
svg.chart{width:100%;height:auto;display:block;background:#fff}
svg .plot{fill:#fcfcfd;stroke:#d0d4da}svg .grid{stroke:#eceef1;stroke-width:1}
svg .base{stroke:#868e96;stroke-dasharray:4 3}
svg text{font:11px -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Arial,sans-serif;fill:#495057}
svg .ct{font-size:13px;font-weight:600;fill:#1d2125}
svg .yl{text-anchor:end;dominant-baseline:middle}svg .xl{text-anchor:middle}
svg .al{fill:#6b7280}svg .lg{dominant-baseline:auto}
code{font-size:12px}
"""


def _kv(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None,
           raw: set[int] | None = None) -> str:
    numeric, raw = numeric or set(), raw or set()
    head = "".join(f'<th class="n">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            text = v if i in raw else escape(v)
            cells.append(f'<td class="n">{text}</td>' if i in numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _equity_charts(report: Report, curve: EquityCurve | EquityChart) -> str:
    if isinstance(curve, EquityChart):          # already thinned, read in chunks
        if curve.empty:
            return '<p class="muted">No equity curve in the ledger.</p>'
        ts, total = curve.ts, curve.total
        dd_ts, dd = curve.drawdown_ts, curve.drawdown_pct
    else:
        if curve.total.empty:
            return '<p class="muted">No equity curve in the ledger.</p>'
        ts = dd_ts = curve.total.index.to_numpy(dtype=np.int64)
        total = curve.total.to_numpy(dtype=float)
        dd = drawdown(curve.total, curve.initial_total,
                      curve.start_ts).series_pct.to_numpy(dtype=float)
    eq = line_chart(ts, total, title="Total equity",
                    y_label="equity (quote)", color="#1c7ed6", step=True,
                    baseline=curve.initial_total,
                    legend=[Legend("total equity", "#1c7ed6"),
                            Legend("initial capital", "#868e96")])
    ddc = line_chart(dd_ts, dd, title="Drawdown from running peak",
                     y_label="drawdown (%)", color="#e03131", step=True, fill_to_zero=True,
                     value_format=lambda v: f"{v:,.1f}%", height=220)
    return eq + ddc


def _price_chart(symbol: str, prices: tuple[np.ndarray, np.ndarray],
                 trades_df: pd.DataFrame) -> str:
    ts, close = prices
    t = trades_df[trades_df["symbol"] == symbol]
    markers: list[Marker] = []
    segments: list[Segment] = []
    reasons_seen: list[str] = []
    for row in t.itertuples(index=False):
        entry, exit_ = float(row.entry_price), float(row.exit_price)
        pnl = f"{row.pnl:f}"
        segments.append(Segment(int(row.entry_ts), entry, int(row.exit_ts), exit_,
                                ENTRY_COLOR if row.pnl > 0 else EXIT_COLORS["stop_loss"]))
        markers.append(Marker(int(row.entry_ts), entry, "up", ENTRY_COLOR,
                              f"entry {row.entry_time} @ {row.entry_price:f} "
                              f"qty {row.quantity:f} ({row.trade_id})"))
        reason = str(row.exit_reason)
        if reason not in reasons_seen:
            reasons_seen.append(reason)
        markers.append(Marker(int(row.exit_ts), exit_, "down",
                              EXIT_COLORS.get(reason, OTHER_EXIT_COLOR),
                              f"exit {row.exit_time} @ {row.exit_price:f} ({reason}) "
                              f"pnl {pnl} ({row.trade_id})"))
    legend = [Legend("close", "#495057")]
    if len(t):
        legend.append(Legend("entry", ENTRY_COLOR, "up"))
        legend += [Legend(f"exit: {r}", EXIT_COLORS.get(r, OTHER_EXIT_COLOR), "down")
                   for r in sorted(reasons_seen)]
    return line_chart(ts, close, title=f"{symbol} — close with trades ({len(t)})",
                      y_label="price (quote)", color="#495057", markers=markers,
                      segments=segments, legend=legend)


def render_html(report: Report, curve: EquityCurve | EquityChart,
                prices: dict[str, tuple[np.ndarray, np.ndarray]],
                trades_df: pd.DataFrame) -> str:
    """Render the report page.

    Parameters
    ----------
    report : Report
    curve : EquityCurve or EquityChart
        The whole curve (:func:`~tradewarden.analytics.metrics.load_equity_curve`) or
        the thinned one (:func:`~tradewarden.analytics.metrics.equity_chart`); both
        draw the same chart.
    prices : dict of str to (numpy.ndarray, numpy.ndarray)
        Symbol -> (UTC epoch seconds, close in quote currency), whole or thinned
        (:func:`~tradewarden.analytics.metrics.price_series`).
    trades_df : pandas.DataFrame
        :func:`tradewarden.analytics.metrics.load_trades` output.

    Returns
    -------
    str
        The page: inline CSS and SVG, no script, no links.
    """
    run = report.run
    title = f"tradewarden report — {run.run_id}"
    warn = "".join(
        f'<div class="warn{" critical" if w.startswith("RUN NOT COMPLETED") else ""}">'
        f"⚠ {escape(w)}</div>" for w in report.warnings)
    gates = _table(["gate", "threshold", "value", "result", "note"], [
        [g.name, gate_threshold(g), gate_value(g),
         f'<span class="{"ok" if g.passed else "bad"}">{"PASS" if g.passed else "FAIL"}</span>',
         g.note] for g in report.gates], raw={3})
    per_symbol = _table(
        ["symbol", "trades", "win rate", "profit factor", "expectancy", "net pnl", "fees",
         "final equity", "max DD"],
        [[s, fmt_int(b.trades.closed_trades), fmt_pct(b.trades.win_rate_pct),
          fmt_ratio(b.trades.profit_factor), fmt_money(b.trades.expectancy),
          fmt_money(b.trades.net_pnl), fmt_money(b.trades.fees),
          fmt_money(b.account.final_equity) if b.account else DASH,
          fmt_pct(b.account.max_drawdown_pct) if b.account else DASH]
         for s, b in report.per_symbol.items()], numeric=set(range(1, 9)))
    dq = report.data_quality
    dq_table = _table(
        ["symbol", "rows", "gaps", "missing bars", "zero-volume", "rows skipped", "status"],
        [[s, fmt_int(q.rows), fmt_int(q.gaps), fmt_int(q.missing_bars),
          fmt_int(q.zero_volume_bars), fmt_int(q.rows_skipped), q.status or DASH]
         for s, q in dq.symbols.items()], numeric={1, 2, 3, 4, 5})
    dq_issues = "".join(f"<li>{escape(i)}</li>" for i in dq.issues)
    decisions = _table(["action", "reason", "count"],
                       [[r.action, r.reason, fmt_int(r.count)]
                        for r in report.decisions.top_reasons], numeric={2})
    by_action = ", ".join(f"{escape(k)} {v:,}" for k, v in report.decisions.by_action.items())
    events = ", ".join(f"{escape(k)} {v:,}" for k, v in report.events.items()) or "none"
    empty = (np.array([], dtype=np.int64), np.array([], dtype=float))
    charts = "".join(f'<div class="card">{_price_chart(s, prices.get(s, empty), trades_df)}</div>'
                     for s in report.per_symbol)
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(title)}</title><style>{_CSS}</style></head>
<body><main>
<div class="card">
<h1>Run <code>{escape(run.run_id)}</code> <span class="verdict {report.verdict}">{report.verdict}</span></h1>
<p class="muted">{escape(run.strategy)} · {escape(", ".join(run.symbols))} · {escape(run.timeframe)} · {escape(run.mode)} / {escape(run.capital_mode)} · status <b class="{'ok' if report.completed else 'bad'}">{escape(run.status)}</b></p>
{warn}
</div>
<div class="grid2">
<div class="card"><h3>Run</h3>{_kv(header_rows(report))}</div>
<div class="card"><h3>Gates</h3>{gates}</div>
</div>
<div class="grid2">
<div class="card"><h3>Trades</h3>{_kv(trade_rows(report.trades))}</div>
<div class="card"><h3>Risk</h3>{_kv(risk_rows(report.risk))}</div>
</div>
<h2>Equity</h2>
<div class="card">{_equity_charts(report, curve)}</div>
<h2>Per symbol</h2>
<div class="card">{per_symbol}</div>
{charts}
<h2>Data quality</h2>
<div class="card"><p class="muted">integrity <b>{escape(dq.integrity)}</b> · {fmt_int(dq.bars_processed)} bars processed</p>{dq_table}
{f'<ul>{dq_issues}</ul>' if dq_issues else ''}</div>
<h2>Decisions</h2>
<div class="card"><p class="muted">{fmt_int(report.decisions.total)} decisions · {by_action or 'none'} · events: {events}</p>{decisions}</div>
<h2>Method</h2>
<div class="card notes"><ul>{notes}</ul>
<p>Computed from the ledger only ({escape(report.ledger_url)}). Times are UTC; money in the quote currency.</p></div>
</main></body></html>
"""
