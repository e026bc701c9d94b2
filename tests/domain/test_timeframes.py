"""Bar-length labels: the parse table, canonical labels, and the data layer's re-export."""

from __future__ import annotations

import importlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tradewarden.data
from tradewarden.domain import timeframe_label, timeframe_seconds


@pytest.mark.parametrize("label, seconds", [
    ("1s", 1), ("30s", 30), ("1m", 60), ("5m", 300), ("15m", 900), ("90min", 5400),
    ("1h", 3600), ("2h", 7200), (" 2h ", 7200), ("4h", 14_400), ("1d", 86_400), ("7d", 604_800),
    ("1 h", 3600), ("60m", 3600), ("3600s", 3600),
])
def test_timeframe_seconds_parses_labels(label, seconds) -> None:
    assert timeframe_seconds(label) == seconds


@pytest.mark.parametrize("label", ["", " ", "h", "0h", "0m", "1H", "1M", "1D", "1w", "1y",
                                   "-1h", "+1h", "1.5h", "4 hours", "h1", "1hh", None, 3600, b"1h"])
def test_timeframe_seconds_rejects_bad_labels(label) -> None:
    with pytest.raises(ValueError, match=r"invalid timeframe .*: expected a positive number "
                                         r"followed by s, m, h or d"):
        timeframe_seconds(label)


@pytest.mark.parametrize("seconds, label", [
    (1, "1s"), (90, "90s"), (60, "1m"), (900, "15m"), (5400, "90m"), (3600, "1h"),
    (14_400, "4h"), (86_400, "1d"), (90_000, "25h"), (172_800, "2d"), (3600.0, "1h"),
])
def test_timeframe_label_is_canonical(seconds, label) -> None:
    assert timeframe_label(seconds) == label


@pytest.mark.parametrize("seconds", [0, -60, 1.5, 3600.5])
def test_timeframe_label_rejects_non_positive_or_fractional(seconds) -> None:
    with pytest.raises(ValueError, match="bar length must be a positive whole number of seconds"):
        timeframe_label(seconds)


@given(st.integers(min_value=1, max_value=10**8))
def test_label_and_seconds_round_trip(seconds) -> None:
    assert timeframe_seconds(timeframe_label(seconds)) == seconds


def test_data_layer_re_exports_the_same_functions() -> None:
    module = importlib.import_module("tradewarden.data.resample")   # the package's name is the function
    assert module.timeframe_seconds is timeframe_seconds
    assert module.timeframe_label is timeframe_label
    assert tradewarden.data.timeframe_seconds is timeframe_seconds
    assert tradewarden.data.timeframe_label is timeframe_label
