"""The self-contained HTML page of a run report: Plotly charts, plotly.js inlined.

:func:`write_page` reads what the page draws (:mod:`tradewarden.analytics.pagedata`),
builds the figures (:mod:`tradewarden.analytics.charts`) and writes one HTML file that
needs nothing else: the CSS and plotly.js (from the installed ``plotly`` package) are
inline, and the page loads no font, image, script or style from anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from tradewarden.analytics.charts import (
    MAX_POINTS,
    Figure,
    Overlay,
    Shade,
    downsample,
    equity_figure,
    monthly_heatmap,
    pnl_histogram,
    symbol_figure,
)
from tradewarden.analytics.formatting import (
    DASH,
    fmt_int,
    fmt_money,
    fmt_pct,
    fmt_ratio,
    gate_threshold,
    gate_value,
    header_rows,
    performance_rows,
    risk_rows,
    trade_rows,
)
from tradewarden.analytics.metrics import Bind, EquityChart, connect, equity_chart, load_trades
from tradewarden.analytics.pagedata import (
    Candles,
    HaltPeriod,
    SymbolSeries,
    aggregate,
    bucket_name,
    candles_for,
    display_bucket,
    entry_reasons,
    halt_label,
    halt_periods,
    read_symbol_series,
)
from tradewarden.domain.timeframes import timeframe_seconds
from tradewarden.domain.values import BarSeries

if TYPE_CHECKING:
    from tradewarden.analytics.report import Report

__all__ = ["PLOTLY_CONFIG", "PageData", "collect_page", "render_html", "write_page"]

#: plotly.js options of every chart: no Plotly logo, no link to Plotly's cloud.
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True,
                 "modeBarButtonsToRemove": ["select2d", "lasso2d", "sendDataToCloud"],
                 "toImageButtonOptions": {"format": "png", "scale": 2}}

#: A strategy input whose name says it is not a price (ATR, RSI, ratios) gets a panel
#: of its own even when its values happen to lie near the price.
_NOT_PRICE = re.compile(r"atr|rsi|ratio|vol|pct|percent|score|adx|macd|std|sigma|roc|mom",
                        re.I)

_CSS = """
:root{--fg:#1d2125;--muted:#6b7280;--line:#e5e7eb;--bg:#fff;--pass:#2f9e44;--fail:#e03131}
*{box-sizing:border-box}
body{margin:0;background:#f6f7f9;color:var(--fg);
 font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 20px 48px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 10px}
h3{font-size:14px;margin:4px 0 6px}
.card{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:14px 16px;
 margin-bottom:14px}
.card.plot{padding:6px 8px}
.verdict{display:inline-block;padding:2px 12px;border-radius:4px;color:#fff;font-weight:700}
.PASS{background:var(--pass)}.FAIL{background:var(--fail)}
.ok{color:var(--pass);font-weight:600}.bad{color:var(--fail);font-weight:600}
.warn{background:#fff4e6;border:1px solid #ffa94d;border-radius:6px;padding:8px 12px;margin:6px 0}
.warn.critical{background:#fff5f5;border-color:var(--fail);color:#a61e1e;font-weight:600}
.note{background:#f1f3f5;border-left:3px solid #adb5bd;padding:6px 10px;margin:4px 0 8px;
 font-size:13px;color:#495057}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.n,th.n{text-align:right}
.kv td:first-child{color:var(--muted);width:38%}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:14px}
@media (max-width:900px){.grid2{grid-template-columns:1fr}}
.muted,.notes{color:var(--muted)}.notes{font-size:12px}
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


# --------------------------------------------------------------------------- data

@dataclass
class PageData:
    """Everything the page draws besides the report's figures.

    Attributes
    ----------
    curve : EquityChart
        Total equity and drawdown, thinned (:func:`~tradewarden.analytics.metrics.equity_chart`).
    series : dict of str to SymbolSeries
        Each symbol's close and strategy inputs per bar, from the ledger.
    candles : dict of str to Candles
        Each symbol's bars read again from the run's source and checked, or why not.
    trades : pandas.DataFrame
        :func:`~tradewarden.analytics.metrics.load_trades` with an ``entry_reason``
        column.
    halts : list of HaltPeriod
    bar_seconds : int
        The run's bar length.
    """

    curve: EquityChart
    series: dict[str, SymbolSeries]
    candles: dict[str, Candles]
    trades: pd.DataFrame
    halts: list[HaltPeriod] = field(default_factory=list)
    bar_seconds: int = 3600


def collect_page(report: Report, bind: Bind,
                 bars: Mapping[str, BarSeries] | str | None = None) -> PageData:
    """Read the series the page draws from the ledger, and check ``bars`` against it.

    Parameters
    ----------
    report : Report
    bind : Engine | Connection
        The ledger the report was built from.
    bars : mapping of str to BarSeries, str, or None
        The run's OHLCV bars read again from its data source
        (:func:`tradewarden.ops.report_bars.run_bars`), or why they could not be; each
        symbol's bars are drawn as candles only when every close the ledger recorded
        matches (:func:`~tradewarden.analytics.pagedata.candles_for`).

    Returns
    -------
    PageData

    Raises
    ------
    LookupError
        For an unknown run.
    """
    run = report.run
    symbols = list(report.per_symbol)
    with connect(bind) as conn:
        curve = equity_chart(conn, run.run_id, run)
        trades_df = load_trades(conn, run.run_id)
    reasons = entry_reasons(bind, run.run_id)
    trades_df["entry_reason"] = [reasons.get(str(t), "") for t in trades_df["trade_id"]]
    series = read_symbol_series(bind, run.run_id, symbols, run.input_names)
    if bars is None:
        why, source = "the run's bars were not read again", {}
    elif isinstance(bars, str):
        why, source = bars, {}
    else:
        why, source = "", bars
    candles = {s: candles_for(series[s], source.get(s),
                              why or f"the data source has no bars for {s}")
               for s in symbols}
    try:
        bar_seconds = timeframe_seconds(run.timeframe)
    except ValueError:
        bar_seconds = 3600
    pa.default_memory_pool().release_unused()   # Arrow memory of the reads, back to the OS
    return PageData(curve=curve, series=series, candles=candles, trades=trades_df,
                    halts=halt_periods(bind, run.run_id), bar_seconds=bar_seconds)


# --------------------------------------------------------------------------- figures

def _on_price(values: np.ndarray, close: np.ndarray, name: str) -> bool:
    """An input is drawn over the price when its name does not say otherwise and it
    stays within half to twice the close (median of ``|x / close - 1|`` below 0.5)."""
    if _NOT_PRICE.search(name):
        return False
    ok = np.isfinite(values) & (close > 0)
    if not ok.any():
        return False
    return bool(np.median(np.abs(values[ok] / close[ok] - 1.0)) < 0.5)


def _shades(halts: list[HaltPeriod], accounts: set[str], end: int) -> list[Shade]:
    return [Shade(h.start, h.end if h.end is not None else end, halt_label(h))
            for h in halts if h.account in accounts]


def _symbol_figure(sym: str, data: PageData, end_ts: int) -> tuple[Figure, str]:
    s = data.series[sym]
    c = data.candles[sym]
    n = len(c.bars) if c.bars is not None else len(s)
    first = int(s.ts[0]) if len(s) else 0
    last = int(s.ts[-1]) if len(s) else 0
    bucket = display_bucket(data.bar_seconds, first, last, n)
    candles = None
    if c.bars is not None:
        b = c.bars
        if bucket == data.bar_seconds:
            candles = {"ts": b.ts, "open": b.open, "high": b.high, "low": b.low,
                       "close": b.close, "volume": b.volume}
            subtitle = f"{len(b):,} candles ({b.source})"
        else:
            ts, cols = aggregate(b.ts, bucket, first={"open": b.open}, high={"high": b.high},
                                 low={"low": b.low}, last={"close": b.close},
                                 total={"volume": b.volume})
            candles = {"ts": ts, **cols}
            subtitle = (f"{bucket_name(bucket)} candles aggregated from {len(b):,} bars "
                        f"({b.source}); trade markers at exact fill times")
        line = (np.zeros(0, np.int64), np.zeros(0))
    else:
        line = downsample(s.ts, s.close, MAX_POINTS)
        subtitle = f"close per bar from the ledger ({len(s):,} bars)"
    inputs = {n: v for n, v in s.inputs.items() if np.isfinite(v).any()}
    if bucket == data.bar_seconds or not inputs:
        shown_ts, shown = s.ts, inputs
    else:
        shown_ts, shown = aggregate(s.ts, bucket, last=inputs)
    overlays = [Overlay(n, shown_ts, shown[n], _on_price(v, s.close, n))
                for n, v in inputs.items()]
    trades = data.trades[data.trades["symbol"] == sym]
    accounts = {sym, "portfolio"}
    weekday = ((s.ts // 86400) + 3) % 7          # 1970-01-01 was a Thursday: Monday = 0
    fig = symbol_figure(sym, candles=candles, close=line, overlays=overlays, trades=trades,
                        shades=_shades(data.halts, accounts, end_ts), subtitle=subtitle,
                        weekends=bool(len(s) == 0 or (weekday >= 5).any()
                                      or data.bar_seconds < 86400))
    return fig, c.note


def _buy_and_hold(data: PageData, initial: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The value of splitting ``initial`` equally over the symbols at their first close
    and holding: sum over symbols of ``initial / n * close_t / close_first`` (a symbol
    before its first bar counts as its share in cash). One point per display bucket
    of at most :data:`~tradewarden.analytics.charts.MAX_POINTS` (per bar for short
    runs), at the bucket's last bar with that bar's close."""
    live = [s for s in data.series.values() if len(s) and s.close[0] > 0]
    if not live:
        return None
    first = min(int(s.ts[0]) for s in live)
    last = max(int(s.ts[-1]) for s in live)
    n = max(len(s) for s in live)
    bucket = display_bucket(data.bar_seconds, first, last, n, MAX_POINTS)
    grid = np.unique(np.concatenate([(s.ts // bucket) * bucket for s in live]))
    value = np.zeros(len(grid))
    share = initial / len(data.series)
    for s in live:
        ts, cols = aggregate(s.ts, bucket, last={"c": s.close})
        pos = np.searchsorted(ts, grid, side="right") - 1
        rel = np.where(pos >= 0, cols["c"][np.maximum(pos, 0)] / s.close[0], 1.0)
        value += share * rel
    value += share * (len(data.series) - len(live))
    return np.minimum(grid + bucket - data.bar_seconds, last), value


def _div(fig: Figure, div_id: str) -> str:
    """The chart's ``div`` and the script that draws it (plotly.io.to_html; the figure
    dict is passed to plotly.js as it is)."""
    import plotly.io as pio

    return pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id,
                       config=PLOTLY_CONFIG, validate=False)


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


# --------------------------------------------------------------------------- page

def render_html(report: Report, data: PageData) -> str:
    """Render the report page.

    Parameters
    ----------
    report : Report
    data : PageData
        What :func:`collect_page` read.

    Returns
    -------
    str
        The page: inline CSS, inline plotly.js and one chart per ``div`` (equity with
        buy and hold and drawdown, monthly returns, trade PnL, one per symbol); no
        link, font or request to anywhere.
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
    perf = report.performance
    per_symbol = _table(
        ["symbol", "trades", "win rate", "profit factor", "expectancy", "net pnl", "fees",
         "final equity", "max DD", "in market", "buy & hold"],
        [[s, fmt_int(b.trades.closed_trades), fmt_pct(b.trades.win_rate_pct),
          fmt_ratio(b.trades.profit_factor), fmt_money(b.trades.expectancy),
          fmt_money(b.trades.net_pnl), fmt_money(b.trades.fees),
          fmt_money(b.account.final_equity) if b.account else DASH,
          fmt_pct(b.account.max_drawdown_pct) if b.account else DASH,
          fmt_pct(perf.exposure_by_symbol.get(s)), fmt_pct(perf.buy_hold_by_symbol.get(s))]
         for s, b in report.per_symbol.items()], numeric=set(range(1, 11)))
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
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)

    curve = data.curve
    end_ts = max([int(curve.ts[-1])] if not curve.empty else []
                 + [int(s.ts[-1]) for s in data.series.values() if len(s)] or [0])
    if curve.empty:
        equity = '<div class="card"><p class="muted">No equity curve in the ledger.</p></div>'
    else:
        fig = equity_figure(equity=(curve.ts, curve.total),
                            buy_hold=_buy_and_hold(data, curve.initial_total),
                            drawdown=(curve.drawdown_ts, curve.drawdown_pct),
                            initial=curve.initial_total,
                            shades=_shades(data.halts, {"portfolio"}, end_ts))
        equity = f'<div class="card plot">{_div(fig, "chart-equity")}</div>'
    monthly = (_div(monthly_heatmap([(m.year, m.month or 0, m.return_pct)
                                     for m in perf.monthly_returns],
                                    {y.year: y.return_pct for y in perf.yearly_returns}),
                    "chart-monthly") if perf.monthly_returns
               else '<p class="muted">No monthly returns: no equity curve.</p>')
    pnl = (_div(pnl_histogram(data.trades), "chart-pnl") if len(data.trades)
           else '<p class="muted">No closed trades.</p>')
    charts = []
    for i, sym in enumerate(report.per_symbol):
        fig, note = _symbol_figure(sym, data, end_ts)
        shown = (f'<div class="note">Candles not shown: {escape(note)}. The line is the '
                 f"ledger's close per bar.</div>" if note else "")
        charts.append(f'<div class="card plot">{shown}{_div(fig, f"chart-symbol-{i}")}</div>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(title)}</title><style>{_CSS}</style>
<script type="text/javascript">{_plotly_js()}</script></head>
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
<h2>Portfolio</h2>
{equity}
<div class="grid2">
<div class="card"><h3>Performance</h3>{_kv(performance_rows(perf, report.risk))}</div>
<div class="card plot">{pnl}</div>
</div>
<div class="card plot">{monthly}</div>
<h2>Per symbol</h2>
<div class="card">{per_symbol}</div>
{''.join(charts)}
<h2>Data quality</h2>
<div class="card"><p class="muted">integrity <b>{escape(dq.integrity)}</b> · {fmt_int(dq.bars_processed)} bars processed</p>{dq_table}
{f'<ul>{dq_issues}</ul>' if dq_issues else ''}</div>
<h2>Decisions</h2>
<div class="card"><p class="muted">{fmt_int(report.decisions.total)} decisions · {by_action or 'none'} · events: {events}</p>{decisions}</div>
<h2>Method</h2>
<div class="card notes"><ul>{notes}<li>buy and hold (chart): the starting capital split equally over the symbols at each one's first recorded close and held, valued at the closes of each day (of each bar for short runs)</li><li>long series are drawn aggregated (candles per display bucket, strategy inputs at each bucket's last bar); trade markers are at the exact fill times and prices; shaded spans are halts of new entries, labelled with their reason</li></ul>
<p>Computed from the ledger only ({escape(report.ledger_url)}); candles from the run's data source, checked against the ledger's closes. Times are UTC; money in the quote currency.</p></div>
</main></body></html>
"""


def write_page(report: Report, bind: Bind, path: str | Path,
               bars: Mapping[str, BarSeries] | str | None = None) -> Path:
    """Read the page's series, render the page and write it atomically.

    Parameters
    ----------
    report : Report
    bind : Engine | Connection
    path : str or pathlib.Path
    bars : mapping of str to BarSeries, str, or None
        See :func:`collect_page`.

    Returns
    -------
    pathlib.Path
        The file written (a temporary file beside it, renamed when complete).

    Raises
    ------
    OSError
        If the file cannot be written.
    """
    from tradewarden._io import atomic_write_text

    return atomic_write_text(path, render_html(report, collect_page(report, bind, bars)))
