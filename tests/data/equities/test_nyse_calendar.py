"""NYSE (XNYS) sessions: holidays and closures are not gaps."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from tradewarden.data.calendars import (
    NYSE,
    as_date,
    as_session_dates,
    is_session,
    session_gaps,
    sessions,
)


def test_christmas_week_2008():
    week = sessions("2008-12-22", "2008-12-31")
    assert [d.day for d in week] == [22, 23, 24, 26, 29, 30, 31]   # 25th holiday, 27/28 weekend
    assert week.name == "session" and week.tz is None


@pytest.mark.parametrize("day, expected", [
    ("2008-12-25", False),       # Christmas
    ("2008-12-24", True),        # half day is still a session
    ("2004-06-11", False),       # closed: President Reagan's funeral
    ("2012-10-29", False),       # Hurricane Sandy
    ("2012-10-30", False),
    ("2001-09-11", False),
    ("2022-06-20", False),       # Juneteenth, first observed 2022
    ("2021-06-18", True),        # not yet a holiday in 2021
    ("2014-06-09", True),
    ("2014-06-08", False),       # Sunday
])
def test_is_session(day, expected):
    assert is_session(day) is expected


def test_session_counts_per_year():
    assert len(sessions("2004-01-01", "2004-12-31")) == 252
    assert len(sessions("2008-01-01", "2008-12-31")) == 253
    assert len(sessions("2012-01-01", "2015-12-31")) == 1006
    assert len(sessions("2014-06-07", "2014-06-08")) == 0          # a weekend


def test_sessions_accept_dates_datetimes_and_reject_bad_bounds():
    a = sessions(date(2008, 12, 22), datetime(2008, 12, 31, 23, 0, tzinfo=UTC))
    assert len(a) == 7
    with pytest.raises(ValueError, match="after"):
        sessions("2008-12-31", "2008-12-22")
    with pytest.raises(ValueError, match="not-a-date"):
        sessions("not-a-date", "2008-12-22")
    with pytest.raises(ValueError):
        as_date(20081222)


def test_holidays_are_not_gaps():
    gaps = session_gaps(["2008-12-23", "2008-12-24", "2008-12-26", "2008-12-29"])
    assert gaps.missing_sessions == () and gaps.non_session_days == ()
    assert gaps.complete and gaps.sessions == 4 and gaps.rows == 4 and gaps.calendar == NYSE


def test_missing_sessions_and_rows_on_non_session_days():
    gaps = session_gaps([date(2008, 12, 22), date(2008, 12, 25), date(2008, 12, 27),
                         date(2008, 12, 30), date(2008, 12, 31)])
    assert gaps.missing_sessions == (date(2008, 12, 23), date(2008, 12, 24), date(2008, 12, 26),
                                     date(2008, 12, 29))
    assert gaps.non_session_days == (date(2008, 12, 25), date(2008, 12, 27))
    # 23-24 and 26-29 are adjacent sessions (25, 27, 28 are not sessions): one run of 4.
    assert gaps.gaps == 1 and gaps.longest_gap_sessions == 4
    assert gaps.largest_gap_days == 8           # 2008-12-22 -> 2008-12-30
    assert not gaps.complete


def test_two_separate_gaps():
    gaps = session_gaps(["2014-06-02", "2014-06-04", "2014-06-05", "2014-06-09"])
    assert gaps.missing_sessions == (date(2014, 6, 3), date(2014, 6, 6))
    assert gaps.gaps == 2 and gaps.longest_gap_sessions == 1


def test_explicit_range_counts_edges():
    gaps = session_gaps(["2008-12-24"], start="2008-12-22", end="2008-12-26")
    assert gaps.missing_sessions == (date(2008, 12, 22), date(2008, 12, 23), date(2008, 12, 26))
    assert gaps.rows == 1 and gaps.sessions == 4
    empty = session_gaps([])
    assert empty.first is None and empty.sessions == 0


def test_epoch_seconds_and_timezone_aware_input():
    secs = np.array([1230076800, 1230249600], dtype=np.int64)    # 2008-12-24, 2008-12-26
    assert session_gaps(secs).complete
    aware = pd.DatetimeIndex(["2008-12-24", "2008-12-26"]).tz_localize("UTC")
    assert session_gaps(aware).first == date(2008, 12, 24)
    assert list(as_session_dates(secs)) == [pd.Timestamp("2008-12-24"), pd.Timestamp("2008-12-26")]


@pytest.mark.parametrize("values", [
    ["2008-12-24T14:30:00Z"],
    np.array([1230076800 + 3600]),
    ["garbage"],
])
def test_not_daily_date_labels_are_refused(values):
    with pytest.raises(ValueError):
        session_gaps(values)


def test_to_dict_is_plain_json():
    d = session_gaps(["2008-12-22", "2008-12-25"]).to_dict()
    assert d["non_session_days"] == ["2008-12-25"]
    assert d["missing_sessions"] == ["2008-12-23", "2008-12-24"]
    assert d["first"] == "2008-12-22"
