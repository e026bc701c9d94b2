"""The HTML report's charts, as Plotly figures (drawn by plotly.js in the page).

Each function returns a figure as plotly.js takes it: a dict with ``data`` (the
traces) and ``layout``, which :mod:`tradewarden.analytics.htmlpage` hands to
:func:`plotly.io.to_html`. The dicts are written directly rather than through
``plotly.graph_objects`` (whose per-property validation took about a second per
chart); the attributes are plotly.js's (https://plotly.com/javascript/reference/).
Times are UTC: x values are epoch milliseconds on date axes. Numeric columns are sent
as plotly.js typed arrays (base64 of little-endian float64), so long series stay
compact. :func:`downsample` thins a series for display, keeping each bucket's extremes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["ENTRY_COLOR", "EXIT_COLORS", "MAX_POINTS", "Figure", "Overlay", "Shade",
           "downsample", "equity_figure", "monthly_heatmap", "pnl_histogram", "symbol_figure"]

MAX_POINTS = 2000

ENTRY_COLOR = "#2f9e44"
#: Exit marker colour by ``trades.exit_reason``.
EXIT_COLORS = {
    "stop_loss": "#e03131",
    "emergency": "#862e2e",
    "take_profit": "#1c7ed6",
    "signal": "#5c5f66",
    "manual": "#343a40",
    "end_of_data": "#adb5bd",
}
OTHER_EXIT_COLOR = "#868e96"
HALT_COLOR = "rgba(240, 140, 0, 0.13)"
_SYMBOL_COLORS = ("#4263eb", "#f76707", "#12b886", "#ae3ec9", "#fab005", "#1098ad")
_OVERLAY_COLORS = ("#7048e8", "#f08c00", "#0ca678", "#d6336c")
_FONT = {"family": "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Arial, sans-serif",
         "size": 12, "color": "#1d2125"}
_AXIS = {"gridcolor": "#edf0f2", "zeroline": False, "linecolor": "#ced4da",
         "ticks": "outside", "tickcolor": "#ced4da", "ticklen": 4,
         "title": {"font": {"size": 11}}}
_MS = 1000

#: A figure as plotly.js takes it: ``{"data": [trace, ...], "layout": {...}}``.
Figure = dict[str, Any]


def downsample(ts: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS
               ) -> tuple[np.ndarray, np.ndarray]:
    """Thin a time series to at most ``max_points`` points, keeping extremes.

    The points are split into ``(max_points - 2) // 2`` equal-count buckets; each bucket
    keeps its minimum and its maximum (in time order), and the first and last points
    are always kept. NaN values are dropped first.

    Parameters
    ----------
    ts : numpy.ndarray, shape (n,)
        UTC epoch seconds, ascending.
    values : numpy.ndarray, shape (n,)
    max_points : int

    Returns
    -------
    (numpy.ndarray of int64, numpy.ndarray of float64)
        The kept points, at most ``max_points``.
    """
    ts = np.asarray(ts, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    ok = ~np.isnan(values)
    ts, values = ts[ok], values[ok]
    n = len(values)
    if n <= max_points:
        return ts, values
    buckets = max(1, (max_points - 2) // 2)
    bucket = (np.arange(n, dtype=np.int64) * buckets) // n
    s = pd.Series(values)
    g = s.groupby(bucket)
    keep = np.unique(np.concatenate([g.idxmin().to_numpy(), g.idxmax().to_numpy(), [0, n - 1]]))
    return ts[keep], values[keep]


@dataclass(frozen=True)
class Overlay:
    """A strategy input drawn over the price (``on_price``) or in a panel of its own.

    Attributes
    ----------
    name : str
        ``runs.input_names`` entry (``upper``, ``rsi``).
    ts : numpy.ndarray of int64
        UTC epoch seconds.
    values : numpy.ndarray of float64
    on_price : bool
    """

    name: str
    ts: np.ndarray
    values: np.ndarray
    on_price: bool


@dataclass(frozen=True)
class Shade:
    """A shaded time span (a halt), labelled with its reason.

    Attributes
    ----------
    start, end : int
        UTC epoch seconds.
    label : str
    """

    start: int
    end: int
    label: str


def _typed(values: Any) -> dict[str, str]:
    """A numeric column as a plotly.js typed array: float64, little-endian, base64."""
    a = np.ascontiguousarray(np.asarray(values, dtype="<f8"))
    return {"dtype": "f8", "bdata": base64.b64encode(a.tobytes()).decode("ascii")}


def _ms(ts: np.ndarray | Sequence[int] | pd.Series) -> dict[str, str]:
    """UTC epoch seconds as a typed array of epoch milliseconds (exact below 2**53)."""
    return _typed(np.asarray(ts, dtype=np.int64) * _MS)


def _axis(**over: Any) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in _AXIS.items()}
    title = over.pop("title", None)
    if title is not None:
        out["title"] = {"text": title, "font": {"size": 11}}
    out.update(over)
    return out


def _layout(height: int, title: str, subtitle: str) -> dict[str, Any]:
    return {
        "height": height, "font": _FONT, "hovermode": "closest",
        "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff",
        "title": {"text": f"<b>{title}</b> <span style='font-size:12px;color:#6b7280'>"
                          f"{subtitle}</span>", "x": 0.01, "xanchor": "left",
                  "font": {"size": 14}},
        "margin": {"l": 64, "r": 20, "t": 48, "b": 36},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right",
                   "x": 1, "font": {"size": 11}},
        "hoverlabel": {"font": {"size": 12}},
        "shapes": [],
    }


def _rows(layout: dict[str, Any], heights: Sequence[float], spacing: float = 0.03,
          date: bool = True) -> list[tuple[str, str]]:
    """Stack ``len(heights)`` plots sharing one x axis (as plotly's ``make_subplots``
    with ``shared_xaxes``): every x axis matches the bottom one, so zooming or panning
    any row moves all. Returns each row's (x axis, y axis) trace references."""
    n = len(heights)
    free = 1.0 - spacing * (n - 1)
    scale = free / float(sum(heights))
    top = 1.0
    refs = []
    for i, h in enumerate(heights, start=1):
        bottom = max(0.0, top - h * scale)
        suffix = "" if i == 1 else str(i)
        x = _axis(anchor=f"y{suffix}", domain=[0.0, 1.0], showticklabels=i == n,
                  showspikes=True, spikemode="across", spikethickness=1,
                  spikecolor="#adb5bd", rangeslider={"visible": False})
        if date:
            x["type"] = "date"
        if i < n:
            x["matches"] = f"x{n}"
        layout[f"xaxis{suffix}"] = x
        layout[f"yaxis{suffix}"] = _axis(anchor=f"x{suffix}", domain=[round(bottom, 6),
                                                                      round(top, 6)])
        refs.append((f"x{suffix}", f"y{suffix}"))
        top = bottom - spacing
    return refs


def _shade(layout: dict[str, Any], shades: Sequence[Shade]) -> None:
    """Shade each span over every row, labelled; one legend entry per kind of halt."""
    seen: set[str] = set()
    for s in shades:
        kind = s.label.split(" (")[0]
        layout["shapes"].append({
            "type": "rect", "xref": "x", "yref": "paper", "x0": s.start * _MS,
            "x1": s.end * _MS, "y0": 0, "y1": 1, "fillcolor": HALT_COLOR,
            "line": {"width": 0}, "layer": "below", "name": kind,
            "legendgroup": f"halt:{kind}", "showlegend": kind not in seen,
            "label": {"text": s.label, "textposition": "top left",
                      "font": {"size": 10, "color": "#a05a00"}}})
        seen.add(kind)


def symbol_figure(symbol: str, *, candles: Mapping[str, np.ndarray] | None,
                  close: tuple[np.ndarray, np.ndarray], overlays: Sequence[Overlay],
                  trades: pd.DataFrame, shades: Sequence[Shade], subtitle: str,
                  weekends: bool = True) -> Figure:
    """Draw one symbol: price (candles or close), volume, inputs, trades and halts.

    Rows share the x axis (zooming or panning one moves all): price with the strategy
    inputs that are prices (e.g. the Donchian channel) and the trade markers; volume
    (with candles); one small row per other input (ATR, RSI). Halt periods are shaded
    across the rows with their reason.

    Parameters
    ----------
    symbol : str
    candles : mapping of str to numpy.ndarray, optional
        ``ts`` (UTC epoch seconds), ``open``, ``high``, ``low``, ``close`` (quote
        currency), ``volume`` (base units); ``None`` draws ``close`` as a line instead.
    close : (numpy.ndarray, numpy.ndarray)
        UTC epoch seconds and close (quote currency), used without candles.
    overlays : sequence of Overlay
    trades : pandas.DataFrame
        This symbol's round trips: ``trade_id``, ``entry_ts``, ``entry_price``,
        ``exit_ts``, ``exit_price``, ``quantity``, ``pnl``, ``return_pct`` (percent),
        ``exit_reason`` and ``entry_reason``; markers sit at the exact fill time and
        price.
    shades : sequence of Shade
    subtitle : str
        Shown beside the title (what the candles are, or that the line is the close).
    weekends : bool
        ``False`` when no bar falls on a weekend (US equities): Saturdays and Sundays
        are left out of the axis.

    Returns
    -------
    dict
        The figure (``data``, ``layout``).
    """
    panels = [o for o in overlays if not o.on_price]
    heights = [0.62] + ([0.16] if candles is not None else []) + [0.12] * len(panels)
    layout = _layout(440 + 110 * (len(heights) - 1), symbol, subtitle)
    refs = _rows(layout, heights, spacing=0.025)
    data: list[dict[str, Any]] = []
    row = iter(refs)
    px, py = next(row)
    hover_t = "%{x|%Y-%m-%d %H:%M} UTC"
    if candles is not None:
        data.append({
            "type": "candlestick", "name": "price", "xaxis": px, "yaxis": py,
            "x": _ms(candles["ts"]), "open": _typed(candles["open"]),
            "high": _typed(candles["high"]), "low": _typed(candles["low"]),
            "close": _typed(candles["close"]), "showlegend": False,
            "increasing": {"line": {"color": "#2b8a3e", "width": 1}, "fillcolor": "#8ce99a"},
            "decreasing": {"line": {"color": "#c92a2a", "width": 1}, "fillcolor": "#ffa8a8"}})
        vx, vy = next(row)
        up = np.asarray(candles["close"]) >= np.asarray(candles["open"])
        data.append({
            "type": "bar", "name": "volume", "xaxis": vx, "yaxis": vy, "showlegend": False,
            "x": _ms(candles["ts"]), "y": _typed(candles["volume"]),
            "marker": {"color": np.where(up, "#b2f2bb", "#ffc9c9").tolist(),
                       "line": {"width": 0}},
            "hovertemplate": f"{hover_t}<br>volume %{{y:,.4~f}}<extra></extra>"})
        layout["yaxis" + vy[1:]]["title"] = {"text": "volume", "font": {"size": 11}}
    else:
        data.append({
            "type": "scatter", "mode": "lines", "name": "close", "xaxis": px, "yaxis": py,
            "x": _ms(close[0]), "y": _typed(close[1]),
            "line": {"color": "#495057", "width": 1.2},
            "hovertemplate": f"{hover_t}<br>close %{{y:,.8~f}}<extra></extra>"})
    for i, o in enumerate(x for x in overlays if x.on_price):
        data.append({
            "type": "scatter", "mode": "lines", "name": o.name, "xaxis": px, "yaxis": py,
            "x": _ms(o.ts), "y": _typed(o.values), "connectgaps": False,
            "line": {"color": _OVERLAY_COLORS[i % 4], "width": 1, "dash": "dot"},
            "hovertemplate": f"{hover_t}<br>{o.name} %{{y:,.8~f}}<extra></extra>"})
    for j, o in enumerate(panels):
        ox, oy = next(row)
        data.append({
            "type": "scatter", "mode": "lines", "name": o.name, "xaxis": ox, "yaxis": oy,
            "x": _ms(o.ts), "y": _typed(o.values), "showlegend": False,
            "line": {"color": _OVERLAY_COLORS[(j + 2) % 4], "width": 1},
            "hovertemplate": f"{hover_t}<br>{o.name} %{{y:,.6~f}}<extra></extra>"})
        layout["yaxis" + oy[1:]]["title"] = {"text": o.name, "font": {"size": 11}}
    data.extend(_trade_traces(trades, px, py))
    _shade(layout, shades)
    layout["yaxis"]["title"] = {"text": "price (quote)", "font": {"size": 11}}
    bottom = "xaxis" + refs[-1][0][1:]
    layout[bottom]["title"] = {"text": "time (UTC)", "font": {"size": 11}}
    if not weekends:
        for key in [k for k in layout if k.startswith("xaxis")]:
            layout[key]["rangebreaks"] = [{"bounds": ["sat", "mon"]}]
    return {"data": data, "layout": layout}


def _trade_traces(t: pd.DataFrame, xref: str, yref: str) -> list[dict[str, Any]]:
    """An entry trace (every entry) and one exit trace per exit reason."""
    if t.empty:
        return []
    reasons = (t["entry_reason"].fillna("").astype(str) if "entry_reason" in t
               else pd.Series([""] * len(t), index=t.index))
    out = [{
        "type": "scatter", "mode": "markers", "name": "entry", "xaxis": xref, "yaxis": yref,
        "x": _ms(t["entry_ts"]), "y": _typed([float(p) for p in t["entry_price"]]),
        "marker": {"symbol": "triangle-up", "size": 9, "color": ENTRY_COLOR,
                   "line": {"color": "#ffffff", "width": 0.6}},
        "customdata": [[str(i), f"{q:f}", f"{p:f}", r] for i, q, p, r in
                       zip(t["trade_id"], t["quantity"], t["entry_price"], reasons)],
        "hovertemplate": ("<b>entry</b> %{x|%Y-%m-%d %H:%M} UTC<br>price %{customdata[2]}"
                          "<br>quantity %{customdata[1]}<br>reason %{customdata[3]}"
                          "<br>%{customdata[0]}<extra></extra>")}]
    for reason in sorted(t["exit_reason"].astype(str).unique()):
        x = t[t["exit_reason"].astype(str) == reason]
        out.append({
            "type": "scatter", "mode": "markers", "name": f"exit: {reason}",
            "xaxis": xref, "yaxis": yref,
            "x": _ms(x["exit_ts"]), "y": _typed([float(p) for p in x["exit_price"]]),
            "marker": {"symbol": "triangle-down", "size": 9,
                       "color": EXIT_COLORS.get(reason, OTHER_EXIT_COLOR),
                       "line": {"color": "#ffffff", "width": 0.6}},
            "customdata": [[str(i), f"{p:f}", f"{float(v):,.2f}",
                            f"{r:+.2f}%" if np.isfinite(r) else "—"]
                           for i, p, v, r in zip(x["trade_id"], x["exit_price"], x["pnl"],
                                                 x["return_pct"].astype(float))],
            "hovertemplate": (f"<b>exit</b> %{{x|%Y-%m-%d %H:%M}} UTC<br>price "
                              f"%{{customdata[1]}}<br>reason {reason}<br>PnL "
                              f"%{{customdata[2]}} (%{{customdata[3]}})<br>%{{customdata[0]}}"
                              f"<extra></extra>")})
    return out


def equity_figure(*, equity: tuple[np.ndarray, np.ndarray],
                  buy_hold: tuple[np.ndarray, np.ndarray] | None,
                  drawdown: tuple[np.ndarray, np.ndarray], initial: float,
                  shades: Sequence[Shade] = ()) -> Figure:
    """Draw total equity against buy-and-hold, and the underwater (drawdown) curve.

    Parameters
    ----------
    equity : (numpy.ndarray, numpy.ndarray)
        UTC epoch seconds and total equity (quote currency), a step function.
    buy_hold : (numpy.ndarray, numpy.ndarray) or None
        UTC epoch seconds and the value of holding the run's symbols (quote currency).
    drawdown : (numpy.ndarray, numpy.ndarray)
        UTC epoch seconds and the drawdown from the running peak, percent (<= 0).
    initial : float
        Starting capital (quote currency), drawn as a dashed line.
    shades : sequence of Shade
        Halts of the whole portfolio.

    Returns
    -------
    dict
        The figure (``data``, ``layout``).
    """
    layout = _layout(520, "Equity", "total, against buy and hold of the same symbols")
    (ex, ey), (dx, dy) = _rows(layout, [0.68, 0.32], spacing=0.04)
    data: list[dict[str, Any]] = [{
        "type": "scatter", "mode": "lines", "line": {"shape": "hv", "color": "#1c7ed6",
                                                     "width": 1.6},
        "name": "strategy", "xaxis": ex, "yaxis": ey,
        "x": _ms(equity[0]), "y": _typed(equity[1]),
        "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>equity %{y:,.2f}<extra></extra>"}]
    if buy_hold is not None and len(buy_hold[0]):
        data.append({
            "type": "scatter", "mode": "lines", "name": "buy and hold", "xaxis": ex,
            "yaxis": ey, "x": _ms(buy_hold[0]), "y": _typed(buy_hold[1]),
            "line": {"color": "#868e96", "width": 1.2},
            "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>buy and hold %{y:,.2f}"
                             "<extra></extra>"})
    data.append({
        "type": "scatter", "mode": "lines", "name": "drawdown", "xaxis": dx, "yaxis": dy,
        "x": _ms(drawdown[0]), "y": _typed(drawdown[1]), "fill": "tozeroy",
        "line": {"shape": "hv", "color": "#e03131", "width": 1},
        "fillcolor": "rgba(224,49,49,0.18)", "showlegend": False,
        "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>drawdown %{y:.2f}%<extra></extra>"})
    layout["shapes"].append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": ey,
                             "y0": initial, "y1": initial,
                             "line": {"color": "#adb5bd", "width": 1, "dash": "dash"}})
    _shade(layout, shades)
    layout["yaxis"]["title"] = {"text": "equity (quote)", "font": {"size": 11}}
    layout["yaxis2"].update(title={"text": "drawdown (%)", "font": {"size": 11}},
                            ticksuffix="%")
    layout["xaxis2"]["title"] = {"text": "time (UTC)", "font": {"size": 11}}
    return {"data": data, "layout": layout}


def _red_to_green() -> list[list[Any]]:
    """ColorBrewer's RdYlGn as a plotly.js colour scale (plotly.js names no such scale)."""
    import plotly.colors as pc

    return [list(stop) for stop in pc.make_colorscale(pc.diverging.RdYlGn)]


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def monthly_heatmap(months: Sequence[tuple[int, int, float]],
                    years: Mapping[int, float] | None = None) -> Figure:
    """Draw monthly returns as a year x month heat map (green gains, red losses).

    Parameters
    ----------
    months : sequence of (int, int, float)
        ``(year, month 1-12, return in percent)`` of each calendar month.
    years : mapping of int to float, optional
        Each year's return in percent, shown beside the year.

    Returns
    -------
    dict
        The figure (``data``, ``layout``).
    """
    years = dict(years or {})
    rows = sorted({int(y) for y, _, _ in months})
    z = np.full((len(rows), 12), np.nan)
    for y, m, r in months:
        z[rows.index(int(y)), int(m) - 1] = float(r)
    text = [[("" if np.isnan(v) else f"{v:+.1f}") for v in row] for row in z]
    lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    labels = [f"{y}  ({years[y]:+.1f}%)" if y in years else str(y) for y in rows]
    layout = _layout(130 + 34 * max(len(rows), 1), "Monthly returns",
                     "total equity, % (the year's return beside it)")
    layout["xaxis"] = _axis(side="top", showgrid=False, ticks="")
    layout["yaxis"] = _axis(autorange="reversed", type="category", showgrid=False, ticks="")
    layout["margin"].update(t=70, l=130)
    data = [{
        "type": "heatmap", "x": list(_MONTHS), "y": labels,
        "z": [[None if np.isnan(v) else float(v) for v in row] for row in z],
        "text": text, "texttemplate": "%{text}", "textfont": {"size": 11},
        "colorscale": _red_to_green(), "zmid": 0, "zmin": -lim, "zmax": lim, "xgap": 2, "ygap": 2,
        "colorbar": {"title": {"text": "%", "side": "right"}, "thickness": 10},
        "hovertemplate": "%{x} %{y}: %{z:+.2f}%<extra></extra>"}]
    return {"data": data, "layout": layout}


def pnl_histogram(trades: pd.DataFrame) -> Figure:
    """Draw the distribution of net PnL per closed trade, stacked by symbol.

    Every symbol shares the same bins: equal widths over all trades' range, about one
    bin per ten trades (10 to 60 bins).

    Parameters
    ----------
    trades : pandas.DataFrame
        :func:`~tradewarden.analytics.metrics.load_trades` output (``symbol``, ``pnl_f``
        in quote currency).

    Returns
    -------
    dict
        The figure (``data``, ``layout``).
    """
    every = trades["pnl_f"].to_numpy(dtype=float) if len(trades) else np.zeros(0)
    edges = (np.histogram_bin_edges(every, bins=min(60, max(10, len(every) // 10)))
             if len(every) else np.array([0.0, 1.0]))
    bins = {"start": float(edges[0]), "end": float(edges[-1]),
            "size": float(edges[1] - edges[0]) or 1.0}
    data = []
    symbols = sorted(trades["symbol"].astype(str).unique()) if len(trades) else []
    for i, sym in enumerate(symbols):
        pnl = trades.loc[trades["symbol"] == sym, "pnl_f"].to_numpy(dtype=float)
        data.append({
            "type": "histogram", "name": sym, "x": _typed(pnl), "xbins": bins,
            "marker": {"color": _SYMBOL_COLORS[i % len(_SYMBOL_COLORS)]}, "opacity": 0.85,
            "hovertemplate": f"{sym}<br>PnL %{{x}}<br>%{{y}} trades<extra></extra>"})
    layout = _layout(360, "Trade PnL", "net of fees, quote currency")
    layout.update(barmode="stack", bargap=0.05,
                  xaxis=_axis(title="net PnL per trade (quote)"),
                  yaxis=_axis(title="trades"))
    layout["shapes"].append({"type": "line", "xref": "x", "x0": 0, "x1": 0, "yref": "paper",
                             "y0": 0, "y1": 1,
                             "line": {"color": "#495057", "width": 1, "dash": "dot"}})
    return {"data": data, "layout": layout}
