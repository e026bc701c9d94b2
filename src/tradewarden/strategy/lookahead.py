"""Look-ahead check: does any value at bar ``t`` change when later bars are added?

A strategy is causal when every column it computes at bar ``t`` is a function of bars
``0..t`` only. :func:`check_lookahead` computes the strategy's columns on a symbol's
whole history, then again on the history truncated at sample cut points ``c``, and
compares every bar ``t <= c``: a difference means the value at ``t`` used bars after
``c`` (``shift(-1)``, a whole-column mean, ``iloc[-1]``, centred windows, ...).

It also checks what the engine relies on for chunked replays: computed over only
:attr:`Strategy.warmup` bars of history before a bar, the strategy gives the same
values as with the whole history (a strategy whose values depend on older history,
such as an expanding maximum or an EMA with too short a warm-up, changes results where
a chunk starts).

Columns compared
    :class:`~tradewarden.strategy.DataFrameStrategy`: every column ``populate()``
    returns. Other strategies: the :class:`SignalFrame` (``enter``, ``exit``, the
    hold/entry/exit reason labels, ``stop_loss``, ``take_profit``, each recorded
    input).

Floats are compared with ``rtol=1e-9`` and ``atol=1e-12`` (NaN equals NaN), so
rounding noise is not a finding; everything else exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from tradewarden.domain import BarSeries
from tradewarden.strategy.base import SignalFrame, Strategy
from tradewarden.strategy.dataframe import DataFrameStrategy

RTOL = 1e-9
ATOL = 1e-12
#: Bars after each cut compared in the warm-up check.
WARMUP_SPAN = 200

Kind = Literal["lookahead", "warmup"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One column of one symbol whose value changes with history it should not see.

    Parameters
    ----------
    symbol : str
    column : str
    kind : {"lookahead", "warmup"}
        ``lookahead``: the value at ``bar`` changes when bars after ``cut`` are added.
        ``warmup``: it changes when only :attr:`Strategy.warmup` bars precede ``cut``.
    bar : int
        Index of the first differing bar in the symbol's series.
    ts : int
        That bar's open time, UTC epoch seconds.
    cut : int
        ``lookahead``: the last bar of the truncated history. ``warmup``: the first
        bar computed with limited history.
    partial, full : str
        The value with the truncated (or limited) history and with the whole history.
    """

    symbol: str
    column: str
    kind: Kind
    bar: int
    ts: int
    cut: int
    partial: str
    full: str


@dataclass(slots=True)
class LookaheadReport:
    """Result of :func:`check_lookahead`.

    Parameters
    ----------
    strategy : str
        The strategy's name.
    bars : dict of str to int
        Bars per symbol.
    cuts : int
        Cut points per symbol.
    columns : list of str
        Columns compared.
    findings : list of Finding
        One per symbol, kind and column: the earliest differing bar found. A column
        with look-ahead is not reported again for its warm-up.
    """

    strategy: str
    bars: dict[str, int]
    cuts: int
    columns: list[str]
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when no column changed."""
        return not self.findings


def strategy_columns(strategy: Strategy, bars: BarSeries) -> dict[str, np.ndarray]:
    """Compute every column the check compares, over ``bars``.

    Parameters
    ----------
    strategy : Strategy
    bars : BarSeries

    Returns
    -------
    dict of str to ndarray, each of shape (len(bars),)
        Float columns as float64, flags as bool, labels as object arrays.

    Raises
    ------
    StrategyOutputError
        A :class:`DataFrameStrategy` whose ``populate()`` fails or breaks the contract.
    """
    if isinstance(strategy, DataFrameStrategy):
        out = strategy.populated(bars)
        strategy.to_signal_frame(out)            # the same checks as a replay
        cols = {}
        for name in out.columns:
            s = out[name]
            key = str(name)
            if pd.api.types.is_bool_dtype(s.dtype) and not s.isna().any():
                cols[key] = s.to_numpy(dtype=bool)
            elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
                cols[key] = s.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                cols[key] = s.to_numpy(dtype=object)
        return cols
    return frame_columns(strategy.prepare(bars))


def frame_columns(frame: SignalFrame) -> dict[str, np.ndarray]:
    """Return a :class:`SignalFrame` as named columns (reason codes as labels).

    Parameters
    ----------
    frame : SignalFrame

    Returns
    -------
    dict of str to ndarray, each of shape (len(frame),)
    """
    labels = np.array(frame.reasons, dtype=object)
    cols: dict[str, np.ndarray] = {
        "enter": np.asarray(frame.enter, dtype=bool),
        "exit": np.asarray(frame.exit, dtype=bool),
        "flat_reason": labels[np.asarray(frame.flat_reason, dtype=np.int64)],
        "stop_loss": np.asarray(frame.stop_loss, dtype=np.float64),
        "take_profit": np.asarray(frame.take_profit, dtype=np.float64),
    }
    if frame.entry_codes is not None:
        cols["entry_reason"] = np.where(frame.enter, labels[frame.entry_codes.astype(np.int64)], None)
    if frame.exit_codes is not None:
        cols["exit_reason"] = np.where(frame.exit, labels[frame.exit_codes.astype(np.int64)], None)
    for k, v in frame.inputs.items():
        cols[f"input:{k}"] = np.asarray(v, dtype=np.float64)
    return cols


def _differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise 'not the same value' (NaN equals NaN; floats within tolerance)."""
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            same = np.isclose(a, b, rtol=RTOL, atol=ATOL) | (np.isnan(a) & np.isnan(b))
        return ~same
    if a.dtype.kind == "b" and b.dtype.kind == "b":
        return a != b
    both_missing = pd.isna(a) & pd.isna(b)
    try:
        ne = np.asarray(a != b, dtype=bool)
        if ne.shape != a.shape:
            raise ValueError("not element-wise")
    except (TypeError, ValueError):
        ne = np.array([not _same(x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)],
                      dtype=bool)
    return ne & ~both_missing


def _same(x: object, y: object) -> bool:
    try:
        return bool(x == y)
    except (TypeError, ValueError):
        return x is y


def _show(v: object) -> str:
    if isinstance(v, (float, np.floating)):
        return "NaN" if v != v else f"{float(v):.10g}"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if v is None or v is pd.NA:
        return "missing"
    return repr(v) if isinstance(v, str) else str(v)


class _Notes:
    """Keep the earliest differing bar per (kind, column) of one symbol."""

    def __init__(self, found: dict[tuple[Kind, str], Finding], symbol: str, bars: BarSeries) -> None:
        self.found, self.symbol, self.bars = found, symbol, bars

    def __call__(self, kind: Kind, name: str, bar: int, cut: int, partial: object,
                 whole: object) -> None:
        key = (kind, name)
        if key not in self.found or bar < self.found[key].bar:
            self.found[key] = Finding(self.symbol, name, kind, bar, int(self.bars.ts[bar]), cut,
                                      _show(partial), _show(whole))


def cut_points(n: int, warmup: int, samples: int) -> np.ndarray:
    """Return about ``samples`` sorted bar indices at which the history is cut.

    Evenly spaced from the end of the warm-up (or early in the series when the warm-up
    is longer than half of it) to the second-to-last bar; the last bar is never a cut
    (nothing would follow it).

    Parameters
    ----------
    n : int
        Bars in the series.
    warmup : int
        The strategy's warm-up in bars.
    samples : int
        Cut points wanted, >= 1.

    Returns
    -------
    ndarray of int64
    """
    if n < 2:
        return np.zeros(0, dtype=np.int64)
    lo = min(max(1, warmup), max(1, n // 2))
    hi = n - 2
    if hi < lo:
        return np.array([hi], dtype=np.int64) if hi >= 0 else np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(lo, hi, samples).round().astype(np.int64))


def check_lookahead(strategy: Strategy, series: dict[str, BarSeries], samples: int = 20,
                    *, check_warmup: bool = True) -> LookaheadReport:
    """Report every column whose value at some bar ``t`` depends on bars after ``t``.

    Parameters
    ----------
    strategy : Strategy
    series : dict of str to BarSeries
        One symbol's bars per key.
    samples : int, default 20
        Cut points per symbol (see :func:`cut_points`).
    check_warmup : bool, default True
        Also compare each cut's next :data:`WARMUP_SPAN` bars computed with only
        ``strategy.warmup`` bars of history.

    Returns
    -------
    LookaheadReport

    Raises
    ------
    ValueError
        ``samples`` below 1.
    StrategyOutputError
        The strategy's frame cannot be computed (a :class:`DataFrameStrategy`
        ``populate()`` that fails or breaks the contract).
    """
    if samples < 1:
        raise ValueError(f"--samples must be at least 1, got {samples}")
    warm = int(strategy.warmup)
    report = LookaheadReport(strategy.name, {s: len(b) for s, b in series.items()}, samples, [])
    seen: list[str] = []
    for sym, bars in series.items():
        full = strategy_columns(strategy, bars)
        for name in full:
            if name not in seen:
                seen.append(name)
        found: dict[tuple[Kind, str], Finding] = {}
        note = _Notes(found, sym, bars)
        for c in cut_points(len(bars), warm, samples).tolist():
            part = strategy_columns(strategy, bars.slice(0, c + 1))
            for name, col in full.items():
                if name not in part:
                    note("lookahead", name, c, c, "absent", "present")
                    continue
                d = _differs(part[name], col[: c + 1])
                if d.any():
                    t = int(np.argmax(d))
                    note("lookahead", name, t, c, part[name][t], col[t])
            if check_warmup and warm < c:
                lo, hi = c - warm, min(len(bars), c + WARMUP_SPAN)
                win = strategy_columns(strategy, bars.slice(lo, hi))
                for name, col in full.items():
                    if name not in win:
                        note("warmup", name, c, c, "absent", "present")
                        continue
                    d = _differs(win[name][warm:], col[c:hi])
                    if d.any():
                        k = int(np.argmax(d))
                        note("warmup", name, c + k, c, win[name][warm + k], col[c + k])
        leaky = {name for kind, name in found if kind == "lookahead"}
        kept = [f for (kind, name), f in found.items() if kind == "lookahead" or name not in leaky]
        report.findings.extend(sorted(kept, key=lambda f: (f.kind, f.bar, f.column)))
    report.columns = seen
    return report
