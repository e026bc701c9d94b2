"""NYSE trading sessions, used to check daily US equity, ETF and index data.

The calendar is ``XNYS`` from :mod:`exchange_calendars`: regular weekday sessions
minus NYSE holidays and the unscheduled closures it records (2001-09-11 to 09-14,
2004-06-11 for President Reagan's funeral, 2012-10-29/30 for Hurricane Sandy, ...).
Early closes (half days such as 2008-12-24) are sessions.

Conventions
-----------
A *session* is named by its date in America/New_York. Daily bars in this package carry
that date as a label at ``00:00:00Z`` (``ts = days since 1970-01-01 * 86400``), which
does **not** mean the bar opened at midnight UTC. Every function here works on such
date labels: a holiday is not a gap, and a row dated on a weekend or holiday is a
*row on a non-session day*, reported rather than dropped.

Dates before 1990 follow :mod:`exchange_calendars`' rules projected backwards and
were not checked against NYSE records here.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["NYSE", "SessionGaps", "as_date", "as_session_dates", "follows_nyse", "is_session",
           "session_gaps", "sessions"]

#: ISO 10383 MIC of the New York Stock Exchange, the calendar's name in exchange_calendars.
NYSE = "XNYS"

_SECONDS_PER_DAY = 86_400
# The calendar is built once over a wide span and widened only when asked for dates
# outside it (building XNYS over 1990-2035 takes about 0.1 s).
_DEFAULT_FIRST = date(1990, 1, 1)
_DEFAULT_LAST = date(2035, 12, 31)
_lock = threading.Lock()
_cached: tuple[date, date, Any] | None = None


def _calendar(first: date, last: date):
    """Return an XNYS calendar whose bounds include ``[first, last]``."""
    global _cached
    with _lock:
        if _cached is not None and _cached[0] <= first and last <= _cached[1]:
            return _cached[2]
        lo = min(first, _DEFAULT_FIRST if _cached is None else _cached[0])
        hi = max(last, _DEFAULT_LAST if _cached is None else _cached[1])
        with warnings.catch_warnings():
            # exchange_calendars 4.13 reads tz-aware Series.values, which pandas 3 deprecates;
            # the values it gets are still correct (UTC), so keep that notice out of users' logs.
            warnings.filterwarnings("ignore", message=r"Series\.values returning an ndarray")
            import exchange_calendars as xcals   # ~0.1 s: only when a calendar is needed
            cal = xcals.get_calendar(NYSE, start=pd.Timestamp(lo), end=pd.Timestamp(hi))
        _cached = (lo, hi, cal)
        return cal


def as_date(value: object, name: str = "date") -> date:
    """Parse one date.

    Parameters
    ----------
    value : date, datetime, str, numpy.datetime64 or pandas.Timestamp
        A ``datetime`` counts by its UTC date (naive values are taken as UTC); text is
        ISO 8601 (``"2014-06-09"``).
    name : str, default "date"
        What the value is, for the error message (``"start"``, ``"end"``).

    Returns
    -------
    datetime.date

    Raises
    ------
    ValueError
        If the value cannot be read as a date; the message quotes it.
    """
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (bool, int, float, np.number)):   # not epoch numbers: ambiguous units
        raise ValueError(  # noqa: TRY004 - a bad value for a date parameter
            f"invalid {name} {value!r}: expected a date such as '2014-06-09'")
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        stamp = pd.NaT
    if stamp is pd.NaT or pd.isna(stamp):
        raise ValueError(f"invalid {name} {value!r}: expected a date such as '2014-06-09'")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC")
    return stamp.date()


def as_session_dates(values: Iterable[object] | np.ndarray | pd.Index) -> pd.DatetimeIndex:
    """Convert date labels to a tz-naive, midnight :class:`pandas.DatetimeIndex`.

    Parameters
    ----------
    values : array-like
        Integers are **UTC epoch seconds** (as in :attr:`BarSeries.ts`); anything else is
        given to :func:`pandas.to_datetime` (ISO text, ``date``, ``datetime``,
        ``datetime64``). Timezone-aware values are converted to UTC first.

    Returns
    -------
    pandas.DatetimeIndex
        Same length and order as ``values``; dates at 00:00, no timezone.

    Raises
    ------
    ValueError
        If a value cannot be parsed, is missing, or has a time of day other than 00:00
        UTC (a daily date label has none).
    """
    if isinstance(values, (pd.Index, pd.Series, np.ndarray)):
        arr = values
    else:
        arr = list(values)
    if (isinstance(arr, (np.ndarray, pd.Index, pd.Series)) and arr.dtype.kind in "iu") or (
            isinstance(arr, list) and arr and all(isinstance(v, (int, np.integer))
                                                  and not isinstance(v, bool) for v in arr)):
        secs = np.asarray(arr, dtype=np.int64)
        if np.any(secs % _SECONDS_PER_DAY):
            bad = int(secs[np.flatnonzero(secs % _SECONDS_PER_DAY)[0]])
            raise ValueError(f"epoch second {bad} is not 00:00:00 UTC: not a daily date label")
        return pd.DatetimeIndex(secs.astype("datetime64[s]").astype("datetime64[ns]"))
    try:
        parsed = pd.to_datetime(arr, utc=True, format="mixed")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot read dates: {exc}") from None
    index = pd.DatetimeIndex(parsed)
    if index.hasnans:
        raise ValueError(f"missing date at position {int(np.flatnonzero(index.isna())[0])}")
    index = index.tz_convert("UTC").tz_localize(None)
    off = index != index.normalize()
    if off.any():
        raise ValueError(f"{index[off][0].isoformat()}Z is not 00:00:00 UTC: "
                         "not a daily date label")
    return index.astype("datetime64[ns]")


def sessions(start: object, end: object) -> pd.DatetimeIndex:
    """Return the NYSE sessions from ``start`` to ``end``, both inclusive.

    Parameters
    ----------
    start, end : date, datetime, str or pandas.Timestamp
        First and last date (a ``datetime`` counts by its UTC date).

    Returns
    -------
    pandas.DatetimeIndex
        Session dates at 00:00, no timezone, ascending, named ``"session"``. Empty when
        the range holds no session (e.g. a weekend).

    Raises
    ------
    ValueError
        If a bound cannot be parsed or ``start`` is after ``end``.

    Examples
    --------
    >>> len(sessions("2008-12-22", "2008-12-31"))   # 12-25 is a holiday
    7
    """
    first, last = as_date(start, "start"), as_date(end, "end")
    if first > last:
        raise ValueError(f"start {first.isoformat()} is after end {last.isoformat()}")
    cal = _calendar(first, last)
    index = cal.sessions
    lo = index.searchsorted(pd.Timestamp(first), side="left")
    hi = index.searchsorted(pd.Timestamp(last), side="right")
    out = pd.DatetimeIndex(index[lo:hi]).astype("datetime64[ns]")
    out.name = "session"
    return out


def is_session(day: object) -> bool:
    """Return ``True`` when ``day`` is an NYSE session (a trading day, half days included).

    Raises
    ------
    ValueError
        If ``day`` cannot be parsed as a date.
    """
    return len(sessions(day, day)) == 1


@dataclass(frozen=True)
class SessionGaps:
    """Daily date labels compared with the NYSE session calendar.

    Parameters
    ----------
    calendar : str
        Calendar name (``"XNYS"``).
    first, last : datetime.date or None
        The range checked, both inclusive (``None`` when there were no dates and no
        bounds).
    rows : int
        Distinct dates given inside ``[first, last]`` (a repeated date counts once).
    sessions : int
        NYSE sessions in ``[first, last]``.
    missing_sessions : tuple of datetime.date
        Sessions in the range with no row. Holidays are never missing.
    non_session_days : tuple of datetime.date
        Dates given that are not sessions (weekends, holidays, closures).
    gaps : int
        Runs of consecutive missing sessions (adjacent in the calendar): three missing
        sessions in a row are one gap.
    longest_gap_sessions : int
        Length of the longest run, in sessions (0 when none is missing).
    largest_gap_days : int
        Calendar days between the session before and the session after the longest
        run (the bound itself when the run touches the edge of the range); 0 when none
        is missing. One missing Wednesday between a Tuesday and Thursday row is 2.
    """

    calendar: str
    first: date | None
    last: date | None
    rows: int
    sessions: int
    missing_sessions: tuple[date, ...]
    non_session_days: tuple[date, ...]
    gaps: int
    longest_gap_sessions: int
    largest_gap_days: int

    @property
    def complete(self) -> bool:
        """``True`` when no session is missing and no date falls on a non-session day."""
        return not self.missing_sessions and not self.non_session_days

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (dates as ISO ``YYYY-MM-DD`` text)."""
        out = asdict(self)
        for key in ("first", "last"):
            out[key] = None if out[key] is None else out[key].isoformat()
        for key in ("missing_sessions", "non_session_days"):
            out[key] = [d.isoformat() for d in out[key]]
        return out


def _dates_tuple(index: pd.DatetimeIndex) -> tuple[date, ...]:
    return tuple(ts.date() for ts in index)


def session_gaps(dates: Iterable[object] | np.ndarray | pd.Index, start: object | None = None,
                 end: object | None = None) -> SessionGaps:
    """Find missing NYSE sessions and dates that fall on non-session days.

    Parameters
    ----------
    dates : array-like
        Daily date labels, in any order; see :func:`as_session_dates` for the accepted
        forms (integers are UTC epoch seconds, e.g. :attr:`BarSeries.ts`).
    start, end : date, datetime or str, optional
        Range to check, both inclusive. Default: the earliest and latest date given, so
        sessions before the first or after the last row are not counted as missing.

    Returns
    -------
    SessionGaps

    Raises
    ------
    ValueError
        If a date cannot be parsed or is not a midnight-UTC label, or ``start`` is after
        ``end``.

    Examples
    --------
    Christmas 2008 is a holiday, not a gap:

    >>> g = session_gaps(["2008-12-24", "2008-12-26"])
    >>> g.missing_sessions, g.non_session_days
    ((), ())
    """
    given = as_session_dates(dates).unique().sort_values()
    first = as_date(start, "start") if start is not None else (
        given[0].date() if len(given) else None)
    last = as_date(end, "end") if end is not None else (
        given[-1].date() if len(given) else None)
    if first is None or last is None:
        return SessionGaps(NYSE, first, last, 0, 0, (), (), 0, 0, 0)
    if first > last:
        raise ValueError(f"start {first.isoformat()} is after end {last.isoformat()}")
    expected = sessions(first, last)
    in_range = given[(given >= pd.Timestamp(first)) & (given <= pd.Timestamp(last))]
    present = expected.isin(in_range)
    missing_pos = np.flatnonzero(~present)
    non_session = given[~given.isin(expected) & (given >= pd.Timestamp(first))
                        & (given <= pd.Timestamp(last))]
    gaps = longest = largest_days = 0
    if missing_pos.shape[0]:
        breaks = np.flatnonzero(np.diff(missing_pos) > 1)
        starts = np.concatenate([[missing_pos[0]], missing_pos[breaks + 1]])
        stops = np.concatenate([missing_pos[breaks], [missing_pos[-1]]])
        lengths = stops - starts + 1
        gaps = int(lengths.shape[0])
        longest = int(lengths.max())
        k = int(np.argmax(lengths))
        before = (expected[starts[k] - 1] if starts[k] > 0 else pd.Timestamp(first))
        after = (expected[stops[k] + 1] if stops[k] + 1 < len(expected) else pd.Timestamp(last))
        largest_days = int((after - before).days)
    return SessionGaps(
        calendar=NYSE, first=first, last=last, rows=len(in_range), sessions=len(expected),
        missing_sessions=_dates_tuple(expected[missing_pos]),
        non_session_days=_dates_tuple(non_session), gaps=gaps, longest_gap_sessions=longest,
        largest_gap_days=largest_days,
    )


def follows_nyse(ts: np.ndarray) -> SessionGaps | None:
    """Tell whether daily bars follow the NYSE calendar, and if so measure them against it.

    A series of date labels (00:00 UTC) with at least two rows and none on a weekend or
    on an NYSE holiday or closure is taken to be a US stock, ETF or index series: its
    gaps are runs of missing sessions (holidays are not gaps). Crypto, which trades
    every day, has weekend rows and is not.

    Parameters
    ----------
    ts : numpy.ndarray of int64, shape (n,)
        Bar open times, UTC epoch seconds.

    Returns
    -------
    SessionGaps or None
        :func:`session_gaps` of the series when it follows the NYSE calendar, else
        ``None``.
    """
    ts = np.asarray(ts, dtype=np.int64)
    if ts.shape[0] < 2 or np.any(ts % _SECONDS_PER_DAY):
        return None
    weekday = (ts // _SECONDS_PER_DAY + 3) % 7          # 1970-01-01 was a Thursday; Monday = 0
    if np.any(weekday >= 5):
        return None
    try:
        gaps = session_gaps(ts)
    except ValueError:
        return None
    return None if gaps.non_session_days else gaps
