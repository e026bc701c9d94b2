"""Clocks (replay never sleeps; the wall clock waits in slices of at most 1 s, tested with a
fake time source) and bar close times on the real bundled bars."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from tradewarden.data import resample
from tradewarden.domain import Bar, BarSeries
from tradewarden.engine import Clock, ReplayClock, WallClock
from tradewarden.engine.clock import MAX_SLEEP_SLICE

T0 = 1_713_459_600.25          # 2024-04-18T17:00:00.25Z, the first bundled bar's open + 0.25 s


class FakeTime:
    """A time source that moves only when slept on.

    A sleep of ``s`` seconds moves it by ``max(s + drift, 0.1)``: ``drift`` < 0 ends sleeps
    early, > 0 late; time always moves forward. More than 1000 sleeps fail the test
    (a wait that never ends would otherwise hang the suite).
    """

    def __init__(self, start: float = T0, drift: float = 0.0) -> None:
        self.t = start
        self.drift = drift
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        assert len(self.sleeps) <= 1000, "wait_until did not finish"
        self.t += max(seconds + self.drift, 0.1)


@pytest.fixture
def no_real_time(monkeypatch):
    """Make any use of the real time.time / time.sleep fail the test."""
    def refuse(*_a):
        raise AssertionError("the real wall clock was used")
    monkeypatch.setattr(time, "time", refuse)
    monkeypatch.setattr(time, "sleep", refuse)


# ------------------------------------------------------------------------------ ReplayClock
def test_replay_clock_is_monotonic() -> None:
    clock = ReplayClock(100)
    assert clock.now() == 100
    clock.advance(100)
    clock.advance(3700)
    assert clock.now() == 3700
    with pytest.raises(ValueError, match="cannot go back from 3700 to 3699"):
        clock.advance(3699)
    assert clock.now() == 3700


def test_replay_wait_until_jumps_and_never_sleeps(no_real_time) -> None:
    clock = ReplayClock(1_000)
    clock.wait_until(1_000 + 365 * 86_400)        # a year ahead: returns at once
    assert clock.now() == 1_000 + 365 * 86_400
    clock.wait_until(5)                          # already past: no change, no error
    assert clock.now() == 1_000 + 365 * 86_400


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(ReplayClock(), Clock)
    assert isinstance(WallClock(), Clock)
    assert not isinstance(object(), Clock)


# -------------------------------------------------------------------------------- WallClock
def test_wall_clock_now_is_whole_seconds_of_the_time_source() -> None:
    fake = FakeTime(T0)
    assert WallClock(fake.time, fake.sleep).now() == int(T0) == 1_713_459_600


def test_wall_clock_defaults_to_the_real_clock() -> None:
    before = int(time.time())
    now = WallClock().now()
    assert before <= now <= int(time.time())
    WallClock().wait_until(before - 10)            # in the past: returns without sleeping


def test_wall_clock_waits_until_the_target_in_slices_of_one_second(no_real_time) -> None:
    fake = FakeTime(T0)
    clock = WallClock(fake.time, fake.sleep)
    target = int(T0) + 4                       # 3.75 s ahead
    clock.wait_until(target)
    assert fake.t >= target and clock.now() == target
    assert fake.sleeps == [1.0, 1.0, 1.0, 0.75]
    assert max(fake.sleeps) <= MAX_SLEEP_SLICE == 1.0


def test_wall_clock_rechecks_after_short_and_long_sleeps() -> None:
    short = FakeTime(T0, drift=-0.5)            # every sleep ends half a second early
    WallClock(short.time, short.sleep).wait_until(int(T0) + 3)
    assert short.t >= int(T0) + 3
    # 2.75 s needed: four 1 s sleeps give 0.5 s each, then what remains, rechecked each time
    assert short.sleeps == pytest.approx([1.0] * 4 + [0.75, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0],
                                         abs=1e-5)

    late = FakeTime(T0, drift=0.9)              # every sleep overruns: stop as soon as past
    WallClock(late.time, late.sleep).wait_until(int(T0) + 3)
    assert late.sleeps == pytest.approx([1.0, 0.85], abs=1e-5)   # 1.9 s passed, 0.85 s left
    assert late.t - T0 == pytest.approx(1.9 + 1.75, abs=1e-5)     # overran; no third sleep


@pytest.mark.parametrize("target", [int(T0), int(T0) - 3600, 0])
def test_wall_clock_returns_at_once_when_the_time_has_passed(target, no_real_time) -> None:
    fake = FakeTime(T0)
    WallClock(fake.time, fake.sleep).wait_until(target)
    assert fake.sleeps == [] and fake.t == T0


def test_wall_clock_stop_ends_the_wait_within_a_slice(no_real_time) -> None:
    fake = FakeTime(T0)
    clock = WallClock(fake.time, fake.sleep, stop=lambda: len(fake.sleeps) >= 2)
    clock.wait_until(int(T0) + 3600)
    assert fake.sleeps == [1.0, 1.0]            # noticed after the second one-second slice
    assert clock.now() < int(T0) + 3600


# ------------------------------------------------------------------------ bar close times
def test_bar_close_ts_is_the_last_field_and_must_follow_the_open() -> None:
    assert [f.name for f in dataclasses.fields(Bar)][-1] == "close_ts"
    bar = Bar("BTC-USD", 1_713_459_600, 63582.07, 63680.24, 62673.99, 62834.64, 962.02,
              1_713_463_200)
    with pytest.raises(dataclasses.FrozenInstanceError):
        bar.close_ts = 0  # type: ignore[misc]
    with pytest.raises(ValueError, match="BTC-USD bar at 1713459600: close_ts 1713459600"):
        Bar("BTC-USD", 1_713_459_600, 1.0, 1.0, 1.0, 1.0, 0.0, 1_713_459_600)


def test_real_1h_bars_close_an_hour_after_they_open(real_bars) -> None:
    assert set(real_bars) >= {"BTC-USD", "ETH-USD", "SOL-USD"}
    for series in real_bars.values():
        close = series.close_ts
        assert series.timeframe == "1h" and series.bar_seconds == 3600
        assert close.dtype == np.int64 and close.shape == series.ts.shape
        assert np.all(close - series.ts == 3600)
        for i in (0, len(series) // 2, len(series) - 1):
            bar = series.bar(i)
            assert (bar.symbol, bar.ts, bar.close) == (series.symbol, int(series.ts[i]),
                                                       float(series.close[i]))
            assert bar.close_ts - bar.ts == 3600 and bar.close_ts == int(close[i])
    btc = real_bars["BTC-USD"].bar(0)
    assert (btc.ts, btc.close_ts) == (1_713_459_600, 1_713_463_200)   # 17:00 -> 18:00Z


def test_slices_and_resampled_bars_keep_close_times(real_bars) -> None:
    src = real_bars["BTC-USD"]
    part = src.slice(10, 20)
    assert np.array_equal(part.close_ts, src.close_ts[10:20])
    four = resample(src, "4h")
    assert four.bar_seconds == 14_400 and np.all(four.close_ts - four.ts == 14_400)
    # a complete 4h bar closes when its last 1h bar closes
    k = 3
    last = int(np.flatnonzero(src.ts < four.ts[k] + 14_400)[-1])
    assert int(four.close_ts[k]) == int(src.close_ts[last])


def test_bar_series_with_a_bad_timeframe_says_so(real_bars) -> None:
    src = real_bars["BTC-USD"]
    bad = BarSeries(src.symbol, "1H", src.ts, src.open, src.high, src.low, src.close, src.volume)
    with pytest.raises(ValueError, match="invalid timeframe '1H'"):
        _ = bad.close_ts
    with pytest.raises(ValueError, match="invalid timeframe '1H'"):
        bad.bar(0)
