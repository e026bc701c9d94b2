"""Timeframe labels and OHLCV resampling to coarser, epoch-aligned bars."""

from __future__ import annotations

import re

import numpy as np

from tradewarden.domain.values import BarSeries

__all__ = ["resample", "timeframe_label", "timeframe_seconds"]

_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_LABEL = re.compile(r"^\s*(\d+)\s*(s|min|m|h|d)\s*$")


def timeframe_seconds(label: str) -> int:
    """Parse a bar-length label into seconds.

    Parameters
    ----------
    label : str
        A positive integer followed by a lower-case unit: ``s`` (seconds), ``m`` or
        ``min`` (minutes), ``h`` (hours), ``d`` (days), e.g. ``"1m"``, ``"15m"``,
        ``"1h"``, ``"4h"``, ``"1d"``. Upper-case units are refused (``"1M"`` could
        mean a month).

    Returns
    -------
    int
        Bar length in seconds.

    Raises
    ------
    ValueError
        If the label is not a string of that form or the number is zero.
    """
    match = _LABEL.match(label) if isinstance(label, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"invalid timeframe {label!r}: expected a positive number followed by "
                         "s, m, h or d, such as '15m', '1h', '4h' or '1d'")
    return int(match.group(1)) * _UNITS[match.group(2)]


def timeframe_label(seconds: int) -> str:
    """Return the canonical label for a bar length: the largest unit that divides it.

    Parameters
    ----------
    seconds : int
        Bar length in seconds, > 0.

    Returns
    -------
    str
        ``86400 -> "1d"``, ``14400 -> "4h"``, ``900 -> "15m"``, ``90 -> "90s"``.

    Raises
    ------
    ValueError
        If ``seconds`` is not a positive integer.
    """
    if int(seconds) != seconds or seconds <= 0:
        raise ValueError(f"bar length must be a positive whole number of seconds, got {seconds!r}")
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def resample(series: BarSeries, timeframe: str, drop_partial_last: bool = True) -> BarSeries:
    """Aggregate bars into a coarser timeframe with buckets aligned to the UTC epoch.

    A bucket holds the source bars whose open time ``t`` satisfies
    ``start <= t < start + length`` with ``start`` a multiple of the target length
    counted from 1970-01-01T00:00Z: 4h buckets open at 00, 04, 08, ... UTC and 1d
    buckets at 00:00 UTC. Per bucket: open = first open, high = max of highs,
    low = min of lows, close = last close, volume = sum of volumes; the bar's
    timestamp is the bucket's open time. Buckets with missing source bars (gaps,
    including a first bucket whose data starts late) aggregate the bars that exist;
    empty buckets produce no bar.

    Parameters
    ----------
    series : BarSeries
        Source bars; ``series.timeframe`` must be a valid label and every ``ts`` a
        multiple of it (bars aligned to their own grid), strictly increasing.
    timeframe : str
        Target label (see :func:`timeframe_seconds`); a whole multiple of the source.
    drop_partial_last : bool, default True
        Drop the last bucket when it is incomplete, i.e. when the bucket's end
        (``start + length``) is after the last source bar's end (``ts[-1] +
        source length``): e.g. 1h data ending with the 16:00 bar has no complete
        16:00-20:00 4h bucket. Only the last bucket is affected.

    Returns
    -------
    BarSeries
        New series (owned C-contiguous int64/float64 arrays) labelled ``timeframe``
        in canonical form, same symbol and source. Same length as the source when
        the timeframes are equal.

    Raises
    ------
    ValueError
        If either label is invalid, the target is finer than the source or not a
        whole multiple of it, the timestamps are not strictly increasing, or (when
        aggregating) a source bar is not aligned to the source timeframe.
    """
    src = timeframe_seconds(series.timeframe)
    dst = timeframe_seconds(timeframe)
    if dst < src:
        raise ValueError(f"cannot resample {series.symbol} from {series.timeframe} to finer "
                         f"timeframe {timeframe}")
    if dst % src:
        raise ValueError(f"cannot resample {series.symbol} from {series.timeframe} to "
                         f"{timeframe}: not a whole multiple of the source bar length")
    ts = np.asarray(series.ts, dtype=np.int64)
    cols = {name: np.asarray(getattr(series, name), dtype=np.float64)
            for name in ("open", "high", "low", "close", "volume")}
    n = ts.shape[0]
    if n > 1 and not np.all(ts[1:] > ts[:-1]):
        raise ValueError(f"{series.symbol}: timestamps must be strictly increasing to resample")
    label = timeframe_label(dst)

    if dst == src or n == 0:
        return BarSeries(series.symbol, label, ts.copy(), *(cols[k].copy() for k in cols),
                         source=series.source)

    misaligned = np.flatnonzero(ts % src)
    if misaligned.shape[0]:
        raise ValueError(f"{series.symbol}: bar at epoch {int(ts[misaligned[0]])} is not aligned "
                         f"to the {series.timeframe} grid, so it would straddle {label} buckets")

    bucket = ts - ts % dst                        # floor to the epoch-aligned bucket start
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    ends = np.concatenate((starts[1:], [n])) - 1  # index of each bucket's last bar

    out_ts = bucket[starts]
    out_open = cols["open"][starts]
    out_high = np.maximum.reduceat(cols["high"], starts)
    out_low = np.minimum.reduceat(cols["low"], starts)
    out_close = cols["close"][ends]
    out_volume = np.add.reduceat(cols["volume"], starts)

    keep = out_ts.shape[0]
    if drop_partial_last and out_ts[-1] + dst > ts[-1] + src:
        keep -= 1

    def owned(a: np.ndarray, dtype: type) -> np.ndarray:
        return np.array(a[:keep], dtype=dtype, copy=True, order="C")

    return BarSeries(series.symbol, label, owned(out_ts, np.int64), owned(out_open, np.float64),
                     owned(out_high, np.float64), owned(out_low, np.float64),
                     owned(out_close, np.float64), owned(out_volume, np.float64),
                     source=series.source)
