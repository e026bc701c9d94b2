"""Timeframe labels and OHLCV resampling to coarser, epoch-aligned bars.

:func:`timeframe_seconds` and :func:`timeframe_label` live in
:mod:`tradewarden.domain.timeframes`; they are re-exported here unchanged.
"""

from __future__ import annotations

import numpy as np

from tradewarden.domain.timeframes import timeframe_label, timeframe_seconds
from tradewarden.domain.values import BarSeries

__all__ = ["resample", "timeframe_label", "timeframe_seconds"]

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
