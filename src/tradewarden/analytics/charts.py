"""Inline SVG charts for the HTML report: no JavaScript, no external resources.

Every chart is a time series on a UTC time axis. Long series are thinned by
:func:`downsample` (per-bucket min and max, so spikes and troughs survive) to at most
``max_points`` points before drawing, which keeps a report of a million-bar run small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from typing import Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["Legend", "Marker", "Segment", "downsample", "line_chart", "time_ticks",
           "value_ticks"]

MAX_POINTS = 2000

_FIXED_STEPS = (60, 300, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400,
                2 * 86400, 7 * 86400, 14 * 86400)
_MONTH_STEPS = (1, 2, 3, 6, 12, 24, 60)
_MONDAY_OFFSET = 4 * 86400  # 1970-01-01 was a Thursday; weekly ticks fall on Mondays


@dataclass(frozen=True)
class Marker:
    """A point marker: ``shape`` is ``'up'`` / ``'down'`` (triangles) or ``'circle'``."""

    ts: int
    value: float
    shape: str
    color: str
    title: str = ""


@dataclass(frozen=True)
class Segment:
    """A straight line between two (ts, value) points, e.g. a trade's entry and exit."""

    ts0: int
    value0: float
    ts1: int
    value1: float
    color: str


@dataclass(frozen=True)
class Legend:
    """A legend entry: ``shape`` is ``'line'``, ``'up'``, ``'down'`` or ``'circle'``."""

    label: str
    color: str
    shape: str = "line"


def downsample(ts: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS
               ) -> tuple[np.ndarray, np.ndarray]:
    """Thin a time series to at most ``max_points`` points, keeping extremes.

    The points are split into ``(max_points - 2) // 2`` equal-count buckets; each bucket
    keeps its minimum and its maximum (in time order), and the first and last points
    are always kept. NaN values are dropped first.
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


def time_ticks(t0: int, t1: int, max_ticks: int = 8) -> list[tuple[int, str]]:
    """Round UTC tick positions in ``[t0, t1]`` with labels, at most about ``max_ticks``."""
    span = max(int(t1) - int(t0), 1)
    for step in _FIXED_STEPS:
        if span / step <= max_ticks:
            offset = _MONDAY_OFFSET if step % (7 * 86400) == 0 else 0
            first = math.ceil((t0 - offset) / step) * step + offset
            fmt = "%Y-%m-%d" if step >= 86400 else "%Y-%m-%d %H:%M"
            return [(t, _utc(t).strftime(fmt)) for t in range(int(first), int(t1) + 1, step)]
    months = span / (30.44 * 86400)
    step = next((m for m in _MONTH_STEPS if months / m <= max_ticks), None)
    if step is None:
        step = 12 * max(1, math.ceil(months / 12 / max_ticks))
    start = _utc(t0)
    fmt = "%Y" if step % 12 == 0 else "%Y-%m"
    freq = f"{step // 12}YS" if step % 12 == 0 else f"{step}MS"
    dates = pd.date_range(pd.Timestamp(start.year, 1 if step % 12 == 0 else start.month, 1,
                                       tz="UTC"), _utc(t1), freq=freq)
    return [(int(d.timestamp()), d.strftime(fmt)) for d in dates if t0 <= d.timestamp() <= t1]


def value_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values in [lo, hi]: the step of 1, 2, 2.5, 5 or 10 x 10^k
    (k from ``(hi - lo) / n``) whose tick count is nearest ``n``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    span = hi - lo
    step = min((m * mag for m in (10, 5, 2.5, 2, 1)), key=lambda st: abs(span / st - n))
    first = math.ceil(lo / step) * step
    count = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [first + i * step for i in range(max(count, 0))]


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(int(ts), tz=timezone.utc)


def _decimals(step: float) -> int:
    if step <= 0 or not math.isfinite(step):
        return 2
    return int(min(8, max(0, -math.floor(math.log10(step)) + (0 if step >= 1 else 1))))


def _num(x: float) -> str:
    """Short pixel coordinate."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def line_chart(ts: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray, *,
               title: str, y_label: str, color: str = "#1f77b4", step: bool = False,
               fill_to_zero: bool = False, markers: Sequence[Marker] = (),
               segments: Sequence[Segment] = (), legend: Sequence[Legend] = (),
               baseline: float | None = None, value_format: Callable[[float], str] | None = None,
               width: int = 960, height: int = 300, max_points: int = MAX_POINTS) -> str:
    """Render one time-series chart as an inline ``<svg>`` element.

    Parameters
    ----------
    ts, values : array-like
        UTC epoch seconds (ascending) and values.
    title, y_label : str
        Chart title and y-axis label (the x axis is always "time (UTC)").
    step : bool
        Draw a step function (value held until the next point), as for equity marks.
    fill_to_zero : bool
        Shade the area between the line and zero (drawdown charts).
    markers, segments, legend : sequences
        Overlays; markers and segments widen the value range to fit.
    baseline : float | None
        Draw a dashed horizontal reference line at this value (e.g. initial capital).
    value_format : callable | None
        Formats y tick labels (default: thousands separators, decimals from tick step).
    max_points : int
        Series longer than this are thinned with :func:`downsample`.
    """
    t, v = downsample(np.asarray(ts), np.asarray(values, dtype=float), max_points)
    left, right, top, bottom = 86, 18, 34, 46
    legend_w = sum(26 + 6.2 * len(item.label) for item in legend)
    legend_y = 20
    if legend and left + 7.8 * len(title) + 16 > width - right - legend_w:
        legend_y, top = 38, 50             # no room beside the title: a row of its own
    pw, ph = width - left - right, height - top - bottom
    head = (f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">'
            f'<text x="{left}" y="20" class="ct">{escape(title)}</text>')
    if len(t) == 0:
        return (head + f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" '
                f'class="muted">no data</text></svg>')
    all_t = np.concatenate([t, [m.ts for m in markers], [s.ts0 for s in segments],
                            [s.ts1 for s in segments]]).astype(np.int64)
    all_v = np.concatenate([v, [m.value for m in markers], [s.value0 for s in segments],
                            [s.value1 for s in segments],
                            [baseline] if baseline is not None else [],
                            [0.0] if fill_to_zero else []]).astype(float)
    t0, t1 = int(all_t.min()), int(all_t.max())
    if t1 == t0:
        t0, t1 = t0 - 3600, t1 + 3600
    lo, hi = float(np.nanmin(all_v)), float(np.nanmax(all_v))
    pad = (hi - lo) * 0.05 if hi > lo else max(abs(hi) * 0.01, 1.0)
    lo, hi = lo - pad, hi + pad

    def x(tv: float) -> float:
        return left + (tv - t0) / (t1 - t0) * pw

    def y(val: float) -> float:
        return top + (hi - val) / (hi - lo) * ph

    yt = value_ticks(lo, hi, 5)
    ystep = yt[1] - yt[0] if len(yt) > 1 else abs(hi - lo)
    fmt = value_format or (lambda val, d=_decimals(ystep): f"{val:,.{d}f}")
    parts = [head, f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="plot"/>']
    for val in yt:
        yy = _num(y(val))
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy}" y2="{yy}" class="grid"/>'
                     f'<text x="{left - 6}" y="{yy}" class="yl">{escape(fmt(val))}</text>')
    for tv, label in time_ticks(t0, t1, max_ticks=max(4, pw // 90)):
        xx = _num(x(tv))
        parts.append(f'<line x1="{xx}" x2="{xx}" y1="{top}" y2="{top + ph}" class="grid"/>'
                     f'<text x="{xx}" y="{top + ph + 16}" class="xl">{escape(label)}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 6}" class="al" '
                 f'text-anchor="middle">time (UTC)</text>'
                 f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" class="al" '
                 f'text-anchor="middle">{escape(y_label)}</text>')
    if baseline is not None:
        yy = _num(y(baseline))
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy}" y2="{yy}" class="base"/>')
    xs = [_num(x(a)) for a in t]
    ys = [_num(y(b)) for b in v]
    if step:
        d = [f"M{xs[0]} {ys[0]}"] + [f"H{xs[i]}V{ys[i]}" for i in range(1, len(xs))]
    else:
        d = [f"M{xs[0]} {ys[0]}"] + [f"L{xs[i]} {ys[i]}" for i in range(1, len(xs))]
    line = "".join(d)
    if fill_to_zero:
        zero = _num(y(0.0))
        parts.append(f'<path d="{line}V{zero}H{xs[0]}Z" fill="{color}" fill-opacity="0.18" '
                     f'stroke="none"/>')
    parts.append(f'<path d="{line}" fill="none" stroke="{color}" stroke-width="1.3" '
                 f'stroke-linejoin="round"/>')
    for s in segments:
        parts.append(f'<line x1="{_num(x(s.ts0))}" y1="{_num(y(s.value0))}" '
                     f'x2="{_num(x(s.ts1))}" y2="{_num(y(s.value1))}" stroke="{s.color}" '
                     f'stroke-width="1" stroke-dasharray="3 2" opacity="0.7"/>')
    for m in markers:
        parts.append(_marker(x(m.ts), y(m.value), m.shape, m.color, m.title))
    if legend:
        lx = left + pw
        items = []
        for item in reversed(legend):
            w = 26 + 6.2 * len(item.label)
            lx -= w
            items.append(_legend_item(lx, legend_y, item))
        parts.append(f'<g class="legend">{"".join(reversed(items))}</g>')
    parts.append("</svg>")
    return "".join(parts)


def _shape(cx: float, cy: float, shape: str, color: str, size: float = 5.5) -> str:
    if shape == "up":
        pts = f"{_num(cx)},{_num(cy - size)} {_num(cx - size)},{_num(cy + size * 0.8)} " \
              f"{_num(cx + size)},{_num(cy + size * 0.8)}"
        return f'<polygon points="{pts}" fill="{color}" stroke="#fff" stroke-width="0.6"/>'
    if shape == "down":
        pts = f"{_num(cx)},{_num(cy + size)} {_num(cx - size)},{_num(cy - size * 0.8)} " \
              f"{_num(cx + size)},{_num(cy - size * 0.8)}"
        return f'<polygon points="{pts}" fill="{color}" stroke="#fff" stroke-width="0.6"/>'
    if shape == "line":
        return (f'<line x1="{_num(cx - 8)}" x2="{_num(cx + 8)}" y1="{_num(cy)}" '
                f'y2="{_num(cy)}" stroke="{color}" stroke-width="2"/>')
    return (f'<circle cx="{_num(cx)}" cy="{_num(cy)}" r="{_num(size * 0.8)}" fill="{color}" '
            f'stroke="#fff" stroke-width="0.6"/>')


def _marker(cx: float, cy: float, shape: str, color: str, title: str) -> str:
    tip = f"<title>{escape(title)}</title>" if title else ""
    return f"<g>{tip}{_shape(cx, cy, shape, color)}</g>"


def _legend_item(lx: float, ly: float, item: Legend) -> str:
    return (_shape(lx + 8, ly - 4, item.shape, item.color, 4.5)
            + f'<text x="{_num(lx + 20)}" y="{_num(ly)}" class="lg">{escape(item.label)}</text>')
