"""Validation of raw OHLCV rows and the per-symbol data-quality report.

:func:`validate_frame` turns a raw frame (as :func:`tradewarden.data.read_ohlcv_file`
returns it) into a clean frame of UTC epoch seconds and float64 prices, and measures
the data: rows, range, gaps, zero-volume bars, skipped rows. The same checks run on
blocks of a file as it is streamed (:class:`BlockValidator`, used by
:func:`tradewarden.data.load_market_data`), so a file never has to be in memory as a
whole: only its clean columns and one block are. Every check is vectorised; a million
rows validate in a fraction of a second.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tradewarden.data._columns import PRICE_FIELDS, VALUE_FIELDS, resolve_columns
from tradewarden.data.errors import DataError
from tradewarden.domain.values import iso

__all__ = [
    "MAX_SKIPPED_DETAILS",
    "PRICE_MAX",
    "PRICE_MIN",
    "SPLIT_RATIOS",
    "SPLIT_TOLERANCE",
    "BlockValidator",
    "DataQuality",
    "SplitSuspect",
    "find_unadjusted_splits",
    "infer_timeframe_seconds",
    "validate_frame",
]

#: How many skipped-row descriptions a :class:`DataQuality` keeps.
MAX_SKIPPED_DETAILS = 20

#: Smallest and largest price accepted, in quote units per base unit. The engine rounds
#: prices and sizes positions with 28-digit decimals; within these bounds a price, its
#: increment and a position's notional stay exact. Real markets sit well inside them:
#: the cheapest listed tokens trade around 1e-10 USD (BabyDoge, SHIB quoted in BTC about
#: 1e-10) and the dearest instruments around 1e6 (BRK.A about 7e5 USD).
PRICE_MIN = 1e-12
PRICE_MAX = 1e12

_STATUSES = ("ok", "degraded")
_NUMERIC_TEXT = re.compile(r"^\s*[+-]?\d+(\.\d*)?([eE][+-]?\d+)?\s*$")
# Epoch-number magnitude thresholds (absolute median value) -> ticks per second.
# 1e11 s is the year 5138 and 1e11 ms is 1973-03-03, so data before March 1973
# given in milliseconds would be misread as seconds.
_EPOCH_UNITS = ((1e11, 1, "s"), (1e14, 1_000, "ms"), (1e17, 1_000_000, "us"),
                (float("inf"), 1_000_000_000, "ns"))
_EPOCH_LIMITS = np.array([1e11, 1e14, 1e17])
_EPOCH_TICKS = np.array([1, 1_000, 1_000_000, 1_000_000_000], dtype=np.int64)
_UNIT_NAMES = {1: "seconds", 1_000: "milliseconds", 1_000_000: "microseconds",
               1_000_000_000: "nanoseconds"}
_DT_TICKS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

#: A block column: a pandas Series (whole frames) or an Arrow array (streamed files).
Column = Union[pd.Series, pa.Array, pa.ChunkedArray]


@dataclass
class DataQuality:
    """What validation found in one symbol's data.

    Gaps and zero-volume bars are reported but do not by themselves degrade the data;
    ``status`` is ``"degraded"`` when bad rows were skipped, or when a loader found an
    overnight move that matches an unadjusted stock split (``split_suspects``).

    Parameters
    ----------
    symbol : str
        Canonical symbol (may be empty when validating a frame with no symbol).
    source : str
        File (or bundled sample) the rows came from.
    rows : int
        Clean rows kept, after any skipped rows were dropped.
    first_ts, last_ts : int or None
        Open time of the first and last clean bar, UTC epoch seconds (``None`` if no rows).
    gaps : int
        Number of holes: consecutive clean bars further apart than one bar length.
    missing_bars : int
        Bars those holes skip, ``sum(ceil(diff / bar) - 1)`` over the holes.
    largest_gap_seconds : int
        Largest spacing between two consecutive bars that form a hole, in seconds
        (a 6-hour spacing of 1h bars is a hole of 5 missing bars); 0 when no gaps.
    zero_volume_bars : int
        Clean bars with volume exactly 0.
    rows_skipped : int
        Bad rows dropped (only with ``skip_bad_rows=True``).
    skipped_details : list of str
        The first :data:`MAX_SKIPPED_DETAILS` skipped rows, e.g.
        ``"row 17 field 'close': missing or NaN price"``.
    status : {"ok", "degraded"}
    timeframe_seconds : int or None
        Bar length the gaps were measured against, in seconds (given or inferred).
    split_suspects : list of str
        One line per overnight move that matches a stock split the prices were not
        adjusted for (see :func:`find_unadjusted_splits`), e.g. ``"2014-06-09: close
        645.57 then open 92.7 (1:6.964), as an unadjusted 7:1 split would move"``;
        filled in by the loaders (:func:`~tradewarden.data.load_market_data`, the
        daily equity loaders), empty from :func:`validate_frame` alone.

    Raises
    ------
    ValueError
        If ``status`` is not ``"ok"`` or ``"degraded"``.
    """

    symbol: str
    source: str
    rows: int
    first_ts: int | None
    last_ts: int | None
    gaps: int
    missing_bars: int
    largest_gap_seconds: int
    zero_volume_bars: int
    rows_skipped: int = 0
    skipped_details: list[str] = field(default_factory=list)
    status: str = "ok"
    timeframe_seconds: int | None = None
    split_suspects: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ValueError(f"status must be one of {_STATUSES}, got {self.status!r}")

    @property
    def degraded(self) -> bool:
        """``True`` when rows were skipped or an unadjusted split is suspected."""
        return self.status == "degraded"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict: every field plus ``first_time``/``last_time``
        (ISO 8601 UTC text of ``first_ts``/``last_ts``, or ``None``)."""
        out = asdict(self)
        out["first_time"] = None if self.first_ts is None else iso(self.first_ts)
        out["last_time"] = None if self.last_ts is None else iso(self.last_ts)
        return out


#: Stock split ratios looked for, as (new shares, old shares): forward splits 3:2 to
#: 50:1 and reverse splits 1:2 to 1:50. These are the ratios US issuers have used in
#: recent decades (AAPL 7:1 in 2014 and 4:1 in 2020, NVDA 4:1 in 2021 and 10:1 in 2024,
#: AMZN and GOOGL 20:1 in 2022, reverse splits such as C 1:10 in 2011). 5:4 and 4:3 are
#: left out: a 20-25 % overnight move is too often a real one.
SPLIT_RATIOS: tuple[tuple[int, int], ...] = (
    (3, 2), (2, 1), (5, 2), (3, 1), (4, 1), (5, 1), (6, 1), (7, 1), (8, 1), (10, 1),
    (15, 1), (20, 1), (25, 1), (30, 1), (50, 1),
    (1, 2), (1, 3), (1, 4), (1, 5), (1, 8), (1, 10), (1, 15), (1, 20), (1, 25), (1, 30),
    (1, 50),
)
#: Largest relative distance between an overnight price ratio and a split ratio for the
#: move to count as that split: 3 %, the room a real overnight move leaves around the
#: split (AAPL 2014-06-09: 645.57 / 92.70 = 6.964, 0.5 % from 7).
SPLIT_TOLERANCE = 0.03


@dataclass(frozen=True)
class SplitSuspect:
    """An overnight move that looks like a stock split the prices were not adjusted for.

    Parameters
    ----------
    ts : int
        Open time of the bar after the move, UTC epoch seconds (for daily bars the
        session date at 00:00 UTC: the split's effective date).
    prev_close, open : float
        The previous bar's close and this bar's open, quote currency per share.
    new, old : int
        The matching split ratio, ``new`` shares for ``old`` (7:1: a holder of one
        share gets seven, the price divides by 7; 1:10 is a reverse split).
    """

    ts: int
    prev_close: float
    open: float
    new: int
    old: int

    @property
    def ratio(self) -> str:
        """The split ratio as text, ``"7:1"``."""
        return f"{self.new}:{self.old}"

    def describe(self) -> str:
        """Return one line: the date, the two prices, their ratio and the split."""
        day = iso(self.ts)
        day = day[:10] if day.endswith("T00:00:00Z") else day
        kind = "reverse split" if self.new < self.old else "split"
        return (f"{day}: close {self.prev_close:g} then open {self.open:g} "
                f"(1:{self.prev_close / self.open:.4g}), as an unadjusted {self.ratio} {kind} "
                "would move")


def find_unadjusted_splits(ts: np.ndarray, open_: np.ndarray, close: np.ndarray, *,
                           tolerance: float = SPLIT_TOLERANCE,
                           ratios: tuple[tuple[int, int], ...] = SPLIT_RATIOS
                           ) -> list[SplitSuspect]:
    """Find overnight moves that match a stock split ratio: prices not split-adjusted.

    A split of ``new:old`` divides the share price by ``new / old`` overnight. In a
    series that was not adjusted for it, the bar after the split opens at about the
    previous close divided by that factor (AAPL's 7:1 split: close 645.57 on
    2014-06-06, open 92.70 on 2014-06-09), which a strategy reads as an 86 % crash.
    Every consecutive pair of bars is tested: ``prev_close / open`` within
    ``tolerance`` (relative) of ``new / old`` for one of ``ratios``.

    Parameters
    ----------
    ts : numpy.ndarray of int64, shape (n,)
        Bar open times, UTC epoch seconds, increasing.
    open_, close : numpy.ndarray of float64, shape (n,)
        Prices, quote currency per share, positive.
    tolerance : float, default :data:`SPLIT_TOLERANCE`
        Relative distance to the split factor, ``|r / f - 1| <= tolerance``.
    ratios : tuple of (int, int), default :data:`SPLIT_RATIOS`
        ``(new, old)`` pairs.

    Returns
    -------
    list of SplitSuspect
        In time order; at most one (the closest ratio) per bar.

    Raises
    ------
    ValueError
        If the arrays differ in length or ``tolerance`` is not in (0, 0.2].
    """
    if not 0 < tolerance <= 0.2:
        raise ValueError(f"tolerance must be in (0, 0.2], got {tolerance!r}")
    ts = np.asarray(ts, dtype=np.int64)
    o = np.asarray(open_, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    if not ts.shape == o.shape == c.shape:
        raise ValueError(f"ts, open and close differ in length: {ts.shape}, {o.shape}, {c.shape}")
    if ts.shape[0] < 2:
        return []
    with np.errstate(divide="ignore", invalid="ignore"):
        r = c[:-1] / o[1:]
    factors = np.array([n / d for n, d in ratios], dtype=np.float64)
    up, down = factors[factors > 1], factors[factors < 1]
    # Only moves at least as large as the mildest split can match one: test those alone,
    # so a million intraday bars cost two comparisons each.
    big = np.zeros(r.shape[0], dtype=bool)
    if up.size:
        big |= r >= up.min() * (1 - tolerance)
    if down.size:
        big |= r <= down.max() * (1 + tolerance)
    idx = np.flatnonzero(big & np.isfinite(r))
    if idx.size == 0:
        return []
    dist = np.abs(r[idx, None] / factors[None, :] - 1.0)        # (candidates, ratios)
    best = np.argmin(dist, axis=1)
    hit = dist[np.arange(idx.shape[0]), best] <= tolerance
    return [SplitSuspect(int(ts[i + 1]), float(c[i]), float(o[i + 1]), *ratios[int(b)])
            for i, b in zip(idx[hit], best[hit])]


def infer_timeframe_seconds(ts: np.ndarray) -> int | None:
    """Infer the bar length of a series as the median spacing of its timestamps.

    Parameters
    ----------
    ts : numpy.ndarray of int64
        Bar open times, UTC epoch seconds, strictly increasing.

    Returns
    -------
    int or None
        Median of the consecutive differences, in seconds (rounded to a whole
        second); ``None`` when there are fewer than two bars.
    """
    ts = np.asarray(ts, dtype=np.int64)
    if ts.shape[0] < 2:
        return None
    return int(round(float(np.median(np.diff(ts)))))


# ---------------------------------------------------------------------------------------
# checks


@dataclass
class _Check:
    """One row-level check: which rows fail it, and how to describe a failing row."""

    field: str
    mask: np.ndarray
    describe: Callable[[int], str]


def _raw(col: Column, i: int) -> str:
    """The cell as written, quoted: ``'abc'``, ``1.5``."""
    if isinstance(col, pd.Series):
        value = col.iloc[i]
    else:
        value = col[i].as_py()
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value.strip() if isinstance(value, str) else value)


def _num(value: float) -> str:
    """A float as plain text (``-1.0``, ``inf``), never ``np.float64(...)``."""
    return repr(float(value))


def _epoch_text(value: Any) -> str:
    """An epoch number as written: ``1700000000000``, ``-5``, ``1.5e9`` -> ``1500000000``."""
    if isinstance(value, (np.integer, int)):
        return str(int(value))
    v = float(value)
    return str(int(v)) if v.is_integer() else repr(v)


@dataclass
class _TimeState:
    """How a time column is read, decided on its first rows and kept for the rest.

    ``kind`` is ``"numbers"`` (epoch numbers written as text) or ``"text"`` (ISO 8601)
    for text columns; ``ticks`` is the epoch unit in ticks per second, from the median
    magnitude of the first numbers seen.
    """

    kind: str | None = None
    ticks: int | None = None
    zoned: bool = True              # ISO text with Z/offset (else naive): tried first


class _TimeParts:
    """Masks and seconds of one block's time column, filled by the parsers below."""

    def __init__(self, n: int, missing: np.ndarray) -> None:
        self.n = n
        self.missing = np.array(missing, dtype=bool, copy=True)   # writable: extended
        self.unparseable = np.zeros(n, dtype=bool)
        self.negative = np.zeros(n, dtype=bool)
        self.mismatch = np.zeros(n, dtype=bool)
        self.fractional = np.zeros(n, dtype=bool)
        self.secs = np.zeros(n, dtype=np.int64)
        self.numbers: np.ndarray | None = None
        self.classes: np.ndarray | None = None

    def from_datetimes(self, i8: np.ndarray, nat: np.ndarray, ticks: int) -> None:
        """Epoch ticks (naive values are UTC) with their not-a-time mask."""
        ok = ~nat
        self.secs[ok] = i8[ok] // ticks
        self.fractional[ok] = (i8[ok] % ticks) != 0
        self.unparseable[nat & ~self.missing] = True

    def from_numbers(self, num: np.ndarray, state: _TimeState) -> None:
        """Epoch numbers; the unit comes from ``state`` or, the first time, from the
        median magnitude of this block's non-negative numbers."""
        if num.dtype.kind == "f":       # NaN/inf, or too large for int64 ticks: unusable
            with np.errstate(invalid="ignore"):
                finite = np.isfinite(num) & (np.abs(num) < 9.2e18)
        else:
            finite = np.ones(self.n, dtype=bool)
        finite &= ~self.missing
        self.unparseable[~finite & ~self.missing] = True
        self.numbers = num
        with np.errstate(invalid="ignore"):
            self.negative = finite & (num < 0)
        ok = finite & ~self.negative
        if not ok.any():
            return
        if state.ticks is None:
            magnitude = float(np.median(num[ok]))
            state.ticks = next(t for limit, t, _ in _EPOCH_UNITS if magnitude < limit)
        ticks = state.ticks
        classes = np.full(self.n, ticks, dtype=np.int64)
        classes[ok] = _EPOCH_TICKS[np.searchsorted(_EPOCH_LIMITS, num[ok], side="right")]
        self.classes = classes
        self.mismatch = ok & (classes != ticks)
        good = ok & ~self.mismatch
        vals = num[good]
        if vals.dtype.kind == "f":
            whole = vals == np.floor(vals)
            ivals = np.where(whole, vals, 0).astype(np.int64)
        else:
            whole = np.ones(vals.shape[0], dtype=bool)
            ivals = vals.astype(np.int64)
        idx = np.flatnonzero(good)
        self.secs[idx] = ivals // ticks
        self.fractional[idx] = ~whole | ((ivals % ticks) != 0)

    def checks(self, raw: Column, state: _TimeState) -> tuple[np.ndarray, np.ndarray, list[_Check]]:
        num, classes = self.numbers, self.classes
        checks = [
            _Check("timestamp", self.missing, lambda i: "missing timestamp"),
            _Check("timestamp", self.unparseable, lambda i: f"unparseable timestamp {_raw(raw, i)}"),
            _Check("timestamp", self.negative,
                   lambda i: f"negative epoch time {_epoch_text(num[i])}: epoch numbers count "
                             "seconds (or ms, us, ns) after 1970-01-01T00:00:00Z"),
            _Check("timestamp", self.mismatch,
                   lambda i: f"{_epoch_text(num[i])} looks like {_UNIT_NAMES[int(classes[i])]} "
                             f"while the column is in {_UNIT_NAMES[int(state.ticks or 1)]} "
                             "(median magnitude)"),
            _Check("timestamp", self.fractional,
                   lambda i: f"timestamp {_raw(raw, i)} is not a whole number of seconds"),
        ]
        usable = ~(self.missing | self.unparseable | self.negative | self.mismatch
                   | self.fractional)
        return self.secs, usable, checks


def _decide_text_kind(sample_matches: float, state: _TimeState) -> None:
    if state.kind is None:
        state.kind = "numbers" if sample_matches > 0.5 else "text"


def _series_times(raw: pd.Series, state: _TimeState) -> tuple[np.ndarray, np.ndarray, list[_Check]]:
    """Parse a pandas time column to UTC epoch seconds (see :func:`validate_frame`)."""
    n = len(raw)
    parts = _TimeParts(n, raw.isna().to_numpy(dtype=bool))

    def from_datetimes(dt: pd.Series) -> None:
        if getattr(dt.dt, "tz", None) is not None:
            dt = dt.dt.tz_convert("UTC").dt.tz_localize(None)   # naive values are UTC
        arr = dt.to_numpy()
        parts.from_datetimes(arr.view("i8"), np.isnat(arr), _DT_TICKS[np.datetime_data(arr.dtype)[0]])

    if pd.api.types.is_bool_dtype(raw.dtype):
        parts.unparseable[~parts.missing] = True
    elif pd.api.types.is_datetime64_any_dtype(raw.dtype):
        from_datetimes(raw)
    elif pd.api.types.is_numeric_dtype(raw.dtype):
        if raw.dtype.kind in "iu" and not parts.missing.any():
            parts.from_numbers(raw.to_numpy(dtype=np.int64), state)   # exact, even for ns
        else:
            parts.from_numbers(raw.to_numpy(dtype=np.float64, na_value=np.nan), state)
    else:
        text = raw if isinstance(raw.dtype, pd.StringDtype) else raw.astype("str")
        blank = ~parts.missing & text.str.strip().eq("").fillna(False).to_numpy(dtype=bool)
        parts.missing |= blank
        if state.kind is None:
            sample = text[~parts.missing].head(100)
            if len(sample):
                _decide_text_kind(float(sample.str.match(_NUMERIC_TEXT).mean()), state)
        if state.kind == "numbers":                               # epoch numbers stored as text
            num = pd.to_numeric(text.where(~parts.missing), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan)
            parts.unparseable |= ~parts.missing & np.isnan(num)
            parts.from_numbers(num, state)
        else:
            parsed = pd.to_datetime(text.where(~parts.missing), format="ISO8601", utc=True,
                                    errors="coerce")
            from_datetimes(parsed)
    return parts.checks(raw, state)


def _arrow_times(arr: pa.Array, state: _TimeState
                 ) -> tuple[np.ndarray, np.ndarray, list[_Check]] | None:
    """Parse an Arrow time column in C++; ``None`` when only pandas can say what is wrong."""
    typ = arr.type
    if pa.types.is_dictionary(typ):
        arr, typ = arr.dictionary_decode(), typ.value_type
    n = len(arr)
    missing = arr.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_date(typ):
        arr, typ = arr.cast(pa.timestamp("s")), pa.timestamp("s")
    if pa.types.is_timestamp(typ):
        parts = _TimeParts(n, missing)
        i8 = pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        parts.from_datetimes(i8, missing, _DT_TICKS[typ.unit])
        return parts.checks(arr, state)
    if pa.types.is_integer(typ) or pa.types.is_floating(typ):
        parts = _TimeParts(n, missing)
        if pa.types.is_integer(typ):
            parts.from_numbers(pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False),
                               state)
        else:
            num = pc.fill_null(arr.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
            parts.missing |= np.isnan(num)
            parts.from_numbers(num, state)
        return parts.checks(arr, state)
    if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        return None
    valid = arr.drop_null()
    if len(valid) and pc.any(pc.equal(pc.utf8_trim_whitespace(valid), "")).as_py():
        return None                        # blank cells: pandas' rules decide
    if state.kind is None and len(valid):
        sample = valid.slice(0, 100)
        matches = pc.match_substring_regex(sample, _NUMERIC_TEXT.pattern)
        _decide_text_kind(pc.mean(matches.cast(pa.float64())).as_py(), state)
    parts = _TimeParts(n, missing)
    if state.kind == "numbers":
        try:
            parts.from_numbers(pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False),
                               state)
            return parts.checks(arr, state)
        except pa.ArrowInvalid:
            pass
        try:
            num = pc.fill_null(arr.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            return None
        parts.unparseable |= ~missing & np.isnan(num)
        parts.from_numbers(num, state)
        return parts.checks(arr, state)
    for zoned in (state.zoned, not state.zoned):
        try:
            i8 = pc.fill_null(arr.cast(pa.timestamp("ns", tz="UTC" if zoned else None))
                              .cast(pa.int64()), 0)
        except pa.ArrowInvalid:
            continue
        state.zoned = zoned
        parts.from_datetimes(i8.to_numpy(zero_copy_only=False), missing, _DT_TICKS["ns"])
        return parts.checks(arr, state)
    return None                            # mixed offsets, odd forms, garbage: pandas decides


def _to_series(col: Column) -> pd.Series:
    if isinstance(col, pd.Series):
        return col
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    return pd.Series(col.to_pandas(), copy=False)


def _timestamp_checks(col: Column, state: _TimeState
                      ) -> tuple[np.ndarray, np.ndarray, list[_Check]]:
    """Parse a time column to UTC epoch seconds.

    Returns the seconds (0 where unusable), the mask of usable rows, and the checks
    (missing, unparseable, negative epoch, epoch unit unlike the column's, fractional
    second) in reporting order.
    """
    if not isinstance(col, pd.Series):
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        got = _arrow_times(col, state)
        if got is not None:
            return got
    series = _to_series(col)
    return _series_times(series, state)


def _series_numbers(raw: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (float64 values, missing mask, non-numeric mask) for a value column."""
    missing = raw.isna().to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        return raw.to_numpy(dtype=np.float64, na_value=np.nan), missing, np.zeros_like(missing)
    num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_bool_dtype(raw.dtype):
        num = np.full(len(raw), np.nan)
    return num, missing, ~missing & np.isnan(num)


def _numbers(col: Column) -> tuple[np.ndarray, np.ndarray, np.ndarray, Column]:
    """Return (float64 values, missing mask, non-numeric mask, the column for messages).

    Arrow number and text columns convert in C++; a text block with a cell Arrow cannot
    read as a number (or reads as NaN) goes through pandas, whose rules decide.
    """
    if isinstance(col, pd.Series):
        return (*_series_numbers(col), col)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    typ = col.type
    if pa.types.is_dictionary(typ):
        col, typ = col.dictionary_decode(), typ.value_type
    if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ) \
            or pa.types.is_string(typ) or pa.types.is_large_string(typ):
        null = col.is_null().to_numpy(zero_copy_only=False)
        try:
            num = pc.fill_null(col.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            num = None
        if num is not None:
            nan = np.isnan(num)
            if pa.types.is_string(typ) or pa.types.is_large_string(typ):
                if (nan & ~null).any():
                    num = None             # "NAN" and the like: pandas decides
            if num is not None:
                return num, nan, np.zeros(len(col), dtype=bool), col
    series = _to_series(col)
    return (*_series_numbers(series), series)


def _value_checks(cols: Mapping[str, Column]) -> tuple[dict[str, np.ndarray], list[_Check]]:
    """Per-field numeric checks, then OHLC consistency, then volume, in reporting order."""
    values: dict[str, np.ndarray] = {}
    checks: list[_Check] = []
    n = len(cols["open"])
    valid_price = np.ones(n, dtype=bool)
    for name in PRICE_FIELDS:
        num, missing, nonnum, raw = _numbers(cols[name])
        values[name] = num
        inf = np.isinf(num)
        with np.errstate(invalid="ignore"):
            nonpos = ~np.isnan(num) & ~inf & (num <= 0)
            out_of_range = ~np.isnan(num) & ~inf & ~nonpos & ((num < PRICE_MIN) | (num > PRICE_MAX))
        checks += [
            _Check(name, missing, lambda i: "missing or NaN price"),
            _Check(name, nonnum, lambda i, r=raw: f"not a number: {_raw(r, i)}"),
            _Check(name, inf, lambda i, v=num: f"non-finite price {_num(v[i])}"),
            _Check(name, nonpos, lambda i, v=num: f"non-positive price {_num(v[i])}"),
            _Check(name, out_of_range,
                   lambda i, v=num: f"price {_num(v[i])} is outside the supported range "
                                    f"[{PRICE_MIN:g}, {PRICE_MAX:g}] quote units"),
        ]
        valid_price &= ~(missing | nonnum | inf | nonpos | out_of_range)

    o, h, lo, c = (values[f] for f in PRICE_FIELDS)
    with np.errstate(invalid="ignore"):
        top = np.maximum(o, c)
        bottom = np.minimum(o, c)
        high_lt_low = valid_price & (h < lo)
        high_lt_top = valid_price & (h < top)
        low_gt_bottom = valid_price & (lo > bottom)
    checks += [
        _Check("high", high_lt_low, lambda i: f"high {_num(h[i])} is below low {_num(lo[i])}"),
        _Check("high", high_lt_top,
               lambda i: f"high {_num(h[i])} is below max(open, close) {_num(top[i])}"),
        _Check("low", low_gt_bottom,
               lambda i: f"low {_num(lo[i])} is above min(open, close) {_num(bottom[i])}"),
    ]

    vol, missing, nonnum, raw = _numbers(cols["volume"])
    values["volume"] = vol
    inf = np.isinf(vol)
    with np.errstate(invalid="ignore"):
        negative = vol < 0
    checks += [
        _Check("volume", missing, lambda i: "missing or NaN volume"),
        _Check("volume", nonnum, lambda i: f"not a number: {_raw(raw, i)}"),
        _Check("volume", inf, lambda i: f"non-finite volume {_num(vol[i])}"),
        _Check("volume", negative, lambda i: f"negative volume {_num(vol[i])}"),
    ]
    return values, checks


def _first_failure(checks: list[_Check], i: int) -> _Check:
    return next(chk for chk in checks if chk.mask[i])


# ---------------------------------------------------------------------------------------
# block-by-block validation


class _Growing:
    """A 1-D array that grows by appending; ``final()`` hands over an owned, exact array.

    Capacity beyond what is written is never touched, so an over-estimate costs
    address space, not resident memory.
    """

    def __init__(self, dtype: type, capacity: int) -> None:
        self._a = np.empty(max(int(capacity), 16), dtype=dtype)
        self._n = 0

    def extend(self, values: np.ndarray) -> None:
        need = self._n + values.shape[0]
        if need > self._a.shape[0]:
            bigger = np.empty(max(need, int(self._a.shape[0] * 1.5)), dtype=self._a.dtype)
            bigger[:self._n] = self._a[:self._n]
            self._a = bigger
        self._a[self._n:need] = values
        self._n = need

    def final(self) -> np.ndarray:
        a, self._a = self._a, np.empty(0, dtype=self._a.dtype)
        if a.shape[0] != self._n:
            a.resize(self._n, refcheck=False)   # shrinks in place: no second copy
        return a


class BlockValidator:
    """Validate one symbol's rows block by block, in file order, keeping the clean rows.

    Each block gets the checks of :func:`validate_frame`; ordering is checked across
    block boundaries (the last usable timestamp and its row are carried), skipped
    rows are counted over the whole stream, and the clean rows are appended to
    growing numpy columns, so memory is the clean columns plus one block. A time
    column's form (epoch numbers or ISO text) and epoch unit are decided on the first
    block that has values and kept for the rest.

    Parameters
    ----------
    source : str
        File name used in messages and in the report.
    symbol : str, optional
        Symbol recorded in the report.
    skip_bad_rows : bool, default False
        See :func:`validate_frame`.
    capacity : int, default 0
        Expected clean rows (a hint: the columns grow past it).
    """

    def __init__(self, source: str, symbol: str = "", skip_bad_rows: bool = False,
                 capacity: int = 0) -> None:
        self.source = str(source)
        self.symbol = symbol
        self.skip_bad_rows = skip_bad_rows
        self._time = _TimeState()
        self._prev: tuple[int, int] | None = None        # (seconds, row) of last usable time
        self._skipped = 0
        self._details: list[str] = []
        self._cols = {"ts": _Growing(np.int64, capacity),
                      **{k: _Growing(np.float64, capacity) for k in VALUE_FIELDS}}

    def feed(self, columns: Mapping[str, Column], rows: np.ndarray) -> None:
        """Check one block and keep its clean rows.

        Parameters
        ----------
        columns : mapping of str to pandas.Series or pyarrow.Array
            ``timestamp``, ``open``, ``high``, ``low``, ``close``, ``volume`` of the
            block, all of length ``len(rows)``, as read (text or typed).
        rows : numpy.ndarray of int64, shape (n,)
            The block's 1-based data row numbers in the file (used in messages).

        Raises
        ------
        DataError
            For unsorted or duplicate timestamps (always, also against the previous
            block), and, unless ``skip_bad_rows``, for the block's bad row with the
            lowest row number.
        """
        n = int(rows.shape[0])
        if n == 0:
            return
        secs, ts_usable, ts_checks = _timestamp_checks(columns["timestamp"], self._time)
        values, value_checks = _value_checks(columns)

        # Ordering: strictly increasing over every row with a usable timestamp.
        pos = np.flatnonzero(ts_usable)
        order_error: tuple[int, DataError] | None = None
        if pos.shape[0]:
            s = secs[pos]
            head = [] if self._prev is None else [self._prev[0]]
            step = np.diff(np.concatenate((head, s)).astype(np.int64, copy=False))
            offenders = np.flatnonzero(step <= 0)
            if offenders.shape[0]:
                k = int(offenders[0]) + (0 if head else 1)   # index into pos of the offender
                here = int(pos[k])
                if k > 0:
                    prev_secs, prev_row = int(secs[pos[k - 1]]), int(rows[pos[k - 1]])
                else:
                    prev_secs, prev_row = self._prev
                if secs[here] == prev_secs:
                    what = (f"duplicate timestamp {iso(secs[here])} (same as row {prev_row}); "
                            "timestamps must be unique")
                else:
                    what = (f"timestamp {iso(secs[here])} is earlier than row {prev_row}'s "
                            f"{iso(prev_secs)}; rows must be in ascending time order")
                order_error = (here, DataError(self.source, what, row=int(rows[here]),
                                               field="timestamp"))
            self._prev = (int(s[-1]), int(rows[pos[-1]]))

        checks = ts_checks + value_checks
        bad = np.zeros(n, dtype=bool)
        for chk in checks:
            bad |= chk.mask
        bad_pos = np.flatnonzero(bad)

        if not self.skip_bad_rows:
            first_bad = int(bad_pos[0]) if bad_pos.shape[0] else None
            # An ordering offender always has a usable timestamp, so on the same row the
            # ordering problem comes first (timestamp checks, ordering, then values).
            if order_error is not None and (first_bad is None or order_error[0] <= first_bad):
                raise order_error[1]
            if first_bad is not None:
                chk = _first_failure(checks, first_bad)
                raise DataError(self.source, chk.describe(first_bad),
                                row=int(rows[first_bad]), field=chk.field)
        elif order_error is not None:
            raise order_error[1]

        room = MAX_SKIPPED_DETAILS - len(self._details)
        for i in bad_pos[:max(room, 0)]:
            chk = _first_failure(checks, int(i))
            self._details.append(f"row {rows[i]} field '{chk.field}': {chk.describe(int(i))}")
        self._skipped += int(bad_pos.shape[0])

        if bad_pos.shape[0]:
            keep = ~bad
            self._cols["ts"].extend(secs[keep])
            for k, v in values.items():
                self._cols[k].extend(v[keep])
        else:
            self._cols["ts"].extend(secs)
            for k, v in values.items():
                self._cols[k].extend(v)

    def finish(self, timeframe_seconds: int | None = None
               ) -> tuple[dict[str, np.ndarray], DataQuality]:
        """Return the clean columns and the quality report; the validator is spent.

        Parameters
        ----------
        timeframe_seconds : int, optional
            Bar length for the gap count; ``None`` infers it (median spacing).

        Returns
        -------
        columns : dict of str to numpy.ndarray
            ``ts`` (int64 UTC epoch seconds) and ``open``, ``high``, ``low``,
            ``close``, ``volume`` (float64): owned, C-contiguous, shape (rows,).
        quality : DataQuality
        """
        cols = {k: g.final() for k, g in self._cols.items()}
        ts = cols["ts"]
        tf = int(timeframe_seconds) if timeframe_seconds is not None else infer_timeframe_seconds(ts)
        gaps = missing_bars = largest_gap = 0
        if tf is not None and ts.shape[0] >= 2:
            diffs = np.diff(ts)
            holes = diffs[diffs > tf]
            gaps = int(holes.shape[0])
            if gaps:
                missing_bars = int(((holes + tf - 1) // tf - 1).sum())
                largest_gap = int(holes.max())
        quality = DataQuality(
            symbol=self.symbol, source=self.source, rows=int(ts.shape[0]),
            first_ts=int(ts[0]) if ts.shape[0] else None,
            last_ts=int(ts[-1]) if ts.shape[0] else None,
            gaps=gaps, missing_bars=missing_bars, largest_gap_seconds=largest_gap,
            zero_volume_bars=int(np.count_nonzero(cols["volume"] == 0)),
            rows_skipped=self._skipped, skipped_details=list(self._details),
            status="degraded" if self._skipped else "ok", timeframe_seconds=tf,
        )
        return cols, quality


def validate_frame(df: pd.DataFrame, source: str, timeframe_seconds: int | None = None,
                   skip_bad_rows: bool = False, *,
                   symbol: str = "") -> tuple[pd.DataFrame, DataQuality]:
    """Check a raw OHLCV frame and return its clean form and a quality report.

    Checks, in the order a row's problems are reported:

    1. the timestamp is present and parses (ISO 8601 text with or without ``Z`` or an
       offset, naive text read as UTC, datetimes, or epoch numbers whose unit is
       detected from the median magnitude: below 1e11 seconds, below 1e14
       milliseconds, below 1e17 microseconds, else nanoseconds) to a whole second;
       an epoch number must not be negative, and must have the column's unit: a
       value whose own magnitude says another unit (``1700000000000`` in a column
       of seconds) is a bad row, named as such;
    2. timestamps are strictly increasing: a row earlier than, or equal to, the
       previous row with a usable timestamp is an error naming that row. This is
       checked on every row whose timestamp parses, before any bad row is dropped,
       and is **never** skipped: a file out of order is an error;
    3. open, high, low, close are numbers, not NaN, finite, > 0 and within
       [:data:`PRICE_MIN`, :data:`PRICE_MAX`] (1e-12 to 1e12 quote units);
    4. OHLC consistency: ``high >= low``, ``high >= max(open, close)``,
       ``low <= min(open, close)``;
    5. volume is a number, not NaN, finite and >= 0.

    Parameters
    ----------
    df : pandas.DataFrame
        Columns ``timestamp`` (aliases ``datetime``/``date``/``time``), ``open``,
        ``high``, ``low``, ``close``, ``volume``, matched case-insensitively; other
        columns are ignored. If the index is named ``"row"`` (as
        :func:`~tradewarden.data.read_ohlcv_file` sets it) its values are the row
        numbers used in messages; otherwise rows are numbered 1, 2, ... by position.
    source : str
        File name used in messages and in the report.
    timeframe_seconds : int, optional
        Bar length in seconds, used to find gaps. ``None`` infers it as the median
        spacing of the clean timestamps (see :func:`infer_timeframe_seconds`).
    skip_bad_rows : bool, default False
        ``False``: raise for the first bad row. ``True``: drop bad rows (checks 1, 3,
        4, 5), count them in ``rows_skipped``, keep the first
        :data:`MAX_SKIPPED_DETAILS` descriptions and mark the report ``"degraded"``.
    symbol : str, optional
        Symbol recorded in the report.

    Returns
    -------
    clean : pandas.DataFrame
        Columns ``ts`` (int64 UTC epoch seconds, bar open time), ``open``, ``high``,
        ``low``, ``close``, ``volume`` (float64), default ``RangeIndex``.
    quality : DataQuality
        Measured on the clean rows.

    Raises
    ------
    DataError
        For missing columns; for unsorted or duplicate timestamps (always); and, unless
        ``skip_bad_rows``, for the bad row with the lowest row number, naming the file,
        the row, the field and what is wrong, e.g.
        ``data/btc.csv row 17 field 'close': missing or NaN price``.
    ValueError
        If ``timeframe_seconds`` is given and not a positive integer.
    """
    if timeframe_seconds is not None and (int(timeframe_seconds) != timeframe_seconds
                                          or timeframe_seconds <= 0):
        raise ValueError(f"timeframe_seconds must be a positive integer, got {timeframe_seconds!r}")
    source = str(source)
    labels = resolve_columns(df, source)
    columns = {name: df[label] for name, label in labels.items() if name != "symbol"}
    n = len(df)
    if df.index.name == "row":
        row_numbers = df.index.to_numpy(dtype=np.int64)
    else:
        row_numbers = np.arange(1, n + 1, dtype=np.int64)
    validator = BlockValidator(source, symbol, skip_bad_rows, capacity=n)
    validator.feed(columns, row_numbers)
    cols, quality = validator.finish(timeframe_seconds)
    # copy=False: one block per column, no consolidation copy of a million-row frame.
    clean = pd.DataFrame(cols, copy=False)
    return clean, quality
